"""The HTTP API's app: who is asking (the pass, its persona) and the routes.

Every request but ``/health`` carries ``Authorization: Bearer <token>``, a pass for one floor;
the dependencies here turn it into the awake session of that floor's persona (after the pass's
token bucket), and every answer names that persona in ``Severance-Persona``. Routes are plain
``def`` functions, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__, validate
from ..awake import AwakeSessions
from ..chat import read_conversation
from ..errors import RateLimitedError
from ..model import from_epoch
from ..passes import Grant, Passes, ReadOnlyPassError
from ..session import Session
from ..store import Store
from .docs import add_docs
from .limits import DEFAULT_BURST, DEFAULT_MAX_BODY_BYTES, DEFAULT_RATE, BodyLimit, TokenBucket
from .problems import add_problem_handlers
from .schemas import (
    AuditOut,
    BatchIn,
    BatchOut,
    ConversationIn,
    ConversationOut,
    EventOut,
    ExtractIn,
    ExtractOut,
    HealthOut,
    HistoryOut,
    Kind,
    MemoryId,
    MemoryIn,
    MemoryOut,
    MemoryPatch,
    NoticesOut,
    PageOut,
    PassOut,
    Problem,
    RecallHit,
    RecallIn,
    RecallOut,
    Tag,
    When,
)

__all__ = ["FLOOR_HEADER", "PERSONA_HEADER", "create_app"]


# -- dependencies ----------------------------------------------------------------------------
@dataclass
class _Server:
    passes: Passes
    sessions: AwakeSessions
    limiter: TokenBucket | None


_bearer = HTTPBearer(
    auto_error=False,
    description="A pass for one floor: `severance pass issue --floor NAME`.",
)


def _server(request: Request) -> _Server:
    return cast(_Server, request.app.state.severance)


def _grant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Grant:
    server = _server(request)
    grant = server.passes.authenticate(credentials.credentials if credentials else None)
    if server.limiter is not None:
        wait = server.limiter.take(grant.pass_id)
        if wait > 0:
            raise RateLimitedError(wait)
    return grant


GrantDep = Annotated[Grant, Depends(_grant)]


def _session(request: Request, response: Response, grant: GrantDep) -> Session:
    session = _server(request).sessions.for_floor(grant.floor, grant.persona_id)
    # Every answer names the persona it read or wrote (a 204 has no body to say it in).
    response.headers[PERSONA_HEADER] = session.persona
    response.headers[FLOOR_HEADER] = grant.floor
    return session


def _writable(request: Request, response: Response, grant: GrantDep) -> Session:
    if grant.read_only:
        raise ReadOnlyPassError("this pass is read-only")
    return _session(request, response, grant)


PERSONA_HEADER = "Severance-Persona"
FLOOR_HEADER = "Severance-Floor"


Awake = Annotated[Session, Depends(_session)]
Writable = Annotated[Session, Depends(_writable)]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # Every authenticated route may also answer 401 (no or bad pass), 422 (bad input), 429
    # (rate limit) and 503 (the server's own storage failed).
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({401, 422, 429, 503, *statuses}):
        out[status] = {"model": Problem, "description": HTTPStatus(status).phrase}
    return out


# -- the app ---------------------------------------------------------------------------------
class _App(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = get_openapi(
            title=self.title,
            version=self.version,
            description=self.description,
            routes=self.routes,
        )
        # FastAPI describes every model as application/json; error bodies are problem+json.
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if int(status) >= 400 and content and "application/json" in content:
                    response["content"] = {"application/problem+json": content["application/json"]}
        self.openapi_schema = schema
        return schema


def create_app(
    store: Store,
    *,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    sessions: AwakeSessions | None = None,
) -> FastAPI:
    """The ASGI app serving ``store``.

    ``rate`` (requests a second per pass; None or 0 for no limit) and ``burst`` configure the
    token buckets; ``max_body_bytes`` limits request bodies. Pass ``sessions`` to share awake
    sessions with another server in the same process (the MCP server).
    """
    app = _App(
        title="Severance",
        version=__version__,
        description=(
            "Memory for AI assistants, with work and home kept apart. Every token is a pass "
            "for one floor, and so one persona: nothing here can reach another persona."
        ),
        openapi_url="/openapi.json",
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: see add_docs
        redoc_url=None,
        # Operation ids are the endpoint functions' names (remember, get_memory, …), not
        # FastAPI's generated ``remember_v1_memories_post``.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.severance = _Server(
        passes=Passes(store),
        sessions=sessions if sessions is not None else AwakeSessions(store),
        limiter=TokenBucket(rate, burst) if rate else None,
    )
    add_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    add_docs(app)
    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    @app.get(
        "/health",
        response_model=HealthOut,
        tags=["server"],
        responses={503: {"model": HealthOut, "description": "The database is unreachable."}},
    )
    def health(request: Request) -> HealthOut | JSONResponse:
        """Whether the server is up and its database answers (503 if not). Needs no pass."""
        if not _server(request).sessions.store.reachable():
            body = HealthOut(status="unavailable", version=__version__)
            return JSONResponse(body.model_dump(), status_code=503)
        return HealthOut(status="ok", version=__version__)

    @app.get("/v1/pass", response_model=PassOut, tags=["server"], responses=_errors())
    def whoami(request: Request, grant: GrantDep) -> PassOut:
        """The pass presented: its floor, persona and limits."""
        store = _server(request).sessions.store
        name = next(p.name for p in store.personas() if p.id == grant.persona_id)
        expires = None if grant.expires_at is None else from_epoch(grant.expires_at)
        return PassOut(
            id=grant.pass_id,
            floor=grant.floor,
            persona=name,
            read_only=grant.read_only,
            expires_at=expires,
        )

    @app.post(
        "/v1/memories",
        response_model=MemoryOut,
        status_code=201,
        tags=["memories"],
        responses={
            200: {"model": MemoryOut, "description": "Already remembered: nothing was written"},
            **_errors(403, 413),
        },
    )
    def remember(body: MemoryIn, session: Writable, response: Response) -> MemoryOut:
        """Remember one memory. It is on disk when this returns.

        If the persona already holds it (same normalised text, kind and tags), the existing
        memory is returned with `duplicate: true` and status 200; nothing is written.
        """
        memory = session.remember_many([body.draft()])[0]
        response.headers["Location"] = f"/v1/memories/{memory.id}"
        if memory.duplicate:
            response.status_code = 200
        return MemoryOut.of(memory)

    @app.post(
        "/v1/memories/batch",
        response_model=BatchOut,
        status_code=201,
        tags=["memories"],
        responses=_errors(403, 413),
    )
    def remember_batch(body: BatchIn, session: Writable) -> BatchOut:
        """Remember up to 1,000 memories; all are validated before any is stored."""
        memories = session.remember_many([m.draft() for m in body.memories])
        return BatchOut(memories=[MemoryOut.of(m) for m in memories])

    @app.post(
        "/v1/conversations",
        response_model=ConversationOut,
        status_code=201,
        tags=["memories"],
        responses=_errors(403, 413),
    )
    def remember_conversation(body: ConversationIn, session: Writable) -> ConversationOut:
        """Remember a conversation (up to 1,000 messages), one `episode` memory per turn.

        A turn without a timestamp takes the previous turn's; all turns share one session id.
        Sending the same conversation (same session id) again stores nothing new.
        """
        conversation = read_conversation(
            [m.model_dump(exclude_none=True) for m in body.messages],
            require_text=False,
            session=body.session,
            at=body.at,
            tags=body.tags,
            metadata=body.metadata,
            source=body.source,
        )
        memories = session.remember_many(conversation.drafts)
        return ConversationOut(
            session=conversation.session,
            memories=[MemoryOut.of(m) for m in memories],
            skipped=conversation.skipped,
        )

    @app.get("/v1/memories", response_model=PageOut, tags=["memories"], responses=_errors())
    def list_memories(
        session: Awake,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        order: Literal["newest", "oldest"] = "newest",
        kind: Annotated[list[Kind] | None, Query(max_length=32, description="Only these.")] = None,
        tag: Annotated[
            list[Tag] | None, Query(max_length=validate.MAX_TAGS, description="All of these.")
        ] = None,
        since: Annotated[When | None, Query(description="Occurred at or after.")] = None,
        until: Annotated[When | None, Query(description="Occurred before.")] = None,
    ) -> PageOut:
        """A page of memories in the order they were learned; pass `next_offset` back.

        Filter with `kind` and `tag` (both repeatable) and `since` / `until` (ISO-8601).
        """
        page = session.memories(
            limit=limit,
            offset=offset,
            newest_first=order == "newest",
            kind=kind,
            tags=tag,
            since=since,
            until=until,
        )
        return PageOut(
            items=[MemoryOut.of(m) for m in page.items],
            total=page.total,
            next_offset=page.next_offset,
        )

    @app.get(
        "/v1/memories/{memory_id}",
        response_model=MemoryOut,
        tags=["memories"],
        responses=_errors(404),
    )
    def get_memory(memory_id: MemoryId, session: Awake) -> MemoryOut:
        """One memory by id."""
        return MemoryOut.of(session.get(memory_id))

    @app.patch(
        "/v1/memories/{memory_id}",
        response_model=MemoryOut,
        tags=["memories"],
        responses=_errors(403, 404, 413),
    )
    def update_memory(memory_id: MemoryId, body: MemoryPatch, session: Writable) -> MemoryOut:
        """Change a memory; the previous version is kept in its history."""
        memory = session.update(
            memory_id,
            body.text,
            kind=body.kind,
            tags=body.tags,
            metadata=body.metadata,
            occurred_at=body.occurred_at,
        )
        return MemoryOut.of(memory)

    @app.delete(
        "/v1/memories/{memory_id}",
        status_code=204,
        response_class=Response,
        tags=["memories"],
        responses=_errors(403, 404),
    )
    def forget(memory_id: MemoryId, session: Writable) -> Response:
        """Delete a memory for good, with its whole history."""
        session.forget(memory_id)
        # A returned Response does not take the headers the dependency set: name them here.
        return Response(status_code=204, headers={PERSONA_HEADER: session.persona})

    @app.get(
        "/v1/memories/{memory_id}/history",
        response_model=HistoryOut,
        tags=["memories"],
        responses=_errors(404),
    )
    def memory_history(memory_id: MemoryId, session: Awake) -> HistoryOut:
        """Every version of a memory, oldest first."""
        return HistoryOut(versions=[MemoryOut.of(m) for m in session.history(memory_id)])

    @app.post("/v1/recall", response_model=RecallOut, tags=["memories"], responses=_errors(413))
    def recall(body: RecallIn, session: Awake) -> RecallOut:
        """The memories that best answer a query (dense and keyword ranks, fused)."""
        results = session.recall(
            body.query,
            body.k,
            kind=body.kinds,
            tags=body.tags,
            since=body.since,
            until=body.until,
            recency=body.recency,
            mode=body.mode,
            min_similarity=body.min_similarity,
            include_superseded=body.include_superseded,
        )
        return RecallOut(results=[RecallHit.of(r) for r in results])

    @app.post(
        "/v1/extract",
        response_model=ExtractOut,
        tags=["memories"],
        responses=_errors(403, 409, 413, 502),
    )
    def extract(body: ExtractIn, session: Writable) -> ExtractOut:
        """Turn a conversation into facts with the persona's own extractor, written in one
        transaction; a failure of the extractor (502), a persona without one (409) or a memory
        it revises changed by another writer meanwhile (409) changes nothing."""
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        conversation = read_conversation(messages, session=body.session, at=body.at)
        result = session.extract([conversation], keep_turns=body.keep_turns)
        return ExtractOut(
            added=[MemoryOut.of(m) for m in result.added],
            updated=[MemoryOut.of(m) for m in result.updated],
            superseded=[MemoryOut.of(m) for m in result.superseded],
            episodes=[m.id for m in result.episodes],
            cost=result.cost.to_dict(),
        )

    @app.get("/v1/notices", response_model=NoticesOut, tags=["persona"], responses=_errors())
    def notices(session: Awake) -> NoticesOut:
        """Overrides and reintegrations that touched this persona since it last woke normally."""
        return NoticesOut(notices=[EventOut.of(n) for n in session.notices()])

    @app.get("/v1/audit", response_model=AuditOut, tags=["persona"], responses=_errors())
    def audit(session: Awake) -> AuditOut:
        """This persona's own audit entries (events and counts, never content)."""
        return AuditOut(entries=[EventOut.of(e) for e in session.audit()])
