// Admin page: every account with its role, status and last login; create, change role, reset a
// password (shown once), deactivate or reactivate (with confirmation). The server refuses what would
// leave no active admin (409 LAST_ADMIN); the page says so instead of a raw message.
import { useState } from 'react'
import type { FormEvent } from 'react'
import { api, ApiError, getStoredUser } from '../api'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { CopyButton } from '../components/CopyButton'
import { EmptyState, ErrorState, Skeleton } from '../components/Feedback'
import { Modal } from '../components/Modal'
import { fmtDate } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { Translate } from '../i18n'
import type { Role, User } from '../types'

const MIN_PASSWORD = 8
const USERNAME = /^[A-Za-z0-9_.@-]{3,64}$/

/** A random password for the admin to hand over: 16 characters from the browser's CSPRNG, 96 bits
 * (64 symbols, so `byte % 64` picks each one without bias). */
export function generatePassword(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => alphabet[b % 64]).join('')
}

/** The sentence for an error the users API answers. */
export function userError(t: Translate, err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'LAST_ADMIN') return t('users.error.lastAdmin')
    if (err.status === 409 && err.details.username !== undefined) return t('users.error.taken')
  }
  return err instanceof Error ? err.message : String(err)
}

type Pending =
  | { kind: 'active'; user: User; active: boolean }
  | { kind: 'role'; user: User; role: Role }
  | { kind: 'reset'; user: User }
  | { kind: 'create' }

export function UsersPage() {
  const { t, lang } = useI18n()
  const users = useAsync(() => api.users(), [])
  const me = getStoredUser()
  const [pending, setPending] = useState<Pending | null>(null)
  const [notice, setNotice] = useState<{ tone: 'success' | 'error'; text: string } | null>(null)

  const done = (text: string) => {
    setPending(null)
    setNotice({ tone: 'success', text })
    users.reload(true)
  }
  const roleLabel = (role: Role) => t(role === 'admin' ? 'users.roleAdmin' : 'users.roleUser')

  return (
    <div className="page" data-testid="users-page">
      <div className="page-header">
        <div>
          <h1>{t('users.title')}</h1>
          <p className="muted">{t('users.subtitle')}</p>
        </div>
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => setPending({ kind: 'create' })}
          data-testid="new-user-button"
        >
          {t('users.new')}
        </button>
      </div>

      {notice && (
        <div
          className={`callout callout-${notice.tone}`}
          role={notice.tone === 'error' ? 'alert' : 'status'}
          data-testid="users-notice"
        >
          <p>{notice.text}</p>
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setNotice(null)}>
            {t('common.close')}
          </button>
        </div>
      )}

      {users.loading && <Skeleton lines={4} height={20} />}
      {users.error && <ErrorState message={users.error} onRetry={() => users.reload()} />}
      {users.data && users.data.items.length === 0 && <EmptyState title={t('users.empty')} />}
      {users.data && users.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="users-table">
            <thead>
              <tr>
                <th scope="col">{t('users.username')}</th>
                <th scope="col">{t('users.role')}</th>
                <th scope="col">{t('users.status')}</th>
                <th scope="col">{t('users.lastLogin')}</th>
                <th scope="col">{t('users.created')}</th>
                <th scope="col">
                  <span className="sr-only">{t('common.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.items.map((u) => {
                const self = me !== null && String(me.id) === String(u.id)
                const active = u.active !== false
                return (
                  <tr key={u.id} data-testid="user-row" data-username={u.username} data-active={String(active)}>
                    <td data-label={t('users.username')}>
                      <span className="strong">{u.username}</span>
                      {self && (
                        <>
                          {' '}
                          <span className="tag" title={t('users.selfHint')}>
                            {t('users.you')}
                          </span>
                        </>
                      )}
                    </td>
                    <td data-label={t('users.role')}>
                      <select
                        value={u.role}
                        aria-label={t('users.roleChange') + ' — ' + u.username}
                        disabled={self}
                        title={self ? t('users.selfHint') : undefined}
                        onChange={(e) => setPending({ kind: 'role', user: u, role: e.target.value as Role })}
                        data-testid="user-role-select"
                      >
                        <option value="user">{roleLabel('user')}</option>
                        <option value="admin">{roleLabel('admin')}</option>
                      </select>
                    </td>
                    <td data-label={t('users.status')}>
                      <span
                        className={`badge badge-${active ? 'active' : 'inactive'}`}
                        data-testid="user-status"
                        data-status={active ? 'active' : 'inactive'}
                      >
                        <span className="badge-dot" aria-hidden="true" />
                        {t(active ? 'users.statusActive' : 'users.statusInactive')}
                      </span>
                    </td>
                    <td data-label={t('users.lastLogin')} data-testid="user-last-login">
                      {u.last_login ? fmtDate(lang, u.last_login) : t('users.never')}
                    </td>
                    <td data-label={t('users.created')}>{fmtDate(lang, u.created_at)}</td>
                    <td className="cell-actions">
                      <div className="actions">
                        <button
                          type="button"
                          className="btn btn-sm"
                          disabled={self}
                          title={self ? t('users.selfHint') : undefined}
                          onClick={() => setPending({ kind: 'reset', user: u })}
                          data-testid="user-reset-password"
                        >
                          {t('users.resetPassword')}
                        </button>
                        <button
                          type="button"
                          className={`btn btn-sm ${active ? 'btn-danger-outline' : ''}`}
                          disabled={self}
                          title={self ? t('users.selfHint') : undefined}
                          onClick={() => setPending({ kind: 'active', user: u, active: !active })}
                          data-testid="user-toggle-active"
                        >
                          {t(active ? 'users.deactivate' : 'users.activate')}
                        </button>
                      </div>
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}

      {pending?.kind === 'create' && (
        <CreateUserModal
          onClose={() => setPending(null)}
          onCreated={() => users.reload(true)}
        />
      )}
      {pending?.kind === 'reset' && (
        <ResetPasswordModal user={pending.user} onClose={() => setPending(null)} />
      )}
      {pending?.kind === 'active' && (
        <ConfirmDialog
          title={t(pending.active ? 'users.activateTitle' : 'users.deactivateTitle', { name: pending.user.username })}
          message={t(pending.active ? 'users.activateConfirm' : 'users.deactivateConfirm')}
          confirmLabel={t(pending.active ? 'users.activate' : 'users.deactivate')}
          danger={!pending.active}
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            try {
              await api.updateUser(pending.user.id, { active: pending.active })
            } catch (err) {
              throw new Error(userError(t, err))
            }
            done(t('users.changed'))
          }}
        />
      )}
      {pending?.kind === 'role' && (
        <ConfirmDialog
          title={t('users.roleTitle', { name: pending.user.username })}
          message={`${roleLabel(pending.role)} — ${t(
            pending.role === 'admin' ? 'users.roleConfirmAdmin' : 'users.roleConfirmUser',
          )}`}
          confirmLabel={t('users.roleChange')}
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            try {
              await api.updateUser(pending.user.id, { role: pending.role })
            } catch (err) {
              throw new Error(userError(t, err))
            }
            done(t('users.changed'))
          }}
        />
      )}
    </div>
  )
}

function PasswordField({
  value,
  onChange,
  testId,
}: {
  value: string
  onChange: (value: string) => void
  testId: string
}) {
  const { t } = useI18n()
  return (
    <label className="field">
      <span>{t('users.password')}</span>
      <div className="copy-row">
        <input
          type="text"
          value={value}
          onChange={(e) => onChange(e.target.value)}
          autoComplete="new-password"
          spellCheck={false}
          minLength={MIN_PASSWORD}
          maxLength={256}
          className="mono"
          data-testid={testId}
        />
        <button type="button" className="btn" onClick={() => onChange(generatePassword())} data-testid={`${testId}-generate`}>
          {t('users.generate')}
        </button>
      </div>
      <small className="muted">{t('users.passwordHint')}</small>
    </label>
  )
}

function Credentials({ username, password, text }: { username: string; password: string; text: string }) {
  const { t } = useI18n()
  return (
    <div className="key-reveal" data-testid="credentials-reveal">
      <p className="callout callout-warning">{text}</p>
      <label className="field">
        <span>{t('users.username')}</span>
        <input readOnly value={username} className="mono" />
      </label>
      <label className="field">
        <span>{t('users.password')}</span>
        <div className="copy-row">
          <input readOnly value={password} className="mono" data-testid="revealed-password" />
          <CopyButton text={password} testId="copy-password" />
        </div>
      </label>
    </div>
  )
}

function CreateUserModal({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const { t } = useI18n()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState(generatePassword)
  const [role, setRole] = useState<Role>('user')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [created, setCreated] = useState<User | null>(null)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (busy) return
    if (!USERNAME.test(username.trim())) return setError(t('users.error.username'))
    if (password.length < MIN_PASSWORD) return setError(t('users.error.tooShort'))
    setBusy(true)
    setError(null)
    try {
      setCreated(await api.createUser({ username: username.trim(), password, role }))
      onCreated()
    } catch (err) {
      setError(userError(t, err))
    } finally {
      setBusy(false)
    }
  }

  if (created) {
    return (
      <Modal
        title={t('users.created.title')}
        onClose={onClose}
        testId="create-user-modal"
        footer={
          <button type="button" className="btn btn-primary" onClick={onClose} data-testid="create-user-close">
            {t('common.close')}
          </button>
        }
      >
        <Credentials
          username={created.username}
          password={password}
          text={t('users.created.body', { name: created.username })}
        />
      </Modal>
    )
  }
  return (
    <Modal
      title={t('users.createTitle')}
      onClose={onClose}
      testId="create-user-modal"
      footer={
        <>
          <button type="button" className="btn" onClick={onClose}>
            {t('common.cancel')}
          </button>
          <button
            type="submit"
            form="create-user-form"
            className="btn btn-primary"
            disabled={busy}
            data-testid="create-user-submit"
          >
            {busy ? t('common.working') : t('users.create')}
          </button>
        </>
      }
    >
      <form id="create-user-form" className="form" onSubmit={(e) => void submit(e)} noValidate>
        <label className="field">
          <span>{t('users.username')}</span>
          <input
            data-autofocus
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            autoComplete="off"
            spellCheck={false}
            maxLength={64}
            data-testid="new-user-username"
          />
          <small className="muted">{t('users.usernameHint')}</small>
        </label>
        <PasswordField value={password} onChange={setPassword} testId="new-user-password" />
        <label className="field field-narrow">
          <span>{t('users.role')}</span>
          <select value={role} onChange={(e) => setRole(e.target.value as Role)} data-testid="new-user-role">
            <option value="user">{t('users.roleUser')}</option>
            <option value="admin">{t('users.roleAdmin')}</option>
          </select>
        </label>
        {error && (
          <p className="form-error" role="alert" data-testid="create-user-error">
            {error}
          </p>
        )}
      </form>
    </Modal>
  )
}

function ResetPasswordModal({ user, onClose }: { user: User; onClose: () => void }) {
  const { t } = useI18n()
  const [password, setPassword] = useState(generatePassword)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [reset, setReset] = useState(false)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (busy) return
    if (password.length < MIN_PASSWORD) return setError(t('users.error.tooShort'))
    setBusy(true)
    setError(null)
    try {
      await api.updateUser(user.id, { password })
      setReset(true)
    } catch (err) {
      setError(userError(t, err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Modal
      title={t('users.resetTitle', { name: user.username })}
      onClose={onClose}
      testId="reset-password-modal"
      footer={
        reset ? (
          <button type="button" className="btn btn-primary" onClick={onClose} data-testid="reset-password-close">
            {t('common.close')}
          </button>
        ) : (
          <>
            <button type="button" className="btn" onClick={onClose}>
              {t('common.cancel')}
            </button>
            <button
              type="submit"
              form="reset-password-form"
              className="btn btn-primary"
              disabled={busy}
              data-testid="reset-password-submit"
            >
              {busy ? t('common.working') : t('users.reset')}
            </button>
          </>
        )
      }
    >
      {reset ? (
        <Credentials username={user.username} password={password} text={t('users.reset.done', { name: user.username })} />
      ) : (
        <form id="reset-password-form" className="form" onSubmit={(e) => void submit(e)} noValidate>
          <p className="muted">{t('users.resetHint')}</p>
          <PasswordField value={password} onChange={setPassword} testId="reset-password-input" />
          {error && (
            <p className="form-error" role="alert" data-testid="reset-password-error">
              {error}
            </p>
          )}
        </form>
      )}
    </Modal>
  )
}
