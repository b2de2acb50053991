"""``memp bench import``: how fast a large log imports, against parsing it alone.

Imports compute no embeddings (trajectories are embedded later, when procedures are built),
so the honest yardstick is the raw parse rate of the same file on the same machine: the gap
is the cost of checking, hashing, deduplicating and writing rows. ``write_lock_s`` is the
part spent inside the one write transaction, while other writers (a reviewer) wait.
"""

from __future__ import annotations

import random
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from memp_core.actor import system
from memp_core.importers import import_paths
from memp_core.importers.react import parse as parse_react
from memp_core.importers.records import TrajectoryRecord
from memp_core.store import Store

WORDS = (
    "river castle album singer film county league novel bridge station museum island "
    "director founded released located born across between during named first largest"
).split()
NOTE = (
    "Imports embed nothing, so the yardstick is the parse rate, not embedding throughput; "
    "parsing and checks run before the write lock is taken."
)


@dataclass(frozen=True)
class BenchResult:
    trajectories: int
    megabytes: float
    parse_per_s: float
    import_per_s: float
    ratio: float  # import rate / parse rate
    max_rss_mb: float
    write_lock_s: float  # the part of the import inside its one write transaction
    note: str = NOTE


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_log(path: Path, blocks: int, trials: int = 5, seed: int = 0) -> None:
    """A Reflexion-style multi-trial HotpotQA log with ``blocks`` blocks in all."""
    rng = random.Random(seed)
    per_trial = max(1, blocks // trials)
    with path.open("w", encoding="utf-8") as fh:
        for trial in range(1, trials + 1):
            outcomes = [rng.choice(("CORRECT", "INCORRECT", "HALTED")) for _ in range(per_trial)]
            counts = [outcomes.count(k) for k in ("CORRECT", "INCORRECT", "HALTED")]
            fh.write(f"\n{'#' * 40}\nBEGIN TRIAL {trial}\n")
            fh.write("Trial summary: Correct: {}, Incorrect: {}, Halted: {}\n".format(*counts))
            for section in ("CORRECT", "INCORRECT", "HALTED"):
                fh.write(f"------------- BEGIN {section} AGENTS -------------\n\n")
                for i, outcome in enumerate(outcomes):
                    if outcome == section:
                        _write_block(fh, rng, f"{trial}-{i}", section)


def _write_block(fh: object, rng: random.Random, tag: str, section: str) -> None:
    lines = [f"Question: Which {_sentence(rng, 8)[:-1]} ({tag})?"]
    n = rng.randint(2, 6)
    for k in range(1, n + 1):
        lines.append(f"Thought {k}: {_sentence(rng, 14)}")
        if k == n and section != "HALTED":
            lines.append(f"Action {k}: Finish[{rng.choice(WORDS)}]")
            verdict = "CORRECT" if section == "CORRECT" else "INCORRECT"
            lines.append(f"Observation {k}: Answer is {verdict}")
        else:
            lines.append(f"Action {k}: Search[{rng.choice(WORDS)} {rng.choice(WORDS)}]")
            lines.append(f"Observation {k}: {_sentence(rng, 60)}")
    lines.append(f"Correct answer: {rng.choice(WORDS)}\n")
    fh.write("\n".join(lines) + "\n")  # type: ignore[attr-defined]


def run_bench(blocks: int = 20000) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        log = Path(tmp) / "bench_log.txt"
        write_log(log, blocks)
        t0 = time.perf_counter()
        parsed = sum(isinstance(item, TrajectoryRecord) for item in parse_react(log))
        parse_s = time.perf_counter() - t0
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            t0 = time.perf_counter()
            report = import_paths(store, [log], actor=system("bench import"), fmt="react")
            import_s = time.perf_counter() - t0
        finally:
            store.dispose()
        parse_rate = parsed / parse_s if parse_s else 0.0
        import_rate = report.trajectories / import_s if import_s else 0.0
        return BenchResult(
            trajectories=report.trajectories,
            megabytes=log.stat().st_size / 1e6,
            parse_per_s=round(parse_rate, 1),
            import_per_s=round(import_rate, 1),
            ratio=round(import_rate / parse_rate, 3) if parse_rate else 0.0,
            max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            write_lock_s=round(report.write_seconds, 2),
        )
