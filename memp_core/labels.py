"""Labels: a person records a run's outcome (success, failure, or back to unknown).

Only a person with the reviewer role or stronger may label: an agent's or the program's word
is a report, not a label. Every label is audited with the outcome before and after, and
the source's own words stay readable in ``facts["recorded_outcome"]``. The rule for which
outcome counts (recorded, reviewed judgement, ...) is :mod:`memp_core.outcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import String, func
from sqlalchemy import cast as sql_cast
from sqlmodel import Session, col, select

from memp_core.actor import Actor
from memp_core.errors import NotFoundError
from memp_core.models import Step, Trajectory
from memp_core.outcomes import UNKNOWN, OutcomeError, outcome_of, success_of
from memp_core.store import Store

# What old imports wrote in facts["outcome"] when they stored a success nobody recorded.
ASSUMED_PREFIX = "assumed success"


def label_outcome(
    store: Store, trajectory_id: int, outcome: str, *, actor: Actor, reason: str = ""
) -> Trajectory:
    """A person sets a trajectory's outcome (success, failure or back to unknown); audited.

    Only a person with the reviewer role or stronger may: an agent's or the program's word
    is a report, not a label. The audit event keeps the outcome before and after.
    """
    actor.require_person("label outcomes")
    success = success_of(outcome)
    with store.transaction() as s:
        traj = s.get(Trajectory, trajectory_id)
        if traj is None:
            raise NotFoundError(f"Trajectory {trajectory_id} not found")
        before = outcome_of(traj.success)
        _set(traj, success, f"labelled {outcome_of(success)} by {actor.author}")
        s.add(traj)
        store.audit(
            s, actor.author, "label", "trajectory", trajectory_id,
            before=before, after=outcome_of(success), reason=reason.strip(),
        )  # fmt: skip
        s.flush()
        s.refresh(traj)
        s.expunge(traj)
    return traj


def label_unknown(
    s: Session,
    store: Store,
    trajectory_ids: Sequence[int],
    outcome: str,
    *,
    actor: Actor,
    reason: str,
) -> list[int]:
    """Inside the caller's transaction, label those of these trajectories whose outcome is
    unknown (a recorded verdict is kept: a file's own STATUS line outranks a blanket label).
    Returns the ids labelled; each gets an audit event naming ``actor``."""
    actor.require_person("label outcomes")
    success = success_of(outcome)
    if success is None:
        raise OutcomeError("a label says success or failure; unknown is what it replaces")
    done: list[int] = []
    ids = list(trajectory_ids)
    for i in range(0, len(ids), 500):
        rows = s.exec(
            select(Trajectory).where(
                col(Trajectory.id).in_(ids[i : i + 500]), col(Trajectory.success).is_(None)
            )
        ).all()
        for traj in rows:
            _set(traj, success, f"labelled {outcome_of(success)} by {actor.author}")
            s.add(traj)
            store.audit(
                s, actor.author, "label", "trajectory", traj.id,
                outcome=outcome_of(success), before=UNKNOWN, reason=reason,
            )  # fmt: skip
            done.append(int(traj.id or 0))
    return sorted(done)


IMPORT_REASON = "memp import --label"


def newest_trajectory_id(store: Store) -> int:
    """The highest trajectory id stored now (0 when none): what an import adds comes after."""
    with store.session() as s:
        return int(s.exec(select(func.max(Trajectory.id))).one() or 0)


def label_imported(
    store: Store,
    paths: Sequence[Path | str],
    outcome: str,
    *,
    actor: Actor,
    after_id: int,
    reason: str = IMPORT_REASON,
) -> list[int]:
    """Label the trajectories an import of ``paths`` just added (ids above ``after_id``,
    stored from those paths) whose file recorded no outcome; returns the ids labelled.

    For a person who imports demonstrations they know succeeded (or failed): the label is
    theirs (``actor``), one audit event per trajectory; verdicts the file records are kept.
    """
    actor.require_person("label outcomes")
    success_of(outcome)
    files = [str(p) for p in paths]
    with store.transaction() as s:
        ids = s.exec(
            select(Trajectory.id).where(
                col(Trajectory.id) > after_id,
                col(Trajectory.success).is_(None),
                col(Trajectory.source_file).in_(files),
            )
        ).all()
        return label_unknown(
            s, store, [int(i or 0) for i in ids], outcome, actor=actor, reason=reason
        )


def _set(traj: Trajectory, success: bool | None, note: str) -> None:
    facts = dict(traj.facts or {})
    if "outcome" in facts and "recorded_outcome" not in facts:
        facts["recorded_outcome"] = facts["outcome"]  # what the source said stays readable
    facts["outcome"] = note
    traj.facts = facts
    traj.success = success


def forget_assumed(store: Store, *, actor: Actor) -> int:
    """Turn the successes older imports assumed (``facts.outcome = "assumed success: ..."``)
    back into unknown outcomes; returns how many. Idempotent.

    Their content hashes were computed with ``success: true``; they are recomputed with the
    unknown outcome, so re-importing the same file still finds them (unless a row with that
    hash is already stored, when the old hash is kept and the file's copy is a duplicate).
    """
    from memp_core.importers.records import StepRecord, TrajectoryRecord
    from memp_core.importers.stage import content_hash

    changed = 0
    with store.transaction() as s:
        # Only rows whose facts mention it are read (the JSON's text, on both dialects).
        rows = s.exec(
            select(Trajectory).where(
                col(Trajectory.success).is_(True),
                sql_cast(Trajectory.facts, String).contains(ASSUMED_PREFIX, autoescape=True),
            )
        ).all()
        for traj in rows:
            said = str((traj.facts or {}).get("outcome", ""))
            if not said.startswith(ASSUMED_PREFIX):
                continue
            steps = s.exec(
                select(Step).where(Step.trajectory_id == traj.id).order_by(col(Step.index))
            ).all()
            rec = TrajectoryRecord(
                task=traj.task,
                success=None,
                steps=[StepRecord(st.thought, st.action, st.observation) for st in steps],
                environment=traj.environment,
                reflections=list(traj.reflections or []),
                reference_answer=traj.reference_answer,
            )
            digest = content_hash(rec)
            taken = s.exec(select(Trajectory.id).where(Trajectory.content_hash == digest)).first()
            if taken is None:
                traj.content_hash = digest
            facts = dict(traj.facts)
            facts["outcome"] = f"unknown: {said.split(':', 1)[-1].strip()}"
            traj.facts = facts
            traj.success = None
            traj.reward = None
            s.add(traj)
            changed += 1
        if changed:
            store.audit(
                s, actor.author, "unknown_outcomes", "trajectory", None, trajectories=changed,
                reason="imports no longer assume success where no outcome was recorded",
            )  # fmt: skip
    return changed
