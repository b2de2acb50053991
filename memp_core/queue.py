"""The review queue: procedures paged and filtered in SQL, and one procedure in full.

The review *actions* (approve, reject, edit, rollback, pin, deprecate) live in
:mod:`memp_core.review`; this module only reads what a reviewer needs to decide. The
Procedures page filters the queue with a :class:`QueueFilter` (its status may be the
pseudo-status :data:`WITH_PROPOSAL`) over the choices :func:`queue_options` offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from memp_core.lineage import RevisionUse, revision_uses
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Trajectory
from memp_core.store import Store
from memp_core.vocab import Status

EVIDENCE_LIMIT = 50
# A queue status that is no Status: approved (served) procedures with a newer revision
# proposed and waiting for review. The queue filter offers it after the real statuses.
WITH_PROPOSAL = "approved, with a proposal"


def success_rate(procedure: Procedure) -> float | None:
    """Successes per use of a procedure as its counters hold them; None before any use
    (no rate, rather than a 0% that reads as "always fails")."""
    p = procedure
    return p.success_count / p.use_count if p.use_count else None


@dataclass(frozen=True)
class ProcedurePage:
    rows: list[Procedure]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class QueueRow:
    """One row of the review queue: the procedure and the revision a reviewer would decide on
    (its proposal when one waits beside the served revision, else its current revision)."""

    procedure: Procedure
    origin: str  # what wrote that revision: build, reflection, merge, an agent's proposal...
    author: str
    evidence: int  # runs cited as its evidence
    revisions: int  # revisions the procedure has, in all

    @property
    def under_review_id(self) -> int | None:
        p = self.procedure
        return p.proposed_revision_id or p.current_revision_id

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.procedure)


@dataclass(frozen=True)
class ProcedureDetail:
    procedure: Procedure
    current: ProcedureRevision | None
    proposed: ProcedureRevision | None  # waiting for review while ``current`` is served
    revisions: list[ProcedureRevision]  # oldest first
    uses: dict[int, RevisionUse]  # per revision id
    evidence: list[Trajectory]  # the current revision's evidence runs
    proposed_evidence: list[Trajectory]  # the proposal's (the runs that made it proposed)
    recent_uses: list[Trajectory]  # latest runs that followed any revision of it
    audit: list[AuditEvent]

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.procedure)

    @property
    def rollback_targets(self) -> list[ProcedureRevision]:
        """The revisions a rollback may return to: every one but the current, newest first."""
        cur = self.current
        return [r for r in reversed(self.revisions) if cur is None or r.id != cur.id]

    @property
    def under_review(self) -> ProcedureRevision | None:
        """What a reviewer decides on: the proposal if one waits, else the current revision."""
        return self.proposed or self.current

    @property
    def under_review_evidence(self) -> list[Trajectory]:
        return self.proposed_evidence if self.proposed else self.evidence


def list_procedures(
    store: Store,
    *,
    status: str | None = None,
    task_type: str | None = None,
    text: str | None = None,
    with_proposal: bool | None = None,
    origin: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> ProcedurePage:
    """One page of procedures, the most recently changed first.

    ``with_proposal``: True for procedures with a revision proposed and waiting for review
    (approved ones, served meanwhile), False for those without one. ``origin``: only those
    whose revision under review (the proposal, else the current one) has that origin, so a
    reviewer finds the reflections, merges or agents' proposals waiting."""
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
    if origin:
        conds.append(ProcedureRevision.origin == origin)
    with store.session() as s:
        count = _under_review(select(func.count()).select_from(Procedure), origin)
        total = int(s.exec(count.where(*conds)).one())
        rows = s.exec(
            _under_review(select(Procedure), origin)
            .where(*conds)
            .order_by(col(Procedure.updated_at).desc(), col(Procedure.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return ProcedurePage(list(rows), total, offset, limit)


@dataclass(frozen=True)
class QueueFilter:
    """What the review queue is filtered on; None (or "") for any."""

    status: str | None = None  # a Status value, or WITH_PROPOSAL
    task_type: str | None = None
    origin: str | None = None  # of the revision under review (see list_procedures)
    text: str | None = None  # in the title


@dataclass(frozen=True)
class QueueOptions:
    """The choices the queue's filters offer."""

    statuses: list[str]  # every Status, then WITH_PROPOSAL
    origins: list[str]
    task_types: list[str]


def queue_options(store: Store) -> QueueOptions:
    """The statuses, and the origins and task types this database has (two DISTINCT reads)."""
    return QueueOptions(
        statuses=[*(s.value for s in Status), WITH_PROPOSAL],
        origins=origins(store),
        task_types=store.distinct_values(Procedure.task_type),
    )


def queue_page(
    store: Store, flt: QueueFilter, *, offset: int = 0, limit: int = 50
) -> ProcedurePage:
    """One page of the queue (most recently changed first); ``limit=0`` only counts.

    :data:`WITH_PROPOSAL` means approved procedures whose proposal waits: the served
    revision stays served while a reviewer decides on the new one."""
    proposed = flt.status == WITH_PROPOSAL
    return list_procedures(
        store,
        status=Status.approved.value if proposed else flt.status,
        with_proposal=True if proposed else None,
        task_type=flt.task_type,
        origin=flt.origin,
        text=flt.text,
        offset=offset,
        limit=limit,
    )


def proposals_waiting(store: Store) -> int:
    """How many approved procedures have a proposal waiting for review."""
    return queue_page(store, QueueFilter(status=WITH_PROPOSAL), limit=0).total


def _under_review(query: SelectOfScalar[Any], origin: str | None) -> SelectOfScalar[Any]:
    """``query`` joined to each procedure's revision under review, when a filter needs it."""
    if not origin:
        return query
    under = func.coalesce(Procedure.proposed_revision_id, Procedure.current_revision_id)
    return query.join(ProcedureRevision, col(ProcedureRevision.id) == under)


def next_after(ids: Sequence[int], target: int) -> int | None:
    """The procedure a decision on ``target`` moves on to, in the queue ``ids`` as the
    reviewer saw it (with one row past the page): the one after it, else the first other."""
    later = list(ids[ids.index(target) + 1 :]) if target in ids else []
    return next(iter(later or [i for i in ids if i != target]), None)


def queue_rows(store: Store, procedures: list[Procedure]) -> list[QueueRow]:
    """The queue's columns for one page of procedures, in two queries (not one per row)."""
    ids = [p.id for p in procedures if p.id is not None]
    wanted = {p.proposed_revision_id or p.current_revision_id for p in procedures} - {None}
    with store.session() as s:
        counts = dict(
            s.exec(
                select(ProcedureRevision.procedure_id, func.count())
                .where(col(ProcedureRevision.procedure_id).in_(ids))
                .group_by(col(ProcedureRevision.procedure_id))
            ).all()
        ) if ids else {}  # fmt: skip
        revs = {
            r.id: r
            for r in s.exec(
                select(ProcedureRevision).where(col(ProcedureRevision.id).in_(wanted))
            ).all()
        } if wanted else {}  # fmt: skip
    out = []
    for p in procedures:
        rev = revs.get(p.proposed_revision_id or p.current_revision_id)
        out.append(
            QueueRow(
                procedure=p,
                origin=rev.origin if rev else "",
                author=rev.author if rev else "",
                evidence=len(rev.evidence_trajectory_ids or []) if rev else 0,
                revisions=int(counts.get(p.id, 0)),
            )
        )
    return out


def origins(store: Store) -> list[str]:
    """The origins revisions in this database have (the queue's origin filter offers these)."""
    return store.distinct_values(ProcedureRevision.origin)


def procedure_detail(
    store: Store, procedure_id: int, *, recent: int = 20, count_unreviewed: bool = False
) -> ProcedureDetail:
    """Everything the review panel shows for one procedure (raises NotFoundError).

    ``count_unreviewed``: pass ``settings.count_unreviewed_judgements`` (revision success
    rates count judged outcomes as every other page does)."""
    procedure = store.get(Procedure, procedure_id)
    revisions = store.revisions_of(procedure_id)
    by_id = {r.id: r for r in revisions}
    current = by_id.get(procedure.current_revision_id)
    proposed = by_id.get(procedure.proposed_revision_id)
    rev_ids = [r.id for r in revisions if r.id is not None]
    with store.session() as s:
        evidence, proposed_evidence = (_runs(s, r) for r in (current, proposed))
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
        uses=revision_uses(store, rev_ids, count_unreviewed=count_unreviewed),
        evidence=evidence,
        proposed_evidence=proposed_evidence,
        recent_uses=recent_uses,
        audit=store.audit_events(limit=50, object_type="procedure", object_id=procedure_id),
    )


def _runs(s: Any, revision: ProcedureRevision | None) -> list[Trajectory]:
    """A revision's evidence runs (the first EVIDENCE_LIMIT), oldest first."""
    ids = list(revision.evidence_trajectory_ids)[:EVIDENCE_LIMIT] if revision else []
    if not ids:
        return []
    query = select(Trajectory).where(col(Trajectory.id).in_(ids)).order_by(col(Trajectory.id))
    return list(s.exec(query).all())


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
