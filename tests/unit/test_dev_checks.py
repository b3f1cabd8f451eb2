"""What `make dev` checks before it starts anything: busy or shared ports named with their settings, and only
its own leftovers stopped (a pid file naming someone else's process leaves that process alone)."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.dev_checks import NotStarted, Port, check_ports, claim, stop_leftovers
from entrypoints.embedded import LOOPBACK, free_port


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def sleeper(started: list[subprocess.Popen[bytes]], *marks: str) -> subprocess.Popen[bytes]:
    """A process whose command line holds `marks`, as a server's holds its data directory."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marks])
    started.append(process)
    return process


def test_a_busy_port_and_a_shared_one_are_named_with_their_settings() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(NotStarted, match=rf"port {busy} \(BATCH_EXPORTS_API_PORT\) is already in use"):
            check_ports([Port("BATCH_EXPORTS_TEMPORAL_PORT", LOOPBACK, free_port()),
                         Port("BATCH_EXPORTS_API_PORT", LOOPBACK, busy)])  # fmt: skip
    shared = free_port()
    with pytest.raises(NotStarted, match="BATCH_EXPORTS_POSTGRES_PORT and BATCH_EXPORTS_API_PORT are both"):
        check_ports([Port("BATCH_EXPORTS_API_PORT", LOOPBACK, shared),
                     Port("BATCH_EXPORTS_POSTGRES_PORT", LOOPBACK, shared)])  # fmt: skip
    check_ports([Port("BATCH_EXPORTS_API_PORT", LOOPBACK, free_port())])


def test_only_servers_of_this_data_directory_are_stopped(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "postgres").mkdir()
    stranger = sleeper(sleepers, "some other server")
    (tmp_path / "postgres" / "postmaster.pid").write_text(f"{stranger.pid}\n{tmp_path}/postgres\n")
    left = sleeper(sleepers, "-D", str((tmp_path / "postgres").resolve()))
    (tmp_path / "temporal.pid").write_text(f"{left.pid}\n")  # a pid file naming the wrong server: left alone
    assert stop_leftovers(tmp_path) == []
    assert stranger.poll() is None and left.poll() is None

    (tmp_path / "postgres" / "postmaster.pid").write_text(f"{left.pid}\n")
    temporal = sleeper(sleepers, "--db-filename", str((tmp_path / "temporal.db").resolve()))
    (tmp_path / "temporal.pid").write_text(f"{temporal.pid}\n")
    assert stop_leftovers(tmp_path) == [f"PostgreSQL (pid {left.pid})", f"the Temporal dev server (pid {temporal.pid})"]
    assert left.wait(5) is not None and temporal.wait(5) is not None and stranger.poll() is None
    assert not (tmp_path / "temporal.pid").exists()


def test_a_second_launcher_on_the_same_data_is_refused(tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]) -> None:
    first = sleeper(sleepers, "-m", "entrypoints.dev")
    (tmp_path / "dev.pid").write_text(f"{first.pid}\n")
    with pytest.raises(NotStarted, match=rf"already runs on {tmp_path} \(pid {first.pid}\)"):
        claim(tmp_path)
    first.kill()
    first.wait()
    assert claim(tmp_path).read_text().strip().isdigit()  # a dead launcher's pid file is taken over
