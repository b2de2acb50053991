"""`memp` commands of the engine: build, retrieve, procedures, approve, reject, rollback,
and `memp bench retrieval`.

Statuses on the command line: `memp retrieve` is for people exploring memory, so by default it
searches the live procedures (draft, pending_review, approved) and prints each one's status;
`--approved-only` shows exactly what an agent would be served (the default of the engine API,
the online loop and the dashboard's agents), `--all-statuses` adds rejected and deprecated.
"""

from __future__ import annotations

import getpass
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table
from sqlalchemy import insert

from memp_core.build import BUILD_POLICIES, append_revision
from memp_core.cli import DbOpt, JsonOpt, open_store, out_console, print_json, settings_for
from memp_core.embeddings import Embedder, to_bytes
from memp_core.errors import ConfigError
from memp_core.index import ProcedureIndex, top_rows
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, ProcedureRevision, Status, utcnow
from memp_core.retrieve import LIVE, RETRIEVE_POLICIES
from memp_core.review import Actor, approve, reject, rollback
from memp_core.store import Store

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="heuristic (offline, no model) or openai (OPENAI_BASE_URL)"),
]
AsOpt = Annotated[
    str | None, typer.Option("--as", help="Reviewer name recorded as human:<name> (default: $USER)")
]


def _memory(db: str | None, backend: str | None = None) -> ProceduralMemory:
    settings = settings_for(db)
    return ProceduralMemory(Store.from_settings(settings), settings=settings, backend=backend)


def _actor(name: str | None) -> Actor:
    return Actor(name=name or getpass.getuser(), role="admin")  # the local CLI user is admin


def revision_summary(store: Store, rev: ProcedureRevision) -> dict[str, object]:
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
    if policy not in BUILD_POLICIES:
        raise ConfigError(f"unknown build policy {policy!r}; valid: {', '.join(BUILD_POLICIES)}")
    mem = _memory(db, backend)
    if cold_start:
        revs = mem.cold_start(top=top, policy=policy, status=status)
    else:
        revs = mem.build(trajectory, policy=policy, status=status, actor="cli")
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


def approve_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    comment: Annotated[str, typer.Option(help="Review comment")] = "",
    as_: AsOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Approve a procedure: agents are served it from now on."""
    proc = approve(open_store(db), procedure_id, actor=_actor(as_), comment=comment)
    _done(proc, json_)


def reject_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    reason: Annotated[str, typer.Option(help="Why (required, recorded in the audit log)")],
    as_: AsOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Reject a procedure: it is never served and never merged into again."""
    proc = reject(open_store(db), procedure_id, actor=_actor(as_), reason=reason)
    _done(proc, json_)


def rollback_cmd(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id")],
    to: Annotated[int, typer.Option("--to", help="Revision to restore")],
    comment: Annotated[str, typer.Option(help="Why")] = "",
    as_: AsOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Restore an older revision's content as a new current revision (history is kept)."""
    store = open_store(db)
    rev = rollback(store, procedure_id, actor=_actor(as_), to_revision_id=to, comment=comment)
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
    json_: JsonOpt = False,
) -> None:
    """Time top-5 retrieval and one-revision updates as memory grows, against a bare numpy
    matrix product over the same vectors and against a full index rebuild per update."""
    result = run_retrieval_bench([int(s) for s in sizes.split(",") if s.strip()], repeats)
    if json_:
        print_json(result)
        return
    table = Table("revisions", "retrieve ms", "bound ms", "ratio", "update ms", "rebuild ms")
    for n, r in result["sizes"].items():
        table.add_row(str(n), f"{r['retrieve_ms']:.3f}", f"{r['bound_ms']:.3f}",
                      f"{r['ratio']:.2f}", f"{r['update_ms']:.3f}",
                      f"{r['rebuild_ms']:.1f}")  # fmt: skip
    out_console.print(table)
    out_console.print(f"recall@5 of the index path against exact search: {result['recall_at_5']}")


# -- the retrieval benchmark ---------------------------------------------------------------

BENCH_DIM = 384  # all-MiniLM-L6-v2's dimension; random unit vectors stand in for embeddings


class _FixedEmbedder(Embedder):
    """Returns the query vectors of the benchmark in turn (no model: we time search only)."""

    name = "bench-random"
    dimension = BENCH_DIM

    def __init__(self) -> None:
        self.next: np.ndarray = np.zeros(BENCH_DIM, dtype=np.float32)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.next.tolist() for _ in texts]

    def embed_array(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.next, (len(texts), 1))


def run_retrieval_bench(sizes: list[int], repeats: int) -> dict[str, object]:
    """Medians in milliseconds, each size on its own fresh SQLite store.

    On a shared machine the background load drifts, so comparisons are interleaved: each
    query times the served path and the bare bound back to back (alternating which goes
    first), and one-revision updates take turns across all sizes instead of running size
    after size.
    """
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        mems: dict[int, tuple[ProceduralMemory, np.ndarray]] = {}
        for n in sizes:
            store = Store(f"sqlite:///{Path(tmp) / f'bench-{n}.db'}")
            matrix = _unit_rows(rng, n)
            _populate(store, matrix)
            mem = ProceduralMemory(store, embedder=_FixedEmbedder(), backend="heuristic")
            mem.index  # noqa: B018  (first sync loads every revision once; not timed)
            mems[n] = (mem, matrix)
        rows = {n: _time_retrieval(mem, matrix, rng, repeats) for n, (mem, matrix) in mems.items()}
        hits = sum(h for _, h in rows.values())
        for name, incremental, rounds in (
            ("update_ms", True, repeats),
            ("rebuild_ms", False, max(3, repeats // 10)),
        ):
            times: dict[int, list[float]] = {n: [] for n in sizes}
            for r in range(rounds):
                for n in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
                    times[n].append(_timed_update(mems[n][0], rng, incremental=incremental))
            for n in sizes:
                rows[n][0][name] = _ms(times[n])
        for mem, _ in mems.values():
            mem.store.dispose()
    total = 5 * repeats * len(sizes)
    return {"sizes": {n: row for n, (row, _) in rows.items()},
            "recall_at_5": round(hits / total, 4) if total else None}  # fmt: skip


def _time_retrieval(
    mem: ProceduralMemory, matrix: np.ndarray, rng: np.random.Generator, repeats: int
) -> tuple[dict[str, float], int]:
    """Top-5 through ProceduralMemory.retrieve vs ``matrix @ q`` + argpartition, per query."""
    embedder = mem.embedder
    assert isinstance(embedder, _FixedEmbedder)
    served, bound, hits = [], [], 0
    for i, q in enumerate(_unit_rows(rng, repeats)):
        embedder.next = q
        for turn in (0, 1) if i % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            if turn == 0:
                got = mem.retrieve("bench", k=5, log=False)
                served.append(time.perf_counter() - t0)
            else:
                exact = top_rows(matrix @ q, 5)
                bound.append(time.perf_counter() - t0)
        hits += len({it.procedure.id for it in got} & {int(j) + 1 for j in exact})
    row = {"retrieve_ms": _ms(served), "bound_ms": _ms(bound)}
    row["ratio"] = round(row["retrieve_ms"] / row["bound_ms"], 3) if row["bound_ms"] else 0.0
    return row, hits


def _timed_update(mem: ProceduralMemory, rng: np.random.Generator, *, incremental: bool) -> float:
    """Append one revision to a random procedure, then bring an index up to date with it:
    incrementally (ours), or by rebuilding it from every row (the reference code's way)."""
    pid = int(rng.integers(1, len(mem.index) + 1))
    vec = _unit_rows(rng, 1)[0]
    t0 = time.perf_counter()
    with mem.store.transaction() as s:
        proc = s.get(Procedure, pid)
        rev = ProcedureRevision(procedure_id=pid, script="1. bench.", embedding=to_bytes(vec))
        append_revision(s, pid, rev, expected_current=proc.current_revision_id if proc else None)
    if incremental:
        mem.index.sync()
    else:
        ProcedureIndex(mem.store, BENCH_DIM).sync()
    return time.perf_counter() - t0


def _populate(store: Store, matrix: np.ndarray) -> None:
    """n approved procedures, each with one revision holding a vector (bulk inserts)."""
    n = matrix.shape[0]
    now = utcnow()
    procs = [
        {"id": i + 1, "key": f"bench-{i + 1}", "title": f"bench {i + 1}", "task_type": "put",
         "status": Status.approved.value, "current_revision_id": i + 1, "use_count": 0,
         "success_count": 0, "pinned": False, "created_at": now, "updated_at": now}
        for i in range(n)
    ]  # fmt: skip
    revs = [
        {"id": i + 1, "procedure_id": i + 1, "kind": "script", "task_text": "", "script": "",
         "steps": [], "origin": "build", "author": "bench", "model": "bench", "rationale": "",
         "evidence_trajectory_ids": [], "facts": {}, "embedding": to_bytes(matrix[i]),
         "created_at": now}
        for i in range(n)
    ]  # fmt: skip
    with store.transaction() as s:
        for i in range(0, n, 5000):
            s.execute(insert(Procedure), procs[i : i + 5000])
            s.execute(insert(ProcedureRevision), revs[i : i + 5000])


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, BENCH_DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _ms(seconds: list[float]) -> float:
    return round(float(np.median(seconds)) * 1000, 4)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("build")(build)
    app.command("retrieve")(retrieve)
    app.command("procedures")(procedures)
    app.command("approve")(approve_cmd)
    app.command("reject")(reject_cmd)
    app.command("rollback")(rollback_cmd)
    bench.command("retrieval")(bench_retrieval)
