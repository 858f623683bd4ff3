"""Models and their versions: listing, ownership, saving trained or uploaded versions, deleting."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.compiled import (
    ONNX_FILE,
    RUNTIME_ONNX,
    RUNTIME_SKLEARN,
    SERVING_KEY,
    InputLayout,
    compile_model_file,
    fallback_record,
)
from infra.model_store import (
    HASH_KEY,
    MODEL_FILE,
    ArchiveLimits,
    ArchiveTooLargeError,
    InvalidModelError,
    ModelStore,
    check_archive,
    limits_dict,
    sha256_of,
    verify_model_file,
)
from infra.sandbox import (
    SandboxFailed,
    SandboxMemoryError,
    SandboxTimeout,
    preload,
    run_limited,
)
from management_api.accounts import Principal
from management_api.datasets import CsvLimits, TrainingError, check_csv_size
from management_api.db import ExportedApi, Model, ModelVersion, TrainingJobRow, new_id, utcnow
from management_api.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    TooManyRequests,
)
from management_api.fitting import TrainedModel, example_prediction
from management_api.images import check_image, image_integers
from management_api.settings import ManagementSettings
from management_api.upload_reference import (
    REFERENCE_RESULT_BYTES,
    profile_of,
    profile_reference_file,
)
from schemas import ApiStatus, FeatureSpec, FeatureType, ImageSpec, Task
from schemas.resources import (
    JobStatus,
    ModelPublic,
    ModelUploadForm,
    ModelVersionPublic,
    VersionApi,
    VersionEvaluation,
    VersionServing,
)

log = logging.getLogger(__name__)


def owned_models(principal: Principal) -> Select[Model]:
    query = select(Model)
    if not principal.is_admin:
        query = query.where(Model.owner_id == principal.user_id)
    return query


def serving_apis(principal: Principal, model_id: str) -> Select[ExportedApi]:
    """The APIs of a model the caller may see (as ``GET /api/exports`` lists them)."""
    query = select(ExportedApi).where(ExportedApi.model_id == model_id)
    if not principal.is_admin:
        query = query.where(ExportedApi.owner_id == principal.user_id)
    return query


def version_public(version: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic(
        id=version.id,
        number=version.number,
        model_id=version.model_id,
        algorithm=version.algorithm,
        params=version.params,
        metrics=version.metrics,
        features=[FeatureSpec.model_validate(f) for f in version.features],
        classes=version.classes,
        target=version.target,
        n_train=version.n_train,
        n_test=version.n_test,
        created_at=version.created_at,
        source=version.source,
        image=ImageSpec.model_validate(version.image) if version.image else None,
    )


def evaluation_of(version_id: str, stored: dict[str, Any] | None) -> VersionEvaluation | None:
    """A version's stored evaluation (None if it has none, or it does not read as one)."""
    if not isinstance(stored, dict):
        return None
    try:
        return VersionEvaluation.model_validate(stored)
    except ValidationError:
        log.warning("model version %s has an unreadable evaluation; not shown", version_id)
        return None


def model_public(model: Model) -> ModelPublic:
    versions = sorted(model.versions, key=lambda v: v.number)
    return ModelPublic(
        id=model.id,
        name=model.name,
        task=Task(model.task),
        owner_id=model.owner_id,
        created_at=model.created_at,
        latest_version=versions[-1].number if versions else 0,
        versions=[version_public(v) for v in versions],
    )


def placeholder_example(features: list[FeatureSpec]) -> dict[str, Any]:
    """An example request from a schema alone (uploaded models have no held-out row)."""
    values: dict[FeatureType, Any] = {
        FeatureType.NUMBER: 0.0,
        FeatureType.INTEGER: 0,
        FeatureType.BOOLEAN: False,
    }
    return {
        f.name: (f.categories[0] if f.categories else "")
        if f.type == FeatureType.CATEGORY
        else values[f.type]
        for f in features
    }


UNTRUSTED_MODEL = "UNTRUSTED_MODEL"
INVALID_MODEL_FILE = "INVALID_MODEL_FILE"
MODEL_ARCHIVE_TOO_LARGE = "MODEL_ARCHIVE_TOO_LARGE"
MODEL_TOO_COSTLY = "MODEL_TOO_COSTLY"


@dataclass(frozen=True)
class VerifyLimits:
    """What opening one untrusted model file may cost: the archive's bounds, checked before it
    is expanded, then the child process that type-checks and loads it."""

    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    memory_bytes: int = 1024 * 1024 * 1024
    cpu_seconds: float = 60.0
    timeout_s: float = 120.0
    concurrent: int = 2
    """Files opened at once (each child may use ``memory_bytes``); the others wait their turn."""
    per_user: int = 1
    """Files one user may have opened or waiting at once (uploads and inspects); more: 429."""
    waiting: int = 16
    """Verifications that may wait for a turn, over all users; more: 429."""


class VerifySlots:
    """Bounds the children opening untrusted files: ``concurrent`` at once, ``per_user`` per
    user in flight, ``waiting`` in line. Twenty parallel inspects of a file holding a 480 MB
    array would otherwise start twenty children of up to 1 GiB each."""

    def __init__(self, limits: VerifyLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.concurrent)
        self._per_user: Counter[str] = Counter()
        self._waiting = 0

    def _busy(self, message: str, reason: str) -> TooManyRequests:
        retry = max(1, round(self.limits.timeout_s / 10))
        return TooManyRequests(
            message, details={"limited_by": reason}, headers={"Retry-After": str(retry)}
        )

    @asynccontextmanager
    async def take(self, user_id: str | None) -> AsyncIterator[None]:
        if user_id is not None and self._per_user[user_id] >= self.limits.per_user:
            raise self._busy(
                "a model file of yours is being checked; send the next one when it is done",
                "user",
            )
        if self._slots.locked() and self._waiting >= self.limits.waiting:
            raise self._busy("too many model files are being checked; retry shortly", "server")
        if user_id is not None:
            self._per_user[user_id] += 1
        try:
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
            try:
                yield
            finally:
                self._slots.release()
        finally:
            if user_id is not None:
                self._per_user[user_id] -= 1
                if self._per_user[user_id] <= 0:
                    del self._per_user[user_id]


@dataclass(frozen=True)
class CompileLimits:
    """What converting one version to ONNX and checking it may cost (its own child process):
    past these the version is served by scikit-learn, the reason recorded."""

    memory_bytes: int = 1024 * 1024 * 1024
    cpu_seconds: float = 120.0
    timeout_s: float = 120.0
    max_onnx_bytes: int = 512 * 1024 * 1024
    concurrent: int = 1

    @classmethod
    def of(cls, settings: ManagementSettings) -> CompileLimits:
        seconds = settings.management_compile_time_limit_s
        return cls(
            memory_bytes=settings.management_compile_memory_mb * 1024 * 1024,
            cpu_seconds=seconds,
            timeout_s=seconds,
        )


HELD_OUT = "held-out split"
TRAINING_RECIPE_KEY = "training_recipe"
"""Key of a CSV-trained version's ``metadata.json`` holding how its kept CSV was read and split
(target, dropped and typed columns, test share): what retraining it needs (issue 15)."""
SAMPLED = "sampled from the feature spec (no held-out rows)"


def serving_record(answer: Any) -> dict[str, Any]:
    """A compile child's answer re-typed (the child is untrusted); a fallback if unreadable."""
    if not isinstance(answer, dict) or answer.get("runtime") not in (RUNTIME_ONNX, RUNTIME_SKLEARN):
        return fallback_record("the conversion answered nothing readable")
    diff = answer.get("max_abs_diff")
    layout = answer.get("layout")
    record: dict[str, Any] = {
        "runtime": answer["runtime"],
        "reason": str(answer.get("reason") or "")[:300],
        "max_abs_diff": float(diff) if isinstance(diff, (int, float)) else None,
        "rows_checked": int(answer.get("rows_checked") or 0),
        "rows_source": str(answer.get("rows_source") or "")[:100] or None,
        "layout": layout if isinstance(layout, dict) else None,
        "converter": str(answer.get("converter") or "")[:100] or None,
    }
    if record["runtime"] == RUNTIME_ONNX:
        try:
            InputLayout.from_json(record["layout"] or {})
        except Exception:
            return fallback_record("the conversion answered an unreadable input layout")
    return record


def serving_public(metadata: dict[str, Any]) -> VersionServing | None:
    """A version's serving record as the API shows it (None if it has none yet)."""
    record = metadata.get(SERVING_KEY)
    if not isinstance(record, dict):
        return None
    try:
        return VersionServing.model_validate(
            {k: record.get(k) for k in ("runtime", "max_abs_diff", "rows_source")}
            | {
                "reason": record.get("reason") or None,
                "rows_checked": int(record.get("rows_checked") or 0),
            }
        )
    except (ValidationError, TypeError, ValueError):
        return None


class VersionFacts(Protocol):
    """What a model version records, whether trained here or uploaded."""

    @property
    def task(self) -> Task: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def features(self) -> list[FeatureSpec]: ...
    @property
    def classes(self) -> list[str] | None: ...
    @property
    def metrics(self) -> dict[str, float | None]: ...
    @property
    def target(self) -> str: ...
    @property
    def n_train(self) -> int: ...
    @property
    def n_test(self) -> int: ...


@dataclass
class UploadedModel:
    """An uploaded version: the verified file's bytes and what the form and the check told."""

    data: bytes
    task: Task
    algorithm: str
    features: list[FeatureSpec]
    classes: list[str] | None
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    reference: dict[str, Any] | None = None


class Catalog:
    """Models per owner, versions numbered per model name, artifacts in the model store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: ModelStore,
        verify_limits: VerifyLimits | None = None,
        compile_limits: CompileLimits | None = None,
        csv_limits: CsvLimits | None = None,
    ) -> None:
        self._sessions = sessions
        self.csv_limits = csv_limits or CsvLimits()
        """Bounds of an upload's reference CSV: those of a training CSV."""
        self.store = store
        self.verify_limits = verify_limits or VerifyLimits()
        self.verify_slots = VerifySlots(self.verify_limits)
        self.compile_limits = compile_limits or CompileLimits()
        self._compile_slots = asyncio.Semaphore(max(1, self.compile_limits.concurrent))
        # Every version is compiled in a child: its fork server imports the converter once
        # (when this is the process's first sandbox), not each child.
        preload("infra.compiled", "skl2onnx", "onnxruntime")

    async def list_models(self, principal: Principal) -> list[ModelPublic]:
        async with self._sessions() as session:
            models = (
                await session.scalars(owned_models(principal).order_by(Model.created_at.desc()))
            ).all()
            return [model_public(m) for m in models]

    async def _owned(self, session: AsyncSession, principal: Principal, model_id: str) -> Model:
        model = await session.scalar(owned_models(principal).where(Model.id == model_id))
        if model is None:
            raise NotFound("no such model", details={"model_id": model_id})
        return model

    async def get(self, principal: Principal, model_id: str) -> ModelPublic:
        """A model with, per version, its held-out evaluation, its training job and the
        caller's APIs serving it (the list leaves these out)."""
        async with self._sessions() as session:
            model = await self._owned(session, principal, model_id)
            apis = (
                await session.scalars(
                    serving_apis(principal, model.id).order_by(ExportedApi.created_at)
                )
            ).all()
            jobs = (
                await session.execute(
                    select(TrainingJobRow.version_number, TrainingJobRow.id).where(
                        TrainingJobRow.model_id == model.id,
                        TrainingJobRow.status == JobStatus.SUCCEEDED,
                    )
                )
            ).all()
        public = model_public(model)
        for version in public.versions:
            metadata = await asyncio.to_thread(self.store.metadata, version.id)
            version.serving = serving_public(metadata)
        stored = {v.id: v.evaluation for v in model.versions}
        job_of = {int(number): str(job_id) for number, job_id in jobs if number is not None}
        for version in public.versions:
            version.evaluation = evaluation_of(version.id, stored.get(version.id))
            version.training_job_id = job_of.get(version.number)
            version.apis = [
                VersionApi(id=a.id, name=a.name, status=ApiStatus(a.status))
                for a in apis
                if a.model_version_id == version.id
            ]
        return public

    async def version_reference(
        self, principal: Principal, model_id: str, number: int
    ) -> tuple[ModelVersion, dict[str, Any] | None]:
        """A version of a model the caller may see, with its reference profile (issue 15; None
        for versions trained before migration 0011 and uploaded ones); 404 if there is none."""
        async with self._sessions() as session:
            model = await self._owned(session, principal, model_id)
            for version in model.versions:
                if version.number == number:
                    return version, version.reference
        raise NotFound("no such version", details={"model_id": model_id, "version": number})

    async def check_name(self, owner_id: str, name: str, task: Task) -> None:
        """Refuse early a new version whose task differs from the existing model of that name."""
        async with self._sessions() as session:
            model = await session.scalar(
                select(Model).where(Model.owner_id == owner_id, Model.name == name)
            )
        if model is not None and model.task != task:
            raise InvalidInput(
                f"model {name!r} is a {model.task} model; a new version must be {model.task} too "
                "(or choose another name)",
                details={"name": name, "task": model.task},
            )

    async def add_version(
        self,
        owner_id: str,
        name: str,
        trained: TrainedModel,
        source: str,
        example: dict[str, Any] | None = None,
        image: ImageSpec | None = None,
        training_csv: bytes | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> tuple[Model, ModelVersion]:
        """Save the artifact, then record a new version (number = previous + 1) of ``name``;
        ``image``: its features are the pixels of such images (checked against them);
        ``training_csv`` (kept beside the artifact) and ``recipe`` (how it was read and split,
        in the metadata): what retraining a CSV-trained version needs (issue 15)."""
        if image is not None:
            check_image(image, trained.features)
            image = image_integers(image, trained.features)
        if example is None:
            output = await asyncio.to_thread(example_prediction, trained)
            example = {"input": trained.example, "output": output}
        features = [f.model_dump(mode="json") for f in trained.features]
        if isinstance(trained.estimator, Path):
            onnx, serving = await self.compile(
                trained.estimator, features, trained.check_rows, HELD_OUT
            )
        else:
            with tempfile.TemporaryDirectory(prefix="modelgate-compile-") as tmp:
                path = Path(tmp) / MODEL_FILE
                await asyncio.to_thread(self.store.save_to_file, trained.estimator, path)
                onnx, serving = await self.compile(path, features, trained.check_rows, HELD_OUT)

        def save(version_id: str, metadata: dict[str, Any]) -> Path:
            if recipe is not None:
                metadata = {**metadata, TRAINING_RECIPE_KEY: recipe}
            return self.store.save(
                version_id,
                trained.estimator,
                {**metadata, SERVING_KEY: serving},
                onnx,
                training_csv,
            )

        return await self._add_version(
            owner_id, name, trained, source, example, save, trained.evaluation, image
        )

    async def _add_version(
        self,
        owner_id: str,
        name: str,
        trained: VersionFacts,
        source: str,
        example: dict[str, Any],
        save: Callable[[str, dict[str, Any]], Path],
        evaluation: dict[str, Any] | None = None,
        image: ImageSpec | None = None,
    ) -> tuple[Model, ModelVersion]:
        """Number and record a version; ``save(version_id, metadata)`` writes its artifact."""
        version_id = new_id()
        for _attempt in range(5):
            async with self._sessions() as session:
                model = await session.scalar(
                    select(Model).where(Model.owner_id == owner_id, Model.name == name)
                )
                if model is None:
                    model = Model(
                        id=new_id(), owner_id=owner_id, name=name, task=trained.task.value
                    )
                    session.add(model)
                    await session.flush()
                elif model.task != trained.task.value:
                    raise InvalidInput(
                        f"model {name!r} is a {model.task} model; "
                        f"a new version must be {model.task} too",
                        details={"name": name, "task": model.task},
                    )
                number = (
                    int(
                        await session.scalar(
                            select(func.coalesce(func.max(ModelVersion.number), 0)).where(
                                ModelVersion.model_id == model.id
                            )
                        )
                        or 0
                    )
                    + 1
                )
                metadata = {
                    "model_id": model.id,
                    "model_name": name,
                    "version_number": number,
                    "task": trained.task.value,
                    "algorithm": trained.algorithm,
                    "features": [f.model_dump(mode="json") for f in trained.features],
                    "classes": trained.classes,
                    "target": trained.target,
                    "metrics": trained.metrics,
                    "created_at": utcnow().isoformat(),
                }
                # Saved on every attempt (atomically replacing the last) so the stored
                # metadata carries the number this attempt commits, not a lost race's.
                await asyncio.to_thread(save, version_id, metadata)
                version = ModelVersion(
                    id=version_id,
                    model_id=model.id,
                    number=number,
                    algorithm=trained.algorithm,
                    params=trained.params,
                    metrics=trained.metrics,
                    features=[f.model_dump(mode="json") for f in trained.features],
                    classes=trained.classes,
                    target=trained.target,
                    n_train=trained.n_train,
                    n_test=trained.n_test,
                    source=source,
                    example=example,
                    evaluation=evaluation,
                    image=None if image is None else image.model_dump(mode="json"),
                    reference=getattr(trained, "reference", None),
                )
                session.add(version)
                try:
                    await session.commit()
                except IntegrityError:
                    # Two versions of one name finished at once: take the next number.
                    await session.rollback()
                    continue
                await session.refresh(model, ["versions"])
                return model, version
        raise Conflict(f"could not number a new version of {name!r}; retry")

    async def upload(
        self,
        principal: Principal,
        form: ModelUploadForm,
        data: bytes,
        reference_csv: bytes | None = None,
    ) -> ModelPublic:
        """Accept a ready skops model with its feature schema once a child process verified it.

        The file is never opened here: its archive is bounded first (central directory only),
        then ``verify_model_file`` type-checks and loads it under memory, CPU and time limits
        and answers plain facts; the bytes it accepted are stored with their SHA-256. With
        ``reference_csv`` the version gets a reference profile (issue 15) built in another
        limited child (``reference_profile``); a CSV it refuses refuses the upload.
        """
        if form.task == Task.CLASSIFICATION and not form.classes:
            raise InvalidInput(
                "a classification model needs its classes", details={"field": "classes"}
            )
        names = [f.name for f in form.features]
        if len(set(names)) != len(names):
            raise InvalidInput("feature names must be unique", details={"features": names})
        check_image(form.image, form.features)
        image = None if form.image is None else image_integers(form.image, form.features)
        await self.check_name(principal.user_id, form.name, form.task)
        if reference_csv is not None:
            await self.check_reference_size(reference_csv)  # before the model's child starts
        facts = await self.verify(data, principal.user_id)
        if not facts.get("has_predict"):
            raise InvalidInput("the uploaded object is not a model: it has no predict() method")
        reference = None
        if reference_csv is not None:
            reference = await self.reference_profile(
                principal.user_id, data, reference_csv, form.features, form.task
            )
        uploaded = UploadedModel(
            data=data,
            task=form.task,
            algorithm=str(facts.get("algorithm") or "upload"),
            features=form.features,
            classes=form.classes,
            target=form.target,
            reference=reference,
        )
        example = {"input": placeholder_example(form.features), "output": None}
        with tempfile.TemporaryDirectory(prefix="modelgate-compile-") as tmp:
            path = Path(tmp) / MODEL_FILE
            await asyncio.to_thread(path.write_bytes, data)
            onnx, serving = await self.compile(
                path, [f.model_dump(mode="json") for f in form.features], None, SAMPLED
            )

        def save(version_id: str, metadata: dict[str, Any]) -> Path:
            return self.store.save_verified(
                version_id, uploaded.data, {**metadata, SERVING_KEY: serving}, onnx
            )

        model, _ = await self._add_version(
            principal.user_id, form.name, uploaded, "upload", example, save, image=image
        )
        return model_public(model)

    async def check_reference_size(self, csv_data: bytes) -> None:
        """400 when a reference CSV has more columns, rows or cells than a training CSV may
        (a scan of its raw bytes, no parse)."""
        try:
            await asyncio.to_thread(check_csv_size, csv_data, self.csv_limits)
        except TrainingError as exc:
            raise InvalidInput(
                f"reference CSV: {exc}", details={"field": "reference", **exc.details}
            ) from None

    async def reference_profile(
        self,
        user_id: str,
        model: bytes,
        csv_data: bytes,
        features: list[FeatureSpec],
        task: Task,
    ) -> dict[str, Any]:
        """The reference profile of ``csv_data`` (rows of ``features``) and of the predictions
        of ``model`` (already verified) on them, built in a limited child: the CSV is bounded
        here from its raw bytes like a training CSV, parsed and profiled only in the child.
        Raises the 400 naming missing or mistyped columns, or the limit the CSV passes."""
        await self.check_reference_size(csv_data)
        limits = self.verify_limits
        async with self.verify_slots.take(user_id):
            with tempfile.TemporaryDirectory(prefix="modelgate-reference-") as tmp:
                model_path, csv_path = Path(tmp) / "upload.skops", Path(tmp) / "reference.csv"
                await asyncio.to_thread(model_path.write_bytes, model)
                await asyncio.to_thread(csv_path.write_bytes, csv_data)
                try:
                    answer = await run_limited(
                        profile_reference_file,
                        str(model_path),
                        str(csv_path),
                        [f.model_dump(mode="json") for f in features],
                        task.value,
                        limits_dict(limits.archive),
                        memory_bytes=limits.memory_bytes,
                        cpu_seconds=limits.cpu_seconds,
                        timeout_s=limits.timeout_s,
                        max_result_bytes=REFERENCE_RESULT_BYTES,
                    )
                except SandboxMemoryError as exc:
                    log.warning("profiling a reference CSV: %s", exc)
                    raise PayloadTooLarge(
                        "profiling the reference CSV needs more than "
                        f"{limits.memory_bytes // 2**20} MiB of memory; send fewer rows",
                        details={"field": "reference", "limit": "memory"},
                    ) from None
                except SandboxTimeout:
                    raise PayloadTooLarge(
                        "profiling the reference CSV takes longer than the limit "
                        f"({limits.timeout_s:g} s); send fewer rows",
                        details={"field": "reference", "limit": "time"},
                    ) from None
                except SandboxFailed as exc:
                    log.warning("profiling a reference CSV failed: %s", exc)
                    raise InvalidInput(
                        "the reference CSV could not be profiled", details={"field": "reference"}
                    ) from None
        return profile_of(answer)

    async def verify(self, data: bytes, user_id: str | None = None) -> dict[str, Any]:
        """Check an untrusted skops file (bounds here, types and load in a limited child);
        return ``describe``'s facts, or raise the JSON error that says why it is refused.
        ``user_id``'s checks run one at a time, and only ``concurrent`` ones at once overall
        (``VerifySlots``; 429 past them)."""
        async with self.verify_slots.take(user_id):
            return await self._verify(data)

    async def _verify(self, data: bytes) -> dict[str, Any]:
        limits = self.verify_limits
        try:
            await asyncio.to_thread(check_archive, data, limits.archive)
        except ArchiveTooLargeError as exc:
            raise PayloadTooLarge(
                str(exc), code=MODEL_ARCHIVE_TOO_LARGE, details=exc.details
            ) from None
        except InvalidModelError as exc:
            raise InvalidInput(str(exc), code=INVALID_MODEL_FILE) from None
        with tempfile.TemporaryDirectory(prefix="modelgate-upload-") as tmp:
            path = Path(tmp) / "upload.skops"
            await asyncio.to_thread(path.write_bytes, data)
            try:
                answer = await run_limited(
                    verify_model_file,
                    str(path),
                    limits_dict(limits.archive),
                    memory_bytes=limits.memory_bytes,
                    cpu_seconds=limits.cpu_seconds,
                    timeout_s=limits.timeout_s,
                )
            except SandboxMemoryError:
                raise PayloadTooLarge(
                    f"opening the model needs more than {limits.memory_bytes // 2**20} MiB "
                    "of memory",
                    code=MODEL_TOO_COSTLY,
                    details={"limit": "memory", "memory_bytes": limits.memory_bytes},
                ) from None
            except SandboxTimeout:
                raise PayloadTooLarge(
                    f"opening the model takes longer than the limit ({limits.timeout_s:g} s "
                    f"wall, {limits.cpu_seconds:g} s CPU)",
                    code=MODEL_TOO_COSTLY,
                    details={"limit": "time", "timeout_s": limits.timeout_s},
                ) from None
            except SandboxFailed as exc:
                log.warning("verifying an uploaded model failed: %s", exc)
                raise InvalidInput(
                    "the model file could not be opened", code=INVALID_MODEL_FILE
                ) from None
        return facts_of(answer, await asyncio.to_thread(sha256_of, data))

    async def verify_stored(self) -> None:
        """Verify store entries saved before hashes were recorded (an earlier run's models):
        each is checked like an upload and its hash recorded, or refused with a log line."""
        for version_id in await asyncio.to_thread(self.store.unverified):
            path = self.store.path_of(version_id) / MODEL_FILE
            try:
                data = await asyncio.to_thread(path.read_bytes)
                await self.verify(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = exc.message if isinstance(exc, ServiceError) else str(exc)
                log.warning(
                    "model version %s was saved before verification and fails it (%s); "
                    "predictors will refuse it",
                    version_id,
                    reason,
                )
                continue
            digest = await asyncio.to_thread(sha256_of, data)
            await asyncio.to_thread(self.store.record_verified, version_id, digest)
            log.info("model version %s verified and its hash recorded", version_id)

    async def compile(
        self,
        path: Path,
        features: list[dict[str, Any]],
        rows: list[list[Any]] | None,
        rows_source: str,
    ) -> tuple[bytes | None, dict[str, Any]]:
        """Convert the skops file at ``path`` to ONNX and check it against scikit-learn in a
        limited child process: ``(onnx bytes, serving record)``, or ``(None, record saying why
        scikit-learn serves it)``. A crash or a limit is a fallback, never a failure."""
        limits = self.compile_limits
        with tempfile.TemporaryDirectory(prefix="modelgate-compile-") as tmp:
            out = Path(tmp) / ONNX_FILE
            try:
                async with self._compile_slots:
                    answer = await run_limited(
                        compile_model_file,
                        str(path),
                        features,
                        rows,
                        rows_source if rows else SAMPLED,
                        str(out),
                        memory_bytes=limits.memory_bytes,
                        cpu_seconds=limits.cpu_seconds,
                        timeout_s=limits.timeout_s,
                    )
            except SandboxTimeout:
                return None, fallback_record(
                    f"the ONNX conversion ran past its limit ({limits.timeout_s:g} s)"
                )
            except SandboxMemoryError:
                return None, fallback_record(
                    f"the ONNX conversion needed more than {limits.memory_bytes // 2**20} MiB"
                )
            except SandboxFailed as exc:
                log.warning("converting %s to ONNX failed: %s", path.name, exc)
                return None, fallback_record(f"the ONNX conversion failed: {exc.message[:200]}")
            record = serving_record(answer)
            if record["runtime"] != RUNTIME_ONNX:
                return None, record
            try:
                size = out.stat().st_size
                if size > limits.max_onnx_bytes:
                    return None, fallback_record(f"the ONNX file is too large ({size} bytes)")
                return await asyncio.to_thread(out.read_bytes), record
            except OSError:
                return None, fallback_record("the ONNX conversion wrote no file")

    async def compile_stored(self) -> None:
        """Compile store entries saved before compiled inference (an earlier run's models, the
        demo's), one at a time in the background, on rows sampled from their feature spec."""
        for version_id in await asyncio.to_thread(self.store.uncompiled):
            try:
                metadata = await asyncio.to_thread(self.store.metadata, version_id)
                path = self.store.path_of(version_id) / MODEL_FILE
                data = await asyncio.to_thread(path.read_bytes)
                if await asyncio.to_thread(sha256_of, data) != metadata.get(HASH_KEY):
                    continue  # predictors refuse it anyway
                features = metadata.get("features")
                if not isinstance(features, list):
                    continue
                onnx, serving = await self.compile(path, features, None, SAMPLED)
                await asyncio.to_thread(self.store.record_compiled, version_id, serving, onnx)
                log.info("model version %s compiled: served by %s", version_id, serving["runtime"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("compiling stored model version %s failed", version_id)

    async def delete(self, principal: Principal, model_id: str) -> None:
        async with self._sessions() as session:
            model = await self._owned(session, principal, model_id)
            serving = await session.scalar(
                select(func.count())
                .select_from(ExportedApi)
                .where(ExportedApi.model_id == model.id)
            )
            if serving:
                raise Conflict(
                    "this model is served by exported APIs; delete them first",
                    details={"model_id": model_id, "apis": int(serving)},
                )
            version_ids = [v.id for v in model.versions]
            await session.delete(model)
            await session.commit()
        for version_id in version_ids:
            await asyncio.to_thread(self.store.delete, version_id)


def facts_of(answer: Any, sha256: str) -> dict[str, Any]:
    """``verify_model_file``'s answer as facts, or the JSON error of its refusal."""
    if not isinstance(answer, dict):
        raise InvalidInput("the model file could not be opened", code=INVALID_MODEL_FILE)
    refused = answer.get("refused")
    if isinstance(refused, dict):
        reason = refused.get("reason")
        if reason == "untrusted_types":
            types = [str(t) for t in refused.get("untrusted_types") or []]
            raise InvalidInput(
                "the model contains types that are not allowed (only the scikit-learn "
                "estimators and transformers of the allow-list, and their numpy/scipy data)",
                code=UNTRUSTED_MODEL,
                details={"untrusted_types": types[:50], "count": len(types)},
            )
        message = str(refused.get("message") or "not a valid skops file")
        if reason == "too_large":
            details = refused.get("details")
            raise PayloadTooLarge(
                message,
                code=MODEL_ARCHIVE_TOO_LARGE,
                details=details if isinstance(details, dict) else {},
            )
        raise InvalidInput(message, code=INVALID_MODEL_FILE)
    model = answer.get("model")
    # The child is untrusted: its hash must be of the very bytes this process holds.
    if not isinstance(model, dict) or answer.get("sha256") != sha256:
        raise InvalidInput("the model file could not be opened", code=INVALID_MODEL_FILE)
    return model
