// Every user's own page: who they are, their last login, and the form to change their password. The
// server answers a fresh token (every older one stops working); it replaces the stored session.
import { useState } from 'react'
import type { FormEvent } from 'react'
import { api, ApiError, storeSession } from '../api'
import { ErrorState, Skeleton } from '../components/Feedback'
import { fmtDate } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'

const MIN_PASSWORD = 8

export function AccountPage() {
  const { t, lang } = useI18n()
  const me = useAsync(() => api.me(), [])
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const [confirm, setConfirm] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [done, setDone] = useState(false)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (busy) return
    setDone(false)
    if (next.length < MIN_PASSWORD) return setError(t('users.error.tooShort'))
    if (next !== confirm) return setError(t('account.mismatch'))
    if (next === current) return setError(t('account.same'))
    setBusy(true)
    setError(null)
    try {
      const res = await api.changeOwnPassword(current, next)
      storeSession(res.access_token, res.user)
      setCurrent('')
      setNext('')
      setConfirm('')
      setDone(true)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'WRONG_PASSWORD') setError(t('account.wrongCurrent'))
      else if (err instanceof ApiError && err.status === 429)
        setError(t('account.tooMany', { seconds: Number(err.details.retry_after_s) || 1 }))
      else setError(err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="page" data-testid="account-page">
      <div className="page-header">
        <div>
          <h1>{t('account.title')}</h1>
          {me.data && (
            <p className="muted" data-testid="account-summary">
              <span className="strong">{me.data.username}</span> ·{' '}
              {t(me.data.role === 'admin' ? 'users.roleAdmin' : 'users.roleUser')} ·{' '}
              {t('account.lastLogin', {
                date: me.data.last_login ? fmtDate(lang, me.data.last_login) : t('users.never'),
              })}{' '}
              ·{' '}
              {t('account.since', { date: fmtDate(lang, me.data.created_at) })}
            </p>
          )}
        </div>
      </div>
      {me.loading && <Skeleton lines={1} height={18} />}
      {me.error && <ErrorState message={me.error} onRetry={() => me.reload()} />}

      <section className="panel" aria-labelledby="change-password-title" style={{ maxWidth: 520 }}>
        <h2 id="change-password-title">{t('account.changePassword')}</h2>
        <form className="form" onSubmit={(e) => void submit(e)} noValidate data-testid="change-password-form">
          <p className="muted">{t('account.sessionsNote')}</p>
          <label className="field">
            <span>{t('account.current')}</span>
            <input
              type="password"
              autoComplete="current-password"
              value={current}
              onChange={(e) => setCurrent(e.target.value)}
              maxLength={256}
              data-testid="current-password"
            />
          </label>
          <label className="field">
            <span>{t('account.new')}</span>
            <input
              type="password"
              autoComplete="new-password"
              value={next}
              onChange={(e) => setNext(e.target.value)}
              minLength={MIN_PASSWORD}
              maxLength={256}
              data-testid="new-password"
            />
            <small className="muted">{t('users.passwordHint')}</small>
          </label>
          <label className="field">
            <span>{t('account.confirm')}</span>
            <input
              type="password"
              autoComplete="new-password"
              value={confirm}
              onChange={(e) => setConfirm(e.target.value)}
              maxLength={256}
              data-testid="confirm-password"
            />
          </label>
          {error && (
            <p className="form-error" role="alert" data-testid="change-password-error">
              {error}
            </p>
          )}
          {done && (
            <p className="callout callout-success" role="status" data-testid="password-changed">
              {t('account.done')}
            </p>
          )}
          <div className="form-actions">
            <button
              type="submit"
              className="btn btn-primary"
              disabled={busy || !current || !next || !confirm}
              data-testid="change-password-submit"
            >
              {busy ? t('common.working') : t('account.submit')}
            </button>
          </div>
        </form>
      </section>
    </div>
  )
}
