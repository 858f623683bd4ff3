-- Ground-truth feedback (issue 15): a client reports the true answer of a prediction it got, by
-- the request id ingress answered with (`POST /api/predict/{api_id}/feedback`). One row per report
-- (`feedback_id`, the consumer's duplicate check: a redelivered message is stored once); several
-- reports for one request may exist and the latest (`received_at`) is the truth. `actual` is text
-- written as `request_events.prediction` is, so the two compare as they are. Joined with
-- `request_events` on `request_id = event_id` (bloom filters on both sides) for live accuracy
-- and errors per model version. Raw retention as request_events ({raw_ttl_days} days): feedback
-- outliving its request's event would join nothing.
CREATE TABLE IF NOT EXISTS {db}.feedback
(
    feedback_id String,
    batch_id String,
    request_id String,
    api_id LowCardinality(String),
    actual String CODEC(ZSTD(1)),
    received_at DateTime64(3, 'UTC'),
    key_prefix LowCardinality(String),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_batch_id batch_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (api_id, received_at)
TTL toDateTime(received_at) + INTERVAL {raw_ttl_days} DAY;
