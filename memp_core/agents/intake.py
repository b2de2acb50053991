"""Collecting spans into whole traces, then reporting each trace once as one run.

The OpenTelemetry SDK's SimpleSpanProcessor sends each span as it ends, so the spans of one
trace arrive over many requests, children before their parent; a BatchSpanProcessor sends
them in batches that split traces anywhere. :class:`TraceBuffer` keeps them by (key, trace
id) until the trace is complete: when its root span arrives (no parent, or a parent in
another process), or after :data:`QUIET_SECONDS` without a new span (a root that never
comes: a crashed agent, a lost request). Memory stays bounded: at most
:data:`MAX_TRACES` traces, :data:`MAX_SPANS` spans and :data:`MAX_BYTES` of spans wait; over
that the oldest trace is assembled early (with a warning), and a trace keeps at most
:data:`MAX_TRACE_SPANS` spans and half of :data:`MAX_BYTES` (its root is always taken).

:class:`TraceIntake` turns each complete trace into a report
(:func:`memp_core.agents.traces.assemble`) and hands it to the agents' door with the trace
id as idempotency key: a re-sent trace is stored once. If the database cannot take it
(locked, down), the trace goes back into the buffer and is tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from memp_core.agents.keys import Identity
from memp_core.agents.schemas import ReportResult, TrajectoryReport
from memp_core.agents.spans import Span
from memp_core.agents.traces import assemble, to_report
from memp_core.errors import ImportFormatError, MempError, NotFoundError, StoreError

log = logging.getLogger("memp.otlp")

QUIET_SECONDS = 5.0  # a trace whose root never came is assembled this long after its last span
MAX_TRACES = 1_000
MAX_SPANS = 100_000
MAX_BYTES = 64 * 1024 * 1024  # of spans as sent (Python holds a few times that)
MAX_TRACE_SPANS = 20_000  # twice the steps a report may hold: LLM spans sit between tool spans
MAX_ATTEMPTS = 10  # a trace the database keeps refusing is dropped after this many tries

Reporter = Callable[[Identity, TrajectoryReport], ReportResult]


@dataclass
class PendingTrace:
    owner: Identity
    trace_id: str
    first_seen: float
    last_seen: float
    spans: dict[str, Span] = field(default_factory=dict)
    rooted: bool = False
    attempts: int = 0
    size: int = 0  # bytes of its spans as sent


@dataclass
class Intake:
    """What one export request did: spans taken and refused, runs reported."""

    accepted: int = 0
    rejected: int = 0
    reported: list[ReportResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class TraceBuffer:
    """Spans waiting for the rest of their trace (thread-safe)."""

    def __init__(
        self,
        *,
        quiet_s: float = QUIET_SECONDS,
        max_traces: int = MAX_TRACES,
        max_spans: int = MAX_SPANS,
        max_trace_spans: int = MAX_TRACE_SPANS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.quiet_s = quiet_s
        self.max_traces = max_traces
        self.max_spans = max_spans
        self.max_trace_spans = max_trace_spans
        self.max_bytes = max_bytes
        self._pending: OrderedDict[tuple[Identity, str], PendingTrace] = OrderedDict()
        self._spans = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def span_count(self) -> int:
        return self._spans

    def add(
        self, owner: Identity, spans: Iterable[Span], now: float
    ) -> tuple[list[PendingTrace], int]:
        """Take ``spans``; the traces now complete (root arrived, or pushed out by the caps)
        and how many spans were refused (their trace is full)."""
        refused = 0
        touched: dict[tuple[Identity, str], None] = {}  # in arrival order
        with self._lock:
            for span in spans:
                key = (owner, span.trace_id)
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = PendingTrace(owner, span.trace_id, now, now)
                # a full trace still takes its root: the root completes it
                full = not span.is_root and (
                    len(pending.spans) >= self.max_trace_spans
                    or pending.size >= self.max_bytes // 2
                )
                if span.span_id not in pending.spans and full:
                    refused += 1
                    continue
                self._take(pending, span)
                pending.last_seen = now
                self._pending.move_to_end(key)
                touched[key] = None
            ready = [self._pop(k) for k in touched if self._pending[k].rooted]
            ready += self._over_caps()
        if refused:
            log.warning("%d spans refused: their trace is full (at most %d spans, %d bytes)",
                        refused, self.max_trace_spans, self.max_bytes // 2)  # fmt: skip
        return ready, refused

    def flush(self, now: float) -> list[PendingTrace]:
        """The traces quiet for :attr:`quiet_s` (their root never came)."""
        with self._lock:
            quiet = [k for k, p in self._pending.items() if now - p.last_seen >= self.quiet_s]
            return [self._pop(k) for k in quiet]

    def drain(self) -> list[PendingTrace]:
        """Everything waiting (the service is stopping)."""
        with self._lock:
            return [self._pop(k) for k in list(self._pending)]

    def put_back(self, pending: PendingTrace) -> None:
        """A trace the database could not take: keep it, merged with spans that came since."""
        with self._lock:
            key = (pending.owner, pending.trace_id)
            newer = self._pop(key) if key in self._pending else None
            self._spans += len(pending.spans)
            self._bytes += pending.size
            self._pending[key] = pending
            if newer is not None:
                for span in newer.spans.values():
                    self._take(pending, span)
                pending.last_seen = max(pending.last_seen, newer.last_seen)

    def _take(self, pending: PendingTrace, span: Span) -> None:
        old = pending.spans.get(span.span_id)
        if old is None:
            self._spans += 1
        else:  # a re-sent span replaces itself
            pending.size -= old.size
            self._bytes -= old.size
        pending.spans[span.span_id] = span
        pending.size += span.size
        self._bytes += span.size
        pending.rooted = pending.rooted or span.is_root

    def _pop(self, key: tuple[Identity, str]) -> PendingTrace:
        pending = self._pending.pop(key)
        self._spans -= len(pending.spans)
        self._bytes -= pending.size
        return pending

    def _over_caps(self) -> list[PendingTrace]:
        early: list[PendingTrace] = []
        while len(self._pending) > 1 and (
            len(self._pending) > self.max_traces
            or self._spans > self.max_spans
            or self._bytes > self.max_bytes
        ):
            key = next(iter(self._pending))
            early.append(self._pop(key))
            log.warning(
                "trace buffer full (%d traces, %d spans, %d bytes): trace %s of %s assembled "
                "early with %d spans", len(self._pending) + 1, self._spans, self._bytes, key[1],
                key[0].agent, len(early[-1].spans),
            )  # fmt: skip
        return early


class TraceIntake:
    """Spans in, one report per complete trace out (to ``report``, the agents' door)."""

    def __init__(
        self,
        report: Reporter,
        buffer: TraceBuffer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report = report
        self.buffer = buffer or TraceBuffer()
        self.clock = clock

    def receive(self, who: Identity, spans: list[Span], now: float | None = None) -> Intake:
        """Buffer ``spans`` and report the traces they complete. A database that cannot
        write raises (StoreError) after putting the unreported traces back."""
        ready, refused = self.buffer.add(who, spans, self.clock() if now is None else now)
        done = Intake(accepted=len(spans) - refused, rejected=refused)
        self._report_all(ready, done, retry_later=False)
        return done

    def flush(self, now: float | None = None) -> Intake:
        """Report the traces whose root never came (call it every second or so)."""
        done = Intake()
        self._report_all(self.buffer.flush(self.clock() if now is None else now), done, True)
        return done

    def close(self) -> Intake:
        """Report everything still waiting (the service is stopping)."""
        done = Intake()
        self._report_all(self.buffer.drain(), done, retry_later=True)
        return done

    def _report_all(self, ready: list[PendingTrace], done: Intake, retry_later: bool) -> None:
        for i, pending in enumerate(ready):
            try:
                result = self._report_one(pending)
            except StoreError as exc:
                for later in ready[i:]:
                    self._retry(later, exc)
                if retry_later:
                    done.errors.append(str(exc))
                    return
                raise
            except MempError as exc:  # the door refused this run (e.g. a metadata limit)
                log.warning("trace %s of %s not stored: %s", pending.trace_id,
                            pending.owner.agent, exc)  # fmt: skip
                done.errors.append(f"trace {pending.trace_id}: {exc}")
                continue
            if result is not None:
                done.reported.append(result)

    def _report_one(self, pending: PendingTrace) -> ReportResult | None:
        run = assemble(pending.spans.values(), rooted=pending.rooted)
        if run is None:
            log.info("trace %s of %s has no agent spans: no run made", pending.trace_id,
                     pending.owner.agent)  # fmt: skip
            return None
        try:
            report = to_report(run)
        except ValidationError as exc:  # a limit of the report that assembly did not cut to
            reason = f"cannot become a report: {exc}"
            raise ImportFormatError(f"trace {pending.trace_id}", None, reason) from None
        try:
            return self.report(pending.owner, report)
        except NotFoundError:
            if report.retrieval_id is None:
                raise
            # The run happened whatever its memp.retrieval_id says: keep it, uncounted.
            meta = dict(report.metadata or {})
            meta["retrieval_note"] = f"memp.retrieval_id {report.retrieval_id} not found"
            again = report.model_copy(update={"retrieval_id": None, "metadata": meta})
            return self.report(pending.owner, again)

    def _retry(self, pending: PendingTrace, exc: StoreError) -> None:
        pending.attempts += 1
        if pending.attempts >= MAX_ATTEMPTS:
            log.error("trace %s of %s dropped after %d attempts: %s", pending.trace_id,
                      pending.owner.agent, pending.attempts, exc)  # fmt: skip
            return
        self.buffer.put_back(pending)
