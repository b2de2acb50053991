"""What the Overview page shows: counts, pending reviews, latest runs and alerts.

Alerts point a reviewer at what needs attention before it goes wrong:
- procedures trending toward deprecation: served (not deprecated, not pinned), used at least
  MIN_USES_FOR_ALERT times, and succeeding less than the deprecation threshold plus a margin
  (one failed use is no trend);
- runs whose success is falling: the last groups of a run with memory do clearly worse than
  its best stretch, which usually means a memory change hurt (the Learning curves page shows
  which). A run without memory is a baseline: its ups and downs are the tasks', not memory's.

Success figures count effective outcomes (:mod:`memp_core.outcomes`): the recorded one, else
a reviewed judgement, else an unreviewed one where the setting allows; the rest are unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import case
from sqlmodel import col, select

from memp_core.config import Settings
from memp_core.curves import CurvePoint, curve_points, run_label
from memp_core.models import Procedure, Run, Status
from memp_core.outcomes import Settled, Tally, settled_by_judgements
from memp_core.store import Counts, Store

WARN_MARGIN = 0.15  # alert this far above the deprecation threshold
FALL_DROP = 0.15  # a run "falls" when its last groups are this far below its best stretch
MIN_GROUPS_FOR_TREND = 4
MIN_USES_FOR_ALERT = 3


@dataclass(frozen=True)
class RunCard:
    run: Run
    label: str
    success: list[float]
    steps: list[float]

    @property
    def last_success(self) -> float | None:
        return self.success[-1] if self.success else None


@dataclass(frozen=True)
class ProcedureAlert:
    procedure: Procedure
    success_rate: float
    reason: str


@dataclass(frozen=True)
class RunAlert:
    run: Run
    label: str
    best: float
    recent: float

    @property
    def reason(self) -> str:
        return (
            f"success fell from {self.best:.0%} (best stretch) to {self.recent:.0%} (last groups)"
        )


@dataclass(frozen=True)
class Overview:
    counts: Counts  # succeeded / failed / unknown by effective outcome
    pending: list[Procedure]
    latest_runs: list[RunCard]
    procedure_alerts: list[ProcedureAlert]
    run_alerts: list[RunAlert]
    settled: Settled = Settled()  # of counts' outcomes, those that came from judgements

    @property
    def pending_total(self) -> int:
        return self.counts.by_status.get(Status.pending_review.value, 0)


def latest_runs(store: Store, limit: int) -> list[Run]:
    with store.session() as s:
        return list(s.exec(select(Run).order_by(col(Run.id).desc()).limit(limit)).all())


def pending_reviews(store: Store, limit: int) -> list[Procedure]:
    with store.session() as s:
        return list(
            s.exec(
                select(Procedure)
                .where(Procedure.status == Status.pending_review.value)
                .order_by(col(Procedure.updated_at).desc())
                .limit(limit)
            ).all()
        )


def effective_counts(store: Store, *, count_unreviewed: bool = False) -> tuple[Counts, Settled]:
    """The store's counts with the unknown runs judgements settle moved to their outcome,
    and what they settled (recorded outcomes counted in SQL; judgements read for the rest)."""
    counts = store.counts()
    with store.session() as s:
        extra = settled_by_judgements(s, [], count_unreviewed=count_unreviewed).get((), Settled())
    t = extra.apply(Tally(counts.succeeded, counts.failed, counts.unknown))
    return replace(counts, succeeded=t.successes, failed=t.failures, unknown=t.unknown), extra


def run_cards(
    store: Store, runs: Sequence[Run], *, count_unreviewed: bool = False
) -> list[RunCard]:
    by_run: dict[int, list[CurvePoint]] = defaultdict(list)
    for p in curve_points(store, runs, count_unreviewed=count_unreviewed):
        by_run[p.run_id].append(p)
    cards = []
    for run in runs:
        pts = sorted(by_run.get(run.id or 0, []), key=lambda p: p.group)
        cards.append(
            RunCard(
                run=run,
                label=run_label(run),
                success=[p.success_rate for p in pts if p.success_rate is not None],
                steps=[p.mean_steps for p in pts if p.mean_steps is not None],
            )
        )
    return cards


def uses_memory(run: Run) -> bool:
    """Simulator runs without a retrieve policy are no-memory baselines; an imported log is
    judged by its own trials (Reflexion's memory is its reflections)."""
    return run.kind == "import" or bool(run.retrieve_policy)


def falling(card: RunCard) -> RunAlert | None:
    """A RunAlert when the run's last groups do clearly worse than its best stretch."""
    s = card.success
    if len(s) < MIN_GROUPS_FOR_TREND or not uses_memory(card.run):
        return None
    w = max(1, len(s) // 4)
    recent = sum(s[-w:]) / w
    best = max(sum(s[i : i + w]) / w for i in range(0, len(s) - w))
    if best - recent >= FALL_DROP:
        return RunAlert(card.run, card.label, best, recent)
    return None


def procedure_alerts(store: Store, settings: Settings, limit: int) -> list[ProcedureAlert]:
    """Served procedures whose success rate is below the deprecation threshold + margin."""
    line = settings.deprecate_below + WARN_MARGIN
    rate = Procedure.success_count * 1.0 / Procedure.use_count
    with store.session() as s:
        rows = s.exec(
            select(Procedure)
            .where(
                col(Procedure.status).in_([Status.approved.value, Status.pending_review.value]),
                col(Procedure.pinned).is_(False),
                Procedure.use_count >= MIN_USES_FOR_ALERT,
                Procedure.success_count < line * Procedure.use_count,
            )
            .order_by(case((Procedure.use_count > 0, rate), else_=1.0), col(Procedure.id))
            .limit(limit)
        ).all()
    out = []
    for p in rows:
        r = p.success_count / p.use_count
        if p.use_count < settings.deprecate_min_uses and r < settings.deprecate_below:
            left = settings.deprecate_min_uses - p.use_count
            reason = f"success {r:.0%}; deprecated after {left} more use(s) at this rate"
        elif r < settings.deprecate_below:
            reason = f"success {r:.0%} is below the {settings.deprecate_below:.0%} threshold"
        else:
            reason = f"success {r:.0%}, close to the {settings.deprecate_below:.0%} threshold"
        out.append(ProcedureAlert(p, r, reason))
    return out


def overview(
    store: Store, settings: Settings, *, runs: int = 8, pending: int = 10, alerts: int = 10
) -> Overview:
    """Everything the Overview page shows, in a handful of bounded queries."""
    counted = settings.count_unreviewed_judgements
    cards = run_cards(store, latest_runs(store, max(runs, 30)), count_unreviewed=counted)
    counts, settled = effective_counts(store, count_unreviewed=counted)
    return Overview(
        counts=counts,
        settled=settled,
        pending=pending_reviews(store, pending),
        latest_runs=cards[:runs],
        procedure_alerts=procedure_alerts(store, settings, alerts),
        run_alerts=[a for a in (falling(c) for c in cards) if a is not None][:alerts],
    )
