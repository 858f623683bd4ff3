"""The one route table: every operation's method, path, handler (``management_api.views``), auth,
ownership and documented shapes. The app registers it (``create_app``), ``with_auth`` guards it,
``/openapi.json`` documents it and the ownership test walks it, so none of them can drift."""

from __future__ import annotations

from management_api import views
from management_api.compat import CompatibilityQuery, CompatibilityReport
from management_api.http import Route
from management_api.metrics import metrics
from management_api.webhooks import (
    DeliveriesQuery,
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    WebhookSecret,
    WebhookUpdate,
)
from schemas.alerts import (
    ActiveAlertList,
    AlertHistory,
    AlertHistoryQuery,
    AlertRuleList,
    AlertRuleStatus,
    AlertRulesUpdate,
    SilenceRequest,
)
from schemas.drift import DriftQuery, DriftReport, ReferenceProfile
from schemas.monitoring import (
    AlertList,
    ApiStats,
    Overview,
    RequestPage,
    Resources,
    TimeSeries,
)
from schemas.performance import Performance
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
    ModelInspectForm,
    ModelInspection,
    ModelList,
    ModelPublic,
    ModelUploadForm,
    PasswordChange,
    RangeQuery,
    RequestsQuery,
    RetrainRequest,
    StatsQuery,
    TimeSeriesByQuery,
    TimeSeriesQuery,
    TokenRequest,
    TokenResponse,
    TrafficSet,
    TrainBuiltinRequest,
    TrainCsvForm,
    TrainingJob,
    TrainingLogs,
    UserCreate,
    UserList,
    UserPublic,
    UserUpdate,
)

HTML = "text/html"

ROUTES: list[Route] = [
    # accounts
    Route(
        "POST",
        "/api/auth/token",
        views.login,
        "Log in: exchange username and password for a bearer token",
        "accounts",
        auth="public",
        body=TokenRequest,
        response=TokenResponse,
        errors=(401, 403, 429),
        description="403 `ACCOUNT_DEACTIVATED`: the right password of a deactivated account.",
    ),
    Route("GET", "/api/users/me", views.me, "The logged-in user", "accounts", response=UserPublic),
    Route(
        "POST",
        "/api/users/me/password",
        views.change_own_password,
        "Change your own password (the current one required)",
        "accounts",
        body=PasswordChange,
        response=TokenResponse,
        errors=(429,),
        description=(
            "Answers a fresh token: every token issued before the change stops working. A wrong "
            "current password is 403 `WRONG_PASSWORD` and counts as a failed login (then 429)."
        ),
    ),
    Route(
        "GET",
        "/api/users",
        views.list_users,
        "List users (admin)",
        "accounts",
        auth="admin",
        response=UserList,
    ),
    Route(
        "POST",
        "/api/users",
        views.create_user,
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
        views.update_user,
        "Change a user's password, role or active flag (admin)",
        "accounts",
        auth="admin",
        body=UserUpdate,
        response=UserPublic,
        owns="user",
    ),
    Route(
        "DELETE",
        "/api/users/{id}",
        views.delete_user,
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
        views.list_datasets,
        "Built-in datasets to train on",
        "models",
        response=DatasetList,
    ),
    Route(
        "GET",
        "/api/algorithms",
        views.list_algorithms,
        "Algorithms and their parameters",
        "models",
        response=AlgorithmList,
    ),
    Route(
        "POST",
        "/api/models/train",
        views.train_model,
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
        views.get_training_job,
        "Status and progress of a training job",
        "models",
        response=TrainingJob,
        owns="job",
    ),
    Route(
        "GET",
        "/api/training-jobs/{id}/logs",
        views.get_training_logs,
        "Live log of a training job (poll with after=next)",
        "models",
        query=LogsQuery,
        response=TrainingLogs,
        owns="job",
    ),
    Route(
        "POST",
        "/api/training-jobs/{id}/cancel",
        views.cancel_training_job,
        "Cancel a queued or running training job (its process is stopped)",
        "models",
        response=TrainingJob,
        owns="job",
        description=(
            "Owner or admin. Answers the job as it ends: `cancelled`, or how it finished if it "
            "was already done (cancelling again changes nothing)."
        ),
    ),
    Route(
        "GET",
        "/api/models",
        views.list_models,
        "The caller's models with their versions",
        "models",
        response=ModelList,
    ),
    Route(
        "POST",
        "/api/models/upload",
        views.upload_model,
        "Upload a ready model (.skops) with its feature schema",
        "models",
        form=ModelUploadForm,
        form_file="file",
        response=ModelPublic,
        status=201,
        errors=(413, 429),
        description=(
            "429 while another model file of the caller's is being checked. An optional file "
            "field `reference` (a CSV of rows of the features; other columns ignored; bounded "
            "like a training CSV) gives the version a reference profile for drift monitoring, "
            "built with the model's own predictions in a limited child; missing or mistyped "
            "columns: 400 naming them, nothing saved."
        ),
    ),
    Route(
        "POST",
        "/api/models/upload/inspect",
        views.inspect_model_upload,
        "Read a .skops file's features, classes and task to pre-fill the upload form",
        "models",
        form=ModelInspectForm,
        form_file="file",
        response=ModelInspection,
        errors=(413, 429),
        description=(
            "The file is checked exactly like an upload (same limits, same refusals, never run); "
            "nothing is stored. 429 while another model file of the caller's is being checked."
        ),
    ),
    Route(
        "GET",
        "/api/models/{id}",
        views.get_model,
        "A model with every version's metrics, schema and parameters",
        "models",
        response=ModelPublic,
        owns="model",
    ),
    Route(
        "DELETE",
        "/api/models/{id}",
        views.delete_model,
        "Delete a model and its versions (409 while an API serves it)",
        "models",
        status=204,
        owns="model",
    ),
    Route(
        "GET",
        "/api/models/{id}/versions/{number}/reference",
        views.version_reference,
        "The reference profile of a version's training data (drift is measured against it)",
        "models",
        response=ReferenceProfile,
        owns="model",
        description=(
            "Versions trained before drift monitoring (issue 15) and versions uploaded "
            "without a reference CSV have none: 404 `NOT_FOUND`."
        ),
    ),
    # exported APIs
    Route(
        "POST",
        "/api/export/{model_id}",
        views.export_model,
        "Export a model version as a keyed prediction API",
        "exports",
        body=ApiCreate,
        response=ApiCreated,
        status=201,
        owns="model",
        description=(
            "The key appears in this answer only. Send an `Idempotency-Key` header (1 to 255 "
            "visible ASCII characters, e.g. a UUID per form) so a retry or double submit creates "
            "one API: within 24 h the same key from the same user with the same request answers "
            "the first answer again (key included, header `Idempotent-Replayed: true`); the same "
            "key with another request answers 409 IDEMPOTENCY_KEY_REUSED."
        ),
    ),
    Route(
        "GET",
        "/api/exports",
        views.list_exports,
        "List exported APIs with filters and sorting",
        "exports",
        query=ApiListQuery,
        response=ApiList,
    ),
    Route(
        "GET",
        "/api/exports/{id}",
        views.get_export,
        "One exported API",
        "exports",
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "PATCH",
        "/api/exports/{id}",
        views.update_export,
        "Change name, rate limit, alert thresholds or payload logging",
        "exports",
        body=ApiUpdate,
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "PUT",
        "/api/exports/{id}/status",
        views.set_export_status,
        "Activate or deactivate an API",
        "exports",
        body=ApiStatusUpdate,
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "POST",
        "/api/exports/{id}/regenerate-key",
        views.regenerate_key,
        "Replace the API key (the old one stops working)",
        "exports",
        response=ApiKeyRotated,
        owns="api",
    ),
    Route(
        "POST",
        "/api/exports/{id}/deploy",
        views.deploy_version,
        "Serve another version of the model, without downtime",
        "exports",
        body=ApiDeploy,
        response=ApiPublic,
        owns="api",
        description=(
            "A version whose inputs or classes differ from what the API serves (missing or new "
            "required features, changed types, categories, classes or task) is refused with 409 "
            "`INCOMPATIBLE_VERSION` and the diff in `details`, nothing changed; `force: true` "
            "deploys it anyway (owner or admin)."
        ),
    ),
    Route(
        "POST",
        "/api/exports/{id}/retrain",
        views.retrain_export,
        "Train the next version of the API's model on the served version's recipe",
        "exports",
        body=RetrainRequest,
        response=TrainingJob,
        status=202,
        owns="api",
        description=(
            "Owner or admin. A training job (as `POST /api/models/train` answers) on the served "
            "version's built-in dataset or kept training CSV, algorithm, parameters and test "
            "share, plus, with `include_feedback`, the API's feedback joined to its logged "
            "inputs. 409 `RECIPE_UNAVAILABLE` for an uploaded version, a CSV version saved "
            "before training CSVs were kept, or one whose kept CSV changed on disk, 409 "
            "`NO_FEEDBACK` when no feedback joins a logged input; nothing is queued then. The "
            "new version is not deployed: deploy it (the deploy guard applies)."
        ),
    ),
    Route(
        "GET",
        "/api/exports/{id}/compatibility",
        views.version_compatibility,
        "What deploying a version would change for the API's callers",
        "exports",
        query=CompatibilityQuery,
        response=CompatibilityReport,
        owns="api",
        description="Read-only: the diff a deploy of `version` (the latest if absent) checks.",
    ),
    Route(
        "PUT",
        "/api/exports/{id}/traffic",
        views.set_traffic,
        "Send a share of the traffic to another version (canary) or mirror it (shadow)",
        "exports",
        body=TrafficSet,
        response=ApiPublic,
        owns="api",
        description=(
            "canary: `weight_percent` of the requests are answered by `version`; shadow: that "
            "share is also sent to `version`, whose answer is recorded (never returned). The "
            "version must be another one of the API's model taking the served version's inputs: "
            "409 `CONFLICT` for the served version, 409 `INCOMPATIBLE_VERSION` with the diff in "
            "`details` otherwise, nothing changed. Takes effect within a second."
        ),
    ),
    Route(
        "DELETE",
        "/api/exports/{id}/traffic",
        views.stop_traffic,
        "Stop a canary or shadow: every request to the version served",
        "exports",
        response=ApiPublic,
        owns="api",
    ),
    Route(
        "POST",
        "/api/exports/{id}/promote",
        views.promote_traffic,
        "Serve the canary or shadow version; the one it replaces can be rolled back to",
        "exports",
        response=ApiPublic,
        owns="api",
        description="409 `CONFLICT` without a canary or shadow version.",
    ),
    Route(
        "POST",
        "/api/exports/{id}/rollback",
        views.rollback_traffic,
        "Stop a canary or shadow, or serve the previous version again",
        "exports",
        response=ApiPublic,
        owns="api",
        description=(
            "With a canary or shadow running it is stopped; otherwise the version served before "
            "the last promote or deploy serves again (once). 409 `CONFLICT` when there is "
            "nothing to roll back."
        ),
    ),
    Route(
        "DELETE",
        "/api/exports/{id}",
        views.delete_export,
        "Delete an exported API",
        "exports",
        status=204,
        owns="api",
    ),
    Route(
        "GET",
        "/api/exports/{id}/docs",
        views.export_docs,
        "How to call an API: features, curl and Python examples",
        "exports",
        response=ApiDocs,
        owns="api",
    ),
    Route(
        "GET",
        "/api/exports/{id}/drift",
        views.export_drift,
        "Input and prediction drift (PSI, Jensen-Shannon) against the version's reference",
        "monitoring",
        query=DriftQuery,
        response=DriftReport,
        owns="api",
        errors=(409, 429),
        description=(
            "Live rows: the API's answered (2xx) requests with payload logging on, shadow "
            "answers left out; features sorted by PSI, highest first. 409 `NO_REFERENCE` when "
            "the version has no reference profile (trained before drift monitoring, uploaded "
            "without a reference CSV). A user runs two drift or performance reports at once; "
            "a few more wait up to 3 s for their turn, the others get 429 with Retry-After."
        ),
    ),
    # monitoring
    Route(
        "GET",
        "/api/monitoring/overview",
        views.monitoring_overview,
        "Totals over the caller's APIs",
        "monitoring",
        response=Overview,
    ),
    Route(
        "GET",
        "/api/monitoring/overview/timeseries",
        views.monitoring_overview_timeseries,
        "Requests, errors and latency per time bucket over all the caller's APIs",
        "monitoring",
        query=TimeSeriesQuery,
        response=TimeSeries,
    ),
    Route(
        "GET",
        "/api/monitoring/apis",
        views.monitoring_apis,
        "APIs with usage statistics",
        "monitoring",
        query=ApiListQuery,
        response=ApiList,
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/stats",
        views.monitoring_stats,
        "Detailed statistics of one API over a range",
        "monitoring",
        query=StatsQuery,
        response=ApiStats,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/timeseries",
        views.monitoring_timeseries,
        "Requests, errors and latency per time bucket",
        "monitoring",
        query=TimeSeriesByQuery,
        response=TimeSeries,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/requests",
        views.monitoring_requests,
        "Request history, newest first",
        "monitoring",
        query=RequestsQuery,
        response=RequestPage,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/resources",
        views.monitoring_resources,
        "CPU and memory of the workers serving an API",
        "monitoring",
        query=RangeQuery,
        response=Resources,
        owns="api",
    ),
    Route(
        "GET",
        "/api/monitoring/apis/{id}/alerts",
        views.monitoring_alerts,
        "Thresholds the API crosses now",
        "monitoring",
        response=AlertList,
        owns="api",
    ),
    Route(
        "GET",
        "/api/exports/{id}/performance",
        views.export_performance,
        "Live accuracy and F1 (classification) or MAE and RMSE (regression) from feedback",
        "monitoring",
        query=RangeQuery,
        response=Performance,
        owns="api",
        errors=(429,),
        description=(
            "Feedback (`POST /api/predict/{api_id}/feedback` on ingress) joined with the API's "
            "successful requests made in the range, by request id (the latest report of a "
            "request wins): per model version next to its test metrics, and per time bucket. "
            "At most two drift or performance reports of a user run at once (else 429)."
        ),
    ),
    # webhooks (notifications of alert transitions)
    Route(
        "GET",
        "/api/webhooks",
        views.list_webhooks,
        "The caller's notification endpoints (webhooks and e-mail addresses)",
        "webhooks",
        response=WebhookList,
    ),
    Route(
        "POST",
        "/api/webhooks",
        views.create_webhook,
        "Add a webhook (URL) or e-mail endpoint, for every API of the caller or one",
        "webhooks",
        body=WebhookCreate,
        response=WebhookCreated,
        status=201,
        description=(
            "The signing secret appears in this answer only. URLs are http or https; private, "
            "loopback and link-local destinations are refused (400) unless the server allows "
            "them. Firing and resolved transitions are delivered, signed (see docs/webhooks.md)."
        ),
    ),
    Route(
        "PATCH",
        "/api/webhooks/{id}",
        views.update_webhook,
        "Change an endpoint's name, URL or address, format, API or enabled flag",
        "webhooks",
        body=WebhookUpdate,
        response=WebhookPublic,
        owns="webhook",
    ),
    Route(
        "DELETE",
        "/api/webhooks/{id}",
        views.delete_webhook,
        "Delete an endpoint and its delivery log",
        "webhooks",
        status=204,
        owns="webhook",
    ),
    Route(
        "POST",
        "/api/webhooks/{id}/rotate-secret",
        views.rotate_webhook_secret,
        "Replace an endpoint's signing secret (shown in this answer only)",
        "webhooks",
        response=WebhookSecret,
        owns="webhook",
    ),
    Route(
        "POST",
        "/api/webhooks/{id}/test",
        views.test_webhook,
        "Send a test notification now (one attempt, logged in the deliveries)",
        "webhooks",
        response=DeliveryPublic,
        owns="webhook",
    ),
    Route(
        "GET",
        "/api/webhooks/{id}/deliveries",
        views.webhook_deliveries,
        "An endpoint's delivery log, newest first: status, attempts, latency, last error",
        "webhooks",
        query=DeliveriesQuery,
        response=DeliveryList,
        owns="webhook",
    ),
    # alerts
    Route(
        "GET",
        "/api/exports/{id}/alert-rules",
        views.get_alert_rules,
        "The alert rules of an API",
        "alerts",
        response=AlertRuleList,
        owns="api",
    ),
    Route(
        "PUT",
        "/api/exports/{id}/alert-rules",
        views.put_alert_rules,
        "Replace the alert rules of an API",
        "alerts",
        body=AlertRulesUpdate,
        response=AlertRuleList,
        owns="api",
        description=(
            "A rule given with the `id` of an existing rule keeps it (and its state unless its "
            "kind, threshold or window changed); rules left out are deleted."
        ),
    ),
    Route(
        "GET",
        "/api/alerts",
        views.alert_history,
        "Alert history: every state change of the rules of your APIs, newest first",
        "alerts",
        query=AlertHistoryQuery,
        response=AlertHistory,
    ),
    Route(
        "GET",
        "/api/alerts/active",
        views.active_alerts,
        "Alert rules pending or firing now",
        "alerts",
        response=ActiveAlertList,
    ),
    Route(
        "POST",
        "/api/alerts/{rule_id}/ack",
        views.ack_alert,
        "Acknowledge a pending or firing alert",
        "alerts",
        response=AlertRuleStatus,
        owns="alert_rule",
    ),
    Route(
        "POST",
        "/api/alerts/{rule_id}/silence",
        views.silence_alert,
        "Silence a rule for a while (its changes are recorded, not notified)",
        "alerts",
        body=SilenceRequest,
        response=AlertRuleStatus,
        owns="alert_rule",
    ),
    Route(
        "DELETE",
        "/api/alerts/{rule_id}/silence",
        views.unsilence_alert,
        "End a rule's silence",
        "alerts",
        response=AlertRuleStatus,
        owns="alert_rule",
    ),
    # service
    Route(
        "GET",
        "/health",
        views.health,
        "Liveness and dependencies",
        "service",
        auth="public",
        response=Health,
    ),
    Route(
        "GET",
        "/openapi.json",
        views.openapi_document,
        "This OpenAPI document",
        "service",
        auth="public",
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (loopback clients, or the metrics token)",
        "service",
        auth="public",
        content_type="text/plain",
        errors=(403,),
        description=(
            "Readable with `Authorization: Bearer <MODELGATE_MANAGEMENT_METRICS_TOKEN>` when that "
            "setting is set; otherwise only from the loopback interface, not through a proxy. "
            "Anyone else: 403 `FORBIDDEN`."
        ),
    ),
    Route(
        "GET",
        "/docs",
        views.docs_page,
        "Interactive API documentation",
        "service",
        auth="public",
        content_type=HTML,
    ),
    Route(
        "GET", "/", views.dashboard, "The dashboard", "dashboard", auth="public", content_type=HTML
    ),
    Route(
        "GET",
        "/{path:(?!api(?:/|$)).*}",  # /api/... is never the dashboard: 404 or 405 JSON
        views.dashboard,
        "Dashboard files (index.html for client-side routes)",
        "dashboard",
        auth="public",
        content_type=HTML,
    ),
]
