"""What ALFWorld-like rooms contain: receptacles per room kind, objects and where they lie.

Numbers are plausible counts and placement weights read off ALFWorld's scenes (kitchens with
many cabinets and drawers, a fridge and a microwave; bedrooms with drawers, shelves and a
desk lamp; ...). They describe the world, not any agent: no agent imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReceptacleSpec:
    kind: str
    low: int  # instances per room, drawn uniformly in [low, high]
    high: int
    openable: float = 0.0  # share of instances that open and close (they start closed)


ROOM_RECEPTACLES: dict[str, tuple[ReceptacleSpec, ...]] = {
    "kitchen": (
        ReceptacleSpec("cabinet", 6, 18, 1.0),
        ReceptacleSpec("coffeemachine", 1, 1),
        ReceptacleSpec("countertop", 1, 3),
        ReceptacleSpec("diningtable", 0, 2),
        ReceptacleSpec("drawer", 3, 12, 0.85),
        ReceptacleSpec("fridge", 1, 1, 1.0),
        ReceptacleSpec("garbagecan", 1, 1),
        ReceptacleSpec("microwave", 1, 1, 1.0),
        ReceptacleSpec("shelf", 0, 3),
        ReceptacleSpec("sidetable", 0, 1),
        ReceptacleSpec("sinkbasin", 1, 1),
        ReceptacleSpec("stoveburner", 2, 4),
        ReceptacleSpec("toaster", 1, 1),
    ),
    "bathroom": (
        ReceptacleSpec("bathtubbasin", 0, 1),
        ReceptacleSpec("cabinet", 2, 6, 1.0),
        ReceptacleSpec("countertop", 1, 1),
        ReceptacleSpec("drawer", 0, 6, 0.9),
        ReceptacleSpec("garbagecan", 1, 1),
        ReceptacleSpec("handtowelholder", 1, 2),
        ReceptacleSpec("shelf", 0, 2),
        ReceptacleSpec("sinkbasin", 1, 2),
        ReceptacleSpec("toilet", 1, 1),
        ReceptacleSpec("toiletpaperhanger", 1, 1),
        ReceptacleSpec("towelholder", 1, 2),
    ),
    "bedroom": (
        ReceptacleSpec("armchair", 0, 1),
        ReceptacleSpec("bed", 1, 1),
        ReceptacleSpec("desk", 1, 2),
        ReceptacleSpec("drawer", 3, 10, 0.7),
        ReceptacleSpec("dresser", 0, 1),
        ReceptacleSpec("garbagecan", 1, 1),
        ReceptacleSpec("laundryhamper", 0, 1),
        ReceptacleSpec("safe", 0, 1, 1.0),
        ReceptacleSpec("shelf", 2, 8),
        ReceptacleSpec("sidetable", 1, 2),
    ),
    "livingroom": (
        ReceptacleSpec("armchair", 0, 2),
        ReceptacleSpec("cabinet", 0, 6, 1.0),
        ReceptacleSpec("coffeetable", 1, 2),
        ReceptacleSpec("diningtable", 0, 1),
        ReceptacleSpec("drawer", 0, 6, 0.8),
        ReceptacleSpec("dresser", 0, 1),
        ReceptacleSpec("garbagecan", 1, 1),
        ReceptacleSpec("ottoman", 0, 1),
        ReceptacleSpec("shelf", 1, 6),
        ReceptacleSpec("sidetable", 1, 3),
        ReceptacleSpec("sofa", 1, 1),
        ReceptacleSpec("tvstand", 0, 1),
    ),
}

_FOOD = {"fridge": 5, "countertop": 3, "diningtable": 3, "garbagecan": 1, "sinkbasin": 1,
         "microwave": 1}  # fmt: skip
_DISH = {"cabinet": 4, "countertop": 3, "diningtable": 2, "sinkbasin": 2, "shelf": 1,
         "fridge": 1, "microwave": 1}  # fmt: skip
_COOKWARE = {"stoveburner": 5, "cabinet": 3, "countertop": 2, "sinkbasin": 1}
_CUTLERY = {"drawer": 5, "countertop": 3, "diningtable": 2, "sinkbasin": 1}
_SMALL = {"desk": 3, "drawer": 3, "sidetable": 3, "dresser": 2, "shelf": 1, "safe": 1,
          "coffeetable": 3}  # fmt: skip
_DECOR = {"shelf": 4, "coffeetable": 2, "sidetable": 2, "tvstand": 2, "dresser": 1, "desk": 1}

# Objects by room kind: name -> placement weights over receptacle kinds.
ROOM_OBJECTS: dict[str, dict[str, dict[str, int]]] = {
    "kitchen": {
        "apple": _FOOD,
        "bread": {"countertop": 4, "diningtable": 4, "fridge": 2, "cabinet": 1},
        "egg": _FOOD,
        "lettuce": _FOOD,
        "potato": _FOOD,
        "tomato": _FOOD,
        "mug": {**_DISH, "coffeemachine": 4},
        "cup": _DISH,
        "bowl": _DISH,
        "plate": _DISH,
        "pan": _COOKWARE,
        "pot": _COOKWARE,
        "kettle": _COOKWARE,
        "knife": _CUTLERY,
        "butterknife": _CUTLERY,
        "fork": _CUTLERY,
        "spoon": _CUTLERY,
        "spatula": _CUTLERY,
        "ladle": _CUTLERY,
        "saltshaker": {"countertop": 3, "cabinet": 3, "shelf": 2, "diningtable": 2},
        "peppershaker": {"countertop": 3, "cabinet": 3, "shelf": 2, "diningtable": 2},
        "dishsponge": {"sinkbasin": 3, "countertop": 3, "cabinet": 2, "drawer": 1},
        "soapbottle": {"countertop": 3, "sinkbasin": 2, "cabinet": 2},
        "winebottle": {"fridge": 2, "countertop": 3, "cabinet": 3, "diningtable": 2},
    },
    "bathroom": {
        "soapbar": {"countertop": 3, "sinkbasin": 2, "bathtubbasin": 2, "toilet": 2, "cabinet": 2},
        "cloth": {"cabinet": 3, "countertop": 3, "bathtubbasin": 2, "drawer": 2},
        "spraybottle": {"cabinet": 4, "countertop": 2, "toilet": 2, "garbagecan": 1},
        "toiletpaper": {"toiletpaperhanger": 3, "cabinet": 3, "toilet": 2, "countertop": 1},
        "candle": {"countertop": 3, "cabinet": 2, "toilet": 2, "shelf": 2},
        "soapbottle": {"countertop": 3, "cabinet": 2, "toilet": 2, "shelf": 1},
        "towel": {"towelholder": 5},
        "handtowel": {"handtowelholder": 5},
        "tissuebox": {"countertop": 2, "toilet": 2, "shelf": 2, "cabinet": 1},
    },
    "bedroom": {
        "book": {"desk": 3, "bed": 3, "shelf": 3, "sidetable": 2, "drawer": 1},
        "cd": {"desk": 3, "drawer": 3, "shelf": 2, "sidetable": 2, "safe": 1},
        "pen": {"desk": 4, "drawer": 3, "sidetable": 2, "shelf": 2},
        "pencil": {"desk": 4, "drawer": 3, "sidetable": 2, "shelf": 2},
        "cellphone": {"desk": 3, "bed": 3, "sidetable": 3, "drawer": 2, "dresser": 2},
        "creditcard": _SMALL,
        "keychain": _SMALL,
        "alarmclock": {"desk": 3, "sidetable": 3, "shelf": 2, "dresser": 2},
        "laptop": {"desk": 4, "bed": 4},
        "pillow": {"bed": 5, "armchair": 2},
        "mug": {"desk": 3, "shelf": 2, "sidetable": 1},
        "bowl": {"desk": 2, "shelf": 3, "sidetable": 1},
    },
    "livingroom": {
        "remotecontrol": {
            "sofa": 3,
            "coffeetable": 3,
            "sidetable": 2,
            "armchair": 2,
            "tvstand": 2,
        },  # fmt: skip
        "newspaper": {"sofa": 3, "coffeetable": 3, "sidetable": 2, "diningtable": 1},
        "pillow": {"sofa": 5, "armchair": 3, "ottoman": 1},
        "keychain": _SMALL,
        "creditcard": _SMALL,
        "watch": _SMALL,
        "box": {"coffeetable": 3, "diningtable": 2, "sidetable": 2, "dresser": 1, "shelf": 1},
        "laptop": {"coffeetable": 3, "sofa": 3, "diningtable": 2},
        "statue": _DECOR,
        "vase": _DECOR,
        "cellphone": {"coffeetable": 3, "sofa": 3, "sidetable": 2, "armchair": 1},
    },
}

# A lamp that stands on furniture (rooms where "look at X under the desklamp" happens).
LAMP = "desklamp"
LAMP_PLACES = {"desk": 4, "sidetable": 4, "dresser": 2}
LAMP_ROOMS = ("bedroom", "livingroom")

# ALFWorld's rules: which appliance performs which change.
APPLIANCES = {"heat": ("microwave",), "cool": ("fridge",), "clean": ("sinkbasin", "bathtubbasin")}

# Objects each task type uses (ALFWorld's task lists), by the room kinds where they occur.
TASK_OBJECTS: dict[str, dict[str, tuple[str, ...]]] = {
    "heat": {"kitchen": ("apple", "bread", "egg", "potato", "tomato", "mug", "cup", "plate")},
    "cool": {
        "kitchen": (
            "apple",
            "bread",
            "egg",
            "lettuce",
            "potato",
            "tomato",
            "mug",
            "cup",
            "plate",
            "bowl",
            "pan",
            "pot",
            "winebottle",
        )
    },  # fmt: skip
    "clean": {
        "kitchen": (
            "apple",
            "lettuce",
            "tomato",
            "potato",
            "mug",
            "cup",
            "bowl",
            "plate",
            "pan",
            "pot",
            "knife",
            "butterknife",
            "fork",
            "spoon",
            "spatula",
            "ladle",
            "dishsponge",
        ),  # fmt: skip
        "bathroom": ("cloth", "soapbar"),
    },
    "examine": {
        "bedroom": (
            "book",
            "cd",
            "pen",
            "pencil",
            "cellphone",
            "creditcard",
            "keychain",
            "alarmclock",
            "mug",
            "bowl",
        ),  # fmt: skip
        "livingroom": (
            "remotecontrol",
            "newspaper",
            "keychain",
            "creditcard",
            "watch",
            "box",
            "statue",
            "vase",
            "cellphone",
        ),  # fmt: skip
    },
}
# put / puttwo use any object of any room; targets are furniture the object plausibly goes on.
TARGET_EXCLUDE = {"toaster", "coffeemachine", "toiletpaperhanger", "towelholder",
                  "handtowelholder"}  # fmt: skip
TEMPLATES: dict[str, tuple[str, ...]] = {
    "put": ("put some {obj} on {rec}", "put a {obj} in {rec}"),
    "clean": ("put a clean {obj} in {rec}", "clean some {obj} and put it in {rec}"),
    "heat": ("put a hot {obj} in {rec}", "heat some {obj} and put it in {rec}"),
    "cool": ("put a cool {obj} in {rec}", "cool some {obj} and put it in {rec}"),
    "examine": ("look at {obj} under the {lamp}", "examine the {obj} with the {lamp}"),
    "puttwo": ("put two {obj} in {rec}", "find two {obj} and put them in {rec}"),
}
