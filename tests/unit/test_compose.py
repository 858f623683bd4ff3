"""docker-compose.yml stays consistent with the code: it cannot run here, so it is checked here."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from infra.clickhouse_server.access import PUBLIC_SYSTEM_TABLES
from infra.clickhouse_server.settings import ClickHouseServerSettings
from ingress.settings import IngressSettings
from management_api.settings import ManagementSettings
from metrics_consumer.settings import ConsumerSettings
from modelgate.cli import COMMANDS
from modelgate.stack import StackSettings
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
    users_file = next(m.split(":")[0] for m in mounts if "users.d" in m)
    assert (ROOT / users_file).is_file(), "no users.d file for the analyst user"
    for name in ("ingress", "predictor", "metrics-consumer", "management-api"):
        assert "models:/data/models" in services[name]["volumes"], name


def _compose_clickhouse_files() -> tuple[ET.Element, ET.Element]:
    """The users.d and config.d files compose mounts into the ClickHouse container."""
    mounts = compose()["services"]["clickhouse"]["volumes"]
    found: dict[str, ET.Element] = {}
    for mount in mounts:
        source, _, target = mount.partition(":")
        for kind in ("users.d", "config.d"):
            if f"/etc/clickhouse-server/{kind}/" in target:
                found[kind] = ET.parse(ROOT / source).getroot()
    assert set(found) == {"users.d", "config.d"}, mounts
    return found["users.d"], found["config.d"]


def test_compose_mounts_users_and_config_as_files_so_the_entrypoint_can_start() -> None:
    """The image's entrypoint writes into users.d when CLICKHOUSE_USER/PASSWORD are set: the
    directory must stay writable (files mounted, not the folder) and those variables unset."""
    clickhouse = compose()["services"]["clickhouse"]
    for mount in clickhouse["volumes"]:
        source, _, target = mount.partition(":")
        if "/etc/clickhouse-server/" in target:
            assert (ROOT / source).is_file(), mount
            assert target.split(":")[0].endswith(".xml"), mount
    environment = clickhouse.get("environment", {})
    assert not {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} & set(environment)
    assert environment.get("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "0") == "0"


def test_compose_default_user_needs_the_password_the_services_are_given() -> None:
    users, _ = _compose_clickhouse_files()
    password = users.find("users/default/password")
    assert password is not None and password.get("from_env")
    variable = password.get("from_env")
    services = compose()["services"]
    value = services["clickhouse"]["environment"][variable]
    assert value.startswith("${MODELGATE_CLICKHOUSE_PASSWORD:?"), value  # required, no default
    url = services["ingress"]["environment"]["MODELGATE_CLICKHOUSE_URL"]
    assert url.startswith("http://default:${MODELGATE_CLICKHOUSE_PASSWORD:?"), url


def test_compose_analyst_is_readonly_bounded_and_sees_no_other_queries() -> None:
    """Same rules as the embedded server: readonly profile, max_execution_time it cannot raise,
    its own concurrency bound and a quota, grants on modelgate and catalogue tables only, and
    system tables (system.processes, query_log) behind grants."""
    users, config = _compose_clickhouse_files()
    analyst = users.find("users/analyst")
    assert analyst is not None
    profile = users.find(f"profiles/{analyst.findtext('profile')}")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    embedded = ClickHouseServerSettings.model_fields
    assert profile.findtext("max_execution_time") == str(
        embedded["clickhouse_server_analyst_max_execution_time"].default
    )
    assert profile.findtext("max_threads") == str(
        embedded["clickhouse_server_analyst_max_threads"].default
    )
    assert profile.findtext("max_concurrent_queries_for_user") == str(
        embedded["clickhouse_server_analyst_connections"].default
    )
    assert profile.findtext("max_result_rows") == str(
        embedded["clickhouse_server_analyst_max_result_rows"].default
    )
    assert profile.find("constraints/max_execution_time/readonly") is not None
    quota = users.find(f"quotas/{analyst.findtext('quota')}/interval")
    assert quota is not None and quota.findtext("execution_time") and quota.findtext("queries")
    grants = [query.text or "" for query in analyst.findall("grants/query")]
    assert "GRANT SELECT ON modelgate.*" in grants
    assert all(
        g.startswith("GRANT SELECT ON modelgate.") or g.startswith("GRANT SELECT ON system.")
        for g in grants
    ), grants
    granted_system = {g.removeprefix("GRANT SELECT ON system.") for g in grants if "system." in g}
    assert granted_system <= PUBLIC_SYSTEM_TABLES, granted_system - PUBLIC_SYSTEM_TABLES
    assert "processes" not in granted_system and "query_log" not in granted_system
    assert (
        config.findtext("access_control_improvements/select_from_system_db_requires_grant")
        == "true"
    )
