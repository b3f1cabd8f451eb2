"""What the processes tell operators, all defined here; the rest of the code calls a few named methods.

- `metrics`: the service's Prometheus metrics (`batch_exports_*`) and the Temporal runtime that serves them
  on one endpoint per process beside the Temporal SDK's own (`temporal_*`);
- `gauges`: the gauges a worker reads from the database every few seconds (each export's lag, backfills left);
- `logs`: plain or JSON log lines, each JSON line with the export, run and workflow ids it concerns;
- `tracing`: OpenTelemetry traces from an API request through its workflows to their activities, off unless
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
"""
