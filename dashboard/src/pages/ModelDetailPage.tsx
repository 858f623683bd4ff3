import { useState } from 'react'
import { api } from '../api'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorState, Skeleton } from '../components/Feedback'
import { Step4Result } from '../components/Step4Result'
import { fmtDate } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'

export function ModelDetailPage({ modelId }: { modelId: string }) {
  const { t, lang } = useI18n()
  const { location, navigate } = useRouter()
  const model = useAsync(() => api.model(modelId), [modelId])
  const [confirmDelete, setConfirmDelete] = useState(false)

  if (model.loading) return <div className="page"><Skeleton lines={8} height={22} /></div>
  if (model.error || !model.data)
    return (
      <div className="page">
        <ErrorState message={model.error ?? ''} onRetry={() => model.reload()} />
      </div>
    )
  const m = model.data
  const versions = [...(m.versions ?? [])].sort((a, b) => b.number - a.number)
  const wanted = Number(location.search.get('version') ?? m.latest_version)
  const version = versions.find((v) => v.number === wanted) ?? versions[0]

  return (
    <div className="page" data-testid="model-detail">
      <div className="page-header">
        <div>
          <Link to="/models" className="back-link">
            ← {t('nav.models')}
          </Link>
          <h1>{m.name}</h1>
          <p className="muted">
            {t(m.task === 'regression' ? 'task.regression' : 'task.classification')} · {t('models.created')}{' '}
            {fmtDate(lang, m.created_at)}
          </p>
        </div>
        <div className="actions">
          <Link to={`/models/new?name=${encodeURIComponent(m.name)}`} className="btn" data-testid="new-version-button">
            {t('models.newVersion')}
          </Link>
          <button type="button" className="btn btn-danger-outline" onClick={() => setConfirmDelete(true)}>
            {t('models.delete')}
          </button>
        </div>
      </div>
      {versions.length > 1 && (
        <label className="field field-inline">
          <span>{t('models.version')}</span>
          <select
            value={version?.number}
            onChange={(e) => navigate(`/models/${m.id}?version=${e.target.value}`, { replace: true })}
            data-testid="version-select"
          >
            {versions.map((v) => (
              <option key={v.number} value={v.number}>
                v{v.number} — {v.algorithm} — {fmtDate(lang, v.created_at)}
              </option>
            ))}
          </select>
        </label>
      )}
      {version ? <Step4Result model={m} version={version} /> : <p className="muted">{t('models.noVersion')}</p>}
      {confirmDelete && (
        <ConfirmDialog
          title={t('models.deleteTitle')}
          message={<p>{t('models.deleteConfirm', { name: m.name })}</p>}
          confirmLabel={t('models.delete')}
          danger
          requireText={m.name}
          onCancel={() => setConfirmDelete(false)}
          onConfirm={async () => {
            await api.deleteModel(m.id)
            navigate('/models')
          }}
        />
      )}
    </div>
  )
}
