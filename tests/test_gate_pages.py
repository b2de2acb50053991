"""The review gate as the pages hold it: the procedure a reviewer acts on is the one they opened.

Each test replays something that went wrong in a real browser (issue 16 item 1): a row is
picked in the queue, the procedure is saved (the queue re-sorts by last update), and Approve
must still act on the procedure that was picked, never on whatever now sits in that row.
AppTest cannot click a table row, so a row is picked the way the browser reports it: by
writing the table's selection state (``{"selection": {"rows": [i]}}``) under its key.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import PROCS, ROOT, T0, run_page

from memp_core.build import embed_revisions
from memp_core.embeddings import Embedder
from memp_core.models import Procedure, ProcedureRevision
from memp_core.store import Store

QUEUE = 8  # pending procedures in the queue, oldest update last


@pytest.fixture(name="queue")
def queue_fixture(store: Store, embedder: Embedder) -> list[int]:
    """QUEUE pending procedures, each updated a minute after the previous one; their ids,
    newest update first (the order the queue shows them in)."""
    ids: list[int] = []
    with store.transaction() as s:
        for i in range(QUEUE):
            at = T0 + timedelta(minutes=i)
            p = Procedure(key=f"put-{i}", title=f"put thing {i} in cabinet", task_type="put",
                          created_at=at, updated_at=at)  # fmt: skip
            s.add(p)
            s.flush()
            rev = ProcedureRevision(procedure_id=p.id, origin="build", author="heuristic",
                                    script=f"1. Find thing {i}.\n2. Put it in the cabinet.",
                                    created_at=at)  # fmt: skip
            embed_revisions(embedder, [rev])
            s.add(rev)
            s.flush()
            p.current_revision_id = rev.id
            ids.append(p.id)
    return list(reversed(ids))


def table_ids(at: AppTest) -> list[int]:
    table = next(d for d in at.dataframe if "pinned" in d.value.columns)
    return [int(x) for x in table.value["id"]]


def pick_row(at: AppTest, row: int) -> AppTest:
    """What the browser sends when a reviewer clicks row ``row`` of the queue."""
    at.session_state["procs_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def open_procedure_shown(at: AppTest) -> int:
    heading = next(h.value for h in at.subheader if h.value.startswith("Procedure "))
    return int(heading.split()[1])


def approvals(store: Store) -> list[int]:
    return [e.object_id for e in store.audit_events(limit=50) if e.action == "approve"]


def test_picked_row_saved_then_approved_approves_the_picked_procedure(
    store: Store, queue: list[int]
) -> None:
    at = run_page(PROCS)
    assert table_ids(at) == queue
    picked = queue[3]
    pick_row(at, 3)
    assert open_procedure_shown(at) == picked
    # Save an edit: the procedure moves to the top of the queue (most recently updated).
    at.text_area(key=f"procs_edit_text_{picked}").set_value("1. Find it.\n2. Put it away.")
    at.button(key="procs_save").click().run()
    assert not at.exception, at.exception
    assert table_ids(at)[0] == picked  # the queue re-sorted under the reviewer's feet
    assert open_procedure_shown(at) == picked
    at.button(key="procs_approve").click().run()
    assert not at.exception, at.exception
    assert approvals(store) == [picked]
    assert store.get(Procedure, picked).status == "approved"
    others = [store.get(Procedure, pid).status for pid in queue if pid != picked]
    assert set(others) == {"pending_review"}


def test_review_buttons_name_the_procedure_and_revision_they_act_on(
    store: Store, queue: list[int]
) -> None:
    at = run_page(PROCS)
    pick_row(at, 2)
    pid = queue[2]
    rev = store.get(Procedure, pid).current_revision_id
    assert at.button(key="procs_approve").label == f"Approve procedure {pid} · revision {rev}"
    assert at.button(key="procs_reject").label == f"Reject procedure {pid} · revision {rev}"
    assert at.button(key="procs_save").label == (
        f"Save as a new revision of procedure {pid} (from revision {rev})"
    )
    assert at.button(key="procs_deprecate").label == f"Deprecate procedure {pid}"


def test_after_a_write_the_ticked_row_is_the_open_procedure(store: Store, queue: list[int]) -> None:
    at = run_page(PROCS)
    pick_row(at, 5)
    pid = queue[5]
    at.text_area(key=f"procs_edit_text_{pid}").set_value("1. Find it first.\n2. Put it in.")
    at.button(key="procs_save").click().run()
    rows = at.session_state["procs_table"]["selection"]["rows"]
    assert [table_ids(at)[r] for r in rows] == [pid]


def test_the_open_procedure_is_in_the_url(store: Store, queue: list[int]) -> None:
    at = run_page(PROCS)
    pick_row(at, 4)
    assert at.query_params.get("procedure") == str(queue[4])


def test_a_linked_procedure_opens_and_approve_acts_on_it(store: Store, queue: list[int]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PROCS)
    at.query_params["procedure"] = str(queue[6])
    at.run()
    assert open_procedure_shown(at) == queue[6]
    at.button(key="procs_approve").click().run()
    assert approvals(store) == [queue[6]]


def test_approving_after_someone_else_changed_it_is_refused(
    store: Store, queue: list[int], embedder: Embedder
) -> None:
    from memp_core.actor import Actor
    from memp_core.review import edit

    at = run_page(PROCS)
    pick_row(at, 1)
    pid = queue[1]
    shown = store.get(Procedure, pid).current_revision_id
    edit(store, pid, actor=Actor("bob", "reviewer"), script="1. Bob's version.", comment="b",
         base_revision_id=shown, embedder=embedder)  # fmt: skip
    at.button(key="procs_approve").click().run()
    assert any("moved on" in e.value for e in at.error)
    assert store.get(Procedure, pid).status == "pending_review"
    assert not [e for e in store.audit_events(limit=50) if e.action == "approve"]
