"""The household world: ALFWorld's grammar and wording, goals of all six types, seeds."""

from __future__ import annotations

import re

import pytest

from memp_core.facts import TASK_TYPES, extract_facts
from memp_core.sim.grammar import NOTHING, items_in, listing, parse_action, type_of
from memp_core.sim.tasks import Scene, Task, make_scene, task_seeds
from memp_core.sim.world import World


def scene(task_type: str, contents: dict[str, list[str]], openable: set[str], **task: str) -> Scene:
    """A hand-made scene (the same shape the generator makes) for exact assertions."""
    text = task.pop("text")
    t = Task(0, task_type, text, "kitchen", **task)
    receptacles = sorted(contents, key=lambda r: (type_of(r), -int(r.split()[-1])))
    locs = {r: i + 1 for i, r in enumerate(receptacles)}
    return Scene(t, receptacles, openable, contents, locs)


def kitchen(task_type: str = "heat", **task: str) -> World:
    contents = {
        "countertop 1": ["egg 2", "fork 1"],
        "fridge 1": ["lettuce 1"],
        "microwave 1": [],
        "drawer 1": ["knife 1"],
        "diningtable 1": [],
        "sinkbasin 1": [],
    }
    task.setdefault("text", "heat some egg and put it in diningtable")
    task.setdefault("obj", "egg")
    task.setdefault("target", "diningtable")
    return World(scene(task_type, contents, {"fridge 1", "microwave 1", "drawer 1"}, **task))


def test_intro_lists_receptacles_like_alfworld() -> None:
    w = kitchen()
    first, second = w.intro().split("\n")
    assert first.startswith("You are in the middle of a room. Looking quickly around you, you see ")
    assert (
        "a countertop 1, a diningtable 1, a drawer 1, a fridge 1, a microwave 1, and a sink"
        in first
    )
    assert second == "Your task is to: heat some egg and put it in diningtable."


def test_observations_use_alfworld_wording() -> None:
    w = kitchen()
    assert re.fullmatch(
        r"You arrive at loc \d+\. On the countertop 1, you see a egg 2, and a fork 1\.",
        w.step("go to countertop 1").observation,
    )
    assert w.step("take egg 2 from countertop 1").observation == (
        "You pick up the egg 2 from the countertop 1."
    )
    assert w.step("go to fridge 1").observation.endswith("The fridge 1 is closed.")
    assert w.step("open fridge 1").observation == (
        "You open the fridge 1. The fridge 1 is open. In it, you see a lettuce 1."
    )
    assert w.step("close fridge 1").observation == "You close the fridge 1."
    assert w.step("inventory").observation == "You are carrying: a egg 2."
    w.step("go to microwave 1")
    assert w.step("heat egg 2 with microwave 1").observation == (
        "You heat the egg 2 using the microwave 1."
    )
    w.step("go to diningtable 1")
    res = w.step("put egg 2 in/on diningtable 1")
    assert res.observation == "You put the egg 2 in/on the diningtable 1."
    assert res.done and res.success


def test_empty_open_receptacle_says_nothing() -> None:
    w = kitchen()
    w.step("go to microwave 1")
    assert w.step("open microwave 1").observation == (
        "You open the microwave 1. The microwave 1 is open. In it, you see nothing."
    )


@pytest.mark.parametrize(
    "action",
    ["dance", "go to fridge 9", "take egg 2 from countertop 1", "open countertop 1",
     "heat egg 2 with microwave 1", "put egg 2 in/on diningtable 1", "use desklamp 1", ""],
)  # fmt: skip
def test_invalid_or_impossible_actions_do_nothing(action: str) -> None:
    w = kitchen()  # standing in the middle of the room, holding nothing
    res = w.step(action)
    assert res.observation == NOTHING and not res.done
    assert w.steps == 1  # every attempt costs a step


def test_wrong_appliance_does_not_heat() -> None:
    w = kitchen()
    w.step("go to countertop 1")
    w.step("take egg 2 from countertop 1")
    w.step("go to sinkbasin 1")
    assert w.step("heat egg 2 with sinkbasin 1").observation == NOTHING
    w.step("go to diningtable 1")
    assert not w.step("put egg 2 in/on diningtable 1").success  # not hot: goal not met


def test_cannot_take_from_closed_or_put_into_closed() -> None:
    w = kitchen("put", text="put some egg in drawer", target="drawer")
    w.step("go to drawer 1")
    assert w.step("take knife 1 from drawer 1").observation == NOTHING
    w.step("go to countertop 1")
    w.step("take egg 2 from countertop 1")
    w.step("go to drawer 1")
    assert w.step("put egg 2 in/on drawer 1").observation == NOTHING
    w.step("open drawer 1")
    assert w.step("put egg 2 in drawer 1").success


def test_step_limit_ends_the_episode_as_a_failure() -> None:
    w = kitchen()
    w.max_steps = 3
    for _ in range(3):
        res = w.step("look")
    assert res.done and not res.success
    assert w.step("go to countertop 1").observation == NOTHING


def test_look_and_examine() -> None:
    w = kitchen()
    assert w.step("look").observation == (
        "You are in the middle of a room. Looking quickly around you, you see nothing."
    )
    w.step("go to countertop 1")
    assert (
        w.step("look").observation
        == "You are facing the countertop 1. Next to it, you see nothing."
    )
    assert w.step("examine countertop 1").observation.startswith("On the countertop 1, you see")
    assert w.step("examine egg 2").observation == "There's nothing special about egg 2."


def test_examine_needs_the_object_in_hand_under_the_lit_lamp() -> None:
    contents = {"desk 1": ["desklamp 1", "pen 1"], "shelf 1": ["bowl 1"]}
    w = World(scene("examine", contents, set(), text="look at bowl under the desklamp",
                    obj="bowl", lamp="desklamp"))  # fmt: skip
    w.step("go to desk 1")
    assert w.step("use desklamp 1").observation == "You turn on the desklamp 1."
    assert not w.success  # lit, but the bowl is not in hand
    w.step("go to shelf 1")
    w.step("take bowl 1 from shelf 1")
    assert w.step("go to desk 1").success


def test_puttwo_needs_two_objects_in_the_target() -> None:
    contents = {"sofa 1": [], "bed 1": ["pillow 1", "pillow 2"]}
    w = World(scene("puttwo", contents, set(), text="put two pillow in sofa", obj="pillow",
                    target="sofa"))  # fmt: skip
    results = []
    for n in (1, 2):
        for action in ("go to bed 1", f"take pillow {n} from bed 1", "go to sofa 1",
                       f"put pillow {n} in/on sofa 1"):  # fmt: skip
            results.append(w.step(action))
    assert not results[3].success  # one pillow is not two
    assert results[-1].success and w.steps == 8


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_task_type_is_generated_parseable_and_feasible(task_type: str) -> None:
    for seed in range(20):
        sc = make_scene(seed, task_type)
        facts = extract_facts(sc.task.text)
        assert facts.task_type == task_type, sc.task.text
        assert facts.object == sc.task.obj
        held = [i for items in sc.contents.values() for i in items if type_of(i) == sc.task.obj]
        assert len(held) >= (2 if task_type == "puttwo" else 1)
        if sc.task.target:
            assert any(type_of(r) == sc.task.target for r in sc.receptacles)
            # the task never starts solved: no copy of the object lies in a target already
            assert not any(
                type_of(r) == sc.task.target and type_of(i) == sc.task.obj
                for r, items in sc.contents.items() for i in items
            )  # fmt: skip


def test_same_seed_same_episode_and_different_seeds_differ() -> None:
    a, b = World.from_seed(42, "clean"), World.from_seed(42, "clean")
    assert a.intro() == b.intro() and a.scene.contents == b.scene.contents
    actions = [f"go to {r}" for r in a.scene.receptacles[:6]]
    assert [a.step(x).observation for x in actions] == [b.step(x).observation for x in actions]
    assert World.from_seed(43, "clean").intro() != a.intro() or (
        World.from_seed(43, "clean").scene.contents != a.scene.contents
    )
    assert task_seeds(12, 1) == task_seeds(12, 1) != task_seeds(12, 2)


def test_task_seeds_cycle_through_the_types() -> None:
    types = [t for _, t in task_seeds(60, 0)]
    assert {types.count(t) for t in TASK_TYPES} == {10}


def test_grammar_helpers_read_alfworld_text() -> None:
    assert parse_action("> take spraybottle 2 from cabinet 2").obj_id == "spraybottle 2"
    assert parse_action("put egg 1 in/on countertop 3").place_id == "countertop 3"
    assert parse_action("think: where is it?") is None
    assert items_in("You open the cabinet 2. The cabinet 2 is open. In it, you see a candle 1, "
                    "and a spraybottle 2.") == ["candle 1", "spraybottle 2"]  # fmt: skip
    assert listing(["pan 1"]) == "a pan 1" and listing([]) == "nothing"


def test_a_long_walk_counts_every_step_and_answers_each_one() -> None:
    """5,000 moves (speed is measured by the learning bench, not asserted here): every step
    is counted and answered as ALFWorld would, arriving or "Nothing happens." when already
    there."""
    w = World.from_seed(7, "put", max_steps=10_000)
    places = w.scene.receptacles
    answers = [w.step(f"go to {places[i // 2 % len(places)]}").observation for i in range(5_000)]
    assert w.steps == 5_000
    assert all(a.startswith("You arrive at") for a in answers[0::2])
    assert set(answers[1::2]) == {"Nothing happens."}
