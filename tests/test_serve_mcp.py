"""MCP with the official `mcp` client: streamable HTTP against uvicorn on 127.0.0.1, and
stdio against `memp mcp` started as a subprocess, as desktop clients start it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from household_runs import add_run
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent, TextResourceContents
from serve_helpers import running
from sqlmodel import func, select

from memp_core.actor import Actor
from memp_core.agents.keys import create_key, revoke_key
from memp_core.embeddings import Embedder
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, Status, Step, Trajectory
from memp_core.service.app import create_app
from memp_core.store import Store

ADMIN = Actor("rita", "admin")
AGENT_TOOLS = {
    "retrieve_procedures", "get_procedure", "list_procedures", "get_procedure_history",
    "report_run", "give_feedback", "propose_procedure",
}  # fmt: skip
WRITER = ["procedures:read", "runs:write", "procedures:propose"]
REVIEW_WORDS = ("approve", "reject", "rollback", "roll_back", "pin", "deprecate", "review")
APPROVED_TASK = "put some spraybottle on toilet"
# Reports are of another task: a successful run of the approved task itself may re-distil
# the approved script, which sends the procedure back to review (see the report's notes).
REPORTED_TASK = "put some soapbar in cabinet"
PENDING_TASK = "heat some egg and put it in microwave"
MEMP = Path(sys.executable).with_name("memp")  # the venv's console script, as clients run it


def _steps(*pairs: tuple[str, str]) -> list[Step]:
    return [Step(index=i, action=a, observation=o) for i, (a, o) in enumerate(pairs)]


@dataclass
class Service:
    url: str
    store: Store
    db_url: str
    approved_id: int
    pending_id: int
    keys: dict[str, str]  # writer, reader, reviewer, revoked


def _seed(store: Store, embedder: Embedder) -> tuple[int, int]:
    """One approved procedure (put) and one pending (heat), built from real runs."""
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    put = add_run(store, APPROVED_TASK, _steps(
        ("go to cabinet 1", "On the cabinet 1, you see a spraybottle 1."),
        ("take spraybottle 1 from cabinet 1", "You pick up the spraybottle 1."),
        ("go to toilet 1", "On the toilet 1, you see nothing."),
        ("put spraybottle 1 in/on toilet 1", "You put the spraybottle 1 in/on the toilet 1."),
    ), task_type="put")  # fmt: skip
    heat = add_run(store, PENDING_TASK, _steps(
        ("go to fridge 1", "The fridge 1 is closed."), ("open fridge 1", "You see an egg 1."),
        ("take egg 1 from fridge 1", "You pick up the egg 1."),
        ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
    ), task_type="heat")  # fmt: skip
    (approved,) = mem.build([put], status=Status.approved)
    (pending,) = mem.build([heat], status=Status.pending_review)
    return approved.procedure_id, pending.procedure_id


def _keys(store: Store) -> dict[str, str]:
    def key(agent: str, *scopes: str) -> str:
        return create_key(store, agent=agent, scopes=scopes, actor=ADMIN).key

    keys = {
        "writer": key("bot", *WRITER),
        "reader": key("reader", "procedures:read"),
        "reviewer": key("rita-tools", "procedures:read", "review:admin"),
        "revoked": key("gone", "procedures:read"),
    }
    gone = next(k for k in _key_ids(store) if k[1] == "gone")[0]
    revoke_key(store, gone, actor=ADMIN)
    return keys


def _key_ids(store: Store) -> list[tuple[int, str]]:
    from memp_core.agents.keys import list_keys

    return [(k.id, k.agent) for k in list_keys(store)]


@pytest.fixture(scope="module", name="service")
def service_fixture(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[Service]:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('mcp') / 'memp.db'}"
    store = Store(db_url)
    approved_id, pending_id = _seed(store, embedder)
    keys = _keys(store)
    memory = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    with running(create_app(memory=memory)) as base:
        yield Service(f"{base}/mcp", store, db_url, approved_id, pending_id, keys)
    store.dispose()


@asynccontextmanager
async def http_client(url: str, key: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    """The official client over streamable HTTP, sending the key as the checks do."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        transport = streamable_http_client(url, http_client=http)
        yield await stack.enter_async_context(Client(transport, mode=mode))


def _data(result: CallToolResult) -> Any:
    assert not result.is_error, _text(result)
    return result.structured_content


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def _trajectories(store: Store) -> int:
    with store.session() as s:
        return int(s.exec(select(func.count()).select_from(Trajectory)).one())


def _report(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "task": REPORTED_TASK, "success": True, "idempotency_key": key,
        "steps": [{"action": "go to countertop 1", "observation": "You see a soapbar 1."},
                  {"action": "take soapbar 1 from countertop 1", "observation": "Taken."},
                  {"action": "put soapbar 1 in/on cabinet 1", "observation": "Done."}],
        **extra,
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # legacy: the 2025 initialize handshake
def test_agents_see_their_tools_and_no_review_tool_even_with_a_review_key(
    service: Service, mode: str
) -> None:
    async def names(key: str) -> set[str]:
        async with http_client(service.url, key, mode) as client:
            found = {t.name for t in (await client.list_tools()).tools}
            assert not (await client.call_tool("list_procedures", {})).is_error
            return found

    for who in ("writer", "reviewer"):
        got = anyio.run(names, service.keys[who])
        assert got == AGENT_TOOLS
        assert not [n for n in got if any(w in n for w in REVIEW_WORDS)]


def test_tool_descriptions_say_when_to_call_and_what_comes_back(service: Service) -> None:
    async def main() -> dict[str, Any]:
        async with http_client(service.url, service.keys["reader"]) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    tools = anyio.run(main)
    retrieve = tools["retrieve_procedures"]
    assert "retrieval_id" in (retrieve.description or "")
    assert retrieve.input_schema["required"] == ["task"]
    assert retrieve.output_schema is not None
    report = tools["report_run"]
    assert set(report.input_schema["required"]) == {"task", "steps", "success"}
    assert tools["list_procedures"].annotations.read_only_hint is True
    assert tools["report_run"].annotations.read_only_hint is False


def test_retrieve_procedures_serves_approved_procedures_only(service: Service) -> None:
    async def main() -> list[dict[str, Any]]:
        async with http_client(service.url, service.keys["reader"]) as client:
            out = []
            for task in (APPROVED_TASK, PENDING_TASK):
                res = await client.call_tool("retrieve_procedures", {"task": task, "k": 50})
                out.append(_data(res))
            return out

    for answer in anyio.run(main):
        ids = {item["procedure_id"] for item in answer["items"]}
        assert ids == {service.approved_id}  # the pending heat procedure is never served
        assert isinstance(answer["retrieval_id"], int)


def test_report_run_stores_a_run_once_per_idempotency_key(service: Service) -> None:
    async def main() -> list[dict[str, Any]]:
        async with http_client(service.url, service.keys["writer"]) as client:
            got = await client.call_tool("retrieve_procedures", {"task": APPROVED_TASK})
            rid = _data(got)["retrieval_id"]
            args = _report("mcp-once", retrieval_id=rid)
            return [_data(await client.call_tool("report_run", args)) for _ in range(2)]

    before = _trajectories(service.store)
    first, again = anyio.run(main)
    assert _trajectories(service.store) == before + 1
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["trajectory_id"] == first["trajectory_id"]
    with service.store.session() as s:
        row = s.get(Trajectory, first["trajectory_id"])
        assert row is not None and row.reporting_agent == "bot" and row.success is True
        assert s.get(Procedure, service.pending_id).status == Status.pending_review.value


def test_a_read_only_key_calling_report_run_gets_a_tool_error_naming_the_scope(
    service: Service,
) -> None:
    async def main() -> CallToolResult:
        async with http_client(service.url, service.keys["reader"]) as client:
            return await client.call_tool("report_run", _report("reader-try"))

    before = _trajectories(service.store)
    result = anyio.run(main)
    assert result.is_error and "runs:write" in _text(result)
    assert _trajectories(service.store) == before


def test_no_unknown_or_revoked_key_is_refused_401_before_mcp(service: Service) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    wrong = "memp_0123456789ab_" + "x" * 43
    refused = ({}, {"Authorization": f"Bearer {wrong}"}, {"X-API-Key": service.keys["revoked"]},
               {"Authorization": "Basic abc"})  # fmt: skip
    for headers in refused:
        reply = httpx.post(service.url, json=hello, headers={
            "Accept": "application/json, text/event-stream", **headers})  # fmt: skip
        assert reply.status_code == 401, headers
        assert reply.headers["www-authenticate"] == "Bearer"
        assert set(reply.json()) == {"detail"}

    async def official() -> None:
        async with http_client(service.url, None) as client:
            await client.list_tools()

    with pytest.raises(BaseExceptionGroup) as refused_too:  # the official client gives up
        anyio.run(official)
    assert refused_too.group_contains(MCPError, match="error response")


def test_x_api_key_header_works_like_bearer(service: Service) -> None:
    async def main() -> set[str]:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                create_mcp_http_client(headers={"X-API-Key": service.keys["reader"]})
            )
            client = await stack.enter_async_context(
                Client(streamable_http_client(service.url, http_client=http))
            )
            return {t.name for t in (await client.list_tools()).tools}

    assert anyio.run(main) == AGENT_TOOLS


def test_procedure_resource_reads_approved_procedures_only(service: Service) -> None:
    async def main() -> tuple[Any, Any, list[str]]:
        async with http_client(service.url, service.keys["reader"]) as client:
            templates = (await client.list_resource_templates()).resource_templates
            ok = await client.read_resource(f"procedure://{service.approved_id}")
            try:
                hidden: Any = await client.read_resource(f"procedure://{service.pending_id}")
            except Exception as exc:  # the SDK raises the server's JSON-RPC error
                hidden = exc
            return ok, hidden, [t.uri_template for t in templates]

    ok, hidden, templates = anyio.run(main)
    assert templates == ["procedure://{procedure_id}"]
    (content,) = ok.contents
    assert isinstance(content, TextResourceContents)
    body = json.loads(content.text)
    assert body["id"] == service.approved_id and body["status"] == "approved"
    assert isinstance(hidden, Exception), "a pending procedure was readable as a resource"


def test_feedback_and_proposals_go_through_the_door_and_wait_for_review(
    service: Service,
) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with http_client(service.url, service.keys["writer"]) as client:
            got = _data(await client.call_tool("retrieve_procedures", {"task": APPROVED_TASK}))
            item = got["items"][0]
            run = _data(await client.call_tool("report_run", _report("mcp-fb")))
            fb = _data(await client.call_tool("give_feedback", {
                "revision_id": item["revision_id"], "rating": "helpful",
                "trajectory_id": run["trajectory_id"], "reason": "it worked"}))  # fmt: skip
            prop = _data(await client.call_tool("propose_procedure", {
                "title": "Clean a mug", "task_type": "clean",
                "script": "1. Find the mug.\n2. Clean it in the sinkbasin.\n3. Put it away.",
                "source_trajectory_ids": [run["trajectory_id"]],
                "rationale": "three steps worked"}))  # fmt: skip
            return item, fb, prop

    item, fb, prop = anyio.run(main)
    assert fb["revision_id"] == item["revision_id"] and fb["rating"] == "helpful"
    assert fb["actor"] == "agent:bot"
    assert prop["status"] == Status.pending_review.value
    with service.store.session() as s:
        assert s.get(Procedure, prop["procedure_id"]).status == Status.pending_review.value


def test_bad_arguments_and_unknown_ids_are_tool_errors_the_model_can_read(
    service: Service,
) -> None:
    async def main() -> list[CallToolResult]:
        async with http_client(service.url, service.keys["writer"]) as client:
            return [
                await client.call_tool("retrieve_procedures", {"task": "x", "k": 500}),
                await client.call_tool("get_procedure", {"procedure_id": 999_999}),
                await client.call_tool("get_procedure", {"procedure_id": service.pending_id}),
                await client.call_tool("report_run", {"task": "t", "steps": [{}], "success": None}),
            ]

    too_many, unknown, pending, no_action = anyio.run(main)
    assert all(r.is_error for r in (too_many, unknown, pending, no_action))
    assert "k" in _text(too_many)
    assert "999999" in _text(unknown)
    assert "action" in _text(no_action)


def test_a_key_revoked_while_its_client_is_connected_is_refused_at_the_next_request(
    service: Service,
) -> None:
    late = create_key(service.store, agent="late", scopes=["procedures:read"], actor=ADMIN)

    async def main() -> int:
        async with http_client(service.url, late.key) as client:
            served = len((await client.list_tools()).tools)
            revoke_key(service.store, late.id, actor=ADMIN)
            with pytest.raises(MCPError):
                await client.call_tool("list_procedures", {})
            return served

    assert anyio.run(main) == len(AGENT_TOOLS)


def test_eight_concurrent_clients_retrieve_and_report_with_exact_counts(service: Service) -> None:
    """Each client reports 3 runs of its own, then all of them race on one shared key."""

    async def agent(n: int, results: dict[int, list[dict[str, Any]]]) -> None:
        mine = results.setdefault(n, [])
        async with http_client(service.url, service.keys["writer"]) as client:
            for i in range(3):
                found = _data(
                    await client.call_tool("retrieve_procedures", {"task": APPROVED_TASK})
                )
                args = _report(f"race-{n}-{i}", retrieval_id=found["retrieval_id"])
                mine.append(_data(await client.call_tool("report_run", args)))
            mine.append(_data(await client.call_tool("report_run", _report("race-shared"))))

    async def main() -> dict[int, list[dict[str, Any]]]:
        results: dict[int, list[dict[str, Any]]] = {}
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(agent, n, results)
        return results

    before = _trajectories(service.store)
    results = anyio.run(main)
    own = [r for runs in results.values() for r in runs[:3]]
    shared = [runs[3] for runs in results.values()]
    assert _trajectories(service.store) == before + 8 * 3 + 1
    assert len({r["trajectory_id"] for r in own}) == 24 and not any(r["duplicate"] for r in own)
    assert len({r["trajectory_id"] for r in shared}) == 1
    assert sum(not r["duplicate"] for r in shared) == 1


# -- stdio: `memp mcp` as a subprocess ------------------------------------------------------


def _stdio_env(service: Service, key: str | None) -> dict[str, str]:
    env = {**get_default_environment(), "MEMP_DATABASE_URL": service.db_url,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    for name in ("HOME", "MEMP_CACHE_DIR", "XDG_CACHE_HOME"):
        if name in os.environ:
            env[name] = os.environ[name]  # where the packaged model was extracted
    if key is not None:
        env["MEMP_API_KEY"] = key
    return env


def test_memp_mcp_over_stdio_serves_the_keys_agent_until_its_key_is_revoked(
    service: Service,
) -> None:
    desk = create_key(service.store, agent="desk", scopes=WRITER, actor=ADMIN)
    params = StdioServerParameters(
        command=str(MEMP), args=["mcp"], env=_stdio_env(service, desk.key)
    )

    async def main() -> tuple[set[str], list[dict[str, Any]], CallToolResult]:
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            got = [
                _data(await client.call_tool("retrieve_procedures", {"task": PENDING_TASK})),
                _data(await client.call_tool("report_run", _report("stdio-1"))),
                _data(await client.call_tool("report_run", _report("stdio-1"))),
            ]
            revoke_key(service.store, desk.id, actor=ADMIN)
            return names, got, await client.call_tool("list_procedures", {})

    before = _trajectories(service.store)
    names, (found, run, again), after_revoke = anyio.run(main)
    assert names == AGENT_TOOLS
    assert {i["procedure_id"] for i in found["items"]} == {service.approved_id}
    assert again["trajectory_id"] == run["trajectory_id"] and again["duplicate"] is True
    assert _trajectories(service.store) == before + 1
    with service.store.session() as s:
        assert s.get(Trajectory, run["trajectory_id"]).reporting_agent == "desk"
    assert after_revoke.is_error and "revoked" in _text(after_revoke)


@pytest.mark.parametrize("which", [None, "revoked", "bogus"])
def test_memp_mcp_refuses_to_start_without_a_valid_key_in_one_line(
    service: Service, which: str | None
) -> None:
    key = {"revoked": service.keys.get("revoked"), "bogus": "memp_nope", None: None}[which]
    out = subprocess.run(
        [str(MEMP), "mcp"], env=_stdio_env(service, key), input="", capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout == ""  # stdout is the protocol: nothing but MCP ever goes there
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert ("MEMP_API_KEY" if which is None else "key") in lines[0]
