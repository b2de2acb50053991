"""The one writer: a staged import in, ``Run`` / ``Trajectory`` / ``Step`` / procedure rows out.

It runs inside the caller's single, short transaction (one import call lands whole or not
at all) and replays what :mod:`memp_core.importers.stage` prepared outside it: runs first,
then trajectories in batches (skipping content hashes the database already holds, so
re-imports are idempotent), then procedures, then the cross-references between them. Each
imported run's per-group curve is computed from the records themselves, so the curve
equals the file's own counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from memp_core.importers.keys import run_key
from memp_core.importers.procedures import ProcedureWriter
from memp_core.importers.records import RunRecord
from memp_core.importers.report import ImportReport
from memp_core.importers.stage import (
    STEP_COLUMNS,
    Group,
    Staged,
    StagedTrajectory,
    content_hash,
    flag_steps,
)
from memp_core.models import Run, Step, Trajectory, utcnow

__all__ = ["ImportReport", "Writer", "content_hash", "curve", "flag_steps"]


@dataclass
class _RunState:
    row_id: int | None  # None: the run is already stored (duplicate)
    record: RunRecord


class Writer:
    """Replays a :class:`Staged` import through one session (the caller commits)."""

    def __init__(
        self,
        s: Session,
        report: ImportReport,
        *,
        author: str,
        restore: bool = False,
        source: str | None = None,
    ) -> None:
        self.s = s
        self.report = report
        self.source = source
        self._runs: dict[str, _RunState] = {}  # by fingerprint
        self._run_ids_by_key: dict[str, int] = {}
        self._stored_runs: dict[str, int] | None = None  # loaded on first lookup
        self._missing_runs: set[str] = set()
        self.procedures = ProcedureWriter(s, report, author=author, restore=restore)

    def write(self, staged: Staged) -> None:
        """Everything staged, in dependency order: runs, trajectories, procedures, links."""
        for rec, fmt in staged.runs:
            self.add_run(rec, fmt)
        for batch in staged.trajectories.batches():
            self._insert(batch)
        for procedures in staged.procedures.batches():
            for rec, file in procedures:
                self.report.warnings.extend(self.procedures.add(rec, file))
        self.report.warnings.extend(self._link())
        self._finish(staged.groups)

    # -- runs -------------------------------------------------------------------------------

    def add_run(self, rec: RunRecord, fmt: str) -> int:
        """Create the run unless one with the same fingerprint exists; returns its id."""
        existing = self.find_run(rec.fingerprint)
        row_id = existing
        if existing is None:
            fields = dict(rec.preserved or {})
            fields.setdefault("created_at", utcnow())
            run = Run(
                **{
                    "name": rec.name,
                    "kind": "import",
                    "agent": rec.agent,
                    "environment": rec.environment,
                    "status": "done",
                    "source": f"{self.source or 'import:' + fmt}:{rec.source_file}",
                    "config": {**rec.config, "fingerprint": rec.fingerprint},
                    "finished_at": utcnow(),
                    **fields,
                }
            )
            self.s.add(run)
            self.s.flush()
            row_id = run.id
            self.report.runs += 1
        assert row_id is not None
        self._runs[rec.fingerprint] = _RunState(row_id if existing is None else None, rec)
        self._run_ids_by_key[rec.fingerprint] = row_id
        return row_id

    def find_run(self, key: str) -> int | None:
        """The stored run with this fingerprint (imported logs) or export key, if any."""
        if key in self._run_ids_by_key:
            return self._run_ids_by_key[key]
        if self._stored_runs is None:
            self._stored_runs = {}
            for run in self.s.exec(select(Run)).all():
                assert run.id is not None
                self._stored_runs[run_key(run)] = run.id
                fingerprint = (run.config or {}).get("fingerprint")
                if isinstance(fingerprint, str):
                    self._stored_runs[fingerprint] = run.id
        return self._stored_runs.get(key)

    def _run_id(self, t: StagedTrajectory) -> int | None:
        if t.run is not None:
            return self._run_ids_by_key.get(t.run)
        if t.run_key is None:
            return None
        run_id = self.find_run(t.run_key)
        if run_id is None and t.run_key not in self._missing_runs:
            self._missing_runs.add(t.run_key)
            self.report.warnings.append(
                f"{t.loc}: run {t.run_key} is neither in this import nor in the "
                "database; its trajectories are imported without a run"
            )
        return run_id

    # -- trajectories -----------------------------------------------------------------------

    def _insert(self, batch: list[StagedTrajectory]) -> None:
        """Insert one staged batch, skipping hashes the database already holds.

        Plain executemany table inserts, not ORM objects (building a SQLModel instance per
        step costs more than the insert itself), and no RETURNING: SQLite answers that one
        row at a time. The new ids are read back by content hash (unique), one query.
        """
        hashes = [t.row["content_hash"] for t in batch]
        stored = set(
            self.s.exec(
                select(Trajectory.content_hash).where(col(Trajectory.content_hash).in_(hashes))
            ).all()
        )
        fresh = [t for t in batch if t.row["content_hash"] not in stored]
        self.report.duplicates_skipped += len(batch) - len(fresh)
        if not fresh:
            return
        rows: list[dict[str, Any]] = [{**t.row, "run_id": self._run_id(t)} for t in fresh]
        self.s.exec(insert(Trajectory.__table__), params=rows)  # type: ignore[attr-defined]
        new_hashes = [t.row["content_hash"] for t in fresh]
        ids = dict(
            self.s.exec(
                select(Trajectory.content_hash, Trajectory.id).where(
                    col(Trajectory.content_hash).in_(new_hashes)
                )
            ).all()
        )
        step_rows: list[tuple[Any, ...]] = []
        for t in fresh:
            digest = t.row["content_hash"]
            traj_id = ids[digest]
            step_rows.extend((traj_id, *st) for st in t.steps)
            success = t.row["success"]  # None: unknown, counted as neither
            self.report.trajectories += 1
            self.report.succeeded += success is True
            self.report.failed += success is False
            self.report.steps += len(t.steps)
            # Only rows written now are linked: a file never re-points a stored trajectory.
            if t.procedure_ref is not None:
                self.procedures.refs.append((digest, t.procedure_ref))
        if step_rows:
            self._insert_steps(step_rows)

    def _insert_steps(self, rows: list[tuple[Any, ...]]) -> None:
        """The driver's own executemany: steps are the bulk of a log (four per trajectory and
        more), and every value is already a plain int, str or bool."""
        conn = self.s.connection()
        dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(n) for n in ("trajectory_id", *STEP_COLUMNS))
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        table = quote(Step.__tablename__)  # type: ignore[arg-type]
        sql = (
            f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * (1 + len(STEP_COLUMNS)))})"
        )
        conn.exec_driver_sql(sql, rows)

    # -- end --------------------------------------------------------------------------------

    def _link(self) -> list[str]:
        """Resolve cross-references once everything is written; returns warnings."""
        missing = self.procedures.link_trajectories()
        self.procedures.resolve_audit()
        unmerged = self.procedures.resolve_merges()
        return [
            f"trajectory refers to procedure revision {ref}, which is not in this database"
            for ref in missing
        ] + [
            f"procedure {key} was merged into {into}, which is not in this database: "
            "it keeps status merged without a pointer"
            for key, into in unmerged
        ]

    def _finish(self, groups: dict[str, dict[int, Group]]) -> None:
        for fingerprint, state in self._runs.items():
            if state.row_id is None:
                continue
            run = self.s.get(Run, state.row_id)
            assert run is not None
            if state.record.metrics is None:
                run.metrics = curve(groups.get(fingerprint, {}))
                run.n_groups = len(run.metrics)
                run.n_tasks = max((g["tasks"] for g in run.metrics), default=0)
            self.s.add(run)
        self.s.flush()


def curve(groups: dict[int, Group]) -> list[dict[str, Any]]:
    """Per-group metrics in group order, as ``Run.metrics`` stores them.

    The success rate is over the tasks with a recorded outcome (None when none has one);
    ``unknown`` counts the others, so an unknown outcome never reads as a failure.
    """
    out: list[dict[str, Any]] = []
    for index in sorted(groups):
        g = groups[index]
        judged = g.tasks - g.unknown
        out.append(
            {
                "index": index,
                "tasks": g.tasks,
                "successes": g.successes,
                "unknown": g.unknown,
                "success_rate": g.successes / judged if judged else None,
                # Outcome-only records (no steps) say nothing about episode length.
                "mean_steps": g.steps / g.with_steps if g.with_steps else None,
                "tokens": g.tokens or None,
            }
        )
    return out
