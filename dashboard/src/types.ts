// Shapes of docs/api-contract.md (the management API's JSON routes).

export type Role = 'admin' | 'user'

export interface User {
  id: number | string
  username: string
  role: Role
  created_at: string
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

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed'

export interface TrainingJob {
  id: number | string
  status: JobStatus
  progress: number
  model_id: number | string | null
  version_number: number | null
  error: string | null
  created_at: string
  finished_at: string | null
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

export type Metrics = Record<string, number | null>

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
  model_version: number
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
}

export interface ExportResponse {
  api: ExportedApi
  api_key: string
  api_url: string
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

export type Range = '24h' | '7d' | '30d'
export type Bucket = 'minute' | 'hour' | 'day'

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
}

export interface TimePoint {
  ts: string
  requests: number
  successes: number
  errors_4xx: number
  errors_5xx: number
  avg_ms: number | null
  p50_ms: number | null
  p95_ms: number | null
  p99_ms: number | null
  cpu_ms: number | null
}

export interface TimeSeries {
  range: Range
  bucket: Bucket
  points: TimePoint[]
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
