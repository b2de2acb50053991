"""The repository: sessions, transactions and the queries everyone shares.

Every write goes through :meth:`Store.transaction`: a batch lands whole or not at all. The
engine comes from :mod:`memp_core.database` (SQLite in WAL mode with a busy timeout, or
Postgres); lock and I/O failures surface as :class:`~memp_core.errors.StoreError` with a
readable message instead of a traceback.

On a SQLite file a read session runs in one ``BEGIN`` (one snapshot for all its queries: no
torn reads across statements), and a write transaction starts with ``BEGIN IMMEDIATE``,
taking the write lock before its first statement. Lock waits then happen only at that
``BEGIN``, where they are retried with backoff before a
:class:`~memp_core.errors.DatabaseLockedError`; a statement half-way through a transaction
never meets a lock (and never a stale-snapshot ``SQLITE_BUSY``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, col, select

from memp_core.config import Settings, get_settings
from memp_core.database import WRITE_OPTION, is_lock, make_engine, translate
from memp_core.errors import NotFoundError
from memp_core.models import (
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Step,
    Trajectory,
)

T = TypeVar("T", bound=SQLModel)


@dataclass(frozen=True)
class Counts:
    trajectories: int
    succeeded: int
    steps: int
    procedures: int
    revisions: int
    runs: int
    retrievals: int
    by_status: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    unknown: int = 0  # trajectories with no recorded outcome (success None)

    @property
    def judged(self) -> int:
        """Trajectories with a recorded outcome: the success rate's denominator."""
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        """Successes / trajectories with a recorded outcome (unknown ones are left out)."""
        return self.succeeded / self.judged if self.judged else None


@dataclass(frozen=True)
class TrajectoryFilter:
    task_type: str | None = None
    success: bool | None = None  # True / False: that recorded outcome; None: any outcome
    unknown: bool = False  # only trajectories with no recorded outcome (success None)
    run_id: int | None = None
    agent_model: str | None = None
    source: str | None = None
    text: str | None = None
    reporting_agent: str | None = None  # the API key's agent that reported it (memp serve)


@dataclass(frozen=True)
class Page:
    rows: list[Trajectory]
    total: int
    offset: int
    limit: int


class Store:
    """Engine plus the shared queries. Create with :meth:`from_settings` or a URL."""

    def __init__(self, url: str, *, busy_timeout_s: float = 10.0, create: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_s)
        # The same pool; on SQLite its transactions begin with BEGIN IMMEDIATE.
        self.write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        if create:
            self.init()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, create: bool = True) -> Store:
        settings = settings or get_settings()
        return cls(
            settings.resolved_database_url(),
            busy_timeout_s=settings.sqlite_busy_timeout_s,
            create=create,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def init(self) -> str:
        """Create the tables or upgrade an older schema (idempotent); says which it did."""
        from memp_core import migrate  # alembic loads only where a schema is checked

        try:
            return migrate.upgrade(self.engine, self.write_engine)
        except SQLAlchemyError as exc:
            raise translate(exc, self.url) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- sessions -----------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session; errors come out as StoreError."""
        try:
            with Session(self.engine, expire_on_commit=False) as s:
                yield s
        except SQLAlchemyError as exc:
            raise translate(exc, self.url) from exc

    @contextmanager
    def transaction(self, retries: int = 3) -> Iterator[Session]:
        """A write session committed at the end, rolled back whole on any error.

        On SQLite the write lock is taken first (``BEGIN IMMEDIATE``); a lock that outlasts
        the busy timeout there is retried ``retries`` times with backoff, then reported as
        DatabaseLockedError. Nothing of the caller's body has run at that point, so a retry
        is always safe.
        """
        try:
            with Session(self.write_engine, expire_on_commit=False) as s:
                self._begin(s, retries)
                try:
                    yield s
                    s.commit()
                except BaseException:
                    s.rollback()
                    raise
        except SQLAlchemyError as exc:
            raise translate(exc, self.url) from exc

    def _begin(self, s: Session, retries: int) -> None:
        for attempt in range(retries + 1):
            try:
                s.connection()  # runs the begin event: BEGIN IMMEDIATE on SQLite
                return
            except OperationalError as exc:
                if not is_lock(exc) or attempt == retries:
                    raise
                s.rollback()
                time.sleep(0.05 * 2**attempt)

    # -- generic ------------------------------------------------------------------------

    def get(self, model: type[T], obj_id: int) -> T:
        with self.session() as s:
            obj = s.get(model, obj_id)
        if obj is None:
            raise NotFoundError(f"{model.__name__} {obj_id} not found")
        return obj

    def counts(self) -> Counts:
        with self.session() as s:

            def n(model: type[SQLModel]) -> int:
                return int(s.exec(select(func.count()).select_from(model)).one())

            outcomes = {
                ok: int(c)
                for ok, c in s.exec(
                    select(Trajectory.success, func.count()).group_by(Trajectory.success)
                ).all()
            }
            steps = s.exec(select(func.coalesce(func.sum(Trajectory.step_count), 0))).one()
            by_status = {
                status: int(c)
                for status, c in s.exec(
                    select(Procedure.status, func.count()).group_by(Procedure.status)
                ).all()
            }
            return Counts(
                trajectories=sum(outcomes.values()),
                succeeded=outcomes.get(True, 0),
                failed=outcomes.get(False, 0),
                unknown=outcomes.get(None, 0),
                steps=int(steps),
                procedures=n(Procedure),
                revisions=n(ProcedureRevision),
                runs=n(Run),
                retrievals=n(Retrieval),
                by_status=by_status,
            )

    # -- trajectories ---------------------------------------------------------------------

    def add_trajectory(self, s: Session, traj: Trajectory, steps: Sequence[Step]) -> Trajectory:
        """Add a trajectory and its steps inside the caller's transaction."""
        traj.step_count = traj.step_count or len(steps)
        s.add(traj)
        s.flush()
        for i, step in enumerate(steps):
            step.trajectory_id = traj.id  # type: ignore[assignment]
            step.index = i if step.index is None else step.index
            s.add(step)
        return traj

    def existing_hashes(self, hashes: Sequence[str]) -> set[str]:
        """Which of these content hashes are already stored (import dedupe)."""
        found: set[str] = set()
        with self.session() as s:
            for i in range(0, len(hashes), 500):
                chunk = list(hashes[i : i + 500])
                found.update(
                    h
                    for h in s.exec(
                        select(Trajectory.content_hash).where(
                            col(Trajectory.content_hash).in_(chunk)
                        )
                    ).all()
                    if h
                )
        return found

    def list_trajectories(
        self, flt: TrajectoryFilter | None = None, *, offset: int = 0, limit: int = 50
    ) -> Page:
        flt = flt or TrajectoryFilter()
        conds: list[Any] = []
        if flt.task_type:
            conds.append(Trajectory.task_type == flt.task_type)
        if flt.unknown:
            conds.append(col(Trajectory.success).is_(None))
        elif flt.success is not None:
            conds.append(col(Trajectory.success).is_(flt.success))
        if flt.run_id is not None:
            conds.append(Trajectory.run_id == flt.run_id)
        if flt.agent_model:
            conds.append(Trajectory.agent_model == flt.agent_model)
        if flt.source:
            conds.append(Trajectory.source == flt.source)
        if flt.reporting_agent:
            conds.append(Trajectory.reporting_agent == flt.reporting_agent)
        if flt.text:
            # autoescape: a user's "%" or "_" is that character, not a LIKE wildcard
            conds.append(col(Trajectory.task).contains(flt.text, autoescape=True))
        with self.session() as s:
            total = int(s.exec(select(func.count()).select_from(Trajectory).where(*conds)).one())
            rows = s.exec(
                select(Trajectory)
                .where(*conds)
                .order_by(col(Trajectory.id).desc())
                .offset(offset)
                .limit(limit)
            ).all()
        return Page(list(rows), total, offset, limit)

    def steps_of(self, trajectory_id: int) -> list[Step]:
        with self.session() as s:
            return list(
                s.exec(
                    select(Step).where(Step.trajectory_id == trajectory_id).order_by(Step.index)
                ).all()
            )

    def distinct_values(self, column: Any) -> list[str]:
        """Distinct non-empty values of a Trajectory/Procedure column, for filter widgets."""
        with self.session() as s:
            return sorted(v for v in s.exec(select(column).distinct()).all() if v)

    # -- procedures -----------------------------------------------------------------------

    def procedures(
        self, *, status: str | Sequence[str] | None = None, task_type: str | None = None
    ) -> list[Procedure]:
        conds: list[Any] = []
        if isinstance(status, str):
            conds.append(Procedure.status == status)
        elif status:
            conds.append(col(Procedure.status).in_(list(status)))
        if task_type:
            conds.append(Procedure.task_type == task_type)
        with self.session() as s:
            return list(s.exec(select(Procedure).where(*conds).order_by(col(Procedure.id))).all())

    def revisions_of(self, procedure_id: int) -> list[ProcedureRevision]:
        with self.session() as s:
            return list(
                s.exec(
                    select(ProcedureRevision)
                    .where(ProcedureRevision.procedure_id == procedure_id)
                    .order_by(col(ProcedureRevision.id))
                ).all()
            )

    def current_revision(self, procedure: Procedure) -> ProcedureRevision:
        if procedure.current_revision_id is None:
            raise NotFoundError(f"procedure {procedure.id} has no revision")
        return self.get(ProcedureRevision, procedure.current_revision_id)

    # -- runs, retrievals, audit ----------------------------------------------------------

    def runs(self, *, kind: str | None = None) -> list[Run]:
        with self.session() as s:
            q = select(Run).order_by(col(Run.id))
            if kind:
                q = q.where(Run.kind == kind)
            return list(s.exec(q).all())

    def retrievals_for(self, trajectory_id: int) -> list[Retrieval]:
        with self.session() as s:
            return list(
                s.exec(select(Retrieval).where(Retrieval.trajectory_id == trajectory_id)).all()
            )

    @staticmethod
    def audit(
        s: Session,
        actor: str,
        action: str,
        object_type: str,
        object_id: int | None,
        **detail: Any,
    ) -> AuditEvent:
        """Record an audit event inside the caller's transaction."""
        ev = AuditEvent(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail,
        )
        s.add(ev)
        return ev

    def audit_events(
        self, *, limit: int = 200, object_type: str | None = None, object_id: int | None = None
    ) -> list[AuditEvent]:
        with self.session() as s:
            q = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
            if object_type:
                q = q.where(AuditEvent.object_type == object_type)
            if object_id is not None:
                q = q.where(AuditEvent.object_id == object_id)
            return list(s.exec(q).all())
