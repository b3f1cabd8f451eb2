"""Stage then apply (`warehouses.staging`): the order the skeleton keeps, driven through an in-memory warehouse
that holds tables, stages and marks as a real one would across attempts."""

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from connectors.destinations.base import Context, WriteRequest
from connectors.destinations.warehouses.staging import RULES, STAGE_PREFIX, ApplyRule, StagedWriter, stage_name
from tests.support.interval_writing import write_interval

RUN = str(uuid.uuid4())


@dataclass
class Warehouse:
    """What outlives an attempt: the target's rows by key, the stages, the marks of applied runs."""

    target: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    marks: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail_on: str = ""
    """A hook that raises (`load`, `apply`, `drop_stage`): a failure of the warehouse."""


class MemoryWriter(StagedWriter):
    def __init__(self, warehouse: Warehouse, request: WriteRequest) -> None:
        super().__init__(request)
        self.w = warehouse

    def _call(self, name: str) -> None:
        self.w.calls.append(name)
        if self.w.fail_on == name:
            raise RuntimeError(f"{name} failed")

    async def open(self) -> None:
        self._call("open")

    async def close(self) -> None:
        self._call("close")

    async def stale_stages(self, prefix: str) -> Sequence[str]:
        self._call("stale_stages")
        return [name for name in self.w.stages if name.startswith(prefix)]

    async def applied(self, mark: str) -> bool:
        self._call("applied")
        return mark in self.w.marks

    async def create_stage(self, stage: str) -> None:
        self._call(f"create {stage}")
        assert stage not in self.w.stages
        self.w.stages[stage] = []

    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        self._call("load")
        self.w.stages[stage].extend(batch.to_pylist())

    async def apply(self, stage: str, mark: str) -> None:
        self._call("apply")
        target = dict(self.w.target)  # one transaction: all of it lands, or nothing
        for row in self.w.stages[stage]:
            key = tuple(row[c] for c in self.rule.key)
            if key not in target or self.rule.replaces(target[key], row):
                target[key] = row
        self.w.target, self.w.marks = target, self.w.marks | {mark}

    async def drop_stage(self, stage: str) -> None:
        self._call(f"drop {stage}")
        self.w.stages.pop(stage, None)


def request(model: str = "persons", attempt: int = 1, run_id: str = RUN) -> WriteRequest:
    context = Context(files_root=Path("/nonexistent"), allow_private=False)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return WriteRequest(context, model, False, start, start, run_id=run_id, attempt=attempt)


def persons(*rows: tuple[str, int, int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"team_id": 1, "distinct_id": d, "person_version": v, "person_distinct_id_version": dv} for d, v, dv in rows]
    )


async def attempt(warehouse: Warehouse, *batches: pa.RecordBatch, number: int = 1, run_id: str = RUN) -> None:
    await write_interval(MemoryWriter(warehouse, request(attempt=number, run_id=run_id)), *batches)


def test_an_attempt_stages_then_applies_then_drops_its_stage() -> None:
    warehouse = Warehouse()
    asyncio.run(attempt(warehouse, persons(("a", 1, 1)), persons(("b", 1, 1))))
    stage = stage_name(request())
    assert warehouse.calls == [
        "open", "stale_stages", "applied", f"create {stage}", "load", "load", "applied", "apply", f"drop {stage}",
        "close",
    ]  # fmt: skip
    assert sorted(warehouse.target) == [(1, "a"), (1, "b")]
    assert warehouse.stages == {}
    assert warehouse.marks == {RUN}


def test_a_retried_attempt_whose_apply_landed_applies_nothing_again() -> None:
    warehouse = Warehouse()
    asyncio.run(attempt(warehouse, persons(("a", 1, 1))))
    warehouse.target[(1, "a")]["properties"] = "changed after the apply"
    warehouse.calls.clear()
    asyncio.run(attempt(warehouse, persons(("a", 1, 1)), number=2))
    assert "apply" not in warehouse.calls and not any(call.startswith("create") for call in warehouse.calls)
    assert warehouse.target[(1, "a")]["properties"] == "changed after the apply"
    assert warehouse.stages == {}
    assert warehouse.calls[-1] == "close"


def test_a_stage_of_a_dead_attempt_is_dropped_before_the_next_attempt_stages() -> None:
    warehouse = Warehouse()
    dead = MemoryWriter(warehouse, request(attempt=1))
    asyncio.run(dead.write(persons(("a", 1, 1))))  # then its worker dies: no commit, no abort
    other_run = stage_name(request(run_id=str(uuid.uuid4())))
    warehouse.stages[other_run] = []  # a concurrent run's stage is not this run's to drop
    warehouse.calls.clear()
    asyncio.run(attempt(warehouse, persons(("a", 2, 1)), number=2))
    dead_stage, own = stage_name(request(attempt=1)), stage_name(request(attempt=2))
    assert warehouse.calls.index(f"drop {dead_stage}") < warehouse.calls.index(f"create {own}")
    assert list(warehouse.stages) == [other_run]
    assert warehouse.target[(1, "a")]["person_version"] == 2


@pytest.mark.parametrize("failing", ["load", "apply"])
def test_a_failed_attempt_drops_its_stage_and_applies_nothing(failing: str) -> None:
    warehouse = Warehouse(fail_on=failing)
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        asyncio.run(attempt(warehouse, persons(("a", 1, 1))))
    assert warehouse.stages == {} and warehouse.target == {} and warehouse.marks == set()
    assert warehouse.calls[-2:] == [f"drop {stage_name(request())}", "close"]
    assert warehouse.calls.count("close") == 1


def test_a_failed_drop_after_a_failure_does_not_hide_the_failure() -> None:
    warehouse = Warehouse(fail_on="load")
    writer = MemoryWriter(warehouse, request())

    async def failing_drop(stage: str) -> None:
        raise ConnectionError("gone")

    writer.drop_stage = failing_drop  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="load failed"):
        asyncio.run(write_interval(writer, persons(("a", 1, 1))))
    assert warehouse.calls[-1] == "close"


def test_a_failed_drop_after_the_apply_fails_the_attempt() -> None:
    """The stage must not outlive a successful attempt silently: the attempt fails, and its retry finds the mark
    and drops the stage."""
    warehouse = Warehouse(fail_on=f"drop {stage_name(request())}")
    with pytest.raises(RuntimeError, match="drop"):
        asyncio.run(attempt(warehouse, persons(("a", 1, 1))))
    assert warehouse.marks == {RUN} and list(warehouse.stages) == [stage_name(request())]
    warehouse.fail_on = ""
    asyncio.run(attempt(warehouse, persons(("a", 1, 1)), number=2))
    assert warehouse.stages == {} and warehouse.calls.count("apply") == 1


def test_an_empty_interval_still_applies_and_marks() -> None:
    warehouse = Warehouse()
    asyncio.run(attempt(warehouse))
    assert warehouse.marks == {RUN} and warehouse.stages == {}


def test_persons_replace_only_when_a_version_is_newer() -> None:
    warehouse = Warehouse()
    asyncio.run(attempt(warehouse, persons(("a", 5, 5), ("b", 5, 5), ("c", 5, 5))))
    second = persons(("a", 4, 9), ("b", 9, 4), ("c", 5, 5), ("d", 1, 1))
    asyncio.run(attempt(warehouse, second, run_id=str(uuid.uuid4())))
    held = {key[1]: (row["person_version"], row["person_distinct_id_version"]) for key, row in warehouse.target.items()}
    assert held == {"a": (4, 9), "b": (9, 4), "c": (5, 5), "d": (1, 1)}
    asyncio.run(attempt(warehouse, persons(("a", 3, 3)), run_id=str(uuid.uuid4())))
    assert warehouse.target[(1, "a")]["person_version"] == 4  # an older one never replaces


def test_the_rules_are_the_models() -> None:
    assert RULES["events"] == ApplyRule(("uuid",), ())
    assert RULES["persons"] == ApplyRule(("team_id", "distinct_id"), ("person_version", "person_distinct_id_version"))
    assert RULES["sessions"] == ApplyRule(("team_id", "session_id"), ("end_timestamp",))
    assert RULES["events"].replaces({"uuid": "x"}, {"uuid": "x"})
    sessions = RULES["sessions"]
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert sessions.replaces({"end_timestamp": early}, {"end_timestamp": late})
    assert not sessions.replaces({"end_timestamp": late}, {"end_timestamp": early})
    assert not sessions.replaces({"end_timestamp": late}, {"end_timestamp": None})
    assert sessions.replaces({"end_timestamp": None}, {"end_timestamp": early})


def test_the_newer_condition_in_sql() -> None:
    def quote(name: str) -> str:
        return f'"{name}"'

    assert RULES["events"].newer_condition(quote) == "TRUE"
    assert RULES["sessions"].newer_condition(quote) == (
        '(s."end_timestamp" IS NOT NULL AND (t."end_timestamp" IS NULL OR t."end_timestamp" < s."end_timestamp"))'
    )
    assert RULES["persons"].newer_condition(quote, "held", "new").count(" OR ") == 3


def test_stage_names_are_the_runs_and_the_attempts() -> None:
    names = {stage_name(request(attempt=n)) for n in (1, 2)} | {stage_name(request(run_id=str(uuid.uuid4())))}
    assert len(names) == 3
    for name in names:
        assert name.startswith(STAGE_PREFIX) and len(name) <= 50 and name.replace("_", "").isalnum()
        assert name == name.lower()
