"""The ground floor: what the gateway, the worker and the workflows agree on. Imports nothing of ours.

- `intervals`: where an export's intervals begin and end (the schedule, the runs and the backfills all ask it);
- `workflows`: workflow names and the typed inputs and results of the workflows and their activities;
- `statuses`: the run and backfill status vocabularies;
- `search_attributes`: the search attributes operators find runs and backfills by;
- `timeouts`: how long runs and their export attempts may take.
"""
