"""The retrieval bench: the bound and the served path under the same thread settings."""

from __future__ import annotations

from memp_core.bench import run_retrieval_bench
from memp_core.embeddings import Embedder


def test_bound_grows_with_memory_size_under_one_thread(embedder: Embedder) -> None:
    # 40x the rows is 40x the multiply-adds: with one BLAS thread on both sides the bare
    # bound cannot come out cheaper at the larger size (it did with the default thread pool).
    out = run_retrieval_bench([500, 20_000], repeats=9)  # the fixture loaded MiniLM
    small, large = out["sizes"][500], out["sizes"][20_000]  # type: ignore[index]
    assert out["threads"] == 1
    assert large["bound_ms"] > small["bound_ms"]
    for row in (small, large):
        assert row["retrieve_logged_ms"] > 0
        assert row["end_to_end_ms"] is not None and row["end_to_end_ms"] > 0
