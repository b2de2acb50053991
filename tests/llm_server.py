"""A real chat-completions HTTP server on 127.0.0.1 with scripted answers.

The real ``openai`` client talks to it over TCP, so tests exercise the wire format, retries,
timeouts and HTTP errors exactly as against a remote endpoint. Answers come from a queue of
:class:`Scripted` items (text, HTTP status, delay, raw body) and, when the queue is empty,
from an optional ``responder(messages) -> text`` function (handy for agent tests).

Usage::

    with ChatServer() as server:
        server.push(Scripted(text="<script>1. Go.</script>"))
        settings = Settings(openai_base_url=server.base_url, openai_api_key="test")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Responder = Callable[[list[dict[str, Any]]], str]


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a completion text, or an HTTP error, possibly after a delay."""

    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    raw_body: str | None = None  # sent verbatim instead of a completion (malformed JSON)
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class Received:
    """What the server saw of one request."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


class ChatServer:
    """Scripted chat-completions endpoint at ``base_url`` (``http://127.0.0.1:<port>/v1``)."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.queue: deque[Scripted] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
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
                with server._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.received.append(Received(self.path, body, headers))
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                answer = server._next(body.get("messages", []))
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.raw_body is not None:
                    self._send_raw(answer.status, answer.raw_body.encode())
                elif answer.status != 200:
                    err = {"error": {"message": answer.text or "scripted error", "type": "test"}}
                    self._send(answer.status, err)
                else:
                    self._send(200, _completion(body.get("model", ""), answer))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    # Keep the client's own retries fast in tests (it honours this header).
                    self.send_header("retry-after-ms", "10")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test); nothing to answer

        return Handler


def _completion(model: str, answer: Scripted) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-test-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }
