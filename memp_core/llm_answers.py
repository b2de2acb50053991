"""A chat model's answers: the forms asked for, their parsing, and the one repair.

A build asks for a script, a reflection for an analysis and a script, each as tagged sections
(``<script>...</script>``) or a JSON object; :func:`parse_answer` reads either into a pydantic
model and raises :class:`~memp_core.errors.LLMOutputError` with the raw text when it does not
fit. :func:`ask_parsed` sends an answer that was cut at ``max_tokens`` or did not fit back once
with its problem stated (a cut one is asked to be shorter). Nothing here talks to a server:
the request goes through the ``complete`` callable a backend passes in
(:class:`memp_core.llm_openai.OpenAIBackend`, the LLM judge).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError, field_validator

from memp_core import prompts
from memp_core.errors import LLMOutputError
from memp_core.prompts import Message, normalise_script

A = TypeVar("A", bound=BaseModel)

_FENCE = re.compile(r"^```[a-zA-Z]*\s*$|^```\s*$", re.M)
REQUESTS_PER_CALL = 2  # the answer and at most one repair request


@dataclass(frozen=True)
class ChatReply:
    """One completion: its text, the tokens it cost and why it ended.

    ``finish_reason`` is the server's ("stop": the answer ended or hit a stop sequence,
    which the server removes; "length": cut at ``max_tokens``), or "length" when the client
    cut a server that ignored ``max_tokens``.
    """

    text: str
    tokens: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    seconds: float = 0.0

    @property
    def cut(self) -> bool:
        return self.finish_reason != "stop"


@dataclass(frozen=True)
class CallKind:
    """The bounds of one kind of call: the answer it wants, its token limit and stop."""

    name: str  # "script", "reflection"
    max_tokens: int
    stop: str  # the closing tag that ends the answer form
    setting: str  # the environment variable that raises ``max_tokens``


class ScriptAnswer(BaseModel):
    script: str
    rationale: str = ""

    _check_script = field_validator("script", mode="before")(normalise_script)


class ReflectAnswer(BaseModel):
    analysis: str
    script: str
    failing_step: int | None = None

    _check_script = field_validator("script", mode="before")(normalise_script)

    @field_validator("analysis")
    @classmethod
    def _analysis_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the analysis is empty")
        return value.strip()

    @field_validator("failing_step", mode="before")
    @classmethod
    def _step_index(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("", "none", "null", "n/a", "-"):
                return None
            m = re.search(r"\d+", text)
            if m is None:
                raise ValueError(f"failing_step is not a step index: {value[:40]!r}")
            return int(m.group())
        return value


def parse_answer(raw: str, model: type[A]) -> A:
    """Parse a tagged-section or JSON answer into ``model``; raise LLMOutputError with raw."""
    fields = _json_object(raw)
    if fields is None:
        fields = _tagged_sections(raw, list(model.model_fields))
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
        raise LLMOutputError(f"answer does not fit {model.__name__} ({problems})", raw) from None


def _json_object(raw: str) -> dict[str, Any] | None:
    text = _FENCE.sub("", raw).strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _tagged_sections(raw: str, names: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        m = re.search(rf"<{name}>(.*?)</{name}>", raw, flags=re.S | re.I)
        if m is not None:
            found[name] = m.group(1).strip()
    return found


def ask_parsed(
    complete: Callable[[list[Message]], ChatReply],
    messages: list[Message],
    answer: type[A],
    kind: CallKind,
    who: str,
    subject: str,
) -> tuple[A, int, int]:
    """The answer parsed into ``answer``, its tokens and requests: one repair at most.

    A cut or unusable answer is sent back once with its problem; an answer that ended at
    its stop sequence gets the closing tag back (servers remove the stop sequence).
    """
    tokens, problem, raw, cut = 0, "", "", False
    convo = list(messages)
    for request in range(1, REQUESTS_PER_CALL + 1):
        reply = complete(convo)
        tokens += reply.tokens
        raw, cut = reply.text, reply.cut
        try:
            return parse_answer(_restore_stop(reply, kind.stop), answer), tokens, request
        except LLMOutputError as exc:
            problem = _problem(exc)
        if cut:
            problem = f"cut at max_tokens={kind.max_tokens} before it ended: {problem}"
        convo = prompts.repair_messages(
            messages, raw, problem, cut_at=kind.max_tokens if cut else None
        )
    hint = f"; raise {kind.setting} if answers need more tokens" if cut else ""
    raise LLMOutputError(
        f"{who} gave no usable {kind.name} for {subject} after {REQUESTS_PER_CALL} requests "
        f"(the answer and one repair): {problem}{hint}",
        raw,
    )


def _restore_stop(reply: ChatReply, stop: str) -> str:
    """The answer with its closing tag: the server removes the stop sequence it ended on."""
    opening = stop.replace("</", "<", 1)
    text = reply.text
    if not reply.cut and opening in text and stop not in text.split(opening)[-1]:
        return text + stop
    return text


def _problem(exc: LLMOutputError) -> str:
    """The message of ``exc`` without the raw answer it appends."""
    text = str(exc)
    return text[: -len(f"; raw answer: {exc.raw[:500]!r}")] if exc.raw else text
