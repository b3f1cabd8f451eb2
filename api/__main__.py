"""Run the gateway alone: `python -m api` (settings from the environment, see the README).

On SIGTERM (or SIGINT) it stops accepting connections, lets the requests in flight finish (for at most
`BATCH_EXPORTS_SHUTDOWN_GRACE_SECONDS`), then closes its pool and exits: aiohttp's `run_app` installs the
handlers, so it does the same as PID 1 in a container.

The cyclic garbage collector is settled as the worker's is (`batch_exports.collector`): a capture body makes
thousands of containers (dicts, lists) that live until the request ends and are then freed by reference
counting; with Python's defaults the collector ran several times a request, each time promoting them, and took
about a quarter of the gateway's CPU under `bench.capture` (4.4 of 18 s; half a percent after: 0.09 of 17).
"""

import os

from aiohttp import web

from api.access_log import AccessLog
from api.app import create_app
from batch_exports import collector, event_loop
from batch_exports.settings import get_settings
from batch_exports.telemetry import logs

if __name__ == "__main__":
    settings = get_settings()
    logs.configure(settings)
    app = create_app(settings)
    collector.settle()  # what is loaded by now lives as long as the process
    web.run_app(
        app,
        host=settings.api_host,
        port=settings.api_port,
        shutdown_timeout=settings.shutdown_grace_seconds,
        loop=event_loop.factory(settings)(),
        access_log_class=AccessLog,
    )
    # The Temporal runtime's threads can abort the interpreter's finalisation (temporalio/sdk-python#300):
    # everything is closed by now, so leave without it.
    os._exit(0)
