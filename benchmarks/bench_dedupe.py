"""Benchmark (not a test): what `memp dedupe` finds, and how long it takes at 10k procedures.

    .venv/bin/python benchmarks/bench_dedupe.py [--demo-db URL] [--alfworld PATH] [--n 10000]
        [--threshold 0.9] [--json]

Three measurements, each a dry run (nothing is filed):

1. ``demo``: the clusters on a demo database (`memp demo --no-launch --db URL`, given with
   ``--demo-db``; skipped without it), and the closest same-type pair that is *not* one.
2. ``alfworld``: the ALFWorld transcripts of Reflexion's prompts (``--alfworld``: the
   ``react_prompts_alfworld.json`` of the shared data) imported into a memory (labelled
   success: they are demonstrations) and built into procedures (script policy, heuristic
   backend). Then the same transcripts with small edits (thoughts dropped, doubled spaces,
   and in every other one a detour to one more place before the search) imported twice:
   (a) into the same memory and built there, where the build's grouping merges them into
   the procedures they match, and (b) into a second memory built on its own, whose
   procedures are then imported into the first under new keys, as a second team's memory
   would be. Counted: the pairs (a procedure and its copy from the edited logs) found in one
   cluster, clusters joining procedures of different tasks, clusters mixing task types.
3. ``scale``: ``--n`` synthetic procedures written in bulk (six task types, scripts in the
   heuristic builder's shape, unit vectors that share a direction per task type, object and
   place, so many same-type pairs pass the cosine screen and reach the text comparison),
   5% of them followed by a planted copy (whitespace edits, vector plus a little noise).
   Timed: loading the live procedures, and the whole of ``find_clusters``; counted: copies
   found with their originals.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from typer.testing import CliRunner  # noqa: E402

from memp_core.cli import app  # noqa: E402
from memp_core.dedupe import DEFAULT_THRESHOLD, candidates, conflict, find_clusters  # noqa: E402
from memp_core.models import Procedure, ProcedureRevision  # noqa: E402
from memp_core.store import Store  # noqa: E402

TASKS = {
    "put": "put a {o} in {r}", "clean": "put a clean {o} in {r}",
    "heat": "heat some {o} and put it in {r}", "cool": "cool some {o} and put it in {r}",
    "examine": "look at {o} under the desklamp", "puttwo": "put two {o} in {r}",
}  # fmt: skip
VERBS = {"clean": "clean <object> with sinkbasin", "heat": "heat <object> with microwave",
         "cool": "cool <object> with fridge", "examine": "use desklamp"}  # fmt: skip
OBJECTS = ["mug", "apple", "egg", "cloth", "bowl", "pillow", "spraybottle", "cup", "knife",
           "plate", "pen", "book", "cellphone", "keychain", "watch", "vase"]  # fmt: skip
PLACES = ["cabinet", "drawer", "countertop", "fridge", "garbagecan", "sofa", "shelf", "desk",
          "sidetable", "dresser", "armchair", "coffeetable", "bed", "diningtable"]  # fmt: skip
DIM = 384
CHUNK = 5_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise SystemExit(f"memp {' '.join(args)} failed: {result.output}")
    return result.stdout


# -- 1. demo ----------------------------------------------------------------------------------


def bench_demo(url: str, threshold: float) -> dict[str, Any]:
    store = Store(url)
    clusters, live = find_clusters(store, threshold=threshold)
    near = _closest_non_pair(store, {i for c in clusters for i in c.procedure_ids})
    return {
        "live_procedures": live,
        "clusters": len(clusters),
        "procedures_in_clusters": sum(len(c.procedure_ids) for c in clusters),
        "cluster_sizes": sorted((len(c.procedure_ids) for c in clusters), reverse=True),
        "similarities": [round(c.similarity, 3) for c in clusters],
        "closest_other_pair": near,
    }


def _closest_non_pair(store: Store, clustered: set[int]) -> dict[str, Any]:
    """The same-type pair without conflicting facts, outside any cluster, with the highest
    min(cosine, text): the margin below the threshold."""
    from rapidfuzz import fuzz

    cands = [c for c in candidates(store) if c.vector is not None]
    best: dict[str, Any] = {
        "min": -1.0,
        "note": "no same-type pair without conflicting facts reaches cosine 0.8",
    }
    by_type: dict[str, list[Any]] = {}
    for c in cands:
        by_type.setdefault(c.procedure.task_type, []).append(c)
    for group in by_type.values():
        if len(group) < 2:
            continue
        m = np.stack([c.vector for c in group])
        sims = m @ m.T
        np.fill_diagonal(sims, -1)
        for i, j in zip(*np.nonzero(sims >= 0.8), strict=True):
            a, b = group[int(i)], group[int(j)]
            if i >= j or {a.procedure.id, b.procedure.id} <= clustered:
                continue
            if conflict(a.facts, b.facts):  # never clustered, however alike
                continue
            txt = fuzz.ratio(a.text, b.text) / 100
            low = min(float(sims[i, j]), txt)
            if low > best["min"]:
                ids = [a.procedure.id, b.procedure.id]
                best = {"min": round(low, 3), "cosine": round(float(sims[i, j]), 3),
                        "text": round(txt, 3), "procedures": ids}  # fmt: skip
    return best


# -- 2. ALFWorld logs twice -------------------------------------------------------------------


def edit_transcripts(data: dict[str, str], seed: int = 7) -> dict[str, str]:
    """Small edits: no thoughts, doubled spaces, and in every other one a detour first."""
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for n, (key, text) in enumerate(data.items()):
        lines = text.split("\n")
        kept: list[str] = []
        skip = False
        for line in lines:
            if skip:
                skip = False
                continue
            if line.startswith("> think:"):
                skip = True  # its observation ("OK.") goes with it
                continue
            kept.append(line.replace("On the ", "On  the ", 1) if rng.random() < 0.5 else line)
        if n % 2 == 0:
            first = next(i for i, line in enumerate(kept) if line.startswith("> go to "))
            room = re.findall(r"a ([a-z]+ \d+)", kept[0])
            place = rng.choice(room) if room else "drawer 1"
            kept[first:first] = [f"> go to {place}", f"On the {place}, you see nothing."]
        out[key] = "\n".join(kept)
    return out


def bench_alfworld(path: Path, threshold: float, folder: Path) -> dict[str, Any]:
    original = json.loads(path.read_text())
    (folder / "edited.json").write_text(json.dumps(edit_transcripts(original)))
    main, second = f"sqlite:///{folder / 'a.db'}", f"sqlite:///{folder / 'b.db'}"
    build = ["build", "--policy", "script", "--backend", "heuristic"]
    cli("import", str(path), "--label", "success", "--db", main)
    cli(*build, "--db", main)
    first = {p.key for p in Store(main).procedures()}
    # (a) the edited logs into the same memory: the build groups them with the originals
    cli("import", str(folder / "edited.json"), "--label", "success", "--db", main)
    cli(*build, "--db", main)
    same_memory = {"procedures_before": len(first), "after": len(Store(main).procedures()),
                   "clusters": len(find_clusters(Store(main), threshold=threshold)[0])}  # fmt: skip
    # (b) a second memory built from the edited logs, imported under new keys
    cli("import", str(folder / "edited.json"), "--label", "success", "--db", second)
    cli(*build, "--db", second)
    cli("export", str(folder / "exp"), "--what", "procedures", "--db", second)
    lines = [json.loads(x) for x in (folder / "exp" / "procedures.jsonl").read_text().splitlines()]
    for rec in lines[1:]:
        if rec.get("type") == "procedure":
            rec["key"] += "-b"
    (folder / "b.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cli("import", str(folder / "b.jsonl"), "--format", "jsonl", "--db", main)
    store = Store(main)
    procs = {p.id: p for p in store.procedures()}
    clusters, live = find_clusters(store, threshold=threshold)
    origin = {pid: p.key.removesuffix("-b") for pid, p in procs.items()}
    pairs = {k for k in origin.values() if f"{k}-b" in {p.key for p in procs.values()}}
    found = {origin[c.kept_id] for c in clusters if len({origin[i] for i in c.procedure_ids}) == 1}
    return {
        "same_memory": same_memory,
        "two_memories": {
            "live_procedures": live, "planted_pairs": len(pairs), "clusters": len(clusters),
            "pairs_found": len(pairs & found),
            "clusters_joining_different_tasks": sum(
                len({origin[i] for i in c.procedure_ids}) > 1 for c in clusters),
            "clusters_mixing_task_types": sum(
                len({procs[i].task_type for i in c.procedure_ids}) > 1 for c in clusters),
            "similarities": sorted(round(c.similarity, 3) for c in clusters),
            "missed": sorted(pairs - found),
        },
    }  # fmt: skip


# -- 3. scale ---------------------------------------------------------------------------------


def synthetic(url: str, n: int, seed: int = 0) -> int:
    """``n`` procedures (and their revisions) in bulk, 5% followed by a planted copy."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)

    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v)).astype(np.float32)

    base = {k: unit(rng.standard_normal(DIM)) for k in [*TASKS, *OBJECTS, *PLACES]}
    procs: list[dict[str, Any]] = []
    revs: list[dict[str, Any]] = []
    copies = 0
    while len(procs) < n:
        t, o, r = pick.choice(list(TASKS)), pick.choice(OBJECTS), pick.choice(PLACES)
        task = TASKS[t].format(o=o, r=r)
        seen = pick.sample(PLACES, 3)
        script = _script(t, seen)
        vec = unit(base[t] + 0.7 * base[o] + 0.7 * base[r] + 0.5 * unit(rng.standard_normal(DIM)))
        rows = [(task, script, vec)]
        if pick.random() < 0.05:
            copies += 1
            noisy = unit(vec + 0.02 * unit(rng.standard_normal(DIM)))
            rows.append((task, script.replace("1. ", "1.  ", 1) + "\n", noisy))
        for task_text, text, v in rows:
            i = len(procs) + 1
            when = T0 + timedelta(minutes=i)
            suffix = "-copy" if text != script else ""
            procs.append({"id": i, "key": f"{t}-{o}-{r}-{i}{suffix}", "title": task_text,
                          "task_type": t, "status": "pending_review", "current_revision_id": i,
                          "use_count": 0, "success_count": 0, "pinned": False,
                          "created_at": when, "updated_at": when})  # fmt: skip
            revs.append({"id": i, "procedure_id": i, "kind": "script", "task_text": task_text,
                         "script": text, "steps": [], "origin": "build", "author": "heuristic",
                         "model": "heuristic", "rationale": "", "evidence_trajectory_ids": [],
                         "facts": {"task_type": t, "object": o, "receptacle": r},
                         "embedding": v.tobytes(), "created_at": when})  # fmt: skip
    store = Store(url)
    with store.transaction() as s:
        for table, rows in ((Procedure, procs), (ProcedureRevision, revs)):
            for i in range(0, len(rows), CHUNK):
                s.execute(insert(table.__table__), rows[i : i + CHUNK])  # type: ignore[attr-defined]
    return copies


def _script(task_type: str, seen: list[str]) -> str:
    lines = [f"find <object>: check {seen[0]} (1/1); rarely in {seen[1]} (0/1), {seen[2]} (0/1)",
             "take <object>"]  # fmt: skip
    if task_type in VERBS:
        lines += [f"go to {VERBS[task_type].split()[-1]}", VERBS[task_type]]
    lines += ["go to <receptacle>", "put <object> in/on <receptacle>"]
    if task_type == "puttwo":
        lines += [f"find the second <object>: check {seen[0]} (1/1)", "take <object>",
                  "go to <receptacle>", "put <object> in/on <receptacle>"]  # fmt: skip
    return "\n".join(f"{k}. {line}" for k, line in enumerate(lines, 1))


def bench_scale(n: int, threshold: float, folder: Path) -> dict[str, Any]:
    url = f"sqlite:///{folder / 'scale.db'}"
    copies = synthetic(url, n)
    store = Store(url)
    started = time.perf_counter()
    live = len(candidates(store))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    clusters, _ = find_clusters(store, threshold=threshold)
    total_s = time.perf_counter() - started
    # a planted copy is written right after its original: ids i and i + 1
    copies_at = {p.id for p in store.procedures() if p.key.endswith("-copy")}
    together = {c.kept_id: set(c.procedure_ids) for c in clusters}
    together.update({m.procedure_id: set(c.procedure_ids) for c in clusters for m in c.members})
    found = sum(int(i or 0) - 1 in together.get(int(i or 0), set()) for i in copies_at)
    clustered = sum(int(i or 0) in together for i in copies_at)
    return {
        "procedures": live, "planted_copies": copies, "clusters": len(clusters),
        "copies_found_with_their_original": found, "copies_in_a_cluster": clustered,
        "load_s": round(load_s, 2),
        "find_clusters_s": round(total_s, 2),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo-db", help="URL of a demo database (memp demo --no-launch --db URL)")
    ap.add_argument("--alfworld", type=Path, help="react_prompts_alfworld.json")
    ap.add_argument("--n", type=int, default=10_000, help="synthetic procedures (0: skip)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"threshold": args.threshold}
    with tempfile.TemporaryDirectory(prefix="memp-bench-dedupe-") as tmp:
        if args.demo_db:
            out["demo"] = bench_demo(args.demo_db, args.threshold)
        if args.alfworld:
            out["alfworld"] = bench_alfworld(args.alfworld, args.threshold, Path(tmp))
        if args.n:
            out["scale"] = bench_scale(args.n, args.threshold, Path(tmp))
    print(json.dumps(out, indent=None if args.json else 2, default=str))


if __name__ == "__main__":
    main()
