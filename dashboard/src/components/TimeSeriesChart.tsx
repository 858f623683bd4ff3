// Time-series charts of the monitoring pages (issue 12): requests per second (per version when the
// API has a split), status codes over time (stacked) and latency, with the API's changes (deploys,
// key rotations, status changes) as vertical reference lines that carry their text as a tooltip.
import { useState } from 'react'
import {
  Area,
  AreaChart,
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
import { api } from '../api'
import { ErrorState, Skeleton } from './Feedback'
import { fmtDateTimeSeconds, fmtInt, fmtMs, fmtNum } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { Lang, Translate } from '../i18n'
import type { ChartMarker, Range, TimePoint, TimeSeries } from '../types'
import { RangePicker, useLive } from './RangePicker'

const MARKER_COLOR: Record<ChartMarker['kind'], string> = {
  created: '#16a34a',
  deploy: '#7c3aed',
  key_rotated: '#0891b2',
  status: '#6b7280',
}
const VERSION_COLORS = ['#2f5bea', '#d97706', '#16a34a', '#db2777', '#0891b2']

type T = Translate

function stepOf(series: TimeSeries): number {
  if (series.step_seconds) return series.step_seconds
  const [a, b] = series.points
  return a && b ? (new Date(b.ts).getTime() - new Date(a.ts).getTime()) / 1000 : 60
}

/** An axis tick fitting the bucket: seconds for sub-minute buckets, the day for daily ones. */
export function fmtSeriesTick(lang: Lang, iso: string, step: number): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const locale = lang === 'fr' ? 'fr-FR' : 'en-GB'
  if (step < 60) return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(d)
  if (step >= 86400) return new Intl.DateTimeFormat(locale, { day: '2-digit', month: 'short' }).format(d)
  if (step >= 3600) return new Intl.DateTimeFormat(locale, { day: '2-digit', hour: '2-digit', minute: '2-digit' }).format(d)
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' }).format(d)
}

export function fmtStep(step: number): string {
  if (step < 60) return `${step} s`
  if (step < 3600) return `${step / 60} min`
  if (step < 86400) return `${step / 3600} h`
  return `${step / 86400} d`
}

export function markerText(t: T, m: ChartMarker): string {
  const n = m.version_number ?? '?'
  if (m.kind === 'status') {
    const status =
      m.detail === 'active' ? t('live.marker.status.active') : m.detail === 'inactive' ? t('live.marker.status.inactive') : m.detail
    return t('live.marker.status', { status })
  }
  if (m.kind === 'key_rotated') return t('live.marker.key_rotated')
  return t(`live.marker.${m.kind}`, { n })
}

interface PlacedMarker {
  x: string
  marker: ChartMarker
}

/** Each marker on the bucket holding it (the x axis is the buckets' times, a category axis). */
export function placeMarkers(series: TimeSeries): PlacedMarker[] {
  const step = stepOf(series) * 1000
  const byEpoch = new Map(series.points.map((p) => [new Date(p.ts).getTime(), p.ts]))
  const placed: PlacedMarker[] = []
  for (const marker of series.markers ?? []) {
    const at = new Date(marker.ts).getTime()
    const x = byEpoch.get(at - (((at % step) + step) % step))
    if (x !== undefined) placed.push({ x, marker })
  }
  return placed
}

function markerLines(placed: PlacedMarker[], t: T) {
  return placed.map(({ x, marker }, i) => {
    const by = marker.actor ? ` (${t('live.by', { who: marker.actor })})` : ''
    const text = `${markerText(t, marker)}${by} — ${marker.ts}`
    return (
      <ReferenceLine
        key={`${marker.ts}-${i}`}
        x={x}
        stroke={MARKER_COLOR[marker.kind]}
        strokeDasharray="3 3"
        ifOverflow="extendDomain"
        label={(props: { viewBox?: { x?: number; y?: number } }) => (
          <g className="chart-marker-flag" data-kind={marker.kind}>
            <title>{text}</title>
            <circle cx={props.viewBox?.x ?? 0} cy={(props.viewBox?.y ?? 0) + 4} r={4} fill={MARKER_COLOR[marker.kind]} />
          </g>
        )}
      />
    )
  })
}

/** Buckets without requests have no latency (the server sends 0): a gap, not a dip to 0. */
function withGaps(points: TimePoint[]) {
  return points.map((p) =>
    p.requests > 0 ? p : { ...p, avg_ms: null, p50_ms: null, p95_ms: null, p99_ms: null },
  )
}

interface ChartProps {
  series: TimeSeries
  id: string
  title?: string
}

interface FrameProps {
  id: string
  title: string
  series: TimeSeries
  children: React.ReactElement
}

/** A chart panel; its data-* attributes say how many buckets it draws, how many had requests and
 * how many markers it holds (what a reader checks first, and the browser tests too). */
function Frame({ id, title, series, children }: FrameProps) {
  const { t } = useI18n()
  return (
    <section className="panel" aria-labelledby={`chart-${id}-title`}>
      <h2 id={`chart-${id}-title`} className="h-small">
        {title} <span className="muted small">({t('live.bucket', { step: fmtStep(stepOf(series)) })})</span>
      </h2>
      <div
        className="chart"
        data-testid={`chart-${id}`}
        data-points={series.points.length}
        data-busy-points={series.points.filter((p) => p.requests > 0).length}
        data-requests={series.points.reduce((n, p) => n + p.requests, 0)}
        data-markers={placeMarkers(series).length}
      >
        <ResponsiveContainer width="100%" height="100%">
          {children}
        </ResponsiveContainer>
      </div>
    </section>
  )
}

/** Requests per second; one line per version when the API has a canary or shadow split. */
export function RequestRateChart({ series, id, title }: ChartProps) {
  const { t, lang } = useI18n()
  const step = stepOf(series)
  const versions = (series.by_version ?? []).length > 1 ? (series.by_version ?? []) : []
  const data = series.points.map((p, i) => {
    const row: Record<string, string | number> = { ts: p.ts, total: p.requests_per_s ?? p.requests / step }
    versions.forEach((v, j) => {
      const q = v.points[i]
      row[`v${j}`] = q ? (q.requests_per_s ?? q.requests / step) : 0
    })
    return row
  })
  return (
    <Frame id={id} title={title ?? t('live.rate')} series={series}>
      <LineChart data={data} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" vertical={false} />
        <XAxis dataKey="ts" tickFormatter={(v: string) => fmtSeriesTick(lang, v, step)} minTickGap={24} tick={{ fontSize: 11 }} />
        <YAxis width={44} tick={{ fontSize: 11 }} tickFormatter={(v: number) => fmtNum(lang, v, 2)} />
        <Tooltip labelFormatter={(v) => fmtDateTimeSeconds(lang, String(v))} formatter={(v) => fmtNum(lang, Number(v), 3)} />
        <Legend wrapperStyle={{ fontSize: 12 }} />
        <Line type="monotone" dataKey="total" name={t('live.rateTotal')} stroke="#111827" dot={false} isAnimationActive={false} />
        {versions.map((v, j) => (
          <Line
            key={v.model_version_id}
            type="monotone"
            dataKey={`v${j}`}
            name={v.version_number === null ? t('live.versionGone') : t('live.version', { n: v.version_number })}
            stroke={VERSION_COLORS[j % VERSION_COLORS.length]}
            dot={false}
            isAnimationActive={false}
          />
        ))}
        {markerLines(placeMarkers(series), t)}
      </LineChart>
    </Frame>
  )
}

/** Requests per bucket by status class, stacked. */
export function StatusCodesChart({ series, id, title }: ChartProps) {
  const { t, lang } = useI18n()
  const step = stepOf(series)
  return (
    <Frame id={id} title={title ?? t('live.status')} series={series}>
      <AreaChart data={series.points} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" vertical={false} />
        <XAxis dataKey="ts" tickFormatter={(v: string) => fmtSeriesTick(lang, v, step)} minTickGap={24} tick={{ fontSize: 11 }} />
        <YAxis allowDecimals={false} width={40} tick={{ fontSize: 11 }} />
        <Tooltip labelFormatter={(v) => fmtDateTimeSeconds(lang, String(v))} formatter={(v) => fmtInt(lang, Number(v))} />
        <Legend wrapperStyle={{ fontSize: 12 }} />
        <Area type="stepAfter" dataKey="successes" name={t('live.status.2xx')} stackId="1" stroke="#1f9d55" fill="#1f9d55" isAnimationActive={false} />
        <Area type="stepAfter" dataKey="errors_4xx" name={t('live.status.4xx')} stackId="1" stroke="#d97706" fill="#d97706" isAnimationActive={false} />
        <Area type="stepAfter" dataKey="errors_5xx" name={t('live.status.5xx')} stackId="1" stroke="#dc2626" fill="#dc2626" isAnimationActive={false} />
        {markerLines(placeMarkers(series), t)}
      </AreaChart>
    </Frame>
  )
}

/** p50, p95 and p99 per bucket (or p95 only), gaps where nothing was served. */
export function LatencyChart({ series, id, title, p95Only, threshold }: ChartProps & { p95Only?: boolean; threshold?: number | null }) {
  const { t, lang } = useI18n()
  const step = stepOf(series)
  return (
    <Frame id={id} title={title ?? t('live.latency')} series={series}>
      <LineChart data={withGaps(series.points)} margin={{ top: 12, right: 12, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" vertical={false} />
        <XAxis dataKey="ts" tickFormatter={(v: string) => fmtSeriesTick(lang, v, step)} minTickGap={24} tick={{ fontSize: 11 }} />
        <YAxis width={44} tick={{ fontSize: 11 }} />
        <Tooltip labelFormatter={(v) => fmtDateTimeSeconds(lang, String(v))} formatter={(v) => fmtMs(lang, v === null || v === undefined ? null : Number(v))} />
        <Legend wrapperStyle={{ fontSize: 12 }} />
        {threshold ? <ReferenceLine y={threshold} stroke="#dc2626" strokeDasharray="4 4" /> : null}
        {p95Only ? null : <Line type="monotone" dataKey="p50_ms" name="p50" stroke="#2f5bea" dot={false} isAnimationActive={false} />}
        <Line type="monotone" dataKey="p95_ms" name="p95" stroke="#d97706" dot={false} isAnimationActive={false} />
        {p95Only ? null : <Line type="monotone" dataKey="p99_ms" name="p99" stroke="#dc2626" dot={false} isAnimationActive={false} />}
        {markerLines(placeMarkers(series), t)}
      </LineChart>
    </Frame>
  )
}

/** The changes of the range, listed under the charts (the lines' tooltips, for keyboards too). */
export function MarkerList({ series }: { series: TimeSeries }) {
  const { t, lang } = useI18n()
  const markers = series.markers ?? []
  if (markers.length === 0) return null
  return (
    <section className="panel" aria-labelledby="chart-markers-title">
      <h2 id="chart-markers-title" className="h-small">
        {t('live.markers')}
      </h2>
      <ul className="small" data-testid="chart-markers" style={{ margin: 0, paddingLeft: '1.2rem' }}>
        {markers.map((m, i) => (
          <li key={`${m.ts}-${i}`} data-testid="chart-marker" data-kind={m.kind} title={m.ts}>
            <span style={{ color: MARKER_COLOR[m.kind] }} aria-hidden="true">
              ●
            </span>{' '}
            {fmtDateTimeSeconds(lang, m.ts)} — {markerText(t, m)}
            {m.actor ? <span className="muted"> ({t('live.by', { who: m.actor })})</span> : null}
          </li>
        ))}
      </ul>
    </section>
  )
}

/** The monitoring overview's trends: requests/s, status codes and p95 over all of the caller's APIs. */
export function OverviewTrends() {
  const { t } = useI18n()
  const [range, setRange] = useState<Range>('24h')
  const [live, setLive] = useState(false)
  const data = useAsync(() => api.overviewTimeseries(range), [range])
  const paused = useLive(live, () => data.reload(true))
  return (
    <section aria-labelledby="trends-title" data-testid="overview-trends">
      <div className="row-between wrap">
        <h2 id="trends-title" className="h-small">
          {t('live.trends')}
        </h2>
        <RangePicker range={range} onRange={setRange} live={live} onLive={setLive} paused={paused} testIdPrefix="trends-range" />
      </div>
      {data.loading ? (
        <Skeleton lines={4} height={24} />
      ) : data.error || !data.data ? (
        <ErrorState message={data.error ?? ''} onRetry={() => data.reload()} />
      ) : (
        <div className="grid-2">
          <RequestRateChart series={data.data} id="trends-rate" />
          <StatusCodesChart series={data.data} id="trends-status" />
          <LatencyChart series={data.data} id="trends-p95" title={t('live.p95')} p95Only />
        </div>
      )}
    </section>
  )
}
