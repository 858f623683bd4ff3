// Strings of one dashboard area, merged into the dictionaries by i18n.tsx (French first; English must
// carry the same keys: the type below checks it).
// Area: the export form (name, rate limit, payload logging) shown before an API is created.
export const fr = {
  'exportForm.title': 'Exporter {model} v{version} sous forme API',
  'exportForm.intro': 'Une API avec sa propre clé sera créée. Ces réglages restent modifiables ensuite.',
  'exportForm.name': "Nom de l'API",
  'exportForm.nameRequired': 'Donnez un nom à l’API (1 à 100 caractères).',
  'exportForm.rateLimit': 'Limite de requêtes par minute',
  'exportForm.rateLimitHint': 'Entre {min} et {max} ; au-delà, les appels reçoivent 429.',
  'exportForm.rateLimitInvalid': 'Entrez un nombre entier entre {min} et {max}.',
  'exportForm.logPayloads': 'Enregistrer les requêtes et réponses',
  'exportForm.logPayloadsHint': 'Visibles dans le monitoring ; désactivez-le pour des données sensibles.',
  'exportForm.submit': 'Créer l’API',
  'exportForm.submitting': 'Création…',
  'exportForm.cancel': 'Annuler',
  'exportForm.settings': '{rate} requêtes/min · enregistrement des requêtes : {logging}',
  'exportForm.on': 'oui',
  'exportForm.off': 'non',
  'exportForm.curlText': 'Cette commande fonctionne telle quelle (clé et exemple de variables compris) :',
} as const

export const en: Record<keyof typeof fr, string> = {
  'exportForm.title': 'Export {model} v{version} as an API',
  'exportForm.intro': 'An API with its own key will be created. You can change these settings later.',
  'exportForm.name': 'API name',
  'exportForm.nameRequired': 'Give the API a name (1 to 100 characters).',
  'exportForm.rateLimit': 'Rate limit (requests per minute)',
  'exportForm.rateLimitHint': 'Between {min} and {max}; calls beyond it get 429.',
  'exportForm.rateLimitInvalid': 'Enter a whole number between {min} and {max}.',
  'exportForm.logPayloads': 'Log requests and responses',
  'exportForm.logPayloadsHint': 'Shown in monitoring; turn it off for sensitive data.',
  'exportForm.submit': 'Create the API',
  'exportForm.submitting': 'Creating…',
  'exportForm.cancel': 'Cancel',
  'exportForm.settings': '{rate} requests/min · payload logging: {logging}',
  'exportForm.on': 'on',
  'exportForm.off': 'off',
  'exportForm.curlText': 'This command works as pasted (key and example features included):',
}
