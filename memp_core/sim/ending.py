"""Why a run ended, and which step was its last meaningful one.

A failed run that has no failing or looping step still ended for a reason: the agent gave
up (searched every place its patience allowed and never saw the object), the world's step
limit stopped it, or the agent's backend failed. Simulator runs record their :class:`Ending`
in ``Trajectory.facts["ended"]``; for a run without that record (an import), the same is
read from its steps (:func:`ending_from_steps`), labelled as read rather than recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from memp_core.llm import RunView
from memp_core.sim.transcript import RunFacts, analyse

Reason = Literal["goal", "gave_up", "step_limit", "error", "unknown"]
REASONS: tuple[str, ...] = ("goal", "gave_up", "step_limit", "error", "unknown")
LABELS = {
    "goal": "goal reached",
    "gave_up": "the agent gave up",
    "step_limit": "hit the step limit",
    "error": "stopped by an error",
    "unknown": "end not recorded",
}


@dataclass(frozen=True)
class Ending:
    """How a run ended: ``reason`` (one of :data:`REASONS`), a sentence saying what happened
    (``detail``), the index of its final step (``step``) and of the last step that moved the
    task forward (``progress``: took the object, used an appliance, put it down; None if
    no step did)."""

    reason: Reason
    detail: str
    step: int | None = None
    progress: int | None = None

    @property
    def label(self) -> str:
        return LABELS[self.reason]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> Ending | None:
        """The ending a run recorded in its facts, or None (also for a malformed record)."""
        raw = facts.get("ended")
        if not isinstance(raw, Mapping) or raw.get("reason") not in REASONS:
            return None
        return cls(
            reason=raw["reason"],
            detail=str(raw.get("detail") or ""),
            step=_int_or_none(raw.get("step")),
            progress=_int_or_none(raw.get("progress")),
        )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def search_detail(rf: RunFacts) -> str:
    """What a run that stopped without reaching its goal did last, read from its steps."""
    obj = rf.obj or "object"
    took = any(ev.action and ev.action.verb == "take" and ev.ok for ev in rf.events)
    if not rf.found and not took:
        places = _places_visited(rf)
        return f"searched {places} place{'s' * (places != 1)} for the {obj} without finding it"
    verb = rf.task_type
    if verb == "puttwo" and len(rf.found) < 2:
        return f"took one {obj} but never found a second one"
    if verb in ("heat", "cool", "clean") and verb not in rf.tools_ok:
        tried = sum(len(v) for v in rf.tools_bad.values())
        return f"found the {obj} but no appliance it tried ({tried}) would {verb} it"
    if verb == "examine":
        return f"took the {obj} but never lit a {rf.lamp or 'lamp'} with it in hand"
    target = rf.target or "target"
    return f"took the {obj} but did not put it in/on the {target}"


def _places_visited(rf: RunFacts) -> int:
    return len({ev.action.place_id for ev in rf.events if ev.action and ev.action.verb == "go"})


def ending_from_steps(run: RunView, *, step_limit: int | None = None) -> Ending:
    """The ending read from a run's steps (no record of it): goal; with the run's
    ``step_limit`` known, the limit when it used every step, else the agent gave up; with
    the limit unknown (an import), only what it did last (reason ``unknown``)."""
    rf = analyse(run)
    last = len(run.steps) - 1 if run.steps else None
    if run.success:
        return Ending("goal", f"in {len(run.steps)} steps", last, rf.last_progress)
    detail = search_detail(rf)
    if step_limit is not None and len(run.steps) >= step_limit:
        return Ending("step_limit", f"all {step_limit} steps used; it {detail}", last,
                      rf.last_progress)  # fmt: skip
    reason: Reason = "unknown" if step_limit is None else "gave_up"
    return Ending(reason, f"{detail} (after {len(run.steps)} steps)", last,
                  rf.last_progress)  # fmt: skip
