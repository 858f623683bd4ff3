// The six monitoring ranges and the Live toggle (refresh every 5 s, paused while the tab is hidden).
import { useEffect, useRef, useState } from 'react'
import { useI18n } from '../i18n'
import type { Range } from '../types'

export const RANGES: Range[] = ['15m', '1h', '6h', '24h', '7d', '30d']
export const LIVE_INTERVAL_MS = 5000

/** Calls `refresh` every 5 s while `enabled` and the page is visible (once more on coming back). */
export function useLive(enabled: boolean, refresh: () => void): boolean {
  const [visible, setVisible] = useState(() => typeof document === 'undefined' || !document.hidden)
  const refreshRef = useRef(refresh)
  refreshRef.current = refresh
  useEffect(() => {
    const onChange = () => {
      const now = !document.hidden
      setVisible(now)
      if (now && enabled) refreshRef.current()
    }
    document.addEventListener('visibilitychange', onChange)
    return () => document.removeEventListener('visibilitychange', onChange)
  }, [enabled])
  useEffect(() => {
    if (!enabled || !visible) return
    const timer = window.setInterval(() => refreshRef.current(), LIVE_INTERVAL_MS)
    return () => window.clearInterval(timer)
  }, [enabled, visible])
  return enabled && !visible
}

interface RangePickerProps {
  range: Range
  onRange: (r: Range) => void
  live?: boolean
  onLive?: (on: boolean) => void
  paused?: boolean
  testIdPrefix?: string
}

export function RangePicker({ range, onRange, live, onLive, paused, testIdPrefix = 'range' }: RangePickerProps) {
  const { t } = useI18n()
  return (
    <div style={{ display: 'flex', flexWrap: 'wrap', gap: 12, alignItems: 'center' }}>
      <div className="segmented segmented-buttons" role="group" aria-label={t('live.range')}>
        {RANGES.map((r) => (
          <button
            key={r}
            type="button"
            className={r === range ? 'checked' : ''}
            aria-pressed={r === range}
            onClick={() => onRange(r)}
            data-testid={`${testIdPrefix}-${r}`}
          >
            {t(`live.range.${r}`)}
          </button>
        ))}
      </div>
      {onLive ? (
        <label className="small" title={t('live.liveHint')} style={{ display: 'inline-flex', gap: 6, alignItems: 'center' }}>
          <input
            type="checkbox"
            checked={!!live}
            onChange={(e) => onLive(e.target.checked)}
            data-testid={`${testIdPrefix}-live`}
          />
          <span>{t('live.live')}</span>
          {live ? (
            <span className={`live-dot${paused ? ' paused' : ''}`} aria-hidden="true" data-testid="live-indicator">
              {paused ? t('live.paused') : '●'}
            </span>
          ) : null}
        </label>
      ) : null}
    </div>
  )
}
