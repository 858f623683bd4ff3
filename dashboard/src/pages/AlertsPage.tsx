// The Alerts page (issue 12): rules pending or firing now (acknowledge, silence for a duration) and
// the history of every state change, filtered by API, state and period, a page at a time.
import { useEffect, useMemo, useState } from 'react'
import {
  fmtAlertValue,
  HISTORY_RANGES,
  isSilenced,
  parseSilenceMinutes,
  rangeSince,
  SILENCE_PRESETS_S,
} from '../alertlogic'
import { api } from '../api'
import { AlertStateBadge } from '../components/AlertBadges'
import { ErrorState, Skeleton } from '../components/Feedback'
import { Modal } from '../components/Modal'
import { fmtDate, fmtDateTimeSeconds, fmtRelative } from '../format'
import { useAsync, useInterval, useStoredFlag } from '../hooks'
import { useI18n } from '../i18n'
import type { TranslationKey } from '../i18n'
import { Link } from '../router'
import type { ActiveAlert, AlertState } from '../types'

const REFRESH_MS = 10_000
const PAGE_SIZE = 25

const PRESET_LABELS: Record<number, TranslationKey> = {
  900: 'alerts.silence15m',
  3600: 'alerts.silence1h',
  14400: 'alerts.silence4h',
  86400: 'alerts.silence24h',
}

const RANGE_LABELS: Record<(typeof HISTORY_RANGES)[number], TranslationKey> = {
  '1h': 'alerts.range1h',
  '24h': 'alerts.range24h',
  '7d': 'alerts.range7d',
  '30d': 'alerts.range30d',
  '': 'alerts.rangeAll',
}

export function AlertsPage() {
  const { t } = useI18n()
  const [autoRefresh] = useStoredFlag('modelgate.autoRefresh', true)
  const [notice, setNotice] = useState<string | null>(null)
  const [tick, setTick] = useState(0)
  return (
    <div className="page" data-testid="alerts-page">
      <div className="page-header">
        <div>
          <h1>{t('alerts.title')}</h1>
          <p className="muted">{t('alerts.subtitle')}</p>
        </div>
        <div className="actions">
          <button type="button" className="btn" onClick={() => setTick((n) => n + 1)} data-testid="refresh-button">
            {t('common.refresh')}
          </button>
        </div>
      </div>
      {notice && (
        <div className="callout callout-success" role="status" data-testid="alerts-notice">
          {notice}
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setNotice(null)} aria-label={t('common.close')}>
            ×
          </button>
        </div>
      )}
      <ActiveAlerts tick={tick} autoRefresh={autoRefresh} onNotice={setNotice} />
      <AlertHistory tick={tick} />
    </div>
  )
}

function ActiveAlerts({ tick, autoRefresh, onNotice }: { tick: number; autoRefresh: boolean; onNotice: (s: string) => void }) {
  const { t, lang } = useI18n()
  const data = useAsync(() => api.activeAlerts(), [])
  const [customFor, setCustomFor] = useState<ActiveAlert | null>(null)
  const [actionError, setActionError] = useState<string | null>(null)
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])
  useInterval(() => data.reload(true), REFRESH_MS, autoRefresh && !data.error && customFor === null)

  const run = async (action: () => Promise<unknown>, done: string) => {
    setActionError(null)
    try {
      await action()
      onNotice(done)
      data.reload(true)
    } catch (err) {
      setActionError(err instanceof Error ? err.message : String(err))
    }
  }
  const silence = (a: ActiveAlert, seconds: number) =>
    run(
      () => api.silenceAlert(a.rule.id, seconds),
      t('alerts.silenceDone', { time: fmtDate(lang, new Date(Date.now() + seconds * 1000).toISOString()) }),
    )

  const items = [...(data.data?.items ?? [])].sort(
    (x, y) => (x.state === y.state ? (x.since ?? '').localeCompare(y.since ?? '') : x.state === 'firing' ? -1 : 1),
  )
  return (
    <section className="panel" aria-labelledby="alerts-active-title" data-testid="alerts-active">
      <h2 id="alerts-active-title" className="h-small">
        {t('alerts.activeTitle')}
      </h2>
      {data.loading && <Skeleton lines={3} height={18} />}
      {data.error && <ErrorState message={t('alerts.unavailable', { message: data.error })} onRetry={() => data.reload()} />}
      {actionError && (
        <p className="form-error" role="alert">
          {actionError}
        </p>
      )}
      {data.data && items.length === 0 && (
        <p className="muted" data-testid="alerts-active-empty">
          {t('alerts.activeEmpty')}
        </p>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="alerts-active-table">
            <thead>
              <tr>
                <th scope="col">{t('alerts.colApi')}</th>
                <th scope="col">{t('alerts.colRule')}</th>
                <th scope="col">{t('alerts.colState')}</th>
                <th scope="col">{t('alerts.colValue')}</th>
                <th scope="col">{t('alerts.colSince')}</th>
                <th scope="col">{t('common.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => {
                const silenced = isSilenced(a)
                return (
                  <tr key={a.rule.id} data-testid="active-alert-row" data-rule-id={a.rule.id} data-api-id={a.rule.api_id} data-state={a.state}>
                    <td data-label={t('alerts.colApi')} className="cell-title">
                      <Link to={`/monitoring/${a.rule.api_id}`} className="strong">
                        {a.api_name}
                      </Link>
                    </td>
                    <td data-label={t('alerts.colRule')}>{t(`alerts.kind.${a.rule.kind}`)}</td>
                    <td data-label={t('alerts.colState')}>
                      <AlertStateBadge state={a.state} />
                      {a.acked_by && (
                        <div className="muted small" data-testid="alert-acked">
                          {t('alerts.acked', { user: a.acked_by })}
                        </div>
                      )}
                      {silenced && (
                        <div className="muted small" data-testid="alert-silenced">
                          {t('alerts.silencedUntil', { time: fmtDate(lang, a.silenced_until) })}
                        </div>
                      )}
                    </td>
                    <td data-label={t('alerts.colValue')} data-testid="alert-value">
                      {a.rule.kind === 'no_traffic'
                        ? a.value === null
                          ? t('alerts.noData')
                          : fmtAlertValue(lang, a.rule.kind, a.value)
                        : t('alerts.valueVsThreshold', {
                            value: a.value === null ? t('alerts.noData') : fmtAlertValue(lang, a.rule.kind, a.value),
                            threshold: fmtAlertValue(lang, a.rule.kind, a.rule.threshold),
                          })}
                    </td>
                    <td data-label={t('alerts.colSince')} title={fmtDateTimeSeconds(lang, a.since)}>
                      {fmtRelative(lang, a.since)}
                    </td>
                    <td className="cell-actions">
                      <div className="actions actions-wrap">
                        {!a.acked_by && (
                          <button
                            type="button"
                            className="btn btn-sm"
                            onClick={() => void run(() => api.ackAlert(a.rule.id), t('alerts.ackDone'))}
                            data-testid="alert-ack"
                          >
                            {t('alerts.ack')}
                          </button>
                        )}
                        {silenced ? (
                          <button
                            type="button"
                            className="btn btn-sm"
                            onClick={() => void run(() => api.unsilenceAlert(a.rule.id), t('alerts.unsilenceDone'))}
                            data-testid="alert-unsilence"
                          >
                            {t('alerts.unsilence')}
                          </button>
                        ) : (
                          <label className="field field-inline">
                            <span className="sr-only">{t('alerts.silenceFor')}</span>
                            <select
                              value=""
                              onChange={(e) => {
                                const v = e.target.value
                                if (v === 'custom') setCustomFor(a)
                                else if (v) void silence(a, Number(v))
                              }}
                              data-testid="alert-silence"
                            >
                              <option value="">{t('alerts.silence')}…</option>
                              {SILENCE_PRESETS_S.map((s) => (
                                <option key={s} value={s}>
                                  {t('alerts.silenceFor')} {t(PRESET_LABELS[s] as TranslationKey)}
                                </option>
                              ))}
                              <option value="custom">{t('alerts.silenceCustom')}</option>
                            </select>
                          </label>
                        )}
                      </div>
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {customFor && (
        <CustomSilenceDialog
          alert={customFor}
          onCancel={() => setCustomFor(null)}
          onSilence={async (seconds) => {
            await api.silenceAlert(customFor.rule.id, seconds)
            onNotice(t('alerts.silenceDone', { time: fmtDate(lang, new Date(Date.now() + seconds * 1000).toISOString()) }))
            setCustomFor(null)
            data.reload(true)
          }}
        />
      )}
    </section>
  )
}

function CustomSilenceDialog({
  alert: a,
  onCancel,
  onSilence,
}: {
  alert: ActiveAlert
  onCancel: () => void
  onSilence: (seconds: number) => Promise<void>
}) {
  const { t } = useI18n()
  const [minutes, setMinutes] = useState('30')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const submit = async () => {
    const seconds = parseSilenceMinutes(minutes)
    if (seconds === null) {
      setError(t('alerts.silenceInvalid'))
      return
    }
    setBusy(true)
    setError(null)
    try {
      await onSilence(seconds)
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
      setBusy(false)
    }
  }
  return (
    <Modal
      title={t('alerts.silenceTitle', { rule: t(`alerts.kind.${a.rule.kind}`), api: a.api_name })}
      onClose={onCancel}
      testId="silence-dialog"
      footer={
        <>
          <button type="button" className="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
          <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void submit()} data-testid="silence-ok">
            {busy ? t('common.working') : t('alerts.silence')}
          </button>
        </>
      }
    >
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void submit()
        }}
      >
        <label className="field">
          <span>{t('alerts.silenceMinutes')}</span>
          <input
            data-autofocus
            inputMode="decimal"
            value={minutes}
            onChange={(e) => setMinutes(e.target.value)}
            data-testid="silence-minutes"
          />
        </label>
      </form>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </Modal>
  )
}

function AlertHistory({ tick }: { tick: number }) {
  const { t, lang } = useI18n()
  const [apiId, setApiId] = useState('')
  const [state, setState] = useState<'' | AlertState>('')
  const [range, setRange] = useState<(typeof HISTORY_RANGES)[number]>('7d')
  // Each page starts before the oldest transition of the previous one: a stack of `until` cursors.
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined])
  const until = cursors[cursors.length - 1]
  const apis = useAsync(() => api.exports(), [])
  const data = useAsync(
    () =>
      api.alertHistory({
        api_id: apiId || undefined,
        state: state || undefined,
        since: rangeSince(range),
        until,
        limit: PAGE_SIZE + 1,
      }),
    [apiId, state, range, until],
  )
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])
  useEffect(() => setCursors([undefined]), [apiId, state, range])

  const items = useMemo(() => (data.data?.items ?? []).slice(0, PAGE_SIZE), [data.data])
  const hasOlder = (data.data?.items.length ?? 0) > PAGE_SIZE
  const last = items[items.length - 1]

  return (
    <section className="panel" aria-labelledby="alerts-history-title" data-testid="alerts-history">
      <div className="row-between wrap">
        <h2 id="alerts-history-title" className="h-small">
          {t('alerts.historyTitle')}
        </h2>
        <div className="filters">
          <label className="field field-inline">
            <span>{t('alerts.filterApi')}</span>
            <select value={apiId} onChange={(e) => setApiId(e.target.value)} data-testid="history-api">
              <option value="">{t('alerts.filterAllApis')}</option>
              {(apis.data?.items ?? []).map((a) => (
                <option key={a.id} value={String(a.id)}>
                  {a.name}
                </option>
              ))}
            </select>
          </label>
          <label className="field field-inline">
            <span>{t('alerts.filterState')}</span>
            <select value={state} onChange={(e) => setState(e.target.value as '' | AlertState)} data-testid="history-state">
              <option value="">{t('alerts.filterAllStates')}</option>
              {(['pending', 'firing', 'resolved', 'ok'] as AlertState[]).map((s) => (
                <option key={s} value={s}>
                  {t(`alerts.state.${s}`)}
                </option>
              ))}
            </select>
          </label>
          <label className="field field-inline">
            <span>{t('alerts.filterRange')}</span>
            <select
              value={range}
              onChange={(e) => setRange(e.target.value as (typeof HISTORY_RANGES)[number])}
              data-testid="history-range"
            >
              {HISTORY_RANGES.map((r) => (
                <option key={r} value={r}>
                  {t(RANGE_LABELS[r])}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      {data.loading && <Skeleton lines={5} height={18} />}
      {data.error && <ErrorState message={t('alerts.unavailable', { message: data.error })} onRetry={() => data.reload()} />}
      {data.data && items.length === 0 && (
        <p className="muted" data-testid="history-empty">
          {t('alerts.historyEmpty')}
        </p>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="history-table">
            <thead>
              <tr>
                <th scope="col">{t('alerts.colAt')}</th>
                <th scope="col">{t('alerts.colApi')}</th>
                <th scope="col">{t('alerts.colRule')}</th>
                <th scope="col">{t('alerts.colTransition')}</th>
                <th scope="col">{t('alerts.colValue')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((h) => (
                <tr key={h.transition_id} data-testid="history-row" data-api-id={h.api_id} data-state={h.to_state}>
                  <td data-label={t('alerts.colAt')}>{fmtDateTimeSeconds(lang, h.at)}</td>
                  <td data-label={t('alerts.colApi')} className="cell-title">
                    <Link to={`/monitoring/${h.api_id}`}>{h.api_name}</Link>
                  </td>
                  <td data-label={t('alerts.colRule')}>{t(`alerts.kind.${h.kind}`)}</td>
                  <td data-label={t('alerts.colTransition')}>
                    <AlertStateBadge state={h.from_state} /> → <AlertStateBadge state={h.to_state} />
                  </td>
                  <td data-label={t('alerts.colValue')}>
                    {t('alerts.valueVsThreshold', {
                      value: h.value === null ? t('alerts.noData') : fmtAlertValue(lang, h.kind, h.value),
                      threshold: fmtAlertValue(lang, h.kind, h.threshold),
                    })}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(cursors.length > 1 || hasOlder) && (
        <nav className="pager" aria-label={t('alerts.paging')}>
          <button
            type="button"
            className="btn btn-sm"
            disabled={cursors.length <= 1}
            onClick={() => setCursors((c) => c.slice(0, -1))}
            data-testid="history-newer"
          >
            ← {t('alerts.newer')}
          </button>
          <span>{t('alerts.page', { page: cursors.length })}</span>
          <button
            type="button"
            className="btn btn-sm"
            disabled={!hasOlder || !last}
            onClick={() => last && setCursors((c) => [...c, last.at])}
            data-testid="history-older"
          >
            {t('alerts.older')} →
          </button>
        </nav>
      )}
    </section>
  )
}
