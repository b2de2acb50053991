"""The review queue: procedures paged and filtered in SQL, and one procedure in full.

The review *actions* (approve, reject, edit, rollback, pin, deprecate) live in
:mod:`memp_core.review`; this module only reads what a reviewer needs to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from memp_core.lineage import RevisionUse, revision_uses
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Trajectory
from memp_core.store import Store

EVIDENCE_LIMIT = 50


@dataclass(frozen=True)
class ProcedurePage:
    rows: list[Procedure]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class ProcedureDetail:
    procedure: Procedure
    current: ProcedureRevision | None
    proposed: ProcedureRevision | None  # waiting for review while ``current`` is served
    revisions: list[ProcedureRevision]  # oldest first
    uses: dict[int, RevisionUse]  # per revision id
    evidence: list[Trajectory]  # the current revision's evidence runs
    recent_uses: list[Trajectory]  # latest runs that followed any revision of it
    audit: list[AuditEvent]

    @property
    def success_rate(self) -> float | None:
        p = self.procedure
        return p.success_count / p.use_count if p.use_count else None


def list_procedures(
    store: Store,
    *,
    status: str | None = None,
    task_type: str | None = None,
    text: str | None = None,
    with_proposal: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> ProcedurePage:
    """One page of procedures, the most recently changed first.

    ``with_proposal``: True for procedures with a revision proposed and waiting for review
    (approved ones, served meanwhile), False for those without one."""
    conds: list[Any] = []
    if status:
        conds.append(Procedure.status == status)
    if with_proposal is not None:
        proposed = col(Procedure.proposed_revision_id)
        conds.append(proposed.is_not(None) if with_proposal else proposed.is_(None))
    if task_type:
        conds.append(Procedure.task_type == task_type)
    if text:
        # autoescape: a "%" or "_" typed in the filter is a character, not a wildcard
        conds.append(col(Procedure.title).contains(text, autoescape=True))
    with store.session() as s:
        total = int(s.exec(select(func.count()).select_from(Procedure).where(*conds)).one())
        rows = s.exec(
            select(Procedure)
            .where(*conds)
            .order_by(col(Procedure.updated_at).desc(), col(Procedure.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return ProcedurePage(list(rows), total, offset, limit)


def procedure_detail(store: Store, procedure_id: int, *, recent: int = 20) -> ProcedureDetail:
    """Everything the review panel shows for one procedure (raises NotFoundError)."""
    procedure = store.get(Procedure, procedure_id)
    revisions = store.revisions_of(procedure_id)
    by_id = {r.id: r for r in revisions}
    current = by_id.get(procedure.current_revision_id)
    proposed = by_id.get(procedure.proposed_revision_id)
    rev_ids = [r.id for r in revisions if r.id is not None]
    evidence_ids = list(current.evidence_trajectory_ids)[:EVIDENCE_LIMIT] if current else []
    with store.session() as s:
        evidence = list(
            s.exec(
                select(Trajectory).where(col(Trajectory.id).in_(evidence_ids))
                .order_by(col(Trajectory.id))
            ).all()
        ) if evidence_ids else []  # fmt: skip
        recent_uses = list(
            s.exec(
                select(Trajectory)
                .where(col(Trajectory.procedure_revision_id).in_(rev_ids))
                .order_by(col(Trajectory.id).desc())
                .limit(recent)
            ).all()
        )
    return ProcedureDetail(
        procedure=procedure,
        current=current,
        proposed=proposed,
        revisions=revisions,
        uses=revision_uses(store, rev_ids),
        evidence=evidence,
        recent_uses=recent_uses,
        audit=store.audit_events(limit=50, object_type="procedure", object_id=procedure_id),
    )


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    total: int
    offset: int
    limit: int


def list_audit(
    store: Store,
    *,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> AuditPage:
    """One page of the audit log, newest first."""
    conds: list[Any] = []
    if actor:
        conds.append(AuditEvent.actor == actor)
    if action:
        conds.append(AuditEvent.action == action)
    if object_type:
        conds.append(AuditEvent.object_type == object_type)
    if object_id is not None:
        conds.append(AuditEvent.object_id == object_id)
    with store.session() as s:
        total = int(s.exec(select(func.count()).select_from(AuditEvent).where(*conds)).one())
        rows = s.exec(
            select(AuditEvent)
            .where(*conds)
            .order_by(col(AuditEvent.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return AuditPage(list(rows), total, offset, limit)
