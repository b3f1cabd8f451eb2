"""`.data/env`: where a running `make dev` says how to reach it, for every command-line tool of the project.

`make dev` writes it when the stack answers (readable by its owner only: it holds the database password and the
API key) and leaves it when it stops: a tool run then is told nothing answers there, and a `make dev` started
from a shell that sourced it knows those addresses for its own, not the user's. It is a shell file
(`source .data/env` sets the same variables for `temporal`, `curl` and `psql`), and the project's own CLIs
read it by themselves: a variable already set in the environment wins over the file.
"""

import os
import shlex
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from batch_exports.settings import get_settings

API_URL = "BATCH_EXPORTS_API_URL"
API_KEY = "BATCH_EXPORTS_API_KEY"
DATABASE_URL = "BATCH_EXPORTS_DATABASE_URL"
TEMPORAL_ADDRESS = "TEMPORAL_ADDRESS"
EMBEDDED = "BATCH_EXPORTS_DEV_EMBEDDED"
"""Which of the values above name parts `make dev` started itself (`postgres`, `temporal`), comma-separated."""


def env_path() -> Path:
    return Path(os.environ.get("BATCH_EXPORTS_DATA_DIR", ".data")) / "env"


def write(path: Path, values: dict[str, str]) -> None:
    """Write `values` as `export NAME='value'` lines, mode 0600 from its first byte, replacing the file whole."""
    lines = ["# Written by `make dev` when it starts; `source` it to reach that stack from a shell."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    partial.replace(path)


def read(path: Path) -> dict[str, str]:
    """The file's variables, parsed as the shell that sources it would (POSIX quoting)."""
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            values[name] = value
    return values


def load() -> Path | None:
    """Put the file's variables into this process's environment, where it does not set them already."""
    path = env_path()
    values = read(path)
    for name, value in values.items():
        os.environ.setdefault(name, value)
    return path if values else None


def without_password(url: str) -> str:
    """A URL fit to print: its password (if any) left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{netloc}" if parts.username else netloc))


def no_stack(what: str, where: str, variable: str) -> str:
    """What to say when the part a tool needs does not answer: where it looked, and what to set."""
    return (
        f"no {what} answers at {where}.\n"
        f"Start the stack with `make dev` (it writes {env_path()}, which every tool of the project reads), "
        f"or set {variable}."
    )


async def connect_database() -> asyncpg.Connection:
    """The service's database, as `.data/env` or the environment name it; a clear exit when it does not answer."""
    load()
    url = get_settings().database_url
    try:
        return await asyncpg.connect(url, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        reason = f"{type(e).__name__}: {e}".replace(url, without_password(url))
        raise SystemExit(f"{no_stack('database', without_password(url), DATABASE_URL)}\n({reason})") from None
