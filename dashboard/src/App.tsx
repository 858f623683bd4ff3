import { lazy, Suspense, useCallback, useEffect, useState } from 'react'
import type { ReactElement } from 'react'
import { clearSession, getStoredUser, getToken, setUnauthorizedListener } from './api'
import { useI18n } from './i18n'
import { Link, matchPath, useRouter } from './router'
import type { User } from './types'
import { LoginPage } from './pages/LoginPage'
import { ModelsPage } from './pages/ModelsPage'
import { TrainingWizard } from './pages/TrainingWizard'
import { UploadModelPage } from './pages/UploadModelPage'
import { ModelDetailPage } from './pages/ModelDetailPage'
import { Skeleton } from './components/Feedback'

// The monitoring pages carry the charting library: loaded on first visit, not with the login page.
const MonitoringPage = lazy(() => import('./pages/MonitoringPage').then((m) => ({ default: m.MonitoringPage })))
const ApiDetailPage = lazy(() => import('./pages/ApiDetailPage').then((m) => ({ default: m.ApiDetailPage })))
const UsersPage = lazy(() => import('./pages/UsersPage').then((m) => ({ default: m.UsersPage })))
const AccountPage = lazy(() => import('./pages/AccountPage').then((m) => ({ default: m.AccountPage })))
const AlertsPage = lazy(() => import('./pages/AlertsPage').then((m) => ({ default: m.AlertsPage })))
const WebhooksPage = lazy(() => import('./pages/WebhooksPage').then((m) => ({ default: m.WebhooksPage })))

export function App() {
  const { t, lang, setLang } = useI18n()
  const { location, navigate } = useRouter()
  const [user, setUser] = useState<User | null>(() => (getToken() ? getStoredUser() : null))
  const [loginNotice, setLoginNotice] = useState(false)

  useEffect(() => {
    document.documentElement.lang = lang
  }, [lang])

  useEffect(() => {
    setUnauthorizedListener(() => {
      setUser(null)
      setLoginNotice(true)
      const here = window.location.pathname + window.location.search
      // Several calls may fail at once: only the first one records where the user was.
      if (!here.startsWith('/login')) navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true })
    })
  }, [navigate])

  const onLoggedIn = useCallback(
    (u: User) => {
      setUser(u)
      setLoginNotice(false)
      const next = location.search.get('next')
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/models', { replace: true })
    },
    [location.search, navigate],
  )

  const logout = () => {
    clearSession()
    setUser(null)
    setLoginNotice(false)
    navigate('/login', { replace: true })
  }

  const path = location.pathname
  const loggedIn = user !== null && getToken() !== null

  useEffect(() => {
    if (!loggedIn && !path.startsWith('/login')) {
      const here = path + (location.search.toString() ? `?${location.search.toString()}` : '')
      navigate(path === '/' ? '/login' : `/login?next=${encodeURIComponent(here)}`, { replace: true })
    } else if (loggedIn && (path === '/' || path.startsWith('/login'))) {
      navigate('/models', { replace: true })
    }
  }, [loggedIn, path, location.search, navigate])

  const langSwitch = (
    <button
      type="button"
      className="btn btn-ghost btn-sm lang-toggle"
      onClick={() => setLang(lang === 'fr' ? 'en' : 'fr')}
      data-testid="lang-toggle"
      title={t('nav.switchLanguage')}
    >
      <span lang={lang === 'fr' ? 'en' : 'fr'}>{lang === 'fr' ? 'EN' : 'FR'}</span>
      <span className="sr-only"> — {t('nav.switchLanguage')}</span>
    </button>
  )

  if (!loggedIn) {
    return (
      <LoginPage
        onLoggedIn={onLoggedIn}
        notice={loginNotice ? t('auth.sessionExpired') : null}
        langSwitch={langSwitch}
      />
    )
  }

  let page: ReactElement
  let section: 'models' | 'monitoring' | 'alerts' | 'webhooks' | 'users' | 'account' = 'models'
  let params: Record<string, string> | null
  if (matchPath('/models', path)) page = <ModelsPage />
  else if (matchPath('/models/new', path)) page = <TrainingWizard />
  else if (matchPath('/models/upload', path)) page = <UploadModelPage />
  else if ((params = matchPath('/models/:id', path))) page = <ModelDetailPage modelId={params.id as string} />
  else if (matchPath('/monitoring', path)) {
    section = 'monitoring'
    page = <MonitoringPage />
  } else if ((params = matchPath('/monitoring/:id', path))) {
    section = 'monitoring'
    page = <ApiDetailPage apiId={params.id as string} />
  } else if (matchPath('/alerts', path)) {
    section = 'alerts'
    page = <AlertsPage />
  } else if (matchPath('/webhooks', path)) {
    section = 'webhooks'
    page = <WebhooksPage />
  } else if (matchPath('/users', path) && user.role === 'admin') {
    section = 'users'
    page = <UsersPage />
  } else if (matchPath('/account', path)) {
    section = 'account'
    page = <AccountPage />
  } else {
    page = (
      <div className="page">
        <h1>{t('common.notFound')}</h1>
        <Link to="/models">{t('nav.models')}</Link>
      </div>
    )
  }

  return (
    <div className="app">
      <header className="topbar">
        <Link to="/models" className="brand" aria-label="modelgate">
          <span className="brand-mark" aria-hidden="true">
            M
          </span>
          <span className="brand-name">modelgate</span>
        </Link>
        <nav className="mainnav" aria-label={t('nav.main')}>
          <Link to="/models" className={section === 'models' ? 'active' : ''} data-testid="nav-models"
            aria-current={section === 'models' ? 'page' : undefined}>
            {t('nav.models')}
          </Link>
          <Link to="/monitoring" className={section === 'monitoring' ? 'active' : ''} data-testid="nav-monitoring"
            aria-current={section === 'monitoring' ? 'page' : undefined}>
            {t('nav.monitoring')}
          </Link>
          <Link to="/alerts" className={section === 'alerts' ? 'active' : ''} data-testid="nav-alerts"
            aria-current={section === 'alerts' ? 'page' : undefined}>
            {t('alerts.nav')}
          </Link>
          <Link to="/webhooks" className={section === 'webhooks' ? 'active' : ''} data-testid="nav-webhooks"
            aria-current={section === 'webhooks' ? 'page' : undefined}>
            {t('webhooks.nav')}
          </Link>
          {user.role === 'admin' && (
            <Link to="/users" className={section === 'users' ? 'active' : ''} data-testid="nav-users"
              aria-current={section === 'users' ? 'page' : undefined}>
              {t('users.nav')}
            </Link>
          )}
        </nav>
        <div className="topbar-right">
          <Link to="/account" className="btn btn-ghost btn-sm" title={t('account.nav')} data-testid="account-link"
            aria-current={section === 'account' ? 'page' : undefined}>
            {user.username}
          </Link>
          {langSwitch}
          <button type="button" className="btn btn-ghost btn-sm" onClick={logout} data-testid="logout">
            {t('nav.logout')}
          </button>
        </div>
      </header>
      <main className="content">
        <Suspense fallback={<Skeleton lines={6} height={22} />}>{page}</Suspense>
      </main>
    </div>
  )
}
