import { useI18n } from '../i18n'
import { CopyButton } from './CopyButton'

export function CodeBlock({ code, label, testId }: { code: string; label: string; testId: string }) {
  const { t } = useI18n()
  return (
    <figure className="code-block" data-testid={testId}>
      <figcaption className="row-between">
        <span className="h-small">{label}</span>
        <CopyButton text={code} small testId={`copy-${testId}`} label={t('common.copy')} />
      </figcaption>
      <pre className="mono" tabIndex={0}>
        <code>{code}</code>
      </pre>
    </figure>
  )
}
