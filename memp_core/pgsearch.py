"""Retrieval in Postgres: pgvector's HNSW index answers ``query``, SQL scores ``facts`` and
``hybrid``; no embedding is loaded into Python.

- ``nearest``: ``ORDER BY embedding <=> :q LIMIT k`` over ``procedure.embedding`` (the
  current revision's vector) with the status and author filters in the same statement.
  ``hnsw.ef_search`` is ``EF_SEARCH``, set on every connection (recall@5 >= 0.95 in
  ``memp bench retrieval --postgres``); a search with another breadth sets it locally.
  HNSW applies filters after the graph walk, so a very selective filter can leave fewer
  than ``k`` rows: then the same statement runs again as an exact scan.
- ``facts``: one statement scoring the matching current revisions' JSON facts, best first,
  ``LIMIT k``; expression indexes on the facts keys (models.FACT_KEYS, migration 0005)
  let Postgres find the candidates without scanning every revision.
- ``hybrid``: the procedures sharing a fact with the query, scored exactly in SQL (the
  same scan), merged with the HNSW top-``k`` by cosine, which stands for every procedure
  sharing none (those score only ``HYBRID_WEIGHT * cosine``).

A revision whose embedding has another length than ``EMBEDDING_DIM`` leaves
``procedure.embedding`` empty (``models.searchable``): its procedure is found by ``facts`` and
``random`` only, as on SQLite, and never fails a search; pgvector itself refuses NaN and
infinite values, so such a vector can never reach the index.

Every statement reads the procedure and its current revision id in one snapshot, so the
revision returned is the one scored. There is no cache to keep in step, so nothing is missed
when transactions commit out of id order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import Float, Select, bindparam, case, literal, or_, text
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from memp_core.errors import ConfigError
from memp_core.models import (
    EMBEDDING_DIM,
    HNSW_EF_SEARCH,
    EmbeddingType,
    Procedure,
    ProcedureRevision,
)
from memp_core.search import FACT_WEIGHTS, HYBRID_WEIGHT, Filter, Scored, facts_weight

EF_SEARCH = HNSW_EF_SEARCH
MAX_EF_SEARCH = 1000  # pgvector's upper bound


class PgSearch:
    """The :class:`~memp_core.search.Search` of a Postgres store."""

    def __init__(self, s: Session, ef_search: int = EF_SEARCH) -> None:
        self.s = s  # the retrieval's read session: search and loading share one transaction
        self.ef_search = ef_search

    def nearest(self, vector: np.ndarray, f: Filter) -> list[Scored]:
        if f.k <= 0:
            return []
        stmt = self.nearest_statement(vector, f)
        breadth = min(max(self.ef_search, f.k), MAX_EF_SEARCH)
        if breadth != HNSW_EF_SEARCH:  # the connection default; anything else costs a trip
            _set(self.s, "hnsw.ef_search", str(breadth))
        rows = self.s.execute(stmt).all()
        if len(rows) < f.k:  # the filter ate the graph walk's candidates: scan exactly
            _set(self.s, "enable_indexscan", "off")
            rows = self.s.execute(stmt).all()
            _set(self.s, "enable_indexscan", "on")
        found = [Scored(int(pid), 1.0 - float(d), {}, rid) for pid, rid, d in rows]
        return _above(found, f.threshold)

    def nearest_statement(self, vector: np.ndarray, f: Filter) -> Select[Any]:
        """``id, current_revision_id, distance`` of the ``k`` nearest servable procedures."""
        dist = _distance(vector)
        stmt = select(Procedure.id, Procedure.current_revision_id, dist.label("distance"))
        stmt = self._filtered(stmt.where(col(Procedure.embedding).is_not(None)), f)
        return stmt.order_by(dist).limit(f.k)

    def facts(self, facts: dict[str, str], f: Filter) -> list[Scored]:
        score = _facts_score(facts)
        if score is None or f.k <= 0:
            return []
        stmt = self._scored_select(score, f).where(_any_fact(facts))
        return self._run(stmt.order_by(score.desc(), col(Procedure.id).desc()), facts, f)

    def hybrid(self, vector: np.ndarray, facts: dict[str, str], f: Filter) -> list[Scored]:
        """Procedures sharing a fact are scored exactly in SQL; the others can only score
        ``HYBRID_WEIGHT * cosine``, so the index's top-``k`` by cosine stands for them."""
        score = _facts_score(facts)
        if score is None or f.k <= 0:
            return self.nearest(vector, f)
        unfiltered = replace(f, threshold=None)  # the threshold applies to the mixed score
        mixed = HYBRID_WEIGHT * (literal(1.0) - _distance(vector)) + (1 - HYBRID_WEIGHT) * score
        stmt = self._scored_select(mixed, f).where(col(Procedure.embedding).is_not(None))
        stmt = stmt.where(_any_fact(facts)).order_by(mixed.desc(), col(Procedure.id))
        matched = self._run(stmt, facts, unfiltered)
        if not matched:
            return self.nearest(vector, f)  # no fact shared: pure cosine, as on SQLite
        seen = {sc.procedure_id for sc in matched}
        others = [
            Scored(sc.procedure_id, HYBRID_WEIGHT * sc.score, {}, sc.revision_id)
            for sc in self.nearest(vector, unfiltered)
            if sc.procedure_id not in seen
        ]
        best = sorted([*matched, *others], key=lambda sc: -sc.score)[: f.k]
        return _above(best, f.threshold)

    def eligible(self, f: Filter) -> list[Scored]:
        stmt = self._filtered(select(Procedure.id, Procedure.current_revision_id), f)
        stmt = stmt.where(col(Procedure.current_revision_id).is_not(None))
        rows = self.s.execute(stmt.order_by(col(Procedure.id))).all()
        return [Scored(int(pid), 0.0, {}, rid) for pid, rid in rows]

    def load(self, picked: list[Scored], f: Filter) -> list[Scored]:
        return picked  # the retrieval's session loads them, in the snapshot that chose them

    # -- statements ------------------------------------------------------------------------

    def _filtered(self, stmt: Select[Any], f: Filter) -> Select[Any]:
        if f.statuses is not None:
            stmt = stmt.where(col(Procedure.status).in_(f.statuses))
        if f.author_model is not None:
            written_by = select(ProcedureRevision.id).where(
                ProcedureRevision.model == f.author_model
            )
            stmt = stmt.where(col(Procedure.current_revision_id).in_(written_by))
        return stmt

    def _scored_select(self, score: ColumnElement[float], f: Filter) -> Select[Any]:
        current = col(ProcedureRevision.id) == Procedure.current_revision_id
        stmt = select(
            Procedure.id, Procedure.current_revision_id, score.label("score"),
            col(ProcedureRevision.facts),
        ).join(ProcedureRevision, current)  # fmt: skip
        return self._filtered(stmt, f)

    def _run(self, stmt: Select[Any], facts: dict[str, str], f: Filter) -> list[Scored]:
        rows = self.s.execute(stmt.limit(f.k)).all()
        found = [
            Scored(int(pid), float(score), _matched(facts, rev_facts), rid)
            for pid, rid, score, rev_facts in rows
        ]
        return _above(found, f.threshold)


def _distance(vector: np.ndarray) -> ColumnElement[float]:
    vec = np.asarray(vector, dtype="<f4").reshape(-1)
    if vec.shape[0] != EMBEDDING_DIM:
        raise ConfigError(
            f"the embedder gives {vec.shape[0]}-dim vectors but the Postgres search column "
            f"holds {EMBEDDING_DIM}-dim ones (all-MiniLM-L6-v2); use a {EMBEDDING_DIM}-dim "
            "model with Postgres"
        )
    norm = float(np.linalg.norm(vec))
    query = bindparam("query", (vec / norm if norm else vec).tobytes(), type_=EmbeddingType())
    return col(Procedure.embedding).op("<=>", return_type=Float)(query)


def _facts_score(facts: dict[str, str]) -> ColumnElement[float] | None:
    """Matched weight / total weight, in SQL over the current revision's JSON facts."""
    total = facts_weight(facts)
    if not total:
        return None
    terms = [
        case((_fact(key) == value, FACT_WEIGHTS[key] / total), else_=0.0)
        for key, value in facts.items()
        if key in FACT_WEIGHTS
    ]
    score: ColumnElement[float] = terms[0]
    for term in terms[1:]:
        score = score + term
    return score


def _any_fact(facts: dict[str, str]) -> ColumnElement[bool]:
    return or_(*(_fact(key) == value for key, value in facts.items() if key in FACT_WEIGHTS))


def _fact(key: str) -> ColumnElement[str]:
    return col(ProcedureRevision.facts)[key].as_string()


def _matched(facts: dict[str, str], rev_facts: object) -> dict[str, str]:
    if not isinstance(rev_facts, dict):
        return {}
    return {k: v for k, v in facts.items() if k in FACT_WEIGHTS and str(rev_facts.get(k)) == v}


def _above(found: list[Scored], threshold: float | None) -> list[Scored]:
    # rows come best first, so dropping the weak tail equals filtering before the LIMIT
    return found if threshold is None else [sc for sc in found if sc.score >= threshold]


def _set(s: Session, name: str, value: str) -> None:
    """A setting for this transaction only (SET LOCAL)."""
    s.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
