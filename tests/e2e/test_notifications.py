"""Notices: a project's webhooks (JSON, Slack) and e-mail (a real SMTP server on loopback) hear about failures,
automatic pauses and recoveries, once per export, kind and day, with no secret in them."""

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import another_gateway, create_export, insert_events, run_hour
from tests.support.listeners import serving
from tests.support.receiver import running_receiver
from tests.support.stack import API_KEY, Project

SECRET = "wrong-token-kept-secret"


@dataclass
class Inbox:
    messages: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode())
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, str]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        yield inbox, f"smtp://{LOOPBACK}:{port}"
    finally:
        controller.stop()


@dataclass
class Hooks:
    url: str = ""
    received: dict[str, list[Any]] = field(default_factory=dict)
    failures_left: int = 0
    """Answer this many posts with a 500 first."""


@contextlib.asynccontextmanager
async def webhooks() -> AsyncIterator[Hooks]:
    hooks = Hooks()

    async def take(request: web.Request) -> web.Response:
        if hooks.failures_left:
            hooks.failures_left -= 1
            return web.json_response({}, status=500)
        hooks.received.setdefault(request.match_info["name"], []).append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook/{name}{tail:(/.*)?}", take)
    async with serving(app) as url:
        hooks.url = url
        yield hooks


async def add_target(project: Project, body: dict[str, Any]) -> dict[str, Any]:
    status, target = await project.request("POST", "notification_targets/", json=body)
    assert status == 201, target
    return target  # type: ignore[no-any-return]


async def test_failures_pauses_and_recoveries_are_told_once_a_day(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (inbox, smtp_url):
        monkeypatch.setattr(project.stack.settings, "smtp_url", smtp_url)
        async with webhooks() as hooks, running_receiver("the-right-token") as receiver:
            plain = await add_target(project, {"kind": "webhook", "url": f"{hooks.url}/hook/json/secret-path"})
            assert plain["display"] == f"{hooks.url}/…" and "secret-path" not in json.dumps(plain)
            await add_target(project, {"kind": "webhook", "url": f"{hooks.url}/hook/slack", "format": "slack"})
            await add_target(project, {"kind": "email", "address": "oncall@example.com"})
            status, listed = await project.request("GET", "notification_targets/")
            assert (status, len(listed["results"])) == (200, 3)

            # Live (so that it can be paused automatically), with a schedule that does not begin before tomorrow.
            export = await create_export(project, {
                "name": "nightly", "interval": "hour", "paused": False,
                "start_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "destination": {"type": "HTTP", "config": {"url": receiver.url, "token": SECRET}},
            })  # fmt: skip
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
            await insert_events(project.stack, project.id, [end - timedelta(hours=h, minutes=30) for h in range(3)])
            runs = await run_hour(project, export, end - timedelta(hours=2), 1)
            assert runs[-1]["status"] == "Failed", runs
            assert [n["event"] for n in hooks.received["json"]] == ["batch_export.run_failed"]
            failed = hooks.received["json"][0]
            assert (failed["batch_export"]["id"], failed["run"]["status"]) == (export["id"], "Failed")
            assert "401" in failed["run"]["latest_error"]
            assert "nightly" in hooks.received["slack"][0]["text"] and set(hooks.received["slack"][0]) == {"text"}
            assert len(inbox.messages) == 1 and "Subject: Batch export 'nightly' failed" in inbox.messages[0]

            # The same kind again today: nothing; the third failure pauses it (auto-pause after 3): told.
            await run_hour(project, export, end - timedelta(hours=1), 2)
            await run_hour(project, export, end, 3)
            assert [n["event"] for n in hooks.received["json"]] == [
                "batch_export.run_failed", "batch_export.auto_paused"]  # fmt: skip
            status, seen = await project.request("GET", f"batch_exports/{export['id']}/")
            assert seen["paused"] is True

            # It works again: told once.
            receiver.token = SECRET
            await insert_events(project.stack, project.id, [end + timedelta(minutes=30)])
            runs = await run_hour(project, export, end + timedelta(hours=1), 4)
            assert any(r["status"] == "Completed" for r in runs), runs
            assert hooks.received["json"][-1]["event"] == "batch_export.recovered"
            assert len(inbox.messages) == 3 and "recovered" in inbox.messages[-1]

        everything = json.dumps(hooks.received) + "".join(inbox.messages)
        assert SECRET not in everything  # no secret in any notice
        status, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"search": "Notice"})
        assert status == 200
        assert sum("Notice 'run_failed' sent to 3 target(s)" in line["message"] for line in logs["results"]) == 1


async def test_a_notice_not_taken_is_retried_and_logged(project: Project) -> None:
    async with webhooks() as hooks, running_receiver("the-right-token") as receiver:
        await add_target(project, {"kind": "webhook", "url": f"{hooks.url}/hook/json"})
        hooks.failures_left = 1
        export = await create_export(project, {
            "name": "flaky", "interval": "hour",
            "destination": {"type": "HTTP", "config": {"url": receiver.url, "token": SECRET}},
        })  # fmt: skip
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
        assert (await run_hour(project, export, end, 1))[-1]["status"] == "Failed"
        assert [n["event"] for n in hooks.received["json"]] == ["batch_export.run_failed"]
        _, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"search": "Notice"})
        messages = [line["message"] for line in logs["results"]]
        assert any("not sent (attempt 1)" in m and "answered 500" in m for m in messages), messages
        assert any("Notice 'run_failed' sent" in m for m in messages), messages


async def test_webhook_targets_obey_the_address_policy(project: Project) -> None:
    async with (
        webhooks() as hooks,
        another_gateway(project.stack, allow_private_destinations=False) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        url = f"{gateway}/api/projects/{project.id}/notification_targets/"
        for body, attr in [
            ({"kind": "webhook", "url": f"{hooks.url}/hook/json"}, "url"),
            ({"kind": "webhook", "url": "http://[::1]:9/hook"}, "url"),
            ({"kind": "webhook", "url": "ftp://example.com/"}, "url"),
            ({"kind": "email", "address": "a@b.example"}, "kind"),  # no SMTP server configured
            ({"kind": "email", "address": "not an address"}, "address"),
            ({"kind": "sms"}, "kind"),
        ]:
            async with http.post(url, json=body) as response:
                error = await response.json()
            assert (response.status, error["attr"]) == (400, attr), (body, error)
        assert hooks.received == {}
        status, listed = await project.request("GET", "notification_targets/")
        assert (status, listed["results"]) == (200, [])
