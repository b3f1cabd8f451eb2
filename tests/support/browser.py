"""Debian's Chromium, headless, loading one page and printing its DOM once the page's scripts have run.

`make test` installs it (`/usr/bin/chromium`). It runs with a fresh profile and none of its own traffic
(updates, sync, component downloads), and every host name but loopback resolves to nothing, so a page that
reached for a CDN would fail here rather than fetch it.
"""

import asyncio
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


async def rendered_dom(url: str, profile: Path, budget_ms: int = 20_000) -> str:
    """The page's DOM after load, its fetches done and up to `budget_ms` of (virtual) time for its scripts.

    In a thread: the gateway that serves the page may run on this very event loop."""
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
    ]  # fmt: skip
    ran = await asyncio.to_thread(_run, args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return ran.stdout


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)
