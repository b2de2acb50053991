"""A real chat-completions HTTP server on 127.0.0.1 with scripted answers.

The real ``openai`` client talks to it over TCP, so tests exercise the wire format, retries,
timeouts and HTTP errors exactly as against a remote endpoint. Answers come from a queue of
:class:`Scripted` items (text, HTTP status, delay, raw body) and, when the queue is empty,
from an optional ``responder(messages) -> text`` function (handy for agent tests).

Like llama.cpp or vLLM it generates piece by piece (a "token" here is a word with its leading
space), streams them as server-sent events when asked (``"stream": true``), ends at a stop
sequence (removed from the answer, ``finish_reason`` "stop") or at ``max_tokens``
(``finish_reason`` "length"). A never-ending answer (``endless=True``) runs until
``max_tokens``, the context size, or the client hanging up, whichever comes first.

Usage::

    with ChatServer() as server:
        server.push(Scripted(text="<script>1. Go.</script>"))
        settings = Settings(openai_base_url=server.base_url, openai_api_key="test")
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Responder = Callable[[list[dict[str, Any]]], str]
CONTEXT_TOKENS = 4096  # where an endless answer ends when the request sets no max_tokens


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a completion text, or an HTTP error, possibly after a delay."""

    text: str = ""
    status: int = 200
    delay_s: float = 0.0  # silence before the first byte
    raw_body: str | None = None  # sent verbatim instead of a completion (malformed JSON)
    prompt_tokens: int = 11
    completion_tokens: int = 7
    endless: bool = False  # repeat ``text`` for ever: a model that never stops rambling
    honour_max_tokens: bool = True  # False: a server that ignores the request's max_tokens
    token_delay_s: float = 0.0  # pause between generated pieces (a slow model)


@dataclass
class Received:
    """What the server saw of one request, and how its answer ended."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    pieces_sent: int = 0
    ended: str = ""  # "stop", "length", "context" or "hung up" once the answer is over
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is what the bounded-request tests provoke (the client
    stops reading an endless stream): not an error worth a traceback in the test output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ChatServer:
    """Scripted chat-completions endpoint at ``base_url`` (``http://127.0.0.1:<port>/v1``)."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.queue: deque[Scripted] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def push(self, *answers: Scripted) -> None:
        with self._lock:
            self.queue.extend(answers)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, messages: list[dict[str, Any]]) -> Scripted:
        with self._lock:
            if self.queue:
                return self.queue.popleft()
        if self.responder is not None:
            return Scripted(text=self.responder(messages))
        return Scripted(status=500, text="no scripted answer left")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: tests read ``server.received`` instead of stderr."""

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                seen = Received(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.received.append(seen)
                try:
                    self._answer(seen)
                except (BrokenPipeError, ConnectionResetError):
                    seen.ended = seen.ended or "hung up"  # the client gave up; stop generating
                    self.close_connection = True
                finally:
                    seen.done.set()

            def _answer(self, seen: Received) -> None:
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                answer = server._next(seen.body.get("messages", []))
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.raw_body is not None:
                    self._send_raw(answer.status, answer.raw_body.encode())
                elif answer.status != 200:
                    err = {"error": {"message": answer.text or "scripted error", "type": "test"}}
                    self._send(answer.status, err)
                elif seen.body.get("stream"):
                    self._stream(seen, answer)
                else:
                    text = "".join(_generate(seen, answer))
                    self._send(200, _completion(seen, answer, text))

            def _stream(self, seen: Received, answer: Scripted) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                model = str(seen.body.get("model", ""))
                for piece in _generate(seen, answer):
                    self._event(_chunk(model, {"content": piece}, None))
                self._event(_chunk(model, {}, _finish_reason(seen)))
                options = seen.body.get("stream_options") or {}
                if options.get("include_usage"):
                    usage = _chunk(model, None, None)
                    usage["usage"] = _usage(seen, answer)
                    self._event(usage)
                self._write_chunk(b"data: [DONE]\n\n")
                self._write_chunk(b"")

            def _event(self, payload: dict[str, Any]) -> None:
                self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def _write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # Keep the client's own retries fast in tests (it honours this header).
                self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _generate(seen: Received, answer: Scripted) -> Iterator[str]:
    """The answer piece by piece, ended by a stop sequence, max_tokens or the context size.

    Sets ``seen.ended`` and ``seen.pieces_sent`` as it goes (the caller sends each piece).
    """
    pieces = re.findall(r"\S+\s*", answer.text) or [answer.text]
    source = itertools.cycle(pieces) if answer.endless else iter(pieces)
    stops = [s for s in _as_list(seen.body.get("stop")) if s]
    limit = seen.body.get("max_tokens") or seen.body.get("max_completion_tokens")
    cap = int(limit) if limit and answer.honour_max_tokens else CONTEXT_TOKENS
    said = ""
    for piece in source:
        if seen.pieces_sent >= cap:
            seen.ended = "length" if limit and answer.honour_max_tokens else "context"
            return
        if answer.token_delay_s:
            time.sleep(answer.token_delay_s)
        cut = _first_stop(said + piece, stops)
        if cut is not None:
            seen.ended = "stop"
            rest = (said + piece)[len(said) : cut]
            if rest:
                seen.pieces_sent += 1
                yield rest
            return
        said += piece
        seen.pieces_sent += 1
        yield piece
    seen.ended = "stop"


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [text.find(s) for s in stops if s in text]
    return min(hits) if hits else None


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _finish_reason(seen: Received) -> str:
    return "stop" if seen.ended == "stop" else "length"


def _usage(seen: Received, answer: Scripted) -> dict[str, int]:
    # A scripted answer reports its scripted count; an endless one counts what it sent.
    completion = seen.pieces_sent if answer.endless else answer.completion_tokens
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }


def _chunk(model: str, delta: dict[str, str] | None, finish: str | None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }


def _completion(seen: Received, answer: Scripted, text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-test-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": seen.body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": _finish_reason(seen),
            }
        ],
        "usage": _usage(seen, answer),
    }
