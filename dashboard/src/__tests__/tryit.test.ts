// "Try it": the form's values from the example row, the body sent, the curl of what was sent,
// and what the panel reads from the answer.
import { describe, expect, it } from 'vitest'
import {
  buildBody,
  curlCommand,
  errorOf,
  exampleImageOf,
  imageInputOf,
  initialValues,
  keyIsSendable,
  probabilityBars,
  serverTimingMs,
  shellQuote,
  traceIdOf,
} from '../tryit'
import type { FeatureSpec } from '../types'

const features: FeatureSpec[] = [
  { name: 'size', type: 'number', required: true, categories: null },
  { name: 'rooms', type: 'integer', required: true, categories: null },
  { name: 'color', type: 'category', required: true, categories: ['red', 'blue'] },
  { name: 'garden', type: 'boolean', required: false, categories: null },
  { name: 'age', type: 'number', required: false, categories: null },
]

describe('initialValues', () => {
  it('takes the example row, and a neutral value per type where it has none', () => {
    expect(initialValues(features, { size: 120.5, rooms: 3, color: 'blue', garden: true })).toEqual({
      size: '120.5',
      rooms: '3',
      color: 'blue',
      garden: true,
      age: '',
    })
    expect(initialValues(features, null)).toEqual({ size: '', rooms: '', color: 'red', garden: false, age: '' })
  })
})

describe('buildBody', () => {
  it('sends numbers as numbers and leaves blank fields out', () => {
    const { body, problems } = buildBody(features, { size: ' 120,5 ', rooms: '3', color: 'red', garden: false, age: '' })
    expect(body).toEqual({ size: 120.5, rooms: 3, color: 'red', garden: false })
    expect(problems).toEqual({})
  })
  it('flags what is not a number or not a whole one', () => {
    for (const bad of ['abc', '0x10', '1.2.3', 'Infinity', '1e400']) {
      expect(buildBody(features, { size: bad, rooms: '1', color: 'red' }).problems).toEqual({ size: 'number' })
    }
    expect(buildBody(features, { size: '1', rooms: '2.5', color: 'red' }).problems).toEqual({ rooms: 'integer' })
    expect(buildBody(features, { size: '-1e3', rooms: '+4', color: 'red' }).body).toMatchObject({ size: -1000, rooms: 4 })
  })
})

describe('curlCommand', () => {
  it('quotes every word as a POSIX shell needs, key included only when one was sent', () => {
    const body = JSON.stringify({ plan: "it's $HOME `id`" })
    const curl = curlCommand('http://127.0.0.1:8000/api/predict/abc', 'k-1_x', body)
    expect(curl).toBe(
      [
        'curl -sS -X POST http://127.0.0.1:8000/api/predict/abc',
        "  -H 'Content-Type: application/json'",
        "  -H 'X-API-Key: k-1_x'",
        `  -d '{"plan":"it'"'"'s $HOME \`id\`"}'`,
      ].join(' \\\n'),
    )
    expect(curlCommand('http://h/x', '', '{}')).not.toContain('X-API-Key')
    expect(shellQuote('')).toBe("''")
  })
})

describe('answers', () => {
  it('reads ingress time from Server-Timing', () => {
    expect(serverTimingMs('ingress;dur=12.5')).toBe(12.5)
    expect(serverTimingMs('cache;desc=hit, db;dur=3, ingress;dur="4.25"')).toBe(4.25)
    expect(serverTimingMs('db;dur=3')).toBe(3)
    expect(serverTimingMs('miss')).toBeNull()
    expect(serverTimingMs(null)).toBeNull()
  })
  it('reads the trace id of a traceparent', () => {
    const id = '4bf92f3577b34da6a3ce929d0e0e4736'
    expect(traceIdOf(`00-${id}-00f067aa0ba902b7-01`)).toBe(id)
    expect(traceIdOf(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`)).toBeNull()
    expect(traceIdOf('garbage')).toBeNull()
    expect(traceIdOf(null)).toBeNull()
  })
  it('finds the error of both error shapes, and nothing in a prediction', () => {
    expect(errorOf({ error: { code: 'INVALID_API_KEY', message: 'the API key is not valid', details: {} } })).toEqual({
      code: 'INVALID_API_KEY',
      message: 'the API key is not valid',
      details: {},
    })
    expect(errorOf({ error: 'Model iris not found' })).toEqual({ code: '', message: 'Model iris not found', details: null })
    expect(errorOf({ prediction: 'setosa' })).toBeNull()
    expect(errorOf('oops')).toBeNull()
  })
  it('orders probabilities, likeliest first, ignoring what is not a number', () => {
    expect(probabilityBars({ prediction: 'b', probabilities: { a: 0.2, b: 0.7, c: 0.1, d: 'x' } })).toEqual([
      ['b', 0.7],
      ['a', 0.2],
      ['c', 0.1],
    ])
    expect(probabilityBars({ prediction: 3.2 })).toEqual([])
  })
  it('refuses keys a header cannot carry, and sees an image API in the docs', () => {
    expect(keyIsSendable('mg_abc-DEF_123')).toBe(true)
    expect(keyIsSendable('clé')).toBe(false)
    expect(keyIsSendable('a b')).toBe(false)
    expect(imageInputOf({ image: { width: 8, height: 8, ink: 'high' } })).toEqual({ width: 8, height: 8 })
    expect(imageInputOf({ image: null })).toBeNull()
    expect(exampleImageOf({ image_example_request: { image: 'iVBORw0KGgo=' } })).toBe('data:image/png;base64,iVBORw0KGgo=')
    expect(exampleImageOf({ image_example_request: { image: '"><script>' } })).toBeNull()
    expect(exampleImageOf({ image_example_request: null })).toBeNull()
  })
})
