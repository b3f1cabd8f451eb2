"""What operators see, from a worker and a gateway running as their own processes: a real Prometheus scrapes
both, and every series the Grafana dashboard and the alert rules use exists; the rules load and evaluate
without error, and `promtool check rules` passes; the worker's JSON log lines name the export, run and workflow
they concern."""

import asyncio
import json
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from entrypoints.embedded import LOOPBACK, free_port, wait_for_port
from tests.support.helpers import event, eventually, start_run
from tests.support.processes import ROOT, gateway_process, worker_process
from tests.support.prometheus import Prometheus, binaries
from tests.support.stack import API_KEY, Project

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "batch-exports.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
SERIES = re.compile(r"\b(?:batch_exports|temporal)_[a-z0-9_]+\b")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return found + [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def series_used() -> set[str]:
    names = {name for expr in expressions() for name in SERIES.findall(expr)}
    return names | ({"up"} if any(re.search(r"\bup\{", expr) for expr in expressions()) else set())


def test_promtool_checks_the_rules() -> None:
    _, promtool = binaries()
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in checked.stdout


async def test_every_series_the_dashboard_and_the_rules_use_exists(project: Project, work_dir: Path) -> None:
    used = series_used()
    assert "up" in used and len(used) >= 19, used  # the parse found the dashboard's and the rules' series
    settings = project.stack.settings
    scratch = work_dir / f"observed-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    queue, worker_port, gateway_port = f"observed-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    common = {"task_queue": queue, "metrics_host": LOOPBACK, "log_format": "json"}
    with (
        worker_process(
            settings, scratch / "worker.log", worker_metrics_port=worker_port, metrics_refresh_seconds=1, **common
        ) as worker,
        gateway_process(settings, scratch / "gateway.log", api_metrics_port=gateway_port, **common) as gateway,
    ):
        wait_for_port(worker_port, worker, "the worker's metrics endpoint", scratch / "worker.log")
        targets = {
            "batch-exports-worker": [f"{LOOPBACK}:{worker_port}"],
            "batch-exports-api": [f"{LOOPBACK}:{gateway_port}"],
        }
        with Prometheus(scratch / "prometheus", targets, [RULES]).start() as prometheus:
            export = await _traffic(project, gateway.url, queue)

            def missing() -> list[str]:
                return [name for name in sorted(used) if not prometheus.api("/api/v1/series", **{"match[]": name})]

            async def complete() -> bool:
                return not missing()

            try:
                await eventually(complete, within=60, every=1)
            except AssertionError:
                raise AssertionError(f"series missing from Prometheus: {missing()}") from None

            async def evaluated() -> list[dict[str, Any]] | None:
                rules = [rule for group in prometheus.api("/api/v1/rules")["groups"] for rule in group["rules"]]
                return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

            rules = await eventually(evaluated, within=30, every=1)
            assert {rule["name"] for rule in rules} >= {
                "BatchExportLagging", "BatchExportWorkersAbsent", "BatchExportMissingIntervals",
                "BatchExportWorkflowTasksFailing",
            }  # fmt: skip
            assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
            # With a worker up and an export just created, the rules that look for their absence and for a lag
            # find nothing now (their alerts may still be pending from before the first scrape).
            for rule in rules:
                if rule["name"] in ("BatchExportWorkersAbsent", "BatchExportLagging"):
                    assert prometheus.api("/api/v1/query", query=rule["query"])["result"] == [], rule["name"]

    lines = [json.loads(line) for line in (scratch / "worker.log").read_text().splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("batch_export_id") == export["id"] and "run_id" in line]
    assert finished, lines[-20:]
    assert all(line["workflow_id"].startswith(export["id"]) and line["workflow_run_id"] for line in finished)
    assert any(line["message"].startswith("Run Completed") for line in finished)
    gateway_lines = (scratch / "gateway.log").read_text().splitlines()
    assert all(json.loads(line) for line in gateway_lines if line.startswith("{")), gateway_lines[-5:]


async def _traffic(project: Project, base_url: str, queue: str) -> dict[str, Any]:
    """What makes every series exist: captures (accepted and rejected), a live export, a scheduled-like run and
    a backfill, all through the gateway process and run by the worker process; and an execution started by hand
    with inputs the run cannot decode, whose workflow task fails (terminated once the series are seen)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    api = f"{base_url}/api/environments/{project.id}"
    async with aiohttp.ClientSession() as http:
        batch = {"api_key": project.token, "batch": [event("observed", "user-1"), event("observed", "user-2")]}
        async with http.post(f"{base_url}/batch/", json=batch) as response:
            assert response.status == 200, await response.text()
        async with http.post(f"{base_url}/batch/", json={"api_key": "phc_wrong", "batch": batch["batch"]}) as response:
            assert response.status == 401
        body = {"name": "observed", "interval": "hour", "destination": {"type": "File", "config": {"path": queue}}}
        async with http.post(f"{api}/batch_exports/", json=body, headers=headers) as response:
            assert response.status == 201, await response.text()
            export: dict[str, Any] = await response.json()
        now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        await start_run(project.stack, export, start=now - timedelta(hours=1), end=now, task_queue=queue)
        backfill = {"start_at": (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:00:00Z")}
        backfill["end_at"] = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
        async with http.post(f"{api}/batch_exports/{export['id']}/backfills/", json=backfill, headers=headers) as r:
            assert r.status == 201, await r.text()

        async def done() -> bool:
            async with http.get(f"{api}/batch_exports/{export['id']}/runs/", headers=headers) as response:
                runs = (await response.json())["results"]
            return len(runs) == 3 and all(run["status"] == "Completed" for run in runs)

        await eventually(done, within=60, every=0.5)
        await project.stack.client.start_workflow(
            "batch-export-run", "not a run", id=f"by-hand-{queue}", task_queue=queue,
            execution_timeout=timedelta(minutes=2),  # it ends by itself
        )  # fmt: skip
        await asyncio.sleep(2)  # a refresh of the gauges and a scrape after the runs
    return export
