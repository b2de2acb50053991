"""The offline heuristic backend: scripts from runs, reflections that repair the failing step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memp_core.config import Settings
from memp_core.errors import MempError
from memp_core.facts import extract_facts
from memp_core.heuristic import HeuristicBackend
from memp_core.llm import RunView, StepView, get_backend
from memp_core.sim.script import FindLine
from memp_core.sim.transcript import step_flags


def run(task: str, pairs: list[tuple[str, str]], success: bool = True) -> RunView:
    steps = [StepView(a, o) for a, o in pairs]
    return RunView(task, extract_facts(task).task_type, success, steps, trajectory_id=1)


HEAT_OK = run(
    "heat some egg and put it in diningtable",
    [
        ("think: an egg is likely in the fridge", "OK."),
        ("go to fridge 1", "You arrive at loc 3. The fridge 1 is closed."),
        ("open fridge 1", "You open the fridge 1. The fridge 1 is open. In it, you see a egg 1."),
        ("take egg 1 from fridge 1", "You pick up the egg 1 from the fridge 1."),
        ("go to microwave 1", "You arrive at loc 9. The microwave 1 is closed."),
        ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
        ("go to diningtable 1", "You arrive at loc 2. On the diningtable 1, you see nothing."),
        ("put egg 1 in/on diningtable 1", "You put the egg 1 in/on the diningtable 1."),
    ],
)


def test_backend_is_registered_and_labelled_heuristic() -> None:
    backend = get_backend("heuristic", Settings())
    assert isinstance(backend, HeuristicBackend)
    assert backend.name == backend.model == backend.author == "heuristic"


def test_script_generalises_objects_and_keeps_appliances_concrete() -> None:
    draft = HeuristicBackend(Settings()).write_script("heat", [HEAT_OK])
    assert draft.script.splitlines() == [
        "1. find <object>: check fridge (1/1); open closed ones",
        "2. take <object>",
        "3. go to microwave",
        "4. heat <object> with microwave",
        "5. go to <receptacle>",
        "6. put <object> in/on <receptacle>",
    ]
    assert "egg" not in draft.script and "diningtable" not in draft.script
    assert "heat with microwave" in draft.rationale and "#1" in draft.rationale


def test_script_from_several_runs_counts_where_objects_were() -> None:
    other = run(
        "put a hot egg in countertop",
        [
            ("go to fridge 1", "The fridge 1 is closed."),
            (
                "open fridge 1",
                "You open the fridge 1. The fridge 1 is open. In it, you see nothing.",
            ),
            ("go to diningtable 1", "On the diningtable 1, you see a egg 3."),
            ("take egg 3 from diningtable 1", "You pick up the egg 3 from the diningtable 1."),
            ("go to microwave 1", "The microwave 1 is closed."),
            ("heat egg 3 with microwave 1", "You heat the egg 3 using the microwave 1."),
            ("go to countertop 1", "On the countertop 1, you see nothing."),
            ("put egg 3 in/on countertop 1", "You put the egg 3 in/on the countertop 1."),
        ],
    )
    line = HeuristicBackend().write_script("heat", [HEAT_OK, other]).script.splitlines()[0]
    found = FindLine.parse(line)
    assert found.stats == {"fridge": [1, 2], "diningtable": [1, 1]}


def test_write_script_needs_runs() -> None:
    with pytest.raises(MempError):
        HeuristicBackend().write_script("heat", [])


def test_reflect_replaces_a_tool_that_did_nothing_with_the_one_that_worked() -> None:
    failed = run(
        "heat some egg and put it in diningtable",
        [
            ("go to countertop 1", "On the countertop 1, you see a egg 2."),
            ("take egg 2 from countertop 1", "You pick up the egg 2 from the countertop 1."),
            ("go to stoveburner 1", "On the stoveburner 1, you see nothing."),
            ("heat egg 2 with stoveburner 1", "Nothing happens."),
            ("go to microwave 1", "The microwave 1 is closed."),
            ("heat egg 2 with microwave 1", "You heat the egg 2 using the microwave 1."),
        ],
        success=False,
    )
    script = "1. find <object>: check fridge\n2. take <object>\n3. go to stoveburner\n" \
             "4. heat <object> with stoveburner\n5. go to <receptacle>\n" \
             "6. put <object> in/on <receptacle>"  # fmt: skip
    refl = HeuristicBackend().reflect(failed, script)
    lines = refl.script.splitlines()
    assert "3. go to microwave" in lines
    assert "4. heat <object> with microwave; not stoveburner (it does nothing here)" in lines
    assert "go to stoveburner" not in refl.script  # named only as the one that does nothing
    assert refl.failing_step == 3  # the first action that did nothing
    assert "heat egg 2 with stoveburner 1" in refl.analysis and "microwave" in refl.analysis
    assert "countertop (1/1)" in lines[0]  # where it was, counted


def test_reflect_on_a_loop_names_it_and_rewrites_that_step() -> None:
    failed = run(
        "put some spraybottle on toilet",
        [
            ("go to cabinet 1", "The cabinet 1 is closed."),
            (
                "open cabinet 1",
                "You open the cabinet 1. The cabinet 1 is open. In it, you see a spraybottle 1.",
            ),  # noqa: E501
            (
                "take spraybottle 1 from cabinet 1",
                "You pick up the spraybottle 1 from the cabinet 1.",
            ),  # noqa: E501
            ("go to toilet 1", "The toilet 1 is closed."),
            ("put spraybottle 1 in/on toilet 1", "Nothing happens."),
            ("put spraybottle 1 in/on toilet 1", "Nothing happens."),
        ],
        success=False,
    )
    script = "1. find <object>: check cabinet\n2. take <object>\n3. go to <receptacle>\n" \
             "4. put <object> in/on <receptacle>"  # fmt: skip
    refl = HeuristicBackend().reflect(failed, script)
    assert "stuck repeating `put spraybottle 1 in/on toilet 1`" in refl.analysis
    assert "4. open <receptacle>" in refl.script  # the closed target is opened first
    assert re.search(
        r"put <object> in/on <receptacle>: if it does nothing, do not repeat", refl.script
    )
    assert refl.failing_step == 4


def test_reflect_counts_places_searched_in_vain_without_erasing_evidence() -> None:
    failed = run(
        "cool some lettuce and put it in countertop",
        [
            ("go to fridge 1", "The fridge 1 is closed."),
            (
                "open fridge 1",
                "You open the fridge 1. The fridge 1 is open. In it, you see a egg 1.",
            ),
            ("go to cabinet 1", "On the cabinet 1, you see nothing."),
        ],
        success=False,
    )
    script = "1. find <object>: check fridge (3/3)\n2. take <object>\n3. go to fridge\n" \
             "4. cool <object> with fridge"  # fmt: skip
    refl = HeuristicBackend().reflect(failed, script)
    line = FindLine.parse(refl.script.splitlines()[0].split(". ", 1)[1])
    assert line.stats == {"fridge": [3, 4], "cabinet": [0, 1]}
    assert line.hints == ["fridge"] and line.rare == ["cabinet"]
    assert "searched 2 places for the lettuce without finding it" in refl.analysis
    assert "ran out of steps" not in refl.analysis


def test_reflect_without_a_script_builds_one_from_the_failed_run() -> None:
    failed = run("heat some egg and put it in diningtable", HEAT_OK_STEPS[:4], success=False)
    refl = HeuristicBackend().reflect(failed, "")
    assert refl.script.startswith("1. find <object>")
    assert "heat <object>" in refl.script


HEAT_OK_STEPS = [(s.action, s.observation) for s in HEAT_OK.steps]


def test_a_first_script_from_a_failure_warns_and_claims_nothing_it_did_not_see() -> None:
    """No procedure was followed: the failure alone writes one. The microwave that did
    nothing is excluded, the locked drawer is named, and the places searched in vain are
    misses, never hints (the old reflector counted them as places the egg was found)."""
    failed = run(
        "heat some egg and put it in diningtable",
        [
            ("go to drawer 1", "You arrive at loc 4. The drawer 1 is closed."),
            ("open drawer 1", "Nothing happens."),
            ("go to fridge 1", "You arrive at loc 3. The fridge 1 is closed."),
            (
                "open fridge 1",
                "You open the fridge 1. The fridge 1 is open. In it, you see a apple 1.",
            ),
            ("go to countertop 1", "You arrive at loc 5. On the countertop 1, you see a egg 1."),
            ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
            ("go to microwave 1", "You arrive at loc 9. The microwave 1 is open."),
            ("heat egg 1 with microwave 1", "Nothing happens."),
        ],
        success=False,
    )
    refl = HeuristicBackend().reflect(failed, "")
    lines = refl.script.splitlines()
    assert lines[0] == "1. do not open drawer: it stays shut here"
    find = FindLine.parse(lines[1].split(". ", 1)[1])
    assert find.stats == {"countertop": [1, 1], "fridge": [0, 1]}  # seen once, counted once
    assert "heat <object>: try the appliances one by one, not microwave" in refl.script
    assert "The microwave did not heat the egg here" in refl.analysis
    assert "The drawer would not open" in refl.analysis
    lost = run(
        "put some egg in diningtable",
        [(st.action, st.observation) for st in failed.steps[2:4]],
        False,
    )
    search = HeuristicBackend().reflect(lost, "").script.splitlines()[0]
    assert FindLine.parse(search.split(". ", 1)[1]).hints == []  # it was never in the fridge


def test_step_flags_mark_errors_and_loops_not_thoughts() -> None:
    steps = [
        StepView("think: hm", "OK."),
        StepView("go to shelf 1", "On the shelf 1, you see nothing."),
        StepView("examine shelf 1", "On the shelf 1, you see nothing."),
        StepView("examine shelf 1", "On the shelf 1, you see nothing."),
        StepView("fly", "Nothing happens."),
    ]
    assert step_flags(steps) == [(False, False), (False, False), (False, False), (False, True),
                                 (True, False)]  # fmt: skip


def _transcripts(path: Path) -> dict[str, RunView]:
    data = json.loads(path.read_text())
    out = {}
    for key, text in data.items():
        lines = text.strip().split("\n")
        task = next(ln for ln in lines if ln.startswith("Your task is to:")).split(":", 1)[1]
        pairs = [
            (lines[i][1:].strip(), lines[i + 1] if i + 1 < len(lines) else "")
            for i in range(len(lines)) if lines[i].startswith(">")
        ]  # fmt: skip
        out[key] = run(task.strip(), pairs)
    return out


def test_scripts_from_real_alfworld_transcripts(shared_data: Path) -> None:
    runs = _transcripts(shared_data / "reflexion-alfworld" / "react_prompts_alfworld.json")
    backend = HeuristicBackend()
    expect_tool = {"heat": "microwave", "cool": "fridge", "clean": "sinkbasin"}
    for key, rv in runs.items():
        script = backend.write_script(rv.task_type, [rv]).script
        assert script.startswith("1. find <object>"), key
        assert "think" not in script, key
        if rv.task_type in expect_tool:
            assert f"{rv.task_type} <object> with {expect_tool[rv.task_type]}" in script, key
        if rv.task_type == "examine":
            assert "use desklamp" in script, key
        if rv.task_type == "puttwo":
            assert "find the second <object>" in script, key


def test_reflection_on_a_real_failed_transcript(shared_data: Path) -> None:
    text = (shared_data / "reflexion-alfworld" / "reflexion_few_shot_examples.txt").read_text()
    block = text.split("STATUS: FAIL")[0]
    lines = block.strip().split("\n")
    pairs = [(lines[i][1:].strip(), lines[i + 1]) for i in range(len(lines) - 1)
             if lines[i].startswith(">")]  # fmt: skip
    failed = run("heat some mug and put it in coffeemachine", pairs, success=False)
    refl = HeuristicBackend().reflect(failed, "")
    assert "stuck repeating `examine stoveburner 1`" in refl.analysis
    assert failed.steps[refl.failing_step].action.strip() == "examine stoveburner 1"
