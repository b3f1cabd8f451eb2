"""Run the gateway alone: `python -m api` (settings from the environment, see the README).

On SIGTERM (or SIGINT) it stops accepting connections, lets the requests in flight finish (for at most
`BATCH_EXPORTS_SHUTDOWN_GRACE_SECONDS`), then closes its pool and exits: aiohttp's `run_app` installs the
handlers, so it does the same as PID 1 in a container.

The cyclic garbage collector leaves alone what the process loaded before serving (`gc.freeze`), and runs
after `GC_YOUNG_OBJECTS` new containers rather than Python's 700: a capture body makes thousands of
containers (dicts, lists) that live until the request ends and are then freed by reference counting; with
the defaults the collector ran several times a request, each time promoting them, and took about a quarter
of the gateway's CPU under `bench.capture` (4.4 of 18 s; half a percent after: 0.09 of 17).
"""

import gc
import os

from aiohttp import web

from api.app import create_app
from batch_exports.settings import get_settings
from batch_exports.telemetry import logs

GC_YOUNG_OBJECTS = 20_000

if __name__ == "__main__":
    settings = get_settings()
    logs.configure(settings)
    app = create_app(settings)
    gc.freeze()  # what is loaded by now lives as long as the process: collections need not look at it again
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])
    web.run_app(
        app,
        host=settings.api_host,
        port=settings.api_port,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )
    # The Temporal runtime's threads can abort the interpreter's finalisation (temporalio/sdk-python#300):
    # everything is closed by now, so leave without it.
    os._exit(0)
