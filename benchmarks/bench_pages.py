"""Benchmark (not a test): render every dashboard page on a small and a 100k database.

    .venv/bin/python benchmarks/bench_pages.py [--large 100000] [--small 100] [--repeat 3]
        [--only Learning_curves] [--also sqlite:///data/memp.db]

Both databases are written row by row in bulk (SQLAlchemy core inserts) with the shape the
pages read: runs with per-group metrics, trajectories with steps and retrievals, procedures
with revision lineages (random unit embeddings: retrieval *speed* is measured, not quality),
audit events. Each page is rendered with Streamlit's AppTest once cold (the first render
of that page in this process: imports, caches, first queries), then ``--repeat`` times
warm; both are printed, the cold time and the warm median per page, with the large/small
ratio of the warm medians.
``--long-steps N`` also adds one N-step trajectory (failing near its end) to the large
database and times the Trajectories page opening it (``?trajectory=``): it shows 200 steps
a page, opening on the page of the first problem.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from memp_core.facts import TASK_TYPES  # noqa: E402
from memp_core.models import (  # noqa: E402
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Step,
    Trajectory,
)
from memp_core.store import Store  # noqa: E402

PAGES = ["app.py", *sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))]
TASKS = {
    "put": "put a {o} in {r}", "clean": "put a clean {o} in {r}",
    "heat": "heat some {o} and put it in {r}", "cool": "cool some {o} and put it in {r}",
    "examine": "look at {o} under the desklamp", "puttwo": "put two {o} in {r}",
}  # fmt: skip
OBJECTS = ["mug", "apple", "egg", "cloth", "bowl", "pillow", "spraybottle", "cup", "knife"]
PLACES = ["cabinet", "drawer", "countertop", "fridge", "garbagecan", "sofa", "shelf", "desk"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 384
CHUNK = 20_000


def _bulk(store: Store, model: type, rows: list[dict]) -> None:
    with store.transaction() as s:
        for i in range(0, len(rows), CHUNK):
            s.execute(insert(model.__table__), rows[i : i + CHUNK])  # type: ignore[attr-defined]


def build(url: str, n: int, seed: int = 0) -> None:
    """A database with ``n`` trajectories and proportionate everything else."""
    rnd = random.Random(seed)
    store = Store(url)
    n_runs = max(1, n // 1000)
    per_run = n // n_runs
    groups = 10 if per_run >= 10 else 1
    n_procs = max(6, n // 100)
    _bulk(store, Run, [
        {"id": r + 1, "name": f"run {r + 1}", "kind": "online", "agent": "heuristic",
         "agent_model": "heuristic-strong", "environment": "household-sim",
         "retrieve_policy": "query", "update_policy": "reflect", "k": 3, "seed": r % 3,
         "n_tasks": per_run, "n_groups": groups, "status": "done", "source": "simulator",
         "config": {}, "created_at": T0 + timedelta(hours=r),
         "metrics": [{"index": g, "tasks": per_run // groups,
                      "success_rate": min(1.0, 0.3 + 0.06 * g + rnd.random() * 0.1),
                      "mean_steps": 20 - g + rnd.random()} for g in range(groups)]}
        for r in range(n_runs)
    ])  # fmt: skip
    procs, revs = [], []
    for p in range(n_procs):
        t = TASK_TYPES[p % len(TASK_TYPES)]
        procs.append({"id": p + 1, "key": f"{t}-{p}", "title": TASKS[t].format(
            o=rnd.choice(OBJECTS), r=rnd.choice(PLACES)), "task_type": t,
            "status": rnd.choice(["approved", "approved", "pending_review", "deprecated"]),
            "use_count": 10, "success_count": rnd.randint(0, 10), "pinned": False,
            "created_at": T0, "updated_at": T0 + timedelta(minutes=p)})  # fmt: skip
        parent = None
        for j in range(3):
            rid = len(revs) + 1
            vec = np.random.default_rng(rid).standard_normal(DIM).astype("<f4")
            revs.append({"id": rid, "procedure_id": p + 1, "parent_revision_id": parent,
                         "kind": "script", "task_text": procs[-1]["title"],
                         "script": "1. Find the <object>.\n2. Take it.\n3. Put it in the <r>.",
                         "steps": [], "origin": ["build", "reflection", "human_edit"][j],
                         "author": "heuristic", "model": "heuristic", "rationale": "bench",
                         "evidence_trajectory_ids": [], "facts": {"task_type": t},
                         "embedding": (vec / np.linalg.norm(vec)).astype("<f4").tobytes(),
                         "created_at": T0 + timedelta(minutes=p, seconds=j)})  # fmt: skip
            parent = rid
        procs[-1]["current_revision_id"] = parent
    _bulk(store, Procedure, procs)
    _bulk(store, ProcedureRevision, revs)
    trajs, steps, retrievals = [], [], []
    for i in range(n):
        t = TASK_TYPES[i % len(TASK_TYPES)]
        run = i // per_run + 1 if i // per_run < n_runs else n_runs
        at = T0 + timedelta(hours=run - 1, seconds=i % per_run)
        ok = rnd.random() < 0.6
        rev = rnd.randrange(len(revs)) + 1
        trajs.append({"id": i + 1, "task": TASKS[t].format(o=rnd.choice(OBJECTS),
                      r=rnd.choice(PLACES)), "task_type": t, "environment": "household-sim",
                      "source": "simulator", "agent_model": "heuristic-strong", "success": ok,
                      "step_count": 5, "token_count": 0, "run_id": run,
                      "group_index": (i % per_run) * groups // per_run, "facts": {},
                      "reflections": [], "procedure_revision_id": rev,
                      "created_at": at})  # fmt: skip
        for k in range(5):
            steps.append({"trajectory_id": i + 1, "index": k, "action": f"go to cabinet {k}",
                          "observation": "The cabinet is closed.", "is_error": False,
                          "is_loop": False})  # fmt: skip
        retrievals.append({"run_id": run, "trajectory_id": i + 1, "query": trajs[-1]["task"],
                           "policy": "query", "k": 3, "agent_model": "heuristic-strong",
                           "created_at": trajs[-1]["created_at"],
                           "results": [{"procedure_id": 1, "revision_id": rev, "score": 0.9,
                                        "title": "t", "task_type": t, "matched": {}}]})  # fmt: skip
    _bulk(store, Trajectory, trajs)
    _bulk(store, Step, steps)
    _bulk(store, Retrieval, retrievals)
    _bulk(store, AuditEvent, [
        {"actor": "human:bench", "action": rnd.choice(["approve", "reject", "edit"]),
         "object_type": "procedure", "object_id": rnd.randrange(n_procs) + 1, "detail": {},
         "created_at": T0 + timedelta(minutes=i)} for i in range(max(10, n // 10))
    ])  # fmt: skip
    store.dispose()


def add_long_run(url: str, steps: int) -> int:
    """One trajectory of ``steps`` steps; the step 100 before the end is flagged an error."""
    store = Store(url)
    with store.transaction() as s:
        traj = Trajectory(task="put a mug in cabinet", task_type="put", success=False,
                          source="simulator", step_count=steps, created_at=T0)  # fmt: skip
        s.add(traj)
        s.flush()
        tid = int(traj.id or 0)
    _bulk(store, Step, [
        {"trajectory_id": tid, "index": k, "action": f"go to cabinet {k}",
         "observation": f"The cabinet {k} is closed.", "is_error": k == steps - 100,
         "is_loop": False} for k in range(steps)
    ])  # fmt: skip
    store.dispose()
    return tid


@dataclass(frozen=True)
class PageTime:
    """Seconds to render one page: the first (cold) render, and the median of the rest."""

    cold: float
    warm: float


def render_times(
    url: str, repeat: int, pages: list[str] = PAGES, query: dict[str, str] | None = None
) -> dict[str, PageTime]:
    """Cold and warm seconds per page (AppTest: app.py, then switch to the page)."""
    from streamlit.testing.v1 import AppTest

    os.environ["MEMP_DATABASE_URL"] = url
    out: dict[str, PageTime] = {}
    for page in pages:
        times = []
        for _ in range(repeat + 1):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            t0 = time.perf_counter()
            at.run()
            if page != "app.py":
                t0 = time.perf_counter()
                at.switch_page(page)
                at.query_params.update(query or {})
                at.run()
            elapsed = time.perf_counter() - t0
            if at.exception:
                raise SystemExit(f"{page} raised on {url}: {at.exception[0].value}")
            if at.error:  # a page that stopped early would time nothing worth knowing
                raise SystemExit(f"{page} showed an error on {url}: {at.error[0].value}")
            times.append(elapsed)
        out[page] = PageTime(cold=times[0], warm=statistics.median(times[1:]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="warm renders per page (>= 1)")
    ap.add_argument("--long-steps", type=int, default=70_000,
                    help="steps of the one long trajectory (0: leave it out)")  # fmt: skip
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="time only the pages whose path contains TEXT (repeatable; app.py "
                    "always renders first)")  # fmt: skip
    ap.add_argument("--also", metavar="URL", help="time an existing database too (e.g. the "
                    "one `memp demo` filled); its rows print under 'also'")  # fmt: skip
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1 (the warm median needs one warm render)")
    pages = [p for p in PAGES if p == "app.py" or not args.only
             or any(t in p for t in args.only)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        urls = {}
        for label, n in (("small", args.small), ("large", args.large)):
            urls[label] = f"sqlite:///{tmp}/{label}.db"
            t0 = time.perf_counter()
            build(urls[label], n)
            print(f"built {label} database: {n:,} trajectories in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        small = render_times(urls["small"], args.repeat, pages)
        large = render_times(urls["large"], args.repeat, pages)
        also = render_times(args.also, args.repeat, pages) if args.also else {}
        long_run = None
        if args.long_steps and "pages/1_Trajectories.py" in pages:
            tid = add_long_run(urls["large"], args.long_steps)
            page = "pages/1_Trajectories.py"
            query = {"trajectory": str(tid)}
            long_run = render_times(urls["large"], args.repeat, [page], query)[page]
    head = f"{args.small:,} cold / warm"
    print(f"\n{'page':36} {head:>19} {args.large:>10,} cold / warm   warm ratio")
    for page in pages:
        s, lg = small[page], large[page]
        ratio = lg.warm / s.warm if s.warm else float("nan")
        flag = "" if lg.warm < 1.0 and ratio <= 2.0 else "   <-- over the aim"
        print(f"{page:36} {s.cold:8.3f}s / {s.warm:6.3f}s {lg.cold:8.3f}s / {lg.warm:6.3f}s"
              f" {ratio:9.2f}×{flag}")  # fmt: skip
    for page, t in also.items():
        print(f"{'also: ' + page:36} {t.cold:8.3f}s / {t.warm:6.3f}s")
    if long_run is not None:
        print(f"{'Trajectories, a ' + format(args.long_steps, ',') + '-step run':36} "
              f"{'':19} {long_run.cold:8.3f}s / {long_run.warm:6.3f}s")  # fmt: skip
    print("\nCold: the page's first render in this process (imports, caches); the first page")
    print("of each database also pays for the app's own start. Warm: the median of --repeat.")
    print("Aim: warm under 1 s per page at the large size, at most 2× the small database.")


if __name__ == "__main__":
    main()
