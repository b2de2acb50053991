"""OTLP spans as typed objects, and what one span says about an agent's run.

Decodes an ``ExportTraceServiceRequest`` (protobuf, or OTLP/JSON with its hex ids and
camelCase names) into :class:`Span` objects, then reads two instrumentation dialects:

- OpenInference (Arize Phoenix; smolagents, LangChain/LangGraph, CrewAI, OpenAI Agents SDK
  instrumentations): ``openinference.span.kind``, ``input.value``, ``output.value``,
  ``tool.name``, ``llm.input_messages.N.message.*``, ``llm.output_messages.N.message.*``.
- OpenTelemetry GenAI semantic conventions: ``gen_ai.operation.name``,
  ``gen_ai.tool.name``, ``gen_ai.tool.call.arguments`` / ``.result``,
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON message lists with parts).

Assembling a trace from these spans is :mod:`memp_core.agents.traces`.
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
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
USER_ROLES = frozenset({"user", "human"})


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


# -- reading what a span says ----------------------------------------------------------------


def loads(text: str | None) -> Any:
    """``text`` parsed as JSON when it is JSON; else the text itself."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return text
    return text


def boolean(value: Any) -> bool | None:
    """An explicit verdict: a bool, 0/1, or the words true/false/yes/no; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def indexed(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened lists (``prefix.0.message.role``) back as a list of {rest: value}."""
    found: dict[int, dict[str, Any]] = {}
    dotted = prefix + "."
    for key, value in attrs.items():
        if key.startswith(dotted):
            index, _, rest = key[len(dotted) :].partition(".")
            if index.isdigit() and rest:
                found.setdefault(int(index), {})[rest] = value
    return [found[i] for i in sorted(found)]


def message_text(message: Any) -> str | None:
    """The text of one chat message in the shapes instrumentations record."""
    if isinstance(message, str):
        return message
    if isinstance(message, list) and len(message) == 2 and isinstance(message[1], str):
        return message[1]  # LangChain's ("user", "text") tuples
    if not isinstance(message, dict):
        return None
    if isinstance(message.get("kwargs"), dict):  # LangChain's serialised HumanMessage
        return message_text(message["kwargs"])
    content = message.get("content", message.get("parts"))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [_part_text(p) for p in content]
        joined = "\n".join(t for t in texts if t)
        return joined or None
    return None


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") in ("text", "input_text", "reasoning"):
        text = part.get("content", part.get("text"))
        return text if isinstance(text, str) else None
    return None


def message_role(message: Any) -> str:
    if isinstance(message, list) and message and isinstance(message[0], str):
        return message[0].lower()
    if not isinstance(message, dict):
        return ""
    if isinstance(message.get("kwargs"), dict):
        ids = message.get("id")
        if isinstance(ids, list) and ids and ids[-1] == "HumanMessage":
            return "human"
        return message_role(message["kwargs"])
    role = message.get("role", message.get("type", ""))
    return role.lower() if isinstance(role, str) else ""


def first_user_text(messages: Any) -> str | None:
    if isinstance(messages, dict):
        messages = messages.get("messages")
    if not isinstance(messages, list):
        return None
    for message in messages:
        if message_role(message) in USER_ROLES:
            text = message_text(message)
            if text and text.strip():
                return text.strip()
    return None


# -- what the agent was asked, what it called, what it said -----------------------------------

TASK_KEYS = ("task", "input", "query", "question", "prompt", "user_input", "goal", "message")
_WRAPPER_KEYS = frozenset({"args", "kwargs", "sanitize_inputs_outputs"})


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any  # parsed JSON when the instrumentation recorded JSON, else the raw text
    result: str | None


def task_of(span: Span) -> str | None:
    """The task an agent or LLM span was given: its input, or the first user message."""
    found = _task_from(loads(span.text("input.value")), depth=0)
    if found:
        return found
    for key in ("gen_ai.input.messages", "gen_ai.prompt"):
        found = first_user_text(loads(span.text(key)))
        if found:
            return found
    for prefix, role_key, content_key in (
        ("llm.input_messages", "message.role", "message.content"),
        ("gen_ai.prompt", "role", "content"),  # OpenLLMetry's flattened prompts
    ):
        for entry in indexed(span.attributes, prefix):
            role = entry.get(role_key)
            text = entry.get(content_key) or _contents_text(entry)
            if isinstance(role, str) and role.lower() in USER_ROLES and isinstance(text, str):
                if text.strip():
                    return text.strip()
    return None


def _task_from(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        return first_user_text(value)
    if not isinstance(value, dict) or depth > 2:
        return None
    for key in TASK_KEYS:
        if key in value:
            found = _task_from(value[key], depth + 1)
            if found:
                return found
    return first_user_text(value.get("messages"))


def tool_call(span: Span) -> ToolCall:
    name = span.text("tool.name") or span.text("gen_ai.tool.name")
    if not name:
        name = span.name.removeprefix("execute_tool").strip() or span.name
    raw = (
        span.text("gen_ai.tool.call.arguments")
        or span.text("input.value")
        or span.text("tool_call.function.arguments")
    )
    result = span.text("gen_ai.tool.call.result") or span.text("output.value")
    return ToolCall(name=name, arguments=_unwrap(loads(raw)), result=result)


def _unwrap(arguments: Any) -> Any:
    """smolagents records ``{"args": [...], "kwargs": {...}, "sanitize_inputs_outputs": ..}``."""
    if not isinstance(arguments, dict) or not arguments or set(arguments) - _WRAPPER_KEYS:
        return arguments
    kwargs, args = arguments.get("kwargs"), arguments.get("args")
    if kwargs:
        return kwargs
    if isinstance(args, list) and len(args) == 1:
        return args[0]
    return args if args else None


def llm_text(span: Span) -> str | None:
    """What a model said (text and reasoning, not its tool calls) in an LLM span."""
    texts: list[str] = []
    sources = [span.attributes, *(ev.attributes for ev in span.events)]
    for attrs in sources:
        messages = loads(attrs.get("gen_ai.output.messages"))
        if isinstance(messages, list):
            texts.extend(t for t in (message_text(m) for m in messages) if t)
    for entry in indexed(span.attributes, "llm.output_messages"):
        text = entry.get("message.content") or _contents_text(entry)
        if isinstance(text, str) and text:
            texts.append(text)
    for entry in indexed(span.attributes, "gen_ai.completion"):
        if isinstance(entry.get("content"), str) and entry["content"]:
            texts.append(entry["content"])
    if not texts:
        output = loads(span.text("output.value"))
        if isinstance(output, dict) and isinstance(output.get("choices"), list):
            output = next(iter(output["choices"]), {})
            output = output.get("message") if isinstance(output, dict) else None
        text = message_text(output) if not isinstance(output, str) else output
        if text:
            texts.append(text)
    joined = "\n".join(t.strip() for t in texts if t.strip())
    return joined or None


def _contents_text(entry: Mapping[str, Any]) -> str | None:
    """OpenInference multi-part content: ``message.contents.N.message_content.text``."""
    parts = [
        v
        for k, v in sorted(entry.items())
        if k.startswith("message.contents.") and k.endswith("message_content.text")
    ]
    texts = [p for p in parts if isinstance(p, str) and p]
    return "\n".join(texts) or None


def model_of(span: Span) -> str | None:
    for key in ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model"):
        name = span.text(key)
        if name:
            return name
    return None


def tokens_of(span: Span) -> int | None:
    attrs = span.attributes
    total = attrs.get("llm.token_count.total")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    pairs = (
        ("llm.token_count.prompt", "llm.token_count.completion"),
        ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"),
    )
    for a, b in pairs:
        counts = [attrs.get(a), attrs.get(b)]
        found = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
        if found:
            return sum(found)
    return None


def clean(text: str) -> str:
    """Text a database stores: no NUL (Postgres refuses it), no unpaired surrogates."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
