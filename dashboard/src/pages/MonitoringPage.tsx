// The monitoring dashboard: global stats and the list of exported APIs with their usage.
import { useMemo, useState } from 'react'
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import { badgeCounts, listStatus, totalCounts } from '../alertlogic'
import { api } from '../api'
import { AlertCountBadge, HealthErrorBadge } from '../components/AlertBadges'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { EmptyState, ErrorState, StatCard, StatCardSkeleton, StatusBadge } from '../components/Feedback'
import { OverviewTrends } from '../components/TimeSeriesChart'
import { fmtCpuShare } from '../resourceFormat'
import { fmtDate, fmtInt, fmtMb, fmtMs, fmtRate, fmtRelative, rateTone, toPercent } from '../format'
import { useAsync, useInterval, useStoredFlag } from '../hooks'
import { useI18n } from '../i18n'
import type { TranslationKey } from '../i18n'
import { Link, useRouter } from '../router'
import type { ExportedApi } from '../types'

type SortKey =
  | 'name'
  | 'model'
  | 'status'
  | 'created_at'
  | 'total_requests'
  | 'requests_24h'
  | 'success_rate'
  | 'avg_ms'
  | 'cpu_percent'
  | 'memory_mb'
  | 'last_request_at'

const COLUMNS: Array<{ key: SortKey; label: TranslationKey; numeric?: boolean }> = [
  { key: 'name', label: 'apis.name' },
  { key: 'model', label: 'apis.model' },
  { key: 'status', label: 'apis.status' },
  { key: 'created_at', label: 'apis.created' },
  { key: 'total_requests', label: 'apis.total', numeric: true },
  { key: 'requests_24h', label: 'apis.last24h', numeric: true },
  { key: 'success_rate', label: 'apis.successRate', numeric: true },
  { key: 'avg_ms', label: 'apis.avgLatency', numeric: true },
  { key: 'cpu_percent', label: 'resources.cpu', numeric: true },
  { key: 'memory_mb', label: 'resources.memory', numeric: true },
  { key: 'last_request_at', label: 'apis.lastRequest' },
]

const REFRESH_MS = 10_000

function sortValue(a: ExportedApi, key: SortKey): string | number | null {
  switch (key) {
    case 'name':
      return a.name.toLowerCase()
    case 'model':
      return `${a.model_name.toLowerCase()} ${String(a.version_number).padStart(6, '0')}`
    case 'status':
      return listStatus(a)
    case 'created_at':
      return new Date(a.created_at).getTime()
    case 'last_request_at':
      return a.stats?.last_request_at ? new Date(a.stats.last_request_at).getTime() : null
    case 'success_rate':
      return toPercent(a.stats?.success_rate)
    default:
      return a.stats?.[key] ?? null
  }
}

export function MonitoringPage() {
  const { t, lang } = useI18n()
  const { navigate } = useRouter()
  const [query, setQuery] = useState('')
  const [status, setStatus] = useState<'' | 'active' | 'inactive'>('')
  const [sort, setSort] = useState<{ key: SortKey; dir: 'asc' | 'desc' }>({ key: 'created_at', dir: 'desc' })
  const [autoRefresh, setAutoRefresh] = useStoredFlag('modelgate.autoRefresh', true)
  const [updatedAt, setUpdatedAt] = useState<Date | null>(null)

  const data = useAsync(async () => {
    const [overview, apis, active] = await Promise.all([
      api.overview(),
      api.monitoredApis(),
      // The alert engine is optional to this page: without it, no badges.
      api.activeAlerts().then((r) => r.items, () => null),
    ])
    setUpdatedAt(new Date())
    return { overview, apis: apis.items, alerts: active === null ? null : badgeCounts(active) }
  }, [])
  const [rowAction, setRowAction] = useState<{ kind: 'status' | 'delete'; api: ExportedApi } | null>(null)
  const [rowNotice, setRowNotice] = useState<string | null>(null)
  useInterval(() => data.reload(true), REFRESH_MS, autoRefresh && !data.error)

  const rows = useMemo(() => {
    const q = query.trim().toLowerCase()
    const filtered = (data.data?.apis ?? []).filter(
      (a) =>
        (status === '' || a.status === status) &&
        (q === '' || a.name.toLowerCase().includes(q) || a.model_name.toLowerCase().includes(q) || String(a.id).includes(q)),
    )
    const dir = sort.dir === 'asc' ? 1 : -1
    return [...filtered].sort((x, y) => {
      const a = sortValue(x, sort.key)
      const b = sortValue(y, sort.key)
      if (a === b) return 0
      if (a === null) return 1 // missing values last whatever the direction
      if (b === null) return -1
      return a < b ? -dir : dir
    })
  }, [data.data, query, status, sort])

  const toggleSort = (key: SortKey) =>
    setSort((s) => (s.key === key ? { key, dir: s.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: COLUMNS.find((c) => c.key === key)?.numeric || key === 'created_at' || key === 'last_request_at' ? 'desc' : 'asc' }))

  const ov = data.data?.overview
  const chartData = (data.data?.apis ?? [])
    .filter((a) => (a.stats?.requests_24h ?? 0) > 0)
    .sort((a, b) => (b.stats?.requests_24h ?? 0) - (a.stats?.requests_24h ?? 0))
    .slice(0, 10)
    .map((a) => ({ name: a.name, requests: a.stats?.requests_24h ?? 0 }))

  return (
    <div className="page" data-testid="monitoring-page">
      <div className="page-header">
        <div>
          <h1>{t('monitoring.title')}</h1>
          <p className="muted">{t('monitoring.subtitle')}</p>
        </div>
        <div className="actions">
          <label className="switch" title={t('monitoring.autoRefreshHint', { seconds: REFRESH_MS / 1000 })}>
            <input
              type="checkbox"
              checked={autoRefresh}
              onChange={(e) => setAutoRefresh(e.target.checked)}
              data-testid="auto-refresh-toggle"
            />
            <span className="switch-track" aria-hidden="true" />
            <span>{t('monitoring.autoRefresh', { seconds: REFRESH_MS / 1000 })}</span>
          </label>
          <button
            type="button"
            className="btn"
            onClick={() => data.reload(data.data !== null)}
            data-testid="refresh-button"
          >
            {t('common.refresh')}
          </button>
        </div>
      </div>
      {updatedAt && (
        <p className="muted small updated-at" aria-live="polite">
          {t('common.updatedAt', { time: updatedAt.toLocaleTimeString(lang === 'fr' ? 'fr-FR' : 'en-GB') })}
        </p>
      )}

      {rowNotice && (
        <div className="callout callout-success" role="status" data-testid="monitoring-notice">
          {rowNotice}
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setRowNotice(null)} aria-label={t('common.close')}>
            ×
          </button>
        </div>
      )}
      {data.loading && <StatCardSkeleton count={6} />}
      {ov && (
        <div className="stat-grid" data-testid="overview">
          <StatCard label={t('overview.apis')} value={fmtInt(lang, ov.total_apis)} hint={t('overview.activeApis', { count: ov.active_apis })} testId="overview-apis" />
          <StatCard label={t('overview.totalRequests')} value={fmtInt(lang, ov.total_requests)} testId="overview-total" />
          <StatCard label={t('overview.requests24h')} value={fmtInt(lang, ov.requests_24h)} testId="overview-24h" />
          <StatCard label={t('overview.successRate')} value={ov.total_requests ? fmtRate(lang, ov.success_rate) : '—'} testId="overview-success" tone={ov.total_requests ? rateTone(ov.success_rate) : 'default'} />
          <StatCard label={t('overview.avgLatency')} value={ov.total_requests ? fmtMs(lang, ov.avg_ms) : '—'} testId="overview-avg" />
          <StatCard label={t('overview.p95')} value={ov.total_requests ? fmtMs(lang, ov.p95_ms) : '—'} testId="overview-p95" />
          {data.data?.alerts && (
            <StatCard
              label={t('alerts.overviewFiring')}
              value={fmtInt(lang, totalCounts(data.data.alerts).firing)}
              hint={t('alerts.overviewHint', { pending: totalCounts(data.data.alerts).pending })}
              tone={totalCounts(data.data.alerts).firing > 0 ? 'critical' : totalCounts(data.data.alerts).pending > 0 ? 'warning' : 'default'}
              testId="overview-alerts"
            />
          )}
        </div>
      )}

      {chartData.length > 0 && (
        <section className="panel" aria-labelledby="top-apis-title">
          <h2 id="top-apis-title" className="h-small">
            {t('monitoring.topApis')}
          </h2>
          <div className="chart chart-small">
            <ResponsiveContainer width="100%" height="100%">
              <BarChart data={chartData} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="name" tick={{ fontSize: 11 }} interval={0} />
                <YAxis allowDecimals={false} width={40} tick={{ fontSize: 11 }} />
                <Tooltip formatter={(v) => [fmtInt(lang, Number(v)), t('overview.requests24h')]} />
                <Bar dataKey="requests" fill="var(--accent)" radius={[3, 3, 0, 0]} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        </section>
      )}

      {ov && ov.total_apis > 0 && <OverviewTrends />}

      <section className="panel" aria-labelledby="apis-title">
        <div className="row-between wrap">
          <h2 id="apis-title" className="h-small">
            {t('apis.title')}
          </h2>
          <div className="filters">
            <label className="field field-inline">
              <span className="sr-only">{t('apis.search')}</span>
              <input
                type="search"
                placeholder={t('apis.searchPlaceholder')}
                value={query}
                onChange={(e) => setQuery(e.target.value)}
                data-testid="apis-search"
              />
            </label>
            <label className="field field-inline">
              <span>{t('apis.status')}</span>
              <select value={status} onChange={(e) => setStatus(e.target.value as '' | 'active' | 'inactive')} data-testid="apis-status-filter">
                <option value="">{t('apis.allStatuses')}</option>
                <option value="active">{t('status.active')}</option>
                <option value="inactive">{t('status.inactive')}</option>
              </select>
            </label>
            <label className="field field-inline sort-mobile">
              <span>{t('apis.sortBy')}</span>
              <select
                value={`${sort.key}:${sort.dir}`}
                onChange={(e) => {
                  const [key, dir] = e.target.value.split(':') as [SortKey, 'asc' | 'desc']
                  setSort({ key, dir })
                }}
              >
                {COLUMNS.flatMap((c) => [
                  <option key={`${c.key}:asc`} value={`${c.key}:asc`}>
                    {t(c.label)} ↑
                  </option>,
                  <option key={`${c.key}:desc`} value={`${c.key}:desc`}>
                    {t(c.label)} ↓
                  </option>,
                ])}
              </select>
            </label>
          </div>
        </div>

        {data.loading && <TableSkeleton />}
        {data.error && <ErrorState message={data.error} onRetry={() => data.reload()} />}
        {data.data && data.data.apis.length === 0 && (
          <EmptyState title={t('apis.empty')}>
            <p>{t('apis.emptyHint')}</p>
            <Link to="/models" className="btn btn-primary">
              {t('nav.models')}
            </Link>
          </EmptyState>
        )}
        {data.data && data.data.apis.length > 0 && rows.length === 0 && (
          <EmptyState title={t('apis.noMatch')}>
            <button type="button" className="btn" onClick={() => { setQuery(''); setStatus('') }}>
              {t('apis.clearFilters')}
            </button>
          </EmptyState>
        )}
        {rows.length > 0 && (
          <div className="table-wrap">
            <table className="table table-cards" data-testid="apis-table">
              <thead>
                <tr>
                  {COLUMNS.map((c) => (
                    <th
                      key={c.key}
                      scope="col"
                      className={c.numeric ? 'num' : ''}
                      aria-sort={sort.key === c.key ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}
                    >
                      <button type="button" className="th-sort" onClick={() => toggleSort(c.key)} data-testid={`sort-${c.key}`}>
                        {t(c.label)}
                        <span className="sort-icon" aria-hidden="true">
                          {sort.key === c.key ? (sort.dir === 'asc' ? '▲' : '▼') : '↕'}
                        </span>
                      </button>
                    </th>
                  ))}
                  <th scope="col">
                    <span className="sr-only">{t('common.actions')}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((a) => (
                  <tr
                    key={a.id}
                    className="clickable"
                    data-testid="api-row"
                    data-api-id={a.id}
                    data-api-name={a.name}
                    onClick={() => navigate(`/monitoring/${a.id}`)}
                  >
                    <td data-label={t('apis.name')} className="cell-title">
                      <Link to={`/monitoring/${a.id}`} className="strong" onClick={(e) => e.stopPropagation()}>
                        {a.name}
                      </Link>
                    </td>
                    <td data-label={t('apis.model')}>
                      {a.model_name} <span className="muted">v{a.version_number}</span>
                    </td>
                    <td data-label={t('apis.status')}>
                      {listStatus(a) === 'error' ? <HealthErrorBadge /> : <StatusBadge status={a.status} />}{' '}
                      <AlertCountBadge count={data.data?.alerts?.get(String(a.id))} />
                    </td>
                    <td data-label={t('apis.created')}>{fmtDate(lang, a.created_at)}</td>
                    <td data-label={t('apis.total')} className="num" data-testid="api-row-total">
                      {fmtInt(lang, a.stats?.total_requests ?? 0)}
                    </td>
                    <td data-label={t('apis.last24h')} className="num">
                      {fmtInt(lang, a.stats?.requests_24h ?? 0)}
                    </td>
                    <td data-label={t('apis.successRate')} className="num">
                      {a.stats?.total_requests ? fmtRate(lang, a.stats.success_rate) : '—'}
                    </td>
                    <td data-label={t('apis.avgLatency')} className="num">
                      {a.stats?.total_requests ? fmtMs(lang, a.stats.avg_ms) : '—'}
                    </td>
                    <td data-label={t('resources.cpu')} className="num" title={t('resources.cpuHint')} data-testid="api-row-cpu">
                      {fmtCpuShare(lang, a.stats?.cpu_percent)}
                    </td>
                    <td data-label={t('resources.memory')} className="num" title={t('resources.memoryHint')} data-testid="api-row-memory">
                      {fmtMb(lang, a.stats?.memory_mb)}
                    </td>
                    <td data-label={t('apis.lastRequest')} title={fmtDate(lang, a.stats?.last_request_at)}>
                      {a.stats?.last_request_at ? fmtRelative(lang, a.stats.last_request_at) : t('apis.never')}
                    </td>
                    <td className="cell-actions" style={{ whiteSpace: 'normal', flexWrap: 'wrap', gap: '0.35rem' }}>
                      <Link
                        to={`/monitoring/${a.id}?tab=docs`}
                        className="btn btn-sm"
                        onClick={(e) => e.stopPropagation()}
                        data-testid="api-row-docs"
                      >
                        {t('apis.viewDocs')}
                      </Link>{' '}
                      <button
                        type="button"
                        className={`btn btn-sm ${a.status === 'active' ? 'btn-warning-outline' : ''}`}
                        onClick={(e) => {
                          e.stopPropagation()
                          setRowAction({ kind: 'status', api: a })
                        }}
                        data-testid="api-row-toggle-status"
                      >
                        {a.status === 'active' ? t('alerts.rowDeactivate') : t('alerts.rowActivate')}
                      </button>{' '}
                      <button
                        type="button"
                        className="btn btn-sm btn-danger-outline"
                        onClick={(e) => {
                          e.stopPropagation()
                          setRowAction({ kind: 'delete', api: a })
                        }}
                        data-testid="api-row-delete"
                      >
                        {t('alerts.rowDelete')}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {rowAction?.kind === 'status' && (
        <ConfirmDialog
          title={rowAction.api.status === 'active' ? t('detail.deactivateTitle') : t('detail.activateTitle')}
          message={
            <p>
              {rowAction.api.status === 'active'
                ? t('detail.deactivateConfirm', { name: rowAction.api.name })
                : t('detail.activateConfirm', { name: rowAction.api.name })}
            </p>
          }
          confirmLabel={rowAction.api.status === 'active' ? t('detail.deactivate') : t('detail.activate')}
          danger={rowAction.api.status === 'active'}
          onCancel={() => setRowAction(null)}
          onConfirm={async () => {
            const updated = await api.setStatus(rowAction.api.id, rowAction.api.status === 'active' ? 'inactive' : 'active')
            setRowAction(null)
            setRowNotice(updated.status === 'active' ? t('detail.activated') : t('detail.deactivated'))
            data.reload(true)
          }}
        />
      )}
      {rowAction?.kind === 'delete' && (
        <ConfirmDialog
          title={t('detail.deleteTitle')}
          message={<p>{t('detail.deleteConfirm', { name: rowAction.api.name })}</p>}
          confirmLabel={t('detail.delete')}
          danger
          requireText={rowAction.api.name}
          onCancel={() => setRowAction(null)}
          onConfirm={async () => {
            await api.deleteApi(rowAction.api.id)
            setRowNotice(t('alerts.deleted', { name: rowAction.api.name }))
            setRowAction(null)
            data.reload(true)
          }}
        />
      )}
    </div>
  )
}

function TableSkeleton() {
  return (
    <div className="table-skeleton" aria-busy="true" data-testid="skeleton">
      {Array.from({ length: 5 }, (_, i) => (
        <div key={i} className="skeleton-row">
          <div className="skeleton" style={{ width: '18%' }} />
          <div className="skeleton" style={{ width: '16%' }} />
          <div className="skeleton" style={{ width: '10%' }} />
          <div className="skeleton" style={{ width: '14%' }} />
          <div className="skeleton" style={{ width: '10%' }} />
          <div className="skeleton" style={{ width: '12%' }} />
        </div>
      ))}
    </div>
  )
}

