"""Every object the management API shares through its application, as typed keys (one place)."""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.topology import DeclaredTopology
from management_api.accounts import Accounts, Principal
from management_api.alert_engine import AlertEngine
from management_api.alert_rules import AlertRules
from management_api.catalog import Catalog
from management_api.exports import Exports
from management_api.jobs import TrainingJobs
from management_api.monitoring import Monitoring
from management_api.settings import ManagementSettings

SETTINGS = web.AppKey("settings", ManagementSettings)
ENGINE = web.AppKey("engine", AsyncEngine)
ACCOUNTS = web.AppKey("accounts", Accounts)
CATALOG = web.AppKey("catalog", Catalog)
JOBS = web.AppKey("jobs", TrainingJobs)
EXPORTS = web.AppKey("exports", Exports)
MONITORING = web.AppKey("monitoring", Monitoring)
TOPOLOGY = web.AppKey("topology", DeclaredTopology)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
ALERTS = web.AppKey("alerts", AlertRules)
ALERT_ENGINE = web.AppKey("alert_engine", AlertEngine)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
