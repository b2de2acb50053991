"""Trajectory debugging: one run's steps, where it went wrong, and what memory it was given.

The Trajectories page shows a run as a step timeline with the failing or looping step
highlighted and why the run ended (goal, gave up, step limit, error: :class:`Ending`, with its
last meaningful step), the retrievals logged for that run with each revision's script (so a
failure can be traced to the procedure the agent followed) and, next to it, a run the person
picks among those with the other outcome (:func:`comparison_candidates`: same task type,
same object and receptacle first).

A run may have tens of thousands of steps (an imported transcript): the steps are read a page
at a time (:func:`steps_page`), and the first problem is found by SQL for stored flags and by
a scan that reads steps in chunks and stops at the first problem (:func:`first_problem`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import func, or_
from sqlmodel import col, select

from memp_core.llm import RunView, StepView
from memp_core.models import Procedure, ProcedureRevision, Retrieval, Run, Step, Trajectory
from memp_core.sim.ending import Ending, ending_from_steps
from memp_core.store import Store

# Observations with which ALFWorld (and our household world) says an action had no effect.
NO_EFFECT = ("nothing happens", "you can't", "i don't understand", "invalid action")
LOOP_WINDOW = 6  # how far back a repeated (action, observation) pair counts as a loop
STEP_PAGE = 200  # steps shown at once (a table of 70,000 steps breaks Streamlit's cell limit)
SCAN_CHUNK = 2000  # steps read at once while looking for the first problem
CANDIDATES = 30  # comparison runs offered at once


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
    script: str = ""  # the revision's script, or its recorded actions when it has none


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
    ending: Ending | None = None
    ending_recorded: bool = False  # False: read from the steps (the run did not record it)
    reflected: bool = True  # the followed revision is the one a failure is reflected into
    used_revisions: list[int] = field(default_factory=list)  # all that contributed


@dataclass(frozen=True)
class Candidate:
    """A run to compare with: the other outcome, and how closely its task matches."""

    trajectory: Trajectory
    match: str  # "same object and receptacle" | "same object" | "same task type"

    @property
    def label(self) -> str:
        t = self.trajectory
        return (f"#{t.id} · {self.match} · {t.step_count} steps · run {t.run_id or '–'}: "
                f"{t.task}")  # fmt: skip


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


def retrieval_view(r: Retrieval, scripts: dict[int, str] | None = None) -> RetrievalView:
    items = [_as_item(x) for x in r.results]
    if scripts:
        items = [replace(i, script=scripts.get(i.revision_id or 0, "")) for i in items]
    return RetrievalView(retrieval_id=r.id or 0, query=r.query, policy=r.policy, k=r.k,
                         items=items)  # fmt: skip


def revision_text(rev: ProcedureRevision) -> str:
    """A revision as an agent reads it: its script, else its recorded actions."""
    if (rev.script or "").strip():
        return rev.script or ""
    acts = [f"> {s.get('action') or ''}\n{s.get('observation') or ''}" for s in rev.steps]
    return "\n".join(acts) or "(no script and no steps)"


def revision_texts(store: Store, ids: Iterable[int]) -> dict[int, str]:
    """The text of each revision in ``ids`` (one query)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    with store.session() as s:
        revs = s.exec(select(ProcedureRevision).where(col(ProcedureRevision.id).in_(wanted)))
        return {int(r.id or 0): revision_text(r) for r in revs.all()}


def trajectory_detail(store: Store, trajectory_id: int) -> TrajectoryDetail:
    """Everything the debugger shows for one trajectory (raises NotFoundError)."""
    traj = store.get(Trajectory, trajectory_id)
    memory = traj.facts.get("memory") if isinstance(traj.facts.get("memory"), dict) else {}
    rev_id = traj.procedure_revision_id
    if rev_id is None and isinstance(memory.get("followed"), int):
        rev_id = memory["followed"]  # borrowed: the agent used it, a failure is not put in it
    revision: ProcedureRevision | None = None
    procedure: Procedure | None = None
    if rev_id is not None:
        with store.session() as s:
            revision = s.get(ProcedureRevision, rev_id)
            if revision is not None:
                procedure = s.get(Procedure, revision.procedure_id)
    retrievals = store.retrievals_for(trajectory_id)
    scripts = revision_texts(
        store, (x.get("revision_id") or 0 for r in retrievals for x in r.results)
    )
    total = step_total(store, trajectory_id)
    recorded = Ending.from_facts(traj.facts)
    return TrajectoryDetail(
        trajectory=traj,
        step_total=total,
        problem=first_problem(store, trajectory_id),
        retrievals=[retrieval_view(r, scripts) for r in retrievals],
        followed_revision=revision,
        followed_procedure=procedure,
        ending=recorded or read_ending(store, traj, total),
        ending_recorded=recorded is not None,
        reflected=traj.procedure_revision_id is not None,
        used_revisions=[i for i in memory.get("used") or [] if isinstance(i, int)],
    )


def read_ending(store: Store, traj: Trajectory, total: int) -> Ending | None:
    """How a run that recorded no ending ended, read from its steps (runs up to
    SCAN_CHUNK steps; a longer import is not read whole for this): the step limit is known
    for simulator runs (their Run's config), not for imports."""
    if traj.success is None or total > SCAN_CHUNK:
        return None
    limit: int | None = None
    if traj.source == "simulator" and traj.run_id is not None:
        with store.session() as s:
            run = s.get(Run, traj.run_id)
        raw = run.config.get("max_steps") if run is not None else None
        limit = raw if isinstance(raw, int) else None
    steps = [StepView(st.action or "", st.observation or "", st.thought or "")
             for st in steps_page(store, traj.id or 0, limit=SCAN_CHUNK)]  # fmt: skip
    return ending_from_steps(
        RunView(traj.task, traj.task_type, bool(traj.success), steps), step_limit=limit
    )


def comparison_candidates(
    store: Store, traj: Trajectory, *, limit: int = CANDIDATES
) -> list[Candidate]:
    """Runs of the same task type with the other outcome, best comparison first: the same
    object and receptacle, then the same object, then any; within each, the same run
    first, then the latest. None for a run whose outcome is unknown.

    Bounded look-ups (the object through the task text, then the latest of the type), not
    a sort over every match: 100k trajectories stay fast.
    """
    if not traj.task_type or traj.success is None:
        return []
    base = select(Trajectory).where(
        Trajectory.task_type == traj.task_type,
        col(Trajectory.success).is_(not traj.success),
        Trajectory.id != traj.id,
    )
    obj, rec = str(traj.facts.get("object") or ""), str(traj.facts.get("receptacle") or "")
    found: dict[int, Trajectory] = {}
    with store.session() as s:
        if obj:
            rows = s.exec(base.where(col(Trajectory.task).contains(obj))
                          .order_by(col(Trajectory.id).desc()).limit(limit * 4)).all()  # fmt: skip
            found.update((int(t.id or 0), t) for t in rows)
        latest = s.exec(base.order_by(col(Trajectory.id).desc()).limit(limit)).all()
        found.update((int(t.id or 0), t) for t in latest if int(t.id or 0) not in found)

    def match(t: Trajectory) -> tuple[int, str]:
        same_obj = bool(obj) and t.facts.get("object") == obj
        if same_obj and rec and t.facts.get("receptacle") == rec:
            return 0, "same object and receptacle"
        return (1, "same object") if same_obj else (2, "same task type")

    ranked = sorted(
        found.values(),
        key=lambda t: (match(t)[0], t.run_id != traj.run_id or traj.run_id is None, -(t.id or 0)),
    )
    return [Candidate(t, match(t)[1]) for t in ranked[:limit]]


def failed_and_succeeded(
    store: Store, traj: Trajectory, other: Trajectory | None = None
) -> tuple[Trajectory | None, Trajectory | None]:
    """(failed run, successful run): ``traj`` and ``other`` (default: the best comparison
    candidate); (None, None) when ``traj``'s outcome is unknown (it is neither)."""
    if traj.success is None:
        return None, None
    if other is None:
        best = comparison_candidates(store, traj, limit=1)
        other = best[0].trajectory if best else None
    return (other, traj) if traj.success else (traj, other)


def step_rows(
    steps: list[Step], problem: StepProblem | None, ending: Ending | None = None
) -> list[dict[str, Any]]:
    """Steps as table rows for st.dataframe; the problem step carries a flag, and so do the
    run's last progress and the step it ended at (``ending``)."""
    rows = []
    for s in steps:
        flags: list[str] = []
        if problem is not None and s.index == problem.index:
            flags.append(f"⚠ {problem.kind}")
        elif s.is_error:
            flags.append("error")
        elif s.is_loop:
            flags.append("loop")
        if ending is not None and ending.progress == s.index:
            flags.append("▲ last progress")
        if ending is not None and ending.step == s.index and ending.reason != "goal":
            flags.append(f"■ {ending.reason.replace('_', ' ')}")
        rows.append(
            {
                "step": s.index,
                "flag": " · ".join(flags),
                "thought": s.thought or "",
                "action": s.action or "",
                "observation": s.observation or "",
            }
        )
    return rows
