// Alert badges (issue 12): an API's firing/pending count, and the "error" status of its health.
import type { BadgeCount } from '../alertlogic'
import { useI18n } from '../i18n'
import type { AlertState } from '../types'

const STATE_STYLE: Record<AlertState, { background: string; color: string }> = {
  firing: { background: 'var(--bad-soft)', color: 'var(--bad)' },
  pending: { background: 'var(--warn-soft)', color: 'var(--warn)' },
  resolved: { background: 'var(--good-soft)', color: 'var(--good)' },
  ok: { background: '#eef1f6', color: '#44506a' },
}

/** Firing (red) and pending (amber) rules of one API; nothing when neither. */
export function AlertCountBadge({ count, testId = 'alert-badge' }: { count: BadgeCount | undefined; testId?: string }) {
  const { t } = useI18n()
  if (!count || (count.firing === 0 && count.pending === 0)) return null
  return (
    <span
      className="alert-badges"
      data-testid={testId}
      data-firing={count.firing}
      data-pending={count.pending}
      title={t('alerts.badgeTitle', { firing: count.firing, pending: count.pending })}
      style={{ display: 'inline-flex', gap: '0.25rem', flexWrap: 'wrap' }}
    >
      {count.firing > 0 && (
        <span className="badge" style={STATE_STYLE.firing} data-testid={`${testId}-firing`}>
          {t('alerts.badgeFiring', { count: count.firing })}
        </span>
      )}
      {count.pending > 0 && (
        <span className="badge" style={STATE_STYLE.pending} data-testid={`${testId}-pending`}>
          {t('alerts.badgePending', { count: count.pending })}
        </span>
      )}
    </span>
  )
}

export function AlertStateBadge({ state }: { state: AlertState }) {
  const { t } = useI18n()
  return (
    <span className="badge" style={STATE_STYLE[state]} data-testid="alert-state" data-state={state}>
      <span className="badge-dot" aria-hidden="true" />
      {t(`alerts.state.${state}`)}
    </span>
  )
}

/** The seed glossary's "error" status: shown instead of active when the API's health is error. */
export function HealthErrorBadge() {
  const { t } = useI18n()
  return (
    <span
      className="badge badge-error"
      style={STATE_STYLE.firing}
      data-testid="status-badge"
      data-status="error"
      title={t('alerts.statusErrorHint')}
    >
      <span className="badge-dot" aria-hidden="true" />
      {t('alerts.statusError')}
    </span>
  )
}
