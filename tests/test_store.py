import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from memp_core.errors import DatabaseLockedError, StoreError
from memp_core.models import Run, Step, Trajectory
from memp_core.store import Store, TrajectoryFilter


def test_init_creates_every_table_of_the_design(any_store: Store) -> None:
    tables = set(inspect(any_store.engine).get_table_names())
    assert {
        "trajectory",
        "step",
        "procedure",
        "procedurerevision",
        "retrieval",
        "run",
        "auditevent",
    } <= tables


def test_sqlite_runs_in_wal_mode(store: Store, tmp_path) -> None:
    with store.session() as s:
        mode = s.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_transaction_that_fails_midway_leaves_no_rows(any_store: Store) -> None:
    store = any_store
    with pytest.raises(RuntimeError), store.transaction() as s:
        traj = Trajectory(task="heat some egg", success=True)
        store.add_trajectory(s, traj, [Step(index=0, action="go to microwave 1")])
        s.add(Run(name="half"))
        raise RuntimeError("crash in the middle of a batch")
    counts = store.counts()
    assert (counts.trajectories, counts.runs) == (0, 0)
    assert store.steps_of(1) == []


def test_trajectories_filter_and_paginate(any_store: Store) -> None:
    store = any_store
    with store.transaction() as s:
        for i in range(25):
            t = Trajectory(task=f"heat some egg {i}", task_type="heat", success=i % 2 == 0)
            store.add_trajectory(s, t, [Step(index=0, action="look")])
    page = store.list_trajectories(TrajectoryFilter(success=True), offset=0, limit=5)
    assert page.total == 13 and len(page.rows) == 5
    assert all(r.success for r in page.rows)
    assert store.list_trajectories(TrajectoryFilter(text="egg 7")).total == 1


def test_locked_database_gives_readable_error(tmp_path) -> None:
    path = tmp_path / "locked.db"
    Store(f"sqlite:///{path}").dispose()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(f"sqlite:///{path}", busy_timeout_s=0.2, create=False)
        with pytest.raises(DatabaseLockedError, match="locked"), store.transaction(retries=1) as s:
            s.add(Run(name="blocked"))
    finally:
        holder.rollback()
        holder.close()


def test_unwritable_database_folder_gives_store_error() -> None:
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store("sqlite:////proc/no-such-dir/memp.db")


def test_memp_init_twice_is_harmless(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "memp_core", "init", "--db", url],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
    assert Store(url).counts().trajectories == 0
