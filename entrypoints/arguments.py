"""Command-line values of the project's CLIs, checked as argparse types: a bad one is a usage error (exit 2,
a sentence on stderr), never a traceback."""

import argparse

PROJECT_ID_MAX = 2**63 - 1
"""Project ids are PostgreSQL bigints."""
PROJECT_NAME_CHARACTERS = 400


def project_id(raw: str) -> int:
    """A project id: a whole number from 1 to 2^63 - 1 (whether it exists is the command's to check)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw[:40]!r} is not a project id (a whole number)") from None
    if not 1 <= value <= PROJECT_ID_MAX:
        raise argparse.ArgumentTypeError(f"a project id is from 1 to {PROJECT_ID_MAX}; got {raw[:40]}")
    return value


def project_name(raw: str) -> str:
    """A project's name: not blank, at most PROJECT_NAME_CHARACTERS, no control characters."""
    name = raw.strip()
    if not name:
        raise argparse.ArgumentTypeError("a project name must not be blank")
    if len(name) > PROJECT_NAME_CHARACTERS:
        raise argparse.ArgumentTypeError(f"a project name is at most {PROJECT_NAME_CHARACTERS} characters long")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise argparse.ArgumentTypeError("a project name must not contain control characters")
    return name
