"""The curl command the export answers (and the export modal shows) works when pasted into a shell:
run as printed with ``sh -c`` against the whole stack, it gets a 200 prediction, even when the
example's values hold single quotes, double quotes, ``$`` and backticks (issue 11)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest

from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

# Every category carries a single quote, so whichever held-out row is the example, the body does.
PLANS = ["l'basic", "o'plus", 'it\'s $HOME "pro" `id`']


def quoted_csv(rows: int = 160, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "plan": rng.choice(PLANS, rows),
        }
    )
    frame["churned"] = np.where((frame["plan"] == PLANS[0]) & (frame["age"] > 40), "yes", "no")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


class User:
    def __init__(self, session: aiohttp.ClientSession, stack: Stack) -> None:
        self.session, self.stack = session, stack
        self.headers: dict[str, str] = {}

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        url = self.stack.management_url + path
        async with self.session.request(method, url, headers=headers, **kwargs) as r:
            body = await r.json(content_type=None)
            assert r.status == expect, f"{method} {path}: {r.status} {body}"
            return body

    async def login(self, username: str, password: str) -> None:
        body = {"username": username, "password": password}
        token = await self.call("POST", "/api/auth/token", json=body)
        self.headers = {"Authorization": "Bearer " + token["access_token"]}


@pytest.fixture
async def user(stack: Stack) -> AsyncIterator[User]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        admin = User(session, stack)
        await admin.login(stack.admin_username, stack.admin_password)
        username, password = f"curl{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        body = {"username": username, "password": password}
        await admin.call("POST", "/api/users", expect=201, json=body)
        client = User(session, stack)
        await client.login(username, password)
        yield client


def run_in_shell(command: str) -> dict[str, Any]:
    """The command as a user pastes it into a POSIX shell; its output decoded as JSON."""
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, (command, result.stderr)
    return dict(json.loads(result.stdout))


async def predicted(command: str) -> dict[str, Any]:
    """The command's first answer holding a prediction. Ingress learns of a new API from a control
    event, so a call sent the same instant as the export's answer can find it unknown yet (404)
    or its model still loading; bounded: 30 tries over about 15 s, all answers in the failure."""
    answers = []
    for _ in range(30):
        answer = await asyncio.to_thread(run_in_shell, command)
        if "prediction" in answer:
            return answer
        answers.append(answer)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no prediction in 30 answers: {answers[:3]} ... {answers[-1]}")


async def test_the_export_answers_a_curl_command_that_works_as_pasted(user: User) -> None:
    form = aiohttp.FormData()
    form.add_field("file", quoted_csv(), filename="quoted.csv", content_type="text/csv")
    for name, value in (("name", "quoted"), ("target", "churned"), ("algorithm", "random_forest")):
        form.add_field(name, value)
    job = await user.call("POST", "/api/models/train", expect=202, data=form)
    for _ in range(600):
        if job["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
        job = await user.call("GET", f"/api/training-jobs/{job['id']}")
    assert job["status"] == "succeeded", job

    created = await user.call(
        "POST",
        f"/api/export/{job['model_id']}",
        expect=201,
        json={"name": "quoted", "rate_limit_per_minute": 1000},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    example = created["example_request"]
    assert example["plan"] in PLANS and "'" in example["plan"]
    curl = created["curl"]
    assert created["api_key"] in curl and created["api_url"] in curl
    assert "'\"'\"'" in curl  # the single quote inside the value, escaped for the shell
    assert "{ ... }" not in curl

    answer = await predicted(curl)
    assert answer["prediction"] in ("yes", "no"), answer
    assert set(answer["probabilities"]) == {"yes", "no"}

    # The per-API docs' command too, once the key is filled in.
    docs = await user.call("GET", f"/api/exports/{created['api']['id']}/docs")
    assert docs["example_request"] == example
    answer = await predicted(docs["curl"].replace("YOUR_API_KEY", created["api_key"]))
    assert answer["prediction"] in ("yes", "no"), answer
