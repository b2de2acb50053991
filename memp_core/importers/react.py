"""Numbered ReAct logs for question answering, single blocks or Reflexion's multi-trial logs.

A block starts ``Question: ...`` and continues ``Thought n:`` / ``Action n:`` /
``Observation n:``, optionally ``Reflections:`` (a ``- `` list) and ``Correct answer: ...``.
Multi-trial logs add ``BEGIN TRIAL N``, ``Trial summary: Correct: a, Incorrect: b, Halted: c``
and ``BEGIN CORRECT|INCORRECT|HALTED AGENTS`` sections; such a file is one run with one
group per trial, and a block's outcome is its section's (agents solved in an earlier trial
are listed under CORRECT without re-running). Lines outside the grammar are ignored, except
that text right after a field continues it (observations span several lines).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memp_core.errors import ImportFormatError
from memp_core.facts import extract_facts
from memp_core.importers.checks import MAX_ITEMS, MAX_STEPS, MAX_TEXT
from memp_core.importers.records import (
    BadRecord,
    ImportWarning,
    Item,
    RunRecord,
    StepRecord,
    TrajectoryRecord,
)
from memp_core.importers.source import Progress, TextFile, hash_into, iter_lines, open_text

QUESTION = re.compile(r"^Question:\s*(.*)$")
STEP = re.compile(r"^(Thought|Action|Observation)\s+(\d{1,6})\s*:\s?(.*)$")
REFLECTIONS = re.compile(r"^Reflections:\s*(.*)$")
ANSWER = re.compile(r"^Correct answer:\s*(.*)$")
TRIAL = re.compile(r"BEGIN TRIAL\s+(\d{1,9})")
SUMMARY = re.compile(
    r"^Trial summary:\s*Correct:\s*(\d+),\s*Incorrect:\s*(\d+),\s*Halted:\s*(\d+)", re.I
)
SECTION = re.compile(r"BEGIN (CORRECT|INCORRECT|HALTED) AGENTS")
BANNER = re.compile(r"^[#\-=*_~\s]*$|^[#\-=*\s]*(BEGIN|END)\b.*$")
FINISH = re.compile(r"^Finish\[(.*)\]\s*$", re.S)
RETRY_PROMPT = re.compile(r"\s*You have attempted to answer (the )?following question before.*$")
OUTCOMES = ("correct", "incorrect", "halted")
NONE_FOUND = "no ReAct block found (expected 'Question: ...' then 'Thought 1:', 'Action 1:' ...)"


@dataclass
class _Block:
    start: int
    question: str
    steps: dict[int, StepRecord] = field(default_factory=dict)
    reflections: list[str] = field(default_factory=list)
    reference: str | None = None
    field: str = "question"  # what a continuation line extends
    refused: bool = False  # broke a limit: reported at once, the rest of it skipped


@dataclass
class _Trial:
    number: int
    index: int
    start: int
    summary: tuple[int, int, int] | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    disagreeing: int = 0


class _Parser:
    def __init__(self, src: TextFile) -> None:
        self.src = src
        self.block: _Block | None = None
        self.trial: _Trial | None = None
        self.section: str | None = None
        self.run: RunRecord | None = None
        self.n_trials = 0
        self.found = 0
        self.first_total: int | None = None

    def feed(self, lineno: int, line: str) -> Iterator[Item]:
        text = line.strip()
        if m := TRIAL.search(text):
            yield from self.end_block()
            yield from self.end_trial()
            yield from self.begin_trial(int(m.group(1)), lineno)
        elif m := SECTION.search(text):
            yield from self.end_block()
            self.section = m.group(1).lower()
        elif m := SUMMARY.match(text):
            if self.trial is not None:
                a, b, c = (int(x) for x in m.groups())
                self.trial.summary = (a, b, c)
        elif m := QUESTION.match(text):
            yield from self.end_block()
            question = RETRY_PROMPT.sub("", m.group(1)).strip()
            self.block = _Block(lineno, question)
        elif m := STEP.match(text):
            yield from self.step(lineno, m.group(1).lower(), int(m.group(2)), m.group(3))
        elif m := REFLECTIONS.match(text):
            if self.block is not None:
                self.block.field = "reflections"
                if m.group(1).strip():
                    self.block.reflections.append(m.group(1).strip().removeprefix("- "))
        elif m := ANSWER.match(text):
            if self.block is not None:
                self.block.reference = m.group(1).strip()
                self.block.field = "reference"
        elif text and not BANNER.match(text):
            if not self.continue_field(text):
                yield self.refuse(f"a field of this block is over {MAX_TEXT:,} characters")

    def step(self, lineno: int, kind: str, n: int, value: str) -> Iterator[Item]:
        if self.block is None:
            reason = f"'{kind.title()} {n}:' before any 'Question:' line"
            yield BadRecord(ImportFormatError(self.src.name, lineno, reason))
            return
        b = self.block
        if b.refused:
            return
        if n not in b.steps and len(b.steps) >= MAX_STEPS:
            yield self.refuse(f"'steps': more than {MAX_STEPS:,} steps in one block")
            return
        st = b.steps.setdefault(n, StepRecord())
        setattr(st, kind, value.strip())
        b.field = f"{kind}:{n}"

    def refuse(self, reason: str) -> BadRecord:
        """Refuse the current block now; its remaining lines are read but not kept."""
        assert self.block is not None
        self.block.refused = True
        self.block.steps.clear()
        self.found += 1  # a block was found, and refused
        return BadRecord(ImportFormatError(self.src.name, self.block.start, reason))

    def continue_field(self, text: str) -> bool:
        """Extend the field being read; False when that would break the size limits."""
        b = self.block
        if b is None or b.refused:
            return True
        if b.field == "reflections":
            if text.startswith("- ") or not b.reflections:
                b.reflections.append(text.removeprefix("- ").strip())
            else:
                b.reflections[-1] = f"{b.reflections[-1]} {text}"
            return len(b.reflections) <= MAX_ITEMS and len(b.reflections[-1]) <= MAX_TEXT
        if b.field == "question":
            b.question = RETRY_PROMPT.sub("", f"{b.question} {text}").strip()
            return len(b.question) <= MAX_TEXT
        if b.field == "reference":
            b.reference = f"{b.reference}\n{text}"
            return len(b.reference) <= MAX_TEXT
        kind, _, n = b.field.partition(":")
        st = b.steps[int(n)]
        old = getattr(st, kind)
        setattr(st, kind, f"{old}\n{text}" if old else text)
        return len(getattr(st, kind)) <= MAX_TEXT

    def begin_trial(self, number: int, lineno: int) -> Iterator[Item]:
        if self.run is None:
            self.run = RunRecord(
                name=self.src.path.stem,
                agent="reflexion",
                environment="hotpotqa",
                fingerprint=file_fingerprint(self.src),
                source_file=self.src.name,
                config={"format": "react", "multi_trial": True},
            )
            yield self.run
        self.trial = _Trial(number, self.n_trials, lineno)
        self.n_trials += 1
        self.section = None

    def end_trial(self) -> Iterator[Item]:
        t = self.trial
        if t is None:
            return
        seen = (t.counts["correct"], t.counts["incorrect"], t.counts["halted"])
        if t.summary is not None and t.summary != seen:
            said = "Correct: {}, Incorrect: {}, Halted: {}".format(*t.summary)
            found = "{}, {}, {}".format(*seen)
            msg = (
                f"trial {t.number}: summary line says {said} but the log holds {found} blocks; "
                "imported the blocks"
            )
            yield ImportWarning(self.src.name, t.start, msg)
        total = sum(seen)
        if self.first_total is None:
            self.first_total = total
        elif total != self.first_total:
            msg = (
                f"trial {t.number} holds {total} blocks where the first trial held "
                f"{self.first_total}; its rate is over the blocks present"
            )
            yield ImportWarning(self.src.name, t.start, msg)
        if t.disagreeing:
            msg = (
                f"trial {t.number}: {t.disagreeing} blocks end in a verdict that differs "
                "from their section; the section decided"
            )
            yield ImportWarning(self.src.name, t.start, msg)
        self.trial = None

    def end_block(self) -> Iterator[Item]:
        b, self.block = self.block, None
        if b is None or b.refused:
            return
        if not b.question:
            yield BadRecord(ImportFormatError(self.src.name, b.start, "empty question"))
            return
        steps = [b.steps[n] for n in sorted(b.steps)]
        verdict, answer = own_verdict(steps)
        outcome = self.section or verdict
        if self.trial is not None:
            self.trial.counts[outcome] += 1
            if self.section and steps and verdict != self.section:
                self.trial.disagreeing += 1
        facts: dict[str, object] = {"outcome": outcome}
        if answer is not None:
            facts["answer"] = answer
        if self.trial is not None:
            facts["trial"] = self.trial.number
        self.found += 1
        # Reflexion's logs are HotpotQA; a ReAct log of household tasks (ALFWorld's wording,
        # e.g. the demo's) keeps its task type so memory can be built from it.
        household = extract_facts(b.question).task_type
        yield TrajectoryRecord(
            task=b.question,
            success=outcome == "correct",
            steps=steps,
            where=b.start,
            task_type=household or "qa",
            environment="alfworld" if household else "hotpotqa",
            reward=1.0 if outcome == "correct" else 0.0,
            facts=facts,
            reflections=b.reflections,
            reference_answer=b.reference,
            run=self.run if self.trial is not None else None,
            group_index=self.trial.index if self.trial is not None else None,
            hash_salt=f"{self.run.fingerprint}:trial:{self.trial.index}"
            if self.trial is not None and self.run is not None
            else "",
        )


def own_verdict(steps: list[StepRecord]) -> tuple[str, str | None]:
    """correct | incorrect | halted from the block's own last observation and Finish action."""
    answer = None
    for st in steps:
        m = FINISH.match((st.action or "").strip())
        if m:
            answer = m.group(1)
    last = next((st.observation for st in reversed(steps) if st.observation), "") or ""
    if "Answer is CORRECT" in last or re.search(r"reward\s*=\s*1\b", last):
        return "correct", answer
    if answer is None:
        return "halted", None
    return "incorrect", answer


def file_fingerprint(src: TextFile) -> str:
    digest = hashlib.sha256()
    hash_into(src, digest)
    return digest.hexdigest()


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    src = open_text(path)
    parser = _Parser(src)
    for lineno, line in iter_lines(src, progress):
        yield from parser.feed(lineno, line)
    yield from parser.end_block()
    yield from parser.end_trial()
    if not parser.found:
        raise ImportFormatError(src.name, None, NONE_FOUND)
