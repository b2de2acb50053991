"""A reviewer's journey through the queue (issue 16 items 3, 4 and 10), with AppTest.

Approve-and-next: a decision opens the procedure its button named as the next one (the
queue as the reviewer saw it), so the following decision lands there and nowhere else,
even when the queue re-sorted in between. The queue shows what wrote each revision waiting
(origin, author, evidence, revisions) and filters on its origin; its filters live in the URL
and come back when the reviewer returns to the page from another one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest
from test_gate_pages import QUEUE, add_queue, approvals, open_procedure_shown, pick_row, table_ids
from test_pages import PROCS, ROOT, T0, run_page

from memp_core.actor import Actor
from memp_core.build import embed_revisions
from memp_core.embeddings import Embedder
from memp_core.models import Procedure, ProcedureRevision
from memp_core.review import edit
from memp_core.store import Store
from ui.safe import md

ALL = "(all)"


@pytest.fixture(name="queue")
def queue_fixture(store: Store, embedder: Embedder) -> list[int]:
    return add_queue(store, embedder)


def param(at: AppTest, name: str) -> str | None:
    """A query parameter as AppTest holds it (a list of values, or the value)."""
    value = at.query_params.get(name)
    return value[-1] if isinstance(value, list) else value


def successes(at: AppTest) -> list[str]:
    return [s.value for s in at.success]


# -- approve-and-next ----------------------------------------------------------------------------


def test_approve_opens_the_next_and_the_next_approval_lands_on_it(
    store: Store, queue: list[int]
) -> None:
    at = pick_row(run_page(PROCS), 2)
    first, second = queue[2], queue[3]
    assert at.button(key="procs_skip").label == f"Skip to procedure {second}"
    at.button(key="procs_approve").click().run()
    assert not at.exception, at.exception
    assert open_procedure_shown(at) == second
    assert param(at, "procedure") == str(second)
    assert any(md(f"Next in the queue: procedure {second}.") in s for s in successes(at))
    rev = store.get(Procedure, second).current_revision_id
    assert at.button(key="procs_approve").label == f"Approve procedure {second} · revision {rev}"
    at.button(key="procs_approve").click().run()
    assert approvals(store) == [second, first]  # newest first: each decision on its own
    assert {store.get(Procedure, p).status for p in queue if p not in (first, second)} == {
        "pending_review"
    }


def test_the_next_is_the_one_the_button_named_even_if_the_queue_moved(
    store: Store, queue: list[int], embedder: Embedder
) -> None:
    at = pick_row(run_page(PROCS), 2)
    named = queue[3]
    # Another reviewer saves an edit of the last procedure: it jumps to the top of the queue.
    moved = queue[-1]
    edit(store, moved, actor=Actor("bob", "reviewer"), script="1. Bob's version.", comment="b",
         base_revision_id=store.get(Procedure, moved).current_revision_id or 0,
         embedder=embedder)  # fmt: skip
    at.button(key="procs_approve").click().run()
    assert table_ids(at)[0] == moved  # the queue moved under the reviewer's feet
    assert open_procedure_shown(at) == named


def test_reject_needs_its_reason_then_opens_the_next(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), 0)
    at.button(key="procs_reject").click().run()
    assert open_procedure_shown(at) == queue[0]  # refused: stays, nothing decided
    assert store.get(Procedure, queue[0]).status == "pending_review"
    at.text_input(key=f"procs_reason_{queue[0]}").set_value("too vague").run()
    at.button(key="procs_reject").click().run()
    assert store.get(Procedure, queue[0]).status == "rejected"
    assert open_procedure_shown(at) == queue[1]


def test_the_last_row_moves_on_to_the_first(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), QUEUE - 1)
    at.button(key="procs_approve").click().run()
    assert open_procedure_shown(at) == queue[0]


def test_without_next_the_decided_procedure_stays_open(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), 4)
    at.checkbox(key="procs_next").uncheck().run()
    at.button(key="procs_approve").click().run()
    assert open_procedure_shown(at) == queue[4]
    assert successes(at) and not any(md("Next in the queue") in s for s in successes(at))


def test_skip_opens_the_next_without_deciding(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), 1)
    at.button(key="procs_skip").click().run()
    assert open_procedure_shown(at) == queue[2]
    assert approvals(store) == []


def test_decisions_have_keyboard_shortcuts(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), 1)
    shortcuts = {
        k: at.button(key=k).proto.shortcut for k in ("procs_approve", "procs_reject", "procs_skip")
    }
    assert shortcuts == {"procs_approve": "a", "procs_reject": "x", "procs_skip": "n"}


# -- what the queue shows and filters on -------------------------------------------------------


@pytest.fixture(name="origins")
def origins_fixture(store: Store, embedder: Embedder) -> dict[str, int]:
    """A built procedure waiting, an approved one with a reflection proposed on it, and one a
    reviewer edited; ids by what waits for review."""
    ids: dict[str, int] = {}
    with store.transaction() as s:
        for i, (name, status) in enumerate(
            [("build", "pending_review"), ("reflection", "approved"), ("edit", "pending_review")]
        ):
            at = T0 + timedelta(minutes=i)
            p = Procedure(key=f"o-{name}", title=f"put thing {name} in drawer", task_type="put",
                          status=status, created_at=at, updated_at=at)  # fmt: skip
            s.add(p)
            s.flush()
            root = ProcedureRevision(procedure_id=p.id, origin="build", author="heuristic",
                                     script=f"1. Find the {name}.", created_at=at,
                                     evidence_trajectory_ids=[1])  # fmt: skip
            embed_revisions(embedder, [root])
            s.add(root)
            s.flush()
            p.current_revision_id = root.id
            if name != "build":
                child = ProcedureRevision(
                    procedure_id=p.id, parent_revision_id=root.id,
                    origin="reflection" if name == "reflection" else "human_edit",
                    author="llm:m" if name == "reflection" else "human:ann",
                    script=f"1. Find the {name}.\n2. Open the drawer.", created_at=at,
                    evidence_trajectory_ids=[1, 2, 3],
                )  # fmt: skip
                embed_revisions(embedder, [child])
                s.add(child)
                s.flush()
                if name == "reflection":
                    p.proposed_revision_id = child.id  # waits beside the served root
                else:
                    p.current_revision_id = child.id
            ids[name] = p.id or 0
    return ids


def queue_table(at: AppTest):  # noqa: ANN201 (a DataFrame)
    return next(d for d in at.dataframe if "revisions" in d.value.columns).value


def test_the_queue_says_what_wrote_each_revision_waiting(
    store: Store, origins: dict[str, int]
) -> None:
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value(ALL).run()
    rows = queue_table(at).set_index("id")
    got = rows.loc[origins["reflection"], ["origin", "author", "evidence", "revisions"]]
    assert list(got) == ["reflection", "llm:m", 3, 2]  # the proposal's, not the served one's
    got = rows.loc[origins["build"], ["origin", "author", "evidence", "revisions"]]
    assert list(got) == ["build", "heuristic", 1, 1]


@pytest.mark.parametrize(("origin", "expected"), [("reflection", ["reflection"]),
                                                  ("build", ["build"]),
                                                  ("human_edit", ["edit"])])  # fmt: skip
def test_the_origin_filter_finds_what_waits_and_goes_in_the_url(
    store: Store, origins: dict[str, int], origin: str, expected: list[str]
) -> None:
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value(ALL).run()
    at.selectbox(key="procs_origin").set_value(origin).run()
    assert not at.exception, at.exception
    assert list(queue_table(at)["id"]) == [origins[n] for n in expected]
    assert param(at, "origin") == origin


# -- filters in the URL ---------------------------------------------------------------------------


def test_a_link_with_filters_opens_that_queue(store: Store, queue: list[int]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PROCS)
    at.query_params.update({"status": ALL, "type": "put", "q": "thing 3", "origin": "build"})
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="procs_status").value == ALL
    assert at.selectbox(key="procs_type").value == "put"
    assert at.selectbox(key="procs_origin").value == "build"
    assert at.text_input(key="procs_text").value == "thing 3"
    assert table_ids(at) == [queue[QUEUE - 1 - 3]]  # "put thing 3 in cabinet"


def test_changed_filters_go_in_the_url_and_come_back_after_another_page(
    store: Store, queue: list[int]
) -> None:
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value(ALL).run()
    at.text_input(key="procs_text").set_value("thing 5").run()
    assert (param(at, "status"), param(at, "q")) == (ALL, "thing 5")
    opened = table_ids(at)[0]
    at.switch_page("pages/8_Audit_log.py").run()  # the sidebar: a bare link, no query string
    at.query_params.clear()
    at.switch_page(PROCS).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="procs_status").value == ALL
    assert at.text_input(key="procs_text").value == "thing 5"
    assert table_ids(at) == [opened]


def test_a_new_filter_opens_its_first_match(store: Store, queue: list[int]) -> None:
    at = pick_row(run_page(PROCS), 4)
    assert param(at, "procedure") == str(queue[4])
    at.text_input(key="procs_text").set_value("thing 1").run()
    assert param(at, "procedure") is None
    assert open_procedure_shown(at) == table_ids(at)[0]


def test_overview_pending_row_opens_it_in_the_review_queue(store: Store, queue: list[int]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    pending = next(d for d in at.dataframe if "title" in d.value.columns).value
    row = 2
    at.session_state["ov_pending"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert open_procedure_shown(at) == int(pending["id"][row])
    at.switch_page("app.py").run()  # back on Overview: it stays there
    assert at.title[0].value == "Memp Studio"


# -- the Edit tab on a procedure with a proposal ------------------------------------------------


def open_in_all(pid: int) -> AppTest:
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value(ALL).run()
    at.session_state["procs_open_id"] = pid
    at.query_params["procedure"] = str(pid)
    return at.run()


def test_an_edit_of_the_served_revision_leaves_the_proposal_waiting(
    store: Store, origins: dict[str, int]
) -> None:
    pid = origins["reflection"]
    before = store.get(Procedure, pid)
    at = open_in_all(pid)
    assert open_procedure_shown(at) == pid
    at.text_area(key=f"procs_edit_text_{pid}").set_value("1. Find it.\n2. Put it away.").run()
    at.button(key="procs_save").click().run()
    assert not at.exception, at.exception
    after = store.get(Procedure, pid)
    assert after.proposed_revision_id == before.proposed_revision_id  # still waiting
    assert after.current_revision_id != before.current_revision_id
    assert any(md("It is served now.") in s for s in successes(at))


def test_the_proposal_can_be_edited_and_the_page_says_it_will_be_served(
    store: Store, origins: dict[str, int]
) -> None:
    pid = origins["reflection"]
    proposal = store.get(Procedure, pid).proposed_revision_id
    at = open_in_all(pid)
    at.radio(key=f"procs_edit_from_{pid}").set_value(proposal).run()
    text = at.text_area(key=f"procs_edit_text_{pid}")
    assert text.value == "1. Find the reflection.\n2. Open the drawer."  # the proposal's text
    text.set_value("1. Find the reflection.\n2. Open the drawer.\n3. Close it.").run()
    save = at.button(key="procs_save")
    assert (
        save.label == f"Save and serve your edit of proposed revision {proposal} (procedure {pid})"
    )
    assert any("Saving serves your edit" in w.value for w in at.warning)
    save.click().run()
    assert not at.exception, at.exception
    after = store.get(Procedure, pid)
    # what the label said: the edit, a child of the proposal, is served and nothing waits
    assert after.proposed_revision_id is None
    served = store.get(ProcedureRevision, after.current_revision_id or 0)
    assert served.parent_revision_id == proposal and served.script.endswith("3. Close it.")


def test_the_proposal_and_the_served_revision_side_by_side(
    store: Store, origins: dict[str, int]
) -> None:
    pid = origins["reflection"]
    proposed = f"+++ revision {store.get(Procedure, pid).proposed_revision_id} (proposed)"
    at = open_in_all(pid)
    assert any(proposed in c.value for c in at.code)  # the changes, by default
    at.session_state["procs_diff_view"] = "side by side"
    at.run()
    codes = [c.value for c in at.code]
    assert "1. Find the reflection." in codes  # the served text, whole
    assert "1. Find the reflection.\n2. Open the drawer." in codes  # the proposal, whole
    assert not any(proposed in c for c in codes)
