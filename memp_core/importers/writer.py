"""The one writer: typed records in, ``Run`` / ``Trajectory`` / ``Step`` rows out.

It runs inside the caller's single transaction (one import call lands whole or not at all),
writes trajectories in batches so a large log needs bounded memory, skips records whose
content hash is already stored (idempotent re-imports), and computes each imported run's
per-group curve from the records themselves, so the curve equals the file's own counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from memp_core.importers.keys import canonical, run_key, sha256
from memp_core.importers.procedures import ProcedureWriter
from memp_core.importers.records import ProcedureRecord, RunRecord, StepRecord, TrajectoryRecord
from memp_core.models import Run, Step, Trajectory, utcnow

BATCH = 500
ERROR_OBSERVATIONS = ("nothing happens.",)
ERROR_PREFIXES = ("invalid action",)


@dataclass
class ImportReport:
    """What one import call did (counts are for this call only)."""

    trajectories: int = 0
    succeeded: int = 0
    failed: int = 0
    steps: int = 0
    duplicates_skipped: int = 0
    runs: int = 0
    procedures: int = 0
    revisions: int = 0
    procedures_skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "trajectories": self.trajectories,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "steps": self.steps,
            "duplicates_skipped": self.duplicates_skipped,
            "runs": self.runs,
            "procedures": self.procedures,
            "revisions": self.revisions,
            "procedures_skipped": self.procedures_skipped,
        }


def flag_steps(steps: list[StepRecord]) -> list[tuple[bool, bool]]:
    """(is_error, is_loop) per step; flags a parser already set are kept."""
    flags: list[tuple[bool, bool]] = []
    previous: str | None = None
    for st in steps:
        obs = (st.observation or "").strip().lower()
        err = obs in ERROR_OBSERVATIONS or obs.startswith(ERROR_PREFIXES)
        loop = st.action is not None and st.action == previous
        flags.append(
            (
                err if st.is_error is None else st.is_error,
                loop if st.is_loop is None else st.is_loop,
            )
        )
        if st.action is not None:
            previous = st.action
    return flags


def content_hash(rec: TrajectoryRecord) -> str:
    """The identity of a trajectory: what happened, not which file or format it came in."""
    return sha256(
        canonical(
            {
                "task": rec.task,
                "success": rec.success,
                "environment": rec.environment,
                "steps": [[s.thought, s.action, s.observation] for s in rec.steps],
                "reflections": rec.reflections,
                "reference_answer": rec.reference_answer,
                "salt": rec.hash_salt,
            }
        )
    )


@dataclass
class _Group:
    tasks: int = 0
    successes: int = 0
    steps: int = 0
    with_steps: int = 0
    tokens: int = 0


@dataclass
class _RunState:
    row_id: int | None  # None: the run is already stored (duplicate)
    record: RunRecord
    groups: dict[int, _Group] = field(default_factory=dict)


class Writer:
    """Writes records through one session; call :meth:`finish` before the commit."""

    def __init__(self, s: Session, report: ImportReport, *, source: str | None = None) -> None:
        self.s = s
        self.report = report
        self.source = source
        self._pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        self._seen: set[str] = set()
        self._runs: dict[int, _RunState] = {}
        self._run_ids_by_key: dict[str, int] = {}
        self._stored_runs: dict[str, int] | None = None  # loaded on first lookup
        self._missing_runs: set[str] = set()
        self.procedures = ProcedureWriter(s, report)

    # -- runs -------------------------------------------------------------------------------

    def add_run(self, rec: RunRecord, fmt: str) -> int | None:
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
        self._runs[id(rec)] = _RunState(row_id if existing is None else None, rec)
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

    # -- trajectories -----------------------------------------------------------------------

    def add_trajectory(self, rec: TrajectoryRecord, fmt: str, path: str) -> None:
        digest = rec.content_hash or content_hash(rec)
        run_state = self._runs.get(id(rec.run)) if rec.run is not None else None
        if run_state is not None and rec.group_index is not None:
            g = run_state.groups.setdefault(rec.group_index, _Group())
            g.tasks += 1
            g.successes += int(rec.success)
            g.steps += len(rec.steps)
            g.with_steps += int(bool(rec.steps))
            g.tokens += rec.token_count
        if digest in self._seen:
            self.report.duplicates_skipped += 1
            return
        self._seen.add(digest)
        run_id = None
        if rec.run is not None:
            run_id = self._run_ids_by_key.get(rec.run.fingerprint)
        elif rec.run_key is not None:
            run_id = self.find_run(rec.run_key)
            if run_id is None and rec.run_key not in self._missing_runs:
                self._missing_runs.add(rec.run_key)
                self.report.warnings.append(
                    f"{path}:{rec.where}: run {rec.run_key} is neither in this import nor in the "
                    "database; its trajectories are imported without a run"
                )
        flags = flag_steps(rec.steps)
        row: dict[str, Any] = {
            "task": rec.task,
            "task_type": rec.task_type,
            "environment": rec.environment,
            "source": rec.source or self.source or f"import:{fmt}",
            "source_file": rec.source_file if rec.preserved or rec.source_file else path,
            "agent_model": rec.agent_model,
            "success": rec.success,
            "reward": rec.reward,
            "step_count": rec.step_count if rec.step_count is not None else len(rec.steps),
            "token_count": rec.token_count,
            "run_id": run_id,
            "group_index": rec.group_index,
            "facts": rec.facts,
            "reflections": rec.reflections,
            "reference_answer": rec.reference_answer,
            "procedure_revision_id": None,
            "content_hash": digest,
            "created_at": rec.created_at or utcnow(),
        }
        steps = [
            {
                "index": i,
                "thought": st.thought,
                "action": st.action,
                "observation": st.observation,
                "is_error": err,
                "is_loop": loop,
            }
            for i, (st, (err, loop)) in enumerate(zip(rec.steps, flags, strict=True))
        ]
        self._pending.append((row, steps))
        if rec.procedure_ref is not None:
            self.procedures.refs.append((digest, rec.procedure_ref))
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Insert the pending batch, skipping hashes the database already holds.

        Plain table inserts (executemany with RETURNING), not ORM objects: building a
        SQLModel instance per step costs more than the insert itself on large logs.
        """
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        hashes = [row["content_hash"] for row, _ in batch]
        stored = set(
            self.s.exec(
                select(Trajectory.content_hash).where(col(Trajectory.content_hash).in_(hashes))
            ).all()
        )
        fresh = [(row, steps) for row, steps in batch if row["content_hash"] not in stored]
        self.report.duplicates_skipped += len(batch) - len(fresh)
        if not fresh:
            return
        table = Trajectory.__table__  # type: ignore[attr-defined]
        ids = self.s.exec(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            params=[row for row, _ in fresh],
        ).all()
        step_rows: list[dict[str, Any]] = []
        for (row, steps), (traj_id,) in zip(fresh, ids, strict=True):
            step_rows.extend({**st, "trajectory_id": traj_id} for st in steps)
            self.report.trajectories += 1
            self.report.succeeded += int(row["success"])
            self.report.failed += int(not row["success"])
            self.report.steps += len(steps)
        if step_rows:
            self.s.exec(insert(Step.__table__), params=step_rows)  # type: ignore[attr-defined]

    # -- end --------------------------------------------------------------------------------

    def add_procedure(self, rec: ProcedureRecord) -> list[str]:
        self.flush()  # evidence refers to trajectories written earlier in this call
        return self.procedures.add(rec)

    def link(self) -> list[str]:
        """Resolve cross-references once everything is written; returns warnings."""
        self.flush()
        missing = self.procedures.link_trajectories()
        self.procedures.resolve_audit()
        return [
            f"trajectory refers to procedure revision {ref}, which is not in this database"
            for ref in missing
        ]

    def finish(self) -> None:
        self.flush()
        for state in self._runs.values():
            if state.row_id is None:
                continue
            run = self.s.get(Run, state.row_id)
            assert run is not None
            if state.record.metrics is None:
                run.metrics = curve(state.groups)
                run.n_groups = len(run.metrics)
                run.n_tasks = max((g["tasks"] for g in run.metrics), default=0)
            self.s.add(run)
        self.s.flush()


def curve(groups: dict[int, _Group]) -> list[dict[str, Any]]:
    """Per-group metrics in group order, as ``Run.metrics`` stores them."""
    out: list[dict[str, Any]] = []
    for index in sorted(groups):
        g = groups[index]
        out.append(
            {
                "index": index,
                "tasks": g.tasks,
                "successes": g.successes,
                "success_rate": g.successes / g.tasks if g.tasks else 0.0,
                # Outcome-only records (no steps) say nothing about episode length.
                "mean_steps": g.steps / g.with_steps if g.with_steps else None,
                "tokens": g.tokens or None,
            }
        )
    return out
