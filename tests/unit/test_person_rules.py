"""PostHog's person rules at capture: which ids a merge may name, the deterministic person id, the merge plan."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from batch_exports.services import capture
from batch_exports.services.person_ids import is_illegal, person_id
from batch_exports.store import person_merges


@pytest.mark.parametrize(
    "distinct_id",
    ["", "   ", "anonymous", "AnOnYmOuS", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
     "undefined", "UNDEFINED", "true", "False", "[object Object]", "NaN", "None", "none", "null", "0",
     '"anonymous"', "'guest'", '"NaN"', "'null'", "'0'"],
)  # fmt: skip
def test_illegal_ids(distinct_id: str) -> None:
    assert is_illegal(distinct_id)


@pytest.mark.parametrize("distinct_id", ["nan", "NULL", "NONE", "1", "user-1", "anonymous-1", "'nan'", " guest"])
def test_legal_ids(distinct_id: str) -> None:
    """Some ids are illegal only as written (`nan` is an id, `NaN` is not), and only the empty check trims."""
    assert not is_illegal(distinct_id)


def test_the_deterministic_person_id_is_posthogs() -> None:
    """`uuidFromDistinctId`: UUIDv5 of `"<team id>:<distinct id>"` in PostHog's namespace."""
    namespace = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")
    assert person_id(2, "ada") == uuid.uuid5(namespace, "2:ada")
    assert person_id(2, "ada").version == 5 and person_id(2, "ada") != person_id(3, "ada")


def _parsed(*events: dict) -> list:
    payload = capture.parse({"api_key": "t", "batch": list(events)}, now=datetime(2026, 1, 1, tzinfo=UTC))
    return payload.events


def test_parse_finds_merges_and_refuses_illegal_ones() -> None:
    events = _parsed(
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "a"}},
        {"event": "$create_alias", "distinct_id": "u", "properties": {"alias": "b"}},
        {"event": "$merge_dangerously", "distinct_id": "u", "properties": {"alias": "c"}},
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "u"}},
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": '"null"'}},
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": None}},
        {"event": "$pageview", "distinct_id": "u", "properties": {"alias": "d", "$unset": ["x"]}},
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "e",
                                                                   "$process_person_profile": False}},
    )  # fmt: skip
    assert [(e.merge, e.dangerous) for e in events] == [
        ("a", False), ("b", False), ("c", True), (None, False), (None, False), (None, False), (None, False),
        (None, False),
    ]  # fmt: skip
    assert events[6].unset == ("x",) and not events[7].person_profile


def test_illegal_merges_become_warnings() -> None:
    payload = capture.parse(
        [{"event": "$create_alias", "distinct_id": "u", "properties": {"alias": "guest"}}],
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    (warning,) = payload.warnings
    assert "cannot_merge_with_illegal_distinct_id" in warning and "'guest'" in warning


def _row(
    distinct_id: str, pid: str, version: int, identified: bool = False, link: int = 0, **props: object
) -> tuple[object, ...]:
    """A row as `event_store` reads it (its columns in order, the properties as JSON text)."""
    return (
        distinct_id,
        link,
        pid,
        json.dumps(props),
        version,
        identified,
        datetime(2026, 1, int(pid[-1]) + 1, tzinfo=UTC),
        False,
        "1",
    )


def test_a_merge_keeps_the_event_persons_properties_then_sets_and_unsets() -> None:
    (identify,) = _parsed({"event": "$identify", "distinct_id": "u", "properties": {
        "$anon_distinct_id": "a", "$set": {"plan": "team"}, "$set_once": {"first": "x", "new": 1},
        "$unset": ["gone"]}})  # fmt: skip
    rows = [_row("a", "p1", 7, plan="free", first="anon", gone=1), _row("u", "p2", 2, link=3, plan="pro", email="e")]
    plan = person_merges.plan(2, [identify], rows)
    survivor, deleted = sorted(plan.persons, key=lambda p: p["is_deleted"])
    assert survivor["id"] == "p2" and survivor["version"] == 8 and survivor["is_identified"]
    assert survivor["properties"] == {"plan": "team", "first": "anon", "email": "e", "new": 1}
    assert survivor["created_at"] == datetime(2026, 1, 2, tzinfo=UTC)  # p1's, the earlier
    assert (deleted["id"], deleted["version"], deleted["deleted_distinct_id"]) == ("p1", 107, "a")
    assert plan.moves == (["p1"], ["p2"]) and plan.links == ([], [], [])
    assert plan.events[0][4] == "p2" and plan.updates == 2


def test_merging_away_an_identified_person_needs_merge_dangerously() -> None:
    rows = [_row("a", "p1", 0, identified=True), _row("u", "p2", 0)]
    refused = person_merges.plan(2, _parsed({"event": "$create_alias", "distinct_id": "u", "properties": {
        "alias": "a"}}), rows)  # fmt: skip
    assert refused.moves == ([], []) and len(refused.refused) == 1
    assert [(p["id"], p["is_identified"], p["version"]) for p in refused.persons] == [("p2", True, 1)]
    dangerous = person_merges.plan(2, _parsed({"event": "$merge_dangerously", "distinct_id": "u", "properties": {
        "alias": "a"}}), rows)  # fmt: skip
    assert dangerous.moves == (["p1"], ["p2"]) and not dangerous.refused


def test_an_id_joining_a_person_changes_it_only_to_identify_it() -> None:
    """PostHog's `addDistinctId` writes the link alone: a person already identified is only `joined` (guarded by
    the write, its version as read); one not yet identified is changed to identify it."""
    events = _parsed({"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "new"}})
    identified = person_merges.plan(2, events, [_row("u", "p1", 3, identified=True)])
    assert identified.persons == [] and identified.joined == ["p1"] and identified.links == (["new"], ["p1"], [0])
    assert identified.events[0][4] == "p1"
    anonymous = person_merges.plan(2, events, [_row("u", "p1", 3)])
    assert [(p["id"], p["version"], p["is_identified"]) for p in anonymous.persons] == [("p1", 4, True)]
    assert anonymous.joined == [] and anonymous.links == (["new"], ["p1"], [0])


def test_new_ids_share_one_person_and_a_chain_resolves_to_the_last_survivor() -> None:
    events = _parsed(
        {"event": "$pageview", "distinct_id": "v"},
        {"event": "$identify", "distinct_id": "w", "properties": {"$anon_distinct_id": "x"}},
        {"event": "$identify", "distinct_id": "w", "properties": {"$anon_distinct_id": "v"}},
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "w"}},  # w is identified
        {"event": "$merge_dangerously", "distinct_id": "u", "properties": {"alias": "w"}},
    )
    plan = person_merges.plan(2, events, [_row("u", "p3", 4)])
    w, v, u = str(person_id(2, "w")), str(person_id(2, "v")), "p3"
    assert plan.links == (["v", "w", "x"], [u, u, u], [1, 1, 1])
    assert [e[4] for e in plan.events] == [v, w, w, u, u] and len(plan.refused) == 1
    assert plan.moves == ([], [])  # the new persons merged away have no links left to move
    assert {p["id"]: p["is_deleted"] for p in plan.persons} == {u: False, v: True, w: True}
