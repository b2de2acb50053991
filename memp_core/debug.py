"""Trajectory debugging: one run's steps, where it went wrong, and what memory it was given.

The Trajectories page shows a run as a step timeline with the failing or looping step
highlighted, the retrievals logged for that run (so a failure can be traced to the procedure
the agent followed) and, next to it, a run of the same task type with the other outcome.

A run may have tens of thousands of steps (an imported transcript): the steps are read a page
at a time (:func:`steps_page`), and the first problem is found by SQL for stored flags and by
a scan that reads steps in chunks and stops at the first problem (:func:`first_problem`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, or_
from sqlmodel import col, select

from memp_core.models import Procedure, ProcedureRevision, Retrieval, Step, Trajectory
from memp_core.store import Store

# Observations with which ALFWorld (and our household world) says an action had no effect.
NO_EFFECT = ("nothing happens", "you can't", "i don't understand", "invalid action")
LOOP_WINDOW = 6  # how far back a repeated (action, observation) pair counts as a loop
STEP_PAGE = 200  # steps shown at once (a table of 70,000 steps breaks Streamlit's cell limit)
SCAN_CHUNK = 2000  # steps read at once while looking for the first problem


class StepLike(Protocol):
    """What the problem finder reads of a step (a Step or a :class:`StepText`)."""

    @property
    def index(self) -> int: ...
    @property
    def action(self) -> str | None: ...
    @property
    def observation(self) -> str | None: ...


@dataclass(frozen=True)
class StepText:
    """The columns of a step the problem finder reads (a SQL row's ``.index`` is a method)."""

    index: int
    action: str | None
    observation: str | None


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
    """One run for the debugger; its steps are read a page at a time (:func:`steps_page`)."""

    trajectory: Trajectory
    step_total: int
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
    flagged = next((s for s in steps if s.is_error or s.is_loop), None)
    return _flag_problem(flagged) if flagged is not None else _scan(steps)


def _flag_problem(s: Step) -> StepProblem:
    if s.is_error:
        return StepProblem(s.index, "error", f"step {s.index} is flagged as an error")
    return StepProblem(s.index, "loop", f"step {s.index} is flagged as a loop")


def _scan(steps: Iterable[StepLike]) -> StepProblem | None:
    """The first looping or ineffective step, by what the steps say (stops at the first)."""
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


def _chunks(store: Store, trajectory_id: int) -> Iterator[StepLike]:
    """A run's (index, action, observation) in order, SCAN_CHUNK rows per query."""
    last = -(2**63)
    while True:
        with store.session() as s:
            rows = s.exec(
                select(Step.index, Step.action, Step.observation)
                .where(Step.trajectory_id == trajectory_id, Step.index > last)
                .order_by(col(Step.index))
                .limit(SCAN_CHUNK)
            ).all()
        for index, action, observation in rows:
            yield StepText(index, action, observation)
        if len(rows) < SCAN_CHUNK:
            return
        last = rows[-1][0]


def first_problem(store: Store, trajectory_id: int) -> StepProblem | None:
    """:func:`locate_problem` for a stored run, without loading a long run whole."""
    with store.session() as s:
        flagged = s.exec(
            select(Step)
            .where(Step.trajectory_id == trajectory_id, or_(col(Step.is_error), col(Step.is_loop)))
            .order_by(col(Step.index))
            .limit(1)
        ).first()
    return _flag_problem(flagged) if flagged is not None else _scan(_chunks(store, trajectory_id))


def step_total(store: Store, trajectory_id: int) -> int:
    with store.session() as s:
        return int(s.exec(select(func.count()).where(Step.trajectory_id == trajectory_id)).one())


def step_position(store: Store, trajectory_id: int, index: int) -> int:
    """How many of the run's steps come before step ``index`` (to open the page holding it)."""
    with store.session() as s:
        return int(
            s.exec(
                select(func.count()).where(Step.trajectory_id == trajectory_id, Step.index < index)
            ).one()
        )


def steps_page(
    store: Store, trajectory_id: int, *, offset: int = 0, limit: int = STEP_PAGE
) -> list[Step]:
    """One page of a run's steps, in order."""
    with store.session() as s:
        return list(
            s.exec(
                select(Step)
                .where(Step.trajectory_id == trajectory_id)
                .order_by(col(Step.index))
                .offset(offset)
                .limit(limit)
            ).all()
        )


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
    revision: ProcedureRevision | None = None
    procedure: Procedure | None = None
    if traj.procedure_revision_id is not None:
        with store.session() as s:
            revision = s.get(ProcedureRevision, traj.procedure_revision_id)
            if revision is not None:
                procedure = s.get(Procedure, revision.procedure_id)
    return TrajectoryDetail(
        trajectory=traj,
        step_total=step_total(store, trajectory_id),
        problem=first_problem(store, trajectory_id),
        retrievals=[retrieval_view(r) for r in store.retrievals_for(trajectory_id)],
        followed_revision=revision,
        followed_procedure=procedure,
    )


def counterpart(store: Store, traj: Trajectory) -> Trajectory | None:
    """A run of the same task type with the other outcome: same run first, then the latest.

    Two indexed look-ups rather than one ORDER BY over every match (100k rows stay fast).
    A run whose outcome is unknown has no "other outcome": None.
    """
    if not traj.task_type or traj.success is None:
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
    """(failed run, successful run) of ``traj``'s task type, ``traj`` being one of them;
    (None, None) when ``traj``'s outcome is unknown (it is neither)."""
    if traj.success is None:
        return None, None
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
