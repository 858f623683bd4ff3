// "Try it" on an API's docs tab: a form built from the API's features (or an image drop zone for an
// API that takes images), prefilled with the docs' example row, sent straight from the browser to
// ingress with a key the user pastes. The key lives in this component's state only: never stored,
// never sent to the management API. Shows the status, the prediction (and a classifier's
// probabilities), the latency the browser measured and ingress's own (Server-Timing), or the error.
import { useEffect, useMemo, useRef, useState } from 'react'
import type { DragEvent } from 'react'
import { errorMessage } from '../errorMessages'
import { fmtMs, fmtNum, fmtPercent } from '../format'
import { useI18n } from '../i18n'
import type { Lang } from '../i18n'
import type { ApiDocs } from '../types'
import {
  MAX_IMAGE_BYTES,
  base64OfDataUrl,
  buildBody,
  curlCommand,
  errorOf,
  exampleImageOf,
  imageInputOf,
  initialValues,
  keyIsSendable,
  probabilityBars,
  serverTimingMs,
  traceIdOf,
} from '../tryit'
import type { FieldValue, FormValues, TryError } from '../tryit'
import { CodeBlock } from './CodeBlock'
import { CopyButton } from './CopyButton'

const TIMEOUT_S = 30
const IMAGE_TYPES = ['image/png', 'image/jpeg']

interface Outcome {
  status: number | null
  latencyMs: number
  serverMs: number | null
  body: unknown
  text: string
  error: TryError | null
  /** Why nothing came back (network, timeout): shown instead of a status. */
  failure: string | null
  requestId: string | null
  /** The W3C trace id of ingress's ``traceparent``: finds the request in logs and ClickHouse. */
  traceId: string | null
  remaining: string | null
  limit: string | null
  retryAfter: string | null
  curl: string
}

interface PickedImage {
  name: string
  dataUrl: string
}

export function TryItPanel({ docs }: { docs: ApiDocs }) {
  const { t, lang } = useI18n()
  const image = imageInputOf(docs)
  const [apiKey, setApiKey] = useState('')
  const [showKey, setShowKey] = useState(false)
  const [values, setValues] = useState<FormValues>(() => initialValues(docs.features, docs.example_request))
  const [picked, setPicked] = useState<PickedImage | null>(() => {
    const example = exampleImageOf(docs)
    return example ? { name: t('tryit.exampleImage'), dataUrl: example } : null
  })
  const [imageProblem, setImageProblem] = useState<string | null>(null)
  const [dragging, setDragging] = useState(false)
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<Outcome | null>(null)
  const inflight = useRef<AbortController | null>(null)
  useEffect(() => () => inflight.current?.abort(), [])

  const { body, problems } = useMemo(() => buildBody(docs.features, values), [docs.features, values])
  const payload: Record<string, unknown> | null = image
    ? picked
      ? { image: base64OfDataUrl(picked.dataUrl) }
      : null
    : body
  const blocked = busy || payload === null || Object.keys(problems).length > 0

  const setValue = (name: string, value: FieldValue) => setValues((old) => ({ ...old, [name]: value }))

  const pickImage = (file: File | undefined) => {
    if (!file) return
    if (!IMAGE_TYPES.includes(file.type)) {
      setImageProblem(t('tryit.imageType'))
      return
    }
    if (file.size > MAX_IMAGE_BYTES) {
      setImageProblem(t('tryit.imageTooLarge', { size: Math.ceil(file.size / 1024), max: MAX_IMAGE_BYTES / 1024 }))
      return
    }
    const reader = new FileReader()
    reader.onload = () => {
      setImageProblem(null)
      setPicked({ name: file.name, dataUrl: String(reader.result) })
    }
    reader.readAsDataURL(file)
  }

  const onDrop = (e: DragEvent<HTMLLabelElement>) => {
    e.preventDefault()
    setDragging(false)
    pickImage(e.dataTransfer.files[0])
  }

  const send = async () => {
    if (payload === null) return
    const key = apiKey.trim()
    const text = JSON.stringify(payload)
    const curl = curlCommand(docs.endpoint_url, key, text)
    const empty = {
      status: null,
      serverMs: null,
      body: null,
      text: '',
      error: null,
      requestId: null,
      traceId: null,
      remaining: null,
      limit: null,
      retryAfter: null,
      curl,
    }
    if (!keyIsSendable(key)) {
      setOutcome({ ...empty, latencyMs: 0, failure: t('tryit.badKey') })
      return
    }
    const headers: Record<string, string> = { 'Content-Type': 'application/json' }
    if (key) headers['X-API-Key'] = key
    inflight.current?.abort()
    const controller = new AbortController()
    inflight.current = controller
    const timer = window.setTimeout(() => controller.abort(), TIMEOUT_S * 1000)
    setBusy(true)
    const started = performance.now()
    try {
      const response = await fetch(docs.endpoint_url, {
        method: 'POST',
        headers,
        body: text,
        mode: 'cors',
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
        signal: controller.signal,
      })
      const answer = await response.text()
      const latencyMs = performance.now() - started
      if (controller !== inflight.current) return // replaced by a newer send
      let parsed: unknown = null
      try {
        parsed = JSON.parse(answer)
      } catch {
        parsed = null
      }
      const requestId =
        response.headers.get('X-Request-Id') ??
        (parsed && typeof parsed === 'object' && typeof (parsed as Record<string, unknown>).request_id === 'string'
          ? ((parsed as Record<string, unknown>).request_id as string)
          : null)
      setOutcome({
        status: response.status,
        latencyMs,
        serverMs: serverTimingMs(response.headers.get('Server-Timing')),
        body: parsed,
        text: answer,
        error: response.ok ? null : (errorOf(parsed) ?? { code: '', message: answer.slice(0, 500), details: null }),
        failure: null,
        requestId,
        traceId: traceIdOf(response.headers.get('traceparent')),
        remaining: response.headers.get('RateLimit-Remaining'),
        limit: response.headers.get('RateLimit-Limit'),
        retryAfter: response.headers.get('Retry-After'),
        curl,
      })
    } catch (err) {
      if (controller !== inflight.current) return // replaced by a newer send, or unmounted
      const latencyMs = performance.now() - started
      const timedOut = err instanceof DOMException && err.name === 'AbortError'
      setOutcome({
        ...empty,
        latencyMs,
        failure: timedOut ? t('tryit.timeout', { seconds: TIMEOUT_S }) : t('tryit.network', { url: docs.endpoint_url }),
      })
    } finally {
      window.clearTimeout(timer)
      if (controller === inflight.current) {
        inflight.current = null
        setBusy(false)
      }
    }
  }

  const typeLabel: Record<string, string> = {
    number: t('docs.typeNumber'),
    integer: t('docs.typeInteger'),
    boolean: t('docs.typeBoolean'),
    category: t('docs.typeCategory'),
  }

  return (
    <section className="panel tryit" data-testid="tryit-panel" aria-labelledby="tryit-title">
      <h2 className="h-small" id="tryit-title">
        {t('tryit.title')}
      </h2>
      <p className="muted small tryit-intro">{t('tryit.intro')}</p>
      <form
        className="form"
        onSubmit={(e) => {
          e.preventDefault()
          if (!blocked) void send()
        }}
      >
        <div className="field">
          <label htmlFor="tryit-key">{t('tryit.key')}</label>
          <div className="copy-row">
            <input
              id="tryit-key"
              type={showKey ? 'text' : 'password'}
              className="mono"
              value={apiKey}
              onChange={(e) => setApiKey(e.target.value)}
              placeholder={t('tryit.keyPlaceholder')}
              autoComplete="off"
              spellCheck={false}
              data-testid="tryit-key"
              name="modelgate-tryit-key"
              data-lpignore="true"
            />
            <button
              type="button"
              className="btn"
              onClick={() => setShowKey((v) => !v)}
              aria-pressed={showKey}
              aria-label={showKey ? t('tryit.hideKey') : t('tryit.showKey')}
              data-testid="tryit-key-toggle"
            >
              {showKey ? t('tryit.hide') : t('tryit.show')}
            </button>
          </div>
          <p className="muted small tryit-note">{t('tryit.keyHint')}</p>
        </div>

        {image ? (
          <div className="field">
            <span>{t('tryit.image')}</span>
            <label
              className={`dropzone${dragging ? ' is-dragging' : ''}`}
              onDragOver={(e) => {
                e.preventDefault()
                setDragging(true)
              }}
              onDragLeave={() => setDragging(false)}
              onDrop={onDrop}
              data-testid="tryit-dropzone"
            >
              <input
                type="file"
                accept={IMAGE_TYPES.join(',')}
                className="sr-only"
                onChange={(e) => pickImage(e.target.files?.[0])}
                data-testid="tryit-image"
              />
              {picked ? (
                <span className="dropzone-picked">
                  <img src={picked.dataUrl} alt="" className="dropzone-preview" />
                  <span className="mono small">{picked.name}</span>
                </span>
              ) : (
                <span>{t('tryit.drop')}</span>
              )}
            </label>
            <p className="muted small tryit-note">{t('tryit.imageHint', { width: image.width, height: image.height })}</p>
            {imageProblem && (
              <p className="form-error" role="alert" data-testid="tryit-image-error">
                {imageProblem}
              </p>
            )}
          </div>
        ) : (
          // The feature grid; an API declared as images gets the drop zone above instead.
          <fieldset className="field">
            <legend>{t('tryit.inputs')}</legend>
            <div className="param-grid" data-testid="tryit-fields">
              {docs.features.map((f) => {
                const value = values[f.name]
                const problem = problems[f.name]
                const id = `tryit-field-${f.name}`
                const label = (
                  <span className="tryit-label">
                    <span className="mono">{f.name}</span>{' '}
                    <span className="muted small">
                      {typeLabel[f.type] ?? f.type}
                      {f.required ? '' : ` · ${t('tryit.optional')}`}
                    </span>
                  </span>
                )
                if (f.type === 'boolean') {
                  return (
                    <div className="field" key={f.name}>
                      {label}
                      <label className="switch">
                        <input
                          type="checkbox"
                          checked={value === true}
                          onChange={(e) => setValue(f.name, e.target.checked)}
                          data-testid={id}
                          aria-label={f.name}
                        />
                        <span className="switch-track" aria-hidden="true" />
                        <span>{value === true ? 'true' : 'false'}</span>
                      </label>
                    </div>
                  )
                }
                if (f.type === 'category') {
                  return (
                    <label className="field" key={f.name}>
                      {label}
                      <select value={String(value ?? '')} onChange={(e) => setValue(f.name, e.target.value)} data-testid={id}>
                        {!f.required && <option value="">{t('tryit.blank')}</option>}
                        {(f.categories ?? []).map((c) => (
                          <option key={c} value={c}>
                            {c}
                          </option>
                        ))}
                      </select>
                    </label>
                  )
                }
                return (
                  <label className="field" key={f.name}>
                    {label}
                    <input
                      type="text"
                      inputMode={f.type === 'integer' ? 'numeric' : 'decimal'}
                      className="mono"
                      value={String(value ?? '')}
                      onChange={(e) => setValue(f.name, e.target.value)}
                      placeholder={t('tryit.blank')}
                      aria-invalid={problem ? 'true' : undefined}
                      data-testid={id}
                    />
                    {problem && (
                      <span className="form-error small" role="alert">
                        {problem === 'integer' ? t('tryit.notInteger') : t('tryit.notNumber')}
                      </span>
                    )}
                  </label>
                )
              })}
            </div>
          </fieldset>
        )}

        <div className="actions">
          <button type="submit" className="btn btn-primary" disabled={blocked} data-testid="tryit-send">
            {busy ? t('tryit.sending') : t('tryit.send')}
          </button>
          {!image && (
            <button
              type="button"
              className="btn"
              onClick={() => setValues(initialValues(docs.features, docs.example_request))}
              data-testid="tryit-reset"
            >
              {t('tryit.reset')}
            </button>
          )}
          {image && !picked && <span className="muted small">{t('tryit.imageMissing')}</span>}
        </div>
      </form>

      {outcome && <TryItResult outcome={outcome} lang={lang} />}
    </section>
  )
}

function TryItResult({ outcome, lang }: { outcome: Outcome; lang: Lang }) {
  const { t } = useI18n()
  const o = outcome
  const tone = o.status === null ? 'err5' : o.status < 300 ? 'ok' : o.status < 500 ? 'err4' : 'err5'
  const bars = o.error ? [] : probabilityBars(o.body)
  const prediction =
    !o.error && o.body && typeof o.body === 'object' && 'prediction' in (o.body as Record<string, unknown>)
      ? (o.body as Record<string, unknown>).prediction
      : undefined
  const sentence = o.error ? errorMessage(lang, o.error.code) : null
  const separator = lang === 'fr' ? ' : ' : ': '
  return (
    <div className="tryit-result" data-testid="tryit-result" aria-live="polite">
      <div className="row-between wrap">
        <h3 className="h-small">{t('tryit.result')}</h3>
        <CopyButton text={o.curl} small label={t('tryit.copyCurl')} testId="tryit-copy-curl" />
      </div>
      <dl className="dl">
        <dt>{t('tryit.status')}</dt>
        <dd>
          <span className={`code-badge ${tone}`} data-testid="tryit-status">
            {o.status ?? '—'}
          </span>
        </dd>
        <dt>{t('tryit.latency')}</dt>
        <dd className="mono" data-testid="tryit-latency">
          {fmtMs(lang, o.latencyMs)}
        </dd>
        {o.serverMs !== null && (
          <>
            <dt>{t('tryit.serverTime')}</dt>
            <dd className="mono" data-testid="tryit-server-time">
              {fmtMs(lang, o.serverMs)}
            </dd>
          </>
        )}
        {o.remaining !== null && (
          <>
            <dt>{t('tryit.remaining')}</dt>
            <dd className="mono" data-testid="tryit-remaining">
              {o.limit ? `${o.remaining} / ${o.limit}` : o.remaining}
            </dd>
          </>
        )}
        {o.requestId && (
          <>
            <dt>{t('tryit.requestId')}</dt>
            <dd className="mono small">{o.requestId}</dd>
          </>
        )}
        {o.traceId && (
          <>
            <dt>{t('tryit.traceId')}</dt>
            <dd className="mono small" data-testid="tryit-trace-id">
              {o.traceId}
            </dd>
          </>
        )}
      </dl>

      {o.failure && (
        <p className="callout callout-error" role="alert" data-testid="tryit-error">
          {o.failure}
        </p>
      )}
      {o.error && (
        <div className="callout callout-error" role="alert" data-testid="tryit-error">
          <p>
            {o.error.code && <span className="mono">{o.error.code}</span>}
            {o.error.code && ' · '}
            <strong>{sentence ?? o.error.message}</strong>
            {sentence && o.error.message && o.error.message !== sentence ? `${separator}${o.error.message}` : ''}
            {o.retryAfter ? ` ${t('tryit.retryAfter', { seconds: o.retryAfter })}` : ''}
          </p>
        </div>
      )}

      {prediction !== undefined && (
        <div className="tryit-prediction">
          <span className="stat-label">{t('tryit.prediction')}</span>
          <span className="stat-value mono" data-testid="tryit-prediction">
            {typeof prediction === 'number' ? fmtNum(lang, prediction, 6) : JSON.stringify(prediction)}
          </span>
        </div>
      )}
      {bars.length > 0 && (
        <div>
          <span className="stat-label">{t('tryit.probabilities')}</span>
          <ul className="bars" data-testid="tryit-probabilities">
            {bars.map(([label, p]) => (
              <li key={label}>
                <span className="bars-label mono">{label}</span>
                <span className="bars-track" aria-hidden="true">
                  <span className="bars-fill" style={{ width: `${Math.max(0, Math.min(1, p)) * 100}%` }} />
                </span>
                <span className="bars-value mono">{fmtPercent(lang, p * 100)}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
      {o.text && <CodeBlock code={prettyJson(o.text)} label={t('tryit.rawAnswer')} testId="tryit-raw" />}
    </div>
  )
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}
