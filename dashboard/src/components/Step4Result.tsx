// The trained version's result: metrics, details, and the "Exporter sous forme API" button (opens the export form).
import { useRef, useState } from 'react'
import { api } from '../api'
import { fmtDate, fmtNum } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { Model, ModelVersion } from '../types'
import { ExportAPIModal } from './ExportAPIModal'
import { StatCard } from './Feedback'

const METRIC_ORDER = ['accuracy', 'f1', 'roc_auc', 'r2', 'mae', 'rmse']

export function Step4Result({ model, version, onExported }: { model: Model; version: ModelVersion; onExported?: () => void }) {
  const { t, lang } = useI18n()
  // The export form (ExportAPIModal): opened by the button, one Idempotency-Key per opening.
  const [exportOpen, setExportOpen] = useState(false)
  const exported = useRef(false)
  const algorithms = useAsync(() => api.algorithmsCached(), [])
  const algorithmLabel = algorithms.data?.items.find((a) => a.name === version.algorithm)?.label ?? version.algorithm

  const rank = (key: string) => {
    const i = METRIC_ORDER.indexOf(key)
    return i === -1 ? METRIC_ORDER.length : i
  }
  const metrics = Object.entries(version.metrics ?? {}).sort(([a], [b]) => rank(a) - rank(b))

  const metricLabel = (key: string) => {
    const known: Record<string, string> = {
      accuracy: t('metric.accuracy'),
      f1: t('metric.f1'),
      roc_auc: t('metric.roc_auc'),
      r2: t('metric.r2'),
      mae: t('metric.mae'),
      rmse: t('metric.rmse'),
    }
    return known[key] ?? key
  }

  return (
    <section className="result" data-testid="step4-result" aria-labelledby="result-title">
      <div className="page-header">
        <div>
          <h2 id="result-title">
            {model.name} <span className="muted">v{version.number}</span>
          </h2>
          <p className="muted">
            {t('result.trainedWith', { algorithm: algorithmLabel })} · {fmtDate(lang, version.created_at)}
          </p>
        </div>
        <button type="button" className="btn btn-primary btn-lg" onClick={() => setExportOpen(true)} data-testid="export-button">
          {t('export.button')}
        </button>
      </div>
      <div className="stat-grid" data-testid="metrics">
        {metrics.map(([key, value]) => (
          <StatCard
            key={key}
            label={metricLabel(key)}
            value={value === null || value === undefined ? '—' : fmtNum(lang, value, 4)}
            testId={`metric-${key}`}
          />
        ))}
      </div>
      <div className="grid-2">
        <div className="panel">
          <h3 className="h-small">{t('result.details')}</h3>
          <dl className="dl">
            <dt>{t('models.task')}</dt>
            <dd>{t(model.task === 'regression' ? 'task.regression' : 'task.classification')}</dd>
            <dt>{t('result.source')}</dt>
            <dd className="mono">{version.source}</dd>
            <dt>{t('result.target')}</dt>
            <dd className="mono">{version.target}</dd>
            <dt>{t('result.split')}</dt>
            <dd>{t('result.splitValue', { train: version.n_train, test: version.n_test })}</dd>
            {version.classes && (
              <>
                <dt>{t('result.classes')}</dt>
                <dd>{version.classes.join(', ')}</dd>
              </>
            )}
            <dt>{t('result.params')}</dt>
            <dd className="mono small">
              {Object.entries(version.params ?? {})
                .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
                .join(', ') || '—'}
            </dd>
          </dl>
        </div>
        <div className="panel">
          <h3 className="h-small">{t('result.features', { count: version.features.length })}</h3>
          <ul className="feature-list">
            {version.features.map((f) => (
              <li key={f.name}>
                <span className="mono">{f.name}</span> <span className="tag">{f.type}</span>
              </li>
            ))}
          </ul>
        </div>
      </div>
      {exportOpen && (
        <ExportAPIModal
          model={model}
          version={version}
          onClose={() => {
            setExportOpen(false)
            // The page reloads once the result (the key, shown once) is closed, never under it.
            if (exported.current) onExported?.()
            exported.current = false
          }}
          onExported={() => {
            exported.current = true
          }}
        />
      )}
    </section>
  )
}
