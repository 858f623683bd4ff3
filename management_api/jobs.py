"""Training jobs: queued fairly between users, each run in its own child process under a time and
a memory limit, cancellable, with progress and a live log streamed back from the child.

A job waits in one queue (oldest first) until a slot of the global pool is free and its owner has
fewer than ``per_user`` jobs running, so one user's huge job cannot hold every slot. The fit runs in
``infra.sandbox``'s child process (``fitting.train_job``): killed past the time limit, failing past
the memory limit, killed on cancel; the API's event loop and threads never train.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.model_store import ModelStore
from infra.sandbox import SandboxFailed, SandboxMemoryError, SandboxTimeout, run_limited
from management_api.accounts import Principal
from management_api.algorithms import resolve_params
from management_api.catalog import Catalog, serving_public
from management_api.datasets import (
    DATASETS,
    ColumnChoices,
    CsvLimits,
    TrainingError,
    check_column_choices,
    check_csv_size,
    infer_task,
    inspect_csv,
)
from management_api.db import TrainingJobRow, new_id, utcnow
from management_api.errors import InvalidInput, NotFound, TooManyRequests
from management_api.fitting import train_job, trained_from_job
from management_api.images import check_image_count, image_of_dataset
from management_api.settings import ManagementSettings
from schemas import ImageSpec, Task
from schemas.resources import JobStatus, ServingRuntime, TrainingJob, TrainingLogs

log = logging.getLogger(__name__)

MAX_FINISHED_IN_MEMORY = 100
MAX_LOG_LINES = 2000
RESULT_BYTES = 32 * 1024 * 1024
"""Cap on a training process's JSON answer (metadata and example; the model goes by file)."""

CANCEL_WAIT_S = 30.0
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def duration_text(seconds: float) -> str:
    """``600`` → ``10 minute``, ``90`` → ``90 second``: how a limit reads in a job's error."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute"
    return f"{seconds:g} second"


def memory_text(mb: int) -> str:
    """``2048`` → ``2 GiB``, ``300`` → ``300 MiB``."""
    return f"{mb // 1024} GiB" if mb % 1024 == 0 else f"{mb} MiB"


@dataclass(frozen=True)
class TrainingLimits:
    """How many jobs run at once (in all, per user), how many may wait, and each one's bounds."""

    workers: int = 2
    per_user: int = 1
    queued_per_user: int = 10
    time_limit_s: float = 600.0
    memory_mb: int = 2048
    csv: CsvLimits = field(default_factory=CsvLimits)

    @classmethod
    def of(cls, settings: ManagementSettings) -> TrainingLimits:
        return cls(
            workers=max(1, settings.management_training_workers),
            per_user=max(1, settings.management_training_per_user),
            queued_per_user=max(0, settings.management_training_queued_per_user),
            time_limit_s=settings.management_training_time_limit_s,
            memory_mb=settings.management_training_memory_mb,
            csv=CsvLimits(
                max_features=settings.management_csv_max_features,
                max_rows=settings.management_csv_max_rows,
                max_cells=settings.management_csv_max_cells,
            ),
        )


@dataclass
class JobState:
    """A job while this process runs it; the row in the DB is its durable record."""

    id: str
    owner_id: str
    model_name: str
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    lines: list[str] = field(default_factory=list)
    model_id: str | None = None
    version_number: int | None = None
    error: str | None = None
    finished_at: datetime | None = None
    pid: int | None = None
    """The training process while it runs (tests check it is gone after a kill)."""

    def public(self, queue_position: int | None = None) -> TrainingJob:
        return TrainingJob(
            id=self.id,
            status=self.status,
            progress=round(min(max(self.progress, 0.0), 1.0), 4),
            model_name=self.model_name,
            model_id=self.model_id,
            version_number=self.version_number,
            error=self.error,
            created_at=self.created_at,
            finished_at=self.finished_at,
            queue_position=queue_position,
        )

    def say(self, line: str, progress: float | None = None) -> None:
        if len(self.lines) < MAX_LOG_LINES:
            stamp = utcnow().strftime("%H:%M:%S")
            self.lines.append(f"[{stamp}] {line}")
        if progress is not None:
            self.progress = progress

    def heard(self, item: Any) -> None:
        """A report from the training process: its pid, or a log line with progress."""
        if not isinstance(item, dict):
            return
        if isinstance(item.get("pid"), int):
            self.pid = item["pid"]
        line, progress = item.get("line"), item.get("progress")
        if isinstance(line, str):
            self.say(line[:2000], float(progress) if isinstance(progress, int | float) else None)


@dataclass
class Job:
    """A submitted job: its state and what its training process needs."""

    state: JobState
    work: dict[str, Any]
    source: str
    image: ImageSpec | None = None
    """The version's features are the pixels of such images (issue 14)."""
    task: asyncio.Task[None] | None = None
    started: bool = False
    """Its task runs (cancelling the task now reaches its clean-up)."""
    saving: bool = False
    """The fit is done and the version is being saved: cancel no longer interrupts it."""
    cancel_requested: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


async def wait_gone(pid: int | None, timeout: float = 30.0) -> None:
    """Wait (briefly) until a killed training process has exited, so ``cancelled`` means gone."""
    if pid is None:
        return
    for _ in range(int(timeout / 0.02)):
        if not process_alive(pid):
            return
        await asyncio.sleep(0.02)


def kept_csv(work: dict[str, Any]) -> tuple[bytes | None, dict[str, Any] | None]:
    """The CSV a job trains on (``None`` for a built-in dataset) and how it reads and splits
    it: kept with the version so that it can be trained again on the same recipe."""
    data = work.get("csv")
    if not isinstance(data, bytes):
        return None, None
    return data, {
        "target": work["target"],
        "drop_columns": list(work.get("drop_columns") or []),
        "column_types": dict(work.get("column_types") or {}),
        "test_size": work["test_size"],
    }


def training_error(exc: TrainingError) -> InvalidInput:
    return InvalidInput(str(exc), details=exc.details)


def failure_message(exc: SandboxFailed) -> str:
    """A training process's exception as the job's error: data problems as they are worded."""
    if exc.error_type.endswith(".TrainingError"):
        return exc.message
    if not exc.error_type:
        return f"training failed: {exc.message}"
    return f"training failed: {exc.error_type.rsplit('.', 1)[-1]}: {exc.message}"


class TrainingJobs:
    """Queues training jobs per user, runs each in a limited child process, keeps state and log."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        limits: TrainingLimits | None = None,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self.limits = limits or TrainingLimits()
        self._jobs: dict[str, JobState] = {}
        self._queue: list[Job] = []
        self._running: dict[str, Job] = {}
        self._closing = False

    @property
    def store(self) -> ModelStore:
        """The model store versions are saved in (retraining reads a version's kept CSV)."""
        return self._catalog.store

    async def recover(self) -> None:
        """Jobs that were running when the service stopped will never finish: mark them failed."""
        async with self._sessions() as session:
            await session.execute(
                update(TrainingJobRow)
                .where(TrainingJobRow.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                .values(
                    status=JobStatus.FAILED, error="interrupted by a restart", finished_at=utcnow()
                )
            )
            await session.commit()

    async def close(self) -> None:
        """Stop: running jobs' processes are killed (their jobs fail), queued jobs never start."""
        self._closing = True
        tasks = [job.task for job in self._running.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- submitting ---------------------------------------------------------------------------

    async def submit_builtin(
        self,
        principal: Principal,
        name: str,
        dataset: str,
        algorithm: str,
        params: dict[str, Any],
        test_size: float,
        extra_rows: list[dict[str, Any]] | None = None,
    ) -> TrainingJob:
        """Queue a job on a built-in dataset; ``extra_rows`` (feature values and ``target``, e.g.
        an API's feedback joined to its logged inputs) are added to the dataset's rows."""
        task = DATASETS[dataset][1]
        try:
            resolve_params(algorithm, task, params)
        except TrainingError as exc:
            raise training_error(exc) from exc
        await self._catalog.check_name(principal.user_id, name, task)
        work: dict[str, Any] = {"dataset": dataset, "target": "target"}
        if extra_rows:
            work["extra_rows"] = extra_rows
        return await self._submit(
            principal,
            name,
            work,
            algorithm,
            params,
            task,
            test_size,
            f"builtin:{dataset}",
            image_of_dataset(dataset),
        )

    async def submit_csv(
        self,
        principal: Principal,
        name: str,
        data: bytes,
        filename: str,
        target: str,
        algorithm: str,
        params: dict[str, Any],
        task: Task | None,
        test_size: float,
        choices: ColumnChoices | None = None,
        image: ImageSpec | None = None,
        extra_rows: list[dict[str, Any]] | None = None,
    ) -> TrainingJob:
        """Check a CSV's size, header and target column (off the loop), then queue its job;
        ``choices`` (columns dropped or typed by the user) are checked against the header, and
        declared ``image`` pixels against the feature columns; ``extra_rows`` (feature values
        and ``target``'s, e.g. an API's feedback) are added to the CSV's rows. The version keeps
        the CSV and how it was read, so it can be retrained (issue 15)."""
        try:
            await asyncio.to_thread(check_csv_size, data, self.limits.csv)
            columns, target_values = await asyncio.to_thread(inspect_csv, data, target)
        except TrainingError as exc:
            raise training_error(exc) from exc
        if target_values is None:
            raise InvalidInput(
                f"target column {target!r} is not in the CSV",
                details={"target": target, "columns": columns[:100], "n_columns": len(columns)},
            )
        if len(columns) < 2:
            raise InvalidInput("the CSV needs at least one feature column besides the target")
        choices = choices or ColumnChoices()
        try:
            await asyncio.to_thread(check_column_choices, data, columns, target, choices)
        except TrainingError as exc:
            raise training_error(exc) from exc
        if image is not None:
            dropped = set(choices.drop)
            check_image_count(image, sum(1 for c in columns if c != target and c not in dropped))
            categorical = [c for c, kind in choices.types.items() if kind == "categorical"]
            if categorical:
                raise InvalidInput(
                    "the pixel columns of images must be numeric",
                    details={"field": "image", "categorical": categorical[:20]},
                )
        resolved_task = task or infer_task(target_values)
        if resolved_task == Task.REGRESSION and not pd.api.types.is_numeric_dtype(target_values):
            raise InvalidInput(
                f"regression needs a numeric target; {target!r} holds text",
                details={"target": target, "task": resolved_task.value},
            )
        del target_values
        try:
            resolve_params(algorithm, resolved_task, params)
        except TrainingError as exc:
            raise training_error(exc) from exc
        await self._catalog.check_name(principal.user_id, name, resolved_task)
        work = {"csv": data, "target": target, **choices.as_job()}
        if extra_rows:
            work["extra_rows"] = extra_rows
        return await self._submit(
            principal,
            name,
            work,
            algorithm,
            params,
            resolved_task,
            test_size,
            f"csv:{filename}",
            image,
        )

    async def _submit(
        self,
        principal: Principal,
        name: str,
        work: dict[str, Any],
        algorithm: str,
        params: dict[str, Any],
        task: Task,
        test_size: float,
        source: str,
        image: ImageSpec | None = None,
    ) -> TrainingJob:
        waiting = sum(1 for job in self._queue if job.state.owner_id == principal.user_id)
        if waiting >= self.limits.queued_per_user:
            raise TooManyRequests(
                f"you already have {waiting} training jobs waiting; wait for one to start "
                "or cancel one",
                details={"queued": waiting, "max_queued": self.limits.queued_per_user},
            )
        state = JobState(
            id=new_id(), owner_id=principal.user_id, model_name=name, created_at=utcnow()
        )
        state.say(f"queued: train {name!r} from {source}")
        async with self._sessions() as session:
            session.add(
                TrainingJobRow(
                    id=state.id,
                    owner_id=state.owner_id,
                    model_name=name,
                    status=state.status,
                    progress=0.0,
                    log="\n".join(state.lines),
                    created_at=state.created_at,
                )
            )
            await session.commit()
        work = {
            **work,
            "algorithm": algorithm,
            "params": params,
            "task": task.value,
            "test_size": test_size,
        }
        self._jobs[state.id] = state
        self._queue.append(Job(state, work, source, image))
        self._dispatch()
        position = self._position(state.id)
        if position is not None:
            state.say(f"waiting for a training slot (position {position} in the queue)")
        return state.public(position)

    # --- scheduling ---------------------------------------------------------------------------

    def _position(self, job_id: str) -> int | None:
        for index, job in enumerate(self._queue):
            if job.state.id == job_id:
                return index + 1
        return None

    def _dispatch(self) -> None:
        """Start waiting jobs, oldest first, while a slot is free and their owner has a share."""
        if self._closing:
            return
        for job in list(self._queue):
            if len(self._running) >= self.limits.workers:
                return
            owner = job.state.owner_id
            mine = sum(1 for j in self._running.values() if j.state.owner_id == owner)
            if mine >= self.limits.per_user:
                continue
            self._queue.remove(job)
            self._running[job.state.id] = job
            job.task = asyncio.create_task(self._run(job), name=f"training:{job.state.id}")

    def _artifact_path(self, job_id: str) -> Path:
        root = self._catalog.store.root
        root.mkdir(parents=True, exist_ok=True)
        return root / f".training-{job_id}.skops"

    async def _run(self, job: Job) -> None:
        job.started = True
        state, limits = job.state, self.limits
        artifact = self._artifact_path(state.id)
        # How the job ends unless it succeeds: (status, error, last log line), published after
        # its process is gone.
        ending: tuple[JobStatus, str | None, str | None] = (
            JobStatus.FAILED,
            "interrupted: the service stopped",
            None,
        )
        state.status = JobStatus.RUNNING
        state.say(
            f"running in a training process (limits: {duration_text(limits.time_limit_s)}s, "
            f"{memory_text(limits.memory_mb)} of memory)",
            0.02,
        )
        try:
            if job.cancel_requested:  # cancelled between its dispatch and its start
                raise asyncio.CancelledError
            result = await run_limited(
                train_job,
                {**job.work, "artifact": str(artifact)},
                memory_bytes=limits.memory_mb * 1024 * 1024,
                # A backstop if this process dies and nobody kills the child; the wall
                # clock limit below is the one users meet.
                cpu_seconds=limits.time_limit_s * (os.cpu_count() or 1) + 60,
                timeout_s=limits.time_limit_s,
                max_result_bytes=RESULT_BYTES,
                progress=state.heard,
            )
            if job.cancel_requested:
                raise asyncio.CancelledError
            job.saving = True
            trained = trained_from_job(result, artifact)
            state.say("saving the model version", 0.95)
            model, version = await self._catalog.add_version(
                state.owner_id,
                state.model_name,
                trained,
                job.source,
                result["example"],
                job.image,
                *kept_csv(job.work),
            )
            state.model_id, state.version_number = model.id, version.number
            state.say(await self._runtime_line(version.id))
            state.status = JobStatus.SUCCEEDED
            state.say(f"done: {state.model_name!r} version {version.number}", 1.0)
        except asyncio.CancelledError:
            if not job.cancel_requested:
                ending = (JobStatus.FAILED, "interrupted: the service stopped", None)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            ending = (
                JobStatus.CANCELLED,
                "cancelled by a user",
                "cancelled: the training process was stopped",
            )
        except SandboxTimeout:
            error = f"exceeded the {duration_text(limits.time_limit_s)} limit"
            ending = (JobStatus.FAILED, error, f"failed: {error}; the training process was stopped")
        except SandboxMemoryError:
            error = f"exceeded {memory_text(limits.memory_mb)} memory"
            ending = (JobStatus.FAILED, error, f"failed: {error}; the training process was stopped")
        except SandboxFailed as exc:
            error = failure_message(exc)
            ending = (JobStatus.FAILED, error, f"failed: {error}")
        except InvalidInput as exc:
            ending = (JobStatus.FAILED, exc.message, f"failed: {exc.message}")
        except Exception as exc:
            log.exception("training job %s failed", state.id)
            ending = (
                JobStatus.FAILED,
                f"training failed: {type(exc).__name__}: {exc}",
                f"failed: {type(exc).__name__}: {exc}",
            )
        finally:
            if state.status != JobStatus.SUCCEEDED:
                # A failed or cancelled job says so only once its process is gone.
                await asyncio.shield(wait_gone(state.pid))
                state.status, state.error, message = ending
                if message is not None:
                    state.say(message)
            artifact.unlink(missing_ok=True)
            state.finished_at = utcnow()
            await asyncio.shield(self._persist(state))
            self._running.pop(state.id, None)
            job.done.set()
            self._forget_old()
            self._dispatch()

    # --- cancelling ---------------------------------------------------------------------------

    async def cancel(self, principal: Principal, job_id: str) -> TrainingJob:
        """Cancel a queued or training job (its process is killed); a finished job stays as is."""
        state = await self._state(principal, job_id)
        queued = next((job for job in self._queue if job.state.id == job_id), None)
        if queued is not None:
            self._queue.remove(queued)
            state.status, state.error = JobStatus.CANCELLED, "cancelled by a user"
            state.say("cancelled before it started")
            state.finished_at = utcnow()
            await self._persist(state)
            queued.done.set()
            self._forget_old()
            return state.public()
        running = self._running.get(job_id)
        if running is not None:
            if not running.saving and not running.cancel_requested:
                running.cancel_requested = True
                if running.started and running.task is not None:
                    running.task.cancel()
            # Saving a finished fit is not interrupted: the answer says how the job ended.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running.done.wait()), CANCEL_WAIT_S)
        return state.public(self._position(job_id))

    # --- reading ------------------------------------------------------------------------------

    def _forget_old(self) -> None:
        """Finished jobs beyond the most recent few are served from the DB, not memory."""
        finished = [j for j in self._jobs.values() if j.finished_at is not None]
        for job in finished[: max(0, len(finished) - MAX_FINISHED_IN_MEMORY)]:
            del self._jobs[job.id]

    async def _persist(self, state: JobState) -> None:
        try:
            async with self._sessions() as session:
                row = await session.get(TrainingJobRow, state.id)
                if row is not None:
                    row.status = state.status
                    row.progress = state.progress
                    row.model_id = state.model_id
                    row.version_number = state.version_number
                    row.error = state.error
                    row.log = "\n".join(state.lines)
                    row.finished_at = state.finished_at
                    await session.commit()
        except Exception:
            log.exception("could not record the outcome of training job %s", state.id)

    async def _state(self, principal: Principal, job_id: str) -> JobState:
        state = self._jobs.get(job_id)
        if state is None:
            async with self._sessions() as session:
                row = await session.get(TrainingJobRow, job_id)
            if row is not None:
                state = JobState(
                    id=row.id,
                    owner_id=row.owner_id,
                    model_name=row.model_name,
                    created_at=row.created_at,
                    status=JobStatus(row.status),
                    progress=row.progress,
                    lines=row.log.split("\n") if row.log else [],
                    model_id=row.model_id,
                    version_number=row.version_number,
                    error=row.error,
                    finished_at=row.finished_at,
                )
        if state is None or (state.owner_id != principal.user_id and not principal.is_admin):
            raise NotFound("no such training job", details={"job_id": job_id})
        return state

    def pid_of(self, job_id: str) -> int | None:
        """The pid of a job's training process as last reported (None before it started)."""
        state = self._jobs.get(job_id)
        return None if state is None else state.pid

    async def get(self, principal: Principal, job_id: str) -> TrainingJob:
        return (await self._state(principal, job_id)).public(self._position(job_id))

    async def _runtime_line(self, version_id: str) -> str:
        """The training log's line on how predictors will run the new version."""
        try:
            metadata = await asyncio.to_thread(self._catalog.store.metadata, version_id)
        except Exception:
            return "served by: unknown (its metadata could not be read)"
        serving = serving_public(metadata)
        if serving is None:
            return "served by: scikit-learn (no ONNX check recorded)"
        if serving.runtime is ServingRuntime.ONNX:
            diff = serving.max_abs_diff
            return (
                f"served by: onnxruntime (agrees with scikit-learn on {serving.rows_checked} "
                f"check rows, largest difference {diff if diff is not None else 0:.1e})"
            )
        return f"served by: scikit-learn ({serving.reason or 'no reason recorded'})"

    async def logs(self, principal: Principal, job_id: str, after: int) -> TrainingLogs:
        state = await self._state(principal, job_id)
        lines = list(state.lines)
        return TrainingLogs(lines=lines[after:], next=len(lines), status=state.status)
