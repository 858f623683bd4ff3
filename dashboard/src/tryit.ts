// "Try it" on an API's docs tab: the pure parts (form values from the feature spec and the example
// row, the JSON body, the curl command of what was sent, the answer's headers), kept apart from the
// component so that vitest checks them.
import type { FeatureSpec } from './types'

export type FieldValue = string | boolean
export type FormValues = Record<string, FieldValue>

/** An API whose inputs are the pixels of an image (schemas ImageSpec; docs.image when present). */
export interface ImageInput {
  width: number
  height: number
}

/** The largest image file the panel sends: base64 adds a third, and ingress takes 1 MB bodies. */
export const MAX_IMAGE_BYTES = 700 * 1024

/** The panel's starting values: the example row the docs show, else a neutral value per type. */
export function initialValues(features: FeatureSpec[], example: unknown): FormValues {
  const row = example && typeof example === 'object' && !Array.isArray(example) ? (example as Record<string, unknown>) : {}
  const values: FormValues = {}
  for (const f of features) {
    const v = row[f.name]
    if (f.type === 'boolean') values[f.name] = v === true
    else if (f.type === 'category') {
      const cats = f.categories ?? []
      values[f.name] = typeof v === 'string' ? v : (cats[0] ?? '')
    } else values[f.name] = typeof v === 'number' && Number.isFinite(v) ? String(v) : ''
  }
  return values
}

export type FieldProblem = 'number' | 'integer'

const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/

/** The JSON body of the form's values: numbers parsed, blank optional or required fields left out
 * (the server then says which are missing), and the fields that are not numbers as they should. */
export function buildBody(
  features: FeatureSpec[],
  values: FormValues,
): { body: Record<string, unknown>; problems: Record<string, FieldProblem> } {
  const body: Record<string, unknown> = {}
  const problems: Record<string, FieldProblem> = {}
  for (const f of features) {
    const v = values[f.name]
    if (f.type === 'boolean') {
      body[f.name] = v === true
      continue
    }
    const text = typeof v === 'string' ? v.trim() : ''
    if (text === '') continue
    if (f.type === 'category') {
      body[f.name] = text
      continue
    }
    // A decimal comma (as French is typed) is a point.
    const decimal = /^[-+]?\d*,\d+$/.test(text) ? text.replace(',', '.') : text
    const n = DECIMAL.test(decimal) ? Number(decimal) : NaN
    if (!Number.isFinite(n)) problems[f.name] = 'number'
    else if (f.type === 'integer' && !Number.isInteger(n)) problems[f.name] = 'integer'
    else body[f.name] = n
  }
  return { body, problems }
}

/** One word for a POSIX shell, quoted as the server's examples are (shlex.quote). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[\w@%+=:,./-]+$/.test(word)) return word
  return `'${word.replace(/'/g, `'"'"'`)}'`
}

/** The curl command of exactly what the panel sent (the key included when one was: it is the
 * user's own, copied at their request). */
export function curlCommand(url: string, key: string, body: string): string {
  return [
    `curl -sS -X POST ${shellQuote(url)}`,
    `  -H 'Content-Type: application/json'`,
    ...(key ? [`  -H ${shellQuote(`X-API-Key: ${key}`)}`] : []),
    `  -d ${shellQuote(body)}`,
  ].join(' \\\n')
}

/** Whether a key can travel in an HTTP header as typed (fetch refuses anything else). */
export function keyIsSendable(key: string): boolean {
  return /^[\x21-\x7e]*$/.test(key)
}

/** The server's own time from a ``Server-Timing`` header, in ms: its ``ingress`` metric, else the
 * first one with a duration; null when there is none. */
export function serverTimingMs(header: string | null): number | null {
  if (!header) return null
  let first: number | null = null
  for (const metric of header.split(',')) {
    const [name, ...params] = metric.split(';').map((p) => p.trim())
    const dur = params.find((p) => p.toLowerCase().startsWith('dur='))
    if (!dur) continue
    const ms = Number(dur.slice(4).replace(/^"|"$/g, ''))
    if (!Number.isFinite(ms)) continue
    if (name === 'ingress') return ms
    if (first === null) first = ms
  }
  return first
}

/** The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``); null otherwise. */
export function traceIdOf(header: string | null): string | null {
  const m = header ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(header.trim()) : null
  const id = m?.[1]
  return id && !/^0+$/.test(id) ? id : null
}

export interface TryError {
  code: string
  message: string
  details: unknown
}

/** The error of an answer in the services' ``{"error": {"code", "message", "details"}}`` shape
 * (or the Open Inference Protocol's ``{"error": "..."}``); null for anything else. */
export function errorOf(body: unknown): TryError | null {
  if (!body || typeof body !== 'object') return null
  const e = (body as Record<string, unknown>).error
  if (typeof e === 'string') return { code: '', message: e, details: null }
  if (!e || typeof e !== 'object') return null
  const err = e as Record<string, unknown>
  if (typeof err.code !== 'string') return null
  return { code: err.code, message: typeof err.message === 'string' ? err.message : '', details: err.details ?? null }
}

/** A classifier's probabilities, likeliest first; empty when the answer has none. */
export function probabilityBars(body: unknown): Array<[string, number]> {
  if (!body || typeof body !== 'object') return []
  const p = (body as Record<string, unknown>).probabilities
  if (!p || typeof p !== 'object' || Array.isArray(p)) return []
  return Object.entries(p as Record<string, unknown>)
    .filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))
    .sort((a, b) => b[1] - a[1])
}

/** The image spec of the docs, when the API takes images (``docs.image``: width and height). */
export function imageInputOf(docs: unknown): ImageInput | null {
  if (!docs || typeof docs !== 'object') return null
  const img = (docs as Record<string, unknown>).image
  if (!img || typeof img !== 'object') return null
  const { width, height } = img as Record<string, unknown>
  return typeof width === 'number' && typeof height === 'number' ? { width, height } : null
}

/** The docs' example image (``image_example_request.image``, base64 PNG) as a ``data:`` URL, for
 * the drop zone to start with; null when there is none. */
export function exampleImageOf(docs: unknown): string | null {
  if (!docs || typeof docs !== 'object') return null
  const req = (docs as Record<string, unknown>).image_example_request
  if (!req || typeof req !== 'object') return null
  const b64 = (req as Record<string, unknown>).image
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null
  return `data:image/png;base64,${b64}`
}

/** The base64 of a ``data:`` URL (what FileReader.readAsDataURL gives). */
export function base64OfDataUrl(url: string): string {
  const comma = url.indexOf(',')
  return comma >= 0 ? url.slice(comma + 1) : url
}
