"""A broker session whose setup the broker never finishes is dropped and opened again.

Seen in CI: an ingress whose control-queue declare (or bind) got no answer stayed unready for good
(minutes), although RabbitMQ answered everyone else. Here a TCP proxy in front of the real broker
swallows the first connection's declare of the control queue, as such a broker would; the ingress
must give that session up and become ready on a second connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from infra.localnet import free_port
from ingress.app import create_app
from tests.prediction_fixtures import (
    IRIS_ROW,
    PredictionWorld,
    expected_prediction,
    ingress_settings,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

PROTOCOL_HEADER = 8
QUEUE_DECLARE = (50, 10)
FRAME_METHOD = 1


@dataclass
class SwallowingProxy:
    """Forwards 127.0.0.1:port to the broker. On the first connection only, all that the
    client sends from its first declare of a ``.control.`` queue on is dropped: the broker
    never sees it."""

    broker_host: str
    broker_port: int
    port: int = field(default_factory=free_port)
    connections: int = 0
    swallowed: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        swallow = self.connections == 1
        broker_r, broker_w = await asyncio.open_connection(self.broker_host, self.broker_port)
        up = asyncio.create_task(self._client_to_broker(client_r, broker_w, swallow))
        down = asyncio.create_task(self._pipe(broker_r, client_w))
        self._tasks.update((up, down))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_w, broker_w):
                with contextlib.suppress(Exception):
                    writer.close()
            self._tasks.difference_update((up, down))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _client_to_broker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, swallow: bool
    ) -> None:
        writer.write(await reader.readexactly(PROTOCOL_HEADER))
        swallowing = False
        while True:
            head = await reader.readexactly(7)
            kind, _channel, size = struct.unpack(">BHI", head)
            rest = await reader.readexactly(size + 1)
            payload = rest[:size]
            if swallow and not swallowing and kind == FRAME_METHOD:
                class_id, method_id = struct.unpack(">HH", payload[:4])
                if (class_id, method_id) == QUEUE_DECLARE:
                    name_length = payload[6]
                    name = payload[7 : 7 + name_length].decode()
                    swallowing = ".control." in name
            if swallowing:
                self.swallowed += 1
                continue
            writer.write(head + rest)
            await writer.drain()


async def test_a_setup_the_broker_leaves_unanswered_is_redone_on_a_new_connection(
    world: PredictionWorld,
    start_worker: Any,
    rabbitmq_url: str,
    namespace: str,
    model_store: Path,
) -> None:
    runners: list[web.AppRunner] = []
    await start_worker()
    broker = urlsplit(rabbitmq_url)
    host, port = broker.hostname or "127.0.0.1", broker.port or 5672
    proxy = SwallowingProxy(host, port)
    await proxy.start()
    proxied_url = broker._replace(
        netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}"
    ).geturl()
    try:
        settings = ingress_settings(
            namespace, proxied_url, model_store, ingress_broker_setup_timeout_s=2.0
        )
        runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", settings.ingress_port).start()
        url = f"http://127.0.0.1:{settings.ingress_port}"
        await wait_until_ready(url, timeout=60.0)
        assert proxy.connections >= 2, "ready on the first connection: the proxy swallowed nothing"
        assert proxy.swallowed >= 1
        # The second session serves: a prediction goes to the predictor through it and back.
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/api/predict/iris",
                json=IRIS_ROW,
                headers={"X-API-Key": world.keys["iris"]},
            ) as response:
                body = await response.json()
        assert response.status == 200, body
        assert body["prediction"] == expected_prediction(world, "iris", IRIS_ROW)
    finally:
        for runner in runners:
            await runner.cleanup()
        await proxy.stop()
