"""`python -m batch_exports.keys`: create, list and revoke personal API keys.

    python -m batch_exports.keys create --label ci --scope batch_export:read --project 1
    python -m batch_exports.keys list
    python -m batch_exports.keys revoke <key id>

A key is printed once, when it is created; only its hash is stored.
"""

import argparse
import asyncio
import secrets
import sys
import uuid

import asyncpg

from batch_exports import api_keys
from batch_exports.settings import get_settings


async def create(conn: asyncpg.Connection, label: str, scopes: list[str], projects: list[int] | None) -> str:
    key = "phx_" + secrets.token_urlsafe(32)
    await api_keys.ensure(conn, key, label=label, scopes=tuple(scopes), project_ids=projects)
    return key


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_exports.keys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create a key and print it (once)")
    make.add_argument("--label", required=True)
    make.add_argument("--scope", action="append", choices=api_keys.ALL_SCOPES, help="repeatable; default: both")
    make.add_argument("--project", action="append", type=int, help="repeatable; default: every project")
    commands.add_parser("list", help="list keys (never their values)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", type=uuid.UUID)
    args = parser.parse_args(argv)

    conn = await asyncpg.connect(get_settings().database_url)
    try:
        if args.command == "create":
            print(await create(conn, args.label, args.scope or list(api_keys.ALL_SCOPES), args.project))
        elif args.command == "list":
            rows = await conn.fetch(
                "SELECT id, label, mask_value, scopes, project_ids, revoked_at "
                "FROM personal_api_keys ORDER BY created_at"
            )
            for row in rows:
                projects = ",".join(map(str, row["project_ids"])) if row["project_ids"] is not None else "all"
                state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
                print(f"{row['id']}  {row['mask_value']}  {row['label']}  {' '.join(row['scopes'])}  "
                      f"projects={projects}  {state}")  # fmt: skip
        else:
            revoked = await conn.execute(
                "UPDATE personal_api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", args.key_id
            )
            if revoked.endswith(" 0"):
                print(f"no active key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
