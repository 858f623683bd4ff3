"""The metadata DB, the JWT secret and the data dir are private from creation: 0600 files in a
0700 folder, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.private_files import create_private_file, private_dir, restrict_existing
from management_api.db import create_engine, migrate
from management_api.security import load_or_create_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: whatever is private is so by its own creation mode, not the umask's luck."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_the_sqlite_metadata_db_and_its_folder_are_created_private(tmp_path: Path) -> None:
    database = tmp_path / "data" / "modelgate.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await migrate(engine)
        async with engine.connect() as connection:  # WAL: -wal and -shm exist while open
            await connection.exec_driver_sql("SELECT count(*) FROM users")
            files = [p for p in database.parent.iterdir() if p.name.startswith("modelgate.db")]
            assert {p.name for p in files} >= {"modelgate.db", "modelgate.db-wal"}
            assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        await engine.dispose()
    assert mode(database.parent) == 0o700


@pytest.mark.usefixtures("open_umask")
def test_the_generated_jwt_secret_is_private_and_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    secret = load_or_create_secret(None, data_dir)
    assert mode(data_dir / "jwt-secret") == 0o600 and mode(data_dir) == 0o700
    assert load_or_create_secret(None, data_dir) == secret and len(secret) >= 48
    assert [p.name for p in data_dir.iterdir()] == ["jwt-secret"]  # no temporary file left


@pytest.mark.usefixtures("open_umask")
def test_create_private_file_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = private_dir(tmp_path / "d") / "secret"
    assert create_private_file(path, b"first")
    assert not create_private_file(path, b"second")
    assert path.read_bytes() == b"first" and mode(path) == 0o600


def test_a_world_readable_secret_left_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    path.write_text("an-old-secret-from-before")
    path.chmod(0o644)
    assert load_or_create_secret(None, tmp_path) == "an-old-secret-from-before"
    assert mode(path) == 0o600
    assert not restrict_existing(path)


def test_an_existing_data_dir_readable_by_others_is_tightened_to_0700(tmp_path: Path) -> None:
    """A data dir made before `modelgate up` (by an older version, or by hand) is not left 0755."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    assert private_dir(data) == data and mode(data) == 0o755  # private_dir only creates
    assert restrict_existing(data)
    assert mode(data) == 0o700
