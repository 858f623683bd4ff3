"""Open Inference Protocol V2 (REST) on ingress: the protocol KServe, MLServer and Triton speak,
so their clients (``tritonclient.http``, KServe's ``InferenceRESTClient``) call an exported API
unchanged. The model's name is the API's id; its one version is the number the API serves.

Inference goes through ``PredictionService.predict`` with an ``InferCodec``: the same key, status,
rate limit, validation, micro-batch and ``RequestEvent`` as ``POST /api/predict/{api_id}`` (an
``[N, ...]`` request is one event of N rows, as ``{"instances": [N rows]}`` is). Only the wire
format differs:

- inputs: one tensor per feature (name = feature, shape ``[N]`` or ``[N, 1]``), or one ``[N, F]``
  tensor in feature order; data as JSON (flat or nested) or Triton's binary tensor extension
  (``Inference-Header-Content-Length``, ``parameters.binary_data_size``);
- outputs: ``label`` and ``probabilities`` (``[N, C]``, the classes in its parameters) for a
  classifier, ``predictions`` for a regressor; as JSON, or in binary after it where the request
  asks so (``binary_data_output``, or an output's ``binary_data``: tritonclient's default);
- errors: ``{"error": "<sentence>"}`` as the protocol has it, plus our stable ``code`` and
  ``details``. A wrong key is 401 here (the protocol's clients expect authentication failures so).

Metadata and model readiness need the key (a model's inputs are not public); server health does
not. Metadata calls are not predictions: they record no event and take no rate-limit token.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from infra import http
from ingress.errors import IngressError
from ingress.images import ImageError, features_body
from ingress.registry import ApiEntry
from ingress.service import PredictionService
from ingress.validation import InvalidInput
from schemas import ErrorCode, FeatureType

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KeyOf = Callable[[web.Request], str | None]

JSON_HEADERS = {"Content-Type": "application/json"}
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "modelgate_sklearn"
SERVER_NAME = "modelgate"
SERVER_VERSION = "1.0.0"
EXTENSIONS = ["binary_tensor_data"]
"""Binary tensor data in requests, and in answers for the outputs asked for so."""

DATATYPE_OF_FEATURE = {
    FeatureType.NUMBER: "FP64",
    FeatureType.INTEGER: "INT64",
    FeatureType.BOOLEAN: "BOOL",
    FeatureType.CATEGORY: "BYTES",
}
NUMPY_OF = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
INTEGER_TYPES = frozenset(t for t in NUMPY_OF if "INT" in t)
FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64"))
DATATYPES = frozenset((*NUMPY_OF, "BYTES"))
MAX_NESTING = 8
MAX_NAME_CHARS = 1024
"""An input's name at most: a feature's name (from a CSV header) may be long, and must match
whole."""
MAX_INPUTS = 1000
MAX_NAMES = 20
INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")
STATUS_OF = {ErrorCode.INVALID_API_KEY: 401}
"""Where the protocol's clients expect another status than our JSON route gives."""


def error_body(message: str, code: str, details: dict[str, Any] | None = None) -> bytes:
    """The protocol's error (``{"error": "<sentence>"}``) with our code and details beside it."""
    return orjson.dumps({"error": message, "code": code, "details": details or {}})


def _error(exc: IngressError) -> tuple[int, bytes]:
    return STATUS_OF.get(exc.code, exc.status), error_body(exc.message, exc.code, exc.details)


def _bad(message: str, details: dict[str, Any] | None = None) -> IngressError:
    return IngressError(400, ErrorCode.INVALID_INPUT, message, details)


def _names(names: list[str]) -> str:
    shown = ", ".join(n[:64] for n in names[:MAX_NAMES])
    return shown + (f" (and {len(names) - MAX_NAMES} more)" if len(names) > MAX_NAMES else "")


# --- model metadata ----------------------------------------------------------------------------


def _label_datatype(classes: list[str] | None) -> str:
    """INT64 or FP64 when every class reads as one (the model's labels are numbers), else BYTES."""
    if not classes:
        return "BYTES"
    if all(INTEGER_TEXT.fullmatch(c) for c in classes):
        return "INT64"
    try:
        numbers = all(math.isfinite(float(c)) and c.strip() == c for c in classes)
    except ValueError:
        numbers = False
    return "FP64" if numbers else "BYTES"


def served_version(entry: ApiEntry) -> str:
    return str(entry.record.version_number)


def model_metadata(entry: ApiEntry) -> dict[str, Any]:
    """The model's metadata: one input per feature, its outputs, and how else to send rows."""
    record = entry.record
    inputs = [
        {"name": f.name, "datatype": DATATYPE_OF_FEATURE[f.type], "shape": [-1]}
        for f in record.features
    ]
    if entry.classifier:
        outputs = [
            {"name": "label", "datatype": _label_datatype(record.classes), "shape": [-1]},
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [-1, len(record.classes) if record.classes else -1],
                "parameters": {"classes": record.classes or []},
            },
        ]
    else:
        outputs = [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    features = [
        {
            "name": f.name,
            "type": f.type.value,
            "required": f.required,
            **({"categories": f.categories} if f.categories else {}),
        }
        for f in record.features
    ]
    return {
        "name": entry.api_id,
        "versions": [served_version(entry)],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "task": record.task.value,
            "model_name": record.model_name,
            "features": features,
            "tensor_input": {
                "description": "or one [N, F] tensor (any name) with the features in this order",
                "shape": [-1, len(features)],
                "feature_order": entry.validator.feature_names,
            },
            **(
                {
                    "image_input": {
                        "description": "or one BYTES input of N PNG/JPEG files (any name)",
                        "datatype": "BYTES",
                        "shape": [-1],
                        **record.image.model_dump(mode="json"),
                    }
                }
                if record.image is not None
                else {}
            ),
        },
    }


# --- tensors -----------------------------------------------------------------------------------


def _flatten(name: str, data: Any, shape: list[int], count: int) -> list[Any]:
    """Nested lists flattened row-major (the protocol allows both forms); depth bounded, and the
    walk stopped one element past ``count`` (or past as many lists as such a tensor nests): what
    the shape claims bounds the work, not what the body holds."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    lists, max_lists = 1, (count + 1) * MAX_NESTING
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) >= MAX_NESTING:
                    raise _bad(f"tensor data nested deeper than {MAX_NESTING} levels")
                lists += 1
                if lists > max_lists:
                    raise _bad(
                        f"input {name!r} nests more lists than its shape {shape} holds",
                        {"input": name, "shape": shape},
                    )
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > count:
                raise _bad(
                    f"input {name!r} has more than {count} elements but its shape {shape} "
                    f"holds {count}",
                    {"input": name, "more_than": count, "shape": shape},
                )
        else:
            stack.pop()
    return out


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "an object"


def _check_values(name: str, datatype: str, values: list[Any]) -> None:
    """JSON data that matches its declared datatype (the validator then checks the features)."""
    if datatype == "BOOL":
        ok: Callable[[Any], bool] = lambda v: type(v) is bool  # noqa: E731
    elif datatype in INTEGER_TYPES:
        ok = lambda v: type(v) is int  # noqa: E731
    elif datatype in FLOAT_TYPES:
        ok = lambda v: type(v) is float or type(v) is int  # noqa: E731
    else:
        ok = lambda v: type(v) is str  # noqa: E731
    for index, value in enumerate(values):
        if not ok(value):
            raise _bad(
                f"input {name!r} is {datatype} but element {index} is {_json_kind(value)}",
                {"input": name, "datatype": datatype, "index": index},
            )


def _binary_values(name: str, datatype: str, raw: bytes, count: int) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if len(values) == count:
                raise _bad(
                    f"input {name!r} has more than {count} BYTES elements for shape of {count}",
                    {"input": name, "expected": count},
                )
            if offset + 4 > len(raw):
                raise _bad(f"input {name!r}: truncated BYTES element {len(values)}")
            (size,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise _bad(f"input {name!r}: truncated BYTES element {len(values)}")
            values.append(raw[offset : offset + size])
            offset += size
    else:
        dtype = np.dtype(NUMPY_OF[datatype])
        if len(raw) != count * dtype.itemsize:
            raise _bad(
                f"input {name!r}: {len(raw)} bytes of binary data for {count} {datatype} "
                f"elements ({count * dtype.itemsize} bytes)",
                {"input": name, "bytes": len(raw), "expected_bytes": count * dtype.itemsize},
            )
        values = np.frombuffer(raw, dtype=dtype).tolist()
    if len(values) != count:
        raise _bad(
            f"input {name!r} has {len(values)} elements for shape of {count}",
            {"input": name, "elements": len(values), "expected": count},
        )
    return values


class BinaryPart:
    """The binary part of a request (after its JSON), taken input after input without copies."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


class Tensor:
    """One input of a request: name, datatype, shape, and its elements flattened row-major."""

    __slots__ = ("datatype", "name", "shape", "values")

    def __init__(self, name: str, datatype: str, shape: list[int], values: list[Any]) -> None:
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.values = values


def _tensor(raw: Any, index: int, binary: BinaryPart, max_rows: int, max_elements: int) -> Tensor:
    """One input of the request, checked; its data from ``binary`` when it says its size. The
    shape is held to ``max_rows`` rows and ``max_elements`` elements before any data is read."""
    if not isinstance(raw, dict):
        raise _bad(f"inputs[{index}] must be an object with name, datatype, shape and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"inputs[{index}] has no name")
    if len(name) > MAX_NAME_CHARS:
        raise _bad(f"inputs[{index}] has a name of more than {MAX_NAME_CHARS} characters")
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise _bad(
            f"input {name!r} has datatype {str(datatype)[:20]!r}; "
            f"one of {', '.join(sorted(DATATYPES))} is expected",
            {"input": name, "datatype": str(datatype)[:20]},
        )
    shape = raw.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or len(shape) > MAX_NESTING
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise _bad(
            f"input {name!r} needs a shape: a list of sizes such as [N] or [N, F]",
            {"input": name, "shape": str(shape)[:60]},
        )
    count = math.prod(shape)
    if shape[0] > max_rows:
        raise _bad(
            f"at most {max_rows} rows per request (input {name!r} has shape {shape})",
            {"max_instances": max_rows, "instances": shape[0]},
        )
    if count > max_elements:
        raise _bad(
            f"input {name!r} has shape {shape}: {count} elements, more than the {max_elements} "
            "a request of this model may hold",
            {"input": name, "shape": shape, "max_elements": max_elements},
        )
    parameters = raw.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if type(size) is not int or size < 0 or binary.left < size:
            raise _bad(f"input {name!r}: its binary_data_size does not match the body")
        values = _binary_values(name, datatype, binary.take(size), count)
    else:
        if "data" not in raw:
            raise _bad(f"input {name!r} has no data")
        values = _flatten(name, raw["data"], shape, count)
        if len(values) != count:
            raise _bad(
                f"input {name!r} has {len(values)} elements but its shape {shape} holds {count}",
                {"input": name, "elements": len(values), "shape": shape},
            )
        _check_values(name, datatype, values)
    return Tensor(name, datatype, shape, values)


def _text(tensor: Tensor, value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(f"input {tensor.name!r} holds BYTES that are not UTF-8 text") from None
    return value


# --- the codec ---------------------------------------------------------------------------------


class InferCodec:
    """One ``/infer`` request's wire format, for ``PredictionService.predict``."""

    def __init__(
        self,
        header_length: str | None,
        version: str | None,
        max_rows: int,
    ) -> None:
        self._header_length = header_length
        self._version = version
        self._max_rows = max_rows
        self.request_id: str | None = None
        self.outputs: list[str] | None = None
        self.binary: dict[str, bool] = {}
        """Outputs whose request says whether to send them in binary (Triton's extension:
        appended after the JSON); the others follow ``binary_all``."""
        self.binary_all = False
        """The request's ``binary_data_output``."""
        self.headers: dict[str, str] = {}
        """Headers of the answer besides the service's (the JSON part's length when binary)."""

    def accepts(self, content_type: str) -> bool:
        # tritonclient sends no Content-Type at all; its binary extension is octet-stream.
        media = content_type.split(";", 1)[0].strip().lower()
        return media in ("", "application/json", "application/octet-stream") or (
            media.startswith("application/") and media.endswith("+json")
        )

    def error(self, exc: IngressError) -> tuple[int, bytes]:
        return _error(exc)

    def rows(self, entry: ApiEntry, body: bytes) -> list[list[Any]]:
        if self._version is not None and self._version != served_version(entry):
            raise IngressError(
                404,
                ErrorCode.NOT_FOUND,
                f"model {entry.api_id!r} has no version {self._version[:20]!r}; "
                f"it serves version {served_version(entry)}",
                {"versions": [served_version(entry)]},
            )
        payload, binary = self._payload(body)
        parameters = payload.get("parameters")
        self.binary_all = (
            isinstance(parameters, dict) and parameters.get("binary_data_output") is True
        )
        self._outputs(entry, payload.get("outputs"))
        inputs = payload.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise _bad('"inputs" must be a non-empty list of tensors')
        chunks = BinaryPart(binary)
        if len(inputs) > MAX_INPUTS:
            raise _bad(f"at most {MAX_INPUTS} inputs per request", {"inputs": len(inputs)})
        max_elements = self._max_rows * max(1, len(entry.validator.feature_names))
        tensors = [
            _tensor(raw, i, chunks, self._max_rows, max_elements) for i, raw in enumerate(inputs)
        ]
        if chunks.left:
            raise _bad(f"{chunks.left} bytes of binary data were not claimed by any input")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise _bad("two inputs have the same name", {"inputs": names[:MAX_NAMES]})
        instances = self._instances(entry, tensors)
        try:
            return entry.validator.rows(instances)
        except InvalidInput as exc:
            raise IngressError(400, ErrorCode.INVALID_INPUT, exc.message, exc.details) from None

    def _payload(self, body: bytes) -> tuple[dict[str, Any], bytes]:
        head, binary = body, b""
        if self._header_length is not None:
            try:
                length = int(self._header_length)
            except ValueError:
                length = -1
            if not 0 <= length <= len(body):
                raise IngressError(
                    400,
                    ErrorCode.BAD_REQUEST,
                    f"{HEADER_LENGTH} must be the length of the JSON part of the body "
                    f"(at most {len(body)})",
                )
            head, binary = body[:length], body[length:]
        try:
            payload = orjson.loads(head)
        except orjson.JSONDecodeError as exc:
            raise IngressError(
                400, ErrorCode.INVALID_JSON, "the body is not valid JSON", {"reason": str(exc)}
            ) from None
        if not isinstance(payload, dict):
            raise _bad('the body must be an inference request: {"inputs": [...]}')
        request_id = payload.get("id")
        if request_id is not None:
            if not isinstance(request_id, str):
                raise _bad('"id" must be a string')
            self.request_id = request_id[:256]
        return payload, binary

    def _outputs(self, entry: ApiEntry, requested: Any) -> None:
        if requested is None:
            return
        known = ["label", "probabilities"] if entry.classifier else ["predictions"]
        if not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
        ):
            raise _bad('"outputs" must be a list of {"name": ...}')
        names = [o["name"][:64] for o in requested]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise _bad(
                f"unknown output {unknown[0]!r}; this model answers {', '.join(known)}",
                {"unknown_outputs": unknown[:MAX_NAMES], "outputs": known},
            )
        self.outputs = list(dict.fromkeys(names))
        for output in requested:
            parameters = output.get("parameters")
            if isinstance(parameters, dict) and isinstance(parameters.get("binary_data"), bool):
                self.binary[output["name"][:64]] = parameters["binary_data"]

    def _check_count(self, count: int) -> None:
        if count < 1:
            raise _bad("the request holds no rows (N = 0)")
        if count > self._max_rows:
            raise _bad(
                f"at most {self._max_rows} rows per request (got {count})",
                {"max_instances": self._max_rows, "instances": count},
            )

    def _instances(self, entry: ApiEntry, tensors: list[Tensor]) -> list[dict[str, Any]]:
        """Feature objects, one per row, for the validator (which names what is wrong)."""
        features = entry.validator.feature_names
        types = {f.name: f.type for f in entry.record.features}
        known = set(features)
        if all(t.name in known for t in tensors):
            count = tensors[0].shape[0]
            for tensor in tensors:
                if not (
                    len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)
                ):
                    raise _bad(
                        f"input {tensor.name!r} has shape {tensor.shape}; one input per feature "
                        "takes [N] or [N, 1]",
                        {"input": tensor.name, "shape": tensor.shape},
                    )
                if tensor.shape[0] != count:
                    raise _bad(
                        f"inputs disagree on N: {tensors[0].name!r} has {count} rows, "
                        f"{tensor.name!r} has {tensor.shape[0]}",
                        {"rows": {t.name: t.shape[0] for t in tensors[:MAX_NAMES]}},
                    )
            self._check_count(count)
            columns = [
                (t.name, [_feature_value(types[t.name], _text(t, v)) for v in t.values])
                for t in tensors
            ]
            return [{name: values[i] for name, values in columns} for i in range(count)]
        if len(tensors) != 1:
            unexpected = [t.name for t in tensors if t.name not in known]
            raise _bad(
                f"unexpected inputs: {_names(unexpected)}; send one input per feature "
                f"({_names(features)}) or one [N, {len(features)}] tensor in that order",
                {"unexpected": unexpected[:MAX_NAMES], "features": features[:MAX_NAMES]},
            )
        tensor = tensors[0]
        width = len(features)
        if len(tensor.shape) != 2 or tensor.shape[1] != width:
            raise _bad(
                f"input {tensor.name!r} has shape {tensor.shape}; this model takes "
                f"[N, {width}] (features {_names(features)}), or one input per feature",
                {"input": tensor.name, "shape": tensor.shape, "expected_shape": [-1, width]},
            )
        count = tensor.shape[0]
        self._check_count(count)
        order = [types[name] for name in features]
        values = [_text(tensor, v) for v in tensor.values]
        return [
            {
                name: _feature_value(ftype, values[row * width + column])
                for column, (name, ftype) in enumerate(zip(features, order, strict=True))
            }
            for row in range(count)
        ]

    async def prepare(self, entry: ApiEntry, body: bytes) -> bytes:
        """For an API declared as images, one ``BYTES`` input of N PNG/JPEG files (binary, or
        base64 in JSON) becomes the request of their pixel features, ``[N, W x H]`` FP64, by
        ``ingress.images`` as a JSON image request does; so the event records features, never
        image bytes. Any other body is returned as it is."""
        spec = entry.record.image
        if spec is None:
            return body
        payload, binary = self._payload(body)
        inputs = payload.get("inputs")
        if not (
            isinstance(inputs, list)
            and len(inputs) == 1
            and isinstance(inputs[0], dict)
            and inputs[0].get("datatype") == "BYTES"
        ):
            return body
        chunks = BinaryPart(binary)
        tensor = _tensor(inputs[0], 0, chunks, self._max_rows, self._max_rows)
        if chunks.left:
            raise _bad(f"{chunks.left} bytes of binary data were not claimed by any input")
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise _bad(
                f"input {tensor.name!r} has shape {tensor.shape}; images go as [N] or [N, 1]",
                {"input": tensor.name, "shape": tensor.shape},
            )
        self._check_count(len(tensor.values))
        images = [
            {"image": base64.b64encode(v).decode() if isinstance(v, bytes) else v}
            for v in tensor.values
        ]
        names = entry.validator.feature_names
        try:
            features = await features_body(
                spec, names, "application/json", orjson.dumps({"instances": images})
            )
        except ImageError as exc:
            raise IngressError(400, ErrorCode.INVALID_IMAGE, exc.message, exc.details) from None
        assert features is not None  # instances of images: never plain features
        rows = orjson.loads(features)["instances"]
        self._header_length = None
        return orjson.dumps(
            {
                **{k: payload[k] for k in ("id", "parameters", "outputs") if k in payload},
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP64",
                        "shape": [len(rows), len(names)],
                        "data": [row[name] for row in rows for name in names],
                    }
                ],
            }
        )

    def answer(
        self, entry: ApiEntry, out: dict[str, Any], request_id: str, version_key: str
    ) -> bytes:
        results: list[dict[str, Any]] = out["predictions"]
        failed = [(i, r["error"]) for i, r in enumerate(results) if "error" in r]
        if failed:
            index, error = failed[0]
            raise IngressError(
                500,
                ErrorCode.PREDICTION_FAILED,
                f"the model could not predict {len(failed)} of {len(results)} rows; "
                f"first, row {index}: {error.get('message', '')[:300]}",
                {"failed_rows": [i for i, _ in failed[:MAX_NAMES]]},
            )
        predictions = [r["prediction"] for r in results]
        count = len(predictions)
        outputs: dict[str, dict[str, Any]] = {}
        if entry.classifier:
            outputs["label"] = _label_output(predictions, entry.record.classes)
            classes = list(entry.record.classes or results[0].get("probabilities") or {})
            data = [
                float((r.get("probabilities") or {}).get(c, 0.0)) for r in results for c in classes
            ]
            outputs["probabilities"] = {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [count, len(classes)],
                "parameters": {"classes": classes},
                "data": data,
            }
        else:
            outputs["predictions"] = {
                "name": "predictions",
                "datatype": "FP64",
                "shape": [count],
                "data": [float(p) if p is not None else math.nan for p in predictions],
            }
        chosen = self.outputs or list(outputs)
        binary = {name for name in chosen if self.binary.get(name, self.binary_all)}
        chunks: list[bytes] = []
        for name in chosen:
            if name in binary:
                raw = _binary_output(outputs[name].pop("data"), outputs[name]["datatype"])
                outputs[name].setdefault("parameters", {})["binary_data_size"] = len(raw)
                chunks.append(raw)
        head = orjson.dumps(
            {
                "model_name": entry.api_id,
                "model_version": _version_number(entry, version_key),
                "id": self.request_id if self.request_id is not None else request_id,
                "parameters": {"request_id": request_id, "version_key": version_key},
                "outputs": [outputs[name] for name in chosen],
            }
        )
        if not chunks:
            return head
        self.headers = {HEADER_LENGTH: str(len(head)), "Content-Type": "application/octet-stream"}
        return head + b"".join(chunks)


def _feature_value(ftype: FeatureType, value: Any) -> Any:
    """A tensor element as the feature's JSON value: a numeric tensor carries booleans as 0/1
    and integer categories as whole floats."""
    if ftype is FeatureType.BOOLEAN and type(value) in (int, float) and value in (0, 1):
        return bool(value)
    if ftype is FeatureType.CATEGORY and type(value) is float and value.is_integer():
        return int(value)
    return value


def _binary_output(data: list[Any], datatype: str) -> bytes:
    """An output's elements in Triton's binary tensor format (BYTES: 4-byte length, bytes)."""
    if datatype == "BYTES":
        parts = [str(v).encode("utf-8") for v in data]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    return np.asarray(data, dtype=NUMPY_OF[datatype]).tobytes()


def _label_output(predictions: list[Any], classes: list[str] | None) -> dict[str, Any]:
    """The labels, of the datatype the metadata announced from the class names when they all
    convert to it (a model trained on "0".."9" answers INT64 whether it says "7" or 7)."""
    announced = _label_datatype(classes)
    if announced != "BYTES":
        cast = int if announced == "INT64" else float
        try:
            numbers: list[int | float] = [cast(p) for p in predictions if type(p) is not bool]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) == len(predictions):
            return {
                "name": "label",
                "datatype": announced,
                "shape": [len(numbers)],
                "data": numbers,
            }
    kinds = {type(p) for p in predictions}
    if kinds == {bool}:
        datatype, data = "BOOL", predictions
    elif kinds <= {int}:
        datatype, data = "INT64", predictions
    elif kinds <= {int, float}:
        datatype, data = "FP64", [float(p) for p in predictions]
    else:
        datatype, data = "BYTES", ["" if p is None else str(p) for p in predictions]
    return {"name": "label", "datatype": datatype, "shape": [len(predictions)], "data": data}


def _version_number(entry: ApiEntry, version_key: str) -> str:
    if version_key == entry.version_key:
        return served_version(entry)
    if entry.traffic is not None and entry.traffic.version_key == version_key:
        return str(entry.traffic.version_number)
    return version_key


# --- HTTP --------------------------------------------------------------------------------------


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), headers=JSON_HEADERS)


class OipRoutes:
    """The protocol's views over the prediction service (health, metadata, readiness, infer)."""

    def __init__(
        self,
        service: PredictionService,
        readiness: Handler,
        key_of: KeyOf,
    ) -> None:
        self.service = service
        self.readiness = readiness
        self.key_of = key_of

    async def live(self, request: web.Request) -> web.Response:
        return _json(200, {"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        # Same rule as /ready (a predictor consuming). Not ready: 503 as KServe answers (the
        # protocol says 4xx; its clients look for 200 only).
        ready = (await self.readiness(request)).status == 200
        return _json(200 if ready else 503, {"ready": ready})

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json(
            200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}
        )

    def _entry(self, request: web.Request) -> ApiEntry:
        """The API named in the path, once the key matches it (the same checks, in the same
        order, as a prediction); the version in the path must be the one it serves."""
        registry = self.service.registry
        api_id = request.match_info["api_id"]
        if not registry.ready:
            raise IngressError(
                503, ErrorCode.REGISTRY_NOT_READY, "ingress is starting; try again shortly"
            )
        key = self.key_of(request)
        if not key:
            raise IngressError(
                401,
                ErrorCode.MISSING_API_KEY,
                "an API key is required in the X-API-Key header (or Authorization: Bearer)",
            )
        entry = registry.get(api_id)
        if entry is None:
            raise IngressError(404, ErrorCode.API_NOT_FOUND, f"no model {api_id[:64]!r}")
        if not entry.key_matches(key):
            raise IngressError(403, ErrorCode.INVALID_API_KEY, "the API key is not valid")
        version = request.match_info.get("version")
        if version is not None and version != served_version(entry):
            raise IngressError(
                404,
                ErrorCode.NOT_FOUND,
                f"model {api_id[:64]!r} has no version {version[:20]!r}; "
                f"it serves version {served_version(entry)}",
                {"versions": [served_version(entry)]},
            )
        return entry

    async def model_metadata(self, request: web.Request) -> web.Response:
        try:
            entry = self._entry(request)
        except IngressError as exc:
            return _error_response(exc)
        return _json(200, model_metadata(entry))

    async def model_ready(self, request: web.Request) -> web.Response:
        try:
            entry = self._entry(request)
        except IngressError as exc:
            return _error_response(exc)
        ready = entry.active and (await self.readiness(request)).status == 200
        body: dict[str, Any] = {"name": entry.api_id, "ready": ready}
        if not entry.active:
            body["error"] = "this API is inactive"
        return _json(200 if ready else 503, body)

    async def infer(self, request: web.Request) -> web.Response:
        service = self.service
        limit = service.settings.ingress_max_body_bytes

        async def read_body() -> bytes:
            try:
                return await http.read_body(request, limit)
            except http.BodyError as exc:
                raise IngressError(
                    exc.status, ErrorCode(exc.code), exc.message, exc.details
                ) from None

        codec = InferCodec(
            request.headers.get(HEADER_LENGTH),
            request.match_info.get("version"),
            service.settings.ingress_max_instances,
        )
        answer = await service.predict(
            request.match_info["api_id"],
            self.key_of(request),
            request.headers.get("Content-Type", ""),
            read_body,
            codec,
        )
        headers = {**answer.headers, **codec.headers} if answer.status == 200 else answer.headers
        return web.Response(status=answer.status, body=answer.body, headers=headers)


def _error_response(exc: IngressError) -> web.Response:
    status, body = _error(exc)
    return web.Response(status=status, body=body, headers={**JSON_HEADERS, **(exc.headers or {})})


def add_routes(
    app: web.Application,
    service: PredictionService,
    readiness: Handler,
    key_of: KeyOf,
) -> OipRoutes:
    """Register the protocol's routes; ``readiness`` is the app's ``/ready`` view."""
    routes = OipRoutes(service, readiness, key_of)
    router = app.router
    router.add_get("/v2", routes.server_metadata)
    router.add_get("/v2/health/live", routes.live)
    router.add_get("/v2/health/ready", routes.ready)
    for model in ("/v2/models/{api_id}", "/v2/models/{api_id}/versions/{version}"):
        router.add_get(model, routes.model_metadata)
        router.add_get(f"{model}/ready", routes.model_ready)
        router.add_post(f"{model}/infer", routes.infer)
    return routes


# --- OpenAPI -----------------------------------------------------------------------------------

OIP_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for humans"},
        "code": {"type": "string", "description": "Stable error code (as the JSON route's)"},
        "details": {"type": "object"},
    },
}
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "description": "The protocol's parameters: names to strings, numbers or booleans",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": PARAMETERS,
        "data": {
            "type": "array",
            "description": "The elements, row-major (nested arrays are read too)",
            "items": {"type": ["number", "boolean", "string"]},
        },
    },
}
OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
TENSOR_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": -1},
            "description": "-1: any size",
        },
        "parameters": {"type": "object"},
    },
}
INFER_ERRORS = {
    "400": "Bad inputs: names, shapes, datatypes or feature values (the sentence says which)",
    "401": "No API key, or not this model's",
    "403": "The API is inactive",
    "404": "No such model, or not the version it serves",
    "408": "The body did not arrive in time",
    "413": "The body is larger than the limit",
    "415": "A Content-Type or Content-Encoding ingress does not read",
    "429": "Rate limit exceeded; see Retry-After",
    "431": "A header is too long",
    "500": "The model could not predict a row",
    "503": "Ingress is starting, or no predictor answers, or they are saturated",
    "504": "The prediction did not finish in time",
}
METADATA_ERRORS = {k: INFER_ERRORS[k] for k in ("401", "404", "431", "503")}


def _responses(ok: str, schema: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    error = {"application/json": {"schema": OIP_ERROR}}
    return {
        "200": {"description": ok, "content": {"application/json": {"schema": schema}}},
        **{status: {"description": text, "content": error} for status, text in errors.items()},
    }


def _infer_responses(response: dict[str, Any]) -> dict[str, Any]:
    responses = _responses("Outputs", response, INFER_ERRORS)
    responses["200"]["content"]["application/octet-stream"] = {
        "schema": {"type": "string", "format": "binary"}
    }
    responses["200"]["description"] += " (JSON, then binary outputs when asked for)"
    return responses


def openapi_paths() -> dict[str, Any]:
    """The protocol's routes for ingress's OpenAPI document."""
    tags = ["open inference protocol"]
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearerKey": []}]
    path = {"in": "path", "required": True, "schema": {"type": "string"}}
    model = [{"name": "api_id", "description": "The API's id (the model's name)", **path}]
    versioned = [*model, {"name": "version", "description": "The version it serves", **path}]
    flag = {"type": "object", "additionalProperties": True}
    metadata = {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": TENSOR_METADATA},
            "outputs": {"type": "array", "items": TENSOR_METADATA},
            "parameters": {"type": "object"},
        },
    }
    request = {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "items": INPUT},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "parameters": PARAMETERS},
                },
            },
        },
    }
    response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": OUTPUT},
        },
    }
    not_ready = {
        "503": {"description": "Not ready", "content": {"application/json": {"schema": flag}}}
    }
    paths: dict[str, Any] = {
        "/v2": {
            "get": {
                "operationId": "oip_server_metadata",
                "summary": "Server metadata",
                "tags": tags,
                "responses": _responses("Name, version, extensions", flag, {}),
            }
        },
        "/v2/health/live": {
            "get": {
                "operationId": "oip_live",
                "summary": "Liveness",
                "tags": tags,
                "responses": _responses("Live", flag, {}),
            }
        },
        "/v2/health/ready": {
            "get": {
                "operationId": "oip_ready",
                "summary": "Readiness (a predictor is consuming)",
                "tags": tags,
                "responses": {**_responses("Ready", flag, {}), **not_ready},
            }
        },
    }
    for prefix, parameters, suffix in (
        ("/v2/models/{api_id}", model, ""),
        ("/v2/models/{api_id}/versions/{version}", versioned, "_version"),
    ):
        paths[prefix] = {
            "get": {
                "operationId": f"oip_model_metadata{suffix}",
                "summary": "Model metadata",
                "tags": tags,
                "parameters": parameters,
                "security": security,
                "responses": _responses("Inputs and outputs", metadata, METADATA_ERRORS),
            }
        }
        paths[f"{prefix}/ready"] = {
            "get": {
                "operationId": f"oip_model_ready{suffix}",
                "summary": "Model readiness",
                "tags": tags,
                "parameters": parameters,
                "security": security,
                "responses": {**_responses("Ready", flag, METADATA_ERRORS), **not_ready},
            }
        }
        paths[f"{prefix}/infer"] = {
            "post": {
                "operationId": f"oip_infer{suffix}",
                "summary": "Predict (Open Inference Protocol V2)",
                "tags": tags,
                "parameters": parameters,
                "security": security,
                "requestBody": {
                    "required": True,
                    "description": "An inference request; with binary tensors, the JSON then "
                    "their bytes (application/octet-stream), Inference-Header-Content-Length "
                    "giving the JSON's length",
                    "content": {
                        "application/json": {"schema": request},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "responses": _infer_responses(response),
            }
        }
    return paths
