"""What keeps the console to its one user: login tokens, browser sessions, CSRF, Host/Origin.

- A **login token** is printed once by ``severance console`` inside a URL. It is single-use and
  expires (:data:`LOGIN_TOKEN_SECONDS`); the first ``GET /login?token=…`` exchanges it for a
  browser session, as Jupyter does, and redirects so the token leaves the address bar.
- The **browser session** lives only in this process's memory; its cookie is ``HttpOnly``,
  ``SameSite=Strict`` (``Secure`` over TLS) and its id is random. Each session has its own
  CSRF token, which every state-changing request must carry (form field ``csrf`` or header
  ``X-CSRF-Token``) and which is compared in constant time.
- **Host and Origin** are checked on every request against the addresses the console was
  started on, so a page on another site — including one that re-points its own DNS name at
  127.0.0.1 (DNS rebinding) — can neither read a page nor post a form.
- Every response carries a strict Content-Security-Policy (scripts and styles only from the
  console's own static files; nothing inline, no frames, forms only to itself).

Time is read from an injected clock, so expiry is tested without waiting.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .state import BrowserState

__all__ = [
    "CSP",
    "LOGIN_TOKEN_SECONDS",
    "SESSION_IDLE_SECONDS",
    "BrowserSessions",
    "LoginTokens",
    "Origins",
]

#: How long a printed login URL stays valid.
LOGIN_TOKEN_SECONDS = 15 * 60
#: A browser session idle for this long is logged out (and its persona put to sleep).
SESSION_IDLE_SECONDS = 12 * 60 * 60

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Headers on every response. ``same-origin`` (not ``no-referrer``): with ``no-referrer``
#: Chromium sends ``Origin: null`` on form posts, which the Origin check must then refuse.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Clock = Callable[[], float]


class LoginTokens:
    """One-time login tokens: each opens one browser session, once, before it expires."""

    def __init__(self, clock: Clock = time.time, ttl: float = LOGIN_TOKEN_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        """A fresh token (256 bits), valid for one use within the time-to-live."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[token] = now + self._ttl
        return token

    def redeem(self, token: str) -> bool:
        """True once for a valid, unexpired token; it is spent either way."""
        with self._lock:
            expiry = self._expiry.pop(token, None)
            return expiry is not None and self._clock() < expiry


@dataclass
class BrowserSession:
    """One logged-in browser: its cookie id, CSRF token and what it has woken."""

    id: str
    csrf: str
    last_seen: float
    state: BrowserState
    lock: threading.RLock = field(default_factory=threading.RLock)

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self.csrf.encode()
        )


class BrowserSessions:
    """The logged-in browsers of this console process (in memory only)."""

    def __init__(
        self,
        new_state: Callable[[], BrowserState],
        clock: Clock = time.time,
        idle: float = SESSION_IDLE_SECONDS,
    ) -> None:
        self._new_state = new_state
        self._clock = clock
        self._idle = idle
        self._lock = threading.Lock()
        self._sessions: dict[str, BrowserSession] = {}

    def create(self) -> BrowserSession:
        session = BrowserSession(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            last_seen=self._clock(),
            state=self._new_state(),
        )
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> BrowserSession | None:
        """The live session for a cookie value; an idle one is ended (persona put to sleep)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self._idle:
                del self._sessions[session_id]
                expired: BrowserSession | None = session
            else:
                session.last_seen = now
                return session
        if expired is not None:
            expired.state.close()
        return None

    def end(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.state.close()

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.state.close()


class Origins:
    """The scheme://host:port values this console answers to, for the Host/Origin checks."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = tuple(dict.fromkeys(o.rstrip("/").lower() for o in origins))
        if not self.origins:
            raise ValueError("the console needs at least one origin")
        self.secure = all(o.startswith("https://") for o in self.origins)
        # Browsers leave a scheme's default port out of Host and Origin (a console on port 443
        # is "https://host", not "https://host:443"): accept both spellings.
        accepted = set(self.origins) | {_without_default_port(o) for o in self.origins}
        self._accepted = frozenset(accepted)
        self.hosts = frozenset(urlsplit(o).netloc for o in accepted)

    @property
    def primary(self) -> str:
        return self.origins[0]

    @property
    def cookie_name(self) -> str:
        # Cookies are not kept apart by port: two consoles on one machine need two names.
        port = urlsplit(self.primary).port or (443 if self.secure else 80)
        return f"severance_console_{port}"

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in self.hosts

    def origin_ok(self, origin: str | None) -> bool:
        return origin is not None and origin.rstrip("/").lower() in self._accepted


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _without_default_port(origin: str) -> str:
    parts = urlsplit(origin)
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        host = parts.netloc.rsplit(":", 1)[0]
        return f"{parts.scheme}://{host}"
    return origin
