"""`python -m entrypoints.keys`: create, list and revoke personal API keys.

    python -m entrypoints.keys create --label ci --scope batch_export:read --project 1
    python -m entrypoints.keys list
    python -m entrypoints.keys revoke <key id>

A key is printed once, when it is created; only its hash is stored.
"""

import argparse
import asyncio
import sys
import uuid

from batch_exports.store import api_keys, projects
from entrypoints import stack_env
from entrypoints.arguments import project_id


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.keys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create a key and print it (once)")
    make.add_argument("--label", required=True)
    make.add_argument("--scope", action="append", choices=api_keys.ALL_SCOPES, help="repeatable; default: all of them")
    make.add_argument("--project", action="append", type=project_id, help="repeatable; default: every project")
    commands.add_parser("list", help="list keys (never their values)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", type=uuid.UUID)
    args = parser.parse_args(argv)

    conn = await stack_env.connect_database()
    try:
        if args.command == "create":
            if unknown := [p for p in args.project or () if not await projects.exists(conn, p)]:
                print(f"no project with id {', '.join(map(str, unknown))}: nothing created", file=sys.stderr)
                return 1
            scopes = tuple(args.scope or api_keys.ALL_SCOPES)
            print(await api_keys.create(conn, args.label, scopes, args.project))
        elif args.command == "list":
            for key in await api_keys.all_keys(conn):
                reach = ",".join(map(str, key.project_ids)) if key.project_ids is not None else "all"
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(f"{key.id}  {key.mask_value}  {key.label}  {' '.join(key.scopes)}  "
                      f"projects={reach}  {state}")  # fmt: skip
        else:
            if not await api_keys.revoke(conn, args.key_id):
                print(f"no active key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
