// "Exporter sous forme API": first a small form (name, rate limit, payload logging), then the API URL,
// the key (shown once) and a curl command that works as pasted. The form sends one Idempotency-Key
// per opening, so a double click (or a retry after a lost answer) creates one API, not two.
import { useState } from 'react'
import type { FormEvent } from 'react'
import { api } from '../api'
import { useI18n } from '../i18n'
import { Link } from '../router'
import type { ExportResponse, Model, ModelVersion } from '../types'
import { CodeBlock } from './CodeBlock'
import { CopyButton } from './CopyButton'
import { KeyReveal } from './KeyReveal'
import { Modal } from './Modal'

// The bounds the management API enforces (schemas.resources.ApiCreate).
export const RATE_LIMIT_MIN = 1
export const RATE_LIMIT_MAX = 1_000_000
export const RATE_LIMIT_DEFAULT = 100
const NAME_MAX = 100

/** 128 random bits as hex: works where crypto.randomUUID does not (plain http on a LAN address). */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** The rate limit as typed, or null when it is not a whole number within the bounds. */
export function parseRateLimit(text: string): number | null {
  if (!/^\s*\d+\s*$/.test(text)) return null
  const value = Number(text)
  return Number.isSafeInteger(value) && value >= RATE_LIMIT_MIN && value <= RATE_LIMIT_MAX ? value : null
}

interface Props {
  model: Model
  version: ModelVersion
  onClose: () => void
  onExported?: (result: ExportResponse) => void
}

export function ExportAPIModal({ model, version, onClose, onExported }: Props) {
  const [result, setResult] = useState<ExportResponse | null>(null)
  if (result) return <ExportResult result={result} onClose={onClose} />
  return (
    <ExportForm
      model={model}
      version={version}
      onClose={onClose}
      onCreated={(created) => {
        setResult(created)
        onExported?.(created)
      }}
    />
  )
}

function ExportForm({
  model,
  version,
  onClose,
  onCreated,
}: {
  model: Model
  version: ModelVersion
  onClose: () => void
  onCreated: (result: ExportResponse) => void
}) {
  const { t } = useI18n()
  // One key per opened form: every submit of this form is the same request to the server.
  const [idempotencyKey] = useState(newIdempotencyKey)
  const [name, setName] = useState(model.name.slice(0, NAME_MAX))
  const [rate, setRate] = useState(String(RATE_LIMIT_DEFAULT))
  const [logPayloads, setLogPayloads] = useState(true)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  const bounds = { min: RATE_LIMIT_MIN.toLocaleString(), max: RATE_LIMIT_MAX.toLocaleString() }
  const nameOk = name.trim().length > 0 && name.length <= NAME_MAX
  const rateLimit = parseRateLimit(rate)
  const valid = nameOk && rateLimit !== null

  const submit = async (e?: FormEvent) => {
    e?.preventDefault()
    if (!valid || rateLimit === null) return
    setBusy(true)
    setError(null)
    try {
      const created = await api.exportModel(
        model.id,
        { name: name.trim(), version: version.number, rate_limit_per_minute: rateLimit, log_payloads: logPayloads },
        idempotencyKey,
      )
      onCreated(created)
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Modal
      title={t('exportForm.title', { model: model.name, version: version.number })}
      onClose={onClose}
      testId="export-form"
      footer={
        <>
          <button type="button" className="btn" onClick={onClose} data-testid="export-cancel">
            {t('exportForm.cancel')}
          </button>
          <button type="submit" form="export-form" className="btn btn-primary" disabled={!valid || busy} data-testid="export-submit">
            {busy ? t('exportForm.submitting') : t('exportForm.submit')}
          </button>
        </>
      }
    >
      <form id="export-form" className="form" noValidate onSubmit={(e) => void submit(e)}>
        <p className="muted small">{t('exportForm.intro')}</p>
        <label className="field">
          <span>{t('exportForm.name')}</span>
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={NAME_MAX}
            required
            aria-invalid={!nameOk}
            data-testid="export-name"
            data-autofocus
          />
          {!nameOk && (
            <small className="form-error" data-testid="export-name-error">
              {t('exportForm.nameRequired')}
            </small>
          )}
        </label>
        <label className="field">
          <span>{t('exportForm.rateLimit')}</span>
          <input
            type="number"
            inputMode="numeric"
            min={RATE_LIMIT_MIN}
            max={RATE_LIMIT_MAX}
            step={1}
            value={rate}
            onChange={(e) => setRate(e.target.value)}
            aria-invalid={rateLimit === null}
            data-testid="export-rate-limit"
          />
          {rateLimit === null ? (
            <small className="form-error" data-testid="export-rate-limit-error">
              {t('exportForm.rateLimitInvalid', bounds)}
            </small>
          ) : (
            <small className="muted small">{t('exportForm.rateLimitHint', bounds)}</small>
          )}
        </label>
        <label className="switch">
          <input
            type="checkbox"
            checked={logPayloads}
            onChange={(e) => setLogPayloads(e.target.checked)}
            data-testid="export-log-payloads"
          />
          <span className="switch-track" aria-hidden="true" />
          <span>{t('exportForm.logPayloads')}</span>
        </label>
        <p className="muted small">{t('exportForm.logPayloadsHint')}</p>
      </form>
      {error && (
        <p className="form-error" role="alert" data-testid="export-error">
          {error}
        </p>
      )}
    </Modal>
  )
}

function ExportResult({ result, onClose }: { result: ExportResponse; onClose: () => void }) {
  const { t } = useI18n()
  const { api: created, api_key: apiKey, api_url: apiUrl } = result
  // The server builds the command (shell-quoted, a real example body, the key); older servers did not.
  const curl =
    result.curl ||
    `curl -sS -X POST '${apiUrl}' \\\n  -H 'Content-Type: application/json' \\\n  -H 'X-API-Key: ${apiKey}' \\\n  -d '{}'`
  return (
    <Modal
      title={t('export.modalTitle')}
      onClose={onClose}
      testId="export-modal"
      wide
      footer={
        <>
          <Link to={`/monitoring/${created.id}?tab=docs`} className="btn" data-testid="export-docs-link">
            {t('export.viewDocs')}
          </Link>
          <Link to={`/monitoring/${created.id}`} className="btn" data-testid="export-monitoring-link">
            {t('export.viewMonitoring')}
          </Link>
          <button type="button" className="btn btn-primary" onClick={onClose} data-testid="export-close">
            {t('export.done')}
          </button>
        </>
      }
    >
      <p className="callout callout-success" role="status">
        {t('export.success', { name: created.name })}
      </p>
      <p className="muted small" data-testid="export-settings">
        {t('exportForm.settings', {
          rate: created.rate_limit_per_minute.toLocaleString(),
          logging: t(created.log_payloads ? 'exportForm.on' : 'exportForm.off'),
        })}
      </p>
      <label className="field">
        <span>{t('export.url')}</span>
        <div className="copy-row">
          <input readOnly value={apiUrl} className="mono" data-testid="export-api-url" onFocus={(e) => e.target.select()} />
          <CopyButton text={apiUrl} testId="copy-api-url" />
        </div>
      </label>
      <KeyReveal apiKey={apiKey} testId="export-api-key" />
      <p className="muted small">{t('exportForm.curlText')}</p>
      <CodeBlock code={curl} label={t('export.howTo')} testId="export-curl" />
    </Modal>
  )
}
