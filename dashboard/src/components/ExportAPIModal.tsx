// Shown right after "Exporter sous forme API": the API URL and the key (once), each with a copy button.
import { useI18n } from '../i18n'
import { Link } from '../router'
import type { ExportResponse } from '../types'
import { CodeBlock } from './CodeBlock'
import { CopyButton } from './CopyButton'
import { KeyReveal } from './KeyReveal'
import { Modal } from './Modal'

export function ExportAPIModal({ result, onClose }: { result: ExportResponse; onClose: () => void }) {
  const { t } = useI18n()
  const { api, api_key: apiKey, api_url: apiUrl } = result
  const curl = `curl -X POST ${apiUrl} \\\n  -H "Content-Type: application/json" \\\n  -H "X-API-Key: ${apiKey}" \\\n  -d '{ ... }'`
  return (
    <Modal
      title={t('export.modalTitle')}
      onClose={onClose}
      testId="export-modal"
      wide
      footer={
        <>
          <Link to={`/monitoring/${api.id}?tab=docs`} className="btn" data-testid="export-docs-link">
            {t('export.viewDocs')}
          </Link>
          <Link to={`/monitoring/${api.id}`} className="btn" data-testid="export-monitoring-link">
            {t('export.viewMonitoring')}
          </Link>
          <button type="button" className="btn btn-primary" onClick={onClose} data-testid="export-close">
            {t('export.done')}
          </button>
        </>
      }
    >
      <p className="callout callout-success" role="status">
        {t('export.success', { name: api.name })}
      </p>
      <label className="field">
        <span>{t('export.url')}</span>
        <div className="copy-row">
          <input readOnly value={apiUrl} className="mono" data-testid="export-api-url" onFocus={(e) => e.target.select()} />
          <CopyButton text={apiUrl} testId="copy-api-url" />
        </div>
      </label>
      <KeyReveal apiKey={apiKey} testId="export-api-key" />
      <p className="muted small">{t('export.howToText')}</p>
      <CodeBlock code={curl} label={t('export.howTo')} testId="export-curl" />
    </Modal>
  )
}
