"""Schemathesis against the gateway's own OpenAPI document: no server errors, no response that breaks it."""

import asyncio
import shutil
import sys
from pathlib import Path
from xml.etree import ElementTree

from tests.support.stack import API_KEY, Project

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def test_every_route_survives_fuzzing(project: Project, tmp_path: Path) -> None:
    status, export = await project.request(
        "POST", "batch_exports/", json={"name": "fuzzed", "interval": "hour", "destination": {"type": "NoOp"}}
    )
    assert status == 201
    # Path parameters are pinned to objects that exist, so the fuzzing reaches past the 404s.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.project_id" = {project.id}\n'
        f'"path.batch_export_id" = "{export["id"]}"\n'
        f'"path.id" = "{export["id"]}"\n'
    )
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    process = await asyncio.create_subprocess_exec(
        executable, "--config-file", str(config), "run", f"{project.stack.base_url}/api/schema/",
        "--checks", CHECKS, "--header", f"Authorization: Bearer {API_KEY}",
        "--max-examples", "30", "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-retries", "2",
        "--seed", "20261126", "--no-color", "--suppress-health-check", "all",
        "--report", "junit", "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    (tmp_path / "schemathesis-output.txt").write_text(text)
    assert process.returncode == 0, text[-6000:]
    # Every operation of the document was exercised, and none failed a check.
    (report,) = await asyncio.to_thread(lambda: list(tmp_path.glob("*.xml")))
    cases = ElementTree.parse(report).findall(".//testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert failed == [], text[-6000:]
    status, document = await project.request("GET", "/api/schema/")
    assert status == 200
    operations = {f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods}
    operations.discard("GET /api/schema/")  # the document itself, which schemathesis reads rather than fuzzes
    assert {c.get("name") for c in cases} >= operations
