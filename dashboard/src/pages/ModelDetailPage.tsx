import { useState } from 'react'
import {
  Bar,
  BarChart,
  CartesianGrid,
  ReferenceLine,
  ResponsiveContainer,
  Scatter,
  ScatterChart,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts'
import { api } from '../api'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorState, Skeleton, StatusBadge } from '../components/Feedback'
import { Step4Result } from '../components/Step4Result'
import { fmtDate, fmtInt, fmtNum } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'
import type { ConfusionMatrix, ClassScores, Model, ModelVersion, Residuals, VersionEvaluation } from '../types'

/** Bars in the importance chart; the rest is summarised in one line. */
const MAX_IMPORTANCE_BARS = 20

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
      {version ? (
        <>
          <Step4Result model={m} version={version} onExported={() => model.reload(true)} />
          <VersionApis version={version} />
          <VersionServingPanel version={version} />
          <Evaluation version={version} />
          <TrainingLog key={version.number} jobId={version.training_job_id ?? null} />
        </>
      ) : (
        <p className="muted">{t('models.noVersion')}</p>
      )}
      {versions[0] && versions[1] && (
        <CompareVersions model={m} versions={versions} latest={versions[0]} previous={versions[1]} />
      )}
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

function VersionApis({ version }: { version: ModelVersion }) {
  const { t } = useI18n()
  const apis = version.apis ?? []
  return (
    <section className="panel" aria-labelledby="version-apis-title" data-testid="version-apis">
      <h2 id="version-apis-title" className="h-small">
        {t('modelpage.apis')} <span className="muted">v{version.number}</span>
      </h2>
      {apis.length === 0 ? (
        <p className="muted">{t('modelpage.apisNone')}</p>
      ) : (
        <ul className="feature-list">
          {apis.map((a) => (
            <li key={a.id} data-testid="version-api">
              <Link to={`/monitoring/${a.id}`} className="strong">
                {a.name}
              </Link>{' '}
              <StatusBadge status={a.status} />
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}

function VersionServingPanel({ version }: { version: ModelVersion }) {
  const { t, lang } = useI18n()
  const serving = version.serving
  return (
    <section className="panel" aria-labelledby="version-serving-title" data-testid="version-serving">
      <h2 id="version-serving-title" className="h-small">
        {t('modelpage.serving')} <span className="muted">v{version.number}</span>
      </h2>
      {!serving ? (
        <p className="muted">{t('modelpage.servingPending')}</p>
      ) : (
        <>
          <p className="strong" data-testid="version-runtime" data-runtime={serving.runtime}>
            {t(serving.runtime === 'onnx' ? 'modelpage.servingOnnx' : 'modelpage.servingSklearn')}
          </p>
          {serving.runtime === 'onnx' ? (
            <p className="muted">
              {t('modelpage.servingChecked', {
                rows: fmtInt(lang, serving.rows_checked),
                source: serving.rows_source ?? '—',
                diff: serving.max_abs_diff == null ? '—' : serving.max_abs_diff.toExponential(1),
              })}
            </p>
          ) : (
            <p className="muted" data-testid="version-runtime-reason">
              {t('modelpage.servingWhy', { reason: serving.reason ?? '—' })}
            </p>
          )}
        </>
      )}
    </section>
  )
}

function Evaluation({ version }: { version: ModelVersion }) {
  const { t } = useI18n()
  const ev = version.evaluation
  if (!ev)
    return (
      <section className="panel" data-testid="evaluation-none">
        <p className="muted">{t('modelpage.noEvaluation')}</p>
      </section>
    )
  return (
    <section aria-labelledby="evaluation-title" data-testid="evaluation" style={{ display: 'grid', gap: '1rem' }}>
      <h2 id="evaluation-title" className="h-small">
        {t('modelpage.evaluation', { count: ev.n_test })}
      </h2>
      {ev.confusion_matrix && (
        <div className="grid-2">
          <ConfusionTable matrix={ev.confusion_matrix} />
          {ev.per_class && <PerClassTable rows={ev.per_class} />}
        </div>
      )}
      {ev.residuals && <ResidualCharts residuals={ev.residuals} />}
      <ImportanceChart evaluation={ev} />
    </section>
  )
}

function ConfusionTable({ matrix }: { matrix: ConfusionMatrix }) {
  const { t, lang } = useI18n()
  const max = Math.max(1, ...matrix.matrix.flat())
  return (
    <div className="panel" data-testid="confusion-matrix">
      <h3 className="h-small">{t('modelpage.confusion')}</h3>
      <p className="muted small">{t('modelpage.confusionHint')}</p>
      {matrix.truncated && <p className="muted small">{t('modelpage.confusionTruncated', { count: matrix.labels.length })}</p>}
      <div className="table-wrap">
        <table className="table table-compact" aria-label={t('modelpage.confusion')}>
          <thead>
            <tr>
              <th scope="col">
                {t('modelpage.actual')} \ {t('modelpage.predicted')}
              </th>
              {matrix.labels.map((label) => (
                <th key={label} scope="col" className="num">
                  {label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {matrix.matrix.map((row, i) => (
              <tr key={matrix.labels[i]}>
                <th scope="row">{matrix.labels[i]}</th>
                {row.map((count, j) => (
                  <td
                    key={matrix.labels[j]}
                    className="num"
                    data-testid="confusion-cell"
                    style={{
                      background:
                        count === 0
                          ? undefined
                          : i === j
                            ? `rgba(22, 163, 74, ${0.12 + 0.5 * (count / max)})`
                            : `rgba(220, 38, 38, ${0.1 + 0.45 * (count / max)})`,
                    }}
                  >
                    {fmtInt(lang, count)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  )
}

function PerClassTable({ rows }: { rows: ClassScores[] }) {
  const { t, lang } = useI18n()
  return (
    <div className="panel" data-testid="per-class">
      <h3 className="h-small">{t('modelpage.perClass')}</h3>
      <div className="table-wrap">
        <table className="table table-compact">
          <thead>
            <tr>
              <th scope="col">{t('modelpage.class')}</th>
              <th scope="col" className="num">{t('modelpage.precision')}</th>
              <th scope="col" className="num">{t('modelpage.recall')}</th>
              <th scope="col" className="num">{t('modelpage.f1')}</th>
              <th scope="col" className="num">{t('modelpage.support')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.label}>
                <td className="mono">{r.label}</td>
                <td className="num">{fmtNum(lang, r.precision, 3)}</td>
                <td className="num">{fmtNum(lang, r.recall, 3)}</td>
                <td className="num">{fmtNum(lang, r.f1, 3)}</td>
                <td className="num">{fmtInt(lang, r.support)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  )
}

function ResidualCharts({ residuals }: { residuals: Residuals }) {
  const { t, lang } = useI18n()
  const bins = residuals.counts.map((count, i) => {
    const lo = residuals.bin_edges[i] ?? 0
    const hi = residuals.bin_edges[i + 1] ?? lo
    return { bin: fmtNum(lang, (lo + hi) / 2, 2), count }
  })
  const points = residuals.points.filter((p) => p.predicted !== null && p.residual !== null)
  return (
    <div className="panel" data-testid="residuals">
      <h3 className="h-small">{t('modelpage.residuals')}</h3>
      <p className="muted small">
        {t('modelpage.residualsSummary', {
          mean: fmtNum(lang, residuals.mean, 3),
          std: fmtNum(lang, residuals.std, 3),
          min: fmtNum(lang, residuals.min, 3),
          max: fmtNum(lang, residuals.max, 3),
        })}
      </p>
      <div className="grid-2">
        <div>
          <h4 className="small">{t('modelpage.residualHistogram')}</h4>
          <div className="chart chart-small">
            <ResponsiveContainer width="100%" height="100%">
              <BarChart data={bins} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="bin" tick={{ fontSize: 10 }} />
                <YAxis allowDecimals={false} width={36} tick={{ fontSize: 11 }} />
                <Tooltip formatter={(v) => [fmtInt(lang, Number(v)), t('modelpage.count')]} />
                <Bar dataKey="count" fill="var(--accent)" radius={[3, 3, 0, 0]} isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        </div>
        <div>
          <h4 className="small">{t('modelpage.residualScatter', { count: points.length })}</h4>
          <div className="chart chart-small">
            <ResponsiveContainer width="100%" height="100%">
              <ScatterChart margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis type="number" dataKey="predicted" name={t('modelpage.predicted')} tick={{ fontSize: 10 }} />
                <YAxis type="number" dataKey="residual" name={t('modelpage.residual')} width={44} tick={{ fontSize: 10 }} />
                <ReferenceLine y={0} stroke="var(--muted)" />
                <Tooltip formatter={(v) => fmtNum(lang, Number(v), 3)} />
                <Scatter data={points} fill="var(--accent)" isAnimationActive={false} />
              </ScatterChart>
            </ResponsiveContainer>
          </div>
        </div>
      </div>
    </div>
  )
}

function ImportanceChart({ evaluation }: { evaluation: VersionEvaluation }) {
  const { t, lang } = useI18n()
  const all = evaluation.importance ?? []
  if (all.length === 0) return null
  const shown = all.slice(0, MAX_IMPORTANCE_BARS).map((e) => ({ feature: e.feature, mean: e.mean ?? 0 }))
  const height = Math.max(160, 26 * shown.length + 40)
  return (
    <div className="panel" data-testid="importance">
      <h3 className="h-small">{t('modelpage.importance')}</h3>
      <p className="muted small">
        {t('modelpage.importanceHint', {
          scoring: evaluation.importance_scoring ?? '—',
          repeats: evaluation.importance_repeats ?? '—',
          rows: evaluation.importance_rows ?? '—',
        })}
        {all.length > shown.length && <> {t('modelpage.importanceTop', { shown: shown.length, total: all.length })}</>}
      </p>
      <div className="chart" style={{ height }} data-testid="importance-chart">
        <ResponsiveContainer width="100%" height="100%">
          <BarChart data={shown} layout="vertical" margin={{ top: 4, right: 16, bottom: 0, left: 8 }}>
            <CartesianGrid strokeDasharray="3 3" horizontal={false} />
            <XAxis type="number" tick={{ fontSize: 11 }} />
            <YAxis type="category" dataKey="feature" width={140} tick={{ fontSize: 11 }} interval={0} />
            <Tooltip formatter={(v) => [fmtNum(lang, Number(v), 4), t('modelpage.importanceValue')]} />
            <Bar dataKey="mean" fill="var(--accent)" radius={[0, 3, 3, 0]} isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      </div>
    </div>
  )
}

function TrainingLog({ jobId }: { jobId: string | null }) {
  const { t } = useI18n()
  const logs = useAsync(() => (jobId ? api.trainingLogs(jobId, 0) : Promise.resolve(null)), [jobId])
  return (
    <section className="panel" aria-labelledby="training-log-title" data-testid="model-training-log">
      <h2 id="training-log-title" className="h-small">
        {t('modelpage.log')}
      </h2>
      {!jobId ? (
        <p className="muted">{t('modelpage.logNone')}</p>
      ) : logs.loading ? (
        <p className="muted">{t('modelpage.logLoading')}</p>
      ) : logs.error ? (
        <p className="muted">{t('modelpage.logError', { error: logs.error })}</p>
      ) : (
        <pre className="log" data-testid="model-training-log-lines">
          {(logs.data?.lines ?? []).join('\n')}
        </pre>
      )}
    </section>
  )
}

interface CompareProps {
  model: Model
  versions: ModelVersion[]
  latest: ModelVersion
  previous: ModelVersion
}

/** Two versions side by side (the previous and the latest first): metrics and parameters. */
function CompareVersions({ model, versions, latest, previous }: CompareProps) {
  const { t, lang } = useI18n()
  const [leftNumber, setLeft] = useState(previous.number)
  const [rightNumber, setRight] = useState(latest.number)
  const left = versions.find((v) => v.number === leftNumber) ?? previous
  const right = versions.find((v) => v.number === rightNumber) ?? latest
  const show = (value: unknown) => (value === undefined ? '—' : typeof value === 'number' ? fmtNum(lang, value, 4) : JSON.stringify(value))
  const rows: { group: string; name: string; a: string; b: string }[] = []
  const add = (group: string, name: string, a: string, b: string) => rows.push({ group, name, a, b })
  add('', t('modelpage.compareAlgorithm'), left.algorithm, right.algorithm)
  add('', t('modelpage.compareCreated'), fmtDate(lang, left.created_at), fmtDate(lang, right.created_at))
  add('', t('modelpage.compareSource'), left.source, right.source)
  add('', t('modelpage.compareSplit'), `${left.n_train} / ${left.n_test}`, `${right.n_train} / ${right.n_test}`)
  add('', t('modelpage.compareFeatures'), String(left.features.length), String(right.features.length))
  const union = (a: Record<string, unknown>, b: Record<string, unknown>) => [...new Set([...Object.keys(a), ...Object.keys(b)])]
  for (const key of union(left.metrics, right.metrics))
    add(t('modelpage.compareMetrics'), key, show(left.metrics[key] ?? undefined), show(right.metrics[key] ?? undefined))
  for (const key of union(left.params, right.params))
    add(t('modelpage.compareParams'), key, show(left.params[key]), show(right.params[key]))
  const picker = (label: string, value: number, set: (n: number) => void, testId: string) => (
    <label className="field field-inline">
      <span>{label}</span>
      <select value={value} onChange={(e) => set(Number(e.target.value))} data-testid={testId}>
        {versions.map((v) => (
          <option key={v.number} value={v.number}>
            v{v.number} — {v.algorithm}
          </option>
        ))}
      </select>
    </label>
  )
  return (
    <section className="panel" aria-labelledby="compare-title" data-testid="compare-versions" data-model={model.name}>
      <h2 id="compare-title" className="h-small">
        {t('modelpage.compare')}
      </h2>
      <div className="actions">
        {picker(t('modelpage.compareLeft'), left.number, setLeft, 'compare-left')}
        {picker(t('modelpage.compareRight'), right.number, setRight, 'compare-right')}
      </div>
      <div className="table-wrap">
        <table className="table table-compact" data-testid="compare-table">
          <thead>
            <tr>
              <th scope="col">{t('modelpage.compareField')}</th>
              <th scope="col" style={{ textTransform: 'none' }}>v{left.number}</th>
              <th scope="col" style={{ textTransform: 'none' }}>v{right.number}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.group}:${r.name}`} className={r.a !== r.b ? 'is-target' : undefined}>
                <th scope="row">
                  {r.group && <span className="muted small">{r.group} · </span>}
                  <span className="mono">{r.name}</span>
                  {r.a !== r.b && <span className="sr-only"> ({t('modelpage.compareDiffers')})</span>}
                </th>
                <td className="mono small">{r.a}</td>
                <td className="mono small">{r.b}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  )
}
