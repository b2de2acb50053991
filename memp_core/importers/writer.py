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
from sqlmodel import Session, col, select, update

from memp_core.importers.keys import canonical, run_key, sha256
from memp_core.importers.records import (
    ProcedureRecord,
    RevisionRecord,
    RunRecord,
    StepRecord,
    TrajectoryRecord,
)
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Run, Step, Trajectory, utcnow

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
        self.procedure_refs: list[tuple[str, tuple[str, int]]] = []
        self._audit_to_resolve: list[int] = []

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

    def find_run(self, fingerprint: str) -> int | None:
        if fingerprint in self._run_ids_by_key:
            return self._run_ids_by_key[fingerprint]
        # Imported runs carry their log's fingerprint; exported runs are known by their key.
        for run in self.s.exec(select(Run)).all():
            if (run.config or {}).get("fingerprint") == fingerprint or run_key(run) == fingerprint:
                return run.id
        return None

    def run_id_for_key(self, key: str) -> int | None:
        return self._run_ids_by_key.get(key)

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
            run_id = self._run_ids_by_key.get(rec.run_key)
        flags = flag_steps(rec.steps)
        row: dict[str, Any] = {
            "task": rec.task,
            "task_type": rec.task_type,
            "environment": rec.environment,
            "source": rec.source or self.source or f"import:{fmt}",
            "source_file": rec.source_file if rec.source_file is not None else path,
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
            self.procedure_refs.append((digest, rec.procedure_ref))
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

    # -- procedures (the jsonl format) -------------------------------------------------------

    def add_procedure(self, rec: ProcedureRecord) -> list[str]:
        """Write a procedure with its whole lineage and audit trail; returns warnings."""
        self.flush()  # evidence refers to trajectories written earlier in this call
        exists = self.s.exec(select(Procedure.id).where(Procedure.key == rec.key)).first()
        if exists is not None:
            self.report.procedures_skipped += 1
            return []
        proc = Procedure(key=rec.key, **rec.fields)
        self.s.add(proc)
        self.s.flush()
        assert proc.id is not None
        ids: dict[int, int] = {}
        warnings: list[str] = []
        for rev in sorted(rec.revisions, key=lambda r: r.ordinal):
            row = self._revision_row(proc.id, rev, ids, warnings)
            self.s.add(row)
            self.s.flush()
            assert row.id is not None
            ids[rev.ordinal] = row.id
        proc.current_revision_id = ids.get(rec.current) if rec.current is not None else None
        self.s.add(proc)
        events = [
            AuditEvent(
                actor=ev.actor,
                action=ev.action,
                object_type=ev.object_type,
                object_id=proc.id if ev.revision is None else ids.get(ev.revision),
                detail=ev.detail,
                created_at=ev.created_at or utcnow(),
            )
            for ev in rec.audit
        ]
        self.s.add_all(events)
        self.s.flush()
        # Details may name revisions of procedures later in the file: resolve at the end.
        self._audit_to_resolve.extend(int(ev.id or 0) for ev in events if ev.detail)
        self.report.procedures += 1
        self.report.revisions += len(ids)
        return [f"procedure {rec.key}: {w}" for w in warnings]

    def _revision_row(
        self, procedure_id: int, rev: RevisionRecord, ids: dict[int, int], warnings: list[str]
    ) -> ProcedureRevision:
        evidence: list[int] = []
        if rev.evidence:
            found = dict(
                self.s.exec(
                    select(Trajectory.content_hash, Trajectory.id).where(
                        col(Trajectory.content_hash).in_(rev.evidence)
                    )
                ).all()
            )
            evidence = [found[h] for h in rev.evidence if h in found]  # type: ignore[misc]
            if len(evidence) < len(rev.evidence):
                warnings.append(
                    f"revision {rev.ordinal}: {len(rev.evidence) - len(evidence)} evidence "
                    "trajectories are not in this database (import them too)"
                )
        parent = ids.get(rev.parent) if rev.parent is not None else None
        if rev.parent is not None and parent is None:
            warnings.append(f"revision {rev.ordinal}: parent revision {rev.parent} is missing")
        return ProcedureRevision(
            procedure_id=procedure_id,
            parent_revision_id=parent,
            evidence_trajectory_ids=evidence,
            embedding=rev.embedding,
            **rev.fields,
        )

    def link_procedures(self) -> list[str]:
        """Point imported trajectories at the revisions they followed; returns unresolved refs."""
        self.flush()
        missing: list[str] = []
        for digest, ref in self.procedure_refs:
            rev_id = self._revision_id(*ref)
            if rev_id is None:
                missing.append(f"{ref[0]}#{ref[1]}")
                continue
            self.s.exec(  # type: ignore[call-overload]
                update(Trajectory)
                .where(col(Trajectory.content_hash) == digest)
                .values(procedure_revision_id=rev_id)
            )
        return missing

    def resolve_audit(self) -> None:
        """Turn ``{"$revision": [key, n]}`` / ``{"$trajectory": hash}`` back into row ids."""
        for event_id in self._audit_to_resolve:
            ev = self.s.get(AuditEvent, event_id)
            if ev is None:
                continue
            detail = {
                k: [self._local(v) for v in val] if isinstance(val, list) else self._local(val)
                for k, val in ev.detail.items()
            }
            if detail != ev.detail:
                ev.detail = detail
                self.s.add(ev)
        self.s.flush()

    def _local(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ref = value.get("$revision")
            if isinstance(ref, list) and len(ref) == 2:
                key, n = ref
                if isinstance(key, str) and isinstance(n, int):
                    return self._revision_id(key, n) or value
            digest = value.get("$trajectory")
            if isinstance(digest, str):
                found = self.s.exec(
                    select(Trajectory.id).where(Trajectory.content_hash == digest)
                ).first()
                return found if found is not None else value
        return value

    def _revision_id(self, key: str, ordinal: int) -> int | None:
        proc_id = self.s.exec(select(Procedure.id).where(Procedure.key == key)).first()
        if proc_id is None or ordinal < 1:
            return None
        revs = self.s.exec(
            select(ProcedureRevision.id)
            .where(ProcedureRevision.procedure_id == proc_id)
            .order_by(col(ProcedureRevision.id))
        ).all()
        return revs[ordinal - 1] if ordinal <= len(revs) else None


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
