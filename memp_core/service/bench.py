"""`memp bench serve`: what the HTTP door costs agents, measured against in-process calls.

One database with ``PROCEDURES`` approved synthetic procedures (random unit vectors, as
`memp bench retrieval` uses; SQLite by default, a throw-away Postgres with ``--postgres``).
``CLIENTS`` agents, each with its own key, loop: retrieve (the real embedder embeds the
task: ``query`` policy) then report the run (outcomes cycle success, failure, unknown; the
``validation`` update runs for the known ones), as fast as they can.

- ``http``: `memp serve` as its own process, as users start it; the clients are threads of
  this process with one httpx connection each. Latencies (p50, p95) are per request.
- ``inprocess``: the same calls, from the same number of threads, straight to
  :class:`~memp_core.agents.operations.AgentDoor` in this process (no HTTP, no key check).

The two alternate in short rounds (``ROUNDS`` of ``ROUND_S`` each) so drifting background
load falls on both; requests per second sum each side's rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from memp_core.actor import os_user
from memp_core.agents.keys import AGENT_SCOPES, Identity, create_key, verify
from memp_core.agents.operations import AgentDoor
from memp_core.agents.schemas import RetrieveRequest, StepIn, TrajectoryReport
from memp_core.bench import _fresh_database, _server, pg_populate, populate, unit_rows
from memp_core.config import Settings
from memp_core.errors import MempError
from memp_core.memory import ProceduralMemory
from memp_core.store import Store

CLIENTS = 8
PROCEDURES = 10_000
ROUNDS = 3
ROUND_S = 5.0
START_TIMEOUT_S = 120.0
TASKS = [
    "put some spraybottle on toilet", "put a clean mug in coffeemachine",
    "heat some egg and put it in garbagecan", "cool some apple and put it in fridge",
    "look at bowl under the desklamp", "find two pillow and put them in sofa",
    "put a hot potato in countertop", "clean some knife and put it in drawer",
]  # fmt: skip
STEPS = [
    StepIn(action="go to cabinet 1", observation="On the cabinet 1, you see a spraybottle 1."),
    StepIn(action="take spraybottle 1 from cabinet 1", observation="You pick up it."),
    StepIn(action="go to toilet 1", observation="On the toilet 1, you see nothing."),
    StepIn(action="put spraybottle 1 in/on toilet 1", observation="You put it there."),
]
OUTCOMES = (True, False, None)


@dataclass
class Side:
    """One side's tally over its rounds."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


Call = Callable[[int, int, str], None]  # (client, iteration, phase) -> one retrieve + report


def run_serve_bench(
    *,
    postgres: bool = False,
    pg_url: str | None = None,
    clients: int = CLIENTS,
    procedures: int = PROCEDURES,
    rounds: int = ROUNDS,
    round_s: float = ROUND_S,
) -> dict[str, object]:
    with _database(postgres, pg_url) as url:
        store = Store(url)
        matrix = unit_rows(np.random.default_rng(0), procedures)
        (pg_populate if store.dialect == "postgresql" else populate)(store, matrix)
        keys = [
            create_key(store, agent=f"bench-{i}", scopes=AGENT_SCOPES, actor=os_user()).key
            for i in range(clients)
        ]
        door = AgentDoor(ProceduralMemory(store, settings=Settings(database_url=url),
                                          backend="heuristic"))  # fmt: skip
        door.memory.retrieve("warm up", k=1, log=False)  # the embedder and the index, untimed
        who = [verify(store, k) for k in keys]
        http, inproc = Side(), Side()
        with serve_process(url) as base:
            sessions = [httpx.Client(base_url=base, timeout=120, headers={"Authorization":
                        f"Bearer {k}"}) for k in keys]  # fmt: skip
            try:
                for r in range(rounds):
                    _round(inproc, clients, round_s, _in_process(door, who, inproc), f"i{r}")
                    _round(http, clients, round_s, _over_http(sessions, http), f"h{r}")
            finally:
                for sess in sessions:
                    sess.close()
        store.dispose()
    lat = np.array(http.latencies) * 1000 if http.latencies else np.zeros(1)
    return {
        "clients": clients, "requests": http.requests, "errors": http.errors + inproc.errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "throughput_rps": round(http.rps, 1), "inprocess_rps": round(inproc.rps, 1),
        "ratio": round(http.rps / inproc.rps, 3) if inproc.rps else None,
        "inprocess_requests": inproc.requests, "procedures": procedures,
        "database": store.dialect, "rounds": rounds, "round_s": round_s,
        "first_errors": (http.first_errors + inproc.first_errors)[:5],
    }  # fmt: skip


def _round(side: Side, clients: int, seconds: float, call: Call, phase: str) -> None:
    """``clients`` threads calling ``call`` until ``seconds`` have passed."""
    stop = threading.Event()

    def client(c: int) -> None:
        i = 0
        while not stop.is_set():
            call(c, i, phase)
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    side.seconds += time.perf_counter() - t0  # the calls in flight at the end count too


def _report(c: int, i: int, phase: str, retrieval_id: int) -> TrajectoryReport:
    return TrajectoryReport(
        task=TASKS[(c + i) % len(TASKS)], steps=STEPS, success=OUTCOMES[(c + i) % 3],
        retrieval_id=retrieval_id, idempotency_key=f"{phase}-{c}-{i}",
    )  # fmt: skip


def _in_process(door: AgentDoor, who: list[Identity], side: Side) -> Call:
    lock = threading.Lock()

    def call(c: int, i: int, phase: str) -> None:
        try:
            found = door.retrieve(who[c], RetrieveRequest(task=TASKS[(c + i) % len(TASKS)]))
            door.report(who[c], _report(c, i, phase, found.retrieval_id))
            ok = 2
        except MempError as exc:  # counted and shown, as the HTTP side counts its non-2xx
            ok = 0
            with lock:
                side.errors += 1
                side.first_errors.append(f"in-process: {exc}")
        with lock:
            side.requests += ok

    return call


def _over_http(sessions: list[httpx.Client], side: Side) -> Call:
    lock = threading.Lock()

    def timed(c: int, path: str, body: dict[str, object]) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = sessions[c].post(path, json=body)
        except httpx.HTTPError as exc:
            with lock:
                side.errors += 1
                side.first_errors.append(f"http {path}: {exc!r}")
            return None
        with lock:
            side.latencies.append(time.perf_counter() - t0)
            side.requests += 1
            if r.status_code >= 300:
                side.errors += 1
                side.first_errors.append(f"http {path}: {r.status_code} {r.text[:200]}")
        return r if r.status_code < 300 else None

    def call(c: int, i: int, phase: str) -> None:
        found = timed(c, "/v1/retrieve", {"task": TASKS[(c + i) % len(TASKS)]})
        if found is not None:
            report = _report(c, i, phase, int(found.json()["retrieval_id"]))
            timed(c, "/v1/trajectories", report.model_dump(exclude_none=True))

    return call


@contextmanager
def _database(postgres: bool, pg_url: str | None) -> Iterator[str]:
    if postgres:
        with _server(pg_url) as base:
            yield _fresh_database(base, "memp_bench_serve")
        return
    with tempfile.TemporaryDirectory(prefix="memp-bench-serve-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'serve.db'}"


@contextmanager
def serve_process(url: str) -> Iterator[str]:
    """`memp serve` on a free port as a child process; its base URL once it answers."""
    from memp_core.commands.serve import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # the child binds it again at once (SO_REUSEADDR)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memp_core", "serve", "--port", str(port), "--db", url],
            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ),
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(proc, base, log)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: object) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)  # type: ignore[attr-defined]
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]  # type: ignore[attr-defined]
            raise MempError(f"memp serve exited ({proc.returncode}): {' '.join(tail)}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise MempError(f"memp serve did not answer {base}/healthz in {START_TIMEOUT_S:.0f} s")
