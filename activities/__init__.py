"""Side effects of the run workflow: bookkeeping of runs and logs, and the export itself."""
