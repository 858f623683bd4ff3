"""Ingress's ``/openapi.json``: the prediction route, health, readiness and metrics, with the same
error body as every other answer (``schemas.ErrorBody``)."""

from __future__ import annotations

from typing import Any

import orjson

from ingress.oip import openapi_paths as oip_paths
from schemas import ErrorBody

REF = "#/components/schemas/{model}"

FEATURE_VALUE: dict[str, Any] = {"type": ["number", "integer", "boolean", "string", "null"]}
FEATURES: dict[str, Any] = {
    "type": "object",
    "description": "The features of one row, by name (the API's docs list them and their types).",
    "additionalProperties": FEATURE_VALUE,
}
PREDICTION_VALUE: dict[str, Any] = {"type": ["number", "integer", "string", "boolean"]}
PROBABILITIES: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": {"type": "number"},
    "description": "Probability per class (classifiers only).",
}
RATE_HEADERS = {
    "RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests per minute"},
    "RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Left in the window"},
    "RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Seconds to a full bucket"},
}
IMAGE_FILE = {"type": "string", "format": "binary"}
IMAGE_JSON = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {
            "type": "string",
            "description": "For an API that takes images: a PNG or JPEG, base64 or a data: URL",
        }
    },
    "additionalProperties": False,
}
IMAGE_FORM = {
    "type": "object",
    "required": ["image"],
    "properties": {"image": {**IMAGE_FILE, "description": "a PNG or JPEG file"}},
}
PREDICT_ERRORS = {
    "400": "Invalid JSON or features (the details name every field; INVALID_INPUT, INVALID_JSON), "
    "or an image that is not a readable PNG/JPEG of at most 4 megapixels, or sent to an API that "
    "takes no images (INVALID_IMAGE; details.reason says which)",
    "401": "No API key (MISSING_API_KEY)",
    "403": "Wrong key (INVALID_API_KEY) or inactive API (API_INACTIVE)",
    "404": "No such API (API_NOT_FOUND)",
    "408": "The body did not arrive in time (REQUEST_TIMEOUT)",
    "413": "The body, or its decoded form, is larger than the limit (PAYLOAD_TOO_LARGE)",
    "415": "The body is not JSON, or its Content-Encoding is not gzip or deflate",
    "429": "Rate limit exceeded (RATE_LIMITED); see Retry-After",
    "431": "A header is too long (HEADER_TOO_LARGE)",
    "503": "Ingress is starting (REGISTRY_NOT_READY), no predictor answers (MODEL_UNAVAILABLE, "
    "SERVICE_UNAVAILABLE) or the predictors are saturated (OVERLOADED; see Retry-After)",
    "504": "The prediction did not finish in time (TIMEOUT)",
}


FEEDBACK_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "actual"],
    "properties": {
        "request_id": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}$",
            "description": "the request_id the prediction answered with",
        },
        "actual": {
            "type": ["string", "number", "integer", "boolean"],
            "description": "the true answer: a class label (a classifier), a number (a regressor)",
        },
    },
    "additionalProperties": False,
}
FEEDBACK_ERRORS = {
    "400": "Invalid JSON (INVALID_JSON), or an item without a request id of 32 hex digits or "
    "without a truth fit for the API's task, more than 1,000 items, unknown fields "
    "(INVALID_INPUT; details.item names the item)",
    "401": "No API key (MISSING_API_KEY)",
    "403": "Wrong key (INVALID_API_KEY) or inactive API (API_INACTIVE)",
    "404": "No such API (API_NOT_FOUND)",
    "408": "The body did not arrive in time (REQUEST_TIMEOUT)",
    "413": "The body, or its decoded form, is larger than the limit (PAYLOAD_TOO_LARGE)",
    "415": "The body is not JSON, or its Content-Encoding is not gzip or deflate",
    "429": "Feedback budget exceeded (RATE_LIMITED); see Retry-After",
    "431": "A header is too long (HEADER_TOO_LARGE)",
    "503": "Ingress is starting (REGISTRY_NOT_READY) or the broker did not take the reports "
    "(SERVICE_UNAVAILABLE): nothing was kept, send them again",
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }
    if headers:
        response["headers"] = headers
    return response


MODEL_VERSION = {
    "type": "string",
    "description": "the model version that answered: the API's serving version, or its canary "
    "version for the share of requests the API routes to it (a shadow version never answers)",
}


def build_openapi() -> dict[str, Any]:
    """The whole document (OpenAPI 3.1)."""
    error_schema = ErrorBody.model_json_schema(ref_template=REF)
    components = {"ErrorBody": {k: v for k, v in error_schema.items() if k != "$defs"}}
    components.update(error_schema.get("$defs", {}))
    single = {
        "type": "object",
        "required": ["prediction", "request_id", "model_version"],
        "properties": {
            "prediction": PREDICTION_VALUE,
            "probabilities": PROBABILITIES,
            "request_id": {"type": "string"},
            "model_version": MODEL_VERSION,
        },
    }
    batch = {
        "type": "object",
        "required": ["predictions", "request_id", "model_version"],
        "properties": {
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "prediction": PREDICTION_VALUE,
                        "probabilities": PROBABILITIES,
                        "error": {"$ref": REF.format(model="ErrorDetail")},
                    },
                },
            },
            "request_id": {"type": "string"},
            "model_version": MODEL_VERSION,
        },
    }
    retry_after = {"Retry-After": {"schema": {"type": "integer"}}}
    predict_errors = {
        status: _error(text, retry_after if status in ("429", "503") else None)
        for status, text in PREDICT_ERRORS.items()
    }
    api_id = {
        "name": "api_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The API's id (its URL ends with it).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelgate prediction ingress",
            "version": "1.0.0",
            "description": (
                "Call an exported model: POST one JSON object of features, or "
                '`{"instances": [...]}`, with the key in `X-API-Key` (or `Authorization: Bearer`). '
                "Bodies may be gzip or deflate encoded; the 1 MB limit applies to the decoded body."
            ),
        },
        "servers": [{"url": "/", "description": "this server"}],
        "paths": {
            "/api/predict/{api_id}": {
                "post": {
                    "operationId": "predict",
                    "summary": "Predict with an exported model",
                    "tags": ["prediction"],
                    "parameters": [api_id],
                    "security": [{"apiKey": []}, {"bearerKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [
                                        {
                                            "type": "object",
                                            "required": ["instances"],
                                            "properties": {
                                                "instances": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": 100,
                                                    "items": FEATURES,
                                                }
                                            },
                                        },
                                        FEATURES,
                                        IMAGE_JSON,
                                    ]
                                }
                            },
                            "multipart/form-data": {"schema": IMAGE_FORM},
                            "image/png": {"schema": IMAGE_FILE},
                            "image/jpeg": {"schema": IMAGE_FILE},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The prediction (or one per instance)",
                            "headers": RATE_HEADERS,
                            "content": {"application/json": {"schema": {"anyOf": [single, batch]}}},
                        },
                        **predict_errors,
                    },
                },
                "options": {
                    "operationId": "predict_preflight",
                    "summary": "CORS preflight",
                    "tags": ["prediction"],
                    "parameters": [api_id],
                    "responses": {"204": {"description": "Allowed methods and headers"}},
                },
            },
            "/api/predict/{api_id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Report the true answers of predictions (ground truth)",
                    "description": (
                        "By the `request_id` each prediction answered with; a later report of a "
                        "request replaces an earlier one. Answered once the broker holds the "
                        "reports; any bad item refuses the whole body (nothing kept). Its own "
                        "budget of items per minute per API, apart from the rate limit."
                    ),
                    "tags": ["prediction"],
                    "parameters": [api_id],
                    "security": [{"apiKey": []}, {"bearerKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [
                                        FEEDBACK_ITEM,
                                        {
                                            "type": "object",
                                            "required": ["items"],
                                            "properties": {
                                                "items": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": 1000,
                                                    "items": FEEDBACK_ITEM,
                                                }
                                            },
                                            "additionalProperties": False,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Reports accepted (held by the broker)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["accepted"],
                                        "properties": {"accepted": {"type": "integer"}},
                                    }
                                }
                            },
                        },
                        **{
                            status: _error(text, retry_after if status in ("429", "503") else None)
                            for status, text in FEEDBACK_ERRORS.items()
                        },
                    },
                },
                "options": {
                    "operationId": "feedback_preflight",
                    "summary": "CORS preflight",
                    "tags": ["prediction"],
                    "parameters": [api_id],
                    "responses": {"204": {"description": "Allowed methods and headers"}},
                },
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness",
                    "tags": ["service"],
                    "responses": {
                        "200": {
                            "description": "Alive",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "service", "instance_id"],
                                        "properties": {
                                            "status": {"const": "ok"},
                                            "service": {"const": "ingress"},
                                            "instance_id": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/ready": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: broker session and registry snapshot",
                    "tags": ["service"],
                    "responses": {
                        "200": {
                            "description": "Ready",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "broker", "registry", "apis"],
                                        "properties": {
                                            "status": {"const": "ready"},
                                            "broker": {"type": "boolean"},
                                            "registry": {"type": "boolean"},
                                            "apis": {"type": "integer"},
                                            "predictors_online": {"type": ["boolean", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "503": _error("Not ready (details: broker, registry, apis)"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "tags": ["service"],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "tags": ["service"],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            **oip_paths(),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearerKey": {"type": "http", "scheme": "bearer"},
            },
        },
    }


OPENAPI_JSON = orjson.dumps(build_openapi())
