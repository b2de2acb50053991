"""Every prompt Memp sends to a model: named constants plus small pure builders.

Builders return chat ``messages`` (``list[dict]``) and never talk to a model; the engine never
concatenates prompt strings inline. Answers are asked for in tagged sections
(``<script>...</script>``) because numbered multi-line scripts survive tags better than JSON
string escaping; the parser in :mod:`memp_core.llm_answers` accepts either. Each answer form
ends with a known closing tag (``SCRIPT_END``, ``REFLECT_END``): requests send it as a stop
sequence, so a model that would ramble on after its answer is stopped there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memp_core.llm import RunView, StepView

Message = dict[str, str]

MAX_SCRIPT_STEPS = 40
_STEP = re.compile(r"^(\d+)[.)]\s+(\S.*)$")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*$", re.M)
MAX_STEPS_SHOWN = 60  # longer runs keep their first and last steps (the failure is usually late)
MAX_OBSERVATION_CHARS = 300
MAX_REPAIR_ECHO_CHARS = 1500  # a cut-off ramble is echoed only in part in the repair request
SCRIPT_END = "</rationale>"  # the last tag of a build answer: its stop sequence
REFLECT_END = "</script>"  # the last tag of a reflection answer

SCRIPT_FORMAT_RULES = """\
Write the procedure as numbered steps, one action per line: "1. ...", "2. ...", ...
- Replace the task's own object and target place by the roles <object> and <receptacle>.
- Keep fixed appliances concrete (microwave, fridge, sinkbasin, desklamp).
- A step may carry a hint after a colon, e.g. "1. Find the <object>: check countertop, \
cabinet, fridge".
- No prose before or after the steps, no sub-bullets, at most 15 steps."""


def _script_answer(rationale: str) -> str:
    """The answer form of a script (builds and absorbs): its rationale says ``rationale``."""
    return f"""\
Answer in exactly this form:
<script>
1. ...
2. ...
</script>
<rationale>one or two sentences: {rationale}</rationale>"""


SCRIPT_SYSTEM_PROMPT = f"""\
You distil procedural memory for a household agent. You read successful runs of one task \
type and write a short, general procedure that would solve any task of that type.

{SCRIPT_FORMAT_RULES}

{_script_answer("what the runs had in common")}"""

SCRIPT_USER_TEMPLATE = """\
Task type: {task_type}
Successful runs ({n_runs}):

{runs}

Write the general procedure for "{task_type}" tasks."""

REFLECT_SYSTEM_PROMPT = f"""\
You revise procedural memory after a failure. An agent followed a procedure and failed. \
Find the first step where the run went wrong (an invalid action, a loop, a wrong place or \
a missing precondition such as opening a closed receptacle) and rewrite the procedure so \
that the next agent avoids it. Keep what worked. If the procedure is (empty), the agent \
followed none: write the first procedure from the failure alone, stating only what the run \
showed (what did nothing, what would not open, where the object was not).

{SCRIPT_FORMAT_RULES}

Answer in exactly this form:
<analysis>what went wrong, at which step, and how the revision fixes it</analysis>
<failing_step>the 0-based index of the first failing step of the run, or none</failing_step>
<script>
1. ...
</script>"""

ABSORB_SYSTEM_PROMPT = f"""\
You update procedural memory with new successful runs. The procedure was revised after a \
failure: keep every correction it holds (what not to do, what to open first, what does \
nothing here) unless a successful run shows it wrong, and add what the new runs show \
(where the object was found, the appliance that worked, what had to be opened).

{SCRIPT_FORMAT_RULES}

{_script_answer("what the new runs added")}"""

ABSORB_USER_TEMPLATE = """\
Procedure (revised after a failure):
{script}

New successful runs ({n_runs}):

{runs}

Update the procedure."""

REFLECT_USER_TEMPLATE = """\
Procedure the agent followed:
{script}

Failed run:
{run}

Revise the procedure."""

REPAIR_TEMPLATE = """\
Your answer could not be used: {problem}
Answer again in exactly the requested form (tagged sections, numbered steps "1. ...")."""

TRUNCATED_TEMPLATE = """\
Your answer was cut off at the limit of {max_tokens} tokens before it ended ({problem}).
Answer again, much shorter: only the tagged sections in the requested order, at most 15 \
short steps, nothing before or after them."""

REACT_SYSTEM_PROMPT = """\
You are an agent in a household text world. Each turn, answer with exactly one line:
either an action from the grammar, or "think: <reasoning>".
Actions: go to X, open X, close X, take O from R, put O in/on R, clean O with R, \
heat O with R, cool O with R, use X, examine X, look, inventory."""

REACT_MEMORY_TEMPLATE = """\
Procedures that solved similar tasks before (adapt them to this task's objects and places):
{procedures}"""


def render_steps(steps: Sequence[StepView], limit: int = MAX_STEPS_SHOWN) -> str:
    """Numbered ``[i] > action`` lines with thoughts and (shortened) observations."""
    indexed = list(enumerate(steps))
    skipped = 0
    if len(indexed) > limit:
        head = limit // 3
        skipped = len(indexed) - limit
        indexed = indexed[:head] + indexed[head + skipped :]
    lines: list[str] = []
    for pos, (i, step) in enumerate(indexed):
        if skipped and pos == limit // 3:
            lines.append(f"... ({skipped} steps omitted) ...")
        if step.thought:
            lines.append(f"[{i}] think: {step.thought}")
        if step.action:
            lines.append(f"[{i}] > {step.action}")
        if step.observation:
            lines.append(f"    {_shorten(step.observation)}")
    return "\n".join(lines)


def render_run(run: RunView) -> str:
    outcome = "success" if run.success else "failure"
    return f"Task: {run.task}\nOutcome: {outcome}\n{render_steps(run.steps)}"


def script_messages(task_type: str, runs: Sequence[RunView]) -> list[Message]:
    """Ask for one general script distilled from ``runs`` of ``task_type``."""
    body = "\n\n".join(f"Run {i + 1}:\n{render_run(r)}" for i, r in enumerate(runs))
    user = SCRIPT_USER_TEMPLATE.format(task_type=task_type, n_runs=len(runs), runs=body)
    return [
        {"role": "system", "content": SCRIPT_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def absorb_messages(script: str, runs: Sequence[RunView]) -> list[Message]:
    """Ask for ``script`` (shaped by a reflection) updated with what ``runs`` showed."""
    body = "\n\n".join(f"Run {i + 1}:\n{render_run(r)}" for i, r in enumerate(runs))
    user = ABSORB_USER_TEMPLATE.format(script=script.strip(), n_runs=len(runs), runs=body)
    return [
        {"role": "system", "content": ABSORB_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def reflect_messages(failed: RunView, script: str) -> list[Message]:
    """Ask for a revised script after the failed run that followed ``script``."""
    user = REFLECT_USER_TEMPLATE.format(script=script.strip() or "(empty)", run=render_run(failed))
    return [
        {"role": "system", "content": REFLECT_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def repair_messages(
    messages: Sequence[Message], raw: str, problem: str, *, cut_at: int | None = None
) -> list[Message]:
    """The original conversation plus the bad answer and a request to answer in format.

    ``cut_at``: the answer was cut at that many tokens; the request then asks for a shorter
    answer, and only the start of the cut answer is echoed back (a ramble need not be resent).
    """
    if cut_at is None:
        ask = REPAIR_TEMPLATE.format(problem=problem)
    else:
        ask = TRUNCATED_TEMPLATE.format(max_tokens=cut_at, problem=problem)
    if len(raw) > MAX_REPAIR_ECHO_CHARS:
        raw = raw[:MAX_REPAIR_ECHO_CHARS] + " [...]"
    return [
        *messages,
        {"role": "assistant", "content": raw},
        {"role": "user", "content": ask},
    ]


def react_messages(
    task: str,
    observation: str,
    history: Sequence[StepView] = (),
    procedures: Sequence[str] = (),
) -> list[Message]:
    """A ReAct turn: the system prompt, retrieved procedures, the task and the steps so far.

    ``observation`` is the world's opening description; each step of ``history`` becomes an
    assistant action followed by a user observation, as the paper's agents were prompted.
    """
    system = REACT_SYSTEM_PROMPT
    if procedures:
        shown = "\n\n".join(f"Procedure {i + 1}:\n{p.strip()}" for i, p in enumerate(procedures))
        system += "\n\n" + REACT_MEMORY_TEMPLATE.format(procedures=shown)
    messages: list[Message] = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{observation.strip()}\nYour task is to: {task.strip()}"},
    ]
    for step in history:
        said = f"think: {step.thought}" if step.thought and not step.action else step.action
        messages.append({"role": "assistant", "content": said})
        messages.append({"role": "user", "content": step.observation or "OK."})
    return messages


def _shorten(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalise_script(value: object) -> str:
    """Validate numbered steps ("1. ...") and return them one per line; raise ValueError."""
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ValueError("script must be text")
    lines = [ln.strip() for ln in _FENCE.sub("", value).splitlines() if ln.strip()]
    if not lines:
        raise ValueError("the script is empty")
    if len(lines) > MAX_SCRIPT_STEPS:
        raise ValueError(f"the script has {len(lines)} lines, at most {MAX_SCRIPT_STEPS}")
    out: list[str] = []
    for n, line in enumerate(lines, start=1):
        m = _STEP.match(line)
        if m is None:
            raise ValueError(f"line {n} is not a numbered step: {line[:80]!r}")
        if int(m.group(1)) != n:
            raise ValueError(f"step {n} is numbered {m.group(1)} (steps must count 1, 2, 3...)")
        out.append(f"{n}. {m.group(2).strip()}")
    return "\n".join(out)


JUDGE_END = "</rationale>"  # the last tag of a judgement: its stop sequence
JUDGE_VERDICTS = ("success", "failure", "unknown")

JUDGE_SYSTEM_PROMPT = """\
You judge whether an agent's run achieved its task. Nobody recorded the outcome: decide it \
from the transcript alone, from what the environment answered to each action (an action \
the environment refused, e.g. "Nothing happens.", changed nothing).
- success: the transcript shows the task's goal achieved (for a household task: the right \
object, transformed as asked, ends in or on the asked place; two objects for "two").
- failure: the run ended and the goal was never achieved.
- unknown: the transcript cannot tell (e.g. a question answered with no gold answer to \
check it against, or the transcript is cut before the end).
For a question with a gold answer: success when the agent's final answer means the same.

Answer in exactly this form:
<verdict>success, failure or unknown</verdict>
<confidence>a number from 0 to 1: how sure you are</confidence>
<rationale>one or two sentences naming the steps that decide it</rationale>"""

JUDGE_USER_TEMPLATE = """\
Environment: {environment}
Task: {task}
{opening}{gold}Transcript ({n_steps} steps):
{steps}

Judge this run."""


def judge_messages(
    task: str,
    steps: Sequence[StepView],
    *,
    environment: str = "",
    opening: str = "",
    reference: str = "",
) -> list[Message]:
    """Ask for a verdict on a run whose outcome is unknown (no outcome line is shown);
    ``reference``: a question's gold answer."""
    first = f"Opening observation: {_shorten(opening, 600)}\n" if opening.strip() else ""
    gold = f"Gold answer: {_shorten(reference)}\n" if reference.strip() else ""
    user = JUDGE_USER_TEMPLATE.format(
        environment=environment or "(not recorded)", task=task.strip(), opening=first, gold=gold,
        n_steps=len(steps), steps=render_steps(steps) or "(no steps recorded)",
    )  # fmt: skip
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
