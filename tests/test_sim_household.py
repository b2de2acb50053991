"""Households: conventions the world applies, within ALFWorld's grammar and wording."""

from __future__ import annotations

from memp_core.sim.agents import HeuristicAgent
from memp_core.sim.household import ALFWORLD, Household, household
from memp_core.sim.priors import FAIR, NO_PRIORS
from memp_core.sim.tasks import Scene, Task, make_scene
from memp_core.sim.world import World

HOME = Household(7, heater="stoveburner", open_first=frozenset({"fridge"}),
                 locked=frozenset({"drawer"}), lamps_timed=True)  # fmt: skip


def kitchen(home: Household, task_type: str = "heat") -> World:
    contents: dict[str, list[str]] = {
        "cabinet 1": [], "cabinet 2": [], "countertop 1": ["egg 1"], "drawer 1": [],
        "drawer 2": [], "fridge 1": [], "microwave 1": [], "stoveburner 1": [],
        "diningtable 1": [], "sinkbasin 1": [],
    }  # fmt: skip
    receptacles = sorted(contents)
    openable = {"cabinet 1", "cabinet 2", "drawer 1", "drawer 2", "fridge 1", "microwave 1"}
    text = {"heat": "heat some egg and put it in diningtable",
            "cool": "cool some egg and put it in diningtable"}[task_type]  # fmt: skip
    task = Task(1, task_type, text, "kitchen", "egg", "diningtable")
    locs = {r: i + 1 for i, r in enumerate(receptacles)}
    return World(Scene(task, receptacles, openable, contents, locs, home))


def test_a_household_is_its_number() -> None:
    assert household(3) == household(3)
    homes = {household(n) for n in range(12)}
    assert len({h.heater for h in homes}) == 2 and len({h.locked for h in homes}) == 3
    assert ALFWORLD.appliance("heat", "kitchen") == ("microwave",)


def test_the_household_decides_which_appliance_heats_and_says_nothing_else() -> None:
    w = kitchen(HOME)
    for action in ("go to countertop 1", "take egg 1 from countertop 1", "go to microwave 1"):
        w.step(action)
    assert w.step("heat egg 1 with microwave 1").observation == "Nothing happens."
    w.step("open microwave 1")
    assert w.step("heat egg 1 with microwave 1").observation == "Nothing happens."
    w.step("go to stoveburner 1")
    assert w.step("heat egg 1 with stoveburner 1").observation == (
        "You heat the egg 1 using the stoveburner 1."
    )


def test_an_appliance_that_works_only_opened_and_a_child_lock() -> None:
    w = kitchen(HOME, "cool")
    for action in ("go to countertop 1", "take egg 1 from countertop 1", "go to fridge 1"):
        w.step(action)
    assert w.step("cool egg 1 with fridge 1").observation == "Nothing happens."
    w.step("open fridge 1")
    assert w.step("cool egg 1 with fridge 1").observation.startswith("You cool the egg 1")
    w.step("go to drawer 1")
    assert w.step("open drawer 1").observation == "Nothing happens."
    assert w.step("open cabinet 1").observation == "Nothing happens."  # not there: as ALFWorld


def test_scenes_never_hide_things_behind_a_child_lock_nor_ask_for_a_dead_appliance() -> None:
    home = next(n for n in range(50) if household(n).locked == {"drawer"})
    for seed in range(40):
        scene = make_scene(seed, "heat" if seed % 2 else "put", home)
        assert not any(scene.contents[r] for r in scene.receptacles if r.startswith("drawer"))
        assert scene.task.target != "drawer"
    same = [make_scene(s, "put") for s in range(20)]
    assert all(s.household is ALFWORLD for s in same)  # no household: ALFWorld's rules


def test_the_fair_agent_meets_the_conventions_by_trial_and_the_blind_one_pays_more() -> None:
    fair = HeuristicAgent("strong", FAIR, patience=11).run(kitchen(HOME))
    blind = HeuristicAgent("strong", NO_PRIORS, patience=11).run(kitchen(HOME))
    acts = [s.action for s in fair.steps]
    assert fair.success
    # common sense: the microwave first (and opened, in case it needs it), then the stove
    assert acts.index("heat egg 1 with microwave 1") < acts.index("heat egg 1 with stoveburner 1")
    assert len(fair.steps) < len(blind.steps) or not blind.success
