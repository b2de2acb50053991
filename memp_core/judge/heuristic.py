"""The ``heuristic`` judge: replays a household run and checks the task's goal.

ALFWorld (and Memp's household simulator) end an episode when its goal holds: the object of
the task, transformed as asked (heated, cooled, cleaned), lies in or on a receptacle of the
asked kind; two of them for "put two" tasks; for "look at X under the lamp" the agent holds
the object where a lamp it switched on stands. Neither prints a verdict in the transcript, so
this judge rebuilds that state from what the world answered: an action counts only when its
observation says it happened (``You pick up the mug 1 ...``, not ``Nothing happens.``).

Because the world ends an episode at its goal, a run that goes on after the rebuilt state
says the goal held tells the judge its reading was wrong. The one state no observation shows
is a lamp going off (timer lamps switch off when the agent walks away): once a run goes on
past "holding the object by a lit lamp", lamps count as on only until the agent moves.
A success is the goal holding at the run's last confirmed action.

It reads the task sentence (:func:`memp_core.facts.extract_facts`) and the steps, nothing
else. A question (HotpotQA) with a gold answer is judged by HotpotQA's exact match of the
agent's ``Finish[...]`` answer against it (both normalised as HotpotQA's evaluation does).
It abstains ("unknown", saying why) where it cannot tell: a question without a gold answer,
a task sentence that is no household task (web shopping, free text), a known non-household
environment, a run with no steps or no observations, or one whose answered actions it
cannot follow.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from memp_core.config import Settings
from memp_core.facts import TaskFacts, extract_facts
from memp_core.judge import Judge, JudgeInput, JudgeVerdict, abstain
from memp_core.sim.grammar import LAMP_TYPES, type_of
from memp_core.sim.transcript import Event, events_of
from memp_core.vocab import Verdict

# Environments whose runs are household text worlds; "" is an import that did not say.
HOUSEHOLD = frozenset({"alfworld", "household-sim", "household", "textworld", ""})
# Question answering: judged against a gold answer when the task has one, else abstained on.
QUESTION_ANSWERING = frozenset({"hotpotqa", "fever", "qa", "chat"})
FINISH = re.compile(r"^\s*finish\[(.*)\]\s*$", re.I | re.S)
ANSWER_RIGHT = 0.9  # the answer matches the gold answer exactly (after normalising)
ANSWER_WRONG = 0.85  # it does not (a paraphrase of the right answer reads as wrong)
NO_ANSWER = 0.85  # the agent never answered
PUNCTUATION = frozenset(string.punctuation)
STATE_OF = {"heat": "hot", "cool": "cool", "clean": "clean"}
SURE = 0.95  # the goal held at the last action, and the run ended there
GOAL_THEN_MORE = 0.8  # ... though actions with no confirmed effect followed it
FAILED = 0.9  # the run ended without the goal ever holding
WENT_ON = 0.7  # the goal seemed to hold mid-run, the world went on, and at the end it did not
UNFOLLOWED = 0.6  # failed, while some answered actions could not be followed
MAX_UNFOLLOWED_SHARE = 0.3  # above this share of answered actions it cannot follow: abstain
# What the world answers when an action took effect (ALFWorld's and the simulator's wording).
CONFIRMS = {
    "take": "you pick up the {obj}",
    "put": "you put the {obj}",
    "heat": "you heat the {obj}",
    "cool": "you cool the {obj}",
    "clean": "you clean the {obj}",
    "use": "you turn on the {place}",
}


@dataclass
class HouseState:
    """What the run did to the room, rebuilt from accepted actions only."""

    holding: str = ""
    placed: dict[str, str] = field(default_factory=dict)  # object instance -> receptacle
    states: dict[str, set[str]] = field(default_factory=dict)  # object instance -> {"hot"}
    lamps_on: dict[str, str] = field(default_factory=dict)  # lamp instance -> where it stands
    taken: set[str] = field(default_factory=set)  # object types ever picked up
    transformed: dict[str, set[str]] = field(default_factory=dict)  # state -> object types
    lamps_timed: bool = False  # lamps switch off when the agent moves (read from the run)


def confirmed(ev: Event) -> bool:
    """The world's answer says this action took effect (an action inside the grammar)."""
    act = ev.action
    if act is None or not ev.ok:
        return False
    said = CONFIRMS.get(act.verb)
    if said is None:
        return True  # go, open, look ...: ``ok`` (not "Nothing happens.") is the answer
    return ev.observation.lower().startswith(said.format(obj=act.obj_id, place=act.place_id))


def unfollowed(ev: Event) -> bool:
    """An action the world answered with more than a refusal, whose effect cannot be read:
    outside the grammar, or answered with words that do not confirm it."""
    obs = ev.observation.strip().lower()
    if not obs or obs.startswith("nothing happens") or obs in ("ok.", "ok"):
        return False
    return not confirmed(ev)


def apply(state: HouseState, ev: Event) -> None:
    """Change ``state`` by one step the world accepted."""
    act = ev.action
    if act is None:
        return
    if act.verb == "go" and state.lamps_timed:
        state.lamps_on.clear()
    elif act.verb == "take":
        state.holding = act.obj_id
        state.placed.pop(act.obj_id, None)
        state.taken.add(act.obj)
    elif act.verb == "put":
        state.placed[act.obj_id] = act.place_id
        state.holding = ""
    elif act.verb in STATE_OF:
        word = STATE_OF[act.verb]
        state.states.setdefault(act.obj_id, set()).add(word)
        state.transformed.setdefault(word, set()).add(act.obj)
    elif act.verb == "use" and act.place in LAMP_TYPES:
        state.lamps_on[act.place_id] = ev.at


def goal_met(facts: TaskFacts, state: HouseState, at: str) -> bool:
    """The simulator's and ALFWorld's goal check, on the rebuilt state."""
    if facts.task_type == "examine":
        lit_here = any(where == at and at for where in state.lamps_on.values())
        return lit_here and type_of(state.holding) == facts.object
    return len(delivered(facts, state)) >= (2 if facts.task_type == "puttwo" else 1)


def delivered(facts: TaskFacts, state: HouseState) -> list[str]:
    """Instances of the task's object lying in a target receptacle, transformed as asked."""
    need = STATE_OF.get(facts.task_type)
    return [
        obj
        for obj, rec in state.placed.items()
        if type_of(obj) == facts.object
        and type_of(rec) == facts.receptacle
        and (need is None or need in state.states.get(obj, set()))
    ]


def missing(facts: TaskFacts, state: HouseState) -> str:
    """What of the goal never held, in one clause."""
    obj, rec, kind = facts.object, facts.receptacle, facts.task_type
    if obj not in state.taken:
        return f"no {obj} was ever picked up"
    if kind == "examine":
        if not state.lamps_on:
            return f"the {obj} was picked up but no {facts.tool or 'lamp'} was switched on"
        return f"no lamp was switched on where the agent stood holding the {obj}"
    need = STATE_OF.get(kind)
    if need and obj not in state.transformed.get(need, set()):
        return f"the {obj} was picked up but never made {need}"
    if kind == "puttwo":
        n = len(delivered(facts, state))
        return f"{n} {obj} ended in/on a {rec}, two were asked"
    what = f"{need} {obj}" if need else obj
    return f"no {what} ended in/on a {rec}"


def achieved(facts: TaskFacts) -> str:
    obj, rec = facts.object, facts.receptacle
    if facts.task_type == "examine":
        return f"the agent held the {obj} where it had switched on a lamp"
    if facts.task_type == "puttwo":
        return f"two {obj}s lay in/on a {rec}"
    need = STATE_OF.get(facts.task_type)
    return f"{_a(need or obj)} {need + ' ' if need else ''}{obj} lay in/on a {rec}"


class HeuristicJudge(Judge):
    """Offline, no model: the goal of a household task checked against the observations."""

    name = "heuristic"
    model = "heuristic"

    def __init__(self, settings: Settings | None = None) -> None:
        """Needs no settings; takes them to be built like every registered judge."""

    def judge(self, run: JudgeInput) -> JudgeVerdict:
        env = run.environment.strip().lower()
        if env in QUESTION_ANSWERING:
            if run.reference_answer.strip():
                return judge_answer(run)
            return abstain(
                f"a {env} run (question answering or chat) without a gold answer: no goal "
                "state to check and no answer to compare with"
            )
        if env not in HOUSEHOLD:
            return abstain(f"unknown environment {run.environment!r}: no goal check for it")
        facts = extract_facts(run.task)
        if not facts.task_type or not facts.object:
            return abstain(
                f"the task {run.task[:80]!r} is not a household task sentence the judge "
                "knows, so it has no goal to check"
            )
        events = events_of(run.steps)
        if not events:
            return abstain("no actions were recorded: nothing to check the goal against")
        if not any(ev.observation for ev in events):
            return abstain("no observations were recorded: the judge reads what the world said")
        return self._replay(facts, events)

    def _replay(self, facts: TaskFacts, events: list[Event]) -> JudgeVerdict:
        state = HouseState()
        answered = [ev for ev in events if confirmed(ev) or unfollowed(ev)]
        done = [ev for ev in answered if confirmed(ev)]
        lost = len(answered) - len(done)
        first: int | None = None  # the step where the goal first seemed to hold
        for n, ev in enumerate(done):
            apply(state, ev)
            if not goal_met(facts, state, ev.at):
                continue
            first = ev.index if first is None else first
            if n < len(done) - 1 and facts.task_type == "examine":
                # the world went on: the lamp did not stay on when the agent walked away
                state.lamps_timed = True
                state.lamps_on.clear()
        if answered and lost / len(answered) > MAX_UNFOLLOWED_SHARE:
            return abstain(
                f"{lost} of the {len(answered)} actions the world answered have no effect the "
                "judge can read (outside ALFWorld's grammar or unconfirmed)"
            )
        last = done[-1] if done else None
        if last is not None and goal_met(facts, state, last.at):
            after = len(events) - 1 - events.index(last)
            why = f"at step {last.index}, its last confirmed action, {achieved(facts)}"
            if after == 0:
                return JudgeVerdict(Verdict.success, SURE, f"{why}: the goal held")
            why += f"; {after} later action(s) had no confirmed effect"
            return JudgeVerdict(Verdict.success, GOAL_THEN_MORE, why)
        why = f"the run ended after {len(events)} actions and the goal did not hold: "
        why += missing(facts, state)
        if first is not None:
            why += (
                f" (it seemed to hold at step {first}, but the run went on, and a world ends "
                "an episode at its goal)"
            )
            return JudgeVerdict(Verdict.failure, WENT_ON, why)
        if lost:
            why += f" ({lost} answered action(s) could not be followed)"
            return JudgeVerdict(Verdict.failure, UNFOLLOWED, why)
        return JudgeVerdict(Verdict.failure, FAILED, why)


def normalise_answer(text: str) -> str:
    """HotpotQA's answer normalisation: lower case, no punctuation, no articles, one space."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def judge_answer(run: JudgeInput) -> JudgeVerdict:
    """A question run: its last ``Finish[...]`` against the gold answer (exact match)."""
    answers = [m.group(1) for st in run.steps if (m := FINISH.match(st.action or ""))]
    gold = run.reference_answer.strip()
    if not answers:
        why = f"the agent never answered (no Finish[...] among {len(run.steps)} steps)"
        return JudgeVerdict(Verdict.failure, NO_ANSWER, why)
    said = answers[-1].strip()
    if normalise_answer(said) == normalise_answer(gold):
        why = f"the agent answered {said[:120]!r}, which matches the gold answer {gold[:120]!r}"
        return JudgeVerdict(Verdict.success, ANSWER_RIGHT, why)
    why = f"the agent answered {said[:120]!r}; the gold answer is {gold[:120]!r}"
    return JudgeVerdict(Verdict.failure, ANSWER_WRONG, why)


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
