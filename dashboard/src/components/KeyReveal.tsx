// The API key, shown once, with a copy button and a clear warning.
import { useI18n } from '../i18n'
import { CopyButton } from './CopyButton'

export function KeyReveal({ apiKey, testId = 'api-key' }: { apiKey: string; testId?: string }) {
  const { t } = useI18n()
  return (
    <div className="key-reveal">
      <div className="callout callout-warning" role="note" data-testid="key-warning">
        <strong>{t('key.warningTitle')}</strong> {t('key.warning')}
      </div>
      <label className="field">
        <span>{t('key.label')}</span>
        <div className="copy-row">
          <input readOnly value={apiKey} className="mono" data-testid={testId} onFocus={(e) => e.target.select()} />
          <CopyButton text={apiKey} testId={`copy-${testId}`} />
        </div>
      </label>
    </div>
  )
}
