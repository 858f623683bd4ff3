// How the API list shows an API's resources (issue 12): its CPU share and its models' memory.
import { fmtPercent } from './format'
import type { Lang } from './i18n'

/** A CPU share in %: a share too small for one decimal reads "< 0.1 %", not "0 %". */
export function fmtCpuShare(lang: Lang, pct: number | null | undefined): string {
  if (pct === null || pct === undefined || Number.isNaN(pct)) return '—'
  if (pct > 0 && pct < 0.05) return `< ${fmtPercent(lang, 0.1)}`
  return fmtPercent(lang, pct)
}
