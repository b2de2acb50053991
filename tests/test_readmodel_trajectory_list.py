"""The Trajectories page's read model: the filter choices, the runs, and one page of
trajectories with the judgement shown beside each run of unknown outcome."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from memp_core.models import Judgement, Run, Step, Trajectory, utcnow
from memp_core.store import Store, TrajectoryFilter
from memp_core.trajectory_list import (
    TrajectoryRow,
    filter_options,
    run_choices,
    trajectory_page,
    trajectory_total,
)


def add(store: Store, task: str, success: bool | None, **kw: Any) -> int:
    with store.transaction() as s:
        traj = Trajectory(task=task, success=success, **kw)
        step = Step(trajectory_id=0, index=0, action="look", observation="You see a shelf.")
        return int(store.add_trajectory(s, traj, [step]).id or 0)


def judge(store: Store, tid: int, verdict: str, confidence: float, **review: Any) -> int:
    """A judgement written as `memp judge` and a person's review leave it (real rows)."""
    with store.transaction() as s:
        j = Judgement(trajectory_id=tid, verdict=verdict, confidence=confidence,
                      backend="heuristic", model="heuristic", actor="memp:test",
                      **review)  # fmt: skip
        s.add(j)
        s.flush()
        return int(j.id or 0)


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SELECT statements the store's engine runs inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append(sql)

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", note)


def test_filter_options_are_the_sorted_non_empty_values_of_each_column(store: Store) -> None:
    add(store, "a", True, task_type="heat", agent_model="gpt-x", source="simulator")
    add(store, "b", False, task_type="clean", agent_model="", source="import:alfworld",
        reporting_agent="bot")  # fmt: skip
    add(store, "c", None, task_type="heat", agent_model="llama", source="simulator")
    options = filter_options(store)
    assert options.task_types == ["clean", "heat"]
    assert options.agent_models == ["gpt-x", "llama"]  # the blank one is no choice
    assert options.sources == ["import:alfworld", "simulator"]
    assert options.reporting_agents == ["bot"]


def test_run_choices_name_each_run_by_name_else_kind_and_source_else_agent(store: Store) -> None:
    with store.transaction() as s:
        named = Run(name="heat-memory", kind="online", source="simulator", agent="heuristic")
        bare = Run(kind="import", agent="reflexion")
        s.add_all([named, bare])
        s.flush()
        ids = [int(named.id or 0), int(bare.id or 0)]
    choices = run_choices(store)
    assert [c.id for c in choices] == ids  # oldest first
    assert [c.label for c in choices] == [
        f"#{ids[0]} heat-memory (simulator)",
        f"#{ids[1]} import (reflexion)",
    ]


def test_a_page_is_newest_first_and_the_total_counts_every_match(store: Store) -> None:
    ids = [add(store, f"put egg {i} in fridge", i % 2 == 0) for i in range(7)]
    add(store, "clean the mug", True)
    flt = TrajectoryFilter(text="egg")
    assert trajectory_total(store, flt) == 7
    first = trajectory_page(store, flt, offset=0, limit=3)
    second = trajectory_page(store, flt, offset=3, limit=3)
    last = trajectory_page(store, flt, offset=6, limit=3)
    assert [t.id for t in first.trajectories] == ids[::-1][:3]
    assert [t.id for t in second.trajectories] == ids[::-1][3:6]
    assert [t.id for t in last.trajectories] == [ids[0]]
    assert (first.total, second.total, last.total) == (7, 7, 7)
    assert (second.offset, second.limit) == (3, 3)
    failed = trajectory_page(store, TrajectoryFilter(text="egg", success=False))
    assert {t.id for t in failed.trajectories} == {ids[1], ids[3], ids[5]}


def test_each_unknown_run_carries_the_judgement_to_show(store: Store) -> None:
    never = add(store, "never judged", None)
    fresh = add(store, "judged once", None)
    judge(store, fresh, "success", 0.87)
    settled = add(store, "judged, then reviewed, then judged again", None)
    judge(store, settled, "success", 0.6, review="overridden", reviewed_verdict="failure",
          reviewed_by="human:rita", reviewed_at=utcnow() - timedelta(minutes=5))  # fmt: skip
    judge(store, settled, "success", 0.99)  # newer, but nobody reviewed it
    labelled = add(store, "judged, then a person set its outcome", True)
    judge(store, labelled, "failure", 0.7)
    rows = {r.trajectory.id: r for r in trajectory_page(store, TrajectoryFilter()).rows}
    assert rows[never].judgement is None and rows[never].judged == ""
    assert rows[fresh].judged == "success 0.87"
    assert rows[settled].judged == "failure (reviewed)"  # the person's word, not the judge's
    # a recorded outcome needs no judged one beside it
    assert rows[labelled].judgement is None and rows[labelled].judged == ""


def test_a_row_without_a_judgement_says_nothing() -> None:
    assert TrajectoryRow(Trajectory(task="t")).judged == ""


def test_a_page_costs_the_same_queries_for_five_rows_or_fifty(store: Store) -> None:
    """No query per row: the judgements of a page are read together."""
    for i in range(50):
        tid = add(store, f"task {i}", None)
        judge(store, tid, "failure", 0.5)
    with statements(store) as small:
        five = trajectory_page(store, TrajectoryFilter(unknown=True), limit=5)
    with statements(store) as large:
        fifty = trajectory_page(store, TrajectoryFilter(unknown=True), limit=50)
    assert [len(five.rows), len(fifty.rows)] == [5, 50]
    assert all(r.judged == "failure 0.50" for r in fifty.rows)
    assert len(small) == len(large) == 3  # count, page, judgements
