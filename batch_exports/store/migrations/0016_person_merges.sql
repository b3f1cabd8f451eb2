-- depends: 0015_notifications
-- Persons merged as PostHog merges them (`$identify`, `$create_alias`, `$merge_dangerously`): a person is
-- identified once any merge names it; a person merged away stays, deleted, with the distinct id whose merge
-- deleted it and that link's version then (the persons export shows it once, as deleted); a merge moves every
-- link of the person merged away, found by its person.
ALTER TABLE persons
    ADD COLUMN is_identified boolean NOT NULL DEFAULT false,
    ADD COLUMN deleted_distinct_id text,
    ADD COLUMN deleted_distinct_id_version bigint;
CREATE INDEX person_distinct_ids_person ON person_distinct_ids (person_id);
