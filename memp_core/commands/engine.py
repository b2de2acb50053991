"""`memp` commands of the engine: build, retrieve, procedures, approve, reject, rollback,
and `memp bench retrieval`.

Who acts: the OS user (:func:`memp_core.actor.os_user`), recorded as ``human:<user>`` in the
audit log. There is no option to act in another name: the audit log says who ran the command.

Statuses on the command line: `memp retrieve` is for people exploring memory, so by default it
searches the live procedures (draft, pending_review, approved) and prints each one's status;
`--approved-only` shows exactly what an agent would be served (the default of the engine API,
the online loop and the dashboard's agents), `--all-statuses` adds rejected and deprecated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

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
from memp_core.errors import ConfigError
from memp_core.vocab import Status

if TYPE_CHECKING:
    from memp_core.memory import ProceduralMemory
    from memp_core.models import Procedure, ProcedureRevision
    from memp_core.store import Store

# memp_core.models.HNSW_EF_SEARCH, written out so that `memp --help` does not load the
# database layer to show a default (tests/test_cli_startup.py checks they agree)


# The actor loads when a command runs, not for `memp --help`.
def os_user() -> Any:
    """The CLI acts as the OS user (memp_core.actor.os_user)."""
    from memp_core.actor import os_user as user

    return user()


EF_SEARCH = 150

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="heuristic (offline, no model) or openai (OPENAI_BASE_URL)"),
]


def _memory(db: str | None, backend: str | None = None) -> ProceduralMemory:
    from memp_core.memory import ProceduralMemory
    from memp_core.store import Store

    settings = settings_for(db)
    return ProceduralMemory(Store.from_settings(settings), settings=settings, backend=backend)


def revision_summary(store: Store, rev: ProcedureRevision) -> dict[str, object]:
    from memp_core.models import Procedure

    proc = store.get(Procedure, rev.procedure_id)
    return {
        "procedure_id": proc.id, "revision_id": rev.id,
        "parent_revision_id": rev.parent_revision_id, "key": proc.key, "title": proc.title,
        "task_type": proc.task_type, "status": proc.status,
        "kind": rev.kind, "origin": rev.origin, "author": rev.author, "model": rev.model,
        "evidence": rev.evidence_trajectory_ids,
    }  # fmt: skip


def procedure_summary(proc: Procedure) -> dict[str, object]:
    return {
        "procedure_id": proc.id, "key": proc.key, "title": proc.title,
        "task_type": proc.task_type, "status": proc.status,
        "current_revision_id": proc.current_revision_id, "use_count": proc.use_count,
        "success_count": proc.success_count, "pinned": proc.pinned,
        "updated_at": proc.updated_at,
    }  # fmt: skip


def build(
    policy: Annotated[str, typer.Option(help="trajectory | script | proceduralization")] = "script",
    backend: BackendOpt = None,
    status: Annotated[
        Status, typer.Option(help="Status of new procedures (pending_review or approved)")
    ] = Status.pending_review,
    cold_start: Annotated[
        bool, typer.Option("--cold-start", help="Seed from the best runs per task type only")
    ] = False,
    top: Annotated[int, typer.Option(help="With --cold-start: runs per task type")] = 3,
    trajectory: Annotated[
        list[int] | None, typer.Option("--trajectory", "-t", help="Build from these ids only")
    ] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Build procedures from successful trajectories not yet used as evidence.

    Runs of the same task type and key facts are grouped into one procedure; a group that
    already has a live procedure gets a merge revision. New procedures wait for review
    (pending_review) unless --status approved.
    """
    from memp_core.build import BUILD_POLICIES

    if policy not in BUILD_POLICIES:
        raise ConfigError(f"unknown build policy {policy!r}; valid: {', '.join(BUILD_POLICIES)}")
    mem = _memory(db, backend)
    if cold_start:
        revs = mem.cold_start(top=top, policy=policy, status=status, actor=os_user())
    else:
        revs = mem.build(trajectory, policy=policy, status=status, actor=os_user())
    rows = [revision_summary(mem.store, r) for r in revs]
    if json_:
        print_json(rows)
        return
    table = Table("procedure", "revision", "origin", "task type", "status", "title")
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("procedure_id", "revision_id", "origin",
                                              "task_type", "status", "title")))  # fmt: skip
    out_console.print(table)
    out_console.print(f"{len(rows)} revision(s) written by {mem.backend.author}")


def retrieve(
    text: Annotated[
        str, typer.Argument(help="The new task, e.g. 'heat some egg and put it in garbagecan'")
    ],
    policy: Annotated[
        str,
        typer.Option(
            help="hybrid (default here: cosine + key facts) | query (cosine only, the "
            "engine API's default) | facts | random"
        ),
    ] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--k", help="How many procedures")] = 3,
    threshold: Annotated[float | None, typer.Option(help="Minimum score")] = None,
    all_statuses: Annotated[
        bool, typer.Option("--all-statuses", help="Also rejected and deprecated procedures")
    ] = False,
    approved_only: Annotated[
        bool, typer.Option("--approved-only", help="Only what agents are served (approved)")
    ] = False,
    author_model: Annotated[
        str | None, typer.Option(help="Only revisions written by this model (transfer)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the random policy")] = None,
    log: Annotated[bool, typer.Option(help="Record this retrieval in the Retrieval table")] = True,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Retrieve procedures for a task (by default among live ones: draft, pending, approved).

    People exploring memory see unreviewed procedures too, each with its status; agents are
    only ever served approved ones, which --approved-only shows. --all-statuses adds rejected
    and deprecated procedures.
    """
    from memp_core.retrieve import LIVE, RETRIEVE_POLICIES

    if policy not in RETRIEVE_POLICIES:
        raise ConfigError(
            f"unknown retrieve policy {policy!r}; valid: {', '.join(RETRIEVE_POLICIES)}"
        )
    if all_statuses and approved_only:
        raise ConfigError("--all-statuses and --approved-only exclude each other")
    statuses = None if all_statuses else [Status.approved.value] if approved_only else list(LIVE)
    result = _memory(db).retrieve(
        text, policy=policy, k=k, threshold=threshold, author_model=author_model, seed=seed,
        log=log, all_statuses=all_statuses, statuses=statuses, agent_model="cli",
    )  # fmt: skip
    rows = [item.summary() for item in result.items]
    if json_:
        print_json(rows)
        return
    table = Table("score", "procedure", "revision", "task type", "status", "title", "matched")
    for r in rows:
        matched = ", ".join(f"{a}={b}" for a, b in dict(r["matched"]).items())  # type: ignore[call-overload]
        table.add_row(f"{r['score']:.3f}", str(r["procedure_id"]), str(r["revision_id"]),
                      str(r["task_type"]), str(r["status"]), str(r["title"]), matched)  # fmt: skip
    out_console.print(table)


def procedures(
    status: Annotated[Status | None, typer.Option(help="Only this status")] = None,
    task_type: Annotated[str | None, typer.Option(help="Only this task type")] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List procedures with their status, current revision and use counts."""
    rows = open_store(db).procedures(status=status.value if status else None, task_type=task_type)
    if json_:
        print_json([procedure_summary(p) for p in rows])
        return
    table = Table("id", "status", "task type", "revision", "uses", "successes", "title")
    for p in rows:
        table.add_row(str(p.id), p.status, p.task_type, str(p.current_revision_id),
                      str(p.use_count), str(p.success_count), p.title)  # fmt: skip
    out_console.print(table)


# The revision the reviewer read: a waiting proposal (a reflection, an agent's proposal, a
# merge of near-duplicates) is decided by naming it; the served one otherwise.
RevisionOpt = Annotated[
    int | None,
    typer.Option("--revision", help="Revision id you reviewed (a waiting proposal or merge)"),
]


def approve_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    comment: Annotated[str, typer.Option(help="Review comment")] = "",
    revision: RevisionOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Approve a procedure: agents are served it from now on."""
    from memp_core.review import approve

    proc = approve(open_store(db), procedure_id, actor=os_user(), comment=comment,
                   revision_id=revision)  # fmt: skip
    _done(proc, json_)


def reject_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    reason: Annotated[str, typer.Option(help="Why (required, recorded in the audit log)")],
    revision: RevisionOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Reject a procedure (or, with --revision, only its waiting proposal)."""
    from memp_core.review import reject

    proc = reject(open_store(db), procedure_id, actor=os_user(), reason=reason,
                  revision_id=revision)  # fmt: skip
    _done(proc, json_)


def rollback_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    to: Annotated[int, typer.Option("--to", help="Revision to restore")],
    comment: Annotated[str, typer.Option(help="Why")] = "",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Restore an older revision's content as a new current revision (history is kept)."""
    from memp_core.review import rollback

    store = open_store(db)
    rev = rollback(store, procedure_id, actor=os_user(), to_revision_id=to, comment=comment)
    if json_:
        print_json(revision_summary(store, rev))
    else:
        out_console.print(f"Procedure {procedure_id} is now at revision {rev.id} (copy of {to}).")


def _done(proc: Procedure, json_: bool) -> None:
    if json_:
        print_json(procedure_summary(proc))
    else:
        out_console.print(f"Procedure {proc.id} is now {proc.status}.")


def bench_retrieval(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated memory sizes (revisions)")
    ] = "1000,10000,100000",
    repeats: Annotated[int, typer.Option(help="Timed repetitions per measurement")] = 60,
    postgres: Annotated[
        bool,
        typer.Option(
            "--postgres",
            help="Also measure Postgres + pgvector HNSW (a throw-away pgserver "
            "unless --pg-url); a few minutes at 100k",
        ),
    ] = False,
    pg_url: Annotated[
        str | None, typer.Option(help="Postgres server to use (a database per size is created)")
    ] = None,
    pg_sizes: Annotated[
        str, typer.Option(help="Sizes of the Postgres section")
    ] = "1000,10000,100000",
    ef_search: Annotated[int, typer.Option(help="HNSW candidates per search")] = EF_SEARCH,
    pg_data: Annotated[
        str, typer.Option(help="embedding-like (default) | uniform (HNSW's worst case)")
    ] = "embedding-like",
    json_: JsonOpt = False,
) -> None:
    """Time top-5 retrieval and one-revision updates as memory grows, against a bare numpy
    matrix product over the same vectors and against a full index rebuild per update.

    With --postgres, "recall_at_5" is HNSW's (against exact search); without, that of the
    SQLite index path (exact by construction).
    """
    from memp_core.bench import run_postgres_bench, run_retrieval_bench

    if pg_data not in ("embedding-like", "uniform"):
        raise ConfigError(f"unknown --pg-data {pg_data!r}; valid: embedding-like, uniform")
    result = run_retrieval_bench(_sizes(sizes), repeats)
    if postgres:
        pg = run_postgres_bench(
            _sizes(pg_sizes), repeats, url=pg_url, ef_search=ef_search, data=pg_data
        )
        result["postgres"] = pg
        result["recall_at_5"] = pg["recall_at_5"]
    if json_:
        print_json(result)
        return
    _bench_table(result)


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _bench_table(result: dict[str, Any]) -> None:
    table = Table("revisions", "retrieve ms", "logged ms", "end to end ms", "bound ms", "ratio",
                  "update ms", "rebuild ms",
                  title=f"SQLite (in-memory index; {result['threads']} BLAS thread)")  # fmt: skip
    for n, r in result["sizes"].items():
        e2e = r.get("end_to_end_ms")
        table.add_row(str(n), f"{r['retrieve_ms']:.3f}", f"{r['retrieve_logged_ms']:.3f}",
                      "–" if e2e is None else f"{e2e:.1f}", f"{r['bound_ms']:.3f}",
                      f"{r['ratio']:.2f}", f"{r['update_ms']:.3f}",
                      f"{r['rebuild_ms']:.1f}")  # fmt: skip
    out_console.print(table)
    pg = result.get("postgres")
    if pg:
        table = Table("revisions", "retrieve ms", "logged ms", "SQL ms", "bound ms", "ratio",
                      "update ms", "recall@5", "index build s",
                      title=f"Postgres + pgvector HNSW (ef_search {pg['ef_search']}, "
                      f"m {pg['m']}, {pg['data']} vectors)")  # fmt: skip
        for n, r in pg["sizes"].items():
            table.add_row(str(n), f"{r['retrieve_ms']:.3f}", f"{r['retrieve_logged_ms']:.3f}",
                          f"{r['sql_ms']:.3f}",
                          f"{r['bound_ms']:.3f}", f"{r['ratio']:.2f}", f"{r['update_ms']:.3f}",
                          f"{r['recall_at_5']:.3f}", f"{r['build_s']:.1f}")  # fmt: skip
        out_console.print(table)
    out_console.print(f"recall@5 against exact search: {result['recall_at_5']}")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("build")(build)
    app.command("retrieve")(retrieve)
    app.command("procedures")(procedures)
    app.command("approve")(approve_cmd)
    app.command("reject")(reject_cmd)
    app.command("rollback")(rollback_cmd)
    bench.command("retrieval")(bench_retrieval)
