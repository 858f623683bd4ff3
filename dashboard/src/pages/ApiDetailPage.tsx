// One exported API: stats, charts, alerts, request history, actions and documentation.
import { useEffect, useState } from 'react'
import {
  Area,
  AreaChart,
  Bar,
  BarChart,
  CartesianGrid,
  ReferenceLine,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts'
import { api, ApiError } from '../api'
import { APIDocumentation } from '../components/APIDocumentation'
import { AlertRulesEditor } from '../components/AlertRulesEditor'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { CopyButton } from '../components/CopyButton'
import { DriftTab } from '../components/DriftTab'
import { ErrorState, Skeleton, StatCard, StatCardSkeleton, StatusBadge } from '../components/Feedback'
import { KeyReveal } from '../components/KeyReveal'
import { Modal } from '../components/Modal'
import { PerformancePanel } from '../components/PerformancePanel'
import { RangePicker, useLive } from '../components/RangePicker'
import { LatencyChart, MarkerList, RequestRateChart, StatusCodesChart } from '../components/TimeSeriesChart'
import { TrafficPanel } from '../components/TrafficPanel'
import {
  fmtDate,
  fmtDateTimeSeconds,
  fmtInt,
  fmtMb,
  fmtMs,
  fmtNum,
  fmtPercent,
  fmtRate,
  fmtRelative,
  fmtTick,
  rateTone,
} from '../format'
import { useAsync, useInterval, useStoredFlag } from '../hooks'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'
import type { CompatibilityReport, ExportedApi, ModelVersion, Range, RequestRecord } from '../types'

type Tab = 'overview' | 'requests' | 'drift' | 'performance' | 'docs'
const REFRESH_MS = 10_000

type Dialog = null | 'status' | 'regenerate' | 'delete' | 'deploy' | 'settings'

export function ApiDetailPage({ apiId }: { apiId: string }) {
  const { t, lang } = useI18n()
  const { location, navigate } = useRouter()
  const tabParam = location.search.get('tab')
  const tab: Tab =
    tabParam === 'docs' || tabParam === 'requests' || tabParam === 'drift' || tabParam === 'performance' ? tabParam : 'overview'
  const [range, setRange] = useState<Range>('24h')
  const [autoRefresh, setAutoRefresh] = useStoredFlag('modelgate.autoRefresh', true)
  const [refreshTick, setRefreshTick] = useState(0)
  const [dialog, setDialog] = useState<Dialog>(null)
  const [newKey, setNewKey] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  // A retrained version, preselected in the deploy dialog the Retrain button opens.
  const [deployVersion, setDeployVersion] = useState<number | null>(null)
  const retrained = (version: number) => {
    setDeployVersion(version)
    setDialog('deploy')
    setNotice(t('retrain.succeeded', { version }))
  }

  const apiState = useAsync(() => api.exportedApi(apiId), [apiId])
  const [current, setCurrent] = useState<ExportedApi | null>(null)
  useEffect(() => {
    if (apiState.data) setCurrent(apiState.data)
  }, [apiState.data])

  const refresh = () => {
    apiState.reload(true)
    setRefreshTick((n) => n + 1)
  }
  useInterval(refresh, REFRESH_MS, autoRefresh && tab !== 'docs' && dialog === null)

  const setTab = (next: Tab) => navigate(`/monitoring/${apiId}${next === 'overview' ? '' : `?tab=${next}`}`, { replace: true })

  if (apiState.loading && !current)
    return (
      <div className="page">
        <Skeleton lines={2} height={28} />
        <StatCardSkeleton count={8} />
      </div>
    )
  if (!current)
    return (
      <div className="page">
        <Link to="/monitoring" className="back-link">
          ← {t('nav.monitoring')}
        </Link>
        <ErrorState message={apiState.error ?? t('common.notFound')} onRetry={() => apiState.reload()} />
      </div>
    )
  const a = current
  const active = a.status === 'active'

  return (
    <div className="page" data-testid="api-detail" data-api-id={a.id}>
      <div className="page-header">
        <div className="min0">
          <Link to="/monitoring" className="back-link">
            ← {t('nav.monitoring')}
          </Link>
          <h1 className="title-with-badge">
            <span data-testid="api-name">{a.name}</span> <StatusBadge status={a.status} />
          </h1>
          <p className="muted">
            {t('detail.model')}{' '}
            <Link to={`/models/${a.model_id}?version=${a.version_number}`}>
              {a.model_name} v{a.version_number}
            </Link>{' '}
            · {t('apis.created')} {fmtDate(lang, a.created_at)} · {t('detail.keyPrefix')}{' '}
            <span className="mono">{a.key_prefix}…</span> · {t('detail.rateLimit', { n: a.rate_limit_per_minute })}
          </p>
          <div className="copy-row endpoint-row">
            <code className="endpoint mono" data-testid="api-endpoint">
              <span className="method">POST</span> {a.endpoint_url}
            </code>
            <CopyButton text={a.endpoint_url} small testId="copy-endpoint" />
          </div>
        </div>
        <div className="actions actions-wrap">
          <button
            type="button"
            className={`btn ${active ? 'btn-warning-outline' : 'btn-primary'}`}
            onClick={() => setDialog('status')}
            data-testid="toggle-status-button"
          >
            {active ? t('detail.deactivate') : t('detail.activate')}
          </button>
          <button type="button" className="btn" onClick={() => setDialog('regenerate')} data-testid="regenerate-key-button">
            {t('detail.regenerate')}
          </button>
          <button type="button" className="btn" onClick={() => setDialog('deploy')} data-testid="deploy-button">
            {t('detail.deploy')}
          </button>
          <button type="button" className="btn" onClick={() => setDialog('settings')} data-testid="settings-button">
            {t('detail.settings')}
          </button>
          <button type="button" className="btn btn-danger-outline" onClick={() => setDialog('delete')} data-testid="delete-button">
            {t('detail.delete')}
          </button>
        </div>
      </div>

      {notice && (
        <div className="callout callout-success" role="status" data-testid="detail-notice">
          {notice}
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setNotice(null)} aria-label={t('common.close')}>
            ×
          </button>
        </div>
      )}
      {!active && (
        <div className="callout callout-warning" role="status">
          {t('detail.inactiveNotice')}
        </div>
      )}
      <Alerts apiId={apiId} tick={refreshTick} />

      <div className="tabs-row">
        <div className="tabs" role="tablist" aria-label={t('detail.sections')}>
          {(
            [
              ['overview', t('detail.tabOverview')],
              ['requests', t('detail.tabRequests')],
              ['drift', t('drift.tab')],
              ['performance', t('perf.tab')],
              ['docs', t('detail.tabDocs')],
            ] as Array<[Tab, string]>
          ).map(([key, label]) => (
            <button
              key={key}
              type="button"
              role="tab"
              aria-selected={tab === key}
              className={tab === key ? 'tab active' : 'tab'}
              onClick={() => setTab(key)}
              data-testid={`tab-${key}`}
            >
              {label}
            </button>
          ))}
        </div>
        {tab !== 'docs' && (
          <div className="actions">
            <label className="switch">
              <input
                type="checkbox"
                checked={autoRefresh}
                onChange={(e) => setAutoRefresh(e.target.checked)}
                data-testid="auto-refresh-toggle"
              />
              <span className="switch-track" aria-hidden="true" />
              <span>{t('monitoring.autoRefresh', { seconds: REFRESH_MS / 1000 })}</span>
            </label>
            <button type="button" className="btn btn-sm" onClick={refresh} data-testid="refresh-button">
              {t('common.refresh')}
            </button>
          </div>
        )}
      </div>

      {tab === 'overview' && <Overview api={a} range={range} setRange={setRange} tick={refreshTick} />}
      {tab === 'overview' && (
        <TrafficPanel
          api={a}
          range={range}
          tick={refreshTick}
          onChanged={(updated) => {
            setCurrent(updated)
            setRefreshTick((n) => n + 1)
          }}
        />
      )}
      {tab === 'overview' && <AlertRulesEditor apiId={a.id} />}
      {tab === 'requests' && <RequestHistory apiId={apiId} tick={refreshTick} />}
      {tab === 'drift' && <DriftTab api={a} tick={refreshTick} onRetrained={retrained} />}
      {tab === 'performance' && <PerformancePanel api={a} tick={refreshTick} onRetrained={retrained} />}
      {tab === 'docs' && <APIDocumentation apiId={apiId} keyPrefix={a.key_prefix} />}

      {dialog === 'status' && (
        <ConfirmDialog
          title={active ? t('detail.deactivateTitle') : t('detail.activateTitle')}
          message={<p>{active ? t('detail.deactivateConfirm', { name: a.name }) : t('detail.activateConfirm', { name: a.name })}</p>}
          confirmLabel={active ? t('detail.deactivate') : t('detail.activate')}
          danger={active}
          onCancel={() => setDialog(null)}
          onConfirm={async () => {
            const updated = await api.setStatus(a.id, active ? 'inactive' : 'active')
            setCurrent(updated)
            setDialog(null)
            setNotice(updated.status === 'active' ? t('detail.activated') : t('detail.deactivated'))
          }}
        />
      )}
      {dialog === 'regenerate' && (
        <ConfirmDialog
          title={t('detail.regenerateTitle')}
          message={
            <div className="callout callout-warning">
              <p>{t('detail.regenerateConfirm', { name: a.name })}</p>
            </div>
          }
          confirmLabel={t('detail.regenerate')}
          danger
          onCancel={() => setDialog(null)}
          onConfirm={async () => {
            const res = await api.regenerateKey(a.id)
            setCurrent(res.api)
            setDialog(null)
            setNewKey(res.api_key)
          }}
        />
      )}
      {newKey && (
        <Modal
          title={t('detail.newKeyTitle')}
          onClose={() => setNewKey(null)}
          testId="new-key-modal"
          footer={
            <button type="button" className="btn btn-primary" onClick={() => setNewKey(null)} data-testid="new-key-close">
              {t('export.done')}
            </button>
          }
        >
          <KeyReveal apiKey={newKey} testId="new-api-key" />
        </Modal>
      )}
      {dialog === 'delete' && (
        <ConfirmDialog
          title={t('detail.deleteTitle')}
          message={<p>{t('detail.deleteConfirm', { name: a.name })}</p>}
          confirmLabel={t('detail.delete')}
          danger
          requireText={a.name}
          onCancel={() => setDialog(null)}
          onConfirm={async () => {
            await api.deleteApi(a.id)
            navigate('/monitoring', { replace: true })
          }}
        />
      )}
      {dialog === 'settings' && (
        <SettingsDialog
          api={a}
          onCancel={() => setDialog(null)}
          onSaved={(updated) => {
            setCurrent(updated)
            setDialog(null)
            setNotice(t('settings.saved'))
            setRefreshTick((n) => n + 1)
          }}
        />
      )}
      {dialog === 'deploy' && (
        <DeployDialog
          api={a}
          initialVersion={deployVersion}
          onCancel={() => {
            setDialog(null)
            setDeployVersion(null)
          }}
          onDeployed={(updated) => {
            setCurrent(updated)
            setDialog(null)
            setDeployVersion(null)
            setNotice(t('detail.deployed', { version: updated.version_number }))
            setRefreshTick((n) => n + 1)
          }}
        />
      )}
    </div>
  )
}

function Alerts({ apiId, tick }: { apiId: string; tick: number }) {
  const { t, lang } = useI18n()
  const alerts = useAsync(() => api.alerts(apiId), [apiId])
  useEffect(() => {
    if (tick > 0) alerts.reload(true)
  }, [tick])
  const items = alerts.data?.items ?? []
  if (items.length === 0) return null
  const metricLabel: Record<string, string> = {
    cpu_percent: t('stat.cpu'),
    memory_mb: t('stat.memory'),
    error_rate: t('stat.errorRate'),
    p95_ms: t('stat.p95'),
  }
  const fmtValue = (metric: string, v: number) =>
    metric === 'cpu_percent'
      ? fmtPercent(lang, v)
      : metric === 'memory_mb'
        ? fmtMb(lang, v)
        : metric === 'error_rate'
          ? fmtRate(lang, v)
          : fmtMs(lang, v)
  return (
    <div className="alerts" data-testid="alerts">
      {items.map((al, i) => (
        <div key={`${al.metric}-${i}`} className={`callout callout-${al.severity === 'critical' ? 'error' : 'warning'}`} role="alert">
          <strong>
            {al.severity === 'critical' ? t('alert.critical') : t('alert.warning')} — {metricLabel[al.metric] ?? al.metric}
          </strong>{' '}
          <span title={al.message}>
            {t('alert.text', { value: fmtValue(al.metric, al.value), threshold: fmtValue(al.metric, al.threshold) })}
          </span>
        </div>
      ))}
    </div>
  )
}

function Overview({ api: a, range, setRange, tick }: { api: ExportedApi; range: Range; setRange: (r: Range) => void; tick: number }) {
  const { t, lang } = useI18n()
  const [live, setLive] = useState(false)
  const data = useAsync(async () => {
    const [stats, series, resources] = await Promise.all([
      api.stats(a.id, range),
      api.timeseries(a.id, range, undefined, 'version'),
      api.resources(a.id, range),
    ])
    return { stats, series, resources }
  }, [a.id, range])
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])
  const paused = useLive(live, () => data.reload(true))

  const th = a.alert_thresholds
  const over = (value: number | null | undefined, limit: number | undefined) =>
    value !== null && value !== undefined && limit !== undefined && limit !== null && value > limit ? 'critical' : 'default'

  const rangeSwitch = <RangePicker range={range} onRange={setRange} live={live} onLive={setLive} paused={paused} />

  if (data.loading)
    return (
      <>
        <div className="row-between">{rangeSwitch}</div>
        <StatCardSkeleton count={10} />
        <Skeleton lines={6} height={24} />
      </>
    )
  if (data.error || !data.data) return <ErrorState message={data.error ?? ''} onRetry={() => data.reload()} />
  const { stats: s, series, resources } = data.data
  const none = s.requests_in_range === 0
  const ms = (v: number | null) => (none ? '—' : fmtMs(lang, v))
  const tick_ = (v: string) => fmtTick(lang, v, range === '7d' || range === '30d' ? 'hour' : 'minute')
  const histogram = s.histogram.map((h, i) => {
    const prev = i > 0 ? s.histogram[i - 1]?.le_ms : 0
    const label = h.le_ms === null || !Number.isFinite(h.le_ms) ? `> ${fmtInt(lang, prev ?? 0)}` : `≤ ${fmtInt(lang, h.le_ms)}`
    return { label, count: h.count }
  })
  const cpu = resources.cpu.map((p) => ({ ts: p.ts, value: p.value }))
  const memory = resources.memory.map((p) => ({ ts: p.ts, value: p.value }))
  const tooltipLabel = (v: unknown) => fmtDateTimeSeconds(lang, String(v))

  return (
    <div data-testid="detail-overview">
      <div className="row-between wrap">
        {rangeSwitch}
        <span className="muted small">{t('detail.inRange', { count: fmtInt(lang, s.requests_in_range) })}</span>
      </div>
      <div className="stat-grid" data-testid="stat-cards">
        <StatCard label={t('stat.total')} value={fmtInt(lang, s.total_requests)} testId="stat-total" />
        <StatCard label={t('stat.last24h')} value={fmtInt(lang, s.requests_24h)} hint={t('stat.last7d', { n: fmtInt(lang, s.requests_7d) })} testId="stat-24h" />
        <StatCard
          label={t('stat.successRate')}
          value={none ? '—' : fmtRate(lang, s.success_rate)}
          hint={t('stat.errors', { e4: fmtInt(lang, s.errors_4xx), e5: fmtInt(lang, s.errors_5xx) })}
          testId="stat-success"
          tone={s.requests_in_range > 0 ? rateTone(s.success_rate) : 'default'}
        />
        <StatCard
          label={t('stat.rejectedUnauthenticated')}
          value={fmtInt(lang, s.rejected_unauthenticated ?? 0)}
          hint={t('stat.rejectedUnauthenticatedHint')}
          testId="stat-rejected-unauthenticated"
        />
        <StatCard label={t('stat.avg')} value={ms(s.avg_ms)} testId="stat-avg" />
        <StatCard label={t('stat.p50')} value={ms(s.p50_ms)} testId="stat-p50" />
        <StatCard label={t('stat.p95')} value={ms(s.p95_ms)} testId="stat-p95" tone={over(s.p95_ms, th?.p95_ms)} />
        <StatCard label={t('stat.p99')} value={ms(s.p99_ms)} testId="stat-p99" />
        <StatCard
          label={t('stat.cpu')}
          value={fmtPercent(lang, s.cpu_percent)}
          hint={t('stat.peak', { value: fmtPercent(lang, s.peak_cpu_percent) })}
          testId="stat-cpu"
          tone={over(s.cpu_percent, th?.cpu_percent)}
        />
        <StatCard
          label={t('stat.memory')}
          value={fmtMb(lang, s.memory_mb)}
          hint={t('stat.peak', { value: fmtMb(lang, s.peak_memory_mb) })}
          testId="stat-memory"
          tone={over(s.memory_mb, th?.memory_mb)}
        />
        <StatCard
          label={t('stat.lastRequest')}
          value={s.last_request_at ? fmtRelative(lang, s.last_request_at) : t('apis.never')}
          compact
          hint={s.last_request_at ? fmtDateTimeSeconds(lang, s.last_request_at) : undefined}
          testId="stat-last"
        />
      </div>

      <div className="grid-2">
        <RequestRateChart series={series} id="rate" />
        <StatusCodesChart series={series} id="volume" />
        <LatencyChart series={series} id="latency" threshold={th?.p95_ms} />
        <MarkerList series={series} />
        <section className="panel" aria-labelledby="chart-histogram">
          <h2 id="chart-histogram" className="h-small">
            {t('chart.histogram')}
          </h2>
          <div className="chart" data-testid="chart-histogram">
            <ResponsiveContainer width="100%" height="100%">
              <BarChart data={histogram} margin={{ top: 8, right: 12, bottom: 0, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="label" tick={{ fontSize: 10 }} interval="preserveStartEnd" />
                <YAxis allowDecimals={false} width={40} tick={{ fontSize: 11 }} />
                <Tooltip formatter={(v) => [fmtInt(lang, Number(v)), t('chart.requests')]} />
                <Bar dataKey="count" name={t('chart.requests')} fill="#2f5bea" radius={[3, 3, 0, 0]} isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        </section>
        <ResourceChart
          id="cpu"
          title={t('chart.cpu')}
          data={cpu}
          tickFormatter={tick_}
          labelFormatter={tooltipLabel}
          axisFormat={(v) => fmtNum(lang, v, 2)}
          valueFormat={(v) => [fmtPercent(lang, v), t('stat.cpu')]}
          threshold={th?.cpu_percent}
          colour="#7c3aed"
        />
        <ResourceChart
          id="memory"
          title={t('chart.memory')}
          data={memory}
          tickFormatter={tick_}
          labelFormatter={tooltipLabel}
          axisFormat={(v) => fmtNum(lang, v, 0)}
          valueFormat={(v) => [fmtMb(lang, v), t('stat.memory')]}
          threshold={th?.memory_mb}
          colour="#0891b2"
        />
        <section className="panel" aria-labelledby="workers-title">
          <h2 id="workers-title" className="h-small">
            {t('detail.workers')}
          </h2>
          {resources.workers.length === 0 ? (
            <p className="muted">{t('detail.noWorkers')}</p>
          ) : (
            <div className="table-wrap">
              <table className="table table-compact">
                <thead>
                  <tr>
                    <th scope="col">{t('detail.worker')}</th>
                    <th scope="col" className="num">{t('stat.cpu')}</th>
                    <th scope="col" className="num">{t('stat.memory')}</th>
                    <th scope="col" className="num">{t('detail.loadedModels')}</th>
                    <th scope="col">{t('detail.lastSeen')}</th>
                  </tr>
                </thead>
                <tbody>
                  {resources.workers.map((w) => (
                    <tr key={w.worker_id}>
                      <td className="mono small">{w.worker_id}</td>
                      <td className="num">{fmtPercent(lang, w.cpu_percent)}</td>
                      <td className="num">{fmtMb(lang, w.rss_mb)}</td>
                      <td className="num" title={Array.isArray(w.loaded_models) ? w.loaded_models.join(', ') : undefined}>
                        {fmtInt(lang, Array.isArray(w.loaded_models) ? w.loaded_models.length : w.loaded_models)}
                      </td>
                      <td>{fmtRelative(lang, w.last_seen)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      </div>

      {s.slowest.length > 0 && (
        <section className="panel" aria-labelledby="slowest-title">
          <h2 id="slowest-title" className="h-small">
            {t('detail.slowest')}
          </h2>
          <RequestTable items={s.slowest} testId="slowest-table" />
        </section>
      )}
    </div>
  )
}

/** One resource series (CPU or memory) as an area chart, with the alert threshold as a line. */
function ResourceChart({
  id,
  title,
  data,
  tickFormatter,
  labelFormatter,
  axisFormat,
  valueFormat,
  threshold,
  colour,
}: {
  id: string
  title: string
  data: unknown[]
  tickFormatter: (v: string) => string
  labelFormatter: (v: unknown) => string
  axisFormat: (v: number) => string
  valueFormat: (v: number) => [string, string]
  threshold: number | null | undefined
  colour: string
}) {
  return (
    <section className="panel" aria-labelledby={`chart-${id}`}>
      <h2 id={`chart-${id}`} className="h-small">
        {title}
      </h2>
      <div className="chart" data-testid={`chart-${id}`}>
        <ResponsiveContainer width="100%" height="100%">
          <AreaChart data={data} margin={{ top: 8, right: 12, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="ts" tickFormatter={tickFormatter} minTickGap={24} tick={{ fontSize: 11 }} />
            <YAxis width={44} tick={{ fontSize: 11 }} tickFormatter={axisFormat} />
            <Tooltip labelFormatter={labelFormatter} formatter={(v) => valueFormat(Number(v))} />
            {threshold ? <ReferenceLine y={threshold} stroke="#dc2626" strokeDasharray="4 4" /> : null}
            <Area type="monotone" dataKey="value" stroke={colour} fill={colour} fillOpacity={0.25} isAnimationActive={false} connectNulls />
          </AreaChart>
        </ResponsiveContainer>
      </div>
    </section>
  )
}

function RequestTable({ items, testId }: { items: RequestRecord[]; testId: string }) {
  const { t, lang } = useI18n()
  const [open, setOpen] = useState<string | null>(null)
  const show = (v: unknown) => (isEmpty(v) ? '—' : typeof v === 'string' ? v : JSON.stringify(v))
  return (
    <div className="table-wrap">
      <table className="table table-compact table-requests table-cards" data-testid={testId}>
        <thead>
          <tr>
            <th scope="col">{t('req.time')}</th>
            <th scope="col">{t('req.status')}</th>
            <th scope="col" className="num">{t('req.total')}</th>
            <th scope="col" className="num">{t('req.inference')}</th>
            <th scope="col">{t('req.version')}</th>
            <th scope="col">{t('req.prediction')}</th>
            <th scope="col">
              <span className="sr-only">{t('req.details')}</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map((r) => {
            const ok = r.status_code < 400
            const expanded = open === r.event_id
            return [
              <tr key={r.event_id} data-testid="request-row" data-status={r.status_code}>
                <td className="nowrap" data-label={t('req.time')}>{fmtDateTimeSeconds(lang, r.ts)}</td>
                <td data-label={t('req.status')}>
                  <span className={`code-badge ${ok ? 'ok' : r.status_code >= 500 ? 'err5' : 'err4'}`}>{r.status_code}</span>
                  {r.error_code && <span className="muted small"> {r.error_code}</span>}
                </td>
                <td className="num" data-label={t('req.total')}>{fmtMs(lang, r.total_ms)}</td>
                <td className="num" data-label={t('req.inference')}>{fmtMs(lang, r.inference_ms)}</td>
                <td data-label={t('req.version')} title={isEmpty(r.model_version) ? undefined : String(r.model_version)}>{versionLabel(r.model_version)}</td>
                <td className="mono small ellipsis" data-label={t('req.prediction')}>{show(r.prediction)}</td>
                <td className="cell-actions">
                  <button
                    type="button"
                    className="btn btn-ghost btn-sm"
                    aria-expanded={expanded}
                    onClick={() => setOpen(expanded ? null : r.event_id)}
                  >
                    {expanded ? t('req.hide') : t('req.show')}
                  </button>
                </td>
              </tr>,
              expanded && (
                <tr key={`${r.event_id}-details`} className="details-row">
                  <td colSpan={7}>
                    <div className="grid-2">
                      <div>
                        <div className="h-small">{t('req.input')}</div>
                        <pre className="mono small">{isEmpty(r.input) ? t('req.notLogged') : prettyJson(r.input)}</pre>
                      </div>
                      <div>
                        <div className="h-small">{t('req.output')}</div>
                        <pre className="mono small">{isEmpty(r.output) ? t('req.notLogged') : prettyJson(r.output)}</pre>
                      </div>
                    </div>
                    <p className="muted small mono">
                      {r.event_id} {r.worker_id ? `· ${r.worker_id}` : ''}
                    </p>
                  </td>
                </tr>
              ),
            ]
          })}
        </tbody>
      </table>
    </div>
  )
}

const PAGE_SIZE = 20

/** Version numbers read "v3"; store keys (long ids) are shortened, the full one in the title. */
function versionLabel(v: unknown): string {
  if (isEmpty(v)) return '—'
  const s = String(v)
  if (/^\d+$/.test(s)) return `v${s}`
  return s.length > 10 ? `${s.slice(0, 8)}…` : s
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || v === ''
}

/** Pretty-prints JSON given as a value or as JSON text (the server logs payloads as text). */
function prettyJson(v: unknown): string {
  if (typeof v === 'string') {
    try {
      return JSON.stringify(JSON.parse(v), null, 2)
    } catch {
      return v
    }
  }
  return JSON.stringify(v, null, 2)
}

function RequestHistory({ apiId, tick }: { apiId: string; tick: number }) {
  const { t, lang } = useI18n()
  const [page, setPage] = useState(1)
  const [status, setStatus] = useState('')
  const data = useAsync(() => api.requests(apiId, page, PAGE_SIZE, status || undefined), [apiId, page, status])
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])
  const total = data.data?.total ?? 0
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
  return (
    <section className="panel" data-testid="request-history" aria-labelledby="history-title">
      <div className="row-between wrap">
        <h2 id="history-title" className="h-small">
          {t('req.title')} <span className="muted" data-testid="request-total">({fmtInt(lang, total)})</span>
        </h2>
        <label className="field field-inline">
          <span>{t('req.filter')}</span>
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value)
              setPage(1)
            }}
            data-testid="request-status-filter"
          >
            <option value="">{t('req.all')}</option>
            <option value="success">{t('req.success')}</option>
            <option value="error">{t('req.error')}</option>
            <option value="4xx">4xx</option>
            <option value="5xx">5xx</option>
          </select>
        </label>
      </div>
      {data.loading && <Skeleton lines={6} height={18} />}
      {data.error && <ErrorState message={data.error} onRetry={() => data.reload()} />}
      {data.data && data.data.items.length === 0 && <p className="muted" data-testid="requests-empty">{t('req.empty')}</p>}
      {data.data && data.data.items.length > 0 && <RequestTable items={data.data.items} testId="requests-table" />}
      {data.data && total > PAGE_SIZE && (
        <nav className="pager" aria-label={t('req.paging')}>
          <button type="button" className="btn btn-sm" disabled={page <= 1} onClick={() => setPage(page - 1)} data-testid="page-prev">
            ← {t('req.prev')}
          </button>
          <span>{t('req.pageOf', { page, pages })}</span>
          <button type="button" className="btn btn-sm" disabled={page >= pages} onClick={() => setPage(page + 1)} data-testid="page-next">
            {t('req.next')} →
          </button>
        </nav>
      )}
    </section>
  )
}

function SettingsDialog({
  api: a,
  onCancel,
  onSaved,
}: {
  api: ExportedApi
  onCancel: () => void
  onSaved: (updated: ExportedApi) => void
}) {
  const { t } = useI18n()
  const th = a.alert_thresholds
  const [name, setName] = useState(a.name)
  const [rate, setRate] = useState(String(a.rate_limit_per_minute))
  const [logPayloads, setLogPayloads] = useState(a.log_payloads)
  const [cpu, setCpu] = useState(String(th.cpu_percent))
  const [memory, setMemory] = useState(String(th.memory_mb))
  const [errorPct, setErrorPct] = useState(String(Math.round(th.error_rate * 1000) / 10))
  const [p95, setP95] = useState(String(th.p95_ms))
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const num = (v: string) => (v.trim() === '' ? Number.NaN : Number(v))
  const valid =
    name.trim() !== '' &&
    Number.isInteger(num(rate)) &&
    num(rate) >= 1 &&
    [cpu, memory, p95].every((v) => num(v) >= 0) &&
    num(errorPct) >= 0 &&
    num(errorPct) <= 100
  const save = async () => {
    if (!valid) return
    setBusy(true)
    setError(null)
    try {
      onSaved(
        await api.updateApi(a.id, {
          name: name.trim(),
          rate_limit_per_minute: num(rate),
          log_payloads: logPayloads,
          alert_thresholds: {
            cpu_percent: num(cpu),
            memory_mb: num(memory),
            error_rate: num(errorPct) / 100,
            p95_ms: num(p95),
          },
        }),
      )
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
      setBusy(false)
    }
  }
  const field = (label: string, value: string, set: (v: string) => void, testId: string, step = 'any') => (
    <label className="field">
      <span>{label}</span>
      <input type="number" min={0} step={step} value={value} onChange={(e) => set(e.target.value)} data-testid={testId} />
    </label>
  )
  return (
    <Modal
      title={t('settings.title')}
      onClose={onCancel}
      testId="settings-dialog"
      footer={
        <>
          <button type="button" className="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
          <button type="button" className="btn btn-primary" disabled={!valid || busy} onClick={() => void save()} data-testid="settings-save">
            {busy ? t('common.working') : t('settings.save')}
          </button>
        </>
      }
    >
      <form
        className="form"
        onSubmit={(e) => {
          e.preventDefault()
          void save()
        }}
      >
        <label className="field">
          <span>{t('settings.name')}</span>
          <input value={name} onChange={(e) => setName(e.target.value)} maxLength={100} data-testid="settings-name" data-autofocus />
        </label>
        {field(t('settings.rateLimit'), rate, setRate, 'settings-rate', '1')}
        <label className="switch">
          <input type="checkbox" checked={logPayloads} onChange={(e) => setLogPayloads(e.target.checked)} data-testid="settings-log-payloads" />
          <span className="switch-track" aria-hidden="true" />
          <span>{t('settings.logPayloads')}</span>
        </label>
        <fieldset className="field">
          <legend>{t('settings.thresholds')}</legend>
          <div className="param-grid">
            {field(t('settings.cpu'), cpu, setCpu, 'settings-cpu')}
            {field(t('settings.memory'), memory, setMemory, 'settings-memory')}
            {field(t('settings.errorRate'), errorPct, setErrorPct, 'settings-error-rate')}
            {field(t('settings.p95'), p95, setP95, 'settings-p95')}
          </div>
        </fieldset>
        <button type="submit" hidden />
      </form>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </Modal>
  )
}

function DeployDialog({
  api: a,
  initialVersion = null,
  onCancel,
  onDeployed,
}: {
  api: ExportedApi
  /** A version to preselect (a fresh retrain) instead of the one serving. */
  initialVersion?: number | null
  onCancel: () => void
  onDeployed: (updated: ExportedApi) => void
}) {
  const { t, lang } = useI18n()
  const model = useAsync(() => api.model(a.model_id), [a.model_id])
  const versions = [...(model.data?.versions ?? [])].sort((x, y) => y.number - x.number)
  const [choice, setChoice] = useState<number | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [force, setForce] = useState(false)
  const [refused, setRefused] = useState<CompatibilityReport | null>(null)
  // The version already serving is preselected: deploying another one is a deliberate choice.
  const selected = choice ?? initialVersion ?? a.version_number
  const changing = selected !== a.version_number
  const compat = useAsync<CompatibilityReport | null>(
    () => (changing ? api.compatibility(a.id, selected) : Promise.resolve(null)),
    [a.id, selected, changing],
  )
  const report = refused?.target_version === selected ? refused : compat.data
  const incompatible = changing && report !== null && !report.compatible
  const serving = versions.find((v) => v.number === a.version_number)
  const target = versions.find((v) => v.number === selected)
  const choose = (n: number) => {
    setChoice(n)
    setForce(false)
    setError(null)
  }
  const deploy = async () => {
    if (!changing) return
    setBusy(true)
    setError(null)
    try {
      onDeployed(await api.deploy(a.id, selected, incompatible && force))
    } catch (err) {
      if (err instanceof ApiError && err.code === 'INCOMPATIBLE_VERSION') {
        setRefused(err.details as unknown as CompatibilityReport)
        setForce(false)
        setError(t('deploy.refused'))
      } else {
        setError(err instanceof Error ? err.message : String(err))
      }
      setBusy(false)
    }
  }
  return (
    <Modal
      title={t('detail.deployTitle')}
      onClose={onCancel}
      testId="deploy-dialog"
      wide
      footer={
        <>
          <button type="button" className="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
          <button
            type="button"
            className={`btn ${incompatible ? 'btn-danger' : 'btn-primary'}`}
            disabled={busy || !changing || (compat.loading && !refused) || (incompatible && !force)}
            onClick={() => void deploy()}
            data-testid="deploy-confirm"
          >
            {busy ? t('common.working') : incompatible ? t('deploy.forceConfirm') : t('detail.deployConfirm')}
          </button>
        </>
      }
    >
      <p>{t('detail.deployText', { name: a.name, version: a.version_number })}</p>
      {model.loading && <Skeleton lines={2} />}
      {model.error && <ErrorState message={model.error} onRetry={() => model.reload()} />}
      {model.data && versions.length <= 1 && <p className="muted">{t('detail.deployOnlyOne')}</p>}
      {model.data && versions.length > 1 && (
        <label className="field">
          <span>{t('models.version')}</span>
          <select value={selected} onChange={(e) => choose(Number(e.target.value))} data-testid="deploy-version-select" data-autofocus>
            {versions.map((v) => (
              <option key={v.number} value={v.number}>
                v{v.number} — {v.algorithm} — {fmtDate(lang, v.created_at)}
                {v.number === a.version_number ? ` (${t('deploy.serving')})` : ''}
              </option>
            ))}
          </select>
        </label>
      )}
      {serving && <VersionsSideBySide serving={serving} target={changing ? target : undefined} />}
      {!changing && versions.length > 1 && <p className="muted">{t('deploy.sameVersion')}</p>}
      {changing && compat.loading && !report && (
        <p className="muted" role="status">
          {t('deploy.checking')}
        </p>
      )}
      {changing && compat.error && !report && <p className="form-error">{compat.error}</p>}
      {changing && report && <CompatibilityNotice report={report} />}
      {incompatible && (
        <label style={{ display: 'flex', gap: '0.5rem', alignItems: 'flex-start', marginTop: '0.75rem' }}>
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} data-testid="deploy-force" />{' '}
          {t('deploy.forceLabel')}
        </label>
      )}
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </Modal>
  )
}

function VersionsSideBySide({ serving, target }: { serving: ModelVersion; target?: ModelVersion }) {
  const { t, lang } = useI18n()
  const label: Record<string, string> = {
    accuracy: t('metric.accuracy'),
    f1: t('metric.f1'),
    roc_auc: t('metric.roc_auc'),
    r2: t('metric.r2'),
    mae: t('metric.mae'),
    rmse: t('metric.rmse'),
  }
  const shown = target ? [serving, target] : [serving]
  const metrics = [...new Set(shown.flatMap((v) => Object.keys(v.metrics ?? {})))]
  const value = (v: ModelVersion, key: string) => {
    const x = v.metrics?.[key]
    return typeof x === 'number' ? x.toFixed(3) : '—'
  }
  return (
    // flex-shrink 0: an overflow box in the modal's flex column would otherwise shrink to nothing.
    <div className="table-wrap" style={{ flexShrink: 0 }}>
      <table className="table table-compact" data-testid="deploy-compare" aria-label={t('deploy.compare')}>
        <thead>
          <tr>
            <th scope="col">{t('deploy.metric')}</th>
            {shown.map((v) => (
              <th scope="col" key={v.number} className="num">
                v{v.number}
                {v === serving ? ` (${t('deploy.serving')})` : ''}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {metrics.map((key) => (
            <tr key={key} data-testid={`deploy-metric-${key}`}>
              <th scope="row">{label[key] ?? key}</th>
              {shown.map((v) => (
                <td key={v.number} className="num">
                  {value(v, key)}
                </td>
              ))}
            </tr>
          ))}
          <tr>
            <th scope="row">{t('deploy.algorithm')}</th>
            {shown.map((v) => (
              <td key={v.number} className="num">
                {v.algorithm}
              </td>
            ))}
          </tr>
          <tr>
            <th scope="row">{t('deploy.trainedOn')}</th>
            {shown.map((v) => (
              <td key={v.number} className="num">
                {v.source}
              </td>
            ))}
          </tr>
          <tr>
            <th scope="row">{t('deploy.created')}</th>
            {shown.map((v) => (
              <td key={v.number} className="num">
                {fmtDate(lang, v.created_at)}
              </td>
            ))}
          </tr>
        </tbody>
      </table>
    </div>
  )
}

const DIFF_LIST = { margin: '0.25rem 0 0', paddingLeft: '1.2rem', width: '100%' }

function CompatibilityNotice({ report: r }: { report: CompatibilityReport }) {
  const { t } = useI18n()
  const names = (xs: string[]) => xs.join(', ')
  const values = (xs: string[] | null) => (xs === null ? t('deploy.anyValue') : xs.length ? xs.join(', ') : t('deploy.none'))
  const classes = (xs: string[] | null) => (xs && xs.length ? xs.join(', ') : t('deploy.noClasses'))
  const breaking: string[] = []
  const notes: string[] = []
  if (r.task) breaking.push(t('deploy.task', { served: r.task.served, target: r.task.target }))
  if (r.missing_features.length)
    breaking.push(t('deploy.missing', { version: r.target_version, names: names(r.missing_features) }))
  if (r.added_required_features.length) breaking.push(t('deploy.addedRequired', { names: names(r.added_required_features) }))
  if (r.now_required_features.length) breaking.push(t('deploy.nowRequired', { names: names(r.now_required_features) }))
  for (const c of r.changed_types) {
    ;(c.breaking ? breaking : notes).push(t('deploy.type', { name: c.name, served: c.served, target: c.target }))
  }
  for (const c of r.changed_categories) {
    ;(c.breaking ? breaking : notes).push(
      t('deploy.categories', {
        name: c.name,
        removed: c.served === null ? t('deploy.none') : c.removed.length ? c.removed.join(', ') : t('deploy.none'),
        added: c.target === null ? values(null) : c.added.length ? c.added.join(', ') : t('deploy.none'),
      }),
    )
  }
  if (r.classes) breaking.push(t('deploy.classes', { served: classes(r.classes.served), target: classes(r.classes.target) }))
  if (r.image_dropped) breaking.push(t('image.dropped'))
  if (r.added_optional_features.length) notes.push(t('deploy.addedOptional', { names: names(r.added_optional_features) }))
  return (
    <div
      className={`callout ${r.compatible ? 'callout-success' : 'callout-warning'}`}
      role={r.compatible ? 'status' : 'alert'}
      data-testid="deploy-compat"
      data-compatible={String(r.compatible)}
    >
      <p>
        <strong>{r.compatible ? t('deploy.compatible') : t('deploy.incompatible')}</strong>
      </p>
      {breaking.length > 0 && (
        <ul style={DIFF_LIST} data-testid="deploy-diff">
          {breaking.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
      {notes.length > 0 && (
        <>
          <p style={{ width: '100%' }}>{t('deploy.compatibleNotes')}</p>
          <ul style={DIFF_LIST} data-testid="deploy-notes">
            {notes.map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
        </>
      )}
    </div>
  )
}
