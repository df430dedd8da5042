"""Command line: ``python -m reference_app migrate | rebuild-projection``."""

from __future__ import annotations

import argparse
import asyncio

from reference_app.core.config import get_settings
from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.migrate import migrate_database
from reference_app.events.projection import rebuild_projection

__all__ = ["main"]


async def _rebuild(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await rebuild_projection(session)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reference_app", description=__doc__)
    parser.add_argument("--database-url", help="defaults to APP_DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the schema migrations")
    commands.add_parser("rebuild-projection", help="rebuild the tasks table from the event log")
    args = parser.parse_args(argv)
    url = args.database_url or get_settings().database_url
    if args.command == "migrate":
        asyncio.run(migrate_database(url))
        print("schema is at head")
    else:
        count = asyncio.run(_rebuild(url))
        print(
            f"rebuilt the projection of {count} task{'' if count == 1 else 's'} from the event log"
        )


if __name__ == "__main__":
    main()
