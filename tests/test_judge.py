"""The heuristic judge against known outcomes: simulator runs of every task type (successes
and failures, as the world decided them) and Reflexion's ALFWorld logs with their verdicts
removed. It abstains, saying why, where it cannot tell; it never reads a recorded verdict.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from memp_core.config import Settings
from memp_core.facts import TASK_TYPES
from memp_core.importers.alfworld import parse_lines
from memp_core.importers.records import TrajectoryRecord
from memp_core.judge import JudgeInput, get_judge
from memp_core.judge.bench import hotpotqa_cases, reflexion_cases, run_judge_bench, strip_verdicts
from memp_core.judge.heuristic import HeuristicJudge
from memp_core.judge.judgements import judge_input
from memp_core.llm import StepView
from memp_core.models import Step, Trajectory
from memp_core.sim.agents import HeuristicAgent
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.sim.world import World
from memp_core.vocab import Verdict

JUDGE = HeuristicJudge()

HEAT = [
    StepView("go to countertop 1", "On the countertop 1, you see a egg 1."),
    StepView("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
    StepView("go to microwave 1", "The microwave 1 is closed."),
    StepView("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
    StepView("go to diningtable 1", "On the diningtable 1, you see a fork 1."),
    StepView("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
]


def verdict_of(task: str, steps: list[StepView], environment: str = "alfworld") -> Verdict:
    return JUDGE.judge(JudgeInput(task, steps, environment)).verdict


def simulated(strength: str, n: int, seed: int, limit: int) -> list[tuple[str, bool, Verdict]]:
    """(task type, what the world decided, the judge's verdict) for ``n`` seeded tasks."""
    agent = HeuristicAgent(strength)
    out = []
    for scene_seed, task_type in task_seeds(n, seed, TASK_TYPES):
        ep = agent.run(World(make_scene(scene_seed, task_type), limit))
        verdict = JUDGE.judge(JudgeInput(ep.task, ep.steps, "household-sim")).verdict
        out.append((task_type, ep.success, verdict))
    return out


@pytest.mark.parametrize("strength", ["strong", "weak"])
def test_simulator_runs_of_every_task_type_are_judged_as_the_world_decided(
    strength: str,
) -> None:
    # the world's step limit, and a short one that cuts runs: failures of every task type
    runs = simulated(strength, 120, seed=11, limit=50) + simulated(strength, 60, 12, limit=8)
    seen = Counter((t, ok) for t, ok, _ in runs)
    # the sample holds successes and failures of every task type, else the test proves less
    assert all(seen[(t, True)] and seen[(t, False)] for t in TASK_TYPES), seen
    wrong = [(t, ok, v) for t, ok, v in runs if v != (Verdict.success if ok else Verdict.failure)]
    assert wrong == []


def test_a_heated_egg_put_down_is_a_success_and_the_rationale_says_where() -> None:
    v = JUDGE.judge(JudgeInput("heat some egg and put it in diningtable.", HEAT, "alfworld"))
    assert v.verdict == Verdict.success and v.confidence >= 0.9
    assert "step 5" in v.rationale and "hot egg" in v.rationale


def test_an_egg_put_down_cold_is_a_failure_saying_it_was_never_heated() -> None:
    steps = [HEAT[0], HEAT[1], HEAT[4], HEAT[5]]
    v = JUDGE.judge(JudgeInput("heat some egg and put it in diningtable.", steps, "alfworld"))
    assert v.verdict == Verdict.failure
    assert "never made hot" in v.rationale


def test_refused_actions_change_nothing() -> None:
    steps = [*HEAT[:5], StepView("put egg 1 in/on diningtable 1", "Nothing happens.")]
    assert verdict_of("heat some egg and put it in diningtable.", steps) == Verdict.failure


def test_an_action_counts_only_when_the_answer_confirms_it() -> None:
    """A put answered with another sentence (a transcript's artifact) put nothing down."""
    odd = StepView("put egg 1 in/on diningtable 1", "You turn on the desklamp 1.")
    v = JUDGE.judge(JudgeInput("heat some egg and put it in diningtable.", [*HEAT[:5], odd]))
    assert v.verdict == Verdict.failure and "no hot egg ended in/on a diningtable" in v.rationale


def test_a_goal_reached_before_unconfirmed_trailing_actions_is_a_less_sure_success() -> None:
    odd = StepView("look around", "You turn on the desklamp 1.")  # answered, not followed
    v = JUDGE.judge(JudgeInput("heat some egg and put it in diningtable.", [*HEAT, odd]))
    assert v.verdict == Verdict.success and v.confidence < 0.9
    assert "1 later action(s) had no confirmed effect" in v.rationale


def test_pick_two_needs_two_and_one_taken_back_does_not_count() -> None:
    def put(n: int) -> list[StepView]:
        return [
            StepView(f"take cd {n} from desk 1", f"You pick up the cd {n} from the desk 1."),
            StepView("go to safe 1", "The safe 1 is open. In it, you see nothing."),
            StepView(f"put cd {n} in/on safe 1", f"You put the cd {n} in/on the safe 1."),
            StepView("go to desk 1", "On the desk 1, you see a pen 1."),
        ]

    task = "put two cd in safe."
    assert verdict_of(task, put(1)) == Verdict.failure
    assert verdict_of(task, put(1) + put(2)) == Verdict.success
    back = [StepView("go to safe 1", "On the safe 1, you see a cd 1."),
            StepView("take cd 1 from safe 1", "You pick up the cd 1 from the safe 1.")]  # fmt: skip
    assert verdict_of(task, put(1) + back + put(2)[:3]) == Verdict.failure


def test_looking_under_a_lamp_needs_the_lamp_on_where_the_object_is_held() -> None:
    take = StepView("take bowl 1 from desk 2", "You pick up the bowl 1 from the desk 2.")
    lamp = StepView("use desklamp 1", "You turn on the desklamp 1.")
    at1 = StepView("go to desk 1", "On the desk 1, you see a desklamp 1.")
    at2 = StepView("go to desk 2", "On the desk 2, you see a bowl 1.")
    task = "look at bowl under the desklamp."
    assert verdict_of(task, [at2, take, at1, lamp]) == Verdict.success
    assert verdict_of(task, [at1, lamp, at2, take]) == Verdict.failure  # lamp left behind


def test_a_run_that_goes_on_by_a_lit_lamp_shows_the_lamp_went_off() -> None:
    """The world ends an episode at its goal: a run that went on after the agent came back
    with the bowl to the lamp it had lit says that lamp was off (a timer lamp)."""
    lamp = StepView("use desklamp 1", "You turn on the desklamp 1.")
    at1 = StepView("go to desk 1", "On the desk 1, you see a desklamp 1.")
    at2 = StepView("go to desk 2", "On the desk 2, you see a bowl 1.")
    take = StepView("take bowl 1 from desk 2", "You pick up the bowl 1 from the desk 2.")
    task = "look at bowl under the desklamp."
    back = [at1, lamp, at2, take, at1]  # holding the bowl by the lamp lit before
    assert verdict_of(task, back) == Verdict.success  # the world ended it there: it was on
    assert verdict_of(task, [*back, lamp]) == Verdict.success  # lit again: now it holds
    went_on = JUDGE.judge(JudgeInput(task, [*back, at2, StepView("look", "You are facing "
                                                                  "the desk 2.")]))  # fmt: skip
    assert went_on.verdict == Verdict.failure and "seemed to hold at step 4" in went_on.rationale


@pytest.mark.parametrize(
    ("task", "environment", "steps", "why"),
    [
        ("What year was the band founded?", "hotpotqa", HEAT, "question answering"),
        ("book a flight to Oslo", "webarena", HEAT, "unknown environment"),
        ("summarise the report for the board", "alfworld", HEAT, "not a household task"),
        ("heat some egg and put it in diningtable.", "alfworld", [], "no actions"),
        ("heat some egg and put it in diningtable.", "alfworld",
         [StepView("go to countertop 1", "")], "no observations"),
    ],
)  # fmt: skip
def test_it_abstains_saying_why_where_it_cannot_tell(
    task: str, environment: str, steps: list[StepView], why: str
) -> None:
    v = JUDGE.judge(JudgeInput(task, steps, environment))
    assert v.verdict == Verdict.unknown and v.abstained and v.confidence == 0.0
    assert why in v.rationale


def test_the_judge_reads_no_recorded_verdict_reward_ending_or_reflection() -> None:
    """Two stored runs that differ only in what was recorded about their outcome give the
    judge the same input, hence the same verdict (here: the steps show a failure)."""
    steps = [Step(trajectory_id=1, index=i, action=s.action, observation=s.observation)
             for i, s in enumerate(HEAT[:4])]  # fmt: skip
    plain = Trajectory(id=1, task="heat some egg and put it in diningtable.",
                       environment="alfworld", success=None)  # fmt: skip
    told = Trajectory(
        id=1, task=plain.task, environment="alfworld", success=True, reward=1.0,
        facts={"outcome": "STATUS: OK", "ended": {"reason": "goal", "detail": "in 4 steps"}},
        reflections=["it worked"],
    )  # fmt: skip
    for st in steps:
        st.is_error = st.is_loop = True  # the step flags are not read either
    assert judge_input(plain, steps) == judge_input(told, steps)
    assert JUDGE.judge(judge_input(told, steps)).verdict == Verdict.failure


def test_stripping_verdicts_removes_status_lines_and_the_reflection_after_them() -> None:
    text = (
        "You are in the middle of a room.\nYour task is to: put some cd in safe.\n"
        "> go to safe 1\nThe safe 1 is closed.\nSTATUS: FAIL\nNew plan: I should have opened "
        "the safe.\nIt was closed.\n\nYou are in the middle of a room.\n"
        "Your task is to: put some pen in desk.\n> go to desk 1\nOn the desk 1, you see nothing.\n"
    )
    stripped = strip_verdicts(text)
    assert "STATUS" not in stripped and "New plan" not in stripped and "closed.\nIt" not in stripped
    recs = [r for r in parse_lines(enumerate(stripped.splitlines(), 1), "t")
            if isinstance(r, TrajectoryRecord)]  # fmt: skip
    assert [r.task for r in recs] == ["put some cd in safe.", "put some pen in desk."]
    assert all(r.success is None and not r.reflections for r in recs)
    assert "plan" not in (recs[0].steps[-1].observation or "").lower()


def test_reflexion_alfworld_logs_with_status_removed_are_judged_right(shared_data: Path) -> None:
    cases = list(reflexion_cases(shared_data))
    assert len(cases) == 26 and sum(not c.truth for c in cases) == 2
    assert {c.source for c in cases} == {"reflexion demos", "reflexion failures"}
    assert not any("STATUS" in o or "New plan" in o for c in cases for _, _, o in c.steps)
    judge = HeuristicJudge()
    for c in cases:
        steps = [StepView(a, o, t) for t, a, o in c.steps]
        v = judge.judge(JudgeInput(c.task, steps, c.environment))
        assert v.verdict == (Verdict.success if c.truth else Verdict.failure), (c.name, v)


def test_the_bench_on_a_lone_clone_judges_the_simulator_and_says_the_logs_are_absent(
    tmp_path: Path,
) -> None:
    result = run_judge_bench(get_judge("heuristic", Settings()), data=tmp_path, sim_tasks=12)
    report = result.as_dict()
    sources = [s["source"] for s in report["by_source"]]  # type: ignore[attr-defined]
    assert sources == ["simulator", "simulator 10 steps"]
    assert report["runs"] == 24 + 12 and report["judged"] + report["abstained"] == 36
    assert report["agree"] == 1.0
    assert any("Reflexion ALFWorld logs not judged" in n for n in result.notes)
    assert any("Reflexion HotpotQA log not judged" in n for n in result.notes)


def qa(*actions: str, gold: str = "the Louvre") -> JudgeInput:
    steps = [StepView(a, "") for a in actions]
    return JudgeInput("Which is older, the Louvre or the Prado?", steps, "hotpotqa",
                      reference_answer=gold)  # fmt: skip


def test_a_question_with_a_gold_answer_is_judged_by_hotpotqas_exact_match() -> None:
    right = JUDGE.judge(qa("Search[Louvre]", "Finish[Louvre.]"))
    assert right.verdict == Verdict.success and "matches the gold answer" in right.rationale
    wrong = JUDGE.judge(qa("Finish[the Prado]"))
    assert wrong.verdict == Verdict.failure and "'the Louvre'" in wrong.rationale
    halted = JUDGE.judge(qa("Search[Louvre]", "Search[Prado]"))
    assert halted.verdict == Verdict.failure and "never answered" in halted.rationale
    assert JUDGE.judge(qa("Finish[Louvre]", gold="")).verdict == Verdict.unknown


def test_reflexion_hotpotqa_is_judged_without_the_environments_verdict(
    shared_data: Path,
) -> None:
    cases = list(hotpotqa_cases(shared_data))
    assert len(cases) > 400 and all(c.reference_answer for c in cases)
    said = [o for c in cases for _, _, o in c.steps]
    assert not any("answer is correct" in o.lower() or "incorrect" in o.lower() for o in said)
    for c in cases[:150]:
        steps = [StepView(a, o, t) for t, a, o in c.steps]
        v = JUDGE.judge(
            JudgeInput(c.task, steps, c.environment, reference_answer=c.reference_answer)
        )
        assert v.verdict == (Verdict.success if c.truth else Verdict.failure), (c.name, v)
