// The Traffic panel of an API: start a canary or a shadow of another version, see the split, promote
// or roll back in one click (each confirmed), and compare the versions' figures and shadow agreement.
import { useEffect, useState } from 'react'
import { api, ApiError } from '../api'
import { ConfirmDialog } from './ConfirmDialog'
import { ErrorState, Skeleton } from './Feedback'
import { fmtInt, fmtMs, fmtPercent, fmtRate } from '../format'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { ExportedApi, Range, TrafficMode, VersionFigures } from '../types'

type Pending = null | 'promote' | 'rollback'

interface TrafficPanelProps {
  api: ExportedApi
  range: Range
  tick: number
  onChanged: (updated: ExportedApi) => void
}

/** A weight typed by the user, or null when it is not in (0, 100]. */
export function parseWeight(text: string): number | null {
  const value = Number(text.trim().replace(',', '.'))
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 100) return null
  return Math.round(value * 100) / 100
}

export function TrafficPanel({ api: a, range, tick, onChanged }: TrafficPanelProps) {
  const { t, lang } = useI18n()
  const model = useAsync(() => api.model(a.model_id), [a.model_id])
  const figures = useAsync(() => api.statsByVersion(a.id, range), [a.id, range, a.version_number, a.traffic?.version_number])
  useEffect(() => {
    if (tick > 0) figures.reload(true)
  }, [tick])

  const others = (model.data?.versions ?? []).map((v) => v.number).filter((n) => n !== a.version_number)
  const split = a.traffic ?? null
  const [version, setVersion] = useState<number | null>(null)
  const [mode, setMode] = useState<TrafficMode>('canary')
  const [weight, setWeight] = useState('10')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const [pending, setPending] = useState<Pending>(null)

  const chosen = version !== null && others.includes(version) ? version : (others[others.length - 1] ?? null)
  const parsedWeight = mode === 'shadow' && weight.trim() === '' ? 100 : parseWeight(weight)
  const pct = (value: number) => fmtPercent(lang, value)

  const start = async () => {
    if (chosen === null || parsedWeight === null || busy) return
    setBusy(true)
    setError(null)
    setNotice(null)
    try {
      const updated = await api.setTraffic(a.id, chosen, mode, parsedWeight)
      onChanged(updated)
      setNotice(
        t('traffic.started', {
          version: chosen,
          weight: pct(parsedWeight),
          mode: mode === 'canary' ? t('traffic.roleCanary') : t('traffic.roleShadow'),
        }),
      )
    } catch (err) {
      if (err instanceof ApiError && err.code === 'INCOMPATIBLE_VERSION') {
        const reason = err.message.includes('(') ? err.message.slice(err.message.indexOf('(')) : ''
        setError(t('traffic.incompatible', { version: chosen, serving: a.version_number, reason }))
      } else {
        setError(err instanceof Error ? err.message : String(err))
      }
    } finally {
      setBusy(false)
    }
  }

  const roleOf = (row: VersionFigures): string => {
    if (row.version_number === a.version_number) return t('traffic.roleServing')
    if (split && row.version_number === split.version_number)
      return split.mode === 'canary' ? t('traffic.roleCanary') : t('traffic.roleShadow')
    return t('traffic.roleOther')
  }
  const rows = figures.data?.by_version ?? []
  const shadows = rows.filter((r) => r.shadow !== null)

  return (
    <section className="panel" aria-labelledby="traffic-title" data-testid="traffic-panel">
      <h2 id="traffic-title" className="h-small">
        {t('traffic.title')}
      </h2>
      <p className="muted small">{t('traffic.intro')}</p>

      <div className="callout callout-info" data-testid="traffic-current">
        <p>
          {split === null
            ? t('traffic.none', { version: a.version_number })
            : t(split.mode === 'canary' ? 'traffic.canaryNow' : 'traffic.shadowNow', {
                version: split.version_number,
                weight: pct(split.weight_percent),
                serving: a.version_number,
              })}
          {split === null && a.previous_version_number ? ` ${t('traffic.previous', { version: a.previous_version_number })}` : ''}
        </p>
        <div className="actions actions-wrap">
          {split !== null && (
            <button
              type="button"
              className="btn btn-primary btn-sm"
              onClick={() => setPending('promote')}
              data-testid="traffic-promote"
            >
              {t('traffic.promote')}
            </button>
          )}
          {(split !== null || a.previous_version_number) && (
            <button type="button" className="btn btn-sm" onClick={() => setPending('rollback')} data-testid="traffic-rollback">
              {t('traffic.rollback')}
            </button>
          )}
        </div>
      </div>

      {notice && (
        <p className="callout callout-success" role="status" data-testid="traffic-notice">
          {notice}
        </p>
      )}

      {model.error && <ErrorState message={model.error} onRetry={() => model.reload()} />}
      {model.data && others.length === 0 && <p className="muted">{t('traffic.noOther')}</p>}
      {model.data && others.length > 0 && (
        <form
          className="traffic-form"
          data-testid="traffic-form"
          onSubmit={(e) => {
            e.preventDefault()
            void start()
          }}
        >
          <div className="form-row">
            <label className="field">
              <span>{t('traffic.version')}</span>
              <select
                value={chosen ?? ''}
                onChange={(e) => setVersion(Number(e.target.value))}
                data-testid="traffic-version"
              >
                {others.map((n) => (
                  <option key={n} value={n}>
                    v{n}
                  </option>
                ))}
              </select>
            </label>
            <fieldset className="field">
              <legend>{t('traffic.mode')}</legend>
              {(['canary', 'shadow'] as const).map((m) => (
                <label key={m} className="radio">
                  <input
                    type="radio"
                    name="traffic-mode"
                    value={m}
                    checked={mode === m}
                    onChange={() => {
                      setMode(m)
                      if (m === 'shadow' && weight === '10') setWeight('100')
                      if (m === 'canary' && weight === '100') setWeight('10')
                    }}
                    data-testid={`traffic-mode-${m}`}
                  />{' '}
                  {t(m === 'canary' ? 'traffic.modeCanary' : 'traffic.modeShadow')}
                </label>
              ))}
            </fieldset>
            <label className="field">
              <span>{t('traffic.weight')}</span>
              <div className="copy-row">
                <input
                  type="range"
                  min={1}
                  max={100}
                  step={1}
                  value={parsedWeight ?? 0}
                  onChange={(e) => setWeight(e.target.value)}
                  aria-label={t('traffic.weight')}
                  data-testid="traffic-weight-slider"
                />
                <input
                  type="number"
                  min={0.01}
                  max={100}
                  step="any"
                  inputMode="decimal"
                  value={weight}
                  onChange={(e) => setWeight(e.target.value)}
                  aria-invalid={parsedWeight === null}
                  style={{ width: '6rem' }}
                  data-testid="traffic-weight"
                />
              </div>
              {parsedWeight === null && <small className="form-error">{t('traffic.weightInvalid')}</small>}
            </label>
          </div>
          <div className="actions">
            <button
              type="submit"
              className="btn btn-primary"
              disabled={busy || chosen === null || parsedWeight === null}
              data-testid="traffic-start"
            >
              {busy ? t('common.working') : split === null ? t('traffic.start') : t('traffic.update')}
            </button>
          </div>
          {error && (
            <p className="form-error" role="alert" data-testid="traffic-error">
              {error}
            </p>
          )}
        </form>
      )}

      <h3 className="h-small">{t('traffic.figures')}</h3>
      {figures.loading && !figures.data && <Skeleton lines={3} />}
      {figures.error && <ErrorState message={figures.error} onRetry={() => figures.reload()} />}
      {figures.data && rows.length === 0 && <p className="muted">{t('traffic.noFigures')}</p>}
      {rows.length > 0 && (
        <div className="table-wrap">
          <table className="table table-compact" data-testid="traffic-figures">
            <thead>
              <tr>
                <th scope="col">{t('traffic.colVersion')}</th>
                <th scope="col">{t('traffic.colRole')}</th>
                <th scope="col" className="num">{t('traffic.colRequests')}</th>
                <th scope="col" className="num">{t('traffic.colErrorRate')}</th>
                <th scope="col" className="num">p50</th>
                <th scope="col" className="num">p95</th>
                <th scope="col" className="num">p99</th>
              </tr>
            </thead>
            <tbody>
              {rows.flatMap((row) => {
                const label = row.version_number === null ? t('traffic.unknownVersion') : `v${row.version_number}`
                const out = []
                if (row.requests > 0)
                  out.push(
                    <tr key={row.model_version_id} data-testid={`traffic-row-${row.version_number ?? 'unknown'}`}>
                      <td>{label}</td>
                      <td>{roleOf(row)}</td>
                      <td className="num">{fmtInt(lang, row.requests)}</td>
                      <td className="num">{fmtRate(lang, row.error_rate)}</td>
                      <td className="num">{fmtMs(lang, row.p50_ms)}</td>
                      <td className="num">{fmtMs(lang, row.p95_ms)}</td>
                      <td className="num">{fmtMs(lang, row.p99_ms)}</td>
                    </tr>,
                  )
                if (row.shadow)
                  out.push(
                    <tr
                      key={`${row.model_version_id}-shadow`}
                      className="muted"
                      data-testid={`traffic-shadow-row-${row.version_number ?? 'unknown'}`}
                    >
                      <td>{label}</td>
                      <td>{t('traffic.shadowRow', { version: row.version_number ?? '?' })}</td>
                      <td className="num">{fmtInt(lang, row.shadow.requests)}</td>
                      <td className="num">{fmtRate(lang, row.shadow.error_rate)}</td>
                      <td className="num">{fmtMs(lang, row.shadow.p50_ms)}</td>
                      <td className="num">{fmtMs(lang, row.shadow.p95_ms)}</td>
                      <td className="num">{fmtMs(lang, row.shadow.p99_ms)}</td>
                    </tr>,
                  )
                return out
              })}
            </tbody>
          </table>
        </div>
      )}
      {shadows.map((row) => {
        const s = row.shadow!
        const value =
          a.task === 'regression'
            ? t('traffic.agreementRegression')
            : s.agreement_rate === null
              ? t('traffic.agreementNone')
              : t('traffic.agreementValue', {
                  rate: fmtRate(lang, s.agreement_rate),
                  agreed: fmtInt(lang, s.agreed),
                  compared: fmtInt(lang, s.compared),
                })
        return (
          <p key={row.model_version_id} data-testid={`traffic-agreement-${row.version_number ?? 'unknown'}`}>
            <strong>
              {t('traffic.agreement')} (v{row.version_number ?? '?'}) :
            </strong>{' '}
            {value}
          </p>
        )
      })}

      {pending === 'promote' && split !== null && (
        <ConfirmDialog
          title={t('traffic.promoteTitle', { version: split.version_number })}
          message={
            <p>{t('traffic.promoteConfirm', { version: split.version_number, serving: a.version_number, name: a.name })}</p>
          }
          confirmLabel={t('traffic.promote')}
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            const updated = await api.promote(a.id)
            setPending(null)
            onChanged(updated)
            setNotice(t('traffic.promoted', { version: updated.version_number }))
          }}
        />
      )}
      {pending === 'rollback' && (
        <ConfirmDialog
          title={
            split !== null
              ? t('traffic.rollbackSplitTitle', { version: split.version_number })
              : t('traffic.rollbackPreviousTitle', { version: a.previous_version_number ?? '?' })
          }
          message={
            <p>
              {split !== null
                ? t('traffic.rollbackSplitConfirm', { serving: a.version_number })
                : t('traffic.rollbackPreviousConfirm', {
                    version: a.previous_version_number ?? '?',
                    serving: a.version_number,
                    name: a.name,
                  })}
            </p>
          }
          confirmLabel={t('traffic.rollback')}
          danger
          onCancel={() => setPending(null)}
          onConfirm={async () => {
            const updated = await api.rollback(a.id)
            setPending(null)
            onChanged(updated)
            setNotice(t('traffic.rolledBack', { version: updated.version_number }))
          }}
        />
      )}
    </section>
  )
}
