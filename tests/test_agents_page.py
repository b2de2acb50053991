"""The Agents page: per-agent activity read from what the door recorded, and key management.

Activity comes from real door operations (retrieve, report, feedback, propose) on a real
SQLite database with the packaged embedder; the page runs in Streamlit's AppTest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from memp_core.actor import Actor, os_user
from memp_core.agents.activity import (
    agent_activity,
    feedback_given,
    feedback_on,
    proposed_by,
    reported_runs,
)
from memp_core.agents.keys import AGENT_SCOPES, create_key, list_keys, revoke_key, verify
from memp_core.agents.operations import AgentDoor
from memp_core.agents.schemas import FeedbackIn, ProposalIn, RetrieveRequest, TrajectoryReport
from memp_core.embeddings import Embedder
from memp_core.errors import AuthenticationError, PermissionDeniedError
from memp_core.memory import ProceduralMemory
from memp_core.models import Feedback, Procedure, Trajectory
from memp_core.review import approve
from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))
AGENTS = "pages/9_Agents.py"
TASK = "put a spraybottle in toilet"
STEPS = [
    {"action": "go to cabinet 1", "observation": "On the cabinet 1, you see a spraybottle 1."},
    {"action": "take spraybottle 1 from cabinet 1", "observation": "You pick up it."},
    {"action": "go to toilet 1", "observation": "On the toilet 1, you see nothing."},
    {"action": "put spraybottle 1 in/on toilet 1", "observation": "You put it."},
]


def run_page(path: str = AGENTS) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def new_key(store: Store, agent: str, scopes: list[str] | tuple[str, ...] = AGENT_SCOPES) -> str:
    return create_key(store, agent=agent, scopes=scopes, actor=os_user()).key


@pytest.fixture(name="busy")
def busy_fixture(store: Store, embedder: Embedder) -> dict[str, int]:
    """`bot` retrieved twice, reported a success, a failure and an unknown run, rated a
    revision and proposed a procedure; `idle` has a revoked key and did nothing; a person's
    feedback and an imported run belong to no agent."""
    door = AgentDoor(ProceduralMemory(store, embedder=embedder))
    bot = verify(store, new_key(store, "bot"))
    idle = verify(store, new_key(store, "idle"))
    revoke_key(store, idle.key_id, actor=os_user())
    door.retrieve(bot, RetrieveRequest(task=TASK))
    door.retrieve(bot, RetrieveRequest(task="put a mug in cabinet"))
    ids = [
        door.report(bot, TrajectoryReport(task=TASK, steps=STEPS, success=ok)).trajectory_id
        for ok in (True, False, None)
    ]
    (proc,) = store.procedures()  # the validation policy built one from the success
    rev_id = int(proc.current_revision_id or 0)
    door.feedback(bot, FeedbackIn(revision_id=rev_id, rating="helpful", reason="<b>clear</b>",
                                  trajectory_id=ids[0]))  # fmt: skip
    script = "1. Find the egg.\n2. Heat it.\n3. Put it in fridge."
    proposal = ProposalIn(title="heat some egg and put it in fridge", script=script,
                          source_trajectory_ids=[ids[1]], rationale="seen it fail")  # fmt: skip
    door.propose(bot, proposal)
    with store.transaction() as s:
        s.add(Feedback(procedure_id=int(proc.id or 0), revision_id=rev_id, rating="harmful",
                       actor="human:rita"))  # fmt: skip
        store.add_trajectory(s, Trajectory(task=TASK, success=True, source="import:chat"), [])
    return {"revision": rev_id, "success_run": ids[0]}


def test_activity_counts_what_the_door_recorded_under_each_agent(
    store: Store, busy: dict[str, int]
) -> None:
    bot, idle = agent_activity(store)  # most recently seen first
    assert bot.agent == "bot" and idle.agent == "idle"
    assert (bot.retrievals, bot.runs, bot.successes, bot.failures, bot.unknown) == (2, 3, 1, 1, 1)
    assert bot.success_rate == 0.5  # over recorded outcomes: the unknown run is left out
    assert (bot.feedback, bot.proposals, bot.active_keys) == (1, 1, 1)
    assert bot.last_seen is not None and bot.last_seen.tzinfo is not None
    assert (idle.runs, idle.retrievals, idle.active_keys, idle.success_rate) == (0, 0, 0, None)
    assert [k.revoked for k in idle.keys] == [True]
    assert idle.last_seen is not None and idle.last_seen < bot.last_seen  # its key's one use
    assert [t.success for t in reported_runs(store, "bot")] == [None, False, True]
    (fb,) = feedback_given(store, "bot")
    assert (fb.revision_id, fb.rating, fb.trajectory_id) == (
        busy["revision"], "helpful", busy["success_run"],
    )  # fmt: skip


def test_the_queue_names_the_agent_whose_proposal_waits_and_feedback_is_per_procedure(
    store: Store, embedder: Embedder, busy: dict[str, int]
) -> None:
    procs = store.procedures()
    built, proposed = sorted(procs, key=lambda p: p.id or 0)  # built from a run, then proposed
    assert (built.status, proposed.status) == ("pending_review", "pending_review")
    assert proposed_by(store, procs) == {proposed.id: "bot"}  # a build names no agent
    assert [(f.actor, f.rating) for f in feedback_on(store, int(built.id or 0))] == [
        ("human:rita", "harmful"), ("agent:bot", "helpful"),
    ]  # fmt: skip
    assert feedback_on(store, int(proposed.id or 0)) == []
    # Approved, it names nobody; a proposal beside the approved revision names its agent.
    approve(store, int(built.id or 0), actor=os_user())
    assert proposed_by(store, store.procedures()) == {proposed.id: "bot"}
    door = AgentDoor(ProceduralMemory(store, embedder=embedder))
    other = verify(store, new_key(store, "other"))
    door.propose(other, ProposalIn(title=TASK, task_type=built.task_type, script="1. Go.",
                                   rationale="shorter"))  # fmt: skip
    assert store.get(Procedure, int(built.id or 0)).proposed_revision_id is not None
    assert proposed_by(store, store.procedures()) == {proposed.id: "bot", built.id: "other"}


def test_an_agent_is_told_apart_from_another_whose_name_it_starts(
    store: Store, embedder: Embedder
) -> None:
    door = AgentDoor(ProceduralMemory(store, embedder=embedder))
    for name in ("bot", "bot2"):
        door.report(verify(store, new_key(store, name)), TrajectoryReport(task=TASK, success=True))
    assert {a.agent: a.runs for a in agent_activity(store)} == {"bot": 1, "bot2": 1}
    assert len(reported_runs(store, "bot")) == 1


def test_agents_page_shows_each_agents_counts_and_runs(busy: dict[str, int]) -> None:
    at = run_page()
    table = at.dataframe[0].value
    row = table.set_index("agent").loc["bot"]
    assert (row["retrievals"], row["runs"], row["unknown"], row["feedback"]) == (2, 3, 1, 1)
    assert row["success rate"] == 0.5
    assert list(table["agent"]) == ["bot", "idle"]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Runs reported"], metrics["Success rate"]) == ("3", "50%")
    assert at.selectbox(key="agents_pick").value == "bot"  # opens on an agent with runs
    at.selectbox(key="agents_pick").set_value("bot").run()
    assert not at.exception, at.exception
    runs = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert list(runs["outcome"]) == ["unknown", "failure", "success"]
    reasons = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert list(reasons["reason"]) == ["<b>clear</b>"]  # a dataframe shows it as text


def test_an_admin_creates_a_key_that_is_shown_once(store: Store) -> None:
    at = run_page()
    at.text_input(key="agents_new_name").set_value("support-bot")
    next(b for b in at.button if b.label == "Create key").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (shown,) = [c.value for c in at.code if c.value.startswith("memp_")]
    who = verify(store, shown)  # the key on the screen works
    assert who.agent == "support-bot" and who.scopes == frozenset(AGENT_SCOPES)
    assert any("will not be shown again" in w.value for w in at.warning)
    assert "support-bot" in repr(at.session_state) and shown not in repr(at.session_state)
    assert store.audit_events(limit=1)[0].actor == "human:local"
    table = next(d.value for d in at.dataframe if "scopes" in d.value.columns)
    assert list(table["agent"]) == ["support-bot"]  # the table already lists it
    at.selectbox(key="agents_pick").set_value("support-bot").run()  # any next click
    assert not any(c.value == shown for c in at.code)


def test_a_bad_key_request_is_refused_and_the_page_goes_on(store: Store) -> None:
    at = run_page()
    at.text_input(key="agents_new_name").set_value("bad name; drop")
    at.multiselect(key="agents_new_scopes").set_value(["runs:write", "review:admin"])
    next(b for b in at.button if b.label == "Create key").click().run()
    assert not at.exception, at.exception
    assert any("agent name" in e.value for e in at.error)
    assert list_keys(store) == []
    at.text_input(key="agents_new_name").set_value("fine")
    next(b for b in at.button if b.label == "Create key").click().run()
    assert any("cannot be combined" in e.value for e in at.error)
    assert list_keys(store) == []
    assert at.text_input(key="agents_new_name").value == "fine"  # the form keeps its values


def test_an_admin_revokes_a_key_and_it_stops_working(store: Store) -> None:
    key = new_key(store, "bot")
    at = run_page()
    at.button(key="agents_revoke").click().run()
    assert not at.exception, at.exception
    with pytest.raises(AuthenticationError, match="revoked"):
        verify(store, key)
    assert store.audit_events(limit=1)[0].action == "key_revoked"
    table = next(d.value for d in at.dataframe if "scopes" in d.value.columns)
    assert list(table["status"]) == ["revoked"]
    assert not any(b.key == "agents_revoke" for b in at.button)


def test_a_viewer_sees_the_keys_but_no_key_buttons(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_pages import sign_in, write_credentials

    new_key(store, "bot")
    monkeypatch.setenv("MEMP_AUTH_FILE", str(write_credentials(tmp_path / "auth.yaml")))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    sign_in(at, "rita", "rita-pass")  # a reviewer: still not an admin
    at.switch_page(AGENTS).run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "scopes" in d.value.columns)
    assert list(table["agent"]) == ["bot"]
    assert not any(b.label in ("Create key", "Revoke") for b in at.button)
    assert any("only admins create and revoke keys" in c.value for c in at.caption)
    with pytest.raises(PermissionDeniedError, match="admin"):  # and the core refuses them anyway
        create_key(store, agent="x", scopes=["procedures:read"], actor=Actor("rita", "reviewer"))


def test_the_trajectories_page_filters_by_the_reporting_agent(store: Store) -> None:
    with store.transaction() as s:
        for agent, task in (("bot", "put a mug in shelf"), ("bot2", "heat some egg")):
            s.add(Trajectory(task=task, success=True, reporting_agent=agent, source="api"))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=60)  # fmt: skip
    at.run()
    at.query_params["agent"] = "bot"  # the link the Agents page gives
    at.switch_page("pages/1_Trajectories.py").run()
    assert not at.exception, at.exception
    agent_box = next(b for b in at.selectbox if b.label == "Agent")
    assert agent_box.value == "bot" and set(agent_box.options) >= {"bot", "bot2"}
    (table,) = [d for d in at.dataframe if "task" in d.value.columns]
    assert list(table.value["task"]) == ["put a mug in shelf"]


def test_the_review_queue_names_proposing_agents_and_shows_feedback(
    store: Store, busy: dict[str, int]
) -> None:
    built, proposed = sorted(store.procedures(), key=lambda p: p.id or 0)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=60)  # fmt: skip
    at.run()
    at.query_params["procedure"] = str(built.id)
    at.switch_page("pages/2_Procedures.py").run()
    assert not at.exception, at.exception
    queue = next(d.value for d in at.dataframe if "proposed by" in d.value.columns)
    by = dict(zip(queue["id"], queue["proposed by"], strict=True))
    assert by[proposed.id] == "bot" and by[built.id] == ""
    assert any(c.value == "Feedback: 1 harmful · 1 helpful" for c in at.caption)
    reasons = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert "<b>clear</b>" in list(reasons["reason"])  # an agent's text, shown as text
