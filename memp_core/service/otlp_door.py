"""OTLP/HTTP trace intake at ``POST /v1/traces``: agents' traces become runs.

Point any OpenTelemetry SDK's OTLP/HTTP exporter here (protobuf or JSON, gzip or deflate
allowed) with a key holding ``runs:write``::

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:8600/v1/traces
    OTEL_EXPORTER_OTLP_TRACES_HEADERS=Authorization=Bearer%20<key>

Spans wait in a :class:`~memp_core.agents.intake.TraceIntake` until their trace is complete
(see :mod:`memp_core.agents.intake`); a background task started by this router's lifespan
reports the traces whose root never came. The answer is an ``ExportTraceServiceResponse``
in the request's encoding; a body that is not an OTLP trace export is refused with 400 and
a ``google.rpc.Status``, nothing written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.code_pb2 import INVALID_ARGUMENT
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool

from memp_core.agents.intake import Intake, TraceIntake
from memp_core.agents.keys import Identity
from memp_core.agents.spans import decode_json, decode_protobuf, spans_of
from memp_core.errors import ImportFormatError, PayloadTooLargeError
from memp_core.service.auth import requires

log = logging.getLogger("memp.otlp")

Encoding = Literal["protobuf", "json"]
CONTENT_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}
MAX_INFLATED_BYTES = 16 * 1024 * 1024  # a compressed body may not inflate past this (413)
FLUSH_EVERY_S = 1.0  # how often traces whose root never came are looked for
Writer = Annotated[Identity, Depends(requires("runs:write"))]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the quiet-period flush while the app runs; report what waits when it stops."""
    intake_of(app)
    _flusher(app)
    try:
        yield
    finally:
        task: asyncio.Task[None] | None = getattr(app.state, "otlp_flusher", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await run_in_threadpool(intake_of(app).close)


router = APIRouter(lifespan=lifespan, tags=["traces"])


def intake_of(app: FastAPI) -> TraceIntake:
    """The app's one trace intake, reporting to its agents' door."""
    intake: TraceIntake | None = getattr(app.state, "otlp_intake", None)
    if intake is None:
        intake = app.state.otlp_intake = TraceIntake(app.state.door.report)
    return intake


def _flusher(app: FastAPI) -> None:
    """Start the flush task (again, if it died: its error goes to the log)."""
    task: asyncio.Task[None] | None = getattr(app.state, "otlp_flusher", None)
    if task is not None and not task.done():
        return
    if task is not None and not task.cancelled() and task.exception() is not None:
        log.error("the OTLP flush task stopped; restarting it", exc_info=task.exception())
    app.state.otlp_flusher = asyncio.get_running_loop().create_task(_flush_forever(app))


async def _flush_forever(app: FastAPI) -> None:
    intake = intake_of(app)
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        await run_in_threadpool(intake.flush)


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (protobuf or JSON): each complete trace becomes a run",
    responses={
        200: {"description": "ExportTraceServiceResponse, in the request's encoding"},
        400: {"description": "not an OTLP trace export: nothing written"},
        415: {"description": "neither application/x-protobuf nor application/json"},
    },
)
async def export_traces(request: Request, who: Writer) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = CONTENT_TYPES.get(media)
    if kind is None:
        return _status("json", 415, "send application/x-protobuf or application/json")
    try:
        body = _inflate(await request.body(), request.headers.get("content-encoding", ""))
        message = _decode(body, kind)
        spans = list(spans_of(message))
    except ImportFormatError as exc:
        return _status(kind, 400, exc.reason)
    _flusher(request.app)  # the app may run without its lifespan (ASGI test transports)
    done = await run_in_threadpool(intake_of(request.app).receive, who, spans)
    return _encode(kind, _response(done), 200)


def _inflate(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ImportFormatError("OTLP request", None, f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 47)
    try:
        out = inflater.decompress(body, MAX_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise ImportFormatError("OTLP request", None, f"bad {encoding} data: {exc}") from None
    if len(out) > MAX_INFLATED_BYTES or inflater.unconsumed_tail:
        raise PayloadTooLargeError(
            f"request body inflates past {MAX_INFLATED_BYTES // (1024 * 1024)} MB"
        )
    return out


def _decode(body: bytes, kind: Encoding) -> ExportTraceServiceRequest:
    if kind == "protobuf":
        message = decode_protobuf(body)
        empty = not body
    else:
        try:
            value: Any = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise ImportFormatError("OTLP request", None, f"invalid JSON: {exc}") from None
        message = decode_json(value)
        empty = value == {}
    if not message.resource_spans and not empty:
        raise ImportFormatError("OTLP request", None, "holds no resourceSpans")
    return message


def _response(done: Intake) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if done.rejected or done.errors:
        response.partial_success.rejected_spans = done.rejected
        notes = [f"{done.rejected} spans refused: their trace is full"] if done.rejected else []
        response.partial_success.error_message = "; ".join(notes + done.errors)[:1000]
    return response


def _status(kind: Encoding, http: int, message: str) -> Response:
    return _encode(kind, Status(code=INVALID_ARGUMENT, message=message), http)


def _encode(kind: Encoding, message: Message, http: int) -> Response:
    if kind == "protobuf":
        body = message.SerializeToString()
    else:
        body = json_format.MessageToJson(message, indent=None).encode()
    return Response(body, status_code=http, media_type=MEDIA[kind])
