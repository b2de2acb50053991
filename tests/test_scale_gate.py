"""The served path stays gated while it got cheaper: every query serves what the database says
*now*, whoever changed it (another process, a raw UPDATE that touches neither a revision nor
``updated_at``), on SQLite (the in-memory index) and on Postgres (search in the database)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlmodel import col

from memp_core.bench import FixedEmbedder, populate, unit_rows
from memp_core.database import sqlite_path
from memp_core.embeddings import to_bytes
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Retrieval, Status
from memp_core.reader import Reader
from memp_core.store import Store

N = 200


@pytest.fixture(name="memory")
def memory_fixture(any_url: str) -> Iterator[tuple[ProceduralMemory, np.ndarray]]:
    """N approved procedures with random unit vectors, and a memory that has served once (so
    the SQLite index is warm: a stale cache would show on the next query)."""
    store = Store(any_url)
    matrix = unit_rows(np.random.default_rng(7), N)
    populate(store, matrix)
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    ask(mem, matrix[0], k=5)
    yield mem, matrix
    store.dispose()


def ask(mem: ProceduralMemory, vector: np.ndarray, *, k: int, **kw: object) -> list[int]:
    embedder = mem.embedder
    assert isinstance(embedder, FixedEmbedder)
    embedder.next = np.asarray(vector, dtype=np.float32)
    return [it.procedure.id or 0 for it in mem.retrieve("task", k=k, log=False, **kw)]  # type: ignore[arg-type]


def exact(matrix: np.ndarray, vector: np.ndarray, allowed: set[int], k: int) -> list[int]:
    """Brute force: the k most similar procedures (ids from 1) among ``allowed``."""
    order = np.argsort(-(matrix @ vector), kind="stable") + 1
    return [int(pid) for pid in order if int(pid) in allowed][:k]


def in_another_process(url: str, action: str, pid: int) -> None:
    """A reviewer's action through the real review API, in a process of its own."""
    code = textwrap.dedent(f"""
        from memp_core.review import Actor, approve, reject
        from memp_core.store import Store
        store = Store({url!r}, create=False)
        who = Actor("rita", "reviewer")
        if {action!r} == "reject":
            reject(store, {pid}, actor=who, reason="wrong object")
        else:
            approve(store, {pid}, actor=who)
        store.dispose()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def set_status_behind_its_back(store: Store, pid: int | list[int], status: Status) -> None:
    """A writer that changes nothing but the status column: no revision, no updated_at, no
    audit event (a maintenance script, an old release). Nothing but the row tells."""
    pids = [pid] if isinstance(pid, int) else pid
    path = sqlite_path(store.url)
    if path is None:  # Postgres: the same bare UPDATE through the store's engine
        from sqlalchemy import update

        with store.transaction() as s:
            s.execute(
                update(Procedure).where(col(Procedure.id).in_(pids)).values(status=status.value)
            )
        return
    with sqlite3.connect(path) as other:
        other.executemany(
            "UPDATE procedure SET status = ? WHERE id = ?", [(status.value, p) for p in pids]
        )


def test_a_rejection_in_another_process_holds_from_the_next_query_and_an_approval_too(
    memory: tuple[ProceduralMemory, np.ndarray], any_url: str
) -> None:
    mem, matrix = memory
    q = matrix[3]
    top = ask(mem, q, k=5)
    assert top[0] == 4  # its own vector
    in_another_process(any_url, "reject", 4)
    assert 4 not in ask(mem, q, k=5)
    assert ask(mem, q, k=5) == exact(matrix, q, set(range(1, N + 1)) - {4}, 5)
    in_another_process(any_url, "approve", 4)
    assert ask(mem, q, k=5) == top


@pytest.mark.parametrize("status", [Status.rejected, Status.deprecated, Status.merged])
def test_a_status_changed_without_a_revision_or_a_timestamp_is_obeyed_at_once(
    memory: tuple[ProceduralMemory, np.ndarray], status: Status
) -> None:
    mem, matrix = memory
    q = matrix[10]
    assert ask(mem, q, k=1) == [11]
    set_status_behind_its_back(mem.store, 11, status)
    assert 11 not in ask(mem, q, k=5)
    assert 11 in ask(mem, q, k=5, statuses=[status.value])  # still there for reviewers
    set_status_behind_its_back(mem.store, 11, Status.approved)
    assert ask(mem, q, k=1) == [11]


def test_when_the_best_candidates_are_not_servable_the_next_servable_ones_come_in_order(
    memory: tuple[ProceduralMemory, np.ndarray],
) -> None:
    mem, matrix = memory
    q = matrix[20]
    nearest = exact(matrix, q, set(range(1, N + 1)), N)
    hidden = set(nearest[:60])  # more than the first window (4k) and its first widening
    set_status_behind_its_back(mem.store, sorted(hidden), Status.pending_review)
    approved = set(range(1, N + 1)) - hidden
    assert ask(mem, q, k=5) == exact(matrix, q, approved, 5)
    assert ask(mem, q, k=3, statuses=["pending_review"]) == nearest[:3]
    assert ask(mem, q, k=7, all_statuses=True) == nearest[:7]


def test_the_random_policy_draws_only_from_what_is_servable_now(
    memory: tuple[ProceduralMemory, np.ndarray],
) -> None:
    mem, _ = memory
    set_status_behind_its_back(mem.store, list(range(1, N + 1, 2)), Status.rejected)
    picks = [
        it.procedure.id or 0
        for seed in range(3)
        for it in mem.retrieve("task", policy="random", k=20, seed=seed, log=False)
    ]
    assert len(picks) == 60 and all(pid % 2 == 0 for pid in picks)
    assert all(it.score == 0 for it in mem.retrieve("x", policy="random", k=3, log=False))


def test_results_carry_the_rows_as_they_are_now(
    memory: tuple[ProceduralMemory, np.ndarray],
) -> None:
    mem, matrix = memory
    with mem.store.transaction() as s:
        proc = s.get(Procedure, 31)
        assert proc is not None
        proc.use_count, proc.title = 9, "renamed a moment ago"
    embedder = mem.embedder
    assert isinstance(embedder, FixedEmbedder)
    embedder.next = matrix[30]
    (item,) = mem.retrieve("task", k=1, log=False).items
    assert (item.procedure.id, item.procedure.use_count) == (31, 9)
    assert item.procedure.title == "renamed a moment ago"
    assert item.revision.id == item.procedure.current_revision_id == 31
    assert item.revision.procedure_id == 31 and item.revision.facts == {}
    assert item.procedure.created_at.tzinfo is not None  # decoded as a session would
    vec = np.frombuffer(item.revision.embedding or b"", dtype="<f4")
    assert item.score == pytest.approx(float(vec @ matrix[30]), abs=1e-5)


def test_the_in_memory_sqlite_database_is_gated_the_same_way() -> None:
    store = Store("sqlite://")
    matrix = unit_rows(np.random.default_rng(3), 50)
    populate(store, matrix)
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    assert ask(mem, matrix[5], k=1) == [6]
    with store.transaction() as s:
        proc = s.get(Procedure, 6)
        assert proc is not None
        proc.status = Status.rejected.value
    assert ask(mem, matrix[5], k=3) == exact(matrix, matrix[5], set(range(1, 51)) - {6}, 3)
    store.dispose()


def test_a_retrieval_logged_on_sqlite_is_stored_exactly_as_a_session_would_store_it(
    db_url: str,
) -> None:
    store = Store(db_url)
    matrix = unit_rows(np.random.default_rng(5), 20)
    populate(store, matrix)
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    assert isinstance(mem.embedder, FixedEmbedder)
    mem.embedder.next = matrix[2]
    fast = mem.retrieve("put a mug in the sink", k=3, agent_model="small-model")
    with store.transaction() as s:  # the same record through the ORM, for comparison
        summary = [it.summary() for it in fast]
        twin = Retrieval(query="put a mug in the sink", policy="query", k=3,
                         agent_model="small-model", results=summary)  # fmt: skip
        s.add(twin)
        s.flush()
        twin_id = twin.id
    row = store.get(Retrieval, fast.retrieval_id or 0)
    assert [r["procedure_id"] for r in row.results] == [it.procedure.id for it in fast]
    assert row.results[0]["procedure_id"] == 3 and row.results == summary
    assert (row.query, row.policy, row.k, row.agent_model, row.agent, row.run_id) == (
        "put a mug in the sink", "query", 3, "small-model", "", None,
    )  # fmt: skip
    assert row.created_at.tzinfo is not None
    path = sqlite_path(db_url)
    assert path is not None
    with sqlite3.connect(path) as raw:
        cols = "query, policy, k, agent_model, agent, results, run_id, trajectory_id, created_at"
        ours, theirs = (
            raw.execute(f"SELECT {cols} FROM retrieval WHERE id = ?", (i,)).fetchone()
            for i in (fast.retrieval_id, twin_id)
        )
    assert ours[:-1] == theirs[:-1]  # every column in the same encoding
    assert len(ours[-1]) == len(theirs[-1]) and ours[-1][:10] == theirs[-1][:10]
    store.dispose()


def _child_retrieves(mem: ProceduralMemory, vector: np.ndarray, out: Any) -> None:
    fresh = Reader.of(mem.store)._conn is None  # the parent's connection was let go
    out.put((fresh, ask(mem, vector, k=3)))


def test_a_forked_child_reads_on_a_connection_of_its_own(db_url: str) -> None:
    store = Store(db_url)
    matrix = unit_rows(np.random.default_rng(9), 30)
    populate(store, matrix)
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    before = ask(mem, matrix[4], k=3)  # the parent holds its reader connection now
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_retrieves, args=(mem, matrix[4], out))
    child.start()
    fresh, served = out.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and fresh and served == before
    assert ask(mem, matrix[4], k=3) == before  # the parent's connection still serves
    store.dispose()


def test_two_memories_of_one_store_each_see_a_revision_another_connection_wrote(
    db_url: str,
) -> None:
    """They share the store's reader (and its data version): each index keeps its own mark."""
    store = Store(db_url)
    matrix = unit_rows(np.random.default_rng(11), 40)
    populate(store, matrix)
    first, second = (
        ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic") for _ in range(2)
    )
    assert ask(first, matrix[7], k=1) == ask(second, matrix[7], k=1) == [8]
    with store.transaction() as s:  # another connection: a new current revision for 8
        proc = s.get(Procedure, 8)
        assert proc is not None
        rev = ProcedureRevision(procedure_id=8, script="1. new", embedding=to_bytes(matrix[20]))
        append_revision(s, 8, rev, expected_current=proc.current_revision_id)
    assert ask(first, matrix[20], k=2) == [8, 21]  # the first memory looks first...
    assert ask(second, matrix[20], k=2) == [8, 21]  # ...and the second still sees it
    store.dispose()
