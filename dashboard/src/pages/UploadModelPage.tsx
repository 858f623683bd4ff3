// Bring your own model: pick a .skops file, the server checks it (never running it) and proposes its
// features, classes and task; the user checks or edits them, then uploads.
import { useState } from 'react'
import type { FormEvent } from 'react'
import { api } from '../api'
import { EMPTY_IMAGE_DRAFT, ImageInputFields, imageOf } from '../components/ImageInputFields'
import type { ImageDraft } from '../components/ImageInputFields'
import { useI18n } from '../i18n'
import { Link, useRouter } from '../router'
import type { FeatureSpec, ModelInspection, Task } from '../types'

type FeatureType = FeatureSpec['type']

interface FeatureRow {
  name: string
  type: FeatureType
  required: boolean
  /** Comma-separated, as typed. */
  categories: string
  /** The file's own categories: sent exactly while the text above is left as proposed. */
  found?: string[]
}

const TYPES: FeatureType[] = ['number', 'integer', 'boolean', 'category']

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '')
}

/** The list a comma-separated field stands for: the file's own values while the text is the one
 * proposed from them (a value may hold a comma or spaces: "Paris, France", "0,5"), else the text
 * split on commas. */
export function listOf(text: string, found?: string[] | null): string[] {
  if (found && found.length > 0 && text === found.join(', ')) return found
  return splitList(text)
}

function rowsOf(inspection: ModelInspection): FeatureRow[] {
  return inspection.features.map((f) => ({
    name: f.name,
    type: f.type,
    required: f.required ?? true,
    categories: (f.categories ?? []).join(', '),
    found: f.categories ?? undefined,
  }))
}

function nameOf(file: File): string {
  return file.name.replace(/\.skops$/i, '').replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 100) || 'model'
}

export function UploadModelPage() {
  const { t } = useI18n()
  const { navigate } = useRouter()
  const [file, setFile] = useState<File | null>(null)
  const [reference, setReference] = useState<File | null>(null)
  const [inspecting, setInspecting] = useState(false)
  const [inspection, setInspection] = useState<ModelInspection | null>(null)
  const [refusal, setRefusal] = useState<string | null>(null)
  const [name, setName] = useState('')
  const [task, setTask] = useState<'' | Task>('')
  const [features, setFeatures] = useState<FeatureRow[]>([])
  const [classes, setClasses] = useState('')
  const [imageDraft, setImageDraft] = useState<ImageDraft>(EMPTY_IMAGE_DRAFT)
  const [submitError, setSubmitError] = useState<string | null>(null)
  const [submitting, setSubmitting] = useState(false)

  const onFile = async (f: File | null) => {
    setFile(f)
    setInspection(null)
    setRefusal(null)
    setSubmitError(null)
    if (!f) return
    setInspecting(true)
    try {
      const form = new FormData()
      form.append('file', f)
      const found = await api.inspectModelFile(form)
      setInspection(found)
      setName((prev) => prev || nameOf(f))
      setTask(found.task ?? '')
      setFeatures(rowsOf(found))
      setClasses((found.classes ?? []).join(', '))
    } catch (err) {
      setRefusal(err instanceof Error ? err.message : String(err))
    } finally {
      setInspecting(false)
    }
  }

  const setRow = (i: number, change: Partial<FeatureRow>) =>
    setFeatures((prev) => prev.map((row, j) => (j === i ? { ...row, ...change } : row)))

  const names = features.map((f) => f.name.trim())
  const namesOk = names.length > 0 && names.every((n) => n !== '') && new Set(names).size === names.length
  const categoriesOk = features.every((f) => f.type !== 'category' || listOf(f.categories, f.found).length > 0)
  const classList = listOf(classes, inspection?.classes)
  const classesOk = task !== 'classification' || classList.length >= 2
  const declaredImage = imageOf(imageDraft, features.length, t)
  const problems = [
    !namesOk && t('byo.errNames'),
    !categoriesOk && t('byo.errCategories'),
    task === '' && t('byo.errTask'),
    !classesOk && t('byo.errClasses'),
    declaredImage.problem,
  ].filter((p): p is string => typeof p === 'string')
  const valid = file !== null && inspection !== null && name.trim() !== '' && problems.length === 0

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (!valid || !file || task === '') return
    setSubmitting(true)
    setSubmitError(null)
    try {
      const form = new FormData()
      form.append('file', file)
      form.append('name', name.trim())
      form.append('task', task)
      const specs = features.map((f) => ({
        name: f.name.trim(),
        type: f.type,
        required: f.required,
        ...(f.type === 'category' ? { categories: listOf(f.categories, f.found) } : {}),
      }))
      form.append('features', JSON.stringify(specs))
      if (task === 'classification') form.append('classes', JSON.stringify(classList))
      if (declaredImage.image) form.append('image', JSON.stringify(declaredImage.image))
      if (reference) form.append('reference', reference)
      const model = await api.uploadModel(form)
      navigate(`/models/${model.id}`)
    } catch (err) {
      setSubmitError(err instanceof Error ? err.message : String(err))
    } finally {
      setSubmitting(false)
    }
  }

  return (
    <div className="page" data-testid="upload-page">
      <div className="page-header">
        <div>
          <Link to="/models" className="back-link">
            ← {t('nav.models')}
          </Link>
          <h1>{t('byo.title')}</h1>
          <p className="muted">{t('byo.subtitle')}</p>
        </div>
      </div>
      <form className="panel form" onSubmit={(e) => void submit(e)}>
        <label className="field">
          <span>{t('byo.file')}</span>
          <input
            type="file"
            accept=".skops,application/octet-stream"
            onChange={(e) => void onFile(e.target.files?.[0] ?? null)}
            data-testid="upload-file"
          />
        </label>
        <small className="muted">
          <a href="https://skops.readthedocs.io/en/stable/persistence.html" target="_blank" rel="noreferrer">
            {t('byo.howTo')}
          </a>
        </small>
        {inspecting && (
          <p className="muted" role="status" data-testid="upload-inspecting">
            {t('byo.inspecting')}
          </p>
        )}
        {refusal && (
          <p className="form-error" role="alert" data-testid="upload-refused">
            {t('byo.refused', { message: refusal })}
          </p>
        )}
        {inspection && (
          <>
            <div
              className={`callout ${inspection.feature_names_found ? 'callout-info' : 'callout-warning'}`}
              role="status"
              data-testid="upload-inspected"
            >
              {inspection.feature_names_found
                ? t('byo.found', { algorithm: inspection.algorithm, count: inspection.features.length })
                : inspection.features.length > 0
                  ? t('byo.foundNoNames', { count: inspection.features.length })
                  : t('byo.foundNoFeatures')}
            </div>
            <div className="grid-2">
              <label className="field">
                <span>{t('byo.name')}</span>
                <input
                  value={name}
                  onChange={(e) => setName(e.target.value)}
                  required
                  maxLength={100}
                  data-testid="upload-name"
                />
                <small className="muted">{t('byo.nameHint')}</small>
              </label>
              <label className="field">
                <span>{t('byo.task')}</span>
                <select value={task} onChange={(e) => setTask(e.target.value as '' | Task)} data-testid="upload-task">
                  <option value="">—</option>
                  <option value="classification">{t('task.classification')}</option>
                  <option value="regression">{t('task.regression')}</option>
                </select>
              </label>
            </div>
            <fieldset className="field">
              <legend>{t('byo.features')}</legend>
              <small className="muted">{t('byo.featuresHint')}</small>
              <div className="table-wrap">
                <table className="table table-compact" data-testid="upload-features">
                  <thead>
                    <tr>
                      <th scope="col">{t('byo.featureName')}</th>
                      <th scope="col">{t('byo.featureType')}</th>
                      <th scope="col">{t('byo.featureCategories')}</th>
                      <th scope="col">{t('byo.featureRequired')}</th>
                      <th scope="col">
                        <span className="sr-only">{t('common.actions')}</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {features.map((f, i) => (
                      <tr key={i} data-testid="upload-feature-row">
                        <td>
                          <input
                            value={f.name}
                            onChange={(e) => setRow(i, { name: e.target.value })}
                            aria-label={t('byo.featureName')}
                            data-testid={`upload-feature-name-${i}`}
                          />
                        </td>
                        <td>
                          <select
                            value={f.type}
                            onChange={(e) => setRow(i, { type: e.target.value as FeatureType })}
                            aria-label={t('byo.featureType')}
                            data-testid={`upload-feature-type-${i}`}
                          >
                            {TYPES.map((type) => (
                              <option key={type} value={type}>
                                {t(
                                  type === 'number'
                                    ? 'byo.typeNumber'
                                    : type === 'integer'
                                      ? 'byo.typeInteger'
                                      : type === 'boolean'
                                        ? 'byo.typeBoolean'
                                        : 'byo.typeCategory',
                                )}
                              </option>
                            ))}
                          </select>
                        </td>
                        <td>
                          <input
                            value={f.categories}
                            onChange={(e) => setRow(i, { categories: e.target.value })}
                            disabled={f.type !== 'category'}
                            aria-label={t('byo.featureCategories')}
                            data-testid={`upload-feature-categories-${i}`}
                          />
                        </td>
                        <td>
                          <input
                            type="checkbox"
                            checked={f.required}
                            onChange={(e) => setRow(i, { required: e.target.checked })}
                            aria-label={t('byo.featureRequired')}
                          />
                        </td>
                        <td className="cell-actions">
                          <button
                            type="button"
                            className="btn btn-sm btn-ghost"
                            onClick={() => setFeatures((prev) => prev.filter((_, j) => j !== i))}
                            aria-label={t('byo.removeFeature', { name: f.name })}
                          >
                            ×
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div>
                <button
                  type="button"
                  className="btn btn-sm"
                  onClick={() => setFeatures((prev) => [...prev, { name: '', type: 'number', required: true, categories: '' }])}
                  data-testid="upload-add-feature"
                >
                  {t('byo.addFeature')}
                </button>
              </div>
            </fieldset>
            {task === 'classification' && (
              <label className="field">
                <span>{t('byo.classes')}</span>
                <input value={classes} onChange={(e) => setClasses(e.target.value)} data-testid="upload-classes" />
                <small className="muted">{t('byo.classesHint')}</small>
              </label>
            )}
            <ImageInputFields draft={imageDraft} onChange={setImageDraft} features={features.length} testId="upload-image" />
            <label className="field">
              <span>{t('byo.reference')}</span>
              <input
                type="file"
                accept=".csv,text/csv"
                onChange={(e) => setReference(e.target.files?.[0] ?? null)}
                data-testid="upload-reference"
              />
              <small className="muted">{t('byo.referenceHint')}</small>
            </label>
            {problems.length > 0 && (
              <ul className="form-error" data-testid="upload-problems">
                {problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            )}
          </>
        )}
        {submitError && (
          <p className="form-error" role="alert" data-testid="upload-error">
            {submitError}
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={!valid || submitting} data-testid="upload-submit">
            {submitting ? t('common.working') : t('byo.upload')}
          </button>
        </div>
      </form>
    </div>
  )
}
