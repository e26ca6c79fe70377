"""The request plumbing the console's pages share: who is asking, what they posted, the page.

Each page handler gets its browser session from :func:`browser`, its posted form from
:func:`posted` (which checks the CSRF token) and, for anything of a persona, the awake
session from :func:`awake`; :func:`render` draws a page with what every page shows. The
app (:mod:`severance.console.app`) turns the control-flow exceptions here into pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment

from ..session import Session
from ..store import Store
from .render import render_page
from .security import BrowserSession, BrowserSessions, Clock, LoginTokens, Origins

__all__ = [
    "MAX_FORM_BYTES",
    "Console",
    "CsrfRefused",
    "FormTooLarge",
    "NotLoggedIn",
    "Posted",
    "Redirect",
    "awake",
    "browser",
    "console_of",
    "posted",
    "render",
]

#: The largest form the console accepts (the longest memory text is far below this).
MAX_FORM_BYTES = 1 << 20


@dataclass
class Console:
    """Everything a request handler needs, kept on ``app.state.console``."""

    store: Store
    tokens: LoginTokens
    sessions: BrowserSessions
    origins: Origins
    env: Environment
    clock: Clock

    def login_url(self) -> str:
        """A fresh one-time login URL."""
        return f"{self.origins.primary}/login?token={self.tokens.issue()}"


# Control flow, not errors: each is turned into a page (401, 403) or a redirect right here, and
# never reaches the API's callers, so they do not join the SeveranceError tree.
class NotLoggedIn(Exception):
    pass


class CsrfRefused(Exception):
    pass


class FormTooLarge(Exception):
    pass


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


@dataclass(frozen=True)
class Posted:
    """A posted form (CSRF token checked) and the browser session that posted it."""

    browser: BrowserSession
    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1].strip() if values else default

    def raw(self, name: str) -> str:
        """A field exactly as typed (memory text keeps its spaces and new lines)."""
        values = self.fields.get(name)
        return values[-1] if values else ""

    def all(self, name: str) -> list[str]:
        return list(self.fields.get(name, ()))


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def browser(request: Request) -> BrowserSession:
    """The logged-in browser session, or a 401 page."""
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(console.origins.cookie_name))
    if session is None:
        raise NotLoggedIn()
    return session


async def posted(request: Request, session: Annotated[BrowserSession, Depends(browser)]) -> Posted:
    """The urlencoded form of a POST, refused (403) without this session's CSRF token."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge()  # never parsed
    # Plain urlencoded forms (no uploads): the standard library parses them; python-multipart
    # would only add a dependency.
    fields: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, []).append(value)
    token = request.headers.get("x-csrf-token") or next(reversed(fields.get("csrf", [])), None)
    if not session.csrf_ok(token):
        raise CsrfRefused()
    return Posted(session, fields)


def awake(request: Request, session: Annotated[BrowserSession, Depends(browser)]) -> Session:
    """The persona this browser has woken; without one, back to the persona list."""
    s = session.state.session
    if s is None:
        session.state.flash("Wake a persona first: nothing of a persona is shown before that.")
        raise Redirect("/")
    # Kept for the error handler: only this session may be put to sleep if it turns out closed.
    request.state.awake_session = s
    return s


def render(
    request: Request,
    session: BrowserSession | None,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with what every page shows: the awake persona, messages, the CSRF token."""
    console = console_of(request)
    state = session.state if session is not None else None
    awake_session = state.session if state is not None else None
    page = {
        "csrf": session.csrf if session is not None else "",
        "logged_in": session is not None,
        "awake": awake_session,
        "review": state.review if state is not None else None,
        "flashes": state.take_flashes() if state is not None else [],
        "store_location": console.store.location,
        "path": request.url.path,
        **context,
    }
    return HTMLResponse(render_page(console.env, template, page), status_code=status)
