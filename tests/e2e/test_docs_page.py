"""The API for a person: `GET /` links the docs, the Temporal UI and the health page, and `/api/docs/` is an
interactive viewer of `/api/schema/` that a real browser (headless Chromium) renders with every operation,
from the gateway's own files (no CDN: the browser resolves no other host)."""

import re
from pathlib import Path

from tests.support.browser import rendered_dom
from tests.support.helpers import another_gateway
from tests.support.stack import Stack


async def test_the_docs_page_lists_every_operation_in_a_real_browser(stack: Stack, tmp_path: Path) -> None:
    async with stack.http.get(f"{stack.base_url}/api/schema/") as response:
        schema = await response.json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert len(operations) > 20
    dom = await rendered_dom(f"{stack.base_url}/api/docs/", tmp_path / "profile")
    # Swagger UI gives each operation a block whose id is `operations-{tag}-{operationId}`.
    listed = set(re.findall(r'id="operations-default-([^"]+)"', dom))
    assert listed == operations, (operations - listed, listed - operations)
    assert "opblock-summary-path" in dom and "/api/environments/{project_id}/batch_exports/" in dom


async def test_the_front_page_links_the_docs_the_temporal_ui_and_health(stack: Stack, tmp_path: Path) -> None:
    async with another_gateway(stack, temporal_ui_url="http://127.0.0.1:8233") as url:
        dom = await rendered_dom(f"{url}/", tmp_path / "profile", budget_ms=2000)
        links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', dom))
        assert links == {
            "/api/docs/": "API docs",
            "/api/schema/": "/api/schema/",
            "http://127.0.0.1:8233": "Temporal UI",
            "/_health": "Health",
        }
        for path in ("/api/docs/", "/_health", "/api/docs/swagger-ui-bundle.js"):
            async with stack.http.get(url + path) as response:
                assert response.status == 200, path
        async with stack.http.get(url + "/api/docs/swagger-editor.js") as response:
            assert response.status == 404  # only the viewer's own files
    async with stack.http.get(f"{stack.base_url}/") as response:
        assert "BATCH_EXPORTS_TEMPORAL_UI_URL" in await response.text()  # none configured: it says what to set
