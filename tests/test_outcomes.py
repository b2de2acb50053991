"""Outcomes are success, failure or unknown; unknown is never assumed, counted or built from.

Every fixture here is a small hand-written log or a trajectory written by the test itself.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import pytest
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from memp_core.actor import Actor, system
from memp_core.build import best_first, load_evidence
from memp_core.cli import app
from memp_core.coldstart import seed_ids
from memp_core.config import Settings
from memp_core.curves import curve_points
from memp_core.debug import failed_and_succeeded
from memp_core.embeddings import Embedder
from memp_core.errors import NotFoundError, PermissionDeniedError
from memp_core.importers import import_paths
from memp_core.importers.export import export
from memp_core.judge.judgements import review_judgement
from memp_core.labels import forget_assumed, label_outcome
from memp_core.llm import get_backend
from memp_core.memory import ProceduralMemory
from memp_core.models import AuditEvent, Judgement, Procedure, Run, Step, Trajectory
from memp_core.outcomes import (
    EffectiveOutcome,
    OutcomeError,
    Tally,
    effective_outcomes,
    effective_tally,
    outcome_of,
    success_of,
)
from memp_core.store import Store, TrajectoryFilter
from memp_core.update import select_reflect, select_vanilla, update

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))
REVIEWER = Actor("rita", "reviewer")
VIEWER = Actor("vic", "viewer")

DEMO = """You are in the middle of a room. Looking quickly around you, you see a cabinet 1, \
a countertop 1, and a microwave 1.
Your task is to: heat some egg and put it in countertop.
> go to countertop 1
On the countertop 1, you see a egg 1.
> take egg 1 from countertop 1
You pick up the egg 1 from the countertop 1.
> heat egg 1 with microwave 1
You heat the egg 1 using the microwave 1.
> put egg 1 in/on countertop 1
You put the egg 1 in/on the countertop 1.
"""

FAILED = """You are in the middle of a room. Looking quickly around you, you see a fridge 1.
Your task is to: cool some apple and put it in fridge.
> go to fridge 1
The fridge 1 is closed.
> cool apple 1 with fridge 1
Nothing happens.
STATUS: FAIL
New plan: I should have taken the apple first.
"""

CHAT = [
    {"role": "user", "content": "Your task is to: clean some mug and put it in cabinet."},
    {"role": "assistant", "content": "Thought: find the mug.\nAction: go to sinkbasin 1"},
    {"role": "user", "content": "Observation: On the sinkbasin 1, you see a mug 1."},
]

# One single-trial log that asks the same question twice, with the same steps each time
# (as Reflexion's HotpotQA logs do): two agents, two episodes.
REPEATED = """------------- BEGIN CORRECT AGENTS -------------

Question: Which is older, the Louvre or the Prado?
Thought 1: The Louvre opened in 1793, the Prado in 1819.
Action 1: Finish[the Louvre]
Observation 1: Answer is CORRECT

Question: Who wrote Don Quixote?
Thought 1: Cervantes.
Action 1: Finish[Miguel de Cervantes]
Observation 1: Answer is CORRECT

Question: Which is older, the Louvre or the Prado?
Thought 1: The Louvre opened in 1793, the Prado in 1819.
Action 1: Finish[the Louvre]
Observation 1: Answer is CORRECT

------------- BEGIN INCORRECT AGENTS -----------

Question: What is the capital of Australia?
Thought 1: Sydney.
Action 1: Finish[Sydney]
Observation 1: Answer is INCORRECT
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def add(store: Store, task: str, success: bool | None, **fields: object) -> int:
    steps = [Step(index=0, action="go to countertop 1", observation="You see an egg 1.")]
    with store.transaction() as s:
        traj = Trajectory(task=task, task_type="heat", environment="alfworld", source="test",
                          success=success, **fields)  # fmt: skip
        store.add_trajectory(s, traj, steps)
        return int(traj.id or 0)


# -- imports ---------------------------------------------------------------------------------


def test_alfworld_demonstration_without_status_line_is_stored_as_unknown(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path, "demos.txt", DEMO + "\n" + FAILED)
    report = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    assert (report.trajectories, report.succeeded, report.failed) == (2, 0, 1)
    by_task = {t.task: t for t in store.list_trajectories().rows}
    demo = by_task["heat some egg and put it in countertop."]
    assert demo.success is None and demo.reward is None
    assert demo.facts["outcome"] == "unknown: no STATUS line"
    assert by_task["cool some apple and put it in fridge."].success is False


def test_chat_log_without_verdict_is_unknown_and_never_says_assumed(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path, "chat.json", json.dumps(CHAT))
    report = import_paths(store, [path], fmt="chat", actor=REVIEWER)
    assert (report.trajectories, report.succeeded, report.failed) == (1, 0, 0)
    (traj,) = store.list_trajectories().rows
    assert traj.success is None
    assert "assumed" not in json.dumps(traj.facts)


def test_same_episode_twice_in_one_log_is_two_trajectories_and_reimport_adds_nothing(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path, "hotpot.txt", REPEATED)
    first = import_paths(store, [path], fmt="react", actor=REVIEWER)
    assert (first.trajectories, first.succeeded, first.failed) == (4, 3, 1)
    assert first.duplicates_skipped == 0
    again = import_paths(store, [path], fmt="react", actor=REVIEWER)
    assert (again.trajectories, again.duplicates_skipped) == (0, 4)
    # The same file under another name is the same episodes, not new ones.
    copy = write(tmp_path, "copy.txt", REPEATED)
    assert import_paths(store, [copy], fmt="react", actor=REVIEWER).trajectories == 0
    assert store.counts().trajectories == 4


def test_the_first_occurrence_keeps_the_plain_hash_so_older_imports_still_match(
    store: Store, tmp_path: Path
) -> None:
    once = write(tmp_path, "once.txt", REPEATED.split("Question: What is")[0])
    import_paths(store, [once], fmt="react", actor=REVIEWER)  # 3 blocks, 1 repeated
    hashes = {t.content_hash for t in store.list_trajectories().rows}
    single = write(tmp_path, "single.txt", REPEATED.split("\n\nQuestion: Who wrote")[0])
    report = import_paths(store, [single], fmt="react", actor=REVIEWER)
    assert (report.trajectories, report.duplicates_skipped) == (0, 1)
    assert len(hashes) == 3


def test_jsonl_export_writes_unknown_as_null_and_reads_it_back_unknown(
    store: Store, tmp_path: Path, db_url: str
) -> None:
    add(store, "heat some egg and put it in countertop.", None)
    export(store, tmp_path / "out", "trajectories")
    lines = (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()
    (row,) = [json.loads(x) for x in lines if json.loads(x).get("type") == "trajectory"]
    assert row["success"] is None
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        import_paths(other, [tmp_path / "out"], fmt="jsonl", actor=REVIEWER)
        (traj,) = other.list_trajectories().rows
        assert traj.success is None
    finally:
        other.dispose()


# -- rates, curves, builds -------------------------------------------------------------------


def test_success_rate_leaves_unknown_outcomes_out_and_counts_them(store: Store) -> None:
    for success in (True, False, False, None, None, None):
        add(store, "heat some egg and put it in countertop.", success)
    c = store.counts()
    assert (c.trajectories, c.succeeded, c.failed, c.unknown) == (6, 1, 2, 3)
    assert c.success_rate == pytest.approx(1 / 3)  # not 1/6: unknown is no failure
    assert store.list_trajectories(TrajectoryFilter(unknown=True)).total == 3
    assert store.list_trajectories(TrajectoryFilter(success=False)).total == 2


def test_tally_describes_the_rate_over_judged_runs_and_the_unknown_beside_it() -> None:
    t = Tally(successes=2, failures=1, unknown=4)
    assert (t.runs, t.judged, t.rate) == (7, 3, pytest.approx(2 / 3))
    assert t.describe() == "67% of 3 judged (4 unknown)"
    assert Tally(unknown=2).rate is None
    assert outcome_of(None) == "unknown" and outcome_of(False) == "failure"
    assert success_of("Success") is True and success_of("unknown") is None
    with pytest.raises(OutcomeError):
        success_of("assumed success")


def test_curve_of_a_run_with_unknown_outcomes_does_not_count_them_as_failures(
    store: Store,
) -> None:
    with store.transaction() as s:
        run = Run(name="reported", kind="online")
        s.add(run)
        s.flush()
        run_id = int(run.id or 0)
    for success in (True, None, None, False):
        add(store, "heat some egg and put it in countertop.", success, run_id=run_id,
            group_index=0)  # fmt: skip
    (point,) = curve_points(store, [store.get(Run, run_id)])
    assert (point.tasks, point.unknown, point.success_rate) == (4, 2, 0.5)


def test_imported_multi_trial_curve_rates_only_recorded_outcomes(
    store: Store, tmp_path: Path
) -> None:
    from memp_core.importers.stage import Group
    from memp_core.importers.writer import curve

    (group,) = curve({0: Group(tasks=4, successes=1, unknown=2, steps=8, with_steps=4)})
    assert (group["success_rate"], group["unknown"]) == (0.5, 2)
    (none_judged,) = curve({0: Group(tasks=2, unknown=2)})
    assert none_judged["success_rate"] is None


def test_unknown_outcomes_build_nothing_under_any_update_policy(
    store: Store, embedder: Embedder
) -> None:
    settings = Settings()
    ids = [add(store, "heat some egg and put it in countertop.", None) for _ in range(2)]
    for policy in ("vanilla", "validation", "reflect"):
        backend = get_backend("heuristic", settings)
        report = update(store, backend, embedder, settings, ids, policy=policy)
        assert (report.built, report.reflected, report.counted) == ([], [], 0), policy
    assert store.procedures() == []
    runs = load_evidence(store, ids)
    assert select_vanilla(runs).build == [] and select_reflect(runs).reflect == []


def test_an_unknown_run_that_followed_a_procedure_is_not_counted_as_a_failed_use(
    store: Store, embedder: Embedder
) -> None:
    settings = Settings()
    good = add(store, "heat some egg and put it in countertop.", True)
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    (rev,) = mem.build([good])
    unknown = add(store, "heat some egg and put it in countertop.", None,
                  procedure_revision_id=rev.id)  # fmt: skip
    backend = get_backend("heuristic", settings)
    update(store, backend, embedder, settings, [unknown], policy="validation")
    proc = store.get(Procedure, rev.procedure_id)
    assert (proc.use_count, proc.success_count) == (0, 0)


def test_building_from_chosen_ids_leaves_the_unknown_ones_out(
    store: Store, embedder: Embedder
) -> None:
    unknown = add(store, "heat some egg and put it in countertop.", None)
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    assert mem.build([unknown]) == []
    assert mem.build() == []  # "successes not yet used" holds no unknown run either


def test_cold_start_never_seeds_from_unknown_outcomes(store: Store) -> None:
    add(store, "heat some egg and put it in countertop.", None)
    ok = add(store, "heat some egg and put it in countertop.", True)
    assert seed_ids(store, top=3) == [ok]
    ranked = best_first(load_evidence(store, [ok]))
    assert [e.id for e in ranked] == [ok]


def test_an_unknown_run_has_no_failed_or_successful_counterpart(store: Store) -> None:
    add(store, "heat some egg and put it in countertop.", True)
    add(store, "heat some egg and put it in countertop.", False)
    unknown = store.get(Trajectory, add(store, "heat some egg and put it in countertop.", None))
    assert failed_and_succeeded(store, unknown) == (None, None)


# -- labels ----------------------------------------------------------------------------------


def test_a_reviewer_labels_an_outcome_and_the_audit_keeps_before_and_after(
    store: Store,
) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    traj = label_outcome(store, tid, "success", actor=REVIEWER, reason="watched the replay")
    assert traj.success is True and store.get(Trajectory, tid).success is True
    label_outcome(store, tid, "unknown", actor=REVIEWER)
    assert store.get(Trajectory, tid).success is None
    events = store.audit_events(object_type="trajectory", object_id=tid)
    assert [(e.actor, e.action, e.detail["before"], e.detail["after"]) for e in events] == [
        ("human:rita", "label", "success", "unknown"),
        ("human:rita", "label", "unknown", "success"),
    ]
    assert events[-1].detail["reason"] == "watched the replay"


@pytest.mark.parametrize(
    "actor", [VIEWER, Actor("bot", "admin", kind="agent"), system("judge", "admin")]
)
def test_only_a_person_with_the_reviewer_role_labels_outcomes(store: Store, actor: Actor) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    with pytest.raises(PermissionDeniedError):
        label_outcome(store, tid, "success", actor=actor)
    assert store.get(Trajectory, tid).success is None
    assert store.audit_events(object_type="trajectory") == []


def test_labelling_a_missing_trajectory_or_a_made_up_outcome_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError):
        label_outcome(store, 999, "success", actor=REVIEWER)
    tid = add(store, "heat some egg and put it in countertop.", None)
    with pytest.raises(OutcomeError):
        label_outcome(store, tid, "probably", actor=REVIEWER)


def test_memp_import_label_success_is_the_os_users_label_and_audited(
    db_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "demos.txt", DEMO + "\n" + FAILED)
    result = CliRunner().invoke(
        app, ["import", str(path), "--format", "alfworld", "--label", "success", "--json",
              "--db", db_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["trajectories"], out["unknown"], out["labelled"]) == (2, 1, 1)
    store = Store(db_url)
    try:
        by_task = {t.task: t for t in store.list_trajectories().rows}
        demo = by_task["heat some egg and put it in countertop."]
        assert demo.success is True  # the person's label
        assert by_task["cool some apple and put it in fridge."].success is False  # the file's
        with store.session() as s:
            (ev,) = s.exec(select(AuditEvent).where(AuditEvent.action == "label")).all()
        assert (ev.actor, ev.object_id) == (f"human:{getpass.getuser()}", demo.id)
        assert ev.detail["outcome"] == "success"
        assert ev.detail["reason"] == "memp import --label"
    finally:
        store.dispose()


def test_memp_import_without_label_says_how_many_are_unknown(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "demos.txt", DEMO)
    result = CliRunner().invoke(app, ["import", str(path), "--format", "alfworld", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "1 unknown (no outcome recorded)" in result.stdout
    bad = CliRunner().invoke(app, ["import", str(path), "--label", "maybe", "--db", db_url])
    assert bad.exit_code != 0 and "success or failure" in bad.output


def test_old_assumed_successes_become_unknown_and_reimport_still_finds_them(
    any_store: Store, tmp_path: Path
) -> None:
    store = any_store
    path = write(tmp_path, "demos.txt", DEMO)
    import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    # What an import before this change stored: an assumed success, hashed as a success.
    from memp_core.importers.records import StepRecord, TrajectoryRecord
    from memp_core.importers.stage import content_hash

    with store.transaction() as s:
        traj = s.exec(select(Trajectory)).one()
        steps = s.exec(select(Step).where(Step.trajectory_id == traj.id)).all()
        old = TrajectoryRecord(
            task=traj.task, success=True, environment=traj.environment,
            steps=[StepRecord(st.thought, st.action, st.observation) for st in steps],
        )  # fmt: skip
        traj.success, traj.reward = True, None
        traj.content_hash = content_hash(old)
        traj.facts = {**traj.facts, "outcome": "assumed success: no STATUS line"}
        s.add(traj)
    assert forget_assumed(store, actor=system("upgrade")) == 1
    assert forget_assumed(store, actor=system("upgrade")) == 0
    (traj,) = store.list_trajectories().rows
    assert traj.success is None and traj.facts["outcome"] == "unknown: no STATUS line"
    again = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    assert (again.trajectories, again.duplicates_skipped) == (0, 1)
    with store.session() as s:
        assert s.exec(select(AuditEvent).where(col(AuditEvent.actor) == "memp:upgrade")).all()


# -- the pages -------------------------------------------------------------------------------


def run_app_page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if path != "app.py":
        at.switch_page(path).run()
    return at


def test_trajectories_page_shows_unknown_and_a_reviewer_sets_the_outcome(store: Store) -> None:
    add(store, "heat some egg and put it in countertop.", True)
    tid = add(store, "cool some apple and put it in fridge.", None)
    at = run_app_page("pages/1_Trajectories.py")
    assert not at.exception, at.exception
    table = next(df.value for df in at.dataframe if "outcome" in df.value.columns)
    assert sorted(table["outcome"]) == ["success", "unknown"]
    at.selectbox(key="traj_outcome").set_value("unknown").run()
    assert [m.value for m in at.metric if m.label == "Outcome"] == ["unknown"]
    assert any("Outcome unknown" in i.value for i in at.info)
    at.selectbox(key=f"traj_label_{tid}").set_value("failure").run()
    at.text_input(key=f"traj_label_reason_{tid}").set_value("it never cooled the apple").run()
    at.button(key=f"traj_label_btn_{tid}").click().run()
    assert not at.exception, at.exception
    assert store.get(Trajectory, tid).success is False
    (ev,) = store.audit_events(object_type="trajectory", object_id=tid)
    assert (ev.action, ev.detail["before"], ev.detail["after"]) == ("label", "unknown", "failure")
    assert ev.detail["reason"] == "it never cooled the apple"


def test_overview_rate_is_over_recorded_outcomes_with_the_unknown_beside_it(
    store: Store,
) -> None:
    for success in (True, False, None, None):
        add(store, "heat some egg and put it in countertop.", success)
    at = run_app_page("app.py")
    assert not at.exception, at.exception
    (rate,) = [m for m in at.metric if m.label == "Success"]
    assert (rate.value, rate.delta) == ("50%", "2 unknown")


# -- effective outcomes: recorded, else reviewed judgement, else (if allowed) judged ----------


def judge_as(store: Store, tid: int, verdict: str, *, backend: str = "heuristic") -> int:
    with store.transaction() as s:
        row = Judgement(trajectory_id=tid, verdict=verdict, confidence=0.9, rationale="r",
                        backend=backend, model=backend, actor="memp:test")  # fmt: skip
        s.add(row)
        s.flush()
        return int(row.id or 0)


def effective(store: Store, tid: int, count_unreviewed: bool = False) -> EffectiveOutcome:
    return effective_outcomes(store, [tid], count_unreviewed=count_unreviewed)[tid]


def test_a_recorded_outcome_outranks_every_judgement(store: Store) -> None:
    tid = add(store, "heat some egg and put it in countertop.", False)
    review_judgement(store, judge_as(store, tid, "success"), actor=REVIEWER)
    assert effective(store, tid, True) == EffectiveOutcome("failure", "recorded")


def test_an_unreviewed_judgement_counts_only_where_the_setting_allows(store: Store) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    jid = judge_as(store, tid, "success")
    assert effective(store, tid) == EffectiveOutcome("unknown", "none")
    assert effective(store, tid, True) == EffectiveOutcome("success", "judged", jid)
    assert Settings().count_unreviewed_judgements is False


def test_the_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMP_COUNT_UNREVIEWED_JUDGEMENTS", "true")
    assert Settings().count_unreviewed_judgements is True


def test_a_reviewed_judgement_counts_as_the_person_settled_it(store: Store) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    jid = judge_as(store, tid, "success")
    review_judgement(store, jid, actor=REVIEWER, verdict="failure")
    assert effective(store, tid) == EffectiveOutcome("failure", "reviewed", jid)
    review_judgement(store, jid, actor=REVIEWER)  # the latest review wins: now confirmed
    assert effective(store, tid).outcome == "success"


def test_a_person_settling_on_unknown_outranks_an_unreviewed_verdict(store: Store) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    review_judgement(store, judge_as(store, tid, "success"), actor=REVIEWER, verdict="unknown")
    judge_as(store, tid, "success", backend="openai")
    assert effective(store, tid, True).outcome == "unknown"


def test_judges_that_disagree_decide_nothing_and_abstentions_are_no_vote(store: Store) -> None:
    tid = add(store, "heat some egg and put it in countertop.", None)
    judge_as(store, tid, "success")
    judge_as(store, tid, "unknown", backend="openai")
    assert effective(store, tid, True).outcome == "success"
    judge_as(store, tid, "failure", backend="other")
    assert effective(store, tid, True) == EffectiveOutcome("unknown", "none")


def test_the_effective_tally_counts_reviewed_judgements_beside_recorded_outcomes(
    store: Store,
) -> None:
    ids = [add(store, "heat some egg and put it in countertop.", ok) for ok in (True, False)]
    reviewed, unreviewed = (add(store, "cool some apple and put it in fridge.", None)
                            for _ in range(2))  # fmt: skip
    review_judgement(store, judge_as(store, reviewed, "success"), actor=REVIEWER)
    judge_as(store, unreviewed, "failure")
    every = [*ids, reviewed, unreviewed]
    assert effective_tally(store, every) == Tally(successes=2, failures=1, unknown=1)
    assert effective_tally(store, every, count_unreviewed=True) == Tally(2, 2, 0)
