"""Errors as problem documents (RFC 9457, ``application/problem+json``).

A :class:`~severance.errors.SeveranceError` is answered with the status its class carries
(:attr:`~severance.errors.SeveranceError.http_status`, drawn in the tree of
:mod:`severance.errors`) — never by matching message text. Bodies carry ``type``, ``title``,
``status``, ``detail``, ``instance`` and the error's stable ``code``; never a traceback (an
unexpected exception is logged here and answered with a bare 500).
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import cast

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
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
    PassError,
    PersonaErasedError,
    QuarantinedError,
    RateLimitedError,
    ReadOnlyPassError,
    RequestTooLargeError,
    SessionClosedError,
    SeveranceError,
    StorageError,
    StoreError,
    UnlockError,
)
from .schemas import FieldError, Problem

__all__ = [
    "PROBLEM_STATUS",
    "PROBLEM_TYPE_PREFIX",
    "ProblemResponse",
    "add_problem_handlers",
    "problem",
    "problem_status",
]

logger = logging.getLogger("severance.http")

PROBLEM_TYPE_PREFIX = "urn:severance:problem:"

#: HTTP status by error type, the most specific first: a view of the statuses the classes
#: carry (:attr:`SeveranceError.http_status`, the one source), kept for callers of the former
#: table.
PROBLEM_STATUS: tuple[tuple[type[SeveranceError], int], ...] = tuple(
    (cls, cls.http_status)
    for cls in (
        RequestTooLargeError,
        RateLimitedError,
        ReadOnlyPassError,
        PassError,
        InvalidInputError,
        NotFoundError,
        AlreadyExistsError,
        ConflictError,
        QuarantinedError,
        PersonaErasedError,
        NoFloorError,
        UnlockError,
        SessionClosedError,
        IntegrityError,
        EmbedderError,
        StoreError,
        StorageError,
        NoExtractorError,
        ExtractorUnavailableError,
        ExtractorOutputError,
        ExtractorError,
        SeveranceError,
    )
)


def problem_status(error: SeveranceError) -> int:
    """The HTTP status answering ``error`` (its class's ``http_status``)."""
    return error.http_status


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(
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
    status = error.http_status
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="severance"'
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return problem(request, status, error.code, str(error), headers=headers)


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
    return problem(request, 422, "invalid_input", detail, errors=errors)


_HTTP_CODES = {404: "no_such_route", 405: "method_not_allowed", 413: "request_too_large"}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    error = cast(HTTPException, exc)
    status = error.status_code
    if status < 400:  # pragma: no cover - Starlette raises these only for errors
        return Response(status_code=status, headers=error.headers)
    code = _HTTP_CODES.get(status, f"http_{status}")
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase
    return problem(request, status, code, detail, headers=dict(error.headers or {}))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a request error: logged here in full, answered with nothing but its existence.
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal", "an unexpected error occurred; see the server log")


def add_problem_handlers(app: FastAPI) -> None:
    """Answer every error raised in ``app`` with a problem document."""
    app.add_exception_handler(SeveranceError, _on_severance_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
