// Confirmation before an action; destructive ones can require typing a name.
import { useState } from 'react'
import type { ReactNode } from 'react'
import { useI18n } from '../i18n'
import { Modal } from './Modal'

interface ConfirmDialogProps {
  title: string
  message: ReactNode
  confirmLabel: string
  onConfirm: () => Promise<void> | void
  onCancel: () => void
  danger?: boolean
  /** When set, the user must type this text before confirming. */
  requireText?: string
}

export function ConfirmDialog({
  title,
  message,
  confirmLabel,
  onConfirm,
  onCancel,
  danger = false,
  requireText,
}: ConfirmDialogProps) {
  const { t } = useI18n()
  const [typed, setTyped] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const ready = requireText === undefined || typed.trim() === requireText

  const confirm = async () => {
    if (!ready || busy) return
    setBusy(true)
    setError(null)
    try {
      await onConfirm()
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
      setBusy(false)
    }
  }

  return (
    <Modal
      title={title}
      onClose={onCancel}
      testId="confirm-dialog"
      tone={danger ? 'danger' : 'default'}
      footer={
        <>
          <button type="button" className="btn" onClick={onCancel} data-testid="confirm-cancel">
            {t('common.cancel')}
          </button>
          <button
            type="button"
            className={`btn ${danger ? 'btn-danger' : 'btn-primary'}`}
            onClick={() => void confirm()}
            disabled={!ready || busy}
            data-testid="confirm-ok"
          >
            {busy ? t('common.working') : confirmLabel}
          </button>
        </>
      }
    >
      <div className="confirm-message">{message}</div>
      {requireText !== undefined && (
        <form
          onSubmit={(e) => {
            e.preventDefault()
            void confirm()
          }}
        >
          <label className="field">
            <span>{t('confirm.typeName', { name: requireText })}</span>
            <input
              data-autofocus
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
              autoComplete="off"
              spellCheck={false}
              data-testid="confirm-input"
            />
          </label>
        </form>
      )}
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </Modal>
  )
}
