"""The HTTP API: FastAPI over the public API, one pass per persona.

Every request but ``/health`` carries ``Authorization: Bearer <token>``. The token is a pass
(:mod:`severance.passes`) for exactly one floor, and that floor alone decides the persona. No
route takes a persona, a floor or a store as an argument, so a pass for ``office`` has no way to
even *name* ``home``: a memory id of another persona is answered exactly like an id that never
existed (same status, same body shape, same words).

``create_app(store)`` returns the ASGI app; ``severance serve --http HOST:PORT`` runs it under
uvicorn. The app keeps one awake session per persona (:class:`~severance.awake.AwakeSessions`),
so indexes stay warm between requests. Endpoints are plain ``def`` functions, which FastAPI runs
in its thread pool; sessions serialise their own work with a lock, and a ``remember`` is durable
(committed and fsynced) before its response is sent.

Errors are problem documents (RFC 9457, ``application/problem+json``) whose status comes from
one table, :data:`PROBLEM_STATUS`, keyed by error *type* — never by message text. Bodies carry
``type``, ``title``, ``status``, ``detail``, ``instance`` and the error's stable ``code``; never a
traceback. Request bodies are limited in size (413) and each pass has a token bucket (429 with
``Retry-After``).

The persona's audit entries are served without their chain fields (``seq`` and hashes): those
number every event of the store, so gaps in them would count what *other* personas did.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, validate
from .awake import AwakeSessions
from .chat import read_conversation
from .errors import (
    AlreadyExistsError,
    ConflictError,
    EmbedderError,
    ExtractorError,
    ExtractorOutputError,
    ExtractorUnavailableError,
    IntegrityError,
    InvalidInputError,
    NoExtractorError,
    NoFloorError,
    NotFoundError,
    PersonaErasedError,
    QuarantinedError,
    RateLimitedError,
    RequestTooLargeError,
    SessionClosedError,
    SeveranceError,
    StorageError,
    StoreError,
    UnlockError,
)
from .http_docs import add_docs
from .model import AuditEntry, Memory, MemoryDraft, Notice, Recall, from_epoch
from .passes import Grant, PassError, Passes, ReadOnlyPassError
from .session import Session
from .store import Store

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RATE",
    "PROBLEM_STATUS",
    "RateLimitedError",
    "RequestTooLargeError",
    "TokenBucket",
    "create_app",
    "problem_status",
]

logger = logging.getLogger("severance.http")

#: Requests a second each pass may make on average, and how many it may make at once.
DEFAULT_RATE = 50.0
DEFAULT_BURST = 100
#: Largest request body accepted (a batch of memories is the only large request).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BATCH = 1000
PROBLEM_TYPE_PREFIX = "urn:severance:problem:"


#: HTTP status by error type; the first matching class wins, so specific ones come first.
#: The 503s are failures of the server's own storage or configuration, not of the request.
PROBLEM_STATUS: tuple[tuple[type[SeveranceError], int], ...] = (
    (RequestTooLargeError, 413),
    (RateLimitedError, 429),
    (ReadOnlyPassError, 403),
    (PassError, 401),
    (InvalidInputError, 422),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (ConflictError, 409),
    (QuarantinedError, 409),
    (PersonaErasedError, 410),
    (NoFloorError, 404),
    (UnlockError, 403),
    (SessionClosedError, 503),
    (IntegrityError, 503),
    (EmbedderError, 503),
    (StoreError, 503),
    (StorageError, 503),
    (NoExtractorError, 409),
    (ExtractorUnavailableError, 502),
    (ExtractorOutputError, 502),
    (ExtractorError, 502),
    (SeveranceError, 400),
)


def problem_status(error: SeveranceError) -> int:
    """The HTTP status for an error, from :data:`PROBLEM_STATUS`."""
    return next(status for cls, status in PROBLEM_STATUS if isinstance(error, cls))


# -- rate limiting ---------------------------------------------------------------------------
class TokenBucket:
    """Token buckets by key: ``rate`` tokens a second refill each, up to ``burst``."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise InvalidInputError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


# -- wire models -----------------------------------------------------------------------------
#: "Not only white space", spelled out: ``\S`` means different things to Python (which
#: validates), ECMA-262 (JSON Schema's dialect) and Rust (pydantic-core); this class is
#: Python's ``str.isspace`` set exactly, and reads the same in all three.
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """A time in UTC, clamped to what survives the store's epoch-seconds round trip.

    Any RFC 3339 time is valid input, but year 1 with a positive offset (or 9999 with a negative
    one, or its last microsecond) has no epoch value that converts back; those are moved to the
    nearest representable instant, at most a day away at the very ends of time.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return _EARLIEST if value.year < 5000 else _LATEST
    return min(max(value, _EARLIEST), _LATEST)


When = Annotated[datetime, AfterValidator(_utc)]
Kind = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="fact, episode, preference, note… (a lower-case word)",
        examples=["fact"],
    ),
]
Tag = Annotated[str, Field(min_length=1, max_length=validate.MAX_TAG_CHARS, pattern=NOT_BLANK)]
Text = Annotated[str, Field(min_length=1, max_length=validate.MAX_TEXT_CHARS, pattern=NOT_BLANK)]
MemoryId = Annotated[str, Path(min_length=1, max_length=128, description="A memory id (m_…).")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryIn(_In):
    """A memory to remember."""

    text: Text = Field(examples=["Q3 launch moved to Oct 12"])
    kind: Kind = "note"
    tags: list[Tag] = Field(default_factory=list, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Any JSON object (at most 64 KiB encoded)."
    )
    occurred_at: When | None = Field(
        default=None, description="When it happened (default: now). Naive times are UTC."
    )
    source: Annotated[str, Field(max_length=validate.MAX_SOURCE_CHARS)] | None = None

    def draft(self) -> MemoryDraft:
        return MemoryDraft(
            text=self.text,
            kind=self.kind,
            tags=tuple(self.tags),
            metadata=self.metadata,
            occurred_at=self.occurred_at,
            source=self.source,
        )


class BatchIn(_In):
    """Several memories, stored together (validated all before any is written)."""

    memories: list[MemoryIn] = Field(min_length=1, max_length=MAX_BATCH)


Speaker = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]
TurnText = Annotated[str, Field(max_length=validate.MAX_TEXT_CHARS - 128)]


class ContentPart(BaseModel):
    """A part of a message's content; only ``text`` parts (``text``, ``input_text``,
    ``output_text``) carry text, other parts (images, tool calls) are skipped."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, Field(min_length=1, max_length=64)]
    text: TurnText | None = None


class ChatMessageIn(_In):
    """A chat message as OpenAI's and Anthropic's APIs write it."""

    role: Speaker = Field(examples=["user"])
    content: TurnText | list[ContentPart] | None = Field(examples=["The offsite moves to Lisbon"])
    name: Annotated[str, Field(max_length=64)] | None = None
    timestamp: When | None = Field(default=None, description="Default: the previous turn's.")
    metadata: dict[str, Any] | None = None


class TurnIn(_In):
    """A turn in Severance's own format."""

    speaker: Speaker
    text: Annotated[TurnText, Field(min_length=1, pattern=NOT_BLANK)]
    timestamp: When | None = Field(default=None, description="Default: the previous turn's.")
    metadata: dict[str, Any] | None = None


class ConversationIn(_In):
    """A conversation: chat messages (``role``, ``content`` as a string or a list of parts) or
    turns (``speaker``, ``text``). Every turn with text becomes an ``episode`` memory; all
    share one session id."""

    messages: list[ChatMessageIn | TurnIn] = Field(
        min_length=1,
        max_length=MAX_BATCH,
    )
    session: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The conversation's id (default: a new one)."
    )
    at: When | None = Field(
        default=None, description="The time of turns before the first timestamp (default: now)."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Added to every turn's.")
    source: Annotated[str, Field(max_length=validate.MAX_SOURCE_CHARS)] | None = None


class MemoryPatch(_In):
    """The fields to change; absent or null fields keep their value."""

    text: Text | None = None
    kind: Kind | None = None
    tags: list[Tag] | None = Field(default=None, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] | None = None
    occurred_at: When | None = None


class RecallIn(_In):
    """A question for the persona's memory."""

    query: Annotated[
        str, Field(min_length=1, max_length=validate.MAX_QUERY_CHARS, pattern=NOT_BLANK)
    ] = Field(examples=["when is the launch?"])
    k: int = Field(default=10, ge=1, le=validate.MAX_K, description="How many results.")
    kinds: list[Kind] | None = Field(default=None, max_length=32, description="Only these kinds.")
    tags: list[Tag] | None = Field(
        default=None, max_length=validate.MAX_TAGS, description="Only memories with all of these."
    )
    since: When | None = Field(default=None, description="Occurred at or after.")
    until: When | None = Field(default=None, description="Occurred before.")
    recency: float = Field(default=0.0, ge=0.0, le=1.0, description="Blend in a 30-day decay.")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    min_similarity: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Drop results sharing no keyword whose cosine similarity is below this.",
    )
    include_superseded: bool = Field(
        default=False, description="Also memories no longer true (their history)."
    )


class MemoryOut(BaseModel):
    id: str
    text: str
    kind: str
    tags: list[str]
    metadata: dict[str, Any]
    occurred_at: datetime
    learned_at: datetime
    updated_at: datetime
    version: int
    source: str | None
    #: Where a reintegrated memory came from (origin persona, origin id, when, how).
    provenance: list[dict[str, Any]] = []
    #: True when the persona already held this memory and nothing was written.
    duplicate: bool = False

    @classmethod
    def of(cls, m: Memory) -> MemoryOut:
        return cls(
            id=m.id,
            text=m.text,
            kind=m.kind,
            tags=list(m.tags),
            metadata=m.metadata,
            occurred_at=m.occurred_at,
            learned_at=m.learned_at,
            updated_at=m.updated_at,
            version=m.version,
            source=m.source,
            provenance=[dict(p) for p in m.provenance],
            duplicate=m.duplicate,
        )


class BatchOut(BaseModel):
    memories: list[MemoryOut]


class ConversationOut(BaseModel):
    session: str
    memories: list[MemoryOut] = Field(description="One per stored turn, in order.")
    skipped: int = Field(description="Messages that held no text (images, tool calls).")


class MessageIn(_In):
    """One chat message; the stored turn reads ``role: content``."""

    role: Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]
    content: Annotated[
        str, Field(min_length=1, max_length=validate.MAX_TEXT_CHARS - 66, pattern=NOT_BLANK)
    ]
    timestamp: When | None = None


class ExtractIn(_In):
    """A conversation for the persona's own fact extractor (see docs/extraction.md)."""

    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)
    session: Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)] | None = None
    at: When | None = Field(default=None, description="The time of turns without one.")
    keep_turns: bool = Field(default=False, description="Also keep the turns as episodes.")


class ExtractOut(BaseModel):
    added: list[MemoryOut]
    updated: list[MemoryOut]
    superseded: list[MemoryOut]
    episodes: list[str]
    cost: dict[str, int | None]


class RecallHit(BaseModel):
    memory: MemoryOut
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None

    @classmethod
    def of(cls, r: Recall) -> RecallHit:
        return cls(
            memory=MemoryOut.of(r.memory),
            score=r.score,
            dense_rank=r.dense_rank,
            keyword_rank=r.keyword_rank,
            dense_score=r.dense_score,
            keyword_score=r.keyword_score,
        )


class RecallOut(BaseModel):
    results: list[RecallHit]


class PageOut(BaseModel):
    items: list[MemoryOut]
    total: int
    next_offset: int | None


class HistoryOut(BaseModel):
    versions: list[MemoryOut] = Field(description="Oldest first; the current version is last.")


class EventOut(BaseModel):
    at: datetime
    event: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, e: Notice | AuditEntry) -> EventOut:
        return cls(at=e.at, event=e.event, detail=e.detail)


class NoticesOut(BaseModel):
    notices: list[EventOut]


class AuditOut(BaseModel):
    entries: list[EventOut]


class PassOut(BaseModel):
    """The pass that made this request."""

    id: str
    floor: str
    persona: str
    read_only: bool
    expires_at: datetime | None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = Field(examples=["urn:severance:problem:memory_not_found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str = Field(description="Stable machine-readable error name.")
    errors: list[FieldError] | None = None


# -- errors ----------------------------------------------------------------------------------
class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def _problem(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> ProblemResponse:
    body = Problem(
        type=PROBLEM_TYPE_PREFIX + code,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        code=code,
        errors=errors,
    )
    return ProblemResponse(body.model_dump(exclude_none=True), status, headers=headers)


async def _on_severance_error(request: Request, exc: Exception) -> Response:
    error = cast(SeveranceError, exc)
    status = problem_status(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="severance"'
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return _problem(request, status, error.code, str(error), headers=headers)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    raw = cast(RequestValidationError, exc).errors()
    # Only where and what: never echo the rejected input back.
    errors = [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "invalid")),
        )
        for e in raw
    ]
    first = errors[0] if errors else None
    where = ".".join(str(p) for p in first.loc) if first else "request"
    detail = f"{where}: {first.msg}" if first else "the request is not valid"
    return _problem(request, 422, "invalid_input", detail, errors=errors)


_HTTP_CODES = {404: "no_such_route", 405: "method_not_allowed", 413: "request_too_large"}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    error = cast(HTTPException, exc)
    status = error.status_code
    if status < 400:  # pragma: no cover - Starlette raises these only for errors
        return Response(status_code=status, headers=error.headers)
    code = _HTTP_CODES.get(status, f"http_{status}")
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase
    return _problem(request, status, code, detail, headers=dict(error.headers or {}))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a request error: logged here in full, answered with nothing but its existence.
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(request, 500, "internal", "an unexpected error occurred; see the server log")


class _BodyLimit:
    """Reject request bodies over ``max_bytes`` (by Content-Length, or as they stream in)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = _problem(None, 413, "request_too_large", self._detail())
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body, so this
                    # reaches the problem handler like any other error.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited, send)


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
    app.add_exception_handler(SeveranceError, _on_severance_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
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
        """Turn a conversation into facts with the persona's own extractor; a failure of the
        extractor (502) or a persona without one (409) changes nothing."""
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
