-- Requests rejected before authentication (no key, a wrong key, an unknown API id, or ingress not
-- knowing the APIs yet) are anyone's to send: they no longer count in an API's requests, errors,
-- latency or alerts, but apart, as rejected_unauthenticated. ingress marks each event
-- (`authenticated`: the key matched the API's); rows stored before this migration get it from
-- their error code, which ingress set exactly for those rejections.
ALTER TABLE {db}.request_events ADD COLUMN IF NOT EXISTS authenticated Bool DEFAULT error_code NOT IN ('MISSING_API_KEY', 'INVALID_API_KEY', 'API_NOT_FOUND', 'REGISTRY_NOT_READY') AFTER key_prefix;

ALTER TABLE {db}.request_stats_1m ADD COLUMN IF NOT EXISTS rejected_unauthenticated SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE {db}.request_stats_1h ADD COLUMN IF NOT EXISTS rejected_unauthenticated SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE {db}.request_stats_1d ADD COLUMN IF NOT EXISTS rejected_unauthenticated SimpleAggregateFunction(sum, UInt64) DEFAULT 0;

DROP VIEW IF EXISTS {db}.request_stats_1m_mv;
DROP VIEW IF EXISTS {db}.request_stats_1h_mv;
DROP VIEW IF EXISTS {db}.request_stats_1d_mv;

-- Existing rollup rows counted those rejections as requests and 4xx. Every bucket raw events still
-- fully cover (from the bucket of the oldest raw event, and starting after the raw TTL's cut, so
-- none of its rows can have expired) is recomputed from them into a copy that takes the rollup's
-- name; older buckets, whose raw events are gone, keep their rows as they were (nothing is left to
-- split them by). An empty raw table leaves every rollup row as it was.
-- Run migrations before the services start, as for 0003.

DROP TABLE IF EXISTS {db}.request_stats_1m_0005;

CREATE TABLE {db}.request_stats_1m_0005 AS {db}.request_stats_1m;

INSERT INTO {db}.request_stats_1m_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts FROM {db}.request_stats_1m
WHERE bucket < (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfMinute(min(ts)), toStartOfMinute(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 MINUTE))
    FROM {db}.request_events
);

INSERT INTO {db}.request_stats_1m_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT
    api_id,
    toStartOfMinute(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
WHERE ts >= (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfMinute(min(ts)), toStartOfMinute(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 MINUTE))
    FROM {db}.request_events
)
GROUP BY api_id, bucket, model_version;

EXCHANGE TABLES {db}.request_stats_1m AND {db}.request_stats_1m_0005;

DROP TABLE {db}.request_stats_1m_0005;

DROP TABLE IF EXISTS {db}.request_stats_1h_0005;

CREATE TABLE {db}.request_stats_1h_0005 AS {db}.request_stats_1h;

INSERT INTO {db}.request_stats_1h_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts FROM {db}.request_stats_1h
WHERE bucket < (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfHour(min(ts)), toStartOfHour(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 HOUR))
    FROM {db}.request_events
);

INSERT INTO {db}.request_stats_1h_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT
    api_id,
    toStartOfHour(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
WHERE ts >= (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfHour(min(ts)), toStartOfHour(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 HOUR))
    FROM {db}.request_events
)
GROUP BY api_id, bucket, model_version;

EXCHANGE TABLES {db}.request_stats_1h AND {db}.request_stats_1h_0005;

DROP TABLE {db}.request_stats_1h_0005;

DROP TABLE IF EXISTS {db}.request_stats_1d_0005;

CREATE TABLE {db}.request_stats_1d_0005 AS {db}.request_stats_1d;

INSERT INTO {db}.request_stats_1d_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts FROM {db}.request_stats_1d
WHERE bucket < (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfDay(min(ts)), toStartOfDay(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 DAY))
    FROM {db}.request_events
);

INSERT INTO {db}.request_stats_1d_0005 (api_id, bucket, model_version, requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, latency_count, latency_max_ms, inference_sum_ms, latency_quantiles, latency_histogram, cpu_ms, rows, request_bytes, response_bytes, worker_rss_max_mb, worker_rss_sum_mb, worker_rss_samples, last_ts)
SELECT
    api_id,
    toStartOfDay(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
WHERE ts >= (
    SELECT if(count() = 0, toDateTime('2105-12-31 00:00:00', 'UTC'),
        greatest(toStartOfDay(min(ts)), toStartOfDay(now64(3, 'UTC') - INTERVAL {raw_ttl_days} DAY) + INTERVAL 1 DAY))
    FROM {db}.request_events
)
GROUP BY api_id, bucket, model_version;

EXCHANGE TABLES {db}.request_stats_1d AND {db}.request_stats_1d_0005;

DROP TABLE {db}.request_stats_1d_0005;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.request_stats_1m_mv TO {db}.request_stats_1m AS
SELECT
    api_id,
    toStartOfMinute(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
GROUP BY api_id, bucket, model_version;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.request_stats_1h_mv TO {db}.request_stats_1h AS
SELECT
    api_id,
    toStartOfHour(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
GROUP BY api_id, bucket, model_version;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.request_stats_1d_mv TO {db}.request_stats_1d AS
SELECT
    api_id,
    toStartOfDay(ts) AS bucket,
    model_version,
    toUInt64(countIf(authenticated)) AS requests,
    toUInt64(countIf(authenticated AND status_code < 400)) AS successes,
    toUInt64(countIf(authenticated AND status_code >= 400 AND status_code < 500)) AS errors_4xx,
    toUInt64(countIf(authenticated AND status_code >= 500)) AS errors_5xx,
    toUInt64(countIf(NOT authenticated)) AS rejected_unauthenticated,
    sumIf(toFloat64(total_ms), authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_sum_ms,
    toUInt64(countIf(authenticated AND NOT (status_code >= 400 AND status_code < 500))) AS latency_count,
    maxIf(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_max_ms,
    sumIf(toFloat64(inference_ms), authenticated) AS inference_sum_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(total_ms, authenticated AND NOT (status_code >= 400 AND status_code < 500)) AS latency_quantiles,
    sumMap(map(toUInt32(arrayFirst(e -> total_ms <= e, [1., 2., 5., 10., 20., 50., 100., 200., 500., 1000., 2000., 5000., 0.]) ), toUInt64(authenticated AND NOT (status_code >= 400 AND status_code < 500)))) AS latency_histogram,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu_ms,
    toUInt64(sumIf(rows, authenticated)) AS rows,
    toUInt64(sumIf(request_bytes, authenticated)) AS request_bytes,
    toUInt64(sumIf(response_bytes, authenticated)) AS response_bytes,
    max(worker_rss_mb) AS worker_rss_max_mb,
    sum(toFloat64(worker_rss_mb)) AS worker_rss_sum_mb,
    toUInt64(countIf(worker_rss_mb > 0)) AS worker_rss_samples,
    maxIf(ts, authenticated) AS last_ts
FROM {db}.request_events
GROUP BY api_id, bucket, model_version;

-- The analysts' views: each request says whether it was authenticated; hourly figures count the
-- rejections before authentication apart.
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
    authenticated
FROM {db}.request_events;

CREATE OR REPLACE VIEW {db}.api_hourly AS
SELECT
    api_id,
    bucket AS hour,
    sum(requests) AS requests,
    sum(successes) AS successes,
    sum(errors_4xx) AS errors_4xx,
    sum(errors_5xx) AS errors_5xx,
    sum(rejected_unauthenticated) AS rejected_unauthenticated,
    if(requests = 0, 0, successes / requests) AS success_rate,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS avg_ms,
    quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_quantiles) AS latency_quantiles_ms,
    latency_quantiles_ms[1] AS p50_ms,
    latency_quantiles_ms[2] AS p90_ms,
    latency_quantiles_ms[3] AS p95_ms,
    latency_quantiles_ms[4] AS p99_ms,
    max(latency_max_ms) AS max_ms,
    sum(cpu_ms) AS cpu_ms,
    sum(rows) AS rows
FROM {db}.request_stats_1h
GROUP BY api_id, hour;
