"""The ``openai`` judge: any OpenAI-compatible chat model reads the run and gives a verdict.

The prompt (:func:`memp_core.prompts.judge_messages`) shows the task and a trimmed transcript
and asks for tagged sections ``<verdict>``, ``<confidence>``, ``<rationale>``. Answers go
through the same machinery as builds and reflections (:func:`memp_core.llm_answers.ask_parsed`):
the stop sequence at the last closing tag, one repair request for an answer that is cut or not
in the asked form. An answer still unusable after the repair is no crash: the judge abstains
with the reason. A server that cannot be reached raises :class:`LLMError` (every further run
would fail the same way). Answers are bounded by ``MEMP_LLM_MAX_TOKENS_BUILD``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, field_validator

from memp_core import prompts
from memp_core.config import Settings, env_name
from memp_core.errors import LLMOutputError
from memp_core.judge import Judge, JudgeInput, JudgeVerdict, abstain
from memp_core.llm_answers import CallKind, ChatReply, ask_parsed
from memp_core.llm_openai import OpenAIBackend
from memp_core.prompts import Message
from memp_core.vocab import Verdict


class JudgeAnswer(BaseModel):
    """A judgement as the model writes it, checked."""

    verdict: Verdict
    confidence: float
    rationale: str

    @field_validator("verdict", mode="before")
    @classmethod
    def _word(cls, value: object) -> object:
        return value.strip().strip(".").lower() if isinstance(value, str) else value

    @field_validator("confidence", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        """``0.8``, ``"0.8"`` or ``"80%"``; anything outside 0..1 is refused."""
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", value)
            if m is None:
                raise ValueError(f"confidence is not a number: {value[:40]!r}")
            value = float(m.group(1)) / (100 if m.group(2) else 1)
        if isinstance(value, int | float) and not 0 <= float(value) <= 1:
            raise ValueError(f"confidence {value} is outside 0..1")
        return value

    @field_validator("rationale")
    @classmethod
    def _said_why(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the rationale is empty")
        return value.strip()


class OpenAIJudge(Judge):
    """Judges with a chat model; recorded as backend ``openai`` and the model's name."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._llm = OpenAIBackend(settings)  # a ConfigError when no endpoint is set
        self.model = settings.llm_model
        self.kind = CallKind(
            "judgement", settings.llm_max_tokens_build, prompts.JUDGE_END,
            env_name("llm_max_tokens_build"),
        )  # fmt: skip

    def judge(self, run: JudgeInput) -> JudgeVerdict:
        messages = prompts.judge_messages(
            run.task, run.steps, environment=run.environment, opening=run.initial_observation,
            reference=run.reference_answer,
        )  # fmt: skip
        who = f"model {self.model!r} at {self._llm.base_url}"
        subject = f"trajectory {run.trajectory_id}" if run.trajectory_id else repr(run.task[:60])
        try:
            answer, _tokens, _requests = ask_parsed(
                self._complete, messages, JudgeAnswer, self.kind, who, subject
            )
        except LLMOutputError as exc:
            # Malformed twice (or an empty answer): no verdict, and the reason kept.
            return abstain(f"the model's answer could not be used: {_first_line(exc)}")
        return JudgeVerdict(answer.verdict, float(answer.confidence), answer.rationale)

    def _complete(self, convo: list[Message]) -> ChatReply:
        return self._llm.chat(convo, stop=[self.kind.stop], max_tokens=self.kind.max_tokens)


def _first_line(exc: LLMOutputError) -> str:
    """The problem without the raw answer appended to it (kept short for the rationale)."""
    text = str(exc)
    if exc.raw:
        text = text.split("; raw answer:", 1)[0]
    return text.splitlines()[0][:400] if text else "no answer"
