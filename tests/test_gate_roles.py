"""The review gate in the core (issue 11 items 5, 9, 10, the CLI's actor, the `%` filter;
issue 16 item 2): each attack as a test, against real SQLite (and Postgres where storage
matters), the real heuristic backend and real embeddings where retrieval quality matters."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import HashEmbedder
from household_runs import add_run
from sqlmodel import col, select
from typer.testing import CliRunner

from memp_core.actor import Actor, os_user, system
from memp_core.cli import app
from memp_core.embeddings import CachedEmbedder, Embedder, to_bytes
from memp_core.errors import PermissionDeniedError, StoreError
from memp_core.landing import append_revision
from memp_core.loop import LoopConfig, run_experiment, run_loop, start_run
from memp_core.memory import ProceduralMemory
from memp_core.models import (
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Status,
    Step,
    Trajectory,
)
from memp_core.queue import list_procedures
from memp_core.review import approve, deprecate, edit, reject, rollback, set_pinned
from memp_core.store import Store

RITA = Actor("rita", "reviewer")
VIC = Actor("vic", "viewer")
BOT = Actor("bot", "admin", kind="agent")  # an agent's key, however strong its role
POLICIES = ("query", "facts", "random", "hybrid")


def mug_steps() -> list[Step]:
    said = [
        ("go to countertop 1", "On the countertop 1, you see a mug 1."),
        ("take mug 1 from countertop 1", "You pick up the mug 1."),
        ("go to shelf 1", "On the shelf 1, you see nothing."),
        ("put mug 1 in/on shelf 1", "You put the mug 1 in/on the shelf 1."),
    ]
    return [Step(index=i, action=a, observation=o) for i, (a, o) in enumerate(said)]


@pytest.fixture(name="mem")
def mem_fixture(store: Store, hash_embedder: HashEmbedder) -> ProceduralMemory:
    return ProceduralMemory(store, embedder=hash_embedder, backend="heuristic")


@pytest.fixture(name="built")
def built_fixture(store: Store, mem: ProceduralMemory) -> ProcedureRevision:
    """One procedure, pending review, built by a reviewer from a successful run."""
    run = add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    (rev,) = mem.build([run], actor=RITA)
    return rev


def rows(store: Store, model: type) -> list:  # type: ignore[type-arg]
    with store.session() as s:
        return list(s.exec(select(model).order_by(col(model.id))).all())


# -- 9: every write checks its actor ------------------------------------------------------


def test_actor_has_no_default_role() -> None:
    with pytest.raises(TypeError):
        Actor("anyone")  # type: ignore[call-arg]
    with pytest.raises(PermissionDeniedError, match="unknown role"):
        Actor("anyone", "superuser")  # type: ignore[arg-type]
    from memp_core import review

    assert review.Actor is Actor  # older imports get the one Actor, not an admin default


Action = Callable[[], object]


def _review_actions(store: Store, built: ProcedureRevision, actor: Actor) -> list[Action]:
    pid, rid = built.procedure_id, int(built.id or 0)
    return [
        lambda: approve(store, pid, actor=actor),
        lambda: reject(store, pid, actor=actor, reason="no"),
        lambda: deprecate(store, pid, actor=actor, reason="no"),
        lambda: set_pinned(store, pid, actor=actor, pinned=True),
        lambda: edit(store, pid, actor=actor, script="1. look", comment="",
                     base_revision_id=rid, embedder=HashEmbedder()),
        lambda: rollback(store, pid, actor=actor, to_revision_id=rid),
    ]  # fmt: skip


@pytest.mark.parametrize("who", [VIC, BOT, system("update")], ids=["viewer", "agent", "program"])
def test_viewer_agent_or_program_cannot_approve_reject_edit_rollback_pin_or_deprecate(
    store: Store, built: ProcedureRevision, who: Actor
) -> None:
    before = rows(store, Procedure)
    for action in _review_actions(store, built, who):
        with pytest.raises(PermissionDeniedError):
            action()
    assert rows(store, Procedure) == before and len(rows(store, ProcedureRevision)) == 1
    assert [e.action for e in store.audit_events()] == ["build"]


def test_agent_actor_cannot_approve_even_as_admin(store: Store, built: ProcedureRevision) -> None:
    with pytest.raises(PermissionDeniedError, match="only a person"):
        approve(store, built.procedure_id, actor=BOT)
    assert store.get(Procedure, built.procedure_id).status == "pending_review"
    assert approve(store, built.procedure_id, actor=RITA).status == "approved"


def test_viewer_cannot_build_update_or_cold_start(store: Store, mem: ProceduralMemory) -> None:
    run = add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    with pytest.raises(PermissionDeniedError, match="viewer"):
        mem.build([run], actor=VIC)
    with pytest.raises(PermissionDeniedError, match="viewer"):
        mem.update([run], policy="validation", actor=VIC)
    with pytest.raises(PermissionDeniedError, match="viewer"):
        mem.cold_start(actor=VIC)
    assert rows(store, Procedure) == [] and store.audit_events() == []


def test_agent_cannot_build_approved_procedures(store: Store, mem: ProceduralMemory) -> None:
    run = add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    agent = Actor("bot", "reviewer", kind="agent")
    with pytest.raises(PermissionDeniedError, match="waits for a reviewer"):
        mem.build([run], status=Status.approved, actor=agent)
    with pytest.raises(PermissionDeniedError, match="waits for a reviewer"):
        mem.update([run], policy="validation", auto_approve=True, actor=agent)
    (rev,) = mem.build([run], actor=agent)  # a proposal is fine: it waits for review
    assert store.get(Procedure, rev.procedure_id).status == "pending_review"
    assert store.audit_events()[0].actor == "agent:bot"


def test_build_and_update_audit_their_actor(store: Store, mem: ProceduralMemory) -> None:
    run = add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    mem.build([run], actor=RITA)
    again = add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    mem.update([again], policy="validation", auto_approve=False)
    assert [e.actor for e in reversed(store.audit_events())] == ["human:rita", "memp:update"]


def test_viewer_cannot_start_run(store: Store, hash_embedder: HashEmbedder) -> None:
    with pytest.raises(PermissionDeniedError, match="start experiments"):
        start_run(store, actor=VIC, memory="reflect", tasks=2, groups=1, embedder=hash_embedder)
    with pytest.raises(PermissionDeniedError, match="start experiments"):
        run_experiment(store, LoopConfig(tasks=2, groups=1), actor=VIC, embedder=hash_embedder)
    assert rows(store, Run) == [] and rows(store, Trajectory) == []


def test_viewer_cannot_import(store: Store, tmp_path: Path) -> None:
    from memp_core.importers import import_paths

    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(PermissionDeniedError):
        import_paths(store, [path], actor=VIC, fmt="auto")
    assert rows(store, Trajectory) == []


# -- 10: experiments run on their own memory ----------------------------------------------


def with_approved(store: Store, embedder: Embedder) -> tuple[Store, Procedure]:
    """A shared database whose agents are served one procedure a person approved."""
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([add_run(store, "put a mug in shelf", mug_steps(), task_type="put")],
                       actor=RITA)  # fmt: skip
    return store, approve(store, rev.procedure_id, actor=RITA)


@pytest.fixture(name="shared")
def shared_fixture(store: Store, embedder: Embedder) -> tuple[Store, Procedure]:
    return with_approved(store, embedder)


def test_dashboard_experiment_does_not_serve_its_procedures_to_shared_agents(
    shared: tuple[Store, Procedure], embedder: Embedder
) -> None:
    store, approved = shared
    run = start_run(store, actor=RITA, memory="reflect", tasks=30, groups=3, seed=7,
                    embedder=CachedEmbedder(embedder))  # fmt: skip
    assert run.status == "done" and run.config["isolated"] is True
    procs = rows(store, Procedure)
    learned = [p for p in procs if p.id != approved.id]
    assert learned and {p.status for p in learned} <= {"pending_review", "deprecated"}
    assert all(p.key.endswith(f"-run{run.id}") and p.use_count == 0 for p in learned)
    # the shared procedure is untouched: no reflection, no count, no deprecation
    assert rows(store, Procedure)[0] == approved
    # another agent of the shared database is served what a person approved, nothing else
    agent = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    for task in ("put a mug in shelf", "heat some egg and put it in garbagecan"):
        served = agent.retrieve(task, k=10, log=False)
        assert {it.procedure.id for it in served} <= {approved.id}


def test_experiment_lands_its_runs_curves_and_lineage_in_the_shared_database(
    any_store: Store, embedder: Embedder
) -> None:
    store, approved = with_approved(any_store, embedder)
    result = run_experiment(store, LoopConfig(memory="reflect", tasks=30, groups=3, seed=7),
                            actor=RITA, embedder=CachedEmbedder(embedder))  # fmt: skip
    run = store.get(Run, result.run_id)
    assert [g["index"] for g in run.metrics] == [0, 1, 2] and run.finished_at is not None
    trajs = [t for t in rows(store, Trajectory) if t.run_id == run.id]
    assert sorted(result.trajectory_ids) == [t.id for t in trajs] and len(trajs) == 30
    steps = [s for s in rows(store, Step) if s.trajectory_id in set(result.trajectory_ids)]
    assert len(steps) == sum(t.step_count for t in trajs)
    revs = {r.id: r for r in rows(store, ProcedureRevision) if r.procedure_id in result.proposed}
    assert result.reflections >= 1 and any(r.origin == "reflection" for r in revs.values())
    for rev in revs.values():  # lineage and evidence point into the landed rows
        assert rev.parent_revision_id is None or revs[rev.parent_revision_id].procedure_id == (
            rev.procedure_id
        )
        assert set(rev.evidence_trajectory_ids) <= set(result.trajectory_ids)
    followed = {t.procedure_revision_id for t in trajs} - {None}
    assert followed and followed <= set(revs)
    retrievals = [r for r in rows(store, Retrieval) if r.run_id == run.id]
    assert len(retrievals) == 30 and all(r.trajectory_id in set(result.trajectory_ids)
                                         for r in retrievals)  # fmt: skip
    for item in (it for r in retrievals for it in r.results):
        assert item["revision_id"] in revs and item["procedure_id"] in result.proposed
    procs = rows(store, Procedure)
    assert procs[0] == approved  # the shared procedure: no reflection, no count
    landed = [p for p in procs if p.id in result.proposed]
    assert all(p.embedding is not None and p.current_revision_id in revs for p in landed)


def test_a_cancelled_experiment_lands_what_it_did(store: Store, embedder: Embedder) -> None:
    stop = threading.Event()

    def progress(done: int, _total: int) -> None:
        if done == 5:
            stop.set()

    result = run_experiment(store, LoopConfig(memory="validation", tasks=12, groups=3),
                            actor=RITA, embedder=CachedEmbedder(embedder), progress=progress,
                            cancel=stop)  # fmt: skip
    run = store.get(Run, result.run_id)
    assert run.status == "cancelled" and len(run.metrics) == 1
    assert len(rows(store, Trajectory)) == 5 and run.config["isolated"] is True
    assert "approved" not in {p.status for p in rows(store, Procedure)}


def test_experiment_audit_names_the_person(
    shared: tuple[Store, Procedure], embedder: Embedder
) -> None:
    store, _ = shared
    run = start_run(store, actor=RITA, memory="validation", tasks=8, groups=2, seed=2,
                    embedder=CachedEmbedder(embedder))  # fmt: skip
    assert run.config["started_by"] == "human:rita"
    events = [e for e in store.audit_events(limit=1000) if e.action in ("start", "propose")]
    assert {e.actor for e in events} == {"human:rita"}
    assert any(e.object_type == "run" and e.object_id == run.id for e in events)
    proposed = {e.object_id for e in events if e.action == "propose"}
    assert proposed == {p.id for p in rows(store, Procedure) if p.key.endswith(f"-run{run.id}")}
    assert "memp:update" not in {e.actor for e in store.audit_events(limit=1000)}


def test_a_run_that_writes_no_memory_reads_the_shared_approved_memory(
    shared: tuple[Store, Procedure], embedder: Embedder
) -> None:
    store, approved = shared
    run = start_run(store, actor=RITA, memory="none", tasks=2, groups=1,
                    embedder=CachedEmbedder(embedder))  # fmt: skip
    assert "isolated" not in run.config and rows(store, Procedure) == [approved]
    start = store.audit_events(limit=1)[0]
    assert (start.actor, start.action, start.object_id) == ("human:rita", "start", run.id)


def test_memp_run_is_isolated_and_audited_as_the_os_user(db_url: str, embedder: Embedder) -> None:
    res = CliRunner().invoke(app, ["run", "--memory", "validation", "--tasks", "6", "--groups",
                                   "2", "--seed", "4", "--json", "--db", db_url])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    store = Store(db_url)
    procs = rows(store, Procedure)
    assert procs and {p.status for p in procs} == {"pending_review"}
    assert sorted(out["proposed_for_review"]) == [p.id for p in procs]
    assert {e.actor for e in store.audit_events(limit=1000)} == {os_user().author}
    assert store.get(Run, out["run_id"]).config["started_by"] == os_user().author
    store.dispose()


# -- 5: one bad embedding cannot break retrieval -------------------------------------------

BAD = {
    "three-values": to_bytes(np.array([0.1, 0.2, 0.3])),
    "nan": to_bytes(np.full(384, np.nan)),
    "infinite": to_bytes(np.r_[np.inf, np.zeros(383)]),
}


def _add_bad_revision(store: Store, pid: int, blob: bytes) -> None:
    with store.transaction() as s:
        proc = s.get(Procedure, pid)
        rev = ProcedureRevision(
            procedure_id=pid, kind="script", task_text="put a mug in shelf", script="1. go",
            origin="import", author="import", model="somewhere", embedding=blob,
            facts={"task_type": "put", "object": "mug", "receptacle": "shelf"},
        )  # fmt: skip
        append_revision(s, pid, rev, expected_current=proc.current_revision_id if proc else None)


@pytest.mark.parametrize("bad", list(BAD))
def test_bad_embedding_row_is_skipped_by_every_policy(
    any_store: Store, hash_embedder: HashEmbedder, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    mem = ProceduralMemory(any_store, embedder=hash_embedder, backend="heuristic")
    mug = add_run(any_store, "put a mug in shelf", mug_steps(), task_type="put")
    egg = add_run(any_store, "heat some egg and put it in fridge", mug_steps(), task_type="heat")
    (broken, good) = mem.build([mug, egg], status=Status.approved, actor=RITA)
    try:
        _add_bad_revision(any_store, broken.procedure_id, BAD[bad])
    except StoreError as exc:  # pgvector refuses NaN and infinity: the write fails whole
        assert any_store.dialect == "postgresql" and bad != "three-values", exc
    caplog.set_level(logging.WARNING, logger="memp_core.index")
    for policy in POLICIES:  # served as it is: no policy fails, no score is NaN
        got = mem.retrieve("heat some egg and put it in fridge", policy=policy, k=3, seed=1)
        assert good.procedure_id in {it.procedure.id for it in got}, policy
        assert all(np.isfinite(it.score) for it in got), policy
    reject(any_store, broken.procedure_id, actor=RITA, reason="damaged import")
    for policy in POLICIES:  # and rejected
        got = mem.retrieve("heat some egg and put it in fridge", policy=policy, k=3, seed=1)
        assert [it.procedure.id for it in got] == [good.procedure_id], policy
    everything = mem.retrieve("put a mug in shelf", policy="facts", k=3, all_statuses=True)
    assert broken.procedure_id in {it.procedure.id for it in everything}  # still reachable
    if any_store.dialect == "sqlite":
        assert set(mem.index.skipped) == {broken.procedure_id}
        assert len([r for r in caplog.records if "left out of vector search" in r.message]) == 1
    run = run_loop(any_store, LoopConfig(memory="none", retrieve="hybrid", tasks=2, groups=1),
                   memory=mem)  # fmt: skip
    assert run.status == "done"  # and so does every run


def test_a_procedure_whose_bad_row_is_replaced_is_searchable_again(
    store: Store, mem: ProceduralMemory
) -> None:
    (rev,) = mem.build([add_run(store, "put a mug in shelf", mug_steps(), task_type="put")],
                       status=Status.approved, actor=RITA)  # fmt: skip
    _add_bad_revision(store, rev.procedure_id, BAD["nan"])
    assert mem.retrieve("put a mug in shelf", k=1, log=False).items == []
    rollback(store, rev.procedure_id, actor=RITA, to_revision_id=int(rev.id or 0))
    assert mem.retrieve("put a mug in shelf", k=1, log=False, all_statuses=True).first()
    assert mem.index.skipped == {}


# -- 16.2: a rollback to content nobody approved goes back to review ----------------------


def test_rollback_to_unapproved_revision_returns_to_review(
    store: Store, built: ProcedureRevision
) -> None:
    pid = built.procedure_id
    edited = edit(store, pid, actor=RITA, script="1. find the mug\n2. put it on the shelf",
                  comment="clearer", base_revision_id=int(built.id or 0),
                  embedder=HashEmbedder())  # fmt: skip
    approve(store, pid, actor=RITA, comment="good now")  # approves the edited revision only
    rollback(store, pid, actor=RITA, to_revision_id=int(built.id or 0))
    assert store.get(Procedure, pid).status == "pending_review"
    event = store.audit_events(limit=1)[0]
    assert (event.action, event.detail["before"], event.detail["after"]) == (
        "rollback", "approved", "pending_review",
    )  # fmt: skip
    served = ProceduralMemory(store, embedder=HashEmbedder()).retrieve("put a mug in shelf")
    assert served.items == []
    # rolling back to the content a person approved may keep it approved
    approve(store, pid, actor=RITA)
    back = rollback(store, pid, actor=RITA, to_revision_id=int(edited.id or 0))
    assert store.get(Procedure, pid).status == "approved" and back.script == edited.script


def test_rollback_ignores_approvals_not_made_by_a_person(
    store: Store, built: ProcedureRevision
) -> None:
    pid = built.procedure_id
    edit(store, pid, actor=RITA, script="1. look", comment="", embedder=HashEmbedder(),
         base_revision_id=int(built.id or 0))  # fmt: skip
    approve(store, pid, actor=RITA)
    with store.transaction() as s:  # a forged history row names no person
        store.audit(s, "import:backup.jsonl", "approve", "procedure", pid, revision_id=built.id)
    rollback(store, pid, actor=RITA, to_revision_id=int(built.id or 0))
    assert store.get(Procedure, pid).status == "pending_review"


# -- the CLI acts as the OS user; free-text filters are literal ---------------------------


def test_cli_actions_are_audited_as_the_os_user(db_url: str, hash_embedder: HashEmbedder) -> None:
    store = Store(db_url)
    add_run(store, "put a mug in shelf", mug_steps(), task_type="put")
    runner = CliRunner()
    built = runner.invoke(app, ["build", "--backend", "heuristic", "--json", "--db", db_url])
    assert built.exit_code == 0, built.output
    pid = json.loads(built.stdout)[0]["procedure_id"]
    res = runner.invoke(app, ["approve", str(pid), "--db", db_url, "--json"])
    assert res.exit_code == 0, res.output
    actors = [e.actor for e in reversed(store.audit_events())]
    assert actors == [os_user().author] * 2 and actors[0].startswith("human:")
    forged = runner.invoke(app, ["reject", str(pid), "--reason", "x", "--as", "alice"])
    assert forged.exit_code == 2 and "No such option" in forged.output
    assert "human:alice" not in {e.actor for e in store.audit_events()}
    store.dispose()


def test_percent_in_title_filter_is_literal(store: Store) -> None:
    with store.transaction() as s:
        for key, title in (("a", "fill 100% of the mug"), ("b", "fill the mug"),
                           ("c", "put_mug here"), ("d", "put a mug here")):  # fmt: skip
            s.add(Procedure(key=key, title=title))
    assert [p.key for p in list_procedures(store, text="%").rows] == ["a"]
    assert [p.key for p in list_procedures(store, text="100%").rows] == ["a"]
    assert [p.key for p in list_procedures(store, text="t_m").rows] == ["c"]


def test_audit_events_for_experiments_are_not_written_by_a_name_from_a_form(
    store: Store,
) -> None:
    with pytest.raises(TypeError):
        start_run(store, memory="none", tasks=1, groups=1)  # type: ignore[call-arg]
    assert rows(store, AuditEvent) == []
