"""Retrieve: the procedures for a new task, by policy, with every retrieval logged.

Policies (``RETRIEVE_POLICIES``; the score each returns):
- ``query``: cosine between the task text's embedding and each procedure's current revision
  embedding (task text, plus the script for script kinds); ``threshold`` drops weaker hits.
- ``facts``: key facts of the task (task type, object, receptacle, tool) matched against each
  revision's facts; score = matched weight / weight of the facts the query has (1.0 = all
  match), weights ``FACT_WEIGHTS``; ties go to the newer procedure. A task the fact parser
  cannot read returns nothing.
- ``random``: k servable procedures drawn uniformly (the paper's ablation), score 0.
- ``hybrid``: ``HYBRID_WEIGHT * cosine + (1 - HYBRID_WEIGHT) * facts score`` with weight 0.3:
  matching facts (above all the task type) outweigh any plausible cosine gap, and cosine
  ranks procedures with equal facts (similar objects first); pure cosine when the task has
  no facts. Measured on 405 ALFWorld-style task sentences against the 12 procedures built
  from the ALFWorld transcripts: right task type at rank 1 for query 31%, random 20%,
  hybrid 99.8% (0.5 would give 96%), facts 100% (when the sentence parses). MiniLM's cosine
  follows objects ("lettuce") more than the task's verb, hence the facts term.

Candidates come from a :class:`~memp_core.search.Search`: on SQLite the in-memory index
(numpy scores; then one statement reads the best candidates' rows and checks their statuses
on them, in the database, on every query; a window that widens until ``k`` servable ones are
found when some are not), on Postgres the database itself (pgvector HNSW for ``query``, SQL
scoring for ``facts`` and ``hybrid``; see :mod:`memp_core.pgsearch`). Agents get approved
procedures only unless they ask otherwise; statuses are never cached, so a procedure
rejected a moment ago, in any process, is not served by the next query.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlmodel import Session, col, select

from memp_core.errors import NotFoundError, StoreError
from memp_core.facts import extract_facts
from memp_core.models import Procedure, ProcedureRevision, Retrieval, Status
from memp_core.reader import Reader
from memp_core.registry import resolve
from memp_core.search import FACT_WEIGHTS, HYBRID_WEIGHT, Filter, Scored, Search
from memp_core.store import Store

RETRIEVE_POLICIES: dict[str, str] = {
    "query": "memp_core.retrieve:by_query",
    "facts": "memp_core.retrieve:by_facts",
    "random": "memp_core.retrieve:by_random",
    "hybrid": "memp_core.retrieve:by_hybrid",
}
SERVED_TO_AGENTS: tuple[str, ...] = (Status.approved.value,)
LIVE: tuple[str, ...] = (Status.draft.value, Status.pending_review.value, Status.approved.value)
__all__ = ["FACT_WEIGHTS", "HYBRID_WEIGHT", "Scored"]  # re-exported: documented here


@dataclass(frozen=True)
class RetrievedProcedure:
    procedure: Procedure
    revision: ProcedureRevision
    score: float
    matched: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """The JSON shape logged in ``Retrieval.results`` and printed by the CLI."""
        return {
            "procedure_id": self.procedure.id,
            "revision_id": self.revision.id,
            "score": round(self.score, 6),
            "title": self.procedure.title,
            "task_type": self.procedure.task_type,
            "status": self.procedure.status,
            "kind": self.revision.kind,
            "model": self.revision.model,
            "matched": dict(self.matched),
        }


@dataclass(frozen=True)
class RetrievalResult:
    retrieval_id: int | None
    items: list[RetrievedProcedure]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[RetrievedProcedure]:
        return iter(self.items)

    def first(self) -> RetrievedProcedure | None:
        return self.items[0] if self.items else None


@dataclass(frozen=True)
class Query:
    """Everything a policy function needs; built by ProceduralMemory.retrieve."""

    text: str
    seed: int | None
    filter: Filter
    search: Search
    embed: Callable[[str], np.ndarray]


def by_query(q: Query) -> list[Scored]:
    return q.search.nearest(q.embed(q.text), q.filter)


def by_facts(q: Query) -> list[Scored]:
    facts = extract_facts(q.text).as_dict()
    return q.search.facts(facts, q.filter) if facts else []


def by_random(q: Query) -> list[Scored]:
    pool = q.search.eligible(q.filter)
    return q.search.load(random.Random(q.seed).sample(pool, min(q.filter.k, len(pool))), q.filter)


def by_hybrid(q: Query) -> list[Scored]:
    facts = extract_facts(q.text).as_dict()
    vector = q.embed(q.text)
    return q.search.hybrid(vector, facts, q.filter) if facts else q.search.nearest(vector, q.filter)


# -- the whole operation ------------------------------------------------------------------


def resolve_statuses(all_statuses: bool, statuses: Sequence[str] | None) -> list[str] | None:
    """Explicit statuses win; ``all_statuses`` means no filter; default: approved only."""
    if statuses is not None:
        return [Status(s).value for s in statuses]
    return None if all_statuses else list(SERVED_TO_AGENTS)


def load_items(s: Session | None, scored: Sequence[Scored]) -> list[RetrievedProcedure]:
    """Procedures (as they are now) and the revisions they were scored on, in score order,
    in one statement (each revision joined to its own procedure). Rows the search already
    read with the status check (SQLite) need no session."""
    if not scored:
        return []
    read = [(sc, sc.loaded) for sc in scored if sc.loaded is not None]
    if len(read) == len(scored):
        return [RetrievedProcedure(proc, rev, sc.score, sc.matched) for sc, (proc, rev) in read]
    if s is None:
        raise StoreError("retrieval: rows the search did not read need a read session")
    wanted = {sc.procedure_id: sc.revision_id for sc in scored}
    missing = [pid for pid, rid in wanted.items() if rid is None]
    if missing:  # scored without a revision: the procedure's current one
        current = s.exec(
            select(Procedure.id, Procedure.current_revision_id).where(
                col(Procedure.id).in_(missing)
            )
        ).all()
        wanted.update({int(pid or 0): rid for pid, rid in current})
    rows = s.exec(
        select(Procedure, ProcedureRevision)
        .join(ProcedureRevision, col(ProcedureRevision.procedure_id) == Procedure.id)
        .where(col(ProcedureRevision.id).in_([r for r in wanted.values() if r is not None]))
    ).all()
    pairs = {int(proc.id or 0): (proc, rev) for proc, rev in rows}
    return [
        RetrievedProcedure(*pairs[sc.procedure_id], sc.score, sc.matched)
        for sc in scored
        if sc.procedure_id in pairs and pairs[sc.procedure_id][1].id == wanted[sc.procedure_id]
    ]


def log_retrieval(
    store: Store,
    *,
    query: str,
    policy: str,
    k: int,
    items: Sequence[RetrievedProcedure],
    run_id: int | None,
    agent_model: str,
    agent: str = "",
) -> int:
    """Record what was served; its id. On a SQLite file one INSERT on the connection the
    retrieval read through (:class:`~memp_core.index.Reader`), which keeps that connection's
    page cache for the next retrieval; elsewhere through a session."""
    row = Retrieval(
        run_id=run_id, query=query, policy=policy, k=k, agent_model=agent_model, agent=agent,
        results=[item.summary() for item in items],
    )  # fmt: skip
    if store.dialect == "sqlite" and (reader := Reader.of(store)).isolated:
        return reader.log(row)
    with store.transaction() as s:
        s.add(row)
        s.flush()
        return int(row.id or 0)


def link_retrieval(store: Store, retrieval_id: int, trajectory_id: int) -> None:
    """Attach a logged retrieval to the trajectory that used it (known only after the run)."""
    with store.transaction() as s:
        row = s.get(Retrieval, retrieval_id)
        if row is None:
            raise NotFoundError(f"retrieval {retrieval_id} not found")
        row.trajectory_id = trajectory_id
        s.add(row)


def policy_function(policy: str) -> Callable[[Query], list[Scored]]:
    return resolve(RETRIEVE_POLICIES, policy, "retrieve policy")
