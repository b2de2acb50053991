"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint.

Every model call ends, and says why when it fails:

- Each request is bounded: ``max_tokens`` per call kind (``MEMP_LLM_MAX_TOKENS_BUILD``,
  ``MEMP_LLM_MAX_TOKENS_REFLECT``) and a stop sequence at the answer form's last closing tag.
  Answers are streamed, so the client also stops reading at ``max_tokens`` pieces when a
  server ignores the limit, and at ``MEMP_LLM_TIMEOUT`` seconds of wall clock (a server that
  goes silent is cut by the same read timeout). Hanging up stops llama.cpp and vLLM
  generating.
- A request that fails before any token arrives (a timeout while the server is busy or loads
  its model, a refused connection, HTTP 408/409/429/5xx) is sent again, at most
  ``MEMP_LLM_MAX_RETRIES`` times, after ``Retry-After`` or a short backoff. A request whose
  answer was streaming when its time ran out is not sent again: the same request would run
  out of time again. So one request lasts about ``timeout x (1 + retries)`` at most.
- An answer cut at ``max_tokens`` or not in the asked form gets exactly one repair request
  (the problem stated; a cut answer is asked to be shorter). If that fails too the caller
  gets a one-line :class:`LLMOutputError` naming the model, the runs and what to raise.
  The answer forms, their parsing and that repair are in :mod:`memp_core.llm_answers`;
  this module sends the requests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

import openai
from pydantic import BaseModel

from memp_core import prompts
from memp_core.config import Settings, env_name
from memp_core.errors import ConfigError, LLMError, LLMOutputError
from memp_core.llm import Backend, CallReport, Reflection, RunView, ScriptDraft
from memp_core.llm_answers import (
    REQUESTS_PER_CALL,
    CallKind,
    ChatReply,
    ReflectAnswer,
    ScriptAnswer,
    ask_parsed,
)
from memp_core.prompts import Message

A = TypeVar("A", bound=BaseModel)  # the answer model a call parses into

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx, as the openai client does
MAX_WAIT_S = 10.0  # longest pause before resending, whatever Retry-After says
CHARS_PER_TOKEN_CAP = 16  # a streamed answer longer than this per max token is cut too


class _Transient(LLMError):
    """A request that failed before any token arrived; sending it again may work."""

    def __init__(self, message: str, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


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
        self.script_kind = CallKind(
            "script", settings.llm_max_tokens_build, prompts.SCRIPT_END,
            env_name("llm_max_tokens_build"),
        )  # fmt: skip
        self.reflect_kind = CallKind(
            "reflection", settings.llm_max_tokens_reflect, prompts.REFLECT_END,
            env_name("llm_max_tokens_reflect"),
        )  # fmt: skip
        self._client = openai.OpenAI(
            base_url=settings.openai_base_url,
            # Local servers (vLLM, Ollama, llama.cpp) accept any key but the client needs one.
            api_key=settings.openai_api_key or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=0,  # resending is decided here: never a request that ran out of time
        )

    @property
    def request_bound_s(self) -> float:
        """About the longest one request can take, resends included."""
        return self.timeout_s * (self.max_retries + 1)

    @property
    def call_bound_s(self) -> float:
        """About the longest one ``write_script`` or ``reflect`` can take (with its repair)."""
        return REQUESTS_PER_CALL * self.request_bound_s

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        stop: list[str] | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatReply:
        """One completion (the household LLM agent's ReAct step); raises LLMError.

        Without ``max_tokens`` the build limit applies: no request is unbounded.
        """
        limit = max_tokens or self.script_kind.max_tokens
        reply = self._complete(messages, stop or [], limit, temperature)
        if not reply.text.strip():
            raise LLMOutputError(f"{self.model} returned an empty answer")
        return reply

    def write_script(self, task_type: str, runs: list[RunView]) -> ScriptDraft:
        subject = f"task type {task_type!r}{_trajectories(runs)}"
        messages = prompts.script_messages(task_type, runs)
        answer, tokens = self._ask(messages, ScriptAnswer, self.script_kind, subject)
        return ScriptDraft(script=answer.script, rationale=answer.rationale, tokens=tokens)

    def absorb(self, script: str, runs: list[RunView]) -> ScriptDraft:
        """Successful runs merged into a script a reflection shaped (see memp_core.build):
        the model keeps the correction and adds what the runs showed."""
        runs_said = _count(len(runs), "successful run") + _trajectories(runs)
        subject = f"{runs_said} for a reflected script"
        messages = prompts.absorb_messages(script, runs)
        answer, tokens = self._ask(messages, ScriptAnswer, self.script_kind, subject)
        return ScriptDraft(script=answer.script, rationale=answer.rationale, tokens=tokens)

    def reflect(self, failed: RunView, script: str) -> Reflection:
        subject = f"the failed run{_trajectories([failed])} {failed.task[:60]!r}"
        messages = prompts.reflect_messages(failed, script)
        answer, tokens = self._ask(messages, ReflectAnswer, self.reflect_kind, subject)
        step = answer.failing_step
        if step is not None and not 0 <= step < max(len(failed.steps), 1):
            step = None  # an index outside the run is no index at all
        return Reflection(
            script=answer.script, analysis=answer.analysis, failing_step=step, tokens=tokens
        )

    def _ask(
        self, messages: list[Message], answer: type[A], kind: CallKind, subject: str
    ) -> tuple[A, int]:
        started = time.monotonic()

        def complete(convo: list[Message]) -> ChatReply:
            return self._complete(convo, [kind.stop], kind.max_tokens, 0.0)

        who = f"model {self.model!r} at {self.base_url}"
        parsed, tokens, requests = ask_parsed(complete, messages, answer, kind, who, subject)
        if self.on_call is not None:
            seconds = time.monotonic() - started
            self.on_call(CallReport(kind.name, subject, tokens, seconds, requests))
        return parsed, tokens

    def _complete(
        self, messages: list[Message], stop: list[str], max_tokens: int, temperature: float
    ) -> ChatReply:
        """One request, sent again only while it failed before any token arrived."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._request(messages, stop, max_tokens, temperature)
            except _Transient as exc:
                if attempt == attempts:
                    raise LLMError(f"{exc} ({_count(attempts, 'attempt')})") from exc
                time.sleep(exc.wait_s if exc.wait_s is not None else _backoff(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request(
        self, messages: list[Message], stop: list[str], max_tokens: int, temperature: float
    ) -> ChatReply:
        extra: dict[str, Any] = {"stop": stop} if stop else {}
        started = time.monotonic()
        try:
            stream = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature,  # type: ignore[arg-type]
                max_tokens=max_tokens, stream=True, stream_options={"include_usage": True},
                **extra,
            )  # fmt: skip
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        with stream:
            return self._read(stream, started, max_tokens)

    def _read(self, stream: Any, started: float, max_tokens: int) -> ChatReply:
        """Collect a streamed answer, cutting it at ``max_tokens`` pieces or the deadline."""
        deadline = started + self.timeout_s
        parts: list[str] = []
        chunks, chars, finish, usage = 0, 0, "", None
        try:
            for chunk in stream:
                chunks += 1
                usage = chunk.usage or usage
                choice = chunk.choices[0] if chunk.choices else None
                piece = (choice.delta.content if choice is not None and choice.delta else "") or ""
                if piece:
                    if len(parts) >= max_tokens or chars > max_tokens * CHARS_PER_TOKEN_CAP:
                        finish = "length"  # the server ignores max_tokens: hang up on it
                        break
                    parts.append(piece)
                    chars += len(piece)
                if choice is not None and choice.finish_reason:
                    finish = choice.finish_reason
                if time.monotonic() > deadline:
                    if finish:
                        break  # only the usage chunk was missing
                    raise self._out_of_time(len(parts), started, max_tokens)
        except openai.APIError as exc:
            if parts and isinstance(exc, openai.APITimeoutError):
                raise self._out_of_time(len(parts), started, max_tokens) from exc
            raise self._failure(exc) from exc
        except ValueError as exc:  # an event whose data is not JSON
            raise LLMOutputError(f"{self.base_url} sent an unreadable response: {exc}") from exc
        if chunks == 0:
            raise LLMOutputError(
                f"{self.base_url} sent an unreadable response: no completion chunks (is it "
                "an OpenAI-compatible chat-completions endpoint?)"
            )
        seconds = time.monotonic() - started
        return _reply("".join(parts), len(parts), finish or "length", usage, seconds)

    def _failure(self, exc: openai.APIError) -> LLMError:
        """What a failed request means: a transient failure to resend, or a final one."""
        if isinstance(exc, openai.APITimeoutError):
            return _Transient(
                f"{self.model} at {self.base_url} did not answer within {self.timeout_s:g}s "
                f"(at most {self.request_bound_s:g}s for this request with "
                f"{self.max_retries} resends; raise MEMP_LLM_TIMEOUT for a slow server)"
            )
        if isinstance(exc, openai.APIConnectionError):
            return _Transient(f"cannot reach {self.base_url}: {exc}")
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            if code == 429:
                message = f"{self.base_url} kept rate-limiting (HTTP 429): {_api_message(exc)}"
            else:
                message = (
                    f"{self.base_url} answered HTTP {code} for model {self.model}: "
                    f"{_api_message(exc)}"
                )
            if code in RETRY_STATUSES or code >= 500:
                return _Transient(message, _retry_after(exc))
            return LLMError(message)
        # A 200 whose body is not a completion, or an error event inside the stream.
        return LLMOutputError(f"{self.base_url} sent an unreadable response: {exc}")

    def _out_of_time(self, pieces: int, started: float, max_tokens: int) -> LLMError:
        """A streaming answer that ran past the timeout: final, sending it again won't help."""
        took = max(time.monotonic() - started, 1e-3)
        return LLMError(
            f"{self.model} at {self.base_url} did not finish its answer within "
            f"{self.timeout_s:g}s: {pieces} of at most {max_tokens} tokens had arrived "
            f"({pieces / took:.1f}/s); not sent again (it would run out of time again): "
            "raise MEMP_LLM_TIMEOUT or lower the max tokens setting"
        )


def _trajectories(runs: Sequence[RunView]) -> str:
    ids = [str(r.trajectory_id) for r in runs if r.trajectory_id is not None]
    if not ids:
        return ""
    return f" (trajectory {ids[0]})" if len(ids) == 1 else f" (trajectories {', '.join(ids)})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** (attempt - 1), MAX_WAIT_S)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` or ``retry-after``), capped."""
    headers = exc.response.headers
    for name, per_second in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return min(max(float(headers[name]) / per_second, 0.0), MAX_WAIT_S)
        except (KeyError, ValueError):
            continue
    return None


def _reply(text: str, pieces: int, finish: str, usage: Any, seconds: float) -> ChatReply:
    prompt_t = int(getattr(usage, "prompt_tokens", 0) or 0)
    # A server that sends no usage: count the streamed pieces (about one token each).
    completion_t = int(getattr(usage, "completion_tokens", 0) or 0) if usage else pieces
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt_t + completion_t
    return ChatReply(text, total, prompt_t, completion_t, finish, seconds)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc.message)
