"""The web console: see what each persona knows, and review every crossing before it happens.

``severance console`` (or ``severance serve --console ADDR``) serves it on 127.0.0.1 and prints a
one-time login URL. The console is an adapter over the public :class:`~severance.Store` and
:class:`~severance.Session` API, like the CLI and the HTTP API:

- ``app``: the FastAPI app, login, and the error pages;
- ``plumbing``: what the pages share (the browser session, posted forms, the awake session,
  rendering), so no page imports the app;
- ``security``: login tokens, browser sessions, CSRF, Host/Origin checks, CSP;
- ``state``: what one browser has woken (one persona, or one reintegration review);
- ``pages_personas``, ``pages_memories``, ``pages_audit``, ``pages_floors``,
  ``pages_crossings``: one module per area of the console;
- ``templates/`` (Jinja2, autoescaped) and ``static/`` (one stylesheet, one small script; no
  inline script, nothing fetched from elsewhere).

One persona at a time, as everywhere: waking one in a browser puts the previous one to sleep,
and nothing of a persona is served to a browser that has not woken it.
"""

from __future__ import annotations

from .app import Console, create_app
from .security import LOGIN_TOKEN_SECONDS, LoginTokens
from .serving import console_origins

__all__ = [
    "LOGIN_TOKEN_SECONDS",
    "Console",
    "LoginTokens",
    "console_origins",
    "create_app",
]
