"""Workers and gateways as the separate processes they are in production (`python worker.py`, `python -m api`),
on the test stack's database and Temporal server, each with its own log file."""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batch_exports.settings import Settings
from entrypoints.embedded import LOOPBACK, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def environment(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment of a worker or gateway process with the stack's settings, and `overrides` (setting names)."""
    assert settings.encryption_key is not None
    values: dict[str, object] = {
        "database_url": settings.database_url,
        "encryption_key": settings.encryption_key.get_secret_value(),
        "task_queue": settings.task_queue,
        "settle_delay_seconds": settings.settle_delay_seconds,
        "jitter_enabled": settings.jitter_enabled,
        "allow_private_destinations": settings.allow_private_destinations,
        "file_destination_root": settings.exports_root,
        "backfill_concurrency": settings.backfill_concurrency,
        "export_retry_initial_seconds": settings.export_retry_initial_seconds,
        "reconcile_every_seconds": 3600,
        "worker_metrics_port": 0,
        "api_metrics_port": 0,
        **({"bigquery_url": settings.bigquery_url} if settings.bigquery_url else {}),
        **overrides,
    }
    return {**os.environ, **{f"BATCH_EXPORTS_{name.upper()}": str(value) for name, value in values.items()}}


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path, **overrides: object) -> Iterator[subprocess.Popen[bytes]]:
    """`python worker.py`, killed (if still running) when the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=environment(settings, **overrides),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        _stop(process)


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def gateway_process(settings: Settings, log: Path, **overrides: object) -> Iterator[Gateway]:
    """`python -m api` on a free loopback port, stopped (if still running) when the block ends."""
    port = free_port()
    env = environment(settings, api_host=LOOPBACK, api_port=port, **overrides)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, process, "the gateway", log)
        yield Gateway(f"http://{LOOPBACK}:{port}", process)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
