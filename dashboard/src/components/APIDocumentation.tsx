// "View documentation": endpoint, headers, features and their types, curl and Python examples, example response.
import { api } from '../api'
import { useAsync } from '../hooks'
import { useI18n } from '../i18n'
import type { TranslationKey } from '../i18n'
import { CodeBlock } from './CodeBlock'
import { CopyButton } from './CopyButton'
import { ErrorState, Skeleton } from './Feedback'
import { TryItPanel } from './TryItPanel'

const ERROR_TEXT: Record<string, TranslationKey> = {
  INVALID_INPUT: 'docs.err400',
  MISSING_API_KEY: 'docs.err401',
  INVALID_API_KEY: 'docs.err403key',
  API_INACTIVE: 'docs.err403inactive',
  API_NOT_FOUND: 'docs.err404',
  PAYLOAD_TOO_LARGE: 'docs.err413',
  RATE_LIMITED: 'docs.err429',
  TIMEOUT: 'docs.err504',
}

export function APIDocumentation({ apiId, keyPrefix }: { apiId: string; keyPrefix?: string }) {
  const { t } = useI18n()
  const docs = useAsync(() => api.docs(apiId), [apiId])
  if (docs.loading) return <Skeleton lines={8} height={18} />
  if (docs.error || !docs.data) return <ErrorState message={docs.error ?? ''} onRetry={() => docs.reload()} />
  const d = docs.data
  const pretty = (v: unknown) => JSON.stringify(v, null, 2)
  const typeLabel: Record<string, string> = {
    number: t('docs.typeNumber'),
    integer: t('docs.typeInteger'),
    boolean: t('docs.typeBoolean'),
    category: t('docs.typeCategory'),
  }
  return (
    <div className="docs" data-testid="api-docs">
      <section className="panel">
        <h2 className="h-small">{t('docs.endpoint')}</h2>
        <div className="copy-row endpoint-row">
          <code className="endpoint mono" data-testid="docs-endpoint">
            <span className="method">{d.method}</span> {d.endpoint_url}
          </code>
          <CopyButton text={d.endpoint_url} testId="copy-docs-endpoint" />
        </div>
        <h3 className="h-small">{t('docs.headers')}</h3>
        <table className="table table-compact">
          <tbody>
            {Object.entries(d.headers).map(([k, v]) => (
              <tr key={k}>
                <th scope="row" className="mono">
                  {k}
                </th>
                <td className="mono">{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="muted small">
          {t('docs.keyHint')}
          {keyPrefix ? ` ${t('docs.keyPrefix', { prefix: keyPrefix })}` : ''}
        </p>
      </section>

      <section className="panel">
        <h2 className="h-small">{t('docs.features', { count: d.features.length })}</h2>
        <div className="table-wrap">
          <table className="table table-compact" data-testid="docs-features">
            <thead>
              <tr>
                <th scope="col">{t('docs.featureName')}</th>
                <th scope="col">{t('docs.featureType')}</th>
                <th scope="col">{t('docs.featureRequired')}</th>
                <th scope="col">{t('docs.featureValues')}</th>
              </tr>
            </thead>
            <tbody>
              {d.features.map((f) => (
                <tr key={f.name}>
                  <td className="mono">{f.name}</td>
                  <td>
                    <span className="tag">{f.type}</span> <span className="muted small">{typeLabel[f.type] ?? ''}</span>
                  </td>
                  <td>{f.required ? t('common.yes') : t('common.no')}</td>
                  <td className="small">{f.categories ? f.categories.join(', ') : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {d.classes && d.classes.length > 0 && (
          <p className="small">
            <strong>{t('docs.classes')}</strong> {d.classes.join(', ')}
          </p>
        )}
      </section>

      {/* Rebuilt when a deploy changes the features. */}
      <TryItPanel docs={d} key={`${d.endpoint_url} ${JSON.stringify(d.features)}`} />

      <section className="panel">
        <h2 className="h-small">{t('docs.examples')}</h2>
        <CodeBlock code={d.curl} label="curl" testId="docs-curl" />
        <CodeBlock code={d.python} label="Python" testId="docs-python" />
        <div className="grid-2">
          <CodeBlock code={pretty(d.example_request)} label={t('docs.exampleRequest')} testId="docs-example-request" />
          <CodeBlock code={pretty(d.example_response)} label={t('docs.exampleResponse')} testId="docs-example-response" />
        </div>
      </section>

      <section className="panel">
        <h2 className="h-small">{t('docs.errors')}</h2>
        <table className="table table-compact">
          <tbody>
            {(d.errors && d.errors.length > 0
              ? d.errors.map((e) => {
                  const key = ERROR_TEXT[e.code]
                  return [`${e.status} ${e.code}`, key ? t(key) : e.when] as const
                })
              : [
                ['400', t('docs.err400')],
                ['401', t('docs.err401')],
                ['403', t('docs.err403')],
                ['404', t('docs.err404')],
                ['413', t('docs.err413')],
                ['429', t('docs.err429')],
                ['5xx', t('docs.err5xx')],
              ] as const)
            .map(([code, text]) => (
              <tr key={code}>
                <th scope="row" className="mono">
                  {code}
                </th>
                <td>{text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  )
}
