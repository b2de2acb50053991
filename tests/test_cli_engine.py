"""The engine's `memp` commands through typer's CliRunner on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_build import loaded_template, pending_template, store_from
from typer.testing import CliRunner

from memp_core.actor import os_user
from memp_core.cli import app
from memp_core.embeddings import Embedder
from memp_core.review import Actor, edit
from memp_core.store import Store

runner = CliRunner()
__all__ = ["loaded_template", "pending_template"]  # session fixtures shared with test_build


def memp(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args and code == 0 else result


@pytest.fixture(name="loaded")
def loaded_fixture(loaded_template: Path, db_url: str, embedder: Embedder) -> Iterator[Store]:
    """The ALFWorld transcripts, nothing built yet (the CLI runs on ``db_url``)."""
    store = store_from(loaded_template, db_url)
    yield store
    store.dispose()


@pytest.fixture(name="pending")
def pending_fixture(pending_template: Path, db_url: str) -> Iterator[Store]:
    """The 12 procedures built from the transcripts, waiting for review."""
    store = store_from(pending_template, db_url)
    yield store
    store.dispose()


def test_build_then_retrieve_finds_the_right_task_type(loaded: Store) -> None:
    built = memp("build", "--policy", "script", "--backend", "heuristic", "--json")
    assert len(built) == 12 and {b["status"] for b in built} == {"pending_review"}
    for text, want in [
        ("put two pillow in sofa", "puttwo"),
        ("put a clean cloth in drawer", "clean"),
    ]:
        (top,) = memp("retrieve", text, "-k", "1", "--json")
        assert top["task_type"] == want and top["status"] == "pending_review"
        assert {"procedure_id", "revision_id", "title", "score"} <= set(top)


def test_agents_view_is_approved_only_until_a_reviewer_approves(pending: Store) -> None:
    assert memp("retrieve", "put two pillow in sofa", "--approved-only", "--json") == []
    (top,) = memp("retrieve", "put two pillow in sofa", "-k", "1", "--json")
    approved = memp("approve", str(top["procedure_id"]), "--comment", "ok", "--json")
    assert approved["status"] == "approved"
    served = memp("retrieve", "put two pillow in sofa", "--approved-only", "--json")
    assert [s["procedure_id"] for s in served] == [top["procedure_id"]]
    assert pending.audit_events()[0].actor == os_user().author  # the OS user, never "cli"


def test_reject_needs_a_reason_and_rejected_procedures_leave_the_live_view(
    pending: Store,
) -> None:
    memp("reject", "1", code=2)  # --reason is required by the command line itself
    assert memp("reject", "1", "--reason", "too vague", "--json")["status"] == "rejected"
    assert [p["procedure_id"] for p in memp("procedures", "--status", "rejected", "--json")] == [1]
    live = memp("retrieve", "put some spraybottle on toilet", "-k", "12", "--json")
    everything = memp("retrieve", "put some spraybottle on toilet", "-k", "12", "--all-statuses",
                      "--json")  # fmt: skip
    assert 1 not in {r["procedure_id"] for r in live} and len(everything) == 12


def test_rollback_restores_an_older_revision_as_a_new_one(
    pending: Store, embedder: Embedder
) -> None:
    edited = edit(pending, 1, actor=Actor("ed", "reviewer"), script="1. look", comment="",
                  base_revision_id=1, embedder=embedder)  # fmt: skip
    back = memp("rollback", "1", "--to", "1", "--json")
    assert back["origin"] == "rollback" and back["parent_revision_id"] == edited.id
    assert back["revision_id"] == edited.id + 1


def test_cold_start_seeds_one_procedure_per_task_type(loaded: Store) -> None:
    built = memp("build", "--cold-start", "--top", "1", "--status", "approved", "--json")
    assert sorted(b["task_type"] for b in built) == sorted(
        ["put", "clean", "heat", "cool", "puttwo", "examine"]
    )


def test_errors_are_one_readable_line(pending: Store) -> None:
    bad = memp("build", "--policy", "summary", code=1)
    assert "unknown build policy 'summary'" in bad.output
    missing = memp("approve", "999", code=1)
    assert "procedure 999 not found" in missing.output and "Traceback" not in missing.output
    both = memp("retrieve", "x", "--all-statuses", "--approved-only", code=1)
    assert "exclude each other" in both.output


def test_procedures_lists_counts_and_status(pending: Store) -> None:
    rows = memp("procedures", "--json")
    assert len(rows) == 12 and rows[0]["use_count"] == 0 and rows[0]["current_revision_id"] == 1
    table = memp("procedures")
    assert "pending" in table.output and "keychain" in table.output


def test_bench_retrieval_reports_every_size(store: Store) -> None:
    out = memp("bench", "retrieval", "--sizes", "300,600", "--repeats", "3", "--json")
    assert set(out["sizes"]) == {"300", "600"}
    for row in out["sizes"].values():
        assert {"retrieve_ms", "bound_ms", "ratio", "update_ms", "rebuild_ms"} <= set(row)
        assert row["retrieve_ms"] > 0 and row["bound_ms"] > 0 and row["rebuild_ms"] > 0
    assert out["recall_at_5"] == 1.0  # the numpy path is exact
