"""`.data/env`: a shell file the owner alone reads, that the project's tools load without overriding the
environment, and a database that does not answer is named without its password."""

import os
import subprocess
from pathlib import Path

import pytest

from entrypoints import stack_env
from entrypoints.embedded import EmbeddedPostgres, free_port


def test_written_for_its_owner_and_sourced_by_a_shell_as_written(tmp_path: Path) -> None:
    path = tmp_path / "env"
    values = {"BATCH_EXPORTS_DATABASE_URL": "postgresql://postgres:it's $secret@127.0.0.1:5433/db", "X": "a b"}
    stack_env.write(path, values)
    assert path.stat().st_mode & 0o777 == 0o600
    assert stack_env.read(path) == values
    shell = subprocess.run(
        ["bash", "-c", f"source {path} && env"], capture_output=True, text=True, check=True, env={}
    ).stdout.splitlines()
    assert {f"{name}={value}" for name, value in values.items()} <= set(shell)


def test_loaded_where_the_environment_says_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_EXPORTS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.delenv("BATCH_EXPORTS_API_URL", raising=False)
    stack_env.write(tmp_path / "env", {"TEMPORAL_ADDRESS": "127.0.0.1:2", "BATCH_EXPORTS_API_URL": "http://x"})
    assert stack_env.load() == tmp_path / "env"
    assert os.environ["TEMPORAL_ADDRESS"] == "127.0.0.1:1" and os.environ["BATCH_EXPORTS_API_URL"] == "http://x"


def test_a_url_is_printed_without_its_password() -> None:
    assert stack_env.without_password("postgresql://u:pw@h:1/d") == "postgresql://u@h:1/d"
    assert stack_env.without_password("postgresql://h:1/d") == "postgresql://h:1/d"


def test_a_refused_statement_names_the_server_and_not_its_password(tmp_path: Path) -> None:
    """The embedded PostgreSQL's statements carry its password in psql's environment, never on a command line:
    a server that does not answer (or another one on its port) fails without the password in the error."""
    postgres = EmbeddedPostgres(tmp_path / "postgres", free_port())
    with pytest.raises(RuntimeError) as refused:
        postgres.create_database("batch_exports")
    assert f"port {postgres.port}" in str(refused.value) and postgres.password not in str(refused.value)
