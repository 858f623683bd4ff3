-- Trace ids (issue 14): each request event keeps the W3C trace id its request carried in
-- `traceparent` (or the one ingress made for it), which ingress also returns in the answer's
-- `traceparent` and hands to the predictor with the batch: one request is found in logs and here
-- by the same 32 hex digits. A shadow answer has the trace id of the request it mirrored. Rows
-- stored before this migration have ''. The bloom filter lets `WHERE trace_id = '...'` skip most
-- granules of an API's month.
ALTER TABLE {db}.request_events ADD COLUMN IF NOT EXISTS trace_id String DEFAULT '' AFTER shadow_of;
ALTER TABLE {db}.request_events ADD INDEX IF NOT EXISTS trace_id_bloom trace_id TYPE bloom_filter(0.01) GRANULARITY 4;

-- The analysts' request view gains the column (the rollups do not need it).
CREATE OR REPLACE VIEW {db}.requests AS
SELECT
    event_id,
    ts,
    api_id,
    model_version,
    status_code,
    status_code < 400 AS success,
    multiIf(status_code < 400, 'success', status_code < 500, '4xx', '5xx') AS status_class,
    error_code,
    total_ms,
    queue_ms,
    inference_ms,
    cpu_ms,
    rows,
    request_bytes,
    response_bytes,
    worker_id,
    worker_rss_mb,
    ingress_id,
    key_prefix,
    prediction,
    input,
    output,
    authenticated,
    shadow,
    shadow_of,
    trace_id
FROM {db}.request_events;
