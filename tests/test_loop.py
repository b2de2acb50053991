"""The online loop: runs, per-group metrics, update policies, reflection lineage, replay."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from memp_core.actor import Actor
from memp_core.cli import app
from memp_core.embeddings import CachedEmbedder, Embedder
from memp_core.loop import LoopConfig, replay, run_loop, start_run
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Retrieval, Run, Step, Trajectory
from memp_core.sim.bench import BenchConfig, run_learning_bench, write_png
from memp_core.store import Store


@pytest.fixture(name="memory")
def memory_fixture(store: Store, embedder: Embedder) -> ProceduralMemory:
    return ProceduralMemory(store, embedder=CachedEmbedder(embedder), backend="heuristic")


def rows(store: Store, model: type) -> list:
    with store.session() as s:
        return list(s.exec(select(model)).all())


def test_run_stores_config_group_metrics_trajectories_and_linked_retrievals(
    store: Store, memory: ProceduralMemory
) -> None:
    result = run_loop(store, LoopConfig(memory="validation", tasks=12, groups=3, seed=1),
                      memory=memory)  # fmt: skip
    run = store.get(Run, result.run_id)
    assert run.status == "done" and run.kind == "online" and run.agent_model == "heuristic-strong"
    assert (run.update_policy, run.retrieve_policy, run.k, run.seed) == (
        "validation",
        "query",
        3,
        1,
    )
    assert [g["index"] for g in run.metrics] == [0, 1, 2]
    assert all(g["tasks"] == 4 and 0 <= g["success_rate"] <= 1 for g in run.metrics)
    for g in run.metrics:  # failures count at the step limit, so the mean is at most 50
        assert g["mean_steps"] <= 50 and g["successes"] == round(g["success_rate"] * 4)
    trajs = rows(store, Trajectory)
    assert len(trajs) == 12 and {t.environment for t in trajs} == {"household-sim"}
    assert {t.source for t in trajs} == {"simulator"} and {t.group_index for t in trajs} == {
        0,
        1,
        2,
    }
    steps = rows(store, Step)
    assert len(steps) == sum(t.step_count for t in trajs)
    assert any(s.is_error for s in steps)  # trial and error leaves marks
    retrievals = rows(store, Retrieval)
    assert len(retrievals) == 12 and all(r.trajectory_id is not None for r in retrievals)
    assert result.success_rate == pytest.approx(sum(t.success for t in trajs) / 12)


def test_validation_builds_memory_only_from_successes(
    store: Store, memory: ProceduralMemory
) -> None:
    run_loop(store, LoopConfig(memory="validation", tasks=12, groups=2, seed=2), memory=memory)
    success = {t.id: t.success for t in rows(store, Trajectory)}
    evidence = [i for r in rows(store, ProcedureRevision) for i in r.evidence_trajectory_ids]
    assert evidence and all(success[i] for i in evidence)
    assert {p.status for p in rows(store, Procedure)} <= {"approved", "deprecated"}


def test_no_memory_writes_no_procedures_and_no_retrievals(store: Store) -> None:
    result = run_loop(store, LoopConfig(memory="none", retrieve=None, tasks=6, groups=2))
    assert result.status == "done" and len(result.groups) == 2
    assert rows(store, ProcedureRevision) == [] and rows(store, Retrieval) == []
    assert all(t.procedure_revision_id is None for t in rows(store, Trajectory))


def test_reflect_adds_child_revisions_with_the_failed_run_as_evidence(
    store: Store, memory: ProceduralMemory
) -> None:
    cfg = LoopConfig(memory="reflect", tasks=16, groups=2, seed=0, task_types=("cool",))
    result = run_loop(store, cfg, memory=memory)
    children = [r for r in rows(store, ProcedureRevision) if r.origin == "reflection"]
    assert result.reflections == len(children) >= 1
    failed = {t.id for t in rows(store, Trajectory) if not t.success}
    for child in children:
        assert child.evidence_trajectory_ids and set(child.evidence_trajectory_ids) <= failed
        assert child.author == "heuristic" and child.rationale.startswith("The run failed")
        if child.parent_revision_id is None:  # a failure that followed none wrote the first
            assert "written from the failure alone" in child.rationale
            assert child.kind == "script" and child.steps == []
            continue
        parent = store.get(ProcedureRevision, child.parent_revision_id)
        assert parent.procedure_id == child.procedure_id and parent.script != child.script
    assert any(c.parent_revision_id is not None for c in children)


def test_review_mode_leaves_learned_procedures_in_the_queue(
    store: Store, memory: ProceduralMemory
) -> None:
    run_loop(store, LoopConfig(memory="validation", tasks=6, groups=1, seed=3,
                               auto_approve=False), memory=memory)  # fmt: skip
    statuses = {p.status for p in rows(store, Procedure)}
    assert statuses == {"pending_review"}


def test_cancel_keeps_the_finished_groups_and_marks_the_run(
    store: Store, memory: ProceduralMemory
) -> None:
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            stop.set()

    result = run_loop(store, LoopConfig(memory="validation", tasks=12, groups=3),
                      memory=memory, progress=progress, cancel=stop)  # fmt: skip
    run = store.get(Run, result.run_id)
    assert run.status == "cancelled" and run.finished_at is not None
    assert len(run.metrics) == 1  # group 1 (tasks 1-4) finished; group 2 was cut short
    assert len(rows(store, Trajectory)) == 5


def test_start_run_is_the_dashboard_entry_point(store: Store, embedder: Embedder) -> None:
    seen: list[int] = []
    run = start_run(store, actor=Actor("rita", "reviewer"), memory="none", tasks=4, groups=2,
                    progress=lambda d, t: seen.append(d))  # fmt: skip
    assert isinstance(run, Run) and run.status == "done" and seen == [1, 2, 3, 4]


def test_replay_compares_a_revision_with_its_parent_in_a_sandbox(
    store: Store, memory: ProceduralMemory
) -> None:
    run_loop(store, LoopConfig(memory="reflect", tasks=16, groups=2, seed=0,
                               task_types=("cool",)), memory=memory)  # fmt: skip
    revisions = rows(store, ProcedureRevision)
    child = next(r for r in revisions if r.origin == "reflection" and r.parent_revision_id)
    before = store.counts()
    res = replay(store, int(child.id), n_tasks=4, seed=1)
    assert store.counts() == before  # nothing written
    assert res.task_type == "cool" and res.revision.tasks == res.baseline.tasks == 4
    assert res.baseline.revision_id == child.parent_revision_id
    assert res.baseline.label.startswith("parent revision")
    assert len(res.rows()) == 2 and "sandbox" in res.note
    first = rows(store, ProcedureRevision)[0]
    if first.parent_revision_id is None:
        assert replay(store, int(first.id), n_tasks=2).baseline.label == "no memory"


def test_memp_run_command_prints_json(db_url: str, embedder: Embedder) -> None:
    res = CliRunner().invoke(app, ["run", "--memory", "validation", "--tasks", "6", "--groups",
                                   "2", "--seed", "4", "--json", "--db", db_url])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "done" and len(out["groups"]) == 2 and out["tasks"] == 6
    assert 0 <= out["success_rate"] <= 1
    listed = CliRunner().invoke(app, ["runs", "--json", "--db", db_url])
    assert json.loads(listed.stdout)[0]["memory"] == "validation"


def test_memp_run_rejects_an_unknown_policy(db_url: str) -> None:
    res = CliRunner().invoke(app, ["run", "--memory", "sometimes", "--db", db_url])
    assert res.exit_code == 1 and "unknown memory policy" in res.output


def test_learning_bench_reports_every_condition_and_draws_curves(
    embedder: Embedder, tmp_path: Path
) -> None:
    cfg = BenchConfig(train=12, test=6, groups=2, seed=5)
    result = run_learning_bench(cfg, embedder=embedder)
    data = result.as_dict()
    assert set(data["conditions"]) == {"none", "vanilla", "validation", "reflect", "random",
                                       "weak", "transfer"}  # fmt: skip
    for cond in data["conditions"].values():
        assert 0 <= cond["success_rate"] <= 1 and 0 < cond["mean_steps"] <= 50
    assert len(data["conditions"]["reflect"]["curve"]) == 2
    png = write_png(result, tmp_path / "out" / "learning.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_memory_policies_write_to_the_run_they_belong_to(
    store: Store, memory: ProceduralMemory
) -> None:
    a = run_loop(store, LoopConfig(memory="reflect", tasks=4, groups=1, seed=6), memory=memory)
    with store.session() as s:
        ids = s.exec(select(Trajectory.id).where(col(Trajectory.run_id) == a.run_id)).all()
    assert sorted(ids) == sorted(a.trajectory_ids)


def test_demo_fills_an_empty_database_once(store: Store, embedder: Embedder) -> None:
    from memp_core.config import Settings
    from memp_core.demo import DemoRefusedError, build_demo

    report = build_demo(store, Settings(database_url=store.url), scale=0.1, embedder=embedder)
    runs = {r.id: r for r in store.runs()}
    assert set(report.runs) <= set(runs)
    isolated = [r for r in runs.values() if r.config.get("isolated")]
    assert {r.update_policy for r in isolated} == {"none", "vanilla", "validation", "reflect"}
    assert all(r.metrics for r in isolated)  # curves, though their trajectories stayed behind
    assert any(r.kind == "import" for r in runs.values())  # the simulator's ReAct trial log
    assert report.imported["trajectories"] > 0 and report.built_for_review > 0
    imported = [t for t in rows(store, Trajectory) if t.source.startswith("import")]
    assert all("household-sim" in t.source for t in imported)  # labelled simulator runs
    assert {t.success for t in imported} == {True, False, None}  # None: a chat log's unknown
    assert report.unknown_outcomes == sum(t.success is None for t in imported)
    statuses = {p.status for p in rows(store, Procedure)}
    assert {"approved", "pending_review"} <= statuses  # served memory and a review queue
    transfer = next(r for r in runs.values() if "transfer" in r.name)
    assert transfer.agent_model == "heuristic-weak" and transfer.retrieve_policy == "query"
    with pytest.raises(DemoRefusedError, match="only fills an empty database"):
        build_demo(store, Settings(database_url=store.url), scale=0.1, embedder=embedder)


def test_demo_command_refuses_a_filled_database_and_resets_on_request(db_url: str) -> None:
    store = Store(db_url)
    run_loop(store, LoopConfig(memory="none", retrieve=None, tasks=2, groups=1))
    store.dispose()
    res = CliRunner().invoke(app, ["demo", "--no-launch", "--db", db_url])
    assert res.exit_code == 1 and "--reset" in res.output


def test_reset_deletes_only_sqlite_files(tmp_path: Path) -> None:
    from memp_core.demo import DemoRefusedError, reset_sqlite

    store = Store(f"sqlite:///{tmp_path / 'demo.db'}")
    assert (tmp_path / "demo.db").exists()
    assert reset_sqlite(store) == tmp_path / "demo.db"
    assert not (tmp_path / "demo.db").exists()
    with pytest.raises(DemoRefusedError, match="only deletes SQLite files"):
        reset_sqlite(Store("postgresql+psycopg://u:p@127.0.0.1:1/none", create=False))


def test_llm_agent_runs_in_the_loop_and_its_tokens_are_counted(store: Store) -> None:
    from memp_core.config import Settings
    from tests.llm_server import ChatServer

    with ChatServer(responder=lambda messages: "look") as server:
        settings = Settings(openai_base_url=server.base_url, openai_api_key="test",
                            llm_model="test-model", llm_max_retries=0)  # fmt: skip
        cfg = LoopConfig(agent="llm", memory="none", retrieve=None, tasks=2, groups=1,
                         max_steps=3)  # fmt: skip
        result = run_loop(store, cfg, settings=settings)
    run = store.get(Run, result.run_id)
    assert run.agent == "llm" and run.agent_model == "test-model"
    assert run.metrics[0]["tokens"] > 0 and run.metrics[0]["mean_steps"] == 3
    trajs = rows(store, Trajectory)
    assert all(t.token_count > 0 and t.step_count == 3 and not t.success for t in trajs)
    assert len(server.received) == 6  # one completion per step
