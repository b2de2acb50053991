"""The review gate holds against imported files (issue 11, items 4-7 and the smaller ones).

Each test is an attack that worked before: a file that approves, pins, counts and forges
audit rows; a 3-value embedding that broke every retrieval; absurd numbers that broke the
pages and ``memp init``; an import that held the write lock while a reviewer waited.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from memp_core.actor import Actor, os_user, system
from memp_core.cli import app
from memp_core.embeddings import Embedder
from memp_core.errors import DatabaseLockedError, ImportFormatError, PermissionDeniedError
from memp_core.importers import import_paths
from memp_core.importers.export import export
from memp_core.memory import ProceduralMemory
from memp_core.models import (
    EMBEDDING_DIM,
    Procedure,
    ProcedureRevision,
    Run,
    Step,
    Trajectory,
)
from memp_core.review import approve
from memp_core.store import Store
from memp_core.uploads import Upload, export_zip, import_uploads

REVIEWER = Actor("rita", "reviewer")
ADMIN = Actor("ann", "admin")
VIEWER = Actor("vic", "viewer")
TASK = "put some spraybottle on toilet"


def vector(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(EMBEDDING_DIM).astype("<f4")
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


def populate(store: Store) -> None:
    """A database a reviewer worked on: an approved, pinned, used procedure whose lineage
    holds alice's edit, approved by alice; a run with one trajectory that followed it."""
    with store.transaction() as s:
        run = Run(name="exp", kind="experiment", agent="heuristic", n_tasks=1, n_groups=1,
                  metrics=[{"index": 0, "tasks": 1, "successes": 1, "success_rate": 1.0,
                            "mean_steps": 2.0, "tokens": None}])  # fmt: skip
        s.add(run)
        s.flush()
        traj = Trajectory(task=TASK, task_type="put", environment="household-sim",
                          source="simulator", success=True, run_id=run.id, group_index=0,
                          step_count=2)  # fmt: skip
        s.add(traj)
        s.flush()
        s.add(Step(trajectory_id=traj.id or 0, index=0, action="go to toilet 1"))
        s.add(Step(trajectory_id=traj.id or 0, index=1, action="put spraybottle 1 in toilet 1"))
        proc = Procedure(key="put-spraybottle-toilet", title=TASK, task_type="put",
                         status="approved", pinned=True, use_count=100,
                         success_count=99)  # fmt: skip
        s.add(proc)
        s.flush()
        first = ProcedureRevision(procedure_id=proc.id or 0, task_text=TASK, script="1. find it",
                                  author="heuristic", model="heuristic", embedding=vector(1),
                                  evidence_trajectory_ids=[traj.id or 0])  # fmt: skip
        s.add(first)
        s.flush()
        edit = ProcedureRevision(procedure_id=proc.id or 0, parent_revision_id=first.id,
                                 task_text=TASK, script="1. find it\n2. put it",
                                 origin="human_edit", author="human:alice",
                                 embedding=vector(2))  # fmt: skip
        s.add(edit)
        s.flush()
        proc.current_revision_id = edit.id
        traj.procedure_revision_id = first.id
        s.add_all([proc, traj])
        store.audit(s, "human:alice", "approve", "procedure", proc.id, before="pending_review",
                    after="approved", revision_id=edit.id)  # fmt: skip
        store.audit(s, "human:alice", "pin", "procedure", proc.id)


@pytest.fixture(name="backup")
def backup_fixture(tmp_path: Path) -> Path:
    """One memp JSONL file exported from a real database (header, run, trajectory, procedure)."""
    source = Store(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        populate(source)
        export(source, tmp_path / "backup.jsonl")
    finally:
        source.dispose()
    return tmp_path / "backup.jsonl"


def rewrite(path: Path, kind: str, change: Callable[[dict[str, Any]], None]) -> int:
    """Apply ``change`` to the first line of type ``kind``; returns that line's number."""
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    index = next(i for i, obj in enumerate(lines) if obj.get("type") == kind)
    change(lines[index])
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    return index + 1


def the_procedure(store: Store) -> Procedure:
    (proc,) = store.procedures()
    return proc


# -- 4. an import cannot approve, pin, count or speak for anyone ----------------------------


def test_forged_import_lands_pending_unpinned_with_counts_reset(
    any_store: Store, backup: Path
) -> None:
    report = import_paths(any_store, [backup], actor=REVIEWER, fmt="jsonl")
    assert (report.procedures, report.revisions, report.trajectories) == (1, 2, 1)
    proc = the_procedure(any_store)
    assert (proc.status, proc.pinned, proc.use_count, proc.success_count) == (
        "pending_review", False, 0, 0,
    )  # fmt: skip
    assert any_store.procedures(status="approved") == []


def test_forged_import_is_not_served_to_agents(
    store: Store, backup: Path, embedder: Embedder
) -> None:
    import_paths(store, [backup], actor=REVIEWER, fmt="jsonl")
    memory = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    assert memory.retrieve(TASK, log=False).items == []  # agents get approved ones only
    assert len(memory.retrieve(TASK, log=False, all_statuses=True).items) == 1


def test_file_claims_are_kept_as_labelled_history_by_the_importer(
    any_store: Store, backup: Path
) -> None:
    import_paths(any_store, [backup], actor=REVIEWER, fmt="jsonl")
    proc = the_procedure(any_store)
    events = sorted(any_store.audit_events(), key=lambda ev: ev.id or 0)
    assert {ev.actor for ev in events} == {"human:rita"}  # never alice: she acted elsewhere
    (claim,) = [ev for ev in events if ev.action == "import" and ev.object_id == proc.id]
    assert claim.detail["claimed"] == {
        "status": "approved", "pinned": True, "use_count": 100, "success_count": 99,
    }  # fmt: skip
    assert claim.detail["file"] == str(backup)
    history = [ev for ev in events if ev.action == "imported-history"]
    assert [(h.detail["claimed_actor"], h.detail["claimed_action"]) for h in history] == [
        ("human:alice", "approve"), ("human:alice", "pin"),
    ]  # fmt: skip
    assert history[0].detail["claimed_at"] and history[0].object_id == proc.id
    assert not any(ev.action in ("approve", "pin") for ev in events)
    authors = [r.author for r in any_store.revisions_of(proc.id or 0)]
    assert authors == ["import:heuristic", "import:human:alice"]
    origins = [r.origin for r in any_store.revisions_of(proc.id or 0)]
    assert origins == ["build", "human_edit"]  # how the content came about stays


def test_an_import_cannot_replace_a_procedure_already_here(store: Store, backup: Path) -> None:
    import_paths(store, [backup], actor=REVIEWER, fmt="jsonl")
    approve(store, the_procedure(store).id or 0, actor=REVIEWER)
    rewrite(backup, "procedure", lambda p: p.update(title="hijacked", status="rejected"))
    again = import_paths(store, [backup], actor=REVIEWER, fmt="jsonl")
    assert again.procedures_skipped == 1
    proc = the_procedure(store)
    assert (proc.title, proc.status) == (TASK, "approved")


def test_admin_restore_keeps_the_backup_as_it_was_and_says_so(
    any_store: Store, backup: Path
) -> None:
    report = import_paths(any_store, [backup], actor=ADMIN, fmt="jsonl", restore=True)
    assert report.restored
    proc = the_procedure(any_store)
    assert (proc.status, proc.pinned, proc.use_count, proc.success_count) == (
        "approved", True, 100, 99,
    )  # fmt: skip
    events = any_store.audit_events()
    (restore,) = [ev for ev in events if ev.action == "restore"]
    assert restore.actor == "human:ann" and restore.detail["paths"] == [str(backup)]
    assert [r.author for r in any_store.revisions_of(proc.id or 0)] == ["heuristic", "human:alice"]


@pytest.mark.parametrize(
    ("actor", "restore"),
    [
        (VIEWER, False),
        (REVIEWER, True),  # a reviewer imports, only an admin restores
        (system("demo", "admin"), True),  # the program never restores approvals
        (Actor("bot", "admin", kind="agent"), True),
    ],
)
def test_imports_need_a_reviewer_and_restores_an_admin_person(
    store: Store, backup: Path, actor: Actor, restore: bool
) -> None:
    with pytest.raises(PermissionDeniedError):
        import_paths(store, [backup], actor=actor, fmt="jsonl", restore=restore)
    assert store.counts().trajectories == 0 and store.audit_events() == []


def test_viewers_cannot_import_uploads_or_export(store: Store, backup: Path) -> None:
    upload = Upload(backup.name, backup.read_bytes())
    with pytest.raises(PermissionDeniedError):
        import_uploads(store, [upload], "jsonl", actor=VIEWER)
    with pytest.raises(PermissionDeniedError):
        export_zip(store, "all", actor=VIEWER)
    assert import_uploads(store, [upload], "jsonl", actor=REVIEWER).procedures == 1
    assert export_zip(store, "all", actor=REVIEWER)[:2] == b"PK"
    assert the_procedure(store).status == "pending_review"


def test_cli_import_is_pending_and_audited_as_the_os_user_restore_keeps_state(
    db_url: str, backup: Path
) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(backup), "--format", "jsonl", "--db", db_url])
    assert res.exit_code == 0, res.output
    assert "pending review" in res.stdout
    store = Store(db_url)
    try:
        assert the_procedure(store).status == "pending_review"
        assert {ev.actor for ev in store.audit_events()} == {os_user().author}
        other = backup.parent / "restored.db"
        url = f"sqlite:///{other}"
        res = runner.invoke(app, ["import", str(backup), "--restore", "--db", url])
        assert res.exit_code == 0, res.output
        assert "restored as exported" in res.stdout
    finally:
        store.dispose()
    restored = Store(url)
    try:
        assert the_procedure(restored).status == "approved"
    finally:
        restored.dispose()


# -- 5. an unusable embedding is stopped at the door ---------------------------------------


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (np.array([0.1, 0.2, 0.3], dtype="<f4").tobytes(), "has 3 values, expected 384"),
        (np.full(EMBEDDING_DIM, np.nan, dtype="<f4").tobytes(), "NaN or infinite"),
        (np.zeros(EMBEDDING_DIM, dtype="<f4").tobytes(), "all zeros"),
        (b"\x01\x02\x03", "not float32 data"),
    ],
    ids=["3-values", "nan", "zeros", "ragged"],
)
def test_bad_embedding_is_dropped_reembedded_and_retrieval_keeps_working(
    store: Store, backup: Path, embedder: Embedder, blob: bytes, reason: str
) -> None:
    import base64

    encoded = base64.b64encode(blob).decode()
    line = rewrite(backup, "procedure", lambda p: p["revisions"][1].update(embedding=encoded))
    report = import_paths(store, [backup], actor=REVIEWER, fmt="jsonl", embedder=embedder)
    (warning,) = [w for w in report.warnings if "embedding" in w]
    assert warning.startswith(f"{backup}:{line}: ") and "'revisions[1].embedding'" in warning
    assert reason in warning and "re-embedded with all-MiniLM-L6-v2" in warning
    assert report.embeddings_replaced == 1
    proc = the_procedure(store)
    current = store.current_revision(proc)
    expected = embedder.embed_array([f"{TASK}\n{current.script}"])[0]
    assert current.embedding == expected.astype("<f4").tobytes()
    assert proc.embedding == current.embedding  # the searchable mirror too
    memory = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    for policy in ("query", "facts", "hybrid", "random"):
        memory.retrieve(TASK, policy=policy, log=False, all_statuses=True)
    assert memory.retrieve(TASK, log=False, all_statuses=True).items[0].procedure.id == proc.id


# -- 6. imported numbers cannot break pages ------------------------------------------------

HOSTILE: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("trajectory", "step_count", lambda t: t.update(step_count=2**63 - 1), "out of range"),
    ("trajectory", "step_count", lambda t: t.update(step_count=70_000), "says 70000 but"),
    ("trajectory", "token_count", lambda t: t.update(token_count=-1), "out of range"),
    ("trajectory", "group_index", lambda t: t.update(group_index=2**31), "out of range"),
    ("trajectory", "reward", lambda t: t.update(reward=float("inf")), "finite number"),
    ("trajectory", "created_at", lambda t: t.update(created_at="9999-01-01T00:00:00+00:00"),
     "outside 1970..2200"),
    ("trajectory", "facts", lambda t: t.update(facts={"x": float("nan")}), "NaN"),
    ("trajectory", "steps[0].observation",
     lambda t: t["steps"][0].update(observation="o" * 1_000_001), "at most 1,000,000"),
    ("run", "metrics[0].success_rate",
     lambda r: r["metrics"][0].update(success_rate=float("nan")), "finite number"),
    ("run", "n_tasks", lambda r: r.update(n_tasks=2**40), "out of range"),
    ("procedure", "use_count", lambda p: p.update(use_count=2**40), "out of range"),
    ("procedure", "status", lambda p: p.update(status="served"), "is not one of"),
    ("procedure", "revisions[0].parent", lambda p: p["revisions"][0].update(parent=2),
     "not an earlier revision"),
    ("procedure", "revisions[1].parent", lambda p: p["revisions"][1].update(parent=7),
     "does not exist"),
    ("procedure", "revisions", lambda p: p["revisions"][1].update(revision=1), "each once"),
    ("procedure", "current_revision", lambda p: p.update(current_revision=5), "does not exist"),
    ("procedure", "proposed_revision", lambda p: p.update(proposed_revision=5), "does not exist"),
    ("procedure", "merged_into", lambda p: p.update(merged_into=p["key"]), "into itself"),
    ("procedure", "revisions[1].created_at",
     lambda p: p["revisions"][1].update(created_at="1900-01-01T00:00:00+00:00"), "outside"),
    ("procedure", "audit[0].revision", lambda p: p["audit"][0].update(revision=9), "does not"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "field", "change", "reason"), HOSTILE, ids=[f"{k}.{f}" for k, f, _, _ in HOSTILE]
)
def test_absurd_numbers_are_one_error_naming_file_line_and_field(
    any_store: Store,
    backup: Path,
    kind: str,
    field: str,
    change: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    line = rewrite(backup, kind, change)
    with pytest.raises(ImportFormatError) as err:
        import_paths(any_store, [backup], actor=REVIEWER, fmt="jsonl")
    message = str(err.value)
    assert message.startswith(f"{backup}:{line}: '{field}': ") and reason in message, message
    assert "\n" not in message
    counts = any_store.counts()
    assert (counts.trajectories, counts.runs, counts.procedures) == (0, 0, 0)
    any_store.init()  # `memp init` and the counts pages still work
    report = import_paths(any_store, [backup], actor=REVIEWER, fmt="jsonl", skip_bad=True)
    assert len(report.bad) == 1 and report.bad[0] == message


def long_transcript(fmt: str, steps: int) -> str:
    if fmt == "alfworld":
        body = "".join(f"> go to shelf {i}\nNothing happens.\n" for i in range(steps))
        return f"You are in the middle of a room.\nYour task is to: put a mug in shelf.\n{body}"
    if fmt == "react":
        body = "".join(
            f"Thought {i}: t\nAction {i}: Search[x]\nObservation {i}: o\n"
            for i in range(1, steps + 1)
        )
        return f"Question: which?\n{body}"
    messages = [{"role": "user", "content": "Your task is to: put a mug in shelf."}]
    for i in range(steps):
        messages.append({"role": "assistant", "content": f"Action: go to shelf {i}"})
        messages.append({"role": "user", "content": "Observation: Nothing happens."})
    return json.dumps([messages])


@pytest.mark.parametrize("fmt", ["alfworld", "react", "chat"])
def test_a_transcript_past_10000_steps_is_refused_and_10000_pass(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "long.txt"
    path.write_text(long_transcript(fmt, 10_001))
    with pytest.raises(ImportFormatError, match=r"10,000") as err:
        import_paths(store, [path], actor=REVIEWER, fmt=fmt)
    assert str(err.value).startswith(str(path))
    assert store.counts().trajectories == 0
    path.write_text(long_transcript(fmt, 10_000))
    assert import_paths(store, [path], actor=REVIEWER, fmt=fmt).steps == 10_000


@pytest.mark.parametrize("fmt", ["alfworld", "react"])
def test_a_million_step_transcript_fails_fast_without_reading_it_all(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "huge.txt"
    path.write_text(long_transcript(fmt, 200_000))
    read: list[int] = []
    with pytest.raises(ImportFormatError, match=r"more than 10,000 steps"):
        import_paths(store, [path], actor=REVIEWER, fmt=fmt, progress=read.append)
    # It stops near step 10,001: a fraction of the file, so memory never holds it all.
    assert sum(read) < path.stat().st_size / 4


def test_reflexion_and_chat_numbers_are_checked_too(store: Store, tmp_path: Path) -> None:
    trial = tmp_path / "env_results_trial_0.json"
    trial.write_text('[{"name": "env_0", "memory": [], "is_success": true, "score": NaN}]')
    with pytest.raises(ImportFormatError, match=r"'facts': holds a NaN"):
        import_paths(store, [trial], actor=REVIEWER, fmt="reflexion")
    chat = tmp_path / "chat.json"
    chat.write_text('[{"reward": Infinity, "messages": [{"role": "user", "content": "go"}]}]')
    with pytest.raises(ImportFormatError, match=r"'facts': holds a NaN or infinite"):
        import_paths(store, [chat], actor=REVIEWER, fmt="chat")
    assert store.counts().trajectories == 0


# -- 7. an import does not hold the write lock while it parses ------------------------------


def test_a_reviewer_approves_while_a_big_import_is_parsing(db_url: str, tmp_path: Path) -> None:
    from memp_core.importers.bench import write_log

    log = tmp_path / "big.txt"
    write_log(log, 3000)
    store = Store(db_url)
    with store.transaction() as s:
        proc = Procedure(key="p", title="P")
        s.add(proc)
    parsing, approved = threading.Event(), threading.Event()

    def pause_mid_parse(_n: int) -> None:
        if not parsing.is_set():
            parsing.set()
            approved.wait(timeout=60)

    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            import_paths(store, [log], actor=REVIEWER, fmt="react", progress=pause_mid_parse)
        )
    )
    worker.start()
    try:
        assert parsing.wait(timeout=60)
        reviewer = Store(db_url, busy_timeout_s=0.2)  # another connection, short patience
        try:
            approve(reviewer, proc.id or 0, actor=REVIEWER, comment="fine")
        except DatabaseLockedError as exc:
            pytest.fail(f"the import held the write lock while parsing: {exc}")
        finally:
            reviewer.dispose()
    finally:
        approved.set()
        worker.join(timeout=120)
    assert results and results[0].trajectories == 3000
    assert store.get(Procedure, proc.id or 0).status == "approved"
    store.dispose()


# -- the smaller ones -----------------------------------------------------------------------

ALFWORLD = (
    "You are in the middle of a room.\nYour task is to: put some mug in shelf.\n"
    "> go to shelf 1\nOn the shelf 1, you see nothing.\n"
)


@pytest.mark.parametrize(
    "name",
    ["a" * 300 + ".txt", "é" * 200 + ".txt", "run\x00.txt", "line\nbreak.txt", "../../x.txt"],
    ids=["300-bytes", "400-utf8-bytes", "nul", "newline", "traversal"],
)
def test_hostile_upload_names_are_saved_under_safe_names(store: Store, name: str) -> None:
    report = import_uploads(store, [Upload(name, ALFWORLD.encode())], "alfworld", actor=REVIEWER)
    assert report.trajectories == 1
    (t,) = store.list_trajectories().rows
    saved = Path(t.source_file or "").name
    assert len(saved.encode()) <= 255 and saved.isprintable() and saved.endswith(".txt")


def test_two_different_uploads_with_one_name_are_refused_same_bytes_read_once(
    store: Store,
) -> None:
    other = ALFWORLD.replace("mug", "cup")
    with pytest.raises(ImportFormatError, match="two different uploads have this name"):
        uploads = [Upload("a.txt", ALFWORLD.encode()), Upload("dir/a.txt", other.encode())]
        import_uploads(store, uploads, "alfworld", actor=REVIEWER)
    assert store.counts().trajectories == 0
    twice = [Upload("a.txt", ALFWORLD.encode()), Upload("a.txt", ALFWORLD.encode())]
    report = import_uploads(store, twice, "alfworld", actor=REVIEWER)
    assert report.trajectories == 1 and any("uploaded twice" in w for w in report.warnings)


def test_export_never_writes_through_a_planted_temp_file_link(store: Store, tmp_path: Path) -> None:
    populate(store)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for name in ("procedures.jsonl", "curves.csv"):
        (out / f".{name}.tmp").symlink_to(victim)  # the old, predictable temp names
    export(store, out)
    assert victim.read_text() == "keep me"
    assert not (out / "procedures.jsonl").is_symlink()
    assert json.loads((out / "procedures.jsonl").read_text().splitlines()[1])["key"]


def test_csv_export_cells_cannot_start_a_formula(store: Store, tmp_path: Path) -> None:
    import csv

    with store.transaction() as s:
        for name in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "plain"):
            s.add(Run(name=name, metrics=[{"index": 0, "tasks": 1, "successes": 0,
                                           "success_rate": 0.0, "mean_steps": -1.5}]))  # fmt: skip
    export(store, tmp_path / "out", "runs")
    with (tmp_path / "out" / "curves.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run_name"] for r in rows] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "plain",
    ]  # fmt: skip
    assert {r["mean_steps"] for r in rows} == {"-1.5"}  # numbers stay numbers


def test_imported_trajectories_never_repoint_stored_ones(store: Store, backup: Path) -> None:
    import_paths(store, [backup], actor=REVIEWER, fmt="jsonl")
    with store.session() as s:
        (traj,) = s.exec(select(Trajectory)).all()
        before = traj.procedure_revision_id
    assert before is not None
    rewrite(backup, "procedure", lambda p: p.update(key="other-key"))
    rewrite(backup, "trajectory", lambda t: t.update(procedure_revision={
        "procedure": "other-key", "revision": 2}))  # fmt: skip
    import_paths(store, [backup], actor=REVIEWER, fmt="jsonl")
    with store.session() as s:
        ids = s.exec(select(Trajectory.procedure_revision_id).order_by(col(Trajectory.id))).all()
    assert list(ids) == [before]


PREVIEW = """
import json, resource, sys
from pathlib import Path
from memp_core.uploads import Upload, preview_uploads
path = Path(sys.argv[1])
data = path.read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
preview = preview_uploads([Upload(path.name, data)], "chat")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"conversations": preview.trajectories, "grown_kb": grown}))
"""


def test_previewing_a_large_json_log_streams_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    turn = [
        {"role": "assistant", "content": "Thought: look around\nAction: go to shelf 1"},
        {"role": "user", "content": "Observation: On the shelf 1, you see a mug 1."},
    ]
    path = tmp_path / "chat.json"
    with path.open("w") as fh:
        fh.write("[")
        for i in range(6000):
            task = {"role": "user", "content": f"Your task is to: put a mug {i} in shelf."}
            fh.write(("," if i else "") + json.dumps([task, *turn * 20]))
        fh.write("]")
    size_kb = path.stat().st_size // 1024  # about 19 MB
    out = subprocess.run([sys.executable, "-c", PREVIEW, str(path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    result = json.loads(out.stdout)
    assert result["conversations"] == 6000
    # Loading it whole took about 5x the file; one conversation at a time stays far below.
    assert result["grown_kb"] < size_kb / 2, result
