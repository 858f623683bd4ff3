import { describe, expect, it } from 'vitest'
import {
  badgeCounts,
  draftToSpec,
  fmtAlertValue,
  isSilenced,
  listStatus,
  newRule,
  parseSilenceMinutes,
  RULE_KINDS,
  ruleToDraft,
  thresholdFromDisplay,
  thresholdToDisplay,
  totalCounts,
  usesMinRequests,
} from '../alertlogic'
import { en, fr } from '../strings/alerts'
import type { ActiveAlert, AlertRule, AlertRuleKind, AlertState } from '../types'

function rule(kind: AlertRuleKind, threshold: number, api_id = 'a1', id = 'r1'): AlertRule {
  return { id, api_id, kind, threshold, window_s: 300, for_s: 60, min_requests: 20, enabled: true }
}

function active(api_id: string, state: AlertState, extra: Partial<ActiveAlert> = {}): ActiveAlert {
  return {
    rule: rule('error_rate_5xx', 0.05, api_id, `${api_id}-${state}-${Math.random()}`),
    api_name: api_id,
    state,
    value: 0.1,
    since: '2026-12-01T00:00:00Z',
    acked_by: null,
    acked_at: null,
    silenced_until: null,
    ...extra,
  }
}

describe('alert thresholds in human units', () => {
  it('shows shares as percentages and reads them back as shares', () => {
    expect(thresholdToDisplay('error_rate_5xx', 0.05)).toBe(5)
    expect(thresholdToDisplay('traffic_drop', 0.5)).toBe(50)
    expect(thresholdToDisplay('rate_limit_saturation', 0.123)).toBe(12.3)
    expect(thresholdFromDisplay('error_rate_4xx', '2,5')).toBe(0.025)
    expect(thresholdFromDisplay('error_rate_5xx', '5')).toBe(0.05)
    expect(thresholdFromDisplay('error_rate_5xx', '100')).toBe(1)
  })
  it('keeps ms, MB and CPU percent as they are', () => {
    expect(thresholdToDisplay('p95_ms', 950)).toBe(950)
    expect(thresholdFromDisplay('p99_ms', '1200')).toBe(1200)
    expect(thresholdFromDisplay('memory_mb', '512.5')).toBe(512.5)
    expect(thresholdFromDisplay('cpu_percent', '80')).toBe(80)
  })
  it('refuses text, negatives and shares or CPU above 100 %', () => {
    for (const bad of ['', 'abc', '-1', '1e3', 'NaN', 'Infinity']) expect(thresholdFromDisplay('p95_ms', bad)).toBeNull()
    expect(thresholdFromDisplay('error_rate_5xx', '100.1')).toBeNull()
    expect(thresholdFromDisplay('cpu_percent', '150')).toBeNull()
  })
  it('round-trips every kind through the editor draft', () => {
    for (const kind of RULE_KINDS) {
      const spec = newRule(kind)
      const back = draftToSpec(ruleToDraft(spec, 'k'))
      expect(back.spec).toEqual(spec)
    }
    const kept = draftToSpec(ruleToDraft(rule('p95_ms', 700, 'a1', 'abc123'), 'abc123'))
    expect(kept.spec).toEqual({ id: 'abc123', kind: 'p95_ms', threshold: 700, window_s: 300, for_s: 60, min_requests: 20, enabled: true })
    expect(kept.spec).not.toHaveProperty('api_id')
  })
  it('converts minutes to the contract seconds and names the bad fields', () => {
    const d = { ...ruleToDraft(newRule('error_rate_5xx'), 'k'), windowMin: '1,5', forMin: '0', threshold: '10' }
    expect(draftToSpec(d).spec).toMatchObject({ window_s: 90, for_s: 0, threshold: 0.1 })
    const bad = draftToSpec({ ...d, windowMin: '0.5', forMin: '2000', minRequests: '-3', threshold: 'x' })
    expect(bad.spec).toBeNull()
    expect(bad.errors.sort()).toEqual(['forMin', 'minRequests', 'threshold', 'windowMin'])
  })
  it('formats values in the rule unit', () => {
    expect(fmtAlertValue('en', 'error_rate_5xx', 0.25)).toBe('25 %')
    expect(fmtAlertValue('en', 'p95_ms', 950)).toBe('950 ms')
    expect(fmtAlertValue('fr', 'memory_mb', 512)).toBe('512 Mo')
    expect(fmtAlertValue('en', 'cpu_percent', 85)).toBe('85 %')
    expect(fmtAlertValue('en', 'p95_ms', null)).toBe('—')
  })
  it('takes a drift_psi threshold as a plain PSI score', () => {
    expect(thresholdFromDisplay('drift_psi', '0,3')).toBe(0.3)
    expect(thresholdToDisplay('drift_psi', 0.25)).toBe(0.25)
    expect(fmtAlertValue('fr', 'drift_psi', 0.3123)).toBe('0,31')
    expect(newRule('drift_psi').threshold).toBe(0.25)
  })

  it('takes an accuracy_drop threshold as a plain number (accuracy 0..1, or RMSE) with a minimum of feedback', () => {
    expect(thresholdFromDisplay('accuracy_drop', '0,8')).toBe(0.8)
    expect(newRule('accuracy_drop').threshold).toBe(0.8)
    expect(usesMinRequests('accuracy_drop')).toBe(true)
  })
})

describe('alert badges', () => {
  it('counts firing and pending per API, ignores the other states', () => {
    const now = Date.parse('2026-12-01T01:00:00Z')
    const counts = badgeCounts(
      [
        active('a1', 'firing'),
        active('a1', 'firing', { silenced_until: '2026-12-01T02:00:00Z' }),
        active('a1', 'pending'),
        active('a2', 'pending'),
        active('a3', 'resolved'),
        active('a3', 'ok'),
      ],
      now,
    )
    expect(counts.get('a1')).toEqual({ firing: 2, pending: 1, quiet: 1 })
    expect(counts.get('a2')).toEqual({ firing: 0, pending: 1, quiet: 0 })
    expect(counts.get('a3')).toEqual({ firing: 0, pending: 0, quiet: 0 })
    expect(counts.get('nope')).toBeUndefined()
    expect(totalCounts(counts)).toEqual({ firing: 2, pending: 2, quiet: 1 })
  })
  it('treats a past silence as over', () => {
    const now = Date.parse('2026-12-01T01:00:00Z')
    expect(isSilenced({ silenced_until: '2026-12-01T00:59:59Z' }, now)).toBe(false)
    expect(isSilenced({ silenced_until: '2026-12-01T01:00:01Z' }, now)).toBe(true)
    expect(isSilenced({ silenced_until: null }, now)).toBe(false)
  })
  it('accepts a custom silence between 1 minute and 30 days', () => {
    expect(parseSilenceMinutes('30')).toBe(1800)
    expect(parseSilenceMinutes('1')).toBe(60)
    expect(parseSilenceMinutes('43200')).toBe(30 * 86400)
    for (const bad of ['0', '0.5', '43201', '', 'soon', '-5']) expect(parseSilenceMinutes(bad)).toBeNull()
  })
  it('shows "error" for an active API whose health is error', () => {
    expect(listStatus({ status: 'active', health: 'error' })).toBe('error')
    expect(listStatus({ status: 'active', health: 'ok' })).toBe('active')
    expect(listStatus({ status: 'active' })).toBe('active')
    expect(listStatus({ status: 'inactive', health: 'error' })).toBe('inactive')
  })
  it('has every string in both languages', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(fr).sort())
  })
})
