// The image declaration of the wizard and the upload page: W x H must be the number of features (the server's rule).
import { describe, expect, it } from 'vitest'
import { EMPTY_IMAGE_DRAFT, imageOf } from '../components/ImageInputFields'
import { translate } from '../i18n'

const t = (key: Parameters<typeof translate>[1], vars?: Record<string, string | number>) => translate('en', key, vars)

describe('imageOf', () => {
  it('declares nothing until enabled', () => {
    expect(imageOf(EMPTY_IMAGE_DRAFT, 64, t)).toEqual({ image: null, problem: null })
  })
  it('gives the image input when W x H is the number of features', () => {
    const draft = { ...EMPTY_IMAGE_DRAFT, enabled: true, width: '8', height: '8', min: '0', max: '16' }
    expect(imageOf(draft, 64, t)).toEqual({
      image: { width: 8, height: 8, min_value: 0, max_value: 16, ink: 'high' },
      problem: null,
    })
  })
  it('says what is wrong otherwise', () => {
    const draft = { ...EMPTY_IMAGE_DRAFT, enabled: true, width: '8', height: '7' }
    expect(imageOf(draft, 64, t).problem).toContain('56 pixels, but the model has 64 features')
    expect(imageOf({ ...draft, height: '0' }, 64, t).problem).toBe(t('image.size'))
    expect(imageOf({ ...draft, height: '8', min: '5', max: '5' }, 64, t).problem).toBe(t('image.range'))
  })
})
