from memp_core import prompts
from memp_core.llm import RunView, StepView

RUN = RunView(
    task="heat some egg and put it in diningtable",
    task_type="heat",
    success=True,
    steps=[
        StepView(action="go to fridge 1", observation="The fridge 1 is closed."),
        StepView(action="open fridge 1", observation="You open the fridge 1.", thought="egg?"),
        StepView(action="take egg 1 from fridge 1", observation="You pick up the egg 1."),
    ],
)


def test_script_messages_show_task_type_runs_and_the_answer_format() -> None:
    msgs = prompts.script_messages("heat", [RUN, RUN])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "<script>" in msgs[0]["content"] and "<object>" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert "Task type: heat" in user and "Successful runs (2)" in user
    assert "[1] > open fridge 1" in user and "[1] think: egg?" in user
    assert user.count("Task: heat some egg") == 2


def test_reflect_messages_pair_the_followed_script_with_the_failed_run() -> None:
    failed = RunView(task=RUN.task, task_type="heat", success=False, steps=RUN.steps)
    msgs = prompts.reflect_messages(failed, "1. Find the <object>.\n2. Heat it.")
    assert "<failing_step>" in msgs[0]["content"] and "<analysis>" in msgs[0]["content"]
    assert "1. Find the <object>." in msgs[1]["content"]
    assert "Outcome: failure" in msgs[1]["content"]


def test_long_runs_are_shortened_but_keep_their_last_steps() -> None:
    steps = [StepView(action=f"go to cabinet {i}", observation="Nothing.") for i in range(200)]
    text = prompts.render_steps(steps, limit=30)
    assert "(170 steps omitted)" in text
    assert "[0] > go to cabinet 0" in text and "[199] > go to cabinet 199" in text
    assert "[100] >" not in text


def test_long_observations_are_cut() -> None:
    text = prompts.render_steps([StepView(action="look", observation="x " * 1000)])
    assert text.endswith("...") and len(text) < 400


def test_repair_messages_append_the_bad_answer_and_the_problem() -> None:
    base = prompts.script_messages("heat", [RUN])
    msgs = prompts.repair_messages(base, "blah", "missing <script> section")
    assert msgs[: len(base)] == base
    assert msgs[-2] == {"role": "assistant", "content": "blah"}
    assert "missing <script> section" in msgs[-1]["content"]


def test_react_messages_alternate_actions_and_observations_with_procedures_in_system() -> None:
    msgs = prompts.react_messages(
        RUN.task,
        "You are in the middle of a room.",
        history=RUN.steps[:2],
        procedures=["1. Find the <object>.", "1. Go to the microwave."],
    )
    assert (
        msgs[0]["role"] == "system"
        and "Procedure 2:\n1. Go to the microwave." in msgs[0]["content"]
    )
    assert msgs[1]["content"].endswith("Your task is to: heat some egg and put it in diningtable")
    assert [m["role"] for m in msgs[2:]] == ["assistant", "user", "assistant", "user"]
    assert (
        msgs[2]["content"] == "go to fridge 1" and msgs[3]["content"] == "The fridge 1 is closed."
    )


def test_react_messages_without_memory_have_no_procedure_section() -> None:
    msgs = prompts.react_messages("put a mug in shelf", "Room.")
    assert "Procedure" not in msgs[0]["content"] and len(msgs) == 2


def test_repair_of_a_cut_answer_asks_for_a_shorter_one_and_echoes_only_its_start() -> None:
    base = prompts.script_messages("heat", [RUN])
    ramble = "and then " * 2000
    msgs = prompts.repair_messages(base, ramble, "script: Field required", cut_at=768)
    assert "cut off at the limit of 768 tokens" in msgs[-1]["content"]
    assert "script: Field required" in msgs[-1]["content"] and "shorter" in msgs[-1]["content"]
    echoed = msgs[-2]["content"]
    assert echoed.endswith(" [...]") and len(echoed) < len(ramble)


def test_each_answer_form_ends_with_the_tag_sent_as_its_stop_sequence() -> None:
    assert prompts.SCRIPT_SYSTEM_PROMPT.rstrip().endswith(prompts.SCRIPT_END)
    assert prompts.REFLECT_SYSTEM_PROMPT.rstrip().endswith(prompts.REFLECT_END)
    assert prompts.JUDGE_SYSTEM_PROMPT.rstrip().endswith(prompts.JUDGE_END)


def test_judge_messages_show_task_opening_and_steps_but_no_outcome() -> None:
    system, user = prompts.judge_messages(
        RUN.task, RUN.steps, environment="alfworld", opening="You see a fridge 1."
    )
    assert system["role"] == "system" and "success, failure or unknown" in system["content"]
    text = user["content"]
    assert "Task: heat some egg and put it in diningtable" in text
    assert "Environment: alfworld" in text and "Opening observation: You see a fridge 1." in text
    assert "[2] > take egg 1 from fridge 1" in text and "[1] think: egg?" in text
    assert "Transcript (3 steps)" in text and "Outcome" not in text  # render_run would say it


def test_judge_messages_of_a_run_without_steps_say_so() -> None:
    _, user = prompts.judge_messages("look at a pen under the desklamp", [])
    assert "(no steps recorded)" in user["content"] and "(not recorded)" in user["content"]
    assert "Gold answer" not in user["content"]


def test_judge_messages_of_a_question_show_its_gold_answer() -> None:
    _, user = prompts.judge_messages(
        "Who wrote Don Quixote?",
        [StepView("Finish[Cervantes]")],
        environment="hotpotqa",
        reference="Miguel de Cervantes",
    )
    assert "Gold answer: Miguel de Cervantes" in user["content"]
