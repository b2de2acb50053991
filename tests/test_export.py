"""Export → restore into an empty database → export gives identical files (a lossless backup)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

from memp_core.actor import Actor
from memp_core.importers import import_paths
from memp_core.importers.export import ExportError, export
from memp_core.models import (
    EMBEDDING_DIM,
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Run,
    Step,
    Trajectory,
)
from memp_core.store import Store

REVIEWER = Actor("rita", "reviewer")  # imports need a reviewer; a file never approves
ADMIN = Actor("ann", "admin")  # restores a backup as it was
# A real-sized unit vector (the embedder's 384 float32s): anything else is dropped at import.
VECTOR = np.full(EMBEDDING_DIM, EMBEDDING_DIM**-0.5, dtype="<f4").tobytes()

LOG = """BEGIN TRIAL 1
Trial summary: Correct: 1, Incorrect: 1, Halted: 0
------------- BEGIN CORRECT AGENTS -------------
Question: Q one?
Thought 1: think
Action 1: Finish[a]
Observation 1: Answer is CORRECT
Correct answer: a
------------- BEGIN INCORRECT AGENTS -------------
Question: Q two?
Action 1: Finish[c]
Observation 1: Answer is INCORRECT
Correct answer: b
"""


def populate(store: Store, tmp_path: Path) -> None:
    """Imported logs plus what the engine writes: a simulator run, procedures with lineage
    interleaved across two procedures, audit events naming revisions and trajectories."""
    log = tmp_path / "log.txt"
    log.write_text(LOG)
    import_paths(store, [log], fmt="react", actor=REVIEWER)
    with store.transaction() as s:
        run = Run(
            name="exp",
            kind="experiment",
            agent="heuristic",
            update_policy="reflect",
            k=3,
            seed=7,
            metrics=[
                {
                    "index": 0,
                    "tasks": 2,
                    "successes": 1,
                    "success_rate": 0.5,
                    "mean_steps": 3.5,
                    "tokens": None,
                }
            ],
        )
        s.add(run)
        s.flush()
        sim = Trajectory(
            task="heat some egg and put it in garbagecan",
            task_type="heat",
            environment="household-sim",
            source="simulator",
            success=False,
            run_id=run.id,
            group_index=0,
            facts={"object": "egg"},
            step_count=2,
        )
        s.add(sim)
        s.flush()
        s.add(Step(trajectory_id=sim.id or 0, index=0, action="go to fridge 1", observation="x"))
        s.add(Step(trajectory_id=sim.id or 0, index=1, action="go to fridge 1", is_loop=True))
        a = Procedure(key="heat-egg", title="Heat an egg", task_type="heat", status="approved")
        b = Procedure(key="cool-apple", title="Cool an apple", task_type="cool", pinned=True)
        s.add_all([a, b])
        s.flush()
        a1 = ProcedureRevision(
            procedure_id=a.id or 0,
            script="1. find egg",
            author="heuristic",
            evidence_trajectory_ids=[sim.id or 0],
            embedding=VECTOR,
        )
        s.add(a1)
        s.flush()
        b1 = ProcedureRevision(procedure_id=b.id or 0, script="1. open fridge")
        s.add(b1)
        s.flush()
        a2 = ProcedureRevision(
            procedure_id=a.id or 0,
            parent_revision_id=a1.id,
            origin="reflection",
            script="1. find egg\n2. heat it",
            rationale="looped at fridge",
        )
        s.add(a2)
        s.flush()
        a3 = ProcedureRevision(
            procedure_id=a.id or 0, parent_revision_id=a2.id, origin="proposal",
            script="1. find egg\n2. heat it in the microwave",
        )  # fmt: skip
        s.add(a3)
        # a procedure a reviewed merge folded into heat-egg
        c = Procedure(key="heat-egg-2", title="Heat an egg", task_type="heat", status="merged")
        s.add(c)
        s.flush()
        c1 = ProcedureRevision(procedure_id=c.id or 0, script="1. find the egg")
        s.add(c1)
        s.flush()
        a.current_revision_id, b.current_revision_id = a2.id, b1.id
        a.proposed_revision_id = a3.id
        c.current_revision_id, c.merged_into_id = c1.id, a.id
        sim.procedure_revision_id = a1.id
        s.add_all([a, b, c, sim])
        store.audit(
            s, "heuristic", "build", "procedure", a.id, revision_id=a1.id, evidence=[sim.id]
        )
        store.audit(
            s,
            "heuristic",
            "reflect",
            "procedure",
            a.id,
            revision_id=a2.id,
            parent_revision_id=a1.id,
            failed_trajectory_id=sim.id,
        )
        store.audit(s, "human:ann", "approve", "procedure", a.id, comment="ok")
        store.audit(s, "human:ann", "pin", "procedure", b.id)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_restore_export_gives_identical_files(store: Store, tmp_path: Path) -> None:
    populate(store, tmp_path)
    first = tmp_path / "first"
    export(store, first)
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        report = import_paths(other, [first], fmt="auto", actor=ADMIN, restore=True)
        assert (report.trajectories, report.runs, report.procedures, report.revisions) == (
            3,
            2,
            3,
            5,
        )
        assert report.warnings == []
        second = tmp_path / "second"
        export(other, second)
        assert files(first) == files(second)
        # Ids were remapped, yet every reference points at the same thing.
        with other.session() as s:
            a = s.exec(select(Procedure).where(Procedure.key == "heat-egg")).one()
            revs = other.revisions_of(a.id or 0)
            sim = s.exec(select(Trajectory).where(Trajectory.source == "simulator")).one()
            reflect = s.exec(select(AuditEvent).where(AuditEvent.action == "reflect")).one()
        assert a.current_revision_id == revs[1].id and revs[1].parent_revision_id == revs[0].id
        assert revs[0].evidence_trajectory_ids == [sim.id]
        assert revs[0].embedding == VECTOR
        assert sim.procedure_revision_id == revs[0].id
        assert reflect.detail["revision_id"] == revs[1].id
        assert reflect.detail["failed_trajectory_id"] == sim.id
        again = import_paths(other, [first], fmt="jsonl", actor=REVIEWER)
        assert (again.trajectories, again.runs, again.procedures) == (0, 0, 0)
        assert (again.duplicates_skipped, again.procedures_skipped) == (3, 3)
    finally:
        other.dispose()


def test_a_restore_keeps_the_waiting_proposal_and_the_merge_pointer(
    store: Store, tmp_path: Path
) -> None:
    populate(store, tmp_path)
    export(store, tmp_path / "backup")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other.init()
    import_paths(other, [tmp_path / "backup"], fmt="jsonl", actor=ADMIN, restore=True)
    with other.session() as s:
        procs = {p.key: p for p in s.exec(select(Procedure)).all()}
        proposal = s.get(ProcedureRevision, procs["heat-egg"].proposed_revision_id)
        assert proposal is not None and proposal.script.endswith("heat it in the microwave")
        assert procs["heat-egg"].current_revision_id != proposal.id  # the served one stays
        assert procs["heat-egg-2"].status == "merged"
        assert procs["heat-egg-2"].merged_into_id == procs["heat-egg"].id


def test_a_plain_import_keeps_proposal_and_merge_only_as_claims(
    store: Store, tmp_path: Path
) -> None:
    populate(store, tmp_path)
    export(store, tmp_path / "backup")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other.init()
    import_paths(other, [tmp_path / "backup"], fmt="jsonl", actor=REVIEWER)
    with other.session() as s:
        procs = {p.key: p for p in s.exec(select(Procedure)).all()}
        assert {p.status for p in procs.values()} == {"pending_review"}
        assert procs["heat-egg"].proposed_revision_id is None
        assert procs["heat-egg-2"].merged_into_id is None
        claims = {
            ev.object_id: ev.detail["claimed"]
            for ev in s.exec(select(AuditEvent).where(AuditEvent.action == "import")).all()
            if ev.object_type == "procedure"
        }
        assert claims[procs["heat-egg"].id]["proposed_revision"] == 3
        assert claims[procs["heat-egg-2"].id]["merged_into"] == "heat-egg"


def test_single_file_export_restores_identically_and_writes_curves_csv(
    store: Store, tmp_path: Path
) -> None:
    populate(store, tmp_path)
    out = tmp_path / "all.jsonl"
    result = export(store, out)
    assert set(result.files) == {str(out), str(tmp_path / "all.curves.csv")}
    kinds = [json.loads(line)["type"] for line in out.read_text().splitlines()]
    assert kinds == [
        "header",
        "run",
        "run",
        "trajectory",
        "trajectory",
        "trajectory",
        "procedure",
        "procedure",
        "procedure",
    ]
    with (tmp_path / "all.curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["run_name"], r["group"], r["tasks"], r["successes"]) for r in rows] == [
        ("log", "0", "2", "1"),
        ("exp", "0", "2", "1"),
    ]
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        import_paths(other, [out], fmt="jsonl", actor=ADMIN, restore=True)
        export(other, tmp_path / "again.jsonl")
    finally:
        other.dispose()
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_export_of_one_kind_writes_only_that_file(store: Store, tmp_path: Path) -> None:
    populate(store, tmp_path)
    result = export(store, tmp_path / "procs", "procedures")
    assert [Path(p).name for p in result.files] == ["procedures.jsonl"]
    line = json.loads((tmp_path / "procs" / "procedures.jsonl").read_text().splitlines()[1])
    assert [r["revision"] for r in line["revisions"]] == [1, 2, 3]
    assert [e["action"] for e in line["audit"]] == ["build", "reflect", "approve"]
    assert line["audit"][1]["detail"]["revision_id"] == {"$revision": ["heat-egg", 2]}


def test_unknown_what_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="valid: trajectories, procedures, runs, all"):
        export(store, tmp_path / "x", "memories")


def test_every_shared_sample_survives_the_round_trip(
    store: Store, tmp_path: Path, shared_data: Path
) -> None:
    alf = shared_data / "reflexion-alfworld"
    transcripts = [alf / "react_prompts_alfworld.json", alf / "reflexion_few_shot_examples.txt"]
    import_paths(store, transcripts, fmt="alfworld", actor=REVIEWER)
    import_paths(
        store, [alf / "reflexion_run_logs", alf / "base_run_logs"], fmt="reflexion", actor=REVIEWER
    )
    import_paths(
        store, [shared_data / "reflexion-hotpotqa", shared_data / "memp-alfworld"], actor=REVIEWER
    )
    export(store, tmp_path / "first")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        report = import_paths(other, [tmp_path / "first"], fmt="jsonl", actor=ADMIN, restore=True)
        export(other, tmp_path / "second")
    finally:
        other.dispose()
    assert report.trajectories == store.counts().trajectories and report.runs == 3
    assert files(tmp_path / "first") == files(tmp_path / "second")


def test_export_is_identical_across_sqlite_and_postgres(any_store: Store, tmp_path: Path) -> None:
    populate(any_store, tmp_path)
    again = import_paths(any_store, [tmp_path / "log.txt"], fmt="react", actor=REVIEWER)
    assert again.duplicates_skipped == 2 and again.runs == 0
    export(any_store, tmp_path / "first")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        import_paths(other, [tmp_path / "first"], fmt="jsonl", actor=ADMIN, restore=True)
        export(other, tmp_path / "second")
    finally:
        other.dispose()
    assert files(tmp_path / "first") == files(tmp_path / "second")


def test_trajectories_imported_after_their_runs_find_them_in_the_database(
    store: Store, tmp_path: Path
) -> None:
    populate(store, tmp_path)
    export(store, tmp_path / "runs", "runs")
    export(store, tmp_path / "trajs", "trajectories")
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        alone = import_paths(other, [tmp_path / "trajs"], fmt="jsonl", actor=REVIEWER)
        assert alone.trajectories == 3
        assert (
            sum("is neither in this import nor in the database" in w for w in alone.warnings) == 2
        )
        assert any("procedure revision heat-egg#1" in w for w in alone.warnings)
        other.dispose()
        (tmp_path / "other.db").unlink()
        other = Store(f"sqlite:///{tmp_path / 'other.db'}")
        import_paths(other, [tmp_path / "runs"], fmt="jsonl", actor=REVIEWER)
        later = import_paths(other, [tmp_path / "trajs"], fmt="jsonl", actor=REVIEWER)
        assert not any("run" in w for w in later.warnings)
        with other.session() as s:
            linked = s.exec(select(Trajectory).where(Trajectory.run_id != None)).all()  # noqa: E711
        assert len(linked) == 3
    finally:
        other.dispose()


def test_cli_export_then_import_reports_counts(db_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from memp_core.cli import app

    store = Store(db_url)
    populate(store, tmp_path)
    store.dispose()
    runner = CliRunner()
    out = runner.invoke(app, ["export", str(tmp_path / "out"), "--json", "--db", db_url])
    assert out.exit_code == 0, out.output
    written = json.loads(out.stdout)["files"]
    assert {Path(p).name: n for p, n in written.items()} == {
        "runs.jsonl": 2, "trajectories.jsonl": 3, "procedures.jsonl": 3, "curves.csv": 2,
    }  # fmt: skip
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = runner.invoke(app, ["import", str(tmp_path / "out"), "--db", other])
    assert res.exit_code == 0, res.output
    assert "Imported 3 trajectories" in res.stdout and "3 procedures with 5 revisions" in res.stdout
