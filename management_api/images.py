"""Image models (issue 14): a version whose features are the pixels of W x H grayscale images
carries an ``ImageSpec``, so ingress can take a PNG or JPEG for it. The built-in digits get
theirs at training; a CSV training or an upload declares it, checked here against the features."""

from __future__ import annotations

from management_api.errors import InvalidInput
from schemas import FeatureSpec, FeatureType, ImageSpec

DIGITS_IMAGE = ImageSpec(width=8, height=8, min_value=0, max_value=16, integers=True)
"""sklearn's digits: 8x8 blocks counting the inked pixels (0..16) of a 32x32 bitmap whose ink
touches the frame (margin 0); ink high."""

DATASET_IMAGES = {"digits": DIGITS_IMAGE}

PIXEL_TYPES = frozenset((FeatureType.NUMBER, FeatureType.INTEGER))


def image_of_dataset(dataset: str) -> ImageSpec | None:
    """The image spec of a built-in dataset made of images, else None."""
    return DATASET_IMAGES.get(dataset)


def check_image_count(image: ImageSpec, n_features: int) -> None:
    """400 unless ``width * height`` is the number of features."""
    if image.pixels != n_features:
        raise InvalidInput(
            f"images of {image.width} x {image.height} have {image.pixels} pixels, but the "
            f"model has {n_features} features: the pixel columns must be exactly the features",
            details={
                "field": "image",
                "width": image.width,
                "height": image.height,
                "pixels": image.pixels,
                "n_features": n_features,
            },
        )


def check_image(image: ImageSpec | None, features: list[FeatureSpec]) -> None:
    """400 unless the declared images fit the features: one numeric feature per pixel, in
    row-major order."""
    if image is None:
        return
    check_image_count(image, len(features))
    not_numbers = [f.name for f in features if f.type not in PIXEL_TYPES]
    if not_numbers:
        raise InvalidInput(
            "every pixel feature of an image model must be a number",
            details={"field": "image", "not_numbers": not_numbers[:20]},
        )


def image_integers(image: ImageSpec, features: list[FeatureSpec]) -> ImageSpec:
    """The spec with ``integers`` set when every pixel feature is an integer (the values must
    then be whole numbers to pass ingress's checks)."""
    integers = all(f.type is FeatureType.INTEGER for f in features)
    return image if image.integers == integers else image.model_copy(update={"integers": integers})
