"""Vector index over procedures, updated incrementally; :class:`ProcedureIndex` keeps it in
step with the store.

One row per procedure holding the embedding of its *current* revision. Adding a revision
replaces or appends one row in O(dim) (amortised: capacity doubles), unlike the paper's
reference code, which rebuilds the whole index on every save. Search is one matrix-vector
product plus ``argpartition``: the brute-force bound plus a small constant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memp_core.reader import NEWEST, Reader
from memp_core.store import Store

log = logging.getLogger(__name__)
WARN_ROWS = 20  # rows named one by one per sync; more are summed up in one line


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
        """Bulk upsert; new keys are appended in one block copy (the initial load path)."""
        rows = _unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1), self)
        fresh: dict[int, int] = {}
        for pos, key in enumerate(keys):
            row = self._row.get(key)
            if row is None:
                fresh[key] = pos  # a key repeated in the batch keeps its last vector
            else:
                self._matrix[row] = rows[pos]
        if not fresh:
            return
        while self._size + len(fresh) > len(self._keys):
            self._grow()
        start, stop = self._size, self._size + len(fresh)
        picks = np.fromiter(fresh.values(), dtype=np.int64, count=len(fresh))
        self._matrix[start:stop] = rows[picks]
        self._keys[start:stop] = np.fromiter(fresh.keys(), dtype=np.int64, count=len(fresh))
        self._row.update(zip(fresh.keys(), range(start, stop), strict=True))
        self._size = stop

    def row(self, key: int) -> int | None:
        """The row of ``key`` in :meth:`scores` order, or None."""
        return self._row.get(key)

    def vector(self, key: int) -> np.ndarray | None:
        """The stored unit vector of ``key`` (a view), or None."""
        row = self._row.get(key)
        return None if row is None else self._matrix[row]

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, cosine scores)`` of every row, for callers that rank or filter themselves."""
        keys = self._keys[: self._size]
        if self._size == 0:
            return keys, np.zeros(0, dtype=np.float32)
        return keys, self._matrix[: self._size] @ _unit(query, self.dimension)

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
        top = top_rows(scores, k)
        return [Hit(int(self._keys[i]), float(scores[i])) for i in top if scores[i] >= threshold]

    def _grow(self) -> None:
        cap = len(self._keys) * 2
        matrix = np.zeros((cap, self.dimension), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        keys = np.zeros(cap, dtype=np.int64)
        keys[: self._size] = self._keys[: self._size]
        self._matrix, self._keys = matrix, keys


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the ``k`` largest scores, best first (argpartition, then sort k)."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    return top[np.argsort(-scores[top], kind="stable")]


def _unit_rows(matrix: np.ndarray, index: VectorIndex) -> np.ndarray:
    if matrix.shape[1] != index.dimension:
        raise ValueError(f"vectors have {matrix.shape[1]} dimensions, index has {index.dimension}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _unit(vector: np.ndarray, dimension: int) -> np.ndarray:
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dimension:
        raise ValueError(f"vector has {vec.shape[0]} dimensions, index has {dimension}")
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


@dataclass(frozen=True)
class Skipped:
    """A current revision whose embedding cannot be searched, and why."""

    revision_id: int
    procedure_id: int
    reason: str


def blob_problem(blob: bytes, dimension: int) -> str | None:
    """Why an embedding blob cannot be searched at ``dimension`` (None: it can)."""
    if len(blob) != 4 * dimension:
        return (
            f"its embedding has {len(blob) / 4:g} values, the embedder gives {dimension} "
            "(written by another model, or damaged)"
        )
    return None


@dataclass(frozen=True)
class Entry:
    """What the index knows of one procedure: its current revision and that revision's facts."""

    procedure_id: int
    revision_id: int
    model: str
    facts: dict[str, str]


class ProcedureIndex:
    """The retrieval index of one store: one row per procedure, its *current* revision.

    :meth:`sync` loads only revisions with an id above the last one seen (revisions are
    append-only and every change of content makes a new current revision), so keeping
    several processes in step costs one ``max(id)`` query when nothing changed. Statuses are
    not cached here: they change without a new revision (approve, reject, merge), so every
    search checks them in the database for the candidates it returns, in the statement that
    loads those rows (:meth:`Reader.servable`): a procedure rejected a moment ago in another
    process is never served.

    "Above the last id seen" misses nothing only where revisions commit in id order. SQLite
    has one writer at a time (each write transaction holds the lock from its first
    statement to its commit), and a sync reads ``max(id)`` and the rows in one snapshot. On
    Postgres ids are handed out before commit, so a slow transaction can commit a lower id
    after a sync has moved past it: Postgres therefore does not use this index, retrieval
    runs in the database (:mod:`memp_core.pgsearch`).

    A current revision whose embedding is unusable (another length than the embedder's, or
    NaN / infinite values, e.g. from a damaged import) is left out of vector search with one
    logged warning and listed in :attr:`skipped`; its procedure stays reachable by facts
    and random retrieval. One bad row never fails retrieval for everyone.
    """

    SYNC = (
        "SELECT r.id, r.procedure_id, r.embedding, r.model, r.facts FROM procedurerevision AS r "
        "JOIN procedure AS p ON p.current_revision_id = r.id WHERE r.id > ? AND r.id <= ?"
    )

    def __init__(self, store: Store, dimension: int) -> None:
        self.store = store
        self.reader = Reader.of(store)
        self.vectors = VectorIndex(dimension)
        self.entries: dict[int, Entry] = {}
        self.postings: dict[tuple[str, str], set[int]] = {}
        self.seen_revision_id = 0
        self._version: tuple[int, int] | None = None  # the reader's, at the last full look
        self.skipped: dict[int, Skipped] = {}  # by procedure id, while that row is current
        # Held by sync and by each search (memp_core.search), so a dashboard thread never
        # reads postings or rows (or uses the reader's connection) while another thread's
        # sync is changing them.
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.entries)

    def sync(self) -> int:
        """Load revisions newer than the last sync; returns how many procedures changed."""
        with self.lock:
            version = self.reader.version()
            if version is not None and version == self._version:
                return 0  # no other connection has committed since the last look
            if (self.reader.rows(NEWEST)[0][0] or 0) <= self.seen_revision_id:
                self._version = version
                return 0  # one statement when nothing changed
            with self.reader.snapshot() as conn:  # the newest id and its rows: one snapshot
                newest = conn.execute(NEWEST).fetchone()[0] or 0
                raw = conn.execute(self.SYNC, (self.seen_revision_id, newest)).fetchall()
            facts = self.reader.revision
            rows = [
                (rid, pid, blob, model, facts.value("facts", f)) for rid, pid, blob, model, f in raw
            ]
            self._apply(rows)
            self.seen_revision_id = int(newest)
            self._version = version
            return len(rows)

    def _apply(self, rows: Sequence[Any]) -> None:
        before = set(self.skipped.values())
        self._load(rows)
        _warn([sk for sk in self.skipped.values() if sk not in before])

    def _load(self, rows: Sequence[Any]) -> None:
        keys: list[int] = []
        blobs: list[bytes] = []
        for rev_id, proc_id, blob, model, facts in rows:
            old = self.entries.get(proc_id)
            if old is not None:
                self._unpost(old)
            entry = Entry(int(proc_id), int(rev_id), model or "", _str_facts(facts))
            self.entries[entry.procedure_id] = entry
            self.skipped.pop(entry.procedure_id, None)
            for pair in entry.facts.items():
                self.postings.setdefault(pair, set()).add(entry.procedure_id)
            problem = None if blob is None else blob_problem(blob, self.vectors.dimension)
            if blob is None or problem is not None:
                self.vectors.remove(entry.procedure_id)  # facts and random retrieval only
                if problem is not None:
                    self._skip(entry, problem)
                continue
            keys.append(entry.procedure_id)
            blobs.append(blob)
        if not keys:
            return
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():  # NaN or infinity would turn every score it touches into NaN
            for pos in np.flatnonzero(~finite).tolist():
                self.vectors.remove(keys[pos])
                self._skip(self.entries[keys[pos]], "its embedding has NaN or infinite values")
            keys = [k for k, ok in zip(keys, finite.tolist(), strict=True) if ok]
            matrix = matrix[finite]
        if keys:
            self.vectors.upsert_many(keys, matrix)

    def _skip(self, entry: Entry, reason: str) -> None:
        self.skipped[entry.procedure_id] = Skipped(entry.revision_id, entry.procedure_id, reason)

    def _unpost(self, entry: Entry) -> None:
        for pair in entry.facts.items():
            members = self.postings.get(pair)
            if members is not None:
                members.discard(entry.procedure_id)
                if not members:
                    del self.postings[pair]


def _warn(fresh: list[Skipped]) -> None:
    """One warning per newly skipped row (a model switch can skip thousands: summed up)."""
    for sk in fresh[:WARN_ROWS]:
        log.warning(
            "procedure %s is left out of vector search (facts and random retrieval still "
            "find it): revision %s: %s", sk.procedure_id, sk.revision_id, sk.reason,
        )  # fmt: skip
    if len(fresh) > WARN_ROWS:
        log.warning("%d more procedures are left out of vector search", len(fresh) - WARN_ROWS)


def _str_facts(facts: object) -> dict[str, str]:
    if not isinstance(facts, dict):
        return {}
    return {str(k): str(v) for k, v in facts.items() if v not in (None, "")}
