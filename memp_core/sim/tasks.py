"""Seeded scenes and tasks: one seed gives one room, its contents and one feasible task.

A scene belongs to a household (:mod:`memp_core.sim.household`): its conventions decide
which appliance the task needs, and nothing is kept in, or delivered to, a kind that its
child locks keep shut. Without a household a scene follows ALFWorld's own rules.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from memp_core.facts import TASK_TYPES
from memp_core.sim.catalog import (
    LAMP,
    LAMP_PLACES,
    LAMP_ROOMS,
    ROOM_OBJECTS,
    ROOM_RECEPTACLES,
    TARGET_EXCLUDE,
    TASK_OBJECTS,
    TEMPLATES,
)
from memp_core.sim.household import ALFWORLD, Household, household


@dataclass(frozen=True)
class Task:
    """What the agent is told (``text``) and what the world checks."""

    seed: int
    task_type: str
    text: str
    room: str
    obj: str
    target: str = ""  # receptacle kind the object must end up in (not for examine)
    lamp: str = ""  # examine: the lamp kind to look under


@dataclass
class Scene:
    """A room at the start of an episode. ``contents`` maps receptacle -> object instances."""

    task: Task
    receptacles: list[str]  # instance names ("cabinet 3") in ALFWorld's listing order
    openable: set[str]
    contents: dict[str, list[str]]
    locations: dict[str, int] = field(default_factory=dict)  # receptacle -> "loc N"
    household: Household = ALFWORLD  # the home's conventions (the world applies them)


def _kinds_of(receptacles: Sequence[str]) -> set[str]:
    return {r.rsplit(" ", 1)[0] for r in receptacles}


def _weighted(rng: random.Random, weights: dict[str, int], present: set[str]) -> str | None:
    options = [(k, w) for k, w in sorted(weights.items()) if k in present]
    if not options:
        return None
    return rng.choices([k for k, _ in options], [w for _, w in options])[0]


def _layout(rng: random.Random, room: str, home: Household) -> tuple[list[str], set[str]]:
    receptacles: list[str] = []
    openable: set[str] = set()
    for spec in ROOM_RECEPTACLES[room]:
        for n in range(1, rng.randint(spec.low, spec.high) + 1):
            name = f"{spec.kind} {n}"
            receptacles.append(name)
            # a draw for every instance keeps the layouts of other households unchanged
            if rng.random() < spec.openable or spec.kind in home.locked:
                openable.add(name)
    # ALFWorld lists kinds alphabetically and numbers from high to low ("cabinet 4, cabinet 3")
    receptacles.sort(key=lambda r: (r.rsplit(" ", 1)[0], -int(r.rsplit(" ", 1)[1])))
    return receptacles, openable


def _choose(rng: random.Random, task_type: str) -> tuple[str, str]:
    """Room kind and object for a task type."""
    if task_type in TASK_OBJECTS:
        room = rng.choice(sorted(TASK_OBJECTS[task_type]))
        return room, rng.choice(TASK_OBJECTS[task_type][room])
    room = rng.choice(sorted(ROOM_OBJECTS))
    return room, rng.choice(sorted(ROOM_OBJECTS[room]))


def _target(
    rng: random.Random, task_type: str, room: str, obj: str, kinds: set[str], home: Household
) -> str:
    banned = TARGET_EXCLUDE | set(home.appliance(task_type, room)) | home.locked
    weights = {k: w for k, w in ROOM_OBJECTS[room][obj].items() if k not in banned}
    if task_type != "put" and task_type != "puttwo":
        # transformed objects go to common surfaces and stores too (ALFWorld: garbagecan, ...)
        for k in ("countertop", "diningtable", "cabinet", "shelf", "garbagecan", "sidetable"):
            weights.setdefault(k, 1)
    return _weighted(rng, weights, kinds) or ""


def make_scene(seed: int, task_type: str | None = None, home: int | None = None) -> Scene:
    """The scene for ``seed`` in household ``home`` (None: ALFWorld's rules); the same
    arguments always give the same scene and task."""
    rng = random.Random(seed)
    task_type = task_type or rng.choice(TASK_TYPES)
    conventions = ALFWORLD if home is None else household(home)
    for _ in range(100):
        scene = _try_scene(rng, seed, task_type, conventions)
        if scene is not None:
            return scene
    raise RuntimeError(f"no feasible {task_type} scene for seed {seed}")  # pragma: no cover


def _try_scene(rng: random.Random, seed: int, task_type: str, home: Household) -> Scene | None:
    room, obj = _choose(rng, task_type)
    if task_type == "examine" and room not in LAMP_ROOMS:
        return None
    receptacles, openable = _layout(rng, room, home)
    kinds = _kinds_of(receptacles)
    needs = home.appliance(task_type, room)
    if needs and not kinds & set(needs):
        return None
    target = "" if task_type == "examine" else _target(rng, task_type, room, obj, kinds, home)
    if task_type != "examine" and not target:
        return None
    contents: dict[str, list[str]] = {r: [] for r in receptacles}
    by_kind: dict[str, list[str]] = {}
    for r in receptacles:
        by_kind.setdefault(r.rsplit(" ", 1)[0], []).append(r)
    counts: dict[str, int] = {}

    def place(name: str, weights: dict[str, int], avoid: str = "") -> bool:
        kind = _weighted(rng, weights, {k for k in kinds if k != avoid} - home.locked)
        if kind is None:
            return False
        counts[name] = counts.get(name, 0) + 1
        contents[rng.choice(by_kind[kind])].append(f"{name} {counts[name]}")
        return True

    lamp = ""
    if task_type == "examine":
        lamp = LAMP
        if not place(LAMP, LAMP_PLACES):
            return None
    copies = rng.randint(2, 3) if task_type == "puttwo" else rng.randint(1, 2)
    for _ in range(copies):  # the task's object never starts in its target (no free wins)
        if not place(obj, ROOM_OBJECTS[room][obj], avoid=target):
            return None
    others = sorted(set(ROOM_OBJECTS[room]) - {obj})
    for name in rng.sample(others, k=min(len(others), rng.randint(8, 14))):
        for _ in range(rng.randint(1, 3)):
            place(name, ROOM_OBJECTS[room][name])
    if room in LAMP_ROOMS and task_type != "examine" and rng.random() < 0.7:
        place(LAMP, LAMP_PLACES)
    for items in contents.values():
        rng.shuffle(items)
    text = rng.choice(TEMPLATES[task_type]).format(obj=obj, rec=target, lamp=lamp)
    task = Task(seed, task_type, text, room, obj, target, lamp)
    locs = rng.sample(range(1, len(receptacles) + 20), len(receptacles))
    where = dict(zip(receptacles, locs, strict=True))
    return Scene(task, receptacles, openable, contents, where, home)


def task_seeds(n: int, seed: int, types: Sequence[str] = TASK_TYPES) -> list[tuple[int, str]]:
    """``n`` (scene seed, task type) pairs cycling through ``types``, shuffled by ``seed``."""
    rng = random.Random(seed)
    pairs = [(rng.randrange(1 << 30), types[i % len(types)]) for i in range(n)]
    rng.shuffle(pairs)
    return pairs
