"""Reading a finished run: which steps failed or looped, where things were, what worked.

Used by the heuristic backend (scripts and reflections) and by the loop (step flags). It
reads only actions and observations, so it works the same on simulator runs and on real
ALFWorld transcripts imported with `memp import`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memp_core.facts import extract_facts
from memp_core.llm import RunView, StepView
from memp_core.sim.grammar import (
    LAMP_TYPES,
    TRANSFORMS,
    Action,
    clean_action,
    failed,
    is_closed_view,
    is_thought,
    items_in,
    parse_action,
    strip_arrival,
    type_of,
)


@dataclass(frozen=True)
class Event:
    """One non-thought step of a run."""

    index: int  # index into the run's steps (thoughts included)
    text: str
    action: Action | None  # None: outside the grammar
    observation: str
    ok: bool  # the world reacted (not 'Nothing happens.' and inside the grammar)
    loop: bool  # same action and observation as the step before: no progress
    at: str  # the instance the agent stands at after this step ('' before any move)


def events_of(steps: Sequence[StepView]) -> list[Event]:
    out: list[Event] = []
    at = ""
    prev: tuple[str, str] | None = None
    for i, step in enumerate(steps):
        text = clean_action(step.action or "")
        if is_thought(text) or (not text and (step.thought or not step.observation)):
            continue  # a thought; an empty action that got an answer is an invalid action
        act = parse_action(text)
        obs = strip_arrival(step.observation or "")
        ok = act is not None and not failed(obs)
        if ok and act is not None and act.verb == "go":
            at = act.place_id
        # looking around twice is not a loop; repeating anything else with no change is
        looped = prev == (text, obs) and not (act and act.verb in ("look", "inventory"))
        out.append(Event(i, text, act, obs, ok, looped, at))
        prev = (text, obs)
    return out


def step_flags(steps: Sequence[StepView]) -> list[tuple[bool, bool]]:
    """(is_error, is_loop) for every step; thoughts are neither."""
    flags = [(False, False)] * len(steps)
    for ev in events_of(steps):
        flags[ev.index] = (not ev.ok, ev.loop)
    return flags


@dataclass
class RunFacts:
    """What a run shows about its task, read from its actions and observations only."""

    task_type: str
    obj: str
    target: str
    lamp: str
    found: list[str] = field(default_factory=list)  # place types the object was taken from
    found_closed: bool = False  # a place it was taken from had to be opened first
    seen_at: list[str] = field(default_factory=list)  # place types that showed the object
    checked: list[str] = field(default_factory=list)  # looked into, object not there
    tools_ok: dict[str, str] = field(default_factory=dict)  # verb -> appliance type
    tools_bad: dict[str, list[str]] = field(default_factory=dict)
    lamp_at: list[str] = field(default_factory=list)  # where the lamp was used or seen
    lamp_before_object: bool = False  # used the lamp before holding the object
    target_closed: bool = False  # the target had to be opened (or a put failed on it closed)
    opened_tools: list[str] = field(default_factory=list)  # appliances opened, then used
    locked: list[str] = field(default_factory=list)  # kinds whose closed places would not open
    first_error: int | None = None
    first_loop: int | None = None
    last_progress: int | None = None  # index of the last step that changed the world
    events: list[Event] = field(default_factory=list)

    @property
    def first_problem(self) -> int | None:
        found = [i for i in (self.first_error, self.first_loop) if i is not None]
        return min(found) if found else None


def analyse(run: RunView) -> RunFacts:
    facts = extract_facts(run.task)
    lamp = facts.tool if facts.tool in LAMP_TYPES else ""
    rf = RunFacts(facts.task_type or run.task_type, facts.object, facts.receptacle, lamp)
    rf.events = events_of(run.steps)
    holding = ""
    opened: set[str] = set()
    closed_seen: set[str] = set()
    for ev in rf.events:
        act = ev.action
        if not ev.ok and rf.first_error is None:
            rf.first_error = ev.index
        if ev.loop and rf.first_loop is None:
            rf.first_loop = ev.index
        _note_view(rf, ev, closed_seen, holding == rf.obj)
        if act is None:
            continue
        if act.verb == "open" and ev.ok:
            opened.add(act.place_id)
        elif act.verb == "open" and act.place_id in closed_seen and ev.at == act.place_id:
            if act.place not in rf.locked:  # closed, right there, and it would not open
                rf.locked.append(act.place)
        if act.verb == "take" and ev.ok:
            holding = act.obj
            if act.obj == rf.obj:
                rf.found.append(act.place)
                rf.found_closed |= act.place_id in opened
                rf.last_progress = ev.index
        elif act.verb == "put" and ev.ok:
            holding = ""
            rf.last_progress = ev.index
            if act.place == rf.target and act.place_id in opened:
                rf.target_closed = True
        elif act.verb == "put" and act.place == rf.target and act.place_id in closed_seen:
            rf.target_closed = True
        elif act.verb in TRANSFORMS:
            _note_tool(rf, act, ev, holding)
            if ev.ok and act.place_id in opened and act.place not in rf.opened_tools:
                rf.opened_tools.append(act.place)
        elif act.verb == "use" and ev.ok and act.place in LAMP_TYPES:
            if ev.at:
                rf.lamp_at.append(type_of(ev.at))
            if holding != rf.obj:
                rf.lamp_before_object = True
            else:
                rf.last_progress = ev.index
    return rf


def _note_view(rf: RunFacts, ev: Event, closed_seen: set[str], holding: bool) -> None:
    """Record what an observation showed: closed places, where objects and lamps are.

    A place counts as checked in vain only while the run was still looking for the object.
    """
    act = ev.action
    if act is None or act.verb not in ("go", "open", "examine"):
        return
    if is_closed_view(ev.observation):
        closed_seen.add(act.place_id)
        return
    seen = items_in(ev.observation)
    if "you see" not in ev.observation:
        return
    kinds = {type_of(s) for s in seen}
    place = act.place
    if rf.obj and rf.obj in kinds:
        if place != rf.target:  # at the target it may be the run's own delivery
            rf.seen_at.append(place)
    elif place not in rf.checked and not holding:
        rf.checked.append(place)
    if rf.lamp and rf.lamp in kinds and place not in rf.lamp_at:
        rf.lamp_at.append(place)


def _note_tool(rf: RunFacts, act: Action, ev: Event, holding: str) -> None:
    if ev.ok:
        rf.tools_ok[act.verb] = act.place
        rf.last_progress = ev.index
    elif act.place and holding == act.obj and type_of(ev.at) == act.place:
        # only a try at the appliance with the object in hand says the appliance is wrong
        bad = rf.tools_bad.setdefault(act.verb, [])
        if act.place not in bad:
            bad.append(act.place)
