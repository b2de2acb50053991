"""Build with the real heuristic backend: on the simulator's ALFWorld transcripts
(tests/household_runs.py, any clone) and on ReAct's real ones (../shared/data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from household_runs import AGENT, add_run, load_runs, run, runs

from memp_core.build import group_identity, unused_successes
from memp_core.coldstart import seed_ids
from memp_core.embeddings import Embedder, from_bytes, get_embedder
from memp_core.errors import ConfigError, ConflictError
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Status, Step
from memp_core.review import Actor, reject
from memp_core.store import Store

TRANSCRIPTS = "reflexion-alfworld/react_prompts_alfworld.json"


def parse_transcript(text: str) -> tuple[str, list[Step]]:
    """Task and steps of one ALFWorld transcript ('> action' lines, then the observation)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if "Your task is to:" in ln)
    task = lines[start].split("Your task is to:", 1)[1].strip().rstrip(".")
    steps: list[Step] = []
    for i, line in enumerate(lines[start + 1 :], start=start + 1):
        if not line.startswith("> "):
            continue
        said = line[2:].strip()
        obs = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if said.startswith("think:"):
            steps.append(Step(index=len(steps), thought=said[6:].strip(), observation=obs))
        else:
            steps.append(Step(index=len(steps), action=said, observation=obs))
    return task, steps


def load_alfworld(store: Store, shared_data: Path) -> dict[str, int]:
    """ReAct's 24 real transcripts as successful trajectories; key -> trajectory id."""
    data = json.loads((shared_data / TRANSCRIPTS).read_text())
    ids: dict[str, int] = {}
    for key, text in data.items():
        task, steps = parse_transcript(text)
        ids[key] = add_run(store, task, steps, task_type=key.split("_")[1])
    return ids


@pytest.fixture(name="alfworld")
def alfworld_fixture(store: Store) -> dict[str, int]:
    """The simulator's 24 transcripts (two tasks of each type, each run react_ and act_)."""
    return load_runs(store)


# Session templates: the simulator's transcripts loaded (and built) once, copied into each
# test's own file, so tests that are not about building do not pay for it again.


def _template(factory: pytest.TempPathFactory, status: Status | None) -> Path:
    path = factory.mktemp("template") / "memp.db"
    store = Store(f"sqlite:///{path}")
    load_runs(store)
    if status is not None:
        ProceduralMemory(store, embedder=get_embedder(), backend="heuristic").build(status=status)
    with store.engine.connect() as conn:  # fold the WAL into the file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.dispose()
    return path


@pytest.fixture(scope="session")
def loaded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _template(tmp_path_factory, None)


@pytest.fixture(scope="session")
def pending_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _template(tmp_path_factory, Status.pending_review)


@pytest.fixture(scope="session")
def approved_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _template(tmp_path_factory, Status.approved)


def store_from(template: Path, db_url: str) -> Store:
    """A store on a private copy of a template database (at the test's ``db_url``)."""
    shutil.copyfile(template, db_url.removeprefix("sqlite:///"))
    return Store(db_url)


def test_script_build_groups_the_react_and_act_runs_of_each_task(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    revs = ProceduralMemory(store, embedder=embedder, backend="heuristic").build()
    assert len(revs) == 12  # 12 distinct tasks, each run twice (react_ and act_)
    procs = store.procedures()
    assert {p.task_type for p in procs} == {"put", "clean", "heat", "cool", "puttwo", "examine"}
    assert all(p.status == Status.pending_review.value for p in procs)
    heat = next(r for r in revs if r.evidence_trajectory_ids[0] == alfworld["react_heat_0"])
    assert set(heat.evidence_trajectory_ids) == {alfworld["react_heat_0"], alfworld["act_heat_0"]}
    assert heat.origin == "build" and heat.author == "heuristic" and heat.kind == "script"
    assert heat.parent_revision_id is None and "<object>" in heat.script
    assert heat.script.splitlines()[0].startswith("1. ")
    assert from_bytes(heat.embedding or b"").shape == (embedder.dimension,)
    heated = next(a for _, a, _ in run("act_heat_0").lines if (a or "").startswith("heat "))
    tool = heated.rsplit(" with ", 1)[1].split()[0]  # "heat mug 1 with microwave 1"
    assert heat.facts == {"task_type": "heat", "object": "mug", "receptacle": "sinkbasin",
                          "tool": tool}  # fmt: skip
    events = store.audit_events(object_type="procedure")
    assert len(events) == 12 and {e.action for e in events} == {"build"}


def test_react_s_real_alfworld_transcripts_build_one_procedure_per_task(
    store: Store, embedder: Embedder, shared_data: Path
) -> None:
    ids = load_alfworld(store, shared_data)
    revs = ProceduralMemory(store, embedder=embedder, backend="heuristic").build()
    assert len(revs) == 12  # 12 distinct tasks, each run twice (react_ and act_)
    heat = next(r for r in revs if r.evidence_trajectory_ids[0] == ids["react_heat_0"])
    assert set(heat.evidence_trajectory_ids) == {ids["react_heat_0"], ids["act_heat_0"]}
    assert heat.facts == {"task_type": "heat", "object": "egg", "receptacle": "diningtable",
                          "tool": "microwave"}  # fmt: skip
    cool = next(r for r in revs if r.evidence_trajectory_ids[0] == ids["react_cool_1"])
    assert cool.facts["object"] == "mug" and "<object>" in cool.script


def test_a_second_build_finds_nothing_new(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    mem.build()
    assert unused_successes(store) == [] and mem.build() == []


def test_trajectory_policy_keeps_the_verbatim_steps_of_the_shortest_run(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    ids = [alfworld["react_put_0"], alfworld["act_put_0"]]
    (rev,) = mem.build(ids, policy="trajectory", status=Status.approved)
    act_steps = store.steps_of(alfworld["act_put_0"])  # the act_ run has no think steps
    assert rev.kind == "trajectory" and rev.script == ""
    assert [s["action"] for s in rev.steps] == [s.action for s in act_steps]
    assert rev.model == AGENT  # verbatim steps: the agent's model wrote them
    assert store.get(Procedure, rev.procedure_id).status == "approved"


def test_proceduralization_holds_script_and_example_steps(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([alfworld["react_cool_1"]], policy="proceduralization")
    assert rev.kind == "proceduralization" and rev.script.startswith("1. ")
    cooled = next(a for _, a, _ in run("react_cool_1").lines if (a or "").startswith("cool "))
    assert any(s["action"] == cooled for s in rev.steps)


def test_a_new_run_of_the_same_task_merges_into_its_procedure(
    store: Store, embedder: Embedder
) -> None:
    heat = run("act_heat_1")
    assert heat.task == "put a hot apple in cabinet"
    first = add_run(store, heat.task, heat.steps, task_type="heat")
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (built,) = mem.build([first])
    again = add_run(store, "heat some apple and put it in cabinet", heat.steps, task_type="heat")
    (merged,) = mem.build([again])
    assert merged.procedure_id == built.procedure_id and len(store.procedures()) == 1
    assert merged.origin == "merge" and merged.parent_revision_id == built.id
    assert merged.evidence_trajectory_ids == [first, again]
    assert store.get(Procedure, built.procedure_id).current_revision_id == merged.id
    assert store.get(ProcedureRevision, int(built.id or 0)).evidence_trajectory_ids == [first]


def test_a_rejected_procedure_is_not_merged_into(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (old,) = mem.build([alfworld["react_clean_1"]])
    reject(store, old.procedure_id, actor=Actor("ann", "reviewer"), reason="too vague")
    (new,) = mem.build([alfworld["act_clean_1"]])
    assert new.procedure_id != old.procedure_id and new.origin == "build"
    keys = sorted(p.key for p in store.procedures())
    assert run("act_clean_1").task == "put a clean apple in fridge"
    assert keys == ["clean-apple-fridge", "clean-apple-fridge-2"]


def test_near_identical_task_sentences_share_a_group() -> None:
    assert group_identity("put a hot apple in fridge", "") == group_identity(
        "heat some apple and put it in fridge 1", "heat"
    )
    assert group_identity("put a cool mug in shelf", "")[1] == "cool-mug-shelf"
    assert group_identity("find some apple and put it in sidetable", "")[1] == "put-apple-sidetable"
    other = group_identity("tidy up the kitchen counter", "put")  # the parser cannot read it
    assert other[0] == "put" and other[1].startswith("put-tidy-up-the-kitchen-counter-")


def test_stale_expected_revision_writes_nothing(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([alfworld["react_put_0"]])
    before = store.counts().revisions
    with pytest.raises(ConflictError, match=f"current revision is {rev.id}"):
        with store.transaction() as s:
            child = ProcedureRevision(procedure_id=rev.procedure_id, script="1. x")
            append_revision(s, rev.procedure_id, child, expected_current=int(rev.id or 0) + 99)
    assert store.counts().revisions == before
    assert store.get(Procedure, rev.procedure_id).current_revision_id == rev.id


def test_cold_start_seeds_from_the_best_successful_runs_per_type(
    store: Store, embedder: Embedder, alfworld: dict[str, int]
) -> None:
    add_run(store, "put a mug in shelf", [Step(index=0, action="look")], success=False)
    chosen = seed_ids(store, top=1)
    assert len(chosen) == 6  # one per task type; the failed 1-step run is never chosen
    shortest = min((r for r in runs() if r.task_type == "put"), key=lambda r: len(r.lines))
    assert shortest.key.startswith("act_") and alfworld[shortest.key] in chosen
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    revs = mem.cold_start(top=1)
    assert {store.get(Procedure, r.procedure_id).task_type for r in revs} == {
        "put", "clean", "heat", "cool", "puttwo", "examine"
    }  # fmt: skip


def test_unknown_build_policy_lists_the_valid_names(store: Store, embedder: Embedder) -> None:
    run = add_run(store, "put a mug in shelf", [Step(index=0, action="look")])
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    with pytest.raises(ConfigError, match="trajectory, script, proceduralization"):
        mem.build([run], policy="summary")
