"""`memp demo` fills the Learning curves page with a comparison worth opening on: enough seeds
per policy to average, groups small enough that the first runs on empty memory, and the
memory changes of runs whose own database was thrown away."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import select

from memp_core import conditions, curves, markers
from memp_core.config import Settings
from memp_core.demo import COMPARISON_GROUPS, COMPARISON_PER_GROUP, DemoStep, demo_plan, run_step
from memp_core.embeddings import CachedEmbedder, Embedder
from memp_core.loop import LoopConfig
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, Trajectory
from memp_core.store import Store


def test_the_demo_compares_policies_over_seeds_with_memory_updated_between_groups() -> None:
    plan = demo_plan()
    comparison = [s.config for s in plan if s.isolated]
    seeds = Counter(c.memory for c in comparison)
    assert seeds["none"] >= 5 and seeds["reflect"] >= 5
    assert {"vanilla", "validation"} <= set(seeds)
    for c in comparison:  # one setting: the seeds of a policy are one condition
        assert (c.groups, c.k, c.strength) == (COMPARISON_GROUPS, 5, "strong")
        assert c.tasks == COMPARISON_GROUPS * COMPARISON_PER_GROUP >= 300
        # memory changes only between groups: group 0 of every policy runs on empty memory
        assert c.update_every == c.tasks // c.groups
        assert len({x.seed for x in comparison if x.memory == c.memory}) == seeds[c.memory]
    # The story's runs without memory match its reflect run, so they compare too.
    story = {s.config.name: s.config for s in plan if not s.isolated}
    alone = story["demo: strong agent, no memory"]
    assert (alone.tasks, alone.groups) == (story["demo: strong agent, reflect"].tasks, 6)


def test_quick_demo_keeps_ten_groups_of_fewer_tasks() -> None:
    comparison = [s.config for s in demo_plan(0.5) if s.isolated]
    assert {(c.tasks, c.groups, c.update_every) for c in comparison} == {(150, 10, 15)}


def test_an_isolated_run_keeps_the_memory_changes_it_made(store: Store, embedder: Embedder) -> None:
    settings = Settings(database_url=store.url)
    memory = ProceduralMemory(store, settings=settings, embedder=CachedEmbedder(embedder),
                              backend="heuristic")  # fmt: skip
    steps = [
        DemoStep(f"{policy}, isolated", LoopConfig(
            tasks=6, groups=3, update_every=2, k=5, memory=policy, seed=21, kind="experiment",
            retrieve=None if policy == "none" else "query", name=f"demo: {policy}",
        ), isolated=True)
        for policy in ("reflect", "none")
    ]  # fmt: skip
    reflect, none = (run_step(store, memory, settings, step, None).run_id for step in steps)
    runs = {r.id: r for r in store.runs()}
    assert runs[reflect].config["isolated"] and runs[reflect].metrics
    with store.session() as s:  # its trajectories and procedures stayed behind
        assert s.exec(select(Trajectory)).all() == []
        assert s.exec(select(Procedure)).all() == []
    marks = markers.memory_markers(store, [runs[reflect]])
    added = [m for m in marks if m.kind == "revision added"]
    # updated after each group of two tasks: between groups (x.5), never inside one
    assert added and {m.position for m in added} <= {0.5, 1.5, 2.5}
    assert all(m.run_id == reflect and m.count >= 1 and m.names for m in added)
    assert markers.memory_markers(store, [runs[none]]) == []
    # A condition's seeds add up, as the page shows them.
    (total,) = [m for m in markers.condition_markers(store, [runs[reflect]]) if m.position == 0.5]
    assert total.count == next(m.count for m in added if m.position == 0.5)


@pytest.mark.slow
def test_the_demo_comparison_shows_reflect_pulling_away_from_no_memory(
    embedder: Embedder,
) -> None:
    """The story the page opens on, as the demo runs it: same seeds, same first group (empty
    memory), then reflect ahead of no memory in success and in steps over the second half."""
    store = Store("sqlite://")
    settings = Settings(database_url=store.url)
    memory = ProceduralMemory(store, settings=settings, embedder=CachedEmbedder(embedder),
                              backend="heuristic")  # fmt: skip
    for step in demo_plan():
        if step.isolated and step.config.memory in ("none", "reflect"):
            run_step(store, memory, settings, step, None)
    runs = store.runs()
    cpoints = conditions.condition_curves(curves.curve_points(store, runs))
    by_policy = {curves.condition_parts(r)[0].split(" ")[0]: curves.condition_of(r) for r in runs}
    none = [p for p in cpoints if p.condition == by_policy["no"]]
    reflect = [p for p in cpoints if p.condition == by_policy["reflect"]]
    store.dispose()
    assert [p.seeds for p in reflect] == [5] * COMPARISON_GROUPS
    assert reflect[0].success_mean == none[0].success_mean  # group 0: nothing learned yet

    def late(ps: list[conditions.ConditionPoint], key: str) -> float:
        half = [getattr(p, key) for p in ps[COMPARISON_GROUPS // 2 :]]
        return sum(half) / len(half)

    assert late(reflect, "success_mean") >= late(none, "success_mean") + 0.05
    assert late(reflect, "steps_mean") <= late(none, "steps_mean") - 2
