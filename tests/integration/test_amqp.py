"""``infra.amqp`` against the real broker: pending RPC calls fail the moment the connection drops
(not at their deadline) and the client serves again after the robust reconnect; a confirmed publish
raises when the broker nacks or returns the message; late replies are counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from infra.amqp import (
    BrokerUnavailable,
    PublishRefused,
    RpcChannelClosed,
    RpcClient,
    RpcTimeout,
    connect,
    publish,
    reply,
)
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld
from tests.services import close_connections_named

CALL_DEADLINE_S = 60.0
"""The calls' own deadline; the tests wait far less, so only an early failure passes."""
TEST_WAIT_S = 10.0


class Responder:
    """A server on its own connection: replies to b"answer" after ``delay_s``, ignores the rest."""

    def __init__(self, connection: AbstractRobustConnection, queue_name: str) -> None:
        self.connection = connection
        self.queue_name = queue_name
        self.delay_s = 0.0
        self.received: list[bytes] = []
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        self.channel = await self.connection.channel()
        queue = await self.channel.declare_queue(self.queue_name, auto_delete=True)
        await queue.consume(self._on_request, no_ack=True)

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        self.received.append(message.body)
        self.arrived.set()
        if message.body.startswith(b"answer"):
            await asyncio.sleep(self.delay_s)
            await reply(self.channel, message, b"re:" + message.body)


@pytest.fixture
async def responder(amqp: AbstractRobustConnection, namespace: str) -> AsyncIterator[Responder]:
    server = Responder(amqp, f"{namespace}.test.rpc")
    await server.start()
    yield server


async def _client(rabbitmq_url: str, name: str) -> tuple[Any, RpcClient, asyncio.Event]:
    reconnected = asyncio.Event()
    connection = await connect(
        rabbitmq_url, name, on_reconnect=reconnected.set, reconnect_interval=0.2
    )
    rpc = RpcClient(await connection.channel(publisher_confirms=False))
    await rpc.start()
    return connection, rpc, reconnected


async def test_pending_calls_fail_at_once_when_the_connection_drops_then_the_client_serves_again(
    rabbitmq_url: str, responder: Responder
) -> None:
    name = f"amqp-rpc-drop-{time.monotonic_ns()}"
    connection, rpc, reconnected = await _client(rabbitmq_url, name)
    try:
        assert await rpc.call(responder.queue_name, b"answer 1", timeout=5.0) == b"re:answer 1"
        responder.arrived.clear()
        pending = [
            asyncio.create_task(rpc.call(responder.queue_name, b"ignored", timeout=CALL_DEADLINE_S))
            for _ in range(3)
        ]
        await asyncio.wait_for(responder.arrived.wait(), TEST_WAIT_S)
        assert rpc.pending == 3
        started = time.monotonic()
        assert await asyncio.to_thread(close_connections_named, name) == 1
        done, _ = await asyncio.wait(pending, timeout=TEST_WAIT_S)
        assert len(done) == 3, "pending calls waited for their deadline after the drop"
        for task in done:
            assert isinstance(task.exception(), RpcChannelClosed)
        assert time.monotonic() - started < TEST_WAIT_S < CALL_DEADLINE_S
        assert rpc.pending == 0 and rpc.failed_on_close == 3

        await asyncio.wait_for(reconnected.wait(), TEST_WAIT_S)
        reply = await asyncio.wait_for(
            rpc.call(responder.queue_name, b"answer 2", timeout=5.0), TEST_WAIT_S
        )
        assert reply == b"re:answer 2"
    finally:
        await connection.close()


async def test_a_call_times_out_at_its_deadline_and_its_late_reply_is_counted(
    rabbitmq_url: str, responder: Responder
) -> None:
    connection, rpc, _ = await _client(rabbitmq_url, f"amqp-rpc-late-{time.monotonic_ns()}")
    try:
        responder.delay_s = 0.5
        with pytest.raises(RpcTimeout):
            await rpc.call(responder.queue_name, b"answer slow", timeout=0.1)
        deadline = time.monotonic() + TEST_WAIT_S
        while rpc.late_replies == 0:
            assert time.monotonic() < deadline, "the late reply was not counted"
            await asyncio.sleep(0.05)
        assert rpc.late_replies == 1 and rpc.pending == 0
    finally:
        await connection.close()


async def test_confirmed_publish_raises_when_the_message_is_returned_unroutable(
    amqp: AbstractRobustConnection, namespace: str
) -> None:
    channel = await amqp.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        f"{namespace}.test.nowhere", aio_pika.ExchangeType.DIRECT, auto_delete=True
    )
    try:
        with pytest.raises(PublishRefused, match="returned"):
            await publish(exchange, b"{}", "no.binding")
        await publish(exchange, b"{}", "no.binding", mandatory=False)  # dropped, by choice
    finally:
        await exchange.delete()


async def test_confirmed_publish_raises_when_the_broker_nacks(
    amqp: AbstractRobustConnection, namespace: str
) -> None:
    channel = await amqp.channel(publisher_confirms=True)
    queue = await channel.declare_queue(
        f"{namespace}.test.full",
        auto_delete=True,
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    try:
        await publish(channel.default_exchange, b"first", queue.name)
        with pytest.raises(PublishRefused, match="refused"):
            await publish(channel.default_exchange, b"second", queue.name)
    finally:
        await queue.delete(if_unused=False, if_empty=False)


async def test_an_in_flight_prediction_answers_503_at_once_when_ingress_loses_the_broker(
    world: PredictionWorld, start_ingress: Any, amqp: AbstractRobustConnection, topology: Any
) -> None:
    """A predictor that takes the batch and never replies; the broker drops ingress: the request
    is answered 503 well before its 60 s deadline, and ingress is connected again after."""
    channel = await amqp.channel()
    taken = asyncio.Event()

    async def swallow(message: AbstractIncomingMessage) -> None:
        taken.set()

    await topology.predict_requests.consume(swallow, no_ack=True)
    ingress_id = f"ingress-amqp-drop-{time.monotonic_ns()}"
    ingress = await start_ingress(ingress_id=ingress_id, ingress_request_timeout_s=CALL_DEADLINE_S)
    headers = {"X-API-Key": world.keys["iris"]}
    async with aiohttp.ClientSession() as http:

        async def predict() -> int:
            async with http.post(
                f"{ingress.url}/api/predict/iris", json=IRIS_ROW, headers=headers
            ) as response:
                return response.status

        request = asyncio.create_task(predict())
        await asyncio.wait_for(taken.wait(), TEST_WAIT_S)
        assert await asyncio.to_thread(close_connections_named, ingress_id) == 1
        assert await asyncio.wait_for(request, TEST_WAIT_S) == 503
        deadline = time.monotonic() + 15
        while True:
            async with http.get(f"{ingress.url}/ready") as response:
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, "ingress did not reconnect"
            await asyncio.sleep(0.1)
        async with http.get(f"{ingress.url}/metrics") as response:
            assert "ingress_rpc_failed_on_close 1.0" in await response.text()
    await channel.close()


async def test_confirmed_publish_raises_within_its_timeout_while_the_connection_is_away(
    rabbitmq_url: str, namespace: str
) -> None:
    """A robust channel waits for the connection to come back; a publish must not wait with it."""
    name = f"amqp-publish-away-{time.monotonic_ns()}"
    connection = await connect(rabbitmq_url, name, reconnect_interval=30.0)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"{namespace}.test.away", auto_delete=True)
        await publish(channel.default_exchange, b"before", queue.name)
        assert await asyncio.to_thread(close_connections_named, name) == 1
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(
                publish(channel.default_exchange, b"away", queue.name, timeout=1.0), TEST_WAIT_S
            )
        assert time.monotonic() - started < TEST_WAIT_S
    finally:
        await connection.close()
