"""OTLP spans as typed objects.

Decodes an ``ExportTraceServiceRequest`` (protobuf, or OTLP/JSON with its hex ids and
camelCase names) into :class:`Span` objects, then reads two instrumentation dialects:

- OpenInference (Arize Phoenix; smolagents, LangChain/LangGraph, CrewAI, OpenAI Agents SDK
  instrumentations): ``openinference.span.kind``, ``input.value``, ``output.value``,
  ``tool.name``, ``llm.input_messages.N.message.*``, ``llm.output_messages.N.message.*``.
- OpenTelemetry GenAI semantic conventions: ``gen_ai.operation.name``,
  ``gen_ai.tool.name``, ``gen_ai.tool.call.arguments`` / ``.result``,
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON message lists with parts).

What one span says (its task, tool call, model text, tokens) is :mod:`memp_core.agents.genai`;
assembling a trace from these spans is :mod:`memp_core.agents.traces`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags, Status

from memp_core.errors import ImportFormatError

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_HEX = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class Role(Enum):
    """What a span is in an agent's run."""

    AGENT = "agent"
    TOOL = "tool"
    LLM = "llm"
    CHAIN = "chain"  # a step, a graph node, a crew task: structure around the others
    OTHER = "other"  # HTTP, database, anything no agent instrumentation labelled


_OPENINFERENCE = {"AGENT": Role.AGENT, "TOOL": Role.TOOL, "LLM": Role.LLM, "CHAIN": Role.CHAIN}
_GENAI = {
    "invoke_agent": Role.AGENT,
    "execute_tool": Role.TOOL,
    "chat": Role.LLM,
    "text_completion": Role.LLM,
    "generate_content": Role.LLM,
}


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time: int  # unix nanoseconds
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Span:
    """One OTLP span with its attributes as plain Python values."""

    trace_id: str  # lowercase hex, as every OTel tool shows it
    span_id: str
    parent_id: str  # "" for a root
    parent_remote: bool  # the parent lives in another process: this is the local root
    name: str
    start: int  # unix nanoseconds
    end: int
    attributes: Mapping[str, Any]
    events: tuple[SpanEvent, ...] = ()
    status_error: str | None = None  # the ERROR status's message ("" if it gave none)
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: str = ""  # instrumentation scope (library) name
    size: int = 0  # bytes on the wire (what the buffer counts against its memory bound)

    @property
    def is_root(self) -> bool:
        return not self.parent_id or self.parent_remote

    def text(self, key: str) -> str | None:
        """The attribute ``key`` as text (numbers and JSON values rendered), None if absent."""
        value = self.attributes.get(key)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    @property
    def role(self) -> Role:
        kind = self.attributes.get("openinference.span.kind")
        if isinstance(kind, str) and kind.upper() in _OPENINFERENCE:
            return _OPENINFERENCE[kind.upper()]
        op = self.attributes.get("gen_ai.operation.name")
        if isinstance(op, str) and op in _GENAI:
            return _GENAI[op]
        return Role.CHAIN if isinstance(kind, str) else Role.OTHER

    def errors(self) -> list[tuple[int, str]]:
        """(time, message) of each failure: ``exception`` events, else the ERROR status.

        smolagents records a failed step as an exception event on a span whose status is
        OK, so events count on their own."""
        found = [
            (ev.time or self.end, exception_text(ev.attributes))
            for ev in self.events
            if ev.name == "exception"
        ]
        if not found and self.status_error is not None:
            message = self.status_error or self.text("error.type") or "error"
            found.append((self.end, message))
        return found


def exception_text(attrs: Mapping[str, Any]) -> str:
    kind, message = attrs.get("exception.type"), attrs.get("exception.message")
    parts = [str(p) for p in (kind, message) if p not in (None, "")]
    return ": ".join(parts) or "exception"


# -- decoding ------------------------------------------------------------------------------


def decode_protobuf(body: bytes, name: str = "OTLP request") -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise ImportFormatError(name, None, f"not an OTLP protobuf trace export: {exc}") from None
    return message


def decode_json(value: Any, name: str = "OTLP request", where: str | int | None = None) -> Any:
    """An OTLP/JSON document (already parsed with ``json.loads``) as the protobuf message."""
    if not isinstance(value, dict):
        raise ImportFormatError(name, where, "an OTLP trace export is a JSON object")
    message = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(_ids_to_base64(value), message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:300]
        raise ImportFormatError(name, where, f"not an OTLP trace export: {reason}") from None
    return message


def _ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(value, list):
        return [_ids_to_base64(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if key in _ID_KEYS and isinstance(sub, str) and _HEX.match(sub):
            out[key] = base64.b64encode(binascii.unhexlify(sub)).decode("ascii")
        else:
            out[key] = _ids_to_base64(sub)
    return out


def spans_of(message: ExportTraceServiceRequest, name: str = "OTLP request") -> Iterator[Span]:
    """The spans of an export; ImportFormatError for a span with invalid ids (as the OTLP
    spec asks of receivers: trace id 16 bytes, span id 8, parent id 8 or none)."""
    for rs in message.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if (
                    len(sp.trace_id) != 16
                    or len(sp.span_id) != 8
                    or len(sp.parent_span_id) not in (0, 8)
                ):
                    reason = f"span {sp.name[:100]!r}: invalid trace, span or parent span id"
                    raise ImportFormatError(name, None, reason)
                error = sp.status.message if sp.status.code == Status.STATUS_CODE_ERROR else None
                yield Span(
                    trace_id=sp.trace_id.hex(),
                    span_id=sp.span_id.hex(),
                    parent_id=sp.parent_span_id.hex(),
                    parent_remote=bool(sp.flags & _REMOTE),
                    name=sp.name,
                    start=sp.start_time_unix_nano,
                    end=sp.end_time_unix_nano,
                    attributes=attributes(sp.attributes),
                    events=tuple(
                        SpanEvent(ev.name, ev.time_unix_nano, attributes(ev.attributes))
                        for ev in sp.events
                    ),
                    status_error=error,
                    resource=resource,
                    scope=ss.scope.name,
                    size=sp.ByteSize(),
                )


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)
