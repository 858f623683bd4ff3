import { useState } from 'react'
import type { FormEvent, ReactNode } from 'react'
import { api, ApiError, storeSession } from '../api'
import { useI18n } from '../i18n'
import type { User } from '../types'

interface LoginPageProps {
  onLoggedIn: (user: User) => void
  notice: string | null
  langSwitch: ReactNode
}

export function LoginPage({ onLoggedIn, notice, langSwitch }: LoginPageProps) {
  const { t } = useI18n()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const res = await api.login(username.trim(), password)
      storeSession(res.access_token, res.user)
      onLoggedIn(res.user)
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.code === 'INVALID_CREDENTIALS'))
        setError(t('auth.invalid'))
      else if (err instanceof ApiError && err.status === 429)
        setError(t('auth.tooManyAttempts', { seconds: Number(err.details.retry_after_s) || 1 }))
      else if (err instanceof ApiError && err.status === 503) setError(t('auth.busy'))
      else if (err instanceof ApiError && err.code === 'ACCOUNT_DEACTIVATED') setError(t('users.deactivatedLogin'))
      else setError(err instanceof Error ? err.message : String(err))
      setBusy(false)
    }
  }

  return (
    <div className="login-screen">
      <div className="login-lang">{langSwitch}</div>
      <form className="login-card" onSubmit={(e) => void submit(e)} data-testid="login-form" noValidate>
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true">
            M
          </span>
          <span className="brand-name">modelgate</span>
        </div>
        <h1>{t('auth.title')}</h1>
        <p className="muted">{t('auth.subtitle')}</p>
        {notice && (
          <div className="callout callout-info" role="status" data-testid="login-notice">
            {notice}
          </div>
        )}
        <label className="field">
          <span>{t('auth.username')}</span>
          <input
            name="username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            required
            autoFocus
            data-testid="login-username"
          />
        </label>
        <label className="field">
          <span>{t('auth.password')}</span>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            data-testid="login-password"
          />
        </label>
        {error && (
          <p className="form-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button
          type="submit"
          className="btn btn-primary btn-block"
          disabled={busy || !username || !password}
          data-testid="login-submit"
        >
          {busy ? t('auth.signingIn') : t('auth.signIn')}
        </button>
      </form>
    </div>
  )
}
