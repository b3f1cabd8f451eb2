"""The run domain: how a run (and a backfill) lives, as plain code over two ports.

- `run`: the shapes of a run and a backfill (storage maps rows to them, the API maps them to its bodies);
- `statuses`: every status decision (a failure's status, how Temporal's close maps to a status, when a backfill
  ended well, when an export is failing);
- `ports`: what the rules need from the outside: the run book (`store/` implements it over PostgreSQL) and the
  Temporal port (`temporal/` implements it);
- `lifecycle`: the start check, the hand-over, finishing a run and the auto-pause that may follow;
- `attempts`: fencing between the attempts of one run's export;
- `closing`: closing runs and backfills from what Temporal reports (reconciliation);
- `backfills`: finishing a backfill.

Nothing here does I/O of its own, nor imports asyncpg or a Temporal client: the workflows import `statuses`, the
activities and services call the rest with the adapters of the two ports. See docs/run-domain.md.
"""
