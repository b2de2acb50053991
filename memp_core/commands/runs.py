"""`memp` commands about runs: listing runs and their per-group curves."""

from __future__ import annotations

import typer
from rich.table import Table

from memp_core.cli import DbOpt, JsonOpt, open_store, out_console, print_json
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
        curve = " ".join(f"{g.get('success_rate', 0):.0%}" for g in r.metrics)
        table.add_row(
            str(r.id), r.name, r.kind, r.agent_model or r.agent, r.update_policy or "-",
            str(len(r.metrics)), curve,
        )  # fmt: skip
    out_console.print(table)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("runs")(runs)
