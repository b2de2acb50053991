import numpy as np
import pytest

from memp_core.index import VectorIndex


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_index_top_k_equals_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(0)
    vecs = _unit_rows(rng, 2000, 64)
    index = VectorIndex(64, capacity=8)  # forces several incremental growths
    index.upsert_many(list(range(1000, 3000)), vecs)
    for q in _unit_rows(rng, 20, 64):
        expected = (np.argsort(-(vecs @ q), kind="stable")[:10] + 1000).tolist()
        assert [h.key for h in index.search(q, 10)] == expected


def test_upsert_replaces_and_remove_keeps_other_keys() -> None:
    rng = np.random.default_rng(1)
    vecs = _unit_rows(rng, 5, 8)
    index = VectorIndex(8)
    index.upsert_many([1, 2, 3, 4, 5], vecs)
    index.upsert(2, vecs[4])
    index.remove(5)
    assert len(index) == 4 and 5 not in index
    hits = index.search(vecs[4], 1)
    assert hits[0].key == 2 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_threshold_drops_dissimilar_hits() -> None:
    index = VectorIndex(2)
    index.upsert(1, np.array([1.0, 0.0]))
    index.upsert(2, np.array([0.0, 1.0]))
    assert [h.key for h in index.search(np.array([1.0, 0.1]), 5, threshold=0.5)] == [1]


def test_wrong_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        VectorIndex(4).upsert(1, np.ones(3))
