// Strings of one dashboard area, merged into the dictionaries by i18n.tsx (French first; English must
// carry the same keys: the type below checks it).
export const fr = {
  'resources.cpu': 'CPU',
  'resources.cpuHint':
    'Part de la capacité CPU des prédicteurs (un cœur par worker) prise par les prédictions de cette API sur 24 h',
  'resources.memory': 'Mémoire',
  'resources.memoryHint':
    'Mémoire des versions du modèle servies par cette API, d’après les mesures par modèle des prédicteurs',
  'alertKind.error_rate_5xx': 'Taux d’erreurs 5xx élevé',
  'alertKind.error_rate_4xx': 'Taux d’erreurs 4xx élevé',
  'alertKind.p95_ms': 'Latence p95 élevée',
  'alertKind.p99_ms': 'Latence p99 élevée',
  'alertKind.traffic_drop': 'Chute du trafic',
  'alertKind.no_traffic': 'Aucun trafic',
  'alertKind.rate_limit_saturation': 'Limite de débit saturée',
  'alertKind.cpu_percent': 'CPU élevé',
  'alertKind.memory_mb': 'Mémoire élevée',
  'alertKind.drift_psi': 'Dérive des entrées',
  'alertKind.accuracy_drop': 'Baisse de la précision',
} as const

export const en: Record<keyof typeof fr, string> = {
  'resources.cpu': 'CPU',
  'resources.cpuHint':
    "Share of the predictors' CPU capacity (one core per worker) this API's predictions took over 24 h",
  'resources.memory': 'Memory',
  'resources.memoryHint': "Memory of the model versions this API serves, from the predictors' per-model samples",
  'alertKind.error_rate_5xx': 'High 5xx error rate',
  'alertKind.error_rate_4xx': 'High 4xx error rate',
  'alertKind.p95_ms': 'High p95 latency',
  'alertKind.p99_ms': 'High p99 latency',
  'alertKind.traffic_drop': 'Traffic drop',
  'alertKind.no_traffic': 'No traffic',
  'alertKind.rate_limit_saturation': 'Rate limit saturated',
  'alertKind.cpu_percent': 'High CPU',
  'alertKind.memory_mb': 'High memory',
  'alertKind.drift_psi': 'Input drift',
  'alertKind.accuracy_drop': 'Accuracy drop',
}
