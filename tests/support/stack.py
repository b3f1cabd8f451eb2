"""The stack under test as a test drives it: its parts (`Stack`), and a project of its own per test (`Project`)."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from temporalio.client import Client

from api.app import create_app
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.settings import Settings
from batch_exports.store import api_keys, projects
from batch_exports.temporal import client as temporal_client
from entrypoints.embedded import LOOPBACK, free_port
from worker import build_worker

API_KEY = "phx_test_key_0123456789"
"""Holds both scopes on every project."""


@dataclass
class Stack:
    runtime: Runtime
    http: aiohttp.ClientSession
    base_url: str

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def client(self) -> Client:
        return self.runtime.client

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    async def new_project(self) -> "Project":
        """A project of its own for one test, so tests never see each other's events or exports."""
        project_id = await projects.next_id(self.pool)
        await projects.ensure(self.pool, project_id, f"Test project {project_id}", f"phc_{uuid.uuid4().hex}")
        token = await projects.token_of(self.pool, project_id)
        assert token is not None
        return Project(self, project_id, token)


@dataclass
class Project:
    stack: Stack
    id: int
    token: str

    @property
    def files(self) -> Path:
        """Where this project's `File` exports write: its own directory of the file root."""
        return self.stack.settings.exports_root / str(self.id)

    def url(self, path: str) -> str:
        if path.startswith("/"):
            return self.stack.base_url + path
        return f"{self.stack.base_url}/api/environments/{self.id}/{path}"

    async def request(self, method: str, path: str, *, key: str | None = API_KEY, **kwargs: Any) -> tuple[int, Any]:
        """`path` is relative to the project's API prefix, or absolute when it starts with '/'."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        async with self.stack.http.request(method, self.url(path), headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


async def connect_with_retry(attempts: int = 60) -> Client:
    """The Temporal client, once the server (started a moment ago) answers."""
    for _ in range(attempts - 1):
        try:
            return await temporal_client.connect(process="test stack")
        except RuntimeError:
            await asyncio.sleep(0.5)
    return await temporal_client.connect(process="test stack")


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Stack]:
    """A worker and a gateway (on a free loopback port) with `settings`, in this event loop, on a database
    already migrated."""
    client = await connect_with_retry()
    async with open_runtime(settings, process="test stack", client=client) as rt:
        await projects.ensure(rt.pool, 1, "Default project", "phc_default")
        await api_keys.ensure(rt.pool, API_KEY, label="tests")
        runner = web.AppRunner(create_app(settings, rt), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        try:
            async with build_worker(rt), aiohttp.ClientSession() as http:
                yield Stack(rt, http, f"http://{LOOPBACK}:{port}")
        finally:
            await runner.cleanup()
