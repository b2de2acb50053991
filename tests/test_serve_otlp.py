"""OTLP trace intake: the real OpenTelemetry SDK and its OTLP/HTTP exporter against uvicorn on
127.0.0.1, spans shaped as the OpenInference (LangGraph, smolagents) and OTel GenAI
instrumentations emit them; and `memp import --format otlp` on saved OTLP/JSON files."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer
from serve_helpers import LiveServer, bearer, live_server, make_key
from sqlmodel import col, select
from typer.testing import CliRunner

from memp_core.actor import Actor, os_user
from memp_core.agents.intake import QUIET_SECONDS, TraceBuffer
from memp_core.agents.keys import Identity, create_key, revoke_key
from memp_core.agents.spans import Span
from memp_core.cli import app as cli
from memp_core.config import Settings
from memp_core.embeddings import Embedder
from memp_core.importers import import_paths
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, Step, Trajectory
from memp_core.models import Status as ProcedureStatus
from memp_core.service.otlp_door import intake_of
from memp_core.store import Store

DATA = Path(__file__).parent / "data" / "otlp"
WRITER = ["procedures:read", "runs:write"]
PROTOBUF = "application/x-protobuf"
SOAP = [
    ("go_to", "countertop 1", "On the countertop 1, you see a soapbar 1."),
    ("take", "soapbar 1 from countertop 1", "You pick up the soapbar 1."),
    ("go_to", "cabinet 1", "The cabinet 1 is open."),
    ("put", "soapbar 1 in/on cabinet 1", "You put the soapbar 1 in/on the cabinet 1."),
]


class CountingExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter, remembering the result of each request it sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.results.append(result)
        return result


@pytest.fixture(name="srv")
def srv_fixture(db_url: str, hash_embedder: Embedder) -> Iterator[LiveServer]:
    with live_server(db_url, embedder=hash_embedder) as srv:
        yield srv


@pytest.fixture(name="bot")
def bot_fixture(srv: LiveServer) -> str:
    return make_key(srv.store, "bot", WRITER)


def _tracer(
    exporter: SpanExporter, *, batch: bool = False, service: str = "agent"
) -> tuple[TracerProvider, Tracer]:
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return tp, tp.get_tracer("test.agent")


def _exporter(srv: LiveServer, key: str | None, **kwargs: Any) -> CountingExporter:
    headers = bearer(key) if key else {}
    return CountingExporter(endpoint=f"{srv.url}/v1/traces", headers=headers, **kwargs)


def _runs(store: Store) -> list[tuple[Trajectory, list[Step]]]:
    with store.session() as s:
        trajs = s.exec(select(Trajectory).order_by(col(Trajectory.id))).all()
        return [
            (
                t,
                list(
                    s.exec(select(Step).where(Step.trajectory_id == t.id).order_by(col(Step.index)))
                ),
            )
            for t in trajs
        ]


def _soap_agent(tr: Tracer) -> str:
    """An OpenInference agent: AGENT span, an LLM span, four TOOL spans; its trace id."""
    with tr.start_as_current_span("agent", attributes={
        "openinference.span.kind": "AGENT", "input.value": "put some soapbar in cabinet",
        "agent.name": "soap-agent",
    }) as root:  # fmt: skip
        with tr.start_as_current_span("ChatOpenAI", attributes={
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "The soapbar should be on the countertop.",
            "llm.token_count.total": 42,
        }):  # fmt: skip
            pass
        for name, arg, out in SOAP:
            with tr.start_as_current_span(name, attributes={
                "openinference.span.kind": "TOOL", "tool.name": name, "input.value": arg,
                "output.value": out,
            }):  # fmt: skip
                pass
        return format(root.get_span_context().trace_id, "032x")


def test_openinference_agent_sent_span_by_span_becomes_one_trajectory(
    srv: LiveServer, bot: str
) -> None:
    exporter = _exporter(srv, bot)
    tp, tr = _tracer(exporter)
    trace_id = _soap_agent(tr)
    tp.shutdown()
    # SimpleSpanProcessor: one request per span, the four tools and the LLM before the agent
    assert exporter.results == [SpanExportResult.SUCCESS] * 6
    ((traj, steps),) = _runs(srv.store)
    assert traj.task == "put some soapbar in cabinet"
    assert traj.reporting_agent == "bot" and traj.idempotency_key == trace_id
    assert traj.success is None  # nothing in the trace says whether the task succeeded
    assert traj.agent_model == "gpt-4o-mini" and traj.token_count == 42
    assert [s.action for s in steps] == [f"{name} {arg}" for name, arg, _ in SOAP]
    assert [s.observation for s in steps] == [out for _, _, out in SOAP]
    assert steps[0].thought == "The soapbar should be on the countertop."
    assert not any(s.is_error for s in steps)
    assert len(intake_of(srv.app).buffer) == 0


def _genai_agent(tr: Tracer) -> None:
    """OTel GenAI conventions: invoke_agent, chat spans, execute_tool spans; one tool fails."""
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "You run a household robot."}]},
        {
            "role": "user",
            "parts": [{"type": "text", "content": "put a clean mug in coffeemachine"}],
        },
    ]
    with tr.start_as_current_span("invoke_agent household", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "household",
        "gen_ai.input.messages": json.dumps(messages), "memp.success": True,
    }):  # fmt: skip
        for reasoning, tool, args, result in [
            ("The mug is in the cabinet.", "go_to", {"target": "cabinet 1"}, "You see a mug 1."),
            ("Clean it.", "clean", {"object": "mug 1"}, None),
            ("Put it in the machine.", "put", {"object": "mug 1"}, "You put the mug 1 in."),
        ]:
            out = [{"role": "assistant", "parts": [
                {"type": "reasoning", "content": reasoning},
                {"type": "tool_call", "id": "c1", "name": tool, "arguments": args},
            ]}]  # fmt: skip
            with tr.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.output.messages": json.dumps(out),
                "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
            }):  # fmt: skip
                pass
            with tr.start_as_current_span(f"execute_tool {tool}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                "gen_ai.tool.call.arguments": json.dumps(args),
            }, record_exception=False, set_status_on_exception=False) as span:  # fmt: skip
                if result is None:
                    span.record_exception(RuntimeError("You are not at a sink."))
                    span.set_status(Status(StatusCode.ERROR, "You are not at a sink."))
                else:
                    span.set_attribute("gen_ai.tool.call.result", result)


def test_genai_agent_batched_and_gzipped_marks_the_failed_tool_and_takes_the_verdict(
    srv: LiveServer, bot: str
) -> None:
    exporter = _exporter(srv, bot, compression=Compression.Gzip)
    tp, tr = _tracer(exporter, batch=True)
    _genai_agent(tr)
    tp.shutdown()
    assert exporter.results and set(exporter.results) == {SpanExportResult.SUCCESS}
    ((traj, steps),) = _runs(srv.store)
    assert traj.task == "put a clean mug in coffeemachine"
    assert traj.success is True  # memp.success on the agent span
    assert traj.agent_model == "gpt-4o" and traj.token_count == 330
    assert [s.action for s in steps] == [
        'go_to {"target": "cabinet 1"}', 'clean {"object": "mug 1"}', 'put {"object": "mug 1"}'
    ]  # fmt: skip
    assert [s.is_error for s in steps] == [False, True, False]
    assert "You are not at a sink." in (steps[1].observation or "")
    assert [s.thought for s in steps] == [
        "The mug is in the cabinet.",
        "Clean it.",
        "Put it in the machine.",
    ]
    # the validation policy built from the successful run: it waits for review
    with srv.store.session() as s:
        statuses = set(s.exec(select(Procedure.status)).all())
    assert statuses <= {ProcedureStatus.pending_review}


def test_smolagents_tool_error_recorded_as_event_with_status_ok_marks_a_failed_step(
    srv: LiveServer, bot: str
) -> None:
    exporter = _exporter(srv, bot)
    tp, tr = _tracer(exporter, service="smolagents")
    task = "How many stars does the smolagents repository have?"
    run_input = {"task": task, "stream": False, "reset": True, "images": None}
    with tr.start_as_current_span("ToolCallingAgent.run", attributes={
        "openinference.span.kind": "AGENT", "input.value": json.dumps(run_input),
    }):  # fmt: skip
        calls = [
            ("web_search", {"query": "smolagents github"}, "github.com/huggingface/smolagents"),
            ("visit_webpage", {"url": "https://github.com/huggingface/smolagents"}, "<html>"),
            (None, None, None),  # the model called a tool that does not exist
            ("final_answer", {"answer": "about 20k"}, "about 20k"),
        ]
        for n, (tool, kwargs, out) in enumerate(calls, 1):
            with tr.start_as_current_span(f"Step {n}", attributes={
                "openinference.span.kind": "CHAIN", "input.value": f"Step {n}",
            }) as step:  # fmt: skip
                with tr.start_as_current_span("LiteLLMModel.generate", attributes={
                    "openinference.span.kind": "LLM",
                    "llm.output_messages.0.message.content": f"Thought {n}",
                }):  # fmt: skip
                    pass
                if tool is not None:
                    wrapped = {"args": [], "sanitize_inputs_outputs": True, "kwargs": kwargs}
                    with tr.start_as_current_span(tool, attributes={
                        "openinference.span.kind": "TOOL", "tool.name": tool,
                        "input.value": json.dumps(wrapped), "output.value": out,
                    }):  # fmt: skip
                        pass
                if n == 2:  # smolagents: the step's error is an event, the status stays OK
                    step.record_exception(ValueError("AgentExecutionError: page too large"))
                if n == 3:
                    step.record_exception(KeyError("AgentToolCallError: unknown tool 'fly'"))
                step.set_status(Status(StatusCode.OK))
    tp.shutdown()
    ((traj, steps),) = _runs(srv.store)
    assert traj.task == task
    assert [s.action for s in steps] == [
        'web_search {"query": "smolagents github"}',
        'visit_webpage {"url": "https://github.com/huggingface/smolagents"}',
        "Step 3",
        'final_answer {"answer": "about 20k"}',
    ]
    assert [s.is_error for s in steps] == [False, True, True, False]
    assert "page too large" in (steps[1].observation or "")
    assert "unknown tool 'fly'" in (steps[2].observation or "")
    assert [s.thought for s in steps] == ["Thought 1", "Thought 2", "Thought 3", "Thought 4"]


def _rootless(srv: LiveServer, key: str) -> None:
    """An agent whose own span never ends (it crashed): only its children are sent."""
    exporter = _exporter(srv, key)
    tp, tr = _tracer(exporter)
    agent = tr.start_span("agent", attributes={"openinference.span.kind": "AGENT"})
    with trace.use_span(agent, end_on_exit=False):
        with tr.start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps([{"role": "user", "content": "find the key"}]),
        }):  # fmt: skip
            pass
        for name, arg, out in SOAP[:2]:
            with tr.start_as_current_span(name, attributes={
                "openinference.span.kind": "TOOL", "tool.name": name, "input.value": arg,
                "output.value": out,
            }):  # fmt: skip
                pass
    tp.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS] * 3


def test_trace_whose_root_never_arrives_is_assembled_after_the_quiet_period(
    srv: LiveServer, bot: str
) -> None:
    _rootless(srv, bot)
    intake = intake_of(srv.app)
    assert _runs(srv.store) == [] and len(intake.buffer) == 1  # waiting for its root
    done = intake.flush(now=time.monotonic() + QUIET_SECONDS + 1)
    assert len(done.reported) == 1
    ((traj, steps),) = _runs(srv.store)
    assert traj.task == "find the key" and len(steps) == 2  # the task: the LLM's user message
    assert traj.facts["metadata"]["complete"] is False


def test_the_service_flushes_a_rootless_trace_by_itself(srv: LiveServer, bot: str) -> None:
    _rootless(srv, bot)
    deadline = time.monotonic() + QUIET_SECONDS + 30  # a bound for a slow machine, not a timing
    while not _runs(srv.store) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_runs(srv.store)) == 1


def test_stopping_the_service_reports_the_traces_still_waiting(
    db_url: str, hash_embedder: Embedder
) -> None:
    with live_server(db_url, embedder=hash_embedder) as srv:
        _rootless(srv, make_key(srv.store, "bot", WRITER))
        assert _runs(srv.store) == []
    assert len(_runs(srv.store)) == 1


def test_a_locked_database_answers_503_and_keeps_the_trace_for_the_retry(
    db_url: str, hash_embedder: Embedder
) -> None:
    memory = InMemorySpanExporter()
    tp, tr = _tracer(memory)
    _soap_agent(tr)
    spans = memory.get_finished_spans()  # the tools and the LLM, then the agent (the root)
    children = encode_spans(spans[:-1]).SerializeToString()
    root = encode_spans(spans[-1:]).SerializeToString()
    store = Store(db_url, busy_timeout_s=0.2)
    mem = ProceduralMemory(store, settings=Settings(database_url=db_url), embedder=hash_embedder,
                           backend="heuristic")  # fmt: skip
    with live_server(db_url, memory=mem) as srv:
        key = make_key(srv.store, "bot", WRITER)
        url, headers = f"{srv.url}/v1/traces", {**bearer(key), "Content-Type": PROTOBUF}
        assert httpx.post(url, content=children, headers=headers).status_code == 200
        lock = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            r = httpx.post(url, content=root, headers=headers, timeout=30)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert r.status_code == 503 and r.headers["retry-after"]
        assert _runs(srv.store) == []
        # the exporter retries the same request: the trace is whole, its children kept
        assert httpx.post(url, content=root, headers=headers).status_code == 200
        ((traj, steps),) = _runs(srv.store)
    assert [s.action for s in steps] == [f"{name} {arg}" for name, arg, _ in SOAP]


def test_resent_trace_is_stored_once_even_after_a_restart(
    db_url: str, hash_embedder: Embedder
) -> None:
    memory = InMemorySpanExporter()
    tp, tr = _tracer(memory)
    _soap_agent(tr)
    spans = memory.get_finished_spans()
    with live_server(db_url, embedder=hash_embedder) as srv:
        key = make_key(srv.store, "bot", WRITER)
        exporter = _exporter(srv, key)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        assert len(_runs(srv.store)) == 1
    with live_server(db_url, embedder=hash_embedder) as srv:
        assert _exporter(srv, key).export(spans) == SpanExportResult.SUCCESS
        ((traj, steps),) = _runs(srv.store)
    assert len(steps) == 4


def _json_export(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}


AGENT_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "agent",
    "startTimeUnixNano": "1", "endTimeUnixNano": "2",
    "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}},
                   {"key": "input.value", "value": {"stringValue": "put some soapbar in cabinet"}}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-protobuf", b"\xff\xff\xff\xff not a protobuf message"),
        ("application/x-protobuf", b"\x0a\x05hello"),
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2]"),
        ("application/json", b'{"hello": "world"}'),
        ("application/json", b'{"resourceSpans": "x"}'),
        ("application/json", json.dumps(_json_export([AGENT_SPAN, {**AGENT_SPAN, "traceId": "abc",
                                                                    "spanId": "01"}])).encode()),
    ],
    ids=["protobuf-bytes", "protobuf-wrong-message", "json-syntax", "json-array", "json-object",
         "json-types", "json-bad-ids"],
)  # fmt: skip
def test_garbage_is_refused_with_400_and_nothing_is_written(
    srv: LiveServer, bot: str, content_type: str, body: bytes
) -> None:
    r = httpx.post(f"{srv.url}/v1/traces", content=body,
                   headers={**bearer(bot), "Content-Type": content_type})  # fmt: skip
    assert r.status_code == 400, r.text
    if content_type == "application/x-protobuf":
        assert RpcStatus.FromString(r.content).message
    else:
        assert r.json()["message"]
    assert _runs(srv.store) == [] and len(intake_of(srv.app).buffer) == 0


def test_hostile_text_in_spans_is_stored_cleaned_and_cut(srv: LiveServer, bot: str) -> None:
    tool = {
        **AGENT_SPAN, "spanId": "00000000000000aa", "parentSpanId": AGENT_SPAN["spanId"],
        "name": "t" * 1_000_000,
        "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "TOOL"}},
                       {"key": "input.value", "value": {"stringValue": "a\u0000b"}}],
    }  # fmt: skip
    agent = {**AGENT_SPAN, "name": "n\u0000" * 500_000}
    agent["attributes"] = [
        *AGENT_SPAN["attributes"],
        {"key": "memp.task", "value": {"stringValue": "x\u0000" * 20_000}},
        {"key": "memp.retrieval_id", "value": {"stringValue": "9" * 30}},
        {"key": "llm.token_count.total", "value": {"intValue": "-5"}},
    ]
    body = json.dumps(_json_export([tool, agent])).encode()
    r = httpx.post(f"{srv.url}/v1/traces", content=body,
                   headers={**bearer(bot), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200 and r.json() == {}
    ((traj, steps),) = _runs(srv.store)
    assert "\x00" not in traj.task and len(traj.task) <= 10_000
    assert "\x00" not in json.dumps(traj.facts) and len(json.dumps(traj.facts)) < 64 * 1024
    assert len(steps) == 1 and "\x00" not in (steps[0].action or "")


def test_other_media_types_and_inflating_bodies_are_refused(srv: LiveServer, bot: str) -> None:
    url = f"{srv.url}/v1/traces"
    r = httpx.post(url, content=b"hello", headers={**bearer(bot), "Content-Type": "text/plain"})
    assert r.status_code == 415
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))  # 64 MB of zeros in a 64 KB body
    r = httpx.post(url, content=bomb, headers={
        **bearer(bot), "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
    })  # fmt: skip
    assert r.status_code == 413
    assert _runs(srv.store) == []


def test_json_export_is_answered_in_json(srv: LiveServer, bot: str) -> None:
    body = (DATA / "genai_agent.json").read_bytes()
    r = httpx.post(f"{srv.url}/v1/traces", content=body,
                   headers={**bearer(bot), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {}  # ExportTraceServiceResponse, no partial success
    ((traj, steps),) = _runs(srv.store)
    assert traj.task == "put a clean mug in the coffee machine" and traj.success is True
    assert len(steps) == 6 and [s.is_error for s in steps].count(True) == 1


def test_without_a_key_or_scope_traces_are_refused(srv: LiveServer) -> None:
    reader = make_key(srv.store, "reader", ["procedures:read"])
    old = create_key(srv.store, agent="old", scopes=WRITER, actor=os_user())
    revoke_key(srv.store, old.id, actor=os_user())
    memory = InMemorySpanExporter()
    tp, tr = _tracer(memory)
    _soap_agent(tr)
    spans = memory.get_finished_spans()
    assert _exporter(srv, None).export(spans) == SpanExportResult.FAILURE
    url, proto = f"{srv.url}/v1/traces", {"Content-Type": "application/x-protobuf"}
    assert httpx.post(url, content=b"", headers=proto).status_code == 401
    assert httpx.post(url, content=b"", headers={**proto, **bearer(reader)}).status_code == 403
    assert httpx.post(url, content=b"", headers={**proto, **bearer(old.key)}).status_code == 401
    assert _runs(srv.store) == []


# -- the buffer, without a server -----------------------------------------------------------

BOT = Identity(1, "bot", frozenset({"runs:write"}))


def _span(trace: int, span: int, parent: int | None, size: int = 100) -> Span:
    return Span(
        trace_id=f"{trace:032x}", span_id=f"{span:016x}",
        parent_id=f"{parent:016x}" if parent else "", parent_remote=False, name=f"s{span}",
        start=span, end=span + 1, attributes={"openinference.span.kind": "TOOL"}, size=size,
    )  # fmt: skip


def test_buffer_is_bounded_the_oldest_trace_assembled_early() -> None:
    buffer = TraceBuffer(max_traces=2, max_spans=100, max_trace_spans=3)
    assert buffer.add(BOT, [_span(1, 1, 9)], now=0.0) == ([], 0)
    assert buffer.add(BOT, [_span(2, 2, 9)], now=1.0) == ([], 0)
    ready, refused = buffer.add(BOT, [_span(3, 3, 9)], now=2.0)
    assert [p.trace_id for p in ready] == [f"{1:032x}"] and refused == 0
    ready, refused = buffer.add(BOT, [_span(3, n, 9) for n in range(4, 8)], now=3.0)
    assert ready == [] and refused == 2  # trace 3 holds at most 3 spans
    assert len(buffer) == 2 and buffer.span_count == 4
    assert [p.trace_id for p in buffer.flush(now=2.0 + QUIET_SECONDS)] == [f"{2:032x}"]
    ready, _ = buffer.add(BOT, [_span(3, 1, None)], now=4.0)  # its root: complete at once
    assert len(ready) == 1 and ready[0].rooted and buffer.span_count == 0


def test_buffer_memory_is_bounded_in_bytes_too() -> None:
    buffer = TraceBuffer(max_bytes=1000)
    ready, refused = buffer.add(BOT, [_span(1, n, 9, size=400) for n in range(1, 4)], now=0.0)
    assert ready == [] and refused == 1  # one trace holds at most half the buffer
    ready, _ = buffer.add(BOT, [_span(2, 5, 9, size=400)], now=1.0)
    assert [p.trace_id for p in ready] == [f"{1:032x}"]  # 1,200 bytes: the oldest goes early
    ready, _ = buffer.add(BOT, [_span(2, 5, None, size=400)], now=2.0)  # re-sent as the root
    assert len(ready) == 1 and len(ready[0].spans) == 1 and len(buffer) == 0


def test_same_trace_id_from_two_agents_stays_two_traces() -> None:
    other = Identity(2, "other", frozenset({"runs:write"}))
    buffer = TraceBuffer()
    buffer.add(BOT, [_span(1, 1, 9)], now=0.0)
    ready, _ = buffer.add(other, [_span(1, 9, None)], now=0.0)
    assert [len(p.spans) for p in ready] == [1] and ready[0].owner == other
    assert len(buffer) == 1


# -- memp import --format otlp ------------------------------------------------------------


def test_import_otlp_files_makes_one_trajectory_per_agent_trace(store: Store) -> None:
    files = [DATA / "langgraph_openinference.jsonl", DATA / "genai_agent.json"]
    report = import_paths(store, files, actor=Actor("rita", "reviewer"), fmt="otlp")
    assert report.trajectories == 2 and not report.bad
    assert any("no agent spans" in w for w in report.warnings)  # the plain HTTP trace
    by_task = {t.task: (t, steps) for t, steps in _runs(store)}
    graph, graph_steps = by_task[
        "What is the capital of the country where the Eiffel Tower stands?"
    ]
    assert graph.success is None and graph.source == "import:otlp"
    assert [s.action for s in graph_steps] == [
        'search {"query": "Eiffel Tower country"}', 'lookup_capital {"country": "France"}'
    ]  # fmt: skip
    assert graph_steps[0].thought and "Eiffel Tower is in Paris" in graph_steps[0].thought
    mug, mug_steps = by_task["put a clean mug in the coffee machine"]
    assert mug.success is True and len(mug_steps) == 6
    again = import_paths(store, files, actor=Actor("rita", "reviewer"), fmt="auto")
    assert again.trajectories == 0 and again.duplicates_skipped == 2
    assert set(again.formats.values()) == {"otlp"}


def test_memp_import_format_otlp_on_the_command_line(store: Store, db_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["import", str(DATA / "genai_agent.json"), "--format", "otlp", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    ((traj, steps),) = _runs(store)
    assert traj.success is True and len(steps) == 6
