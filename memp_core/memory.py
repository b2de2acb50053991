"""``ProceduralMemory``: the engine's one entry point (build, retrieve, update).

- ``build(trajectory_ids=None, *, policy="script", status=pending_review, actor=None)``:
  procedures from trajectories (``None``: successes not yet used as evidence).
- ``retrieve(query, *, policy="query", k=3, threshold=None, all_statuses=False,
  author_model=None, run_id=None, agent_model="", log=True, seed=None)``: the top-k
  servable procedures (approved only, unless asked), logged unless ``log=False``.
- ``update(trajectory_ids, *, policy, build_policy="script", auto_approve=False, actor=None)``:
  apply an update policy (none, vanilla, validation, reflect) after tasks finish.
- ``cold_start(*, top=3, policy="script", ..., actor=None)``: seed memory from the best runs.

Writes name their :class:`~memp_core.actor.Actor`, recorded in the audit log: a person
(the CLI's OS user, a signed-in reviewer) needs the reviewer role; without an actor the
program writes as itself (``memp:build``, ``memp:update``, ``memp:cold-start``), as the
online loop does inside an experiment's own memory. Only a person or the program may write
approved procedures: an agent's writes wait for review whatever it asks.

Create one per process and reuse it: on SQLite it holds the retrieval index, which it keeps
in step with the database incrementally; on Postgres retrieval runs in the database (pgvector
HNSW) and nothing is cached. The embedder and the backend load on first use, so listing
or reviewing procedures never loads torch or needs an LLM endpoint.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from sqlmodel import Session

from memp_core.actor import Actor, system
from memp_core.build import embed_revisions, load_evidence, plan_builds, unused_successes
from memp_core.build import write_builds as _write_builds
from memp_core.config import Settings, get_settings
from memp_core.database import DeadlockError
from memp_core.embeddings import Embedder, get_embedder
from memp_core.errors import ConflictError, PermissionDeniedError
from memp_core.index import ProcedureIndex
from memp_core.llm import Backend, get_backend
from memp_core.models import ProcedureRevision, Status
from memp_core.pgsearch import EF_SEARCH, PgSearch
from memp_core.retrieve import (
    Query,
    RetrievalResult,
    load_items,
    log_retrieval,
    policy_function,
    resolve_statuses,
)
from memp_core.search import Filter, MemorySearch, Search
from memp_core.store import Store
from memp_core.update import UpdateReport
from memp_core.update import update as _update

VECTOR_POLICIES = ("query", "hybrid")
WRITE_ATTEMPTS = 5
T = TypeVar("T")


class ProceduralMemory:
    """Procedural memory over one store."""

    def __init__(
        self,
        store: Store,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        backend: Backend | str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or get_settings()
        self._embedder = embedder
        self._backend = backend
        self._index: ProcedureIndex | None = None
        self.ef_search = EF_SEARCH  # Postgres: HNSW candidates per search (recall vs time)
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.settings)
        return self._embedder

    @property
    def backend(self) -> Backend:
        if not isinstance(self._backend, Backend):
            name = self._backend or self.settings.llm_backend
            self._backend = get_backend(name, self.settings)
        return self._backend

    @property
    def index(self) -> ProcedureIndex:
        """The in-memory retrieval index of SQLite stores, synced with the store (cheap when
        nothing changed). Postgres retrieval does not use it (see memp_core.index)."""
        with self._lock:
            if self._index is None:
                self._index = ProcedureIndex(self.store, self.embedder.dimension)
        self._index.sync()
        return self._index

    def search(self, s: Session, index: ProcedureIndex | None = None) -> Search:
        """Where candidates come from, read through ``s``: the database on Postgres, the
        synced in-memory index elsewhere."""
        if self.store.dialect == "postgresql":
            return PgSearch(s, self.ef_search)
        return MemorySearch(s, index or self.index)

    # -- build ----------------------------------------------------------------------------

    def build(
        self,
        trajectory_ids: Sequence[int] | None = None,
        *,
        policy: str = "script",
        status: Status = Status.pending_review,
        actor: Actor | None = None,
    ) -> list[ProcedureRevision]:
        """Build procedures; returns the revisions written (first revisions and merges).

        Planning reads the database without a lock; if another writer moved a procedure on
        in the meantime the write is refused whole and planned again (``WRITE_ATTEMPTS``).
        """
        actor = actor or system("build")
        check_writer(actor, "build procedures", Status(status))

        def attempt() -> list[ProcedureRevision]:
            counted = self.settings.count_unreviewed_judgements
            ids = (
                unused_successes(self.store, count_unreviewed=counted)
                if trajectory_ids is None
                else trajectory_ids
            )
            runs = load_evidence(self.store, ids, count_unreviewed=counted)
            if not runs:
                return []
            plans = plan_builds(self.store, self.backend, runs, policy=policy)
            embed_revisions(self.embedder, [p.revision for p in plans])
            with self.store.transaction() as s:
                return _write_builds(
                    s, self.store, plans, status=Status(status), actor=actor.author
                )

        return _retrying(attempt)

    # -- retrieve -------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        *,
        policy: str = "query",
        k: int = 3,
        threshold: float | None = None,
        all_statuses: bool = False,
        author_model: str | None = None,
        run_id: int | None = None,
        agent_model: str = "",
        log: bool = True,
        seed: int | None = None,
        statuses: Sequence[str] | None = None,
    ) -> RetrievalResult:
        """Top-``k`` procedures for ``query``; agents get approved ones only by default.

        ``statuses`` (explicit list) overrides ``all_statuses``; ``author_model`` keeps only
        procedures whose current revision was written by that model (memory transfer).
        """
        fn = policy_function(policy)
        flt = Filter(max(k, 0), threshold, resolve_statuses(all_statuses, statuses), author_model)
        # Embed before searching: the model is the slow part of a retrieval.
        vector = self._embed_one(query) if policy in VECTOR_POLICIES and k > 0 else None
        embed = self._embed_one if vector is None else lambda _text: vector
        if self.store.dialect != "postgresql":  # SQLite: the index checks and reads itself
            search = MemorySearch(None, self.index)  # (synced here; no session needed)
            scored = fn(Query(query, seed, flt, search, embed)) if k > 0 else []
            items = load_items(None, scored)
        else:
            with self.store.session() as s:  # one read transaction: search, then load
                scored = fn(Query(query, seed, flt, self.search(s), embed)) if k > 0 else []
                items = load_items(s, scored)
        retrieval_id = None
        if log:
            retrieval_id = log_retrieval(
                self.store, query=query, policy=policy, k=k, items=items,
                run_id=run_id, agent_model=agent_model,
            )  # fmt: skip
        return RetrievalResult(retrieval_id, items)

    def _embed_one(self, text: str) -> np.ndarray:
        return self.embedder.embed_array([text])[0]

    # -- update ---------------------------------------------------------------------------

    def update(
        self,
        trajectory_ids: Sequence[int],
        *,
        policy: str,
        build_policy: str = "script",
        auto_approve: bool = False,
        actor: Actor | None = None,
    ) -> UpdateReport:
        """Apply the update ``policy`` (none, vanilla, validation, reflect) to finished runs;
        planned again (backend calls included) if another writer got in the way.

        What it writes waits for review unless ``auto_approve``, which serves it at once: the
        online loop's own memory. Point that only at an experiment's isolated memory (see
        :mod:`memp_core.experiment`); shared memory is served only what a person approved.
        """
        actor = actor or system("update")
        status = Status.approved if auto_approve else Status.pending_review
        check_writer(actor, "update memory", status)
        return _retrying(
            lambda: _update(
                self.store,
                self.backend,
                self.embedder,
                self.settings,
                trajectory_ids,
                policy=policy,
                build_policy=build_policy,
                auto_approve=auto_approve,
                actor=actor.author,
            )  # fmt: skip
        )

    # -- cold start -----------------------------------------------------------------------

    def cold_start(
        self,
        *,
        top: int = 3,
        policy: str = "script",
        status: Status = Status.pending_review,
        agent_model: str | None = None,
        actor: Actor | None = None,
    ) -> list[ProcedureRevision]:
        """Seed memory from the ``top`` best runs per task type (see :mod:`coldstart`)."""
        from memp_core.coldstart import seed_ids

        actor = actor or system("cold-start")
        check_writer(actor, "seed memory", Status(status))
        ids = seed_ids(self.store, top=top, agent_model=agent_model)
        return self.build(ids, policy=policy, status=status, actor=actor) if ids else []


def check_writer(actor: Actor, action: str, status: Status) -> None:
    """Refuse a write the actor may not make: it needs the reviewer role (a viewer only
    reads), and only a person or the program itself may write procedures agents are served
    (an agent proposes; a person approves)."""
    actor.require(action)
    if status == Status.approved and actor.kind == "agent":
        raise PermissionDeniedError(
            f"{actor.author} cannot write approved procedures: what agents propose waits "
            "for a reviewer (build with status pending_review)"
        )


def _retrying(write: Callable[[], T]) -> T:
    """Run a plan-then-write step again when a concurrent writer made its plan stale; a
    short random pause lets writers that keep meeting on one procedure fall out of step."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return write()
        except (ConflictError, DeadlockError):
            if attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.0, 0.02 * attempt))
    raise AssertionError("unreachable")
