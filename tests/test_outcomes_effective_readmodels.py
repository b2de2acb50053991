"""Success rates people read count effective outcomes, in every read model.

A run recorded unknown that a person settled by reviewing a judge's verdict (confirmed or
overridden) counts as that outcome on the Overview, in lineage, on the Agents page and in
learning curves; an unreviewed verdict counts only with the setting; a run no judgement
settled stays unknown and out of the rate. Every trajectory here is written by the test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlmodel import col, select
from test_outcomes import judge_as as judge

from memp_core.actor import Actor
from memp_core.agents.activity import agent_activity
from memp_core.config import Settings
from memp_core.curves import curve_points
from memp_core.judge.judgements import review_judgement
from memp_core.lineage import revision_uses
from memp_core.models import Judgement, Procedure, ProcedureRevision, Run, Step, Trajectory
from memp_core.outcomes import (
    Settled,
    Tally,
    effective_outcomes,
    effective_tally,
    judgement_note,
    settled_by_judgements,
)
from memp_core.overview import overview
from memp_core.queue import procedure_detail
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")
AGENT = "kitchen-bot"


@dataclass(frozen=True)
class World:
    run_id: int
    revision_id: int


def world(store: Store, *, metrics: list[dict[str, object]] | None = None) -> World:
    """One run, one procedure revision; every trajectory added follows both."""
    with store.transaction() as s:
        run = Run(name="reported", kind="online", metrics=metrics or [])
        proc = Procedure(key="heat-egg", title="Heat an egg", task_type="heat")
        s.add(run)
        s.add(proc)
        s.flush()
        rev = ProcedureRevision(procedure_id=int(proc.id or 0), script="1. heat it")
        s.add(rev)
        s.flush()
        proc.current_revision_id = rev.id
        s.add(proc)
        return World(int(run.id or 0), int(rev.id or 0))


def add(store: Store, w: World, success: bool | None) -> int:
    steps = [Step(index=0, action="go to countertop 1", observation="You see an egg 1.")]
    with store.transaction() as s:
        traj = Trajectory(
            task="heat some egg and put it in countertop.", task_type="heat", source="test",
            success=success, run_id=w.run_id, group_index=0,
            procedure_revision_id=w.revision_id, reporting_agent=AGENT,
        )  # fmt: skip
        store.add_trajectory(s, traj, steps)
        return int(traj.id or 0)


@dataclass(frozen=True)
class Read:
    """What one read model says: successes, failures, unknown (None where it does not count
    unknown runs) and the rate it shows."""

    successes: int
    failures: int
    unknown: int | None
    rate: float | None


def by_overview(store: Store, w: World, counted: bool) -> Read:
    ov = overview(store, Settings(count_unreviewed_judgements=counted))
    c = ov.counts
    (card,) = ov.latest_runs
    assert card.last_success == c.success_rate  # one run: its card agrees with the total
    return Read(c.succeeded, c.failed, c.unknown, c.success_rate)


def by_lineage(store: Store, w: World, counted: bool) -> Read:
    use = revision_uses(store, [w.revision_id], count_unreviewed=counted)[w.revision_id]
    return Read(use.successes, use.uses - use.successes, None, use.success_rate)


def by_agents(store: Store, w: World, counted: bool) -> Read:
    (a,) = [a for a in agent_activity(store, count_unreviewed=counted) if a.agent == AGENT]
    return Read(a.successes, a.failures, a.unknown, a.success_rate)


def by_curves(store: Store, w: World, counted: bool) -> Read:
    (p,) = curve_points(store, [store.get(Run, w.run_id)], count_unreviewed=counted)
    judged = p.tasks - p.unknown
    ok = round((p.success_rate or 0.0) * judged)
    return Read(ok, judged - ok, p.unknown, p.success_rate)


def by_review_panel(store: Store, w: World, counted: bool) -> Read:
    proc_id = store.get(ProcedureRevision, w.revision_id).procedure_id
    use = procedure_detail(store, proc_id, count_unreviewed=counted).uses[w.revision_id]
    return Read(use.successes, use.uses - use.successes, None, use.success_rate)


READERS: dict[str, Callable[[Store, World, bool], Read]] = {
    "overview": by_overview, "lineage": by_lineage, "agents": by_agents, "curves": by_curves,
    "review panel": by_review_panel,
}  # fmt: skip


def expect(read: Read, successes: int, failures: int, unknown: int) -> None:
    assert (read.successes, read.failures) == (successes, failures)
    if read.unknown is not None:
        assert read.unknown == unknown
    assert read.rate == pytest.approx(successes / (successes + failures))


@pytest.mark.parametrize("model", READERS)
def test_a_confirmed_success_counts_as_a_success_and_a_bare_unknown_stays_unknown(
    store: Store, model: str
) -> None:
    w = world(store)
    add(store, w, False)
    confirmed = add(store, w, None)
    review_judgement(store, judge(store, confirmed, "success"), actor=REVIEWER)
    add(store, w, None)  # nobody judged it: unknown, in no rate
    for counted in (False, True):
        expect(READERS[model](store, w, counted), successes=1, failures=1, unknown=1)


@pytest.mark.parametrize("model", READERS)
def test_an_overridden_judgement_counts_as_the_persons_verdict(store: Store, model: str) -> None:
    w = world(store)
    add(store, w, True)
    overridden = add(store, w, None)
    review_judgement(store, judge(store, overridden, "success"), actor=REVIEWER,
                     verdict="failure")  # fmt: skip
    add(store, w, None)
    for counted in (False, True):  # the person's word, whatever the setting
        expect(READERS[model](store, w, counted), successes=1, failures=1, unknown=1)


@pytest.mark.parametrize("model", READERS)
def test_an_unreviewed_verdict_counts_only_with_the_setting(store: Store, model: str) -> None:
    w = world(store)
    add(store, w, False)
    judge(store, add(store, w, None), "success")
    add(store, w, None)
    expect(READERS[model](store, w, False), successes=0, failures=1, unknown=2)
    expect(READERS[model](store, w, True), successes=1, failures=1, unknown=1)


@pytest.mark.parametrize("model", READERS)
def test_a_review_settling_on_unknown_and_judges_that_disagree_leave_a_run_unknown(
    any_store: Store, model: str
) -> None:
    store = any_store  # SQLite and Postgres
    w = world(store)
    add(store, w, True)
    settled_unknown = add(store, w, None)
    review_judgement(store, judge(store, settled_unknown, "success"), actor=REVIEWER,
                     verdict="unknown")  # fmt: skip
    judge(store, settled_unknown, "success", backend="openai")  # the person's word outranks it
    disputed = add(store, w, None)
    judge(store, disputed, "success")
    judge(store, disputed, "failure", backend="openai")
    confirmed = add(store, w, None)  # so that the rate moves off the recorded one
    review_judgement(store, judge(store, confirmed, "failure"), actor=REVIEWER)
    for counted in (False, True):
        expect(READERS[model](store, w, counted), successes=1, failures=1, unknown=2)


def test_judged_metrics_of_an_imported_run_count_its_settled_unknown_tasks(store: Store) -> None:
    """An imported run's curve comes from the metrics stored at import time; the unknown
    tasks a person settled since move to their outcome there too."""
    group = {"index": 0, "tasks": 4, "successes": 1, "unknown": 2, "success_rate": 0.5}
    w = world(store, metrics=[group])
    add(store, w, True)
    add(store, w, False)
    review_judgement(store, judge(store, add(store, w, None), "success"), actor=REVIEWER)
    add(store, w, None)
    (p,) = curve_points(store, [store.get(Run, w.run_id)])
    assert (p.tasks, p.unknown, p.by_review, p.by_judge) == (4, 1, 1, 0)
    assert p.success_rate == pytest.approx(2 / 3)


def test_read_models_say_how_many_outcomes_came_from_judgements(store: Store) -> None:
    w = world(store)
    review_judgement(store, judge(store, add(store, w, None), "success"), actor=REVIEWER)
    judge(store, add(store, w, None), "failure")
    ov = overview(store, Settings(count_unreviewed_judgements=True))
    assert ov.settled == Settled(successes=1, failures=1, by_review=1, by_judge=1)
    assert ov.settled.describe() == (
        "2 outcomes from judgements: 1 reviewed, 1 unreviewed "
        "(MEMP_COUNT_UNREVIEWED_JUDGEMENTS is on)"
    )
    use = revision_uses(store, [w.revision_id])[w.revision_id]
    assert use.settled.describe() == "1 outcome from reviewed judgements"
    (a,) = agent_activity(store)
    assert (a.settled.by_review, a.settled.by_judge) == (1, 0)
    assert judgement_note(0, 0) == ""


# -- the query and the rule agree --------------------------------------------------------------


def test_the_judgement_query_settles_each_run_as_resolve_outcome_does(any_store: Store) -> None:
    """Many unknown runs with a random mix of judges, abstentions, reviews that confirm,
    override or settle on unknown, and several reviews of one run: per run and in total, what
    the read models' one query settles is what :func:`effective_outcomes` says (on SQLite and
    on Postgres)."""
    store = any_store
    rng = random.Random(7)
    w = world(store)
    ids = [add(store, w, rng.choice([True, False, None, None, None])) for _ in range(80)]
    for tid in ids:
        for backend in rng.sample(["heuristic", "openai", "other"], rng.randint(0, 3)):
            jid = judge(store, tid, rng.choice(["success", "failure", "unknown"]), backend=backend)
            for _ in range(rng.choice([0, 0, 1, 2])):
                verdict = rng.choice([None, "success", "failure", "unknown"])
                review_judgement(store, jid, actor=REVIEWER, verdict=verdict)
    for counted in (False, True):
        with store.session() as s:
            found = settled_by_judgements(s, [Trajectory.id], count_unreviewed=counted)
            recorded = dict(s.exec(select(Trajectory.id, Trajectory.success)).all())
        rule = effective_outcomes(store, ids, count_unreviewed=counted)
        for tid in ids:
            e = rule[tid]
            if recorded[tid] is not None or e.success is None:
                assert (tid,) not in found, tid
            else:
                assert found[(tid,)] == Settled().add(e), tid
        whole = effective_tally(store, ids, count_unreviewed=counted)
        c = overview(store, Settings(count_unreviewed_judgements=counted)).counts
        assert Tally(c.succeeded, c.failed, c.unknown) == whole
        assert whole.unknown < sum(v is None for v in recorded.values())  # some were settled


def test_the_query_reads_judgements_of_unknown_runs_only(store: Store) -> None:
    w = world(store)
    recorded = add(store, w, False)
    review_judgement(store, judge(store, recorded, "success"), actor=REVIEWER)
    with store.session() as s:
        assert settled_by_judgements(s, [], count_unreviewed=True) == {}
        assert s.exec(select(Judgement).where(col(Judgement.trajectory_id) == recorded)).all()
