"""The ClickHouse source: PostHog's own tables (`events`, `person`, `person_distinct_id2`, ...), read over
ClickHouse's HTTP interface the way PostHog's batch exports read them."""
