"""The service's Prometheus metrics, every one defined in this module, and the endpoint that serves them.

A process has one Temporal runtime (`temporalio.runtime.Runtime`). Given a port, it serves the Temporal SDK's
metrics (`temporal_*`: polls, task latencies, slots, requests) and the service's (`batch_exports_*`, recorded
through `ServiceMetrics`) on one `/metrics` endpoint. Names follow Prometheus conventions: base units
(seconds, bytes) in the name, counters ending in `_total`. Labels stay bounded: destination types, statuses,
route patterns (never a raw path), and export ids for the per-export gauges.

Counters start at zero for every status, so a rule or a dashboard finds its series before the first event.
"""

import logging
from datetime import UTC, datetime

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, TelemetryConfig
from temporalio.runtime import Runtime as TemporalRuntime

from batch_exports.runs.run import FinishedRun
from contracts.statuses import FINAL_RUN_STATUSES, OPEN_RUN_STATUSES, RunStatus
from contracts.workflows import ExportResult

logger = logging.getLogger(__name__)

# Histogram buckets, in seconds (Prometheus's defaults are made for requests, not for exports).
HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
EXPORT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400]
COMPLETION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400, 604800]

CAPTURE_OUTCOMES = ("accepted", "rejected", "failed")
"""A capture request's batch was written, refused as the client's fault (4xx), or failed on our side."""


def temporal_runtime(host: str, port: int, setting: str) -> TemporalRuntime | None:
    """A Temporal runtime serving Prometheus metrics on `host:port`, or None (metrics are dropped) for port 0.

    A port already taken (a second worker on the same host with the same settings) does not stop the process: it
    runs without an endpoint and says so at ERROR, naming `setting`; the rule on absent workers shows it too.
    """
    if not port:
        return None
    config = PrometheusConfig(
        bind_address=f"{host}:{port}",
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides={
            "batch_exports_http_request_duration_seconds": HTTP_BUCKETS,
            "batch_exports_export_duration_seconds": EXPORT_BUCKETS,
            "batch_exports_completion_delay_seconds": COMPLETION_BUCKETS,
        },
    )
    try:
        return TemporalRuntime(telemetry=TelemetryConfig(metrics=config, attach_service_name=False))
    except ValueError as error:
        logger.error(
            "metrics are not served: %s:%s cannot be bound (%s); set %s to a free port", host, port, error, setting
        )
        return None


class ServiceMetrics:
    """The service's instruments, and the few points that record them (the no-op meter records nothing)."""

    def __init__(self, meter: MetricMeter = MetricMeter.noop) -> None:
        self.runs_finished = meter.create_counter(
            "batch_exports_runs_finished", "Run executions recorded as ended, by status and destination type."
        )
        self.records_exported = meter.create_counter(
            "batch_exports_records_exported", "Records an export activity wrote to its destination."
        )
        self.bytes_exported = meter.create_counter(
            "batch_exports_bytes_exported", "Bytes an export activity wrote to its destination."
        )
        self.export_duration = meter.create_histogram_float(
            "batch_exports_export_duration_seconds", "How long a successful export activity took."
        )
        self.completion_delay = meter.create_histogram_float(
            "batch_exports_completion_delay_seconds",
            "Seconds from an interval's end to its scheduled run's completion (backfills excluded).",
        )
        self.backfill_runs_done = meter.create_counter(
            "batch_exports_backfill_runs_done", "Runs of backfills that ended for good."
        )
        self.backfill_runs_left = meter.create_gauge(
            "batch_exports_backfill_runs_left", "Runs of an export's open backfills that have not ended yet."
        )
        self.export_lag = meter.create_gauge_float(
            "batch_exports_export_lag_seconds",
            "Now minus the end of the latest completed interval of an export on schedule (0 once deleted or paused).",
        )
        self.export_paused = meter.create_gauge(
            "batch_exports_export_paused", "1 while an export is paused (0 when live or deleted)."
        )
        self.missing_intervals = meter.create_gauge(
            "batch_exports_export_missing_intervals",
            "Intervals an export owes that have no completed run (nor one under way) and no pause gave up.",
        )
        self.export_interval = meter.create_gauge_float(
            "batch_exports_export_interval_seconds", "The nominal length of a live export's interval."
        )
        self.auto_paused = meter.create_counter(
            "batch_exports_auto_paused", "Exports paused automatically after repeated failed runs."
        )
        self.capture_batches = meter.create_counter(
            "batch_exports_capture_batches", "Capture requests, by outcome (accepted, rejected, failed)."
        )
        self.capture_events = meter.create_counter("batch_exports_capture_events", "Events captured into the source.")
        self.http_requests = meter.create_counter(
            "batch_exports_http_requests", "Gateway requests, by method, route pattern and status."
        )
        self.http_duration = meter.create_histogram_float(
            "batch_exports_http_request_duration_seconds", "How long the gateway took to answer, by route pattern."
        )
        for status in RunStatus:
            if status not in OPEN_RUN_STATUSES:
                self.runs_finished.add(0, {"status": status.value})
        self.auto_paused.add(0)
        for outcome in CAPTURE_OUTCOMES:
            self.capture_batches.add(0, {"outcome": outcome})
        self.capture_events.add(0)
        self._lagging: set[str] = set()
        self._owing: set[str] = set()
        self._backfilling: set[str] = set()

    def run_finished(self, run: FinishedRun, now: datetime | None = None) -> None:
        labels = {"status": run.status.value, "destination_type": run.destination_type}
        self.runs_finished.add(1, labels)
        if run.backfill_id is not None and run.status in FINAL_RUN_STATUSES:
            self.backfill_runs_done.add(1, labels)
        if run.status is RunStatus.COMPLETED and run.backfill_id is None:
            delay = ((now or datetime.now(UTC)) - run.data_interval_end).total_seconds()
            self.completion_delay.record(max(delay, 0.0), {"destination_type": run.destination_type})

    def exported(self, destination_type: str, result: ExportResult, seconds: float) -> None:
        """A successful export activity: what its execution wrote (resumed attempts included) and how long it took."""
        labels = {"destination_type": destination_type}
        self.records_exported.add(result.records_completed, labels)
        self.bytes_exported.add(result.bytes_exported, labels)
        self.export_duration.record(seconds, labels)

    def export_paused_automatically(self) -> None:
        self.auto_paused.add(1)

    def captured(self, outcome: str, events: int = 0) -> None:
        self.capture_batches.add(1, {"outcome": outcome})
        if events:
            self.capture_events.add(events)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.add(1, {"method": method, "route": route, "status": str(status)})
        self.http_duration.record(seconds, {"method": method, "route": route})

    def export_lags(self, lags: dict[str, tuple[float, float]]) -> None:
        """Set each live export's (lag, interval) in seconds; an export no longer live drops to 0."""
        for export_id in self._lagging - lags.keys():
            self.export_lag.set(0.0, {"batch_export_id": export_id})
        for export_id, (lag, interval) in lags.items():
            self.export_lag.set(lag, {"batch_export_id": export_id})
            self.export_interval.set(interval, {"batch_export_id": export_id})
        self._lagging = set(lags)

    def export_states(self, states: dict[str, tuple[bool, int]]) -> None:
        """Set each live export's (paused, missing intervals); an export no longer live drops to 0."""
        for export_id in self._owing - states.keys():
            self.export_paused.set(0, {"batch_export_id": export_id})
            self.missing_intervals.set(0, {"batch_export_id": export_id})
        for export_id, (paused, missing) in states.items():
            self.export_paused.set(int(paused), {"batch_export_id": export_id})
            self.missing_intervals.set(missing, {"batch_export_id": export_id})
        self._owing = set(states)

    def backfills_left(self, left: dict[str, int]) -> None:
        """Set the runs each export's open backfills have left; a deleted export drops to 0."""
        for export_id in self._backfilling - left.keys():
            self.backfill_runs_left.set(0, {"batch_export_id": export_id})
        for export_id, runs in left.items():
            self.backfill_runs_left.set(runs, {"batch_export_id": export_id})
        self._backfilling = set(left)
