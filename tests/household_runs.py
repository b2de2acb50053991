"""Trajectories for tests that need runs but not any third-party log: the household
simulator's own ALFWorld transcripts, made on the spot from a fixed seed.

The set mirrors the shape of ReAct's 24 published ALFWorld prompts (which only the tests of
those real logs read, from ../shared/data): two tasks of each of the six task types, each run
twice, ``react_<type>_<i>`` with a thought first and ``act_<type>_<i>`` with the same actions
and no thought. Both runs of one task share a procedure group; no two tasks do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from memp_core.build import group_identity
from memp_core.facts import TASK_TYPES
from memp_core.models import Step, Trajectory
from memp_core.sim.logs import SimEpisode, simulate
from memp_core.store import Store

SEED = 11
THOUGHT = "To solve the task, I need to find the object first, then finish the task with it."
AGENT = "household-sim/heuristic-strong"


@dataclass(frozen=True)
class Run:
    """One transcript of the set: its key, task sentence, task type and steps."""

    key: str
    task: str
    task_type: str
    lines: tuple[tuple[str | None, str | None, str], ...]  # (thought, action, observation)

    @property
    def steps(self) -> list[Step]:
        """Fresh (unsaved) steps: a store adopts the objects it is handed."""
        return [
            Step(index=i, thought=t, action=a, observation=o)
            for i, (t, a, o) in enumerate(self.lines)
        ]


@cache
def runs() -> tuple[Run, ...]:
    """The 24 runs, in a fixed order (react before act, task types as in ALFWorld)."""
    chosen: dict[str, list[SimEpisode]] = {t: [] for t in TASK_TYPES}
    groups: set[tuple[str, str]] = set()
    for sim in simulate(200, seed=SEED):
        ep = sim.episode
        group = group_identity(ep.task, ep.task_type)
        if ep.success and len(chosen[ep.task_type]) < 2 and group not in groups:
            chosen[ep.task_type].append(sim)
            groups.add(group)
    out: list[Run] = []
    for task_type in TASK_TYPES:
        assert len(chosen[task_type]) == 2, f"seed {SEED} gave too few {task_type} successes"
        for i, sim in enumerate(chosen[task_type]):
            acts = tuple((None, s.action, s.observation) for s in sim.episode.steps if s.action)
            react = ((THOUGHT, None, "OK."), *acts)
            task = sim.episode.task
            out.append(Run(f"react_{task_type}_{i}", task, task_type, react))
            out.append(Run(f"act_{task_type}_{i}", task, task_type, acts))
    return tuple(out)


def run(key: str) -> Run:
    return next(r for r in runs() if r.key == key)


def add_run(
    store: Store,
    task: str,
    steps: list[Step],
    *,
    task_type: str = "",
    success: bool = True,
    agent_model: str = AGENT,
    followed: int | None = None,
) -> int:
    """Store one successful (or failed) run; its trajectory id."""
    with store.transaction() as s:
        traj = Trajectory(
            task=task, task_type=task_type, environment="alfworld", source="test",
            agent_model=agent_model, success=success, procedure_revision_id=followed,
        )  # fmt: skip
        store.add_trajectory(s, traj, steps)
        return int(traj.id or 0)


def load_runs(store: Store) -> dict[str, int]:
    """The 24 runs as successful trajectories; key -> trajectory id."""
    return {r.key: add_run(store, r.task, r.steps, task_type=r.task_type) for r in runs()}
