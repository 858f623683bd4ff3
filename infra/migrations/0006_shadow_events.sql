-- Shadow traffic (issue 11): a request an API also mirrors to a second version is answered by the
-- serving version only; the shadow version's answer is stored as an event of its own, `shadow`
-- true and `shadow_of` naming the event of the request it mirrored (agreement between the two is
-- their `prediction`s compared). Shadow events are nobody's requests: the rollups leave them out,
-- so an API's requests, errors, latency and alerts stay what its clients got.
ALTER TABLE {db}.request_events ADD COLUMN IF NOT EXISTS shadow Bool DEFAULT false AFTER authenticated;
ALTER TABLE {db}.request_events ADD COLUMN IF NOT EXISTS shadow_of String DEFAULT '' AFTER shadow;

-- The views are created again with the filter; no stored row is a shadow yet, so no rollup row
-- changes. Run migrations before the services start, as for 0003.
DROP VIEW IF EXISTS {db}.request_stats_1m_mv;
DROP VIEW IF EXISTS {db}.request_stats_1h_mv;
DROP VIEW IF EXISTS {db}.request_stats_1d_mv;

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
WHERE NOT shadow
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
WHERE NOT shadow
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
WHERE NOT shadow
GROUP BY api_id, bucket, model_version;

-- The analysts' views: each request also says whether it was a shadow answer, and of which
-- request; hourly figures (from the rollups) leave shadows out.
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
    shadow_of
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
