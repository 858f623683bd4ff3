"""Files only the service's own user may read: the data dir (0700), secrets and the metadata DB
(0600), created with that mode from the start (``os.open``/``mkdir`` modes, never a chmod after
the fact, so there is no moment when another local user can open them)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing folder is left as it is."""
    if path.parent != path and not path.parent.exists():
        private_dir(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    return path


def create_private_file(path: Path, data: bytes = b"") -> bool:
    """Create ``path`` as 0600 holding ``data`` whole; ``False`` (nothing written) if it exists.

    The content goes to a private temporary file first and is linked into place, so a reader (or a
    second process starting at the same time) never sees the file empty or half written.
    """
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def restrict_existing(path: Path) -> bool:
    """Drop group and other access from a file an older version created world-readable.

    New files never need this (they are created private); it only tightens what a previous
    release left behind. ``True`` if the mode changed.
    """
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return False
    if not mode & 0o077:
        return False
    os.chmod(path, mode & 0o700)
    return True
