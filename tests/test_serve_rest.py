"""The REST door of `memp serve`, driven over real HTTP (uvicorn on 127.0.0.1, httpx)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from serve_helpers import LiveServer, bearer, live_server, make_key
from sqlmodel import col, select

from memp_core.actor import os_user
from memp_core.agents.keys import revoke_key, verify
from memp_core.config import Settings
from memp_core.embeddings import Embedder
from memp_core.memory import ProceduralMemory
from memp_core.models import (
    AuditEvent,
    Feedback,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Status,
    Step,
    Trajectory,
)
from memp_core.queue import list_procedures
from memp_core.review import approve
from memp_core.store import Store

AGENT = ["procedures:read", "runs:write", "procedures:propose"]
TASK = "put some spraybottle on toilet"
STEPS = [
    {"action": "go to cabinet 1", "observation": "On the cabinet 1, you see a spraybottle 1."},
    {
        "action": "take spraybottle 1 from cabinet 1",
        "observation": "You pick up the spraybottle 1.",
    },
    {"action": "go to toilet 1", "observation": "On the toilet 1, you see nothing."},
    {"action": "put spraybottle 1 in/on toilet 1", "observation": "You put the spraybottle 1."},
]


def run(task: str = TASK, success: bool | None = True, **extra: Any) -> dict[str, Any]:
    return {"task": task, "steps": STEPS, "success": success, **extra}


@dataclass
class Service:
    srv: LiveServer
    http: httpx.Client
    bot: str  # procedures:read, runs:write, procedures:propose
    reader: str  # procedures:read
    writer: str  # runs:write
    rita: str  # review:admin (a person's tooling)
    revoked: str  # every scope once, now revoked
    procedure_id: int  # approved, built from a run the bot reported

    @property
    def store(self) -> Store:
        return self.srv.store

    def post(self, path: str, key: str | None, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {**(bearer(key) if key else {}), **kw.pop("headers", {})}
        return self.http.post(path, json=body, headers=headers, **kw)

    def get(self, path: str, key: str | None, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=bearer(key) if key else {}, **kw)


@pytest.fixture(name="svc")
def svc_fixture(db_url: str, embedder: Embedder) -> Iterator[Service]:
    with (
        live_server(db_url, embedder=embedder) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        store = srv.store
        keys = {
            name: make_key(store, name, scopes)
            for name, scopes in [
                ("bot", AGENT), ("reader", ["procedures:read"]), ("writer", ["runs:write"]),
                ("rita", ["review:admin"]), ("gone", AGENT),
            ]
        }  # fmt: skip
        revoke_key(store, verify(store, keys["gone"]).key_id, actor=os_user())
        r = http.post("/v1/trajectories", json=run(), headers=bearer(keys["bot"]))
        assert r.status_code == 201, r.text
        (pid,) = [p.id for p in store.procedures()]
        approve(store, int(pid or 0), actor=os_user())
        yield Service(srv, http, keys["bot"], keys["reader"], keys["writer"], keys["rita"],
                      keys["gone"], int(pid or 0))  # fmt: skip


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return len(s.exec(select(model)).all())


# -- the auth matrix ----------------------------------------------------------------------

ROUTES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/retrieve", {"task": TASK}, "read"),
    ("GET", "/v1/procedures", None, "read"),
    ("GET", "/v1/procedures/{pid}", None, "read"),
    ("GET", "/v1/procedures/{pid}/revisions", None, "read"),
    ("POST", "/v1/trajectories", run(success=None), "write"),
    ("POST", "/v1/feedback", {"revision_id": 999999, "rating": "helpful"}, "write"),
    ("POST", "/v1/procedures/propose",
     {"title": "wash a cup", "script": "1. wash it", "rationale": "seen twice"}, "propose"),
    *[("POST", f"/v1/procedures/999999/{a}", {"reason": "x", "to_revision_id": 1}, "review")
      for a in ("approve", "reject", "rollback", "pin", "deprecate")],
]  # fmt: skip


def test_every_route_needs_a_key_with_its_scope(svc: Service) -> None:
    right = {"read": svc.reader, "write": svc.writer, "propose": svc.bot, "review": svc.rita}
    wrong = {"read": svc.writer, "write": svc.reader, "propose": svc.reader, "review": svc.bot}
    for method, path, body, scope in ROUTES:
        path = path.format(pid=svc.procedure_id)

        def call(key: str | None, *, p: str = path, m: str = method, b: Any = body) -> int:
            headers = bearer(key) if key else {}
            return svc.http.request(m, p, json=b, headers=headers).status_code

        assert call(None) == 401, path
        assert call("memp_000000000000_" + "x" * 43) == 401, path
        assert call(svc.revoked) == 401, path
        assert call(wrong[scope]) == 403, (path, scope)
        ok = call(right[scope])
        assert ok in (200, 201, 404), (path, ok)  # past the door: 404 = the id is unknown
    r = svc.http.post("/v1/retrieve", json={"task": TASK}, headers={"X-API-Key": svc.reader})
    assert r.status_code == 200
    assert svc.http.get("/healthz").status_code == 200
    assert svc.http.get("/docs").status_code == 200
    assert svc.http.get("/openapi.json").status_code == 200


def test_the_api_docs_work_offline_their_assets_come_from_the_service(svc: Service) -> None:
    """An air-gapped network is where a memory service runs: /docs must not need a CDN."""
    for page in ("/docs", "/redoc"):
        html = svc.http.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets, page
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from another host"
            r = svc.http.get(url)
            assert r.status_code == 200 and len(r.content) > 1000, url


def test_a_401_says_how_to_send_a_key(svc: Service) -> None:
    r = svc.post("/v1/retrieve", None, {"task": TASK})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in r.json()["detail"]


# -- retrieve and read --------------------------------------------------------------------


def test_retrieve_serves_approved_procedures_and_logs_the_agent(svc: Service) -> None:
    r = svc.post("/v1/retrieve", svc.reader, {"task": TASK, "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    (item,) = body["items"]
    assert item["procedure_id"] == svc.procedure_id and item["script"].startswith("1.")
    assert {"revision_id", "title", "task_type", "steps", "score", "success_rate", "uses"} <= set(
        item
    )
    row = svc.store.get(Retrieval, body["retrieval_id"])
    assert row.agent == "reader" and row.results[0]["procedure_id"] == svc.procedure_id


def test_agents_are_never_served_or_shown_unapproved_procedures(svc: Service) -> None:
    r = svc.post("/v1/procedures/propose", svc.bot, {
        "title": "put some spraybottle on toilet quickly", "task_type": "pick_and_place",
        "script": "1. go to the spraybottle\n2. take it\n3. put it on the toilet",
        "rationale": "a shorter way",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    pending = r.json()["procedure_id"]
    assert r.json()["status"] == "pending_review"
    found = svc.post("/v1/retrieve", svc.bot, {"task": "put some spraybottle on toilet quickly",
                                                "k": 50, "policy": "hybrid"}).json()  # fmt: skip
    assert pending not in [i["procedure_id"] for i in found["items"]]
    for policy in ("query", "facts", "random"):
        found = svc.post("/v1/retrieve", svc.bot, {"task": TASK, "k": 50, "policy": policy}).json()
        assert pending not in [i["procedure_id"] for i in found["items"]], policy
    assert svc.get(f"/v1/procedures/{pending}", svc.bot).status_code == 404
    assert svc.get(f"/v1/procedures/{pending}/revisions", svc.bot).status_code == 404
    listed = svc.get("/v1/procedures", svc.bot).json()
    assert [p["id"] for p in listed["items"]] == [svc.procedure_id] and listed["total"] == 1
    assert (
        svc.get("/v1/procedures", svc.bot, params={"status": "pending_review"}).status_code == 403
    )
    # the reviewer's tooling sees it
    assert svc.get(f"/v1/procedures/{pending}", svc.rita).json()["status"] == "pending_review"
    pend = svc.get("/v1/procedures", svc.rita, params={"status": "pending_review"}).json()
    assert [p["id"] for p in pend["items"]] == [pending]


def test_revisions_show_the_lineage(svc: Service) -> None:
    (rev,) = svc.get(f"/v1/procedures/{svc.procedure_id}/revisions", svc.reader).json()
    assert rev["origin"] == "build" and rev["current"] is True
    (tid,) = rev["evidence_trajectory_ids"]
    assert svc.store.get(Trajectory, tid).reporting_agent == "bot"


# -- reports ------------------------------------------------------------------------------


def test_a_repeated_report_is_stored_once(svc: Service) -> None:
    before, steps = count(svc.store, Trajectory), count(svc.store, Step)
    first = svc.post("/v1/trajectories", svc.bot, run(), headers={"Idempotency-Key": "run-7"})
    again = svc.post("/v1/trajectories", svc.bot, run(), headers={"Idempotency-Key": "run-7"})
    field = svc.post("/v1/trajectories", svc.bot, run(idempotency_key="run-7"))
    assert (first.status_code, again.status_code, field.status_code) == (201, 200, 200)
    ids = {r.json()["trajectory_id"] for r in (first, again, field)}
    assert len(ids) == 1 and again.json()["duplicate"] is True
    assert count(svc.store, Trajectory) == before + 1
    assert count(svc.store, Step) == steps + len(STEPS)
    # the same key from another agent is another run
    other = make_key(svc.store, "other", ["runs:write"])
    r = svc.post("/v1/trajectories", other, run(), headers={"Idempotency-Key": "run-7"})
    assert r.status_code == 201 and r.json()["trajectory_id"] not in ids
    clash = svc.post("/v1/trajectories", svc.bot, run(idempotency_key="a"),
                     headers={"Idempotency-Key": "b"})  # fmt: skip
    assert clash.status_code == 422 and "idempotency_key" in clash.json()["detail"]


def test_simultaneous_repeats_of_one_report_store_it_once(svc: Service) -> None:
    before = count(svc.store, Trajectory)
    codes: list[int] = []
    ids: set[int] = set()
    barrier = threading.Barrier(8)

    def send() -> None:
        with httpx.Client(base_url=svc.srv.url, timeout=60) as http:
            barrier.wait()
            r = http.post("/v1/trajectories", json=run(success=False),
                          headers={**bearer(svc.bot), "Idempotency-Key": "same"})  # fmt: skip
            codes.append(r.status_code)
            ids.add(r.json()["trajectory_id"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 7 + [201] and len(ids) == 1
    assert count(svc.store, Trajectory) == before + 1


def test_an_unknown_outcome_stays_unknown_and_counts_nothing(svc: Service) -> None:
    rid = svc.post("/v1/retrieve", svc.bot, {"task": TASK}).json()["retrieval_id"]
    r = svc.post("/v1/trajectories", svc.bot, run(success=None, retrieval_id=rid))
    assert r.status_code == 201 and r.json()["outcome"] == "unknown"
    traj = svc.store.get(Trajectory, r.json()["trajectory_id"])
    assert traj.success is None and traj.source == "api" and traj.reporting_agent == "bot"
    proc = svc.store.get(Procedure, svc.procedure_id)
    assert (proc.use_count, proc.success_count) == (0, 0)
    no_field = svc.post("/v1/trajectories", svc.bot, {"task": TASK, "steps": STEPS})
    assert svc.store.get(Trajectory, no_field.json()["trajectory_id"]).success is None


def test_outcomes_count_once_on_the_revision_the_agents_own_retrieval_served(
    svc: Service,
) -> None:
    found = svc.post("/v1/retrieve", svc.bot, {"task": TASK}).json()
    rid, served = found["retrieval_id"], found["items"][0]["revision_id"]
    r = svc.post("/v1/trajectories", svc.bot, run(success=False, retrieval_id=rid))
    assert r.status_code == 201 and r.json()["update"]["counted"] == 1
    traj = svc.store.get(Trajectory, r.json()["trajectory_id"])
    assert traj.procedure_revision_id == served
    assert svc.store.get(Retrieval, rid).trajectory_id == traj.id
    proc = svc.store.get(Procedure, svc.procedure_id)
    assert (proc.use_count, proc.success_count) == (1, 0)
    again = svc.post("/v1/trajectories", svc.bot, run(success=True, retrieval_id=rid))
    assert again.status_code == 201 and again.json()["update"]["counted"] == 0
    assert "already reported" in again.json()["update"]["note"]
    assert svc.store.get(Procedure, svc.procedure_id).use_count == 1
    # another agent's retrieval is not this agent's to count
    theirs = svc.post("/v1/retrieve", svc.reader, {"task": TASK}).json()["retrieval_id"]
    stolen = svc.post("/v1/trajectories", svc.bot, run(retrieval_id=theirs))
    assert stolen.status_code == 404
    assert svc.post("/v1/trajectories", svc.bot, run(retrieval_id=10**9)).status_code == 404


def test_what_an_update_writes_from_a_report_waits_for_review(svc: Service) -> None:
    r = svc.post("/v1/trajectories", svc.bot, run("put some soapbar in cabinet"))
    assert r.status_code == 201, r.text
    built = r.json()["update"]["built"]
    assert built and "waits for review" in r.json()["update"]["note"]
    rev = svc.store.get(ProcedureRevision, built[0])
    assert svc.store.get(Procedure, rev.procedure_id).status == Status.pending_review
    events = svc.store.audit_events(object_type="procedure", object_id=rev.procedure_id)
    assert {e.actor for e in events} == {"agent:bot"}


def test_an_agents_report_never_takes_an_approved_procedure_out_of_service(
    svc: Service,
) -> None:
    """Before: a second successful run of the same task merged a new revision into the
    approved procedure and set it back to pending_review: agents were served nothing. Then
    (a workaround) such runs were only counted and nothing was learned from them. Now what
    the policy writes is the procedure's proposal while the approved revision is served."""
    current = svc.store.get(Procedure, svc.procedure_id).current_revision_id
    written: list[int] = []
    for success in (True, False, True):
        found = svc.post("/v1/retrieve", svc.bot, {"task": TASK}).json()
        assert [i["procedure_id"] for i in found["items"]] == [svc.procedure_id]
        assert found["items"][0]["revision_id"] == current
        longer = {**run(success=success, retrieval_id=found["retrieval_id"]),
                  "steps": [{"action": "look"}, *STEPS]}  # fmt: skip
        r = svc.post("/v1/trajectories", svc.bot, longer)
        assert r.status_code == 201 and r.json()["update"]["counted"] == 1
        written += r.json()["update"]["built"]
        written += svc.post("/v1/trajectories", svc.bot, run()).json()["update"]["built"]
    assert len(written) == 5  # validation: each success merges, the failure only counts
    proc = svc.store.get(Procedure, svc.procedure_id)
    assert (proc.status, proc.current_revision_id) == (Status.approved, current)
    assert proc.proposed_revision_id == written[-1]
    chain = [svc.store.get(ProcedureRevision, i).parent_revision_id for i in written]
    assert chain == [current, *written[:-1]]  # each proposal chains on the one before
    assert (proc.use_count, proc.success_count) == (3, 2)


def test_a_proposal_from_a_report_is_accepted_through_the_api(svc: Service) -> None:
    r = svc.post("/v1/trajectories", svc.bot, {**run(), "steps": [{"action": "look"}, *STEPS]})
    (proposal,) = r.json()["update"]["built"]
    pid = svc.procedure_id
    ok = svc.post(f"/v1/procedures/{pid}/approve", svc.rita, {"revision_id": proposal})
    assert ok.status_code == 200, ok.text
    assert ok.json()["current_revision_id"] == proposal and ok.json()["status"] == "approved"
    found = svc.post("/v1/retrieve", svc.bot, {"task": TASK}).json()
    assert found["items"][0]["revision_id"] == proposal
    stale = svc.post(f"/v1/procedures/{pid}/approve", svc.rita, {"revision_id": proposal - 1})
    assert stale.status_code == 409


# -- feedback, proposals, review ----------------------------------------------------------


def test_feedback_is_stored_with_the_agent_and_shown_on_the_procedure(svc: Service) -> None:
    rev = svc.get(f"/v1/procedures/{svc.procedure_id}", svc.bot).json()["current_revision_id"]
    tid = svc.post("/v1/trajectories", svc.bot, run(success=None)).json()["trajectory_id"]
    body = {"revision_id": rev, "rating": "harmful", "reason": "broke", "trajectory_id": tid}
    r = svc.post("/v1/feedback", svc.bot, body)
    assert r.status_code == 201, r.text
    row = svc.store.get(Feedback, r.json()["feedback_id"])
    assert (row.actor, row.rating, row.procedure_id) == ("agent:bot", "harmful", svc.procedure_id)
    shown = svc.get(f"/v1/procedures/{svc.procedure_id}", svc.reader).json()
    assert shown["feedback"] == {"harmful": 1}
    assert svc.post("/v1/feedback", svc.bot, {**body, "rating": "meh"}).status_code == 422
    assert svc.post("/v1/feedback", svc.bot, {**body, "revision_id": 10**9}).status_code == 404
    other = make_key(svc.store, "other", ["runs:write"])
    assert svc.post("/v1/feedback", other, body).status_code == 404  # not its run


def test_a_proposal_waits_and_its_agent_can_never_approve_it(svc: Service) -> None:
    (tid,) = svc.get(f"/v1/procedures/{svc.procedure_id}/revisions", svc.reader).json()[0][
        "evidence_trajectory_ids"
    ]
    proposal = {"title": "heat some egg and put it in garbagecan", "task_type": "heat",
                "script": "1. find the egg\n2. heat it in the microwave\n3. put it in the "
                "garbagecan", "rationale": "worked in my last run",
                "source_trajectory_ids": [tid]}  # fmt: skip
    r = svc.post("/v1/procedures/propose", svc.bot, proposal)
    assert r.status_code == 201, r.text
    pid, rev_id = r.json()["procedure_id"], r.json()["revision_id"]
    rev = svc.store.get(ProcedureRevision, rev_id)
    assert (rev.origin, rev.author, rev.evidence_trajectory_ids) == ("proposal", "agent:bot", [tid])
    assert svc.post(f"/v1/procedures/{pid}/approve", svc.bot).status_code == 403
    # a review key under the agent's own name is refused too; another person's is not
    own = make_key(svc.store, "bot", ["review:admin"])
    assert svc.post(f"/v1/procedures/{pid}/approve", own).status_code == 403
    assert svc.store.get(Procedure, pid).status == Status.pending_review
    ok = svc.post(f"/v1/procedures/{pid}/approve", svc.rita, {"comment": "fine"})
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    with svc.store.session() as s:
        ev = s.exec(
            select(AuditEvent).where(AuditEvent.action == "approve", AuditEvent.object_id == pid)
        ).one()
    assert ev.actor.startswith("human:rita (key ")
    found = svc.post("/v1/retrieve", svc.bot, {"task": proposal["title"], "k": 5}).json()
    assert pid in [i["procedure_id"] for i in found["items"]]


def test_a_proposal_never_takes_an_approved_procedure_out_of_service(svc: Service) -> None:
    current = svc.store.get(Procedure, svc.procedure_id).current_revision_id
    r = svc.post("/v1/procedures/propose", svc.bot, {
        "title": TASK, "script": "1. take the spraybottle\n2. put it on the toilet",
        "rationale": "simpler",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["procedure_id"] == svc.procedure_id  # its proposal, not a rival procedure
    assert r.json()["parent_revision_id"] == current
    proc = svc.store.get(Procedure, svc.procedure_id)
    assert (proc.status, proc.current_revision_id) == (Status.approved, current)
    assert proc.proposed_revision_id == r.json()["revision_id"]
    again = svc.post("/v1/procedures/propose", svc.bot, {
        "title": TASK, "script": "1. take it\n2. put it", "rationale": "simpler still",
    })  # fmt: skip
    assert again.json()["procedure_id"] == svc.procedure_id
    assert again.json()["parent_revision_id"] == r.json()["revision_id"]
    found = svc.post("/v1/retrieve", svc.bot, {"task": TASK}).json()
    assert found["items"][0]["revision_id"] == current
    # a review key under the proposing agent's name cannot accept the agent's own proposal
    own = make_key(svc.store, "bot", ["review:admin"])
    proposed = {"revision_id": again.json()["revision_id"]}
    assert svc.post(f"/v1/procedures/{svc.procedure_id}/approve", own, proposed).status_code == 403
    assert svc.store.get(Procedure, svc.procedure_id).current_revision_id == current


def test_proposal_evidence_must_be_the_agents_own_runs(svc: Service) -> None:
    other = make_key(svc.store, "other", ["runs:write", "procedures:propose"])
    (tid,) = svc.get(f"/v1/procedures/{svc.procedure_id}/revisions", svc.reader).json()[0][
        "evidence_trajectory_ids"
    ]
    body = {"title": "cool some apple", "script": "1. cool it", "rationale": "r",
            "source_trajectory_ids": [tid]}  # fmt: skip
    r = svc.post("/v1/procedures/propose", other, body)
    assert r.status_code == 404 and str(tid) in r.json()["detail"]
    bad = svc.post("/v1/procedures/propose", svc.bot, {**body, "script": "just do it"})
    assert bad.status_code == 422 and "script" in bad.json()["detail"]


def test_review_actions_through_the_api_are_audited_as_the_person(svc: Service) -> None:
    pid = svc.procedure_id
    for action, body in [("pin", {}), ("reject", {"reason": "outdated"}),
                         ("approve", {}), ("deprecate", {"reason": "superseded"})]:  # fmt: skip
        r = svc.post(f"/v1/procedures/{pid}/{action}", svc.rita, body)
        assert r.status_code == 200, (action, r.text)
    assert svc.post(f"/v1/procedures/{pid}/reject", svc.rita, {}).status_code == 422
    assert svc.post(f"/v1/procedures/{pid}/frobnicate", svc.rita, {}).status_code == 422
    actors = {e.actor for e in svc.store.audit_events(object_type="procedure", object_id=pid)
              if e.action in ("pin", "reject", "approve", "deprecate")}  # fmt: skip
    assert len(actors) == 2  # os user's approval in the fixture, rita's key for the rest
    assert all(a.startswith("human:") for a in actors)


# -- bad input ----------------------------------------------------------------------------


def test_bad_input_gets_a_clear_status_never_a_traceback(svc: Service) -> None:
    json_headers = {**bearer(svc.bot), "Content-Type": "application/json"}
    raw = svc.http.post(
        "/v1/trajectories", content=b'{"task": "x", "steps": [', headers=json_headers
    )
    assert raw.status_code == 422
    r = svc.post("/v1/trajectories", svc.bot, {"task": 5, "steps": "x"})
    assert r.status_code == 422 and "task" in r.json()["detail"] and "steps" in r.json()["detail"]
    r = svc.post("/v1/trajectories", svc.bot, {"task": "t", "steps": [{"thought": "no action"}]})
    assert r.status_code == 422 and "steps.0.action" in r.json()["detail"]
    assert svc.post("/v1/retrieve", svc.bot, {"task": TASK, "k": 0}).status_code == 422
    assert svc.post("/v1/retrieve", svc.bot, {"task": TASK, "policy": "x"}).status_code == 422
    assert svc.post("/v1/retrieve", svc.bot, {"task": ""}).status_code == 422
    assert svc.get("/v1/procedures/424242", svc.bot).status_code == 404
    assert svc.get("/v1/procedures", svc.bot, params={"limit": 10**6}).status_code == 422
    for r in (raw,):
        assert "Traceback" not in r.text


def test_ids_and_text_no_database_can_store_are_refused_not_crashed(svc: Service) -> None:
    """Before: an id past 64 bits reached the SQLite driver (OverflowError, a 500)."""
    big = 10**20
    for method, path, body in [
        ("GET", f"/v1/procedures/{big}", None),
        ("GET", f"/v1/procedures/{big}/revisions", None),
        ("POST", "/v1/feedback", {"revision_id": big, "rating": "helpful"}),
        ("POST", "/v1/trajectories", {"task": "x", "retrieval_id": big}),
        ("POST", "/v1/procedures/propose",
         {"title": "t", "script": "1. a", "rationale": "r", "source_trajectory_ids": [big]}),
    ]:  # fmt: skip
        r = svc.http.request(method, path, json=body, headers=bearer(svc.bot))
        assert r.status_code == 422, (path, r.status_code, r.text)
    r = svc.get("/v1/procedures", svc.bot, params={"offset": big})
    assert r.status_code == 422
    assert svc.get("/v1/procedures", svc.bot, params={"text": "a\x00b"}).status_code == 422
    json_headers = {**bearer(svc.bot), "Content-Type": "application/json"}
    for raw in (b'{"task": "a\\u0000b"}', b'{"task": "t", "steps": [{"action": "\\ud800"}]}',
                b'{"task": "t", "metadata": {"k": ["\\udfff"]}}'):  # fmt: skip
        r = svc.http.post("/v1/trajectories", content=raw, headers=json_headers)
        assert r.status_code == 422, (raw, r.text)
    assert svc.post(f"/v1/procedures/{big}/approve", svc.rita, {}).status_code == 422


def test_bodies_over_the_limit_are_refused_with_413(svc: Service) -> None:
    before = count(svc.store, Trajectory)
    huge = {"task": TASK, "steps": [{"action": "x" * 1000}] * 6000}
    assert svc.post("/v1/trajectories", svc.bot, huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"task": "t", "steps": ['
        for _ in range(6000):
            yield b'{"action": "' + b"x" * 1000 + b'"},'
        yield b'{"action": "y"}]}'

    r = svc.http.post("/v1/trajectories", content=chunks(),
                      headers={**bearer(svc.bot), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    too_many = {"task": TASK, "steps": [{"action": "a"}] * 10_001}
    assert svc.post("/v1/trajectories", svc.bot, too_many).status_code == 422
    assert count(svc.store, Trajectory) == before


def test_a_locked_database_is_503_with_retry_after(db_url: str, embedder: Embedder) -> None:
    store = Store(db_url, busy_timeout_s=0.1)
    key = make_key(store, "bot", AGENT)
    verify(store, key)  # last_used_at written now: requests below only read the key
    fresh = make_key(store, "reader", ["procedures:read"])  # never used: its stamp is due
    memory = ProceduralMemory(store, settings=Settings(database_url=db_url), embedder=embedder,
                              backend="heuristic")  # fmt: skip
    with live_server(db_url, memory=memory) as srv:
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            r = httpx.post(
                f"{srv.url}/v1/trajectories", json=run(), headers=bearer(key), timeout=60
            )
            # a read is answered: the key's usage stamp waits for a free moment
            read = httpx.get(f"{srv.url}/v1/procedures", headers=bearer(fresh), timeout=60)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] and "locked" in r.json()["detail"]
        assert read.status_code == 200, read.text
        r = httpx.post(f"{srv.url}/v1/trajectories", json=run(), headers=bearer(key), timeout=60)
        assert r.status_code == 201
    with store.session() as s:
        assert len(s.exec(select(Trajectory).where(col(Trajectory.source) == "api")).all()) == 1


# -- concurrency --------------------------------------------------------------------------

TASKS = [TASK, "put some soapbar in cabinet", "heat some egg and put it in garbagecan"]


def test_agents_report_while_a_reviewer_approves_without_errors_and_counts_add_up(
    svc: Service,
) -> None:
    """Six agents retrieve and report (some twice, some with unknown outcomes) while a
    reviewer approves what waits, for a few seconds: no errors, every count exact."""
    agents = [make_key(svc.store, f"agent{i}", AGENT) for i in range(6)]
    stop = threading.Event()
    errors: list[str] = []
    created: list[dict[str, Any]] = []
    approvals, accepted = [0], [0]
    lock = threading.Lock()

    def agent(n: int, key: str) -> None:
        with httpx.Client(base_url=svc.srv.url, timeout=60, headers=bearer(key)) as http:
            i = 0
            while not stop.is_set():
                i += 1
                found = http.post("/v1/retrieve", json={"task": TASKS[(n + i) % 3], "k": 2})
                if found.status_code != 200:
                    errors.append(f"retrieve {found.status_code} {found.text}")
                    continue
                success = (True, False, None)[(n + i) % 3]
                body = run(TASKS[(n + i) % 3], success, retrieval_id=found.json()["retrieval_id"])
                for attempt in range(2 if i % 4 == 0 else 1):  # some reports sent twice
                    r = http.post("/v1/trajectories", json=body,
                                  headers={"Idempotency-Key": f"{n}-{i}"})  # fmt: skip
                    want = 201 if attempt == 0 else 200
                    if r.status_code != want:
                        errors.append(f"report {r.status_code} {r.text}")
                    elif attempt == 0:
                        with lock:
                            created.append(r.json())

    def reviewer() -> None:
        with httpx.Client(base_url=svc.srv.url, timeout=60, headers=bearer(svc.rita)) as http:
            while not stop.is_set():
                page = http.get("/v1/procedures", params={"status": "pending_review"})
                for p in page.json()["items"]:
                    r = http.post(f"/v1/procedures/{p['id']}/approve", json={})
                    if r.status_code != 200:
                        errors.append(f"approve {r.status_code} {r.text}")
                    approvals[0] += 1
                # proposals beside served procedures (read from the queue, as the page does);
                # one superseded by a newer report meanwhile is refused with 409, not lost
                for p in list_procedures(svc.store, with_proposal=True).rows:
                    r = http.post(f"/v1/procedures/{p.id}/approve",
                                  json={"revision_id": p.proposed_revision_id})  # fmt: skip
                    if r.status_code not in (200, 409):
                        errors.append(f"accept {r.status_code} {r.text}")
                    accepted[0] += r.status_code == 200
                stop.wait(0.05)

    before = count(svc.store, Trajectory)
    threads = [threading.Thread(target=agent, args=(n, k)) for n, k in enumerate(agents)]
    threads.append(threading.Thread(target=reviewer))
    for t in threads:
        t.start()
    stop.wait(4)
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(created) >= 12 and approvals[0] >= 1 and accepted[0] >= 1
    ids = [c["trajectory_id"] for c in created]
    assert len(set(ids)) == len(ids) == count(svc.store, Trajectory) - before
    with svc.store.session() as s:
        procs = s.exec(select(Procedure)).all()
        counted = s.exec(
            select(Trajectory).where(col(Trajectory.procedure_revision_id).is_not(None))
        ).all()
    counted_known = [t for t in counted if t.success is not None]
    assert sum(c["update"]["counted"] for c in created) == len(counted_known)
    assert sum(p.use_count for p in procs) == len(counted_known)
    assert sum(p.success_count for p in procs) == sum(1 for t in counted_known if t.success)


# -- the soak: agent processes against `memp serve` -------------------------------

SOAK_S = 15  # per database; the issue asks 30 s: 2 x 15 s keeps the pair near a minute
AGENT_PROCESS = r"""
import json, sys, time, httpx
url, key, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
tasks = ["put some spraybottle on toilet", "put some soapbar in cabinet",
         "heat some egg and put it in garbagecan"]
steps = [{"action": "go to cabinet 1", "observation": "You see a soapbar 1."},
         {"action": "take soapbar 1 from cabinet 1", "observation": "You pick it up."}]
out = {"created": [], "counted": 0, "errors": []}
end = time.monotonic() + seconds
with httpx.Client(base_url=url, timeout=120, headers={"Authorization": "Bearer " + key}) as h:
    i = 0
    while time.monotonic() < end:
        i += 1
        task = tasks[(n + i) % 3]
        r = h.post("/v1/retrieve", json={"task": task, "k": 2})
        if r.status_code != 200:
            out["errors"].append(f"retrieve {r.status_code} {r.text[:200]}")
            continue
        body = {"task": task, "steps": steps, "success": [True, False, None][(n + i) % 3],
                "retrieval_id": r.json()["retrieval_id"], "idempotency_key": f"{n}-{i}"}
        for attempt in range(2 if i % 5 == 0 else 1):
            r = h.post("/v1/trajectories", json=body)
            if r.status_code != (201 if attempt == 0 else 200):
                out["errors"].append(f"report {r.status_code} {r.text[:200]}")
            elif attempt == 0:
                out["created"].append(r.json()["trajectory_id"])
                out["counted"] += r.json()["update"]["counted"]
        if i % 7 == 0:  # something for the reviewer: proposals wait for review
            r = h.post("/v1/procedures/propose", json={"title": f"put {n} pen {i} in drawer",
                       "script": "1. find the pen\n2. put it in the drawer", "rationale": "r"})
            if r.status_code != 201:
                out["errors"].append(f"propose {r.status_code} {r.text[:200]}")
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_eight_agent_processes_and_a_reviewer_soak_memp_serve(
    which: str, request: pytest.FixtureRequest, db_url: str
) -> None:
    import subprocess
    import sys

    from serve_helpers import serve_process

    url = db_url if which == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    keys = [make_key(store, f"agent{i}", AGENT) for i in range(8)]
    rita = make_key(store, "rita", ["review:admin"])
    with serve_process(url) as base, httpx.Client(base_url=base, timeout=120) as http:
        for task in TASKS:  # something approved to serve
            r = http.post("/v1/trajectories", json=run(task), headers=bearer(keys[0]))
            assert r.status_code == 201, r.text
        for p in store.procedures():
            approve(store, int(p.id or 0), actor=os_user())
        before = count(store, Trajectory)
        agents = [
            subprocess.Popen(
                [sys.executable, "-c", AGENT_PROCESS, base, k, str(n), str(SOAK_S)],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for n, k in enumerate(keys)
        ]
        errors: list[str] = []
        approvals = accepted = 0
        while any(a.poll() is None for a in agents):
            page = http.get("/v1/procedures", params={"status": "pending_review"},
                            headers=bearer(rita))  # fmt: skip
            for p in page.json()["items"]:
                r = http.post(f"/v1/procedures/{p['id']}/approve", json={}, headers=bearer(rita))
                errors += [] if r.status_code == 200 else [f"approve {r.status_code} {r.text}"]
                approvals += 1
            for p in list_procedures(store, with_proposal=True).rows:  # beside served ones
                r = http.post(f"/v1/procedures/{p.id}/approve", headers=bearer(rita),
                              json={"revision_id": p.proposed_revision_id})  # fmt: skip
                errors += [] if r.status_code in (200, 409) else [f"accept {r.status_code}"]
                accepted += r.status_code == 200
            time.sleep(0.2)
        results = [json.loads(a.communicate()[0]) for a in agents]
    errors += [e for res in results for e in res["errors"]]
    assert not errors, errors[:5]
    created = [t for res in results for t in res["created"]]
    assert len(created) >= 40 and approvals >= 1 and accepted >= 1
    assert len(set(created)) == len(created) == count(store, Trajectory) - before
    with store.session() as s:
        procs = s.exec(select(Procedure)).all()
        counted = s.exec(
            select(Trajectory)
            .where(col(Trajectory.procedure_revision_id).is_not(None))
            .where(col(Trajectory.success).is_not(None))
        ).all()
    assert sum(res["counted"] for res in results) == len(counted)
    assert sum(p.use_count for p in procs) == len(counted)
    assert sum(p.success_count for p in procs) == sum(1 for t in counted if t.success)
    store.dispose()


def test_memp_serve_prints_the_real_address_and_answers(db_url: str) -> None:
    import re
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "memp_core", "serve", "--port", "0", "--db", db_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m and m.group(1) != "0", line
        base = f"http://127.0.0.1:{m.group(1)}"
        assert httpx.get(f"{base}/healthz", timeout=30).json() == {"status": "ok"}
        assert httpx.post(f"{base}/v1/retrieve", json={"task": TASK}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
