"""The console's ASGI app: security checks, login, and the request plumbing the pages share.

:func:`create_app` builds a FastAPI app over one unlocked :class:`~severance.Store`. Pages live
in the ``pages_*`` modules, one per area (personas, memories, audit, floors, crossings); each
handler is a plain ``def`` (run in the thread pool: the store blocks) that gets its browser
session, posted form and awake session from :mod:`severance.console.plumbing`, which the pages
import instead of this module (so nothing points back up at the app).
"""

from __future__ import annotations

import contextlib
import html
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from importlib.resources import files
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import SessionClosedError, SeveranceError
from ..store import Store
from . import pages_audit, pages_crossings, pages_floors, pages_memories, pages_personas
from .plumbing import (
    MAX_FORM_BYTES,
    Console,
    CsrfRefused,
    FormTooLarge,
    NotLoggedIn,
    Posted,
    Redirect,
    awake,
    browser,
    console_of,
    posted,
    render,
)
from .render import environment
from .security import SECURITY_HEADERS, BrowserSession, BrowserSessions, Clock, LoginTokens, Origins
from .state import BrowserState

__all__ = [
    "MAX_FORM_BYTES",
    "Console",
    "Posted",
    "awake",
    "browser",
    "create_app",
    "posted",
    "render",
]

logger = logging.getLogger("severance.console")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create_app(
    store: Store,
    *,
    origins: Iterable[str],
    tokens: LoginTokens | None = None,
    clock: Clock = time.time,
) -> FastAPI:
    """The console over ``store``, answering only at ``origins`` (``http://127.0.0.1:8767``…).

    ``tokens`` issues the login tokens (pass one to print a URL before serving); ``clock``
    is what expiry is measured with (tests inject one).
    """
    allowed = Origins(origins)
    console = Console(
        store=store,
        tokens=tokens or LoginTokens(clock),
        sessions=BrowserSessions(lambda: BrowserState(store), clock),
        origins=allowed,
        env=environment(),
        clock=clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        console.sessions.close()  # put every woken persona back to sleep (audited exits)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = console
    app.mount(
        "/static",
        StaticFiles(directory=str(files("severance.console") / "static")),
        name="static",
    )

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # DNS rebinding: a hostile name pointed at 127.0.0.1 still sends its own Host.
        if not allowed.host_ok(request.headers.get("host")):
            response: Response = HTMLResponse(
                f"This console answers only at {html.escape(allowed.primary)}"
                " (and its loopback names); open it there.",
                status_code=421,
            )
        elif request.headers.get("origin") is not None and not allowed.origin_ok(
            request.headers.get("origin")
        ):
            response = HTMLResponse("Cross-origin requests are refused.", status_code=403)
        elif request.method not in _SAFE_METHODS and not allowed.origin_ok(
            request.headers.get("origin")
        ):
            # Browsers send Origin with every POST; without it we cannot tell who posted.
            response = HTMLResponse("Cross-origin requests are refused.", status_code=403)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if not request.url.path.startswith("/static/") or response.status_code >= 400:
            # Pages hold a persona's memories (and every page its CSRF token): never keep
            # them in a cache. Only the static files themselves may be cached.
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: Exception) -> Response:
        return render(request, None, "login_needed.html", status=401)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return render(
            request,
            None,
            "error.html",
            status=403,
            title="Refused",
            message="This form was not sent by this console (missing or wrong CSRF"
            " token). Reload the page and try again.",
        )

    @app.exception_handler(FormTooLarge)
    async def form_too_large(request: Request, exc: Exception) -> Response:
        return render(
            request,
            _maybe_browser(request),
            "error.html",
            status=413,
            title="Too large",
            message=f"This form is larger than the console accepts ({MAX_FORM_BYTES >> 20} MiB);"
            " nothing was changed.",
        )

    @app.exception_handler(Redirect)
    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(SeveranceError)
    async def severance_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SeveranceError)
        session = _maybe_browser(request)
        failed = getattr(request.state, "awake_session", None)
        if isinstance(exc, SessionClosedError) and session is not None and failed is not None:
            # Only the session this request used: another tab may have woken a new one since.
            session.state.sleep_if(failed)
        return render(
            request,
            session,
            "error.html",
            status=exc.http_status,
            title="That did not work",
            message=str(exc),
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "No such page." if exc.status_code == 404 else str(exc.detail)
        return render(
            request,
            _maybe_browser(request),
            "error.html",
            status=exc.status_code,
            title="Not here",
            message=message,
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: Exception) -> Response:
        return render(
            request,
            _maybe_browser(request),
            "error.html",
            status=400,
            title="Bad request",
            message="Some of the values given are not valid.",
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("console: unexpected error")
        return render(
            request,
            None,
            "error.html",
            status=500,
            title="Something broke",
            message="The console hit an unexpected error; it is in the server's log.",
        )

    @app.get("/login", response_class=HTMLResponse)
    def login(request: Request, token: str = "") -> Response:
        if not console.tokens.redeem(token):
            return render(request, None, "login_needed.html", status=403, refused=True)
        # A browser that logs in again (a new link) ends its previous session: the persona
        # that one had woken would otherwise stay awake, unreachable, until it idled out.
        previous = request.cookies.get(allowed.cookie_name)
        if previous:
            console.sessions.end(previous)
        session = console.sessions.create()
        # The page moves on to "/" by itself (see logging_in.html for why it is not a
        # redirect), so the spent token leaves the address bar.
        response = render(request, None, "logging_in.html")
        response.set_cookie(
            allowed.cookie_name,
            session.id,
            httponly=True,
            samesite="strict",
            secure=allowed.secure,
            path="/",
        )
        return response

    @app.post("/logout")
    def logout(form: Annotated[Posted, Depends(posted)]) -> Response:
        console.sessions.end(form.browser.id)
        response = RedirectResponse("/logged-out", status_code=303)
        response.delete_cookie(allowed.cookie_name, path="/")
        return response

    @app.get("/logged-out", response_class=HTMLResponse)
    def logged_out(request: Request) -> Response:
        return render(request, None, "login_needed.html", logged_out=True)

    for module in (pages_personas, pages_memories, pages_audit, pages_floors, pages_crossings):
        app.include_router(module.router)

    return app


def _maybe_browser(request: Request) -> BrowserSession | None:
    console = console_of(request)
    return console.sessions.get(request.cookies.get(console.origins.cookie_name))
