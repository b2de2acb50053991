"""Simulator runs written as the logs other agents leave: ALFWorld, ReAct and chat.

The demo imports these files through the real importers, so the Import page, imported runs,
failed runs and unknown outcomes exist on any machine without third-party data. Every file
says where it comes from: file names start ``household-sim``, chat conversations name the
agent ``household-sim/heuristic-strong`` and carry ``"source": "household-sim"``.

Each format keeps the verdict only as far as the format itself can:

- **ALFWorld transcripts** end with Reflexion's ``STATUS: OK`` / ``STATUS: FAIL`` line.
- **ReAct log**: Reflexion's multi-trial layout (``BEGIN TRIAL 1``, a trial summary and
  ``BEGIN CORRECT|INCORRECT|HALTED AGENTS`` sections); the section is the verdict. A run
  that used up its steps is *halted*, one whose agent gave up is *incorrect*.
- **Chat log**: a message list per conversation. An outcome field (``success``) is written
  only with ``outcomes=True``: a chat API records messages, not verdicts, so without it the
  imported outcome is unknown, as it would be for a real chat log.

Thoughts (``think: ...`` answered ``OK.``) are written in each format's own way; ALFWorld and
ReAct attach them to the next action, so only the chat log keeps a thought as its own step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp_core.facts import TASK_TYPES
from memp_core.sim.agents import Episode, HeuristicAgent
from memp_core.sim.tasks import make_scene, task_seeds
from memp_core.sim.world import DEFAULT_MAX_STEPS, World

LABEL = "household-sim"
SECTIONS = ("correct", "incorrect", "halted")


@dataclass(frozen=True)
class SimEpisode:
    """One simulator run, with what a log needs to say about it."""

    seed: int
    agent: str  # "household-sim/heuristic-strong"
    episode: Episode

    @property
    def section(self) -> str:
        """Reflexion's verdict: correct, incorrect (gave up) or halted (out of steps)."""
        if self.episode.success:
            return "correct"
        return "incorrect" if self.episode.gave_up else "halted"


@dataclass(frozen=True)
class LogFile:
    """A written log: its importer format, where it is, how many runs it holds."""

    fmt: str
    path: Path
    runs: int

    @property
    def source(self) -> str:
        """The ``source`` to import it under: the format and the simulator's label."""
        return f"import:{self.fmt}:{LABEL}"


def simulate(
    n: int, *, seed: int, strength: str = "strong", max_steps: int = DEFAULT_MAX_STEPS
) -> list[SimEpisode]:
    """``n`` runs of the heuristic agent without memory, task types in turn."""
    agent = HeuristicAgent(strength)
    out: list[SimEpisode] = []
    for scene_seed, task_type in task_seeds(n, seed, TASK_TYPES):
        world = World(make_scene(scene_seed, task_type), max_steps)
        out.append(SimEpisode(scene_seed, f"{LABEL}/{agent.model}", agent.run(world)))
    return out


# -- ALFWorld ---------------------------------------------------------------------------------


def alfworld_text(runs: Sequence[SimEpisode]) -> str:
    """Transcripts as ALFWorld prints them, each ending with Reflexion's STATUS line."""
    blocks: list[str] = []
    for run in runs:
        lines = [run.episode.intro]
        for step in run.episode.steps:
            if step.thought:
                lines += [f"> think: {step.thought}", "OK."]
            if step.action:
                lines += [f"> {step.action}", step.observation]
        lines.append(f"STATUS: {'OK' if run.episode.success else 'FAIL'}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# -- ReAct ------------------------------------------------------------------------------------


def react_text(runs: Sequence[SimEpisode], *, trial: int = 1) -> str:
    """One trial of Reflexion's multi-trial ReAct log; each run under its verdict's section."""
    by_section = {name: [r for r in runs if r.section == name] for name in SECTIONS}
    counts = ", ".join(f"{name.title()}: {len(by_section[name])}" for name in SECTIONS)
    out = ["#" * 40, f"BEGIN TRIAL {trial}", f"Trial summary: {counts}", "#" * 40]
    for name in SECTIONS:
        out.append(f"------------- BEGIN {name.upper()} AGENTS -------------")
        out.append("")
        for run in by_section[name]:
            out += [*_react_block(run), ""]
    return "\n".join(out) + "\n"


def _react_block(run: SimEpisode) -> list[str]:
    lines = [f"Question: {run.episode.task}"]
    n = 0
    thoughts: list[str] = []
    for step in run.episode.steps:
        if step.thought:
            thoughts.append(step.thought)
        if not step.action:
            continue
        n += 1
        if thoughts:
            lines.append(f"Thought {n}: {' '.join(thoughts)}")
            thoughts = []
        lines += [f"Action {n}: {step.action}", f"Observation {n}: {step.observation}"]
    return lines


# -- chat -------------------------------------------------------------------------------------


def chat_conversations(runs: Sequence[SimEpisode], *, outcomes: bool) -> list[dict[str, Any]]:
    """OpenAI-style conversations: the opening observation as the user's first message,
    the agent's turns as assistant messages, observations as user messages."""
    return [_conversation(run, outcomes) for run in runs]


def _conversation(run: SimEpisode, outcomes: bool) -> dict[str, Any]:
    messages = [{"role": "user", "content": run.episode.intro}]
    for step in run.episode.steps:
        if step.thought and not step.action:
            messages.append({"role": "assistant", "content": f"Thought: {step.thought}"})
        else:
            said = f"Thought: {step.thought}\nAction: {step.action}" if step.thought else (
                f"Action: {step.action}")  # fmt: skip
            messages.append({"role": "assistant", "content": said})
        messages.append({"role": "user", "content": f"Observation: {step.observation}"})
    conversation: dict[str, Any] = {
        "source": LABEL, "agent_model": run.agent, "task_type": run.episode.task_type,
        "seed": run.seed,
    }  # fmt: skip
    if outcomes:
        conversation["success"] = run.episode.success
    conversation["messages"] = messages
    return conversation


# -- files ------------------------------------------------------------------------------------


def write_alfworld(runs: Sequence[SimEpisode], path: Path) -> LogFile:
    path.write_text(alfworld_text(runs), encoding="utf-8")
    return LogFile("alfworld", path, len(runs))


def write_react(runs: Sequence[SimEpisode], path: Path) -> LogFile:
    path.write_text(react_text(runs), encoding="utf-8")
    return LogFile("react", path, len(runs))


def write_chat(runs: Sequence[SimEpisode], path: Path, *, outcomes: bool) -> LogFile:
    text = json.dumps(chat_conversations(runs, outcomes=outcomes), indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return LogFile("chat", path, len(runs))


def write_demo_logs(folder: Path, *, scale: float = 1.0) -> list[LogFile]:
    """The demo's logs in ``folder``: the strong agent's ALFWorld transcripts, the weak
    agent's ReAct log (more failures to debug) and a chat log without verdicts."""

    def n(tasks: int) -> int:
        return max(int(tasks * scale), len(TASK_TYPES))

    strong = f"{LABEL}-heuristic-strong"
    return [
        write_alfworld(simulate(n(24), seed=101), folder / f"{strong}-alfworld.txt"),
        write_react(simulate(n(12), seed=102, strength="weak"),
                    folder / f"{LABEL}-heuristic-weak-react.txt"),
        write_chat(simulate(n(12), seed=103), folder / f"{strong}-chat.json", outcomes=False),
    ]  # fmt: skip
