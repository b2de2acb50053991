"""Builds use effective outcomes: a reviewed judgement's success builds; an unreviewed one
only where the setting allows."""

from __future__ import annotations

from memp_core.actor import Actor, system
from memp_core.build import load_evidence, unused_successes
from memp_core.config import Settings
from memp_core.judge.heuristic import HeuristicJudge
from memp_core.judge.judgements import judge_unknown, judgements_of, review_judgement
from memp_core.memory import ProceduralMemory
from memp_core.models import Step, Trajectory
from memp_core.store import Store
from memp_core.update import select_reflect

WON = [
    ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
    ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
    ("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
]


def add(store: Store, steps, success=None) -> int:  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        traj = Trajectory(
            task="heat some egg and put it in diningtable.",
            task_type="heat",
            environment="alfworld",
            success=success,
        )
        rows = [
            Step(trajectory_id=0, index=i, action=a, observation=o)
            for i, (a, o) in enumerate(steps)
        ]
        return int(store.add_trajectory(s, traj, rows).id or 0)


def test_a_confirmed_judgement_builds_and_an_unreviewed_one_only_when_allowed(store: Store) -> None:
    reviewed, unreviewed, lost = add(store, WON), add(store, WON), add(store, WON[:1])
    judge_unknown(store, HeuristicJudge(), actor=system("test"))
    (j,) = judgements_of(store, reviewed)
    review_judgement(store, int(j.id or 0), actor=Actor("rita", "reviewer"))
    assert unused_successes(store) == [reviewed]
    assert unused_successes(store, count_unreviewed=True) == [reviewed, unreviewed]
    runs = load_evidence(store, [reviewed, unreviewed, lost], count_unreviewed=True)
    chosen = select_reflect(runs)
    assert [e.id for e in chosen.build] == [reviewed, unreviewed]
    assert [e.id for e in chosen.reflect] == [lost]
    assert [
        e.id for e in select_reflect(load_evidence(store, [reviewed, unreviewed, lost])).build
    ] == [reviewed]
    mem = ProceduralMemory(store, settings=Settings(database_url=store.url), backend="heuristic")
    revs = mem.build(actor=Actor("rita", "reviewer"))
    assert revs and revs[0].evidence_trajectory_ids == [reviewed]
