"""HTTP views: decode, check, call the logic classes, encode. ``ROUTES`` is the one route table
the app registers and ``/openapi.json`` documents, so the two cannot drift."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import text

from management_api.apidocs import build_docs
from management_api.errors import InvalidInput, NotFound
from management_api.exports import ApiFilter
from management_api.http import Route, json_response, principal, read_json, read_query, validate
from management_api.keys import (
    ACCOUNTS,
    AMQP,
    CATALOG,
    ENGINE,
    EXPORTS,
    JOBS,
    MONITORING,
    SETTINGS,
)
from management_api.training import ALGORITHMS, TrainingError, dataset_infos, read_csv
from schemas.monitoring import (
    AlertList,
    ApiStats,
    Bucket,
    Overview,
    Range,
    RequestPage,
    Resources,
    TimeSeries,
)
from schemas.resources import (
    AlgorithmList,
    ApiCreate,
    ApiCreated,
    ApiDeploy,
    ApiDocs,
    ApiKeyRotated,
    ApiList,
    ApiListQuery,
    ApiPublic,
    ApiStatusUpdate,
    ApiUpdate,
    DatasetList,
    Health,
    LogsQuery,
    ModelList,
    ModelPublic,
    ModelUploadForm,
    RangeQuery,
    RequestsQuery,
    TimeSeriesQuery,
    TokenRequest,
    TokenResponse,
    TrainBuiltinRequest,
    TrainCsvForm,
    TrainingJob,
    TrainingLogs,
    UserCreate,
    UserList,
    UserPublic,
    UserUpdate,
)

DEFAULT_BUCKET: dict[Range, Bucket] = {"24h": "minute", "7d": "hour", "30d": "day"}

# --- accounts ---------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, TokenRequest)
    return json_response(await request.app[ACCOUNTS].login(body.username, body.password))


async def me(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[ACCOUNTS].get(principal(request).user_id))


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
    for name in ("params", "features", "classes"):
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
        try:
            frame = await asyncio.to_thread(read_csv, data)
        except TrainingError as exc:
            raise InvalidInput(str(exc), details=exc.details) from exc
        job = await jobs.submit_csv(
            who,
            form.name,
            frame,
            Path(filename).name,
            form.target,
            form.algorithm,
            form.params,
            form.task,
            form.test_size,
        )
    else:
        body = await read_json(request, TrainBuiltinRequest)
        job = await jobs.submit_builtin(
            who, body.name, body.dataset, body.algorithm, body.params, body.test_size
        )
    return json_response(job, status=202)


async def get_training_job(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[JOBS].get(principal(request), request.match_info["id"]))


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


async def upload_model(request: web.Request) -> web.StreamResponse:
    fields, data, _ = await read_form(request, "file")
    form = validate(ModelUploadForm, fields, "form")
    return json_response(
        await request.app[CATALOG].upload(principal(request), form, data), status=201
    )


async def delete_model(request: web.Request) -> web.StreamResponse:
    await request.app[CATALOG].delete(principal(request), request.match_info["id"])
    return web.Response(status=204)


# --- exported APIs ----------------------------------------------------------------------------


async def export_model(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, ApiCreate)
    created = await request.app[EXPORTS].create(
        principal(request), request.match_info["model_id"], body
    )
    return json_response(created, status=201)


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
            principal(request), request.match_info["id"], body.version
        )
    )


async def delete_export(request: web.Request) -> web.StreamResponse:
    await request.app[EXPORTS].delete(principal(request), request.match_info["id"])
    return web.Response(status=204)


async def export_docs(request: web.Request) -> web.StreamResponse:
    api, version = await request.app[EXPORTS].details(principal(request), request.match_info["id"])
    return json_response(build_docs(api, version))


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
    query = read_query(request, RangeQuery)
    return json_response(
        await request.app[MONITORING].stats(
            principal(request), request.match_info["id"], query.range
        )
    )


async def monitoring_timeseries(request: web.Request) -> web.StreamResponse:
    query = read_query(request, TimeSeriesQuery)
    bucket = query.bucket or DEFAULT_BUCKET[query.range]
    return json_response(
        await request.app[MONITORING].time_series(
            principal(request),
            request.match_info["id"],
            query.range,
            bucket,
        )
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


async def monitoring_alerts(request: web.Request) -> web.StreamResponse:
    return json_response(
        await request.app[MONITORING].alerts(principal(request), request.match_info["id"])
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
        Health(status="ok" if ok else "degraded", database=database, broker=broker),
        200 if ok else 503,
    )


async def openapi_document(request: web.Request) -> web.StreamResponse:
    from management_api.openapi import build_openapi

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


async def dashboard(request: web.Request) -> web.StreamResponse:
    """The dashboard's files; any other non-API path gets ``index.html`` (client-side routing)."""
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
        candidate = (root / tail).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
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
    return web.FileResponse(
        index, headers={"Cache-Control": "no-cache", "Content-Type": "text/html"}
    )


JSON = "application/json"
HTML = "text/html"

ROUTES: list[Route] = [
    # accounts
    Route(
        "POST",
        "/api/auth/token",
        login,
        "Log in: exchange username and password for a bearer token",
        "accounts",
        auth="public",
        body=TokenRequest,
        response=TokenResponse,
    ),
    Route("GET", "/api/users/me", me, "The logged-in user", "accounts", response=UserPublic),
    Route(
        "GET",
        "/api/users",
        list_users,
        "List users (admin)",
        "accounts",
        auth="admin",
        response=UserList,
    ),
    Route(
        "POST",
        "/api/users",
        create_user,
        "Create a user (admin)",
        "accounts",
        auth="admin",
        body=UserCreate,
        response=UserPublic,
        status=201,
    ),
    Route(
        "PATCH",
        "/api/users/{id}",
        update_user,
        "Change a user's password or role (admin)",
        "accounts",
        auth="admin",
        body=UserUpdate,
        response=UserPublic,
        owns="user",
    ),
    Route(
        "DELETE",
        "/api/users/{id}",
        delete_user,
        "Delete a user (admin)",
        "accounts",
        auth="admin",
        status=204,
        owns="user",
    ),
    # models and training
    Route(
        "GET",
        "/api/datasets",
        list_datasets,
        "Built-in datasets to train on",
        "models",
        response=DatasetList,
    ),
    Route(
        "GET",
        "/api/algorithms",
        list_algorithms,
        "Algorithms and their parameters",
        "models",
        response=AlgorithmList,
    ),
    Route(
        "POST",
        "/api/models/train",
        train_model,
        "Train a model (built-in dataset as JSON, or a CSV as multipart)",
        "models",
        body=TrainBuiltinRequest,
        form=TrainCsvForm,
        form_file="file",
        response=TrainingJob,
        status=202,
        description=(
            "A new version of the caller's model of that name, or a new model. "
            "Poll the job and its logs."
        ),
    ),
    Route(
        "GET",
        "/api/training-jobs/{id}",
        get_training_job,
        "Status and progress of a training job",
        "models",
        response=TrainingJob,
        owns="job",
    ),
    Route(
        "GET",
        "/api/training-jobs/{id}/logs",
        get_training_logs,
        "Live log of a training job (poll with after=next)",
        "models",
        query=LogsQuery,
        response=TrainingLogs,
        owns="job",
    ),
    Route(
        "GET",
        "/api/models",
        list_models,
        "The caller's models with their versions",
        "models",
        response=ModelList,
    ),
    Route(
        "POST",
        "/api/models/upload",
        upload_model,
        "Upload a ready model (.skops) with its feature schema",
        "models",
        form=ModelUploadForm,
        form_file="file",
        response=ModelPublic,
        status=201,
    ),
    Route(
        "GET",
        "/api/models/{id}",
        get_model,
        "A model with every version's metrics, schema and parameters",
        "models",
        response=ModelPublic,
        owns="model",
    ),
    Route(
        "DELETE",
        "/api/models/{id}",
        delete_model,
        "Delete a model and its versions (409 while an API serves it)",
        "models",
        status=204,
        owns="model",
    ),
    # exported APIs
    Route(
        "POST",
        "/api/export/{model_id}",
        export_model,
        "Export a model version as a keyed prediction API",
        "exports",
        body=ApiCreate,
        response=ApiCreated,
        status=201,
        owns="model",
        description="The key appears in this answer only.",
    ),
    Route(
        "GET",
        "/api/exports",
        list_exports,
        "List exported APIs with filters and sorting",
        "exports",
        query=ApiListQuery,
        response=ApiList,
    ),
    Route(
        "GET",
        "/api/exports/{id}",
        get_export,
        "One exported API",
        "exports",
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "PATCH",
        "/api/exports/{id}",
        update_export,
        "Change name, rate limit, alert thresholds or payload logging",
        "exports",
        body=ApiUpdate,
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "PUT",
        "/api/exports/{id}/status",
        set_export_status,
        "Activate or deactivate an API",
        "exports",
        body=ApiStatusUpdate,
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "POST",
        "/api/exports/{id}/regenerate-key",
        regenerate_key,
        "Replace the API key (the old one stops working)",
        "exports",
        response=ApiKeyRotated,
        owns="api",
    ),
    Route(
        "POST",
        "/api/exports/{id}/deploy",
        deploy_version,
        "Serve another version of the model, without downtime",
        "exports",
        body=ApiDeploy,
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "DELETE",
        "/api/exports/{id}",
        delete_export,
        "Delete an exported API",
        "exports",
        status=204,
        owns="api",
    ),
    Route(
        "GET",
        "/api/exports/{id}/docs",
        export_docs,
        "How to call an API: features, curl and Python examples",
        "exports",
        response=ApiDocs,
        owns="api",
    ),
    # monitoring
    Route(
        "GET",
        "/api/monitoring/overview",
        monitoring_overview,
        "Totals over the caller's APIs",
        "monitoring",
        response=Overview,
    ),
    Route(
        "GET",
        "/api/monitoring/apis",
        monitoring_apis,
        "APIs with usage statistics",
        "monitoring",
        query=ApiListQuery,
        response=ApiList,
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/stats",
        monitoring_stats,
        "Detailed statistics of one API over a range",
        "monitoring",
        query=RangeQuery,
        response=ApiStats,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/timeseries",
        monitoring_timeseries,
        "Requests, errors and latency per time bucket",
        "monitoring",
        query=TimeSeriesQuery,
        response=TimeSeries,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/requests",
        monitoring_requests,
        "Request history, newest first",
        "monitoring",
        query=RequestsQuery,
        response=RequestPage,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/resources",
        monitoring_resources,
        "CPU and memory of the workers serving an API",
        "monitoring",
        query=RangeQuery,
        response=Resources,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/alerts",
        monitoring_alerts,
        "Thresholds the API crosses now",
        "monitoring",
        response=AlertList,
        owns="api",
    ),
    # service
    Route(
        "GET",
        "/health",
        health,
        "Liveness and dependencies",
        "service",
        auth="public",
        response=Health,
    ),
    Route(
        "GET", "/openapi.json", openapi_document, "This OpenAPI document", "service", auth="public"
    ),
    Route(
        "GET",
        "/docs",
        docs_page,
        "Interactive API documentation",
        "service",
        auth="public",
        content_type=HTML,
    ),
    Route("GET", "/", dashboard, "The dashboard", "dashboard", auth="public", content_type=HTML),
    Route(
        "GET",
        "/{path:.*}",
        dashboard,
        "Dashboard files (index.html for client-side routes)",
        "dashboard",
        auth="public",
        content_type=HTML,
    ),
]
