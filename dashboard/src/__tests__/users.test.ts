import { describe, expect, it } from 'vitest'
import { ApiError } from '../api'
import { translate } from '../i18n'
import type { TranslationKey } from '../i18n'
import { generatePassword, userError } from '../pages/UsersPage'

const t = (key: TranslationKey, vars?: Record<string, string | number>) => translate('en', key, vars)

describe('users page helpers', () => {
  it('generates 16-character URL-safe passwords that differ', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 50; i++) {
      const password = generatePassword()
      expect(password).toMatch(/^[A-Za-z0-9_-]{16}$/)
      seen.add(password)
    }
    expect(seen.size).toBe(50)
  })

  it('says the last-admin and taken-username refusals in words, other errors as sent', () => {
    expect(userError(t, new ApiError(409, 'LAST_ADMIN', 'the last active admin cannot be deactivated'))).toBe(
      'At least one active administrator must remain.',
    )
    expect(userError(t, new ApiError(409, 'CONFLICT', 'taken', { username: 'bob' }))).toBe('This username is taken.')
    expect(userError(t, new ApiError(400, 'INVALID_INPUT', 'invalid request body'))).toBe('invalid request body')
  })
})
