// Pure logic of the alert pages (issue 12): rule thresholds in human units, badge counts, silences.
import { fmtInt, fmtMb, fmtMs, fmtNum, fmtPercent } from './format'
import type { Lang } from './i18n'
import type { ActiveAlert, AlertRuleKind, AlertRuleSpec, ExportedApi } from './types'

export const RULE_KINDS: AlertRuleKind[] = [
  'error_rate_5xx',
  'error_rate_4xx',
  'p95_ms',
  'p99_ms',
  'traffic_drop',
  'no_traffic',
  'rate_limit_saturation',
  'cpu_percent',
  'memory_mb',
  'drift_psi',
  'accuracy_drop',
]

/** How a kind's threshold is shown: 'fraction' is stored 0..1 and shown in %, 'none' has no threshold. */
export type ThresholdUnit = 'fraction' | 'percent' | 'ms' | 'mb' | 'score' | 'none'

export function thresholdUnit(kind: AlertRuleKind): ThresholdUnit {
  switch (kind) {
    case 'error_rate_5xx':
    case 'error_rate_4xx':
    case 'traffic_drop':
    case 'rate_limit_saturation':
      return 'fraction'
    case 'cpu_percent':
      return 'percent'
    case 'p95_ms':
    case 'p99_ms':
      return 'ms'
    case 'memory_mb':
      return 'mb'
    case 'drift_psi':
    case 'accuracy_drop': // accuracy 0..1 (classifier) or RMSE in the target's units (regressor)
      return 'score'
    case 'no_traffic':
      return 'none'
  }
}

/** Rate, latency, drift and accuracy rules need `min_requests` in the window (drift: logged rows, accuracy: requests
 * with feedback); the others ignore it. */
export function usesMinRequests(kind: AlertRuleKind): boolean {
  return ['error_rate_5xx', 'error_rate_4xx', 'p95_ms', 'p99_ms', 'rate_limit_saturation', 'drift_psi', 'accuracy_drop'].includes(kind)
}

/** The stored threshold as the number a person reads (a fraction 0.05 is 5). */
export function thresholdToDisplay(kind: AlertRuleKind, threshold: number): number {
  if (thresholdUnit(kind) === 'fraction') return Math.round(threshold * 100 * 1e6) / 1e6
  return threshold
}

/** Parses what a person typed ("5", "2,5") back into the stored threshold; null when invalid. */
export function thresholdFromDisplay(kind: AlertRuleKind, text: string): number | null {
  const unit = thresholdUnit(kind)
  if (unit === 'none') return 0
  const raw = text.trim().replace(',', '.')
  if (!/^\d+(\.\d+)?$/.test(raw)) return null
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0) return null
  if (unit === 'fraction') return n > 100 ? null : Math.round((n / 100) * 1e8) / 1e8
  if (unit === 'percent' && n > 100) return null
  return n
}

/** Parses a number of minutes ("5", "0,5") into whole seconds within [min_s, max_s]; null when invalid. */
export function minutesToSeconds(text: string, min_s: number, max_s: number): number | null {
  const raw = text.trim().replace(',', '.')
  if (!/^\d+(\.\d+)?$/.test(raw)) return null
  const s = Math.round(Number(raw) * 60)
  if (!Number.isFinite(s) || s < min_s || s > max_s) return null
  return s
}

export function secondsToMinutes(s: number): number {
  return Math.round((s / 60) * 100) / 100
}

/** A new rule's starting threshold, in stored units. */
export const DEFAULT_THRESHOLDS: Record<AlertRuleKind, number> = {
  error_rate_5xx: 0.05,
  error_rate_4xx: 0.2,
  p95_ms: 1000,
  p99_ms: 2000,
  traffic_drop: 0.5,
  no_traffic: 0,
  rate_limit_saturation: 0.1,
  cpu_percent: 80,
  memory_mb: 1024,
  drift_psi: 0.25,
  accuracy_drop: 0.8,
}

/** A rule to add (no id: the server makes one when the list is saved). */
export function newRule(kind: AlertRuleKind): AlertRuleSpec {
  return {
    kind,
    threshold: DEFAULT_THRESHOLDS[kind],
    window_s: kind === 'no_traffic' ? 900 : 300,
    for_s: kind === 'no_traffic' ? 0 : 60,
    min_requests: 20,
    enabled: true,
  }
}

export interface BadgeCount {
  firing: number
  pending: number
  /** Firing rules acknowledged or silenced now: still counted in `firing`. */
  quiet: number
}

/** Firing and pending rules per API id. */
export function badgeCounts(active: ActiveAlert[], now = Date.now()): Map<string, BadgeCount> {
  const out = new Map<string, BadgeCount>()
  for (const a of active) {
    const key = String(a.rule.api_id)
    const c = out.get(key) ?? { firing: 0, pending: 0, quiet: 0 }
    if (a.state === 'firing') {
      c.firing += 1
      if (isSilenced(a, now) || a.acked_by) c.quiet += 1
    } else if (a.state === 'pending') c.pending += 1
    out.set(key, c)
  }
  return out
}

export function totalCounts(counts: Map<string, BadgeCount>): BadgeCount {
  const total = { firing: 0, pending: 0, quiet: 0 }
  for (const c of counts.values()) {
    total.firing += c.firing
    total.pending += c.pending
    total.quiet += c.quiet
  }
  return total
}

export function isSilenced(a: Pick<ActiveAlert, 'silenced_until'>, now = Date.now()): boolean {
  if (!a.silenced_until) return false
  const until = new Date(a.silenced_until).getTime()
  return Number.isFinite(until) && until > now
}

/** Silence presets in seconds: 15 min, 1 h, 4 h, 24 h. */
export const SILENCE_PRESETS_S = [900, 3600, 14_400, 86_400]
/** A custom silence: at least a minute, at most 30 days. */
export const SILENCE_MAX_S = 30 * 86_400

export function parseSilenceMinutes(text: string): number | null {
  return minutesToSeconds(text, 60, SILENCE_MAX_S)
}

/** History time ranges of the Alerts page, in seconds back from now ('' = all). */
export const HISTORY_RANGES: Array<'1h' | '24h' | '7d' | '30d' | ''> = ['1h', '24h', '7d', '30d', '']
const RANGE_S = { '1h': 3600, '24h': 86_400, '7d': 7 * 86_400, '30d': 30 * 86_400 }

export function rangeSince(range: (typeof HISTORY_RANGES)[number], now = Date.now()): string | undefined {
  if (range === '') return undefined
  return new Date(now - RANGE_S[range] * 1000).toISOString()
}

/** A rule's figure or threshold in its human unit ("5 %", "950 ms", "512 MB"); no_traffic counts requests. */
export function fmtAlertValue(lang: Lang, kind: AlertRuleKind, value: number | null | undefined): string {
  if (value === null || value === undefined) return '—'
  switch (thresholdUnit(kind)) {
    case 'fraction':
      return fmtPercent(lang, thresholdToDisplay(kind, value))
    case 'percent':
      return fmtPercent(lang, value)
    case 'ms':
      return fmtMs(lang, value)
    case 'mb':
      return fmtMb(lang, value)
    case 'score':
      return fmtNum(lang, value)
    case 'none':
      return fmtInt(lang, value)
  }
}

/** A rule as the editor holds it: the numbers as typed, in human units (%, minutes). */
export interface RuleDraft {
  key: string
  id?: string
  kind: AlertRuleKind
  threshold: string
  windowMin: string
  forMin: string
  minRequests: string
  enabled: boolean
}

export type RuleField = 'threshold' | 'windowMin' | 'forMin' | 'minRequests'

export function ruleToDraft(rule: AlertRuleSpec, key: string): RuleDraft {
  return {
    key,
    id: rule.id,
    kind: rule.kind,
    threshold: String(thresholdToDisplay(rule.kind, rule.threshold)),
    windowMin: String(secondsToMinutes(rule.window_s)),
    forMin: String(secondsToMinutes(rule.for_s)),
    minRequests: String(rule.min_requests),
    enabled: rule.enabled,
  }
}

/** The rule to send, or the fields that are invalid. */
export function draftToSpec(d: RuleDraft): { spec: AlertRuleSpec; errors: [] } | { spec: null; errors: RuleField[] } {
  const errors: RuleField[] = []
  const threshold = thresholdFromDisplay(d.kind, d.threshold)
  if (threshold === null) errors.push('threshold')
  const window_s = minutesToSeconds(d.windowMin, 60, 86_400)
  if (window_s === null) errors.push('windowMin')
  const for_s = minutesToSeconds(d.forMin, 0, 86_400)
  if (for_s === null) errors.push('forMin')
  const minText = d.minRequests.trim()
  const min_requests = /^\d{1,10}$/.test(minText) && Number(minText) <= 1_000_000_000 ? Number(minText) : null
  if (min_requests === null) errors.push('minRequests')
  if (threshold === null || window_s === null || for_s === null || min_requests === null) return { spec: null, errors }
  const spec: AlertRuleSpec = { kind: d.kind, threshold, window_s, for_s, min_requests, enabled: d.enabled }
  if (d.id) spec.id = d.id
  return { spec, errors: [] }
}

/** The status the API list shows: the seed glossary's "error" for an active API whose health is
 * error (a 5xx rule firing or a model that cannot load); an inactive API shows inactive. */
export function listStatus(a: Pick<ExportedApi, 'status' | 'health'>): 'active' | 'inactive' | 'error' {
  if (a.status === 'active' && a.health === 'error') return 'error'
  return a.status
}
