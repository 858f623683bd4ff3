import { api } from '../api'
import { EmptyState, ErrorState, Skeleton } from '../components/Feedback'
import { fmtDate, fmtNum } from '../format'
import type { Model } from '../types'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'

export function ModelsPage() {
  const { t, lang } = useI18n()
  const score = (m: Model) => {
    const latest = m.versions?.find((v) => v.number === m.latest_version)
    const key = m.task === 'regression' ? 'r2' : 'accuracy'
    const value = latest?.metrics?.[key]
    if (value === null || value === undefined) return '—'
    return `${key === 'r2' ? 'R²' : t('metric.accuracy')} ${fmtNum(lang, value, 3)}`
  }
  const { navigate } = useRouter()
  const models = useAsync(() => api.models(), [])

  return (
    <div className="page" data-testid="models-page">
      <div className="page-header">
        <div>
          <h1>{t('models.title')}</h1>
          <p className="muted">{t('models.subtitle')}</p>
        </div>
        <div className="actions">
          <Link to="/models/upload" className="btn" data-testid="upload-model-button">
            {t('byo.uploadButton')}
          </Link>
          <Link to="/models/new" className="btn btn-primary" data-testid="new-model-button">
            {t('models.train')}
          </Link>
        </div>
      </div>

      {models.loading && <Skeleton lines={5} height={20} />}
      {models.error && <ErrorState message={models.error} onRetry={() => models.reload()} />}
      {models.data && models.data.items.length === 0 && (
        <EmptyState title={t('models.empty')}>
          <p>{t('models.emptyHint')}</p>
          <Link to="/models/new" className="btn btn-primary">
            {t('models.train')}
          </Link>
        </EmptyState>
      )}
      {models.data && models.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="models-table">
            <thead>
              <tr>
                <th scope="col">{t('models.name')}</th>
                <th scope="col">{t('models.task')}</th>
                <th scope="col">{t('models.latestVersion')}</th>
                <th scope="col" className="num">{t('models.score')}</th>
                <th scope="col">{t('models.created')}</th>
                <th scope="col">
                  <span className="sr-only">{t('common.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {models.data.items.map((m) => (
                <tr
                  key={m.id}
                  className="clickable"
                  data-testid="model-row"
                  data-model-id={m.id}
                  onClick={() => navigate(`/models/${m.id}`)}
                >
                  <td data-label={t('models.name')}>
                    <Link to={`/models/${m.id}`} className="strong" onClick={(e) => e.stopPropagation()}>
                      {m.name}
                    </Link>
                  </td>
                  <td data-label={t('models.task')}>{t(m.task === 'regression' ? 'task.regression' : 'task.classification')}</td>
                  <td data-label={t('models.latestVersion')}>v{m.latest_version}</td>
                  <td data-label={t('models.score')} className="num">
                    {score(m)}
                  </td>
                  <td data-label={t('models.created')}>{fmtDate(lang, m.created_at)}</td>
                  <td className="cell-actions">
                    <Link to={`/models/${m.id}`} className="btn btn-sm" onClick={(e) => e.stopPropagation()}>
                      {t('common.open')}
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}
