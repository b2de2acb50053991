"""The household text world: ALFWorld's actions, observations and goal checks.

``World(scene)`` holds the mutable state of one episode; :meth:`World.step` takes one action
in ALFWorld's grammar and returns its observation, worded as ALFWorld words it. Everything
outside the grammar, and every action whose preconditions fail, gives ``Nothing happens.``.
The scene's household decides the conventions (:mod:`memp_core.sim.household`): which
appliance does a change, what must be opened first, what child locks keep shut, whether a
lamp stays on when the agent walks away.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from memp_core.sim.catalog import LAMP
from memp_core.sim.grammar import NOTHING, Action, listing, parse_action, type_of
from memp_core.sim.tasks import Scene, Task, make_scene

DEFAULT_MAX_STEPS = 50
STATE_OF = {"heat": "hot", "cool": "cool", "clean": "clean"}
PAST = {"heat": "heat", "cool": "cool", "clean": "clean"}


@dataclass(frozen=True)
class StepResult:
    observation: str
    done: bool
    success: bool


@dataclass
class World:
    """One episode in one scene. Same scene, same actions: same observations."""

    scene: Scene
    max_steps: int = DEFAULT_MAX_STEPS
    at: str = ""
    holding: str = ""
    steps: int = 0
    success: bool = False
    states: dict[str, set[str]] = field(default_factory=dict)  # object -> {"hot", ...}
    lamps_on: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.contents = copy.deepcopy(self.scene.contents)
        self.closed = set(self.scene.openable)

    @classmethod
    def from_seed(
        cls, seed: int, task_type: str | None = None, max_steps: int = DEFAULT_MAX_STEPS
    ) -> World:
        return cls(make_scene(seed, task_type), max_steps)

    @property
    def task(self) -> Task:
        return self.scene.task

    @property
    def done(self) -> bool:
        return self.success or self.steps >= self.max_steps

    def intro(self) -> str:
        """The opening observation, as ALFWorld prints it."""
        return (
            "You are in the middle of a room. Looking quickly around you, you see "
            f"{listing(self.scene.receptacles)}.\nYour task is to: {self.task.text}."
        )

    def step(self, text: str) -> StepResult:
        """Take one action (counted even when nothing happens)."""
        if self.done:
            return StepResult(NOTHING, True, self.success)
        self.steps += 1
        act = parse_action(text)
        handler = self._handlers().get(act.verb) if act else None
        obs = handler(act) if handler and act else NOTHING
        self.success = self.success or self._goal_met()
        return StepResult(obs, self.done, self.success)

    # -- actions ------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[Action], str]]:
        return {
            "go": self._go, "open": self._open, "close": self._close, "take": self._take,
            "put": self._put, "heat": self._transform, "cool": self._transform,
            "clean": self._transform, "use": self._use, "examine": self._examine,
            "look": self._look, "inventory": self._inventory,
        }  # fmt: skip

    def _exists(self, rec: str) -> bool:
        return rec in self.contents

    def view(self, rec: str) -> str:
        items = listing(self.contents[rec])
        if rec in self.scene.openable:
            if rec in self.closed:
                return f"The {rec} is closed."
            return f"The {rec} is open. In it, you see {items}."
        return f"On the {rec}, you see {items}."

    def _go(self, act: Action) -> str:
        rec = act.place_id
        if not self._exists(rec) or rec == self.at:
            return NOTHING
        self.at = rec
        if self.scene.household.lamps_timed:
            self.lamps_on.clear()  # a timer lamp goes off behind you
        return f"You arrive at loc {self.scene.locations[rec]}. {self.view(rec)}"

    def _open(self, act: Action) -> str:
        rec = act.place_id
        if rec != self.at or rec not in self.closed or act.place in self.scene.household.locked:
            return NOTHING
        self.closed.discard(rec)
        items = listing(self.contents[rec])
        return f"You open the {rec}. The {rec} is open. In it, you see {items}."

    def _close(self, act: Action) -> str:
        rec = act.place_id
        if rec != self.at or rec not in self.scene.openable or rec in self.closed:
            return NOTHING
        self.closed.add(rec)
        return f"You close the {rec}."

    def _reachable(self, rec: str) -> bool:
        return rec == self.at and self._exists(rec) and rec not in self.closed

    def _take(self, act: Action) -> str:
        rec, obj = act.place_id, act.obj_id
        if self.holding or not self._reachable(rec) or obj not in self.contents[rec]:
            return NOTHING
        if act.obj == LAMP:  # lamps stand on furniture; they are used, not carried
            return NOTHING
        self.contents[rec].remove(obj)
        self.holding = obj
        return f"You pick up the {obj} from the {rec}."

    def _put(self, act: Action) -> str:
        rec, obj = act.place_id, act.obj_id
        if obj != self.holding or not self._reachable(rec):
            return NOTHING
        self.contents[rec].append(obj)
        self.holding = ""
        return f"You put the {obj} in/on the {rec}."

    def _transform(self, act: Action) -> str:
        rec, obj = act.place_id, act.obj_id
        if obj != self.holding or rec != self.at or not self._exists(rec):
            return NOTHING
        home = self.scene.household
        if act.place not in home.appliance(act.verb, self.task.room):
            return NOTHING
        if act.place in home.open_first and rec in self.closed:
            return NOTHING  # things go inside: closed, it does nothing
        self.states.setdefault(obj, set()).add(STATE_OF[act.verb])
        return f"You {PAST[act.verb]} the {obj} using the {rec}."

    def _use(self, act: Action) -> str:
        lamp = act.place_id
        if not self.at or lamp not in self.contents.get(self.at, []):
            return NOTHING
        self.lamps_on.add(lamp)
        return f"You turn on the {lamp}."

    def _examine(self, act: Action) -> str:
        name = act.place_id
        if self._exists(name):
            return self.view(name) if name == self.at else NOTHING
        visible = self.holding == name or name in self.contents.get(self.at, [])
        return f"There's nothing special about {name}." if visible else NOTHING

    def _look(self, act: Action) -> str:
        if not self.at:
            return "You are in the middle of a room. Looking quickly around you, you see nothing."
        return f"You are facing the {self.at}. Next to it, you see nothing."

    def _inventory(self, act: Action) -> str:
        if not self.holding:
            return "You are not carrying anything."
        return f"You are carrying: a {self.holding}."

    # -- goal -----------------------------------------------------------------------------

    def _goal_met(self) -> bool:
        t = self.task
        if t.task_type == "examine":
            lamp_here = any(type_of(x) == t.lamp for x in self.lamps_on & set(self._here()))
            return lamp_here and type_of(self.holding) == t.obj
        need = STATE_OF.get(t.task_type)
        placed = [
            o
            for rec, items in self.contents.items()
            if type_of(rec) == t.target
            for o in items
            if type_of(o) == t.obj and (need is None or need in self.states.get(o, set()))
        ]
        return len(placed) >= (2 if t.task_type == "puttwo" else 1)

    def _here(self) -> list[str]:
        return self.contents.get(self.at, []) if self.at else []
