"""Conditions: the runs that differ only by seed, averaged, with a band for their spread.

A condition is named by :func:`memp_core.curves.condition_of`. Its curve is the mean of its
seeds' curve points per group (each seed weighs the same), with a band for their spread
(min..max, or mean ± 1 s.d.) where two or more seeds have the group. This module also picks
the comparison the Learning curves page opens on and sums each condition up in one row.
Run-level points live in :mod:`memp_core.curves`; memory-change markers in
:mod:`memp_core.markers`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from memp_core.curves import CurvePoint, condition_of, condition_parts, policy_of
from memp_core.errors import ConfigError
from memp_core.models import Run

POLICY_ORDER = ("none", "vanilla", "validation", "reflect")
SPREADS = {"range": "min–max across seeds", "sd": "mean ± 1 standard deviation"}


@dataclass(frozen=True)
class Condition:
    """The runs that differ only by seed (see :func:`memp_core.curves.condition_of`)."""

    name: str
    parts: tuple[str, ...]  # the memory first, then the setting
    policy: str
    run_ids: tuple[int, ...]
    seeds: tuple[int | None, ...]
    model: str = ""

    @property
    def setting(self) -> str:
        return " · ".join(self.parts[1:])

    @property
    def label(self) -> str:
        n = len(self.run_ids)
        return f"{self.name} ({n} run{'s' if n != 1 else ''})"


@dataclass(frozen=True)
class ConditionPoint:
    """One group of one condition: the mean over the seeds that have a success rate there,
    and their spread (``lo``..``hi``: min..max, or mean ± 1 s.d.)."""

    condition: str
    group: int
    seeds: int  # runs with a success rate in this group (the mean is over these)
    tasks: int
    unknown: int  # tasks with no recorded outcome, in every run of the condition
    success_mean: float | None
    success_lo: float | None
    success_hi: float | None
    steps_mean: float | None
    steps_lo: float | None
    steps_hi: float | None


@dataclass(frozen=True)
class ConditionSummary:
    condition: str
    seeds: int  # the most seeds any of its groups has
    groups: int
    first: float | None  # mean success in its first group with an outcome
    last: float | None
    change: float | None  # last - first, in percentage points
    steps_first: float | None
    steps_last: float | None
    unknown: int


def conditions(runs: Sequence[Run]) -> list[Condition]:
    """The conditions of ``runs``, in the order their first run appears."""
    members: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        members[condition_of(run)].append(run)
    return [
        Condition(name, condition_parts(rs[0]), policy_of(rs[0]), tuple(r.id or 0 for r in rs),
                  tuple(r.seed for r in rs), rs[0].agent_model or rs[0].agent)
        for name, rs in members.items()
    ]  # fmt: skip


def default_conditions(conds: Sequence[Condition]) -> list[Condition]:
    """What the page opens on: the largest comparison, i.e. the setting shared by the most
    conditions (then the most runs; ties go to the first listed), no memory first and then
    the policies in the paper's order."""
    if not conds:
        return []
    family: dict[str, list[Condition]] = defaultdict(list)
    for c in conds:
        family[c.setting].append(c)
    best = max(family.values(), key=lambda cs: (len(cs), sum(len(c.run_ids) for c in cs)))
    rank = {p: i for i, p in enumerate(POLICY_ORDER)}
    return sorted(best, key=lambda c: (rank.get(c.policy, len(rank)), c.parts[0]))


def short_names(conds: Sequence[Condition]) -> tuple[dict[str, str], str]:
    """A legend name per condition (its memory, and what else tells it from the others) and
    the setting they all share, said once."""
    if not conds:
        return {}, ""
    common = set.intersection(*(set(c.parts[1:]) for c in conds))
    names = {c.name: " · ".join([c.parts[0], *(p for p in c.parts[1:] if p not in common)])
             for c in conds}  # fmt: skip
    return names, " · ".join(p for p in conds[0].parts[1:] if p in common)


def condition_curves(points: Sequence[CurvePoint], spread: str = "range") -> list[ConditionPoint]:
    """Per condition and group: the mean over seeds (each seed weighs the same), and the
    spread. A seed whose group has no recorded outcome at all is left out of the mean and its
    tasks counted as unknown, never as successes; a seed that ran fewer groups simply stops
    contributing, so the later groups' ``seeds`` says how many are left."""
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r}; valid: {sorted(SPREADS)}")
    cell: dict[tuple[str, int], list[CurvePoint]] = defaultdict(list)
    order: dict[str, int] = {}
    for p in points:
        cell[(p.condition, p.group)].append(p)
        order.setdefault(p.condition, len(order))
    out = []
    for (cond, group), ps in sorted(cell.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        rate = _spread([p.success_rate for p in ps], spread)
        steps = _spread([p.mean_steps for p in ps], spread)
        out.append(ConditionPoint(
            cond, group, sum(p.success_rate is not None for p in ps), sum(p.tasks for p in ps),
            sum(p.unknown for p in ps), *rate, *steps,
        ))  # fmt: skip
    return out


def bands(points: Sequence[CurvePoint]) -> list[ConditionPoint]:
    """Min..max across runs of the same condition, where two or more have the group."""
    return [c for c in condition_curves(points) if c.seeds >= 2]


def condition_summaries(cpoints: Sequence[ConditionPoint]) -> list[ConditionSummary]:
    by: dict[str, list[ConditionPoint]] = defaultdict(list)
    for p in cpoints:
        by[p.condition].append(p)
    out = []
    for cond, ps in by.items():
        judged = [p for p in ps if p.success_mean is not None]
        first, last = (judged[0], judged[-1]) if judged else (None, None)
        a, b = (first.success_mean, last.success_mean) if first and last else (None, None)
        out.append(ConditionSummary(
            cond, max(p.seeds for p in ps), len(ps), a, b,
            (b - a) * 100 if a is not None and b is not None else None,
            ps[0].steps_mean, ps[-1].steps_mean, sum(p.unknown for p in ps),
        ))  # fmt: skip
    return out


def summaries_frame(rows: Sequence[ConditionSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [asdict(r) for r in rows], columns=list(ConditionSummary.__dataclass_fields__)
    )


def _spread(values: Sequence[float | None], spread: str) -> tuple[float | None, ...]:
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None, None
    mean = sum(xs) / len(xs)
    if spread == "range":
        return mean, min(xs), max(xs)
    sd = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return mean, mean - sd, mean + sd
