"""An export's intervals as a strip of cells, one per interval, by what its runs say of it.

An interval is `exported` when a run of it completed; else `running` while one is open; else `failed` when
one ended otherwise; else `paused` when the export is paused and the interval ended after the pause; else
`missing`. This is the picture to look at before and after a backfill.
"""

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

from contracts.intervals import Interval, IntervalSpec, boundaries
from contracts.statuses import RunStatus

STATUSES = ("exported", "failed", "running", "missing", "paused")
CELLS = {  # a glyph each, so the strip reads without colours too
    "exported": ("█", "green"),
    "failed": ("✕", "red"),
    "running": ("▶", "yellow"),
    "missing": ("·", "bright_black"),
    "paused": ("‖", "blue"),
}
MAX_CELLS = 20_000


@dataclass(frozen=True)
class Cell:
    start: datetime
    end: datetime
    status: str
    run_id: str | None


def spec_of(export: dict[str, Any]) -> IntervalSpec:
    return IntervalSpec(Interval(export["interval"]), export["timezone"], export["offset_day"], export["offset_hour"])


def intervals(export: dict[str, Any], since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """Every whole interval between `since` and `until`, oldest first."""
    ends = list(boundaries(spec_of(export), since, until))
    if len(ends) > MAX_CELLS:
        raise ValueError(f"{len(ends) - 1} intervals: more than {MAX_CELLS}; ask for a shorter --since")
    return list(itertools.pairwise(ends))


def cells(export: dict[str, Any], spans: list[tuple[datetime, datetime]], runs: list[dict[str, Any]]) -> list[Cell]:
    by_end: dict[datetime, list[dict[str, Any]]] = {}
    for run in runs:
        by_end.setdefault(datetime.fromisoformat(run["data_interval_end"]), []).append(run)
    paused_at = (
        datetime.fromisoformat(export["last_paused_at"]) if export["paused"] and export["last_paused_at"] else None
    )
    strip = []
    for start, end in spans:
        found = by_end.get(end, [])
        statuses = [RunStatus(r["status"]) for r in found]
        pick = None
        for wanted in (("exported", (RunStatus.COMPLETED,)), ("running", (RunStatus.STARTING, RunStatus.RUNNING))):
            pick = next(((wanted[0], r) for r, s in zip(found, statuses, strict=True) if s in wanted[1]), None)
            if pick:
                break
        if pick is None and found:
            pick = ("failed", found[0])
        if pick is None:
            status = "paused" if paused_at is not None and end > paused_at else "missing"
            strip.append(Cell(start, end, status, None))
        else:
            strip.append(Cell(start, end, pick[0], pick[1]["id"]))
    return strip


def strip_text(strip: list[Cell]) -> Text:
    text = Text()
    for cell in strip:
        glyph, colour = CELLS[cell.status]
        text.append(glyph, style=colour)
    return text


def legend(strip: list[Cell]) -> Text:
    counts = Counter(cell.status for cell in strip)
    text = Text()
    for status in STATUSES:
        glyph, colour = CELLS[status]
        text.append(glyph, style=colour).append(f" {status} {counts[status]}   ")
    return text
