"""`python -m entrypoints.projects`: create a project (what `make dev` does for project 1) and list them.

python -m entrypoints.projects create --name "Web app"      # prints the new project's id and capture token
python -m entrypoints.projects create --name "Web" --id 2   # a PostHog team's id (BATCH_EXPORTS_SOURCE=clickhouse)
python -m entrypoints.projects list
"""

import argparse
import asyncio
import secrets
import sys

from batch_exports.store import projects
from entrypoints import stack_env
from entrypoints.arguments import project_name


def team_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"a project id is a positive whole number, not {text[:40]!r}")
    return int(text)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.projects", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create a project; prints its id and capture token")
    make.add_argument("--name", required=True, type=project_name)
    make.add_argument(
        "--id", type=team_id, help="the project's id: the PostHog team id when reading PostHog's ClickHouse"
    )
    commands.add_parser("list", help="list projects with their ids and names")
    args = parser.parse_args(argv)

    conn = await stack_env.connect_database()
    try:
        if args.command == "create":
            async with conn.transaction():
                await conn.execute("LOCK TABLE projects IN SHARE ROW EXCLUSIVE MODE")  # one id per concurrent create
                project_id = args.id or await projects.next_id(conn)
                if args.id and await projects.exists(conn, args.id):
                    print(f"project {args.id} exists already", file=sys.stderr)
                    return 2
                token = f"phc_{secrets.token_urlsafe(32)}"
                await projects.ensure(conn, project_id, args.name, token)
            print(project_id, token)
        else:
            for project_id, name in await projects.all_projects(conn):
                print(project_id, name)
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
