"""Telling a project about its exports: a run that failed for good, an export paused automatically, a recovery.

A notice goes to each of the project's targets: a webhook (a JSON body; a Slack incoming webhook gets Slack's
`{"text"}`) or an e-mail address (over `BATCH_EXPORTS_SMTP_URL`). It names the export, its destination type and
the run's interval and error; the error is redacted of the export's secrets, and no config field is in it.
Webhooks obey the destinations' address policy: checked when the target is saved, and connected only to the
checked addresses (`egress`), never following a redirect.
"""

import asyncio
import smtplib
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp
import orjson

from batch_exports.crypto import ConfigCipher
from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import InvalidField
from batch_exports.runs.run import Run
from batch_exports.runtime import Runtime
from batch_exports.settings import Settings
from batch_exports.store import exports, logs, notifications, runs
from batch_exports.store.notifications import Target
from connectors.destinations.network import hosts
from connectors.destinations.network.egress import http_session

KINDS = ("webhook", "email")
WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=10)
SMTP_TIMEOUT_SECONDS = 10
MAX_ERROR = 500
"""Characters of a run's error a notice quotes."""
SUBJECTS = {
    "run_failed": "Batch export '{name}' failed",
    "auto_paused": "Batch export '{name}' was paused after repeated failures",
    "recovered": "Batch export '{name}' recovered",
}


class NotSent(Exception):
    """A notice some target did not take (the activity retries it)."""


@dataclass(frozen=True)
class Notice:
    kind: str
    subject: str
    text: str
    body: dict[str, Any]


def compose(kind: str, export: BatchExport, run: Run | None) -> Notice:
    subject = SUBJECTS[kind].format(name=export.name)
    error = export.destination_config.redact(run.latest_error or "")[:MAX_ERROR] if run else ""
    lines = [subject + "."]
    if run is not None:
        lines.append(f"Run {run.id}: {run.status.value}, interval {run.data_interval_start:%Y-%m-%d %H:%M} to "
                     f"{run.data_interval_end:%Y-%m-%d %H:%M} UTC.")  # fmt: skip
    if error:
        lines.append(f"Error: {error}")
    if kind == "auto_paused":
        lines.append("Fix the cause, then unpause it (with backfill to export what was missed).")
    body = {
        "event": f"batch_export.{kind}",
        "batch_export": {"id": str(export.id), "name": export.name, "team_id": export.team_id,
                         "destination_type": export.destination_type, "paused": kind == "auto_paused"},
        "run": None if run is None else {
            "id": str(run.id), "status": run.status.value, "data_interval_start": run.data_interval_start.isoformat(),
            "data_interval_end": run.data_interval_end.isoformat(), "latest_error": error or None,
        },
        "message": "\n".join(lines),
    }  # fmt: skip
    return Notice(kind, subject, "\n".join(lines), body)


def _display_url(url: str) -> str:
    """A webhook URL without what may be its secret (path, query, credentials)."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}{f':{parsed.port}' if parsed.port else ''}/…"


async def new_target(settings: Settings, cipher: ConfigCipher, body: Any) -> tuple[str, str, bytes]:
    """A target's kind, display and encrypted config, validated (a webhook's host by the address policy)."""
    if not isinstance(body, dict) or body.get("kind") not in KINDS:
        raise InvalidField("kind", f"kind must be one of {', '.join(KINDS)}.")
    if body["kind"] == "email":
        address = body.get("address")
        if (
            not isinstance(address, str)
            or not 3 <= len(address) <= 254
            or address.count("@") != 1
            or any(c.isspace() or c in '<>,;"' for c in address)
        ):
            raise InvalidField("address", "address must be one e-mail address (name@example.com).")
        if not settings.smtp_url:
            raise InvalidField("kind", "E-mail needs BATCH_EXPORTS_SMTP_URL, which this service does not have.")
        return "email", address, cipher.encrypt({"address": address})
    url, style = body.get("url"), body.get("format")
    parsed = urlparse(url) if isinstance(url, str) and len(url) <= 2000 else None
    try:
        port = parsed.port if parsed else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidField("url", "url must be an http(s) URL of at most 2000 characters.")
    if style is None:
        style = "slack" if parsed.hostname == "hooks.slack.com" else "json"
    if style not in ("json", "slack"):
        raise InvalidField("format", "format is json or slack.")
    try:
        await hosts.resolve(parsed.hostname, port or (443 if parsed.scheme == "https" else 80),
                            allow_private=settings.allow_private_destinations, field="url")  # fmt: skip
    except hosts.HostRefused as refused:
        raise InvalidField("url", str(refused)) from None
    return "webhook", _display_url(str(url)), cipher.encrypt({"url": url, "format": style})


async def deliver(
    settings: Settings, targets: list[Target], notice: Notice, taken: Callable[[Target], None] = lambda _: None
) -> list[str]:
    """Send `notice` to every target (`taken` is told of each that took it); what went wrong with each that did
    not (its display, never its address)."""
    problems = []
    for target in targets:
        try:
            if target.kind == "email":
                await asyncio.to_thread(_mail, settings, target.config["address"], notice)
            else:
                await _post(settings, target.config["url"], target.config.get("format", "json"), notice)
            taken(target)
        except (OSError, aiohttp.ClientError, smtplib.SMTPException, NotSent) as error:
            problems.append(f"{target.kind} {target.display}: {type(error).__name__}: {error}"[:300])
    return problems


async def send(
    rt: Runtime,
    export_id: uuid.UUID,
    run_id: uuid.UUID,
    kind: str,
    *,
    sent: list[str],
    attempt: int,
    heartbeat: Callable[[list[str]], None],
) -> bool:
    """Send the day's notice of `kind` about the run, at most once per export, kind and day, and say so in the
    export's logs; True when it went out now, False when there was nothing to send (no target, sent today).

    The day's notice is claimed before it is sent and released when a target did not take it (`NotSent`): the
    retries send it to the targets not in `sent`, which `heartbeat` is told of after each one that takes it."""
    pool = rt.pool
    export = await exports.get(pool, export_id, rt.cipher)
    if export is None:
        return False
    targets = await notifications.targets(pool, export.team_id, rt.cipher)
    day = datetime.now(UTC).date()
    if not targets or not await notifications.claim(pool, export_id, kind, day):
        return False
    notice = compose(kind, export, await runs.get(pool, run_id, export_id))
    remaining = [t for t in targets if str(t.id) not in sent]

    def taken(target: Target) -> None:
        sent.append(str(target.id))
        heartbeat(sent)

    problems = await deliver(rt.settings, remaining, notice, taken)
    if problems:
        await notifications.release(pool, export_id, kind, day)
        message = f"Notice '{kind}' not sent (attempt {attempt}): {'; '.join(problems)}"
        await logs.write(pool, team_id=export.team_id, batch_export_id=export_id, run_id=run_id,
                         level=logs.Level.WARNING, message=message)  # fmt: skip
        raise NotSent(message)
    await logs.write(
        pool, team_id=export.team_id, batch_export_id=export_id, run_id=run_id, level=logs.Level.INFO,
        message=f"Notice '{kind}' sent to {len(targets)} target(s): {', '.join(t.display for t in targets)}",
    )  # fmt: skip
    return True


async def _post(settings: Settings, url: str, style: str, notice: Notice) -> None:
    payload = {"text": f"*{notice.subject}*\n{notice.text}"} if style == "slack" else notice.body
    async with (
        http_session(settings.allow_private_destinations, WEBHOOK_TIMEOUT) as session,
        session.post(url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"},
                     allow_redirects=False) as response,
    ):  # fmt: skip
        if response.status >= 300:
            raise NotSent(f"the webhook answered {response.status}")


def _mail(settings: Settings, address: str, notice: Notice) -> None:
    """Send the notice by SMTP: `smtp://[user:password@]host[:port]` (STARTTLS when offered) or `smtps://`."""
    url = urlparse(settings.smtp_url or "")
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = notice.subject, settings.smtp_from, address
    message.set_content(notice.text)
    port = url.port or (465 if url.scheme == "smtps" else 25)
    context = ssl.create_default_context()
    with (
        smtplib.SMTP_SSL(url.hostname or "", port, timeout=SMTP_TIMEOUT_SECONDS, context=context)
        if url.scheme == "smtps"
        else smtplib.SMTP(url.hostname or "", port, timeout=SMTP_TIMEOUT_SECONDS)
    ) as smtp:
        if url.scheme != "smtps" and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)
