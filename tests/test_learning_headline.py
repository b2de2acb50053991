"""The headline, guarded: memory lifts the common-sense agent because the agent reads it.

A small seeded run of heat tasks in a household whose convention common sense does not know
(the microwave does nothing here; the stoveburner heats): reflect's memory lifts the agent
over the same agent without memory (more successes, fewer steps), and an agent made to
ignore the memory it is handed gains nothing from the same training. Seeded and
deterministic; the margin is this run's, not a claim about the benchmark.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from memp_core.embeddings import CachedEmbedder, Embedder
from memp_core.loop import LoopConfig, LoopResult, run_loop
from memp_core.memory import ProceduralMemory
from memp_core.sim.agents import HeuristicAgent
from memp_core.sim.household import household
from memp_core.store import Store

HOME = 0
TRAIN = LoopConfig(memory="reflect", tasks=12, groups=2, seed=5, k=3, household=HOME,
                   task_types=("heat",), kind="experiment", patience=4)  # fmt: skip
TEST = replace(TRAIN, memory="none", tasks=16, groups=1, seed=905)


def test_the_household_is_one_common_sense_does_not_know() -> None:
    home = household(HOME)
    assert home.heater == "stoveburner"


def _test_after_training(embedder: Embedder) -> tuple[LoopResult, LoopResult]:
    store = Store("sqlite://")
    try:
        memory = ProceduralMemory(store, embedder=embedder, backend="heuristic")
        run_loop(store, TRAIN, memory=memory)
        with_memory = run_loop(store, TEST, memory=memory)
        without = run_loop(store, replace(TEST, retrieve=None), memory=memory)
    finally:
        store.dispose()
    return with_memory, without


def test_reflect_beats_no_memory_clearly(embedder: Embedder) -> None:
    with_memory, without = _test_after_training(CachedEmbedder(embedder))
    assert with_memory.success_rate >= without.success_rate + 0.15
    assert with_memory.mean_steps <= 0.75 * without.mean_steps


def test_an_agent_that_ignores_memory_gains_nothing(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = HeuristicAgent.run
    monkeypatch.setattr(
        HeuristicAgent, "run", lambda self, world, recalls=(): real_run(self, world)
    )
    with_memory, without = _test_after_training(CachedEmbedder(embedder))
    assert with_memory.success_rate == without.success_rate
