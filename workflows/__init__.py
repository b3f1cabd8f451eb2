"""Deterministic workflow code: the run workflow, and the interval arithmetic schedules and runs share."""
