// Pure helpers of the Drift tab and the Performance panel (issue 15): status from PSI, the most
// drifted features first, reference-vs-live histogram rows, score formatting, the feedback curl and
// which live metrics a task shows.
import type { DriftBin, DriftFeature, DriftRange, DriftStatus, PerformanceReport, Task, VersionPerformance } from './types'
import type { Lang } from './i18n'

export const DRIFT_RANGES: DriftRange[] = ['1h', '6h', '24h', '7d']

/** Evidently's defaults, used when the server does not send its thresholds. */
export const DEFAULT_DRIFT_THRESHOLDS = { warning: 0.1, drift: 0.25 }

/** ok under the warning threshold, warning from it, drift from the drift threshold; no PSI: no_data. */
export function driftStatus(
  psi: number | null | undefined,
  thresholds: { warning: number; drift: number } = DEFAULT_DRIFT_THRESHOLDS,
): DriftStatus {
  if (psi === null || psi === undefined || !Number.isFinite(psi)) return 'no_data'
  if (psi >= thresholds.drift) return 'drift'
  if (psi >= thresholds.warning) return 'warning'
  return 'ok'
}

/** Rows the scores were computed on when a large window was sampled (fewer than its live rows),
 * else null: the tab then says the scores are an estimate, and from how many rows. */
export function sampledRows(report: { live_rows: number; sampled_rows?: number | null }): number | null {
  const sampled = report.sampled_rows
  return sampled != null && sampled < report.live_rows ? sampled : null
}

/** Most drifted first: PSI descending, features without a PSI last, ties by name. */
export function sortByDrift<F extends Pick<DriftFeature, 'name' | 'psi'>>(features: F[]): F[] {
  const key = (f: F) => (f.psi === null || !Number.isFinite(f.psi) ? -1 : f.psi)
  return [...features].sort((a, b) => key(b) - key(a) || a.name.localeCompare(b.name))
}

export interface HistogramRow {
  label: string
  reference: number
  live: number
}

/** One row per bin, in the reference's order, live-only bins (new categories) after them;
 * shares in percent for the bars. */
export function histogramRows(reference: DriftBin[], live: DriftBin[]): HistogramRow[] {
  const rows = new Map<string, HistogramRow>()
  for (const b of reference) rows.set(b.label, { label: b.label, reference: b.share * 100, live: 0 })
  for (const b of live) {
    const row = rows.get(b.label)
    if (row) row.live = b.share * 100
    else rows.set(b.label, { label: b.label, reference: 0, live: b.share * 100 })
  }
  return [...rows.values()]
}

/** A PSI or JS distance: 3 decimals, "—" when there is none. */
export function fmtScore(lang: Lang, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return new Intl.NumberFormat(lang === 'fr' ? 'fr-FR' : 'en-GB', {
    minimumFractionDigits: 3,
    maximumFractionDigits: 3,
  }).format(value)
}

/** The number of features at each status (the tab's summary line). */
export function countByStatus(features: Array<Pick<DriftFeature, 'status'>>): Record<DriftStatus, number> {
  const out: Record<DriftStatus, number> = { ok: 0, warning: 0, drift: 0, no_data: 0 }
  for (const f of features) out[f.status] += 1
  return out
}

/** The feedback route next to the prediction endpoint, and a curl sending one truth. */
export function feedbackUrl(endpointUrl: string): string {
  return `${endpointUrl.replace(/\/+$/, '')}/feedback`
}

export function feedbackCurl(endpointUrl: string, task: Task, keyPrefix: string): string {
  const actual = task === 'regression' ? '42.0' : '"setosa"'
  return [
    `curl -X POST '${feedbackUrl(endpointUrl)}' \\`,
    `  -H 'X-API-Key: ${keyPrefix}…' \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d '{"request_id": "<request_id of the prediction>", "actual": ${actual}}'`,
  ].join('\n')
}

/** The live metrics a task shows (classification: accuracy and F1; regression: MAE and RMSE). */
export function liveMetrics(task: Task): Array<'accuracy' | 'f1' | 'mae' | 'rmse'> {
  return task === 'regression' ? ['mae', 'rmse'] : ['accuracy', 'f1']
}

/** The headline metric over time: accuracy (classification) or MAE (regression). */
export function seriesMetric(task: Task): 'accuracy' | 'mae' {
  return task === 'regression' ? 'mae' : 'accuracy'
}

/** One row per bucket with one column per version (`v1`, `v2`...) for a line per version. */
export function performanceRows(report: PerformanceReport): { rows: Array<Record<string, string | number | null>>; versions: number[] } {
  const metric = seriesMetric(report.task)
  const versions = [...new Set(report.series.map((p) => p.version))].sort((a, b) => a - b)
  const byT = new Map<string, Record<string, string | number | null>>()
  for (const p of report.series) {
    const row = byT.get(p.t) ?? { t: p.t }
    row[`v${p.version}`] = p.n > 0 ? p[metric] : null
    byT.set(p.t, row)
  }
  const rows = [...byT.values()].sort((a, b) => String(a.t).localeCompare(String(b.t)))
  return { rows, versions }
}

/** A live metric minus the same test metric (null when either is missing). Accuracy and F1: a
 * negative gap is worse; MAE and RMSE: a positive one. */
export function metricGap(v: VersionPerformance, metric: 'accuracy' | 'f1' | 'mae' | 'rmse'): number | null {
  const live = v[metric]
  const test = v.test_metrics?.[metric]
  if (live === null || live === undefined || typeof test !== 'number') return null
  return live - test
}

/** A word for a POSIX shell: as is when plain, else in single quotes. */
export function shellWord(word: string): string {
  return /^[\w.,:=+@%/-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** The `modelgate simulate` command the empty Drift tab suggests, drifting one feature if known. */
export function simulateCommand(apiId: string | number, feature?: string): string {
  const drift = feature ? ` --drift ${shellWord(`${feature}=+2sd`)}` : ''
  return `modelgate simulate --api ${apiId} --key "$MODELGATE_API_KEY" --rate 20 --duration 2m${drift}`
}
