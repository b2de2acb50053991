"""Update policies with the real heuristic backend (and once with the openai backend)."""

from __future__ import annotations

import pytest
from household_runs import add_run
from llm_server import ChatServer, Scripted

from memp_core.config import Settings
from memp_core.embeddings import Embedder
from memp_core.errors import ConfigError, ConflictError
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Status, Step
from memp_core.review import Actor, edit, set_pinned
from memp_core.sim.lesson import NO_REPEAT, read_lesson
from memp_core.store import Store

HEAT = "heat some egg and put it in diningtable"


def looping_failure() -> list[Step]:
    """A failed heat run: it never opens the microwave and repeats an invalid action."""
    obs = "On the countertop 1, you see a egg 1, and a mug 2."
    return [
        Step(index=0, action="go to countertop 1", observation=obs),
        Step(index=1, action="take egg 1 from countertop 1", observation="You pick up the egg 1."),
        Step(index=2, action="go to microwave 1", observation="The microwave 1 is closed."),
        Step(index=3, action="heat egg 1 with microwave 1", observation="Nothing happens."),
        Step(index=4, action="heat egg 1 with microwave 1", observation="Nothing happens."),
        Step(index=5, action="heat egg 1 with microwave 1", observation="Nothing happens."),
    ]


def heated_egg(thought: bool) -> list[Step]:
    """A successful heat run; with ``thought``, a ReAct agent's, thinking first."""
    said = [
        ("go to countertop 1", "On the countertop 1, you see a egg 1, and a mug 2."),
        ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
        ("go to microwave 1", "The microwave 1 is closed."),
        ("open microwave 1", "You open the microwave 1. The microwave 1 is open. In it, you "
         "see nothing."),
        ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
        ("go to diningtable 1", "On the diningtable 1, you see a bread 1."),
        ("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
    ]  # fmt: skip
    steps = [Step(index=0, thought="First I find an egg, then heat it.", observation="OK.")]
    steps = steps if thought else []
    return steps + [
        Step(index=len(steps) + i, action=a, observation=o) for i, (a, o) in enumerate(said)
    ]


def heat_runs(store: Store) -> list[int]:
    """Two successful runs of the HEAT task, a ReAct agent's and an Act agent's."""
    return [add_run(store, HEAT, heated_egg(t), task_type="heat") for t in (True, False)]


@pytest.fixture(name="mem")
def mem_fixture(store: Store, embedder: Embedder) -> ProceduralMemory:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    mem.build(heat_runs(store), status=Status.approved)
    return mem


def _current(store: Store, pid: int) -> ProcedureRevision:
    return store.current_revision(store.get(Procedure, pid))


def _fail(mem: ProceduralMemory, rev: ProcedureRevision) -> int:
    return add_run(mem.store, HEAT, looping_failure(), task_type="heat", success=False,
                   agent_model="weak", followed=rev.id)  # fmt: skip


def test_reflect_on_failure_adds_a_child_revision_and_never_changes_its_parent(
    mem: ProceduralMemory,
) -> None:
    (proc,) = mem.store.procedures()
    parent = _current(mem.store, proc.id or 0)
    before = parent.model_dump()
    failed = _fail(mem, parent)
    report = mem.update([failed], policy="reflect", auto_approve=True)  # an experiment's memory
    (child_id,) = report.reflected
    child = mem.store.get(ProcedureRevision, child_id)
    assert child.parent_revision_id == parent.id and child.origin == "reflection"
    assert child.evidence_trajectory_ids == [failed]
    assert child.author == "heuristic" and child.model == "heuristic"
    assert child.rationale.startswith("The run failed at step")
    assert child.script != parent.script and child.embedding is not None
    assert mem.store.get(ProcedureRevision, parent.id or 0).model_dump() == before
    refreshed = mem.store.get(Procedure, proc.id or 0)
    assert refreshed.current_revision_id == child.id and refreshed.status == "approved"
    assert (refreshed.use_count, refreshed.success_count) == (1, 0)
    event = mem.store.audit_events(object_type="procedure")[0]
    assert event.action == "reflect" and event.detail["failed_trajectory_id"] == failed


def test_later_successes_merge_into_the_reflected_script_with_their_evidence(
    mem: ProceduralMemory,
) -> None:
    """A success merged into a reflected script keeps the reflection (its warning stays) and
    adds what the run showed (its counts grow), instead of only joining the evidence list."""
    (proc,) = mem.store.procedures()
    reflected = mem.update([_fail(mem, _current(mem.store, proc.id or 0))], policy="reflect")
    child = mem.store.get(ProcedureRevision, reflected.reflected[0])
    assert NO_REPEAT in child.script
    scripts = [child.script]
    for _ in range(2):
        ok = add_run(mem.store, HEAT, heated_egg(thought=True), task_type="heat")
        (merged,) = (
            mem.store.get(ProcedureRevision, i) for i in mem.update([ok], policy="reflect").built
        )
        assert merged.origin == "merge" and merged.evidence_trajectory_ids[-1] == ok
        assert NO_REPEAT in merged.script  # the reflection's lesson is kept
        assert "Reflection kept from revision" in merged.rationale
        before = read_lesson(scripts[-1]).where
        after = read_lesson(merged.script).where
        assert before is not None and after is not None
        assert sum(n for _, n in after.stats.values()) > sum(n for _, n in before.stats.values())
        scripts.append(merged.script)
    assert read_lesson(scripts[-1]).tools == {"heat": "microwave"}  # what the successes used
    assert len(mem.store.procedures()) == 1


def test_a_reflection_waits_for_review_unless_auto_approve_is_asked(
    mem: ProceduralMemory,
) -> None:
    (proc,) = mem.store.procedures()
    served = _current(mem.store, proc.id or 0)
    report = mem.update([_fail(mem, served)], policy="reflect")
    after = mem.store.get(Procedure, proc.id or 0)
    # the approved procedure stays served; the reflection is its proposal
    assert after.status == Status.approved.value and after.current_revision_id == served.id
    assert after.proposed_revision_id == report.reflected[0]


def test_two_failures_of_one_procedure_chain_their_reflections(mem: ProceduralMemory) -> None:
    (proc,) = mem.store.procedures()
    root = _current(mem.store, proc.id or 0)
    report = mem.update([_fail(mem, root), _fail(mem, root)], policy="reflect")
    first, second = (mem.store.get(ProcedureRevision, i) for i in report.reflected)
    assert first.parent_revision_id == root.id and second.parent_revision_id == first.id
    assert "followed revision" in second.rationale
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.current_revision_id, after.proposed_revision_id) == (root.id, second.id)


def test_a_failure_that_followed_no_procedure_of_a_group_that_has_one_is_skipped(
    mem: ProceduralMemory,
) -> None:
    lone = add_run(mem.store, HEAT, looping_failure(), task_type="heat", success=False)
    report = mem.update([lone], policy="reflect")
    assert report.skipped == [lone] and report.reflected == [] and report.built == []


COOL = "cool some bread and put it in shelf"


def fridge_does_nothing() -> list[Step]:
    """A failed cool run in a home whose fridge does not cool; the drawer never opens."""
    return [
        Step(index=0, action="go to drawer 1", observation="The drawer 1 is closed."),
        Step(index=1, action="open drawer 1", observation="Nothing happens."),
        Step(index=2, action="go to cabinet 1", observation="On the cabinet 1, you see a cup 1."),
        Step(index=3, action="go to countertop 1", observation="On it, you see a bread 1."),
        Step(
            index=4, action="take bread 1 from countertop 1", observation="You pick up the bread 1."
        ),
        Step(index=5, action="go to fridge 1", observation="The fridge 1 is open."),
        Step(index=6, action="cool bread 1 with fridge 1", observation="Nothing happens."),
    ]


def test_reflect_writes_a_first_procedure_from_a_failure_that_followed_none(
    mem: ProceduralMemory,
) -> None:
    """A group with no procedure: the failure becomes one that warns about what did nothing,
    waiting for review, claiming no place the object was not seen in."""
    bad = add_run(mem.store, COOL, fridge_does_nothing(), task_type="cool", success=False)
    report = mem.update([bad], policy="reflect")
    (rev_id,) = report.founded
    assert report.reflected == [rev_id] and report.built == [] and report.skipped == []
    rev = mem.store.get(ProcedureRevision, rev_id)
    assert rev.origin == "reflection" and rev.parent_revision_id is None
    assert rev.kind == "script" and rev.evidence_trajectory_ids == [bad]
    assert rev.embedding is not None and rev.author == "heuristic"
    proc = mem.store.get(Procedure, rev.procedure_id)
    assert proc.status == "pending_review" and proc.task_type == "cool"
    lesson = read_lesson(rev.script, COOL, "cool")
    assert lesson.avoid["cool"] == {"fridge"} and "cool" not in lesson.tools
    assert lesson.locked == {"drawer"}
    assert lesson.where is not None and lesson.where.hints == ["countertop"]
    assert lesson.where.stats["countertop"] == [1, 1] and lesson.where.stats["cabinet"] == [0, 1]
    assert "did not cool the bread" in rev.rationale and "written from the failure" in rev.rationale
    event = mem.store.audit_events(object_type="procedure", object_id=proc.id)[0]
    assert event.action == "reflect" and event.detail["new_procedure"] is True
    assert event.detail["failed_trajectory_ids"] == [bad]


def test_under_validation_a_failure_that_followed_none_writes_nothing(
    mem: ProceduralMemory,
) -> None:
    bad = add_run(mem.store, COOL, fridge_does_nothing(), task_type="cool", success=False)
    report = mem.update([bad], policy="validation")
    assert report.built == report.reflected == report.founded == []
    assert len(mem.store.procedures()) == 1  # only the fixture's heat procedure


def test_two_failures_of_a_new_group_chain_into_its_one_first_procedure(
    mem: ProceduralMemory,
) -> None:
    runs = [
        add_run(mem.store, COOL, fridge_does_nothing(), task_type="cool", success=False)
        for _ in range(2)
    ]
    report = mem.update(runs, policy="reflect", auto_approve=True)
    (rev_id,) = report.founded
    rev = mem.store.get(ProcedureRevision, rev_id)
    assert rev.evidence_trajectory_ids == runs and f"Then run #{runs[1]}" in rev.rationale
    assert mem.store.get(Procedure, rev.procedure_id).status == "approved"
    again = add_run(mem.store, COOL, fridge_does_nothing(), task_type="cool", success=False)
    later = mem.update([again], policy="reflect")  # the group has a procedure now
    assert later.skipped == [again] and later.founded == []


def test_validation_adds_only_successes_and_vanilla_adds_failures_too(
    mem: ProceduralMemory,
) -> None:
    steps = mem.store.steps_of(1)
    good = add_run(mem.store, "put some watch on safe", list(steps), task_type="put")
    bad = add_run(mem.store, "cool some bread and put it in shelf", looping_failure(),
                  task_type="cool", success=False)  # fmt: skip
    validation = mem.update([good, bad], policy="validation", auto_approve=True)
    assert len(validation.built) == 1 and len(mem.store.procedures()) == 2
    vanilla = mem.update([bad], policy="vanilla", auto_approve=True)
    (rev_id,) = vanilla.built
    rev = mem.store.get(ProcedureRevision, rev_id)
    assert rev.evidence_trajectory_ids == [bad] and len(mem.store.procedures()) == 3
    assert mem.store.get(Procedure, rev.procedure_id).status == "approved"  # auto_approve


def test_failing_procedure_is_deprecated_after_three_uses(mem: ProceduralMemory) -> None:
    (proc,) = mem.store.procedures()
    rev = _current(mem.store, proc.id or 0)
    ok = add_run(mem.store, HEAT, mem.store.steps_of(5), task_type="heat", followed=rev.id)
    first = mem.update([ok, _fail(mem, rev)], policy="validation")
    assert first.counted == 2 and first.deprecated == []
    second = mem.update([_fail(mem, rev)], policy="validation")
    assert second.deprecated == [proc.id]
    after = mem.store.get(Procedure, proc.id or 0)
    assert (after.use_count, after.success_count, after.status) == (3, 1, "deprecated")
    assert mem.retrieve(HEAT, k=3, log=False).items == []


def test_a_pinned_procedure_is_never_deprecated(mem: ProceduralMemory) -> None:
    (proc,) = mem.store.procedures()
    set_pinned(mem.store, proc.id or 0, actor=Actor("pat", "reviewer"), pinned=True)
    rev = _current(mem.store, proc.id or 0)
    report = mem.update([_fail(mem, rev) for _ in range(4)], policy="validation")
    assert report.deprecated == [] and mem.store.get(Procedure, proc.id or 0).status == "approved"


def test_none_policy_writes_nothing(mem: ProceduralMemory) -> None:
    (proc,) = mem.store.procedures()
    before = mem.store.counts()
    report = mem.update([_fail(mem, _current(mem.store, proc.id or 0))], policy="none")
    assert report.built == report.reflected == [] and report.counted == 0
    after = mem.store.counts()
    assert (after.revisions, after.procedures) == (before.revisions, before.procedures)
    assert mem.store.get(Procedure, proc.id or 0).use_count == 0


def test_reflect_through_the_openai_backend_records_its_model_and_tokens(
    store: Store, embedder: Embedder
) -> None:
    _, act = heat_runs(store)
    answer = (
        "<analysis>Step 3 heats in a closed microwave.</analysis>\n<failing_step>3"
        "</failing_step>\n<script>\n1. find <object>\n2. take <object>\n3. go to "
        "microwave\n4. open microwave\n5. heat <object> with microwave\n</script>"
    )
    with ChatServer() as server:
        server.push(Scripted(text="no tags at all"), Scripted(text=answer, completion_tokens=30))
        settings = Settings(openai_base_url=server.base_url, llm_model="gpt-4o-test",
                            llm_max_retries=1)  # fmt: skip
        heuristic = ProceduralMemory(store, embedder=embedder, backend="heuristic")
        (built,) = heuristic.build([act], status=Status.approved)
        mem = ProceduralMemory(store, settings=settings, embedder=embedder, backend="openai")
        report = mem.update([_fail(mem, built)], policy="reflect")
    child = store.get(ProcedureRevision, report.reflected[0])
    assert child.author == "llm:gpt-4o-test" and child.model == "gpt-4o-test"
    assert child.script.splitlines()[3] == "4. open microwave"
    assert child.rationale == "Step 3 heats in a closed microwave."
    assert report.tokens == 18 + 41
    assert store.audit_events(object_type="procedure")[0].detail["tokens"] == 59


def test_a_success_merged_into_a_reflected_script_is_absorbed_by_the_openai_backend_too(
    store: Store, embedder: Embedder
) -> None:
    """The model keeps the reflection's correction and adds what the new success showed;
    it is asked with the reflected script and the successful run, and its answer is the
    merge revision (authored by the model), not the old text with one more evidence id."""
    reflected = (
        "<analysis>Step 3 heats in a closed microwave.</analysis>\n<failing_step>3"
        "</failing_step>\n<script>\n1. find <object>\n2. take <object>\n3. open microwave\n"
        "4. heat <object> with microwave\n</script>"
    )
    absorbed = (
        "<script>\n1. find <object>: check countertop\n2. take <object>\n3. open microwave\n"
        "4. heat <object> with microwave\n5. put <object> in/on <receptacle>\n</script>\n"
        "<rationale>The success found the egg on the countertop.</rationale>"
    )
    _, act = heat_runs(store)
    heuristic = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (built,) = heuristic.build([act], status=Status.approved)
    with ChatServer() as server:
        server.push(Scripted(text=reflected), Scripted(text=absorbed, completion_tokens=25))
        settings = Settings(openai_base_url=server.base_url, llm_model="gpt-4o-test")
        mem = ProceduralMemory(store, settings=settings, embedder=embedder, backend="openai")
        mem.update([_fail(mem, built)], policy="reflect", auto_approve=True)
        ok = add_run(store, HEAT, heated_egg(thought=False), task_type="heat")
        report = mem.update([ok], policy="reflect", auto_approve=True)
        asked = server.received[-1]
    (merged,) = (store.get(ProcedureRevision, i) for i in report.built)
    assert merged.origin == "merge" and merged.author == "llm:gpt-4o-test"
    assert merged.script.splitlines()[0] == "1. find <object>: check countertop"
    assert "Reflection kept from revision" in merged.rationale
    assert merged.evidence_trajectory_ids[-1] == ok
    prompt = asked.messages[-1]["content"]
    assert "3. open microwave" in prompt and "take egg 1 from countertop 1" in prompt


def test_the_openai_backend_writes_a_first_procedure_from_a_failure_with_an_empty_script(
    store: Store, embedder: Embedder
) -> None:
    """The model is asked to revise an empty procedure ("(empty)") and its answer becomes
    the group's first procedure, waiting for review."""
    answer = (
        "<analysis>The fridge did nothing at step 6.</analysis>\n<failing_step>6"
        "</failing_step>\n<script>\n1. find <object>\n2. take <object>\n3. cool <object>:"
        " not fridge\n4. go to <receptacle>\n5. put <object> in/on <receptacle>\n</script>"
    )
    bad = add_run(store, COOL, fridge_does_nothing(), task_type="cool", success=False)
    with ChatServer() as server:
        server.push(Scripted(text=answer, completion_tokens=30))
        settings = Settings(openai_base_url=server.base_url, llm_model="gpt-4o-test")
        mem = ProceduralMemory(store, settings=settings, embedder=embedder, backend="openai")
        report = mem.update([bad], policy="reflect")
        (asked,) = server.received
    assert "Procedure the agent followed:\n(empty)" in asked.messages[-1]["content"]
    (rev_id,) = report.founded
    rev = store.get(ProcedureRevision, rev_id)
    assert rev.author == "llm:gpt-4o-test" and rev.rationale == "The fridge did nothing at step 6."
    assert read_lesson(rev.script, COOL, "cool").avoid["cool"] == {"fridge"}
    assert store.get(Procedure, rev.procedure_id).status == "pending_review"
    assert report.tokens == 11 + 30


def test_unknown_update_policy_lists_the_valid_names(mem: ProceduralMemory) -> None:
    with pytest.raises(ConfigError, match="none, reflect, validation, vanilla"):
        mem.update([1], policy="adjust")


def test_build_reflect_edit_and_retrieve_on_sqlite_and_postgres(
    any_store: Store, embedder: Embedder
) -> None:
    mem = ProceduralMemory(any_store, embedder=embedder, backend="heuristic")
    (built,) = mem.build(heat_runs(any_store), status=Status.approved)
    report = mem.update([_fail(mem, built)], policy="reflect", auto_approve=True)
    child = any_store.get(ProcedureRevision, report.reflected[0])
    assert child.parent_revision_id == built.id
    with pytest.raises(ConflictError):
        edit(any_store, built.procedure_id, actor=Actor("ed", "reviewer"), script="1. look",
             comment="", base_revision_id=built.id or 0, embedder=embedder)  # fmt: skip
    top = mem.retrieve("heat some bread and put it in shelf", k=1).first()
    assert top is not None and top.revision.id == child.id
    assert any_store.counts().retrievals == 1
