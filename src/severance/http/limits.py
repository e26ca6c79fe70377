"""Limits on what a client may send: request-body size (413) and requests per pass (429).

Both answer before the request reaches an endpoint, so an over-limit request reads and writes
nothing. The token buckets are keyed by pass id: one pass's burst never slows another's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidInputError
from .problems import problem

__all__ = ["DEFAULT_BURST", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_RATE", "BodyLimit", "TokenBucket"]

#: Requests a second each pass may make on average, and how many it may make at once.
DEFAULT_RATE = 50.0
DEFAULT_BURST = 100
#: Largest request body accepted (a batch of memories is the only large request).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


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


class BodyLimit:
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
            response = problem(None, 413, "request_too_large", self._detail())
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
