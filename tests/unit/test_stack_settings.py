"""Where `modelgate up` puts things and which ports it checks, decided from settings alone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra.localnet import free_port, port_taken
from modelgate import stack
from modelgate.stack import StackSettings, build_services, check_ports, planned_ports
from modelgate.stack import default_ingress_workers as by_cores


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "MODELGATE_CLICKHOUSE_URL",
        "MODELGATE_DATABASE_URL",
        "MODELGATE_MODEL_STORE",
        "MODELGATE_STACK_DATA_DIR",
        "MODELGATE_MANAGEMENT_DATA_DIR",
        "MODELGATE_INGRESS_EVENTS_SPOOL_DIR",
        "MODELGATE_CLICKHOUSE_SERVER_DATA_DIR",
        "MODELGATE_CLICKHOUSE_SERVER_PORT",
        "MODELGATE_STACK_INGRESS_WORKERS",
    ]:
        monkeypatch.delenv(name, raising=False)
    # One ingress process, whatever the machine's core count (its own tests set more).
    monkeypatch.setattr(stack, "default_ingress_workers", lambda cpus: 1)


def test_the_data_dir_holds_the_sqlite_db_store_clickhouse_spool_and_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELGATE_STACK_DATA_DIR", str(tmp_path))
    settings = StackSettings()
    settings.resolve_paths()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'modelgate.db'}"
    assert settings.model_store == tmp_path / "models"
    assert settings.clickhouse_server_data_dir == tmp_path / "clickhouse"
    assert settings.management_data_dir == tmp_path
    assert settings.ingress_events_spool_dir == str(tmp_path / "ingress-spool")
    ingress = next(s for s in build_services(settings, "http://x/") if s.name == "ingress")
    assert ingress.env["MODELGATE_DATABASE_URL"] == settings.database_url
    assert ingress.env["MODELGATE_INGRESS_EVENTS_SPOOL_DIR"] == str(tmp_path / "ingress-spool")


def test_a_path_given_its_own_setting_is_not_moved_into_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELGATE_STACK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELGATE_DATABASE_URL", "postgresql+asyncpg://db/modelgate")
    monkeypatch.setenv("MODELGATE_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("MODELGATE_INGRESS_EVENTS_SPOOL_DIR", "")
    settings = StackSettings()
    settings.resolve_paths()
    assert settings.database_url == "postgresql+asyncpg://db/modelgate"
    assert settings.model_store == tmp_path / "store"
    assert settings.ingress_events_spool_dir == ""


def test_the_embedded_clickhouse_port_comes_from_its_own_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELGATE_CLICKHOUSE_SERVER_PORT", "18123")
    uses = planned_ports(StackSettings())
    assert [u.port for u in uses if u.setting == "MODELGATE_CLICKHOUSE_SERVER_PORT"] == [18123]
    monkeypatch.setenv("MODELGATE_CLICKHOUSE_URL", "http://default:pw@ch.example:8123/")
    assert not [u for u in planned_ports(StackSettings()) if "CLICKHOUSE" in u.setting]


def test_ingress_starts_last_and_is_ready_only_with_a_predictor_online() -> None:
    services = build_services(StackSettings(stack_predictors=2), "http://x/")
    assert [s.name for s in services] == [
        "management-api",
        "metrics-consumer",
        "predictor-1",
        "predictor-2",
        "ingress",
    ]
    ingress = services[-1]
    assert ingress.ready_url is not None and ingress.ready_field == "predictors_online"
    assert len({s.instance_id for s in services}) == len(services)  # each its own id
    id_settings = ["MANAGEMENT", "CONSUMER", "PREDICTOR", "PREDICTOR", "INGRESS"]
    for spec, key in zip(services, id_settings, strict=True):
        assert spec.env[f"MODELGATE_{key}_ID"] == spec.instance_id  # what its /health says


def test_a_taken_port_is_reported_with_its_setting() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_taken("127.0.0.1", port)
        settings = StackSettings(
            clickhouse_server_port=free_port(),
            management_port=free_port(),
            ingress_port=free_port(),
            predictor_metrics_port=free_port(),
            stack_predictors=1,
            consumer_metrics_port=port,
        )
        problem = check_ports(settings)
        assert problem is not None
        assert f"port {port}" in problem and "MODELGATE_CONSUMER_METRICS_PORT" in problem


def test_up_looks_for_the_admin_password_where_the_management_api_writes_it() -> None:
    from management_api import app

    assert stack.ADMIN_PASSWORD_FILE == app.ADMIN_PASSWORD_FILE


def test_the_default_ingress_process_count_follows_the_cores() -> None:
    assert [by_cores(c) for c in (None, 1, 2, 3, 4, 8, 64)] == [1, 1, 1, 1, 1, 2, 16]


def test_several_ingress_processes_each_have_their_id_spool_and_socket_and_share_the_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELGATE_STACK_DATA_DIR", str(tmp_path))
    settings = StackSettings(stack_ingress_workers=3)
    settings.resolve_paths()
    ingress = [s for s in build_services(settings, "http://x/") if s.service == "ingress"]
    assert [s.name for s in ingress] == ["ingress-1", "ingress-2", "ingress-3"]
    assert len({s.instance_id for s in ingress}) == 3
    spool = tmp_path / "ingress-spool"
    assert [s.env["MODELGATE_INGRESS_EVENTS_SPOOL_DIR"] for s in ingress] == [
        str(spool),  # what a single ingress used: its events are replayed whatever the count
        str(spool / "replica-2"),
        str(spool / "replica-3"),
    ]
    for spec in ingress:
        assert spec.env["MODELGATE_INGRESS_ID"] == spec.instance_id
        assert spec.env["MODELGATE_INGRESS_REUSE_PORT"] == "true"
        assert spec.unix_socket == spec.env["MODELGATE_INGRESS_ADMIN_SOCKET"]
        assert spec.group == "ingress" and spec.ready_field == "predictors_online"
    assert len({s.unix_socket for s in ingress}) == 3
    # A spool of a fourth process from an earlier run is named, not silently forgotten.
    (spool / "replica-4").mkdir(parents=True)
    (spool / "replica-4" / "events-0000000000.spool").write_text("H{}\n")
    assert stack.orphan_spools(str(spool), 3) == [spool / "replica-4"]
    assert stack.orphan_spools(str(spool), 4) == []
