"""Landing: how a planned revision is written into a procedure's lineage.

A build, merge, reflection, proposal or edit is planned first (backend calls, no
transaction) and written here inside the caller's transaction. Every write is optimistic:
it names the revision it started from, and a conditional UPDATE (:func:`_claim`) checks
that the procedure is still there before anything is added, so of two concurrent writers
exactly one wins and the other gets a :class:`ConflictError` having written nothing.

A write that must wait for review and lands on an **approved** procedure does not take it
out of service: :func:`land_revision` appends it as that procedure's pending proposal
(``Procedure.proposed_revision_id``) and the served revision stays current until a person
accepts it (:mod:`memp_core.review`). New work builds on the *head*
(:func:`head_revision_id`): the pending proposal if there is one, else the current revision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from memp_core.errors import ConflictError, NotFoundError
from memp_core.models import Procedure, ProcedureRevision, Status, utcnow
from memp_core.store import Store

DEAD = (Status.rejected.value, Status.deprecated.value)  # never merged into, never revived


@dataclass
class PlannedBuild:
    """One procedure to create, or one merge revision to append, before it is written."""

    key: str
    title: str
    task_type: str
    revision: ProcedureRevision
    procedure_id: int | None = None  # set for a merge into an existing procedure
    expected_current: int | None = None
    content_changed: bool = True
    tokens: int = 0
    new_evidence: list[int] = field(default_factory=list)


def live_procedure(store: Store, slug: str) -> Procedure | None:
    """The procedure of a group that is still alive (not rejected or deprecated)."""
    with store.session() as s:
        return live_in(s, slug)


def live_in(s: Session, slug: str) -> Procedure | None:
    pattern = re.compile(rf"^{re.escape(slug)}(?:-\d+)?$")
    rows = s.exec(
        select(Procedure).where(col(Procedure.key).startswith(slug)).order_by(col(Procedure.id))
    ).all()
    alive = [p for p in rows if pattern.match(p.key) and p.status not in DEAD]
    proc = alive[-1] if alive else None
    # A reviewed merge folded this group's procedure into another: its runs go there now.
    seen: set[int] = set()
    while proc is not None and proc.status == Status.merged.value and proc.id not in seen:
        seen.add(int(proc.id or 0))
        proc = s.get(Procedure, proc.merged_into_id) if proc.merged_into_id else None
    return proc if proc is not None and proc.status not in DEAD + (Status.merged.value,) else None


def head_revision_id(proc: Procedure) -> int | None:
    """The revision new work builds on: an approved procedure's pending proposal if it has
    one, else its current revision."""
    if proc.status == Status.approved.value and proc.proposed_revision_id is not None:
        return proc.proposed_revision_id
    return proc.current_revision_id


def head_revision(store: Store, proc: Procedure) -> ProcedureRevision:
    head = head_revision_id(proc)
    return store.current_revision(proc) if head is None else store.get(ProcedureRevision, head)


def add_procedure(s: Session, plan: PlannedBuild, *, status: Status) -> Procedure:
    """A new procedure and its first revision; a dead procedure's key gets a suffix."""
    key = free_key(s, plan.key)
    proc = Procedure(key=key, title=plan.title, task_type=plan.task_type, status=status.value)
    s.add(proc)
    try:
        s.flush()
    except IntegrityError as exc:  # Postgres: a concurrent build took the key first
        if "procedure.key" in str(exc.orig) or "ix_procedure_key" in str(exc.orig):
            raise created_meanwhile(key) from exc
        raise
    plan.revision.procedure_id = int(proc.id or 0)
    s.add(plan.revision)
    s.flush()
    proc.current_revision_id = plan.revision.id
    s.add(proc)
    s.flush()
    return proc


def append_revision(
    s: Session,
    procedure_id: int,
    revision: ProcedureRevision,
    *,
    expected_current: int | None,
    status: str | None = None,
    supersedes_proposal: bool = False,
) -> ProcedureRevision:
    """Add a child revision and make it current, only if the procedure is still at
    ``expected_current`` (optimistic concurrency).

    ``supersedes_proposal``: ``expected_current`` names the pending proposal instead (a
    reviewer's edit of it); the proposal is then replaced by the new current revision.
    A pending proposal is otherwise left as it is.
    """
    target = (
        Procedure.proposed_revision_id if supersedes_proposal else Procedure.current_revision_id
    )
    proc = _claim(s, procedure_id, col(target) == expected_current, expected_current)
    _add_child(s, procedure_id, revision, expected_current)
    proc.current_revision_id = revision.id
    if supersedes_proposal:
        proc.proposed_revision_id = None
    if status is not None:
        proc.status = status
    s.add(proc)
    s.flush()
    return revision


def land_revision(
    s: Session,
    procedure_id: int,
    revision: ProcedureRevision,
    *,
    expected: int | None,
    status: Status,
    content_changed: bool = True,
) -> bool:
    """Add a revision written by a build, merge, reflection or proposal; True when it
    became the procedure's pending proposal.

    ``expected`` is the head the write was planned from (:func:`head_revision_id`); if the
    procedure moved on, :class:`ConflictError` and nothing is written. Written to wait for
    review (``status`` pending_review) on an approved procedure, the revision becomes its
    proposal: the served revision stays current and approved. The exception is a merge that
    only added evidence to the served content (no proposal pending): nothing there needs
    review, so it becomes current and stays approved. Anywhere else the revision becomes
    current with ``status`` (it was not served anyway, or ``status`` approves it: an
    experiment's own memory), and any older proposal is superseded by it.
    """
    proc = _claim(s, procedure_id, _head_column() == expected, expected)
    _add_child(s, procedure_id, revision, expected)
    served = proc.status == Status.approved.value
    waits = status == Status.pending_review
    if served and waits and (content_changed or proc.proposed_revision_id is not None):
        proc.proposed_revision_id = revision.id
        proposed = True
    else:
        proc.current_revision_id = revision.id
        proc.proposed_revision_id = None
        proc.status = Status.approved.value if served and waits else status.value
        proposed = False
    s.add(proc)
    s.flush()
    return proposed


def _head_column() -> Any:
    """:func:`head_revision_id` in SQL."""
    has_proposal = and_(
        col(Procedure.status) == Status.approved.value,
        col(Procedure.proposed_revision_id).is_not(None),
    )
    return case((has_proposal, col(Procedure.proposed_revision_id)),
                else_=col(Procedure.current_revision_id))  # fmt: skip


def _claim(s: Session, procedure_id: int, condition: Any, expected: int | None) -> Procedure:
    """The procedure, if ``condition`` (it is still where the change started) holds.

    The conditional UPDATE comes first: it takes the write lock (SQLite) or the row lock
    (Postgres) and re-checks atomically, so of two concurrent savers exactly one wins and
    the other gets :class:`ConflictError` before writing anything.
    """
    claimed = s.exec(
        update(Procedure)
        .where(col(Procedure.id) == procedure_id)
        .where(condition)
        .values(updated_at=utcnow())
    )
    proc = s.get(Procedure, procedure_id, populate_existing=True)  # see the claim's UPDATE
    if proc is None:
        raise NotFoundError(f"procedure {procedure_id} not found")
    if claimed.rowcount != 1:
        pending = f" (revision {proc.proposed_revision_id} proposed)"
        raise ConflictError(
            f"procedure {procedure_id} moved on: its current revision is "
            f"{proc.current_revision_id}{pending if proc.proposed_revision_id else ''}, but "
            f"this change started from revision {expected}; nothing was saved. "
            "Reload the procedure and apply the change again."
        )
    return proc


def _add_child(
    s: Session, procedure_id: int, revision: ProcedureRevision, parent: int | None
) -> None:
    revision.procedure_id = procedure_id
    revision.parent_revision_id = parent
    s.add(revision)
    s.flush()


def created_meanwhile(key: str) -> ConflictError:
    return ConflictError(
        f"procedure {key} was created by another writer while this build was planned; "
        "nothing was saved. Build again: the runs will merge into it."
    )


def free_key(s: Session, slug: str) -> str:
    """``slug``, or ``slug-2``, ``slug-3``... whichever no procedure holds yet."""
    taken = set(s.exec(select(Procedure.key).where(col(Procedure.key).startswith(slug))).all())
    if slug not in taken:
        return slug
    n = 2
    while f"{slug}-{n}" in taken:
        n += 1
    return f"{slug}-{n}"
