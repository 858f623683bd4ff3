import { useEffect, useState } from 'react'
import { useI18n } from '../i18n'

async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text)
      return true
    }
  } catch {
    // fall through to the textarea method
  }
  const area = document.createElement('textarea')
  area.value = text
  area.setAttribute('readonly', '')
  area.style.position = 'fixed'
  area.style.opacity = '0'
  document.body.appendChild(area)
  area.select()
  let ok = false
  try {
    ok = document.execCommand('copy')
  } catch {
    ok = false
  }
  document.body.removeChild(area)
  return ok
}

interface CopyButtonProps {
  text: string
  label?: string
  testId?: string
  small?: boolean
}

export function CopyButton({ text, label, testId, small = false }: CopyButtonProps) {
  const { t } = useI18n()
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle')
  useEffect(() => {
    if (state === 'idle') return
    const timer = window.setTimeout(() => setState('idle'), 2000)
    return () => window.clearTimeout(timer)
  }, [state])
  return (
    <button
      type="button"
      className={`btn btn-copy ${small ? 'btn-sm' : ''} ${state === 'copied' ? 'is-copied' : ''}`}
      onClick={async () => setState((await copyText(text)) ? 'copied' : 'failed')}
      data-testid={testId}
      aria-live="polite"
    >
      {state === 'copied' ? t('common.copied') : state === 'failed' ? t('common.copyFailed') : (label ?? t('common.copy'))}
    </button>
  )
}
