"""Training jobs: queued, run in a worker thread off the event loop,
with progress and a live log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from management_api.accounts import Principal
from management_api.catalog import Catalog
from management_api.db import TrainingJobRow, new_id, utcnow
from management_api.errors import InvalidInput, NotFound
from management_api.training import TrainingError, infer_task, resolve_params, train
from schemas import Task
from schemas.resources import JobStatus, TrainingJob, TrainingLogs

log = logging.getLogger(__name__)

MAX_FINISHED_IN_MEMORY = 100
DataLoader = Callable[[], tuple[pd.DataFrame, str]]


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

    def public(self) -> TrainingJob:
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
        )

    def say(self, line: str, progress: float | None = None) -> None:
        stamp = utcnow().strftime("%H:%M:%S")
        self.lines.append(f"[{stamp}] {line}")
        if progress is not None:
            self.progress = progress


def training_error(exc: TrainingError) -> InvalidInput:
    return InvalidInput(str(exc), details=exc.details)


class TrainingJobs:
    """Runs training jobs in a thread pool and keeps their state and log."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], catalog: Catalog, workers: int = 1
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="training")
        self._jobs: dict[str, JobState] = {}
        self._tasks: set[asyncio.Task[None]] = set()

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
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit_builtin(
        self,
        principal: Principal,
        name: str,
        dataset: str,
        algorithm: str,
        params: dict[str, Any],
        test_size: float,
    ) -> TrainingJob:
        from management_api.training import DATASETS, load_dataset

        task = DATASETS[dataset][1]
        try:
            resolve_params(algorithm, task, params)
        except TrainingError as exc:
            raise training_error(exc) from exc
        await self._catalog.check_name(principal.user_id, name, task)

        def loader() -> tuple[pd.DataFrame, str]:
            frame, target, _ = load_dataset(dataset)
            frame = frame.copy()
            frame["target"] = target
            return frame, "target"

        return await self._submit(
            principal, name, loader, algorithm, params, task, test_size, f"builtin:{dataset}"
        )

    async def submit_csv(
        self,
        principal: Principal,
        name: str,
        frame: pd.DataFrame,
        filename: str,
        target: str,
        algorithm: str,
        params: dict[str, Any],
        task: Task | None,
        test_size: float,
    ) -> TrainingJob:
        if target not in frame.columns:
            raise InvalidInput(
                f"target column {target!r} is not in the CSV",
                details={"target": target, "columns": [str(c) for c in frame.columns]},
            )
        if frame.shape[1] < 2:
            raise InvalidInput("the CSV needs at least one feature column besides the target")
        resolved_task = task or infer_task(frame[target])
        if resolved_task == Task.REGRESSION and not pd.api.types.is_numeric_dtype(frame[target]):
            raise InvalidInput(
                f"regression needs a numeric target; {target!r} holds text",
                details={"target": target, "task": resolved_task.value},
            )
        try:
            resolve_params(algorithm, resolved_task, params)
        except TrainingError as exc:
            raise training_error(exc) from exc
        await self._catalog.check_name(principal.user_id, name, resolved_task)
        return await self._submit(
            principal,
            name,
            lambda: (frame, target),
            algorithm,
            params,
            resolved_task,
            test_size,
            f"csv:{filename}",
        )

    async def _submit(
        self,
        principal: Principal,
        name: str,
        loader: DataLoader,
        algorithm: str,
        params: dict[str, Any],
        task: Task,
        test_size: float,
        source: str,
    ) -> TrainingJob:
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
        self._jobs[state.id] = state
        task_ = asyncio.create_task(
            self._run(state, loader, algorithm, params, task, test_size, source)
        )
        self._tasks.add(task_)
        task_.add_done_callback(self._tasks.discard)
        return state.public()

    async def _run(
        self,
        state: JobState,
        loader: DataLoader,
        algorithm: str,
        params: dict[str, Any],
        task: Task,
        test_size: float,
        source: str,
    ) -> None:
        loop = asyncio.get_running_loop()

        def work() -> Any:
            state.status = JobStatus.RUNNING
            state.say("running", 0.02)
            frame, target = loader()
            return train(frame, target, algorithm, params, task, test_size, report=state.say)

        try:
            trained = await loop.run_in_executor(self._executor, work)
            state.say("saving the model version", 0.95)
            model, version = await self._catalog.add_version(
                state.owner_id, state.model_name, trained, source
            )
            state.model_id, state.version_number = model.id, version.number
            state.status = JobStatus.SUCCEEDED
            state.say(f"done: {state.model_name!r} version {version.number}", 1.0)
        except asyncio.CancelledError:
            state.status, state.error = JobStatus.FAILED, "cancelled (service stopping)"
            raise
        except TrainingError as exc:
            state.status, state.error = JobStatus.FAILED, str(exc)
            state.say(f"failed: {exc}")
        except InvalidInput as exc:
            state.status, state.error = JobStatus.FAILED, exc.message
            state.say(f"failed: {exc.message}")
        except Exception as exc:
            log.exception("training job %s failed", state.id)
            state.status, state.error = (
                JobStatus.FAILED,
                f"training failed: {type(exc).__name__}: {exc}",
            )
            state.say(f"failed: {type(exc).__name__}: {exc}")
        finally:
            state.finished_at = utcnow()
            await asyncio.shield(self._persist(state))
            self._forget_old()

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

    async def get(self, principal: Principal, job_id: str) -> TrainingJob:
        return (await self._state(principal, job_id)).public()

    async def logs(self, principal: Principal, job_id: str, after: int) -> TrainingLogs:
        state = await self._state(principal, job_id)
        lines = list(state.lines)
        return TrainingLogs(lines=lines[after:], next=len(lines), status=state.status)
