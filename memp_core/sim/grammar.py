"""ALFWorld's action grammar and observation texts, shared by the world, agents and reflector.

One module knows how an action such as ``take egg 2 from countertop 3`` is spelled and how
``You open the drawer 1. The drawer 1 is open. In it, you see ...`` is worded, so the world
writes exactly what the heuristic agent and the heuristic backend read, and both also read
real ALFWorld transcripts (which drop the ``You arrive at loc N.`` prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOTHING = "Nothing happens."
VERBS = (
    "go", "open", "close", "take", "put", "heat", "cool", "clean", "use", "examine", "look",
    "inventory",
)  # fmt: skip
TRANSFORMS = ("heat", "cool", "clean")

# Every receptacle type of ALFWorld's rooms (plus lamps, which agents "use").
RECEPTACLE_TYPES = (
    "armchair", "bathtubbasin", "bed", "cabinet", "cart", "coffeemachine", "coffeetable",
    "countertop", "desk", "diningtable", "drawer", "dresser", "fridge", "garbagecan",
    "handtowelholder", "laundryhamper", "microwave", "ottoman", "safe", "shelf", "sidetable",
    "sinkbasin", "sofa", "stoveburner", "toaster", "toilet", "toiletpaperhanger",
    "towelholder", "tvstand",
)  # fmt: skip
LAMP_TYPES = ("desklamp", "floorlamp")

_NAME = r"([a-z]+) (\d+)"
_ACTIONS: list[tuple[str, re.Pattern[str]]] = [
    ("go", re.compile(rf"^go to {_NAME}$")),
    ("open", re.compile(rf"^open {_NAME}$")),
    ("close", re.compile(rf"^close {_NAME}$")),
    ("take", re.compile(rf"^take {_NAME} from {_NAME}$")),
    ("put", re.compile(rf"^put {_NAME} (?:in/on|in|on) {_NAME}$")),
    ("heat", re.compile(rf"^heat {_NAME} with {_NAME}$")),
    ("cool", re.compile(rf"^cool {_NAME} with {_NAME}$")),
    ("clean", re.compile(rf"^clean {_NAME} with {_NAME}$")),
    ("use", re.compile(rf"^use {_NAME}$")),
    ("examine", re.compile(rf"^examine {_NAME}$")),
    ("look", re.compile(r"^look$")),
    ("inventory", re.compile(r"^(?:inventory|inv|i)$")),
]
_ITEM = re.compile(r"\ban? ([a-z]+) (\d+)")
_ARRIVE = re.compile(r"^You arrive at loc \d+\.\s*")


@dataclass(frozen=True)
class Action:
    """A parsed action. ``obj`` is the moved or transformed object, ``place`` the receptacle."""

    verb: str
    obj: str = ""  # object type ("egg")
    obj_id: str = ""  # full instance name ("egg 2")
    place: str = ""  # receptacle or lamp type ("countertop")
    place_id: str = ""  # full instance name ("countertop 3")
    text: str = ""


def clean_action(text: str) -> str:
    """Lower-case, single spaces, no leading '>' (transcripts write '>go to ...')."""
    return re.sub(r"\s+", " ", text.strip().lstrip(">").strip().lower())


def is_thought(action: str) -> bool:
    return clean_action(action).startswith("think")


def parse_action(text: str) -> Action | None:
    """The action, or None for anything outside the grammar (``look``, thoughts, typos)."""
    t = clean_action(text)
    for verb, pattern in _ACTIONS:
        m = pattern.match(t)
        if not m:
            continue
        g = m.groups()
        if not g:
            return Action(verb, text=t)
        if verb in ("go", "open", "close", "use", "examine"):
            return Action(verb, place=g[0], place_id=f"{g[0]} {g[1]}", text=t)
        return Action(verb, g[0], f"{g[0]} {g[1]}", g[2], f"{g[2]} {g[3]}", t)
    return None


def strip_arrival(observation: str) -> str:
    """Drop ALFWorld's ``You arrive at loc N.`` prefix (Reflexion's transcripts omit it)."""
    return _ARRIVE.sub("", observation.strip())


def failed(observation: str) -> bool:
    return strip_arrival(observation).startswith(NOTHING)


def items_in(observation: str) -> list[str]:
    """Instance names listed after 'you see' ("egg 2", "mug 1"), in order."""
    obs = strip_arrival(observation)
    at = obs.find("you see")
    return [f"{n} {i}" for n, i in _ITEM.findall(obs[at:])] if at >= 0 else []


def is_closed_view(observation: str) -> bool:
    """'The drawer 1 is closed.' (arriving at a closed receptacle)."""
    return bool(re.match(r"^The [a-z]+ \d+ is closed\.", strip_arrival(observation)))


def listing(names: list[str]) -> str:
    """ALFWorld's list wording: 'nothing', 'a pan 1', 'a candle 1, and a spraybottle 2'."""
    if not names:
        return "nothing"
    parts = [f"a {n}" for n in names]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


def type_of(instance: str) -> str:
    """'countertop 3' -> 'countertop'."""
    return instance.rsplit(" ", 1)[0] if re.search(r" \d+$", instance) else instance
