"""`memp demo`: a database filled by real runs, so the dashboard opens on real data.

Nothing is drawn or invented: every curve is a run of the online loop in the household
simulator (synthetic, ALFWorld-compatible; heuristic agents, labelled as such), every
procedure was built or reflected by the offline heuristic backend from those runs, and every
imported run is a simulator run written out as a log and read back by the real importers.

What it writes into one (empty) database:
- **Policy comparison** (what the Learning curves page opens on): none and reflect with five
  seeds each, vanilla and validation with two, each learning from an empty memory in ten
  groups of 30 tasks, memory updated after each group. Runs that share a database would
  share memory, so each of these runs in its own throw-away database and only its Run row
  (configuration, per-group metrics and the memory changes it made, placed on its group
  axis) is copied here, marked ``isolated`` in its config; trajectories are not kept.
- **The story in this database**: the strong agent without memory (two seeds, a band); the
  strong agent learning with ``reflect`` from empty memory (trajectories, retrievals,
  lineage from reflections); the weak agent without memory and reading the strong agent's
  memory (transfer); the strong agent continuing in review mode, so what it learns waits in
  the review queue.
- **Imports** (:mod:`memp_core.sim.logs`): further simulator runs written into a temporary
  folder as ALFWorld transcripts (with their ``STATUS:`` verdicts), a Reflexion-style ReAct
  log (one imported run; the weak agent's failures to debug) and a chat log (no verdict:
  unknown outcomes, as for a real chat log), every file and source labelled
  ``household-sim``; then script procedures built from the imported successful ALFWorld
  transcripts, pending review.

The demo is the program filling a database of its own from empty: its writes are audited as
``memp:demo`` (:func:`memp_core.actor.system`), including the procedures its story runs
approve for their own agents. People's experiments go through
:func:`memp_core.loop.run_experiment`, which keeps them off the shared memory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, select

from memp_core.actor import Actor, system
from memp_core.config import Settings, safe_url
from memp_core.embeddings import CachedEmbedder, Embedder, get_embedder
from memp_core.errors import MempError
from memp_core.loop import LoopConfig, LoopResult, run_loop
from memp_core.markers import MemoryMarker, memory_markers
from memp_core.memory import ProceduralMemory
from memp_core.models import Run, Status, Trajectory
from memp_core.sim.logs import LABEL, LogFile, write_demo_logs
from memp_core.store import Store

OnTask = Callable[[str, int, int], None]
DEMO: Actor = system("demo")


class DemoRefusedError(MempError):
    """The target database already holds data; the demo only fills an empty one."""


@dataclass(frozen=True)
class DemoStep:
    title: str
    config: LoopConfig
    isolated: bool = False  # run in a throw-away database, copy only the Run row


@dataclass
class DemoReport:
    database: str
    runs: list[int] = field(default_factory=list)
    tasks: int = 0
    imported: dict[str, int] = field(default_factory=dict)
    unknown_outcomes: int = 0  # imported runs whose log recorded no verdict
    built_for_review: int = 0
    seconds: float = 0.0


# The policy comparison: seeds per policy (no memory and reflect, the story's two lines, get
# the most; each reflect seed is most of the demo's time), ten groups, the first on empty
# memory. Tasks rarely repeat an object in a household's mixed stream, so a procedure for
# the very task is found only after a few hundred tasks: at 100 tasks a seed reflect and no
# memory were level (measured), at 300 reflect ends about 10 points above.
COMPARISON_SEEDS = {"none": (21, 22, 23, 24, 25), "reflect": (21, 22, 23, 24, 25),
                    "validation": (21, 22), "vanilla": (21, 22)}  # fmt: skip
COMPARISON_GROUPS, COMPARISON_PER_GROUP = 10, 30


def demo_plan(scale: float = 1.0) -> list[DemoStep]:
    """The runs of the demo, in order; ``scale`` multiplies every task count.

    The comparison updates memory once per group (``update_every``): the first group of every
    policy runs on empty memory, so all curves start from the same point and what memory
    taught shows as the distance they then travel.
    """
    n = scale

    def cfg(tasks: int, groups: int, **kw: object) -> LoopConfig:
        return LoopConfig(tasks=max(int(tasks * n), groups), groups=groups, k=5, **kw)  # type: ignore[arg-type]

    story = "demo"
    per = max(int(COMPARISON_PER_GROUP * n), 1)
    return [
        *(
            DemoStep(f"{policy}, seed {seed} (own empty memory)", cfg(
                COMPARISON_GROUPS * COMPARISON_PER_GROUP, COMPARISON_GROUPS, memory=policy,
                seed=seed, retrieve=None if policy == "none" else "query", update_every=per,
                kind="experiment", name=f"{story}: strong agent, {policy}, isolated memory"),
                isolated=True)
            for policy, seeds in COMPARISON_SEEDS.items() for seed in seeds
        ),
        *(
            DemoStep(f"strong agent, no memory, seed {seed}", cfg(120, 6, memory="none",
                     retrieve=None, seed=seed, name=f"{story}: strong agent, no memory"))
            for seed in (1, 2)
        ),
        DemoStep("strong agent learning with reflect", cfg(
            120, 6, memory="reflect", seed=1, name=f"{story}: strong agent, reflect")),
        DemoStep("weak agent, no memory", cfg(
            60, 6, strength="weak", memory="none", retrieve=None, seed=1,
            name=f"{story}: weak agent, no memory")),
        DemoStep("weak agent reading the strong agent's memory", cfg(
            60, 6, strength="weak", memory="none", retrieve="query", seed=1,
            name=f"{story}: weak agent, strong agent's memory (transfer)")),
        DemoStep("strong agent, reflect, review mode", cfg(
            48, 4, memory="reflect", seed=3, auto_approve=False,
            name=f"{story}: strong agent, reflect, review mode")),
    ]  # fmt: skip


def is_empty(store: Store) -> bool:
    counts = store.counts()
    return not (counts.trajectories or counts.runs or counts.procedures)


def ensure_empty(store: Store) -> None:
    if not is_empty(store):
        counts = store.counts()
        raise DemoRefusedError(
            f"database {safe_url(store.url)} already holds {counts.trajectories} trajectories, "
            f"{counts.runs} runs and {counts.procedures} procedures; memp demo only fills an "
            "empty database. Use --reset to delete this SQLite file and rebuild it, or --db "
            "to choose another database."
        )


def build_demo(
    store: Store,
    settings: Settings,
    *,
    scale: float = 1.0,
    embedder: Embedder | None = None,
    on_task: OnTask | None = None,
) -> DemoReport:
    """Fill the empty database behind ``store``; see the module docstring."""
    ensure_empty(store)
    started = time.monotonic()
    report = DemoReport(safe_url(store.url))
    cached = CachedEmbedder(embedder or get_embedder(settings))
    memory = ProceduralMemory(store, settings=settings, embedder=cached, backend="heuristic")
    plan = demo_plan(scale)
    total = sum(step.config.tasks for step in plan)
    for step in plan:
        result = run_step(store, memory, settings, step, _overall(on_task, report.tasks, total))
        report.runs.append(result.run_id)
        report.tasks += step.config.tasks
    with tempfile.TemporaryDirectory(prefix=f"memp-{LABEL}-") as folder:
        report.imported = import_sim_logs(store, write_demo_logs(Path(folder), scale=scale))
    report.unknown_outcomes = count_unknown_imports(store)
    report.built_for_review = build_from_imports(store, memory)
    report.seconds = time.monotonic() - started
    return report


def _overall(on_task: OnTask | None, before: int, total: int) -> OnTask | None:
    """A step's progress as progress through the whole demo (one bar, one estimate)."""
    if on_task is None:
        return None
    return lambda title, done, _step_total: on_task(title, before + done, total)


def run_step(
    store: Store, memory: ProceduralMemory, settings: Settings, step: DemoStep,
    on_task: OnTask | None,
) -> LoopResult:  # fmt: skip
    def progress(done: int, total: int) -> None:
        if on_task is not None:
            on_task(step.title, done, total)

    if not step.isolated:
        return run_loop(store, step.config, memory=memory, settings=settings, progress=progress,
                        actor=DEMO)  # fmt: skip
    sandbox = Store("sqlite://")
    try:
        own = ProceduralMemory(sandbox, settings=settings, embedder=memory.embedder,
                               backend="heuristic")  # fmt: skip
        result = run_loop(sandbox, step.config, memory=own, settings=settings, progress=progress)
        run = sandbox.get(Run, result.run_id)
        changes = memory_markers(sandbox, [run])
        result.run_id = copy_run(run, store, changes)
    finally:
        sandbox.dispose()
    return result


def copy_run(run: Run, store: Store, changes: list[MemoryMarker] | None = None) -> int:
    """The Run row of an isolated run, into ``store`` (its trajectories stay behind), with
    the memory changes it made, placed on its group axis while its database still existed."""
    data = run.model_dump(exclude={"id"})
    data["config"] = {
        **run.config, "isolated": True,
        "note": "ran in a throw-away database so this policy started from empty memory; "
                "its per-group metrics and memory changes are real, its trajectories and "
                "procedures were not kept",
        "memory_changes": [m.record() for m in changes or []],
    }  # fmt: skip
    with store.transaction() as s:
        row = Run(**data)
        s.add(row)
        s.flush()
        return int(row.id or 0)


def import_sim_logs(store: Store, logs: list[LogFile]) -> dict[str, int]:
    """The simulator's logs through the real importers, each under its labelled source."""
    from memp_core.importers import import_paths

    counts: dict[str, int] = {}
    for log in logs:
        rep = import_paths(store, [log.path], fmt=log.fmt, source=log.source, actor=DEMO)
        for key, value in rep.counts().items():
            counts[key] = counts.get(key, 0) + value
    return counts


def count_unknown_imports(store: Store) -> int:
    with store.session() as s:
        ids = s.exec(
            select(Trajectory.id)
            .where(col(Trajectory.source).startswith("import"))
            .where(col(Trajectory.success).is_(None))
        ).all()
    return len(ids)


def build_from_imports(store: Store, memory: ProceduralMemory) -> int:
    """Script procedures from the imported successful ALFWorld transcripts, for review.

    Only ``alfworld`` runs: the ReAct importer files every block as HotpotQA question
    answering (task type ``qa``), so a procedure built from those would be filed under the
    wrong task type; unknown outcomes are never built from.
    """
    with store.session() as s:
        ids = s.exec(
            select(Trajectory.id)
            .where(col(Trajectory.source).startswith("import"))
            .where(col(Trajectory.environment) == "alfworld")
            .where(col(Trajectory.success).is_(True))
            .where(col(Trajectory.step_count) > 0)
        ).all()
    if not ids:
        return 0
    built = memory.build([int(i) for i in ids if i is not None], policy="script",
                         status=Status.pending_review, actor=DEMO)  # fmt: skip
    return len(built)


def reset_sqlite(store: Store) -> Path:
    """Delete the SQLite file behind ``store`` (and its WAL files); refuse anything else."""
    from memp_core.database import sqlite_path

    path = sqlite_path(store.url)
    if path is None:
        raise DemoRefusedError(
            f"--reset only deletes SQLite files; {store.url.split('@')[-1]} is not one. "
            "Empty that database yourself or point --db at a new one."
        )
    store.dispose()
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    return path
