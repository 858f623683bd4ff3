"""`modelgate up` refuses to start without RabbitMQ and says exactly how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.services import free_port


def test_up_without_rabbitmq_exits_with_the_fix() -> None:
    """A broker URL nobody answers on: exit code 1 and a message naming the command to run."""
    port = free_port()
    env = {**os.environ, "MODELGATE_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/"}
    result = subprocess.run(
        [sys.executable, "-m", "modelgate.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "RabbitMQ is not reachable" in result.stderr
    assert "rabbitmq-server -detached" in result.stderr
    assert "MODELGATE_RABBITMQ_URL" in result.stderr
