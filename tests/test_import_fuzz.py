"""Property-based fuzzing of every parser: the only exception is ImportFormatError, and an
import that fails writes no rows."""

from __future__ import annotations

import codecs
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memp_core.actor import Actor
from memp_core.errors import ImportFormatError
from memp_core.importers import FORMATS, import_paths
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")  # imports need a reviewer; a file never approves

FRAGMENTS = [
    "Question: Which is longer?", "Question:", "Thought 1: compare", "Action 1: Search[Ebro]",
    "Action 2: Finish[Tagus]", "Observation 1: Answer is CORRECT", "Observation 2: Answer is",
    "BEGIN TRIAL 1", "BEGIN TRIAL 99999999999",
    "Trial summary: Correct: 1, Incorrect: 0, Halted: 9",
    "------------- BEGIN CORRECT AGENTS -------------", "BEGIN HALTED AGENTS", "Reflections:",
    "- I should search first.", "Correct answer: Tagus", "You are in the middle of a room.",
    "Your task is to: put some mug in sinkbasin.", "Your task is to:", "> go to sinkbasin 1",
    "> think: find it", ">", "OK.", "Nothing happens.", "STATUS: FAIL", "STATUS: maybe",
    "New plan: do better", "#####", "Environment #3:", "", "   ",
    '{"type": "header", "format": "memp-jsonl", "version": 1}', '{"type": "trajectory"}',
    '{"role": "user", "content": "Your task is to: heat egg"}', '[{"role": "assistant"}]',
]  # fmt: skip
KEYS = [
    "name", "memory", "is_success", "role", "content", "messages", "example", "task", "type",
    "format", "version", "key", "steps", "success", "reward", "revisions", "run", "metrics",
]  # fmt: skip

NASTY = ["\ud800", "a\x00b", "Your task is to: x", "\ufeff", "", "9" * 30, "\u2028", "é"]
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(NASTY)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)
grammar_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=40), max_size=30).map(
    "\n".join
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be-bom"])


def encode(text: str, encoding: str) -> bytes:
    try:
        if encoding == "utf-16-be-bom":
            return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
        return text.encode(encoding)
    except UnicodeEncodeError:  # lone surrogates from st.text(): write them as raw bytes
        return text.encode("utf-8", errors="surrogatepass")


TRANSCRIPT = (
    "You are in the middle of a room.\nYour task is to: put some mug in sinkbasin.\n"
    "> think: find it\nOK.\n> go to sinkbasin 1\nNothing happens.\nSTATUS: FAIL\nNew plan: x"
)
SEEDS: list[object] = [
    [{"name": "env_0", "memory": ["look first"], "is_success": False}],
    {"react_put_0": TRANSCRIPT, "more": [TRANSCRIPT]},
    [{"task": "put", "success": True, "example": [
        {"role": "user", "content": "Your task is to: put a mug in sinkbasin."},
        {"role": "assistant", "content": "Thought: t\nAction: go to sinkbasin 1"},
        {"role": "user", "content": "Observation: ok"},
    ]}],
]  # fmt: skip


def export_seed() -> list[dict[str, object]]:
    """Lines of a real export (run, trajectory with steps, procedure with lineage)."""
    from memp_core.importers.export import export
    from memp_core.models import AuditEvent, Procedure, ProcedureRevision

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        log.write_text("BEGIN TRIAL 1\nQuestion: q?\nThought 1: t\nAction 1: Finish[a]\n"
                       "Observation 1: Answer is CORRECT\nCorrect answer: a\n")  # fmt: skip
        store = Store(f"sqlite:///{Path(tmp) / 'seed.db'}")
        import_paths(store, [log], fmt="react", actor=REVIEWER)
        with store.transaction() as s:
            proc = Procedure(key="p", title="P")
            s.add(proc)
            s.flush()
            rev = ProcedureRevision(
                procedure_id=proc.id or 0, script="1. x", embedding=b"\x00\x00\x80\x3f" * 384
            )
            s.add(rev)
            s.flush()
            proc.current_revision_id = rev.id
            s.add(AuditEvent(actor="a", action="build", object_type="procedure",
                             object_id=proc.id, detail={"revision_id": rev.id}))  # fmt: skip
        export(store, Path(tmp) / "all.jsonl")
        store.dispose()
        return [json.loads(x) for x in (Path(tmp) / "all.jsonl").read_text().splitlines()]


JSONL_SEED = export_seed()


@st.composite
def mutated(draw: st.DrawFn, value: object, rate: int) -> object:
    """A valid value with about one leaf in ``rate`` replaced and some keys dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if draw(st.integers(0, 2 * rate)) == 0:
                continue
            out[k] = draw(mutated(v, rate))
        return out
    if isinstance(value, list):
        return [draw(mutated(v, rate)) for v in value]
    return draw(json_leaf) if draw(st.integers(0, rate)) == 0 else value


@st.composite
def inputs(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["grammar", "json", "jsonl", "bytes", "spliced", "mutated"]))
    if kind == "mutated":
        rate = draw(st.integers(1, 400))
        if draw(st.booleans()):
            lines = [draw(mutated(line, rate)) for line in JSONL_SEED]
            return "\n".join(json.dumps(v) for v in lines).encode()
        seed = draw(st.sampled_from(SEEDS))
        return encode(json.dumps(draw(mutated(seed, rate))), draw(encodings))
    if kind == "grammar":
        return encode(draw(grammar_text), draw(encodings))
    if kind == "json":
        return encode(json.dumps(draw(json_value)), draw(encodings))
    if kind == "jsonl":
        lines = draw(st.lists(json_value, max_size=5))
        return "\n".join(json.dumps(v) for v in lines).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    good = encode(draw(grammar_text), "utf-8")
    cut = draw(st.integers(0, len(good)))
    return good[:cut] + draw(st.binary(max_size=20)) + good[cut:]


@pytest.fixture(scope="module", name="fuzz_store")
def fuzz_store_fixture() -> Iterator[tuple[Store, Path]]:
    with tempfile.TemporaryDirectory(prefix="memp-fuzz-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'fuzz.db'}")
        yield store, Path(tmp)
        store.dispose()


def row_counts(store: Store) -> tuple[int, ...]:
    c = store.counts()
    return (c.trajectories, c.steps, c.runs, c.procedures, c.revisions)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(
    max_examples=int(__import__("os").environ.get("FUZZ_N", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=inputs(), skip_bad=st.booleans())
def test_parser_raises_only_import_format_error_and_writes_nothing_on_error(
    fuzz_store: tuple[Store, Path], fmt: str, data: bytes, skip_bad: bool
) -> None:
    store, folder = fuzz_store
    path = folder / "input.txt"
    path.write_bytes(data)
    before = row_counts(store)
    before_unknown = store.counts().unknown
    try:
        report = import_paths(store, [path], fmt=fmt, skip_bad=skip_bad, actor=REVIEWER)
    except ImportFormatError as exc:
        assert not skip_bad, "--skip-bad turns every format error into a listed bad record"
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
        assert row_counts(store) == before
        return
    after = row_counts(store)
    assert after[0] - before[0] == report.trajectories
    unknown = store.counts().unknown - before_unknown
    assert report.succeeded + report.failed + unknown == report.trajectories


@pytest.mark.parametrize("fmt", ["react", "alfworld", "chat", "reflexion", "jsonl"])
@settings(max_examples=25, deadline=None)
@given(value=json_value)
def test_every_json_shape_is_rejected_or_imported_cleanly(fmt: str, value: object) -> None:
    with tempfile.TemporaryDirectory(prefix="memp-fuzz-") as tmp:
        path = Path(tmp) / "env_results_trial_0.json"
        path.write_text(json.dumps(value))
        store = Store("sqlite://")
        try:
            import_paths(store, [path], fmt=fmt, actor=REVIEWER)
        except ImportFormatError:
            assert row_counts(store) == (0, 0, 0, 0, 0)
        finally:
            store.dispose()


containers = st.lists(json_value, max_size=6) | st.dictionaries(
    st.text(max_size=6), json_value, max_size=6
)


@settings(max_examples=300, deadline=None)
@given(
    doc=containers,
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(1, 40),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    cut=st.integers(0, 10_000),
)
def test_streamed_json_members_equal_json_loads_at_any_chunk_size(
    doc: object, indent: int | None, chunk: int, encoding: str, cut: int
) -> None:
    """The streaming reader hands out exactly what json.loads reads, whatever the chunk
    boundaries cut (numbers, escapes, multi-byte characters), and a cut file is one error."""
    from memp_core.importers.jsonstream import json_members
    from memp_core.importers.source import open_text

    text = json.dumps(doc, indent=indent, ensure_ascii=bool(cut % 2))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # lone surrogates: not text any file can hold
        return
    with tempfile.TemporaryDirectory(prefix="memp-fuzz-") as tmp:
        path = Path(tmp) / "doc.json"
        path.write_bytes(data)
        src = open_text(path)
        try:
            members = list(json_members(src, chunk=chunk))
        except ImportFormatError as exc:
            # Only what parse_json refuses too (NUL or surrogate escapes), never valid JSON.
            assert "NUL" in str(exc) or "surrogate" in str(exc), exc
            return
        expected = list(doc.items()) if isinstance(doc, dict) else list(enumerate(doc))
        assert [(k, json.dumps(v)) for k, v in members] == [(k, json.dumps(v)) for k, v in expected]
        short = text[: cut % max(1, len(text))].rstrip()
        if not short or short == text.rstrip() or short[:1] not in "[{":
            return
        path.write_bytes(short.encode(encoding))
        with pytest.raises(ImportFormatError):
            list(json_members(open_text(path), chunk=chunk))
