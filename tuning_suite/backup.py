"""Backups of the suite's durable state: each service's database, and the artifact store.

    tuning backup /backups/2026-11-23          # while the services run
    tuning restore /backups/2026-11-23         # into empty databases and an empty artifact folder

A backup folder holds ``manifest.json`` (what was saved, the schema revisions, when), one file
per service (``<service>.db``: SQLite's online backup, a consistent snapshot even while the
service writes; ``<service>.pgdump``: ``pg_dump --format=custom`` of the service's own tables,
so two services sharing one PostgreSQL database back up and restore independently) and
``artifacts/``, a copy of the artifact folder. Take the databases first and the artifacts
after: a file newer than its run's row is harmless, the reverse would lose it.

Restoring refuses to overwrite: the target SQLite file must not exist, the target PostgreSQL
database must not hold the service's tables yet, and the artifact folder must be missing or
empty. A backup restores into the same kind of database it came from. Restored somewhere
else, the artifacts' stored URIs (runs, experiments, model versions) are moved with them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from tuning_common.database import Database, Migrations, normalise_url
from tuning_common.errors import FailedPrecondition, InvalidArgument

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ServiceStore:
    """What one service keeps in its database: its name, URL, tables and migrations."""

    name: str
    database_url: str
    tables: Sequence[str]
    migrations: Migrations
    # For the service whose rows name artifact URIs: rewrites those under an old root to a new
    # one (connection, old, new) -> rows changed, when artifacts are restored elsewhere.
    relocate: Callable[[Connection, str, str], int] | None = None

    @property
    def kind(self) -> str:
        backend = make_url(self.database_url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise InvalidArgument(f"{self.name}_database_url", f"cannot back up a {backend} database")
        return backend

    def sqlite_path(self) -> Path:
        return Path(make_url(self.database_url).database or "")

    def libpq_url(self) -> str:
        """The URL as pg_dump and pg_restore take it (no SQLAlchemy driver suffix)."""
        return normalise_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(target: Path, stores: Sequence[ServiceStore], artifacts: Path | None) -> dict:
    """Writes a backup of ``stores`` and the ``artifacts`` folder into ``target`` (new or empty)."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise FailedPrecondition(f"{target} is not empty: back up into a new folder", reason="TARGET_NOT_EMPTY")
    target.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "services": {}}
    for store in stores:
        if store.kind == "sqlite" and not store.sqlite_path().is_file():
            raise InvalidArgument(f"{store.name}_database_url", f"there is no database at {store.sqlite_path()}")
        revision = _revision(store)
        if store.kind == "sqlite":
            file = f"{store.name}.db"
            source = sqlite3.connect(f"file:{store.sqlite_path()}?mode=ro", uri=True)
            destination = sqlite3.connect(target / file)
            try:
                source.backup(destination)
            finally:
                destination.close()
                source.close()
        else:
            file = f"{store.name}.pgdump"
            tables = [arg for table in (*store.tables, store.migrations.version_table) for arg in ("--table", table)]
            _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", *tables,
                  "--file", str(target / file), store.libpq_url()], f"pg_dump of the {store.name} database")
        manifest["services"][store.name] = {"kind": store.kind, "file": file, "revision": revision}
    if artifacts is not None and artifacts.is_dir():
        shutil.copytree(artifacts, target / "artifacts")
        manifest["artifacts"] = "artifacts"
        manifest["artifacts_uri"] = _root_uri(artifacts)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(source: Path, stores: Sequence[ServiceStore], artifacts: Path | None) -> dict:
    """Restores the backup in ``source`` into ``stores`` (empty) and ``artifacts`` (missing or empty)."""
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidArgument("backup", f"{source} is not a backup: it has no {MANIFEST}") from None
    saved = manifest["services"]
    missing = [store.name for store in stores if store.name not in saved]
    if missing:
        raise InvalidArgument("backup", f"{source} has no backup of the {', '.join(missing)} service")
    # Check every target before touching any, so a refused restore changes nothing.
    for store in stores:
        if saved[store.name]["kind"] != store.kind:
            raise InvalidArgument(f"{store.name}_database_url", f"the backup holds a {saved[store.name]['kind']} "
                                  f"database; restore it into one of that kind, not {store.kind}")
        if store.kind == "sqlite" and store.sqlite_path().exists():
            raise FailedPrecondition(f"{store.sqlite_path()} exists: restore into a new file", reason="TARGET_EXISTS")
        if store.kind == "postgresql" and _has_tables(store):
            raise FailedPrecondition(f"the {store.name} database already holds the {store.name} service's tables: "
                                     "restore into an empty database", reason="TARGET_EXISTS")
    if artifacts is not None and manifest.get("artifacts") and artifacts.exists() and any(artifacts.iterdir()):
        raise FailedPrecondition(f"{artifacts} is not empty: restore artifacts into a new folder",
                                 reason="TARGET_EXISTS")
    for store in stores:
        file = source / saved[store.name]["file"]
        if store.kind == "sqlite":
            store.sqlite_path().parent.mkdir(parents=True, exist_ok=True)
            backup_db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
            restored = sqlite3.connect(store.sqlite_path())
            try:
                backup_db.backup(restored)
            finally:
                restored.close()
                backup_db.close()
        else:
            _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", store.libpq_url(),
                  str(file)], f"pg_restore of the {store.name} database")
    if artifacts is not None and manifest.get("artifacts"):
        shutil.copytree(source / manifest["artifacts"], artifacts, dirs_exist_ok=True)
        old, new = manifest["artifacts_uri"], _root_uri(artifacts)
        for store in stores:
            if store.relocate is not None and old != new:
                db = Database.connect(store.database_url)
                try:
                    manifest["relocated"] = db.run(lambda conn, s=store: s.relocate(conn, old, new), write=True)
                finally:
                    db.dispose()
    return manifest


def _root_uri(folder: Path) -> str:
    """The prefix the artifact store gives the URIs under ``folder`` (with a trailing slash)."""
    return folder.resolve().as_uri().rstrip("/") + "/"


def _revision(store: ServiceStore) -> str | None:
    db = Database.connect(store.database_url)
    try:
        return db.run(store.migrations.current, write=False)
    finally:
        db.dispose()


def _has_tables(store: ServiceStore) -> bool:
    engine = sa.create_engine(normalise_url(store.database_url))
    try:
        with engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    return bool(existing & {*store.tables, store.migrations.version_table})


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise FailedPrecondition(f"{what} needs {command[0]} (PostgreSQL's client tools) on the PATH",
                                 reason="TOOL_MISSING") from None
    if result.returncode != 0:
        raise FailedPrecondition(f"{what} failed: {result.stderr.strip()[-500:]}", reason="TOOL_FAILED")
