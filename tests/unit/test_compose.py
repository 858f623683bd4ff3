"""docker-compose.yml stays consistent with the code: it cannot run here, so it is checked here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from infra.cli import COMMANDS
from infra.clickhouse_server.settings import ClickHouseServerSettings
from infra.stack import StackSettings
from ingress.settings import IngressSettings
from management_api.settings import ManagementSettings
from metrics_consumer.settings import ConsumerSettings
from predictor.settings import PredictorSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: list[type[BaseSettings]] = [
    ClickHouseServerSettings,
    ConsumerSettings,
    IngressSettings,
    ManagementSettings,
    PredictorSettings,
    StackSettings,
]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def known_env_names() -> set[str]:
    return {f"MODELGATE_{name.upper()}" for cls in SETTINGS for name in cls.model_fields}


def test_every_modelgate_variable_in_compose_is_a_setting() -> None:
    """A typo in a compose variable would be silently ignored by pydantic-settings."""
    names = set(
        re.findall(r"^\s+(MODELGATE_[A-Z0-9_]+):", (ROOT / "docker-compose.yml").read_text(), re.M)
    )
    assert names, "compose sets no MODELGATE_ variable"
    unknown = names - known_env_names()
    assert not unknown, f"compose sets variables no service reads: {sorted(unknown)}"


def test_compose_runs_the_services_of_the_design_with_health_checks() -> None:
    """rabbitmq, clickhouse, postgres and every service, each command a real modelgate command."""
    services = compose()["services"]
    expected = {
        "rabbitmq",
        "clickhouse",
        "postgres",
        "ingress",
        "predictor",
        "metrics-consumer",
        "management-api",
        "migrate",
    }
    assert expected <= set(services)
    for name in ("rabbitmq", "clickhouse", "postgres", "ingress", "management-api"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        command = service.get("command")
        if command:
            assert command[0] in COMMANDS, f"{name} runs unknown command {command[0]}"
    assert services["predictor"]["deploy"]["replicas"] >= 2
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_compose_mounts_the_analyst_user_and_shares_the_model_volume() -> None:
    services = compose()["services"]
    mounts = services["clickhouse"]["volumes"]
    users_dir = next(m.split(":")[0] for m in mounts if "users.d" in m)
    assert any((ROOT / users_dir).glob("*.xml")), "no users.d file for the analyst user"
    for name in ("ingress", "predictor", "metrics-consumer", "management-api"):
        assert "models:/data/models" in services[name]["volumes"], name
