"""`batch_exports.event_loop`: the loop a process runs on is the one its settings name."""

import asyncio

import uvloop

from batch_exports import event_loop
from batch_exports.settings import Settings


async def running_loop() -> str:
    return event_loop.name_of(asyncio.get_running_loop())


def test_uvloop_unless_told_otherwise() -> None:
    assert Settings().event_loop == "uvloop"
    assert event_loop.run(running_loop(), Settings()) == "uvloop.Loop"
    loop = event_loop.factory(Settings())()  # what the gateway's `run_app` is given
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_standard_library_loop_on_request() -> None:
    settings = Settings(event_loop="asyncio")
    assert event_loop.run(running_loop(), settings) == "asyncio.unix_events._UnixSelectorEventLoop"
