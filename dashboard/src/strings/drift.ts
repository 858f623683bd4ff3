// Strings of the Drift tab, the Performance tab and the Retrain button (issue 15), merged into the
// dictionaries by i18n.tsx (French first; English carries the same keys).
export const fr = {
  'drift.tab': 'Dérive',
  'drift.title': 'Dérive des entrées',
  'drift.intro':
    'Les entrées reçues sur la période comparées au profil des données d’entraînement de la version : PSI et distance de Jensen–Shannon par variable, les plus dérivées d’abord.',
  'drift.version': 'Version v{version}',
  'drift.rows': '{reference} lignes de référence · {live} requêtes sur la période',
  'drift.sampled': 'scores estimés sur {sampled} d’entre elles, prises sur toute la période',
  'drift.thresholds': 'Seuils PSI : attention à partir de {warning}, dérive à partir de {drift}.',
  'drift.summary': '{drift} en dérive · {warning} à surveiller · {ok} stables',
  'drift.colFeature': 'Variable',
  'drift.colType': 'Type',
  'drift.colPsi': 'PSI',
  'drift.colJs': 'JS',
  'drift.colStatus': 'État',
  'drift.status.ok': 'stable',
  'drift.status.warning': 'attention',
  'drift.status.drift': 'dérive',
  'drift.status.no_data': 'pas de données',
  'drift.show': 'Voir le détail de {name}',
  'drift.histogram': 'Répartition : référence et trafic réel (% des lignes)',
  'drift.reference': 'Référence (entraînement)',
  'drift.live': 'Trafic réel',
  'drift.psiOverTime': 'PSI dans le temps',
  'drift.prediction': 'Dérive des prédictions',
  'drift.predictionIntro': 'Les réponses du modèle sur la période comparées à ses prédictions sur le jeu de test.',
  'drift.noReferenceTitle': 'Pas de profil de référence pour cette version',
  'drift.noReferenceText':
    'La version v{version} a été créée avant que modelgate n’enregistre le profil des données d’entraînement (ou importée sans CSV de référence). Réentraînez le modèle pour obtenir une version avec profil, puis déployez-la.',
  'drift.noLiveTitle': 'Aucune requête sur la période',
  'drift.noLiveText':
    'La dérive se calcule sur les entrées reçues. Envoyez du trafic, ou simulez-en (avec une dérive) depuis un terminal :',
  'drift.noFeatures': 'Aucune variable à comparer.',
  'drift.payloadsOff':
    'La journalisation des entrées est désactivée pour cette API : la dérive des entrées en a besoin. Activez-la dans Paramètres.',

  'perf.tab': 'Performance',
  'perf.title': 'Performance réelle',
  'perf.intro':
    'Les vraies valeurs que vous renvoyez (feedback) rapprochées des réponses par identifiant de requête : exactitude et F1 (classification) ou MAE et RMSE (régression) par version, à côté des scores de test.',
  'perf.matched': 'Retours rapprochés',
  'perf.unmatched': 'Retours sans requête connue',
  'perf.unmatchedHint': 'identifiant inconnu, ou requête pas encore enregistrée',
  'perf.colVersion': 'Version',
  'perf.colN': 'Retours',
  'perf.live': '{metric} réelle',
  'perf.test': '{metric} (test)',
  'perf.overTime': '{metric} réelle dans le temps',
  'perf.versionLine': 'v{version}',
  'perf.noFeedbackTitle': 'Pas encore de retour sur la période',
  'perf.noFeedbackText':
    'Envoyez la vraie valeur de chaque prédiction quand vous la connaissez, avec son request_id (renvoyé par chaque prédiction) et la même clé :',
  'perf.howTo': 'Envoyer un retour',
  'perf.howToText':
    'Un retour ou un lot de 1000 au plus ({"items": [...]}), avec la même clé que les prédictions ; le request_id est celui de la réponse.',
  'perf.curl': 'Feedback avec curl',

  'retrain.button': 'Réentraîner',
  'retrain.title': 'Réentraîner « {name} »',
  'retrain.text':
    'Une nouvelle version de {model} est entraînée avec la recette de la version en service v{version} (données, algorithme, paramètres). Elle ne sert aucune requête tant que vous ne la déployez pas.',
  'retrain.includeFeedback': 'Ajouter les retours (vraies valeurs) aux données d’entraînement',
  'retrain.includeFeedbackHint':
    'Seules les requêtes dont les entrées sont enregistrées (journalisation des entrées activée) peuvent servir.',
  'retrain.start': 'Lancer l’entraînement',
  'retrain.succeeded': 'La version v{version} est entraînée : comparez-la à la version en service avant de la déployer.',
  'retrain.recipeUnavailable':
    'Impossible de réentraîner cette version : modelgate n’en a pas la recette (version importée, ou entraînée sur un CSV avant que modelgate ne le conserve, ou CSV modifié depuis). Entraînez une nouvelle version depuis l’assistant, ou importez-la.',
  'retrain.forbidden': 'Seul le propriétaire de l’API ou un administrateur peut la réentraîner.',
} as const

export const en: Record<keyof typeof fr, string> = {
  'drift.tab': 'Drift',
  'drift.title': 'Input drift',
  'drift.intro':
    'The inputs received in the range compared with the profile of the version’s training data: PSI and Jensen–Shannon distance per feature, most drifted first.',
  'drift.version': 'Version v{version}',
  'drift.rows': '{reference} reference rows · {live} requests in the range',
  'drift.sampled': 'scores estimated from {sampled} of them, taken across the whole range',
  'drift.thresholds': 'PSI thresholds: warning from {warning}, drift from {drift}.',
  'drift.summary': '{drift} drifted · {warning} to watch · {ok} stable',
  'drift.colFeature': 'Feature',
  'drift.colType': 'Type',
  'drift.colPsi': 'PSI',
  'drift.colJs': 'JS',
  'drift.colStatus': 'Status',
  'drift.status.ok': 'ok',
  'drift.status.warning': 'warning',
  'drift.status.drift': 'drift',
  'drift.status.no_data': 'no data',
  'drift.show': 'Show the details of {name}',
  'drift.histogram': 'Distribution: reference and live traffic (% of rows)',
  'drift.reference': 'Reference (training)',
  'drift.live': 'Live traffic',
  'drift.psiOverTime': 'PSI over time',
  'drift.prediction': 'Prediction drift',
  'drift.predictionIntro': 'The model’s answers in the range compared with its predictions on the test split.',
  'drift.noReferenceTitle': 'No reference profile for this version',
  'drift.noReferenceText':
    'Version v{version} predates the training-data profiles modelgate now stores (or was uploaded without a reference CSV). Retrain the model to get a version with a profile, then deploy it.',
  'drift.noLiveTitle': 'No requests in the range',
  'drift.noLiveText': 'Drift is computed from the inputs received. Send traffic, or simulate some (with drift) from a terminal:',
  'drift.noFeatures': 'No feature to compare.',
  'drift.payloadsOff': 'Payload logging is off for this API: input drift needs the logged inputs. Turn it on in Settings.',

  'perf.tab': 'Performance',
  'perf.title': 'Live performance',
  'perf.intro':
    'The true values you send back (feedback) joined with the answers by request id: accuracy and F1 (classification) or MAE and RMSE (regression) per version, next to the test metrics.',
  'perf.matched': 'Matched feedback',
  'perf.unmatched': 'Feedback with no known request',
  'perf.unmatchedHint': 'unknown id, or request not stored yet',
  'perf.colVersion': 'Version',
  'perf.colN': 'Feedback',
  'perf.live': 'Live {metric}',
  'perf.test': '{metric} (test)',
  'perf.overTime': 'Live {metric} over time',
  'perf.versionLine': 'v{version}',
  'perf.noFeedbackTitle': 'No feedback in the range yet',
  'perf.noFeedbackText':
    'Send the true value of each prediction once you know it, with its request_id (returned by every prediction) and the same key:',
  'perf.howTo': 'Sending feedback',
  'perf.howToText':
    'One item or a batch of at most 1000 ({"items": [...]}), with the same key as predictions; the request_id is the one of the answer.',
  'perf.curl': 'Feedback with curl',

  'retrain.button': 'Retrain',
  'retrain.title': 'Retrain “{name}”',
  'retrain.text':
    'A new version of {model} is trained with the recipe of the serving version v{version} (data, algorithm, parameters). It serves no request until you deploy it.',
  'retrain.includeFeedback': 'Add the feedback (true values) to the training data',
  'retrain.includeFeedbackHint': 'Only requests whose inputs are logged (payload logging on) can be used.',
  'retrain.start': 'Start training',
  'retrain.succeeded': 'Version v{version} is trained: compare it with the serving version before deploying it.',
  'retrain.recipeUnavailable':
    'This version cannot be retrained: modelgate does not have its recipe (the version was uploaded, or trained on a CSV before modelgate kept it, or that CSV changed since). Train a new version from the wizard, or upload one.',
  'retrain.forbidden': 'Only the API’s owner or an admin can retrain it.',
}
