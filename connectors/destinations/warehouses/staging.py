"""Stage then apply: the skeleton every database and warehouse destination writes an interval with, exactly once.

An attempt loads its batches into a stage table of its own (`stage_name`: from the run and the attempt), then
applies the stage to the target in one transaction or statement, together with a mark of the run
(`run_mark`). The rules of the apply are the model's (`ApplyRule`, data shared by every dialect): events
replace the rows of the same `uuid`; persons and sessions replace a row only when the staged one is newer
(`person_version` or `person_distinct_id_version`; `end_timestamp`), and insert the keys the target lacks.

`StagedWriter` holds the order; a destination gives the dialect's hooks. The order it keeps:
- before anything is staged, the stages an earlier attempt of the run left (`stale_stages`, by the run's
  prefix) are dropped, so no stage of a dead attempt outlives the next attempt;
- a run whose mark the target already holds (its apply landed, then the attempt was lost) stages and applies
  nothing again; the mark is asked again right before the apply;
- the stage is dropped when the attempt ends, applied or not; a failure to drop it after a failure never hides
  the failure (the next attempt drops it).

A dialect whose stage cannot outlive its session (PostgreSQL's temporary table, dropped at the end of the
transaction that also applies it) has nothing stale to list and may keep no mark: its apply is the commit of
the one transaction that staged, so a lost attempt applied all or nothing, and applying the same rows again
leaves each record once.
"""

import logging
import re
import uuid
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connectors.destinations.base import IntervalWriter, WriteRequest
from connectors.sources.schemas import KEYS, NEWER

logger = logging.getLogger(__name__)

STAGE_PREFIX = "bx_stage_"
"""Every stage table's name starts so: `bx_stage_{run}_{attempt}` (at most 50 characters, an identifier in
every dialect without quoting)."""


@dataclass(frozen=True)
class ApplyRule:
    """How a model's staged rows reach the target."""

    key: tuple[str, ...]
    """The columns that identify a record."""
    newer: tuple[str, ...]
    """The columns of which one greater makes a staged row replace the target's (empty: it always does)."""

    def replaces(self, held: Mapping[str, Any], staged: Mapping[str, Any]) -> bool:
        """Whether `staged` replaces `held`, a row of the same key (a null version is never newer)."""
        if not self.newer:
            return True
        return any(staged.get(c) is not None and (held.get(c) is None or staged[c] > held[c]) for c in self.newer)

    def newer_condition(self, quote: Callable[[str], str], held: str = "t", staged: str = "s") -> str:
        """`replaces` as a SQL condition on the aliases `held` and `staged` (for a MERGE's `WHEN MATCHED AND`),
        with identifiers quoted by `quote`; `TRUE` when any staged row replaces."""
        if not self.newer:
            return "TRUE"
        conditions = []
        for column in map(quote, self.newer):
            new, old = f"{staged}.{column}", f"{held}.{column}"
            conditions.append(f"({new} IS NOT NULL AND ({old} IS NULL OR {old} < {new}))")
        return " OR ".join(conditions)


RULES: dict[str, ApplyRule] = {model: ApplyRule(KEYS[model], NEWER[model]) for model in KEYS}
"""Each model's apply rule, the same for every dialect."""


def _run_part(run_id: str) -> str:
    try:
        return uuid.UUID(run_id).hex
    except ValueError:
        return re.sub(r"[^a-z0-9]", "", run_id.lower())[:32] or "run"


def stage_prefix(request: WriteRequest) -> str:
    """The start of the name of every stage of the request's run, whatever the attempt."""
    return f"{STAGE_PREFIX}{_run_part(request.run_id)}_"


def stage_name(request: WriteRequest) -> str:
    """The stage of this attempt of the run: lower case letters, digits and `_`."""
    return f"{stage_prefix(request)}{max(request.attempt, 0)}"


def run_mark(request: WriteRequest) -> str:
    """What an apply records beside its rows, so a later attempt of the run sees that it landed."""
    return request.run_id


class StagedWriter(IntervalWriter):
    """An interval written by stage then apply (see the module). Subclasses give the hooks; `write`, `commit`
    and `abort` keep their order."""

    def __init__(self, request: WriteRequest) -> None:
        if request.model not in RULES:
            raise ValueError(f"no apply rule for the {request.model} model")
        self.rule = RULES[request.model]
        self.stage = stage_name(request)
        self.prefix = stage_prefix(request)
        self.mark = run_mark(request)
        self._begun = False
        self._ended = False
        self._staged = False
        """Whether this attempt's stage exists (so it is dropped at the end)."""
        self._skip = False
        """Whether the run's apply already landed (so nothing is staged or applied)."""

    # The dialect's hooks.
    async def open(self) -> None:
        """Connect, create the target when missing: whatever comes before the first stage."""

    async def close(self) -> None:
        """Let go of what `open` took (if it took anything); called once at the end, whatever happened."""

    async def stale_stages(self, prefix: str) -> Sequence[str]:
        """The stages whose names start with `prefix` that exist: an earlier attempt's of the run (none can be
        this attempt's own, which is created after they are dropped)."""
        return ()

    @abstractmethod
    async def applied(self, mark: str) -> bool:
        """Whether the target holds the mark `mark` (an apply of the run landed)."""

    @abstractmethod
    async def create_stage(self, stage: str) -> None: ...

    @abstractmethod
    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        """Add the batch's rows to the stage."""

    @abstractmethod
    async def apply(self, stage: str, mark: str) -> None:
        """Apply the stage to the target by `self.rule` and record `mark`, all in one transaction or statement."""

    @abstractmethod
    async def drop_stage(self, stage: str) -> None:
        """Drop the stage if it exists."""

    # The order.
    async def _begin(self) -> bool:
        """Make ready to stage, once; False when the run's apply already landed."""
        if not self._begun:
            self._begun = True
            await self.open()
            for stale in await self.stale_stages(self.prefix):
                await self.drop_stage(stale)
            if await self.applied(self.mark):
                self._skip = True
            else:
                self._staged = True
                await self.create_stage(self.stage)
        return not self._skip

    async def write(self, batch: pa.RecordBatch) -> bool:
        try:
            if await self._begin():
                await self.load(self.stage, batch)
        except BaseException:
            await self._end(failed=True)
            raise
        return False  # staged: nothing is in the target before the apply

    async def commit(self, final: bool = True) -> None:
        try:
            if await self._begin() and not await self.applied(self.mark):
                await self.apply(self.stage, self.mark)
        except BaseException:
            await self._end(failed=True)
            raise
        await self._end(failed=False)

    async def abort(self) -> None:
        await self._end(failed=True)

    async def _end(self, failed: bool) -> None:
        """Drop this attempt's stage and close, once. After a failure a failed drop is logged, not raised: the
        failure is the answer, and the next attempt drops the stage."""
        if self._ended:
            return
        self._ended = True
        staged, self._staged = self._staged, False
        try:
            if staged:
                await self.drop_stage(self.stage)
        except Exception as error:
            if not failed:
                raise
            logger.warning("could not drop the stage %s: %s", self.stage, type(error).__name__)
        finally:
            await self.close()
