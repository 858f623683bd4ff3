"""HTTP views: decode, check, call the logic classes, encode. Each is an operation of
``management_api.routes.ROUTES``, the one route table (auth, ownership and OpenAPI live there)."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import text

from management_api import idempotency
from management_api.algorithms import ALGORITHMS
from management_api.apidocs import build_docs
from management_api.compat import CompatibilityQuery
from management_api.datasets import ColumnChoices, dataset_infos
from management_api.db import session_factory
from management_api.drift import drift_report
from management_api.errors import InvalidInput, NotFound
from management_api.exports import ApiFilter
from management_api.http import json_response, principal, read_json, read_query, validate
from management_api.keys import (
    ACCOUNTS,
    ALERTS,
    AMQP,
    CATALOG,
    ENGINE,
    EXPORTS,
    JOBS,
    MONITORING,
    SETTINGS,
)
from management_api.retrain import retrain
from management_api.uploads import inspect_upload
from management_api.webhooks import (
    WEBHOOKS,
    DeliveriesQuery,
    WebhookCreate,
    WebhookUpdate,
)
from schemas.alerts import AlertHistoryQuery, AlertRulesUpdate, SilenceRequest
from schemas.drift import DriftQuery, ReferenceProfile
from schemas.monitoring import DEFAULT_BUCKET
from schemas.resources import (
    AlgorithmList,
    ApiCreate,
    ApiDeploy,
    ApiList,
    ApiListQuery,
    ApiStatusUpdate,
    ApiUpdate,
    DatasetList,
    Health,
    LogsQuery,
    ModelInspectForm,
    ModelList,
    ModelUploadForm,
    PasswordChange,
    RangeQuery,
    RequestsQuery,
    RetrainRequest,
    StatsQuery,
    TimeSeriesByQuery,
    TimeSeriesQuery,
    TokenRequest,
    TrafficSet,
    TrainBuiltinRequest,
    TrainCsvForm,
    UserCreate,
    UserList,
    UserUpdate,
)

# --- accounts ---------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, TokenRequest)
    accounts = request.app[ACCOUNTS]
    # The peer, or what a configured trusted proxy says: a client cannot pick its throttle key.
    address = accounts.throttle.client_address(
        request.remote, request.headers.get("X-Forwarded-For")
    )
    return json_response(await accounts.login(body.username, body.password, address))


async def me(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[ACCOUNTS].get(principal(request).user_id))


async def change_own_password(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, PasswordChange)
    accounts = request.app[ACCOUNTS]
    address = accounts.throttle.client_address(
        request.remote, request.headers.get("X-Forwarded-For")
    )
    return json_response(await accounts.change_password(principal(request), body, address))


async def list_users(request: web.Request) -> web.StreamResponse:
    return json_response(UserList(items=await request.app[ACCOUNTS].list_users()))


async def create_user(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, UserCreate)
    return json_response(await request.app[ACCOUNTS].create(body), status=201)


async def update_user(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, UserUpdate)
    user_id = request.match_info["id"]
    return json_response(await request.app[ACCOUNTS].update(user_id, body, principal(request)))


async def delete_user(request: web.Request) -> web.StreamResponse:
    await request.app[ACCOUNTS].delete(request.match_info["id"], principal(request))
    return web.Response(status=204)


# --- models and training ----------------------------------------------------------------------


async def list_datasets(request: web.Request) -> web.StreamResponse:
    return json_response(DatasetList(items=dataset_infos()))


async def list_algorithms(request: web.Request) -> web.StreamResponse:
    return json_response(AlgorithmList(items=[a.info() for a in ALGORITHMS.values()]))


async def read_form(request: web.Request, file_field: str) -> tuple[dict[str, Any], bytes, str]:
    """A multipart form's text fields (JSON-decoded where they hold JSON) and its file."""
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput(
            "send multipart/form-data with a file", details={"content_type": request.content_type}
        )
    form = await request.post()
    fields: dict[str, Any] = {}
    data, filename = b"", ""
    for name, value in form.items():
        if isinstance(value, web.FileField):
            if name == file_field:
                data, filename = value.file.read(), value.filename or "upload"
            continue
        fields[name] = value
    if not data:
        raise InvalidInput(f"the form needs a non-empty file in field {file_field!r}")
    for name in ("params", "features", "classes", "drop_columns", "column_types", "image"):
        if isinstance(fields.get(name), str):
            try:
                fields[name] = orjson.loads(fields[name]) if fields[name].strip() else None
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(
                    f"form field {name!r} must be JSON", details={"field": name}
                ) from exc
            if fields[name] is None:
                del fields[name]
    for name in ("task",):
        if fields.get(name) == "":
            del fields[name]
    return fields, data, filename


async def train_model(request: web.Request) -> web.StreamResponse:
    jobs, who = request.app[JOBS], principal(request)
    if request.content_type.startswith("multipart/"):
        fields, data, filename = await read_form(request, "file")
        form = validate(TrainCsvForm, fields, "form")
        job = await jobs.submit_csv(
            who,
            form.name,
            data,
            Path(filename).name,
            form.target,
            form.algorithm,
            form.params,
            form.task,
            form.test_size,
            ColumnChoices(drop=form.drop_columns, types=form.column_types),
            form.image,
        )
    else:
        body = await read_json(request, TrainBuiltinRequest)
        job = await jobs.submit_builtin(
            who, body.name, body.dataset, body.algorithm, body.params, body.test_size
        )
    return json_response(job, status=202)


async def get_training_job(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[JOBS].get(principal(request), request.match_info["id"]))


async def cancel_training_job(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[JOBS].cancel(principal(request), request.match_info["id"])
    )


async def get_training_logs(request: web.Request) -> web.StreamResponse:
    query = read_query(request, LogsQuery)
    return json_response(
        await request.app[JOBS].logs(principal(request), request.match_info["id"], query.after)
    )


async def list_models(request: web.Request) -> web.StreamResponse:
    return json_response(
        ModelList(items=await request.app[CATALOG].list_models(principal(request)))
    )


async def get_model(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[CATALOG].get(principal(request), request.match_info["id"])
    )


async def version_reference(request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"]
    if not number.isdigit() or not 0 < int(number) < 2**31:
        await request.app[CATALOG].get(principal(request), request.match_info["id"])  # 404 first
        raise InvalidInput(
            "the version number must be a positive integer", details={"number": number[:20]}
        )
    version, reference = await request.app[CATALOG].version_reference(
        principal(request), request.match_info["id"], int(number)
    )
    if reference is None:
        raise NotFound(
            f"version {version.number} has no reference profile (trained before drift "
            "monitoring, or uploaded without a reference CSV)",
            details={"version": version.number},
        )
    return json_response(ReferenceProfile.model_validate(reference))


async def export_drift(request: web.Request) -> web.StreamResponse:
    query = read_query(request, DriftQuery)
    app = request.app
    return json_response(
        await drift_report(
            app[MONITORING],
            app[EXPORTS],
            app[CATALOG],
            principal(request),
            request.match_info["id"],
            query.range,
            query.version,
        )
    )


async def upload_model(request: web.Request) -> web.StreamResponse:
    fields, data, _ = await read_form(request, "file")
    form = validate(ModelUploadForm, fields, "form")
    # Optional reference CSV (issue 15): rows of the features, profiled for drift monitoring.
    reference = (await request.post()).get("reference")  # the parsed form, cached by aiohttp
    reference_csv = reference.file.read() if isinstance(reference, web.FileField) else None
    if reference_csv is not None and not reference_csv.strip():
        raise InvalidInput("the reference CSV is empty", details={"field": "reference"})
    return json_response(
        await request.app[CATALOG].upload(principal(request), form, data, reference_csv),
        status=201,
    )


async def inspect_model_upload(request: web.Request) -> web.StreamResponse:
    fields, data, _ = await read_form(request, "file")
    validate(ModelInspectForm, fields, "form")
    return json_response(
        await inspect_upload(request.app[CATALOG], data, principal(request).user_id)
    )


async def delete_model(request: web.Request) -> web.StreamResponse:
    await request.app[CATALOG].delete(principal(request), request.match_info["id"])
    return web.Response(status=204)


# --- exported APIs ----------------------------------------------------------------------------


async def export_model(request: web.Request) -> web.StreamResponse:
    key = idempotency.parse_key(request.headers.getall(idempotency.HEADER, []))
    body = await read_json(request, ApiCreate)
    created, replayed = await request.app[EXPORTS].create_once(
        principal(request), request.match_info["model_id"], body, key
    )
    response = json_response(created, status=201)
    if replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def api_filter(query: ApiListQuery) -> ApiFilter:
    return ApiFilter(status=query.status, model_id=query.model_id, q=query.q)


async def list_exports(request: web.Request) -> web.StreamResponse:
    query = read_query(request, ApiListQuery)
    apis = await request.app[MONITORING].list_apis(
        principal(request), api_filter(query), query.sort, query.order == "desc"
    )
    return json_response(ApiList(items=apis))


async def get_export(request: web.Request) -> web.StreamResponse:
    api = await request.app[EXPORTS].get(principal(request), request.match_info["id"])
    [api] = await request.app[MONITORING].attach_summaries([api], required=False)
    return json_response(api)


async def update_export(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, ApiUpdate)
    return json_response(
        await request.app[EXPORTS].update(principal(request), request.match_info["id"], body)
    )


async def set_export_status(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, ApiStatusUpdate)
    return json_response(
        await request.app[EXPORTS].set_status(
            principal(request), request.match_info["id"], body.status
        )
    )


async def regenerate_key(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[EXPORTS].regenerate_key(principal(request), request.match_info["id"])
    )


async def deploy_version(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, ApiDeploy)
    return json_response(
        await request.app[EXPORTS].deploy(
            principal(request), request.match_info["id"], body.version, force=body.force
        )
    )


async def retrain_export(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, RetrainRequest)
    app = request.app
    queries = await app[MONITORING].queries() if body.include_feedback else None
    job = await retrain(
        session_factory(app[ENGINE]),
        app[JOBS],
        queries,
        principal(request),
        request.match_info["id"],
        body.include_feedback,
    )
    return json_response(job, status=202)


async def version_compatibility(request: web.Request) -> web.StreamResponse:
    query = read_query(request, CompatibilityQuery)
    return json_response(
        await request.app[EXPORTS].compatibility(
            principal(request), request.match_info["id"], query.version
        )
    )


async def delete_export(request: web.Request) -> web.StreamResponse:
    await request.app[EXPORTS].delete(principal(request), request.match_info["id"])
    return web.Response(status=204)


async def export_docs(request: web.Request) -> web.StreamResponse:
    api, version = await request.app[EXPORTS].details(principal(request), request.match_info["id"])
    return json_response(build_docs(api, version))


async def set_traffic(request: web.Request) -> web.StreamResponse:
    exports, who, api_id = request.app[EXPORTS], principal(request), request.match_info["id"]
    await exports.get(who, api_id)  # someone else's API is 404 whatever the body
    body = await read_json(request, TrafficSet)
    return json_response(await exports.set_traffic(who, api_id, body))


async def stop_traffic(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[EXPORTS].stop_traffic(principal(request), request.match_info["id"])
    )


async def promote_traffic(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[EXPORTS].promote(principal(request), request.match_info["id"])
    )


async def rollback_traffic(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[EXPORTS].rollback(principal(request), request.match_info["id"])
    )


# --- monitoring -------------------------------------------------------------------------------


async def monitoring_overview(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[MONITORING].overview(principal(request)))


async def monitoring_apis(request: web.Request) -> web.StreamResponse:
    query = read_query(request, ApiListQuery)
    apis = await request.app[MONITORING].list_apis(
        principal(request), api_filter(query), query.sort, query.order == "desc", require_stats=True
    )
    return json_response(ApiList(items=apis))


async def monitoring_stats(request: web.Request) -> web.StreamResponse:
    query = read_query(request, StatsQuery)
    return json_response(
        await request.app[MONITORING].stats(
            principal(request), request.match_info["id"], query.range, by=query.by
        )
    )


async def monitoring_timeseries(request: web.Request) -> web.StreamResponse:
    query = read_query(request, TimeSeriesByQuery)
    bucket = query.bucket or DEFAULT_BUCKET[query.range]
    return json_response(
        await request.app[MONITORING].time_series(
            principal(request),
            request.match_info["id"],
            query.range,
            bucket,
            by=query.by,
        )
    )


async def monitoring_overview_timeseries(request: web.Request) -> web.StreamResponse:
    query = read_query(request, TimeSeriesQuery)
    bucket = query.bucket or DEFAULT_BUCKET[query.range]
    return json_response(
        await request.app[MONITORING].overview_time_series(principal(request), query.range, bucket)
    )


async def monitoring_requests(request: web.Request) -> web.StreamResponse:
    query = read_query(request, RequestsQuery)
    return json_response(
        await request.app[MONITORING].requests(
            principal(request), request.match_info["id"], query.page, query.page_size, query.status
        )
    )


async def monitoring_resources(request: web.Request) -> web.StreamResponse:
    query = read_query(request, RangeQuery)
    return json_response(
        await request.app[MONITORING].resources(
            principal(request), request.match_info["id"], query.range
        )
    )


async def export_performance(request: web.Request) -> web.StreamResponse:
    query = read_query(request, RangeQuery)
    return json_response(
        await request.app[MONITORING].performance(
            principal(request), request.match_info["id"], query.range
        )
    )


async def monitoring_alerts(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[MONITORING].alerts(principal(request), request.match_info["id"])
    )


# --- alerts -----------------------------------------------------------------------------------


async def get_alert_rules(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[ALERTS].rules(principal(request), request.match_info["id"])
    )


async def put_alert_rules(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, AlertRulesUpdate)
    return json_response(
        await request.app[ALERTS].replace(principal(request), request.match_info["id"], body)
    )


async def alert_history(request: web.Request) -> web.StreamResponse:
    query = read_query(request, AlertHistoryQuery)
    return json_response(await request.app[ALERTS].history(principal(request), query))


async def active_alerts(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[ALERTS].active(principal(request)))


async def ack_alert(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[ALERTS].ack(principal(request), request.match_info["rule_id"])
    )


async def silence_alert(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, SilenceRequest)
    return json_response(
        await request.app[ALERTS].silence(
            principal(request), request.match_info["rule_id"], body.duration_s
        )
    )


async def unsilence_alert(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[ALERTS].silence(principal(request), request.match_info["rule_id"], None)
    )


# --- service ----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.StreamResponse:
    database = True
    try:
        async with request.app[ENGINE].connect() as db:
            await db.execute(text("SELECT 1"))
    except Exception:
        database = False
    amqp = request.app.get(AMQP)
    broker = amqp is not None and not amqp.is_closed
    ok = database and broker
    return json_response(
        Health(
            status="ok" if ok else "degraded",
            database=database,
            broker=broker,
            instance_id=request.app[SETTINGS].management_id,
        ),
        200 if ok else 503,
    )


async def openapi_document(request: web.Request) -> web.StreamResponse:
    from management_api.openapi import build_openapi
    from management_api.routes import ROUTES  # the table names this handler: imported late

    document = build_openapi(ROUTES, request.app[SETTINGS])
    return web.Response(body=orjson.dumps(document), content_type="application/json")


async def docs_page(request: web.Request) -> web.StreamResponse:
    from management_api.docs_page import DOCS_HTML

    return web.Response(text=DOCS_HTML, content_type="text/html")


NO_DASHBOARD = """<!doctype html><html><head><meta charset="utf-8"><title>modelgate</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>modelgate</h1><p>The dashboard is not built yet. Run <code>make run</code> (it builds the
dashboard into <code>management_api/static/</code> and starts the stack), then reload.</p>
<p>The management API works meanwhile: <a href="/docs">interactive API docs</a>,
<a href="/openapi.json">OpenAPI document</a>.</p></body></html>"""


CLIENT_ROUTE = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")
"""What a client-side route's path looks like, as sent (before any decoding): segments of safe
characters, none empty or starting with a dot; no encoded slash, dot segment or NUL."""


async def dashboard(request: web.Request) -> web.StreamResponse:
    """The dashboard's files; other non-API paths that look like client routes (``CLIENT_ROUTE``)
    get ``index.html`` (client-side routing), odd ones 404."""
    tail = request.match_info.get("path", "")
    if tail == "api" or tail.startswith("api/"):
        raise NotFound("no such route", details={"path": request.path})
    root = request.app[SETTINGS].management_static_dir.resolve()
    index = root / "index.html"
    if not index.is_file():
        return web.Response(
            text=NO_DASHBOARD, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )
    if tail:
        try:
            candidate = (root / tail).resolve()
            found = candidate.is_relative_to(root) and candidate.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            raise NotFound("no such file", details={"path": request.path[:200]}) from None
        if found:
            immutable = candidate.relative_to(root).parts[0] == "assets"
            content_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
            return web.FileResponse(
                candidate,
                headers={
                    "Cache-Control": "public, max-age=31536000, immutable"
                    if immutable
                    else "no-cache",
                    "Content-Type": content_type,
                },
            )
        if "." in Path(tail).name:
            raise NotFound("no such file", details={"path": request.path})
    if not CLIENT_ROUTE.fullmatch(request.raw_path.partition("?")[0]):
        raise NotFound("no such route", details={"path": request.raw_path[:200]})
    return web.FileResponse(
        index, headers={"Cache-Control": "no-cache", "Content-Type": "text/html"}
    )


# --- webhooks (notifications) ------------------------------------------------------------------


async def list_webhooks(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[WEBHOOKS].list_for(principal(request)))


async def create_webhook(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, WebhookCreate)
    return json_response(await request.app[WEBHOOKS].create(principal(request), body), 201)


async def update_webhook(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, WebhookUpdate)
    webhooks = request.app[WEBHOOKS]
    return json_response(await webhooks.update(principal(request), request.match_info["id"], body))


async def delete_webhook(request: web.Request) -> web.StreamResponse:
    await request.app[WEBHOOKS].delete(principal(request), request.match_info["id"])
    return json_response(None, 204)


async def rotate_webhook_secret(request: web.Request) -> web.StreamResponse:
    webhooks = request.app[WEBHOOKS]
    return json_response(await webhooks.rotate(principal(request), request.match_info["id"]))


async def test_webhook(request: web.Request) -> web.StreamResponse:
    webhooks = request.app[WEBHOOKS]
    return json_response(await webhooks.send_test(principal(request), request.match_info["id"]))


async def webhook_deliveries(request: web.Request) -> web.StreamResponse:
    query = read_query(request, DeliveriesQuery)
    webhooks = request.app[WEBHOOKS]
    return json_response(
        await webhooks.deliveries(principal(request), request.match_info["id"], query.limit)
    )
