// Shapes of docs/api-contract.md (the management API's JSON routes).

export type Role = 'admin' | 'user'

export interface User {
  id: number | string
  username: string
  role: Role
  created_at: string
  /** A deactivated account cannot log in (older servers omit it: active). */
  active?: boolean
  last_login?: string | null
}

export interface TokenResponse {
  access_token: string
  token_type: 'bearer'
  expires_in: number
  user: User
}

export type Task = 'classification' | 'regression'

export interface Dataset {
  name: string
  task: Task
  n_rows: number
  n_features: number
  description: string
}

export interface AlgorithmParam {
  name: string
  type: 'int' | 'float' | 'choice'
  default: number | string | boolean | null
  min?: number | null
  max?: number | null
  choices?: Array<string | number | boolean> | null
  description?: string
}

export interface Algorithm {
  name: string
  label: string
  tasks: Task[]
  params: AlgorithmParam[]
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'

export interface TrainingJob {
  id: number | string
  status: JobStatus
  progress: number
  model_id: number | string | null
  version_number: number | null
  error: string | null
  created_at: string
  finished_at: string | null
  /** Place in the training queue while queued (1 = next to start). */
  queue_position?: number | null
}

export interface TrainingLogs {
  lines: string[]
  next: number
  status: JobStatus
}

export interface FeatureSpec {
  name: string
  type: 'number' | 'integer' | 'boolean' | 'category'
  required: boolean
  categories: string[] | null
  description?: string | null
}

/** What POST /api/models/upload/inspect found in a .skops file: a proposal for the upload form. */
export interface ModelInspection {
  algorithm: string
  task: Task | null
  has_predict_proba: boolean
  classes: string[] | null
  n_features_in: number | null
  feature_names_found: boolean
  features: FeatureSpec[]
}

export type Metrics = Record<string, number | null>

/** `ImageSpec` (schemas/messages.py): a model whose features are the pixels of W x H grayscale images. */
export interface ImageSpec {
  width: number
  height: number
  min_value: number
  max_value: number
  ink: 'high' | 'low'
  margin: number
  integers: boolean
}

export interface ModelVersion {
  id: number | string
  number: number
  model_id: number | string
  algorithm: string
  params: Record<string, unknown>
  metrics: Metrics
  features: FeatureSpec[]
  classes: string[] | null
  target: string
  n_train: number
  n_test: number
  created_at: string
  source: string
  /** Held-out evaluation (GET /api/models/{id} only; none for uploaded and older versions). */
  evaluation?: VersionEvaluation | null
  /** The training job that made this version (its log), GET /api/models/{id} only. */
  training_job_id?: string | null
  /** The caller's exported APIs serving this version, GET /api/models/{id} only. */
  apis?: VersionApi[] | null
  /** How predictors run it (onnxruntime or scikit-learn, and why), GET /api/models/{id} only. */
  serving?: VersionServing | null
  /** Its features are the pixels of such images: its APIs also take a PNG or JPEG (issue 14). */
  image?: ImageSpec | null
}

export interface VersionServing {
  runtime: 'onnx' | 'sklearn'
  /** Why scikit-learn serves it (none when onnxruntime does). */
  reason?: string | null
  max_abs_diff?: number | null
  rows_checked: number
  rows_source?: string | null
}

export interface ConfusionMatrix {
  labels: string[]
  /** matrix[i][j]: held-out rows of true class labels[i] predicted as labels[j]. */
  matrix: number[][]
  truncated?: boolean
}

export interface ClassScores {
  label: string
  precision: number | null
  recall: number | null
  f1: number | null
  support: number
}

export interface Residuals {
  mean: number | null
  std: number | null
  min: number | null
  max: number | null
  bin_edges: (number | null)[]
  counts: number[]
  points: { predicted: number | null; residual: number | null }[]
}

export interface FeatureImportance {
  feature: string
  mean: number | null
  std: number | null
}

export interface VersionEvaluation {
  n_test: number
  confusion_matrix?: ConfusionMatrix | null
  per_class?: ClassScores[] | null
  residuals?: Residuals | null
  importance: FeatureImportance[]
  importance_scoring?: string | null
  importance_repeats?: number | null
  importance_rows?: number | null
}

export interface VersionApi {
  id: string
  name: string
  status: ApiStatus
}

export interface Model {
  id: number | string
  name: string
  task: Task
  owner_id: number | string
  created_at: string
  latest_version: number
  versions?: ModelVersion[]
}

export interface ApiSummary {
  total_requests: number
  requests_24h: number
  requests_7d: number
  success_rate: number | null
  error_rate: number | null
  avg_ms: number | null
  p50_ms: number | null
  p95_ms: number | null
  p99_ms: number | null
  last_request_at: string | null
  /** Share (%) of the predictors' CPU capacity (one core per worker) its predictions took in 24 h. */
  cpu_percent?: number
  /** Memory of the model versions it serves, from the predictors' per-model samples (MB). */
  memory_mb?: number
}

export interface AlertThresholds {
  cpu_percent: number
  memory_mb: number
  error_rate: number
  p95_ms: number
}

export type ApiStatus = 'active' | 'inactive'

export interface ExportedApi {
  id: number | string
  name: string
  model_id: number | string
  model_name: string
  version_number: number
  model_version_id: number | string
  task: Task
  status: ApiStatus
  endpoint_url: string
  key_prefix: string
  created_at: string
  updated_at: string
  rate_limit_per_minute: number
  log_payloads: boolean
  alert_thresholds: AlertThresholds
  stats: ApiSummary | null
  /** A canary or shadow version beside the one served (null: none). */
  traffic?: TrafficSplit | null
  /** The version served before the last promote or deploy (what a rollback serves again). */
  previous_version_number?: number | null
  /** "error" while a 5xx alert rule fires or the model cannot load (issue 12); absent before. */
  health?: ApiHealth
}

export type TrafficMode = 'canary' | 'shadow'

export interface TrafficSplit {
  version_number: number
  model_version_id: string
  mode: TrafficMode
  weight_percent: number
}

/** A version's own answers as a shadow, and how often they agree with the serving version. */
export interface ShadowFigures {
  requests: number
  errors: number
  error_rate: number
  avg_ms: number
  p50_ms: number
  p95_ms: number
  p99_ms: number
  compared: number
  agreed: number
  agreement_rate: number | null
}

/** ``stats?by=version``: the figures of the requests one version answered. */
export interface VersionFigures {
  version_number: number | null
  model_version_id: string
  requests: number
  success_count: number
  errors_4xx: number
  errors_5xx: number
  success_rate: number
  error_rate: number
  avg_ms: number
  p50_ms: number
  p95_ms: number
  p99_ms: number
  shadow: ShadowFigures | null
}

export interface ExportResponse {
  api: ExportedApi
  api_key: string
  api_url: string
  /** A valid body for this API and a curl command that works as pasted (key included). */
  example_request?: Record<string, unknown>
  curl?: string
}

export interface RegenerateResponse {
  api: ExportedApi
  api_key: string
}

export interface ApiDocs {
  endpoint_url: string
  method: 'POST'
  headers: Record<string, string>
  task: Task
  features: FeatureSpec[]
  classes: string[] | null
  example_request: unknown
  example_response: unknown
  curl: string
  python: string
  batch_example_request?: unknown
  errors?: Array<{ status: number; code: string; when: string }>
  /** The API also takes images of this spec (PNG or JPEG): `-F image=@file` or `{"image": "<base64>"}`. */
  image?: ImageSpec | null
  /** `{"image": "<base64 PNG>"}`: the example row drawn as an image (image APIs only). */
  image_example_request?: { image: string } | null
}

export interface Overview {
  total_apis: number
  active_apis: number
  total_requests: number
  requests_24h: number
  success_rate: number | null
  avg_ms: number | null
  p95_ms: number | null
}

export type Range = '15m' | '1h' | '6h' | '24h' | '7d' | '30d'
export type Bucket = '10s' | '30s' | 'minute' | '5m' | '15m' | 'hour' | '6h' | 'day'

/** The server sends prediction/input/output as JSON text ("" when not logged). */
export interface RequestRecord {
  event_id: string
  ts: string
  status_code: number
  error_code: string | null
  total_ms: number | null
  inference_ms: number | null
  model_version: string | number | null
  prediction: unknown
  input: unknown
  output: unknown
  worker_id: string | null
}

export interface ApiStats {
  range: Range
  total_requests: number
  requests_24h: number
  requests_7d: number
  requests_in_range: number
  success_count: number
  errors_4xx: number
  errors_5xx: number
  /** Requests rejected before authentication (no key, a wrong key): not in the rates. */
  rejected_unauthenticated: number
  success_rate: number | null
  error_rate: number | null
  avg_ms: number | null
  p50_ms: number | null
  p90_ms: number | null
  p95_ms: number | null
  p99_ms: number | null
  histogram: Array<{ le_ms: number | null; count: number }>
  slowest: RequestRecord[]
  last_request_at: string | null
  cpu_percent: number | null
  peak_cpu_percent: number | null
  memory_mb: number | null
  peak_memory_mb: number | null
  by_version?: VersionFigures[] | null
}

export interface TimePoint {
  ts: string
  requests: number
  successes: number
  errors_4xx: number
  errors_5xx: number
  rejected_unauthenticated: number
  avg_ms: number | null
  p50_ms: number | null
  p95_ms: number | null
  p99_ms: number | null
  cpu_ms: number | null
  /** requests / the bucket's seconds */
  requests_per_s?: number
}

/** A change of the API drawn on its charts: deploy (also promote, rollback), key rotation, status. */
export interface ChartMarker {
  ts: string
  kind: 'created' | 'deploy' | 'key_rotated' | 'status'
  version_number: number | null
  detail: string
  actor: string
}

export interface VersionSeries {
  version_number: number | null
  model_version_id: string
  points: TimePoint[]
}

export interface TimeSeries {
  range: Range
  bucket: Bucket
  step_seconds?: number
  points: TimePoint[]
  by_version?: VersionSeries[] | null
  markers?: ChartMarker[]
}

export interface RequestPage {
  items: RequestRecord[]
  page: number
  page_size: number
  total: number
}

export interface Resources {
  cpu: Array<{ ts: string; value: number }>
  memory: Array<{ ts: string; value: number }>
  cpu_percent: number | null
  peak_cpu_percent: number | null
  memory_mb: number | null
  peak_memory_mb: number | null
  workers: Array<{
    worker_id: string
    cpu_percent: number
    rss_mb: number
    loaded_models: string[] | number
    last_seen: string
  }>
}

export interface Alert {
  metric: 'cpu_percent' | 'memory_mb' | 'error_rate' | 'p95_ms'
  value: number
  threshold: number
  severity: 'warning' | 'critical'
  message: string
}

export interface Items<T> {
  items: T[]
}

/** What deploying a version would change for an API's callers (GET /api/exports/{id}/compatibility,
 * and the details of a 409 INCOMPATIBLE_VERSION). */
export interface CompatibilityReport {
  api_id: string
  served_version: number
  target_version: number
  compatible: boolean
  task: { served: Task; target: Task } | null
  missing_features: string[]
  added_required_features: string[]
  now_required_features: string[]
  changed_types: Array<{ name: string; served: FeatureSpec['type']; target: FeatureSpec['type']; breaking: boolean }>
  changed_categories: Array<{
    name: string
    served: string[] | null
    target: string[] | null
    removed: string[]
    added: string[]
    breaking: boolean
  }>
  classes: { served: string[] | null; target: string[] | null; removed: string[]; added: string[] } | null
  added_optional_features: string[]
  /** The served version takes images and the target does not (issue 14). */
  image_dropped?: boolean
}

// Alerting (issue 12): the contract of schemas/alerts.py.
export type ApiHealth = 'ok' | 'error'

export type AlertRuleKind =
  | 'error_rate_5xx'
  | 'error_rate_4xx'
  | 'p95_ms'
  | 'p99_ms'
  | 'traffic_drop'
  | 'no_traffic'
  | 'rate_limit_saturation'
  | 'cpu_percent'
  | 'memory_mb'
  | 'drift_psi'
  | 'accuracy_drop'

export type AlertState = 'ok' | 'pending' | 'firing' | 'resolved'

/** One rule of one API; rates and traffic_drop thresholds are fractions (0..1). */
export interface AlertRule {
  id: string
  api_id: string
  kind: AlertRuleKind
  threshold: number
  window_s: number
  for_s: number
  min_requests: number
  enabled: boolean
}

/** A rule's state change: one row of the alert history. */
export interface AlertTransition {
  transition_id: string
  rule_id: string
  api_id: string
  api_name: string
  owner_id?: string
  kind: AlertRuleKind
  from_state: AlertState
  to_state: AlertState
  value: number | null
  threshold: number
  window_s: number
  for_s: number
  at: string
  /** The rule was silenced then: stored, not notified. */
  silenced?: boolean
}

/** A rule pending or firing now, with its state (GET /api/alerts/active, ack and silence answers). */
export interface ActiveAlert {
  rule: AlertRule
  api_name: string
  state: AlertState
  value: number | null
  /** When the rule entered its current state. */
  since: string | null
  acked_by: string | null
  acked_at: string | null
  silenced_until: string | null
}

/** One rule as PUT /api/exports/{id}/alert-rules takes it: no id makes a new rule. */
export interface AlertRuleSpec {
  id?: string
  kind: AlertRuleKind
  threshold: number
  window_s: number
  for_s: number
  min_requests: number
  enabled: boolean
}

/** Ranges of the drift and performance routes (issue 15). */
export type DriftRange = '1h' | '6h' | '24h' | '7d'
export type DriftStatus = 'ok' | 'warning' | 'drift' | 'no_data'

/** One bin (a number range or a category) and its share of the rows (0..1). */
export interface DriftBin {
  label: string
  share: number
}

/** A feature's (or the prediction's) drift between the version's reference profile and live inputs. */
export interface DriftFeature {
  name: string
  type: string
  psi: number | null
  js: number | null
  status: DriftStatus
  reference: DriftBin[]
  live: DriftBin[]
  series: Array<{ t: string; psi: number | null; rows: number }>
}

/** GET /api/exports/{id}/drift: features sorted by PSI, most drifted first. */
export interface DriftReport {
  api_id: string
  version: number
  range: string
  reference_rows: number
  live_rows: number
  /** Rows the scores are computed on: live_rows, or a time-sliced sample of a large window. */
  sampled_rows?: number | null
  thresholds: { warning: number; drift: number }
  features: DriftFeature[]
  prediction: DriftFeature | null
}

/** Live metrics of one version from the feedback joined with its answers, beside its test metrics. */
export interface VersionPerformance {
  version: number
  n: number
  accuracy: number | null
  f1: number | null
  mae: number | null
  rmse: number | null
  test_metrics: Record<string, number | null | undefined>
}

/** GET /api/exports/{id}/performance. */
export interface PerformanceReport {
  api_id: string
  task: Task
  range: string
  matched: number
  unmatched: number
  versions: VersionPerformance[]
  series: Array<{ t: string; version: number; n: number; accuracy: number | null; mae: number | null }>
}
