import { describe, expect, it } from 'vitest'
import {
  countByStatus,
  driftStatus,
  feedbackCurl,
  feedbackUrl,
  fmtScore,
  histogramRows,
  liveMetrics,
  metricGap,
  performanceRows,
  sampledRows,
  shellWord,
  simulateCommand,
  sortByDrift,
} from '../drift'
import { en, fr } from '../strings/drift'
import type { PerformanceReport } from '../types'

describe('drift status from PSI', () => {
  it('is ok under 0.1, warning from 0.1, drift from 0.25 (Evidently defaults)', () => {
    expect(driftStatus(0)).toBe('ok')
    expect(driftStatus(0.0999)).toBe('ok')
    expect(driftStatus(0.1)).toBe('warning')
    expect(driftStatus(0.2499)).toBe('warning')
    expect(driftStatus(0.25)).toBe('drift')
    expect(driftStatus(3.2)).toBe('drift')
  })
  it('follows the thresholds the server sends', () => {
    expect(driftStatus(0.15, { warning: 0.2, drift: 0.5 })).toBe('ok')
    expect(driftStatus(0.5, { warning: 0.2, drift: 0.5 })).toBe('drift')
  })
  it('has no status without a PSI', () => {
    expect(driftStatus(null)).toBe('no_data')
    expect(driftStatus(undefined)).toBe('no_data')
    expect(driftStatus(Number.NaN)).toBe('no_data')
  })
  it('counts the features per status', () => {
    const c = countByStatus([{ status: 'ok' }, { status: 'drift' }, { status: 'ok' }, { status: 'no_data' }])
    expect(c).toEqual({ ok: 2, warning: 0, drift: 1, no_data: 1 })
  })
})

describe('most drifted first', () => {
  it('sorts by PSI descending, features without PSI last, ties by name', () => {
    const sorted = sortByDrift([
      { name: 'b', psi: 0.02 },
      { name: 'none', psi: null },
      { name: 'petal', psi: 1.4 },
      { name: 'a', psi: 0.02 },
      { name: 'mid', psi: 0.12 },
    ])
    expect(sorted.map((f) => f.name)).toEqual(['petal', 'mid', 'a', 'b', 'none'])
  })
  it('does not change the list it is given', () => {
    const given = [
      { name: 'x', psi: 0.1 },
      { name: 'y', psi: 0.3 },
    ]
    sortByDrift(given)
    expect(given[0]?.name).toBe('x')
  })
})

describe('reference vs live histogram', () => {
  it('keeps the reference order in percent and adds live-only bins after', () => {
    const rows = histogramRows(
      [
        { label: '< 1', share: 0.5 },
        { label: '≥ 1', share: 0.5 },
      ],
      [
        { label: '≥ 1', share: 0.75 },
        { label: 'new', share: 0.25 },
      ],
    )
    expect(rows).toEqual([
      { label: '< 1', reference: 50, live: 0 },
      { label: '≥ 1', reference: 50, live: 75 },
      { label: 'new', reference: 0, live: 25 },
    ])
  })
})

describe('formatting', () => {
  it('shows a score with 3 decimals in the language, a dash without one', () => {
    expect(fmtScore('en', 0.1234)).toBe('0.123')
    expect(fmtScore('fr', 1.5)).toBe('1,500')
    expect(fmtScore('en', null)).toBe('—')
    expect(fmtScore('en', Number.POSITIVE_INFINITY)).toBe('—')
  })
  it('builds the feedback URL and curl next to the prediction endpoint', () => {
    expect(feedbackUrl('http://h:8000/api/predict/abc/')).toBe('http://h:8000/api/predict/abc/feedback')
    const curl = feedbackCurl('http://h:8000/api/predict/abc', 'classification', 'mg_ab')
    expect(curl).toContain("curl -X POST 'http://h:8000/api/predict/abc/feedback'")
    expect(curl).toContain('X-API-Key: mg_ab…')
    expect(curl).toContain('"request_id"')
    expect(feedbackCurl('u', 'regression', 'k')).toContain('"actual": 42.0')
  })
})

describe('simulate command', () => {
  it('quotes a feature name with spaces or quotes for the shell', () => {
    expect(shellWord('petal_length=+2sd')).toBe('petal_length=+2sd')
    expect(shellWord('petal length (cm)=+2sd')).toBe("'petal length (cm)=+2sd'")
    expect(shellWord("it's")).toBe("'it'\\''s'")
    expect(simulateCommand('a1', 'petal length (cm)')).toBe(
      `modelgate simulate --api a1 --key "$MODELGATE_API_KEY" --rate 20 --duration 2m --drift 'petal length (cm)=+2sd'`,
    )
    expect(simulateCommand('a1')).not.toContain('--drift')
  })
})

describe('live metrics', () => {
  it('shows accuracy and F1 for a classifier, MAE and RMSE for a regressor', () => {
    expect(liveMetrics('classification')).toEqual(['accuracy', 'f1'])
    expect(liveMetrics('regression')).toEqual(['mae', 'rmse'])
  })
  it('compares a live metric with the test one', () => {
    const v = { version: 1, n: 10, accuracy: 0.8, f1: null, mae: null, rmse: null, test_metrics: { accuracy: 0.95 } }
    expect(metricGap(v, 'accuracy')).toBeCloseTo(-0.15)
    expect(metricGap(v, 'f1')).toBeNull()
    expect(metricGap(v, 'mae')).toBeNull()
  })
  it('puts the series in one row per time with a column per version, gaps where no feedback', () => {
    const report: PerformanceReport = {
      api_id: 'a',
      task: 'classification',
      range: '1h',
      matched: 3,
      unmatched: 0,
      versions: [],
      series: [
        { t: '2026-01-01T00:01:00Z', version: 2, n: 1, accuracy: 1, mae: null },
        { t: '2026-01-01T00:00:00Z', version: 1, n: 2, accuracy: 0.5, mae: null },
        { t: '2026-01-01T00:01:00Z', version: 1, n: 0, accuracy: 0, mae: null },
      ],
    }
    const { rows, versions } = performanceRows(report)
    expect(versions).toEqual([1, 2])
    expect(rows).toEqual([
      { t: '2026-01-01T00:00:00Z', v1: 0.5 },
      { t: '2026-01-01T00:01:00Z', v2: 1, v1: null },
    ])
  })
  it('has every string in both languages', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(fr).sort())
  })
})

describe('sampled windows', () => {
  it('names the rows scored only when fewer than the live rows', () => {
    expect(sampledRows({ live_rows: 970_000, sampled_rows: 29_400 })).toBe(29_400)
    expect(sampledRows({ live_rows: 1_500, sampled_rows: 1_500 })).toBeNull()
    expect(sampledRows({ live_rows: 1_500, sampled_rows: null })).toBeNull()
    expect(sampledRows({ live_rows: 1_500 })).toBeNull()
    expect(en['drift.sampled']).toContain('{sampled}')
    expect(fr['drift.sampled']).toContain('{sampled}')
  })
})
