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

Errors are problem documents (RFC 9457, ``application/problem+json``) whose status is the one
the error's class carries (:attr:`~severance.errors.SeveranceError.http_status`) — never
matched on message text. Bodies carry ``type``, ``title``, ``status``, ``detail``,
``instance`` and the error's stable ``code``; never a traceback. Request bodies are limited in
size (413) and each pass has a token bucket (429 with ``Retry-After``).

The persona's audit entries are served without their chain fields (``seq`` and hashes): those
number every event of the store, so gaps in them would count what *other* personas did.

The package: :mod:`~severance.http.schemas` (wire models), :mod:`~severance.http.problems`
(errors as problem documents), :mod:`~severance.http.limits` (body size, token buckets),
:mod:`~severance.http.app` (the pass, the routes, :func:`create_app`) and
:mod:`~severance.http.docs` (Swagger UI served offline).
"""

from __future__ import annotations

from ..errors import RateLimitedError, RequestTooLargeError
from .app import create_app
from .limits import DEFAULT_BURST, DEFAULT_MAX_BODY_BYTES, DEFAULT_RATE, TokenBucket
from .problems import PROBLEM_STATUS, problem_status

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
