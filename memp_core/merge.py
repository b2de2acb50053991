"""Merging near-duplicate procedures: a proposal a person accepts, and its undoing.

Nothing is merged without a person. :func:`file_proposal` (run by `memp dedupe`, see
:mod:`memp_core.dedupe`) writes a ``merge`` revision on the kept procedure as its pending
proposal (``Procedure.proposed_revision_id``, whatever the procedure's status): the kept
procedure's content, with the evidence of every procedure of the cluster. The audit event
of the proposal (``merge_propose``) records the revisions it joins: the kept procedure's
current revision is the proposal's parent, and each other procedure's current revision is
an *evidence parent* of it; the lineage reads both from here (:func:`merge_records`).
Audit details name revisions only (``revision_id``, ``merged_revision_id``...), never
procedure ids: exports and restores map revision ids to the new rows (a revision knows its
procedure), so a restored backup keeps its merges, edges and unmerges right.

Accepting (:func:`accept`, reached through ``review.approve(..., revision_id=<proposal>)``)
makes the proposal the kept procedure's current revision, adds the others' use and success
counts to it, and marks each other procedure ``merged`` with ``merged_into_id``: kept and
never served (retrieval serves approved procedures only). The kept procedure keeps its
status: accepting a merge says two procedures are one, not that the content is fit to serve.
Rejecting the proposal (``review.reject``) leaves every procedure as it was.

Unmerging is a rollback: rolling the kept procedure back to a revision from before the
merge (:func:`undo_merges`, called by ``review.rollback``) gives each merged procedure its
previous status back, clears ``merged_into_id`` and takes their counts off again. Every
revision is kept throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from memp_core.actor import Actor
from memp_core.errors import ConflictError, MempError, NotFoundError, PermissionDeniedError
from memp_core.models import (
    AuditEvent,
    Origin,
    Procedure,
    ProcedureRevision,
    Status,
    aware,
    utcnow,
)
from memp_core.store import Store

PROPOSE = "merge_propose"  # audit actions; object: the kept procedure unless said
ACCEPT = "merge_accept"
MERGED_INTO = "merged_into"  # object: a procedure folded into the kept one
UNMERGE = "unmerge"  # on the kept procedure and on each procedure it gives back
LIVE = (Status.draft.value, Status.pending_review.value, Status.approved.value)


class MergeError(MempError):
    """A merge action does not apply here (not a merge proposal, not this procedure's)."""


@dataclass(frozen=True)
class Member:
    """A procedure a proposal folds in, at the revision that was current when proposed."""

    procedure_id: int
    revision_id: int


class Folds:
    """What a merge folds together: the kept procedure at a revision, and its members (a
    cluster dedupe found, or a proposal already filed)."""

    kept_id: int
    kept_revision_id: int
    members: tuple[Member, ...]

    @property
    def procedure_ids(self) -> list[int]:
        return [self.kept_id, *(m.procedure_id for m in self.members)]

    @property
    def identity(self) -> tuple[int, int, tuple[tuple[int, int], ...]]:
        """The same procedures at the same revisions: a proposal not to be filed twice."""
        pairs = tuple(sorted((m.procedure_id, m.revision_id) for m in self.members))
        return self.kept_id, self.kept_revision_id, pairs


@dataclass(frozen=True)
class MergeRecord(Folds):
    """One merge proposal as its audit event recorded it, and what became of it."""

    revision_id: int  # the proposal: a revision of the kept procedure
    kept_id: int
    kept_revision_id: int  # the proposal's parent
    members: tuple[Member, ...]
    similarity: float
    cosine: float
    text_similarity: float
    proposed_by: str
    proposed_at: datetime
    accepted_by: str | None = None
    undone: bool = False


def require_proposer(actor: Actor) -> None:
    """Filing merge proposals is for a person or the program with a reviewer's role; an
    agent's key never proposes merges of other agents' memory."""
    if actor.kind == "agent":
        raise PermissionDeniedError(f"{actor.author} cannot propose merges: only a person "
                                    "or memp itself may")  # fmt: skip
    actor.require("propose merges")


def file_proposal(
    store: Store,
    kept_id: int,
    members: list[Member],
    *,
    actor: Actor,
    similarity: float,
    cosine: float,
    text_similarity: float,
) -> ProcedureRevision:
    """Write the merge proposal on ``kept_id`` (one transaction, audited).

    Refused with :class:`ConflictError` (nothing written) when the kept procedure has a
    proposal pending or moved on, or a member is no longer live at the revision named.
    """
    require_proposer(actor)
    kept = store.get(Procedure, kept_id)
    base = store.current_revision(kept)
    evidence = list(base.evidence_trajectory_ids)
    for m in members:
        evidence += store.get(ProcedureRevision, m.revision_id).evidence_trajectory_ids
    ids = [kept_id, *(m.procedure_id for m in members)]
    rev = ProcedureRevision(
        procedure_id=kept_id, kind=base.kind, task_text=base.task_text, script=base.script,
        steps=list(base.steps), origin=Origin.merge.value, author=actor.author,
        model=base.model, evidence_trajectory_ids=list(dict.fromkeys(evidence)),
        facts=dict(base.facts), embedding=base.embedding,
        rationale=(
            f"near-duplicates of one task type ({kept.task_type or 'untyped'}): procedures "
            f"{', '.join(map(str, ids))}, similarity {similarity:.3f} (embedding cosine "
            f"{cosine:.3f}, text {text_similarity:.3f}); keeps procedure {kept_id}'s content "
            "and carries the evidence of all: "
            + ", ".join(f"procedure {m.procedure_id} at revision {m.revision_id}"
                        for m in members)  # fmt: skip
        ),
    )  # fmt: skip
    with store.transaction() as s:
        proc = _locked(s, kept_id)
        if proc.proposed_revision_id is not None:
            raise ConflictError(f"procedure {kept_id} has revision {proc.proposed_revision_id} "
                                "waiting for review; decide it first")  # fmt: skip
        if proc.current_revision_id != base.id or proc.status not in LIVE:
            raise ConflictError(f"procedure {kept_id} moved on while the merge was planned; "
                                "run dedupe again")  # fmt: skip
        for m in members:
            _check_member(_locked(s, m.procedure_id), m)
        rev.parent_revision_id = base.id
        s.add(rev)
        s.flush()
        proc.proposed_revision_id = rev.id
        proc.updated_at = utcnow()
        s.add(proc)
        store.audit(s, actor.author, PROPOSE, "procedure", kept_id, revision_id=rev.id,
                    parent_revision_id=base.id,
                    merged_revision_id=[m.revision_id for m in members],
                    similarity=round(similarity, 4), cosine=round(cosine, 4),
                    text_similarity=round(text_similarity, 4))  # fmt: skip
    return rev


def accept(
    store: Store, procedure_id: int, revision_id: int, *, actor: Actor, comment: str = ""
) -> Procedure:
    """A person accepts the merge proposal ``revision_id`` of ``procedure_id``."""
    actor.require_person("accept merges")
    record = record_of(store, revision_id)
    if record is None or record.kept_id != procedure_id:
        raise MergeError(f"revision {revision_id} is not a merge proposal of procedure "
                         f"{procedure_id}")  # fmt: skip
    with store.transaction() as s:
        kept = _locked(s, procedure_id)
        if kept.proposed_revision_id != revision_id:
            raise ConflictError(f"revision {revision_id} is not waiting for review on procedure "
                                f"{procedure_id} any more; nothing was merged")  # fmt: skip
        if kept.current_revision_id != record.kept_revision_id:
            raise ConflictError(
                f"procedure {procedure_id} moved on to revision {kept.current_revision_id} "
                f"since the merge was proposed from revision {record.kept_revision_id}; "
                "nothing was merged. Reject this proposal and run dedupe again."
            )
        folded = [_fold(s, store, _locked(s, m.procedure_id), m, kept, actor, revision_id)
                  for m in record.members]  # fmt: skip
        before = kept.current_revision_id
        kept.current_revision_id = revision_id  # the embedding mirror follows it
        kept.proposed_revision_id = None
        kept.use_count += sum(f.use_count for f in folded)
        kept.success_count += sum(f.success_count for f in folded)
        kept.updated_at = utcnow()
        s.add(kept)
        store.audit(s, actor.author, ACCEPT, "procedure", procedure_id, revision_id=revision_id,
                    previous_revision_id=before, comment=comment, status=kept.status,
                    merged_revision_id=[m.revision_id for m in record.members],
                    use_count_added=sum(f.use_count for f in folded),
                    success_count_added=sum(f.success_count for f in folded))  # fmt: skip
        return kept


def _fold(
    s: Session,
    store: Store,
    proc: Procedure,
    m: Member,
    kept: Procedure,
    actor: Actor,
    revision_id: int,
) -> Procedure:
    """Mark ``proc`` merged; its audit event keeps what an unmerge gives back."""
    _check_member(proc, m)
    before, dropped = proc.status, proc.proposed_revision_id
    proc.status = Status.merged.value
    proc.merged_into_id = kept.id
    proc.proposed_revision_id = None  # a merged procedure is not served: nothing to propose
    proc.updated_at = utcnow()
    s.add(proc)
    store.audit(s, actor.author, MERGED_INTO, "procedure", proc.id, revision_id=revision_id,
                before=before, use_count=proc.use_count, success_count=proc.success_count,
                dropped_proposal_revision_id=dropped)  # fmt: skip
    return proc


def undo_merges(
    s: Session, store: Store, procedure_id: int, to_revision_id: int, *, actor: Actor
) -> list[int]:
    """Inside a rollback of ``procedure_id`` to ``to_revision_id``: undo every accepted merge
    whose revision is not in the restored content's history (neither ``to_revision_id`` nor
    an ancestor of it). Returns the procedures given back."""
    restored = _ancestry(s, to_revision_id)
    given_back: list[int] = []
    for ev in _events(s, ACCEPT, procedure_id):
        merge_rev = int(ev.detail.get("revision_id") or 0)
        if merge_rev in restored or _undone(s, procedure_id, merge_rev):
            continue
        kept = _locked(s, procedure_id)
        # Each merged procedure's own event says what it was before (ids in audit details
        # are revision ids only: exports and restores map those, not procedure ids).
        for folded in _events(s, MERGED_INTO):
            if int(folded.detail.get("revision_id") or 0) != merge_rev:
                continue
            proc = _locked(s, int(folded.object_id or 0))
            if proc.status != Status.merged.value or proc.merged_into_id != procedure_id:
                continue  # moved on since (merged elsewhere by a later decision): left alone
            proc.status, proc.merged_into_id = str(folded.detail["before"]), None
            proc.updated_at = utcnow()
            s.add(proc)
            d = folded.detail
            kept.use_count = max(0, kept.use_count - int(d.get("use_count") or 0))
            kept.success_count = max(0, kept.success_count - int(d.get("success_count") or 0))
            store.audit(s, actor.author, UNMERGE, "procedure", proc.id, revision_id=merge_rev,
                        status=proc.status)  # fmt: skip
            given_back.append(int(proc.id or 0))
        s.add(kept)
        store.audit(s, actor.author, UNMERGE, "procedure", procedure_id, revision_id=merge_rev,
                    to_revision_id=to_revision_id, given_back=len(given_back))  # fmt: skip
    return given_back


def merge_records(store: Store, procedure_ids: set[int] | None = None) -> list[MergeRecord]:
    """Every merge proposal (oldest first), or those touching ``procedure_ids``."""
    with store.session() as s:
        proposed = _events(s, PROPOSE)
        wanted = {int(r) for ev in proposed for r in ev.detail.get("merged_revision_id") or []}
        owner: dict[int | None, int] = {}
        if wanted:
            rows = s.exec(select(ProcedureRevision.id, ProcedureRevision.procedure_id)
                          .where(col(ProcedureRevision.id).in_(wanted))).all()  # fmt: skip
            owner = dict(rows)
        records = [_record(ev, owner) for ev in proposed]
        accepted = {int(ev.detail.get("revision_id") or 0): ev.actor for ev in _events(s, ACCEPT)}
        undone = {int(ev.detail.get("revision_id") or 0) for ev in _events(s, UNMERGE)}
    out = [
        MergeRecord(**{**r.__dict__, "accepted_by": accepted.get(r.revision_id),
                       "undone": r.revision_id in undone})
        for r in records
        if procedure_ids is None or procedure_ids & set(r.procedure_ids)
    ]  # fmt: skip
    return out


def record_of(store: Store, revision_id: int) -> MergeRecord | None:
    """The merge proposal written as ``revision_id``, or None for any other revision."""
    with store.session() as s:
        rev = s.get(ProcedureRevision, revision_id)
    if rev is None or rev.origin != Origin.merge.value:
        return None
    found = [r for r in merge_records(store, {rev.procedure_id}) if r.revision_id == revision_id]
    return found[0] if found else None


@dataclass(frozen=True)
class MergeSide:
    """One procedure of a merge proposal as a reviewer compares it."""

    procedure: Procedure
    revision: ProcedureRevision  # the kept one's parent revision, or the member's named one
    kept: bool

    @property
    def evidence(self) -> int:
        return len(self.revision.evidence_trajectory_ids)


@dataclass(frozen=True)
class MergeView:
    record: MergeRecord
    sides: list[MergeSide]  # the kept procedure first
    state: Literal["pending", "accepted", "undone", "closed"]  # closed: turned down or dropped


def merge_view(store: Store, revision_id: int) -> MergeView | None:
    """What the review queue shows for a merge proposal (None for any other revision)."""
    record = record_of(store, revision_id)
    if record is None:
        return None
    sides = [
        MergeSide(
            store.get(Procedure, record.kept_id),
            store.get(ProcedureRevision, record.kept_revision_id),
            True,
        )
    ]
    sides += [MergeSide(store.get(Procedure, m.procedure_id),
                        store.get(ProcedureRevision, m.revision_id), False)
              for m in record.members]  # fmt: skip
    state: Literal["pending", "accepted", "undone", "closed"] = "closed"
    if record.accepted_by is not None:
        state = "undone" if record.undone else "accepted"
    elif sides[0].procedure.proposed_revision_id == revision_id:
        state = "pending"
    return MergeView(record, sides, state)


def _record(ev: AuditEvent, owner: dict[int | None, int]) -> MergeRecord:
    """A proposal's event; ``owner``: revision id -> its procedure id."""
    d = ev.detail
    return MergeRecord(
        revision_id=int(d["revision_id"]), kept_id=int(ev.object_id or 0),
        kept_revision_id=int(d["parent_revision_id"]),
        members=tuple(Member(owner.get(int(r), 0), int(r))
                      for r in d.get("merged_revision_id") or []),
        similarity=float(d.get("similarity") or 0), cosine=float(d.get("cosine") or 0),
        text_similarity=float(d.get("text_similarity") or 0), proposed_by=ev.actor,
        proposed_at=aware(ev.created_at),
    )  # fmt: skip


def _events(s: Session, action: str, object_id: int | None = None) -> list[AuditEvent]:
    q = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.object_type == "procedure")
    if object_id is not None:
        q = q.where(AuditEvent.object_id == object_id)
    return [
        ev for ev in s.exec(q.order_by(col(AuditEvent.id))).all() if isinstance(ev.detail, dict)
    ]


def _undone(s: Session, procedure_id: int, merge_rev: int) -> bool:
    return any(int(ev.detail.get("revision_id") or 0) == merge_rev
               for ev in _events(s, UNMERGE, procedure_id))  # fmt: skip


def _ancestry(s: Session, revision_id: int) -> set[int]:
    """``revision_id`` and its parents up to the root."""
    seen: set[int] = set()
    rid: int | None = revision_id
    while rid is not None and rid not in seen:
        seen.add(rid)
        rev = s.get(ProcedureRevision, rid)
        rid = rev.parent_revision_id if rev is not None else None
    return seen


def _check_member(proc: Procedure, m: Member) -> None:
    if proc.status not in LIVE or proc.merged_into_id is not None:
        raise ConflictError(f"procedure {proc.id} is {proc.status} now; nothing was merged")
    if proc.current_revision_id != m.revision_id:
        raise ConflictError(
            f"procedure {proc.id} moved on to revision {proc.current_revision_id} since the "
            f"merge named revision {m.revision_id}; nothing was merged"
        )


def _locked(s: Session, procedure_id: int) -> Procedure:
    """The procedure, locked for the transaction (Postgres ``FOR UPDATE``; SQLite's write
    transaction holds the database lock)."""
    proc = s.get(Procedure, procedure_id, with_for_update=True, populate_existing=True)
    if proc is None:
        raise NotFoundError(f"procedure {procedure_id} not found")
    return proc
