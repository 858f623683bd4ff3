import { describe, expect, it } from 'vitest'
import { parseCsvPreview, splitCsvLine } from '../csv'
import { fmtRate, rateTone, toPercent } from '../format'
import { dictionaries, translate } from '../i18n'

describe('csv header parsing', () => {
  it('splits quoted fields with commas and doubled quotes', () => {
    expect(splitCsvLine('a,"b, c","say ""hi""",d')).toEqual(['a', 'b, c', 'say "hi"', 'd'])
  })

  it('reads the header and complete rows, detecting a semicolon delimiter and a BOM', () => {
    const preview = parseCsvPreview('\uFEFFx;y;label\r\n1;2;a\r\n3;4;b\r\n5;6', 5)
    expect(preview.header).toEqual(['x', 'y', 'label'])
    expect(preview.delimiter).toBe(';')
    expect(preview.rows).toEqual([
      ['1', '2', 'a'],
      ['3', '4', 'b'],
    ])
  })
})

describe('rates', () => {
  it('shows fractions as percentages in each language', () => {
    expect(toPercent(0.75)).toBe(75)
    expect(fmtRate('en', 0.925)).toBe('92.5 %')
    expect(fmtRate('fr', 0.925)).toBe('92,5 %')
    expect(fmtRate('fr', null)).toBe('—')
  })

  it('colours success rates by threshold', () => {
    expect(rateTone(0.995)).toBe('good')
    expect(rateTone(0.96)).toBe('warning')
    expect(rateTone(0.5)).toBe('critical')
  })
})

describe('i18n', () => {
  it('keeps French by default for the export button, as in the seeds', () => {
    expect(translate('fr', 'export.button')).toBe('Exporter sous forme API')
  })

  it('has the same placeholders in every language for every key', () => {
    const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()
    for (const [key, fr] of Object.entries(dictionaries.fr)) {
      const en = dictionaries.en[key as keyof typeof dictionaries.fr]
      expect(en, key).toBeTruthy()
      expect(placeholders(en), key).toEqual(placeholders(fr))
    }
  })

  it('fills placeholders', () => {
    expect(translate('en', 'req.pageOf', { page: 2, pages: 5 })).toBe('Page 2 of 5')
  })
})
