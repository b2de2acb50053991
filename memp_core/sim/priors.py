"""Common sense an agent brings before any memory: the fair no-memory baseline.

A language model knows, without having been in a room, which kinds of furniture can hold
an apple (a fridge, a countertop, a table, not a toilet) and the general shape of each task
type (heating happens in a microwave or on a stove; a lamp is switched on with the object in
hand; a closed target is opened before putting into it). It does not know where a given
household keeps its apples, nor that this household's microwave does nothing.

:data:`HOLDS` is ALFWorld's own object/receptacle compatibility (``VAL_RECEPTACLE_OBJECTS``
of ALFRED's ``gen/constants.py``, which ALFWorld's task generation uses; tables share the
``TableTop`` entry), restricted to the kinds of this simulator. It says what *can* go where,
not how often: the agent spreads its belief uniformly over the plausible kinds present in a
room. The simulator's placement weights (:mod:`memp_core.sim.catalog`) are never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

_TABLE = frozenset(
    "alarmclock apple book bowl box bread butterknife candle cd cellphone cloth creditcard "
    "cup dishsponge egg fork kettle keychain knife ladle laptop lettuce mug newspaper pan pen "
    "pencil peppershaker plate pot potato remotecontrol saltshaker soapbar soapbottle spatula "
    "spoon spraybottle statue tissuebox toiletpaper tomato vase watch winebottle handtowel".split()
)
_SEAT = frozenset(
    "book box cellphone cloth creditcard keychain laptop newspaper pillow remotecontrol".split()
)
_DESK = frozenset(
    "alarmclock book bowl box candle cd cellphone cloth creditcard cup keychain laptop mug "
    "newspaper pen pencil plate remotecontrol spraybottle statue tissuebox toiletpaper vase "
    "watch winebottle".split()
)

# receptacle kind -> object kinds it can hold (ALFWorld's compatibility table)
HOLDS: dict[str, frozenset[str]] = {
    "armchair": _SEAT,
    "bathtubbasin": frozenset("cloth dishsponge soapbar handtowel".split()),
    "bed": frozenset("book cellphone laptop newspaper pillow".split()),
    "cabinet": frozenset(
        "book bowl box candle cd cloth cup dishsponge kettle ladle mug newspaper pan "
        "peppershaker plate pot saltshaker soapbar soapbottle spraybottle tissuebox "
        "toiletpaper vase winebottle handtowel".split()
    ),
    "coffeemachine": frozenset({"mug"}),
    "coffeetable": _TABLE,
    "countertop": _TABLE,
    "desk": _DESK | {"soapbottle"},
    "diningtable": _TABLE,
    "drawer": frozenset(
        "book butterknife candle cd cellphone cloth creditcard dishsponge fork keychain knife "
        "ladle newspaper pen pencil peppershaker remotecontrol saltshaker soapbar soapbottle "
        "spatula spoon spraybottle tissuebox toiletpaper watch handtowel".split()
    ),
    "dresser": _DESK,
    "fridge": frozenset(
        "apple bowl bread cup egg lettuce mug pan plate pot potato tomato knife butterknife "
        "winebottle".split()
    ),
    "garbagecan": frozenset(
        "apple bread cd cloth dishsponge egg lettuce newspaper pen pencil potato soapbar "
        "soapbottle spraybottle tissuebox toiletpaper tomato winebottle handtowel".split()
    ),
    "handtowelholder": frozenset({"handtowel"}),
    "laundryhamper": frozenset({"cloth"}),
    "microwave": frozenset("apple bowl bread cup egg mug plate potato tomato".split()),
    "ottoman": _SEAT,
    "safe": frozenset("cd cellphone creditcard keychain statue vase watch".split()),
    "shelf": frozenset(
        "alarmclock book bowl box candle cd cellphone cloth creditcard cup dishsponge kettle "
        "keychain mug newspaper pen pencil peppershaker plate pot remotecontrol saltshaker "
        "soapbar soapbottle spraybottle statue tissuebox toiletpaper vase watch winebottle "
        "handtowel".split()
    ),
    "sidetable": _TABLE,
    "sinkbasin": frozenset(
        "apple bowl butterknife cloth cup dishsponge egg fork kettle knife ladle lettuce mug "
        "pan plate pot potato soapbar spatula spoon tomato handtowel".split()
    ),
    "sofa": _SEAT,
    "stoveburner": frozenset("kettle pan pot".split()),
    "toilet": frozenset(
        "candle cloth dishsponge newspaper soapbar soapbottle spraybottle tissuebox "
        "toiletpaper handtowel".split()
    ),
    "toiletpaperhanger": frozenset({"toiletpaper"}),
    "towelholder": frozenset({"towel"}),
    "tvstand": frozenset({"tissuebox"}),
}
# Lamps are fixed furniture in ALFWorld (not in the table): they stand on tables and desks.
LAMP_ON = frozenset({"desk", "sidetable", "dresser", "shelf", "coffeetable", "diningtable"})

# The general shape of each task type: which appliances can do a change (any of them may
# be the one a household uses), and what every plan does (take before using a lamp, open a
# closed target before putting into it).
APPLIANCES_FOR: dict[str, tuple[str, ...]] = {
    "heat": ("microwave", "stoveburner"),
    "cool": ("fridge",),
    "clean": ("sinkbasin", "bathtubbasin"),
}
IMPLAUSIBLE = 0.01  # belief left for every implausible kind together (searched last)


@dataclass(frozen=True)
class Priors:
    """What an agent believes before memory; ``none`` believes nothing (today's blind agent:
    every place equally likely, appliances tried kind by kind)."""

    places: bool = True  # object -> plausible receptacle kinds
    appliances: bool = True  # verb -> plausible appliances
    shape: bool = True  # take before using a lamp; open a closed target before putting

    def place_belief(self, obj: str, kinds: dict[str, int]) -> dict[str, float]:
        """Belief that ``obj`` is in each kind present (``kinds``: kind -> instances)."""
        total = sum(kinds.values()) or 1
        if not self.places:
            return {k: n / total for k, n in kinds.items()}
        holds = LAMP_ON if obj in ("desklamp", "floorlamp") else None
        plausible = [k for k in kinds if obj in (holds or HOLDS.get(k, frozenset()))]
        if holds is not None:
            plausible = [k for k in kinds if k in holds]
        if not plausible:
            return {k: n / total for k, n in kinds.items()}
        others = [k for k in kinds if k not in plausible]
        belief = {k: (1 - IMPLAUSIBLE * bool(others)) / len(plausible) for k in plausible}
        belief.update({k: IMPLAUSIBLE / len(others) for k in others})
        return belief

    def appliances_for(self, verb: str) -> tuple[str, ...]:
        return APPLIANCES_FOR.get(verb, ()) if self.appliances else ()


FAIR = Priors()
NO_PRIORS = Priors(places=False, appliances=False, shape=False)
