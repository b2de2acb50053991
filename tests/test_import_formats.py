"""Each import format on real samples (../shared/data) and on small hand-written ones."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import col, select

from memp_core.actor import Actor
from memp_core.importers import import_paths
from memp_core.models import Run, Step, Trajectory
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")  # imports need a reviewer; a file never approves

REACT_BLOCK = """Question: Which river is longer, the Ebro or the Tagus?
Thought 1: I need the lengths of both rivers.
Action 1: Search[Ebro]
Observation 1: The Ebro is a river of 930 km ...
Thought 2: Now the Tagus.
Action 2: Search[Tagus]
Observation 2: The Tagus ... 1,007 km ...
Thought 3: The Tagus is longer.
Action 3: Finish[Tagus]
Observation 3: Answer is CORRECT
"""

MULTI_TRIAL = """
########################################
BEGIN TRIAL 1
Trial summary: Correct: 1, Incorrect: 0, Halted: 1
#######################################
------------- BEGIN CORRECT AGENTS -------------

Question: Q one?
Thought 1: think
Action 1: Finish[a]
Observation 1: Answer is CORRECT
Correct answer: a

------------- BEGIN HALTED AGENTS --------------

Question: Q two?
Thought 1: search it
Action 1: Search[two]
Observation 1: a page that goes on
over a second line
Correct answer: b

########################################
BEGIN TRIAL 2
Trial summary: Correct: 2, Incorrect: 0, Halted: 0
#######################################
------------- BEGIN CORRECT AGENTS -------------

Question: Q one?
Thought 1: think
Action 1: Finish[a]
Observation 1: Answer is CORRECT
Correct answer: a

Question: Q two?You have attempted to answer following question before and failed.
Reflections:
- I searched the wrong page.
- Next time search two directly.
Correct answer: b
"""

ALFWORLD_TEXT = """You are in the middle of a room. Looking around you, you see a sinkbasin 1.
Your task is to: clean some mug and put it in coffeemachine.
> think: First find a mug.
OK.
> go to sinkbasin 1
On the sinkbasin 1, you see a mug 1.
> take mug 1 from sinkbasin 1
Nothing happens.
> take mug 1 from sinkbasin 1
Nothing happens.
STATUS: FAIL
New plan: I should have looked on the countertop first.

You are in the middle of a room. Looking quickly around you, you see a fridge 1.
Your task is to: cool some apple and put it in fridge.
> open fridge 1
You open the fridge 1.
STATUS: OK
"""


def run_rows(store: Store) -> list[Run]:
    return store.runs()


def curve_counts(run: Run) -> list[int]:
    return [round(g["success_rate"] * g["tasks"]) for g in run.metrics]


def test_react_prompts_give_24_trajectories_and_reimport_adds_nothing(
    store: Store, shared_data: Path
) -> None:
    path = shared_data / "reflexion-alfworld" / "react_prompts_alfworld.json"
    first = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    again = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    # Few-shot demonstrations record no verdict: stored as unknown, never assumed successes.
    assert (first.trajectories, first.succeeded + first.failed) == (24, 0)
    assert (again.trajectories, again.duplicates_skipped) == (0, 24)
    types = {t.task_type for t in store.list_trajectories(limit=100).rows}
    assert types == {"put", "clean", "heat", "cool", "examine", "puttwo"}


def test_failed_transcripts_keep_their_new_plan_as_reflection(
    store: Store, shared_data: Path
) -> None:
    path = shared_data / "reflexion-alfworld" / "reflexion_few_shot_examples.txt"
    report = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    assert (report.trajectories, report.failed) == (2, 2)
    rows = store.list_trajectories().rows
    assert all(r.reflections for r in rows)
    heat = next(r for r in rows if r.task_type == "heat")
    steps = store.steps_of(heat.id or 0)
    assert heat.reflections[0].startswith("I was stuck in a loop")
    assert [s.is_loop for s in steps[-4:]] == [False, True, True, True]


def test_reflexion_folders_give_the_published_curves(store: Store, shared_data: Path) -> None:
    base = shared_data / "reflexion-alfworld"
    import_paths(store, [base / "reflexion_run_logs"], fmt="reflexion", actor=REVIEWER)
    import_paths(store, [base / "base_run_logs"], fmt="auto", actor=REVIEWER)
    curves = {r.name: curve_counts(r) for r in run_rows(store)}
    assert curves["reflexion_run_logs"] == [
        84, 103, 111, 113, 117, 118, 123, 126, 128, 129, 130, 130, 131, 133, 134,
    ]  # fmt: skip
    assert curves["base_run_logs"] == [84, 94, 97, 98, 100, 101, 101]
    assert store.counts().trajectories == 134 * 22
    again = import_paths(store, [base / "base_run_logs"], fmt="reflexion", actor=REVIEWER)
    assert (again.trajectories, again.runs, again.duplicates_skipped) == (0, 0, 134 * 7)


def test_hotpotqa_multi_trial_log_is_one_run_with_five_trials(
    store: Store, shared_data: Path
) -> None:
    path = shared_data / "reflexion-hotpotqa" / "react_reflexion_100_questions_5_trials.txt"
    report = import_paths(store, [path], fmt="react", actor=REVIEWER)
    (run,) = run_rows(store)
    assert curve_counts(run) == [32, 42, 48, 50, 51]
    assert report.runs == 1 and report.trajectories == sum(g["tasks"] for g in run.metrics)
    # The real log drops one question in trials 2 and 5: said, not hidden.
    assert sum("holds 99 blocks" in w for w in report.warnings) == 2
    with store.session() as s:
        reflected = s.exec(select(Trajectory).where(Trajectory.group_index == 1)).all()
    assert any(t.reflections for t in reflected)
    assert all(t.reference_answer for t in reflected)
    assert all("You have attempted" not in t.task for t in reflected)


def test_memp_chat_examples_split_into_thought_action_observation_steps(
    store: Store, shared_data: Path
) -> None:
    report = import_paths(
        store, [shared_data / "memp-alfworld" / "alfworld_examples.json"], actor=REVIEWER
    )
    assert report.formats and set(report.formats.values()) == {"chat"}
    assert report.trajectories == 6
    first = store.list_trajectories(limit=10).rows[-1]
    step = store.steps_of(first.id or 0)[0]
    assert first.task_type == "put" and first.environment == "alfworld"
    assert step.thought and step.action == "go to toiletpaperhanger 1"
    assert step.observation == "On the toiletpaperhanger 1, you see nothing."


def test_single_react_block_from_the_issue_is_a_success(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "block.txt"
    path.write_text("== banner ==\n\n" + REACT_BLOCK)
    report = import_paths(store, [path], fmt="react", actor=REVIEWER)
    assert (report.trajectories, report.succeeded, report.steps, report.runs) == (1, 1, 3, 0)
    (t,) = store.list_trajectories().rows
    assert (t.task_type, t.environment, t.facts["answer"]) == ("qa", "hotpotqa", "Tagus")


def test_block_without_finish_is_halted_failure(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "halted.txt"
    path.write_text(REACT_BLOCK.split("Thought 3")[0])
    report = import_paths(store, [path], fmt="react", actor=REVIEWER)
    assert (report.failed, store.list_trajectories().rows[0].facts["outcome"]) == (1, "halted")


def test_sections_decide_outcome_and_summary_disagreement_is_a_warning(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(MULTI_TRIAL.replace("Correct: 2, Incorrect: 0", "Correct: 3, Incorrect: 0"))
    report = import_paths(store, [path], fmt="react", actor=REVIEWER)
    (run,) = run_rows(store)
    assert curve_counts(run) == [1, 2]
    assert [g["tasks"] for g in run.metrics] == [2, 2]
    assert any("trial 2: summary line says Correct: 3" in w for w in report.warnings)
    with store.session() as s:
        two = s.exec(
            select(Trajectory).where(Trajectory.task == "Q two?").order_by(col(Trajectory.id))
        ).all()
    # Identical questions in different trials stay two trajectories; the second carries
    # no steps (solved earlier) but its reflections.
    assert [t.success for t in two] == [False, True]
    assert two[1].step_count == 0 and len(two[1].reflections) == 2
    first_obs = store.steps_of(two[0].id or 0)[0].observation
    assert first_obs == "a page that goes on\nover a second line"


def test_identical_blocks_in_different_trials_are_distinct(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(MULTI_TRIAL)
    report = import_paths(store, [path], fmt="react", actor=REVIEWER)
    assert (report.trajectories, report.duplicates_skipped) == (4, 0)
    assert import_paths(store, [path], fmt="react", actor=REVIEWER).duplicates_skipped == 4


def test_alfworld_text_with_several_transcripts_and_status(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "transcripts.txt"
    path.write_text(ALFWORLD_TEXT)
    report = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    assert (report.trajectories, report.succeeded, report.failed) == (2, 1, 1)
    failed = next(t for t in store.list_trajectories().rows if not t.success)
    steps = store.steps_of(failed.id or 0)
    assert failed.task_type == "clean" and failed.reflections == [
        "I should have looked on the countertop first."
    ]
    assert steps[0].thought == "First find a mug." and steps[0].action == "go to sinkbasin 1"
    assert [(s.is_error, s.is_loop) for s in steps] == [(False, False), (True, False), (True, True)]


def test_alfworld_json_list_of_transcripts(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([ALFWORLD_TEXT.split("\n\n")[1]]))
    report = import_paths(store, [path], fmt="alfworld", actor=REVIEWER)
    assert (report.trajectories, report.succeeded) == (1, 1)


def test_chat_jsonl_one_conversation_per_line_with_outcome_field(
    store: Store, tmp_path: Path
) -> None:
    conv = {
        "success": False,
        "model": "qwen2.5-14b",
        "messages": [
            {"role": "system", "content": "You are an agent."},
            {"role": "user", "content": "Your task is to: heat some egg and put it in garbagecan."},
            {"role": "assistant", "content": "Thought: find the egg.\nAction: go to fridge 1"},
            {"role": "user", "content": "Observation: The fridge 1 is closed."},
            {"role": "assistant", "content": [{"type": "text", "text": "Action: open fridge 1"}]},
            {"role": "tool", "content": "You open the fridge 1."},
        ],
    }
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(conv) + "\n\n" + json.dumps(conv["messages"]) + "\n")
    report = import_paths(store, [path], fmt="chat", actor=REVIEWER)
    # The second line is a bare message list: no outcome field, so its outcome is unknown.
    assert (report.trajectories, report.failed, report.succeeded) == (2, 1, 0)
    with store.session() as s:
        failed = s.exec(select(Trajectory).where(col(Trajectory.success).is_(False))).one()
        steps = s.exec(select(Step).where(Step.trajectory_id == failed.id)).all()
    assert failed.agent_model == "qwen2.5-14b" and failed.task_type == "heat"
    assert [(st.thought, st.action, st.observation) for st in steps] == [
        ("find the egg.", "go to fridge 1", "The fridge 1 is closed."),
        (None, "open fridge 1", "You open the fridge 1."),
    ]


def test_auto_names_the_format_it_chose(store: Store, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.txt").write_text(REACT_BLOCK)
    (logs / "b.txt").write_text(ALFWORLD_TEXT)
    (logs / "c-README.md").write_text("These logs come from our agent.\n")
    seen: list[tuple[str, str]] = []
    report = import_paths(
        store, [logs], on_format=lambda p, f: seen.append((Path(p).name, f)), actor=REVIEWER
    )
    assert seen == [("a.txt", "react"), ("b.txt", "alfworld")]
    assert report.trajectories == 3
    assert len(report.warnings) == 1 and "c-README.md: skipped: cannot tell" in report.warnings[0]
    sources = {t.source for t in store.list_trajectories().rows}
    assert sources == {"import:react", "import:alfworld"}


def test_source_option_labels_trajectories(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "block.txt"
    path.write_text(REACT_BLOCK)
    import_paths(store, [path], fmt="react", source="team-a-agent", actor=REVIEWER)
    assert store.list_trajectories().rows[0].source == "team-a-agent"
