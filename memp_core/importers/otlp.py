"""Saved OpenTelemetry traces (OTLP/JSON): each trace of an agent run becomes a trajectory.

Accepted: what the OpenTelemetry Collector's file exporter writes (one
``ExportTraceServiceRequest`` JSON object per line, a trace's spans spread over several
lines), a single such JSON document, or a JSON array of them. Ids are hex and names
camelCase as OTLP/JSON has them (protobuf's own JSON mapping, base64 ids, works too).

Spans are read exactly as ``memp serve`` reads them at ``/v1/traces``
(:mod:`memp_core.agents.traces`: OpenInference and OTel GenAI attributes; tool spans are
steps, ERROR status or exception events mark failed steps). The whole task's outcome comes
only from a ``memp.success`` or ``task.success`` attribute; without one it is unknown.
Traces with no agent spans (plain HTTP or database spans) are skipped with a warning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memp_core.agents.genai import clean
from memp_core.agents.spans import Span, decode_json, spans_of
from memp_core.agents.traces import MAX_NOTE, TraceRun, assemble, scrub
from memp_core.errors import ImportFormatError
from memp_core.facts import extract_facts
from memp_core.importers.checks import MAX_STEPS, MAX_TEXT
from memp_core.importers.records import BadRecord, ImportWarning, Item, StepRecord, TrajectoryRecord
from memp_core.importers.source import (
    Progress,
    TextFile,
    head_text,
    iter_lines,
    load_json,
    open_text,
    parse_json,
    type_name,
)

Traces = dict[str, list[Span]]  # trace id -> its spans, in the order the file holds them


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    src = open_text(path)
    traces: Traces = {}
    first = next((ln for ln in head_text(src).splitlines() if ln.strip()), "")
    if _is_json_object(first):
        for lineno, line in iter_lines(src, progress):
            if line.strip():
                yield from _collect(traces, line, src, lineno)
    else:
        value = load_json(src, progress)
        documents = value if isinstance(value, list) else [value]
        for i, doc in enumerate(documents):
            yield from _add(traces, doc, src, f"[{i}]" if isinstance(value, list) else None)
    found = 0
    for trace_id, spans in traces.items():
        run = assemble(spans, rooted=any(s.is_root for s in spans))
        if run is None:
            yield ImportWarning(src.name, f"trace {trace_id}", "no agent spans; skipped")
            continue
        found += 1
        yield record(run)
    if not found and not traces:
        raise ImportFormatError(src.name, None, "no spans found (expected OTLP resourceSpans)")


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _collect(traces: Traces, line: str, src: TextFile, lineno: int) -> Iterator[Item]:
    try:
        value = parse_json(line, src.name, lineno - 1)
    except ImportFormatError as exc:
        yield BadRecord(exc)
        return
    yield from _add(traces, value, src, f"line {lineno}")


def _add(traces: Traces, value: Any, src: TextFile, where: str | None) -> Iterator[Item]:
    if not isinstance(value, dict):
        reason = f"expected an OTLP export object, got {type_name(value)}"
        yield BadRecord(ImportFormatError(src.name, where, reason))
        return
    try:
        message = decode_json(value, src.name, where)
        spans = list(spans_of(message, src.name))
    except ImportFormatError as exc:
        yield BadRecord(ImportFormatError(src.name, where, exc.reason))
        return
    if not message.resource_spans and value:
        yield BadRecord(ImportFormatError(src.name, where, "object holds no resourceSpans"))
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)


def record(run: TraceRun) -> TrajectoryRecord:
    """One assembled trace as an import record (outcome unknown unless the trace said)."""
    facts: dict[str, Any] = dict(extract_facts(run.task).as_dict())
    facts["metadata"] = scrub(run.metadata, MAX_NOTE)
    facts["outcome"] = run.metadata.get("outcome", "")
    steps = [
        StepRecord(
            thought=_cut(s.thought),
            action=_cut(s.action),
            observation=_cut(s.observation),
            is_error=True if s.ok is False else None,
        )
        for s in run.steps[:MAX_STEPS]
    ]
    if len(run.steps) > MAX_STEPS:
        facts["steps_dropped"] = len(run.steps) - MAX_STEPS
    return TrajectoryRecord(
        task=_cut(run.task) or run.trace_id,
        success=run.success,  # None: unknown, never assumed
        steps=steps,
        where=f"trace {run.trace_id}",
        task_type=facts.get("task_type", ""),
        agent_model=clean(run.agent_model or "")[:200],
        facts=facts,
        token_count=run.tokens or 0,
        hash_salt=f"otlp:{run.trace_id}",  # the same trace imports once; a twin run does not
    )


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = clean(text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
