"""What agents may read, shaped as the door's response models.

Agents see approved procedures only (what they are served); a ``review:admin`` key, a
person's tooling, sees every status. A procedure an agent may not see is "not found" to
it, so ids of unreviewed proposals leak nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from memp_core.agents.keys import REVIEW_SCOPE, Identity
from memp_core.agents.schemas import (
    MAX_ID,
    ProcedureOut,
    ProcedurePage,
    ProcedureStep,
    RetrievedItem,
    RevisionOut,
)
from memp_core.errors import NotFoundError, ScopeError
from memp_core.models import Feedback, Procedure, ProcedureRevision, Status
from memp_core.queue import list_procedures
from memp_core.retrieve import SERVED_TO_AGENTS, RetrievedProcedure
from memp_core.store import Store
from memp_core.update import script_of

READ_SCOPE = "procedures:read"


def require_reader(who: Identity) -> None:
    """Reading needs ``procedures:read`` (or ``review:admin``: a reviewer reads what it judges)."""
    if not who.has(REVIEW_SCOPE):
        who.require(READ_SCOPE)


def visible(who: Identity, proc: Procedure) -> bool:
    return who.has(REVIEW_SCOPE) or proc.status in SERVED_TO_AGENTS


def steps_of(rev: ProcedureRevision | None) -> list[ProcedureStep]:
    if rev is None:
        return []
    return [
        ProcedureStep(
            thought=st.get("thought"), action=st.get("action"), observation=st.get("observation")
        )  # fmt: skip
        for st in rev.steps
        if isinstance(st, dict)
    ]


def rate(successes: int, uses: int) -> float | None:
    return successes / uses if uses else None


def retrieved_item(item: RetrievedProcedure) -> RetrievedItem:
    proc, rev = item.procedure, item.revision
    return RetrievedItem(
        procedure_id=int(proc.id or 0), revision_id=int(rev.id or 0), title=proc.title,
        task_type=proc.task_type, script=script_of(rev), steps=steps_of(rev),
        score=float(item.score), success_rate=rate(proc.success_count, proc.use_count),
        uses=proc.use_count,
    )  # fmt: skip


def procedure_out(
    proc: Procedure, rev: ProcedureRevision | None, feedback: dict[str, int]
) -> ProcedureOut:
    return ProcedureOut(
        id=int(proc.id or 0), key=proc.key, title=proc.title, task_type=proc.task_type,
        status=proc.status, kind=rev.kind if rev else "",
        current_revision_id=proc.current_revision_id,
        script=script_of(rev) if rev else "", steps=steps_of(rev), use_count=proc.use_count,
        success_count=proc.success_count, success_rate=rate(proc.success_count, proc.use_count),
        pinned=proc.pinned, updated_at=proc.updated_at, feedback=feedback,
    )  # fmt: skip


def revision_out(rev: ProcedureRevision, current_id: int | None) -> RevisionOut:
    return RevisionOut(
        id=int(rev.id or 0), procedure_id=rev.procedure_id,
        parent_revision_id=rev.parent_revision_id, kind=rev.kind, origin=rev.origin,
        author=rev.author, model=rev.model, rationale=rev.rationale,
        evidence_trajectory_ids=list(rev.evidence_trajectory_ids), created_at=rev.created_at,
        current=rev.id == current_id,
    )  # fmt: skip


def page(
    store: Store,
    who: Identity,
    *,
    status: str | None,
    task_type: str | None,
    text: str | None,
    offset: int,
    limit: int,
) -> ProcedurePage:
    require_reader(who)
    if not who.has(REVIEW_SCOPE):
        if status not in (None, *SERVED_TO_AGENTS):
            raise ScopeError(f"listing {status} procedures needs the scope {REVIEW_SCOPE!r}")
        status = Status.approved.value
    found = list_procedures(
        store, status=status, task_type=task_type, text=text, offset=offset, limit=limit
    )
    return ProcedurePage(
        total=found.total, offset=offset, limit=limit, items=with_revisions(store, found.rows)
    )


def with_revisions(store: Store, procs: Sequence[Procedure]) -> list[ProcedureOut]:
    """Procedures with their current revisions and feedback counts, in two queries."""
    ids = [int(p.id or 0) for p in procs]
    rev_ids = [p.current_revision_id for p in procs if p.current_revision_id is not None]
    with store.session() as s:
        revs = {
            r.id: r
            for r in s.exec(select(ProcedureRevision).where(col(ProcedureRevision.id).in_(rev_ids)))
        } if rev_ids else {}  # fmt: skip
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            rows: Any = s.exec(
                select(Feedback.procedure_id, Feedback.rating, func.count())
                .where(col(Feedback.procedure_id).in_(ids))
                .group_by(Feedback.procedure_id, Feedback.rating)
            ).all()
            for pid, rating, n in rows:
                counts[int(pid)][str(rating)] = int(n)
    return [
        procedure_out(p, revs.get(p.current_revision_id), counts[int(p.id or 0)]) for p in procs
    ]


def one(store: Store, who: Identity, procedure_id: int) -> ProcedureOut:
    require_reader(who)
    proc = _visible_procedure(store, who, procedure_id)
    return with_revisions(store, [proc])[0]


def lineage(store: Store, who: Identity, procedure_id: int) -> list[RevisionOut]:
    require_reader(who)
    proc = _visible_procedure(store, who, procedure_id)
    return [revision_out(r, proc.current_revision_id) for r in store.revisions_of(procedure_id)]


def known_id(procedure_id: int) -> None:
    """Ids outside the databases' integer range name nothing (and never reach a driver)."""
    if not 1 <= procedure_id <= MAX_ID:
        raise NotFoundError(f"procedure {procedure_id} not found")


def _visible_procedure(store: Store, who: Identity, procedure_id: int) -> Procedure:
    known_id(procedure_id)
    with store.session() as s:
        proc = s.get(Procedure, procedure_id)
    if proc is None or not visible(who, proc):
        raise NotFoundError(f"procedure {procedure_id} not found")
    return proc
