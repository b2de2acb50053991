"""LLM backends behind one seam: what builds scripts and reflects on failures.

``BACKENDS`` maps a public name to its class, imported lazily (the registry pattern), so the
offline ``heuristic`` backend never loads the ``openai`` client.

Contract shared by every backend (the engine and the household agents rely on it):
- ``write_script`` distils one numbered, general script from successful runs of one task type.
  Objects and places of the task are replaced by roles ``<object>``, ``<receptacle>``; fixed
  appliances (microwave, fridge, sinkbasin, desklamp) stay concrete. One action per line,
  numbered ``1.``, ``2.``, ... Lines may carry a hint after a colon
  (``1. Find the <object>: check countertop, cabinet, fridge``).
- ``reflect`` reads a failed run next to the revision it followed and returns a revised script
  (same format) plus the analysis, which becomes the child revision's rationale.
- A backend that calls a model ends every call in bounded time or raises ``LLMError``; after
  each call it reports a :class:`CallReport` to ``on_call`` if one is set (progress output).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from memp_core.config import Settings
from memp_core.registry import resolve

BACKENDS: dict[str, str] = {
    "heuristic": "memp_core.heuristic:HeuristicBackend",
    "openai": "memp_core.llm_openai:OpenAIBackend",
}


@dataclass(frozen=True)
class StepView:
    """One step of a run as backends see it."""

    action: str
    observation: str = ""
    thought: str = ""


@dataclass(frozen=True)
class RunView:
    """A trajectory as backends see it (no database row needed)."""

    task: str
    task_type: str
    success: bool
    steps: list[StepView] = field(default_factory=list)
    trajectory_id: int | None = None
    # Why the run ended, as the run recorded it ("gave up: searched 11 places for the mug";
    # "step limit: all 50 steps used"); "" when nothing was recorded (read from the steps).
    ended: str = ""


@dataclass(frozen=True)
class ScriptDraft:
    script: str
    rationale: str = ""
    tokens: int = 0


@dataclass(frozen=True)
class Reflection:
    script: str
    analysis: str
    failing_step: int | None = None  # index into the failed run's steps
    tokens: int = 0


@dataclass(frozen=True)
class CallReport:
    """One finished model call: what it was for, what it cost, how many requests it took."""

    kind: str  # "script" or "reflection"
    subject: str  # "task type 'heat' (trajectories 3, 5)"
    tokens: int
    seconds: float
    requests: int  # 1, or 2 with a repair request


class Backend(ABC):
    """Builds scripts and reflects. ``author`` is what revisions record as their author."""

    name: str
    model: str
    on_call: Callable[[CallReport], None] | None = None  # set by a caller that shows progress

    @property
    def author(self) -> str:
        return "heuristic" if self.name == "heuristic" else f"llm:{self.model}"

    @abstractmethod
    def write_script(self, task_type: str, runs: list[RunView]) -> ScriptDraft:
        """One general script from one or more successful runs of ``task_type``."""

    @abstractmethod
    def reflect(self, failed: RunView, script: str) -> Reflection:
        """A revised script for ``script`` after the failed run ``failed``."""


def get_backend(name: str, settings: Settings) -> Backend:
    """The backend registered under ``name`` (``heuristic`` or ``openai``)."""
    cls = resolve(BACKENDS, name, "LLM backend")
    return cls(settings)
