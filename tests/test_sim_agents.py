"""The household agents: search without memory, follow memory, recover from bad memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memp_core.config import Settings
from memp_core.sim.agents import HeuristicAgent
from memp_core.sim.guide import Recall, read_guide
from memp_core.sim.priors import NO_PRIORS
from memp_core.sim.tasks import Scene, Task
from memp_core.sim.world import World


# Tests of mechanisms use the patience of 11 fruitless tries (the calibrated default is lower).
# A big kitchen: the blind search (no common sense) goes kind by kind in the listed order and
# runs out of patience in the fourteen cabinets long before it reaches the fridge where the
# egg is; common sense looks in the fridge among the first places.
def kitchen(egg_at: str = "fridge 1", *, drawer_closed: bool = False, cabinets: int = 14) -> World:
    contents: dict[str, list[str]] = {
        **{f"cabinet {i}": [] for i in range(1, cabinets + 1)},
        "coffeemachine 1": ["mug 1"], "countertop 1": ["fork 1"], "countertop 2": [],
        "drawer 1": [], "drawer 2": [], "fridge 1": ["lettuce 1"], "garbagecan 1": [],
        "microwave 1": [], "sinkbasin 1": [], "stoveburner 1": [], "toaster 1": [],
        "diningtable 1": [],
    }  # fmt: skip
    contents[egg_at].append("egg 1")
    openable = (
        {r for r in contents if r.startswith("cabinet")}
        | {"fridge 1", "microwave 1"}
        | ({"drawer 1"} if drawer_closed else set())
    )
    receptacles = sorted(contents, key=lambda r: (r.rsplit(" ", 1)[0], -int(r.split()[-1])))
    task = Task(1, "heat", "heat some egg and put it in diningtable", "kitchen", "egg",
                "diningtable")  # fmt: skip
    locs = {r: i + 1 for i, r in enumerate(receptacles)}
    return World(Scene(task, receptacles, openable, contents, locs))


GOOD = Recall(
    "heat some egg and put it in countertop", "heat",
    "1. find <object>: check fridge (3/3); rarely in cabinet (0/2)\n2. take <object>\n"
    "3. go to microwave\n4. heat <object> with microwave\n5. go to <receptacle>\n"
    "6. put <object> in/on <receptacle>",
    revision_id=7,
)  # fmt: skip


def test_without_memory_the_agent_searches_and_runs_out_of_patience() -> None:
    ep = HeuristicAgent("strong", NO_PRIORS, patience=11).run(kitchen())
    assert not ep.success and ep.gave_up
    visited = [s.action for s in ep.steps if s.action.startswith("go to")]
    assert visited[0] == "go to cabinet 1"  # the listed order: nothing tells it otherwise
    assert ep.ended is not None and "11 fruitless tries: it gave up" in ep.ended.detail
    fair = HeuristicAgent("strong", patience=11).run(
        kitchen()
    )  # common sense: an egg may be in the fridge
    assert fair.success
    assert "go to fridge 1" in [s.action for s in fair.steps][:8]


def test_a_correct_procedure_solves_the_task_it_fails_without_one() -> None:
    ep = HeuristicAgent("strong").run(kitchen(), [GOOD])
    assert ep.success
    actions = [s.action for s in ep.steps]
    assert actions[:3] == ["go to fridge 1", "open fridge 1", "take egg 1 from fridge 1"]
    assert "heat egg 1 with microwave 1" in actions
    assert len(actions) <= 8
    assert ep.guide.followed == 7  # a heat procedure about eggs: the one it followed


def test_a_wrong_procedure_is_recovered_from_by_search() -> None:
    wrong = Recall(
        "heat some egg and put it in countertop", "heat",
        "1. find <object>: check toaster (2/2)\n2. take <object>\n3. go to toaster\n"
        "4. heat <object> with toaster\n5. go to <receptacle>\n6. put <object> in/on <receptacle>",
    )  # fmt: skip
    ep = HeuristicAgent("strong", patience=11).run(kitchen("countertop 1", cabinets=3), [wrong])
    actions = [s.action for s in ep.steps]
    assert actions[0] == "go to toaster 1"  # it trusts memory first
    assert "heat egg 1 with toaster 1" in actions  # the step fails: Nothing happens
    assert "heat egg 1 with microwave 1" in actions  # then it finds the appliance by trial
    assert ep.success


def test_the_agent_never_peeks_at_hidden_contents() -> None:
    """Two rooms that look the same from the middle act the same until an observation differs."""
    a = HeuristicAgent("strong", NO_PRIORS, patience=11).run(kitchen("cabinet 9"))
    b = HeuristicAgent("strong", NO_PRIORS, patience=11).run(kitchen("drawer 2"))
    first_diff = next(
        i for i, (x, y) in enumerate(zip(a.steps, b.steps, strict=False))
        if x.observation != y.observation
    )  # fmt: skip
    same = [s.action for s in a.steps[: first_diff + 1]]
    assert same == [s.action for s in b.steps[: first_diff + 1]]
    assert first_diff == 17  # eight empty cabinets (go, open) in both rooms, then the ninth
    c = HeuristicAgent("strong", patience=11).run(kitchen("garbagecan 1"))
    d = HeuristicAgent("strong", patience=11).run(kitchen("sinkbasin 1"))
    diff = next(i for i, (x, y) in enumerate(zip(c.steps, d.steps, strict=False))
                if x.observation != y.observation)  # fmt: skip
    assert [s.action for s in c.steps[: diff + 1]] == [s.action for s in d.steps[: diff + 1]]


def test_weak_agent_opens_closed_places_only_when_memory_points_there() -> None:
    script = "1. find <object>: check drawer (2/2)\n2. take <object>\n3. go to <receptacle>"
    hint = Recall("put some egg in diningtable", "put", script)
    weak = HeuristicAgent("weak")
    blind = weak.run(kitchen("drawer 1", drawer_closed=True))
    assert "open drawer 1" not in [s.action for s in blind.steps]
    guided = weak.run(kitchen("drawer 1", drawer_closed=True), [hint])
    assert [s.action for s in guided.steps][:3] == ["go to drawer 1", "open drawer 1",
                                                     "take egg 1 from drawer 1"]  # fmt: skip


def test_weak_agent_repeats_failed_actions_unless_memory_says_not_to() -> None:
    script = ("1. find <object>: check countertop (1/1)\n2. take <object>\n3. go to toaster\n"
              "4. heat <object> with toaster{note}\n5. go to <receptacle>\n"
              "6. put <object> in/on <receptacle>")  # fmt: skip
    plain = Recall("heat some egg and put it in shelf", "heat", script.format(note=""))
    noted = Recall("heat some egg and put it in shelf", "heat",
                   script.format(note=": if it does nothing, do not repeat it"))  # fmt: skip
    weak = HeuristicAgent("weak")
    looped = [s.action for s in weak.run(kitchen("countertop 1", cabinets=3), [plain]).steps]
    assert looped.count("heat egg 1 with toaster 1") == 3  # tried, then insisted twice
    careful = [s.action for s in weak.run(kitchen("countertop 1", cabinets=3), [noted]).steps]
    assert careful.count("heat egg 1 with toaster 1") == 1


def test_guide_reads_free_text_scripts_and_trajectories() -> None:
    text = (
        "1. Find the egg: check the countertops, then the fridge.\n2. Take it.\n"
        "3. Go to the microwave and heat the egg.\n4. Put it in the countertop."
    )
    llm = Recall("heat some egg and put it in countertop", "heat", text)
    g = read_guide("put a hot egg in garbagecan", [llm])
    assert g.hints[:2] == ["countertop", "fridge"] and g.tools["heat"] == "microwave"
    steps = (
        {"action": "go to sinkbasin 1", "observation": "On the sinkbasin 1, you see a apple 2."},
        {"action": "take apple 2 from sinkbasin 1",
         "observation": "You pick up the apple 2 from the sinkbasin 1."},
        {"action": "go to fridge 1", "observation": "The fridge 1 is closed."},
        {"action": "cool apple 2 with fridge 1",
         "observation": "You cool the apple 2 using the fridge 1."},
    )  # fmt: skip
    done = Recall("cool some apple and put it in countertop", "cool", "", steps, 3)
    g = read_guide("cool some apple and put it in shelf", [done])
    assert g.where == {"sinkbasin": [1, 1]} and g.tools == {"cool": "fridge"}
    assert g.followed == 3


def test_other_objects_procedures_are_borrowed_not_followed() -> None:
    mug = Recall("heat some mug and put it in countertop", "heat", GOOD.script, revision_id=9)
    g = read_guide("heat some egg and put it in diningtable", [mug])
    assert g.tools["heat"] == "microwave" and g.where == {}
    assert g.other["fridge"] == [3, 3] and g.followed is None


# -- the llm agent, against a real local chat-completions server ----------------------------


@pytest.fixture(name="chat_server")
def chat_server_fixture() -> Iterator[object]:
    from tests.llm_server import ChatServer

    plan = iter([
        "think: the procedure says the fridge", "go to fridge 1", "open fridge 1",
        "take egg 1 from fridge 1", "go to microwave 1", "heat egg 1 with microwave 1",
        "go to diningtable 1", "put egg 1 in/on diningtable 1",
    ])  # fmt: skip
    with ChatServer(responder=lambda messages: next(plan, "look")) as server:
        yield server


def test_llm_agent_acts_through_the_endpoint_with_procedures_in_its_prompt(chat_server) -> None:
    from memp_core.llm_openai import OpenAIBackend
    from memp_core.sim.react import ReactAgent

    settings = Settings(openai_base_url=chat_server.base_url, openai_api_key="test",
                        llm_model="test-model", llm_max_retries=0)  # fmt: skip
    agent = ReactAgent(OpenAIBackend(settings))
    ep = agent.run(kitchen(), [GOOD])
    assert ep.success and agent.model == "test-model"
    assert ep.steps[0].thought == "the procedure says the fridge" and ep.steps[0].action == ""
    assert ep.tokens > 0
    system = chat_server.received[0].messages[0]["content"]
    assert "heat <object> with microwave" in system  # the retrieved procedure is in the prompt
    assert "Your task is to: heat some egg" in chat_server.received[0].messages[1]["content"]
