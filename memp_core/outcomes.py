"""Outcomes: success, failure or unknown, and how a person records one.

A trajectory's ``success`` is True or False when something recorded a verdict (the
environment, the log, a person) and None when nothing did: a few-shot demonstration with no
``STATUS`` line, a chat log with no outcome field, an agent's report without a verdict.
Unknown is never read as a success or a failure: success rates count only the runs with a
recorded outcome (and say how many are unknown beside them), and builds take none of them
until a person labels them (:func:`memp_core.labels.label_outcome`), each label audited with
its before and after.

A judge (memp_core.judge) may read such a run and store a verdict beside it (a
``Judgement``); the recorded outcome stays unknown. :func:`effective_outcomes` is the one rule
builds and success rates use: the recorded outcome if there is one; else the verdict a person
settled on when reviewing a judgement; else, only where the setting
``MEMP_COUNT_UNREVIEWED_JUDGEMENTS`` allows, an unreviewed verdict (when the judges agree);
else unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, cast

from sqlmodel import Session, col, select

from memp_core.errors import MempError
from memp_core.models import Judgement, Trajectory, aware
from memp_core.store import Store

Outcome = Literal["success", "failure", "unknown"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure", "unknown")
UNKNOWN = "unknown"


class OutcomeError(MempError):
    """An outcome other than success, failure or unknown."""


def outcome_of(success: bool | None) -> Outcome:
    """The word for a stored ``success`` value (None reads "unknown", never failure)."""
    if success is None:
        return "unknown"
    return "success" if success else "failure"


def success_of(outcome: str) -> bool | None:
    """The stored value of an outcome word; OutcomeError for anything else."""
    word = outcome.strip().lower()
    if word not in OUTCOMES:
        raise OutcomeError(f"unknown outcome {outcome!r}; valid: {', '.join(OUTCOMES)}")
    return None if word == "unknown" else word == "success"


def parse_outcome(outcome: str) -> Outcome:
    """``outcome`` checked and normalised (``"Success "`` -> ``"success"``)."""
    success_of(outcome)
    return cast(Outcome, outcome.strip().lower())


@dataclass(frozen=True)
class Tally:
    """Successes, failures and unknown outcomes of some runs; the rate is over the judged."""

    successes: int = 0
    failures: int = 0
    unknown: int = 0

    @property
    def runs(self) -> int:
        return self.successes + self.failures + self.unknown

    @property
    def judged(self) -> int:
        """Runs with a recorded outcome: the denominator of the success rate."""
        return self.successes + self.failures

    @property
    def rate(self) -> float | None:
        """Successes / runs with a recorded outcome; None when no outcome was recorded."""
        return self.successes / self.judged if self.judged else None

    def add(self, success: bool | None) -> Tally:
        return Tally(
            self.successes + (success is True),
            self.failures + (success is False),
            self.unknown + (success is None),
        )

    def describe(self) -> str:
        """``"67% of 30 judged (5 unknown)"``; ``"unknown (5 runs, no outcome recorded)"``."""
        if self.rate is None:
            if not self.unknown:
                return "–"
            return f"unknown ({self.unknown:,} runs, no outcome recorded)"
        text = f"{self.rate:.0%} of {self.judged:,} judged"
        return f"{text} ({self.unknown:,} unknown)" if self.unknown else text


def tally(values: Iterable[bool | None]) -> Tally:
    out = Tally()
    for v in values:
        out = out.add(v)
    return out


OutcomeSource = Literal["recorded", "reviewed", "judged", "none"]


@dataclass(frozen=True)
class EffectiveOutcome:
    """A run's outcome for builds and rates, and where it comes from."""

    outcome: Outcome
    source: OutcomeSource  # recorded | reviewed (a person's word on a judgement) | judged
    judgement_id: int | None = None

    @property
    def success(self) -> bool | None:
        return success_of(self.outcome)


class JudgementRow(NamedTuple):
    """The columns of a Judgement the rule reads (read models fetch only these: building
    thousands of ORM objects would cost more than the query)."""

    id: int | None
    verdict: str
    review: str | None
    reviewed_verdict: str | None
    reviewed_at: datetime | None


ROW_COLUMNS = (Judgement.id, Judgement.verdict, Judgement.review, Judgement.reviewed_verdict,
               Judgement.reviewed_at)  # fmt: skip


def resolve_outcome(
    success: bool | None,
    judgements: Sequence[Judgement | JudgementRow],
    *,
    count_unreviewed: bool,
) -> EffectiveOutcome:
    """The rule, for one run: recorded, else reviewed, else (if allowed) judged, else unknown.

    Of several reviewed judgements the latest review wins (a person may change their mind);
    a review that settled on "unknown" stays unknown (a person's word outranks a judge's).
    Unreviewed verdicts count only when allowed and when every judge that gave a verdict
    (abstentions aside) gave the same one: two judges that disagree decide nothing.
    """
    if success is not None:
        return EffectiveOutcome(outcome_of(success), "recorded")
    reviewed = [j for j in judgements if j.review is not None and j.reviewed_at is not None]
    if reviewed:
        last = max(reviewed, key=lambda j: (aware(j.reviewed_at), j.id or 0))  # type: ignore[arg-type]
        word = parse_outcome(last.reviewed_verdict or last.verdict)
        return EffectiveOutcome(word, "reviewed", last.id)
    if count_unreviewed:
        said = [j for j in judgements if j.verdict != UNKNOWN]
        words = {j.verdict for j in said}
        if len(words) == 1:
            latest = max(said, key=lambda j: j.id or 0)
            return EffectiveOutcome(parse_outcome(latest.verdict), "judged", latest.id)
    return EffectiveOutcome("unknown", "none")


def effective_outcomes(
    store: Store, trajectory_ids: Sequence[int], *, count_unreviewed: bool = False
) -> dict[int, EffectiveOutcome]:
    """:func:`resolve_outcome` for many runs at once (two queries per 500 ids).

    ``count_unreviewed``: pass ``settings.count_unreviewed_judgements``.
    """
    ids = list(dict.fromkeys(int(i) for i in trajectory_ids))
    out: dict[int, EffectiveOutcome] = {}
    with store.session() as s:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            recorded = dict(
                s.exec(
                    select(Trajectory.id, Trajectory.success).where(col(Trajectory.id).in_(chunk))
                ).all()
            )
            unknown = [t for t, ok in recorded.items() if ok is None]
            found: dict[int, list[Judgement]] = {int(t or 0): [] for t in unknown}
            if unknown:
                for j in s.exec(select(Judgement).where(col(Judgement.trajectory_id).in_(unknown))):
                    found[j.trajectory_id].append(j)
            for tid, ok in recorded.items():
                judged = found.get(int(tid or 0), [])
                out[int(tid or 0)] = resolve_outcome(ok, judged, count_unreviewed=count_unreviewed)
    return out


def effective_tally(
    store: Store, trajectory_ids: Sequence[int], *, count_unreviewed: bool = False
) -> Tally:
    """Successes, failures and unknowns of these runs by their effective outcomes."""
    found = effective_outcomes(store, trajectory_ids, count_unreviewed=count_unreviewed)
    return tally(e.success for e in found.values())


@dataclass(frozen=True)
class Settled:
    """Unknown runs that judgements settle (by :func:`resolve_outcome`), for a read model to
    add to the rate it counts from recorded outcomes and to say where those outcomes came from.
    """

    successes: int = 0
    failures: int = 0
    by_review: int = 0  # settled by a person's review of a judgement
    by_judge: int = 0  # by an unreviewed verdict (only where the setting allows)

    @property
    def runs(self) -> int:
        return self.successes + self.failures

    def add(self, e: EffectiveOutcome) -> Settled:
        if e.success is None:
            return self
        return Settled(
            self.successes + e.success, self.failures + (not e.success),
            self.by_review + (e.source == "reviewed"), self.by_judge + (e.source == "judged"),
        )  # fmt: skip

    def __add__(self, other: Settled) -> Settled:
        return Settled(
            self.successes + other.successes, self.failures + other.failures,
            self.by_review + other.by_review, self.by_judge + other.by_judge,
        )  # fmt: skip

    def apply(self, t: Tally) -> Tally:
        """``t`` (recorded outcomes) with these runs moved from unknown to their outcome."""
        return Tally(t.successes + self.successes, t.failures + self.failures,
                     t.unknown - self.runs)  # fmt: skip

    def describe(self) -> str:
        """What a rate that adds these includes, for a caption ("3 outcomes from reviewed
        judgements"); "" when nothing was settled."""
        return judgement_note(self.by_review, self.by_judge)


def judgement_note(by_review: int, by_judge: int) -> str:
    """``"3 outcomes from reviewed judgements"`` (and the unreviewed verdicts the setting
    counted); "" when none."""
    n = by_review + by_judge
    if not n:
        return ""
    head = f"{n:,} outcome{'' if n == 1 else 's'} from "
    if not by_judge:
        return head + "reviewed judgements"
    setting = "(MEMP_COUNT_UNREVIEWED_JUDGEMENTS is on)"
    if not by_review:
        return head + f"unreviewed judge verdicts {setting}"
    return head + f"judgements: {by_review:,} reviewed, {by_judge:,} unreviewed {setting}"


def settled_by_judgements(
    s: Session, keys: Sequence[Any], *where: Any, count_unreviewed: bool
) -> dict[tuple[Any, ...], Settled]:
    """Per value of ``keys`` (Trajectory columns), what judgements settle among the unknown-
    outcome trajectories matching ``where``: one query joining Judgement on those runs only,
    each run then resolved by :func:`resolve_outcome` (the one rule; no SQL copy of it).

    Read models count recorded outcomes with a SQL aggregate and add this to it (the rows
    read are judgements, never the recorded runs). Without ``count_unreviewed`` only reviewed
    judgements are read: the rule looks at nothing else then.
    """
    query = (
        select(Judgement.trajectory_id, *ROW_COLUMNS, *keys)
        .join(Trajectory, col(Trajectory.id) == col(Judgement.trajectory_id))
        .where(col(Trajectory.success).is_(None), *where)
    )
    if not count_unreviewed:
        query = query.where(col(Judgement.review).is_not(None))
    runs: dict[int, tuple[tuple[Any, ...], list[JudgementRow]]] = {}
    width = len(ROW_COLUMNS)
    for tid, *row in s.exec(query):
        judged = JudgementRow(*row[:width])
        runs.setdefault(int(tid), (tuple(row[width:]), []))[1].append(judged)
    out: dict[tuple[Any, ...], Settled] = {}
    for key, judgements in runs.values():
        e = resolve_outcome(None, judgements, count_unreviewed=count_unreviewed)
        if e.success is not None:
            out[key] = out.get(key, Settled()).add(e)
    return out
