"""`tuning db upgrade | check`: a service's schema migrations."""

from __future__ import annotations

import argparse
import os

from tuning_suite.cli.server_extra import needs_server


def register(commands) -> None:
    db = commands.add_parser("db", help="database schema")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--service", choices=("suggestion", "tracking"), default="suggestion",
                          help="whose schema (default: suggestion)")
    database.add_argument("--database-url", default="",
                          help="default: $TUNING_<SERVICE>_DATABASE_URL, else the service's own default")
    db_actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for verb, text in (("upgrade", "create or migrate the schema"), ("check", "exit 1 unless the schema is current")):
        db_actions.add_parser(verb, parents=[database], help=text).set_defaults(run=_db)


@needs_server("tuning db")
def _db(args: argparse.Namespace) -> int:
    from tuning_common.database import Database

    if args.service == "tracking":
        from tracking_service.persistence import MIGRATIONS
    else:
        from suggestion_service.persistence import MIGRATIONS
    url = args.database_url or default_database_url(args.service)
    db = Database.connect(url)
    try:
        if args.db_command == "upgrade":
            print(f"{args.service} schema at {MIGRATIONS.ensure(db, upgrade=True)}")
        else:
            current = db.run(MIGRATIONS.current, write=False)
            head = MIGRATIONS.head()
            print(f"{args.service} schema: database {current or 'empty'}, this version {head}")
            return 0 if current == head else 1
    finally:
        db.dispose()
    return 0


def default_database_url(service: str) -> str:
    variable = f"TUNING_{service.upper()}_DATABASE_URL"
    if os.environ.get(variable):
        return os.environ[variable]
    if service == "tracking":
        from tracking_service.server import default_database_url
    else:
        from suggestion_service.server import default_database_url
    return default_database_url()
