"""`make dev`'s launcher as a person uses it: it starts, answers, stops on Ctrl-C, and finds its data again."""

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from entrypoints import stack_env
from entrypoints.embedded import LOOPBACK, temporal_cli
from tests.support.dev_stack import PORTS, DevStack, clean_environment, get_json, post_json, typed
from tests.support.helpers import temporal_cli_run


def test_dev_starts_prints_stops_and_restarts_with_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tmp_path.chmod(0o755)
    stack = DevStack(data_dir)
    process = stack.start()
    try:
        printed = stack.output.read_text()
        assert "phc_dev_local" in printed and "source" in printed
        # The key and the database password are in .data/env, the owner's only, and on no terminal.
        env_file = data_dir / "env"
        assert env_file.stat().st_mode & 0o077 == 0
        reach = stack_env.read(env_file)
        password = (data_dir / "postgres.password").read_text().strip()
        assert reach["BATCH_EXPORTS_API_KEY"] == "phx_launcher_test"
        assert password in reach["BATCH_EXPORTS_DATABASE_URL"]
        assert reach["BATCH_EXPORTS_API_URL"] == stack.api
        assert reach["TEMPORAL_ADDRESS"] == f"{LOOPBACK}:{stack.ports['TEMPORAL']}"
        assert "phx_launcher_test" not in printed and password not in printed
        assert f"http://{LOOPBACK}:{stack.ports['TEMPORAL_UI']}" in printed
        created = post_json(
            stack.api + "/api/environments/1/batch_exports/",
            {"name": "kept", "interval": "day", "destination": {"type": "NoOp"}},
            key="phx_launcher_test",
        )
        with urllib.request.urlopen(f"http://{LOOPBACK}:{stack.ports['TEMPORAL_UI']}", timeout=5) as ui:
            assert ui.status == 200
        # The embedded PostgreSQL takes no connection without its password, kept in the data directory.
        assert (data_dir / "postgres.password").stat().st_mode & 0o077 == 0
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=LOOPBACK, port=stack.ports["POSTGRES"], user="postgres", password="", dbname="x")
    finally:
        stack.stop(process)

    # Started again from a shell that sourced .data/env: those addresses are its own, so it starts its parts.
    stack.env |= stack_env.read(data_dir / "env")
    process = stack.start()
    try:
        assert stack.output.read_text().count("Starting PostgreSQL") == 2
        assert stack.output.read_text().count("Starting the Temporal dev server") == 2
        listed = get_json(stack.api + "/api/environments/1/batch_exports/", key="phx_launcher_test")
        assert [e["id"] for e in listed["results"]] == [created["id"]]
        described = temporal_cli_run(
            "schedule", "describe", "--schedule-id", created["id"], address=f"{LOOPBACK}:{stack.ports['TEMPORAL']}"
        )
        assert "batch-export-run" in described
    finally:
        stack.stop(process)


def test_the_tools_find_make_dev_by_its_env_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (data_dir := tmp_path / ".data").mkdir()
    stack = DevStack(data_dir)
    process = stack.start()
    try:
        # As docs/api.md shows them, with no variable set: they read .data/env.
        key = typed(tmp_path, sys.executable, "-m", "entrypoints.keys", "create", "--label", "ci", "--project", "1")
        assert key.returncode == 0 and key.stdout.startswith("phx_"), key.stderr
        assert get_json(stack.api + "/api/environments/1/batch_exports/", key=key.stdout.strip())["results"] == []
        made = typed(tmp_path, sys.executable, "-m", "entrypoints.projects", "create", "--name", "Web app")
        assert made.returncode == 0 and made.stdout.split()[0] == "2", made.stderr
        # The temporal CLI, after `source .data/env`.
        listed = typed(tmp_path, "bash", "-c", f"source .data/env && {temporal_cli()} workflow list")
        assert listed.returncode == 0 and "batch-exports-reconcile" in listed.stdout, listed.stderr
    finally:
        stack.stop(process)


def _running_from(data_dir: Path) -> list[psutil.Process]:
    """Every process whose command line names a path under `data_dir`: the servers of its `make dev`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in arg for arg in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_a_killed_make_dev_leaves_servers_the_next_one_stops(tmp_path: Path) -> None:
    """Issue 21, item 14: the next `make dev` stops what a SIGKILLed one left, runs its own, and leaves nothing."""
    data_dir = (tmp_path / "data").resolve()
    data_dir.mkdir()
    tmp_path.chmod(0o755)
    stack = DevStack(data_dir)
    first = stack.start()
    # A second launcher on the same data refuses, and the first goes on.
    second = stack.launch()
    assert second.wait(30) == 1
    assert f"already runs on {data_dir} (pid {first.pid})" in stack.output.read_text()
    assert get_json(stack.api + "/_health")["status"] == "ok"
    first.kill()
    first.wait()
    left = _running_from(data_dir)
    assert {"postgres", "temporal"} <= {p.name() for p in left}, [p.cmdline()[:2] for p in left]

    process = stack.start()
    try:
        printed = stack.output.read_text()
        assert "Stopping PostgreSQL left running by an earlier `make dev`" in printed
        assert "Stopping the Temporal dev server left running by an earlier `make dev`" in printed
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in left)
        ours = {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
        assert {p.pid for p in _running_from(data_dir)} <= ours  # what answers is this launcher's own
    finally:
        stack.stop(process)
    assert _running_from(data_dir) == []


@pytest.mark.parametrize("busy", PORTS)
def test_a_busy_port_is_named_with_its_setting_before_anything_starts(tmp_path: Path, busy: str) -> None:
    stack = DevStack(tmp_path)
    with socket.socket() as taken:
        taken.bind((LOOPBACK, stack.ports[busy]))
        taken.listen()
        process = stack.launch()
        assert process.wait(60) == 1
    printed = stack.output.read_text()
    assert f"port {stack.ports[busy]} (BATCH_EXPORTS_{busy}_PORT) is already in use" in printed
    assert "Traceback" not in printed and "Starting" not in printed
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "dev.pid").exists()


def test_make_azurite_names_its_busy_port_and_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_environment() | {"BATCH_EXPORTS_AZURITE_PORT": str(port), "BATCH_EXPORTS_DATA_DIR": str(tmp_path)}
        ran = subprocess.run([sys.executable, "-m", "entrypoints.azurite"], env=env, capture_output=True, text=True)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr
    assert f"port {port} (BATCH_EXPORTS_AZURITE_PORT) is already in use" in ran.stderr
