"""The migration runner (``modelgate migrate``) on real ClickHouse, with throwaway migration
directories (the product's own migrations are tested beside their SQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.clickhouse import create_async_client
from infra.migrate import MIGRATIONS_DIR, MigrationError, apply_migrations, migrate_database

pytestmark = pytest.mark.integration

FIRST = """-- events: {db} and {raw_ttl_days} are placeholders; this comment ends with a semicolon;
CREATE TABLE IF NOT EXISTS {db}.events
(
    ts DateTime('UTC'),
    note String DEFAULT '{not_a_placeholder}'
)
ENGINE = MergeTree ORDER BY ts
TTL ts + INTERVAL {raw_ttl_days} DAY;

CREATE VIEW IF NOT EXISTS {db}.recent AS
SELECT count() AS n FROM {db}.events WHERE ts > now() - INTERVAL 1 DAY;
"""

SECOND = """INSERT INTO {db}.events (ts) VALUES (now());
"""


@pytest.fixture
async def fresh_database(clickhouse_server: str) -> AsyncIterator[tuple[object, str]]:
    """A client and the name of a database that does not exist yet (dropped afterwards)."""
    name = f"test_mig_{uuid.uuid4().hex[:10]}"
    client = await create_async_client(clickhouse_server)
    yield client, name
    await client.command(f"DROP DATABASE IF EXISTS {name}")
    await client.close()


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


async def test_applies_in_order_on_an_empty_database_and_records_each_file(
    fresh_database, tmp_path: Path
) -> None:
    client, db = fresh_database
    _write(tmp_path, "0002_seed.sql", SECOND)
    _write(tmp_path, "0001_events.sql", FIRST)

    applied = await apply_migrations(client, db, params={"raw_ttl_days": "7"}, directory=tmp_path)

    assert applied == ["0001_events.sql", "0002_seed.sql"]
    assert (await client.query(f"SELECT n FROM {db}.recent")).result_rows == [(1,)]
    recorded = await client.query(
        f"SELECT version, name, length(checksum) FROM {db}.schema_migrations ORDER BY version"
    )
    assert recorded.result_rows == [(1, "events", 64), (2, "seed", 64)]


async def test_placeholders_are_substituted_exactly_and_other_braces_kept(
    fresh_database, tmp_path: Path
) -> None:
    client, db = fresh_database
    _write(tmp_path, "0001_events.sql", FIRST)
    await apply_migrations(client, db, params={"raw_ttl_days": "7"}, directory=tmp_path)

    create = (await client.query(f"SHOW CREATE TABLE {db}.events")).result_rows[0][0]
    assert "toIntervalDay(7)" in create or "INTERVAL 7 DAY" in create
    assert "'{not_a_placeholder}'" in create


async def test_rerun_applies_nothing_and_a_new_file_alone_is_applied(
    fresh_database, tmp_path: Path
) -> None:
    client, db = fresh_database
    _write(tmp_path, "0001_events.sql", FIRST)
    params = {"raw_ttl_days": "7"}
    assert await apply_migrations(client, db, params=params, directory=tmp_path) == [
        "0001_events.sql"
    ]
    assert await apply_migrations(client, db, params=params, directory=tmp_path) == []

    _write(tmp_path, "0002_seed.sql", SECOND)
    assert await apply_migrations(client, db, params=params, directory=tmp_path) == [
        "0002_seed.sql"
    ]
    assert await apply_migrations(client, db, params=params, directory=tmp_path) == []
    assert (await client.query(f"SELECT count() FROM {db}.events")).result_rows == [(1,)]


async def test_a_changed_applied_file_is_refused_by_name(fresh_database, tmp_path: Path) -> None:
    client, db = fresh_database
    path = _write(tmp_path, "0001_events.sql", FIRST)
    await apply_migrations(client, db, params={"raw_ttl_days": "7"}, directory=tmp_path)
    path.write_text(FIRST.replace("note String", "note2 String"))
    _write(tmp_path, "0002_seed.sql", SECOND)

    with pytest.raises(MigrationError, match=r"0001_events\.sql"):
        await apply_migrations(client, db, params={"raw_ttl_days": "7"}, directory=tmp_path)
    # Nothing after the refusal ran.
    assert (await client.query(f"SELECT count() FROM {db}.events")).result_rows == [(0,)]


async def test_a_failing_statement_names_its_file_and_is_not_recorded(
    fresh_database, tmp_path: Path
) -> None:
    client, db = fresh_database
    _write(tmp_path, "0001_broken.sql", "CREATE TABLE {db}.t (x UInt8) ENGINE = NoSuchEngine;\n")

    with pytest.raises(MigrationError, match=r"0001_broken\.sql"):
        await apply_migrations(client, db, directory=tmp_path)
    assert (await client.query(f"SELECT count() FROM {db}.schema_migrations")).result_rows == [(0,)]


async def test_migrate_database_applies_the_product_migrations_once_with_its_ttl(
    fresh_database, clickhouse_server: str
) -> None:
    """The one open-apply-close helper (``modelgate migrate``, the tests' ClickHouse fixtures and
    the benches all use it): every product migration on a new database, the raw TTL it is given in
    the table, and nothing applied the second time."""
    client, db = fresh_database

    applied = await migrate_database(clickhouse_server, db, raw_ttl_days=11)
    again = await migrate_database(clickhouse_server, db, raw_ttl_days=11)

    assert applied == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert again == []
    result = await client.query(f"SHOW CREATE TABLE {db}.request_events")
    assert "toIntervalDay(11)" in result.result_rows[0][0]
