// The management API client: one place for the token, JSON errors and the 401 → login rule.
import type {
  ModelInspection,
  AlertThresholds,
  Algorithm,
  Alert,
  ApiDocs,
  ApiStats,
  CompatibilityReport,
  Dataset,
  ExportedApi,
  ExportResponse,
  Items,
  Model,
  Overview,
  Range,
  Bucket,
  RegenerateResponse,
  RequestPage,
  Resources,
  Role,
  TimeSeries,
  TokenResponse,
  TrainingJob,
  TrainingLogs,
  TrafficMode,
  User,
} from './types'
import type { ActiveAlert, AlertRule, AlertRuleSpec, AlertTransition } from './types'
import type { DriftRange, DriftReport, PerformanceReport } from './types'

const TOKEN_KEY = 'modelgate.token'
const USER_KEY = 'modelgate.user'

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: Record<string, unknown>

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

type UnauthorizedListener = () => void
let onUnauthorized: UnauthorizedListener = () => {}

export function setUnauthorizedListener(listener: UnauthorizedListener): void {
  onUnauthorized = listener
}

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY)
}

export function getStoredUser(): User | null {
  const raw = localStorage.getItem(USER_KEY)
  if (!raw) return null
  try {
    return JSON.parse(raw) as User
  } catch {
    return null
  }
}

export function storeSession(token: string, user: User): void {
  localStorage.setItem(TOKEN_KEY, token)
  localStorage.setItem(USER_KEY, JSON.stringify(user))
}

export function clearSession(): void {
  localStorage.removeItem(TOKEN_KEY)
  localStorage.removeItem(USER_KEY)
}

interface RequestOptions {
  method?: string
  json?: unknown
  form?: FormData
  query?: Record<string, string | number | undefined | null>
  anonymous?: boolean
  headers?: Record<string, string>
}

function buildUrl(path: string, query?: RequestOptions['query']): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value))
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers }
  const token = getToken()
  if (token && !options.anonymous) headers.Authorization = `Bearer ${token}`
  let body: BodyInit | undefined
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.json)
  } else if (options.form) {
    body = options.form
  }
  let response: Response
  try {
    response = await fetch(buildUrl(path, options.query), {
      method: options.method ?? (body ? 'POST' : 'GET'),
      headers,
      body,
    })
  } catch (err) {
    throw new ApiError(0, 'NETWORK', err instanceof Error ? err.message : String(err))
  }
  if (response.status === 401 && !options.anonymous) {
    clearSession()
    onUnauthorized()
  }
  if (response.status === 204) return undefined as T
  const text = await response.text()
  let data: unknown = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!response.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)
      ?.error
    throw new ApiError(
      response.status,
      err?.code ?? `HTTP_${response.status}`,
      err?.message ?? (response.statusText || `HTTP ${response.status}`),
      err?.details ?? {},
    )
  }
  return data as T
}

export interface ListFilters {
  status?: string
  q?: string
  model_id?: string | number
  sort?: string
  order?: 'asc' | 'desc'
}

let algorithmsPromise: Promise<Items<Algorithm>> | null = null

export const api = {
  /** The algorithm catalogue rarely changes: fetched once per page load. */
  algorithmsCached: () => {
    algorithmsPromise ??= request<Items<Algorithm>>('/api/algorithms').catch((err: unknown) => {
      algorithmsPromise = null
      throw err
    })
    return algorithmsPromise
  },
  login: (username: string, password: string) =>
    request<TokenResponse>('/api/auth/token', { json: { username, password }, anonymous: true }),
  me: () => request<User>('/api/users/me'),
  /** Answers a fresh token: the tokens from before the change stop working. */
  changeOwnPassword: (current_password: string, new_password: string) =>
    request<TokenResponse>('/api/users/me/password', { json: { current_password, new_password } }),
  users: () => request<Items<User>>('/api/users'),
  createUser: (body: { username: string; password: string; role: Role }) =>
    request<User>('/api/users', { json: body }),
  updateUser: (id: string | number, body: { password?: string; role?: Role; active?: boolean }) =>
    request<User>(`/api/users/${id}`, { method: 'PATCH', json: body }),

  datasets: () => request<Items<Dataset>>('/api/datasets'),
  algorithms: () => request<Items<Algorithm>>('/api/algorithms'),
  trainBuiltin: (body: {
    name: string
    dataset: string
    algorithm: string
    params: Record<string, unknown>
    test_size?: number
  }) => request<TrainingJob>('/api/models/train', { json: body }),
  trainCsv: (form: FormData) => request<TrainingJob>('/api/models/train', { form }),
  /** Bring your own model: what a .skops file says (checked like an upload, nothing stored). */
  inspectModelFile: (form: FormData) => request<ModelInspection>('/api/models/upload/inspect', { form }),
  uploadModel: (form: FormData) => request<Model>('/api/models/upload', { form }),
  trainingJob: (id: string | number) => request<TrainingJob>(`/api/training-jobs/${id}`),
  trainingLogs: (id: string | number, after: number) =>
    request<TrainingLogs>(`/api/training-jobs/${id}/logs`, { query: { after } }),
  cancelTrainingJob: (id: string | number) =>
    request<TrainingJob>(`/api/training-jobs/${id}/cancel`, { method: 'POST' }),
  models: () => request<Items<Model>>('/api/models'),
  model: (id: string | number) => request<Model>(`/api/models/${id}`),
  deleteModel: (id: string | number) => request<void>(`/api/models/${id}`, { method: 'DELETE' }),

  /** With an idempotency key (one per opened form), a double submit creates one API. */
  exportModel: (
    modelId: string | number,
    body: { name?: string; version?: number; rate_limit_per_minute?: number; log_payloads?: boolean },
    idempotencyKey?: string,
  ) =>
    request<ExportResponse>(`/api/export/${modelId}`, {
      json: body,
      headers: idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : undefined,
    }),
  exports: (filters: ListFilters = {}) => request<Items<ExportedApi>>('/api/exports', { query: { ...filters } }),
  exportedApi: (id: string | number) => request<ExportedApi>(`/api/exports/${id}`),
  updateApi: (
    id: string | number,
    body: {
      name?: string
      rate_limit_per_minute?: number
      alert_thresholds?: Partial<AlertThresholds>
      log_payloads?: boolean
    },
  ) => request<ExportedApi>(`/api/exports/${id}`, { method: 'PATCH', json: body }),
  setStatus: (id: string | number, status: 'active' | 'inactive') =>
    request<ExportedApi>(`/api/exports/${id}/status`, { method: 'PUT', json: { status } }),
  regenerateKey: (id: string | number) =>
    request<RegenerateResponse>(`/api/exports/${id}/regenerate-key`, { method: 'POST' }),
  deploy: (id: string | number, version: number, force = false) =>
    request<ExportedApi>(`/api/exports/${id}/deploy`, { json: force ? { version, force } : { version } }),
  compatibility: (id: string | number, version: number) =>
    request<CompatibilityReport>(`/api/exports/${id}/compatibility`, { query: { version } }),
  deleteApi: (id: string | number) => request<void>(`/api/exports/${id}`, { method: 'DELETE' }),
  docs: (id: string | number) => request<ApiDocs>(`/api/exports/${id}/docs`),

  overview: () => request<Overview>('/api/monitoring/overview'),
  monitoredApis: (filters: ListFilters = {}) =>
    request<Items<ExportedApi>>('/api/monitoring/apis', { query: { ...filters } }),
  stats: (id: string | number, range: Range) =>
    request<ApiStats>(`/api/monitoring/apis/${id}/stats`, { query: { range } }),
  timeseries: (id: string | number, range: Range, bucket?: Bucket, by?: 'version') =>
    request<TimeSeries>(`/api/monitoring/apis/${id}/timeseries`, { query: { range, bucket, by } }),
  overviewTimeseries: (range: Range, bucket?: Bucket) =>
    request<TimeSeries>('/api/monitoring/overview/timeseries', { query: { range, bucket } }),
  requests: (id: string | number, page: number, pageSize: number, status?: string) =>
    request<RequestPage>(`/api/monitoring/apis/${id}/requests`, {
      query: { page, page_size: pageSize, status },
    }),
  resources: (id: string | number, range: Range) =>
    request<Resources>(`/api/monitoring/apis/${id}/resources`, { query: { range } }),
  alerts: (id: string | number) => request<Items<Alert>>(`/api/monitoring/apis/${id}/alerts`),
  statsByVersion: (id: string | number, range: Range) =>
    request<ApiStats>(`/api/monitoring/apis/${id}/stats`, { query: { range, by: 'version' } }),
  setTraffic: (id: string | number, version: number, mode: TrafficMode, weight_percent: number) =>
    request<ExportedApi>(`/api/exports/${id}/traffic`, { method: 'PUT', json: { version, mode, weight_percent } }),
  stopTraffic: (id: string | number) => request<ExportedApi>(`/api/exports/${id}/traffic`, { method: 'DELETE' }),
  promote: (id: string | number) => request<ExportedApi>(`/api/exports/${id}/promote`, { method: 'POST' }),
  rollback: (id: string | number) => request<ExportedApi>(`/api/exports/${id}/rollback`, { method: 'POST' }),
  alertRules: (id: string | number) => request<Items<AlertRule>>(`/api/exports/${id}/alert-rules`),
  saveAlertRules: (id: string | number, rules: AlertRuleSpec[]) =>
    request<Items<AlertRule>>(`/api/exports/${id}/alert-rules`, { method: 'PUT', json: { rules } }),
  alertHistory: (filters: AlertHistoryFilters = {}) =>
    request<Items<AlertTransition>>('/api/alerts', { query: { ...filters } }),
  activeAlerts: () => request<Items<ActiveAlert>>('/api/alerts/active'),
  ackAlert: (ruleId: string) => request<ActiveAlert>(`/api/alerts/${ruleId}/ack`, { method: 'POST' }),
  silenceAlert: (ruleId: string, duration_s: number) =>
    request<ActiveAlert>(`/api/alerts/${ruleId}/silence`, { method: 'POST', json: { duration_s } }),
  unsilenceAlert: (ruleId: string) => request<void>(`/api/alerts/${ruleId}/silence`, { method: 'DELETE' }),
  drift: (id: string | number, range: DriftRange, version?: number) =>
    request<DriftReport>(`/api/exports/${id}/drift`, { query: { range, version } }),
  performance: (id: string | number, range: DriftRange) =>
    request<PerformanceReport>(`/api/exports/${id}/performance`, { query: { range } }),
  retrain: (id: string | number, include_feedback: boolean) =>
    request<TrainingJob>(`/api/exports/${id}/retrain`, { method: 'POST', json: { include_feedback } }),
}

export interface AlertHistoryFilters {
  api_id?: string
  state?: string
  since?: string
  until?: string
  limit?: number
}

/** The raw typed call, for pages that keep their own shapes (the webhooks page, issue 12). */
export const requestJson = request
