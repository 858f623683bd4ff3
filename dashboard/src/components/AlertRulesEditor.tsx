// The alert rules of one API (issue 12): list, add, remove and change rules of every kind, with the
// thresholds in human units (% for shares, ms, MB), saved as a whole list with PUT.
import { useEffect, useRef, useState } from 'react'
import {
  DEFAULT_THRESHOLDS,
  draftToSpec,
  newRule,
  RULE_KINDS,
  ruleToDraft,
  thresholdToDisplay,
  thresholdUnit,
  usesMinRequests,
} from '../alertlogic'
import type { RuleDraft, RuleField } from '../alertlogic'
import { api } from '../api'
import { useI18n } from '../i18n'
import type { AlertRule, AlertRuleKind, AlertRuleSpec } from '../types'
import { ErrorState, Skeleton } from './Feedback'

export function AlertRulesEditor({ apiId }: { apiId: string | number }) {
  const { t, lang } = useI18n()
  const [saved, setSaved] = useState<AlertRule[] | null>(null)
  const [drafts, setDrafts] = useState<RuleDraft[]>([])
  const [loadError, setLoadError] = useState<string | null>(null)
  const [errors, setErrors] = useState<Record<string, RuleField[]>>({})
  const [message, setMessage] = useState<{ tone: 'success' | 'error'; text: string } | null>(null)
  const [busy, setBusy] = useState(false)
  const [addKind, setAddKind] = useState<AlertRuleKind>('error_rate_5xx')
  const nextKey = useRef(0)
  const key = () => `new-${(nextKey.current += 1)}`

  const reset = (rules: AlertRule[]) => {
    setSaved(rules)
    setDrafts(rules.map((r) => ruleToDraft(r, r.id)))
    setErrors({})
  }
  const load = () => {
    setLoadError(null)
    api
      .alertRules(apiId)
      .then((res) => reset(res.items))
      .catch((err: unknown) => setLoadError(err instanceof Error ? err.message : String(err)))
  }
  useEffect(load, [apiId])

  const dirty =
    saved !== null &&
    JSON.stringify(drafts.map((d) => ({ ...d, key: '' }))) !==
      JSON.stringify(saved.map((r) => ({ ...ruleToDraft(r, r.id), key: '' })))

  const update = (k: string, patch: Partial<RuleDraft>) => {
    setDrafts((ds) => ds.map((d) => (d.key === k ? { ...d, ...patch } : d)))
    setMessage(null)
  }
  const changeKind = (d: RuleDraft, kind: AlertRuleKind) =>
    update(d.key, { kind, threshold: String(thresholdToDisplay(kind, DEFAULT_THRESHOLDS[kind])) })

  const save = async () => {
    const specs: AlertRuleSpec[] = []
    const bad: Record<string, RuleField[]> = {}
    for (const d of drafts) {
      const r = draftToSpec(d)
      if (r.spec) specs.push(r.spec)
      else bad[d.key] = r.errors
    }
    setErrors(bad)
    if (Object.keys(bad).length > 0) {
      setMessage({ tone: 'error', text: t('alerts.rules.fixErrors') })
      return
    }
    setBusy(true)
    setMessage(null)
    try {
      const res = await api.saveAlertRules(apiId, specs)
      reset(res.items)
      setMessage({ tone: 'success', text: t('alerts.rules.saved') })
    } catch (err) {
      setMessage({ tone: 'error', text: err instanceof Error ? err.message : String(err) })
    } finally {
      setBusy(false)
    }
  }

  const unitLabel = (kind: AlertRuleKind) => {
    const unit = thresholdUnit(kind)
    if (unit === 'fraction' || unit === 'percent') return '%'
    if (unit === 'ms') return 'ms'
    if (unit === 'mb') return lang === 'fr' ? 'Mo' : 'MB'
    return ''
  }
  const fieldError = (d: RuleDraft, f: RuleField) => errors[d.key]?.includes(f) ?? false
  const errorText: Record<RuleField, string> = {
    threshold: t('alerts.rules.invalidThreshold'),
    windowMin: t('alerts.rules.invalidWindow'),
    forMin: t('alerts.rules.invalidFor'),
    minRequests: t('alerts.rules.invalidMin'),
  }

  return (
    <section className="panel" aria-labelledby="alert-rules-title" data-testid="alert-rules">
      <h2 id="alert-rules-title" className="h-small">
        {t('alerts.rules.title')}
      </h2>
      <p className="muted small">{t('alerts.rules.intro')}</p>
      {saved === null && !loadError && <Skeleton lines={3} height={18} />}
      {loadError && <ErrorState message={t('alerts.unavailable', { message: loadError })} onRetry={load} />}
      {saved !== null && drafts.length === 0 && (
        <p className="muted" data-testid="alert-rules-empty">
          {t('alerts.rules.empty')}
        </p>
      )}
      {drafts.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="alert-rules-table">
            <thead>
              <tr>
                <th scope="col">{t('alerts.rules.kind')}</th>
                <th scope="col">{t('alerts.rules.threshold')}</th>
                <th scope="col">{t('alerts.rules.window')}</th>
                <th scope="col">{t('alerts.rules.for')}</th>
                <th scope="col">{t('alerts.rules.minRequests')}</th>
                <th scope="col">{t('alerts.rules.enabled')}</th>
                <th scope="col">
                  <span className="sr-only">{t('common.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {drafts.map((d) => {
                const unit = thresholdUnit(d.kind)
                return (
                  <tr key={d.key} data-testid="alert-rule-row" data-kind={d.kind} data-rule-id={d.id ?? ''}>
                    <td data-label={t('alerts.rules.kind')}>
                      <select
                        value={d.kind}
                        onChange={(e) => changeKind(d, e.target.value as AlertRuleKind)}
                        aria-label={t('alerts.rules.kind')}
                        data-testid="rule-kind"
                      >
                        {RULE_KINDS.map((k) => (
                          <option key={k} value={k}>
                            {t(`alerts.kind.${k}`)}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td data-label={t('alerts.rules.threshold')}>
                      {unit === 'none' ? (
                        <span className="muted">{t('alerts.rules.noThreshold')}</span>
                      ) : (
                        <span
                          style={{ display: 'inline-flex', alignItems: 'center', gap: '0.35rem' }}
                          title={d.kind === 'traffic_drop' ? t('alerts.rules.dropHint') : undefined}
                        >
                          <input
                            inputMode="decimal"
                            size={7}
                            value={d.threshold}
                            onChange={(e) => update(d.key, { threshold: e.target.value })}
                            aria-label={`${t('alerts.rules.threshold')} (${unitLabel(d.kind)})`}
                            aria-invalid={fieldError(d, 'threshold')}
                            className={fieldError(d, 'threshold') ? 'invalid' : ''}
                            data-testid="rule-threshold"
                          />
                          <span className="muted">{unitLabel(d.kind)}</span>
                        </span>
                      )}
                    </td>
                    <td data-label={t('alerts.rules.window')}>
                      <input
                        inputMode="decimal"
                        size={5}
                        value={d.windowMin}
                        onChange={(e) => update(d.key, { windowMin: e.target.value })}
                        aria-label={t('alerts.rules.window')}
                        aria-invalid={fieldError(d, 'windowMin')}
                        data-testid="rule-window"
                      />
                    </td>
                    <td data-label={t('alerts.rules.for')}>
                      <input
                        inputMode="decimal"
                        size={5}
                        value={d.forMin}
                        onChange={(e) => update(d.key, { forMin: e.target.value })}
                        aria-label={t('alerts.rules.for')}
                        aria-invalid={fieldError(d, 'forMin')}
                        data-testid="rule-for"
                      />
                    </td>
                    <td data-label={t('alerts.rules.minRequests')}>
                      {usesMinRequests(d.kind) ? (
                        <input
                          inputMode="numeric"
                          size={6}
                          value={d.minRequests}
                          onChange={(e) => update(d.key, { minRequests: e.target.value })}
                          aria-label={t('alerts.rules.minRequests')}
                          aria-invalid={fieldError(d, 'minRequests')}
                          data-testid="rule-min-requests"
                        />
                      ) : (
                        <span className="muted">—</span>
                      )}
                    </td>
                    <td data-label={t('alerts.rules.enabled')}>
                      <input
                        type="checkbox"
                        checked={d.enabled}
                        onChange={(e) => update(d.key, { enabled: e.target.checked })}
                        aria-label={t('alerts.rules.enabled')}
                        data-testid="rule-enabled"
                      />
                    </td>
                    <td className="cell-actions">
                      <button
                        type="button"
                        className="btn btn-sm btn-danger-outline"
                        onClick={() => {
                          setDrafts((ds) => ds.filter((x) => x.key !== d.key))
                          setMessage(null)
                        }}
                        data-testid="rule-remove"
                      >
                        {t('alerts.rules.remove')}
                      </button>
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {Object.entries(errors).length > 0 && (
        <ul className="form-error" role="alert">
          {[...new Set(Object.values(errors).flat())].map((f) => (
            <li key={f}>{errorText[f]}</li>
          ))}
        </ul>
      )}
      {saved !== null && (
        <div className="row-between wrap">
          <div className="actions">
            <label className="field field-inline">
              <span className="sr-only">{t('alerts.rules.kind')}</span>
              <select value={addKind} onChange={(e) => setAddKind(e.target.value as AlertRuleKind)} data-testid="rule-add-kind">
                {RULE_KINDS.map((k) => (
                  <option key={k} value={k}>
                    {t(`alerts.kind.${k}`)}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              className="btn btn-sm"
              onClick={() => {
                setDrafts((ds) => [...ds, ruleToDraft(newRule(addKind), key())])
                setMessage(null)
              }}
              data-testid="rule-add"
            >
              {t('alerts.rules.add')}
            </button>
          </div>
          <div className="actions">
            {dirty && <span className="muted small">{t('alerts.rules.unsaved')}</span>}
            {dirty && (
              <button type="button" className="btn btn-sm" onClick={() => reset(saved)} data-testid="rules-reset">
                {t('alerts.rules.reset')}
              </button>
            )}
            <button
              type="button"
              className="btn btn-primary btn-sm"
              disabled={busy || !dirty}
              onClick={() => void save()}
              data-testid="rules-save"
            >
              {busy ? t('common.working') : t('alerts.rules.save')}
            </button>
          </div>
        </div>
      )}
      {message && (
        <p
          className={message.tone === 'error' ? 'form-error' : 'muted small'}
          role={message.tone === 'error' ? 'alert' : 'status'}
          data-testid="rules-message"
        >
          {message.text}
        </p>
      )}
    </section>
  )
}
