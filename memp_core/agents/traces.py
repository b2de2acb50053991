"""Spans of one trace -> one agent run (a :class:`TrajectoryReport`).

:func:`assemble` reads the spans of a whole trace (decoded by :mod:`memp_core.agents.spans`)
and makes one run of it:

- **task**: a ``memp.task`` attribute; else the outermost agent span's input (``input.value``,
  or the first user message of ``gen_ai.input.messages``); else the root span's; else the
  first user message an LLM span was sent; else the root span's name.
- **steps**: the outermost tool spans in start order (action = tool name and arguments,
  observation = result). What LLM spans said (text, reasoning) after the previous step
  is the next step's thought.
- **failed steps**: a tool span with ERROR status or an ``exception`` event is a failed step.
  An error on a span around tool steps (smolagents' "Step N" span records tool errors as an
  exception event with status OK) marks the last tool step inside it, unless one already
  failed; an error with no tool step inside (an unknown tool, a crashed agent) is a failed
  step of its own.
- **success** of the whole task only from an explicit attribute, ``memp.success`` or
  ``task.success`` (true/false), on the root span first, then agent spans, then any span:
  no instrumentation records a verdict, so otherwise it is unknown (None), never assumed.
- ``memp.retrieval_id``: the retrieval the run used (its outcome counts for it).

Traces whose spans carry no agent semantics (plain HTTP or database spans) make no run.
The buffer that collects spans over several requests is :mod:`memp_core.agents.intake`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from memp_core.agents.genai import boolean, clean, llm_text, model_of, task_of, tokens_of, tool_call
from memp_core.agents.schemas import MAX_STEPS, MAX_TASK, MAX_TEXT, StepIn, TrajectoryReport
from memp_core.agents.spans import Role, Span

SUCCESS_KEYS = ("memp.success", "task.success")
TASK_KEY = "memp.task"
RETRIEVAL_KEY = "memp.retrieval_id"
MAX_LABEL = 200  # tool and model names (the report's limit)
MAX_NOTE = 2_000  # metadata texts (final output, error notes)
MAX_TOKENS = 10**12  # the report's limit (instrumentations send int64 counts)
MAX_ID = 2**31 - 1  # a row id the database can hold
AGENTIC = frozenset({Role.AGENT, Role.TOOL, Role.LLM, Role.CHAIN})


@dataclass
class StepDraft:
    at: int  # unix ns: where it sits in the run
    action: str
    observation: str | None = None
    tool: str | None = None
    arguments: Any = None
    ok: bool | None = None
    thought: str | None = None


@dataclass
class TraceRun:
    """One trace read as one agent run (what the report and the importer are built from)."""

    trace_id: str
    task: str
    steps: list[StepDraft]
    success: bool | None
    agent_model: str | None = None
    tokens: int | None = None
    retrieval_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class _Tree:
    """Parent links of the spans at hand (a parent may not have arrived)."""

    def __init__(self, spans: list[Span]) -> None:
        self.by_id = {s.span_id: s for s in spans}

    def ancestors(self, span: Span) -> Iterable[Span]:
        seen = {span.span_id}
        parent = self.by_id.get(span.parent_id) if not span.parent_remote else None
        while parent is not None and parent.span_id not in seen:  # ids can loop in bad data
            yield parent
            seen.add(parent.span_id)
            parent = self.by_id.get(parent.parent_id) if not parent.parent_remote else None

    def inside(self, span: Span, role: Role) -> bool:
        return any(a.role is role for a in self.ancestors(span))

    def depth(self, span: Span) -> int:
        return sum(1 for _ in self.ancestors(span))


def assemble(spans: Iterable[Span], *, rooted: bool = True) -> TraceRun | None:
    """The run the spans of one trace describe; None if no span is an agent's."""
    ordered = sorted(spans, key=lambda s: (s.start, s.end, s.span_id))
    if not ordered or not any(s.role in AGENTIC or TASK_KEY in s.attributes for s in ordered):
        return None
    tree = _Tree(ordered)
    tops = [s for s in ordered if tree.depth(s) == 0]
    root = min(tops, key=lambda s: (not s.is_root, s.start))
    agents = sorted(
        (s for s in ordered if s.role is Role.AGENT), key=lambda s: (tree.depth(s), s.start)
    )
    llms = [s for s in ordered if s.role is Role.LLM and not tree.inside(s, Role.TOOL)]
    task, task_source = _task(root, agents, llms, ordered)
    steps, said_last = _steps(ordered, tree, llms)
    success, outcome = _outcome([root, *agents, *ordered])
    counts = [t for t in (tokens_of(s) for s in ordered if s.role is Role.LLM) if t is not None]
    if not counts:
        counts = [t for t in (tokens_of(a) for a in agents[:1]) if t is not None]
    meta = _metadata(root, agents, ordered, rooted)
    meta.update(task_source=task_source, outcome=outcome)
    final = next((s.text("output.value") for s in [root, *agents] if s.text("output.value")), None)
    if final or said_last:
        meta["final_output"] = _cut(final or said_last or "", MAX_NOTE)
    return TraceRun(
        trace_id=root.trace_id,
        task=task,
        steps=steps,
        success=success,
        agent_model=next((m for m in (model_of(s) for s in [*llms, *agents]) if m), None),
        tokens=min(sum(counts), MAX_TOKENS) if counts else None,
        retrieval_id=_retrieval(ordered),
        metadata=meta,
    )


def _metadata(root: Span, agents: list[Span], spans: list[Span], rooted: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": "otlp",
        "trace_id": root.trace_id,
        "service": root.resource.get("service.name"),
        "agent": _agent_name(agents or [root]),
        "root_span": root.name,
        "spans": len(spans),
        "complete": rooted,  # False: assembled after a quiet period, its root never came
        "instrumentation": sorted({s.scope for s in spans if s.scope})[:10],
    }
    return {k: v for k, v in meta.items() if v not in (None, "", [])}


def _task(root: Span, agents: list[Span], llms: list[Span], spans: list[Span]) -> tuple[str, str]:
    for span in [root, *spans]:
        explicit = span.text(TASK_KEY)
        if explicit and explicit.strip():
            return explicit.strip(), f"{TASK_KEY} on span {span.name!r}"
    for what, candidates in (("agent", agents), ("root", [root]), ("LLM", llms)):
        for span in candidates:
            found = task_of(span)
            if found:
                return found, f"input of the {what} span {span.name!r}"
    return root.name or "(unnamed trace)", "the root span's name (no input recorded)"


def _outcome(spans: list[Span]) -> tuple[bool | None, str]:
    for span in spans:
        for key in SUCCESS_KEYS:
            if key in span.attributes:
                verdict = boolean(span.attributes[key])
                if verdict is not None:
                    return verdict, f"{key} on span {span.name!r}"
    return None, f"unknown: no {' or '.join(SUCCESS_KEYS)} attribute"


def _retrieval(spans: list[Span]) -> int | None:
    for span in spans:
        value = span.attributes.get(RETRIEVAL_KEY)
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 12:
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
            return value
    return None


def _agent_name(spans: list[Span]) -> str | None:
    for span in spans:
        for key in ("gen_ai.agent.name", "agent.name", "graph.node.id"):
            if span.text(key):
                return span.text(key)
    return None


def _steps(spans: list[Span], tree: _Tree, llms: list[Span]) -> tuple[list[StepDraft], str | None]:
    """Tool steps and failed steps in time order, each with the thought said before it."""
    tools: dict[str, StepDraft] = {}
    for span in spans:
        if span.role is Role.TOOL and not tree.inside(span, Role.TOOL):
            tools[span.span_id] = _tool_step(span)
    extra = _error_steps(spans, tree, tools)
    timeline: list[tuple[int, int, StepDraft | str]] = [(d.at, 1, d) for d in tools.values()]
    timeline += [(d.at, 1, d) for d in extra]
    for span in llms:
        text = llm_text(span)
        if text:
            timeline.append((span.end, 0, text))
    steps: list[StepDraft] = []
    thoughts: list[str] = []
    for _at, _order, item in sorted(timeline, key=lambda t: (t[0], t[1])):
        if isinstance(item, str):
            thoughts.append(item)
            continue
        item.thought = "\n".join(thoughts) or None
        thoughts = []
        steps.append(item)
    return steps, "\n".join(thoughts) or None


def _tool_step(span: Span) -> StepDraft:
    call = tool_call(span)
    errors = span.errors()
    observation = call.result
    if errors:
        note = "\n".join(message for _, message in errors)
        observation = f"{observation}\nError: {note}" if observation else f"Error: {note}"
    return StepDraft(
        at=span.start,
        action=_action(call.name, call.arguments),
        observation=observation,
        tool=call.name,
        arguments=call.arguments,
        ok=False if errors else None,
    )


def _error_steps(spans: list[Span], tree: _Tree, tools: dict[str, StepDraft]) -> list[StepDraft]:
    """Errors on spans that are not tool steps: they mark a step inside or are one."""
    inside: dict[str, list[StepDraft]] = {}  # span id -> the tool steps under it, in order
    for span in spans:
        if span.span_id in tools:
            for above in tree.ancestors(span):
                inside.setdefault(above.span_id, []).append(tools[span.span_id])
    extra: list[StepDraft] = []
    for span in spans:
        if span.span_id in tools or span.role not in AGENTIC or tree.inside(span, Role.TOOL):
            continue
        for at, message in span.errors():
            inner = inside.get(span.span_id, [])
            if any(step.ok is False for step in inner):
                continue  # the same error, already on the step that raised it
            before = [step for step in inner if step.at <= at] or inner
            if before and span.role is not Role.AGENT and not span.is_root:
                step = before[-1]
                step.ok = False
                step.observation = f"{step.observation or ''}\nError: {message}".lstrip()
                continue
            note = f"Error: {message}"
            extra.append(StepDraft(at=at, action=span.name, observation=note, ok=False))
    return extra


def _action(name: str, arguments: Any) -> str:
    """``tool args`` as the REST door writes a bare tool call (``go_to countertop 1``)."""
    if arguments is None or arguments == "":
        return name
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f"{name} {text}"


# -- the report ----------------------------------------------------------------------------


def to_report(run: TraceRun) -> TrajectoryReport:
    """The run as the agents' door takes it, cut to the report's limits (noted if cut)."""
    steps = run.steps
    meta = dict(run.metadata)
    if len(steps) > MAX_STEPS:
        meta["steps_dropped"] = len(steps) - MAX_STEPS
        steps = steps[:MAX_STEPS]
    return TrajectoryReport(
        task=_cut(run.task, MAX_TASK),
        steps=[_step_in(s) for s in steps],
        success=run.success,
        retrieval_id=run.retrieval_id,
        agent_model=_cut(run.agent_model, MAX_LABEL) if run.agent_model else None,
        tokens=run.tokens,
        metadata=scrub(meta, MAX_NOTE),
        idempotency_key=run.trace_id,
    )


def _step_in(step: StepDraft) -> StepIn:
    arguments = step.arguments
    if not isinstance(arguments, dict | str | type(None)):
        arguments = json.dumps(arguments, ensure_ascii=False)
    if isinstance(arguments, dict) and len(json.dumps(arguments)) > MAX_TEXT:
        arguments = json.dumps(arguments, ensure_ascii=False)
    if isinstance(arguments, str):
        arguments = _cut(arguments, MAX_TEXT)
    return StepIn(
        thought=_cut(step.thought, MAX_TEXT) if step.thought else None,
        action=_cut(step.action, MAX_TEXT),
        observation=_cut(step.observation, MAX_TEXT) if step.observation else None,
        tool=_cut(step.tool, MAX_LABEL) if step.tool else None,
        arguments=scrub(arguments),
        ok=step.ok,
    )


def _cut(text: str, limit: int) -> str:
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(value: Any, limit: int = MAX_TEXT) -> Any:
    """JSON values a database stores: every string :func:`clean` and cut to ``limit``."""
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, dict):
        return {_cut(str(k), MAX_LABEL): scrub(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, limit) for v in value]
    return value
