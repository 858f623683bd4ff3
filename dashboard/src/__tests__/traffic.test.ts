import { describe, expect, it } from 'vitest'
import { parseWeight } from '../components/TrafficPanel'
import { en, fr } from '../strings/traffic'

describe('traffic weight', () => {
  it('accepts a share above 0 and at most 100, with a comma or a dot', () => {
    expect(parseWeight('10')).toBe(10)
    expect(parseWeight(' 2,5 ')).toBe(2.5)
    expect(parseWeight('100')).toBe(100)
    expect(parseWeight('0.01')).toBe(0.01)
  })
  it('refuses nothing, zero, negatives, above 100 and text', () => {
    for (const bad of ['', '0', '-5', '100.5', 'ten', 'NaN', 'Infinity']) expect(parseWeight(bad)).toBeNull()
  })
  it('has every string in both languages', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(fr).sort())
  })
})
