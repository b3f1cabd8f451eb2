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
import sys
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from api.app import create_app
from batch_exports import event_loop
from batch_exports.crypto import generate_key
from batch_exports.runtime import open_runtime
from batch_exports.settings import Settings
from batch_exports.store import api_keys, db, projects
from batch_exports.telemetry import gauges
from batch_exports.temporal.schedules import ensure_reconciliation
from entrypoints import dev_checks, stack_env
from entrypoints.embedded import LOOPBACK, EmbeddedPostgres, TemporalDevServer
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


async def serve(settings: Settings, stack: dict[str, str], ui_url: str | None) -> None:
    db.migrate(settings.database_url)
    async with open_runtime(settings, process="dev stack", metrics="worker") as rt, gauges.refreshing(rt):
        await projects.ensure(rt.pool, DEFAULT_PROJECT_ID, "Default project", settings.dev_project_token)
        await api_keys.ensure(rt.pool, settings.dev_api_key.get_secret_value(), label="make dev")
        await ensure_reconciliation(rt.client, settings)
        worker = build_worker(rt)
        runner = web.AppRunner(create_app(settings, rt), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        env_file = stack_env.env_path()
        stack_env.write(env_file, stack)
        api_url = stack[stack_env.API_URL]
        print(
            f"\nBatch exports is running.\n"
            f"  Home:          {api_url}/   (API docs: {api_url}/api/docs/)\n"
            f"  API:           {api_url}/api/environments/1/batch_exports/\n"
            f"  Capture:       {api_url}/batch/   (project 1 'Default project', token {settings.dev_project_token})\n"
            f"  Temporal UI:   {ui_url or '(external cluster)'}\n"
            f"  Database:      {stack_env.without_password(settings.database_url)}\n"
            f"  Its addresses, the database password and the API key are in {env_file} (yours only):\n"
            f"  `source {env_file}` for temporal, curl and psql; the project's own tools read it themselves.\n"
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


def _forget_sourced() -> None:
    """Addresses of embedded parts that came from a sourced `.data/env` are not the user's: start them again."""
    written = stack_env.read(stack_env.env_path())
    embedded = written.get(stack_env.EMBEDDED, "").split(",")
    for part, name in (("postgres", stack_env.DATABASE_URL), ("temporal", stack_env.TEMPORAL_ADDRESS)):
        if part in embedded and name in os.environ and os.environ[name] == written.get(name):
            del os.environ[name]


def ports_to_open(settings: Settings, postgres: bool, temporal: bool) -> list[dev_checks.Port]:
    """Every port this `make dev` is about to listen on, with the setting that moves it."""
    ports = [dev_checks.Port("BATCH_EXPORTS_API_PORT", settings.api_host, settings.api_port)]
    if settings.worker_metrics_port:
        ports.append(
            dev_checks.Port("BATCH_EXPORTS_WORKER_METRICS_PORT", settings.metrics_host, settings.worker_metrics_port)
        )
    if postgres:
        ports.append(dev_checks.Port("BATCH_EXPORTS_POSTGRES_PORT", LOOPBACK, settings.postgres_port))
    if temporal:
        ports.append(dev_checks.Port("BATCH_EXPORTS_TEMPORAL_PORT", LOOPBACK, settings.temporal_port))
        ports.append(dev_checks.Port("BATCH_EXPORTS_TEMPORAL_UI_PORT", LOOPBACK, settings.temporal_ui_port))
    return ports


def _api_url(settings: Settings) -> str:
    host = {"0.0.0.0": LOOPBACK, "::": "[::1]"}.get(settings.api_host, settings.api_host)
    return f"http://{host}:{settings.api_port}"


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _forget_sourced()
    settings = Settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["BATCH_EXPORTS_DATA_DIR"] = str(data_dir)
    updates: dict[str, object] = {"data_dir": data_dir}
    if "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS" not in os.environ:
        updates["allow_private_destinations"] = True  # on one machine, everything is local
    if settings.encryption_key is None:
        updates["encryption_key"] = SecretStr(_encryption_key(data_dir))
    embed_postgres = stack_env.DATABASE_URL not in os.environ
    embed_temporal = stack_env.TEMPORAL_ADDRESS not in os.environ
    try:
        with contextlib.ExitStack() as stack:
            pid_file = dev_checks.claim(data_dir)
            stack.callback(pid_file.unlink, missing_ok=True)
            dev_checks.stop_leftovers(data_dir)
            dev_checks.check_ports(ports_to_open(settings, embed_postgres, embed_temporal))
            ui_url = None
            if embed_postgres:
                print(f"Starting PostgreSQL on port {settings.postgres_port} ...", flush=True)
                postgres = stack.enter_context(EmbeddedPostgres(data_dir / "postgres", settings.postgres_port))
                postgres.start()
                updates["database_url"] = postgres.create_database("batch_exports")
            if embed_temporal:
                print(f"Starting the Temporal dev server on port {settings.temporal_port} ...", flush=True)
                server = TemporalDevServer(data_dir / "temporal.db", settings.temporal_port, settings.temporal_ui_port)
                stack.enter_context(server).start()
                os.environ[stack_env.TEMPORAL_ADDRESS] = server.address
                ui_url = server.ui_url
                updates["temporal_ui_url"] = ui_url
            settings = settings.model_copy(update=updates)
            reach = {
                stack_env.API_URL: _api_url(settings),
                stack_env.API_KEY: settings.dev_api_key.get_secret_value(),
                stack_env.DATABASE_URL: settings.database_url,
                stack_env.TEMPORAL_ADDRESS: os.environ[stack_env.TEMPORAL_ADDRESS],
                "BATCH_EXPORTS_PROJECT_TOKEN": settings.dev_project_token,
                **({"BATCH_EXPORTS_TEMPORAL_UI_URL": ui_url} if ui_url else {}),
                stack_env.EMBEDDED: ",".join(
                    part for part, on in (("postgres", embed_postgres), ("temporal", embed_temporal)) if on
                ),
            }
            with contextlib.suppress(KeyboardInterrupt):
                event_loop.run(serve(settings, reach, ui_url), settings)
    except (dev_checks.NotStarted, RuntimeError) as e:
        print(f"make dev: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
