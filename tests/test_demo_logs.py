"""The simulator's runs written as ALFWorld / ReAct / chat logs read back through the real
importers with the same tasks, steps and outcomes (a round trip)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlmodel import col, select

from memp_core.actor import Actor
from memp_core.importers import import_paths
from memp_core.models import Step, Trajectory
from memp_core.sim.logs import (
    LABEL,
    SimEpisode,
    simulate,
    write_alfworld,
    write_chat,
    write_demo_logs,
    write_react,
)
from memp_core.store import Store

RITA = Actor("rita", "reviewer")
Seen = tuple[str, tuple[tuple[str, str], ...], bool | None]


@pytest.fixture(name="runs", scope="module")
def runs_fixture() -> list[SimEpisode]:
    """Strong and weak agents without memory: successes, give-ups and used-up step limits."""
    runs = simulate(6, seed=7) + simulate(6, seed=8, strength="weak")
    runs += simulate(2, seed=9, max_steps=4)  # too few steps for any task: halted
    assert {r.section for r in runs} == {"correct", "incorrect", "halted"}
    return runs


def expected(runs: Sequence[SimEpisode], *, outcomes: bool = True) -> list[Seen]:
    return sorted(
        (r.episode.task, tuple((s.action, s.observation) for s in r.episode.steps),
         r.episode.success if outcomes else None)
        for r in runs
    )  # fmt: skip


def imported(store: Store) -> list[Seen]:
    """(task without ALFWorld's closing period, (action, observation) steps, success)."""
    out: list[Seen] = []
    with store.session() as s:
        for t in s.exec(select(Trajectory)).all():
            steps = s.exec(
                select(Step).where(col(Step.trajectory_id) == t.id).order_by(col(Step.index))
            ).all()
            pairs = tuple((st.action or "", st.observation or "") for st in steps)
            out.append((t.task.removesuffix("."), pairs, t.success))
    return sorted(out)


def test_alfworld_transcripts_round_trip_with_their_status_lines(
    store: Store, runs: list[SimEpisode], tmp_path: Path
) -> None:
    log = write_alfworld(runs, tmp_path / f"{LABEL}-alfworld.txt")
    report = import_paths(store, [log.path], actor=RITA, fmt=log.fmt)
    assert report.trajectories == len(runs) and not report.bad
    assert imported(store) == expected(runs)
    with store.session() as s:
        first = s.exec(select(Trajectory).order_by(col(Trajectory.id))).first()
    assert first is not None and first.environment == "alfworld"
    assert LABEL in (first.source_file or "") and first.facts["outcome"].startswith("STATUS:")
    assert first.facts["initial_observation"].startswith("You are in the middle of a room")


def test_react_log_round_trips_with_each_run_under_its_verdicts_section(
    store: Store, runs: list[SimEpisode], tmp_path: Path
) -> None:
    log = write_react(runs, tmp_path / f"{LABEL}-react.txt")
    report = import_paths(store, [log.path], actor=RITA, fmt=log.fmt)
    assert report.trajectories == len(runs) and report.runs == 1 and not report.bad
    assert imported(store) == expected(runs)
    with store.session() as s:
        rows = s.exec(select(Trajectory)).all()
    assert sorted(t.facts["outcome"] for t in rows) == sorted(r.section for r in runs)
    # household tasks keep their task type (a HotpotQA log's questions are "qa")
    assert {t.task_type for t in rows} <= {"put", "clean", "heat", "cool", "examine", "puttwo"}
    assert {t.environment for t in rows} == {"alfworld"}


@pytest.mark.parametrize("outcomes", [True, False])
def test_chat_log_round_trips_and_without_outcome_fields_stays_unknown(
    store: Store, runs: list[SimEpisode], tmp_path: Path, outcomes: bool
) -> None:
    log = write_chat(runs, tmp_path / f"{LABEL}-chat.json", outcomes=outcomes)
    report = import_paths(store, [log.path], actor=RITA, fmt=log.fmt)
    assert report.trajectories == len(runs) and not report.bad
    assert imported(store) == expected(runs, outcomes=outcomes)
    with store.session() as s:
        rows = s.exec(select(Trajectory)).all()
    assert {t.agent_model for t in rows} == {f"{LABEL}/heuristic-strong", f"{LABEL}/heuristic-weak"}
    if not outcomes:
        assert {t.facts["outcome"] for t in rows} == {"unknown: no outcome field"}


def test_demo_logs_import_as_labelled_simulator_runs(store: Store, tmp_path: Path) -> None:
    logs = write_demo_logs(tmp_path, scale=0.25)
    assert all(log.path.name.startswith(LABEL) for log in logs)
    for log in logs:
        import_paths(store, [log.path], actor=RITA, fmt=log.fmt, source=log.source)
    with store.session() as s:
        rows = s.exec(select(Trajectory)).all()
    assert len(rows) == sum(log.runs for log in logs)
    assert all(LABEL in t.source for t in rows)
    outcomes = {t.success for t in rows}
    assert outcomes == {True, False, None}  # successes, failures to debug, unknown outcomes
