"""`api.access_log.AccessLog` writes the line aiohttp's `AccessLogger` writes, field for field, for less CPU."""

import logging
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_log import AccessLogger

from api.access_log import AccessLog

PATH = "/api/environments/1/batch_exports/0b0e0c1a-1111-2222-3333-444455556666/runs/?cursor=MjAy%3D&status=Failed"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "body"),
    [
        ("GET", PATH, {"User-Agent": "curl/8.5", "Referer": "https://app.example/runs"}, 200, b"x" * 60_000),
        ("GET", "/_health", {}, 503, b""),
        ("POST", "/batch/", {"User-Agent": 'a "quoted" agent'}, 400, b'{"type":"validation_error"}'),
    ],
)
def test_the_line_is_aiohttps(method: str, path: str, headers: dict[str, str], status: int, body: bytes) -> None:
    logger = logging.getLogger(f"test_access_log.{method}.{status}")
    logger.propagate, logger.level = False, logging.INFO
    lines = Lines()
    logger.addHandler(lines)
    request = make_mocked_request(method, path, headers=headers)
    response = web.Response(body=body, status=status)
    elapsed = time.time() % 1 + 0.5  # began half-way through the second before: both clocks read the same second
    AccessLogger(logger, AccessLogger.LOG_FORMAT).log(request, response, elapsed)
    AccessLog(logger, AccessLogger.LOG_FORMAT).log(request, response, elapsed)
    theirs, ours = lines.messages
    assert ours == theirs
    assert f'"{method} {path} HTTP/1.1" {status} ' in ours


def test_the_start_time_is_formatted_once_a_second() -> None:
    log = AccessLog(logging.getLogger("test_access_log"), AccessLogger.LOG_FORMAT)
    elapsed = time.time() % 1 + 0.5
    first = log.started(elapsed)
    assert log.started(elapsed) is first  # the same string, not formatted again
    assert log.started(elapsed + 1) != first
