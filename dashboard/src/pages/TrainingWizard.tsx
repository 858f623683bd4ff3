// The training wizard: 1 data, 2 algorithm and parameters, 3 live training log, 4 result (Step4Result).
import { useEffect, useMemo, useRef, useState } from 'react'
import type { FormEvent } from 'react'
import { api } from '../api'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorState, Skeleton } from '../components/Feedback'
import { EMPTY_IMAGE_DRAFT, ImageInputFields, imageOf } from '../components/ImageInputFields'
import type { ImageDraft } from '../components/ImageInputFields'
import { Step4Result } from '../components/Step4Result'
import type { ColumnProfile } from '../columns'
import { profileCsv } from '../columns'
import type { CsvPreview } from '../csv'
import { readCsvPreview } from '../csv'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'
import type { Algorithm, AlgorithmParam, JobStatus, Model, ModelVersion, Task, TrainingJob } from '../types'

type Source = 'builtin' | 'csv'
type ColumnType = 'numeric' | 'categorical'

/** The model a "New version" link names (`?name=`), with its latest version: its data source is kept. */
interface PreviousVersion {
  model: Model
  version: ModelVersion
  /** `builtin:iris` → the dataset; `csv:churn.csv` → the file name; `null` for an upload. */
  dataset: string | null
  csvFile: string | null
}

async function findPrevious(name: string | null): Promise<PreviousVersion | null> {
  if (!name) return null
  const models = await api.models()
  const model = models.items.find((m) => m.name === name)
  const versions = model?.versions ?? []
  const version = versions.find((v) => v.number === model?.latest_version) ?? versions[versions.length - 1]
  if (!model || !version) return null
  const [kind, ...rest] = version.source.split(':')
  const detail = rest.join(':')
  return {
    model,
    version,
    dataset: kind === 'builtin' ? detail : null,
    csvFile: kind === 'csv' ? detail : null,
  }
}

/** Columns the CSV preview shows; a very wide file must not fill the page with thousands. */
const PREVIEW_COLUMNS = 30
type Step = 1 | 2 | 3 | 4

function defaultParams(algo: Algorithm | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const p of algo?.params ?? []) out[p.name] = p.default === null || p.default === undefined ? '' : String(p.default)
  return out
}

function coerceParams(algo: Algorithm | undefined, values: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const p of algo?.params ?? []) {
    const raw = values[p.name]
    if (raw === undefined || raw === '') continue
    if (p.type === 'int') out[p.name] = Number.parseInt(raw, 10)
    else if (p.type === 'float') out[p.name] = Number.parseFloat(raw)
    else {
      const choice = (p.choices ?? []).find((c) => String(c) === raw)
      out[p.name] = choice ?? raw
    }
  }
  return out
}

function paramError(p: AlgorithmParam, raw: string | undefined): string | null {
  if (p.type === 'choice' || raw === undefined || raw === '') return null
  const n = Number(raw)
  if (!Number.isFinite(n) || (p.type === 'int' && !Number.isInteger(n))) return 'type'
  if (p.min !== undefined && p.min !== null && n < p.min) return 'range'
  if (p.max !== undefined && p.max !== null && n > p.max) return 'range'
  return null
}

export function TrainingWizard() {
  const { t } = useI18n()
  const { location } = useRouter()
  const [step, setStep] = useState<Step>(1)
  const [name, setName] = useState(() => location.search.get('name') ?? '')
  const [source, setSource] = useState<Source>('builtin')
  const [dataset, setDataset] = useState('')
  const [file, setFile] = useState<File | null>(null)
  const [preview, setPreview] = useState<CsvPreview | null>(null)
  const [csvError, setCsvError] = useState<string | null>(null)
  const [target, setTarget] = useState('')
  const [csvTask, setCsvTask] = useState<'' | Task>('')
  const [algorithmName, setAlgorithmName] = useState('')
  const [paramValues, setParamValues] = useState<Record<string, string>>({})
  const [testSize, setTestSize] = useState('0.2')
  const [submitError, setSubmitError] = useState<string | null>(null)
  const [submitting, setSubmitting] = useState(false)
  const [job, setJob] = useState<TrainingJob | null>(null)
  const [profiles, setProfiles] = useState<ColumnProfile[] | null>(null)
  const [dropped, setDropped] = useState<string[]>([])
  const [columnTypes, setColumnTypes] = useState<Record<string, ColumnType>>({})
  const [imageDraft, setImageDraft] = useState<ImageDraft>(EMPTY_IMAGE_DRAFT)
  const previous = useAsync(() => findPrevious(location.search.get('name')), [])
  const keptSource = useRef(false)

  const catalog = useAsync(() => Promise.all([api.datasets(), api.algorithms()]), [])
  const datasets = catalog.data?.[0].items ?? []
  const algorithms = catalog.data?.[1].items ?? []

  useEffect(() => {
    if (!dataset && datasets.length > 0) setDataset(datasets[0]?.name ?? '')
  }, [datasets, dataset])

  // A new version keeps the model's data source: its built-in dataset, or CSV with its target.
  useEffect(() => {
    const prev = previous.data
    // Wait for the catalogue too: deciding before it arrives would miss the built-in dataset.
    if (!prev || keptSource.current || !catalog.data) return
    keptSource.current = true
    if (prev.dataset && datasets.some((d) => d.name === prev.dataset)) {
      setSource('builtin')
      setDataset(prev.dataset)
    } else if (prev.csvFile !== null) {
      setSource('csv')
      setCsvTask(prev.model.task)
    }
  }, [previous.data, datasets, catalog.data])

  const task: Task | '' = source === 'builtin' ? (datasets.find((d) => d.name === dataset)?.task ?? '') : csvTask
  const usable = useMemo(
    () => algorithms.filter((a) => task === '' || a.tasks.includes(task)),
    [algorithms, task],
  )
  const algorithm = usable.find((a) => a.name === algorithmName)

  useEffect(() => {
    if (usable.length > 0 && !usable.some((a) => a.name === algorithmName)) {
      const first = usable[0]
      setAlgorithmName(first?.name ?? '')
      setParamValues(defaultParams(first))
    }
  }, [usable, algorithmName])

  const onFile = async (f: File | null) => {
    setFile(f)
    setPreview(null)
    setTarget('')
    setCsvError(null)
    setProfiles(null)
    setDropped([])
    setColumnTypes({})
    if (!f) return
    try {
      const p = await readCsvPreview(f)
      if (p.header.length < 2) setCsvError(t('wizard.csvTooFewColumns'))
      const columns = await profileCsv(f, p.header, p.delimiter)
      setPreview(p)
      setProfiles(columns)
      const prev = previous.data?.csvFile !== null ? previous.data?.version : undefined
      if (prev && p.header.includes(prev.target)) {
        // The same choices as the version this one follows: its target, its columns and types.
        setTarget(prev.target)
        const features = new Map(prev.features.map((f) => [f.name, f]))
        setDropped(p.header.filter((h) => h !== prev.target && !features.has(h)))
        const types: Record<string, ColumnType> = {}
        for (const c of columns) {
          if (features.get(c.name)?.type === 'category' && c.numeric) types[c.name] = 'categorical'
        }
        setColumnTypes(types)
      } else {
        setTarget(p.header[p.header.length - 1] ?? '')
      }
    } catch (err) {
      setCsvError(err instanceof Error ? err.message : String(err))
    }
  }

  const keptFeatures = (preview?.header ?? []).filter((h) => h !== target && !dropped.includes(h))
  const declaredImage = imageOf(imageDraft, keptFeatures.length, t)
  const step1Valid =
    name.trim() !== '' &&
    (source === 'builtin'
      ? dataset !== ''
      : file !== null &&
        preview !== null &&
        target !== '' &&
        !csvError &&
        keptFeatures.length > 0 &&
        declaredImage.problem === null)
  const idLike = (profiles ?? []).filter((c) => c.idLike && c.name !== target && !dropped.includes(c.name))
  const toggleDrop = (column: string, drop: boolean) =>
    setDropped((prev) => (drop ? [...prev.filter((c) => c !== column), column] : prev.filter((c) => c !== column)))
  const setColumnType = (column: string, type: '' | ColumnType) =>
    setColumnTypes((prev) => {
      const next = { ...prev }
      if (type === '') delete next[column]
      else next[column] = type
      return next
    })
  const paramsValid = (algorithm?.params ?? []).every((p) => paramError(p, paramValues[p.name]) === null)
  const testSizeNum = Number(testSize)
  const testSizeValid = Number.isFinite(testSizeNum) && testSizeNum > 0.05 && testSizeNum < 0.9
  const step2Valid = algorithm !== undefined && paramsValid && testSizeValid

  const startTraining = async (e: FormEvent) => {
    e.preventDefault()
    if (!step2Valid || !algorithm) return
    setSubmitting(true)
    setSubmitError(null)
    try {
      const params = coerceParams(algorithm, paramValues)
      let created: TrainingJob
      if (source === 'builtin') {
        created = await api.trainBuiltin({ name: name.trim(), dataset, algorithm: algorithm.name, params, test_size: testSizeNum })
      } else {
        const form = new FormData()
        form.append('file', file as File)
        form.append('name', name.trim())
        form.append('target', target)
        form.append('algorithm', algorithm.name)
        form.append('params', JSON.stringify(params))
        form.append('test_size', String(testSizeNum))
        if (csvTask) form.append('task', csvTask)
        const drop = dropped.filter((c) => c !== target)
        if (drop.length > 0) form.append('drop_columns', JSON.stringify(drop))
        const types = Object.fromEntries(
          Object.entries(columnTypes).filter(([c]) => c !== target && !drop.includes(c)),
        )
        if (Object.keys(types).length > 0) form.append('column_types', JSON.stringify(types))
        if (declaredImage.image) form.append('image', JSON.stringify(declaredImage.image))
        created = await api.trainCsv(form)
      }
      setJob(created)
      setStep(3)
    } catch (err) {
      setSubmitError(err instanceof Error ? err.message : String(err))
    } finally {
      setSubmitting(false)
    }
  }

  const steps: Array<[Step, string]> = [
    [1, t('wizard.stepData')],
    [2, t('wizard.stepAlgorithm')],
    [3, t('wizard.stepTraining')],
    [4, t('wizard.stepResult')],
  ]

  return (
    <div className="page" data-testid="training-wizard">
      <div className="page-header">
        <div>
          <Link to="/models" className="back-link">
            ← {t('nav.models')}
          </Link>
          <h1>{t('wizard.title')}</h1>
        </div>
      </div>
      <ol className="stepper" aria-label={t('wizard.progress')}>
        {steps.map(([n, label]) => (
          <li
            key={n}
            className={n === step ? 'current' : n < step ? 'done' : ''}
            aria-current={n === step ? 'step' : undefined}
          >
            <span className="step-num">{n}</span>
            <span className="step-label">{label}</span>
          </li>
        ))}
      </ol>

      {catalog.loading && <Skeleton lines={4} height={24} />}
      {catalog.error && <ErrorState message={catalog.error} onRetry={() => catalog.reload()} />}

      {catalog.data && step === 1 && (
        <form
          className="panel form"
          onSubmit={(e) => {
            e.preventDefault()
            if (step1Valid) setStep(2)
          }}
        >
          <label className="field">
            <span>{t('wizard.modelName')}</span>
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              maxLength={100}
              placeholder={t('wizard.modelNamePlaceholder')}
              data-testid="wizard-name"
            />
            <small className="muted">{t('wizard.modelNameHint')}</small>
          </label>
          {previous.data && (previous.data.dataset || previous.data.csvFile !== null) && (
            <div className="callout callout-info" role="status" data-testid="wizard-previous-source">
              {previous.data.csvFile !== null
                ? t('wizard.newVersionCsv', {
                    version: previous.data.version.number,
                    file: previous.data.csvFile,
                    target: previous.data.version.target,
                  })
                : t('wizard.newVersionOf', { name: previous.data.model.name, version: previous.data.version.number })}
            </div>
          )}
          <fieldset className="field">
            <legend>{t('wizard.source')}</legend>
            <div className="segmented">
              <label className={source === 'builtin' ? 'checked' : ''}>
                <input
                  type="radio"
                  name="source"
                  value="builtin"
                  checked={source === 'builtin'}
                  onChange={() => setSource('builtin')}
                  data-testid="wizard-source-builtin"
                />
                {t('wizard.sourceBuiltin')}
              </label>
              <label className={source === 'csv' ? 'checked' : ''}>
                <input
                  type="radio"
                  name="source"
                  value="csv"
                  checked={source === 'csv'}
                  onChange={() => setSource('csv')}
                  data-testid="wizard-source-csv"
                />
                {t('wizard.sourceCsv')}
              </label>
            </div>
          </fieldset>
          {source === 'builtin' ? (
            <label className="field">
              <span>{t('wizard.dataset')}</span>
              <select value={dataset} onChange={(e) => setDataset(e.target.value)} data-testid="wizard-dataset">
                {datasets.map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.name} — {t(d.task === 'regression' ? 'task.regression' : 'task.classification')},{' '}
                    {t('wizard.datasetSize', { rows: d.n_rows, features: d.n_features })}
                  </option>
                ))}
              </select>
              <small className="muted">{datasets.find((d) => d.name === dataset)?.description}</small>
            </label>
          ) : (
            <>
              <label className="field">
                <span>{t('wizard.csvFile')}</span>
                <input
                  type="file"
                  accept=".csv,text/csv"
                  onChange={(e) => void onFile(e.target.files?.[0] ?? null)}
                  data-testid="wizard-file"
                />
              </label>
              {csvError && (
                <p className="form-error" role="alert">
                  {csvError}
                </p>
              )}
              {preview && (
                <>
                  <div className="grid-2">
                    <label className="field">
                      <span>{t('wizard.target')}</span>
                      <select
                        value={target}
                        onChange={(e) => {
                          setTarget(e.target.value)
                          toggleDrop(e.target.value, false)
                          setColumnType(e.target.value, '')
                        }}
                        data-testid="wizard-target"
                      >
                        {preview.header.map((h) => (
                          <option key={h} value={h}>
                            {h}
                          </option>
                        ))}
                      </select>
                    </label>
                    <label className="field">
                      <span>{t('wizard.task')}</span>
                      <select value={csvTask} onChange={(e) => setCsvTask(e.target.value as '' | Task)} data-testid="wizard-task">
                        <option value="">{t('wizard.taskAuto')}</option>
                        <option value="classification">{t('task.classification')}</option>
                        <option value="regression">{t('task.regression')}</option>
                      </select>
                    </label>
                  </div>
                  <div className="table-wrap">
                    <table className="table table-compact" aria-label={t('wizard.preview')}>
                      <thead>
                        <tr>
                          {preview.header.slice(0, PREVIEW_COLUMNS).map((h) => (
                            <th
                              key={h}
                              scope="col"
                              className={h === target ? 'is-target' : ''}
                              style={dropped.includes(h) ? { opacity: 0.4, textDecoration: 'line-through' } : undefined}
                            >
                              {h}
                            </th>
                          ))}
                        </tr>
                      </thead>
                      <tbody>
                        {preview.rows.map((r, i) => (
                          <tr key={i}>
                            {r.slice(0, PREVIEW_COLUMNS).map((c, j) => (
                              <td
                                key={j}
                                className={preview.header[j] === target ? 'is-target' : ''}
                                style={dropped.includes(preview.header[j] ?? '') ? { opacity: 0.4 } : undefined}
                              >
                                {c}
                              </td>
                            ))}
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                  {idLike.map((c) => (
                    <div key={c.name} className="callout callout-warning" role="status" data-testid="wizard-idlike" data-column={c.name}>
                      <p>{t('wizard.idLike', { name: c.name })}</p>
                      <button
                        type="button"
                        className="btn btn-sm"
                        onClick={() => toggleDrop(c.name, true)}
                        data-testid={`wizard-idlike-drop-${c.name}`}
                      >
                        {t('wizard.idLikeDrop', { name: c.name })}
                      </button>
                    </div>
                  ))}
                  <fieldset className="field">
                    <legend>{t('wizard.columns')}</legend>
                    <small className="muted">{t('wizard.columnsHint')}</small>
                    <div className="table-wrap">
                      <table className="table table-compact" data-testid="wizard-columns">
                        <thead>
                          <tr>
                            <th scope="col">{t('wizard.columnKeep')}</th>
                            <th scope="col">{t('wizard.columnName')}</th>
                            <th scope="col">{t('wizard.columnDetected')}</th>
                            <th scope="col">{t('wizard.columnType')}</th>
                          </tr>
                        </thead>
                        <tbody>
                          {(profiles ?? []).map((c) => {
                            const isTarget = c.name === target
                            const isDropped = !isTarget && dropped.includes(c.name)
                            return (
                              <tr key={c.name} data-testid="wizard-column" data-column={c.name} data-dropped={isDropped}>
                                <td>
                                  <input
                                    type="checkbox"
                                    checked={!isDropped}
                                    disabled={isTarget}
                                    onChange={(e) => toggleDrop(c.name, !e.target.checked)}
                                    aria-label={`${t('wizard.columnKeep')} ${c.name}`}
                                    data-testid={`wizard-keep-${c.name}`}
                                  />
                                </td>
                                <td className={isTarget ? 'is-target' : ''}>
                                  <span className="mono">{c.name}</span>
                                  {isTarget && <> <span className="badge">{t('wizard.targetColumn')}</span></>}
                                  {isDropped && <> <span className="badge">{t('wizard.dropped')}</span></>}
                                </td>
                                <td className="muted">{t(c.numeric ? 'wizard.detectedNumeric' : 'wizard.detectedText')}</td>
                                <td>
                                  <select
                                    value={columnTypes[c.name] ?? ''}
                                    disabled={isTarget || isDropped}
                                    onChange={(e) => setColumnType(c.name, e.target.value as '' | ColumnType)}
                                    aria-label={`${t('wizard.columnType')} ${c.name}`}
                                    data-testid={`wizard-type-${c.name}`}
                                  >
                                    <option value="">{t('wizard.typeAuto')}</option>
                                    <option value="numeric">{t('wizard.typeNumeric')}</option>
                                    <option value="categorical">{t('wizard.typeCategorical')}</option>
                                  </select>
                                </td>
                              </tr>
                            )
                          })}
                        </tbody>
                      </table>
                    </div>
                  </fieldset>
                  {keptFeatures.length > 0 && (
                    <ImageInputFields
                      draft={imageDraft}
                      onChange={setImageDraft}
                      features={keptFeatures.length}
                      testId="wizard-image"
                    />
                  )}
                  {keptFeatures.length === 0 && (
                    <p className="form-error" role="alert" data-testid="wizard-no-features">
                      {t('wizard.noFeaturesLeft')}
                    </p>
                  )}
                </>
              )}
            </>
          )}
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={!step1Valid} data-testid="wizard-next">
              {t('common.next')}
            </button>
          </div>
        </form>
      )}

      {catalog.data && step === 2 && (
        <form className="panel form" onSubmit={(e) => void startTraining(e)}>
          <label className="field">
            <span>{t('wizard.algorithm')}</span>
            <select
              value={algorithmName}
              onChange={(e) => {
                setAlgorithmName(e.target.value)
                setParamValues(defaultParams(usable.find((a) => a.name === e.target.value)))
              }}
              data-testid="wizard-algorithm"
            >
              {usable.map((a) => (
                <option key={a.name} value={a.name}>
                  {a.label}
                </option>
              ))}
            </select>
          </label>
          {algorithm && algorithm.params.length > 0 && (
            <fieldset className="field">
              <legend>{t('wizard.params')}</legend>
              <div className="param-grid">
                {algorithm.params.map((p) => {
                  const err = paramError(p, paramValues[p.name])
                  const set = (v: string) => setParamValues((prev) => ({ ...prev, [p.name]: v }))
                  return (
                    <label key={p.name} className="field">
                      <span className="mono" title={p.description || undefined}>
                        {p.name}
                      </span>
                      {p.type === 'choice' ? (
                        <select value={paramValues[p.name] ?? ''} onChange={(e) => set(e.target.value)} data-testid={`param-${p.name}`}>
                          {(p.choices ?? []).map((c) => (
                            <option key={String(c)} value={String(c)}>
                              {String(c)}
                            </option>
                          ))}
                        </select>
                      ) : (
                        <input
                          type="number"
                          inputMode={p.type === 'int' ? 'numeric' : 'decimal'}
                          step={p.type === 'int' ? 1 : 'any'}
                          min={p.min ?? undefined}
                          max={p.max ?? undefined}
                          value={paramValues[p.name] ?? ''}
                          onChange={(e) => set(e.target.value)}
                          aria-invalid={err !== null}
                          data-testid={`param-${p.name}`}
                        />
                      )}
                      {p.description && !err && <small className="muted">{p.description}</small>}
                      {err && (
                        <small className="form-error">
                          {err === 'type'
                            ? t(p.type === 'int' ? 'wizard.paramInt' : 'wizard.paramNumber')
                            : t('wizard.paramRange', { min: p.min ?? '−∞', max: p.max ?? '∞' })}
                        </small>
                      )}
                    </label>
                  )
                })}
              </div>
            </fieldset>
          )}
          <label className="field field-narrow">
            <span>{t('wizard.testSize')}</span>
            <input
              type="number"
              step="0.05"
              min="0.1"
              max="0.85"
              value={testSize}
              onChange={(e) => setTestSize(e.target.value)}
              aria-invalid={!testSizeValid}
              data-testid="wizard-test-size"
            />
          </label>
          {submitError && (
            <p className="form-error" role="alert" data-testid="wizard-error">
              {submitError}
            </p>
          )}
          <div className="form-actions">
            <button type="button" className="btn" onClick={() => setStep(1)}>
              {t('common.back')}
            </button>
            <button type="submit" className="btn btn-primary" disabled={!step2Valid || submitting} data-testid="wizard-train">
              {submitting ? t('common.working') : t('wizard.startTraining')}
            </button>
          </div>
        </form>
      )}

      {step === 3 && job && <TrainingProgress job={job} onDone={(finished) => {
            setJob(finished)
            setStep(4)
          }} onRetry={() => setStep(2)} />}
      {step === 4 && job && <TrainedResult job={job} />}
    </div>
  )
}

export function TrainingProgress({ job, onDone, onRetry }: { job: TrainingJob; onDone: (finished: TrainingJob) => void; onRetry: () => void }) {
  const { t } = useI18n()
  const [lines, setLines] = useState<string[]>([])
  const [status, setStatus] = useState<JobStatus>(job.status)
  const [progress, setProgress] = useState(job.progress ?? 0)
  const [error, setError] = useState<string | null>(null)
  const [pollError, setPollError] = useState<string | null>(null)
  const [queuePosition, setQueuePosition] = useState<number | null>(job.queue_position ?? null)
  const [confirmCancel, setConfirmCancel] = useState(false)
  const logRef = useRef<HTMLPreElement>(null)
  const active = status === 'queued' || status === 'running'

  const cancelJob = async () => {
    const ended = await api.cancelTrainingJob(job.id)
    setConfirmCancel(false)
    setStatus(ended.status)
    setQueuePosition(null)
    if (ended.status === 'failed') setError(ended.error ?? t('wizard.failed'))
  }

  useEffect(() => {
    let cancelled = false
    let after = 0
    let timer: number | undefined
    const poll = async () => {
      try {
        const logs = await api.trainingLogs(job.id, after)
        if (cancelled) return
        if (logs.lines.length > 0) setLines((prev) => [...prev, ...logs.lines])
        after = logs.next
        const current = await api.trainingJob(job.id)
        if (cancelled) return
        setProgress(current.progress ?? 0)
        setStatus(current.status)
        setQueuePosition(current.queue_position ?? null)
        setPollError(null)
        if (current.status === 'cancelled') return
        if (current.status === 'failed') {
          setError(current.error ?? t('wizard.failed'))
          return
        }
        if (current.status === 'succeeded' && logs.status === 'succeeded') {
          // One last read so no line is missed, then on to the result.
          const rest = await api.trainingLogs(job.id, after)
          if (cancelled) return
          if (rest.lines.length > 0) setLines((prev) => [...prev, ...rest.lines])
          timer = window.setTimeout(() => onDone(current), 600)
          return
        }
      } catch (err) {
        if (cancelled) return
        setPollError(err instanceof Error ? err.message : String(err))
      }
      timer = window.setTimeout(() => void poll(), 800)
    }
    void poll()
    return () => {
      cancelled = true
      window.clearTimeout(timer)
    }
  }, [job.id])

  useEffect(() => {
    const el = logRef.current
    if (el) el.scrollTop = el.scrollHeight
  }, [lines])

  const pct = Math.round(Math.min(1, Math.max(0, progress)) * 100)
  const statusLabel: Record<JobStatus, string> = {
    queued: t('job.queued'),
    running: t('job.running'),
    succeeded: t('job.succeeded'),
    failed: t('job.failed'),
    cancelled: t('job.cancelled'),
  }
  return (
    <section className="panel" aria-labelledby="training-title">
      <div className="row-between">
        <h2 id="training-title" className="h-small">
          {t('wizard.trainingLog')}
        </h2>
        <div className="actions">
          {active && (
            <button
              type="button"
              className="btn btn-sm btn-danger"
              onClick={() => setConfirmCancel(true)}
              data-testid="training-cancel"
            >
              {t('wizard.cancelJob')}
            </button>
          )}
          <span className={`badge badge-job-${status}`} data-testid="training-status" data-status={status}>
            {statusLabel[status]}
          </span>
        </div>
      </div>
      {status === 'queued' && queuePosition !== null && (
        <p className="muted small" data-testid="training-queue-position">
          {t('wizard.queuePosition', { position: queuePosition })}
        </p>
      )}
      <div
        className="progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        aria-label={t('wizard.progress')}
        data-testid="training-progress"
      >
        <div
          className={`progress-bar ${status === 'failed' || status === 'cancelled' ? 'is-failed' : ''}`}
          style={{ width: `${pct}%` }}
        />
        <span className="progress-text">{pct} %</span>
      </div>
      <pre className="log mono" ref={logRef} data-testid="training-log" aria-live="polite" tabIndex={0}>
        {lines.length === 0 ? t('wizard.waitingLog') : lines.join('\n')}
      </pre>
      {pollError && <p className="muted small">{t('wizard.pollError', { message: pollError })}</p>}
      {status === 'cancelled' && (
        <div className="callout callout-warning" role="status" data-testid="training-cancelled">
          <strong>{t('wizard.cancelled')}</strong>
          <div>
            <button type="button" className="btn btn-sm" onClick={onRetry}>
              {t('wizard.changeSettings')}
            </button>
          </div>
        </div>
      )}
      {confirmCancel && (
        <ConfirmDialog
          title={t('wizard.cancelJobTitle')}
          message={t('wizard.cancelJobConfirm')}
          confirmLabel={t('wizard.cancelJobOk')}
          danger
          onConfirm={cancelJob}
          onCancel={() => setConfirmCancel(false)}
        />
      )}
      {error && (
        <div className="callout callout-error" role="alert" data-testid="training-error">
          <strong>{t('wizard.failed')}</strong> {error}
          <div>
            <button type="button" className="btn btn-sm" onClick={onRetry}>
              {t('wizard.changeSettings')}
            </button>
          </div>
        </div>
      )}
    </section>
  )
}

function TrainedResult({ job }: { job: TrainingJob }) {
  const { t } = useI18n()
  const model = useAsync<Model>(() => api.model(job.model_id as string), [job.model_id])
  if (model.loading) return <Skeleton lines={6} height={22} />
  if (model.error || !model.data) return <ErrorState message={model.error ?? ''} onRetry={() => model.reload()} />
  const versions = model.data.versions ?? []
  const version: ModelVersion | undefined =
    versions.find((v) => v.number === job.version_number) ?? versions[versions.length - 1]
  if (!version) return <ErrorState message={t('models.noVersion')} onRetry={() => model.reload()} />
  return <Step4Result model={model.data} version={version} />
}
