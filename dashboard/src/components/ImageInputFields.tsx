// Declares a model's features as the pixels of W x H grayscale images (issue 14): its API then also
// takes a PNG or JPEG. Used by the training wizard (CSV) and the upload page.
import { useI18n } from '../i18n'
import type { Translate } from '../i18n'

/** `ImageInput` of the management API (schemas/resources.py). */
export interface ImageInput {
  width: number
  height: number
  min_value: number
  max_value: number
  ink: 'high' | 'low'
}

export interface ImageDraft {
  enabled: boolean
  width: string
  height: string
  min: string
  max: string
  ink: 'high' | 'low'
}

export const EMPTY_IMAGE_DRAFT: ImageDraft = { enabled: false, width: '', height: '', min: '0', max: '255', ink: 'high' }

const side = (text: string): number | null => {
  const n = Number(text)
  return Number.isInteger(n) && n >= 1 && n <= 256 ? n : null
}

/** The declared images (null: none declared) and what is wrong with them, if anything. */
export function imageOf(
  draft: ImageDraft,
  features: number,
  t: Translate,
): { image: ImageInput | null; problem: string | null } {
  if (!draft.enabled) return { image: null, problem: null }
  const width = side(draft.width)
  const height = side(draft.height)
  if (width === null || height === null) return { image: null, problem: t('image.size') }
  const min = Number(draft.min)
  const max = Number(draft.max)
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(max > min)) return { image: null, problem: t('image.range') }
  if (width * height !== features) {
    return { image: null, problem: t('image.mismatch', { width, height, pixels: width * height, features }) }
  }
  return { image: { width, height, min_value: min, max_value: max, ink: draft.ink }, problem: null }
}

export function ImageInputFields({
  draft,
  onChange,
  features,
  testId,
}: {
  draft: ImageDraft
  onChange: (draft: ImageDraft) => void
  features: number
  testId: string
}) {
  const { t } = useI18n()
  const set = (change: Partial<ImageDraft>) => onChange({ ...draft, ...change })
  const enable = (enabled: boolean) => {
    // A square number of features proposes a square image (64 → 8 x 8).
    const root = Math.round(Math.sqrt(features))
    const guess = enabled && draft.width === '' && root * root === features ? String(root) : null
    set(guess ? { enabled, width: guess, height: guess } : { enabled })
  }
  const { problem } = imageOf(draft, features, t)
  const width = side(draft.width)
  const height = side(draft.height)
  return (
    <fieldset className="field" data-testid={testId}>
      <label className="switch">
        <input
          type="checkbox"
          checked={draft.enabled}
          onChange={(e) => enable(e.target.checked)}
          data-testid={`${testId}-enabled`}
        />{' '}
        {t('image.declare')}
      </label>
      {draft.enabled && (
        <>
          <small className="muted">{t('image.hint')}</small>
          <div className="form-row">
            <label className="field">
              <span>{t('image.width')}</span>
              <input inputMode="numeric" value={draft.width} onChange={(e) => set({ width: e.target.value })} data-testid={`${testId}-width`} />
            </label>
            <label className="field">
              <span>{t('image.height')}</span>
              <input inputMode="numeric" value={draft.height} onChange={(e) => set({ height: e.target.value })} data-testid={`${testId}-height`} />
            </label>
            <label className="field">
              <span>{t('image.min')}</span>
              <input inputMode="decimal" value={draft.min} onChange={(e) => set({ min: e.target.value })} data-testid={`${testId}-min`} />
            </label>
            <label className="field">
              <span>{t('image.max')}</span>
              <input inputMode="decimal" value={draft.max} onChange={(e) => set({ max: e.target.value })} data-testid={`${testId}-max`} />
            </label>
            <label className="field">
              <span>{t('image.ink')}</span>
              <select value={draft.ink} onChange={(e) => set({ ink: e.target.value as 'high' | 'low' })} data-testid={`${testId}-ink`}>
                <option value="high">{t('image.inkHigh')}</option>
                <option value="low">{t('image.inkLow')}</option>
              </select>
            </label>
          </div>
          {problem ? (
            <p className="form-error" role="alert" data-testid={`${testId}-problem`}>
              {problem}
            </p>
          ) : (
            width !== null &&
            height !== null && (
              <small className="muted">{t('image.count', { width, height, pixels: width * height, features })}</small>
            )
          )}
        </>
      )}
    </fieldset>
  )
}
