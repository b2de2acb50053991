"""The heuristic household agent: common sense and search by default, memory when it has some.

It sees what an ALFWorld agent sees: the opening room description, the task sentence and
each observation. It brings the common sense a language model has (:mod:`memp_core.sim.priors`:
which kinds of furniture can hold an object, which appliances can heat, cool or clean, that a
closed target is opened and a lamp switched on with the object in hand), and nothing of the
household it is in: not where this home keeps things, not which of its appliances work, what
must be opened first or what is locked. It learns those within an episode by looking and by
trial (an appliance that did nothing while closed is opened and tried again; two places of
a kind that would not open: it stops trying that kind), and across
episodes only through the procedures memory hands it (:mod:`memp_core.sim.guide`).
``priors=NO_PRIORS`` is the blind agent of earlier versions (kinds in the listed order,
appliances tried kind by kind), kept as the ``none-no-priors`` comparison.

``Strength`` makes a careful agent (``strong``) or a careless one (``weak``: it opens a
closed place only when memory points there, repeats actions that did nothing and forgets
what it saw at other places), for the memory-transfer experiment. Both give up after
``patience`` fruitless tries in one task: a place looked into that did not have what it
was looking for, or an action that did nothing (LLM agents give up or loop too; every
"Nothing happens." costs them). That patience is the one calibrated number: it is set so
that the strong agent with common sense and *without memory* solves about as many tasks as
GPT-4o without memory in the Memp paper (42%) on the quick bench (see ``PATIENCE``).
Everything with memory is then measured, not set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace

from memp_core.facts import TaskFacts, extract_facts
from memp_core.llm import RunView, StepView
from memp_core.sim.ending import Ending
from memp_core.sim.grammar import (
    LAMP_TYPES,
    failed,
    is_closed_view,
    items_in,
    type_of,
)
from memp_core.sim.guide import Counts, Guide, Recall, read_guide
from memp_core.sim.priors import FAIR, IMPLAUSIBLE, Priors
from memp_core.sim.transcript import analyse
from memp_core.sim.world import World

Policy = Generator[str, str, bool]
OTHER_WEIGHT = 0.5  # evidence about other objects counts half
PATIENCE = 2  # calibrated: see the module docstring
LOCK_PROOF = 2  # places of a kind that would not open before the agent stops trying the kind


@dataclass(frozen=True)
class Strength:
    name: str
    open_closed: bool  # opens closed places while searching without being told to
    retries: int  # times it repeats an action that did nothing
    remember: bool  # keeps in mind what it saw at other places
    patience: int  # fruitless tries (empty places, actions that did nothing) before giving up


STRENGTHS = {
    "strong": Strength("strong", open_closed=True, retries=0, remember=True, patience=PATIENCE),
    "weak": Strength("weak", open_closed=False, retries=2, remember=False, patience=PATIENCE),
}


@dataclass
class Episode:
    """One finished run of an agent in the world."""

    task: str
    task_type: str
    intro: str
    steps: list[StepView]
    success: bool
    tokens: int = 0
    gave_up: bool = False
    guide: Guide = field(default_factory=Guide)
    ended: Ending | None = None  # why it ended (recorded in the trajectory's facts)


def ending_of(world: World, steps: Sequence[StepView], why: str) -> Ending:
    """The ending of a finished episode: the world knows success and the step limit, the
    agent says why it stopped (``why``); progress is read from the steps."""
    run = RunView(world.task.text, world.task.task_type, world.success, list(steps))
    progress = analyse(run).last_progress
    last = len(steps) - 1 if steps else None
    if world.success:
        return Ending("goal", f"in {len(steps)} steps", last, progress)
    if world.steps >= world.max_steps:
        return Ending("step_limit", f"all {world.max_steps} steps used", last, progress)
    return Ending("gave_up", f"{why} (after {len(steps)} steps)", last, progress)


class HeuristicAgent:
    """The non-LLM agent; ``model`` labels it as what it is (``heuristic-strong``)."""

    def __init__(self, strength: str = "strong", priors: Priors = FAIR, patience: int = 0) -> None:
        base = STRENGTHS[strength]
        self.strength = replace(base, patience=patience) if patience > 0 else base
        self.priors = priors
        blind = "" if priors.places else "-no-priors"
        self.model = f"heuristic-{strength}{blind}"

    def run(self, world: World, recalls: Sequence[Recall] = ()) -> Episode:
        intro = world.intro()
        facts = extract_facts(intro)
        guide = read_guide(world.task.text, recalls)
        mind = Mind(intro, facts, guide, self.strength, self.priors)
        policy = mind.policy()
        steps: list[StepView] = []
        gave_up = False
        try:
            action = next(policy)
            while True:
                result = world.step(action)
                steps.append(StepView(action, result.observation))
                if result.done:
                    break
                action = policy.send(result.observation)
        except StopIteration:
            gave_up = not world.success
        ended = ending_of(world, steps, mind.stopped or "it stopped")
        return Episode(world.task.text, facts.task_type, intro, steps, world.success, 0,
                       gave_up, guide, ended)  # fmt: skip


class Mind:
    """The agent's beliefs (built from observations only) and its plan as a generator."""

    def __init__(
        self, intro: str, facts: TaskFacts, guide: Guide, strength: Strength, priors: Priors = FAIR
    ) -> None:
        self.facts = facts
        self.guide = guide
        self.s = strength
        self.priors = priors
        room = intro.split("\n", 1)[0]
        # ALFWorld lists 'cabinet 4, cabinet 3, ...'; search goes kind by kind, low numbers first
        self.places = sorted(items_in(room), key=lambda p: (type_of(p), int(p.split()[-1])))
        self.kinds = list(dict.fromkeys(type_of(p) for p in self.places))
        self.at = ""
        self.seen: dict[str, list[str] | None] = {}
        self.closed: set[str] = set()
        self.visited: set[str] = set()
        self.holding = ""
        self.placed_at = ""
        self.no_repeat = guide.no_repeat
        self.locked = set(guide.locked)  # kinds whose places will not open (told or found)
        self.lock_fails: Counter[str] = Counter()
        self.fruitless = 0  # places without the thing and actions that did nothing, so far
        self.stopped = ""  # why the plan gave up, in words (the run's recorded ending)

    # -- acting and observing -------------------------------------------------------------

    def do(self, action: str) -> Generator[str, str, str]:
        """Yield one action (repeated while a careless agent insists), return its answer."""
        obs = yield action
        self.fruitless += failed(obs)
        tries = 0
        while failed(obs) and tries < self.s.retries and not self.no_repeat:
            tries += 1
            obs = yield action
            self.fruitless += failed(obs)
        self._observe(action, obs)
        return obs

    def _observe(self, action: str, obs: str) -> None:
        if failed(obs):
            if action.startswith("open ") and self.at in self.closed:
                self.lock_fails[type_of(self.at)] += 1
                if self.lock_fails[type_of(self.at)] >= LOCK_PROOF:
                    self.locked.add(type_of(self.at))
            if action.startswith("take ") and self.at in self.seen:
                item = action[5:].split(" from ")[0]
                self.seen[self.at] = [i for i in self.seen[self.at] or [] if i != item]
            return
        verb = action.split()[0]
        if verb == "go":
            self.at = action[6:]
            self.visited.add(self.at)
        if verb in ("go", "open"):
            if is_closed_view(obs):
                self.closed.add(self.at)
                self.seen[self.at] = None
            else:
                self.closed.discard(self.at)
                self.seen[self.at] = items_in(obs)
        elif verb == "take":
            self.holding = action[5:].split(" from ")[0]
            self.seen[self.at] = [i for i in self.seen.get(self.at) or [] if i != self.holding]
        elif verb == "put":
            self.seen.setdefault(self.at, [])
            self.seen[self.at] = [*(self.seen[self.at] or []), self.holding]
            self.placed_at, self.holding = self.at, ""

    def go(self, place: str) -> Generator[str, str, None]:
        if self.at != place:
            yield from self.do(f"go to {place}")

    # -- the plan ---------------------------------------------------------------------------

    def policy(self) -> Policy:
        f = self.facts
        g = self.guide
        if not (yield from self.acquire(self.search_order(f.object, g.where, g.other))):
            return False
        if f.task_type in ("heat", "cool", "clean") and not (yield from self.transform()):
            return False
        if f.task_type == "examine":
            return (yield from self.use_lamp())
        if not (yield from self.deliver()):
            return False
        if f.task_type == "puttwo":
            order = self.search_order(f.object, g.second or g.where, g.other)
            if not (yield from self.acquire(order)):
                return False
            return (yield from self.deliver())
        return True

    def search_order(self, what: str, evidence: Counts, other: Counts | None = None) -> list[str]:
        """Places by the estimated chance that the thing is there, per place.

        The prior is common sense (:meth:`Priors.place_belief`: uniform over the kinds that
        can hold ``what``; the blind agent: every place equally likely, the listed order).
        Memory's counts (found in ``f`` of ``l`` runs that looked into a kind) update it as
        a Beta prior of weight 1, and the chance of a kind is shared by its places: one
        fridge before nine cabinets. What procedures about other objects saw counts at half
        weight.
        """
        count = Counter(type_of(p) for p in self.places)
        belief = self.priors.place_belief(what, dict(count))
        target = self.facts.receptacle if self.priors.shape and what == self.facts.object else ""
        stats = {k: [float(f), float(n)] for k, (f, n) in evidence.items()}
        for kind, (found, looked) in (other or {}).items():
            if self.priors.places and belief.get(kind, 0.0) <= IMPLAUSIBLE:
                continue  # another object was there: no reason to look for this one there
            entry = stats.setdefault(kind, [0.0, 0.0])
            entry[0] += OTHER_WEIGHT * found
            entry[1] += OTHER_WEIGHT * looked

        def value(place: str) -> float:
            kind = type_of(place)
            found, looked = stats.get(kind, (0.0, 0.0))
            # rounded so that equal chances tie exactly and keep the listed order
            if kind == target:  # it is not already where it must go (the task would be done)
                return 0.0
            return round((found + belief[kind]) / (looked + 1) / count[kind], 9)

        return sorted(self.places, key=value, reverse=True)  # stable: ties keep the list order

    def known(self, kind: str, skip: str = "") -> str | None:
        for place in self.places:
            if place == skip or (not self.s.remember and place != self.at):
                continue
            if any(type_of(i) == kind for i in self.seen.get(place) or []):
                return place
        return None

    def find(self, kind: str, order: list[str], skip: str = "") -> Generator[str, str, str | None]:
        """Walk ``order`` until ``kind`` is visible at the current place; return that place."""
        visits = 0
        for place in order:
            where = self.known(kind, skip)
            if where:
                yield from self.go(where)
                return where
            if self.tired:
                break
            if place in self.visited or place == skip:
                continue
            if type_of(place) in self.locked:
                continue  # its places will not open; nothing is found behind them
            visits += 1
            yield from self.go(place)
            shut = False
            if self.at in self.closed and self._may_open(place):
                yield from self.do(f"open {place}")
                shut = self.at in self.closed  # it would not open: that try already counted
            yield from self._greedy_lamp()
            self.fruitless += self.known(kind, skip) is None and not shut
        where = self.known(kind, skip)
        if where:
            yield from self.go(where)
        else:
            second = self.placed_at and kind == self.facts.object  # puttwo: one is delivered
            what = (
                f"a second {kind} without finding one"
                if second
                else f"the {kind} without finding it"
            )
            self.stopped = f"searched {visits} places for {what}" + self._tired_note()
        return where

    @property
    def tired(self) -> bool:
        return self.fruitless >= self.s.patience

    def _tired_note(self) -> str:
        return f" ({self.fruitless} fruitless tries: it gave up)" if self.tired else ""

    def _may_open(self, place: str) -> bool:
        """A careless agent opens a closed place only when memory points there."""
        g = self.guide
        kind = type_of(place)
        pointed = g.where.get(kind, [0])[0] > 0 or g.other.get(kind, [0])[0] > 0
        return (self.s.open_closed or g.open_closed or pointed) and kind not in self.locked

    def _greedy_lamp(self) -> Generator[str, str, None]:
        """Without knowing the order, an agent switches on a lamp as soon as it sees one."""
        if self.facts.task_type != "examine" or self.holding:
            return
        if self.guide.take_before_use or self.priors.shape:
            return
        lamp = next((i for i in self.seen.get(self.at) or [] if type_of(i) in LAMP_TYPES), "")
        if lamp:
            yield from self.do(f"use {lamp}")

    def acquire(self, order: list[str]) -> Generator[str, str, bool]:
        skip = self.placed_at if self.facts.task_type == "puttwo" else ""
        for _ in range(4):
            place = yield from self.find(self.facts.object, order, skip)
            if place is None:
                return False
            item = next(i for i in self.seen[place] or [] if type_of(i) == self.facts.object)
            obs = yield from self.do(f"take {item} from {place}")
            if not failed(obs):
                return True
        self.stopped = f"could not take the {self.facts.object} (4 tries)"
        return False

    def transform(self) -> Generator[str, str, bool]:
        verb = self.facts.task_type
        avoid = self.guide.avoid.get(verb, set())
        order = [self.guide.tools[verb]] if verb in self.guide.tools else []
        order += list(self.priors.appliances_for(verb))  # what can plausibly do it
        order += [type_of(self.at)] + self.kinds  # then where it stands, then kind by kind
        kinds = [k for k in dict.fromkeys(order) if k in self.kinds and k not in avoid]
        tried = 0
        for kind in kinds:
            if self.tired:
                break
            tried += 1
            here = type_of(self.at) == kind
            place = self.at if here else next(p for p in self.places if type_of(p) == kind)
            yield from self.go(place)
            if self.at in self.closed and kind in self.guide.open_tools:
                yield from self.do(f"open {place}")  # memory: it works only opened
            obs = yield from self.do(f"{verb} {self.holding} with {place}")
            if failed(obs) and self.at in self.closed and self._may_open(place):
                yield from self.do(f"open {place}")  # things go inside: maybe it must be open
                if self.at not in self.closed:
                    obs = yield from self.do(f"{verb} {self.holding} with {place}")
            if not failed(obs):
                return True
        self.stopped = f"tried {tried} appliances and none would {verb} the {self.holding}"
        self.stopped += self._tired_note()
        return False

    def deliver(self) -> Generator[str, str, bool]:
        target = self.facts.receptacle
        spots = [p for p in self.places if type_of(p) == target]
        if self.placed_at in spots:
            spots.remove(self.placed_at)
            spots.insert(0, self.placed_at)
        for place in spots:
            if self.tired:
                break
            yield from self.go(place)
            opens = self.s.open_closed or self.guide.open_target or self.priors.shape
            if self.at in self.closed and opens:
                yield from self.do(f"open {place}")
            obs = yield from self.do(f"put {self.holding} in/on {place}")
            if not failed(obs):
                return True
            if self.at in self.closed:  # even a careless agent opens it after failing
                yield from self.do(f"open {place}")
                obs = yield from self.do(f"put {self.holding} in/on {place}")
                if not failed(obs):
                    return True
        self.stopped = f"could not put the {self.holding} in/on any {self.facts.receptacle}"
        self.stopped += self._tired_note()
        return False

    def use_lamp(self) -> Generator[str, str, bool]:
        lamp_kind = self.facts.tool if self.facts.tool in LAMP_TYPES else "desklamp"
        place = yield from self.find(lamp_kind, self.search_order(lamp_kind, self.guide.lamp))
        if place is None:
            return False
        lamp = next(i for i in self.seen[place] or [] if type_of(i) == lamp_kind)
        obs = yield from self.do(f"use {lamp}")
        if failed(obs):
            self.stopped = f"the {lamp} did not light"
        return not failed(obs)
