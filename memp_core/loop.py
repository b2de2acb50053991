"""The online learning loop: tasks arrive in groups, the agent uses memory, memory updates.

For every task: retrieve procedures (logged), run the agent in the household world, store the
trajectory with its steps, the revision it followed and its retrieval, then apply the update
policy. Each :class:`~memp_core.models.Run` stores its configuration and one metrics entry
per group (success rate, mean steps with failures counted at the step limit, tokens), written
as each group ends so the dashboard sees a running experiment grow. Cancel with Ctrl-C or a
``threading.Event``: the run is kept, marked ``cancelled``, with the groups it finished.

:func:`run_loop` runs in the store it is given, memory included: the demo and the benchmark
use it on databases of their own. People start experiments with :func:`run_experiment`
(``memp run``) or :func:`start_run` (the dashboard): those check the person's role and run
any experiment that writes memory on a memory of its own (:mod:`memp_core.experiment`), so
what it approves for its own agent is never served to the shared database's agents.

:func:`replay` compares a revision with its parent on seeded tasks in a sandbox: it writes
nothing to the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memp_core.actor import Actor
from memp_core.config import Settings, get_settings
from memp_core.embeddings import CachedEmbedder, Embedder, get_embedder
from memp_core.errors import ConfigError, LLMError
from memp_core.experiment import RunMirror, land, writes_memory
from memp_core.facts import extract_facts
from memp_core.memory import ProceduralMemory
from memp_core.models import Retrieval, Run, Step, Trajectory, utcnow
from memp_core.retrieve import RetrievedProcedure
from memp_core.sim.agents import STRENGTHS, Episode, HeuristicAgent
from memp_core.sim.guide import Guide, Recall, served
from memp_core.sim.priors import FAIR, NO_PRIORS
from memp_core.sim.replay import ReplayResult, ReplayScore, replay
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.sim.transcript import step_flags
from memp_core.sim.world import DEFAULT_MAX_STEPS, World
from memp_core.store import Store

__all__ = [
    "LoopConfig", "LoopResult", "ReplayResult", "ReplayScore", "replay",
    "run_experiment", "run_loop", "start_run",
]  # fmt: skip

ENVIRONMENT = "household-sim"
MEMORY_POLICIES = ("none", "vanilla", "validation", "reflect")
Progress = Callable[[int, int], None]
OnRun = Callable[[Run], None]


@dataclass(frozen=True)
class LoopConfig:
    """One run. ``retrieve=None`` (or ``memory='none'`` from the CLI) means no memory at all;
    ``memory='none'`` with a retrieve policy reads memory without changing it (transfer)."""

    agent: str = "heuristic"  # heuristic | llm
    strength: str = "strong"  # heuristic agents only
    memory: str = "reflect"  # update policy
    retrieve: str | None = "query"
    build: str = "script"
    k: int = 3
    tasks: int = 60
    groups: int = 3
    seed: int = 0
    max_steps: int = DEFAULT_MAX_STEPS
    auto_approve: bool = True
    author_model: str | None = None  # only serve revisions written by this model
    task_types: tuple[str, ...] = ()  # empty: all six
    update_every: int = 1  # tasks per memory update (a batch embeds in one pass)
    household: int | None = None  # the home the tasks happen in (None: the seed's)
    priors: bool = True  # heuristic agents: common sense (False: the blind agent)
    patience: int = 0  # heuristic agents: places searched for one thing (0: the strength's)
    serve: tuple[str, ...] | None = None  # lesson parts memory serves (None: as written)
    name: str = ""
    kind: str = "online"
    started_by: str = ""  # the author of the person who started it (recorded in its config)

    def check(self) -> None:
        if self.memory not in MEMORY_POLICIES:
            raise ConfigError(f"unknown memory policy {self.memory!r}; valid: {MEMORY_POLICIES}")
        if self.agent not in ("heuristic", "llm"):
            raise ConfigError(f"unknown agent {self.agent!r}; valid: heuristic, llm")
        if self.strength not in STRENGTHS:
            raise ConfigError(f"unknown strength {self.strength!r}; valid: {sorted(STRENGTHS)}")
        if self.tasks < 1 or not 1 <= self.groups <= self.tasks:
            raise ConfigError("need at least one task and 1 <= groups <= tasks")


@dataclass
class GroupMetrics:
    index: int
    tasks: int = 0
    successes: int = 0
    steps: int = 0  # failures counted at the step limit
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        n = max(self.tasks, 1)
        return {
            "index": self.index, "tasks": self.tasks, "successes": self.successes,
            "success_rate": self.successes / n, "mean_steps": self.steps / n,
            "tokens": self.tokens,
        }  # fmt: skip


@dataclass
class LoopResult:
    run_id: int
    status: str
    groups: list[dict[str, Any]] = field(default_factory=list)
    trajectory_ids: list[int] = field(default_factory=list)
    reflections: int = 0
    proposed: list[int] = field(default_factory=list)  # an experiment's procedures, for review

    def _total(self, key: str) -> float:
        n = sum(g["tasks"] for g in self.groups)
        return sum(g[key] * g["tasks"] for g in self.groups) / n if n else 0.0

    @property
    def success_rate(self) -> float:
        return self._total("success_rate")

    @property
    def mean_steps(self) -> float:
        return self._total("mean_steps")


def make_agent(config: LoopConfig, settings: Settings) -> Any:
    if config.agent == "heuristic":
        priors = FAIR if config.priors else NO_PRIORS
        return HeuristicAgent(config.strength, priors, config.patience)
    from memp_core.llm_openai import OpenAIBackend
    from memp_core.sim.react import ReactAgent

    return ReactAgent(OpenAIBackend(settings))


def recalls_of(items: Sequence[RetrievedProcedure]) -> list[Recall]:
    return [
        Recall(it.revision.task_text, it.procedure.task_type, it.revision.script,
               tuple(it.revision.steps), it.revision.id, it.score)
        for it in items
    ]  # fmt: skip


def run_loop(
    store: Store,
    config: LoopConfig,
    *,
    memory: ProceduralMemory | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_run: OnRun | None = None,
    actor: Actor | None = None,
) -> LoopResult:
    """Run ``config`` as one Run in ``store``; see the module docstring.

    ``on_run`` sees the Run row when it starts, after each group and when it ends;
    ``actor`` is who the memory updates are audited as (default: the program).
    """

    def notify(row: Run | None) -> None:
        if on_run is not None and row is not None:
            on_run(row)

    config.check()
    settings = settings or get_settings()
    memory = memory or ProceduralMemory(store, settings=settings)
    agent = make_agent(config, settings)
    pairs = task_seeds(config.tasks, config.seed, config.task_types or _all_types())
    run = _start(store, config, agent.model)
    notify(run)
    result = LoopResult(int(run.id or 0), "running")
    bounds = [round(i * config.tasks / config.groups) for i in range(config.groups + 1)]
    try:
        for g in range(config.groups):
            metrics = GroupMetrics(g)
            pending: list[int] = []
            for i in range(bounds[g], bounds[g + 1]):
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                seed, task_type = pairs[i]
                tid, ep = run_task(store, memory, agent, config, run, g, seed, task_type)
                result.trajectory_ids.append(tid)
                pending.append(tid)
                if len(pending) >= config.update_every or i + 1 == bounds[g + 1]:
                    result.reflections += _update(memory, config, pending, actor)
                    pending = []
                metrics.tasks += 1
                metrics.successes += int(ep.success)
                metrics.steps += len(ep.steps) if ep.success else config.max_steps
                metrics.tokens += ep.tokens
                if progress is not None:
                    progress(i + 1, config.tasks)
            result.groups.append(metrics.as_dict())
            notify(_save_metrics(store, result.run_id, result.groups))
        result.status = "done"
    except KeyboardInterrupt:
        result.status = "cancelled"
    finally:
        status = result.status if result.status != "running" else "failed"
        notify(_finish(store, result.run_id, status))
    return result


def _update(
    memory: ProceduralMemory, config: LoopConfig, ids: list[int], actor: Actor | None
) -> int:
    """Apply the update policy to finished runs; returns the number of reflections."""
    if not writes_memory(config.retrieve, config.memory) or not ids:
        return 0
    report = memory.update(
        ids, policy=config.memory, build_policy=config.build,
        auto_approve=config.auto_approve, actor=actor,
    )  # fmt: skip
    return len(report.reflected)


def _all_types() -> tuple[str, ...]:
    from memp_core.facts import TASK_TYPES

    return TASK_TYPES


def run_task(
    store: Store, memory: ProceduralMemory, agent: Any, config: LoopConfig, run: Run,
    group: int, seed: int, task_type: str,
) -> tuple[int, Episode]:  # fmt: skip
    """One task: retrieve, act, store (trajectory, steps, retrieval link)."""
    home = config.seed if config.household is None else config.household
    world = World(make_scene(seed, task_type, home), config.max_steps)
    retrieval_id, recalls = None, []
    if config.retrieve:
        found = memory.retrieve(
            world.task.text, policy=config.retrieve, k=config.k, run_id=run.id,
            agent_model=agent.model, author_model=config.author_model, seed=seed,
        )  # fmt: skip
        retrieval_id, recalls = found.retrieval_id, recalls_of(found.items)
        if config.serve is not None:  # an ablation: memory served with parts of it removed
            recalls = [served(r, frozenset(config.serve)) for r in recalls]
    episode = agent.run(world, recalls)
    followed = episode.guide.followed
    flags = step_flags(episode.steps)
    facts: dict[str, Any] = extract_facts(world.task.text).as_dict()
    if episode.ended is not None:
        facts["ended"] = episode.ended.as_dict()
    if recalls:
        facts["memory"] = memory_use(episode.guide, recalls)
    with store.transaction() as s:
        traj = Trajectory(
            task=world.task.text, task_type=task_type, environment=ENVIRONMENT,
            source="simulator", agent_model=agent.model, success=episode.success,
            reward=1.0 if episode.success else 0.0, step_count=len(episode.steps),
            token_count=episode.tokens, run_id=run.id, group_index=group,
            facts=facts, procedure_revision_id=followed,
        )  # fmt: skip
        steps = [
            Step(trajectory_id=0, index=i, thought=st.thought or None, action=st.action or None,
                 observation=st.observation, is_error=err, is_loop=loop)
            for i, (st, (err, loop)) in enumerate(zip(episode.steps, flags, strict=True))
        ]  # fmt: skip
        store.add_trajectory(s, traj, steps)
        if retrieval_id is not None:
            row = s.get(Retrieval, retrieval_id)
            if row is not None:
                row.trajectory_id = traj.id
                s.add(row)
    if episode.ended is not None and episode.ended.reason == "error":
        raise LLMError(episode.ended.detail)  # the run stops; this task's record is kept
    return int(traj.id or 0), episode


def memory_use(guide: Guide, recalls: Sequence[Recall]) -> dict[str, Any]:
    """Which of the revisions handed to the agent it followed, as ``facts["memory"]``.

    ``followed`` is the revision the agent acted on: the procedure for this very task (type
    and object, the one a failure is reflected into: ``reflected``), else the best-ranked
    revision whose knowledge it used (borrowed: a failure is not reflected into it). ``used``
    lists every revision that contributed, ``given`` every revision retrieved.
    """
    given = [r.revision_id for r in recalls if r.revision_id is not None]
    followed = guide.followed if guide.followed is not None else next(iter(guide.used), None)
    return {"followed": followed, "reflected": guide.followed is not None,
            "used": list(guide.used), "given": given}  # fmt: skip


def _start(store: Store, config: LoopConfig, agent_model: str) -> Run:
    name = config.name or (
        f"{config.agent}-{config.strength if config.agent == 'heuristic' else agent_model} "
        f"memory={config.memory if config.retrieve else 'none'} seed={config.seed}"
    )
    with store.transaction() as s:
        run = Run(
            name=name, kind=config.kind, agent=config.agent, agent_model=agent_model,
            environment=ENVIRONMENT, build_policy=config.build if config.retrieve else None,
            retrieve_policy=config.retrieve,
            update_policy=config.memory if config.retrieve else "none", k=config.k,
            seed=config.seed, task_set=f"household-sim seed={config.seed} n={config.tasks}",
            n_tasks=config.tasks, n_groups=config.groups, source="simulator",
            config=asdict(config),
        )  # fmt: skip
        s.add(run)
        s.flush()
    return run


def _save_metrics(store: Store, run_id: int, groups: list[dict[str, Any]]) -> Run | None:
    with store.transaction() as s:
        run = s.get(Run, run_id)
        if run is not None:
            run.metrics = list(groups)
            s.add(run)
        return run


def _finish(store: Store, run_id: int, status: str) -> Run | None:
    with store.transaction() as s:
        run = s.get(Run, run_id)
        if run is not None:
            run.status = status
            run.finished_at = utcnow()
            s.add(run)
        return run


def run_experiment(
    store: Store,
    config: LoopConfig,
    *,
    actor: Actor,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    backend: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> LoopResult:
    """An experiment a person starts (``memp run``, the dashboard): needs the reviewer role;
    if it writes memory it runs on a memory of its own and lands in ``store`` as
    :mod:`memp_core.experiment` describes. ``run_id`` and ``trajectory_ids`` of the result
    are those of ``store``."""
    actor.require("start experiments")
    config.check()
    settings = settings or get_settings()
    if config.retrieve and embedder is None:
        embedder = CachedEmbedder(get_embedder(settings))
    isolated = writes_memory(config.retrieve, config.memory)
    mirror = RunMirror(store, actor, isolated=isolated)
    if not isolated:
        memory = ProceduralMemory(store, settings=settings, embedder=embedder, backend=backend)
        return run_loop(store, config, memory=memory, settings=settings, progress=progress,
                        cancel=cancel, on_run=mirror, actor=actor)  # fmt: skip
    sandbox = Store("sqlite://")
    try:
        own = ProceduralMemory(sandbox, settings=settings, embedder=embedder, backend=backend)
        try:
            result = run_loop(sandbox, config, memory=own, settings=settings,
                              progress=progress, cancel=cancel, on_run=mirror)  # fmt: skip
        except BaseException:  # a failed run still lands what it did, marked failed
            if mirror.run_id is not None:
                land(sandbox, store, mirror.source_id, mirror.run_id, actor)
            raise
        landing = land(sandbox, store, mirror.source_id, int(mirror.run_id or 0), actor)
        result.run_id = landing.run_id
        result.trajectory_ids = [landing.trajectories[i] for i in result.trajectory_ids]
        result.proposed = list(landing.procedures.values())
        return result
    finally:
        sandbox.dispose()


def start_run(
    store: Store, *, actor: Actor, agent: str = "heuristic", memory: str = "reflect",
    retrieve: str = "query", build: str = "script", k: int = 3, tasks: int = 60,
    groups: int = 6, seed: int = 0, progress: Progress | None = None,
    settings: Settings | None = None, embedder: Embedder | None = None, **extra: Any,
) -> Run:  # fmt: skip
    """The dashboard's entry point: run an experiment as ``actor`` (reviewer or admin) and
    return its finished Run row. An experiment that writes memory runs on its own memory:
    what it learns lands in ``store`` as procedures waiting for review, never served to
    other agents (see :mod:`memp_core.experiment`)."""
    actor.require("start experiments")
    config = LoopConfig(
        agent=agent, memory=memory, retrieve=None if memory == "none" else retrieve,
        build=build, k=k, tasks=tasks, groups=groups, seed=seed, started_by=actor.author,
        **extra,
    )  # fmt: skip
    result = run_experiment(store, config, actor=actor, settings=settings, embedder=embedder,
                            progress=progress)  # fmt: skip
    return store.get(Run, result.run_id)
