"""Drift of an API's live inputs and predictions against its version's reference profile (issue 15).

ClickHouse counts, per time bucket, feature and reference bin, the rows the API answered (2xx,
shadow answers left out, payload logging on) in the logged request bodies (``input``: one object
of features or ``{"instances": [...]}``); Python turns the counts into PSI and Jensen-Shannon
distance (``management_api.reference``). Each body is parsed once
(``JSONExtractKeysAndValuesRaw``): measured in ``bench drift`` against a typed column, see
bench/RESULTS.md "Drift queries (issue 15)". Predictions are read from the ``prediction`` column
(the first row's answer of each request), so prediction drift works without payload logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from management_api.errors import Conflict, InvalidInput
from management_api.monitoring_sql import check_database
from management_api.reference import (
    DRIFT_PSI,
    FALSE_WORDS,
    OTHER,
    TRUE_WORDS,
    WARNING_PSI,
    edges_of,
    js_distance,
    psi,
    status_of,
)
from schemas.drift import DRIFT_BUCKET_SECONDS, DriftReport

if TYPE_CHECKING:  # the alert engine imports this module; these import much more
    from management_api.accounts import Principal
    from management_api.catalog import Catalog
    from management_api.exports import Exports
    from management_api.monitoring import Monitoring
    from management_api.queries import MonitoringQueries

NUMBER, BOOLEAN, CATEGORY = 0, 1, 2
MAX_FEATURES = 200
"""Features compared per report (the first ones of the reference; an image API's pixels are
logged as images, not features)."""

ANSWERED = (
    "api_id = {api_id:String} AND model_version = {version_key:String} "
    "AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}) "
    "AND ts < fromUnixTimestamp64Milli({end_ms:Int64}) "
    "AND NOT shadow AND status_code >= 200 AND status_code < 300"
)
SLOT = "toUInt32(intDiv(toUnixTimestamp64Milli(ts) - {start_ms:Int64}, {step_ms:Int64}))"
ROWS_OF_INPUT = "if(JSONHas(input, 'instances'), JSONExtractArrayRaw(input, 'instances'), [input])"
"""The rows of a logged body: one object of features, or the objects of ``instances``."""
SAMPLE_REQUESTS = 30_000
"""Requests a report parses at most (about). Above, the window is read in time slices covering
``1 / modulus`` of it (``modulus = ceil(requests / SAMPLE_REQUESTS)``), at least 24 slices spread
over the window (one or two per bucket, at a pseudo-random offset in each): the primary key
(api_id, ts) skips the granules outside the slices, so their bodies are neither decompressed nor
parsed. A hash of the event id in PREWHERE was measured first: it parses few rows but every
granule's ``input`` is still decompressed, 2-3 s per million requests (bench/RESULTS.md "Drift
queries (issue 15)"). PSI of a 30k-row sample over 10 bins against its own distribution is about
(bins - 1) / rows = 0.0003 (tests/unit/test_drift_scores.py), far under the 0.1 warning level."""
SAMPLE_ROWS = 100_000
"""Rows (a batch request's instances each count) a report parses at most (about): a window of
batch requests is sampled by its rows too, or 30k requests of 100 instances would each parse 3M
rows."""
QUERY_SETTINGS: dict[str, Any] = {"max_execution_time": 20, "timeout_overflow_mode": "throw"}
"""Sent with every drift query: the route gives up after ``management_monitoring_timeout_s``,
but ClickHouse keeps running a query whose HTTP client left; without a bound, a caller repeating
a heavy report would pile up parses that stall every other monitoring query."""
SLICES = 24
GOLDEN = 0.6180339887498949


def time_slices(window: tuple[int, int, int], modulus: int) -> list[tuple[int, int]]:
    """[start, end) milliseconds read of ``window`` when one part in ``modulus`` is read."""
    start, end, step = window
    if modulus <= 1:
        return [(start, end)]
    buckets = max(1, -(-(end - start) // step))
    per_bucket = max(1, -(-SLICES // buckets))
    width = step / per_bucket
    take = max(1, int(width / modulus))
    out = []
    for i in range(buckets * per_bucket):
        at = start + i * width + int((i * GOLDEN) % 1.0 * (width - take))
        lo = int(at)
        if lo < end:
            out.append((lo, min(end, lo + take)))
    return out


def slices_sql(slices: list[tuple[int, int]]) -> str:
    """A condition on ``ts`` the primary key can use (integer literals only)."""
    return (
        "("
        + " OR ".join(
            f"(ts >= fromUnixTimestamp64Milli(toInt64({int(a)})) "
            f"AND ts < fromUnixTimestamp64Milli(toInt64({int(b)})))"
            for a, b in slices
        )
        + ")"
    )


TRUE_LIST = "[" + ", ".join(f"'{w}'" for w in sorted(TRUE_WORDS)) + "]"
FALSE_LIST = "[" + ", ".join(f"'{w}'" for w in sorted(FALSE_WORDS)) + "]"


def _quoted(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def row_type(features: list[Dimension]) -> str:
    """The named tuple each logged row is parsed into, once (``JSONExtract``): numbers as
    Nullable(Float64) (a number sent as a string is read too), the rest as Nullable(String)."""
    fields = ", ".join(
        f"{_quoted(d.name)} Nullable({'Float64' if d.kind == NUMBER else 'String'})"
        for d in features
    )
    return f"Tuple({fields})"


def bin_sql(dim: Dimension, value: str, param: str) -> str:
    """SQL of the Int16 bin of ``value`` (Nullable) for ``dim`` (-1: missing). Number edges are
    written as literals (``(v > e1) + (v > e2) ...``: no per-row array); categories go through
    ``transform`` with the ``{param}_c`` / ``{param}_i`` parameters (unseen: the OTHER bin)."""
    if dim.kind == NUMBER:
        v = f"assumeNotNull({value})"
        above = " + ".join(f"({v} > {edge!r})" for edge in dim.edges) or "0"
        return f"if(isNull({value}) OR NOT isFinite({v}), toInt16(-1), toInt16({above}))"
    label = f"trimBoth(assumeNotNull({value}))"
    if dim.kind == BOOLEAN:
        label = (
            f"multiIf(has({TRUE_LIST}, lower({label})), 'true', "
            f"has({FALSE_LIST}, lower({label})), 'false', '')"
        )
    other = len(dim.cats)
    return (
        f"if(isNull({value}) OR {label} = '', toInt16(-1), toInt16(transform({label}, "
        f"{{{param}_c:Array(String)}}, {{{param}_i:Array(Int16)}}, {other})))"
    )


def category_parameters(dims: list[tuple[str, Dimension]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for param, dim in dims:
        if dim.kind != NUMBER:
            params[f"{param}_c"] = dim.cats
            params[f"{param}_i"] = list(range(len(dim.cats)))
    return params


def feature_counts_sql(
    database: str, features: list[Dimension], slices: list[tuple[int, int]] | None = None
) -> str:
    """Rows per (bucket slot, f, bin): f = 1 counts the rows, f = i + 2 is feature i; only the
    rows in ``slices`` when given (a sample of the window)."""
    db = check_database(database)
    bins = ", ".join(
        ["toInt16(0)"]
        + [bin_sql(d, f"tupleElement(x, {i + 1})", f"f{i}") for i, d in enumerate(features)]
    )
    return f"""
SELECT slot, f, b, count() AS n
FROM
(
    SELECT slot, JSONExtract(row, {{row_type:String}}) AS x, [{bins}] AS bins
    FROM
    (
        SELECT {SLOT} AS slot, arrayJoin({ROWS_OF_INPUT}) AS row
        FROM {db}.request_events
        WHERE {ANSWERED} AND {slices_sql(slices) if slices else "1"} AND input != ''
    )
)
ARRAY JOIN bins AS b, arrayEnumerate(bins) AS f
WHERE b >= 0
GROUP BY slot, f, b
"""


def prediction_counts_sql(
    database: str, prediction: Dimension, slices: list[tuple[int, int]] | None = None
) -> str:
    """Answered requests per (bucket slot, bin) of their (first row's) prediction."""
    db = check_database(database)
    value = "toFloat64OrNull(prediction)" if prediction.kind == NUMBER else "nullIf(prediction, '')"
    return f"""
SELECT slot, b, count() AS n
FROM
(
    SELECT {SLOT} AS slot, {bin_sql(prediction, value, "p")} AS b
    FROM {db}.request_events
    WHERE {ANSWERED} AND {slices_sql(slices) if slices else "1"} AND prediction != ''
)
WHERE b >= 0
GROUP BY slot, b
"""


def window_size_sql(database: str) -> str:
    """Answered requests and their rows in the window: only small columns are read."""
    db = check_database(database)
    return f"SELECT count(), sum(greatest(rows, 1)) FROM {db}.request_events WHERE {ANSWERED}"


@dataclass
class Sampling:
    """How a window is read: ``modulus`` 1 reads every request; ``rows`` is the window's
    answered rows (all of them, sampled or not)."""

    requests: int
    rows: int
    modulus: int


async def sampling(
    queries: MonitoringQueries,
    api_id: str,
    version_key: str,
    window: tuple[int, int, int],
    max_requests: int = SAMPLE_REQUESTS,
    max_rows: int = SAMPLE_ROWS,
) -> Sampling:
    start, end, _step = window
    result = await queries.client.query(
        window_size_sql(queries.database),
        parameters={
            "api_id": api_id,
            "version_key": version_key,
            "start_ms": start,
            "end_ms": end,
        },
        settings=QUERY_SETTINGS,
    )
    requests, rows = (int(v or 0) for v in result.result_rows[0])
    modulus = max(1, -(-requests // max(1, max_requests)), -(-rows // max(1, max_rows)))
    return Sampling(requests, rows, modulus)


@dataclass
class Dimension:
    """One compared distribution: a feature or the prediction, as bins with labels."""

    name: str
    type: str
    kind: int
    edges: list[float]
    cats: list[str]
    labels: list[str]
    reference: list[float]


def _bin_labels(bins: list[dict[str, Any]]) -> list[str]:
    def fmt(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    return [
        f"≤ {fmt(b['hi'])}"
        if b["lo"] is None and b["hi"] is not None
        else f"> {fmt(b['lo'])}"
        if b["hi"] is None and b["lo"] is not None
        else "all"
        if b["lo"] is None
        else f"{fmt(b['lo'])} - {fmt(b['hi'])}"
        for b in bins
    ]


def dimension(name: str, type_: str, stored: dict[str, Any]) -> Dimension:
    """The bins of one stored feature (or prediction) profile."""
    bins = stored.get("bins")
    if stored.get("categories") is None and bins is not None:
        return Dimension(
            name,
            type_,
            NUMBER,
            edges_of(bins),
            [],
            _bin_labels(bins),
            [float(b["share"]) for b in bins],
        )
    categories = [c for c in stored.get("categories") or [] if c["value"] != OTHER]
    other = sum(float(c["share"]) for c in stored.get("categories") or [] if c["value"] == OTHER)
    cats = [str(c["value"]) for c in categories]
    return Dimension(
        name,
        type_,
        BOOLEAN if type_ == "boolean" else CATEGORY,
        [],
        cats,
        [*cats, OTHER],
        [*(float(c["share"]) for c in categories), other],
    )


def dimensions(reference: dict[str, Any]) -> tuple[list[Dimension], Dimension]:
    features = [dimension(f["name"], f["type"], f) for f in reference["features"]]
    prediction = reference["prediction"]
    kind = "category" if prediction["kind"] == "classes" else "number"
    return features, dimension("prediction", kind, prediction)


def _window(now: datetime, range_: str) -> tuple[int, int, int]:
    """(start, end, step) in epoch milliseconds: whole buckets, the last one holding ``now``."""
    step = DRIFT_BUCKET_SECONDS[range_] * 1000
    count = DRIFT_BUCKET_SECONDS_COUNT[range_]
    current = int(now.timestamp() * 1000) // step * step
    return current - (count - 1) * step, current + step, step


DRIFT_BUCKET_SECONDS_COUNT: dict[str, int] = {
    "1h": 12,
    "6h": 24,
    "24h": 24,
    "7d": 28,
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def score(dim: Dimension, counts: list[float]) -> dict[str, Any]:
    total = sum(counts)
    if total <= 0:
        return {"psi": None, "js": None}
    return {
        "psi": round(psi(dim.reference, counts), 6),
        "js": round(js_distance(dim.reference, counts), 6),
    }


def feature_report(
    dim: Dimension, slots: dict[int, list[float]], start: int, step: int, count: int
) -> dict[str, Any]:
    totals = [0.0] * len(dim.labels)
    series = []
    for slot in range(count):
        counts = slots.get(slot)
        rows = int(sum(counts)) if counts else 0
        if counts:
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
        series.append(
            {
                "t": _iso(start + slot * step),
                "psi": score(dim, counts)["psi"] if counts else None,
                "rows": rows,
            }
        )
    scores = score(dim, totals)
    live_total = sum(totals)
    return {
        "name": dim.name,
        "type": dim.type,
        **scores,
        "status": status_of(scores["psi"]),
        "reference": [
            {"label": label, "share": round(share, 6)}
            for label, share in zip(dim.labels, dim.reference, strict=True)
        ],
        "live": [
            {"label": label, "share": round(c / live_total, 6) if live_total else 0.0}
            for label, c in zip(dim.labels, totals, strict=True)
        ],
        "series": series,
    }


async def drift_counts(
    queries: MonitoringQueries,
    api_id: str,
    version_key: str,
    features: list[Dimension],
    prediction: Dimension,
    window: tuple[int, int, int],
    modulus: int = 1,
) -> tuple[dict[int, dict[int, list[float]]], dict[int, list[float]]]:
    """ClickHouse's counts: {feature index (0: rows): {slot: counts per bin}}, and the
    prediction's {slot: counts per bin}, over one part in ``modulus`` of the window's time
    (``time_slices``; 1: all)."""
    start, end, step = window
    base = {
        "api_id": api_id,
        "version_key": version_key,
        "start_ms": start,
        "end_ms": end,
        "step_ms": step,
    }
    slices = time_slices(window, modulus) if modulus > 1 else None
    by_feature: dict[int, dict[int, list[float]]] = {}
    features = features[:MAX_FEATURES]
    if features:
        rows = await queries.client.query(
            feature_counts_sql(queries.database, features, slices),
            parameters={
                **base,
                "row_type": row_type(features),
                **category_parameters([(f"f{i}", d) for i, d in enumerate(features)]),
            },
            settings=QUERY_SETTINGS,
        )
        for slot, f, b, n in rows.result_rows:
            index = int(f) - 1  # 0: the rows themselves, i + 1: feature i
            width = 1 if index == 0 else len(features[index - 1].labels)
            counts = by_feature.setdefault(index, {}).setdefault(int(slot), [0.0] * width)
            if b < width:
                counts[b] += float(n)
    answered = await queries.client.query(
        prediction_counts_sql(queries.database, prediction, slices),
        parameters={**base, **category_parameters([("p", prediction)])},
        settings=QUERY_SETTINGS,
    )
    by_slot: dict[int, list[float]] = {}
    for slot, b, n in answered.result_rows:
        counts = by_slot.setdefault(int(slot), [0.0] * len(prediction.labels))
        if b < len(counts):
            counts[b] += float(n)
    return by_feature, by_slot


def build_report(
    api_id: str,
    number: int,
    range_: str,
    reference: dict[str, Any],
    counts: tuple[dict[int, dict[int, list[float]]], dict[int, list[float]]],
    window: tuple[int, int, int],
    sampled: Sampling | None = None,
) -> dict[str, Any]:
    features, prediction = dimensions(reference)
    by_feature, by_slot = counts
    start, _end, step = window
    count = DRIFT_BUCKET_SECONDS_COUNT[range_]
    reports = [
        feature_report(dim, by_feature.get(i + 1, {}), start, step, count)
        for i, dim in enumerate(features)
    ]
    reports.sort(key=lambda r: (r["psi"] is None, -(r["psi"] or 0.0), r["name"]))
    parsed = int(sum(c[0] for c in by_feature.get(0, {}).values()))
    whole = sampled is None or sampled.modulus == 1
    return {
        "api_id": api_id,
        "version": number,
        "range": range_,
        "reference_rows": int(reference.get("rows", 0)),
        "live_rows": parsed if whole or sampled is None else max(parsed, sampled.rows),
        "sampled_rows": parsed,
        "thresholds": {"warning": WARNING_PSI, "drift": DRIFT_PSI},
        "features": reports,
        "prediction": feature_report(prediction, by_slot, start, step, count),
    }


async def drift_report(
    monitoring: Monitoring,
    exports: Exports,
    catalog: Catalog,
    principal: Principal,
    api_id: str,
    range_: str,
    number: int | None,
    now: datetime | None = None,
    max_requests: int = SAMPLE_REQUESTS,
) -> DriftReport:
    """``GET /api/exports/{id}/drift``: 404 unknown API or version, 409 NO_REFERENCE."""
    if range_ not in DRIFT_BUCKET_SECONDS:
        raise InvalidInput(f"range must be one of {sorted(DRIFT_BUCKET_SECONDS)}, not {range_!r}")
    api = await exports.get(principal, api_id)
    version, reference = await catalog.version_reference(
        principal, api.model_id, number or api.version_number
    )
    if reference is None:
        raise Conflict(
            f"version {version.number} has no reference profile (trained before drift "
            "monitoring, or uploaded without a reference CSV): retrain it to watch its drift",
            code="NO_REFERENCE",
            details={"api_id": api_id, "version": version.number},
        )
    features, prediction = dimensions(reference)
    window = _window(now or datetime.now(UTC), range_)

    async def ask(
        q: MonitoringQueries,
    ) -> tuple[Sampling, tuple[dict[int, dict[int, list[float]]], dict[int, list[float]]]]:
        sampled = await sampling(q, api.id, version.id, window, max_requests)
        counts = await drift_counts(
            q, api.id, version.id, features, prediction, window, sampled.modulus
        )
        return sampled, counts

    async with monitoring.heavy_report(principal):
        sampled, counts = await monitoring._ask(ask)
    return DriftReport.model_validate(
        build_report(api.id, version.number, range_, reference, counts, window, sampled)
    )


async def max_feature_psi(
    queries: MonitoringQueries,
    api_id: str,
    version_key: str,
    reference: dict[str, Any],
    start_ms: int,
    end_ms: int,
    max_requests: int = SAMPLE_REQUESTS,
) -> tuple[float | None, str | None, int]:
    """The largest feature PSI of an API's answered rows in [start, end) (the ``drift_psi``
    alert rule's value), the feature it belongs to, and the window's rows (sampled above
    ``max_requests`` requests, as the report is)."""
    features, prediction = dimensions(reference)
    window = (start_ms, end_ms, max(1, end_ms - start_ms))
    sampled = await sampling(queries, api_id, version_key, window, max_requests)
    by_feature, _ = await drift_counts(
        queries, api_id, version_key, features, prediction, window, sampled.modulus
    )
    rows = int(sum(c[0] for c in by_feature.get(0, {}).values()))
    if sampled.modulus > 1:
        rows = max(rows, sampled.rows)
    worst: tuple[float | None, str | None] = (None, None)
    for i, dim in enumerate(features):
        totals = [0.0] * len(dim.labels)
        for counts in by_feature.get(i + 1, {}).values():
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
        value = score(dim, totals)["psi"]
        if value is not None and (worst[0] is None or value > worst[0]):
            worst = (value, dim.name)
    return worst[0], worst[1], rows
