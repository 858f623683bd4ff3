// Locale-aware formatting of numbers, durations, rates and dates.
import type { Lang } from './i18n'

const locales: Record<Lang, string> = { fr: 'fr-FR', en: 'en-GB' }

export function fmtInt(lang: Lang, value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—'
  return new Intl.NumberFormat(locales[lang], { maximumFractionDigits: 0 }).format(value)
}

export function fmtNum(lang: Lang, value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—'
  return new Intl.NumberFormat(locales[lang], { maximumFractionDigits: digits }).format(value)
}

export function fmtMs(lang: Lang, value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—'
  const digits = value < 10 ? 2 : value < 100 ? 1 : 0
  return `${new Intl.NumberFormat(locales[lang], { maximumFractionDigits: digits }).format(value)} ms`
}

/** Rates in the contract are fractions (0..1); values above 1 are taken as already in percent. */
export function toPercent(rate: number | null | undefined): number | null {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return null
  return rate > 1 ? rate : rate * 100
}

export function fmtRate(lang: Lang, rate: number | null | undefined): string {
  const pct = toPercent(rate)
  if (pct === null) return '—'
  return `${new Intl.NumberFormat(locales[lang], { maximumFractionDigits: 1 }).format(pct)} %`
}

export function fmtPercent(lang: Lang, pct: number | null | undefined): string {
  if (pct === null || pct === undefined || Number.isNaN(pct)) return '—'
  return `${new Intl.NumberFormat(locales[lang], { maximumFractionDigits: 1 }).format(pct)} %`
}

export function fmtMb(lang: Lang, mb: number | null | undefined): string {
  if (mb === null || mb === undefined || Number.isNaN(mb)) return '—'
  const unit = lang === 'fr' ? 'Mo' : 'MB'
  return `${new Intl.NumberFormat(locales[lang], { maximumFractionDigits: 1 }).format(mb)} ${unit}`
}

export function fmtDate(lang: Lang, iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return new Intl.DateTimeFormat(locales[lang], { dateStyle: 'medium', timeStyle: 'short' }).format(d)
}

export function fmtDateTimeSeconds(lang: Lang, iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return new Intl.DateTimeFormat(locales[lang], { dateStyle: 'short', timeStyle: 'medium' }).format(d)
}

export function fmtTick(lang: Lang, iso: string, bucket: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  if (bucket === 'day') return new Intl.DateTimeFormat(locales[lang], { day: '2-digit', month: 'short' }).format(d)
  if (bucket === 'hour')
    return new Intl.DateTimeFormat(locales[lang], { day: '2-digit', hour: '2-digit', minute: '2-digit' }).format(d)
  return new Intl.DateTimeFormat(locales[lang], { hour: '2-digit', minute: '2-digit' }).format(d)
}

export function fmtRelative(lang: Lang, iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const seconds = Math.round((d.getTime() - now) / 1000)
  const rtf = new Intl.RelativeTimeFormat(locales[lang], { numeric: 'auto' })
  const abs = Math.abs(seconds)
  if (abs < 60) return rtf.format(seconds, 'second')
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute')
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour')
  return rtf.format(Math.round(seconds / 86400), 'day')
}

/** Colour of a success rate: good from 99 %, warning from 95 %, critical below. */
export function rateTone(rate: number | null | undefined): 'default' | 'good' | 'warning' | 'critical' {
  const pct = toPercent(rate)
  if (pct === null) return 'default'
  if (pct >= 99) return 'good'
  if (pct >= 95) return 'warning'
  return 'critical'
}
