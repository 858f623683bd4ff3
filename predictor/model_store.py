"""The model store: one folder per model version holding a skops artifact and its metadata.

Artifacts are written atomically (a temporary folder renamed into place) so a reader never sees a
half-written version, and read back with skops against an allow-list of trusted types (scikit-learn,
numpy, scipy): no pickle, and no code from users.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import skops.io as sio

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"

TRUSTED_MODULE_ROOTS = ("sklearn", "numpy", "scipy")
"""Top-level packages whose types a model artifact may contain beyond skops' own defaults."""

_VERSION_ID = re.compile(r"^[A-Za-z0-9._-]+$")


class ModelStoreError(Exception):
    """Base of every model store failure."""


class InvalidVersionIdError(ModelStoreError, ValueError):
    """A version id that is not safe as a folder name."""


class ModelNotFoundError(ModelStoreError, LookupError):
    """No saved model under this version id."""


class InvalidModelError(ModelStoreError):
    """The file is not a readable skops artifact."""


class UntrustedModelError(ModelStoreError):
    """The artifact contains types outside the allow-list; it is refused, never loaded."""

    def __init__(self, untrusted_types: list[str]) -> None:
        self.untrusted_types = sorted(untrusted_types)
        super().__init__("model contains untrusted types: " + ", ".join(self.untrusted_types))


@dataclass
class LoadedModel:
    """A model version loaded in memory with its metadata and artifact size."""

    version_id: str
    estimator: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0


def validate_version_id(version_id: str) -> str:
    """Return the id if it is safe as a folder name (``[A-Za-z0-9._-]+``, not ``.``/``..``)."""
    if not _VERSION_ID.match(version_id) or version_id in {".", ".."}:
        raise InvalidVersionIdError(f"invalid model version id {version_id!r}")
    return version_id


def _is_trusted(type_name: str) -> bool:
    return type_name.split(".", 1)[0] in TRUSTED_MODULE_ROOTS


def _flagged_types_of(path: Path) -> list[str]:
    """Types skops itself does not trust in this file (reads and parses the file)."""
    try:
        return list(sio.get_untrusted_types(file=path))
    except Exception as exc:
        raise InvalidModelError(f"not a readable skops file: {exc}") from exc


def untrusted_types_of(path: Path) -> list[str]:
    """Types in a skops file that neither skops nor our allow-list trusts."""
    return [name for name in _flagged_types_of(path) if not _is_trusted(name)]


def trusted_types_of(path: Path) -> list[str]:
    """Types skops would flag in this file that the allow-list accepts (passed to ``load``)."""
    return [name for name in _flagged_types_of(path) if _is_trusted(name)]


def check_skops_file(path: Path) -> None:
    """Refuse a user upload unless every type in it is trusted (``UntrustedModelError``)."""
    untrusted = untrusted_types_of(path)
    if untrusted:
        raise UntrustedModelError(untrusted)


class ModelStore:
    """Saves and loads model versions under ``root``; safe to share between processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, version_id: str) -> Path:
        return self.root / validate_version_id(version_id)

    def save(self, version_id: str, estimator: Any, metadata: dict[str, Any]) -> Path:
        """Write ``model.skops`` and ``metadata.json`` into ``{root}/{version_id}`` atomically."""
        target = self.path_of(version_id)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version_id}.", dir=self.root))
        try:
            sio.dump(estimator, staging / MODEL_FILE)
            (staging / METADATA_FILE).write_bytes(
                orjson.dumps(metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
            )
            if target.exists():
                # Replacing a version: move the old one aside first so the rename stays atomic.
                old = Path(tempfile.mkdtemp(prefix=f".{version_id}.old.", dir=self.root))
                os.replace(target, old / "v")
                os.replace(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def load(self, version_id: str) -> LoadedModel:
        """Load a version with skops, trusting only scikit-learn, numpy and scipy types."""
        folder = self.path_of(version_id)
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise ModelNotFoundError(f"no model saved under version {version_id!r}")
        flagged = _flagged_types_of(model_path)
        untrusted = [name for name in flagged if not _is_trusted(name)]
        if untrusted:
            raise UntrustedModelError(untrusted)
        try:
            estimator = sio.load(model_path, trusted=flagged)
        except Exception as exc:
            raise InvalidModelError(f"cannot load model {version_id!r}: {exc}") from exc
        metadata: dict[str, Any] = {}
        metadata_path = folder / METADATA_FILE
        if metadata_path.is_file():
            loaded = orjson.loads(metadata_path.read_bytes())
            if isinstance(loaded, dict):
                metadata = loaded
        return LoadedModel(
            version_id=version_id,
            estimator=estimator,
            metadata=metadata,
            size_bytes=model_path.stat().st_size,
        )

    def exists(self, version_id: str) -> bool:
        return (self.path_of(version_id) / MODEL_FILE).is_file()

    def delete(self, version_id: str) -> None:
        """Remove a version (no error if it is already gone)."""
        target = self.path_of(version_id)
        if not target.exists():
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{version_id}.del.", dir=self.root))
        os.replace(target, trash / "v")
        shutil.rmtree(trash, ignore_errors=True)
