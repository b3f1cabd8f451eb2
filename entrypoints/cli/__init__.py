"""`batch-exports`: the HTTP API from a terminal, for people (tables, a progress bar, a coverage strip) and
scripts (`--output json`, exit codes that say what went wrong: see `entrypoints.cli.client`).

It finds a running `make dev` by `.data/env`; elsewhere `--api-url`/`--api-key` or `BATCH_EXPORTS_API_URL`/
`BATCH_EXPORTS_API_KEY` say where the API is.
"""

import json
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from contracts.intervals import latest_boundary
from entrypoints import stack_env
from entrypoints.cli import coverage as strips
from entrypoints.cli.client import UNAVAILABLE, Api, ApiError
from entrypoints.cli.progress import watch

# Off a terminal (a pipe, a file) rich would fold tables at 80 columns, cutting ids: lines as long as they are.
console = Console() if sys.stdout.isatty() else Console(width=max(int(os.environ.get("COLUMNS", "0") or 0), 240))
EXPORT_COLUMNS = ("id", "name", "interval", "destination", "paused")
RUN_COLUMNS = ("id", "data_interval_start", "data_interval_end", "status", "records_completed", "backfill")
BACKFILL_COLUMNS = ("id", "start_at", "end_at", "status", "progress", "total_records_count")


class Context:
    def __init__(self, url: str | None, key: str | None, project: int, output: str) -> None:
        self.url, self.key, self.project, self.output = url, key, project, output

    @property
    def api(self) -> Api:
        if not self.url or not self.key:
            missing = stack_env.API_URL if not self.url else stack_env.API_KEY
            raise ApiError(
                f"{missing} is not set and {stack_env.env_path()} names no stack.\n"
                "Start the stack with `make dev` (it writes .data/env, which this tool reads), or set "
                f"{stack_env.API_URL} and {stack_env.API_KEY} (or pass --api-url and --api-key).",
                UNAVAILABLE,
            )
        return Api(self.url, self.key, self.project)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        if "type" in value:
            return str(value["type"])
        if "finished_runs" in value:
            return f"{value['finished_runs']}/{value['total_runs']}"
    return "" if value is None else str(value)


def show(ctx: Context, data: Any, columns: Iterable[str] = ()) -> None:
    """JSON for scripts; for people a table of `columns` (a list) or of fields (one object)."""
    if ctx.output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(show_edge=False, header_style="bold")
    if isinstance(data, list):
        for column in columns:
            table.add_column(column, no_wrap=column == "id")
        for row in data:
            table.add_row(*(_cell(row.get(column)) for column in columns))
    elif isinstance(data, dict):
        table.add_column("field")
        table.add_column("value")
        for name, value in data.items():
            table.add_row(name, _cell(value) if not isinstance(value, list | dict) else json.dumps(value))
    console.print(table)


def since_arg(raw: str) -> timedelta:
    found = re.fullmatch(r"(\d+)([mhdw])", raw.strip())
    if not found:
        raise click.BadParameter(f"'{raw}': a number and a unit, m, h, d or w (7d, 12h, 30m)")
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[found.group(2)]
    return timedelta(**{unit: int(found.group(1))})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-url", envvar=stack_env.API_URL, help="The gateway, e.g. http://127.0.0.1:8000.")
@click.option("--api-key", envvar=stack_env.API_KEY, help="A personal API key (phx_...).")
@click.option("--project", envvar="BATCH_EXPORTS_PROJECT", type=int, default=1, show_default=True)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None, project: int, output: str) -> None:
    """Batch exports from the terminal: exports, runs, backfills, logs and coverage."""
    ctx.obj = Context(api_url, api_key, project, output)


pass_context = click.make_pass_decorator(Context)


@cli.group()
def exports() -> None:
    """List, read, create, pause, unpause and delete exports."""


@exports.command("list")
@pass_context
def exports_list(ctx: Context) -> None:
    show(ctx, list(ctx.api.pages("")), EXPORT_COLUMNS)


@exports.command("get")
@click.argument("export_id")
@pass_context
def exports_get(ctx: Context, export_id: str) -> None:
    """The export's fields, then its latest runs as a table of their own."""
    export = ctx.api("GET", f"{export_id}/")
    if ctx.output == "json":
        show(ctx, export)
        return
    latest = export.pop("latest_runs", [])
    show(ctx, export)
    console.print(f"latest runs ({len(latest)}):")
    show(ctx, latest, RUN_COLUMNS)


@exports.command("create")
@click.option("--name", required=True)
@click.option("--interval", required=True, help="hour, day, week, every 5 minutes, every 15 minutes")
@click.option("--destination", "destination_type", required=True, help="File, S3, Postgres, DeltaLake, ...")
@click.option("--config", default="{}", help="The destination's config, as JSON.")
@click.option("--paused", is_flag=True)
@click.option("--set", "fields", multiple=True, help="Another field of the body, NAME=JSON (repeatable).")
@pass_context
def exports_create(ctx: Context, name: str, interval: str, destination_type: str, config: str, paused: bool,
                   fields: tuple[str, ...]) -> None:  # fmt: skip
    body: dict[str, Any] = {"name": name, "interval": interval, "paused": paused,
                            "destination": {"type": destination_type, "config": _json("--config", config)}}  # fmt: skip
    for field in fields:
        key, _, value = field.partition("=")
        body[key] = _json(f"--set {key}", value)
    show(ctx, ctx.api("POST", "", body))


def _json(option: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint=option) from None


@exports.command("pause")
@click.argument("export_id")
@pass_context
def exports_pause(ctx: Context, export_id: str) -> None:
    show(ctx, ctx.api("POST", f"{export_id}/pause/", {}))


@exports.command("unpause")
@click.argument("export_id")
@click.option("--backfill", is_flag=True, help="Also export the intervals the pause skipped.")
@pass_context
def exports_unpause(ctx: Context, export_id: str, backfill: bool) -> None:
    show(ctx, ctx.api("POST", f"{export_id}/unpause/", {"backfill": backfill}))


@exports.command("delete")
@click.argument("export_id")
@pass_context
def exports_delete(ctx: Context, export_id: str) -> None:
    ctx.api("DELETE", f"{export_id}/")
    if ctx.output == "json":
        click.echo(json.dumps({"deleted": export_id}))
    else:
        console.print(f"deleted {export_id}")


@cli.group()
def runs() -> None:
    """List, read, cancel and retry an export's runs."""


@runs.command("list")
@click.argument("export_id")
@click.option("--status", multiple=True, help="Only runs in this status (repeatable).")
@click.option("--limit", default=20, show_default=True, help="The newest this many.")
@pass_context
def runs_list(ctx: Context, export_id: str, status: tuple[str, ...], limit: int) -> None:
    found = []
    for run in ctx.api.pages(f"{export_id}/runs/", {"status": list(status)} if status else None):
        found.append(run)
        if len(found) >= limit:
            break
    show(ctx, found, RUN_COLUMNS)


def _run_command(name: str, method: str, suffix: str, doc: str) -> None:
    @runs.command(name, help=doc)
    @click.argument("export_id")
    @click.argument("run_id")
    @pass_context
    def command(ctx: Context, export_id: str, run_id: str) -> None:
        show(ctx, ctx.api(method, f"{export_id}/runs/{run_id}/{suffix}", {} if method == "POST" else None))


_run_command("get", "GET", "", "Read one run.")
_run_command("cancel", "POST", "cancel/", "Cancel a run: it stops writing and ends Cancelled.")
_run_command("retry", "POST", "retry/", "Export a run's interval again (a backfill of that interval).")


@cli.group()
def backfills() -> None:
    """Create, list, cancel and watch an export's backfills."""


@backfills.command("create")
@click.argument("export_id")
@click.option("--start", "start_at", required=True, help="ISO 8601, e.g. 2026-01-01T00:00:00Z")
@click.option("--end", "end_at", required=True, help="ISO 8601; not in the future")
@click.option("--watch", "then_watch", is_flag=True, help="Then follow it as `backfills watch` does.")
@pass_context
def backfills_create(ctx: Context, export_id: str, start_at: str, end_at: str, then_watch: bool) -> None:
    made = ctx.api("POST", f"{export_id}/backfills/", {"start_at": start_at, "end_at": end_at})
    show(ctx, made)
    if then_watch:
        _watch(ctx, export_id, made["backfill_id"])


@backfills.command("list")
@click.argument("export_id")
@pass_context
def backfills_list(ctx: Context, export_id: str) -> None:
    show(ctx, list(ctx.api.pages(f"{export_id}/backfills/")), BACKFILL_COLUMNS)


@backfills.command("cancel")
@click.argument("export_id")
@click.argument("backfill_id")
@pass_context
def backfills_cancel(ctx: Context, export_id: str, backfill_id: str) -> None:
    show(ctx, ctx.api("POST", f"{export_id}/backfills/{backfill_id}/cancel/", {}))


@backfills.command("watch")
@click.argument("export_id")
@click.argument("backfill_id")
@click.option("--every", default=1.0, show_default=True, help="Seconds between readings.")
@pass_context
def backfills_watch(ctx: Context, export_id: str, backfill_id: str, every: float) -> None:
    """Follow a backfill to its end: intervals done, running, waiting and failed, records, rate, time left.

    A live bar on a terminal; elsewhere (a pipe, CI) one plain line per change. Exits 0 when it completed, 1
    when it ended otherwise."""
    _watch(ctx, export_id, backfill_id, every)


def _watch(ctx: Context, export_id: str, backfill_id: str, every: float = 1.0) -> None:
    reading = watch(ctx.api, export_id, backfill_id, console, every)
    if reading.status != "Completed":
        raise ApiError(f"the backfill ended {reading.status}", 1)


@cli.command()
@click.argument("export_id")
@click.option("--run", "run_id", help="Only this run's logs.")
@click.option("--level", multiple=True, help="DEBUG, INFO, WARNING, ERROR (repeatable).")
@click.option("--limit", default=50, show_default=True, help="How many of the newest to show first.")
@click.option("--follow", "-f", is_flag=True, help="Then print new entries as they come, until Ctrl-C.")
@click.option("--every", default=1.0, help="Seconds between polls with --follow.")
@pass_context
def logs(ctx: Context, export_id: str, run_id: str | None, level: tuple[str, ...], limit: int, follow: bool,
         every: float) -> None:  # fmt: skip
    """An export's (or a run's) log entries, oldest first."""
    path = f"{export_id}/runs/{run_id}/logs/" if run_id else f"{export_id}/logs/"
    seen: set[tuple[str, str, str | None]] = set()
    params: dict[str, Any] = {"limit": limit, **({"level": ",".join(level)} if level else {})}
    while True:
        entries = ctx.api("GET", path, params=params)["results"]
        for entry in reversed(entries):
            key = (entry["timestamp"], entry["message"], entry.get("instance_id"))
            if key in seen:
                continue
            seen.add(key)
            if ctx.output == "json":
                click.echo(json.dumps(entry))
            else:
                click.echo(f"{entry['timestamp']}  {entry['level']:<7}  {entry['message']}")
            params["after"] = entry["timestamp"]
        sys.stdout.flush()
        if not follow:
            return
        params["limit"] = 500
        time.sleep(every)


@cli.command("coverage")
@click.argument("export_id")
@click.option("--since", default="7d", show_default=True, help="How far back: 30m, 12h, 7d, 2w.")
@pass_context
def coverage_command(ctx: Context, export_id: str, since: str) -> None:
    """The export's intervals as a strip of cells, one per interval, oldest first: exported, failed, running,
    missing or paused."""
    window = since_arg(since)
    api = ctx.api
    export = api("GET", f"{export_id}/")
    until = latest_boundary(strips.spec_of(export), datetime.now(UTC))
    try:
        spans = strips.intervals(export, until - window, until)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    start = spans[0][0].isoformat() if spans else until.isoformat()
    found = list(api.pages(f"{export_id}/runs/", {"start": start, "end": until.isoformat()}))
    strip = strips.cells(export, spans, found)
    if ctx.output == "json":
        cells = [{"start": c.start.isoformat(), "end": c.end.isoformat(), "status": c.status, "run": c.run_id}
                 for c in strip]  # fmt: skip
        click.echo(json.dumps({"export": export_id, "interval": export["interval"], "cells": cells}, indent=2))
        return
    console.print(f"{export['name']} ({export['interval']}), {len(strip)} intervals "
                  f"{start} .. {until.isoformat()}, oldest first:")  # fmt: skip
    console.print(strips.strip_text(strip), soft_wrap=False)
    console.print(strips.legend(strip))


def main() -> None:
    stack_env.load()
    try:
        cli.main(standalone_mode=False)
    except ApiError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
