"""The service's metrics as Prometheus reads them (through the Temporal runtime's real exporter, on loopback),
the lag a gauge reports, and JSON log lines with the ids they concern."""

import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from batch_exports.runs.run import FinishedRun
from batch_exports.settings import Settings
from batch_exports.store.exports import Freshness
from batch_exports.telemetry import logs
from batch_exports.telemetry.gauges import lag_seconds
from batch_exports.telemetry.logs import JsonFormatter, log_context
from batch_exports.telemetry.metrics import ServiceMetrics, temporal_runtime
from contracts.intervals import Interval
from contracts.statuses import RunStatus
from contracts.workflows import ExportResult
from entrypoints.embedded import LOOPBACK, free_port

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def exposed() -> Iterator[tuple[ServiceMetrics, str]]:
    port = free_port()
    runtime = temporal_runtime(LOOPBACK, port, "BATCH_EXPORTS_WORKER_METRICS_PORT")
    assert runtime is not None
    yield ServiceMetrics(runtime.metric_meter), f"http://{LOOPBACK}:{port}/metrics"


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def run(status: RunStatus, backfill: bool = False, end: datetime = NOW - timedelta(minutes=2)) -> FinishedRun:
    return FinishedRun(status, "File", end, uuid.uuid4() if backfill else None, end)


def test_runs_records_and_delays_by_status_and_destination(exposed: tuple[ServiceMetrics, str]) -> None:
    metrics, url = exposed
    before = scrape(url)
    assert before['batch_exports_runs_finished_total{status="Failed"}'] == 0  # there before the first failure
    assert before['batch_exports_capture_batches_total{outcome="failed"}'] == 0
    assert before["batch_exports_auto_paused_total"] == 0

    metrics.run_finished(run(RunStatus.COMPLETED), now=NOW)
    metrics.run_finished(run(RunStatus.COMPLETED, backfill=True), now=NOW)
    metrics.run_finished(run(RunStatus.FAILED_RETRYABLE, backfill=True), now=NOW)
    metrics.exported("File", ExportResult(records_completed=10, bytes_exported=2048), seconds=0.3)
    after = scrape(url)
    completed = 'batch_exports_runs_finished_total{destination_type="File",status="Completed"}'
    assert after[completed] == 2
    # Only the interval that ended for good counts as a backfill run done; only the scheduled one has a delay.
    assert after['batch_exports_backfill_runs_done_total{destination_type="File",status="Completed"}'] == 1
    assert 'batch_exports_backfill_runs_done_total{destination_type="File",status="FailedRetryable"}' not in after
    assert after['batch_exports_completion_delay_seconds_count{destination_type="File"}'] == 1
    assert after['batch_exports_completion_delay_seconds_sum{destination_type="File"}'] == 120
    assert after['batch_exports_completion_delay_seconds_bucket{destination_type="File",le="300"}'] == 1
    assert after['batch_exports_completion_delay_seconds_bucket{destination_type="File",le="60"}'] == 0
    assert after['batch_exports_records_exported_total{destination_type="File"}'] == 10
    assert after['batch_exports_bytes_exported_total{destination_type="File"}'] == 2048
    assert after['batch_exports_export_duration_seconds_bucket{destination_type="File",le="0.5"}'] == 1


def test_gateway_requests_are_labelled_by_route(exposed: tuple[ServiceMetrics, str]) -> None:
    metrics, url = exposed
    route = "/api/environments/{project_id}/batch_exports/{id}/"
    metrics.http_request("GET", route, 200, 0.004)
    metrics.http_request("GET", route, 200, 0.2)
    samples = scrape(url)
    assert samples[f'batch_exports_http_requests_total{{method="GET",route="{route}",status="200"}}'] == 2
    assert (
        samples[f'batch_exports_http_request_duration_seconds_bucket{{method="GET",route="{route}",le="0.005"}}'] == 1
    )


def test_an_export_that_stops_running_drops_to_zero_lag(exposed: tuple[ServiceMetrics, str]) -> None:
    metrics, url = exposed
    metrics.export_lags({"a": (7200.0, 3600.0), "b": (60.0, 300.0)})
    samples = scrape(url)
    assert samples['batch_exports_export_lag_seconds{batch_export_id="a"}'] == 7200
    assert samples['batch_exports_export_interval_seconds{batch_export_id="b"}'] == 300
    metrics.export_lags({"b": (90.0, 300.0)})  # `a` was paused or deleted
    samples = scrape(url)
    assert samples['batch_exports_export_lag_seconds{batch_export_id="a"}'] == 0
    assert samples['batch_exports_export_lag_seconds{batch_export_id="b"}'] == 90


def test_paused_and_missing_intervals_are_per_export_and_drop_to_zero(exposed: tuple[ServiceMetrics, str]) -> None:
    metrics, url = exposed
    metrics.export_states({"a": (True, 0), "b": (False, 3)})
    samples = scrape(url)
    assert samples['batch_exports_export_paused{batch_export_id="a"}'] == 1
    assert samples['batch_exports_export_missing_intervals{batch_export_id="b"}'] == 3
    metrics.export_states({"b": (False, 1)})  # `a` was deleted
    samples = scrape(url)
    assert samples['batch_exports_export_paused{batch_export_id="a"}'] == 0
    assert samples['batch_exports_export_missing_intervals{batch_export_id="b"}'] == 1


def test_a_taken_port_leaves_the_process_without_metrics_naming_the_setting(
    exposed: tuple[ServiceMetrics, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = exposed
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with caplog.at_level(logging.ERROR):
        assert temporal_runtime(LOOPBACK, port, "BATCH_EXPORTS_API_METRICS_PORT") is None
    assert "BATCH_EXPORTS_API_METRICS_PORT" in caplog.text and f"{LOOPBACK}:{port}" in caplog.text
    assert temporal_runtime(LOOPBACK, 0, "BATCH_EXPORTS_API_METRICS_PORT") is None


def freshness(**fields: object) -> Freshness:
    values: dict[str, object] = {
        "id": uuid.uuid4(), "interval": Interval.HOUR, "paused": False, "exported_until": None,
        "created_at": NOW - timedelta(days=1), "start_at": None, "end_at": None, "timezone": "UTC",
        "offset_day": None, "offset_hour": None, "owed_from": None, "covered_until": None, **fields,
    }  # fmt: skip
    return Freshness(**values)  # type: ignore[arg-type]


def test_lag_counts_from_the_latest_completed_interval() -> None:
    assert lag_seconds(freshness(exported_until=NOW - timedelta(hours=3)), NOW) == 3 * 3600
    assert lag_seconds(freshness(), NOW) == 24 * 3600  # none completed yet: since it was created
    assert lag_seconds(freshness(start_at=NOW + timedelta(days=1)), NOW) == 0  # not started yet
    ended = freshness(exported_until=NOW - timedelta(days=2), end_at=NOW - timedelta(days=2))
    assert lag_seconds(ended, NOW) == 0  # its last interval is done: it is not behind


def test_json_lines_carry_the_ids_they_concern() -> None:
    record = logging.LogRecord("activities", logging.INFO, __file__, 1, "run %s", ("Completed",), None)
    record.temporal_activity = {"workflow_id": "e-2026", "workflow_run_id": "r1", "activity_type": "finish-run"}
    with log_context(batch_export_id="e", run_id=uuid.UUID(int=1), backfill_id=None):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "run Completed" and line["level"] == "INFO"
    assert line["batch_export_id"] == "e" and line["run_id"] == str(uuid.UUID(int=1))
    assert line["workflow_id"] == "e-2026" and line["workflow_run_id"] == "r1"
    assert "backfill_id" not in line
    assert "batch_export_id" not in json.loads(JsonFormatter().format(record))  # the context ended with its block


def test_the_access_log_runs_no_filter_a_library_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    import snowflake.connector  # noqa: F401  (as the gateway imports it: its masking filter is on aiohttp's loggers)

    access = logging.getLogger(logs.ACCESS_LOGGER)
    assert access.filters, "the Snowflake connector no longer filters aiohttp's loggers: this test can go"
    monkeypatch.setattr(logging.root, "handlers", list(logging.root.handlers))  # configure() replaces them
    monkeypatch.setattr(access, "filters", list(access.filters))
    logs.configure(Settings.model_validate({"log_format": "json"}))
    assert access.filters == []
    record = access.makeRecord(access.name, logging.INFO, __file__, 1, '%s "%s" %s', ("127.0.0.1", "GET /", 200), None)
    assert access.filter(record) and record.args == ("127.0.0.1", "GET /", 200)  # left as it was logged
