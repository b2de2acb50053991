"""A process SIGKILLed in the middle of a build or an update leaves a consistent database,
and running the work again completes it once (SQLite and Postgres)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HashEmbedder
from sqlalchemy import text
from test_concurrency import OBJECTS, PLACES, add_run

from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Status
from memp_core.store import Store

TESTS = Path(__file__).resolve().parent
GROUPS = 6
# The child does the real work with a real engine; a listener (no change to the code under
# test) pauses it after its n-th revision INSERT, inside the open transaction, to be killed.
CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from conftest import HashEmbedder
from sqlalchemy import event
from memp_core.memory import ProceduralMemory
from memp_core.store import Store

url, action, pause_after, ids = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
store = Store(url, create=False)
inserted = 0

@event.listens_for(store.engine, "after_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    global inserted
    if statement.lower().lstrip().startswith("insert into procedurerevision"):
        inserted += 1
        if inserted == pause_after:
            print("MID", flush=True)
            time.sleep(300)

mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
trajectories = [int(i) for i in ids.split(",")]
if action == "build":
    mem.build(trajectories, status="approved")
else:
    mem.update(trajectories, policy="reflect")
print("DONE", flush=True)
"""


def kill_midway(url: str, action: str, ids: list[int], pause_after: int = 3) -> None:
    """Run ``action`` in a child process and SIGKILL it inside its write transaction."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(TESTS), url, action, str(pause_after),
         ",".join(map(str, ids))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until the child is mid-transaction
    assert line.strip() == "MID", child.stderr.read() if child.stderr else line
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def assert_consistent(store: Store) -> None:
    """Every procedure points at a revision of its own, mirrored in the search column;
    every parent edge stays within one procedure; SQLite's file is intact."""
    with store.session() as s:
        if store.dialect == "sqlite":
            assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        for proc in store.procedures():
            current = s.get(ProcedureRevision, proc.current_revision_id)
            assert current is not None and current.procedure_id == proc.id
            assert proc.embedding == current.embedding
            if proc.proposed_revision_id is not None:  # a proposal is a revision of its own
                proposed = s.get(ProcedureRevision, proc.proposed_revision_id)
                assert proposed is not None and proposed.procedure_id == proc.id
        edges = s.execute(text("SELECT procedure_id, parent_revision_id FROM procedurerevision"))
        for rev in edges.all():
            if rev.parent_revision_id is not None:
                parent = s.get(ProcedureRevision, rev.parent_revision_id)
                assert parent is not None and parent.procedure_id == rev.procedure_id


@pytest.fixture(name="runs")
def runs_fixture(any_url: str) -> tuple[Store, list[int]]:
    store = Store(any_url)
    return store, [add_run(store, OBJECTS[i], PLACES[i]) for i in range(GROUPS)]


def test_a_build_killed_midway_leaves_nothing_and_building_again_builds_once(
    runs: tuple[Store, list[int]],
) -> None:
    store, ids = runs
    kill_midway(store.url, "build", ids)
    counts = store.counts()
    assert (counts.procedures, counts.revisions) == (0, 0)
    assert store.audit_events() == []
    assert_consistent(store)

    mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
    assert len(mem.build(status=Status.approved)) == GROUPS  # the unused runs, once
    assert mem.build(status=Status.approved) == []  # nothing is left to build
    evidence = [i for p in store.procedures() for r in store.revisions_of(p.id or 0)
                for i in r.evidence_trajectory_ids]  # fmt: skip
    assert sorted(evidence) == sorted(ids)  # each run in exactly one procedure
    assert_consistent(store)
    store.dispose()


def test_a_reflect_update_killed_midway_changes_nothing_and_a_rerun_completes_it(
    runs: tuple[Store, list[int]],
) -> None:
    store, ids = runs
    mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
    built = mem.build(ids, status=Status.approved)
    failures = [add_run(store, OBJECTS[i], PLACES[i], success=False, followed=rev.id)
                for i, rev in enumerate(built)]  # fmt: skip
    before = {p.id: (p.current_revision_id, p.use_count) for p in store.procedures()}

    kill_midway(store.url, "update", failures)
    assert {p.id: (p.current_revision_id, p.use_count) for p in store.procedures()} == before
    assert store.counts().revisions == GROUPS
    assert_consistent(store)

    report = mem.update(failures, policy="reflect")
    assert (len(report.reflected), report.counted) == (GROUPS, GROUPS)
    for proc in store.procedures():
        proposed = store.get(ProcedureRevision, proc.proposed_revision_id or 0)
        assert proposed.origin == "reflection" and proc.use_count == 1
        assert proposed.parent_revision_id == before[proc.id][0]
        assert proc.current_revision_id == before[proc.id][0]  # still served
    assert store.counts().revisions == 2 * GROUPS
    assert_consistent(store)
    # reflections wait for review (the engine's default outside an experiment's own memory):
    # on approved procedures, as their proposals beside the served revision
    assert {p.status for p in store.procedures()} == {Status.approved.value}
    assert store.get(Procedure, built[0].procedure_id).use_count == 1
    store.dispose()


IMPORT_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from sqlalchemy import event
from memp_core.actor import Actor
from memp_core.importers import import_paths
from memp_core.store import Store

url, log, pause_after = sys.argv[2], sys.argv[3], int(sys.argv[4])
store = Store(url, create=False)
inserted = 0

@event.listens_for(store.engine, "after_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    global inserted
    if statement.lower().lstrip().startswith("insert into step"):
        inserted += 1
        if inserted == pause_after:
            print("MID", flush=True)
            time.sleep(300)

import_paths(store, [log], actor=Actor("rita", "reviewer"), fmt="react")
print("DONE", flush=True)
"""


def test_an_import_killed_in_its_write_transaction_leaves_nothing_and_runs_again_once(
    any_url: str, tmp_path: Path
) -> None:
    from memp_core.actor import Actor
    from memp_core.importers import import_paths
    from memp_core.importers.bench import write_log

    log = tmp_path / "log.txt"
    write_log(log, 2000)  # four batches of 500: killed after the second one's steps
    store = Store(any_url)
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORT_CHILD, str(TESTS), any_url, str(log), "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "MID", child.stderr.read() if child.stderr else line
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    counts = store.counts()
    assert (counts.trajectories, counts.steps, counts.runs) == (0, 0, 0)
    assert store.audit_events() == []
    assert_consistent(store)
    report = import_paths(store, [log], actor=Actor("rita", "reviewer"), fmt="react")
    assert report.trajectories == 2000 and store.counts().trajectories == 2000
    with store.session() as s:
        steps = s.execute(text("SELECT count(*) FROM step")).scalar()
    assert steps == report.steps and store.counts().runs == 1
    store.dispose()
