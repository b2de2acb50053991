"""The review gate: people approve, reject, edit, roll back, pin and deprecate procedures.

Every action checks its :class:`~memp_core.actor.Actor` here, in the core, not only in the
pages: it must be a person (never an agent or the program itself) with the reviewer or admin
role. Each action runs in one transaction and writes an
:class:`~memp_core.models.AuditEvent` in that same transaction. Content changes add revisions
(``human_edit``, ``rollback``) through :func:`memp_core.landing.append_revision`, which refuses
a save that started from a revision that is no longer current (optimistic concurrency)
before writing anything.

A rollback of an approved procedure stays approved only when it restores content a person
approved (see :func:`approved_contents`); any other content goes back to ``pending_review``,
so a rollback can never serve agents text nobody reviewed.

Proposals. What waits for review on an approved procedure (a reflection, a merge, an
agent's proposal) is its *proposal* (``Procedure.proposed_revision_id``) while the current
revision stays served. ``approve(..., revision_id=<proposal>)`` accepts it: it becomes the
current revision, served from then on; ``reject(..., revision_id=<proposal>)`` turns down
only the proposal and the procedure stays approved as it was. A proposal another one
superseded (a newer one chained on it) can be neither accepted nor rejected any more
(:class:`ConflictError`): the reviewer reads the newer one first.

A reviewer's edit or rollback clears a pending proposal only when it supersedes it: an
edit that started from the proposal (``base_revision_id`` = the proposal) becomes the
current revision in its place, a child of it; an edit or a rollback of the current
revision leaves the proposal pending (its diff is shown against the new current revision,
so the reviewer sees what accepting it would change). A procedure that leaves ``approved``
(rejected, deprecated, or rolled back to content nobody approved) drops its proposal: the
revision stays in the lineage and the audit event names it (``dropped_proposal``).

Merges (:mod:`memp_core.merge`). A merge proposal filed by `memp dedupe` is accepted with
``approve(..., revision_id=<proposal>)`` like any proposal, but what it does is the merge:
the other procedures become ``merged`` into this one, which keeps its status. A merged
procedure takes no status change (approve, reject, deprecate): rolling the procedure it was
merged into back to a revision from before the merge unmerges it.
"""

from __future__ import annotations

import json

from sqlmodel import Session, col, select

from memp_core import merge
from memp_core.actor import Actor, Role
from memp_core.build import embed_revisions
from memp_core.embeddings import Embedder, get_embedder
from memp_core.errors import ConflictError, MempError, NotFoundError
from memp_core.landing import append_revision
from memp_core.models import (
    AuditEvent,
    Kind,
    Origin,
    Procedure,
    ProcedureRevision,
    Status,
    utcnow,
)
from memp_core.prompts import normalise_script
from memp_core.store import Store

# Actor and Role are re-exported: callers written before memp_core.actor import them here.
__all__ = [
    "Actor", "ReviewError", "Role", "approve", "approved_contents", "deprecate", "edit",
    "reject", "rollback", "set_pinned",
]  # fmt: skip


class ReviewError(MempError):
    """A review action is not valid here (empty reason, foreign revision, bad script)."""


def approve(
    store: Store,
    procedure_id: int,
    *,
    actor: Actor,
    comment: str = "",
    revision_id: int | None = None,
) -> Procedure:
    """Serve the procedure to agents. ``revision_id``: the revision the reviewer read: the
    current one (refused if it is no longer current) or the pending proposal, which then
    becomes current (refused if a newer proposal superseded it)."""
    _allow(actor, "approve")
    if revision_id is not None and merge.record_of(store, revision_id) is not None:
        return merge.accept(store, procedure_id, revision_id, actor=actor, comment=comment)
    if revision_id is not None and _is_proposal(store, procedure_id, revision_id):
        return _decide_proposal(store, procedure_id, actor, "approve", comment, revision_id)
    return _set_status(store, procedure_id, actor, Status.approved, "approve", comment, revision_id)


def reject(
    store: Store, procedure_id: int, *, actor: Actor, reason: str, revision_id: int | None = None
) -> Procedure:
    """Stop serving the procedure; with ``revision_id`` = its pending proposal, turn down only
    the proposal (the procedure stays approved and served as it was)."""
    reason = _required(reason)
    _allow(actor, "reject")
    if revision_id is not None and _is_proposal(store, procedure_id, revision_id):
        return _decide_proposal(store, procedure_id, actor, "reject", reason, revision_id)
    return _set_status(store, procedure_id, actor, Status.rejected, "reject", reason, revision_id)


def deprecate(store: Store, procedure_id: int, *, actor: Actor, reason: str) -> Procedure:
    return _set_status(
        store, procedure_id, actor, Status.deprecated, "deprecate", _required(reason), None
    )


def set_pinned(store: Store, procedure_id: int, *, actor: Actor, pinned: bool) -> Procedure:
    """A pinned procedure is never deprecated automatically."""
    _allow(actor, "pin")
    with store.transaction() as s:
        proc = _procedure(s, procedure_id)
        proc.pinned = pinned
        proc.updated_at = utcnow()
        s.add(proc)
        store.audit(s, actor.author, "pin" if pinned else "unpin", "procedure", procedure_id)
        return proc


def edit(
    store: Store,
    procedure_id: int,
    *,
    actor: Actor,
    script: str,
    comment: str,
    base_revision_id: int,
    embedder: Embedder | None = None,
) -> ProcedureRevision:
    """Save an edited script as a new child revision (origin ``human_edit``).

    ``base_revision_id`` is the revision the editor started from; if the procedure has a
    newer current revision the save is refused with :class:`ConflictError` and nothing is
    written. The new revision gets its own embedding.
    """
    _allow(actor, "edit")
    try:
        text = normalise_script(script)
    except ValueError as exc:
        raise ReviewError(f"the script cannot be saved: {exc}") from None
    base = store.get(ProcedureRevision, base_revision_id)
    if base.procedure_id != procedure_id:
        raise ReviewError(f"revision {base_revision_id} belongs to procedure {base.procedure_id}")
    # An edit of the pending proposal replaces it (see the module docstring).
    of_proposal = _is_proposal(store, procedure_id, base_revision_id)
    if not of_proposal:
        _check_current(store, procedure_id, base_revision_id)
    rev = ProcedureRevision(
        procedure_id=procedure_id,
        kind=Kind.proceduralization.value if base.kind == Kind.trajectory.value else base.kind,
        task_text=base.task_text,
        script=text,
        steps=list(base.steps),
        origin=Origin.human_edit.value,
        author=actor.author,
        model="human",
        rationale=comment,
        evidence_trajectory_ids=list(base.evidence_trajectory_ids),
        facts=dict(base.facts),
    )
    embed_revisions(embedder or get_embedder(), [rev])
    with store.transaction() as s:
        append_revision(s, procedure_id, rev, expected_current=base_revision_id,
                        supersedes_proposal=of_proposal)  # fmt: skip
        store.audit(s, actor.author, "edit", "procedure", procedure_id, revision_id=rev.id,
                    parent_revision_id=base_revision_id, comment=comment,
                    of_proposal=of_proposal)  # fmt: skip
    return rev


def rollback(
    store: Store,
    procedure_id: int,
    *,
    actor: Actor,
    to_revision_id: int,
    comment: str = "",
    base_revision_id: int | None = None,
) -> ProcedureRevision:
    """A new current revision copying ``to_revision_id``'s content (origin ``rollback``).

    An approved procedure rolled back to content no person approved returns to
    ``pending_review`` (the audit event records the status before and after).
    """
    _allow(actor, "roll back")
    old = store.get(ProcedureRevision, to_revision_id)
    if old.procedure_id != procedure_id:
        raise ReviewError(f"revision {to_revision_id} belongs to procedure {old.procedure_id}")
    current = store.current_revision(store.get(Procedure, procedure_id))
    if base_revision_id is not None and base_revision_id != current.id:
        _check_current(store, procedure_id, base_revision_id)
    if current.id == to_revision_id:
        raise ReviewError(f"revision {to_revision_id} is already the current revision")
    rev = ProcedureRevision(
        procedure_id=procedure_id, kind=old.kind, task_text=old.task_text, script=old.script,
        steps=list(old.steps), origin=Origin.rollback.value, author=actor.author,
        model=old.model, rationale=comment or f"rollback to revision {to_revision_id}",
        evidence_trajectory_ids=list(old.evidence_trajectory_ids), facts=dict(old.facts),
        embedding=old.embedding,
    )  # fmt: skip
    with store.transaction() as s:
        before = _procedure(s, procedure_id).status
        after = before
        if before == Status.approved and _content(old) not in approved_contents(s, procedure_id):
            after = Status.pending_review.value  # content nobody approved goes back to review
        append_revision(s, procedure_id, rev, expected_current=current.id, status=after)
        proc = _procedure(s, procedure_id)
        dropped = _drop_proposal(proc) if after != Status.approved else None
        s.add(proc)
        # Back to before a merge: the procedures it folded in get their status back.
        unmerged = merge.undo_merges(s, store, procedure_id, to_revision_id, actor=actor)
        store.audit(s, actor.author, "rollback", "procedure", procedure_id, revision_id=rev.id,
                    to_revision_id=to_revision_id, comment=comment, before=before,
                    after=after, dropped_proposal=dropped, unmerged=unmerged)  # fmt: skip
    return rev


def approved_contents(s: Session, procedure_id: int) -> set[str]:
    """The contents (kind, script, steps) of every revision a person approved.

    An approve event records the revision that was current when it was approved; only
    events by people count (``human:`` actors: the review actions refuse anyone else, and
    imports never record a named person's action as theirs). Content, not the revision id,
    is compared, so a merge that only added evidence to approved content still counts.
    """
    events = s.exec(
        select(AuditEvent.detail)
        .where(AuditEvent.object_type == "procedure", AuditEvent.object_id == procedure_id)
        .where(AuditEvent.action == "approve", col(AuditEvent.actor).startswith("human:"))
    ).all()
    ids = {d.get("revision_id") for d in events if isinstance(d, dict)} - {None}
    if not ids:
        return set()
    revs = s.exec(
        select(ProcedureRevision)
        .where(ProcedureRevision.procedure_id == procedure_id)
        .where(col(ProcedureRevision.id).in_(ids))
    ).all()
    return {_content(r) for r in revs}


def _content(rev: ProcedureRevision) -> str:
    return json.dumps([rev.kind, rev.script, rev.steps], sort_keys=True)


def _set_status(
    store: Store,
    procedure_id: int,
    actor: Actor,
    status: Status,
    action: str,
    comment: str,
    revision_id: int | None,
) -> Procedure:
    _allow(actor, action)
    with store.transaction() as s:
        proc = _procedure(s, procedure_id)
        if revision_id is not None and proc.current_revision_id != revision_id:
            raise ConflictError(_moved_on(procedure_id, proc.current_revision_id, revision_id))
        if proc.status == Status.merged.value:
            raise ReviewError(
                f"procedure {procedure_id} was merged into procedure {proc.merged_into_id}; "
                f"roll procedure {proc.merged_into_id} back to before the merge to unmerge it"
            )
        before = proc.status
        proc.status = status.value
        dropped = None if status == Status.approved else _drop_proposal(proc)
        proc.updated_at = utcnow()
        s.add(proc)
        store.audit(s, actor.author, action, "procedure", procedure_id, comment=comment,
                    before=before, after=status.value, revision_id=proc.current_revision_id,
                    dropped_proposal=dropped)  # fmt: skip
        return proc


def _is_proposal(store: Store, procedure_id: int, revision_id: int) -> bool:
    """True if ``revision_id`` is, or was, a proposal of this procedure that is not its
    current revision: a revision that chains from a proposal or was one. A stale one is
    refused later by :func:`_decide_proposal` under the row lock."""
    proc = store.get(Procedure, procedure_id)
    if revision_id == proc.current_revision_id:
        return False
    if revision_id == proc.proposed_revision_id:
        return True
    # Revision ids only grow, and anything else written after the current revision made
    # itself current: a newer revision that is not current was proposed.
    with store.session() as s:
        rev = s.get(ProcedureRevision, revision_id)
    newer = revision_id > (proc.current_revision_id or 0)
    return rev is not None and rev.procedure_id == procedure_id and newer


def _decide_proposal(
    store: Store, procedure_id: int, actor: Actor, action: str, comment: str, revision_id: int
) -> Procedure:
    """Accept (``approve``) or turn down (``reject``) the pending proposal ``revision_id``."""
    _allow(actor, action)
    with store.transaction() as s:
        proc = _procedure(s, procedure_id)
        if proc.proposed_revision_id != revision_id:
            raise ConflictError(_not_proposed(proc, revision_id))
        before, served = proc.status, proc.current_revision_id
        proc.proposed_revision_id = None
        if action == "approve":
            proc.current_revision_id = revision_id  # the embedding mirror follows it
            proc.status = Status.approved.value
        proc.updated_at = utcnow()
        s.add(proc)
        store.audit(s, actor.author, action, "procedure", procedure_id, comment=comment,
                    before=before, after=proc.status, revision_id=revision_id,
                    previous_revision_id=served, proposal=True)  # fmt: skip
        return proc


def _not_proposed(proc: Procedure, revision_id: int) -> str:
    now = (f"revision {proc.proposed_revision_id} is proposed now"
           if proc.proposed_revision_id is not None else "no revision is proposed now")  # fmt: skip
    return (
        f"revision {revision_id} is not the pending proposal of procedure {proc.id} any more: "
        f"{now}, revision {proc.current_revision_id} is current; nothing was changed. "
        "Reload the procedure and review what is there."
    )


def _drop_proposal(proc: Procedure) -> int | None:
    """A procedure leaving ``approved`` keeps no proposal (it is not served any more)."""
    dropped, proc.proposed_revision_id = proc.proposed_revision_id, None
    return dropped


def _check_current(store: Store, procedure_id: int, base_revision_id: int) -> None:
    """Fail early (before embedding) when the procedure already moved on."""
    proc = store.get(Procedure, procedure_id)
    if proc.current_revision_id != base_revision_id:
        raise ConflictError(_moved_on(procedure_id, proc.current_revision_id, base_revision_id))


def _moved_on(procedure_id: int, current: int | None, base: int) -> str:
    return (
        f"procedure {procedure_id} moved on: its current revision is {current}, but this "
        f"change started from revision {base}; nothing was saved. Reload and apply it again."
    )


def _procedure(s: Session, procedure_id: int) -> Procedure:
    """The procedure, locked until the transaction ends (Postgres ``FOR UPDATE``; SQLite's
    write transactions hold the database lock), so a check and the write it allows are one
    atomic step."""
    proc = s.get(Procedure, procedure_id, with_for_update=True, populate_existing=True)
    if proc is None:
        raise NotFoundError(f"procedure {procedure_id} not found")
    return proc


def _allow(actor: Actor, action: str) -> None:
    """Review actions are for people with the reviewer (or admin) role, never an agent."""
    actor.require_person(f"{action} procedures")


def _required(reason: str) -> str:
    if not reason.strip():
        raise ReviewError("a reason is required")
    return reason.strip()
