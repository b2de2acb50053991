"""`memp import`, `memp export` and `memp bench import`: agent logs in, lossless JSONL out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memp_core.actor import os_user
from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    err_console,
    open_store,
    out_console,
    print_json,
)

if TYPE_CHECKING:
    from memp_core.importers.report import ImportReport
    from memp_core.importers.source import Progress

# memp_core.importers.FORMATS and memp_core.importers.export.WHATS, written out for the help
# text so that `memp --help` does not load the importers (tests/test_cli_startup.py checks
# they agree)
FORMATS: tuple[str, ...] = ("alfworld", "react", "chat", "reflexion", "jsonl", "otlp", "auto")
WHATS: tuple[str, ...] = ("trajectories", "procedures", "runs", "all")

PROGRESS_MIN_BYTES = 4 * 1024 * 1024  # small files import faster than a bar can draw


@contextmanager
def progress_bar(paths: list[Path]) -> Iterator[Progress | None]:
    """A byte progress bar on stderr, only for a terminal and only for large inputs."""
    from tqdm import tqdm

    from memp_core.importers import total_bytes

    total = total_bytes(paths)
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with tqdm(total=total, unit="B", unit_scale=True, desc="import", file=sys.stderr) as bar:
        yield bar.update


def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to import")],
    format_: Annotated[
        str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}")
    ] = "auto",
    source: Annotated[
        str | None,
        typer.Option(help="Label stored as the trajectories' source (default import:<format>)"),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the good records and list the bad ones")
    ] = False,
    restore: Annotated[
        bool,
        typer.Option(
            "--restore",
            help="Admin only: restore your own memp JSONL backup as it was (statuses, pins, "
            "counts, audit trail); audited as a restore",
        ),
    ] = False,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="success or failure: your verdict for the runs whose file records none "
            "(e.g. demonstrations you know succeeded); recorded as yours and audited. "
            "Without it such runs stay unknown",
        ),
    ] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Import agent logs (ALFWorld, ReAct, chat, Reflexion, memp JSONL) in one transaction.

    Imported procedures wait for review (pending_review, unpinned, counts 0), whatever the
    file says; --restore keeps a backup's state. Runs whose file records no outcome are
    stored as unknown (never assumed successes) unless you --label them.
    """
    from memp_core.importers import import_paths, parser_for, precheck
    from memp_core.labels import label_imported, newest_trajectory_id

    actor = os_user()
    actor.require("import files")
    parser_for(format_)  # unknown names fail before the database is opened
    if label is not None:
        label = checked_label(label)
    if not skip_bad:
        precheck(paths)  # a bad file fails fast, without opening the database
    store = open_store(db)

    def chose(path: str, fmt: str) -> None:
        line = f"auto: {path} looks like {fmt}"
        if json_:
            err_console.print(line, highlight=False, soft_wrap=True)
        else:
            out_console.print(line, highlight=False, soft_wrap=True)

    after_id = newest_trajectory_id(store) if label is not None else 0
    with progress_bar(paths) as progress:
        report = import_paths(
            store, paths, actor=actor, fmt=format_, source=source, skip_bad=skip_bad,
            progress=progress, on_format=chose, restore=restore,
        )  # fmt: skip
    # The label is a second, short transaction right after the import: the rows it labels
    # are the ones this import added from these paths that their file left unknown.
    labelled = (
        label_imported(store, paths, label, actor=actor, after_id=after_id)
        if label is not None
        else []
    )
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    for bad in report.bad:
        err_console.print(f"[red]skipped:[/] {bad}", highlight=False, soft_wrap=True)
    if json_:
        counts: dict[str, object] = {**report.counts(), "unknown": unknown_of(report)}
        if label is not None:
            counts.update(labelled=len(labelled), label=label, labelled_by=actor.author)
        print_json(counts)
    else:
        text = summary(report)
        if label is not None:
            text += (
                f"; then {len(labelled)} with no recorded outcome labelled {label} by "
                f"{actor.author} (audited)"
            )
        out_console.print(text, highlight=False, soft_wrap=True)


def checked_label(label: str) -> str:
    """``--label``: success or failure (unknown is what a label replaces)."""
    word = label.strip().lower()
    if word not in ("success", "failure"):
        raise typer.BadParameter(f"--label takes success or failure, not {label!r}")
    return word


def unknown_of(report: ImportReport) -> int:
    """Trajectories this import stored with no recorded outcome."""
    return report.trajectories - report.succeeded - report.failed


def summary(report: ImportReport) -> str:
    unknown = unknown_of(report)
    outcomes = f"{report.succeeded} succeeded, {report.failed} failed"
    if unknown:
        outcomes += f", {unknown} unknown (no outcome recorded)"
    text = (
        f"Imported {report.trajectories} trajectories ({outcomes}, {report.steps} steps), "
        f"{report.runs} runs; {report.duplicates_skipped} duplicates skipped"
    )
    if report.procedures or report.procedures_skipped:
        state = "restored as exported" if report.restored else "pending review"
        text += (
            f"; {report.procedures} procedures with {report.revisions} revisions, {state}"
            f" ({report.procedures_skipped} already present)"
        )
    if report.embeddings_replaced:
        text += f"; {report.embeddings_replaced} unusable embeddings recomputed"
    if report.bad:
        text += f"; {len(report.bad)} bad records skipped"
    return text


def export_(
    path: Annotated[Path, typer.Argument(help="Folder to write, or one .jsonl file")],
    what: Annotated[str, typer.Option(help=f"One of: {', '.join(WHATS)}")] = "all",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export trajectories, procedures (with lineage and audit) and runs as JSONL; curves as CSV."""
    os_user().require("export")
    from memp_core.importers.export import export

    result = export(open_store(db), path, what)
    if json_:
        print_json({"files": result.files})
        return
    for name, n in result.files.items():
        out_console.print(f"{name}: {n} records", highlight=False)


def bench_import(
    blocks: Annotated[int, typer.Option(help="ReAct blocks in the generated log")] = 20000,
    json_: JsonOpt = False,
) -> None:
    """Trajectories per second: full import of a generated log vs parsing it alone."""
    from memp_core.importers.bench import run_bench

    result = run_bench(blocks)
    if json_:
        print_json(result)
        return
    out_console.print(
        f"{result.trajectories} trajectories ({result.megabytes:.1f} MB): "
        f"import {result.import_per_s:,.0f}/s, parse only {result.parse_per_s:,.0f}/s "
        f"(import runs at {result.ratio:.2f}x the parse rate), write lock held "
        f"{result.write_lock_s:.1f} s, peak {result.max_rss_mb:.0f} MB. {result.note}",
        highlight=False,
    )


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("import")(import_)
    app.command("export")(export_)
    bench.command("import")(bench_import)
