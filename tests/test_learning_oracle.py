"""The bench's ceiling: procedures written from the simulator's truth, read like any memory.

The ``oracle`` condition tells how far any update policy could lift this agent at this
patience; these tests pin down that its procedures say what the world does (and only that),
that the agent reads them with the one lesson reader, and that they are served by the same
retrieval as a memory built from runs.
"""

from __future__ import annotations

from memp_core.embeddings import CachedEmbedder, Embedder
from memp_core.loop import LoopConfig, run_loop
from memp_core.memory import ProceduralMemory
from memp_core.sim.bench import BenchConfig, run_learning_bench
from memp_core.sim.catalog import ROOM_OBJECTS
from memp_core.sim.household import household
from memp_core.sim.lesson import read_lesson
from memp_core.sim.oracle import AUTHOR, oracle_store, truth_lesson
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.store import Store

HOME = 2  # heats with the stoveburner, child locks on every cabinet


def _task(task_type: str, seed: int = 0):  # type: ignore[no-untyped-def]
    pairs = [p for p in task_seeds(60, 41) if p[1] == task_type]
    return make_scene(pairs[seed][0], task_type, HOME).task


def test_the_truth_says_how_this_household_heats_and_where_the_object_is() -> None:
    home = household(HOME)
    assert home.heater == "stoveburner" and home.locked == {"cabinet"}
    task = _task("heat")
    lesson = read_lesson(truth_lesson([task], home).render(), task.text, "heat")
    assert lesson.tools == {"heat": "stoveburner"} and lesson.avoid == {"heat": {"microwave"}}
    assert lesson.locked == {"cabinet"} and lesson.no_repeat
    assert lesson.where is not None
    weights = ROOM_OBJECTS[task.room][task.obj]
    expected = {k for k in weights if k not in home.locked and k != task.target}
    assert set(lesson.where.stats) == expected  # never its target, never a locked kind
    best = max(weights[k] for k in expected)
    assert weights[lesson.where.hints[0]] == best  # a most likely kind comes first


def test_the_truth_says_an_appliance_does_nothing_only_where_the_room_has_one() -> None:
    """A kitchen has no bathtubbasin: its truth must not tell a bathroom task reading it that
    the bathtubbasin does nothing (the mistake the first oracle made on household 4)."""
    home = household(4)
    assert home.bath_cleaner == "bathtubbasin"
    by_room = {}
    for seed, task_type in task_seeds(400, 5):
        if task_type == "clean":
            task = make_scene(seed, task_type, 4).task
            by_room.setdefault(task.room, task)
    kitchen, bathroom = by_room["kitchen"], by_room["bathroom"]
    k = read_lesson(truth_lesson([kitchen], home).render(), kitchen.text, "clean")
    b = read_lesson(truth_lesson([bathroom], home).render(), bathroom.text, "clean")
    assert k.tools == {"clean": "sinkbasin"} and k.avoid == {}
    assert b.tools == {"clean": "bathtubbasin"} and b.avoid == {"clean": {"sinkbasin"}}


def test_examine_truth_orders_the_lamp_after_the_object_only_with_timer_lamps() -> None:
    task = _task("examine")
    for number in range(6):
        home = household(number)
        lesson = read_lesson(truth_lesson([task], home).render(), task.text, "examine")
        assert lesson.take_before_use == home.lamps_timed
        assert lesson.lamp is not None and lesson.lamp.hints


def test_the_oracle_memory_is_approved_authored_as_the_simulator_and_served(
    embedder: Embedder,
) -> None:
    cached = CachedEmbedder(embedder)
    seeds = task_seeds(12, 77)
    store = oracle_store(seeds, HOME, cached, Store("sqlite://"))
    try:
        procs = store.procedures()
        tasks = {(make_scene(s, t, HOME).task.text, make_scene(s, t, HOME).task.room)
                 for s, t in seeds}  # fmt: skip
        assert len(procs) == len(tasks) and {p.status for p in procs} == {"approved"}
        revs = [store.current_revision(p) for p in procs]
        assert {r.author for r in revs} == {AUTHOR} and all(r.evidence_trajectory_ids == []
                                                           for r in revs)  # fmt: skip
        memory = ProceduralMemory(store, embedder=cached, backend="heuristic")
        test = LoopConfig(memory="none", retrieve="query", tasks=12, groups=1, seed=77,
                          household=HOME, kind="experiment")  # fmt: skip
        result = run_loop(store, test, memory=memory)
        assert result.success_rate is not None
        assert store.counts().retrievals == 12  # every task was served from it
    finally:
        store.dispose()


def test_the_ceiling_is_above_no_memory_on_a_small_bench(embedder: Embedder) -> None:
    config = BenchConfig(train=6, test=36, groups=1, seed=HOME, conditions=("none", "oracle"))
    result = run_learning_bench(config, embedder=embedder)
    oracle, none = result.conditions["oracle"], result.conditions["none"]
    assert oracle.memory == "simulator truth (read-only)"
    assert oracle.success_rate > none.success_rate and oracle.mean_steps < none.mean_steps
