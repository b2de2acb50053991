"""Where retrieval candidates come from: the in-memory index (SQLite) or the database
(Postgres, :mod:`memp_core.pgsearch`). Both score the same way:

- cosine: the dot product of unit vectors (the query's and the current revision's);
- facts: matched weight / weight of the facts the query has (``FACT_WEIGHTS``);
- hybrid: ``HYBRID_WEIGHT * cosine + (1 - HYBRID_WEIGHT) * facts``; pure cosine when no
  procedure shares a fact with the query.

Every candidate carries the revision its score was computed from, so a result never pairs a
score with a revision it was not computed on, even while writers move procedures on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from sqlmodel import Session

from memp_core.index import ProcedureIndex, top_rows
from memp_core.models import Procedure, ProcedureRevision

FACT_WEIGHTS: dict[str, float] = {"task_type": 0.5, "object": 0.2, "receptacle": 0.2, "tool": 0.1}
HYBRID_WEIGHT = 0.3  # share of cosine in hybrid; see memp_core.retrieve


@dataclass(frozen=True)
class Scored:
    procedure_id: int
    score: float
    matched: dict[str, str] = field(default_factory=dict)
    revision_id: int | None = None  # the revision scored; None: the procedure's current one
    # The procedure (as it is now) and that revision, when the search already read them in
    # the snapshot that checked the status (the SQLite index); None: retrieve loads them.
    loaded: tuple[Procedure, ProcedureRevision] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class Filter:
    """Which procedures may be returned, and how many."""

    k: int
    threshold: float | None = None
    statuses: list[str] | None = None  # None: any status
    author_model: str | None = None  # only current revisions written by this model


class Search(Protocol):
    def nearest(self, vector: np.ndarray, f: Filter) -> list[Scored]: ...

    def facts(self, facts: dict[str, str], f: Filter) -> list[Scored]: ...

    def hybrid(self, vector: np.ndarray, facts: dict[str, str], f: Filter) -> list[Scored]: ...

    def eligible(self, f: Filter) -> list[Scored]:
        """Every servable procedure (score 0), by id: the random policy's pool."""
        ...

    def load(self, picked: list[Scored], f: Filter) -> list[Scored]:
        """``picked`` (from :meth:`eligible`) with their rows where the search reads them
        itself, still servable; as they are where the retrieval's session loads them."""
        ...


def facts_weight(facts: dict[str, str]) -> float:
    return sum(FACT_WEIGHTS.get(k, 0.0) for k in facts)


class MemorySearch:
    """Search over a :class:`ProcedureIndex` (numpy). The best candidates' statuses are
    checked in the database, by the statement that also loads their rows (one snapshot), in a
    window that widens until ``k`` pass. Every read goes through the index's own connection
    (:class:`~memp_core.index.Reader`): a retrieval on SQLite needs no session."""

    def __init__(self, s: Session | None, index: ProcedureIndex) -> None:
        self.s = s  # unused: kept for callers that pass the retrieval's session
        self.index = index

    def nearest(self, vector: np.ndarray, f: Filter) -> list[Scored]:
        with self.index.lock:
            keys, scores = self.index.vectors.scores(vector)
            return self._take(keys, scores, {}, f)

    def facts(self, facts: dict[str, str], f: Filter) -> list[Scored]:
        with self.index.lock:
            keys, scores, matched = self._facts_scores(facts)
            order = np.argsort(-keys, kind="stable")  # newer procedures first among equals
            return self._take(keys[order], scores[order], matched, f)

    def hybrid(self, vector: np.ndarray, facts: dict[str, str], f: Filter) -> list[Scored]:
        with self.index.lock:
            keys, cosine = self.index.vectors.scores(vector)
            fkeys, fscores, matched = self._facts_scores(facts)
            if not fkeys.size:
                return self._take(keys, cosine, {}, f)
            bonus = np.zeros_like(cosine)
            for pid, score in zip(fkeys.tolist(), fscores.tolist(), strict=True):
                row = self.index.vectors.row(pid)
                if row is not None:  # procedures without an embedding are not ranked here
                    bonus[row] = score
            mixed = HYBRID_WEIGHT * cosine + (1 - HYBRID_WEIGHT) * bonus
            return self._take(keys, mixed, matched, f)

    def eligible(self, f: Filter) -> list[Scored]:
        with self.index.lock:
            ids = self.index.reader.eligible(f.statuses)
            return [self._scored(pid, 0.0, {}) for pid in self._by_author(ids, f)]

    def load(self, picked: list[Scored], f: Filter) -> list[Scored]:
        """Rows of the random picks, statuses checked again in the statement that reads
        them: one rejected since :meth:`eligible` is left out, never served."""
        wanted = [(sc.procedure_id, sc.revision_id) for sc in picked if sc.revision_id]
        with self.index.lock:
            rows = self.index.reader.servable(wanted, f.statuses, len(wanted), widen=False)
        return [Scored(rev.procedure_id, 0.0, {}, rev.id, (proc, rev)) for proc, rev in rows]

    # -- helpers (called with the index lock held) ------------------------------------------

    def _facts_scores(
        self, facts: dict[str, str]
    ) -> tuple[np.ndarray, np.ndarray, dict[int, dict[str, str]]]:
        total = facts_weight(facts)
        score: dict[int, float] = {}
        matched: dict[int, dict[str, str]] = {}
        for pair in facts.items() if total else ():
            for pid in self.index.postings.get(pair, ()):
                score[pid] = score.get(pid, 0.0) + FACT_WEIGHTS.get(pair[0], 0.0) / total
                matched.setdefault(pid, {})[pair[0]] = pair[1]
        keys = np.fromiter(score.keys(), dtype=np.int64, count=len(score))
        values = np.fromiter(score.values(), dtype=np.float32, count=len(score))
        return keys, values, matched

    def _take(
        self, keys: np.ndarray, scores: np.ndarray, matched: dict[int, dict[str, str]], f: Filter
    ) -> list[Scored]:
        """Best-first servable candidates, loaded. The best ``k`` first (usually all of them
        are servable: one statement); when not, an over-fetched window of which the database
        keeps the first ``k`` servable ones, widened until ``k`` are found."""
        n = int(keys.shape[0])
        window = f.k
        entries = self.index.entries
        while True:
            rows = top_rows(scores, window)
            if f.threshold is not None:
                rows = rows[scores[rows] >= f.threshold]
            score = dict(zip(keys[rows].tolist(), scores[rows].tolist(), strict=True))
            wanted = [(pid, entries[pid].revision_id) for pid in self._by_author(score, f)]
            loaded = self.index.reader.servable(wanted, f.statuses, f.k)
            if len(loaded) >= f.k or window >= n or len(rows) < min(window, n):
                return [
                    Scored(rev.procedure_id, score[rev.procedure_id],
                           matched.get(rev.procedure_id, {}), rev.id, (proc, rev))
                    for proc, rev in loaded
                ]  # fmt: skip
            window = max(4 * window, 16)

    def _by_author(self, ids: Iterable[int], f: Filter) -> list[int]:
        entries = self.index.entries
        if f.author_model is None:
            return [i for i in ids if i in entries]
        return [i for i in ids if (e := entries.get(i)) and e.model == f.author_model]

    def _scored(self, pid: int, score: float, matched: dict[str, str]) -> Scored:
        entry = self.index.entries.get(pid)
        return Scored(pid, score, matched, entry.revision_id if entry else None)
