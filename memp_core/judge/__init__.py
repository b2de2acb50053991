"""Judges: read a run whose outcome nobody recorded and say success, failure or unknown.

A judge sees a :class:`JudgeInput` and nothing else: the task sentence, the environment, the
opening description, a question's gold answer if the task has one, and the steps (thought,
action, observation). It is built from a stored
trajectory by :func:`memp_core.judge.judgements.judge_input`, which deliberately leaves out
everything that carries a verdict: ``Trajectory.success`` and ``reward``, the recorded outcome
and ending in ``facts``, the reflections written after a failure and the step flags.

``JUDGES`` maps a public name to its class, imported lazily (the registry pattern): the
offline ``heuristic`` judge never loads the ``openai`` client.

Every verdict comes with a confidence (0..1, the judge's own) and a rationale a person can
check. "unknown" is an abstention: the judge cannot tell, and the rationale says why.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from memp_core.config import Settings
from memp_core.llm import StepView
from memp_core.registry import resolve
from memp_core.vocab import Verdict

JUDGES: dict[str, str] = {
    "heuristic": "memp_core.judge.heuristic:HeuristicJudge",
    "openai": "memp_core.judge.llm:OpenAIJudge",
}


@dataclass(frozen=True)
class JudgeInput:
    """What a judge may read of a run: no recorded outcome, reward, ending or reflection."""

    task: str
    steps: list[StepView] = field(default_factory=list)
    environment: str = ""
    task_type: str = ""  # read from the task sentence at import (not from the outcome)
    initial_observation: str = ""  # the room description before the first action
    # The task's gold answer (question answering), part of the task like its sentence: it
    # says what is right, not whether the agent got it.
    reference_answer: str = ""
    trajectory_id: int | None = None


@dataclass(frozen=True)
class JudgeVerdict:
    """A judge's answer: the verdict, how sure it is (0..1) and why."""

    verdict: Verdict
    confidence: float
    rationale: str

    @property
    def abstained(self) -> bool:
        return self.verdict == Verdict.unknown


def abstain(reason: str) -> JudgeVerdict:
    """The judge cannot tell; ``reason`` says why (kept as the rationale)."""
    return JudgeVerdict(Verdict.unknown, 0.0, reason)


class Judge(ABC):
    """Judges runs. ``name`` is the backend recorded on judgements, ``model`` what judged."""

    name: str
    model: str

    @abstractmethod
    def judge(self, run: JudgeInput) -> JudgeVerdict:
        """The verdict on one run; never raises for a run it cannot read (it abstains)."""


def get_judge(name: str, settings: Settings) -> Judge:
    """The judge registered under ``name`` (``heuristic`` or ``openai``)."""
    cls = resolve(JUDGES, name, "judge backend")
    return cls(settings)
