"""Cold start: choose the runs that seed an empty memory.

With no memory, a strong agent explores (the online loop's ``none`` policy), every run is
scored by the evaluation metric, and the best runs per task type seed memory. The metric is
the one used throughout the engine (``build.best_first``): success first, then fewer steps.
Failed runs never seed memory, however few the successes, and neither do runs whose
outcome is unknown (nobody recorded a verdict): they are not scored at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from memp_core.facts import extract_facts
from memp_core.models import Trajectory
from memp_core.store import Store


@dataclass(frozen=True)
class Scored:
    trajectory_id: int
    task_type: str
    success: bool
    steps: int

    @property
    def rank_key(self) -> tuple[bool, int, int]:
        return (not self.success, self.steps, -self.trajectory_id)


def score_runs(store: Store, *, agent_model: str | None = None) -> list[Scored]:
    """Every stored run with a recorded outcome, with its score, best first."""
    stmt = select(Trajectory.id, Trajectory.task, Trajectory.task_type, Trajectory.success,
                  Trajectory.step_count).where(col(Trajectory.success).is_not(None))  # fmt: skip
    if agent_model:
        stmt = stmt.where(col(Trajectory.agent_model) == agent_model)
    with store.session() as s:
        rows = s.exec(stmt).all()
    scored = [
        Scored(int(i or 0), tt or extract_facts(task).task_type, bool(ok), int(n or 0))
        for i, task, tt, ok, n in rows
    ]
    return sorted(scored, key=lambda r: r.rank_key)


def seed_ids(store: Store, *, top: int, agent_model: str | None = None) -> list[int]:
    """The ids of the ``top`` best successful runs of each task type."""
    chosen: dict[str, list[int]] = {}
    for run in score_runs(store, agent_model=agent_model):
        if not run.success:
            break  # sorted: everything after the first failure failed too
        picked = chosen.setdefault(run.task_type, [])
        if len(picked) < top:
            picked.append(run.trajectory_id)
    return [i for ids in chosen.values() for i in ids]
