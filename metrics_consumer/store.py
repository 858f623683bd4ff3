"""What the consumer asks of ClickHouse: inserts, and which rows of some batches are stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.clickhouse import is_identifier
from metrics_consumer.decoding import EVENT_COLUMNS, FEEDBACK_COLUMNS, SAMPLE_COLUMNS

# Batch ids per lookup query: keeps the URL of server-side parameters short.
LOOKUP_CHUNK = 50


def stored_events_sql(database: str) -> str:
    """Event ids already stored for some batches within a time span (bloom index on batch_id)."""
    return f"""
SELECT event_id FROM {database}.request_events
WHERE ts >= fromUnixTimestamp64Milli({{ts_min:Int64}}, 'UTC')
  AND ts <= fromUnixTimestamp64Milli({{ts_max:Int64}}, 'UTC')
  AND batch_id IN {{batch_ids:Array(String)}}
"""


def stored_samples_sql(database: str) -> str:
    """(worker, epoch ms) of samples already stored for some workers within a time span."""
    return f"""
SELECT worker_id, toUnixTimestamp64Milli(ts) AS ts_ms FROM {database}.worker_samples
WHERE worker_id IN {{workers:Array(String)}}
  AND ts >= fromUnixTimestamp64Milli({{ts_min:Int64}}, 'UTC')
  AND ts <= fromUnixTimestamp64Milli({{ts_max:Int64}}, 'UTC')
"""


def stored_feedback_sql(database: str) -> str:
    """Feedback ids already stored for some batches within a time span (bloom index on
    batch_id)."""
    return f"""
SELECT feedback_id FROM {database}.feedback
WHERE received_at >= fromUnixTimestamp64Milli({{ts_min:Int64}}, 'UTC')
  AND received_at <= fromUnixTimestamp64Milli({{ts_max:Int64}}, 'UTC')
  AND batch_id IN {{batch_ids:Array(String)}}
"""


class EventStore:
    """request_events and worker_samples of one database, over a clickhouse-connect async client."""

    def __init__(self, client: Any, database: str, timeout_s: float = 60.0) -> None:
        if not is_identifier(database):
            raise ValueError(f"invalid ClickHouse database name {database!r}")
        self.client = client
        self.database = database
        self.timeout_s = timeout_s

    async def stored_event_ids(
        self, batch_ids: Sequence[str], ts_min: int, ts_max: int
    ) -> set[str]:
        found: set[str] = set()
        ids = list(dict.fromkeys(batch_ids))
        for start in range(0, len(ids), LOOKUP_CHUNK):
            result = await self.client.query(
                stored_events_sql(self.database),
                parameters={
                    "ts_min": ts_min,
                    "ts_max": ts_max,
                    "batch_ids": ids[start : start + LOOKUP_CHUNK],
                },
            )
            found.update(row["event_id"] for row in result.named_results())
        return found

    async def stored_feedback_ids(
        self, batch_ids: Sequence[str], ts_min: int, ts_max: int
    ) -> set[str]:
        found: set[str] = set()
        ids = list(dict.fromkeys(batch_ids))
        for start in range(0, len(ids), LOOKUP_CHUNK):
            result = await self.client.query(
                stored_feedback_sql(self.database),
                parameters={
                    "ts_min": ts_min,
                    "ts_max": ts_max,
                    "batch_ids": ids[start : start + LOOKUP_CHUNK],
                },
            )
            found.update(row["feedback_id"] for row in result.named_results())
        return found

    async def insert_feedback(self, columns: list[list[Any]]) -> None:
        await self.client.insert(
            "feedback",
            columns,
            database=self.database,
            column_names=list(FEEDBACK_COLUMNS),
            column_oriented=True,
        )

    async def stored_sample_keys(
        self, workers: Sequence[str], ts_min: int, ts_max: int
    ) -> set[tuple[str, int]]:
        result = await self.client.query(
            stored_samples_sql(self.database),
            parameters={"workers": sorted(set(workers)), "ts_min": ts_min, "ts_max": ts_max},
        )
        return {(row["worker_id"], int(row["ts_ms"])) for row in result.named_results()}

    async def insert_events(self, columns: list[list[Any]]) -> None:
        await self.client.insert(
            "request_events",
            columns,
            database=self.database,
            column_names=list(EVENT_COLUMNS),
            column_oriented=True,
        )

    async def insert_samples(self, columns: list[list[Any]]) -> None:
        await self.client.insert(
            "worker_samples",
            columns,
            database=self.database,
            column_names=list(SAMPLE_COLUMNS),
            column_oriented=True,
        )
