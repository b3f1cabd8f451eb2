"""Run the gateway alone: `python -m api` (settings from the environment, see the README).

On SIGTERM (or SIGINT) it stops accepting connections, lets the requests in flight finish (for at most
`BATCH_EXPORTS_SHUTDOWN_GRACE_SECONDS`), then closes its pool and exits: aiohttp's `run_app` installs the
handlers, so it does the same as PID 1 in a container.
"""

import os

from aiohttp import web

from api.app import create_app
from batch_exports.settings import get_settings
from batch_exports.telemetry import logs

if __name__ == "__main__":
    settings = get_settings()
    logs.configure(settings)
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )
    # The Temporal runtime's threads can abort the interpreter's finalisation (temporalio/sdk-python#300):
    # everything is closed by now, so leave without it.
    os._exit(0)
