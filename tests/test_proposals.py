"""A revision waiting for review beside the served one (``Procedure.proposed_revision_id``).

Before: a reflection, a merge or an agent's proposal written into an *approved* procedure
became its current revision with status ``pending_review``: one report took the procedure
out of service until someone approved it again. Now such a write is the procedure's
proposal; the approved revision stays current and served until a person accepts it.
"""

from __future__ import annotations

import pytest
from household_runs import add_run
from streamlit.testing.v1 import AppTest
from test_pages import PROCS, run_page
from typer.testing import CliRunner

from memp_core.cli import app
from memp_core.embeddings import Embedder
from memp_core.errors import ConflictError
from memp_core.lineage import revision_uses
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Run, Status, Step, Trajectory
from memp_core.queue import list_procedures, procedure_detail
from memp_core.review import Actor, approve, deprecate, edit, reject, rollback, set_pinned
from memp_core.store import Store

HEAT = "heat some egg and put it in diningtable"
RITA = Actor("rita", "reviewer")


def solved() -> list[Step]:
    return [
        Step(index=0, action="go to countertop 1", observation="You see a egg 1."),
        Step(index=1, action="take egg 1 from countertop 1", observation="You pick up the egg 1."),
        Step(index=2, action="go to microwave 1", observation="The microwave 1 is closed."),
        Step(index=3, action="heat egg 1 with microwave 1", observation="You heat the egg 1."),
        Step(index=4, action="go to diningtable 1", observation="You see a plate 1."),
        Step(index=5, action="put egg 1 in/on diningtable 1", observation="You put the egg 1."),
    ]


def looping() -> list[Step]:
    """A failed heat run: it never opens the microwave and repeats an invalid action."""
    return [
        Step(index=0, action="go to countertop 1", observation="You see a egg 1."),
        Step(index=1, action="take egg 1 from countertop 1", observation="You pick up the egg 1."),
        *[Step(index=i, action="heat egg 1 with microwave 1", observation="Nothing happens.")
          for i in range(2, 6)],
    ]  # fmt: skip


@pytest.fixture(name="mem")
def mem_fixture(store: Store, embedder: Embedder) -> ProceduralMemory:
    """One approved heat procedure, built from one solved run."""
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([add_run(store, HEAT, solved(), task_type="heat")])
    approve(store, rev.procedure_id, actor=RITA)
    return mem


def proc_of(mem: ProceduralMemory) -> Procedure:
    (proc,) = mem.store.procedures()
    return proc


def served(mem: ProceduralMemory) -> int:
    (item,) = mem.retrieve(HEAT, k=1, log=False).items
    return int(item.revision.id or 0)


def reflect_failure(mem: ProceduralMemory, followed: int) -> int:
    """A failed run of ``followed``, reflected on as agents' reports are (waits for review)."""
    failed = add_run(mem.store, HEAT, looping(), task_type="heat", success=False,
                     followed=followed)  # fmt: skip
    (child,) = mem.update([failed], policy="reflect", auto_approve=False).reflected
    return child


def test_a_reflected_failure_leaves_the_approved_procedure_served_with_a_proposal(
    mem: ProceduralMemory,
) -> None:
    proc = proc_of(mem)
    current = proc.current_revision_id or 0
    assert served(mem) == current
    child = reflect_failure(mem, current)
    after = mem.store.get(Procedure, proc.id or 0)
    assert after.status == Status.approved and after.current_revision_id == current
    assert after.proposed_revision_id == child
    assert served(mem) == current  # agents get the approved revision, not an empty memory
    assert after.embedding == mem.store.get(ProcedureRevision, current).embedding
    (event,) = [e for e in mem.store.audit_events(object_type="procedure")
                if e.action == "reflect"]  # fmt: skip
    assert event.detail["proposal"] is True and event.detail["revision_id"] == child


def test_approving_the_proposal_serves_its_content(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    child = reflect_failure(mem, proc.current_revision_id or 0)
    approve(mem.store, proc.id or 0, actor=RITA, revision_id=child, comment="better")
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.status, after.current_revision_id, after.proposed_revision_id) == (
        Status.approved, child, None,
    )  # fmt: skip
    assert served(mem) == child
    assert after.embedding == mem.store.get(ProcedureRevision, child).embedding
    ev = mem.store.audit_events(object_type="procedure", limit=1)[0]
    assert (ev.action, ev.actor, ev.detail["revision_id"]) == ("approve", "human:rita", child)
    assert ev.detail["previous_revision_id"] == proc.current_revision_id
    assert (ev.detail["before"], ev.detail["after"]) == ("approved", "approved")


def test_rejecting_the_proposal_keeps_the_approved_revision_served(
    mem: ProceduralMemory,
) -> None:
    proc = proc_of(mem)
    current = proc.current_revision_id or 0
    child = reflect_failure(mem, current)
    reject(mem.store, proc.id or 0, actor=RITA, reason="made it worse", revision_id=child)
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.status, after.current_revision_id, after.proposed_revision_id) == (
        Status.approved, current, None,
    )  # fmt: skip
    assert served(mem) == current
    ev = mem.store.audit_events(object_type="procedure", limit=1)[0]
    assert (ev.action, ev.detail["proposal"], ev.detail["revision_id"]) == ("reject", True, child)


def test_a_second_proposal_chains_on_the_first(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    current = proc.current_revision_id or 0
    first = reflect_failure(mem, current)
    second = reflect_failure(mem, current)  # the agents still follow the served revision
    assert mem.store.get(ProcedureRevision, second).parent_revision_id == first
    assert mem.store.get(ProcedureRevision, first).parent_revision_id == current
    # a success merges onto the latest proposal too: its reflection stays, the new run's
    # evidence joins the counts (the script is the same but for them)
    (merged,) = mem.update([add_run(mem.store, HEAT, solved(), task_type="heat")],
                           policy="validation").built  # fmt: skip
    merge = mem.store.get(ProcedureRevision, merged)
    assert merge.parent_revision_id == second
    reflected = mem.store.get(ProcedureRevision, second).script
    assert "check countertop (3/3)" in reflected and "check countertop (4/4)" in merge.script
    assert merge.script.replace("(4/4)", "(3/3)") == reflected
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.current_revision_id, after.proposed_revision_id) == (current, merged)


def test_accepting_a_superseded_proposal_is_refused(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    current = proc.current_revision_id or 0
    first = reflect_failure(mem, current)
    second = reflect_failure(mem, current)
    for act in (
        lambda: approve(mem.store, proc.id or 0, actor=RITA, revision_id=first),
        lambda: reject(mem.store, proc.id or 0, actor=RITA, reason="no", revision_id=first),
    ):
        with pytest.raises(ConflictError, match=f"revision {second} is proposed now"):
            act()
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.current_revision_id, after.proposed_revision_id) == (current, second)
    approve(mem.store, proc.id or 0, actor=RITA, revision_id=second)
    with pytest.raises(ConflictError):  # accepted once: a repeat of the old click is stale
        approve(mem.store, proc.id or 0, actor=RITA, revision_id=first)
    assert mem.store.get(Procedure, proc.id or 0).current_revision_id == second


def test_an_edit_of_the_proposal_supersedes_it_and_an_edit_of_the_served_one_keeps_it(
    mem: ProceduralMemory,
) -> None:
    proc = proc_of(mem)
    pid, current = proc.id or 0, proc.current_revision_id or 0
    child = reflect_failure(mem, current)
    fixed = edit(mem.store, pid, actor=RITA, script="1. Open the microwave.\n2. Heat the egg.",
                 comment="typo", base_revision_id=current, embedder=mem.embedder)  # fmt: skip
    after = mem.store.get(Procedure, pid)
    assert (after.current_revision_id, after.proposed_revision_id) == (fixed.id, child)
    mine = edit(mem.store, pid, actor=RITA, script="1. Open it.\n2. Heat the egg in it.",
                comment="tightened the proposal", base_revision_id=child,
                embedder=mem.embedder)  # fmt: skip
    after = mem.store.get(Procedure, pid)
    assert (after.current_revision_id, after.proposed_revision_id) == (mine.id, None)
    assert mine.parent_revision_id == child and after.status == Status.approved


def test_a_procedure_that_leaves_approved_drops_its_proposal(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    pid = proc.id or 0
    child = reflect_failure(mem, proc.current_revision_id or 0)
    deprecate(mem.store, pid, actor=RITA, reason="old")
    after = mem.store.get(Procedure, pid)
    assert (after.status, after.proposed_revision_id) == (Status.deprecated, None)
    ev = mem.store.audit_events(object_type="procedure", limit=1)[0]
    assert ev.detail["dropped_proposal"] == child
    with pytest.raises(ConflictError, match="no revision is proposed now"):
        approve(mem.store, pid, actor=RITA, revision_id=child)


def test_a_rollback_to_unapproved_content_drops_the_proposal(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    pid, root = proc.id or 0, proc.current_revision_id or 0
    set_pinned(mem.store, pid, actor=RITA, pinned=True)  # three failures: not deprecated
    first = reflect_failure(mem, root)
    approve(mem.store, pid, actor=RITA, revision_id=first)
    second = reflect_failure(mem, first)
    rollback(mem.store, pid, actor=RITA, to_revision_id=root)  # approved content: stays
    assert mem.store.get(Procedure, pid).proposed_revision_id == second
    reject(mem.store, pid, actor=RITA, reason="not yet", revision_id=second)
    third = reflect_failure(mem, root)
    rollback(mem.store, pid, actor=RITA, to_revision_id=second)  # nobody approved it
    after = mem.store.get(Procedure, pid)
    assert (after.status, after.proposed_revision_id) == (Status.pending_review, None)
    assert mem.store.audit_events(object_type="procedure", limit=1)[0].detail[
        "dropped_proposal"] == third  # fmt: skip


def test_on_a_procedure_waiting_for_review_the_reflection_becomes_current(
    store: Store, embedder: Embedder
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([add_run(store, HEAT, solved(), task_type="heat")])
    child = reflect_failure(mem, rev.id or 0)
    after = store.get(Procedure, rev.procedure_id)
    assert (after.status, after.current_revision_id, after.proposed_revision_id) == (
        Status.pending_review, child, None,
    )  # fmt: skip


def test_an_experiments_auto_approved_reflection_becomes_current(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    failed = add_run(mem.store, HEAT, looping(), task_type="heat", success=False,
                     followed=proc.current_revision_id)  # fmt: skip
    (child,) = mem.update([failed], policy="reflect", auto_approve=True).reflected
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.status, after.current_revision_id, after.proposed_revision_id) == (
        Status.approved, child, None,
    )  # fmt: skip


def test_the_queue_finds_approved_procedures_with_a_proposal(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    assert list_procedures(mem.store, with_proposal=True).total == 0
    child = reflect_failure(mem, proc.current_revision_id or 0)
    found = list_procedures(mem.store, status="approved", with_proposal=True)
    assert [p.id for p in found.rows] == [proc.id]
    assert list_procedures(mem.store, status="pending_review").total == 0
    detail = procedure_detail(mem.store, proc.id or 0)
    assert detail.proposed is not None and detail.proposed.id == child
    assert detail.current is not None and detail.current.id == proc.current_revision_id


def test_unknown_outcomes_are_not_counted_as_uses_of_a_revision(
    mem: ProceduralMemory,
) -> None:
    rev = proc_of(mem).current_revision_id or 0
    add_run(mem.store, HEAT, solved(), task_type="heat", followed=rev)
    add_run(mem.store, HEAT, looping(), task_type="heat", success=False, followed=rev)
    unknown = add_run(mem.store, HEAT, solved(), task_type="heat", followed=rev)
    with mem.store.transaction() as s:
        row = s.get(Trajectory, unknown)
        assert row is not None
        row.success = None
        s.add(row)
    use = revision_uses(mem.store, [rev])[rev]
    assert (use.uses, use.successes) == (2, 1)


# -- the page ---------------------------------------------------------------------------------


def test_the_page_shows_the_proposal_and_approves_exactly_it(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    pid, current = proc.id or 0, proc.current_revision_id or 0
    child = reflect_failure(mem, current)
    at: AppTest = run_page(PROCS)
    at.selectbox(key="procs_status").set_value("approved, with a proposal").run()
    assert not at.exception, at.exception
    table = next(d for d in at.dataframe if "proposal" in d.value.columns)
    assert list(table.value["id"]) == [pid] and list(table.value["proposal"]) == [child]
    assert any(f"Revision {child} proposed, waiting for review" in m.value for m in at.markdown)
    assert any(f"+++ revision {child} (proposed)" in c.value for c in at.code)
    button = at.button(key="procs_approve_proposal")
    assert button.label == f"Approve proposed revision {child}"
    assert at.button(key="procs_reject_proposal").label == f"Reject proposed revision {child}"
    button.click().run()
    assert not at.exception, at.exception
    after = mem.store.get(Procedure, pid)
    assert (after.current_revision_id, after.proposed_revision_id) == (child, None)


def test_the_page_refuses_a_proposal_reject_without_reason(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    child = reflect_failure(mem, proc.current_revision_id or 0)
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value("approved, with a proposal").run()
    at.button(key="procs_reject_proposal").click().run()
    assert any("reason" in e.value for e in at.error)
    at.text_input(key=f"procs_prop_reason_{proc.id}").set_value("worse").run()
    at.button(key="procs_reject_proposal").click().run()
    after = mem.store.get(Procedure, proc.id or 0)
    assert after.proposed_revision_id is None and after.current_revision_id != child


# -- the CLI ----------------------------------------------------------------------------------


def test_memp_runs_prints_a_dash_for_a_group_with_only_unknown_outcomes(store: Store) -> None:
    with store.transaction() as s:
        s.add(Run(name="imported", kind="import", metrics=[
            {"index": 0, "tasks": 2, "successes": 1, "success_rate": 0.5},
            {"index": 1, "tasks": 3, "successes": 0, "success_rate": None},
        ]))  # fmt: skip
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert "50% –" in result.output


def test_the_cli_decides_a_proposal_by_naming_its_revision(mem: ProceduralMemory) -> None:
    proc = proc_of(mem)
    served_before = proc.current_revision_id or 0
    first = reflect_failure(mem, served_before)
    cli = CliRunner()
    out = cli.invoke(app, ["reject", str(proc.id), "--reason", "no", "--revision", str(first),
                           "--db", mem.store.url])  # fmt: skip
    assert out.exit_code == 0, out.output
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.status, after.current_revision_id, after.proposed_revision_id) == (
        "approved", served_before, None,
    )  # fmt: skip
    second = reflect_failure(mem, served_before)
    out = cli.invoke(app, ["approve", str(proc.id), "--revision", str(second), "--json",
                           "--db", mem.store.url])  # fmt: skip
    assert out.exit_code == 0, out.output
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.current_revision_id, after.proposed_revision_id) == (second, None)
