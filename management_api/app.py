"""The management API application: ``create_app(settings)`` wires routes, middleware and one
cleanup context per resource (metadata DB, broker + registry responder, monitoring store)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from infra import amqp, http
from infra.clickhouse import create_async_client
from infra.model_store import ModelStore
from infra.private_files import create_private_file
from infra.registry import RegistryResponder, publish_api_changed
from infra.topology import Topology, declare_topology
from management_api.accounts import Accounts
from management_api.alert_engine import AlertEngine, Lease, publish_transition
from management_api.alert_rules import AlertRules
from management_api.announcer import ChangeAnnouncer
from management_api.catalog import Catalog, CompileLimits
from management_api.db import create_engine, migrate, session_factory
from management_api.exports import Exports
from management_api.http import csp_for, error_middleware, with_auth
from management_api.jobs import TrainingJobs, TrainingLimits
from management_api.keys import (
    ACCOUNTS,
    ALERT_ENGINE,
    ALERTS,
    AMQP,
    CATALOG,
    ENGINE,
    EXPORTS,
    JOBS,
    MONITORING,
    SETTINGS,
    TOPOLOGY,
)
from management_api.login_throttle import LoginThrottle, ThrottlePolicy
from management_api.metrics import METRICS, METRICS_TOKEN, ManagementMetrics
from management_api.monitoring import Monitoring, actor_middleware
from management_api.notifier import notifier_context
from management_api.queries import MonitoringQueries
from management_api.routes import ROUTES
from management_api.security import PasswordHashing, TokenIssuer, load_or_create_secret
from management_api.settings import ManagementSettings
from schemas import ApiChanged
from schemas.alerts import AlertTransition
from schemas.resources import AlertThresholds

log = logging.getLogger(__name__)


def default_thresholds(settings: ManagementSettings) -> AlertThresholds:
    return AlertThresholds(
        cpu_percent=settings.management_default_cpu_percent,
        memory_mb=settings.management_default_memory_mb,
        error_rate=settings.management_default_error_rate,
        p95_ms=settings.management_default_p95_ms,
    )


def throttle_policy(settings: ManagementSettings) -> ThrottlePolicy:
    return ThrottlePolicy(
        per_username=settings.management_login_failures_per_username,
        per_address=settings.management_login_failures_per_address,
        first_lock_s=settings.management_login_first_lock_s,
        max_lock_s=settings.management_login_max_lock_s,
        trusted_proxies=tuple(settings.management_trusted_proxies),
    )


ADMIN_PASSWORD_FILE = "admin-password"
"""File, in the data dir, holding a generated first-admin password (0600)."""


def save_admin_password(data_dir: Path, username: str, password: str) -> Path:
    """Write a generated first-admin password to a 0600 file in the data dir, say where.

    It is stored only as a hash; the file is where its owner finds it, not a line lost between
    other services' logs. A file from an earlier (replaced) database is replaced.
    """
    path = data_dir / ADMIN_PASSWORD_FILE
    path.unlink(missing_ok=True)
    create_private_file(path, f"{password}\n".encode())
    sys.stderr.write(
        f"modelgate: first admin {username!r} created; its password is in {path} (mode 0600). "
        "Set MODELGATE_MANAGEMENT_ADMIN_PASSWORD to choose it instead.\n"
    )
    sys.stderr.flush()
    return path


async def database_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    secret = load_or_create_secret(settings.management_jwt_secret, settings.management_data_dir)
    accounts = Accounts(
        sessions,
        TokenIssuer(secret, settings.management_token_ttl_s),
        PasswordHashing(
            settings.management_password_hash_workers or None,
            settings.management_password_hash_queue,
        ),
        LoginThrottle(throttle_policy(settings)),
    )
    generated = await accounts.ensure_admin(
        settings.management_admin_username, settings.management_admin_password
    )
    if generated is not None:
        save_admin_password(
            settings.management_data_dir, settings.management_admin_username, generated
        )
    catalog = Catalog(
        sessions,
        ModelStore(settings.model_store),
        csv_limits=TrainingLimits.of(settings).csv,
        compile_limits=CompileLimits.of(settings),
    )
    await catalog.verify_stored()  # entries of an earlier run: verified, or refused with a log
    # Entries saved before compiled inference: converted to ONNX in the background.
    compiling = asyncio.create_task(catalog.compile_stored(), name="compile-stored")
    jobs = TrainingJobs(sessions, catalog, TrainingLimits.of(settings))
    await jobs.recover()

    async def publish(change: ApiChanged) -> None:
        topology = app.get(TOPOLOGY)
        if topology is None:
            raise RuntimeError("the broker is not connected")
        await publish_api_changed(topology, change)

    announcer = ChangeAnnouncer(publish)

    async def announce(change: ApiChanged) -> None:
        monitoring.record_change(change)  # a chart marker (deploy, key, status), in the background
        await announcer.announce(change)

    exports = Exports(sessions, announce, settings.public_ingress_url, default_thresholds(settings))

    async def connect_clickhouse() -> MonitoringQueries:
        client = await create_async_client(settings.clickhouse_url, settings.clickhouse_database)
        return MonitoringQueries(client, settings.clickhouse_database)

    monitoring = Monitoring(exports, connect_clickhouse, settings.management_monitoring_timeout_s)
    app[ENGINE], app[ACCOUNTS], app[CATALOG] = engine, accounts, catalog
    app[JOBS], app[EXPORTS], app[MONITORING] = jobs, exports, monitoring
    yield
    compiling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await compiling
    await announcer.close()
    await jobs.close()
    await monitoring.close()
    accounts.close()
    await engine.dispose()


async def broker_context(app: web.Application) -> AsyncIterator[None]:
    """Publish ``ApiChanged`` on control and answer registry snapshots from the DB."""
    settings = app[SETTINGS]
    connection = await amqp.connect(settings.rabbitmq_url, settings.management_id)
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


async def alerts_context(app: web.Application) -> AsyncIterator[None]:
    """The alert rules for the routes, and the engine, evaluating while this process holds the
    ``<ns>.alerts.lease`` single-active-consumer lease."""
    settings = app[SETTINGS]
    sessions = session_factory(app[ENGINE])
    app[ALERTS] = AlertRules(sessions)
    topology = app[TOPOLOGY]
    lease = Lease(
        app[AMQP], Topology(settings.namespace).alerts_lease, settings.management_alert_evaluation_s
    )
    await lease.start()

    async def publish(transition: AlertTransition) -> None:
        await publish_transition(topology.events, transition)

    engine = AlertEngine(
        sessions,
        app[MONITORING].queries,
        publish,
        settings.management_alert_evaluation_s,
        lambda: lease.held,
    )
    engine.start()
    app[ALERT_ENGINE] = engine
    yield
    await engine.stop()
    await lease.stop()


def create_app(settings: ManagementSettings) -> web.Application:
    """The management API with every route of ``routes.ROUTES``; resources open on startup."""
    metrics = ManagementMetrics()
    app = web.Application(
        middlewares=[
            http.edge_middleware(settings, csp_for(settings.public_ingress_url)),
            metrics.middleware(),
            error_middleware,
            actor_middleware,
        ],
        client_max_size=settings.management_max_upload_mb * 1024 * 1024,
        handler_args=http.handler_args(settings),
    )
    app[SETTINGS] = settings
    app[METRICS], app[METRICS_TOKEN] = metrics, settings.management_metrics_token
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(broker_context)
    app.cleanup_ctx.append(alerts_context)
    app.cleanup_ctx.append(notifier_context)
    for route in ROUTES:
        name = route.operation_id + ("_spa" if route.path.startswith("/{") else "")
        if route.method == "GET":  # HEAD answers as GET does, without the body (RFC 9110)
            app.router.add_get(route.path, with_auth(route), name=name, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, with_auth(route), name=name)
    return app
