"""`memp dedupe`: near-duplicate procedures filed as merge proposals for a person to decide.

The command acts as the OS user (``human:<user>`` in the audit log). Finding and filing are
:mod:`memp_core.dedupe`'s; accepting is a review action (approve the proposal revision).
"""

from __future__ import annotations

from typing import Annotated

import typer

from memp_core.commands.options import DbOpt, JsonOpt, Table, open_store, out_console, print_json

# memp_core.dedupe.DEFAULT_THRESHOLD, written out so that `memp --help` loads no numpy
# (tests/test_dedupe.py checks they agree)
DEFAULT_THRESHOLD = 0.9


def dedupe_cmd(
    threshold: Annotated[
        float,
        typer.Option(
            help="Both the embedding cosine and the text similarity (0..1) of two procedures' "
            "current revisions must reach this for them to count as near-duplicates"
        ),
    ] = DEFAULT_THRESHOLD,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the clusters; file no proposals")
    ] = False,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Find near-duplicate live procedures of one task type and file each cluster as a merge
    proposal on the procedure kept (approved before pending, then most used, then first stored).

    Nothing is merged until a person approves the proposal; the same proposal is never
    filed twice.
    """
    from memp_core.actor import os_user
    from memp_core.dedupe import dedupe

    report = dedupe(open_store(db), actor=os_user(), threshold=threshold, file=not dry_run)
    rows = [
        {
            "procedure_ids": f.cluster.procedure_ids,
            "similarity": round(f.cluster.similarity, 4),
            "cosine": round(f.cluster.cosine, 4),
            "text_similarity": round(f.cluster.text_similarity, 4),
            "task_type": f.cluster.task_type,
            "kept": f.cluster.kept_id,
            "proposal": {"state": f.state, "revision_id": f.revision_id, "note": f.note},
        }
        for f in report.filings
    ]
    if json_:
        print_json({"threshold": report.threshold, "live_procedures": report.live,
                    "filed": report.filed, "clusters": rows})  # fmt: skip
        return
    table = Table("kept", "procedures", "task type", "similarity", "proposal", "revision")
    for f in report.filings:
        c = f.cluster
        table.add_row(str(c.kept_id), ", ".join(map(str, c.procedure_ids)), c.task_type,
                      f"{c.similarity:.3f}", f.state, str(f.revision_id or "–"))  # fmt: skip
    if rows:
        out_console.print(table)
    out_console.print(
        f"{len(rows)} cluster(s) among {report.live} live procedures at threshold "
        f"{report.threshold}; {report.filed} merge proposal(s) filed for review"
        + (" (dry run)" if dry_run else ""),
        highlight=False,
    )


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add `memp dedupe`."""
    app.command("dedupe")(dedupe_cmd)
