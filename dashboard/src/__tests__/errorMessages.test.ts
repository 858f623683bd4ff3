import { describe, expect, it } from 'vitest'
import { ApiError } from '../api'
import { alertKindLabel, errorText } from '../errorMessages'
import { translate } from '../i18n'
import type { TranslationKey } from '../i18n'
import { fmtCpuShare } from '../resourceFormat'

const t = (key: TranslationKey, vars?: Record<string, string | number>) => translate('fr', key, vars)

describe('server texts translated by code', () => {
  it('says a known code in the language, with the server detail after it', () => {
    const err = new ApiError(503, 'SERVICE_UNAVAILABLE', 'the monitoring store (ClickHouse) is unavailable')
    expect(errorText('fr', err)).toBe(
      'Service momentanément indisponible, réessayez dans un instant : the monitoring store (ClickHouse) is unavailable',
    )
    expect(errorText('en', new ApiError(404, 'NOT_FOUND', ''))).toBe('Not found')
  })

  it("keeps the server's message for an unknown code, the text of anything else", () => {
    expect(errorText('fr', new ApiError(418, 'TEAPOT', 'I am a teapot'))).toBe('I am a teapot')
    expect(errorText('en', new Error('boom'))).toBe('boom')
  })

  it('titles alert rule kinds, an unknown kind as itself', () => {
    expect(alertKindLabel(t, 'error_rate_5xx')).toBe('Taux d’erreurs 5xx élevé')
    expect(alertKindLabel(t, 'new_kind')).toBe('new_kind')
  })

  it('shows a tiny CPU share as below 0.1 %', () => {
    expect(fmtCpuShare('en', 0.0231)).toBe('< 0.1 %')
    expect(fmtCpuShare('en', 12.34)).toBe('12.3 %')
    expect(fmtCpuShare('en', 0)).toBe('0 %')
  })
})
