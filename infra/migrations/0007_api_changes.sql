-- Changes of an API over time, as the management API announced them on control (issue 12): a
-- version deployed (deploy, promote, rollback), its key rotated, its status changed, its creation.
-- Monitoring charts draw them as markers over the requests. version_number 0: not known.
CREATE TABLE IF NOT EXISTS {db}.api_changes
(
    api_id String,
    ts DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    version_number UInt32,
    actor String,
    detail LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (api_id, ts)
TTL toDateTime(ts) + INTERVAL 730 DAY;
