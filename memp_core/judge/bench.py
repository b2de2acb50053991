"""`memp bench judge`: hide known verdicts, judge the runs, compare with the truth.

Two kinds of runs whose true outcome is known:

- **Reflexion's ALFWorld logs** (``<data>/reflexion-alfworld``, with ``--data``): the 24
  ReAct demonstrations of ``react_prompts_alfworld.json`` (each solves its task; the ReAct
  paper's few-shot prompts) and the failed transcripts of ``reflexion_few_shot_examples.txt``
  with their ``STATUS: FAIL`` line and the reflection written after it removed. Both are
  parsed by the ALFWorld importer's own parser. Without ``--data`` (a lone clone) the bench
  runs the simulator part only, and the report says so.
- **Reflexion's HotpotQA log** (``<data>/reflexion-hotpotqa``, with ``--data``): 100
  questions over 5 trials, each with its gold answer, the environment's ``Answer is
  CORRECT`` / ``INCORRECT`` observations removed (the log's own sections are the truth).
- **The simulator's own runs**: seeded tasks of every task type played by the strong and the
  weak heuristic agents, successes and failures as the world decided them; and the same
  tasks under a short step limit (``SHORT_LIMIT``), where runs cut short give failures of
  every task type (and the quick successes).

Sources in the report: ``reflexion demos``, ``reflexion failures`` (STATUS removed),
``reflexion hotpotqa`` (verdict observations removed), ``simulator`` and ``simulator 10
steps`` (the short step limit).

Each run is stored in a scratch SQLite database with ``success`` None and no outcome, ending
or reflection in its facts, then judged by the same :func:`judge_unknown` as `memp judge`:
the judge cannot see the verdict. Agreement is over the runs it judged (abstentions aside);
precision and recall are those of the verdict "success".
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from memp_core.actor import system
from memp_core.facts import TASK_TYPES
from memp_core.importers.alfworld import parse_lines, parse_value
from memp_core.importers.records import TrajectoryRecord
from memp_core.judge import Judge
from memp_core.judge.judgements import Progress, judge_unknown
from memp_core.models import Judgement, Step, Trajectory
from memp_core.store import Store
from memp_core.vocab import Verdict

REFLEXION = "reflexion-alfworld"
DEMOS = "react_prompts_alfworld.json"
FAILED = "reflexion_few_shot_examples.txt"
_STATUS = re.compile(r"^\s*STATUS\s*:", re.I)
HOTPOTQA = "reflexion-hotpotqa/react_reflexion_100_questions_5_trials.txt"
_QA_VERDICT = re.compile(r"answer is (correct|incorrect)", re.I)
SHORT_LIMIT = 10  # steps: most runs are cut short, so every task type has failures


@dataclass(frozen=True)
class Case:
    """One run with its true outcome, as the judge will see it (no verdict in it)."""

    source: str
    name: str
    truth: bool
    task: str
    steps: list[tuple[str, str, str]]  # (thought, action, observation)
    environment: str
    initial_observation: str = ""
    reference_answer: str = ""  # a question's gold answer (not its verdict)


@dataclass
class SourceScore:
    """Verdicts against the truth for the runs of one source."""

    source: str
    runs: int = 0
    judged: int = 0
    abstained: int = 0
    agree: int = 0
    true_success: int = 0  # judged success, was a success
    judged_success: int = 0
    real_success: int = 0  # successes among the judged runs

    def add(self, truth: bool, verdict: str) -> None:
        self.runs += 1
        if verdict == Verdict.unknown:
            self.abstained += 1
            return
        said = verdict == Verdict.success
        self.judged += 1
        self.agree += said == truth
        self.true_success += said and truth
        self.judged_success += said
        self.real_success += truth

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source, "runs": self.runs, "judged": self.judged,
            "abstained": self.abstained, "agree": _rate(self.agree, self.judged),
            "precision": _rate(self.true_success, self.judged_success),
            "recall": _rate(self.true_success, self.real_success),
        }  # fmt: skip


@dataclass
class JudgeBench:
    """The benchmark's result: totals and one score per source."""

    backend: str
    model: str
    sources: list[SourceScore] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)  # "source/name: truth, verdict: why"

    def total(self) -> SourceScore:
        out = SourceScore("all")
        for s in self.sources:
            for name in ("runs", "judged", "abstained", "agree", "true_success",
                         "judged_success", "real_success"):  # fmt: skip
                setattr(out, name, getattr(out, name) + getattr(s, name))
        return out

    def as_dict(self) -> dict[str, object]:
        total = self.total().as_dict()
        del total["source"]
        return {
            **total, "backend": self.backend, "model": self.model,
            "by_source": [s.as_dict() for s in self.sources], "notes": self.notes,
            "disagreements": self.disagreements,
        }  # fmt: skip


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def strip_verdicts(text: str) -> str:
    """A Reflexion transcript without its ``STATUS:`` lines and the ``New plan:`` reflection
    written after each (it says what went wrong: the verdict in other words)."""
    kept: list[str] = []
    hiding = False
    for line in text.splitlines():
        if _STATUS.match(line):
            hiding = True
            continue
        if hiding and not line.strip():
            hiding = False  # the reflection ends at the blank line before the next run
        if not hiding:
            kept.append(line)
    return "\n".join(kept)


def reflexion_cases(data: Path) -> Iterator[Case]:
    """The Reflexion ALFWorld transcripts with their true outcomes (verdicts removed)."""
    folder = data / REFLEXION
    demos = json.loads((folder / DEMOS).read_text(encoding="utf-8"))
    for key, text in demos.items():
        for rec in parse_value(text, DEMOS, (key,)):
            if isinstance(rec, TrajectoryRecord):
                yield _case("reflexion demos", f"{DEMOS} {key}", True, rec)
    raw = (folder / FAILED).read_text(encoding="utf-8")
    truths = [not line.split(":", 1)[1].strip().upper().startswith("FAIL")
              for line in raw.splitlines() if _STATUS.match(line)]  # fmt: skip
    lines = enumerate(strip_verdicts(raw).splitlines(), start=1)
    records = [r for r in parse_lines(lines, FAILED) if isinstance(r, TrajectoryRecord)]
    for n, (rec, truth) in enumerate(zip(records, truths, strict=True)):
        yield _case("reflexion failures", f"{FAILED} transcript {n + 1}", truth, rec)


def hotpotqa_cases(data: Path) -> Iterator[Case]:
    """Reflexion's HotpotQA questions with their gold answers; the observations that say
    whether an answer was right are blanked (the log's sections keep the truth)."""
    from memp_core.importers.react import parse

    for rec in parse(data / HOTPOTQA):
        if not isinstance(rec, TrajectoryRecord) or rec.success is None:
            continue
        steps = [(s.thought or "", s.action or "",
                  "" if _QA_VERDICT.search(s.observation or "") else s.observation or "")
                 for s in rec.steps]  # fmt: skip
        name = f"trial {rec.facts.get('trial')} {rec.where}"
        yield Case("reflexion hotpotqa", name, rec.success, rec.task, steps, rec.environment,
                   reference_answer=rec.reference_answer or "")  # fmt: skip


def _case(source: str, name: str, truth: bool, rec: TrajectoryRecord) -> Case:
    steps = [(s.thought or "", s.action or "", s.observation or "") for s in rec.steps]
    opening = str(rec.facts.get("initial_observation") or "")
    return Case(source, name, truth, rec.task, steps, rec.environment, opening)


def simulator_cases(tasks: int, seed: int, max_steps: int | None = None) -> Iterator[Case]:
    """Seeded tasks of every type, each played by the strong and the weak heuristic agent
    (``max_steps``: under that step limit instead of the world's default)."""
    from memp_core.loop import ENVIRONMENT
    from memp_core.sim.agents import HeuristicAgent
    from memp_core.sim.tasks import make_scene, task_seeds
    from memp_core.sim.world import DEFAULT_MAX_STEPS, World

    source = "simulator" if max_steps is None else f"simulator {max_steps} steps"
    pairs = task_seeds(tasks, seed, TASK_TYPES)
    for strength in ("strong", "weak"):
        agent = HeuristicAgent(strength)
        for scene_seed, task_type in pairs:
            world = World(make_scene(scene_seed, task_type), max_steps or DEFAULT_MAX_STEPS)
            ep = agent.run(world)
            steps = [(s.thought, s.action, s.observation) for s in ep.steps]
            name = f"{strength} agent, {task_type} seed {scene_seed}"
            yield Case(source, name, ep.success, ep.task, steps, ENVIRONMENT)


def run_judge_bench(
    judge: Judge,
    *,
    data: Path | None = None,
    sim_tasks: int = 240,
    seed: int = 7,
    progress: Progress | None = None,
) -> JudgeBench:
    """Judge every case in a scratch database and score the verdicts per source."""
    result = JudgeBench(judge.name, judge.model)
    cases: list[Case] = []
    if data is not None and (data / REFLEXION).is_dir():
        cases += reflexion_cases(data)
    else:
        where = "no --data folder given" if data is None else f"{data / REFLEXION} is absent"
        result.notes.append(f"Reflexion ALFWorld logs not judged: {where}")
    if data is not None and (data / HOTPOTQA).is_file():
        cases += hotpotqa_cases(data)
    else:
        where = "no --data folder given" if data is None else f"{data / HOTPOTQA} is absent"
        result.notes.append(f"Reflexion HotpotQA log not judged: {where}")
    cases += simulator_cases(sim_tasks, seed)
    cases += simulator_cases(sim_tasks // 2, seed + 1, max_steps=SHORT_LIMIT)
    with tempfile.TemporaryDirectory(prefix="memp-judge-bench-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            ids = _store_cases(store, cases)
            judge_unknown(store, judge, actor=system("bench-judge"), progress=progress)
            with store.session() as s:
                said = {j.trajectory_id: j for j in s.exec(select(Judgement))}
        finally:
            store.dispose()
    scores: dict[str, SourceScore] = {}
    for case, tid in zip(cases, ids, strict=True):
        verdict = said[tid]
        scores.setdefault(case.source, SourceScore(case.source)).add(case.truth, verdict.verdict)
        truth = "success" if case.truth else "failure"
        if verdict.verdict not in (truth, Verdict.unknown):
            why = f"{case.source}/{case.name}: was {truth}, judged {verdict.verdict}"
            result.disagreements.append(f"{why}: {verdict.rationale}")
    result.sources = list(scores.values())
    return result


def _store_cases(store: Store, cases: list[Case]) -> list[int]:
    """Each case as a trajectory with an unknown outcome; its id, in order."""
    ids: list[int] = []
    with store.transaction() as s:
        for case in cases:
            opening = case.initial_observation
            facts = {"initial_observation": opening} if opening else {}
            traj = Trajectory(task=case.task, environment=case.environment, success=None,
                              source=f"bench:{case.source}", facts=facts,
                              reference_answer=case.reference_answer or None)  # fmt: skip
            steps = [
                Step(trajectory_id=0, index=i, thought=t or None, action=a or None,
                     observation=o or None)
                for i, (t, a, o) in enumerate(case.steps)
            ]  # fmt: skip
            ids.append(int(store.add_trajectory(s, traj, steps).id or 0))
    return ids
