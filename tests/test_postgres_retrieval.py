"""Retrieval on Postgres + pgvector: in the database, ranked like SQLite, filters honoured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import pg_database
from household_runs import load_runs
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from test_build import approved_template, store_from
from test_retrieve import NEW_TASKS
from typer.testing import CliRunner

from memp_core.bench import FixedEmbedder, pg_populate
from memp_core.cli import app
from memp_core.embeddings import Embedder, get_embedder, to_bytes
from memp_core.errors import ConfigError
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Status
from memp_core.pgsearch import EF_SEARCH, PgSearch
from memp_core.review import Actor, approve, deprecate
from memp_core.search import Filter
from memp_core.store import Store

__all__ = ["approved_template"]
ADMIN = Actor("rita", "reviewer")


@pytest.fixture(scope="session")
def pg_approved(pg_server) -> str:  # type: ignore[no-untyped-def]
    """A template database: the simulator's transcripts built into 12 approved procedures
    (the same as the SQLite ``approved_template``)."""
    url = pg_database(pg_server)
    store = Store(url)
    load_runs(store)
    ProceduralMemory(store, embedder=get_embedder(), backend="heuristic").build(
        status=Status.approved
    )
    store.dispose()  # a template must have no open connections
    return url


@pytest.fixture(name="pg_mem")
def pg_mem_fixture(pg_server, pg_approved: str, embedder: Embedder) -> Iterator[ProceduralMemory]:  # type: ignore[no-untyped-def]
    store = Store(pg_database(pg_server, template=pg_approved))
    yield ProceduralMemory(store, embedder=embedder, backend="heuristic")
    store.dispose()


@pytest.fixture(name="sqlite_mem")
def sqlite_mem_fixture(
    approved_template: Path, db_url: str, embedder: Embedder
) -> Iterator[ProceduralMemory]:
    store = store_from(approved_template, db_url)
    yield ProceduralMemory(store, embedder=embedder, backend="heuristic")
    store.dispose()


@pytest.fixture(name="big")
def big_fixture(pg_url: str) -> Iterator[tuple[Store, np.ndarray]]:
    """3000 approved procedures with random vectors, bulk-loaded, HNSW index built."""
    store = Store(pg_url)
    matrix = np.random.default_rng(7).standard_normal((3000, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    pg_populate(store, matrix)
    yield store, matrix
    store.dispose()


def _ranking(mem: ProceduralMemory, policy: str, **kw: object) -> list[list[tuple[str, float]]]:
    return [
        [(it.procedure.key, round(it.score, 4))
         for it in mem.retrieve(task, policy=policy, k=4, log=False, **kw)]  # type: ignore[arg-type]
        for task, _ in NEW_TASKS
    ]  # fmt: skip


@pytest.mark.parametrize("policy", ["query", "facts", "hybrid"])
def test_postgres_ranks_every_policy_like_sqlite(
    pg_mem: ProceduralMemory, sqlite_mem: ProceduralMemory, policy: str
) -> None:
    on_pg = _ranking(pg_mem, policy)
    assert on_pg == _ranking(sqlite_mem, policy)
    assert sum(map(len, on_pg)) >= 8  # every new task finds something (facts: if it parses)


def test_author_model_and_threshold_filter_in_the_database_as_on_sqlite(
    pg_mem: ProceduralMemory, sqlite_mem: ProceduralMemory
) -> None:
    for kw in ({"author_model": "heuristic"}, {"author_model": "nobody"}, {"threshold": 0.5}):
        assert _ranking(pg_mem, "hybrid", **kw) == _ranking(sqlite_mem, "hybrid", **kw)
    assert _ranking(pg_mem, "query", author_model="nobody") == [[] for _ in NEW_TASKS]


def test_reviews_decide_what_postgres_serves(pg_mem: ProceduralMemory) -> None:
    first = pg_mem.retrieve("put two pillow in sofa", k=1, log=False).items[0]
    assert first.revision.id == first.procedure.current_revision_id
    deprecate(pg_mem.store, first.procedure.id or 0, actor=ADMIN, reason="keeps failing")
    again = pg_mem.retrieve("put two pillow in sofa", k=12, log=False)
    assert first.procedure.id not in {it.procedure.id for it in again}
    assert len(again) == 11


def test_query_search_walks_the_hnsw_index_with_its_filters(big: tuple[Store, np.ndarray]) -> None:
    store, matrix = big
    with store.session() as s:
        search = PgSearch(s)
        for flt in (Filter(5, statuses=["approved"]), Filter(5, author_model="bench")):
            stmt = search.nearest_statement(matrix[0], flt)
            sql = stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in s.execute(text(f"EXPLAIN {sql}")).all())
            assert "Index Scan using ix_procedure_embedding_hnsw" in plan, plan
        found = search.nearest(matrix[42], Filter(5, statuses=["approved"]))
    assert found[0].procedure_id == 43 and found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[0].revision_id == 43


def test_a_filter_that_empties_the_graph_walk_falls_back_to_exact_search(
    big: tuple[Store, np.ndarray],
) -> None:
    store, matrix = big
    far = [2000, 2500, 2999]  # the only approved procedures, and not near the query
    with store.transaction() as s:
        s.execute(text("UPDATE procedure SET status = 'pending_review' WHERE id <> ALL(:ids)"),
                  {"ids": far})  # fmt: skip
    query = matrix[0]
    with store.session() as s:
        found = PgSearch(s).nearest(query, Filter(5, statuses=["approved"]))
    expected = sorted(far, key=lambda pid: -float(matrix[pid - 1] @ query))
    assert [sc.procedure_id for sc in found] == expected


def test_a_revision_committed_after_a_newer_one_is_still_found(
    big: tuple[Store, np.ndarray],
) -> None:
    """Postgres hands out ids before commit; a cache synced by 'id > last seen' would miss
    the slower transaction's revision. Search in the database sees both."""
    store, _ = big
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    slow_vec, fast_vec = np.eye(384, dtype=np.float32)[0], np.eye(384, dtype=np.float32)[1]
    with store.transaction() as slow:
        slow_rev = _append(slow, 10, slow_vec)  # takes the lower id, commits last
        with store.transaction() as fast:
            fast_rev = _append(fast, 20, fast_vec)
        assert (slow_rev.id or 0) < (fast_rev.id or 0)
        assert _top(mem, fast_vec) == (20, fast_rev.id)
    assert _top(mem, slow_vec) == (10, slow_rev.id)
    assert _top(mem, fast_vec) == (20, fast_rev.id)


def test_an_embedder_of_another_size_is_refused_clearly(pg_url: str) -> None:
    with Store(pg_url).session() as s:
        with pytest.raises(ConfigError, match="384"):
            PgSearch(s).nearest(np.ones(768, dtype=np.float32), Filter(3))


def _append(s, pid: int, vec: np.ndarray) -> ProcedureRevision:  # type: ignore[no-untyped-def]
    proc = s.get(Procedure, pid)
    rev = ProcedureRevision(procedure_id=pid, script="1. go.", embedding=to_bytes(vec))
    return append_revision(s, pid, rev, expected_current=proc.current_revision_id)


def _top(mem: ProceduralMemory, vec: np.ndarray) -> tuple[int | None, int | None]:
    assert isinstance(mem.embedder, FixedEmbedder)
    mem.embedder.next = vec
    top = mem.retrieve("x", k=1, log=False).items[0]
    return top.procedure.id, top.revision.id


def test_approving_on_postgres_serves_the_procedure(pg_server, pg_approved: str) -> None:  # type: ignore[no-untyped-def]
    store = Store(pg_database(pg_server, template=pg_approved))
    with store.transaction() as s:
        s.execute(text("UPDATE procedure SET status = 'pending_review'"))
    mem = ProceduralMemory(store, embedder=get_embedder(), backend="heuristic")
    assert mem.retrieve("put two pillow in sofa", log=False).items == []
    everything = mem.retrieve("put two pillow in sofa", all_statuses=True, log=False)
    approve(store, everything.items[1].procedure.id or 0, actor=ADMIN)
    served = mem.retrieve("put two pillow in sofa", k=3, log=False)
    assert [it.procedure.id for it in served] == [everything.items[1].procedure.id]
    store.dispose()


def test_bench_retrieval_reports_the_postgres_section(pg_server) -> None:  # type: ignore[no-untyped-def]
    base = pg_database(pg_server)  # any database of the server: the bench adds its own
    args = ["bench", "retrieval", "--sizes", "200", "--repeats", "4", "--postgres",
            "--pg-url", base, "--pg-sizes", "300,600", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    pg = out["postgres"]
    assert set(pg["sizes"]) == {"300", "600"} and pg["ef_search"] == EF_SEARCH
    for row in pg["sizes"].values():
        assert {"retrieve_ms", "sql_ms", "bound_ms", "ratio", "update_ms", "recall_at_5",
                "build_s"} <= set(row)  # fmt: skip
        assert 0.0 <= row["recall_at_5"] <= 1.0 and row["retrieve_ms"] > 0
    assert out["recall_at_5"] == pg["recall_at_5"] and set(out["sizes"]) == {"200"}


def test_facts_search_reads_the_fact_indexes_not_every_revision(pg_url: str) -> None:
    from memp_core.pgsearch import _any_fact, _facts_score

    store = Store(pg_url)
    with store.engine.begin() as conn:  # 20,000 procedures, 6 task types, 500 objects
        conn.execute(
            text(
                "INSERT INTO procedure (key, title, task_type, status, use_count, success_count, "
                "pinned, created_at, updated_at) SELECT 'p' || i, 'p' || i, 'put', 'approved', "
                "0, 0, false, now(), now() FROM generate_series(1, 20000) i"
            )
        )
        conn.execute(
            text(
                "INSERT INTO procedurerevision (procedure_id, kind, task_text, script, steps, "
                "origin, author, model, rationale, evidence_trajectory_ids, facts, created_at) "
                "SELECT i, 'script', '', '1. go', '[]', 'build', 'heuristic', 'heuristic', '', "
                "'[]', json_build_object('task_type', (ARRAY['put','clean','heat','cool',"
                "'examine','puttwo'])[i % 6 + 1], 'object', 'thing' || (i % 500), "
                "'receptacle', 'place' || (i % 40)), now() FROM generate_series(1, 20000) i"
            )
        )
        conn.execute(text("UPDATE procedure SET current_revision_id = id"))
        conn.execute(text("ANALYZE procedurerevision; ANALYZE procedure"))
    facts = {"object": "thing7", "receptacle": "place3"}
    with store.session() as s:
        search = PgSearch(s)
        score = _facts_score(facts)
        assert score is not None
        stmt = search._scored_select(score, Filter(5, statuses=["approved"]))
        stmt = stmt.where(_any_fact(facts)).order_by(score.desc(), Procedure.id.desc()).limit(5)
        sql = stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in s.execute(text(f"EXPLAIN {sql}")).all())
        found = search.facts(facts, Filter(5, statuses=["approved"]))
    store.dispose()
    assert "ix_revision_fact_object" in plan and "ix_revision_fact_receptacle" in plan, plan
    assert found and all(sc.score > 0 for sc in found)
