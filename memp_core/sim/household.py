"""Households: the conventions of one home, learnable only by doing.

ALFWorld has one set of rules for every room (the microwave heats, the sinkbasin cleans,
everything that closes opens). Real homes differ, and an agent that lives in one learns how
*this* home works. A household is a seeded family of rooms (its kitchens, bathrooms,
bedrooms and living rooms, each task a differently furnished and filled room) sharing:

- **which appliance heats** (``heater``): the microwave, or the stoveburner because the
  microwave here does nothing;
- **where things are washed in a bathroom** (``bath_cleaner``): the sinkbasin, or the
  bathtubbasin (the basin is for hands); kitchens always wash at the sinkbasin;
- **appliances that work only opened** (``open_first``): things go *inside* the fridge or the
  microwave, so here it must be opened before ``cool``/``heat`` does anything;
- **child locks** (``locked``): every drawer (or every cabinet) is locked; ``open`` does
  nothing and nothing is kept in them, so trying them again is wasted effort;
- **timer lamps** (``lamps_timed``): a lamp switches off when you walk away, so the order
  that works is to take the object first and then switch the lamp on next to it.

All of it stays inside ALFWorld's action grammar and wording: an action that breaks a
convention answers ``Nothing happens.``, exactly as a wrong action in ALFWorld does. The
world applies the conventions; no agent reads this module: agents meet them through
observations and, across tasks, through the procedures memory hands them.

A household's conventions come from its number alone (:func:`household`); the learning
bench uses the bench seed as the household, so its training and test tasks (different
rooms) share one home, and each seed is a different home.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memp_core.sim.catalog import APPLIANCES


@dataclass(frozen=True)
class Household:
    id: int | None
    heater: str = "microwave"
    bath_cleaner: str = "sinkbasin"
    open_first: frozenset[str] = frozenset()
    locked: frozenset[str] = frozenset()
    lamps_timed: bool = False

    def appliance(self, verb: str, room: str) -> tuple[str, ...]:
        """The appliance kinds that do ``verb`` in a room of this household."""
        if self.id is None:
            return APPLIANCES.get(verb, ())
        if verb == "heat":
            return (self.heater,)
        if verb == "cool":
            return ("fridge",)
        if verb == "clean":
            return (self.bath_cleaner,) if room == "bathroom" else ("sinkbasin",)
        return ()

    def describe(self) -> str:
        """One line for people (benchmark reports): never shown to an agent."""
        parts = [f"heats with the {self.heater}", f"bathroom washing at the {self.bath_cleaner}"]
        if self.open_first:
            parts.append("open the " + " and ".join(sorted(self.open_first)) + " before use")
        if self.locked:
            parts.append("child locks on every " + ", ".join(sorted(self.locked)))
        if self.lamps_timed:
            parts.append("timer lamps")
        return f"household {self.id}: " + "; ".join(parts)


ALFWORLD = Household(None)  # ALFWorld's own rules: a room outside any household


def household(number: int) -> Household:
    """The conventions of household ``number`` (the same number, the same home)."""
    rng = random.Random(f"memp-household-{number}")
    return Household(
        id=number,
        heater=rng.choice(("microwave", "stoveburner")),
        bath_cleaner=rng.choice(("sinkbasin", "bathtubbasin")),
        open_first=frozenset(k for k in ("fridge", "microwave") if rng.random() < 0.5),
        locked=frozenset(rng.choice(((), ("drawer",), ("cabinet",)))),
        lamps_timed=rng.random() < 0.5,
    )
