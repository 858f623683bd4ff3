"""Keeps the in-memory ``Registry`` current from the broker: snapshot RPC plus control events,
and predictors' ``VersionReady`` reports for the warm switch."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError

from infra.amqp import RpcClient
from infra.topology import VERSION_READY_KEY, DeclaredTopology
from ingress.registry import Registry
from schemas import ApiChanged, RegistrySnapshot, RegistrySnapshotRequest, VersionReady
from schemas.messages import MessageError, decode, encode

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
        self._wake = asyncio.Event()

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

    def resync_now(self) -> None:
        """Ask for a snapshot now instead of at the next scheduled resync (after a reconnect)."""
        self._wake.set()

    async def snapshot(self) -> RegistrySnapshot:
        """One snapshot RPC; raises ``RpcTimeout`` if nobody answers in time, ``RpcChannelClosed``
        if the broker connection drops meanwhile."""
        body = await self._rpc.call(
            self._topology.names.registry_snapshot,
            encode(RegistrySnapshotRequest(requester=self._requester)),
            timeout=self._timeout_s,
            correlation_id=f"registry-{uuid.uuid4().hex}",
        )
        return RegistrySnapshot.model_validate_json(body)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` or until ``resync_now``."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _resync_loop(self) -> None:
        while True:
            try:
                snapshot = await self.snapshot()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry snapshot failed (%r); asking again", exc)
                await self._pause(1.0 if not self._registry.ready else 5.0)
                continue
            self._registry.apply_snapshot(snapshot.apis, snapshot.generated_at)
            await self._pause(self._resync_s)

    async def _on_change(self, message: AbstractIncomingMessage) -> None:
        try:
            change = ApiChanged.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("undecodable control event ignored: %s", str(exc)[:300])
            return
        self._registry.apply_change(change)


class VersionReadyListener:
    """Follows predictors' ``VersionReady`` reports (``events`` exchange, ``version.ready``) on a
    queue of its own and passes each to the registry (a failed one is logged too; it counts as
    that predictor's answer, never as the version being ready: see ``Registry._is_warm``)."""

    def __init__(
        self, registry: Registry, channel: AbstractChannel, topology: DeclaredTopology, name: str
    ) -> None:
        self._registry = registry
        self._channel = channel
        self._topology = topology
        self._name = name

    async def start(self) -> None:
        queue = await self._channel.declare_queue(
            f"{self._topology.names.namespace}.ready.{self._name}.{uuid.uuid4().hex[:8]}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(self._topology.events, routing_key=VERSION_READY_KEY)
        await queue.consume(self._on_ready, no_ack=True)

    async def _on_ready(self, message: AbstractIncomingMessage) -> None:
        try:
            ready = decode(message.body, VersionReady)
        except MessageError as exc:
            log.error("undecodable version report ignored: %s", str(exc)[:300])
            return
        if not ready.ok:
            log.warning(
                "predictor %s cannot load version %s: %s",
                ready.predictor_id,
                ready.version_key,
                ready.error,
            )
        self._registry.version_ready(ready.version_key, ready.predictor_id, ready.ok)
