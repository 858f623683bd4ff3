import { useCallback, useEffect, useRef, useState } from 'react'
import { errorText } from './errorMessages'
import { useI18n } from './i18n'

export interface AsyncState<T> {
  data: T | null
  error: string | null
  loading: boolean
  /** Reloads; `quiet` keeps the current data on screen (refresh rather than first load). */
  reload: (quiet?: boolean) => void
}

/** Runs `load` when `deps` change; keeps the last data while a quiet reload runs. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): AsyncState<T> {
  const [data, setData] = useState<T | null>(null)
  // The error itself, turned into text (translated by its code) at render: a language switch
  // translates an error already on screen.
  const [error, setError] = useState<unknown>(null)
  const { lang } = useI18n()
  const [loading, setLoading] = useState(true)
  const [tick, setTick] = useState(0)
  const quietRef = useRef(false)
  const loadRef = useRef(load)
  loadRef.current = load

  useEffect(() => {
    let cancelled = false
    if (!quietRef.current) {
      setLoading(true)
      setData(null)
    }
    quietRef.current = false
    loadRef
      .current()
      .then((value) => {
        if (cancelled) return
        setData(value)
        setError(null)
        setLoading(false)
      })
      .catch((err: unknown) => {
        if (cancelled) return
        setError(err ?? new Error('error'))
        setLoading(false)
      })
    return () => {
      cancelled = true
    }
  }, [...deps, tick])

  const reload = useCallback((quiet = false) => {
    quietRef.current = quiet
    setTick((n) => n + 1)
  }, [])

  return { data, error: error === null ? null : errorText(lang, error), loading, reload }
}

/** Calls `fn` every `ms` while `enabled`, and not while the tab is hidden. */
export function useInterval(fn: () => void, ms: number, enabled: boolean): void {
  const fnRef = useRef(fn)
  fnRef.current = fn
  useEffect(() => {
    if (!enabled) return
    const id = window.setInterval(() => {
      if (document.visibilityState !== 'hidden') fnRef.current()
    }, ms)
    return () => window.clearInterval(id)
  }, [ms, enabled])
}

/** A boolean remembered in localStorage. */
export function useStoredFlag(key: string, initial: boolean): [boolean, (v: boolean) => void] {
  const [value, setValue] = useState<boolean>(() => {
    const raw = localStorage.getItem(key)
    return raw === null ? initial : raw === '1'
  })
  const set = useCallback(
    (v: boolean) => {
      localStorage.setItem(key, v ? '1' : '0')
      setValue(v)
    },
    [key],
  )
  return [value, set]
}
