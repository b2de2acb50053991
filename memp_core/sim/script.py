"""The search line of a script: where to look for a thing, with the evidence behind it.

``find <object>: check fridge (3/4), countertop (1/1); rarely in cabinet (0/2); open closed
ones`` says the object was found in a fridge in 3 of the 4 runs that looked into one, and in
none of the 2 that looked into cabinets. The counts make hints mergeable across runs and
revisable by reflection without letting one unlucky room erase what many runs showed.
Lines without counts (written by a person or an LLM) read as one sighting per named place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from memp_core.sim.grammar import RECEPTACLE_TYPES

OPEN_NOTE = "open closed ones"
_KIND = re.compile(r"\b(" + "|".join(RECEPTACLE_TYPES) + r")(?:e?s)?\b")
_NEGATED = re.compile(r"\b(rarely|not|never|seldom)\b")
EVERYWHERE = "every place in turn"
_ENTRY = re.compile(r"^([a-z]+)(?:\s*\((\d+)(?:/(\d+))?\))?$")


@dataclass
class FindLine:
    what: str
    stats: dict[str, list[int]] = field(default_factory=dict)  # kind -> [found, looked]
    open_closed: bool = False
    counted: bool = True  # False: plain names (a copied search, not evidence)

    def add(self, kinds: Iterable[str], found: bool) -> None:
        for kind in dict.fromkeys(kinds):
            entry = self.stats.setdefault(kind, [0, 0])
            entry[0] += int(found)
            entry[1] += 1

    @property
    def hints(self) -> list[str]:
        """Kinds where it was found, most often first (then fewest misses, then order)."""
        order = list(self.stats)
        found = [k for k in order if self.stats[k][0] > 0]
        return sorted(found, key=lambda k: (-self.stats[k][0], self.stats[k][1], order.index(k)))

    @property
    def rare(self) -> list[str]:
        order = list(self.stats)
        never = [k for k in order if self.stats[k][0] == 0]
        return sorted(never, key=lambda k: (-self.stats[k][1], order.index(k)))

    def _entry(self, kind: str) -> str:
        found, looked = self.stats[kind]
        return f"{kind} ({found}/{looked})" if self.counted else kind

    def render(self) -> str:
        line = f"find {self.what}: check " + (
            ", ".join(self._entry(k) for k in self.hints) or EVERYWHERE
        )
        if self.rare:
            line += "; rarely in " + ", ".join(self._entry(k) for k in self.rare)
        return line + (f"; {OPEN_NOTE}" if self.open_closed else "")

    @classmethod
    def parse(cls, line: str) -> FindLine:
        head, _, tail = line.partition(":")
        out = cls(re.sub(r"^find\s+", "", head.strip(), flags=re.I))
        for part in (p.strip().lower() for p in tail.split(";")):
            if OPEN_NOTE in part:
                out.open_closed = True
                continue
            rare = part.startswith("rarely in")
            body = re.sub(r"^(check|rarely in)\s*", "", part)
            for name in (n.strip() for n in body.split(",")):
                m = _ENTRY.match(name)
                if not m or name == EVERYWHERE:
                    continue
                if m.group(2) is None:
                    out.counted = False
                    found, looked = (0, 1) if rare else (1, 1)
                else:
                    found = int(m.group(2))
                    looked = int(m.group(3)) if m.group(3) else max(found, 1)
                out.stats[m.group(1)] = [found, looked]
        return out


def kinds_in(text: str) -> list[str]:
    """Receptacle kinds named in free text, in order ('countertops' -> 'countertop')."""
    return list(dict.fromkeys(m.group(1) for m in _KIND.finditer(text.lower())))


def parse_search(line: str) -> FindLine:
    """A search line in the counted format, else free text (a person's or an LLM's): places
    named count as one sighting each, places after 'not'/'rarely' as one miss each."""
    parsed = FindLine.parse(line)
    if parsed.stats:
        return parsed
    head, _, tail = line.partition(":")
    out = FindLine(re.sub(r"^find\s+", "", head.strip(), flags=re.I), counted=False)
    out.open_closed = bool(re.search(r"\bopen\b", line, re.I))
    for part in (tail or line).split(";"):
        out.add(kinds_in(part), found=not _NEGATED.search(part.lower()))
    return out
