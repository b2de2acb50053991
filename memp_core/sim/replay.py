"""Replay: a revision against its parent on seeded simulator tasks, before approving it.

A sandbox: the heuristic agent runs in memory only; nothing is written to the database (no
run, no trajectory, no retrieval log, no use counts). Tasks are of the revision's task type;
tasks about the same object as the revision's own task come first (that is what retrieval
would serve it for), then others of the type. The comparison is the revision versus its
parent, or versus no memory when the revision has no parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memp_core.errors import ConfigError
from memp_core.facts import TASK_TYPES, extract_facts
from memp_core.models import Procedure, ProcedureRevision
from memp_core.sim.agents import HeuristicAgent
from memp_core.sim.guide import Recall
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.sim.world import DEFAULT_MAX_STEPS, World
from memp_core.store import Store

SANDBOX_NOTE = "sandbox replay: nothing was written to the database"


@dataclass(frozen=True)
class ReplayScore:
    label: str  # "revision 12", "parent revision 9" or "no memory"
    revision_id: int | None
    tasks: int
    successes: int
    success_rate: float
    mean_steps: float  # failures counted at the step limit


@dataclass(frozen=True)
class ReplayResult:
    procedure_id: int
    task_type: str
    seed: int
    revision: ReplayScore
    baseline: ReplayScore
    per_task: list[dict[str, Any]] = field(default_factory=list)
    note: str = SANDBOX_NOTE

    @property
    def delta_success(self) -> float:
        return self.revision.success_rate - self.baseline.success_rate

    @property
    def delta_steps(self) -> float:
        return self.revision.mean_steps - self.baseline.mean_steps

    def rows(self) -> list[dict[str, Any]]:
        """Side by side, for a table."""
        return [
            {"memory": s.label, "tasks": s.tasks, "successes": s.successes,
             "success_rate": round(s.success_rate, 3), "mean_steps": round(s.mean_steps, 2)}
            for s in (self.revision, self.baseline)
        ]  # fmt: skip


def recall_of(rev: ProcedureRevision, task_type: str) -> Recall:
    return Recall(rev.task_text, task_type, rev.script, tuple(rev.steps), rev.id)


def replay_tasks(task_type: str, obj: str, n_tasks: int, seed: int) -> list[tuple[int, str]]:
    """``n_tasks`` seeds of ``task_type``; same-object tasks first when any exist."""
    pool = task_seeds(max(40 * n_tasks, 200), seed, (task_type,))
    same = [p for p in pool if obj and make_scene(*p).task.obj == obj]
    rest = [p for p in pool if p not in same]
    return (same + rest)[:n_tasks]


def replay(
    store: Store,
    revision_id: int,
    *,
    parent: bool = True,
    n_tasks: int = 10,
    seed: int = 0,
    strength: str = "strong",
    max_steps: int = DEFAULT_MAX_STEPS,
) -> ReplayResult:
    """Run the heuristic agent with ``revision_id`` and with its parent (or no memory)."""
    if n_tasks < 1:
        raise ConfigError("replay needs at least one task")
    rev = store.get(ProcedureRevision, revision_id)
    proc = store.get(Procedure, rev.procedure_id)
    task_type = proc.task_type or extract_facts(rev.task_text).task_type
    if task_type not in TASK_TYPES:
        raise ConfigError(
            f"procedure {proc.id} is a {task_type or 'untyped'} procedure; the household "
            f"simulator replays only {', '.join(TASK_TYPES)}"
        )
    base_rev = None
    if parent and rev.parent_revision_id is not None:
        base_rev = store.get(ProcedureRevision, rev.parent_revision_id)
    tasks = replay_tasks(task_type, extract_facts(rev.task_text).object, n_tasks, seed)
    agent = HeuristicAgent(strength)
    mine = [recall_of(rev, task_type)]
    theirs = [recall_of(base_rev, task_type)] if base_rev is not None else []
    per_task: list[dict[str, Any]] = []
    for scene_seed, tt in tasks:
        a = agent.run(World(make_scene(scene_seed, tt), max_steps), mine)
        b = agent.run(World(make_scene(scene_seed, tt), max_steps), theirs)
        per_task.append({
            "task": a.task, "revision_success": a.success, "revision_steps": len(a.steps),
            "baseline_success": b.success, "baseline_steps": len(b.steps),
        })  # fmt: skip
    label = f"parent revision {base_rev.id}" if base_rev is not None else "no memory"
    return ReplayResult(
        int(proc.id or 0), task_type, seed,
        _score(f"revision {rev.id}", rev.id, per_task, "revision", max_steps),
        _score(label, base_rev.id if base_rev else None, per_task, "baseline", max_steps),
        per_task,
    )  # fmt: skip


def _score(
    label: str, rid: int | None, rows: list[dict[str, Any]], side: str, max_steps: int
) -> ReplayScore:
    ok = [r[f"{side}_success"] for r in rows]
    steps = [r[f"{side}_steps"] if r[f"{side}_success"] else max_steps for r in rows]
    n = len(rows)
    return ReplayScore(label, rid, n, sum(ok), sum(ok) / n, sum(steps) / n)
