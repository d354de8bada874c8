"""`tuning backup FOLDER` and `tuning restore FOLDER`: both databases and the artifacts."""

from __future__ import annotations

import argparse
import os
import sys

from tuning_suite.cli.db import default_database_url
from tuning_suite.cli.server_extra import needs_server


def register(commands) -> None:
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("folder", help="the backup folder")
    storage.add_argument("--suggestion-database-url", default="",
                         help="default: $TUNING_SUGGESTION_DATABASE_URL, else $TUNING_HOME/suggestion.db")
    storage.add_argument("--tracking-database-url", default="",
                         help="default: $TUNING_TRACKING_DATABASE_URL, else $TUNING_HOME/tracking.db")
    storage.add_argument("--artifacts", default="", help="default: $TUNING_ARTIFACTS, else $TUNING_HOME/artifacts")
    commands.add_parser("backup", parents=[storage], help="copy both databases and the artifacts into a new folder "
                        "(safe while the services run)").set_defaults(run=_backup)
    commands.add_parser("restore", parents=[storage], help="restore a backup into empty databases and an empty "
                        "artifact folder").set_defaults(run=_restore)


def _stores(args: argparse.Namespace):
    from suggestion_service.persistence import MIGRATIONS as suggestion_migrations
    from suggestion_service.persistence.tables import metadata as suggestion_tables
    from tracking_service.persistence import MIGRATIONS as tracking_migrations
    from tracking_service.persistence.repository import relocate_artifacts
    from tracking_service.persistence.tables import metadata as tracking_tables
    from tuning_suite.backup import ServiceStore

    return [
        ServiceStore("suggestion", args.suggestion_database_url or default_database_url("suggestion"),
                     sorted(suggestion_tables.tables), suggestion_migrations),
        ServiceStore("tracking", args.tracking_database_url or default_database_url("tracking"),
                     sorted(tracking_tables.tables), tracking_migrations, relocate_artifacts),
    ]


def _artifacts(args: argparse.Namespace):
    from pathlib import Path

    from tracking_service.server import default_artifacts

    value = args.artifacts or os.environ.get("TUNING_ARTIFACTS") or default_artifacts()
    if value.startswith("s3:"):
        # Said, not skipped quietly: the backup holds the databases only (docs/OPERATIONS.md, "Backups").
        print(f"artifacts: {value} is an S3 bucket, not copied: back it up with the object store's own tools "
              "(versioning, replication)", file=sys.stderr)
        return None
    return Path(value)


@needs_server("tuning backup")
def _backup(args: argparse.Namespace) -> int:
    from tuning_suite.backup import backup

    manifest = backup(args.folder, _stores(args), _artifacts(args))
    for name, saved in manifest["services"].items():
        print(f"{name}: {saved['kind']} database at schema {saved['revision']} -> {args.folder}/{saved['file']}")
    print(f"artifacts -> {args.folder}/artifacts" if manifest.get("artifacts") else "artifacts: none to copy")
    return 0


@needs_server("tuning restore")
def _restore(args: argparse.Namespace) -> int:
    from tuning_suite.backup import restore

    manifest = restore(args.folder, _stores(args), _artifacts(args))
    print(f"restored the backup of {manifest['created']}: "
          + ", ".join(f"{name} ({saved['kind']}, schema {saved['revision']})"
                      for name, saved in manifest["services"].items())
          + (", artifacts" if manifest.get("artifacts") else ""))
    return 0
