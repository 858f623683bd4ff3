// The Performance tab of an API (issue 15): the feedback (true values) joined with the answers by
// request id gives live accuracy / F1 (classification) or MAE / RMSE (regression) per version, next
// to the version's test metrics and over time; matched and unmatched counts; how to send feedback.
import { useEffect, useState } from 'react'
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import { api } from '../api'
import { feedbackCurl, fmtScore, liveMetrics, metricGap, performanceRows, seriesMetric } from '../drift'
import { fmtDateTimeSeconds, fmtInt, fmtNum } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { DriftRange, ExportedApi, PerformanceReport } from '../types'
import { CodeBlock } from './CodeBlock'
import { DriftRangePicker, TAB_STACK } from './DriftTab'
import { EmptyState, ErrorState, Skeleton, StatCard } from './Feedback'
import { RetrainButton } from './RetrainButton'
import { fmtSeriesTick } from './TimeSeriesChart'

const VERSION_COLORS = ['#2f5bea', '#d97706', '#16a34a', '#db2777', '#0891b2']

interface PerformancePanelProps {
  api: ExportedApi
  tick: number
  onRetrained: (version: number) => void
}

export function PerformancePanel({ api: a, tick, onRetrained }: PerformancePanelProps) {
  const { t, lang } = useI18n()
  const [range, setRange] = useState<DriftRange>('24h')
  const data = useAsync(() => api.performance(a.id, range), [a.id, range])
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])

  const curl = feedbackCurl(a.endpoint_url, a.task, a.key_prefix)
  const howTo = (
    <section className="panel" aria-labelledby="perf-howto-title" data-testid="perf-howto">
      <h2 id="perf-howto-title" className="h-small">
        {t('perf.howTo')}
      </h2>
      <p className="muted small">{t('perf.howToText')}</p>
      <CodeBlock code={curl} label={t('perf.curl')} testId="perf-curl" />
    </section>
  )
  const header = (
    <div className="row-between wrap">
      <DriftRangePicker range={range} onRange={setRange} testIdPrefix="perf-range" />
      <RetrainButton api={a} onRetrained={onRetrained} testId="perf-retrain" />
    </div>
  )

  if (data.loading && !data.data)
    return (
      <section style={TAB_STACK} data-testid="perf-tab" data-state="loading">
        {header}
        <Skeleton lines={5} height={22} />
      </section>
    )
  if (data.error || !data.data)
    return (
      <section style={TAB_STACK} data-testid="perf-tab" data-state="error">
        {header}
        <ErrorState message={data.error ?? ''} onRetry={() => data.reload()} />
        {howTo}
      </section>
    )

  const report = data.data
  const metrics = liveMetrics(report.task)
  const label = (m: string) => t(`metric.${m as 'accuracy' | 'f1' | 'mae' | 'rmse'}`)
  const versions = [...report.versions].sort((x, y) => y.version - x.version)
  const empty = report.matched === 0

  return (
    <section style={TAB_STACK} data-testid="perf-tab" data-state={empty ? 'empty' : 'ready'}>
      {header}
      <section className="panel" aria-labelledby="perf-title">
        <h2 id="perf-title" className="h-small">
          {t('perf.title')}
        </h2>
        <p className="muted small">{t('perf.intro')}</p>
        <div className="stat-grid">
          <StatCard label={t('perf.matched')} value={fmtInt(lang, report.matched)} testId="perf-matched" />
          <StatCard
            label={t('perf.unmatched')}
            value={fmtInt(lang, report.unmatched)}
            hint={t('perf.unmatchedHint')}
            tone={report.unmatched > 0 ? 'warning' : 'default'}
            testId="perf-unmatched"
          />
        </div>
        {empty ? (
          <div data-testid="perf-empty">
            <EmptyState title={t('perf.noFeedbackTitle')}>
              <p>{t('perf.noFeedbackText')}</p>
            </EmptyState>
          </div>
        ) : (
          <div className="table-wrap">
            <table className="table table-compact" data-testid="perf-table">
              <thead>
                <tr>
                  <th scope="col">{t('perf.colVersion')}</th>
                  <th scope="col" className="num">
                    {t('perf.colN')}
                  </th>
                  {metrics.map((m) => (
                    <th key={`live-${m}`} scope="col" className="num">
                      {t('perf.live', { metric: label(m) })}
                    </th>
                  ))}
                  {metrics.map((m) => (
                    <th key={`test-${m}`} scope="col" className="num">
                      {t('perf.test', { metric: label(m) })}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.version} data-testid={`perf-row-${v.version}`}>
                    <td>
                      v{v.version}
                      {v.version === a.version_number ? <span className="muted small"> ({t('deploy.serving')})</span> : null}
                    </td>
                    <td className="num">{fmtInt(lang, v.n)}</td>
                    {metrics.map((m) => {
                      const gap = metricGap(v, m)
                      const worse = gap !== null && (m === 'accuracy' || m === 'f1' ? gap < -0.05 : gap > 0)
                      return (
                        <td
                          key={`live-${m}`}
                          className="num mono"
                          data-testid={`perf-${m}-${v.version}`}
                          data-value={v[m] ?? ''}
                          style={worse ? { color: 'var(--bad)', fontWeight: 650 } : undefined}
                        >
                          {fmtScore(lang, v[m])}
                        </td>
                      )
                    })}
                    {metrics.map((m) => {
                      const test = v.test_metrics?.[m]
                      return (
                        <td key={`test-${m}`} className="num mono muted">
                          {fmtScore(lang, typeof test === 'number' ? test : null)}
                        </td>
                      )
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {!empty && <PerformanceSeries report={report} />}
      {howTo}
    </section>
  )
}

function PerformanceSeries({ report: r }: { report: PerformanceReport }) {
  const { t, lang } = useI18n()
  const label = (m: 'accuracy' | 'mae') => t(`metric.${m}`)
  const metric = seriesMetric(r.task)
  const { rows, versions: lines } = performanceRows(r)
  const [p, q] = rows
  const step = p && q ? (new Date(String(q.t)).getTime() - new Date(String(p.t)).getTime()) / 1000 : 3600
  return (
    <section className="panel" aria-labelledby="perf-series-title">
      <h2 id="perf-series-title" className="h-small">
        {t('perf.overTime', { metric: label(metric) })}
      </h2>
      <div className="chart" data-testid="perf-series" data-points={rows.length} data-versions={lines.length}>
        <ResponsiveContainer width="100%" height="100%">
          <LineChart data={rows} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="t" tickFormatter={(v: string) => fmtSeriesTick(lang, v, step)} minTickGap={24} tick={{ fontSize: 11 }} />
            <YAxis width={44} tick={{ fontSize: 11 }} tickFormatter={(v: number) => fmtNum(lang, v, 2)} domain={metric === 'accuracy' ? [0, 1] : ['auto', 'auto']} />
            <Tooltip labelFormatter={(v) => fmtDateTimeSeconds(lang, String(v))} formatter={(v) => fmtScore(lang, v === null ? null : Number(v))} />
            <Legend wrapperStyle={{ fontSize: 12 }} />
            {lines.map((n, i) => (
              <Line
                key={n}
                type="monotone"
                dataKey={`v${n}`}
                name={t('perf.versionLine', { version: n })}
                stroke={VERSION_COLORS[i % VERSION_COLORS.length]}
                dot={rows.length < 40}
                connectNulls={false}
                isAnimationActive={false}
              />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </div>
    </section>
  )
}
