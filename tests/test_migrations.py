"""Alembic migrations: an old-schema database with data is upgraded by `memp init` and by
opening a Store, on SQLite and Postgres, and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pgvector.sqlalchemy  # noqa: F401  (reflection learns the vector type)
import pytest
from alembic import command
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from memp_core import migrate
from memp_core.bench import FixedEmbedder
from memp_core.cli import app
from memp_core.database import make_engine
from memp_core.embeddings import to_bytes
from memp_core.errors import StoreError
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import (
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Step,
    Trajectory,
)
from memp_core.store import Store

OLD_TABLES = ("run", "trajectory", "step", "procedure", "procedurerevision", "retrieval",
              "auditevent")  # fmt: skip
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
VEC_A1, VEC_A2, VEC_B = (np.eye(384, dtype=np.float32)[i] for i in (3, 7, 9))


def old_database(url: str) -> Engine:
    """A database at the first schema (0001), as an older Memp Studio left it."""
    engine = make_engine(url)
    migrate.upgrade_to(engine, "0001")
    return engine


def fill(engine: Engine) -> None:
    """One row or more in every table, written with the 0001 columns only."""

    def add(table_of: Any, **values: Any) -> None:
        # Today's column types (JSON, vectors), but only the columns the old table has: later
        # columns' defaults must not reach an INSERT into a 0001 table.
        model = table_of.__table__
        present = set(old.tables[model.name].c.keys())
        table = Table(model.name, MetaData(),
                      *(c._copy() for c in model.columns if c.name in present))  # fmt: skip
        conn.execute(insert(table).values(**values))

    old = MetaData()
    old.reflect(engine, only=OLD_TABLES)
    with engine.begin() as conn:
        add(Run, id=1, name="old run", kind="experiment", agent="heuristic", agent_model="m",
            environment="household-sim", task_set="", n_tasks=2, n_groups=1, status="done",
            source="simulator", config={"k": 3}, metrics=[{"index": 0, "success_rate": 0.5}],
            created_at=WHEN)  # fmt: skip
        for i, ok in ((1, True), (2, False)):
            add(Trajectory, id=i, task=f"put a mug in shelf {i}", task_type="put",
                environment="household-sim", source="simulator", agent_model="m", success=ok,
                step_count=1, token_count=10, run_id=1, facts={"object": "mug"},
                reflections=[], content_hash=f"h{i}", created_at=WHEN)  # fmt: skip
            add(Step, trajectory_id=i, index=0, action="go to shelf 1", observation="ok",
                is_error=False, is_loop=False)  # fmt: skip
        for pid, key, status in ((1, "put-mug-shelf", "approved"), (2, "other-dim", "approved"),
                                 (3, "empty", "draft")):  # fmt: skip
            add(Procedure, id=pid, key=key, title=key, task_type="put", status=status,
                use_count=pid, success_count=1, pinned=False, created_at=WHEN,
                updated_at=WHEN)  # fmt: skip
        for rid, pid, parent, blob in ((1, 1, None, to_bytes(VEC_A1)),
                                       (2, 1, 1, to_bytes(VEC_A2)),
                                       (3, 2, None, b"\x00\x00\x80\x3f" * 2)):  # fmt: skip
            add(ProcedureRevision, id=rid, procedure_id=pid, parent_revision_id=parent,
                kind="script", task_text="put a mug in shelf", script=f"1. step {rid}",
                steps=[], origin="build", author="heuristic", model="heuristic",
                rationale="", evidence_trajectory_ids=[1], facts={"task_type": "put"},
                embedding=blob, created_at=WHEN)  # fmt: skip
        conn.execute(text("UPDATE procedure SET current_revision_id = 2 WHERE id = 1"))
        conn.execute(text("UPDATE procedure SET current_revision_id = 3 WHERE id = 2"))
        add(Retrieval, run_id=1, trajectory_id=1, query="put a mug", policy="query", k=3,
            agent_model="m", results=[{"procedure_id": 1}], created_at=WHEN)  # fmt: skip
        add(AuditEvent, actor="human:ann", action="approve", object_type="procedure",
            object_id=1, detail={"comment": "ok"}, created_at=WHEN)  # fmt: skip
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in OLD_TABLES:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))  # fmt: skip


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every 0001 table, in the 0001 columns, by id."""
    meta = MetaData()
    meta.reflect(engine, only=OLD_TABLES)
    with engine.connect() as conn:
        return {
            name: [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
            for name, table in meta.tables.items()
        }


def test_init_upgrades_an_old_database_and_keeps_every_row(any_url: str) -> None:
    engine = old_database(any_url)
    fill(engine)
    before = snapshot(engine)
    assert "embedding" not in {c["name"] for c in inspect(engine).get_columns("procedure")}
    engine.dispose()

    store = Store(any_url, create=False)
    assert store.init() == "upgraded"
    assert store.init() == "up to date"
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
    after = {name: [row[: len(before[name][0])] for row in rows]
             for name, rows in snapshot(store.engine).items()}  # fmt: skip
    assert after == before and sum(map(len, before.values())) == 13

    procs = {p.id: p for p in store.procedures()}
    assert procs[1].embedding == to_bytes(VEC_A2)  # the current revision's, not the first
    assert procs[2].embedding is None  # a 2-dim vector from another model: not searchable
    assert procs[3].embedding is None  # no revision yet
    with store.transaction() as s:  # a new revision after the upgrade is mirrored at once
        rev = ProcedureRevision(procedure_id=2, script="1. redo", embedding=to_bytes(VEC_B))
        append_revision(s, 2, rev, expected_current=3)
    assert store.get(Procedure, 2).embedding == to_bytes(VEC_B)
    mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
    assert isinstance(mem.embedder, FixedEmbedder)
    mem.embedder.next = VEC_A2
    top = mem.retrieve("put a mug in shelf", k=1, log=False).first()
    assert top is not None and (top.procedure.id, top.revision.id, top.score) == (1, 2, 1.0)
    if store.dialect == "postgresql":
        with store.session() as s:
            names = s.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = "
                                   "'procedure'")).scalars().all()  # fmt: skip
        assert "ix_procedure_embedding_hnsw" in names
        with store.session() as s:
            names = s.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = "
                                   "'procedurerevision'")).scalars().all()  # fmt: skip
        assert {f"ix_revision_fact_{k}" for k in ("task_type", "object")} <= set(names)
    assert_reports_fit(store)
    store.dispose()


def assert_reports_fit(store: Store) -> None:
    """0003: an outcome nobody recorded is stored as unknown; one agent's idempotency key
    names one report, another agent may use the same key."""
    with store.transaction() as s:
        for agent in ("bot", "other"):
            s.add(Trajectory(task="t", success=None, reporting_agent=agent, idempotency_key="k1"))
    with store.session() as s:
        got = s.scalars(select(Trajectory).where(Trajectory.reporting_agent != "")).all()
    assert [t.success for t in got] == [None, None]
    with pytest.raises(StoreError):
        with store.transaction() as s:
            s.add(Trajectory(task="t", success=True, reporting_agent="bot", idempotency_key="k1"))


def test_a_database_from_before_alembic_is_stamped_then_upgraded(any_url: str) -> None:
    engine = old_database(any_url)
    fill(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    store = Store(any_url, create=False)
    assert store.init() == "upgraded"
    assert store.get(Procedure, 1).embedding == to_bytes(VEC_A2)
    store.dispose()


def test_memp_init_reports_the_upgrade(db_url: str) -> None:
    engine = old_database(db_url)
    fill(engine)
    engine.dispose()
    runner = CliRunner()
    first = runner.invoke(app, ["init", "--db", db_url, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["schema"] == "upgraded"
    assert json.loads(first.stdout)["counts"]["procedures"] == 3
    again = runner.invoke(app, ["init", "--db", db_url, "--json"])
    assert json.loads(again.stdout)["schema"] == "up to date"


def test_processes_opening_a_new_database_at_once_create_it_exactly_once(any_url: str) -> None:
    code = (
        "import sys; from memp_core.store import Store; "
        "print(Store(sys.argv[1], create=False).init())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, any_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["created", "up to date", "up to date"]


def test_downgrade_to_the_first_schema_drops_only_the_new_column(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0001")
    columns = {c["name"] for c in inspect(store.engine).get_columns("procedure")}
    assert "embedding" not in columns and "current_revision_id" in columns
    assert store.init() == "upgraded"
    assert_reports_fit(store)
    store.dispose()


def test_memp_init_turns_assumed_successes_of_an_older_release_into_unknown(
    db_url: str,
) -> None:
    store = Store(db_url)
    with store.transaction() as s:  # what an older release stored for a transcript without STATUS
        s.add(Trajectory(task="put a mug in shelf", success=True, content_hash="old",
                         facts={"outcome": "assumed success: no STATUS line"}))  # fmt: skip
    with store.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0002")
    store.dispose()
    res = CliRunner().invoke(app, ["init", "--db", db_url])
    assert res.exit_code == 0, res.output
    assert "1 assumed successes are now unknown" in res.output
    store = Store(db_url)
    with store.session() as s:
        (traj,) = s.scalars(select(Trajectory)).all()
    assert traj.success is None and traj.facts["outcome"].startswith("unknown")
    again = CliRunner().invoke(app, ["init", "--db", db_url])
    assert "up to date" in again.output and "now unknown" not in again.output
    store.dispose()
