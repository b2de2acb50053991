"""`memp` commands about runs: listing runs, running the online loop, the learning bench."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    Table,
    err_console,
    open_store,
    out_console,
    print_json,
    settings_for,
)

if TYPE_CHECKING:
    from memp_core.models import Run


def run_summary(run: Run) -> dict[str, object]:
    """One run as the JSON `memp runs` prints: configuration plus per-group curve."""
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "agent": run.agent,
        "agent_model": run.agent_model,
        "environment": run.environment,
        "memory": run.update_policy,
        "build_policy": run.build_policy,
        "retrieve_policy": run.retrieve_policy,
        "k": run.k,
        "seed": run.seed,
        "status": run.status,
        "source": run.source,
        "created_at": run.created_at,
        "groups": [
            {
                "index": g.get("index"),
                "tasks": g.get("tasks"),
                "success_rate": g.get("success_rate"),
                "mean_steps": g.get("mean_steps"),
            }
            for g in run.metrics
        ],
    }


def runs(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List runs (experiments, online learning, imported multi-trial logs) with their curves."""
    rows = open_store(db).runs()
    if json_:
        print_json([run_summary(r) for r in rows])
        return
    table = Table("id", "name", "kind", "agent", "memory", "groups", "success per group")
    for r in rows:
        curve = " ".join(rate(g.get("success_rate")) for g in r.metrics)
        table.add_row(
            str(r.id), r.name, r.kind, r.agent_model or r.agent, r.update_policy or "-",
            str(len(r.metrics)), curve,
        )  # fmt: skip
    out_console.print(table)


def rate(value: float | None) -> str:
    """A success rate as a percentage; "–" when no run of the group had a recorded outcome."""
    return "–" if value is None else f"{value:.0%}"


@contextmanager
def task_bar(total: int, desc: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (stdout stays clean for --json); silent when not a terminal."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="task", file=sys.stderr,
              disable=not sys.stderr.isatty(), leave=False) as bar:  # fmt: skip

        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        yield update


def single_thread_torch() -> None:
    """One intra-op thread: embedding one short text at a time gains nothing from more, and
    on a busy 2-core machine extra threads oversubscribe the CPU (many times slower)."""
    import torch

    torch.set_num_threads(1)


def run(
    agent: Annotated[str, typer.Option(help="heuristic (no LLM) or llm (OPENAI_BASE_URL)")] = (
        "heuristic"
    ),
    memory: Annotated[str, typer.Option(help="Update policy: none|vanilla|validation|reflect")] = (
        "reflect"
    ),
    build: Annotated[str, typer.Option(help="Build policy for new procedures")] = "script",
    retrieve: Annotated[str, typer.Option(help="query | facts | random | hybrid")] = "query",
    k: Annotated[int, typer.Option("-k", help="Procedures retrieved per task")] = 3,
    tasks: Annotated[int, typer.Option(help="Number of tasks")] = 60,
    groups: Annotated[int, typer.Option(help="Groups (one metrics point each)")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the task set")] = 0,
    strength: Annotated[str, typer.Option(help="Heuristic agent: strong | weak")] = "strong",
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve/--review",
            help="Serve what the run learns to its own agent at once (its memory is its own), "
            "or leave it unserved, waiting for review, even there",
        ),
    ] = True,  # fmt: skip
    max_steps: Annotated[int, typer.Option(help="Step limit per task")] = 50,
    update_every: Annotated[int, typer.Option(help="Tasks per memory update")] = 1,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run an agent online on seeded household-simulator tasks; memory learns as it goes.

    An experiment that writes memory runs on a memory of its own, starting empty: what it
    learns is approved at once for its own agent (unless --review) and never served to
    other agents of this database. Its run, trajectories and curves land here, and what it
    learned lands as procedures waiting for review. Recorded as the OS user.
    """
    from memp_core.actor import os_user
    from memp_core.loop import LoopConfig, run_experiment

    config = LoopConfig(
        agent=agent, strength=strength, memory=memory,
        retrieve=None if memory == "none" else retrieve, build=build, k=k, tasks=tasks,
        groups=groups, seed=seed, max_steps=max_steps, auto_approve=auto_approve,
        update_every=update_every, started_by=os_user().author,
    )  # fmt: skip
    config.check()
    settings = settings_for(db)
    store = open_store(db)
    if config.retrieve:
        single_thread_torch()
    with task_bar(tasks, f"run {agent} memory={memory}") as bar:
        result = run_experiment(store, config, actor=os_user(), settings=settings, progress=bar)
    summary = {
        "run_id": result.run_id, "status": result.status, "agent": agent,
        "memory": memory, "tasks": tasks, "groups": result.groups,
        "success_rate": result.success_rate, "mean_steps": result.mean_steps,
        "reflections": result.reflections, "proposed_for_review": result.proposed,
    }  # fmt: skip
    if json_:
        print_json(summary)
        return
    table = Table("group", "tasks", "success", "mean steps", "tokens")
    for g in result.groups:
        table.add_row(str(g["index"] + 1), str(g["tasks"]), rate(g.get("success_rate")),
                      f"{g['mean_steps']:.1f}", str(g["tokens"]))  # fmt: skip
    out_console.print(table)
    out_console.print(
        f"Run #{result.run_id} {result.status}: {rate(result.success_rate)} success, "
        f"{result.mean_steps:.1f} mean steps, {result.reflections} reflection(s)."
    )
    if result.proposed:
        out_console.print(
            f"It learned {len(result.proposed)} procedure(s) on its own memory; they wait for "
            "review here (memp procedures --status pending_review)."
        )


def bench_learning(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller task sets (under a minute)")] = (
        False
    ),
    seed: Annotated[int, typer.Option(help="Seed of the task sets (and the household)")] = 0,
    ablate: Annotated[
        bool,
        typer.Option(
            "--ablate",
            help="Also none-no-priors, reflect-locations-only, reflect-without-locations and "
            "oracle (procedures written from the simulator's truth: the ceiling)",
        ),
    ] = False,
    patience: Annotated[
        int, typer.Option(help="Places the agents search for one thing (0: their own, 11)")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Where to write the PNG of the curves")] = Path(
        "bench_out/learning.png"
    ),
    json_: JsonOpt = False,
) -> None:
    """Memory policies on one seeded task set in one household: none (common sense), vanilla,
    validation, reflect, random retrieval, and transfer (a weak agent reading a strong
    agent's memory); --ablate adds the blind agent, reflect's memory served in parts and the
    oracle (memory written from the simulator's truth: the most any policy could reach)."""
    from tqdm import tqdm

    from memp_core.sim.bench import (
        ABLATIONS,
        CONDITIONS,
        BenchConfig,
        run_learning_bench,
        write_png,
    )

    single_thread_torch()
    if patience < 0:
        raise typer.BadParameter("--patience must be 0 (default) or more")
    names = CONDITIONS + ABLATIONS if ablate else CONDITIONS
    order = ("none", "none-no-priors", "vanilla", "validation", "reflect",
             "reflect-locations-only", "reflect-without-locations", "random", "weak",
             "transfer", "oracle")  # fmt: skip
    conditions = tuple(n for n in order if n in names)
    kw = {"conditions": conditions, "patience": patience}
    config = BenchConfig.quick(seed, **kw) if quick else BenchConfig(seed=seed, **kw)
    bars: dict[str, Any] = {}

    def on_task(name: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        bar = bars.get(name)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = bars[name] = tqdm(total=total, desc=name, unit="task", file=sys.stderr,
                                    leave=False)  # fmt: skip
        bar.update(done - bar.n)

    result = run_learning_bench(config, on_task=on_task)
    for bar in bars.values():
        bar.close()
    png = write_png(result, out)
    if json_:
        print_json(result.as_dict())
        err_console.print(f"curves: {png}")
        return
    table = Table("condition", "agent", "memory", "retrieve", "test success", "test mean steps",
                  "online success")  # fmt: skip
    for c in result.conditions.values():
        table.add_row(c.name, c.agent, c.memory, c.retrieve or "-", f"{c.success_rate:.0%}",
                      f"{c.mean_steps:.1f}", f"{c.online_success_rate:.0%}")  # fmt: skip
    out_console.print(table)
    out_console.print(
        f"Train {config.train} tasks in {config.groups} groups, then {config.test} held-out "
        f"test tasks with memory read-only (household simulator, heuristic agents). "
        f"Curves: {png}"
    )


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("runs")(runs)
    app.command("run")(run)
    bench.command("learning")(bench_learning)
