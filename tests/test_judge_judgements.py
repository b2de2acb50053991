"""`memp judge` stores verdicts beside runs of unknown outcome (never over them), skips what
it judged before, and a person confirms or overrides a judgement, audited; agents never do.
"""

from __future__ import annotations

import getpass
import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from memp_core.actor import Actor, system
from memp_core.cli import app
from memp_core.errors import NotFoundError, PermissionDeniedError
from memp_core.judge.heuristic import HeuristicJudge
from memp_core.judge.judgements import judge_unknown, judgements_of, review_judgement
from memp_core.models import AuditEvent, Judgement, Step, Trajectory
from memp_core.outcomes import OutcomeError
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")
WON = [
    ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
    ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
    ("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
]
LOST = WON[:1]


def add(
    store: Store,
    steps: list[tuple[str, str]],
    success: bool | None = None,
    source: str = "import:alfworld",
    task: str = "heat some egg and put it in diningtable.",
) -> int:
    with store.transaction() as s:
        traj = Trajectory(task=task, environment="alfworld", success=success, source=source)
        rows = [Step(trajectory_id=0, index=i, action=a, observation=o)
                for i, (a, o) in enumerate(steps)]  # fmt: skip
        return int(store.add_trajectory(s, traj, rows).id or 0)


def judge_cli(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["judge", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_memp_judge_stores_a_judgement_per_unknown_run_and_keeps_it_unknown(
    store: Store,
) -> None:
    won, lost = add(store, WON), add(store, LOST)
    recorded = add(store, LOST, success=True)  # a recorded outcome is never judged
    summary = judge_cli()
    assert (summary["candidates"], summary["judged"], summary["abstained"]) == (2, 2, 0)
    assert summary["verdicts"] == {"success": 1, "failure": 1, "unknown": 0}
    for tid, verdict in ((won, "success"), (lost, "failure")):
        (j,) = judgements_of(store, tid)
        assert (j.verdict, j.backend, j.model) == (verdict, "heuristic", "heuristic")
        assert j.actor == f"human:{getpass.getuser()}" and j.review is None
        assert j.rationale and 0 < j.confidence <= 1
        assert store.get(Trajectory, tid).success is None  # what was recorded stays
        (ev,) = store.audit_events(object_type="trajectory", object_id=tid)
        assert (ev.action, ev.actor, ev.detail["judgement_id"]) == ("judge", j.actor, j.id)
        assert ev.detail["verdict"] == verdict
    assert judgements_of(store, recorded) == []


def test_running_again_skips_what_this_backend_judged_and_says_how_many(store: Store) -> None:
    add(store, WON)
    judge_cli()
    add(store, LOST)
    again = judge_cli()
    assert (again["skipped"], again["judged"]) == (1, 1)
    with store.session() as s:
        assert len(s.exec(select(Judgement)).all()) == 2
    result = CliRunner().invoke(app, ["judge"])
    assert result.exit_code == 0, result.output
    assert "2 skipped (judged before by this backend and model)" in result.output


def test_limit_and_source_choose_what_is_judged(store: Store) -> None:
    for _ in range(3):
        add(store, WON, source="import:chat")
    other = add(store, WON, source="simulator")
    first = judge_cli("--source", "import:chat", "--limit", "2")
    assert (first["candidates"], first["judged"], first["left"]) == (3, 2, 1)
    assert judgements_of(store, other) == []


def test_a_viewer_cannot_run_the_judge(store: Store) -> None:
    add(store, WON)
    with pytest.raises(PermissionDeniedError, match="cannot judge trajectories"):
        judge_unknown(store, HeuristicJudge(), actor=Actor("vic", "viewer"))


def judged_one(store: Store, steps: list[tuple[str, str]] = WON) -> Judgement:
    tid = add(store, steps)
    judge_unknown(store, HeuristicJudge(), actor=system("test"))
    (j,) = judgements_of(store, tid)
    return j


def test_a_reviewer_confirms_a_judgement_audited(store: Store) -> None:
    j = judged_one(store)
    done = review_judgement(store, int(j.id or 0), actor=REVIEWER, note="read the steps")
    assert (done.review, done.reviewed_verdict, done.reviewed_by) == (
        "confirmed", "success", "human:rita",
    )  # fmt: skip
    assert done.reviewed_at is not None
    (ev,) = store.audit_events(object_type="judgement", object_id=j.id)
    assert (ev.action, ev.actor) == ("judgement_confirmed", "human:rita")
    assert (ev.detail["judged"], ev.detail["settled"], ev.detail["note"]) == (
        "success", "success", "read the steps",
    )  # fmt: skip
    assert ev.detail["before"]["review"] is None
    assert store.get(Trajectory, j.trajectory_id).success is None


def test_a_reviewer_overrides_a_judgement_and_the_audit_keeps_the_review_before(
    store: Store,
) -> None:
    j = judged_one(store)
    review_judgement(store, int(j.id or 0), actor=REVIEWER)
    done = review_judgement(store, int(j.id or 0), actor=Actor("sam", "admin"), verdict="Failure")
    assert (done.review, done.reviewed_verdict, done.reviewed_by) == (
        "overridden", "failure", "human:sam",
    )  # fmt: skip
    last = store.audit_events(object_type="judgement", object_id=j.id)[0]
    assert last.action == "judgement_overridden" and last.detail["before"]["review"] == "confirmed"


@pytest.mark.parametrize(
    "actor",
    [Actor("bot", "admin", kind="agent"), system("judge", "admin"), Actor("vic", "viewer")],
    ids=["agent", "program", "viewer"],
)
def test_agents_the_program_and_viewers_cannot_review(store: Store, actor: Actor) -> None:
    j = judged_one(store)
    with pytest.raises(PermissionDeniedError):
        review_judgement(store, int(j.id or 0), actor=actor)
    assert store.get(Judgement, int(j.id or 0)).review is None
    with store.session() as s:
        assert not s.exec(select(AuditEvent).where(AuditEvent.object_type == "judgement")).all()


def test_reviewing_a_missing_judgement_or_a_made_up_verdict_is_refused(store: Store) -> None:
    j = judged_one(store)
    with pytest.raises(NotFoundError, match="Judgement 999 not found"):
        review_judgement(store, 999, actor=REVIEWER)
    with pytest.raises(OutcomeError, match="maybe"):
        review_judgement(store, int(j.id or 0), actor=REVIEWER, verdict="maybe")
