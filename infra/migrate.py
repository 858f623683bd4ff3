"""``modelgate migrate``: versioned ClickHouse SQL migrations, each applied once, in order.

Files are ``infra/migrations/NNNN_<name>.sql``. Each applied file is recorded in
``<db>.schema_migrations`` (version, name, checksum, applied_at); a re-run applies nothing, and
an applied file whose text changed is refused by name (write a new migration instead).
Placeholders are replaced by exact token substitution (``{db}``, ``{raw_ttl_days}``), never by
``str.format``, so braces elsewhere in SQL (maps, server-side parameters) stay as written.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.clickhouse import create_async_client, is_identifier
from infra.settings import CommonSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """A migration cannot be applied (bad file name, changed applied file, failed statement)."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version, name, statements and checksum of its raw text."""

    version: int
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, params: dict[str, str]) -> list[str]:
        return split_statements(substitute(self.text, params))


def discover(directory: Path) -> list[Migration]:
    """The migrations in a directory, ordered by version; duplicate versions are an error."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_<name>.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path, path.read_text()))
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise MigrationError(f"several migration files share version(s) {duplicates}")
    return sorted(migrations, key=lambda m: m.version)


def substitute(text: str, params: dict[str, str]) -> str:
    """Replace each ``{key}`` token by its value; nothing else in the text changes."""
    for key, value in params.items():
        text = text.replace("{" + key + "}", value)
    return text


def split_statements(text: str) -> list[str]:
    """Statements of a file: ``--`` comment lines dropped, split where a line ends with ``;``."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def _quote(name: str) -> str:
    if not is_identifier(name):
        raise MigrationError(f"database name {name!r} is not a plain identifier")
    return name


async def apply_migrations(
    client: Any,
    database: str,
    *,
    params: dict[str, str] | None = None,
    directory: Path | None = None,
) -> list[str]:
    """Apply the pending migrations to ``database`` (created if missing); return their names.

    ``client`` is a clickhouse-connect ``AsyncClient``. ``params`` adds placeholders beside
    ``{db}`` (for example ``raw_ttl_days``).
    """
    db = _quote(database)
    migrations = discover(directory or MIGRATIONS_DIR)
    values = {"db": db, **(params or {})}
    await client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    await client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
        "version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        ") ENGINE = MergeTree ORDER BY version"
    )
    result = await client.query(f"SELECT version, name, checksum FROM {db}.schema_migrations")
    applied = {int(row[0]): (str(row[1]), str(row[2])) for row in result.result_rows}

    for migration in migrations:
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"migration {migration.path.name} was changed after it was applied to "
                    f"{db} (recorded as {migration.version:04d}_{name}); "
                    "add a new migration instead of editing an applied one"
                )
    names: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        log.info("applying migration %s to %s", migration.path.name, db)
        for statement in migration.statements(values):
            try:
                await client.command(statement)
            except Exception as exc:
                raise MigrationError(f"migration {migration.path.name} failed: {exc}") from exc
        await client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        names.append(migration.path.name)
    return names


async def migrate_database(
    url: str, database: str, *, raw_ttl_days: int = 30, directory: Path | None = None
) -> list[str]:
    """Connect to the ClickHouse server at ``url``, apply the pending migrations to ``database``
    and close; return the applied files' names. The one helper behind ``modelgate migrate``, the
    tests' ClickHouse fixtures and the benches."""
    client = await create_async_client(url)
    try:
        return await apply_migrations(
            client, database, params={"raw_ttl_days": str(raw_ttl_days)}, directory=directory
        )
    finally:
        await client.close()


async def _run(settings: CommonSettings, directory: Path | None) -> list[str]:
    return await migrate_database(
        settings.clickhouse_url,
        settings.clickhouse_database,
        raw_ttl_days=settings.clickhouse_raw_ttl_days,
        directory=directory,
    )


def main(argv: list[str]) -> int:
    """``modelgate migrate``: apply pending migrations to the configured ClickHouse database."""
    parser = argparse.ArgumentParser(prog="modelgate migrate", description=__doc__)
    parser.add_argument("--directory", type=Path, help="migrations directory (default: built in)")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        names = asyncio.run(_run(settings, args.directory))
    except MigrationError as exc:
        log.error("%s", exc)
        return 1
    if names:
        log.info("applied %d migration(s): %s", len(names), ", ".join(names))
    else:
        log.info("database %s is up to date", settings.clickhouse_database)
    return 0
