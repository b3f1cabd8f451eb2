"""`make dev`: the whole service on one machine, in the foreground, with embedded parts.

Starts PostgreSQL (unless BATCH_EXPORTS_DATABASE_URL is set) and the Temporal dev server with its UI
(unless TEMPORAL_ADDRESS is set), applies migrations, creates the default project and API key, then
runs the worker and the gateway until Ctrl-C, and stops everything it started.
"""

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from api.app import create_app
from batch_exports.crypto import generate_key
from batch_exports.runtime import open_runtime
from batch_exports.settings import Settings
from batch_exports.store import api_keys, db, projects
from batch_exports.telemetry import gauges
from batch_exports.temporal.schedules import ensure_reconciliation
from entrypoints.embedded import EmbeddedPostgres, TemporalDevServer
from worker import build_worker

DEFAULT_PROJECT_ID = 1

logger = logging.getLogger("entrypoints.dev")


def _encryption_key(data_dir: Path) -> str:
    """The key `make dev` encrypts destination configs with, made once and kept in the data directory."""
    path = data_dir / "encryption.key"
    if not path.exists():
        path.write_text(generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


async def serve(settings: Settings, ui_url: str | None, database: str) -> None:
    db.migrate(settings.database_url)
    async with open_runtime(settings, process="dev stack", metrics="worker") as rt, gauges.refreshing(rt):
        await projects.ensure(rt.pool, DEFAULT_PROJECT_ID, "Default project", settings.dev_project_token)
        await api_keys.ensure(rt.pool, settings.dev_api_key.get_secret_value(), label="make dev")
        await ensure_reconciliation(rt.client, settings)
        worker = build_worker(rt)
        runner = web.AppRunner(create_app(settings, rt), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        print(
            f"\nBatch exports is running.\n"
            f"  API:          {api_url}/api/environments/1/batch_exports/\n"
            f"  Capture:      {api_url}/batch/\n"
            f"  Temporal UI:  {ui_url or '(external cluster)'}\n"
            f"  Database:     {database}\n"
            f"  API key:      {settings.dev_api_key.get_secret_value()}   (Authorization: Bearer ...)\n"
            f"  Project token: {settings.dev_project_token}   (project 1, 'Default project')\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            await stop.wait()
            print("Stopping...", flush=True)
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    updates: dict[str, object] = {"data_dir": data_dir}
    if "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS" not in os.environ:
        updates["allow_private_destinations"] = True  # on one machine, everything is local
    if settings.encryption_key is None:
        updates["encryption_key"] = SecretStr(_encryption_key(data_dir))
    database = "BATCH_EXPORTS_DATABASE_URL"
    with contextlib.ExitStack() as stack:
        if "BATCH_EXPORTS_DATABASE_URL" not in os.environ:
            print(f"Starting PostgreSQL on port {settings.postgres_port} ...", flush=True)
            postgres = stack.enter_context(EmbeddedPostgres(data_dir / "postgres", settings.postgres_port).start())
            updates["database_url"] = postgres.create_database("batch_exports")
            shown = postgres.dsn("batch_exports").replace(f":{postgres.password}@", "@")
            database = f"{shown} (its password is in {postgres.password_file})"
        ui_url = None
        if "TEMPORAL_ADDRESS" not in os.environ:
            print(f"Starting the Temporal dev server on port {settings.temporal_port} ...", flush=True)
            server = TemporalDevServer(data_dir / "temporal.db", settings.temporal_port, settings.temporal_ui_port)
            stack.enter_context(server.start())
            os.environ["TEMPORAL_ADDRESS"] = server.address
            ui_url = server.ui_url
        settings = settings.model_copy(update=updates)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, ui_url, database))
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
