// The export form's checks: the rate limit's bounds (the server's), and one fresh key per form.
import { describe, expect, it } from 'vitest'
import { RATE_LIMIT_MAX, RATE_LIMIT_MIN, newIdempotencyKey, parseRateLimit } from '../components/ExportAPIModal'

describe('parseRateLimit', () => {
  it('accepts whole numbers within the bounds', () => {
    expect(parseRateLimit(String(RATE_LIMIT_MIN))).toBe(1)
    expect(parseRateLimit(' 250 ')).toBe(250)
    expect(parseRateLimit(String(RATE_LIMIT_MAX))).toBe(1_000_000)
  })
  it('refuses what the server would refuse', () => {
    for (const bad of ['', '0', '-1', '1000001', '2.5', '1e3', 'abc', '99999999999999999999']) {
      expect(parseRateLimit(bad)).toBeNull()
    }
  })
})

describe('newIdempotencyKey', () => {
  it('is 32 hex characters and never repeats', () => {
    const keys = new Set(Array.from({ length: 100 }, () => newIdempotencyKey()))
    expect(keys.size).toBe(100)
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{32}$/)
  })
})
