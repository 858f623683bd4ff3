// The Drift tab of an API (issue 15): per feature, the PSI and Jensen–Shannon distance between the
// serving version's training profile and the live inputs of the range, most drifted first with a
// status badge; for the chosen feature the reference-vs-live histogram and the PSI over time; the
// prediction drift; and clear empty states (no reference profile, no live rows).
import { useEffect, useState } from 'react'
import {
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ReferenceLine,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts'
import { api, ApiError } from '../api'
import {
  countByStatus,
  DEFAULT_DRIFT_THRESHOLDS,
  DRIFT_RANGES,
  fmtScore,
  histogramRows,
  simulateCommand,
  sortByDrift,
  sampledRows,
} from '../drift'
import { fmtDateTimeSeconds, fmtInt, fmtNum } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { DriftFeature, DriftRange, DriftReport, DriftStatus, ExportedApi } from '../types'
import { CodeBlock } from './CodeBlock'
import { EmptyState, ErrorState, Skeleton } from './Feedback'
import { RetrainButton } from './RetrainButton'
import { fmtSeriesTick } from './TimeSeriesChart'

const STATUS_STYLE: Record<DriftStatus, React.CSSProperties> = {
  ok: { background: 'var(--good-soft)', color: 'var(--good)' },
  warning: { background: 'var(--warn-soft)', color: 'var(--warn)' },
  drift: { background: 'var(--bad-soft)', color: 'var(--bad)' },
  no_data: {},
}
/** The tab's panels one under the other, spaced as the page's. */
export const TAB_STACK: React.CSSProperties = { display: 'flex', flexDirection: 'column', gap: '1rem' }
const REFERENCE_COLOR = '#94a3b8'
const LIVE_COLOR = '#2f5bea'

export function DriftBadge({ status, testId }: { status: DriftStatus; testId?: string }) {
  const { t } = useI18n()
  return (
    <span className="badge" style={STATUS_STYLE[status]} data-testid={testId} data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {t(`drift.status.${status}`)}
    </span>
  )
}

/** The range buttons of the drift and performance routes (1 h to 7 days). */
export function DriftRangePicker({
  range,
  onRange,
  testIdPrefix,
}: {
  range: DriftRange
  onRange: (r: DriftRange) => void
  testIdPrefix: string
}) {
  const { t } = useI18n()
  return (
    <div className="segmented segmented-buttons" role="group" aria-label={t('live.range')}>
      {DRIFT_RANGES.map((r) => (
        <button
          key={r}
          type="button"
          className={r === range ? 'checked' : ''}
          aria-pressed={r === range}
          onClick={() => onRange(r)}
          data-testid={`${testIdPrefix}-${r}`}
        >
          {t(`live.range.${r}`)}
        </button>
      ))}
    </div>
  )
}

interface DriftTabProps {
  api: ExportedApi
  tick: number
  onRetrained: (version: number) => void
}

export function DriftTab({ api: a, tick, onRetrained }: DriftTabProps) {
  const { t, lang } = useI18n()
  const [range, setRange] = useState<DriftRange>('24h')
  const [chosen, setChosen] = useState<string | null>(null)
  // A version without a reference profile is a state of the tab, not an error.
  const data = useAsync<DriftReport | 'no_reference'>(async () => {
    try {
      return await api.drift(a.id, range)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'NO_REFERENCE') return 'no_reference'
      throw err
    }
  }, [a.id, range, a.version_number])
  useEffect(() => {
    if (tick > 0) data.reload(true)
  }, [tick])

  const header = (
    <div className="row-between wrap">
      <DriftRangePicker range={range} onRange={setRange} testIdPrefix="drift-range" />
      <RetrainButton api={a} onRetrained={onRetrained} testId="drift-retrain" />
    </div>
  )

  if (data.loading && !data.data)
    return (
      <section style={TAB_STACK} data-testid="drift-tab" data-state="loading">
        {header}
        <Skeleton lines={6} height={22} />
      </section>
    )
  if (data.error || !data.data || data.data === 'no_reference') {
    const noReference = !data.error && data.data === 'no_reference'
    return (
      <section style={TAB_STACK} data-testid="drift-tab" data-state={noReference ? 'no-reference' : 'error'}>
        {header}
        {noReference ? (
          <div data-testid="drift-no-reference">
            <EmptyState title={t('drift.noReferenceTitle')}>
              <p>{t('drift.noReferenceText', { version: a.version_number })}</p>
            </EmptyState>
          </div>
        ) : (
          <ErrorState message={data.error ?? ''} onRetry={() => data.reload()} />
        )}
      </section>
    )
  }

  const report = data.data
  const thresholds = report.thresholds ?? DEFAULT_DRIFT_THRESHOLDS
  const features = sortByDrift(report.features)
  const selected = features.find((f) => f.name === chosen) ?? features[0] ?? null
  const counts = countByStatus(features)
  const simulate = simulateCommand(a.id, features[0]?.name)

  const sampled = sampledRows(report)
  return (
    <section style={TAB_STACK} data-testid="drift-tab" data-state={report.live_rows === 0 ? 'no-live' : 'ready'}>
      {header}
      <section className="panel" aria-labelledby="drift-title">
        <h2 id="drift-title" className="h-small">
          {t('drift.title')} <span className="muted small">— {t('drift.version', { version: report.version })}</span>
        </h2>
        <p className="muted small">{t('drift.intro')}</p>
        <p className="small" data-testid="drift-rows" data-live-rows={report.live_rows}>
          {t('drift.rows', { reference: fmtInt(lang, report.reference_rows), live: fmtInt(lang, report.live_rows) })} ·{' '}
          {sampled !== null && (
            <span data-testid="drift-sampled">
              {t('drift.sampled', { sampled: fmtInt(lang, sampled) })} ·{' '}
            </span>
          )}
          {t('drift.thresholds', { warning: fmtNum(lang, thresholds.warning), drift: fmtNum(lang, thresholds.drift) })}
        </p>
        {report.live_rows === 0 ? (
          <div data-testid="drift-no-live">
            <EmptyState title={t('drift.noLiveTitle')}>
              <p>{t('drift.noLiveText')}</p>
              {!a.log_payloads && (
                <p className="callout callout-warning" data-testid="drift-payloads-off">
                  {t('drift.payloadsOff')}
                </p>
              )}
              <CodeBlock code={simulate} label="modelgate simulate" testId="drift-simulate" />
            </EmptyState>
          </div>
        ) : features.length === 0 ? (
          <p className="muted">{t('drift.noFeatures')}</p>
        ) : (
          <>
            <p data-testid="drift-summary">
              {t('drift.summary', { drift: counts.drift, warning: counts.warning, ok: counts.ok })}
            </p>
            <div className="table-wrap">
              <table className="table table-compact" data-testid="drift-table">
                <thead>
                  <tr>
                    <th scope="col">{t('drift.colFeature')}</th>
                    <th scope="col">{t('drift.colType')}</th>
                    <th scope="col" className="num">
                      {t('drift.colPsi')}
                    </th>
                    <th scope="col" className="num">
                      {t('drift.colJs')}
                    </th>
                    <th scope="col">{t('drift.colStatus')}</th>
                  </tr>
                </thead>
                <tbody>
                  {features.map((f, i) => (
                    <tr
                      key={f.name}
                      className="clickable"
                      aria-selected={selected?.name === f.name}
                      style={selected?.name === f.name ? { background: 'var(--accent-soft)' } : undefined}
                      onClick={() => setChosen(f.name)}
                      data-testid="drift-row"
                      data-feature={f.name}
                      data-rank={i + 1}
                      data-psi={f.psi ?? ''}
                      data-status={f.status}
                    >
                      <td>
                        <button
                          type="button"
                          className="btn btn-ghost btn-sm"
                          aria-label={t('drift.show', { name: f.name })}
                          onClick={(e) => {
                            e.stopPropagation()
                            setChosen(f.name)
                          }}
                        >
                          {f.name}
                        </button>
                      </td>
                      <td className="muted">{f.type}</td>
                      <td className="num mono">{fmtScore(lang, f.psi)}</td>
                      <td className="num mono">{fmtScore(lang, f.js)}</td>
                      <td>
                        <DriftBadge status={f.status} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </section>
      {report.live_rows > 0 && selected && (
        <div className="grid-2">
          <Histogram feature={selected} id="drift-histogram" />
          <PsiSeries feature={selected} thresholds={thresholds} />
        </div>
      )}
      {report.live_rows > 0 && report.prediction && (
        <section className="panel" aria-labelledby="drift-prediction-title" data-testid="drift-prediction">
          <h2 id="drift-prediction-title" className="h-small">
            {t('drift.prediction')} <DriftBadge status={report.prediction.status} testId="drift-prediction-status" />
          </h2>
          <p className="muted small">
            {t('drift.predictionIntro')} PSI {fmtScore(lang, report.prediction.psi)} · JS {fmtScore(lang, report.prediction.js)}
          </p>
          <Histogram feature={report.prediction} id="drift-prediction-histogram" bare />
        </section>
      )}
    </section>
  )
}

function Histogram({ feature, id, bare = false }: { feature: DriftFeature; id: string; bare?: boolean }) {
  const { t, lang } = useI18n()
  const rows = histogramRows(feature.reference, feature.live)
  const chart = (
    <div className="chart" data-testid={id} data-feature={feature.name} data-bins={rows.length}>
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={rows} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="label" tick={{ fontSize: 11 }} interval="preserveStartEnd" />
          <YAxis width={44} tick={{ fontSize: 11 }} tickFormatter={(v: number) => `${fmtNum(lang, v, 0)}%`} />
          <Tooltip formatter={(v) => `${fmtNum(lang, Number(v), 1)} %`} />
          <Legend wrapperStyle={{ fontSize: 12 }} />
          <Bar dataKey="reference" name={t('drift.reference')} fill={REFERENCE_COLOR} isAnimationActive={false} />
          <Bar dataKey="live" name={t('drift.live')} fill={LIVE_COLOR} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  )
  if (bare) return chart
  return (
    <section className="panel" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`} className="h-small">
        {feature.name} <DriftBadge status={feature.status} />
      </h2>
      <p className="muted small">{t('drift.histogram')}</p>
      {chart}
    </section>
  )
}

function PsiSeries({ feature, thresholds }: { feature: DriftFeature; thresholds: { warning: number; drift: number } }) {
  const { t, lang } = useI18n()
  const points = feature.series.map((p) => ({ t: p.t, psi: p.rows > 0 ? p.psi : null, rows: p.rows }))
  const [a, b] = feature.series
  const step = a && b ? (new Date(b.t).getTime() - new Date(a.t).getTime()) / 1000 : 3600
  return (
    <section className="panel" aria-labelledby="drift-psi-title">
      <h2 id="drift-psi-title" className="h-small">
        {t('drift.psiOverTime')} — {feature.name}
      </h2>
      <p className="muted small">{t('drift.thresholds', { warning: fmtNum(lang, thresholds.warning), drift: fmtNum(lang, thresholds.drift) })}</p>
      <div
        className="chart"
        data-testid="drift-psi-series"
        data-feature={feature.name}
        data-points={points.length}
        data-busy-points={points.filter((p) => p.psi !== null).length}
      >
        <ResponsiveContainer width="100%" height="100%">
          <LineChart data={points} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="t" tickFormatter={(v: string) => fmtSeriesTick(lang, v, step)} minTickGap={24} tick={{ fontSize: 11 }} />
            <YAxis width={44} tick={{ fontSize: 11 }} tickFormatter={(v: number) => fmtNum(lang, v, 2)} />
            <Tooltip labelFormatter={(v) => fmtDateTimeSeconds(lang, String(v))} formatter={(v) => fmtScore(lang, v === null ? null : Number(v))} />
            <ReferenceLine y={thresholds.warning} stroke="#d97706" strokeDasharray="4 4" ifOverflow="extendDomain" />
            <ReferenceLine y={thresholds.drift} stroke="#dc2626" strokeDasharray="4 4" ifOverflow="extendDomain" />
            <Line type="monotone" dataKey="psi" name="PSI" stroke={LIVE_COLOR} dot={points.length < 40} connectNulls={false} isAnimationActive={false} />
          </LineChart>
        </ResponsiveContainer>
      </div>
    </section>
  )
}
