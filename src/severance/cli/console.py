"""``severance console``: the web console on 127.0.0.1, with a one-time login URL.

The login URL is printed on stderr (and, on a desktop, opened in the browser with a token of
its own, so the printed one still works). Each token works once and for
:data:`~severance.console.LOGIN_TOKEN_SECONDS`; on a terminal, pressing Enter prints a new one.
``severance serve --console ADDR`` runs the same console beside the other servers.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInputError
from ..store import Store
from .addresses import DEFAULT_CONSOLE_PORT, parse_address
from .common import open_store

if TYPE_CHECKING:
    from ..console import Console

__all__ = ["console", "console_app", "offer_new_links", "open_in_browser", "register"]


def console_app(store: Store, sock: socket.socket, tls: bool = False) -> tuple[Any, Console]:
    """The console's ASGI app for a bound socket, and its :class:`Console` (for login URLs)."""
    from ..console import console_origins, create_app

    host, port = sock.getsockname()[:2]
    app = create_app(store, origins=console_origins(host, port, tls))
    return app, app.state.console


def offer_new_links(console_: Console) -> None:
    """On a terminal, print a fresh login URL each time Enter is pressed (a daemon thread)."""
    if not sys.stdin.isatty():
        return

    def loop() -> None:
        for _ in sys.stdin:
            click.echo(f"severance: console login: {console_.login_url()}", err=True)

    threading.Thread(target=loop, name="console-login-links", daemon=True).start()


def open_in_browser(
    url: str, directory: Path, opener: Callable[[str], object] = webbrowser.open
) -> Path:
    """Open ``url`` in the desktop browser without putting its login token on a command line.

    ``webbrowser`` starts the browser with the URL as an argument, which every user of the
    machine can read in the process list while the token is still unspent. The browser is
    given instead the ``file://`` URL of a private page (mode 0600, in ``directory``) that
    moves on to ``url``; the process list shows only that path (Jupyter does the same).
    """
    page = directory / "open-console.html"
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    target = html.escape(url, quote=True)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(
            '<!doctype html><meta charset="utf-8"><title>Severance console</title>'
            f'<meta http-equiv="refresh" content="0; url={target}">'
            f'<p><a href="{target}">Open the Severance console</a></p>\n'
        )
    opener(page.as_uri())
    return page


def _desktop() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("console")
@click.option(
    "--listen",
    "address",
    metavar="HOST:PORT",
    help="Where to listen (default 127.0.0.1:8767, or any free port if that one is busy).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="TLS certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="TLS private key.")
@click.option(
    "--insecure-remote",
    is_flag=True,
    help="Allow a non-loopback address without TLS (the login cookie then crosses in clear).",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def console(
    address: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    insecure_remote: bool,
    no_browser: bool,
) -> None:
    """See what each persona knows, and review crossings, in your browser."""
    from ..console.serving import bind, check_exposure

    missing = [n for n in ("uvicorn", "fastapi", "jinja2") if importlib.util.find_spec(n) is None]
    if missing:
        raise click.ClickException(
            f"the console needs the server extras ({', '.join(missing)} missing):"
            " pip install 'severance[server]'"
        )
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInputError("give both --tls-cert and --tls-key, or neither")
    tls = tls_cert is not None
    host, port = parse_address(address, DEFAULT_CONSOLE_PORT) if address else ("127.0.0.1", 0)
    check_exposure(host, tls, insecure_remote)
    if address:
        sock = bind(host, port)
    else:
        try:
            sock = bind(host, DEFAULT_CONSOLE_PORT)
        except InvalidInputError:
            sock = bind(host, 0)  # the usual port is taken: any free one will do
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="severance: %(message)s")
    import uvicorn

    with sock, open_store() as store, tempfile.TemporaryDirectory(prefix="severance-") as tmp:
        store.embedder.embed(["warm up"])  # load the model now, not on the first search
        app, state = console_app(store, sock, tls)
        click.echo(f"severance: console listening on {state.origins.primary}", err=True)
        click.echo(f"severance: console login: {state.login_url()}", err=True)
        if sys.stdin.isatty():
            click.echo("severance: press Enter for a new login link, Ctrl-C to stop", err=True)
        if not no_browser and _desktop():
            open_in_browser(state.login_url(), Path(tmp))
        offer_new_links(state)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            log_level="warning",
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
        )
        _QuietServer(config).run(sockets=[sock])


class _QuietServer:
    """uvicorn's server, stopping on SIGINT/SIGTERM with exit 0 (uvicorn re-raises the signal
    after shutting down, which would end the command as "aborted")."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        server = uvicorn.Server(config)

        @contextlib.contextmanager
        def capture_signals() -> Iterator[None]:
            def stop(signum: int, frame: object) -> None:
                server.force_exit = server.should_exit  # a second Ctrl-C means now
                server.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        server.capture_signals = capture_signals  # type: ignore[method-assign]
        self._server = server

    def run(self, sockets: list[socket.socket]) -> None:
        self._server.run(sockets=sockets)


def register(cli: click.Group) -> None:
    cli.add_command(console)
