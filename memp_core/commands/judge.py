"""`memp judge` and `memp bench judge`: verdicts for runs whose outcome nobody recorded.

Who acts: the OS user (:func:`memp_core.actor.os_user`), recorded on each judgement and in the
audit log as the one who ran the judge. A judgement never changes the recorded outcome: a
reviewer confirms or overrides it on the Trajectories page (memp_core.judge.judgements).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    Table,
    open_store,
    out_console,
    print_json,
    settings_for,
)

JudgeBackendOpt = Annotated[
    str,
    typer.Option("--backend", help="heuristic (offline, household goal check) or openai"),
]


def judge(
    backend: JudgeBackendOpt = "heuristic",
    source: Annotated[
        str | None, typer.Option(help="Only trajectories of this source (import:alfworld, ...)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Judge at most this many")] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Judge trajectories whose outcome is unknown; each verdict is stored beside the run.

    The run keeps its unknown outcome; builds and success rates use a judgement once a
    reviewer confirms it (or, with MEMP_COUNT_UNREVIEWED_JUDGEMENTS=true, before). Runs this
    backend and model judged before are skipped.
    """
    from memp_core.actor import os_user
    from memp_core.judge import get_judge
    from memp_core.judge.judgements import judge_unknown

    judge_ = get_judge(backend, settings_for(db))
    store = open_store(db)
    with judge_bar(f"judge ({backend})") as bar:
        summary = judge_unknown(
            store, judge_, actor=os_user(), source=source, limit=limit, progress=bar
        )
    if json_:
        print_json(summary)
        return
    v = summary.verdicts
    out_console.print(
        f"Judged {summary.judged + summary.abstained} of {summary.candidates} trajectories "
        f"with an unknown outcome ({summary.backend}, model {summary.model}): "
        f"{v.get('success', 0)} success, {v.get('failure', 0)} failure, "
        f"{summary.abstained} unknown (abstained); {summary.skipped} skipped (judged before "
        f"by this backend and model)" + (f"; {summary.left} left by --limit" if summary.left
                                         else "") + ".",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@contextmanager
def judge_bar(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (stdout stays clean for --json), silent when not a terminal; its
    total is learnt from the first report (the core counts the runs to judge)."""
    from tqdm import tqdm

    with tqdm(total=None, desc=desc, unit="run", file=sys.stderr,
              disable=not sys.stderr.isatty(), leave=False) as bar:  # fmt: skip

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


def bench_judge(
    backend: JudgeBackendOpt = "heuristic",
    data: Annotated[
        Path | None,
        typer.Option(
            help="A folder holding reflexion-alfworld/ and reflexion-hotpotqa/ (Reflexion's "
            "published logs) to judge beside the simulator's runs"
        ),
    ] = None,
    sim_tasks: Annotated[
        int, typer.Option(min=0, help="Simulator tasks, each played by a strong and a weak agent")
    ] = 240,
    seed: Annotated[int, typer.Option(help="Seed of the simulator's tasks")] = 7,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Hide known verdicts, judge, compare: Reflexion's ALFWorld logs and simulator runs.

    Prints judged, abstained, agree (rate over the judged), precision and recall of
    "success", in total and per source. Runs in a scratch database (--db is only read for
    the model settings).
    """
    from memp_core.judge import get_judge
    from memp_core.judge.bench import run_judge_bench

    judge_ = get_judge(backend, settings_for(db))
    with judge_bar(f"bench judge ({backend})") as bar:
        result = run_judge_bench(judge_, data=data, sim_tasks=sim_tasks, seed=seed, progress=bar)
    report = result.as_dict()
    if json_:
        print_json(report)
        return
    table = Table("source", "runs", "judged", "abstained", "agree", "precision", "recall")
    rows = [*report["by_source"], {"source": "all", **report}]  # type: ignore[list-item]
    for r in rows:
        table.add_row(*(_cell(r[k]) for k in ("source", "runs", "judged", "abstained", "agree",
                                              "precision", "recall")))  # fmt: skip
    out_console.print(table)
    for note in result.notes:
        out_console.print(note, highlight=False, soft_wrap=True)
    for line in result.disagreements[:20]:
        out_console.print(f"disagrees: {line}", highlight=False, soft_wrap=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "–" if value is None else str(value)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command("judge")(judge)
    bench.command("judge")(bench_judge)
