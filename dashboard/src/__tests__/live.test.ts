import { describe, expect, it } from 'vitest'
import { fmtStep, markerText, placeMarkers } from '../components/TimeSeriesChart'
import { en, fr } from '../strings/live'
import type { ChartMarker, TimePoint, TimeSeries } from '../types'

function point(ts: string, requests = 0): TimePoint {
  return {
    ts,
    requests,
    successes: requests,
    errors_4xx: 0,
    errors_5xx: 0,
    rejected_unauthenticated: 0,
    avg_ms: 0,
    p50_ms: 0,
    p95_ms: 0,
    p99_ms: 0,
    cpu_ms: 0,
  }
}

function marker(ts: string, kind: ChartMarker['kind'], detail = ''): ChartMarker {
  return { ts, kind, version_number: 2, detail, actor: 'ana' }
}

const series: TimeSeries = {
  range: '15m',
  bucket: '10s',
  step_seconds: 10,
  points: [point('2026-12-01T01:00:00Z'), point('2026-12-01T01:00:10Z', 4), point('2026-12-01T01:00:20Z')],
  markers: [
    marker('2026-12-01T01:00:13.250Z', 'deploy'),
    marker('2026-12-01T01:00:20Z', 'status', 'inactive'),
    marker('2026-12-01T00:59:59.999Z', 'key_rotated'), // before the first bucket: not drawn
  ],
}

describe('live charts', () => {
  it('puts each marker on the bucket holding it, and leaves out those outside the buckets', () => {
    expect(placeMarkers(series).map((m) => [m.x, m.marker.kind])).toEqual([
      ['2026-12-01T01:00:10Z', 'deploy'],
      ['2026-12-01T01:00:20Z', 'status'],
    ])
  })

  it('says what each change was, in both languages', () => {
    const t = (key: string, vars?: Record<string, string | number>) =>
      Object.entries(vars ?? {}).reduce((text, [k, v]) => text.replace(`{${k}}`, String(v)), (fr as Record<string, string>)[key] ?? key)
    expect(markerText(t as never, marker('x', 'deploy'))).toBe('Version v2 déployée')
    expect(markerText(t as never, marker('x', 'status', 'inactive'))).toBe('Statut : inactive')
    expect(Object.keys(en).sort()).toEqual(Object.keys(fr).sort())
  })

  it('names bucket lengths', () => {
    expect([10, 30, 60, 300, 3600, 21600, 86400].map(fmtStep)).toEqual(['10 s', '30 s', '1 min', '5 min', '1 h', '6 h', '1 d'])
  })
})
