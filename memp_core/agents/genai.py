"""What one OTLP span says about an agent's run, in the two dialects agents emit.

OpenInference attributes (``input.value``, ``tool.name``, ``llm.output_messages.N.message.*``)
and the OpenTelemetry GenAI conventions (``gen_ai.tool.name``, ``gen_ai.input.messages`` as
JSON message lists with parts), read from a decoded :class:`~memp_core.agents.spans.Span`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memp_core.agents.spans import Span

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
USER_ROLES = frozenset({"user", "human"})


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
