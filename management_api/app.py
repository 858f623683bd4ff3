"""The management API application: ``create_app(settings)`` wires routes, middleware and one
cleanup context per resource (metadata DB, broker + registry responder, monitoring store)."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator

import aio_pika
from aiohttp import web

from infra.clickhouse import create_async_client
from infra.registry import RegistryResponder, publish_api_changed
from infra.topology import Topology, declare_topology
from management_api.accounts import Accounts
from management_api.announcer import ChangeAnnouncer
from management_api.catalog import Catalog
from management_api.db import create_engine, migrate, session_factory
from management_api.exports import Exports
from management_api.http import error_middleware, with_auth
from management_api.jobs import TrainingJobs
from management_api.keys import (
    ACCOUNTS,
    AMQP,
    CATALOG,
    ENGINE,
    EXPORTS,
    JOBS,
    MONITORING,
    SETTINGS,
    TOPOLOGY,
)
from management_api.monitoring import Monitoring
from management_api.queries import MonitoringQueries
from management_api.security import TokenIssuer, load_or_create_secret
from management_api.settings import ManagementSettings
from management_api.views import ROUTES
from predictor.model_store import ModelStore
from schemas import ApiChanged
from schemas.resources import AlertThresholds

log = logging.getLogger(__name__)


def default_thresholds(settings: ManagementSettings) -> AlertThresholds:
    return AlertThresholds(
        cpu_percent=settings.management_default_cpu_percent,
        memory_mb=settings.management_default_memory_mb,
        error_rate=settings.management_default_error_rate,
        p95_ms=settings.management_default_p95_ms,
    )


def announce_admin_password(username: str, password: str) -> None:
    """Print a generated first-admin password once (it is stored only as a hash)."""
    banner = (
        "\n"
        "==================================================================\n"
        f" modelgate: first admin created.  username: {username}\n"
        f"                                  password: {password}\n"
        " Shown once; set MODELGATE_MANAGEMENT_ADMIN_PASSWORD to choose it.\n"
        "==================================================================\n"
    )
    sys.stderr.write(banner)
    sys.stderr.flush()


async def database_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    secret = load_or_create_secret(settings.management_jwt_secret, settings.management_data_dir)
    accounts = Accounts(sessions, TokenIssuer(secret, settings.management_token_ttl_s))
    generated = await accounts.ensure_admin(
        settings.management_admin_username, settings.management_admin_password
    )
    if generated is not None:
        announce_admin_password(settings.management_admin_username, generated)
    catalog = Catalog(sessions, ModelStore(settings.model_store))
    jobs = TrainingJobs(sessions, catalog, settings.management_training_workers)
    await jobs.recover()

    async def publish(change: ApiChanged) -> None:
        topology = app.get(TOPOLOGY)
        if topology is None:
            raise RuntimeError("the broker is not connected")
        await publish_api_changed(topology, change)

    announcer = ChangeAnnouncer(publish)
    exports = Exports(
        sessions, announcer.announce, settings.public_ingress_url, default_thresholds(settings)
    )

    async def connect_clickhouse() -> MonitoringQueries:
        client = await create_async_client(settings.clickhouse_url, settings.clickhouse_database)
        return MonitoringQueries(client, settings.clickhouse_database)

    monitoring = Monitoring(exports, connect_clickhouse, settings.management_monitoring_timeout_s)
    app[ENGINE], app[ACCOUNTS], app[CATALOG] = engine, accounts, catalog
    app[JOBS], app[EXPORTS], app[MONITORING] = jobs, exports, monitoring
    yield
    await announcer.close()
    await jobs.close()
    await monitoring.close()
    await engine.dispose()


async def broker_context(app: web.Application) -> AsyncIterator[None]:
    """Publish ``ApiChanged`` on control and answer registry snapshots from the DB."""
    settings = app[SETTINGS]
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    topology = await declare_topology(channel, Topology(settings.namespace))
    responder_channel = await connection.channel()
    responder = RegistryResponder(responder_channel, topology, app[EXPORTS].records)
    await responder.start()
    app[TOPOLOGY], app[AMQP] = topology, connection
    log.info("registry responder on %s", topology.names.registry_snapshot)
    yield
    await responder.stop()
    await connection.close()


def create_app(settings: ManagementSettings) -> web.Application:
    """The management API with every route of ``views.ROUTES``; resources open on startup."""
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=settings.management_max_upload_mb * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(broker_context)
    for route in ROUTES:
        app.router.add_route(
            route.method,
            route.path,
            with_auth(route),
            name=route.operation_id + ("_spa" if route.path.startswith("/{") else ""),
        )
    return app
