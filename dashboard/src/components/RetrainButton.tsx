// The Retrain button of an API (issue 15): trains a new version of its model with the serving
// version's recipe (optionally adding the feedback rows), shows the job as the training wizard does,
// and hands the new version to the page, which opens the deploy dialog with it preselected.
import { useState } from 'react'
import { api, ApiError } from '../api'
import { errorText } from '../errorMessages'
import { useI18n } from '../i18n'
import { TrainingProgress } from '../pages/TrainingWizard'
import type { ExportedApi, TrainingJob } from '../types'
import { Modal } from './Modal'

interface RetrainButtonProps {
  api: ExportedApi
  /** Called with the new version's number once its training succeeded. */
  onRetrained: (version: number) => void
  testId?: string
}

export function RetrainButton({ api: a, onRetrained, testId = 'retrain-button' }: RetrainButtonProps) {
  const { t, lang } = useI18n()
  const [open, setOpen] = useState(false)
  const [includeFeedback, setIncludeFeedback] = useState(false)
  const [job, setJob] = useState<TrainingJob | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  const close = () => {
    setOpen(false)
    setJob(null)
    setError(null)
    setBusy(false)
  }
  const start = async () => {
    setBusy(true)
    setError(null)
    try {
      setJob(await api.retrain(a.id, includeFeedback))
    } catch (err) {
      if (err instanceof ApiError && err.code === 'RECIPE_UNAVAILABLE') setError(`${t('retrain.recipeUnavailable')} (${err.message})`)
      else if (err instanceof ApiError && err.status === 403) setError(t('retrain.forbidden'))
      else setError(errorText(lang, err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <>
      <button type="button" className="btn" onClick={() => setOpen(true)} data-testid={testId}>
        {t('retrain.button')}
      </button>
      {open && (
        <Modal
          title={t('retrain.title', { name: a.name })}
          onClose={close}
          testId="retrain-dialog"
          wide={job !== null}
          footer={
            job === null ? (
              <>
                <button type="button" className="btn" onClick={close}>
                  {t('common.cancel')}
                </button>
                <button
                  type="button"
                  className="btn btn-primary"
                  disabled={busy}
                  onClick={() => void start()}
                  data-testid="retrain-start"
                  data-autofocus
                >
                  {busy ? t('common.working') : t('retrain.start')}
                </button>
              </>
            ) : (
              <button type="button" className="btn" onClick={close}>
                {t('common.close')}
              </button>
            )
          }
        >
          {job === null ? (
            <>
              <p>{t('retrain.text', { model: a.model_name, version: a.version_number })}</p>
              <label className="switch">
                <input
                  type="checkbox"
                  checked={includeFeedback}
                  onChange={(e) => setIncludeFeedback(e.target.checked)}
                  data-testid="retrain-include-feedback"
                />
                <span className="switch-track" aria-hidden="true" />
                <span>{t('retrain.includeFeedback')}</span>
              </label>
              <p className="muted small">{t('retrain.includeFeedbackHint')}</p>
              {error && (
                <p className="form-error" role="alert" data-testid="retrain-error">
                  {error}
                </p>
              )}
            </>
          ) : (
            <TrainingProgress
              job={job}
              onDone={(finished) => {
                const version = finished.version_number
                close()
                if (version !== null) onRetrained(version)
              }}
              onRetry={() => setJob(null)}
            />
          )}
        </Modal>
      )}
    </>
  )
}
