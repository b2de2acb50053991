"""Experiments are sandboxes: what an online run learns is never served to other agents.

Agents of the shared database are served approved procedures only, and only a person
approves. An online experiment that writes memory (an update policy with retrieval) serves
its own agent what it learns at once, as in the paper (``auto_approve``; with ``--review``
it queues it even there). So it runs on **its own memory**: a throw-away in-memory SQLite
database that starts empty, as the demo's and the benchmark's policy comparisons do.
Its learning never touches the shared procedures either: no reflection appends to them, no
use counts or automatic deprecation change them.

What people look at still lands in the shared database:

- the Run row, created when the experiment starts and updated after each group (curves grow
  while it runs), its config saying ``isolated`` and who started it (``started_by``);
- its trajectories with their steps, and its retrievals (when it ends, also when cancelled
  or failed, in one transaction with the run's final status);
- what it learned, for a reviewer to promote: every procedure of the sandbox with its whole
  lineage (each revision keeps its origin, author, model, rationale and evidence), as a new
  procedure in ``pending_review`` (``deprecated`` if the run deprecated it). Their keys end
  in ``-run<id>``, so later builds never merge into them; use counts start at 0 (the
  sandbox's are kept in the audit event).

Copying into the shared database, rather than keeping the sandbox file for later, keeps one
place to review, one lineage graph and one set of links (runs, trajectories, revisions);
landing as ``pending_review`` is the review gate's rule for everything that did not come
from a reviewer's hand. The audit log names the person who started the run, on the run
(``start``) and on every procedure landed (``propose``).

Runs that write no memory (no retrieval, or ``memory='none'``: reading the shared memory as
any agent does) run on the shared database directly; they change no procedure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from memp_core.actor import Actor
from memp_core.landing import free_key
from memp_core.models import (
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Status,
    Step,
    Trajectory,
    utcnow,
)
from memp_core.store import Store

ISOLATION_NOTE = (
    "ran on its own memory (an empty, throw-away database): what it learned was served to "
    "its own agent only, and landed here as procedures waiting for review"
)


@dataclass
class Landing:
    """Where the sandbox's rows went in the shared database (sandbox id -> shared id)."""

    run_id: int
    trajectories: dict[int, int] = field(default_factory=dict)
    procedures: dict[int, int] = field(default_factory=dict)
    revisions: dict[int, int] = field(default_factory=dict)


class RunMirror:
    """The ``on_run`` hook of :func:`memp_core.loop.run_loop`: keeps the shared database's Run
    row in step with the run, and audits its start under the person who started it.

    ``isolated``: the loop runs in a sandbox; the first call creates the shared Run row
    (status ``running`` until :func:`land` writes the final one), later calls copy the
    per-group metrics. Otherwise the loop writes the shared row itself and the first call
    only audits.
    """

    def __init__(self, shared: Store, actor: Actor, *, isolated: bool) -> None:
        self.shared = shared
        self.actor = actor
        self.isolated = isolated
        self.run_id: int | None = None  # the shared database's
        self.source_id = 0  # the row the loop writes (the sandbox's when isolated)

    def __call__(self, run: Run) -> None:
        self.source_id = int(run.id or 0)
        if not self.isolated:
            if self.run_id is None:
                self.run_id = int(run.id or 0)
                with self.shared.transaction() as s:
                    self._audit(s, run, self.run_id)
            return
        with self.shared.transaction() as s:
            if self.run_id is None:
                row = Run(**run.model_dump(exclude={"id", "status", "finished_at"}))
                row.config = {**run.config, "isolated": True, "note": ISOLATION_NOTE}
                s.add(row)
                s.flush()
                self.run_id = int(row.id or 0)
                self._audit(s, row, self.run_id)
                return
            shared_row = s.get(Run, self.run_id)
            if shared_row is not None:
                shared_row.metrics = list(run.metrics)
                s.add(shared_row)

    def _audit(self, s: Session, run: Run, run_id: int) -> None:
        self.shared.audit(
            s, self.actor.author, "start", "run", run_id, name=run.name,
            memory=run.update_policy, isolated=self.isolated,
        )  # fmt: skip


def writes_memory(retrieve: str | None, memory: str) -> bool:
    """Whether a run changes memory (then it needs a sandbox of its own)."""
    return bool(retrieve) and memory != "none"


def land(sandbox: Store, shared: Store, sandbox_run_id: int, run_id: int, actor: Actor) -> Landing:
    """Copy the sandbox run's trajectories, retrievals and procedures into ``shared`` (run
    ``run_id``), in one transaction that also writes the run's final status."""
    with sandbox.session() as src:
        run = src.get(Run, sandbox_run_id)
        trajs = src.exec(select(Trajectory).order_by(col(Trajectory.id))).all()
        steps = src.exec(select(Step).order_by(col(Step.trajectory_id), col(Step.index))).all()
        procs = src.exec(select(Procedure).order_by(col(Procedure.id))).all()
        revs = src.exec(select(ProcedureRevision).order_by(col(ProcedureRevision.id))).all()
        retrievals = src.exec(select(Retrieval).order_by(col(Retrieval.id))).all()
    landing = Landing(run_id)
    with shared.transaction() as s:
        landed = _trajectories(s, trajs, steps, run_id, landing)
        _procedures(s, shared, procs, revs, run_id, actor, landing)
        for old, new in zip(trajs, landed, strict=True):  # the revision each run followed
            if old.procedure_revision_id is not None:
                new.procedure_revision_id = landing.revisions.get(old.procedure_revision_id)
            if isinstance(old.facts.get("memory"), dict):
                new.facts = {**old.facts, "memory": _remap_memory(old.facts["memory"], landing)}
            s.add(new)
        s.add_all(_retrieval(r, run_id, landing) for r in retrievals)
        row = s.get(Run, run_id)
        if row is not None and run is not None:
            row.metrics, row.status = list(run.metrics), run.status
            row.finished_at = run.finished_at or utcnow()
            s.add(row)
    return landing


def _remap_memory(memory: dict[str, Any], landing: Landing) -> dict[str, Any]:
    """``facts["memory"]`` names sandbox revisions: name the landed ones instead."""
    revs = landing.revisions

    def one(rid: Any) -> int | None:
        return revs.get(rid) if isinstance(rid, int) else None

    def many(ids: Any) -> list[int]:
        return [r for r in (one(i) for i in ids or []) if r is not None]

    return {**memory, "followed": one(memory.get("followed")),
            "used": many(memory.get("used")), "given": many(memory.get("given"))}  # fmt: skip


def _trajectories(
    s: Session, trajs: Sequence[Trajectory], steps: Sequence[Step], run_id: int,
    landing: Landing,
) -> list[Trajectory]:  # fmt: skip
    landed = [
        Trajectory(**t.model_dump(exclude={"id", "run_id", "procedure_revision_id"}),
                   run_id=run_id)
        for t in trajs
    ]  # fmt: skip
    s.add_all(landed)
    s.flush()
    for old, new in zip(trajs, landed, strict=True):
        landing.trajectories[int(old.id or 0)] = int(new.id or 0)
    rows = [
        {**st.model_dump(exclude={"id"}), "trajectory_id": landing.trajectories[st.trajectory_id]}
        for st in steps
    ]
    if rows:
        s.execute(insert(Step), rows)  # one executemany: a long run has tens of thousands
    return landed


def _procedures(
    s: Session, shared: Store, procs: Sequence[Procedure], revs: Sequence[ProcedureRevision],
    run_id: int, actor: Actor, landing: Landing,
) -> None:  # fmt: skip
    by_procedure: dict[int, list[ProcedureRevision]] = {}
    for rev in revs:
        by_procedure.setdefault(rev.procedure_id, []).append(rev)
    for old in procs:
        dead = old.status in (Status.deprecated.value, Status.rejected.value)
        status = old.status if dead else Status.pending_review.value
        proc = Procedure(
            key=free_key(s, f"{old.key}-run{run_id}"), title=old.title,
            task_type=old.task_type, status=status, created_at=old.created_at,
        )  # fmt: skip
        s.add(proc)
        s.flush()
        pid = int(proc.id or 0)
        landing.procedures[int(old.id or 0)] = pid
        for rev in by_procedure.get(int(old.id or 0), []):  # oldest first: parents first
            landing.revisions[int(rev.id or 0)] = _revision(s, rev, pid, landing)
        proc.current_revision_id = landing.revisions.get(old.current_revision_id or 0)
        s.add(proc)
        shared.audit(
            s, actor.author, "propose", "procedure", pid, run_id=run_id, status=status,
            experiment_status=old.status, revisions=len(by_procedure.get(int(old.id or 0), [])),
            revision_id=proc.current_revision_id, experiment_uses=old.use_count,
            experiment_successes=old.success_count,
        )  # fmt: skip
    s.flush()


def _revision(s: Session, rev: ProcedureRevision, pid: int, landing: Landing) -> int:
    new = ProcedureRevision(
        **rev.model_dump(exclude={"id", "procedure_id", "parent_revision_id",
                                  "evidence_trajectory_ids"}),
        procedure_id=pid,
        parent_revision_id=landing.revisions.get(rev.parent_revision_id or 0),
        evidence_trajectory_ids=[
            landing.trajectories[i] for i in rev.evidence_trajectory_ids
            if i in landing.trajectories
        ],
    )  # fmt: skip
    s.add(new)
    s.flush()
    return int(new.id or 0)


def _retrieval(row: Retrieval, run_id: int, landing: Landing) -> Retrieval:
    results: list[dict[str, Any]] = [
        {**r, "procedure_id": landing.procedures.get(r.get("procedure_id") or 0),
         "revision_id": landing.revisions.get(r.get("revision_id") or 0)}
        for r in row.results
    ]  # fmt: skip
    return Retrieval(
        **row.model_dump(exclude={"id", "run_id", "trajectory_id", "results"}),
        run_id=run_id,
        trajectory_id=landing.trajectories.get(row.trajectory_id or 0),
        results=results,
    )
