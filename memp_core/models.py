"""The SQLModel tables of Memp Studio (one schema for SQLite and Postgres).

Lineage is the product's core: ``ProcedureRevision`` rows are append-only. A reflection, a
human edit or a rollback adds a child revision (``parent_revision_id``) and moves
``Procedure.current_revision_id``; nothing is updated in place or deleted.

``Procedure.embedding`` mirrors the embedding of the procedure's current revision: it is the
column retrieval searches on Postgres (pgvector, HNSW index, cosine). Every ORM flush that
sets ``current_revision_id`` copies it (:func:`_mirror_current_embeddings`), so builds,
merges, reflections, edits, rollbacks and imports keep it in step without knowing of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Column,
    Index,
    LargeBinary,
    UniqueConstraint,
    event,
    func,
    inspect,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType
from sqlmodel import Field, Session, SQLModel

# The vocabularies live in memp_core.vocab (importable without SQLModel); re-exported here.
from memp_core.vocab import JudgementReview as JudgementReview
from memp_core.vocab import Kind as Kind
from memp_core.vocab import Origin as Origin
from memp_core.vocab import Rating as Rating
from memp_core.vocab import Status as Status
from memp_core.vocab import Verdict as Verdict

# The dimension of the searchable embedding column (all-MiniLM-L6-v2). pgvector's HNSW index
# needs a fixed dimension; revisions embedded by a model of another size keep their own
# embedding but are not vector-searchable on Postgres (see memp_core.pgsearch).
EMBEDDING_DIM = 384
HNSW_M = 16  # pgvector's defaults: recall is tuned at query time with hnsw.ef_search
HNSW_EF_CONSTRUCTION = 64
# Candidates an HNSW search keeps (pgvector's default: 40): recall@5 0.94 at 100, 0.98 at
# 150 on 100k embedding-like vectors (`memp bench retrieval --postgres`). Set for every
# connection by memp_core.store, so a search needs no extra round trip.
HNSW_EF_SEARCH = 150
# The task facts retrieval matches (memp_core.search.FACT_WEIGHTS), indexed on Postgres.
FACT_KEYS = ("task_type", "object", "receptacle", "tool")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class EmbeddingType(TypeDecorator[bytes]):
    """float32 little-endian bytes in Python; ``vector(384)`` on Postgres, a BLOB elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PgVector())
        return dialect.type_descriptor(LargeBinary())


class PgVector(UserDefinedType[bytes]):
    """pgvector's ``vector(EMBEDDING_DIM)``. Values go in as pgvector's text form and come
    back in its binary send format (``vector_send``), which decodes about ten times faster
    than the text form: listing procedures costs about the same as on SQLite."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return f"VECTOR({EMBEDDING_DIM})"

    def bind_processor(self, dialect: Dialect) -> Callable[[bytes | None], str | None]:
        def process(value: bytes | None) -> str | None:
            return None if value is None else vector_text(value)

        return process

    def literal_processor(self, dialect: Dialect) -> Callable[[bytes], str]:
        return lambda value: f"'{vector_text(value)}'"  # digits, commas, brackets only

    def column_expression(self, colexpr: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.vector_send(colexpr, type_=self)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], bytes | None]:
        def process(value: Any) -> bytes | None:
            if value is None:
                return None
            # int16 dimension, int16 unused, then big-endian float4s
            return np.frombuffer(bytes(value), dtype=">f4", offset=4).astype("<f4").tobytes()

        return process


def vector_text(blob: bytes) -> str:
    """pgvector's text form of float32 little-endian bytes (exact: repr of each float32)."""
    return "[" + ",".join(map(repr, np.frombuffer(blob, dtype="<f4").tolist())) + "]"


# What an API key may do. An agent never gets a review action: approve, reject, roll back,
# pin and deprecate need `review:admin`, which only a person's tooling should hold.
SCOPES = ("procedures:read", "runs:write", "procedures:propose", "review:admin")


class Run(SQLModel, table=True):
    """An experiment, an online-learning run or an imported multi-trial log."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    kind: str = Field(default="experiment", index=True)  # experiment | online | import
    agent: str = ""  # heuristic | llm | the importing format's agent
    agent_model: str = Field(default="", index=True)
    environment: str = ""
    build_policy: str | None = None
    retrieve_policy: str | None = None
    update_policy: str | None = None  # none | vanilla | validation | reflect
    k: int | None = None
    seed: int | None = None
    task_set: str = ""
    n_tasks: int = 0
    n_groups: int = 0
    status: str = Field(default="running", index=True)  # running | done | failed | cancelled
    source: str = ""  # 'simulator' or 'import:<format>:<file>'
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # One entry per group: {"index", "tasks", "successes", "success_rate", "mean_steps", "tokens"}
    metrics: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None


class Trajectory(SQLModel, table=True):
    """One agent episode on one task."""

    id: int | None = Field(default=None, primary_key=True)
    task: str
    task_type: str = Field(default="", index=True)
    environment: str = Field(default="", index=True)  # household-sim | alfworld | hotpotqa ...
    source: str = Field(default="", index=True)  # simulator | import:<format>
    source_file: str | None = None
    agent_model: str = Field(default="", index=True)
    # True / False as recorded; None: nobody recorded a verdict (unknown, never assumed).
    success: bool | None = Field(default=None, index=True)
    reward: float | None = None
    step_count: int = 0
    token_count: int = 0
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    group_index: int | None = None
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Natural-language reflections attached to this run (Reflexion memory, "New plan: ...").
    reflections: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    reference_answer: str | None = None
    # The procedure revision the agent followed (top retrieved), for "which procedure failed".
    procedure_revision_id: int | None = Field(
        default=None, foreign_key="procedurerevision.id", index=True
    )
    content_hash: str | None = Field(default=None, unique=True, index=True)
    # The agent (API key) that reported it over `memp serve`; "" for runs and imports.
    reporting_agent: str = Field(default="", index=True)
    # The reporter's idempotency key: a repeated report returns the stored trajectory.
    idempotency_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)

    __table_args__ = (
        UniqueConstraint("reporting_agent", "idempotency_key", name="uq_trajectory_report"),
    )


class Step(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    trajectory_id: int = Field(foreign_key="trajectory.id", index=True)
    index: int
    thought: str | None = None
    action: str | None = None
    observation: str | None = None
    is_error: bool = False
    is_loop: bool = False


class Procedure(SQLModel, table=True):
    """A unit of procedural memory; its text lives in its revisions."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    title: str
    task_type: str = Field(default="", index=True)
    status: str = Field(default=Status.pending_review.value, index=True)
    current_revision_id: int | None = Field(default=None, index=True)
    # A newer revision waiting for review while the current one stays served (an approved
    # procedure keeps serving its approved content until a person accepts the proposal).
    proposed_revision_id: int | None = Field(default=None, index=True)
    # Set when a reviewed merge folded this procedure into another (status ``merged``).
    merged_into_id: int | None = Field(default=None, index=True)
    use_count: int = 0
    success_count: int = 0
    pinned: bool = False  # a pinned procedure is never deprecated automatically
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    # The current revision's embedding (EMBEDDING_DIM floats), kept in step on every flush.
    embedding: bytes | None = Field(default=None, sa_column=Column(EmbeddingType()))

    __table_args__ = (
        Index(
            "ix_procedure_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class ProcedureRevision(SQLModel, table=True):
    """An immutable version of a procedure; ``parent_revision_id`` is the lineage edge."""

    id: int | None = Field(default=None, primary_key=True)
    procedure_id: int = Field(foreign_key="procedure.id", index=True)
    parent_revision_id: int | None = Field(
        default=None, foreign_key="procedurerevision.id", index=True
    )
    kind: str = Kind.script.value
    task_text: str = ""  # the task the procedure was built for (part of the retrieval text)
    script: str = ""
    # Verbatim steps (trajectory/proceduralization): [{"thought", "action", "observation"}]
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    origin: str = Field(default=Origin.build.value, index=True)
    author: str = ""  # llm:<model> | heuristic | human:<name>
    model: str = Field(default="", index=True)  # the model that wrote it ("heuristic" offline)
    rationale: str = ""
    evidence_trajectory_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # float32 little-endian bytes of the normalised embedding of the retrieval text
    embedding: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime = Field(default_factory=utcnow, index=True)

    # Postgres: facts/hybrid retrieval matches these keys (``facts ->> 'task_type' = ...``);
    # one B-tree each lets it combine them instead of scanning every revision (0005).
    __table_args__ = tuple(
        Index(f"ix_revision_fact_{key}", text(f"(facts ->> '{key}')")).ddl_if(dialect="postgresql")
        for key in FACT_KEYS
    )


class Retrieval(SQLModel, table=True):
    """What memory an agent was given for one task: query, policy and scored results."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    trajectory_id: int | None = Field(default=None, foreign_key="trajectory.id", index=True)
    query: str
    policy: str
    k: int
    agent_model: str = ""
    agent: str = Field(default="", index=True)  # the API key's agent that asked; "" otherwise
    # [{"procedure_id", "revision_id", "score", "title", "task_type", "matched": {...}}]
    results: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class AuditEvent(SQLModel, table=True):
    """Who did what to which object when (approve, reject, edit, import, ...)."""

    id: int | None = Field(default=None, primary_key=True)
    actor: str
    action: str = Field(index=True)
    object_type: str = Field(index=True)
    object_id: int | None = Field(default=None, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ApiKey(SQLModel, table=True):
    """An agent's key for `memp serve`. Only a salted hash is stored; the key is shown once.

    The key reads ``memp_<prefix>_<secret>``: the prefix finds the row, the secret is checked
    against ``key_hash`` (sha256 of salt and secret, compared in constant time).
    """

    id: int | None = Field(default=None, primary_key=True)
    agent: str = Field(index=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    prefix: str = Field(unique=True, index=True)
    salt: str
    key_hash: str
    created_by: str = ""  # who made it: human:<name>
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Feedback(SQLModel, table=True):
    """A rating of a revision by the agent that was served it (or a person)."""

    id: int | None = Field(default=None, primary_key=True)
    procedure_id: int = Field(foreign_key="procedure.id", index=True)
    revision_id: int = Field(foreign_key="procedurerevision.id", index=True)
    rating: str  # Rating
    reason: str = ""
    trajectory_id: int | None = Field(default=None, foreign_key="trajectory.id")
    actor: str = Field(index=True)  # agent:<name> or human:<name>
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Judgement(SQLModel, table=True):
    """A judge's verdict on a run whose outcome nobody recorded, kept with its reasoning.

    The trajectory keeps ``success=None`` (what was recorded); the judged outcome sits beside
    it until a person confirms or overrides it (``review``). Builds and success rates count
    reviewed judgements, and unreviewed ones only where a setting allows.
    """

    id: int | None = Field(default=None, primary_key=True)
    trajectory_id: int = Field(foreign_key="trajectory.id", index=True)
    verdict: str = Field(index=True)  # Verdict
    confidence: float = 0.0  # 0..1, the judge's own
    rationale: str = ""
    backend: str = ""  # heuristic | openai
    model: str = ""  # the model that judged; "heuristic" offline
    actor: str = ""  # who ran the judge: human:<name> | memp:<what>
    created_at: datetime = Field(default_factory=utcnow, index=True)
    review: str | None = Field(default=None, index=True)  # JudgementReview; None: unreviewed
    reviewed_verdict: str | None = None  # the outcome the person settled on (a Verdict)
    reviewed_by: str | None = None  # human:<name>
    reviewed_at: datetime | None = None


def searchable(blob: bytes | None) -> bytes | None:
    """The blob if it is a finite vector of the searchable column's dimension, else None.

    Anything else stays on its revision but out of search: pgvector refuses NaN and infinity
    (the whole write would fail), and one unusable row must never break retrieval for all.
    """
    if blob is None or len(blob) != 4 * EMBEDDING_DIM:
        return None
    return blob if bool(np.isfinite(np.frombuffer(blob, dtype="<f4")).all()) else None


@event.listens_for(Session, "before_flush")
def _mirror_current_embeddings(session: Session, _context: Any, _instances: Any) -> None:
    """Copy the current revision's embedding onto every procedure whose current revision
    was set or changed in this flush (the revision is already flushed: its id is known)."""
    for obj in [*session.new, *session.dirty]:
        if not isinstance(obj, Procedure):
            continue
        moved = inspect(obj).attrs.current_revision_id.history.has_changes()
        if obj not in session.new and not moved:
            continue
        blob = None
        if obj.current_revision_id is not None:
            with session.no_autoflush:
                rev = session.get(ProcedureRevision, obj.current_revision_id)
            blob = searchable(rev.embedding) if rev is not None else None
        if obj.embedding != blob:
            obj.embedding = blob
