-- Daily rollup, for all-time figures: a day's TDigest state holds a few hundred centroids
-- however many requests it summarises, while hourly states at low traffic hold one centroid per
-- request, so merging all-time percentiles from hours costs as much as reading raw rows.
-- Backfilled from the raw events still kept: the view only sees inserts after its creation, so
-- the backfill takes the rows inserted before it (migrations run before the services start).
CREATE TABLE IF NOT EXISTS {db}.request_stats_1d AS {db}.request_stats_1h
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (api_id, bucket, model_version)
TTL bucket + INTERVAL 1825 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.request_stats_1d_mv TO {db}.request_stats_1d AS
SELECT
    api_id,
    toStartOfDay(ts) AS bucket,
    model_version,
    toUInt64(count()) AS requests,
    toUInt64(countIf(status_code < 400)) AS successes,
    toUInt64(countIf(status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(status_code >= 500)) AS errors_5xx,
    sum(toFloat64(total_ms)) AS latency_sum_ms,
    max(total_ms) AS latency_max_ms,
    sum(toFloat64(inference_ms)) AS inference_sum_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(total_ms) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(1))) AS latency_histogram,
    sum(toFloat64(cpu_ms)) AS cpu_ms,
    toUInt64(sum(rows)) AS rows,
    toUInt64(sum(request_bytes)) AS request_bytes,
    toUInt64(sum(response_bytes)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    max(ts) AS last_ts
FROM {db}.request_events
GROUP BY api_id, bucket, model_version;

INSERT INTO {db}.request_stats_1d
SELECT
    api_id,
    toStartOfDay(ts) AS bucket,
    model_version,
    toUInt64(count()) AS requests,
    toUInt64(countIf(status_code < 400)) AS successes,
    toUInt64(countIf(status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(status_code >= 500)) AS errors_5xx,
    sum(toFloat64(total_ms)) AS latency_sum_ms,
    max(total_ms) AS latency_max_ms,
    sum(toFloat64(inference_ms)) AS inference_sum_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(total_ms) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(1))) AS latency_histogram,
    sum(toFloat64(cpu_ms)) AS cpu_ms,
    toUInt64(sum(rows)) AS rows,
    toUInt64(sum(request_bytes)) AS request_bytes,
    toUInt64(sum(response_bytes)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    max(ts) AS last_ts
FROM {db}.request_events
WHERE inserted_at < (
    SELECT max(metadata_modification_time) FROM system.tables
    WHERE database = '{db}' AND name = 'request_stats_1d_mv'
)
GROUP BY api_id, bucket, model_version;
