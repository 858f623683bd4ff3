"""W3C Trace Context (``traceparent``) as modelgate reads and writes it. No I/O.

A request's trace id is accepted from its ``traceparent`` header when the header is valid
(https://www.w3.org/TR/trace-context/#traceparent-header), else made at ingress; ingress gives the
request a span id of its own (the parent id of what it hands on: the predictor's batch, the
answer's ``traceparent``). A malformed header is never an error: it is ignored, as the
specification asks, and the request starts a new trace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

TRACEPARENT = "traceparent"
"""The header's name (HTTP and AMQP headers alike)."""

MAX_HEADER_CHARS = 512
"""A longer value is not parsed (version 00 is 55 characters; later versions may append)."""

_HEX = re.compile(r"[0-9a-f]+")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01


def new_trace_id() -> str:
    """32 random lowercase hex digits (never all zero)."""
    while True:
        trace_id = os.urandom(16).hex()
        if trace_id != _ZERO_TRACE:
            return trace_id


def new_span_id() -> str:
    """16 random lowercase hex digits (never all zero)."""
    while True:
        span_id = os.urandom(8).hex()
        if span_id != _ZERO_SPAN:
            return span_id


@dataclass(frozen=True, slots=True)
class TraceParent:
    """The fields of a valid ``traceparent``: trace id, parent (span) id and the flags byte."""

    trace_id: str
    parent_id: str
    flags: int

    def header(self) -> str:
        """The version 00 header value."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.fullmatch(text) is not None


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The ``traceparent`` a header value holds, or None when it is absent or malformed.

    Per the specification: lowercase hex only; version ``ff`` is invalid; version 00 is exactly
    ``00-<32 hex>-<16 hex>-<2 hex>``; a later version is read by its first four fields, which may
    be followed by ``-`` and more; an all-zero trace id or parent id is invalid. Flags other than
    ``sampled`` are dropped (version 00 defines no other), so what is handed on is version 00.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    if len(value) < 55 or len(value) > MAX_HEADER_CHARS:
        return None
    version = value[:2]
    if not _is_hex(version, 2) or version == "ff":
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not (_is_hex(trace_id, 32) and _is_hex(parent_id, 16) and _is_hex(flags, 2)):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16) & SAMPLED)


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """One request's place in its trace at ingress: the trace id (received or new), the id of
    the caller's span when it sent one (``''`` otherwise) and ingress's own span id for it."""

    trace_id: str
    span_id: str
    caller_span_id: str = ""
    flags: int = SAMPLED

    @classmethod
    def from_header(cls, value: str | None) -> RequestTrace:
        """The trace of a request with this ``traceparent`` (a new trace when it is absent or
        malformed; a new trace is sampled: every request is recorded)."""
        parent = parse_traceparent(value)
        if parent is None:
            return cls(new_trace_id(), new_span_id())
        return cls(parent.trace_id, new_span_id(), parent.parent_id, parent.flags)

    def traceparent(self) -> str:
        """The header naming ingress's span as the parent: for the answer and the predictor."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"
