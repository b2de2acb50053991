"""Review actions: roles, audit events, optimistic concurrency, rollback as a new revision."""

from __future__ import annotations

import numpy as np
import pytest
from household_runs import add_run

from memp_core.embeddings import Embedder, from_bytes
from memp_core.errors import ConflictError, NotFoundError, PermissionDeniedError
from memp_core.memory import ProceduralMemory
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Step
from memp_core.review import (
    Actor,
    ReviewError,
    approve,
    deprecate,
    edit,
    reject,
    rollback,
    set_pinned,
)
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")
VIEWER = Actor("vic", "viewer")
EDIT = "1. find <object>: check countertop, cabinet\n2. take <object>\n3. go to <receptacle>"


@pytest.fixture(name="built")
def built_fixture(store: Store, embedder: Embedder) -> ProcedureRevision:
    said = [
        ("go to countertop 1", "On the countertop 1, you see a mug 1."),
        ("take mug 1 from countertop 1", "You pick up the mug 1."),
        ("go to shelf 1", "On the shelf 1, you see nothing."),
        ("put mug 1 in/on shelf 1", "You put the mug 1 in/on the shelf 1."),
    ]
    steps = [Step(index=i, action=a, observation=o) for i, (a, o) in enumerate(said)]
    run = add_run(store, "put a mug in shelf", steps, task_type="put")
    (rev,) = ProceduralMemory(store, embedder=embedder, backend="heuristic").build([run])
    return rev


def _events(store: Store) -> list[AuditEvent]:
    return store.audit_events(object_type="procedure")


def test_approve_and_reject_change_status_and_are_audited(
    store: Store, built: ProcedureRevision
) -> None:
    pid = built.procedure_id
    assert approve(store, pid, actor=REVIEWER, comment="clear").status == "approved"
    assert reject(store, pid, actor=REVIEWER, reason="wrong place").status == "rejected"
    reject_ev, approve_ev = _events(store)[:2]
    assert (approve_ev.action, approve_ev.actor, approve_ev.detail["comment"]) == (
        "approve", "human:rita", "clear",
    )  # fmt: skip
    assert reject_ev.detail["before"] == "approved" and reject_ev.detail["comment"] == "wrong place"


def test_viewers_are_refused_and_nothing_is_written(store: Store, built: ProcedureRevision) -> None:
    before = len(_events(store))
    for action in (
        lambda: approve(store, built.procedure_id, actor=VIEWER),
        lambda: reject(store, built.procedure_id, actor=VIEWER, reason="x"),
        lambda: set_pinned(store, built.procedure_id, actor=VIEWER, pinned=True),
        lambda: edit(store, built.procedure_id, actor=VIEWER, script=EDIT, comment="",
                     base_revision_id=built.id or 0),
    ):  # fmt: skip
        with pytest.raises(PermissionDeniedError, match="vic has the viewer role"):
            action()
    assert len(_events(store)) == before
    assert store.get(Procedure, built.procedure_id).status == "pending_review"


def test_unknown_procedure_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="procedure 42"):
        approve(store, 42, actor=REVIEWER)


def test_reject_and_deprecate_need_a_reason(store: Store, built: ProcedureRevision) -> None:
    with pytest.raises(ReviewError, match="reason"):
        reject(store, built.procedure_id, actor=REVIEWER, reason="  ")
    with pytest.raises(ReviewError, match="reason"):
        deprecate(store, built.procedure_id, actor=REVIEWER, reason="")


def test_edit_adds_a_human_child_revision_with_its_own_embedding(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    rev = edit(store, built.procedure_id, actor=REVIEWER, script=EDIT, comment="hint places",
               base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    assert rev.parent_revision_id == built.id and rev.origin == "human_edit"
    assert rev.author == "human:rita" and rev.rationale == "hint places" and rev.script == EDIT
    old_vec, new_vec = from_bytes(built.embedding or b""), from_bytes(rev.embedding or b"")
    assert not np.allclose(old_vec, new_vec)
    assert store.get(Procedure, built.procedure_id).current_revision_id == rev.id
    assert _events(store)[0].action == "edit"


def test_edit_from_a_stale_revision_is_refused_and_keeps_nothing_half_written(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    first = edit(store, built.procedure_id, actor=REVIEWER, script=EDIT, comment="one",
                 base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    counts, events = store.counts(), len(_events(store))
    with pytest.raises(
        ConflictError, match=rf"current revision is {first.id}.*from revision {built.id}"
    ):
        edit(store, built.procedure_id, actor=Actor("sam", "reviewer"), script=EDIT + "\n4. x",
             comment="two", base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    assert store.counts().revisions == counts.revisions and len(_events(store)) == events
    assert store.get(Procedure, built.procedure_id).current_revision_id == first.id


def test_edit_refuses_a_script_that_is_not_numbered_steps(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    with pytest.raises(ReviewError, match="line 1 is not a numbered step"):
        edit(store, built.procedure_id, actor=REVIEWER, script="just do it", comment="",
             base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip


def test_rollback_is_a_new_revision_copying_the_old_content(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    edited = edit(store, built.procedure_id, actor=REVIEWER, script=EDIT, comment="",
                  base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    back = rollback(store, built.procedure_id, actor=REVIEWER, to_revision_id=built.id or 0)
    assert back.origin == "rollback" and back.parent_revision_id == edited.id
    assert (back.script, back.steps, back.embedding) == (built.script, built.steps, built.embedding)
    assert back.model == built.model and back.rationale == f"rollback to revision {built.id}"
    assert [r.id for r in store.revisions_of(built.procedure_id)] == [built.id, edited.id, back.id]
    with pytest.raises(ReviewError, match="already the current revision"):
        rollback(store, built.procedure_id, actor=REVIEWER, to_revision_id=back.id or 0)


def test_rollback_to_another_procedures_revision_is_refused(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    run = add_run(store, "put some cd on desk", [Step(index=0, action="look")], task_type="put")
    (other,) = ProceduralMemory(store, embedder=embedder, backend="heuristic").build([run])
    with pytest.raises(ReviewError, match="belongs to procedure"):
        rollback(store, built.procedure_id, actor=REVIEWER, to_revision_id=other.id or 0)


def test_approve_naming_a_stale_revision_is_a_conflict(
    store: Store, embedder: Embedder, built: ProcedureRevision
) -> None:
    edit(store, built.procedure_id, actor=REVIEWER, script=EDIT, comment="",
         base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    with pytest.raises(ConflictError):
        approve(store, built.procedure_id, actor=REVIEWER, revision_id=built.id)
    assert store.get(Procedure, built.procedure_id).status == "pending_review"


def test_pin_and_deprecate_are_audited(store: Store, built: ProcedureRevision) -> None:
    assert set_pinned(store, built.procedure_id, actor=REVIEWER, pinned=True).pinned
    proc = deprecate(store, built.procedure_id, actor=REVIEWER, reason="obsolete")
    assert proc.status == "deprecated" and proc.pinned
    assert [e.action for e in _events(store)[:2]] == ["deprecate", "pin"]
