"""The learning benchmark: memory policies compared on one seeded task set.

Protocol (the paper's, online): for each condition a fresh, throw-away database; the agent
works through a *training* stream of tasks in groups while the update policy writes memory
(the learning curve); then it is measured on a *held-out test set* of other seeded tasks
(the same for every condition) with memory read-only. A condition's ``success_rate`` and
``mean_steps`` are those test figures (failures count at the step limit).

All tasks of one bench happen in one household (:mod:`memp_core.sim.household`; the bench
seed is the household): training and test rooms differ but share the home's conventions.

Conditions:
- ``none``: no memory; the agent brings common sense (:mod:`memp_core.sim.priors`).
  ``none-no-priors``: the blind agent without common sense, for comparison.
- ``vanilla``, ``validation``, ``reflect``: query retrieval (k) and that update policy.
  ``random``: reflect updates but random retrieval (the ablation).
- ``reflect-locations-only``, ``reflect-without-locations`` (``--ablate``): the memory
  ``reflect`` built, read-only, served with parts of each procedure removed (only where
  things were found; everything but that), rewritten by the one lesson reader/writer
  (:func:`memp_core.sim.guide.served`); the agent is the same.
- ``weak``: the weak agent without memory; ``transfer``: the weak agent reading the memory
  the strong agent built under ``reflect`` (retrieval only).
- ``oracle`` (``--ablate``): the strong agent reading procedures written from the
  simulator's truth (:mod:`memp_core.sim.oracle`): the ceiling any memory could reach with
  this agent at this patience. An instrument, not a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memp_core.config import Settings, get_settings
from memp_core.embeddings import CachedEmbedder, Embedder, get_embedder
from memp_core.loop import LoopConfig, LoopResult, run_loop
from memp_core.memory import ProceduralMemory
from memp_core.sim.household import household
from memp_core.sim.lesson import PARTS
from memp_core.sim.oracle import oracle_store
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.store import Store

CONDITIONS = ("none", "vanilla", "validation", "reflect", "random", "weak", "transfer")
ABLATIONS = ("none-no-priors", "reflect-locations-only", "reflect-without-locations", "oracle")
ORACLE = "oracle"  # a memory no policy trains: written from the world's truth
TEST_SEED_OFFSET = 10_007  # test tasks come from another seed stream than training tasks


@dataclass(frozen=True)
class Plan:
    """How a condition runs: agent, memory policies, what memory serves, whose memory."""

    strength: str = "strong"
    memory: str = "none"  # update policy while training
    retrieve: str | None = None
    priors: bool = True
    serve: tuple[str, ...] | None = None  # lesson parts served (None: as written)
    reads: str | None = None  # test only, on the memory this condition trained


PLANS: dict[str, Plan] = {
    "none": Plan(),
    "none-no-priors": Plan(priors=False),
    "vanilla": Plan(memory="vanilla", retrieve="query"),
    "validation": Plan(memory="validation", retrieve="query"),
    "reflect": Plan(memory="reflect", retrieve="query"),
    "reflect-locations-only": Plan(retrieve="query", serve=("locations",), reads="reflect"),
    "reflect-without-locations": Plan(
        retrieve="query", serve=tuple(p for p in PARTS if p != "locations"), reads="reflect"
    ),
    "random": Plan(memory="reflect", retrieve="random"),
    "weak": Plan("weak"),
    "transfer": Plan("weak", retrieve="query", reads="reflect"),
    ORACLE: Plan(retrieve="query", reads=ORACLE),
}


@dataclass(frozen=True)
class BenchConfig:
    train: int = 480
    test: int = 240
    groups: int = 8
    seed: int = 0
    k: int = 5
    update_every: int = 1
    conditions: tuple[str, ...] = CONDITIONS
    patience: int = 0  # places searched for one thing (0: the agents' own, 11)

    @classmethod
    def quick(cls, seed: int = 0, **kw: Any) -> BenchConfig:
        return cls(train=180, test=120, groups=3, seed=seed, **kw)

    @property
    def household(self) -> int:
        return self.seed


@dataclass
class ConditionResult:
    name: str
    agent: str
    memory: str
    retrieve: str | None
    success_rate: float
    mean_steps: float
    online_success_rate: float
    online_mean_steps: float
    curve: list[dict[str, Any]] = field(default_factory=list)  # training groups
    reflections: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BenchResult:
    config: BenchConfig
    conditions: dict[str, ConditionResult]

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": "train online, then test on held-out tasks with memory read-only",
            "train_tasks": self.config.train, "test_tasks": self.config.test,
            "groups": self.config.groups, "seed": self.config.seed, "k": self.config.k,
            "household": household(self.config.household).describe(),
            "patience": self.config.patience or "default",
            "conditions": {n: c.as_dict() for n, c in self.conditions.items()},
        }  # fmt: skip


def run_learning_bench(
    config: BenchConfig,
    *,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    on_task: Callable[[str, int, int], None] | None = None,
) -> BenchResult:
    settings = settings or get_settings()
    cached = CachedEmbedder(embedder or get_embedder(settings))
    cached.warm(task_texts(config))
    embedder = cached
    stores: dict[str, Store] = {}
    results: dict[str, ConditionResult] = {}
    for name in config.conditions:
        plan = PLANS[name]
        base = LoopConfig(
            agent="heuristic", strength=plan.strength, memory=plan.memory,
            retrieve=plan.retrieve, k=config.k, groups=config.groups, seed=config.seed,
            kind="experiment", update_every=config.update_every, household=config.household,
            priors=plan.priors, patience=config.patience, serve=plan.serve,
        )  # fmt: skip
        if plan.reads == ORACLE:
            store = stores[ORACLE] = oracle_store(
                task_seeds(config.test, config.seed + TEST_SEED_OFFSET), config.household,
                embedder, Store("sqlite://"),
            )  # fmt: skip
            train = None
        elif plan.reads is not None:
            store = stores.get(plan.reads) or _train(config, embedder, settings, stores,
                                                     plan.reads)  # fmt: skip
            train = None
        else:
            store = Store("sqlite://")
            stores[name] = store
            train = _run(store, embedder, settings, replace(base, tasks=config.train,
                         name=f"bench {name} (train)"), name, on_task)  # fmt: skip
        test_cfg = replace(
            base, memory="none", tasks=config.test, groups=1,
            seed=config.seed + TEST_SEED_OFFSET, name=f"bench {name} (test)",
        )  # fmt: skip
        test = _run(store, embedder, settings, test_cfg, name, on_task)
        src = train or test
        agent = f"heuristic-{plan.strength}" + ("" if plan.priors else "-no-priors")
        memory = (
            "simulator truth (read-only)" if plan.reads == ORACLE
            else f"{plan.reads} (read-only)" if plan.reads else plan.memory
        )  # fmt: skip
        results[name] = ConditionResult(
            name, agent, memory, plan.retrieve, test.success_rate, test.mean_steps,
            src.success_rate, src.mean_steps, src.groups, src.reflections,
        )  # fmt: skip
    for store in stores.values():
        store.dispose()
    return BenchResult(config, results)


def task_texts(config: BenchConfig) -> list[str]:
    """Every task sentence of the benchmark (training and test streams)."""
    pairs = task_seeds(config.train, config.seed)
    pairs += task_seeds(config.test, config.seed + TEST_SEED_OFFSET)
    return [make_scene(seed, task_type).task.text for seed, task_type in pairs]


def _train(
    config: BenchConfig, embedder: Embedder, settings: Settings, stores: dict[str, Store],
    name: str,
) -> Store:  # fmt: skip
    """A read-only condition without its memory's condition in the list: build that memory."""
    plan = PLANS[name]
    store = Store("sqlite://")
    stores[name] = store
    cfg = LoopConfig(memory=plan.memory, retrieve=plan.retrieve, tasks=config.train,
                     groups=config.groups, seed=config.seed, k=config.k, kind="experiment",
                     update_every=config.update_every, household=config.household,
                     patience=config.patience)  # fmt: skip
    _run(store, embedder, settings, cfg, name, None)
    return store


def _run(
    store: Store, embedder: Embedder, settings: Settings, cfg: LoopConfig, name: str,
    on_task: Callable[[str, int, int], None] | None,
) -> LoopResult:  # fmt: skip
    memory = ProceduralMemory(store, settings=settings, embedder=embedder, backend="heuristic")

    def progress(done: int, total: int) -> None:
        if on_task is not None:
            on_task(name, done, total)

    return run_loop(store, cfg, memory=memory, settings=settings, progress=progress)


def write_png(result: BenchResult, path: Path) -> Path:
    """The learning curves (training groups) and the test figures, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, cond in result.conditions.items():
        if name == "transfer" or not cond.curve:
            continue
        xs = [g["index"] + 1 for g in cond.curve]
        curves.plot(xs, [g["success_rate"] for g in cond.curve], marker="o", label=name)
    curves.set(title="Training stream: success per group", xlabel="group", ylabel="success",
               ylim=(0, 1))  # fmt: skip
    curves.legend(fontsize=8)
    names = list(result.conditions)
    rates = [result.conditions[n].success_rate for n in names]
    steps = [result.conditions[n].mean_steps for n in names]
    bars.bar(names, rates, color="tab:blue")
    for i, (r, s) in enumerate(zip(rates, steps, strict=True)):
        bars.text(i, r + 0.02, f"{r:.0%}\n{s:.1f} st", ha="center", fontsize=8)
    bars.set(title=f"Held-out test ({result.config.test} tasks): success, mean steps",
             ylim=(0, 1.15))  # fmt: skip
    bars.tick_params(axis="x", labelrotation=30)
    fig.suptitle("Memp Studio household simulator (synthetic, ALFWorld-compatible; heuristic "
                 "agents)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
