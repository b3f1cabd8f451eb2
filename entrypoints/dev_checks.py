"""What `make dev` makes sure of before it starts anything: no other `make dev` on its data, no server left
running by one that was killed, and every port it is about to open free.

A `make dev` killed with SIGKILL cannot stop PostgreSQL and Temporal (each runs in a session of its own, so a
Ctrl-C reaches only the launcher, which stops them in order). Their pid files under the data directory
(`postgres/postmaster.pid`, `temporal.pid`) name them; the next `make dev` stops them when the process is
still the one the file names (its command line holds that data directory), then starts its own.
"""

import contextlib
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil


class NotStarted(Exception):
    """Why `make dev` starts nothing: said to the person who typed it, without a traceback."""


@dataclass(frozen=True)
class Port:
    setting: str
    host: str
    port: int


def claim(data_dir: Path) -> Path:
    """Record this launcher in `dev.pid`; refuse when another live `make dev` holds the data directory."""
    pid_file = data_dir / "dev.pid"
    other = _live(pid_file, "entrypoints.dev", "batch-exports-dev")  # `make dev`, or its console script
    if other is not None and other.pid != os.getpid():
        raise NotStarted(
            f"`make dev` already runs on {data_dir} (pid {other.pid}): stop it first (Ctrl-C in its terminal), "
            "or give this one another BATCH_EXPORTS_DATA_DIR"
        )
    pid_file.write_text(f"{os.getpid()}\n")
    return pid_file


def stop_leftovers(data_dir: Path, timeout: float = 20) -> list[str]:
    """Stop the PostgreSQL and Temporal servers a killed `make dev` left on this data directory; says which."""
    stopped = []
    for what, pid_file, mark in (
        ("PostgreSQL", data_dir / "postgres" / "postmaster.pid", str((data_dir / "postgres").resolve())),
        ("the Temporal dev server", data_dir / "temporal.pid", str((data_dir / "temporal.db").resolve())),
    ):
        process = _live(pid_file, mark)
        if process is None:
            continue
        print(f"Stopping {what} left running by an earlier `make dev` (pid {process.pid}) ...", flush=True)
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGINT)  # both shut down cleanly and fast on SIGINT
            try:
                process.wait(timeout)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if pid_file.name == "temporal.pid":
            pid_file.unlink(missing_ok=True)
        stopped.append(f"{what} (pid {process.pid})")
    return stopped


def _live(pid_file: Path, *marks: str) -> psutil.Process | None:
    """The process `pid_file` names, if it is alive and its command line holds one of `marks` (not a reused
    pid)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or not any(m in arg for m in marks for arg in process.cmdline()):
            return None
        return process
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def check_ports(ports: list[Port]) -> None:
    """Every port free, and no two settings on one port; otherwise the busy one and its setting, named."""
    seen: dict[int, str] = {}
    for port in ports:
        if port.port in seen:
            raise NotStarted(f"{port.setting} and {seen[port.port]} are both {port.port}: give each its own port")
        seen[port.port] = port.setting
        if not _free(port):
            raise NotStarted(
                f"port {port.port} ({port.setting}) is already in use on {port.host}: stop what listens there, "
                f"or set {port.setting} to a free port"
            )


def _free(port: Port) -> bool:
    family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As the servers bind: a port whose last connections linger in TIME_WAIT is free, a listener's is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((port.host, port.port))
        except OSError:
            return False
    return True
