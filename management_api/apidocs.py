"""Per-API documentation: endpoint, features, and curl / Python examples that work as pasted
once ``YOUR_API_KEY`` is replaced by the key."""

from __future__ import annotations

import base64
import io
import json
import shlex
from typing import Any

import numpy as np
from PIL import Image

from management_api.catalog import placeholder_example
from management_api.db import ModelVersion
from schemas import FeatureSpec, FeatureType, ImageSpec, InkLevel, Task
from schemas.resources import ApiDocs, ApiPublic

KEY_PLACEHOLDER = "YOUR_API_KEY"
EXAMPLE_IMAGE_SIDE = 64


def example_input(version: ModelVersion, features: list[FeatureSpec]) -> dict[str, Any]:
    """A real held-out row when the version has one, else values built from the schema."""
    stored = (version.example or {}).get("input")
    base = placeholder_example(features)
    if isinstance(stored, dict):
        base.update({k: v for k, v in stored.items() if k in base})
    return base


def example_output(version: ModelVersion, task: Task, classes: list[str] | None) -> dict[str, Any]:
    stored = (version.example or {}).get("output")
    if isinstance(stored, dict) and "prediction" in stored:
        out = dict(stored)
    elif task == Task.CLASSIFICATION and classes:
        share = round(1.0 / len(classes), 4)
        out = {"prediction": classes[0], "probabilities": dict.fromkeys(classes, share)}
    else:
        out = {"prediction": 0.0}
    out["request_id"] = "3f1c2a9e8b7d4c65a1f0e2d3c4b5a697"
    out["model_version"] = version.id
    return out


def curl_example(url: str, body: dict[str, Any], key: str = KEY_PLACEHOLDER) -> str:
    """A POSIX-shell command that works as pasted: every word quoted with ``shlex.quote`` (a ``'``
    inside a value becomes ``'"'"'``), the JSON body on one line."""
    payload = json.dumps(body, separators=(", ", ": "))
    return (
        f"curl -sS -X POST {shlex.quote(url)} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -H {shlex.quote('X-API-Key: ' + key)} \\\n"
        f"  -d {shlex.quote(payload)}"
    )


def image_curl_example(url: str, body: dict[str, Any], key: str = KEY_PLACEHOLDER) -> str:
    """For an image API: a PNG/JPEG file as a form field, the same as base64 in JSON, then the
    pixel features (``curl_example``)."""
    quoted_url, quoted_key = shlex.quote(url), shlex.quote("X-API-Key: " + key)
    return (
        "# an image file (PNG or JPEG), sent as a form field\n"
        f"curl -sS -X POST {quoted_url} \\\n"
        f"  -H {quoted_key} \\\n"
        "  -F image=@digit.png\n\n"
        "# the same image as base64 in JSON\n"
        f"curl -sS -X POST {quoted_url} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -H {quoted_key} \\\n"
        '  -d "{\\"image\\": \\"$(base64 < digit.png | tr -d \'\\n\')\\"}"\n\n'
        "# or its pixel features\n" + curl_example(url, body, key)
    )


def example_png(spec: ImageSpec, features: list[FeatureSpec], row: dict[str, Any]) -> bytes:
    """A feature row drawn as a PNG, dark ink on white, each pixel a SCALE x SCALE block: sent
    as an image it gives back (about) the row."""
    values = np.array([float(row.get(f.name) or 0.0) for f in features], dtype=np.float64)
    share = (values - spec.min_value) / (spec.max_value - spec.min_value)
    ink = share if spec.ink is InkLevel.HIGH else 1.0 - share
    gray = (255.0 * (1.0 - ink.clip(0.0, 1.0))).round().astype(np.uint8)
    image = Image.fromarray(gray.reshape(spec.height, spec.width))
    scale = max(1, EXAMPLE_IMAGE_SIDE // max(spec.width, spec.height))
    image = image.resize((spec.width * scale, spec.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def python_example(url: str, body: dict[str, Any]) -> str:
    payload = json.dumps(body, indent=4)
    return f'''import json
import urllib.request

API_URL = {json.dumps(url)}
API_KEY = "{KEY_PLACEHOLDER}"

features = {payload}

request = urllib.request.Request(
    API_URL,
    data=json.dumps(features).encode(),
    headers={{"Content-Type": "application/json", "X-API-Key": API_KEY}},
    method="POST",
)
with urllib.request.urlopen(request, timeout=10) as response:
    print(json.loads(response.read()))
'''


ERRORS = [
    {"status": 400, "code": "INVALID_INPUT", "when": "missing, unexpected or mistyped features"},
    {
        "status": 400,
        "code": "INVALID_IMAGE",
        "when": "an image that is not a readable PNG or JPEG, over 4 megapixels, or sent to an "
        "API that takes no images",
    },
    {"status": 401, "code": "MISSING_API_KEY", "when": "no X-API-Key header"},
    {"status": 403, "code": "INVALID_API_KEY", "when": "the key is wrong or was regenerated"},
    {"status": 403, "code": "API_INACTIVE", "when": "the API is deactivated"},
    {"status": 404, "code": "API_NOT_FOUND", "when": "no API with this id"},
    {"status": 413, "code": "PAYLOAD_TOO_LARGE", "when": "the body is over 1 MB"},
    {"status": 429, "code": "RATE_LIMITED", "when": "over the per-minute limit (see Retry-After)"},
    {"status": 504, "code": "TIMEOUT", "when": "no prediction in time"},
]


def feature_docs(features: list[FeatureSpec]) -> list[FeatureSpec]:
    """Features with a one-line description of what to send, where none was recorded."""
    described = []
    for f in features:
        if f.description:
            described.append(f)
            continue
        text = {
            FeatureType.NUMBER: "a JSON number",
            FeatureType.INTEGER: "a JSON integer",
            FeatureType.BOOLEAN: "true or false",
            FeatureType.CATEGORY: "one of: " + ", ".join(f.categories or []),
        }[f.type]
        described.append(
            f.model_copy(update={"description": text + ("" if f.required else " (optional)")})
        )
    return described


def build_docs(api: ApiPublic, version: ModelVersion) -> ApiDocs:
    features = [FeatureSpec.model_validate(f) for f in version.features]
    body = example_input(version, features)
    image = ImageSpec.model_validate(version.image) if version.image else None
    image_body = (
        None
        if image is None
        else {"image": base64.b64encode(example_png(image, features, body)).decode()}
    )
    return ApiDocs(
        api_id=api.id,
        name=api.name,
        endpoint_url=api.endpoint_url,
        headers={"Content-Type": "application/json", "X-API-Key": KEY_PLACEHOLDER},
        task=api.task,
        version_number=version.number,
        features=feature_docs(features),
        classes=version.classes,
        example_request=body,
        example_response=example_output(version, api.task, version.classes),
        batch_example_request={"instances": [body, body]},
        image=image,
        image_example_request=image_body,
        curl=curl_example(api.endpoint_url, body)
        if image is None
        else image_curl_example(api.endpoint_url, body),
        python=python_example(api.endpoint_url, body),
        errors=ERRORS,
    )
