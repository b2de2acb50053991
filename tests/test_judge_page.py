"""The Trajectories page with a judged run: the recorded outcome ("unknown") and the judged one
beside it, a reviewer's confirm or override (audited), no "None" in the table, and the
filters and the open id in the URL so that a link reopens the same view."""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from memp_core.actor import system
from memp_core.judge.heuristic import HeuristicJudge
from memp_core.judge.judgements import judge_unknown, judgements_of
from memp_core.models import Run, Step, Trajectory
from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))
PAGE = "pages/1_Trajectories.py"
WON = [
    ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
    ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
    ("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
]


def add(store: Store, success: bool | None, run_id: int | None = None, **kw: object) -> int:
    with store.transaction() as s:
        traj = Trajectory(task="heat some egg and put it in diningtable.", task_type="heat",
                          environment="alfworld", source="import:alfworld", success=success,
                          run_id=run_id, **kw)  # fmt: skip
        rows = [Step(trajectory_id=0, index=i, action=a, observation=o)
                for i, (a, o) in enumerate(WON)]  # fmt: skip
        return int(store.add_trajectory(s, traj, rows).id or 0)


def open_page(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGE)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return str(m.value)


def table(at: AppTest):  # type: ignore[no-untyped-def]
    return next(df.value for df in at.dataframe if "judged" in df.value.columns)


def test_a_judged_run_shows_the_recorded_and_the_judged_outcome_and_a_reviewer_confirms(
    store: Store,
) -> None:
    tid = add(store, None)
    judge_unknown(store, HeuristicJudge(), actor=system("test"))
    (j,) = judgements_of(store, tid)
    at = open_page(trajectory=str(tid))
    assert metric(at, "Outcome") == "unknown"  # what was recorded, and beside it:
    assert metric(at, "Judged outcome") == "success"
    assert metric(at, "Reviewed") == "not yet" and metric(at, "Counts as") == "unknown"
    assert any(j.rationale == t.value for t in at.text)
    assert table(at)["judged"].tolist() == [f"success {j.confidence:.2f}"]
    assert at.button(key=f"traj_judge_btn_{j.id}").label == f"Confirm judgement {j.id} (success)"
    at.text_input(key=f"traj_judge_note_{j.id}").set_value("the egg was heated").run()
    at.button(key=f"traj_judge_btn_{j.id}").click().run()
    assert not at.exception, at.exception
    assert metric(at, "Reviewed") == "confirmed" and metric(at, "Counts as") == "success"
    (ev,) = store.audit_events(object_type="judgement", object_id=j.id)
    assert ev.action == "judgement_confirmed" and ev.detail["note"] == "the egg was heated"
    assert ev.actor.startswith("human:")
    assert store.get(Trajectory, tid).success is None


def test_a_reviewer_overrides_a_judgement_on_the_page(store: Store) -> None:
    tid = add(store, None)
    judge_unknown(store, HeuristicJudge(), actor=system("test"))
    (j,) = judgements_of(store, tid)
    at = open_page(trajectory=str(tid))
    at.selectbox(key=f"traj_judge_pick_{j.id}").set_value("failure").run()
    button = at.button(key=f"traj_judge_btn_{j.id}")
    assert button.label == f"Override judgement {j.id} with failure"
    button.click().run()
    assert not at.exception, at.exception
    (done,) = judgements_of(store, tid)
    assert (done.review, done.reviewed_verdict) == ("overridden", "failure")
    assert metric(at, "Counts as") == "failure"
    assert table(at)["judged"].tolist() == ["failure (reviewed)"]


def test_no_none_in_the_run_and_group_columns(store: Store) -> None:
    with store.transaction() as s:
        run = Run(name="r", kind="import")
        s.add(run)
        s.flush()
        run_id = int(run.id or 0)
    add(store, True, run_id=run_id, group_index=2)
    add(store, False)
    at = open_page()
    frame = table(at)
    assert frame["run"].tolist() == ["–", str(run_id)]
    assert frame["group"].tolist() == ["–", "2"]
    shown = frame.astype(str).to_numpy().ravel().tolist()
    assert "None" not in shown and "nan" not in shown


def test_filters_and_the_open_id_live_in_the_url_and_a_link_reopens_the_view(
    store: Store,
) -> None:
    ids = [add(store, ok) for ok in (True, None, False, None)]
    at = open_page()
    at.selectbox(key="traj_outcome").set_value("unknown").run()
    at.text_input(key="traj_text").set_value("egg").run()
    assert (at.query_params["outcome"], at.query_params["q"]) == ("unknown", "egg")
    assert sorted(table(at)["id"]) == sorted([ids[1], ids[3]])
    at.number_input(key="traj_open_id").set_value(ids[1]).run()
    assert at.query_params["trajectory"] == str(ids[1])
    link = {k: str(v) for k, v in at.query_params.items()}
    again = open_page(**link)  # a fresh session opened from the shared link
    assert again.selectbox(key="traj_outcome").value == "unknown"
    assert again.text_input(key="traj_text").value == "egg"
    assert sorted(table(again)["id"]) == sorted([ids[1], ids[3]])
    assert again.number_input(key="traj_open_id").value == ids[1]
    # a changed filter opens its first match again, not the id opened before
    again.selectbox(key="traj_outcome").set_value("failure").run()
    assert "trajectory" not in again.query_params
    assert again.number_input(key="traj_open_id").value == ids[2]
