"""Training jobs are bounded: each runs in a child process with a time and a memory limit, users
share the training slots, a job can be cancelled by its owner, and oversized CSVs are refused."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import psutil
from aiohttp import FormData

from management_api.keys import JOBS
from tests.management_support import Api, MakeApi

LONG_JOB = {  # gradient boosting, 10 classes x 1000 stages of depth-10 trees: minutes of work
    "dataset": "digits",
    "algorithm": "gradient_boosting",
    "params": {"n_estimators": 1000, "max_depth": 10, "learning_rate": 0.1},
}


def training_children() -> list[psutil.Process]:
    """Sandbox children of this test process still alive (forked by the fork server, or spawned)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            parent = child.parent()
            forked = parent is not None and "forkserver" in " ".join(parent.cmdline())
            spawned = "spawn_main" in " ".join(child.cmdline())
            if (forked or spawned) and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def submit(api: Api, headers: dict[str, str], name: str, **job: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/models/train", headers, json={"name": name, **job})
    assert status == 202, body
    return dict(body)


async def job_of(api: Api, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    status, job = await api.call("GET", f"/api/training-jobs/{job_id}", headers)
    assert status == 200, job
    return dict(job)


async def wait_finished(
    api: Api, headers: dict[str, str], job_id: str, timeout: float = 90
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await job_of(api, headers, job_id)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.1)


async def wait_training(api: Api, headers: dict[str, str], job_id: str) -> int:
    """Wait until the job's training process runs; its pid."""
    jobs = api.client.app[JOBS]
    deadline = asyncio.get_running_loop().time() + 60
    while (pid := jobs.pid_of(job_id)) is None:
        job = await job_of(api, headers, job_id)
        assert job["status"] in ("queued", "running"), job["error"]
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)
    assert (await job_of(api, headers, job_id))["status"] == "running"
    return pid


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


async def post_csv(api: Api, headers: dict[str, str], data: bytes, target: str) -> Any:
    form = FormData()
    form.add_field("file", data, filename="wide.csv", content_type="text/csv")
    form.add_field("name", "wide")
    form.add_field("target", target)
    form.add_field("algorithm", "random_forest")
    return await api.call("POST", "/api/models/train", headers, data=form)


async def test_a_job_past_its_time_limit_fails_naming_the_limit_and_its_process_is_gone(
    make_api: MakeApi,
) -> None:
    api = await make_api(management_training_time_limit_s=20)
    alice = await api.new_user("alice")
    job = await submit(api, alice, "slow", **LONG_JOB)
    pid = await wait_training(api, alice, job["id"])
    finished = await wait_finished(api, alice, job["id"])
    assert finished["status"] == "failed"
    assert finished["error"] == "exceeded the 20 second limit"
    assert not pid_alive(pid)
    _, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", alice)
    assert any("exceeded the 20 second limit" in line for line in logs["lines"])
    assert any("estimators" in line for line in logs["lines"]), "no progress from the child"
    status, models = await api.call("GET", "/api/models", alice)
    assert status == 200 and models["items"] == []


async def test_a_job_past_its_memory_limit_fails_naming_the_limit_and_its_process_is_gone(
    make_api: MakeApi,
) -> None:
    """250 text columns of 200 values each one-hot encode to 50,000 dense columns: ~640 MB."""
    api = await make_api(management_training_memory_mb=300)
    alice = await api.new_user("alice")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {f"c{i}": np.char.add("v", rng.integers(0, 200, 2000).astype(str)) for i in range(250)}
    )
    frame["y"] = rng.choice(["a", "b"], 2000)
    status, job = await post_csv(api, alice, csv_bytes(frame), "y")
    assert status == 202, job
    pid = await wait_training(api, alice, job["id"])
    finished = await wait_finished(api, alice, job["id"])
    assert finished["status"] == "failed"
    assert finished["error"] == "exceeded 300 MiB memory"
    assert not pid_alive(pid)
    assert training_children() == []


async def test_cancel_kills_a_running_job_and_only_its_owner_or_an_admin_may(
    make_api: MakeApi,
) -> None:
    api = await make_api()
    alice = await api.new_user("alice")
    bob = await api.new_user("bob")
    job = await submit(api, alice, "slow", **LONG_JOB)
    pid = await wait_training(api, alice, job["id"])
    path = f"/api/training-jobs/{job['id']}/cancel"

    assert pid in [child.pid for child in training_children()]
    status, body = await api.call("POST", path, bob)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    assert pid_alive(pid) and (await job_of(api, alice, job["id"]))["status"] == "running"

    status, body = await api.call("POST", path, alice)
    assert status == 200, body
    assert body["status"] == "cancelled" and body["finished_at"] is not None
    assert not pid_alive(pid)
    assert training_children() == []
    status, again = await api.call("POST", path, alice)
    assert status == 200 and again["status"] == "cancelled"
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", alice)
    assert logs["status"] == "cancelled" and any("cancelled" in line for line in logs["lines"])

    # An admin may cancel anyone's job; a finished one is answered as it ended.
    done = await api.train_builtin(alice, "iris")
    status, body = await api.call(
        "POST", f"/api/training-jobs/{done['id']}/cancel", await api.admin()
    )
    assert status == 200 and body["status"] == "succeeded" and body["model_id"]


async def test_one_users_long_job_leaves_a_slot_for_another_users_small_job(
    make_api: MakeApi,
) -> None:
    """Two slots, one per user: Alice's second job queues, Bob's job runs and finishes."""
    api = await make_api(management_training_workers=2, management_training_per_user=1)
    alice = await api.new_user("alice")
    bob = await api.new_user("bob")
    first = await submit(api, alice, "slow", **LONG_JOB)
    pid = await wait_training(api, alice, first["id"])
    second = await submit(api, alice, "slow-too", **LONG_JOB)
    assert second["status"] == "queued" and second["queue_position"] == 1

    small = await submit(api, bob, "iris", dataset="iris", algorithm="logistic_regression")
    finished = await wait_finished(api, bob, small["id"])
    assert finished["status"] == "succeeded", finished
    assert (await job_of(api, alice, first["id"]))["status"] == "running"
    waiting = await job_of(api, alice, second["id"])
    assert waiting["status"] == "queued" and waiting["queue_position"] == 1

    # Cancelling the queued job takes it out of the queue; it never starts.
    status, body = await api.call("POST", f"/api/training-jobs/{second['id']}/cancel", alice)
    assert status == 200 and body["status"] == "cancelled" and body["queue_position"] is None
    status, body = await api.call("POST", f"/api/training-jobs/{first['id']}/cancel", alice)
    assert status == 200 and body["status"] == "cancelled"
    assert not pid_alive(pid)
    assert api.client.app[JOBS].pid_of(second["id"]) is None


async def test_a_csv_over_the_column_row_or_cell_limit_is_a_clear_400_and_nothing_trains(
    make_api: MakeApi,
) -> None:
    api = await make_api(management_csv_max_rows=1000, management_csv_max_cells=20_000)
    alice = await api.new_user("alice")
    wide = ",".join(f"f{i}" for i in range(20_000)).encode() + b"\n"
    wide += b"\n".join(b",".join([b"1"] * 20_000) for _ in range(3)) + b"\n"

    status, body = await post_csv(api, alice, wide, "f0")
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_INPUT"
    assert "19,999 feature columns" in body["error"]["message"]
    assert "at most 1,000" in body["error"]["message"]
    assert body["error"]["details"]["limit"] == "max_features"

    long = csv_bytes(pd.DataFrame({"x": range(1001), "y": [0, 1] * 500 + [0]}))
    status, body = await post_csv(api, alice, long, "y")
    assert status == 400 and body["error"]["details"]["limit"] == "max_rows", body
    assert "1,001 rows; at most 1,000" in body["error"]["message"]

    cells = csv_bytes(pd.DataFrame({f"f{i}": range(900) for i in range(30)}))
    status, body = await post_csv(api, alice, cells, "f0")
    assert status == 400 and body["error"]["details"]["limit"] == "max_cells", body

    status, models = await api.call("GET", "/api/models", alice)
    assert models["items"] == []
    assert training_children() == []
