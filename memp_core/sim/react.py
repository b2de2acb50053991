"""The ``llm`` household agent: ReAct through any OpenAI-compatible chat endpoint.

Each turn sends the system prompt (grammar plus the retrieved procedures, as the paper's
agents were prompted), the task and the steps so far, and reads one line back: an action
for the world, or ``think: ...`` (a thought, answered ``OK.`` without touching the world).
Thoughts do not count towards the world's step limit, but a run may take at most twice that
many turns, so a model that only thinks still ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memp_core import prompts
from memp_core.errors import LLMError
from memp_core.llm import StepView
from memp_core.sim.agents import Episode, ending_of
from memp_core.sim.ending import Ending
from memp_core.sim.grammar import clean_action, is_thought
from memp_core.sim.guide import Recall, read_guide
from memp_core.sim.world import World


class ChatReplyLike(Protocol):
    text: str
    tokens: int


class Chat(Protocol):
    """What the agent needs of a backend (``OpenAIBackend.chat``)."""

    model: str

    def chat(
        self, messages: list[dict[str, str]], *, stop: list[str] | None = None,
        max_tokens: int | None = None, temperature: float = 0.0,
    ) -> ChatReplyLike: ...  # fmt: skip


class ReactAgent:
    """ReAct with retrieved procedures in the prompt; ``model`` is the endpoint's model."""

    def __init__(self, backend: Chat, *, max_tokens: int = 120) -> None:
        self.backend = backend
        self.model = backend.model
        self.max_tokens = max_tokens

    def run(self, world: World, recalls: Sequence[Recall] = ()) -> Episode:
        intro = world.intro()
        room, _, _ = intro.partition("\nYour task is to:")
        procedures = [r.as_text() for r in recalls]
        history: list[StepView] = []
        tokens = 0
        why = f"no answer ended the task in {2 * world.max_steps} turns"
        error: Ending | None = None
        for _ in range(2 * world.max_steps):
            messages = prompts.react_messages(world.task.text, room, history, procedures)
            try:
                reply = self.backend.chat(messages, stop=["\n"], max_tokens=self.max_tokens)
            except LLMError as exc:  # kept as the run's ending; the loop stores it, then stops
                last = len(history) - 1 if history else None
                error = Ending("error", f"the model endpoint failed: {exc}", last)
                break
            tokens += reply.tokens
            line = _first_line(reply.text)
            if is_thought(line):
                thought = line.split(":", 1)[1].strip() if ":" in line else line
                history.append(StepView("", "OK.", thought))
                continue
            result = world.step(line)
            history.append(StepView(line, result.observation))
            if result.done:
                break
        guide = read_guide(world.task.text, recalls)
        ended = error or ending_of(world, history, why)
        return Episode(world.task.text, world.task.task_type, intro, history, world.success, tokens,
                       False, guide, ended)  # fmt: skip


def _first_line(text: str) -> str:
    """The model's action: first non-empty line, without 'Action:' or '>' decorations."""
    for raw in text.strip().splitlines():
        line = raw.strip()
        for prefix in ("action:", "act:", ">"):
            if line.lower().startswith(prefix):
                line = line[len(prefix) :].strip()
        if line:
            return clean_action(line) if not is_thought(line) else line.strip()
    return ""
