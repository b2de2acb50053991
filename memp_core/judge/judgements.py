"""Judgements: judging the runs whose outcome is unknown, reading them, and a person's review.

- :func:`judge_unknown` runs a judge over trajectories with ``success`` None and stores one
  :class:`~memp_core.models.Judgement` per verdict (verdict, confidence, rationale, backend,
  model, who ran it, when) with an audit event. The trajectory keeps ``success=None``: what
  was recorded stays what was recorded. A trajectory already judged by the same backend and
  model is skipped (and counted as skipped), so re-running adds nothing twice.
- :func:`review_judgement`: a person (reviewer or admin, never an agent or the program)
  confirms a judgement or overrides it with another verdict; audited with before and after.
- :func:`judge_input` is the one place a stored run becomes what a judge reads; it leaves
  out the recorded outcome, the reward, the recorded ending and the reflections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from memp_core.actor import Actor
from memp_core.errors import NotFoundError
from memp_core.judge import Judge, JudgeInput
from memp_core.llm import StepView
from memp_core.models import Judgement, Step, Trajectory, utcnow
from memp_core.outcomes import parse_outcome
from memp_core.store import Store
from memp_core.vocab import JudgementReview, Verdict

BATCH = 50  # trajectories read, judged and written per transaction
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class JudgeSummary:
    """What one `memp judge` did."""

    backend: str
    model: str
    candidates: int  # unknown-outcome trajectories matching the filter
    skipped: int  # already judged by this backend and model
    left: int  # not judged this time because of ``limit``
    judged: int  # got a success or failure verdict
    abstained: int  # got "unknown"
    verdicts: dict[str, int] = field(default_factory=dict)
    judgement_ids: list[int] = field(default_factory=list)


def judge_input(traj: Trajectory, steps: Sequence[Step]) -> JudgeInput:
    """What a judge may read of a stored run. Never ``success``, ``reward``, the recorded
    outcome or ending (``facts``), the reflections or the step flags: each carries or hints
    at the verdict the judge is asked for."""
    facts = traj.facts or {}
    return JudgeInput(
        task=traj.task,
        steps=[StepView(st.action or "", st.observation or "", st.thought or "") for st in steps],
        environment=traj.environment,
        task_type=traj.task_type,
        initial_observation=str(facts.get("initial_observation") or ""),
        reference_answer=traj.reference_answer or "",
        trajectory_id=traj.id,
    )


def unknown_ids(store: Store, *, source: str | None = None, limit: int | None = None) -> list[int]:
    """Trajectories with no recorded outcome (oldest first), optionally of one source."""
    conds = [col(Trajectory.success).is_(None)]
    if source:
        conds.append(col(Trajectory.source) == source)
    query = select(Trajectory.id).where(*conds).order_by(col(Trajectory.id))
    if limit is not None:
        query = query.limit(limit)
    with store.session() as s:
        return [int(i or 0) for i in s.exec(query).all()]


def already_judged(store: Store, ids: Sequence[int], backend: str, model: str) -> set[int]:
    """Which of these trajectories this backend and model judged before."""
    done: set[int] = set()
    with store.session() as s:
        for i in range(0, len(ids), 500):
            done.update(
                s.exec(
                    select(Judgement.trajectory_id).where(
                        col(Judgement.trajectory_id).in_(list(ids[i : i + 500])),
                        Judgement.backend == backend,
                        Judgement.model == model,
                    )
                ).all()
            )
    return done


def judge_unknown(
    store: Store,
    judge: Judge,
    *,
    actor: Actor,
    source: str | None = None,
    limit: int | None = None,
    trajectory_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> JudgeSummary:
    """Judge the trajectories whose outcome is unknown (``trajectory_ids``: only those of
    them); at most ``limit`` new judgements. Each verdict is one Judgement and one audit
    event naming ``actor``, who needs the reviewer role (a judgement is a write)."""
    actor.require("judge trajectories")
    ids = unknown_ids(store, source=source)
    if trajectory_ids is not None:
        wanted = set(trajectory_ids)
        ids = [i for i in ids if i in wanted]
    done = already_judged(store, ids, judge.name, judge.model)
    todo = [i for i in ids if i not in done]
    if limit is not None:
        todo = todo[: max(limit, 0)]
    verdicts: dict[str, int] = {v.value: 0 for v in Verdict}
    made: list[int] = []
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        made += _judge_batch(store, judge, batch, actor, verdicts)
        if progress is not None:
            progress(start + len(batch), len(todo))
    abstained = verdicts[Verdict.unknown.value]
    return JudgeSummary(
        backend=judge.name, model=judge.model, candidates=len(ids), skipped=len(done),
        left=len(ids) - len(done) - len(todo), judged=len(made) - abstained,
        abstained=abstained, verdicts=verdicts, judgement_ids=made,
    )  # fmt: skip


def _judge_batch(
    store: Store, judge: Judge, ids: list[int], actor: Actor, verdicts: dict[str, int]
) -> list[int]:
    """Read a batch, judge it outside any transaction (a model call may take seconds), then
    write its judgements in one transaction."""
    with store.session() as s:
        trajs = list(s.exec(select(Trajectory).where(col(Trajectory.id).in_(ids))).all())
        steps: dict[int, list[Step]] = {i: [] for i in ids}
        for st in s.exec(
            select(Step).where(col(Step.trajectory_id).in_(ids)).order_by(col(Step.index))
        ):
            steps[st.trajectory_id].append(st)
    results = [(t, judge.judge(judge_input(t, steps[int(t.id or 0)]))) for t in trajs]
    made: list[int] = []
    with store.transaction() as s:
        for traj, v in results:
            row = Judgement(
                trajectory_id=int(traj.id or 0), verdict=v.verdict.value,
                confidence=round(float(v.confidence), 4), rationale=v.rationale,
                backend=judge.name, model=judge.model, actor=actor.author,
            )  # fmt: skip
            s.add(row)
            s.flush()
            store.audit(
                s, actor.author, "judge", "trajectory", traj.id, judgement_id=row.id,
                verdict=row.verdict, confidence=row.confidence, backend=row.backend,
                model=row.model,
            )  # fmt: skip
            verdicts[row.verdict] += 1
            made.append(int(row.id or 0))
    return made


def judgements_of(store: Store, trajectory_id: int) -> list[Judgement]:
    """A trajectory's judgements, newest first."""
    with store.session() as s:
        return list(
            s.exec(
                select(Judgement)
                .where(Judgement.trajectory_id == trajectory_id)
                .order_by(col(Judgement.id).desc())
            ).all()
        )


def review_judgement(
    store: Store, judgement_id: int, *, actor: Actor, verdict: str | None = None, note: str = ""
) -> Judgement:
    """A person confirms a judgement (``verdict`` None or the judge's own) or overrides it
    with another verdict. Only a person with the reviewer role or stronger may; the audit
    event keeps the judge's verdict, the review before and the one after."""
    actor.require_person("review judgements")
    with store.transaction() as s:
        row = _get(s, judgement_id)
        settled = parse_outcome(verdict) if verdict is not None else row.verdict
        review = JudgementReview.confirmed if settled == row.verdict else JudgementReview.overridden
        before = {"review": row.review, "reviewed_verdict": row.reviewed_verdict,
                  "reviewed_by": row.reviewed_by}  # fmt: skip
        row.review = review.value
        row.reviewed_verdict = settled
        row.reviewed_by = actor.author
        row.reviewed_at = utcnow()
        s.add(row)
        store.audit(
            s, actor.author, f"judgement_{review.value}", "judgement", row.id,
            trajectory_id=row.trajectory_id, judged=row.verdict, settled=settled,
            before=before, note=note.strip(),
        )  # fmt: skip
        s.flush()
        s.refresh(row)
        s.expunge(row)
    return row


def _get(s: Session, judgement_id: int) -> Judgement:
    row = s.get(Judgement, judgement_id)
    if row is None:
        raise NotFoundError(f"Judgement {judgement_id} not found")
    return row


def latest_judgements(store: Store, trajectory_ids: Sequence[int]) -> dict[int, Judgement]:
    """For each of these trajectories its judgement to show first: the latest reviewed one,
    else the newest (trajectories never judged are absent)."""
    out: dict[int, Judgement] = {}
    ids = list(dict.fromkeys(int(i) for i in trajectory_ids))
    with store.session() as s:
        for i in range(0, len(ids), 500):
            rows = s.exec(
                select(Judgement)
                .where(col(Judgement.trajectory_id).in_(ids[i : i + 500]))
                .order_by(col(Judgement.id))
            ).all()
            for j in rows:
                best = out.get(j.trajectory_id)
                if best is None or j.review is not None or best.review is None:
                    out[j.trajectory_id] = j
    return out
