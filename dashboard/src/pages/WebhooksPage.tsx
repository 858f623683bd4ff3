// Notification endpoints (issue 12): the user's webhooks and e-mail addresses, for all their APIs or
// one; add, edit, pause, delete (with confirmation), send a test now, rotate the signing secret (shown
// once, like at creation) and read each endpoint's delivery log (status, attempts, HTTP, latency).
import { useState } from 'react'
import type { FormEvent } from 'react'
import { api, requestJson } from '../api'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { CopyButton } from '../components/CopyButton'
import { EmptyState, ErrorState, Skeleton } from '../components/Feedback'
import { Modal } from '../components/Modal'
import { fmtDateTimeSeconds, fmtMs } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { Translate, TranslationKey } from '../i18n'

export type WebhookKind = 'webhook' | 'email'
export type WebhookFormat = 'json' | 'slack'

export interface Webhook {
  id: string
  name: string
  type: WebhookKind
  url: string | null
  email: string | null
  format: WebhookFormat
  api_id: string | null
  enabled: boolean
  created_at: string
}

export interface Delivery {
  id: string
  webhook_id: string
  event: string
  event_id: string
  status: 'pending' | 'retrying' | 'delivered' | 'failed'
  attempts: number
  response_status: number | null
  latency_ms: number | null
  last_error: string | null
  created_at: string
  updated_at: string
}

type WebhookBody = Partial<Omit<Webhook, 'id' | 'created_at'>>

export const webhooksApi = {
  list: () => requestJson<{ items: Webhook[] }>('/api/webhooks'),
  create: (body: WebhookBody) => requestJson<Webhook & { secret: string }>('/api/webhooks', { json: body }),
  update: (id: string, body: WebhookBody) =>
    requestJson<Webhook>(`/api/webhooks/${id}`, { method: 'PATCH', json: body }),
  remove: (id: string) => requestJson<void>(`/api/webhooks/${id}`, { method: 'DELETE' }),
  rotate: (id: string) => requestJson<{ id: string; secret: string }>(`/api/webhooks/${id}/rotate-secret`, { method: 'POST' }),
  test: (id: string) => requestJson<Delivery>(`/api/webhooks/${id}/test`, { method: 'POST' }),
  deliveries: (id: string) => requestJson<{ items: Delivery[] }>(`/api/webhooks/${id}/deliveries`, { query: { limit: 50 } }),
}

type Pending =
  | { kind: 'create' }
  | { kind: 'edit'; hook: Webhook }
  | { kind: 'delete'; hook: Webhook }
  | { kind: 'rotate'; hook: Webhook }
  | { kind: 'deliveries'; hook: Webhook }
  | { kind: 'secret'; secret: string }

export function WebhooksPage() {
  const { t, lang } = useI18n()
  const hooks = useAsync(() => webhooksApi.list(), [])
  const apis = useAsync(() => api.exports(), [])
  const [pending, setPending] = useState<Pending | null>(null)
  // A function of the language, so that a switch translates a notice already on screen.
  const [notice, setNotice] = useState<{ tone: 'success' | 'error'; text: (tr: Translate) => string } | null>(null)
  const [testing, setTesting] = useState<string | null>(null)

  const apiName = (id: string | null) =>
    id === null ? t('webhooks.allApis') : (apis.data?.items.find((a) => String(a.id) === id)?.name ?? id)

  const sendTest = async (hook: Webhook) => {
    setTesting(hook.id)
    setNotice(null)
    try {
      const d = await webhooksApi.test(hook.id)
      setNotice(
        d.status === 'delivered'
          ? { tone: 'success', text: (tr) => tr('webhooks.testOk', { name: hook.name, latency: fmtMs(lang, d.latency_ms) }) }
          : { tone: 'error', text: (tr) => tr('webhooks.testFailed', { name: hook.name, error: d.last_error ?? d.status }) },
      )
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err)
      setNotice({ tone: 'error', text: () => text })
    } finally {
      setTesting(null)
    }
  }

  return (
    <div className="page" data-testid="webhooks-page">
      <div className="page-header">
        <div>
          <h1>{t('webhooks.title')}</h1>
          <p className="muted">{t('webhooks.subtitle')}</p>
        </div>
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => setPending({ kind: 'create' })}
          data-testid="new-webhook-button"
        >
          {t('webhooks.new')}
        </button>
      </div>

      {notice && (
        <div
          className={`callout callout-${notice.tone}`}
          role={notice.tone === 'error' ? 'alert' : 'status'}
          data-testid="webhooks-notice"
        >
          <p>{notice.text(t)}</p>
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setNotice(null)}>
            {t('common.close')}
          </button>
        </div>
      )}

      {hooks.loading && <Skeleton lines={3} height={20} />}
      {hooks.error && <ErrorState message={hooks.error} onRetry={() => hooks.reload()} />}
      {hooks.data && hooks.data.items.length === 0 && (
        <EmptyState title={t('webhooks.empty')}>
          <p className="muted">{t('webhooks.emptyHint')}</p>
        </EmptyState>
      )}
      {hooks.data && hooks.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="webhooks-table">
            <thead>
              <tr>
                <th scope="col">{t('webhooks.name')}</th>
                <th scope="col">{t('webhooks.target')}</th>
                <th scope="col">{t('webhooks.format')}</th>
                <th scope="col">{t('webhooks.scope')}</th>
                <th scope="col">{t('webhooks.enabled')}</th>
                <th scope="col">
                  <span className="sr-only">{t('common.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {hooks.data.items.map((h) => (
                <tr key={h.id} data-testid="webhook-row" data-name={h.name}>
                  <td data-label={t('webhooks.name')}>
                    <span className="strong">{h.name}</span>
                  </td>
                  <td data-label={t('webhooks.target')}>
                    <code>{h.type === 'email' ? h.email : h.url}</code>
                  </td>
                  <td data-label={t('webhooks.format')}>
                    {h.type === 'email'
                      ? t('webhooks.typeEmail')
                      : t(h.format === 'slack' ? 'webhooks.formatSlack' : 'webhooks.formatJson')}
                  </td>
                  <td data-label={t('webhooks.scope')}>{apiName(h.api_id)}</td>
                  <td data-label={t('webhooks.enabled')}>
                    <span className={`badge badge-${h.enabled ? 'active' : 'inactive'}`}>
                      <span className="badge-dot" aria-hidden="true" />
                      {t(h.enabled ? 'webhooks.statusOn' : 'webhooks.statusOff')}
                    </span>
                  </td>
                  <td className="cell-actions">
                    <div className="actions">
                      <button
                        type="button"
                        className="btn btn-sm"
                        disabled={testing === h.id}
                        onClick={() => void sendTest(h)}
                        data-testid="webhook-test"
                      >
                        {testing === h.id ? t('common.working') : t('webhooks.test')}
                      </button>
                      <button
                        type="button"
                        className="btn btn-sm"
                        onClick={() => setPending({ kind: 'deliveries', hook: h })}
                        data-testid="webhook-deliveries"
                      >
                        {t('webhooks.deliveries')}
                      </button>
                      <button type="button" className="btn btn-ghost btn-sm" onClick={() => setPending({ kind: 'edit', hook: h })}>
                        {t('webhooks.edit')}
                      </button>
                      {h.type === 'webhook' && (
                        <button
                          type="button"
                          className="btn btn-ghost btn-sm"
                          onClick={() => setPending({ kind: 'rotate', hook: h })}
                        >
                          {t('webhooks.rotate')}
                        </button>
                      )}
                      <button
                        type="button"
                        className="btn btn-sm btn-danger-outline"
                        onClick={() => setPending({ kind: 'delete', hook: h })}
                        data-testid="webhook-delete"
                      >
                        {t('webhooks.delete')}
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {(pending?.kind === 'create' || pending?.kind === 'edit') && (
        <WebhookForm
          hook={pending.kind === 'edit' ? pending.hook : null}
          apis={(apis.data?.items ?? []).map((a) => ({ id: String(a.id), name: a.name }))}
          onClose={() => setPending(null)}
          onSaved={(secret) => {
            hooks.reload(true)
            setPending(secret ? { kind: 'secret', secret } : null)
          }}
        />
      )}
      {pending?.kind === 'delete' && (
        <ConfirmDialog
          title={t('webhooks.deleteTitle', { name: pending.hook.name })}
          message={t('webhooks.deleteText')}
          confirmLabel={t('webhooks.delete')}
          danger
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            await webhooksApi.remove(pending.hook.id)
            setPending(null)
            hooks.reload(true)
          }}
        />
      )}
      {pending?.kind === 'rotate' && (
        <ConfirmDialog
          title={t('webhooks.rotateTitle', { name: pending.hook.name })}
          message={t('webhooks.rotateText')}
          confirmLabel={t('webhooks.rotate')}
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            const rotated = await webhooksApi.rotate(pending.hook.id)
            setPending({ kind: 'secret', secret: rotated.secret })
          }}
        />
      )}
      {pending?.kind === 'secret' && (
        <Modal
          title={t('webhooks.secretTitle')}
          onClose={() => setPending(null)}
          testId="webhook-secret-modal"
          footer={
            <button type="button" className="btn btn-primary" onClick={() => setPending(null)}>
              {t('webhooks.secretDone')}
            </button>
          }
        >
          <p>{t('webhooks.secretText')}</p>
          <p>
            <code data-testid="webhook-secret">{pending.secret}</code> <CopyButton text={pending.secret} small />
          </p>
        </Modal>
      )}
      {pending?.kind === 'deliveries' && <DeliveriesModal hook={pending.hook} onClose={() => setPending(null)} />}
    </div>
  )
}

function WebhookForm({
  hook,
  apis,
  onClose,
  onSaved,
}: {
  hook: Webhook | null
  apis: { id: string; name: string }[]
  onClose: () => void
  onSaved: (secret: string | null) => void
}) {
  const { t } = useI18n()
  const [name, setName] = useState(hook?.name ?? '')
  const [type, setType] = useState<WebhookKind>(hook?.type ?? 'webhook')
  const [target, setTarget] = useState((hook?.type === 'email' ? hook.email : hook?.url) ?? '')
  const [format, setFormat] = useState<WebhookFormat>(hook?.format ?? 'json')
  const [apiId, setApiId] = useState(hook?.api_id ?? '')
  const [enabled, setEnabled] = useState(hook?.enabled ?? true)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (busy) return
    if (!name.trim()) return setError(t('webhooks.error.name'))
    if (type === 'webhook' && !/^https?:\/\/\S+$/i.test(target.trim())) return setError(t('webhooks.error.url'))
    if (type === 'email' && !/^[^@\s]+@[^@\s]+$/.test(target.trim())) return setError(t('webhooks.error.email'))
    const body: WebhookBody = {
      name: name.trim(),
      format,
      api_id: apiId || null,
      enabled,
      ...(type === 'email' ? { email: target.trim() } : { url: target.trim() }),
    }
    setBusy(true)
    setError(null)
    try {
      if (hook) {
        await webhooksApi.update(hook.id, body)
        onSaved(null)
      } else {
        const created = await webhooksApi.create({ ...body, type })
        onSaved(created.type === 'webhook' ? created.secret : null)
      }
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
      setBusy(false)
    }
  }

  return (
    <Modal
      title={hook ? t('webhooks.editTitle', { name: hook.name }) : t('webhooks.createTitle')}
      onClose={onClose}
      testId="webhook-form-modal"
      footer={
        <>
          <button type="button" className="btn" onClick={onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" form="webhook-form" className="btn btn-primary" disabled={busy} data-testid="webhook-submit">
            {busy ? t('common.working') : t(hook ? 'webhooks.save' : 'webhooks.create')}
          </button>
        </>
      }
    >
      <form id="webhook-form" className="form" onSubmit={(e) => void submit(e)} noValidate>
        <label className="field">
          <span>{t('webhooks.name')}</span>
          <input data-autofocus value={name} maxLength={100} onChange={(e) => setName(e.target.value)} data-testid="webhook-name" />
        </label>
        {!hook && (
          <label className="field field-narrow">
            <span>{t('webhooks.type')}</span>
            <select value={type} onChange={(e) => setType(e.target.value as WebhookKind)} data-testid="webhook-type">
              <option value="webhook">{t('webhooks.typeWebhook')}</option>
              <option value="email">{t('webhooks.typeEmail')}</option>
            </select>
          </label>
        )}
        <label className="field">
          <span>{t(type === 'email' ? 'webhooks.email' : 'webhooks.url')}</span>
          <input
            value={target}
            type={type === 'email' ? 'email' : 'url'}
            maxLength={type === 'email' ? 254 : 2000}
            spellCheck={false}
            onChange={(e) => setTarget(e.target.value)}
            data-testid="webhook-target"
          />
          {type === 'webhook' && <small className="muted">{t('webhooks.urlHint')}</small>}
        </label>
        {type === 'webhook' && (
          <label className="field field-narrow">
            <span>{t('webhooks.format')}</span>
            <select value={format} onChange={(e) => setFormat(e.target.value as WebhookFormat)} data-testid="webhook-format">
              <option value="json">{t('webhooks.formatJson')}</option>
              <option value="slack">{t('webhooks.formatSlack')}</option>
            </select>
          </label>
        )}
        <label className="field">
          <span>{t('webhooks.scope')}</span>
          <select value={apiId} onChange={(e) => setApiId(e.target.value)} data-testid="webhook-api">
            <option value="">{t('webhooks.allApis')}</option>
            {apis.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
        <label className="field field-inline">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          <span>{t('webhooks.enabled')}</span>
        </label>
        {error && (
          <p className="form-error" role="alert" data-testid="webhook-form-error">
            {error}
          </p>
        )}
      </form>
    </Modal>
  )
}

const STATUS_TONE: Record<Delivery['status'], string> = {
  pending: 'inactive',
  retrying: 'inactive',
  delivered: 'active',
  failed: 'inactive',
}

function DeliveriesModal({ hook, onClose }: { hook: Webhook; onClose: () => void }) {
  const { t, lang } = useI18n()
  const log = useAsync(() => webhooksApi.deliveries(hook.id), [hook.id])
  return (
    <Modal
      title={t('webhooks.deliveriesTitle', { name: hook.name })}
      onClose={onClose}
      testId="webhook-deliveries-modal"
      wide
      footer={
        <>
          <button type="button" className="btn" onClick={() => log.reload(true)}>
            {t('common.refresh')}
          </button>
          <button type="button" className="btn btn-primary" onClick={onClose}>
            {t('common.close')}
          </button>
        </>
      }
    >
      {log.loading && <Skeleton lines={3} height={18} />}
      {log.error && <ErrorState message={log.error} onRetry={() => log.reload()} />}
      {log.data && log.data.items.length === 0 && <p className="muted">{t('webhooks.deliveriesEmpty')}</p>}
      {log.data && log.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="webhook-deliveries-table">
            <thead>
              <tr>
                <th scope="col">{t('webhooks.col.time')}</th>
                <th scope="col">{t('webhooks.col.event')}</th>
                <th scope="col">{t('webhooks.col.status')}</th>
                <th scope="col">{t('webhooks.col.attempts')}</th>
                <th scope="col">{t('webhooks.col.http')}</th>
                <th scope="col">{t('webhooks.col.latency')}</th>
                <th scope="col">{t('webhooks.col.error')}</th>
              </tr>
            </thead>
            <tbody>
              {log.data.items.map((d) => (
                <tr key={d.id} data-testid="webhook-delivery-row" data-status={d.status}>
                  <td>{fmtDateTimeSeconds(lang, d.updated_at)}</td>
                  <td>{t(d.event === 'test' ? 'webhooks.event.test' : 'webhooks.event.alert')}</td>
                  <td>
                    <span className={`badge badge-${STATUS_TONE[d.status]}`}>
                      <span className="badge-dot" aria-hidden="true" />
                      {t(`webhooks.status.${d.status}` as TranslationKey)}
                    </span>
                  </td>
                  <td>{d.attempts}</td>
                  <td>{d.response_status ?? '—'}</td>
                  <td>{fmtMs(lang, d.latency_ms)}</td>
                  <td className="muted">{d.last_error ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Modal>
  )
}
