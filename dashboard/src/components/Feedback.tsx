// Loading skeletons, error state with retry, empty state, status badge, stat card.
import type { ReactNode } from 'react'
import { useI18n } from '../i18n'

export function Skeleton({ lines = 3, height = 16 }: { lines?: number; height?: number }) {
  return (
    <div className="skeleton-block" aria-hidden="true" data-testid="skeleton">
      {Array.from({ length: lines }, (_, i) => (
        <div key={i} className="skeleton" style={{ height, width: `${90 - ((i * 17) % 35)}%` }} />
      ))}
    </div>
  )
}

export function ErrorState({ message, onRetry }: { message: string; onRetry?: () => void }) {
  const { t } = useI18n()
  return (
    <div className="state state-error" role="alert" data-testid="error-state">
      <strong>{t('common.errorTitle')}</strong>
      <p>{message}</p>
      {onRetry && (
        <button type="button" className="btn" onClick={onRetry} data-testid="retry-button">
          {t('common.retry')}
        </button>
      )}
    </div>
  )
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty" data-testid="empty-state">
      <strong>{title}</strong>
      {children}
    </div>
  )
}

export function StatusBadge({ status }: { status: string }) {
  const { t } = useI18n()
  const label = status === 'active' ? t('status.active') : status === 'inactive' ? t('status.inactive') : status
  return (
    <span className={`badge badge-${status}`} data-testid="status-badge" data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {label}
    </span>
  )
}

interface StatCardProps {
  label: string
  value: string
  hint?: string
  testId?: string
  tone?: 'default' | 'warning' | 'critical' | 'good'
  /** Smaller value text, for values that are words rather than figures. */
  compact?: boolean
}

export function StatCard({ label, value, hint, testId, tone = 'default', compact = false }: StatCardProps) {
  return (
    <div className={`stat-card stat-${tone} ${compact ? 'stat-compact' : ''}`} data-testid={testId}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId ? `${testId}-value` : undefined}>
        {value}
      </div>
      {hint && <div className="stat-hint">{hint}</div>}
    </div>
  )
}

export function StatCardSkeleton({ count }: { count: number }) {
  return (
    <div className="stat-grid">
      {Array.from({ length: count }, (_, i) => (
        <div key={i} className="stat-card">
          <div className="skeleton" style={{ height: 12, width: '60%' }} />
          <div className="skeleton" style={{ height: 26, width: '40%', marginTop: 10 }} />
        </div>
      ))}
    </div>
  )
}
