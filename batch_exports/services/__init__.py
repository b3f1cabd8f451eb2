"""Use cases: what the gateway and the activities do to exports, runs and backfills, keeping PostgreSQL and
Temporal in step (`lifecycle`, `backfills`, `reconciliation`) and taking in events (`capture`)."""
