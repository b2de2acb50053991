"""Several writers and readers on one database, SQLite and Postgres: reviewers in two
processes, agents retrieving while imports and updates run, SQLite lock waits."""

from __future__ import annotations

import multiprocessing as mp
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import HashEmbedder
from sqlalchemy import text

from memp_core.errors import ConflictError, DatabaseLockedError
from memp_core.importers import import_paths
from memp_core.importers.export import export
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Retrieval, Run, Status, Step, Trajectory
from memp_core.review import Actor, edit
from memp_core.store import Store

OBJECTS = ["apple", "mug", "cloth", "book", "egg", "vase", "pan", "knife"]
PLACES = ["fridge", "shelf", "drawer", "sidetable", "cabinet", "countertop"]


def add_run(store: Store, obj: str, place: str, *, success: bool = True,
            followed: int | None = None, model: str = "agent") -> int:  # fmt: skip
    """A short household run 'put a <obj> in <place>' (a failure loops at the end)."""
    actions = ["go to countertop 1", f"take {obj} 1 from countertop 1", f"go to {place} 1"]
    actions += [f"put {obj} 1 in/on {place} 1"] if success else ["look", "look"]
    steps = [Step(index=i, action=a, observation="ok") for i, a in enumerate(actions)]
    with store.transaction() as s:
        traj = Trajectory(task=f"put a {obj} in {place}", task_type="put", success=success,
                          environment="household-sim", source="test", agent_model=model,
                          procedure_revision_id=followed)  # fmt: skip
        store.add_trajectory(s, traj, steps)
        return int(traj.id or 0)


def seed(store: Store, n: int = 8) -> ProceduralMemory:
    """``n`` approved procedures built from one successful run each."""
    mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
    ids = [add_run(store, OBJECTS[i % 8], PLACES[i % 6]) for i in range(n)]
    mem.build(ids, status=Status.approved)
    return mem


# -- two reviewers in two processes ---------------------------------------------------------


def _reviewer(url: str, name: str, pid: int, bases: Any, results: Any, barrier: Any) -> None:
    """A reviewer process: for each base revision it is handed, save an edit from it."""
    store = Store(url, create=False)
    embedder = HashEmbedder()
    results.put((name, "ready", None))  # a spawned process's imports can take long under load
    while (base := bases.get()) is not None:
        barrier.wait(timeout=120)  # both reviewers press save together
        try:
            rev = edit(store, pid, actor=Actor(name, "reviewer"), script=f"1. {name} was here",
                       comment=name, base_revision_id=base, embedder=embedder)  # fmt: skip
            results.put((name, "saved", rev.id))
        except ConflictError as exc:
            results.put((name, "conflict", str(exc)))
    store.dispose()


def test_two_reviewers_in_two_processes_one_save_wins_each_time(any_url: str) -> None:
    store = Store(any_url)
    mem = seed(store, n=1)
    pid = store.procedures()[0].id or 0
    ctx = mp.get_context("spawn")
    bases = {n: ctx.Queue() for n in ("ann", "bob")}
    results, barrier = ctx.Queue(), ctx.Barrier(2)
    workers = [ctx.Process(target=_reviewer, args=(any_url, n, pid, q, results, barrier))
               for n, q in bases.items()]  # fmt: skip
    for w in workers:
        w.start()
    try:
        # Rounds start once both processes are up: a slow start is not a lost race.
        assert sorted(results.get(timeout=600)[1] for _ in bases) == ["ready", "ready"]
        for _ in range(3):
            base = store.get(Procedure, pid).current_revision_id
            for q in bases.values():
                q.put(base)
            outcome = sorted(results.get(timeout=180) for _ in bases)
            kinds = [kind for _, kind, _ in outcome]
            assert sorted(kinds) == ["conflict", "saved"], outcome
            (winner,) = [rid for _, kind, rid in outcome if kind == "saved"]
            assert store.get(Procedure, pid).current_revision_id == winner
            assert store.get(ProcedureRevision, winner).parent_revision_id == base
            assert "moved on" in next(m for _, k, m in outcome if k == "conflict")
    finally:
        for q in bases.values():
            q.put(None)
        for w in workers:
            w.join(timeout=30)
    assert len(store.revisions_of(pid)) == 4  # the build and one edit per round, no more
    assert len(store.audit_events(object_type="procedure", object_id=pid)) == 1 + 3
    mem.store.dispose()


def test_a_save_waiting_behind_another_is_refused_once_that_one_commits(any_url: str) -> None:
    store = Store(any_url)
    seed(store, n=1)
    proc = store.procedures()[0]
    base = proc.current_revision_id or 0
    outcome: list[Any] = []

    def second_reviewer() -> None:
        other = Store(any_url, create=False)
        try:
            edit(other, proc.id or 0, actor=Actor("bob", "reviewer"), script="1. bob",
                 comment="", base_revision_id=base, embedder=HashEmbedder())  # fmt: skip
            outcome.append("saved")
        except ConflictError:
            outcome.append("conflict")
        other.dispose()

    with store.transaction() as s:  # the first reviewer's save, not yet committed
        mine = ProcedureRevision(procedure_id=proc.id or 0, script="1. ann")
        append_revision(s, proc.id or 0, mine, expected_current=base)
        waiter = threading.Thread(target=second_reviewer)
        waiter.start()
        _until_waiting(store, waiter)
    waiter.join(timeout=30)
    assert outcome == ["conflict"]
    assert store.get(Procedure, proc.id or 0).current_revision_id == mine.id
    assert len(store.revisions_of(proc.id or 0)) == 2


def _until_waiting(store: Store, waiter: threading.Thread) -> None:
    """Until the other saver waits for our lock (Postgres shows it; SQLite: a moment)."""
    if store.dialect != "postgresql":
        time.sleep(0.5)
        return
    with store.engine.connect() as conn:
        for _ in range(200):
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar()  # fmt: skip
            conn.rollback()
            if waiting or not waiter.is_alive():
                return
            time.sleep(0.05)


# -- agents retrieving while imports and updates run ----------------------------------------


def _import_batches(tmp: Path, count: int) -> list[Path]:
    """Export folders of a few new runs and their procedures, to import under load."""
    folders = []
    for b in range(count):
        side = Store(f"sqlite:///{tmp / f'side{b}.db'}")
        mem = ProceduralMemory(side, embedder=HashEmbedder(), backend="heuristic")
        ids = [add_run(side, f"gadget{b}x{i}", PLACES[i], model="importer") for i in range(3)]
        mem.build(ids, status=Status.approved)
        export(side, tmp / f"batch{b}")
        side.dispose()
        folders.append(tmp / f"batch{b}")
    return folders


class Load:
    """Threads sharing a stop flag; the first error of any thread is kept and re-raised."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.counted = 0
        self.served = 0
        self.lock = threading.Lock()

    def run(self, fn: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                fn()
            except BaseException as exc:  # kept and re-raised by the test
                self.errors.append(exc)
                self.stop.set()

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread


def _agent(url: str, load: Load, seed_: int) -> None:
    store = Store(url, create=False)
    mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
    rng = random.Random(seed_)
    for _ in range(400):  # bounded even if the writers were slow
        if load.stop.is_set():
            break
        task = f"put a {rng.choice(OBJECTS)} in {rng.choice(PLACES)}"
        policy = rng.choice(["query", "hybrid"])
        result = mem.retrieve(task, policy=policy, k=3, agent_model="agent")
        qvec = mem.embedder.embed_array([task])[0]
        for it in result.items:
            assert it.revision.procedure_id == it.procedure.id  # never another's revision
            assert (it.revision.id or 0) <= (it.procedure.current_revision_id or 0)
            if policy == "query":  # the score is the cosine of the revision returned
                vec = np.frombuffer(it.revision.embedding or b"", dtype="<f4")
                assert it.score == pytest.approx(float(vec @ qvec), abs=1e-4)
        logged = store.get(Retrieval, result.retrieval_id or 0)
        assert [r["revision_id"] for r in logged.results] == [it.revision.id for it in result]
        with load.lock:
            load.served += 1
    store.dispose()


def _updater(url: str, load: Load, seed_: int) -> None:
    """Runs that followed a procedure: failures reflected on or only counted, successes
    merged in."""
    store = Store(url, create=False)
    mem = ProceduralMemory(store, embedder=HashEmbedder(), backend="heuristic")
    rng = random.Random(seed_)
    for i in range(8):
        # Three procedures only: the updaters and the reviewer keep meeting on them.
        k = rng.randrange(3)
        proc = store.get(Procedure, k + 1)
        run = add_run(store, OBJECTS[k], PLACES[k], success=i % 3 == 0,
                      followed=proc.current_revision_id)  # fmt: skip
        # validation only counts a failure as a use: no revision claims the procedure's row
        report = mem.update([run], policy="reflect" if i % 2 else "validation")
        with load.lock:
            load.counted += report.counted
    store.dispose()


def _reviewer_thread(url: str, load: Load) -> None:
    store = Store(url, create=False)
    for i in range(6):
        proc = store.get(Procedure, i % 3 + 1)
        try:
            edit(store, proc.id or 0, actor=Actor("rita", "reviewer"), script=f"1. step {i}",
                 comment="", base_revision_id=proc.current_revision_id or 0,
                 embedder=HashEmbedder())  # fmt: skip
        except ConflictError:
            pass  # someone moved it on first: refused whole, which is the point
    store.dispose()


def test_agents_retrieve_without_errors_or_torn_reads_while_imports_and_updates_run(
    any_url: str, tmp_path: Path
) -> None:
    store = Store(any_url)
    seed(store)
    batches = _import_batches(tmp_path, 3)
    load = Load()
    agents = [load.run(lambda s=s: _agent(any_url, load, s)) for s in range(3)]
    writers = [load.run(lambda s=s: _updater(any_url, load, s)) for s in range(2)]
    writers.append(load.run(lambda: _reviewer_thread(any_url, load)))
    importer = Actor("ivy", "reviewer")
    writers.append(load.run(lambda: [import_paths(store, [b], actor=importer) for b in batches]))
    for w in writers:
        w.join(timeout=120)
    load.stop.set()
    for a in agents:
        a.join(timeout=60)
    if load.errors:
        raise load.errors[0]
    assert load.served > 0
    procs = store.procedures()
    assert len(procs) == 8 + 3 * 3  # the seeds and every imported procedure, once each
    assert sum(p.use_count for p in procs) == load.counted == 2 * 8  # no count was lost
    with store.session() as s:
        for p in procs:
            current = s.get(ProcedureRevision, p.current_revision_id)
            assert current is not None and current.procedure_id == p.id
            assert p.embedding == current.embedding  # the search column kept in step
    assert store.counts().retrievals == load.served


# -- SQLite lock waits ----------------------------------------------------------------------


def _hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO run (name, kind, agent, agent_model, environment, task_set, "
                   "n_tasks, n_groups, status, source, created_at) VALUES ('holder', 'x', '', "
                   "'', '', '', 0, 0, 'running', '', '2026-01-01 00:00:00')")  # fmt: skip

    def release() -> None:
        time.sleep(seconds)
        holder.commit()
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_a_write_waiting_for_the_sqlite_lock_retries_and_lands(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    Store(f"sqlite:///{path}").dispose()
    store = Store(f"sqlite:///{path}", busy_timeout_s=0.1, create=False)
    holder = _hold_write_lock(path, 0.4)  # longer than one busy timeout
    with store.transaction(retries=6) as s:  # waits: 0.1 s busy timeout + backoff, 6 times
        s.add(Run(name="patient"))
    holder.join()
    assert sorted(r.name for r in store.runs()) == ["holder", "patient"]


def test_a_lock_that_outlasts_the_retries_is_a_clear_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.db"
    Store(f"sqlite:///{path}").dispose()
    store = Store(f"sqlite:///{path}", busy_timeout_s=0.05, create=False)
    holder = _hold_write_lock(path, 2.0)
    ran = []
    with pytest.raises(DatabaseLockedError, match="locked by another process"):
        with store.transaction(retries=2) as s:
            ran.append(True)
            s.add(Run(name="blocked"))
    assert ran == []  # the lock is taken before the body: a retry never repeats work
    assert store.counts().runs == 0  # readers are not blocked by the writer (WAL)
    holder.join()
    assert [r.name for r in store.runs()] == ["holder"]


def test_the_sqlite_index_ends_in_step_with_writers_in_other_threads(db_url: str) -> None:
    """Revisions commit in id order on SQLite, so syncing 'ids above the last seen' while
    writers race still ends with every procedure at its current revision."""
    store = Store(db_url)
    mem = seed(store)
    reader_done = threading.Event()

    def writer(seed_: int) -> None:
        own = Store(db_url, create=False)
        rng = random.Random(seed_)
        for i in range(25):
            pid = rng.randrange(1, 9)
            with own.transaction() as s:
                proc = s.get(Procedure, pid)
                vec = HashEmbedder().embed_array([f"{seed_}-{i}"])[0].tobytes()
                rev = ProcedureRevision(procedure_id=pid, script=f"1. w{seed_}", embedding=vec)
                append_revision(s, pid, rev, expected_current=proc.current_revision_id)
        own.dispose()

    def reader() -> None:
        while not reader_done.is_set():
            mem.index.sync()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    sync_thread = threading.Thread(target=reader)
    for t in [*threads, sync_thread]:
        t.start()
    for t in threads:
        t.join(timeout=60)
    reader_done.set()
    sync_thread.join(timeout=30)
    index = mem.index
    assert {pid: e.revision_id for pid, e in index.entries.items()} == {
        p.id: p.current_revision_id for p in store.procedures()
    }
    for p in store.procedures():
        stored = np.frombuffer(p.embedding or b"", dtype="<f4")
        assert np.allclose(index.vectors.vector(p.id or 0), stored, atol=1e-6)  # type: ignore[arg-type]
