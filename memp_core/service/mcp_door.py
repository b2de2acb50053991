"""MCP: the agents' door as Model Context Protocol tools, at ``/mcp`` and over stdio.

Both transports serve one tool set (:func:`build_server`) that calls
:class:`~memp_core.agents.operations.AgentDoor` with the caller's
:class:`~memp_core.agents.keys.Identity`, so MCP applies exactly the rules REST does:
scopes, approved-only serving, idempotent reports, updates that wait for review. There
is deliberately no review tool (approve, reject, roll back, pin, deprecate): whatever a
key's scopes, an agent never reaches the review gate through MCP.

Over streamable HTTP every request carries its key (``Authorization: Bearer KEY`` or
``X-API-Key``); :class:`KeyedEndpoint` verifies it before the MCP SDK sees the request
(none, unknown or revoked: HTTP 401) and hands the Identity to the tools in the ASGI
scope. The server is stateless (no MCP session between requests): a key is checked on
every request, a revoked key stops working at once, and nothing is kept per client.
Over stdio (``memp mcp``) the identity comes from one key, verified again on every call.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import Field, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from memp_core.agents.keys import Identity
from memp_core.agents.operations import AgentDoor
from memp_core.agents.schemas import (
    FeedbackIn,
    FeedbackOut,
    ProcedureOut,
    ProcedurePage,
    ProposalIn,
    ProposalOut,
    ReportResult,
    RetrieveRequest,
    RetrieveResponse,
    RevisionOut,
    StepIn,
    TrajectoryReport,
)
from memp_core.errors import AuthenticationError, MempError, StoreError
from memp_core.service.auth import raw_key

MCP_PATH = "/mcp"
# The service's BodyLimit (memp_core.service.app) caps every body, /mcp included; the SDK's
# own cap (4 MiB by default) sits above it so MCP accepts any report REST accepts.
SDK_BODY_CAP = 64 * 1024 * 1024
RETRY_AFTER = "2"  # seconds, as the REST routes say it
IDENTITY_KEY = "memp.identity"  # where KeyedEndpoint leaves the verified Identity in the scope
RESOURCE_TEMPLATE = "procedure://{procedure_id}"
INSTRUCTIONS = (
    "Memp serves procedures: short, reviewed, step-by-step instructions distilled from earlier "
    "agents' runs. Before a multi-step task, call retrieve_procedures with the task; follow "
    "the best match if it fits. When the task ends, call report_run with your steps and "
    "whether it succeeded, passing the retrieval_id you were given, so the procedures you "
    "used are credited or blamed. Use give_feedback to rate a procedure, and "
    "propose_procedure to suggest a new one: people review every proposal before any agent "
    "is served it."
)

IdentityOf = Callable[[Context], Identity]
"""How the tools learn who calls: from the HTTP request's scope, or stdio's one key."""

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

PolicyName = Literal["query", "facts", "hybrid", "random"]
RatingName = Literal["helpful", "not_helpful", "harmful"]


class AgentTools:
    """The MCP tools of one AgentDoor; each resolves the caller, then calls the door."""

    def __init__(self, door: AgentDoor, identity_of: IdentityOf) -> None:
        self.door = door
        self.identity_of = identity_of

    def retrieve_procedures(
        self,
        task: Annotated[str, Field(description="The task you are about to do, in plain words")],
        ctx: Context,
        k: Annotated[int, Field(description="How many procedures at most (1-50)")] = 3,
        policy: Annotated[
            PolicyName,
            Field(
                description="How to match: 'query' (meaning of the task text), 'facts' "
                "(task type, objects, places), 'hybrid' (both), 'random' (a baseline)"
            ),
        ] = "query",
        threshold: Annotated[
            float | None, Field(description="Drop matches scoring below this (query policy)")
        ] = None,
    ) -> RetrieveResponse:
        """Find reviewed procedures for a task before you start it.

        Call this once at the start of a multi-step task. Returns a retrieval_id and up to k
        approved procedures, best first, each with its script (numbered steps), example
        steps when it has them, a similarity score and its past success rate. Keep the
        retrieval_id and pass it to report_run when the task ends. An empty list means
        memory has nothing that fits: proceed on your own.
        """
        request = _parse(RetrieveRequest, task=task, k=k, policy=policy, threshold=threshold)
        return self._as_caller(ctx, lambda who: self.door.retrieve(who, request))

    def get_procedure(
        self,
        procedure_id: Annotated[int, Field(description="The procedure_id from a retrieval")],
        ctx: Context,
    ) -> ProcedureOut:
        """Read one approved procedure in full: title, task type, script, steps, stats.

        Use it to re-read a procedure you were given, or one found with list_procedures.
        """
        return self._as_caller(ctx, lambda who: self.door.get_procedure(who, procedure_id))

    def list_procedures(
        self,
        ctx: Context,
        task_type: Annotated[
            str | None, Field(description="Only this task type (e.g. 'heat', 'clean')")
        ] = None,
        text: Annotated[
            str | None, Field(description="Only titles or scripts with this text")
        ] = None,
        status: Annotated[
            str | None, Field(description="Status filter; agents are served 'approved' only")
        ] = None,
        offset: Annotated[int, Field(ge=0, description="Skip this many (paging)")] = 0,
        limit: Annotated[int, Field(ge=1, le=200, description="Page size")] = 20,
    ) -> ProcedurePage:
        """Browse the approved procedures (total count plus one page), newest first.

        For finding a procedure by topic prefer retrieve_procedures, which ranks by
        meaning; use this to page through what memory holds.
        """
        filters = {"status": status, "task_type": task_type, "text": text}
        return self._as_caller(
            ctx, lambda who: self.door.list_procedures(who, offset=offset, limit=limit, **filters)
        )

    def get_procedure_history(
        self,
        procedure_id: Annotated[int, Field(description="The procedure whose revisions to list")],
        ctx: Context,
    ) -> list[RevisionOut]:
        """The revisions of one procedure, oldest first: how each came about (origin,
        author, rationale) and the runs it was learned from (evidence trajectory ids).

        Use it to judge how much to trust a procedure or before proposing a change to it.
        """
        return self._as_caller(ctx, lambda who: self.door.revisions(who, procedure_id))

    def report_run(
        self,
        task: Annotated[str, Field(description="The task, as you retrieved it")],
        steps: Annotated[
            list[StepIn],
            Field(description="What you did, in order: action, observation, thought, tool"),
        ],
        success: Annotated[
            bool | None,
            Field(description="true / false if you know whether the task succeeded; null if not"),
        ],
        ctx: Context,
        retrieval_id: Annotated[
            int | None, Field(description="The retrieval_id retrieve_procedures gave you")
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Field(description="Any unique string for this run: a retried report is stored once"),
        ] = None,
        agent_model: Annotated[str | None, Field(description="Your model name")] = None,
        tokens: Annotated[int | None, Field(description="Tokens the run used")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Anything else worth keeping")
        ] = None,
    ) -> ReportResult:
        """Report a finished run so memory learns from it. Call once when a task ends.

        Returns the trajectory_id, whether this was a duplicate of an earlier report with
        the same idempotency_key (then nothing new was stored), the outcome recorded and a
        summary of the memory update. Never guess success: pass null if you do not know.
        What memory learns from your run waits for a person's review before anyone is
        served it.
        """
        report = _parse(
            TrajectoryReport, task=task, steps=steps, success=success,
            retrieval_id=retrieval_id, idempotency_key=idempotency_key,
            agent_model=agent_model, tokens=tokens, metadata=metadata,
        )  # fmt: skip
        return self._as_caller(ctx, lambda who: self.door.report(who, report))

    def give_feedback(
        self,
        revision_id: Annotated[int, Field(description="The revision_id you were served")],
        rating: Annotated[RatingName, Field(description="helpful, not_helpful or harmful")],
        ctx: Context,
        reason: Annotated[str | None, Field(description="Why, in a sentence")] = None,
        trajectory_id: Annotated[
            int | None, Field(description="The report_run trajectory_id it is about")
        ] = None,
    ) -> FeedbackOut:
        """Rate a procedure revision you followed. Reviewers see ratings beside its stats.

        Say 'harmful' when following it led you wrong, with the reason.
        """
        feedback = _parse(
            FeedbackIn, revision_id=revision_id, rating=rating, reason=reason,
            trajectory_id=trajectory_id,
        )  # fmt: skip
        return self._as_caller(ctx, lambda who: self.door.feedback(who, feedback))

    def propose_procedure(
        self,
        title: Annotated[str, Field(description="A short name, e.g. 'Heat an object'")],
        script: Annotated[str, Field(description="Numbered, general steps (one per line)")],
        source_trajectory_ids: Annotated[
            list[int], Field(description="trajectory_ids of reported runs it is learned from")
        ],
        rationale: Annotated[str, Field(description="Why it works, for the reviewer")],
        ctx: Context,
        task_type: Annotated[str | None, Field(description="The task type it is for")] = None,
    ) -> ProposalOut:
        """Propose a new procedure (or a revision of a close existing one) for review.

        It is stored as pending_review: no agent is served it until a person approves it.
        Returns its procedure_id, revision_id and status.
        """
        proposal = _parse(
            ProposalIn, title=title, script=script, source_trajectory_ids=source_trajectory_ids,
            rationale=rationale, task_type=task_type,
        )  # fmt: skip
        return self._as_caller(ctx, lambda who: self.door.propose(who, proposal))

    def read_procedure(self, procedure_id: str, ctx: Context) -> str:
        """An approved procedure as JSON (title, task type, script, steps, stats)."""
        if not procedure_id.isdigit():
            raise ResourceError(f"not a procedure id: {procedure_id!r}")
        try:
            who = self.identity_of(ctx)
            return self.door.get_procedure(who, int(procedure_id)).model_dump_json(indent=2)
        except MempError as exc:
            raise ResourceError(str(exc)) from exc

    def _as_caller(self, ctx: Context, operation: Callable[[Identity], Any]) -> Any:
        """Run a door operation as the caller; its refusals (no key, scope, not found,
        conflict, locked database ...) become tool errors the model can read and act on.
        Anything else is a crash: the SDK logs it and tells the client only its tool name."""
        try:
            return operation(self.identity_of(ctx))
        except ValidationError as exc:
            raise ToolError(_fields_message(exc)) from exc
        except MempError as exc:
            raise ToolError(str(exc)) from exc

    def register(self, server: MCPServer) -> None:
        reads = (self.retrieve_procedures, self.get_procedure, self.list_procedures,
                 self.get_procedure_history)  # fmt: skip
        writes = (self.report_run, self.give_feedback, self.propose_procedure)
        for fn in reads:
            server.add_tool(fn, annotations=_READ, structured_output=True)
        for fn in writes:
            server.add_tool(fn, annotations=_WRITE, structured_output=True)
        server.resource(
            RESOURCE_TEMPLATE,
            name="procedure",
            description="An approved procedure by id, as JSON",
            mime_type="application/json",
        )(self.read_procedure)


def build_server(door: AgentDoor, identity_of: IdentityOf) -> MCPServer:
    """The MCP server of the agents' door: tools and the procedure resource, no review tool."""
    server: MCPServer = MCPServer(
        "memp", title="Memp Studio", version=_version(), instructions=INSTRUCTIONS,
        log_level="WARNING",  # the SDK configures the root logger: keep it at its default level
    )  # fmt: skip
    AgentTools(door, identity_of).register(server)
    return server


def _version() -> str:
    try:
        return importlib.metadata.version("memp-studio")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _parse(model: type[Any], **fields: Any) -> Any:
    """Build a door request model; an invalid field is the caller's to fix: a tool error."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise ToolError(_fields_message(exc)) from exc


def _fields_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}" for err in exc.errors()
    )


# -- streamable HTTP at /mcp -------------------------------------------------------------


def identity_from_scope(ctx: Context) -> Identity:
    """The Identity KeyedEndpoint verified for this HTTP request."""
    request = ctx.request_context.request
    identity = getattr(request, "scope", {}).get(IDENTITY_KEY) if request is not None else None
    if not isinstance(identity, Identity):  # only reachable if the endpoint was bypassed
        raise AuthenticationError("no verified API key on this request")
    return identity


class KeyedEndpoint:
    """ASGI endpoint of ``/mcp``: verify the key, then hand the request to the MCP SDK.

    A request without a valid key is answered 401 here, before any MCP parsing, the way
    the REST routes answer it.
    """

    def __init__(self, door: AgentDoor, manager: StreamableHTTPSessionManager) -> None:
        self.door = door
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = raw_key(Headers(scope=scope))
        try:
            # verify reads (and now and then writes last_used_at): off the event loop
            identity = await anyio.to_thread.run_sync(self.door.verify, raw)
        except AuthenticationError as exc:
            reply = JSONResponse(
                {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await reply(scope, receive, send)
            return
        except StoreError as exc:  # a locked or unreachable database: try again shortly
            reply = JSONResponse(
                {"detail": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER}
            )
            await reply(scope, receive, send)
            return
        await self.manager.handle_request({**scope, IDENTITY_KEY: identity}, receive, send)


def session_manager(server: MCPServer) -> StreamableHTTPSessionManager:
    """The SDK's streamable HTTP manager for ``server``: stateless, plain JSON answers.

    DNS-rebinding protection (a Host/Origin allow-list) is off: it guards servers that
    trust whoever reaches them, while every request here must carry an API key a web page
    cannot read, and ``memp serve`` may be bound to any host name.
    """
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        max_request_body_size=SDK_BODY_CAP,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server.session_manager


@asynccontextmanager
async def attach(app: FastAPI, door: AgentDoor) -> AsyncIterator[None]:
    """Mount the MCP endpoint on ``app`` and run its session manager while the app runs."""
    manager = session_manager(build_server(door, identity_from_scope))
    route = Route(MCP_PATH, endpoint=KeyedEndpoint(door, manager), name="mcp")
    app.router.routes.append(route)
    try:
        async with manager.run():
            yield
    finally:
        app.router.routes.remove(route)


# -- stdio (`memp mcp`) ---------------------------------------------------------------------


def stdio_identity(door: AgentDoor, key: str) -> IdentityOf:
    """The identity of stdio's one key, verified again on each call: a key revoked while a
    desktop client keeps ``memp mcp`` running stops working at its next call."""

    def identity_of(_ctx: Context) -> Identity:
        return door.verify(key)

    return identity_of


def serve_stdio(door: AgentDoor, key: str) -> None:
    """Serve MCP on stdin/stdout for the agent of ``key`` until the client closes stdin.

    While serving, the SDK points file descriptor 1 at stderr, so stray output of any
    library cannot corrupt the protocol stream.
    """
    server = build_server(door, stdio_identity(door, key))
    anyio.run(server.run_stdio_async)
