"""What a procedure teaches: one reader for scripts, its summary, and memory served in parts."""

from __future__ import annotations

from memp_core.heuristic import HeuristicBackend
from memp_core.llm import RunView, StepView
from memp_core.sim.guide import Recall, read_guide, served
from memp_core.sim.lesson import PARTS, read_lesson

REFLECTED = (
    "1. do not open drawer: it stays shut here\n"
    "2. find <object>: check fridge (3/4), countertop (1/1); rarely in cabinet (0/2); "
    "open closed ones\n"
    "3. take <object>\n"
    "4. go to stoveburner\n"
    "5. heat <object> with stoveburner; not microwave (it does nothing here)\n"
    "6. go to <receptacle>\n"
    "7. open <receptacle>\n"
    "8. put <object> in/on <receptacle>: if it does nothing, do not repeat it"
)


def test_a_script_reads_into_its_five_parts() -> None:
    lesson = read_lesson(REFLECTED, "heat some egg and put it in cabinet", "heat")
    assert lesson.where is not None and lesson.where.stats == {
        "fridge": [3, 4], "countertop": [1, 1], "cabinet": [0, 2]
    }  # fmt: skip
    assert lesson.tools == {"heat": "stoveburner"} and lesson.avoid == {"heat": {"microwave"}}
    assert lesson.open_closed and lesson.open_target
    assert lesson.locked == {"drawer"} and lesson.no_repeat
    assert lesson.summary() == (
        "finds it: fridge 3/4, countertop 1/1; heats with the stoveburner (not microwave); "
        "opens the target, closed places first; drawer never open; "
        "does not repeat what did nothing"
    )


def test_rendering_a_lesson_reads_back_as_the_same_lesson() -> None:
    lesson = read_lesson(REFLECTED, task_type="heat")
    again = read_lesson(lesson.render(), task_type="heat")
    assert again.summary() == lesson.summary()
    assert again.where is not None and again.where.stats == lesson.where.stats  # type: ignore[union-attr]
    for parts in ({"locations"}, set(PARTS) - {"locations"}, {"tools"}, {"warnings"}):
        kept = lesson.keep(parts)
        assert read_lesson(kept.render(), task_type="heat").summary() == kept.summary()


def test_memory_served_without_locations_keeps_the_procedure_and_drops_the_places() -> None:
    recall = Recall("heat some egg and put it in cabinet", "heat", REFLECTED, revision_id=4)
    without = served(recall, frozenset(set(PARTS) - {"locations"}))
    assert "fridge" not in without.script and "countertop" not in without.script
    g = read_guide("heat some egg and put it in shelf", [without])
    assert g.where == {} and g.tools == {"heat": "stoveburner"}
    assert g.avoid == {"heat": {"microwave"}} and g.locked == {"drawer"} and g.open_closed
    assert g.followed == 4  # still the procedure for this task: failures reflect into it
    only = read_guide(
        "heat some egg and put it in shelf", [served(recall, frozenset({"locations"}))]
    )
    assert only.where["fridge"] == [3, 4]
    assert only.tools == {} and only.avoid == {} and not only.locked and not only.open_closed
    assert read_guide("heat some egg and put it in shelf", [served(recall, None)]).tools == {
        "heat": "stoveburner"
    }


def test_free_text_from_a_person_reads_through_the_same_reader() -> None:
    text = (
        "1. The drawers are locked, don't bother.\n2. Find the egg: check the fridge.\n"
        "3. Take it.\n4. Open the microwave.\n5. Heat the egg with the microwave."
    )
    lesson = read_lesson(text, "heat some egg and put it in countertop")
    assert lesson.locked == {"drawer"} and lesson.tools == {"heat": "microwave"}
    assert lesson.where is not None and lesson.where.hints == ["fridge"]
    assert lesson.open_tools == {"microwave"}


def _run(task: str, pairs: list[tuple[str, str]], success: bool) -> RunView:
    return RunView(task, "", success, [StepView(a, o) for a, o in pairs])


def test_the_reflector_writes_the_household_convention_it_met() -> None:
    failed = _run(
        "heat some egg and put it in countertop",
        [
            ("go to drawer 1", "The drawer 1 is closed."),
            ("open drawer 1", "Nothing happens."),
            ("go to fridge 1", "The fridge 1 is closed."),
            ("open fridge 1", "You open the fridge 1. The fridge 1 is open. In it, you see "
                              "a egg 1."),
            ("take egg 1 from fridge 1", "You pick up the egg 1 from the fridge 1."),
            ("go to microwave 1", "The microwave 1 is closed."),
            ("heat egg 1 with microwave 1", "Nothing happens."),
            ("open microwave 1", "You open the microwave 1. The microwave 1 is open. In it, "
                                 "you see nothing."),
            ("heat egg 1 with microwave 1", "Nothing happens."),
            ("go to stoveburner 1", "On the stoveburner 1, you see nothing."),
            ("heat egg 1 with stoveburner 1", "You heat the egg 1 using the stoveburner 1."),
        ],
        False,
    )  # fmt: skip
    script = (
        "1. find <object>: check fridge\n2. take <object>\n3. go to microwave\n"
        "4. heat <object> with microwave\n5. go to <receptacle>\n"
        "6. put <object> in/on <receptacle>"
    )
    refl = HeuristicBackend().reflect(failed, script)
    lesson = read_lesson(refl.script, task_type="heat")
    assert lesson.tools == {"heat": "stoveburner"} and lesson.avoid == {"heat": {"microwave"}}
    assert lesson.locked == {"drawer"}
    assert "The microwave does not heat here: use the stoveburner." in refl.analysis
