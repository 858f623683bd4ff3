// Server-side texts the dashboard shows, translated by code (issue 12): one sentence per API
// error code (schemas/errors.py ErrorCode and the management API's own codes) in French and
// English, and the title of each alert rule kind (schemas/alerts.py AlertRuleKind).
// tests/unit/test_error_translations.py checks every ErrorCode has both languages here.
import { ApiError } from './api'
import type { Lang, Translate, TranslationKey } from './i18n'
import type { AlertRuleKind } from './types'

interface Sentence {
  fr: string
  en: string
}

export const ERROR_MESSAGES: Record<string, Sentence> = {
  INVALID_INPUT: { fr: 'Données invalides', en: 'Invalid input' },
  INVALID_JSON: { fr: 'Le corps de la requête n’est pas un JSON valide', en: 'The request body is not valid JSON' },
  INVALID_IMAGE: { fr: 'Image refusée : envoyez un PNG ou un JPEG lisible de taille raisonnable', en: 'Image refused: send a readable PNG or JPEG of reasonable size' },
  MISSING_API_KEY: { fr: 'Clé d’API manquante', en: 'Missing API key' },
  INVALID_API_KEY: { fr: 'Clé d’API invalide', en: 'Invalid API key' },
  API_INACTIVE: { fr: 'Cette API est désactivée', en: 'This API is deactivated' },
  API_NOT_FOUND: { fr: 'API introuvable', en: 'API not found' },
  NOT_FOUND: { fr: 'Introuvable', en: 'Not found' },
  METHOD_NOT_ALLOWED: { fr: 'Méthode non autorisée', en: 'Method not allowed' },
  PAYLOAD_TOO_LARGE: { fr: 'Requête trop volumineuse', en: 'Request too large' },
  UNSUPPORTED_MEDIA_TYPE: { fr: 'Type de contenu non pris en charge', en: 'Unsupported content type' },
  RATE_LIMITED: { fr: 'Trop de requêtes, réessayez plus tard', en: 'Too many requests, retry later' },
  INTERNAL_ERROR: { fr: 'Erreur interne du serveur', en: 'Internal server error' },
  PREDICTION_FAILED: { fr: 'La prédiction a échoué', en: 'The prediction failed' },
  MODEL_UNAVAILABLE: { fr: 'Le modèle n’est pas disponible', en: 'The model is unavailable' },
  SERVICE_UNAVAILABLE: {
    fr: 'Service momentanément indisponible, réessayez dans un instant',
    en: 'Service temporarily unavailable, retry in a moment',
  },
  OVERLOADED: { fr: 'Service surchargé, réessayez dans un instant', en: 'Service overloaded, retry in a moment' },
  REGISTRY_NOT_READY: { fr: 'Le service démarre, réessayez dans un instant', en: 'The service is starting, retry in a moment' },
  TIMEOUT: { fr: 'Délai dépassé', en: 'Timed out' },
  UNAUTHORIZED: { fr: 'Authentification requise', en: 'Authentication required' },
  FORBIDDEN: { fr: 'Accès refusé', en: 'Access denied' },
  CONFLICT: { fr: 'Conflit avec l’état actuel, rechargez et réessayez', en: 'Conflict with the current state, reload and retry' },
  REQUEST_TIMEOUT: { fr: 'La requête a pris trop de temps', en: 'The request took too long' },
  CLIENT_CLOSED_REQUEST: { fr: 'Requête interrompue par le client', en: 'Request closed by the client' },
  BAD_REQUEST: { fr: 'Requête invalide', en: 'Bad request' },
  HEADER_TOO_LARGE: { fr: 'En-têtes trop volumineux', en: 'Headers too large' },
  // The management API's own codes (management_api/errors.py, accounts.py, catalog.py).
  INVALID_CREDENTIALS: { fr: 'Identifiants incorrects', en: 'Wrong username or password' },
  INCOMPATIBLE_VERSION: { fr: 'Version incompatible', en: 'Incompatible version' },
  LAST_ADMIN: { fr: 'Il doit rester au moins un administrateur actif', en: 'At least one active administrator must remain' },
  WRONG_PASSWORD: { fr: 'Mot de passe actuel incorrect', en: 'The current password is wrong' },
  ACCOUNT_DEACTIVATED: { fr: 'Ce compte est désactivé', en: 'This account is deactivated' },
  INVALID_MODEL_FILE: { fr: 'Fichier de modèle invalide', en: 'Invalid model file' },
  MODEL_TOO_COSTLY: { fr: 'Modèle trop coûteux à servir', en: 'Model too costly to serve' },
  UNTRUSTED_MODEL: { fr: 'Modèle non fiable refusé', en: 'Untrusted model refused' },
  MODEL_ARCHIVE_TOO_LARGE: { fr: 'Archive du modèle trop volumineuse', en: 'Model archive too large' },
  NO_REFERENCE: {
    fr: 'Cette version n’a pas de profil de référence (entraînée avant les profils, ou importée sans CSV de référence)',
    en: 'This version has no reference profile (trained before profiles, or uploaded without a reference CSV)',
  },
  RECIPE_UNAVAILABLE: { fr: 'Impossible de réentraîner cette version à l’identique', en: 'This version cannot be retrained as it was' },
  NO_FEEDBACK: { fr: 'Aucun retour ne correspond à une requête journalisée', en: 'No feedback matches a logged request' },
  // The dashboard's own: the server could not be reached at all.
  NETWORK: { fr: 'Serveur injoignable', en: 'Server unreachable' },
}

/** The sentence for an error code in a language; null for a code not in the table. */
export function errorMessage(lang: Lang, code: string): string | null {
  return ERROR_MESSAGES[code]?.[lang] ?? null
}

/** An error as the dashboard shows it: the translated sentence of its code, followed by the
 * server's own message (its details: which field, which limit); the server's message alone for a
 * code not in the table, the text of anything else thrown. */
export function errorText(lang: Lang, err: unknown): string {
  if (err instanceof ApiError) {
    const sentence = errorMessage(lang, err.code)
    if (sentence === null) return err.message
    const detail = err.message.trim()
    if (!detail || detail === sentence) return sentence
    return `${sentence}${lang === 'fr' ? ' : ' : ': '}${detail}`
  }
  return err instanceof Error ? err.message : String(err)
}

/** The title of an alert rule kind (strings/resources.ts `alertKind.<kind>`); the kind itself for
 * one this dashboard does not know yet. */
export function alertKindLabel(t: Translate, kind: AlertRuleKind | string): string {
  const key = `alertKind.${kind}` as TranslationKey
  const label = t(key)
  return label === key ? kind : label
}
