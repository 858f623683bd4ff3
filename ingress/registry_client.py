"""Keeps the in-memory ``Registry`` current from the broker: snapshot RPC plus control events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError

from infra.topology import DeclaredTopology
from ingress.registry import Registry
from ingress.rpc import RpcClient
from schemas import ApiChanged, RegistrySnapshot, RegistrySnapshotRequest
from schemas.messages import dump

log = logging.getLogger(__name__)


class RegistryClient:
    """Asks for a snapshot at start and every ``resync_s``; applies ``ApiChanged`` in between."""

    def __init__(
        self,
        registry: Registry,
        rpc: RpcClient,
        channel: AbstractChannel,
        topology: DeclaredTopology,
        requester: str,
        resync_s: float,
        timeout_s: float,
    ) -> None:
        self._registry = registry
        self._rpc = rpc
        self._channel = channel
        self._topology = topology
        self._requester = requester
        self._resync_s = resync_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Subscribe before the first snapshot so no change between the two is missed.
        queue = await self._channel.declare_queue(
            f"{self._topology.names.namespace}.control.{self._requester}.{uuid.uuid4().hex[:8]}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(self._topology.control, routing_key="")
        await queue.consume(self._on_change, no_ack=True)
        self._task = asyncio.create_task(self._resync_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def snapshot(self) -> RegistrySnapshot:
        """One snapshot RPC; raises ``TimeoutError`` if nobody answers in time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        correlation_id = f"registry-{uuid.uuid4().hex}"

        def deliver(body: bytes) -> None:
            if not future.done():
                future.set_result(body)

        self._rpc.expect(correlation_id, deliver)
        try:
            await self._rpc.publish(
                self._topology.names.registry_snapshot,
                dump(RegistrySnapshotRequest(requester=self._requester)),
                correlation_id,
                self._timeout_s,
            )
            body = await asyncio.wait_for(future, self._timeout_s)
        finally:
            self._rpc.forget(correlation_id)
        return RegistrySnapshot.model_validate_json(body)

    async def _resync_loop(self) -> None:
        while True:
            try:
                snapshot = await self.snapshot()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry snapshot failed (%r); asking again", exc)
                await asyncio.sleep(1.0 if not self._registry.ready else 5.0)
                continue
            self._registry.apply_snapshot(snapshot.apis, snapshot.generated_at)
            await asyncio.sleep(self._resync_s)

    async def _on_change(self, message: AbstractIncomingMessage) -> None:
        try:
            change = ApiChanged.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("undecodable control event ignored: %s", str(exc)[:300])
            return
        self._registry.apply_change(change)
