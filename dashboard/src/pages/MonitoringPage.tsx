// The monitoring dashboard: global stats and the list of exported APIs with their usage.
import { useMemo, useState } from 'react'
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import { api } from '../api'
import { EmptyState, ErrorState, StatCard, StatCardSkeleton, StatusBadge } from '../components/Feedback'
import { fmtDate, fmtInt, fmtMs, fmtRate, fmtRelative, rateTone, toPercent } from '../format'
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
  { key: 'last_request_at', label: 'apis.lastRequest' },
]

const REFRESH_MS = 10_000

function sortValue(a: ExportedApi, key: SortKey): string | number | null {
  switch (key) {
    case 'name':
      return a.name.toLowerCase()
    case 'model':
      return `${a.model_name.toLowerCase()} ${String(a.model_version).padStart(6, '0')}`
    case 'status':
      return a.status
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
    const [overview, apis] = await Promise.all([api.overview(), api.monitoredApis()])
    setUpdatedAt(new Date())
    return { overview, apis: apis.items }
  }, [])
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

      {data.loading && <StatCardSkeleton count={6} />}
      {ov && (
        <div className="stat-grid" data-testid="overview">
          <StatCard label={t('overview.apis')} value={fmtInt(lang, ov.total_apis)} hint={t('overview.activeApis', { count: ov.active_apis })} testId="overview-apis" />
          <StatCard label={t('overview.totalRequests')} value={fmtInt(lang, ov.total_requests)} testId="overview-total" />
          <StatCard label={t('overview.requests24h')} value={fmtInt(lang, ov.requests_24h)} testId="overview-24h" />
          <StatCard label={t('overview.successRate')} value={ov.total_requests ? fmtRate(lang, ov.success_rate) : '—'} testId="overview-success" tone={ov.total_requests ? rateTone(ov.success_rate) : 'default'} />
          <StatCard label={t('overview.avgLatency')} value={ov.total_requests ? fmtMs(lang, ov.avg_ms) : '—'} testId="overview-avg" />
          <StatCard label={t('overview.p95')} value={ov.total_requests ? fmtMs(lang, ov.p95_ms) : '—'} testId="overview-p95" />
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
                      {a.model_name} <span className="muted">v{a.model_version}</span>
                    </td>
                    <td data-label={t('apis.status')}>
                      <StatusBadge status={a.status} />
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
                    <td data-label={t('apis.lastRequest')} title={fmtDate(lang, a.stats?.last_request_at)}>
                      {a.stats?.last_request_at ? fmtRelative(lang, a.stats.last_request_at) : t('apis.never')}
                    </td>
                    <td className="cell-actions">
                      <Link
                        to={`/monitoring/${a.id}?tab=docs`}
                        className="btn btn-sm"
                        onClick={(e) => e.stopPropagation()}
                        data-testid="api-row-docs"
                      >
                        {t('apis.viewDocs')}
                      </Link>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
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

