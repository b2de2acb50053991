"""Trajectory debugging: one run's steps, where it went wrong, and what memory it was given.

The Trajectories page shows a run as a step timeline with the failing or looping step
highlighted, the retrievals logged for that run (so a failure can be traced to the procedure
the agent followed) and, next to it, a run of the same task type with the other outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from memp_core.models import Procedure, ProcedureRevision, Retrieval, Step, Trajectory
from memp_core.store import Store

# Observations with which ALFWorld (and our household world) says an action had no effect.
NO_EFFECT = ("nothing happens", "you can't", "i don't understand", "invalid action")
LOOP_WINDOW = 6  # how far back a repeated (action, observation) pair counts as a loop


@dataclass(frozen=True)
class StepProblem:
    """The first step where a run went wrong, and why."""

    index: int
    kind: str  # error | loop | no_effect
    reason: str


@dataclass(frozen=True)
class RetrievedItem:
    procedure_id: int | None
    revision_id: int | None
    title: str
    task_type: str
    score: float | None
    matched: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievalView:
    """One logged retrieval with its scored results, as typed rows."""

    retrieval_id: int
    query: str
    policy: str
    k: int
    items: list[RetrievedItem]


@dataclass(frozen=True)
class TrajectoryDetail:
    trajectory: Trajectory
    steps: list[Step]
    problem: StepProblem | None
    retrievals: list[RetrievalView]
    followed_revision: ProcedureRevision | None
    followed_procedure: Procedure | None


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def locate_problem(steps: list[Step]) -> StepProblem | None:
    """The first failing or looping step of a run, or None when nothing looks wrong.

    Flags stored with the steps win (the world or importer knew best); otherwise a step whose
    (action, observation) pair repeats one of the last few steps is a loop, and an observation
    saying the action had no effect is an error.
    """
    for s in steps:
        if s.is_error:
            return StepProblem(s.index, "error", f"step {s.index} is flagged as an error")
        if s.is_loop:
            return StepProblem(s.index, "loop", f"step {s.index} is flagged as a loop")
    seen: dict[tuple[str, str], int] = {}
    for s in steps:
        action = _norm(s.action)
        if not action or action.startswith("think"):
            continue
        obs = _norm(s.observation)
        key = (action, obs)
        earlier = seen.get(key)
        if earlier is not None and s.index - earlier <= LOOP_WINDOW:
            return StepProblem(
                s.index,
                "loop",
                f"step {s.index} repeats step {earlier} ({s.action!r}) with the same result",
            )
        seen[key] = s.index
        if any(obs.startswith(p) for p in NO_EFFECT):
            return StepProblem(s.index, "no_effect", f"step {s.index} had no effect: {obs!r}")
    return None


def _as_item(raw: dict[str, Any]) -> RetrievedItem:
    score = raw.get("score")
    return RetrievedItem(
        procedure_id=raw.get("procedure_id"),
        revision_id=raw.get("revision_id"),
        title=str(raw.get("title") or ""),
        task_type=str(raw.get("task_type") or ""),
        score=float(score) if isinstance(score, int | float) else None,
        matched=dict(raw.get("matched") or {}),
    )


def retrieval_view(r: Retrieval) -> RetrievalView:
    return RetrievalView(
        retrieval_id=r.id or 0,
        query=r.query,
        policy=r.policy,
        k=r.k,
        items=[_as_item(x) for x in r.results],
    )


def trajectory_detail(store: Store, trajectory_id: int) -> TrajectoryDetail:
    """Everything the debugger shows for one trajectory (raises NotFoundError)."""
    traj = store.get(Trajectory, trajectory_id)
    steps = store.steps_of(trajectory_id)
    revision: ProcedureRevision | None = None
    procedure: Procedure | None = None
    if traj.procedure_revision_id is not None:
        with store.session() as s:
            revision = s.get(ProcedureRevision, traj.procedure_revision_id)
            if revision is not None:
                procedure = s.get(Procedure, revision.procedure_id)
    return TrajectoryDetail(
        trajectory=traj,
        steps=steps,
        problem=locate_problem(steps),
        retrievals=[retrieval_view(r) for r in store.retrievals_for(trajectory_id)],
        followed_revision=revision,
        followed_procedure=procedure,
    )


def counterpart(store: Store, traj: Trajectory) -> Trajectory | None:
    """A run of the same task type with the other outcome: same run first, then the latest.

    Two indexed look-ups rather than one ORDER BY over every match (100k rows stay fast).
    """
    if not traj.task_type:
        return None
    base = select(Trajectory).where(
        Trajectory.task_type == traj.task_type,
        col(Trajectory.success).is_(not traj.success),
        Trajectory.id != traj.id,
    )
    with store.session() as s:
        if traj.run_id is not None:
            same_run = s.exec(
                base.where(Trajectory.run_id == traj.run_id)
                .order_by(col(Trajectory.id).desc())
                .limit(1)
            ).first()
            if same_run is not None:
                return same_run
        return s.exec(base.order_by(col(Trajectory.id).desc()).limit(1)).first()


def failed_and_succeeded(
    store: Store, traj: Trajectory
) -> tuple[Trajectory | None, Trajectory | None]:
    """(failed run, successful run) of ``traj``'s task type, ``traj`` being one of them."""
    other = counterpart(store, traj)
    return (other, traj) if traj.success else (traj, other)


def step_rows(steps: list[Step], problem: StepProblem | None) -> list[dict[str, Any]]:
    """Steps as table rows for st.dataframe; the problem step carries a flag."""
    rows = []
    for s in steps:
        flag = ""
        if problem is not None and s.index == problem.index:
            flag = f"⚠ {problem.kind}"
        elif s.is_error:
            flag = "error"
        elif s.is_loop:
            flag = "loop"
        rows.append(
            {
                "step": s.index,
                "flag": flag,
                "thought": s.thought or "",
                "action": s.action or "",
                "observation": s.observation or "",
            }
        )
    return rows
