import { describe, expect, it } from 'vitest'
import { profileRows } from '../columns'

const header = ['id', 'code', 'price', 'plan', 'churned']
const rows = Array.from({ length: 12 }, (_, i) => [String(100 + i), `C-${i}`, (i * 1.5).toFixed(2), i % 2 ? 'pro' : 'basic', i % 3 ? 'yes' : 'no'])

describe('profileRows', () => {
  it('flags integer and text columns unique on every row as id-like, not floats or repeated values', () => {
    const byName = Object.fromEntries(profileRows(header, rows).map((c) => [c.name, c]))
    expect(byName.id?.idLike).toBe(true)
    expect(byName.id?.integer).toBe(true)
    expect(byName.code?.idLike).toBe(true)
    expect(byName.code?.numeric).toBe(false)
    expect(byName.price?.idLike).toBe(false)
    expect(byName.price?.numeric).toBe(true)
    expect(byName.plan?.idLike).toBe(false)
  })

  it('flags nothing on a handful of rows or with an empty cell', () => {
    expect(profileRows(header, rows.slice(0, 5)).some((c) => c.idLike)).toBe(false)
    const holed = rows.map((r, i) => (i === 3 ? ['', ...r.slice(1)] : r))
    expect(profileRows(header, holed).find((c) => c.name === 'id')?.idLike).toBe(false)
  })
})
