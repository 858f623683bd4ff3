"""The embedded ClickHouse server: ClickHouse's HTTP interface over chdb's engine."""

from infra.clickhouse_server.app import create_app, main

__all__ = ["create_app", "main"]
