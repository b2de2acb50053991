"""Bad input is safe: clear one-line errors, nothing half-written, kills leave no trace."""

from __future__ import annotations

import codecs
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memp_core.actor import Actor
from memp_core.cli import app
from memp_core.errors import ConfigError, ImportFormatError
from memp_core.importers import import_paths
from memp_core.importers.bench import write_log
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")  # imports need a reviewer; a file never approves

BLOCK = (
    "Question: Which river is longer, the Ebro or the Tagus?\nThought 1: Compare.\n"
    "Action 1: Finish[Tagus]\nObservation 1: Answer is CORRECT\n"
)
TRANSCRIPT = (
    "You are in the middle of a room. Looking quickly around you, you see a fridge 1.\n"
    "Your task is to: cool some apple and put it in fridge.\n"
    "> open fridge 1\nYou open the fridge 1. Déjà vu ✓\n"
)


def nothing_written(store: Store) -> bool:
    c = store.counts()
    return (c.trajectories, c.steps, c.runs) == (0, 0, 0)


@pytest.mark.parametrize(
    "encoded",
    [
        TRANSCRIPT.encode("utf-8"),
        codecs.BOM_UTF8 + TRANSCRIPT.encode("utf-8"),
        codecs.BOM_UTF16_LE + TRANSCRIPT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TRANSCRIPT.encode("utf-16-be"),
        TRANSCRIPT.replace("\n", "\r\n").encode("utf-8"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le", "utf16-be", "crlf"],
)
def test_accepted_encodings_import_the_same_trajectory(
    store: Store, tmp_path: Path, encoded: bytes
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(encoded)
    report = import_paths(store, [path], fmt="auto", actor=REVIEWER)
    assert report.trajectories == 1
    (t,) = store.list_trajectories().rows
    assert t.task == "cool some apple and put it in fridge."
    assert store.steps_of(t.id or 0)[0].observation == "You open the fridge 1. Déjà vu ✓"


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"", "auto", "file is empty"),
        (b"  \n\n", "react", "file is empty"),
        (codecs.BOM_UTF8, "alfworld", "file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "auto", "binary file"),
        (BLOCK.encode() + b"Thought 2: caf\xe9\n", "react", "undecodable bytes (0xe9"),
        (codecs.BOM_UTF16_LE + "abc".encode("utf-16-le") + b"\x00", "react", "truncated UTF-16"),
        (b'{"react_put_0": "You are in', "alfworld", "truncated JSON"),
        (b'[{"name": 1, "is_success": "maybe"}]', "reflexion", "'name' must be a non-empty"),
        (b'[{"name": "env_1", "is_success": "maybe"}]', "reflexion", "$[0].is_success"),
        (b"[]", "reflexion", "the trial lists no games"),
        (BLOCK.encode("utf-16-le"), "react", "UTF-16 without a byte-order mark"),
        (BLOCK.encode(), "reflexion", "invalid JSON"),
        (BLOCK.encode(), "alfworld", "no ALFWorld transcript found"),
        (TRANSCRIPT.encode(), "react", "no ReAct block found"),
        (b'[{"role": "user"}]', "chat", "$[0].content"),
        (b'{"type": "header", "format": "other", "version": 1}\n', "jsonl", "not a memp-jsonl"),
        (b"just some notes\n", "auto", "cannot tell the format"),
        (b"[" * 100000, "chat", "JSON"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    store: Store, tmp_path: Path, data: bytes, fmt: str, reason: str
) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    with pytest.raises(ImportFormatError) as err:
        import_paths(store, [path], fmt=fmt, actor=REVIEWER)
    message = str(err.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message
    assert nothing_written(store)


def test_error_in_second_file_rolls_back_the_first(store: Store, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(BLOCK)
    bad.write_text(BLOCK + "Thought 2: x\n" + "Question:\n")
    with pytest.raises(ImportFormatError, match=r"bad\.txt:6: empty question"):
        import_paths(store, [good, bad], fmt="react", actor=REVIEWER)
    assert nothing_written(store)


def test_skip_bad_imports_the_good_records_and_lists_the_bad(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "games.json"
    path.write_text(json.dumps([
        {"name": "env_0", "memory": [], "is_success": True},
        {"name": "env_1", "memory": "oops", "is_success": False},
        {"name": "env_2", "memory": ["retry"], "is_success": False},
    ]))  # fmt: skip
    missing = tmp_path / "missing.json"
    report = import_paths(store, [path, missing], fmt="reflexion", skip_bad=True, actor=REVIEWER)
    assert (report.trajectories, report.succeeded, report.failed) == (2, 1, 1)
    assert len(report.bad) == 2
    assert "$[1].memory" in report.bad[0] and "no such file" in report.bad[1]


def test_unknown_format_lists_valid_names(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid names: alfworld, auto, chat, jsonl"):
        import_paths(store, [tmp_path], fmt="csv", actor=REVIEWER)


def test_cli_prints_counts_as_json_and_errors_without_traceback(
    db_url: str, tmp_path: Path
) -> None:
    good = tmp_path / "block.txt"
    good.write_text(BLOCK)
    runner = CliRunner()
    ok = runner.invoke(app, ["import", str(good), "--json", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    counts = json.loads(ok.stdout)
    assert {k: counts[k] for k in ("trajectories", "succeeded", "failed", "steps")} == {
        "trajectories": 1, "succeeded": 1, "failed": 0, "steps": 1,
    }  # fmt: skip
    assert "auto:" in ok.stderr and "react" in ok.stderr
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(range(256)) * 4)
    for fmt in ("alfworld", "react", "chat", "reflexion", "jsonl", "auto"):
        res = runner.invoke(app, ["import", str(bad), "--format", fmt, "--json", "--db", db_url])
        assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
        assert "Traceback" not in res.output and "binary file" in res.output


def test_killed_import_leaves_database_consistent_and_reimport_completes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "big_log.txt"
    write_log(log, 8000)
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    Store(url).dispose()
    wal = tmp_path / "kill.db-wal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memp_core", "import", str(log), "--format", "react", "--db", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None and not (wal.exists() and wal.stat().st_size > 1_000_000):
        time.sleep(0.005)
    assert proc.poll() is None, "the import finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(url)
    try:
        with store.session() as s:
            assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert nothing_written(store)
        report = import_paths(store, [log], fmt="react", actor=REVIEWER)
        assert report.trajectories == 8000 and store.counts().trajectories == 8000
        assert [g["tasks"] for g in store.runs()[0].metrics] == [1600] * 5
    finally:
        store.dispose()


def test_bench_compares_import_rate_with_parse_rate() -> None:
    from memp_core.importers.bench import run_bench

    result = run_bench(blocks=200)
    assert result.trajectories == 200 and result.parse_per_s > 0 and result.import_per_s > 0
    assert "embed nothing" in result.note
