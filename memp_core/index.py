"""In-memory vector index over procedures, updated incrementally.

One row per procedure holding the embedding of its *current* revision. Adding a revision
replaces or appends one row in O(dim) (amortised: capacity doubles), unlike the paper's
reference code, which rebuilds the whole index on every save. Search is one matrix-vector
product plus ``argpartition``: the brute-force bound plus a small constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hit:
    key: int
    score: float


class VectorIndex:
    """Cosine top-k over unit vectors keyed by an integer (the procedure id)."""

    def __init__(self, dimension: int, capacity: int = 1024) -> None:
        self.dimension = dimension
        self._matrix = np.zeros((max(capacity, 1), dimension), dtype=np.float32)
        self._keys = np.zeros(max(capacity, 1), dtype=np.int64)
        self._row: dict[int, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: int) -> bool:
        return key in self._row

    def upsert(self, key: int, vector: np.ndarray) -> None:
        """Insert or replace the vector stored under ``key``."""
        vec = _unit(vector, self.dimension)
        row = self._row.get(key)
        if row is None:
            if self._size == len(self._keys):
                self._grow()
            row = self._size
            self._size += 1
            self._row[key] = row
            self._keys[row] = key
        self._matrix[row] = vec

    def upsert_many(self, keys: list[int], vectors: np.ndarray) -> None:
        for key, vec in zip(keys, vectors, strict=True):
            self.upsert(key, vec)

    def remove(self, key: int) -> None:
        """Drop ``key`` by moving the last row into its slot (O(dim))."""
        row = self._row.pop(key, None)
        if row is None:
            return
        last = self._size - 1
        if row != last:
            moved = int(self._keys[last])
            self._matrix[row] = self._matrix[last]
            self._keys[row] = moved
            self._row[moved] = row
        self._size -= 1

    def search(self, query: np.ndarray, k: int, threshold: float = -1.0) -> list[Hit]:
        """The ``k`` most similar keys with cosine >= ``threshold``, best first."""
        if self._size == 0 or k <= 0:
            return []
        scores = self._matrix[: self._size] @ _unit(query, self.dimension)
        k = min(k, self._size)
        top = np.argpartition(-scores, k - 1)[:k] if k < self._size else np.arange(self._size)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(int(self._keys[i]), float(scores[i])) for i in top if scores[i] >= threshold]

    def _grow(self) -> None:
        cap = len(self._keys) * 2
        matrix = np.zeros((cap, self.dimension), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        keys = np.zeros(cap, dtype=np.int64)
        keys[: self._size] = self._keys[: self._size]
        self._matrix, self._keys = matrix, keys


def _unit(vector: np.ndarray, dimension: int) -> np.ndarray:
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dimension:
        raise ValueError(f"vector has {vec.shape[0]} dimensions, index has {dimension}")
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
