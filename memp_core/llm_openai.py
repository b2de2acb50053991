"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint.

The ``openai`` client retries timeouts, HTTP 429 and 5xx itself (``max_retries`` from
settings, honouring ``Retry-After``). On top of that, an answer that cannot be parsed is sent
back once per retry with the parse problem (``repair_messages``); when every attempt fails the
caller gets :class:`LLMOutputError` with the last raw answer. Token counts of all attempts are
summed into the returned draft.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError, field_validator

from memp_core import prompts
from memp_core.config import Settings
from memp_core.errors import ConfigError, LLMError, LLMOutputError
from memp_core.llm import Backend, Reflection, RunView, ScriptDraft
from memp_core.prompts import normalise_script

A = TypeVar("A", bound=BaseModel)

_FENCE = re.compile(r"^```[a-zA-Z]*\s*$|^```\s*$", re.M)


@dataclass(frozen=True)
class ChatReply:
    """One completion: its text and the tokens it cost (prompt + completion)."""

    text: str
    tokens: int
    prompt_tokens: int = 0
    completion_tokens: int = 0


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


class OpenAIBackend(Backend):
    """Writes scripts and reflections with a chat model; author ``llm:<model>``."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        if not settings.openai_base_url and not settings.openai_api_key:
            raise ConfigError(
                "the openai backend needs OPENAI_API_KEY (api.openai.com) or OPENAI_BASE_URL "
                "(a local OpenAI-compatible server)"
            )
        self.model = settings.llm_model
        self.base_url = settings.openai_base_url or "https://api.openai.com/v1"
        self.timeout_s = settings.llm_timeout_s
        self.max_retries = max(0, settings.llm_max_retries)
        self._client = openai.OpenAI(
            base_url=settings.openai_base_url,
            # Local servers (vLLM, Ollama, llama.cpp) accept any key but the client needs one.
            api_key=settings.openai_api_key or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=self.max_retries,
        )

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        stop: list[str] | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatReply:
        """One completion (the household LLM agent's ReAct step); raises LLMError."""
        extra: dict[str, Any] = {}
        if stop:
            extra["stop"] = stop
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        try:
            resp = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature, **extra
            )
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"{self.model} at {self.base_url} did not answer within {self.timeout_s:g}s "
                f"({self.max_retries} retries)"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach {self.base_url}: {exc}") from exc
        except openai.RateLimitError as exc:
            raise LLMError(
                f"{self.base_url} kept rate-limiting (HTTP 429) after {self.max_retries} "
                f"retries: {_api_message(exc)}"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"{self.base_url} answered HTTP {exc.status_code} for model {self.model}: "
                f"{_api_message(exc)}"
            ) from exc
        except (openai.APIError, ValueError) as exc:  # a 200 whose body is not a completion
            raise LLMOutputError(f"{self.base_url} sent an unreadable response: {exc}") from exc
        return _reply(resp, self.model)

    def write_script(self, task_type: str, runs: list[RunView]) -> ScriptDraft:
        answer, tokens = self._ask(prompts.script_messages(task_type, runs), ScriptAnswer)
        return ScriptDraft(script=answer.script, rationale=answer.rationale, tokens=tokens)

    def reflect(self, failed: RunView, script: str) -> Reflection:
        answer, tokens = self._ask(prompts.reflect_messages(failed, script), ReflectAnswer)
        step = answer.failing_step
        if step is not None and not 0 <= step < max(len(failed.steps), 1):
            step = None  # an index outside the run is no index at all
        return Reflection(
            script=answer.script, analysis=answer.analysis, failing_step=step, tokens=tokens
        )

    def _ask(self, messages: list[dict[str, str]], model: type[A]) -> tuple[A, int]:
        """Chat, parse into ``model``; on a bad answer ask again with the problem stated."""
        return ask_parsed(self.chat, messages, model, attempts=self.max_retries + 1)


def ask_parsed(
    chat: Callable[[list[dict[str, str]]], ChatReply],
    messages: list[dict[str, str]],
    model: type[A],
    *,
    attempts: int,
) -> tuple[A, int]:
    """The parse-retry loop, separate from the client so it reads as one rule."""
    tokens = 0
    convo = list(messages)
    last: LLMOutputError | None = None
    for _ in range(max(1, attempts)):
        try:
            reply = chat(convo)  # an empty answer raises LLMOutputError here: ask again too
            tokens += reply.tokens
            return parse_answer(reply.text, model), tokens
        except LLMOutputError as exc:
            last = exc
            convo = prompts.repair_messages(messages, exc.raw, _problem(exc))
    assert last is not None
    raise LLMOutputError(
        f"no usable answer after {max(1, attempts)} attempts; last problem: {_problem(last)}",
        last.raw,
    )


def _problem(exc: LLMOutputError) -> str:
    """The message of ``exc`` without the raw answer it appends."""
    text = str(exc)
    return text[: -len(f"; raw answer: {exc.raw[:500]!r}")] if exc.raw else text


def _reply(resp: Any, model: str) -> ChatReply:
    choices = getattr(resp, "choices", None)
    if not choices:
        raise LLMOutputError(f"{model} returned no choices")
    text = choices[0].message.content
    if not text or not text.strip():
        raise LLMOutputError(f"{model} returned an empty answer")
    usage = getattr(resp, "usage", None)
    prompt_t = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_t = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt_t + completion_t
    return ChatReply(
        text=text, tokens=total, prompt_tokens=prompt_t, completion_tokens=completion_t
    )


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc.message)
