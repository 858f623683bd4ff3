// Strings of the image declaration (issue 14): a model whose features are the pixels of W x H images.
export const fr = {
  'image.declare': 'Ces variables sont les pixels d’images (l’API acceptera aussi un PNG ou un JPEG)',
  'image.hint':
    'Images en niveaux de gris, pixels ligne par ligne dans l’ordre des variables. L’API recadre l’encre, la centre, redimensionne et met à l’échelle comme à l’entraînement.',
  'image.width': 'Largeur (pixels)',
  'image.height': 'Hauteur (pixels)',
  'image.min': 'Valeur minimale',
  'image.max': 'Valeur maximale',
  'image.ink': 'Encre',
  'image.inkHigh': 'Valeurs hautes (encre = maximum, comme digits et MNIST)',
  'image.inkLow': 'Valeurs basses (encre = minimum)',
  'image.count': '{width} × {height} = {pixels} pixels pour {features} variables',
  'image.mismatch':
    '{width} × {height} = {pixels} pixels, mais le modèle a {features} variables : il faut autant de pixels que de variables.',
  'image.range': 'La valeur maximale doit être supérieure à la minimale.',
  'image.size': 'Largeur et hauteur : des entiers de 1 à 256.',
  'image.dropped': 'Cette version ne prend pas d’images : les appels qui envoient une image seront refusés (400).',
}

export const en: Record<keyof typeof fr, string> = {
  'image.declare': 'These features are the pixels of images (the API will also take a PNG or JPEG)',
  'image.hint':
    'Grayscale images, pixels row after row in feature order. The API crops the ink, centres it, resizes and scales it as in training.',
  'image.width': 'Width (pixels)',
  'image.height': 'Height (pixels)',
  'image.min': 'Minimum value',
  'image.max': 'Maximum value',
  'image.ink': 'Ink',
  'image.inkHigh': 'High values (ink = maximum, as in digits and MNIST)',
  'image.inkLow': 'Low values (ink = minimum)',
  'image.count': '{width} × {height} = {pixels} pixels for {features} features',
  'image.mismatch':
    '{width} × {height} = {pixels} pixels, but the model has {features} features: there must be as many pixels as features.',
  'image.range': 'The maximum value must be greater than the minimum.',
  'image.size': 'Width and height: whole numbers from 1 to 256.',
  'image.dropped': 'This version takes no images: calls sending an image will be refused (400).',
}
