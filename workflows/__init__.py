"""Deterministic workflow code only: the run workflow (where a run's status is decided), the backfill
workflow and reconciliation. They import the contracts and the activity classes, nothing else of ours."""
