"""The event loop every long-running process of the service runs on (`BATCH_EXPORTS_EVENT_LOOP`): the worker
(`worker.py`), the gateway (`python -m api`) and `make dev` take theirs from here, so they all run on the same one.

uvloop by default: its transports, socket writes and per-callback work are in C, which aiohttp and asyncpg both
spend less CPU on (the gateway's CPU per page of runs, `bench/README.md`); `asyncio`, the standard library's loop,
stays a setting away.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from batch_exports.settings import Settings

T = TypeVar("T")


def factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of the kind the settings name."""
    return uvloop.new_event_loop if settings.event_loop == "uvloop" else asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """`asyncio.run(main)` on the settings' loop."""
    with asyncio.Runner(loop_factory=factory(settings)) as runner:
        return runner.run(main)


def name_of(loop: asyncio.AbstractEventLoop) -> str:
    """The loop's class, as the startup log line names it (`uvloop.Loop`, `asyncio.unix_events....`)."""
    kind = type(loop)
    return f"{kind.__module__}.{kind.__qualname__}"
