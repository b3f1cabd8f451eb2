"""`batch-exports`, the installed console script, against the real stack: every command, the progress of a
backfill as plain lines off a terminal, the coverage strip's cells as the runs say, errors in the API's words
with exit codes a script can tell apart."""

import asyncio
import json
import re
import shlex
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.intervals import Interval, IntervalSpec, boundaries, latest_boundary
from tests.support.destinations import postgres_database
from tests.support.dev_stack import clean_environment
from tests.support.helpers import create_export, insert_events, later_boundary, runs_until, start_run
from tests.support.receiver import running_receiver
from tests.support.stack import API_KEY, Project

CLI = str(Path(sys.executable).parent / "batch-exports")
FIVE_MINUTES = timedelta(minutes=5)


async def be(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`batch-exports ARGS` in a shell that names the test's gateway, key and project (no .data/env here)."""
    return await be_in(project, [CLI, *args])


def cli_environment(project: Project) -> dict[str, str]:
    """A shell that names the test's gateway, key and project (no .data/env here)."""
    return clean_environment() | {
        "BATCH_EXPORTS_API_URL": project.stack.base_url,
        "BATCH_EXPORTS_API_KEY": API_KEY,
        "BATCH_EXPORTS_PROJECT": str(project.id),
        "COLUMNS": "160",
    }


async def be_in(project: Project, command: list[str]) -> subprocess.CompletedProcess[str]:
    env = cli_environment(project)
    return await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=Path.cwd().root, capture_output=True, text=True, timeout=120
    )


async def as_json(project: Project, *args: str) -> Any:
    ran = await be(project, "--output", "json", *args)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


async def test_exports_commands_and_the_apis_own_words(project: Project) -> None:
    made = await as_json(project, "exports", "create", "--name", "cli made", "--interval", "day",
                         "--destination", "NoOp", "--paused")  # fmt: skip
    assert made["name"] == "cli made" and made["paused"]
    listed = await be(project, "exports", "list")
    row = next(line for line in listed.stdout.splitlines() if made["id"] in line)
    assert [cell.strip() for cell in row.split("│")] == [made["id"], "cli made", "day", "NoOp", "True"]
    assert (await as_json(project, "exports", "get", made["id"]))["id"] == made["id"]
    shown = (await be(project, "exports", "get", made["id"])).stdout
    assert re.search(r"name\s+│ cli made", shown) and "latest runs (0):" in shown, shown
    assert (await as_json(project, "exports", "unpause", made["id"]))["paused"] is False
    assert (await as_json(project, "exports", "pause", made["id"]))["paused"] is True
    bad = await be(project, "exports", "create", "--name", "x", "--interval", "fortnight", "--destination", "NoOp")
    assert bad.returncode == 5 and bad.stderr.startswith("Error: 400: ") and "(interval)" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    deleted = await be(project, "exports", "delete", made["id"])
    assert deleted.returncode == 0 and f"deleted {made['id']}" in deleted.stdout
    gone = await be(project, "exports", "get", made["id"])
    assert gone.returncode == 3 and gone.stderr.startswith("Error: 404: "), gone.stderr
    refused = await be(project, "--api-key", "phx_wrong", "exports", "list")
    assert refused.returncode == 4 and "401" in refused.stderr
    nobody = await be(project, "--api-url", "http://127.0.0.1:9", "exports", "list")
    assert nobody.returncode == 7 and "make dev" in nobody.stderr and "Traceback" not in nobody.stderr


async def test_runs_backfills_logs_and_the_coverage_strip(project: Project) -> None:
    config, _ = await postgres_database(project)
    export = await as_json(project, "exports", "create", "--name", f"cli-{project.id}", "--interval",
                           "every 5 minutes", "--destination", "Postgres", "--config", json.dumps(config),
                           "--paused")  # fmt: skip
    spec = IntervalSpec(Interval.EVERY_5_MINUTES)
    ends = list(boundaries(spec, datetime.now(UTC) - 6 * FIVE_MINUTES, datetime.now(UTC)))[-6:]
    await insert_events(project.stack, project.id, [end - timedelta(minutes=m) for end in ends[1:3] for m in (1, 2)])

    # A backfill of two intervals, watched off a terminal: plain progress lines, the last one complete.
    made = await as_json(project, "backfills", "create", export["id"], "--start", ends[0].isoformat(),
                         "--end", ends[2].isoformat())  # fmt: skip
    watched = await be(project, "backfills", "watch", export["id"], made["backfill_id"], "--every", "0.2")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    pattern = (r"\d/2 intervals done(, \d running)?(, \d waiting)?, \d failed, [\d,]+ records, [\d,]+ records/s, "
               r"(\?|\d+m\d\ds) left, \w+")  # fmt: skip
    assert lines and all(re.fullmatch(pattern, line) for line in lines), lines
    assert lines[-1].startswith("2/2 intervals done, 0 failed, 4 records") and lines[-1].endswith("Completed")
    # On a terminal (a pseudo-terminal from `script`), the same reading as a bar.
    command = shlex.join([CLI, "backfills", "watch", export["id"], made["backfill_id"]])
    barred = await be_in(project, ["script", "-qec", command, "/dev/null"])
    assert barred.returncode == 0, barred.stdout
    assert "\x1b[" in barred.stdout and "━" in barred.stdout and "100%" in barred.stdout, barred.stdout
    assert "2/2 intervals done, 0 failed, 4 records" in barred.stdout
    backfills = await be(project, "backfills", "list", export["id"])
    row = next(line for line in backfills.stdout.splitlines() if made["backfill_id"] in line)
    assert [cell.strip() for cell in row.split("│")][3:] == ["Completed", "2/2", "4"], backfills.stdout
    ended = await be(project, "backfills", "cancel", export["id"], made["backfill_id"])
    assert ended.returncode == 5 and "Cannot cancel a backfill" in ended.stderr, ended.stderr

    # (Two first writes to a new Postgres table can race on creating it: the loser is FailedRetryable, and its
    # retry completes. That is the destination's, not the CLI's: only the completed runs are counted here.)
    runs = [r for r in await as_json(project, "runs", "list", export["id"]) if r["status"] == "Completed"]
    assert sorted(r["data_interval_end"] for r in runs) == [f"{end:%Y-%m-%dT%H:%M:%SZ}" for end in ends[1:3]]
    shown = (await be(project, "exports", "get", export["id"])).stdout  # its latest runs, one row each
    assert all(re.search(rf"{r['id']}\s+│ {r['data_interval_start']}", shown) for r in runs), shown
    one = await as_json(project, "runs", "get", export["id"], runs[0]["id"])
    assert one["id"] == runs[0]["id"] and one["records_completed"] == 2
    cancelled = await be(project, "runs", "cancel", export["id"], runs[0]["id"])
    assert cancelled.returncode == 5 and "Cannot cancel a run that is in 'Completed' status" in cancelled.stderr
    retried = await as_json(project, "runs", "retry", export["id"], runs[0]["id"])
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs].count("Completed") == 3, within=60)
    assert uuid.UUID(retried["backfill_id"])

    # The third interval fails (a wrong password), then the export is paused as the fifth one ended.
    wrong = {"destination": {"type": "Postgres", "config": {"password": "wrong"}}}
    status, _ = await project.request("PATCH", f"batch_exports/{export['id']}/", json=wrong)
    assert status == 200
    await start_run(project.stack, export, start=ends[2], end=ends[3])
    await runs_until(project, export["id"], lambda rs: any(r["status"] == "Failed" for r in rs), within=60)
    await be(project, "exports", "unpause", export["id"])
    await be(project, "exports", "pause", export["id"])
    paused_at = ends[4] + timedelta(seconds=1)
    await project.stack.pool.execute(
        "UPDATE batch_exports SET last_paused_at = $2 WHERE id = $1", uuid.UUID(export["id"]), paused_at
    )
    strip = await as_json(project, "coverage", export["id"], "--since", "30m")
    all_runs = await as_json(project, "runs", "list", export["id"])
    for cell in strip["cells"]:
        end = datetime.fromisoformat(cell["end"])
        of_cell = [r for r in all_runs if datetime.fromisoformat(r["data_interval_end"]) == end]
        completed = [r["id"] for r in of_cell if r["status"] == "Completed"]
        if completed:
            expected, run = "exported", completed
        elif of_cell:
            expected, run = "failed", [r["id"] for r in of_cell]
        else:
            expected, run = ("paused" if end > paused_at else "missing"), [None]
        assert cell["status"] == expected and cell["run"] in run, (cell, of_cell)
    seen = {cell["status"] for cell in strip["cells"]}
    assert {"exported", "failed", "paused"} <= seen, strip
    # For people: one glyph per cell, in order, and a legend that counts them.
    drawn = await be(project, "coverage", export["id"], "--since", "30m")
    glyphs = {"exported": "█", "failed": "✕", "running": "▶", "missing": "·", "paused": "‖"}
    assert "".join(glyphs[c["status"]] for c in strip["cells"]) in drawn.stdout, drawn.stdout
    assert f"exported {sum(c['status'] == 'exported' for c in strip['cells'])}" in drawn.stdout

    # Logs: the failed run's error, and --follow prints what comes later.
    logged = await be(project, "logs", export["id"], "--level", "ERROR")
    assert logged.returncode == 0 and "ERROR" in logged.stdout, logged.stdout + logged.stderr
    follow = await asyncio.create_subprocess_exec(
        CLI, "logs", export["id"], "--follow", "--every", "0.2", "--limit", "1", env=cli_environment(project),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        first = await asyncio.wait_for(follow.stdout.readline(), 30)  # the newest entry first
        await start_run(project.stack, export, start=ends[3], end=ends[4])  # it fails too, and says so
        later = await asyncio.wait_for(follow.stdout.readline(), 60)
        assert later != first and ends[4].strftime("%H:%M") in later.decode(), (first, later)
    finally:
        follow.terminate()
        await follow.wait()


async def test_cancels_that_stop_a_run_and_a_backfill(project: Project) -> None:
    export = await create_export(project, {"name": f"cancel-{project.id}", "interval": "hour",
                                           "destination": {"type": "NoOp"}})  # fmt: skip
    await start_run(project.stack, export, end=later_boundary())  # waits for its interval to end
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    assert await as_json(project, "runs", "cancel", export["id"], run["id"]) == {"cancelled": True}
    assert (await as_json(project, "runs", "get", export["id"], run["id"]))["status"] == "Cancelled"

    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver:
        receiver.open.clear()  # it holds every batch: the backfill's run stays in the middle of its write
        config = json.dumps({"url": receiver.url, "token": receiver.token})
        held = await as_json(project, "exports", "create", "--name", f"held-{project.id}", "--interval", "hour",
                             "--destination", "HTTP", "--config", config, "--paused")  # fmt: skip
        end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
        await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
        made = await as_json(project, "backfills", "create", held["id"], "--start",
                             (end - timedelta(hours=1)).isoformat(), "--end", end.isoformat())  # fmt: skip
        await runs_until(project, held["id"], lambda rs: [r["status"] for r in rs] == ["Running"])
        # While its run exports, the watch says so: "0/1 intervals done" alone would not tell it from a stuck one.
        watching = await asyncio.create_subprocess_exec(
            CLI, "backfills", "watch", held["id"], made["backfill_id"], env=cli_environment(project),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert watching.stdout is not None
            first = (await asyncio.wait_for(watching.stdout.readline(), 30)).decode()
        finally:
            watching.terminate()
            await watching.wait()
        assert first.startswith("0/1 intervals done, 1 running, 0 failed, 0 records"), first
        cancelled = await as_json(project, "backfills", "cancel", held["id"], made["backfill_id"])
        assert cancelled["cancelled"] is True
        watched = await be(project, "backfills", "watch", held["id"], made["backfill_id"])
        assert watched.returncode == 1 and "the backfill ended Cancelled" in watched.stderr, watched.stderr
        assert watched.stdout.splitlines()[-1].endswith("Cancelled")
