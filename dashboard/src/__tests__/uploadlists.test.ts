import { describe, expect, it } from 'vitest'
import { listOf } from '../pages/UploadModelPage'

describe('upload form lists', () => {
  it("keeps the file's own values, commas and spaces included, while the text is the proposed one", () => {
    const found = ['Paris, France', ' basic', '0,5']
    expect(listOf(found.join(', '), found)).toEqual(found)
  })

  it('splits what the user typed on commas', () => {
    const found = ['Paris, France', 'Lyon']
    expect(listOf('Paris, Lyon, Nice', found)).toEqual(['Paris', 'Lyon', 'Nice'])
    expect(listOf(' a ,b,, c ', null)).toEqual(['a', 'b', 'c'])
    expect(listOf('', [])).toEqual([])
  })
})
