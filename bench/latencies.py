"""Where a benchmark's time goes: from the workers' own Temporal SDK metrics, scraped before and after a phase,
the mean of each latency histogram over the phase (by workflow, activity or request type) and how many; and the
CPU seconds each process (and its children) used over the phase."""

import re
import urllib.request
from collections import defaultdict

import psutil

HISTOGRAMS = {
    "temporal_workflow_task_schedule_to_start_latency_seconds": "workflow task waits for a worker",
    "temporal_workflow_task_execution_latency_seconds": "workflow task runs in the worker",
    "temporal_activity_schedule_to_start_latency_seconds": "activity waits for a worker",
    "temporal_activity_execution_latency_seconds": "activity runs",
    "temporal_local_activity_execution_latency_seconds": "local activity runs",
    "temporal_workflow_endtoend_latency_seconds": "workflow, start to close",
    "temporal_request_latency_seconds": "request to the server",
}
KEYS = ("workflow_type", "activity_type", "operation")
_SAMPLE = re.compile(r"^(\w+?)_(sum|count)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Totals = dict[tuple[str, str], list[float]]


def scrape(urls: list[str]) -> Totals:
    """Sum and count of each histogram (and key label) over every worker's endpoint."""
    totals: Totals = defaultdict(lambda: [0.0, 0.0])
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if not match or match[1] not in HISTOGRAMS:
                continue
            labels = dict(_LABEL.findall(match[3]))
            key = next((labels[name] for name in KEYS if name in labels), "")
            totals[(match[1], key)][0 if match[2] == "sum" else 1] += float(match[4])
    return totals


def report(before: Totals, after: Totals) -> list[str]:
    """One line per histogram and key that moved: its mean over the phase, and how many."""
    lines = []
    for (name, key), (total, count) in sorted(after.items()):
        done = count - before.get((name, key), [0.0, 0.0])[1]
        spent = total - before.get((name, key), [0.0, 0.0])[0]
        if done >= 1:
            what = f"{HISTOGRAMS[name]} ({key})" if key else HISTOGRAMS[name]
            lines.append(f"  {what:<68} {spent / done * 1000:8.1f} ms mean  x{int(done):,}")
    return lines


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User and system CPU seconds used so far by each named group of processes, their children included."""
    used = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                process = psutil.Process(pid)
                for member in [process, *process.children(recursive=True)]:
                    times = member.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        used[name] = total
    return used


def cpu_report(before: dict[str, float], after: dict[str, float], wall: float) -> str:
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    parts = [f"{name} {seconds:.0f} s ({seconds / wall:.2f} cores)" for name, seconds in spent.items()]
    return "  CPU: " + ", ".join(parts)
