"""``severance serve``: the HTTP API, the MCP server (stdio and/or streamable HTTP), or both.

All servers run in one process and one event loop, over one unlocked store, and share one awake
session per persona. Sockets are bound before anything is served, so a busy port is a clear
error; once a server accepts connections one line on stderr says where (``listening on …``) —
stdout stays untouched, because MCP over stdio owns it. SIGINT or SIGTERM stop every server
gracefully; then the sessions are put to sleep and the store is closed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import click

from ..awake import AwakeSessions
from ..errors import InvalidInputError
from .addresses import DEFAULT_CONSOLE_PORT, DEFAULT_HTTP_PORT, DEFAULT_MCP_PORT, parse_address
from .common import open_store

if TYPE_CHECKING:
    import uvicorn

    from ..mcp import SeveranceMCP

_LOOPBACK = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn(app: Any) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # `serve` handles signals for all servers at once; uvicorn's own handlers would
            # replace each other and re-raise the signal after shutdown.
            yield

    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="auto", log_level="warning"
    )
    return Server(config)


@dataclass
class _Listener:
    name: str
    scheme_path: str
    sock: socket.socket
    server: uvicorn.Server


async def _announce(listener: _Listener) -> None:
    server = listener.server
    while not server.started:
        if server.should_exit:
            return
        await anyio.sleep(0.02)
    host, port = listener.sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"severance: {listener.name} listening on http://{shown}:{port}{listener.scheme_path}",
        err=True,
    )


async def _run(listeners: list[_Listener], stdio: SeveranceMCP | None) -> None:
    stdio_scope = anyio.CancelScope()

    def stop() -> None:
        for listener in listeners:
            server = listener.server
            # A second signal means "now": skip waiting for open connections.
            server.force_exit = server.should_exit
            server.should_exit = True
        stdio_scope.cancel()

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop()

    async def run_stdio(server: SeveranceMCP) -> None:
        try:
            with stdio_scope:
                await server.run_stdio_async()
        finally:
            # The client closed our stdin: we are done, HTTP servers included.
            stop()

    async with anyio.create_task_group() as outer:
        if sys.platform != "win32":
            outer.start_soon(watch_signals)
        async with anyio.create_task_group() as inner:
            for listener in listeners:
                inner.start_soon(listener.server.serve, [listener.sock])
                inner.start_soon(_announce, listener)
            if stdio is not None:
                inner.start_soon(run_stdio, stdio)
        outer.cancel_scope.cancel()


@click.command()
@click.option(
    "--http",
    "http_addr",
    metavar="HOST:PORT",
    help=f"Serve the HTTP API (OpenAPI at /openapi.json), e.g. 127.0.0.1:{DEFAULT_HTTP_PORT}.",
)
@click.option(
    "--mcp", "mcp_stdio", is_flag=True, help="Serve MCP over stdio (for desktop clients)."
)
@click.option(
    "--mcp-http",
    "mcp_http_addr",
    metavar="HOST:PORT",
    help=f"Serve MCP over streamable HTTP at /mcp, e.g. 127.0.0.1:{DEFAULT_MCP_PORT}.",
)
@click.option(
    "--console",
    "console_addr",
    metavar="HOST:PORT",
    help="Serve the web console too (loopback only; see `severance console`).",
)
@click.option(
    "--floor",
    "floor_name",
    metavar="NAME",
    help="MCP: always enter this floor, whatever the client's name and workspace.",
)
@click.option(
    "--mcp-require-pass",
    is_flag=True,
    hidden=True,
    help="MCP over HTTP: refuse tool calls without a pass (now the default; kept for scripts).",
)
@click.option(
    "--mcp-http-no-pass-single-user",
    "mcp_no_pass",
    is_flag=True,
    help="MCP over HTTP: UNSAFE unless you are this machine's only user: accept tool calls"
    " without a pass, trusting any local process's claim of client and workspace.",
)
@click.option(
    "--pass-routing",
    type=click.Choice(["pin", "restrict"]),
    default="pin",
    show_default=True,
    help="MCP over HTTP: a pass pins its floor, or restricts the client's own choice (name and"
    " workspace) to floors of the pass's persona.",
)
@click.option(
    "--allow-floor",
    "allowed_floors",
    multiple=True,
    metavar="NAME",
    help="MCP: only these floors may be woken by a client's context (repeatable).",
)
@click.option(
    "--rate",
    type=float,
    default=None,
    help="HTTP API: requests a second allowed per pass (default 50; 0 for no limit).",
)
@click.option("--burst", type=int, default=None, help="HTTP API: burst per pass (default 100).")
@click.option(
    "--max-body",
    type=int,
    default=None,
    metavar="BYTES",
    help="HTTP API: largest request body (default 4 MiB).",
)
def serve(
    http_addr: str | None,
    mcp_stdio: bool,
    mcp_http_addr: str | None,
    console_addr: str | None,
    floor_name: str | None,
    mcp_require_pass: bool,
    mcp_no_pass: bool,
    allowed_floors: tuple[str, ...],
    pass_routing: str,
    rate: float | None,
    burst: int | None,
    max_body: int | None,
) -> None:
    """Serve the store over HTTP (one pass per persona) and/or MCP."""
    if not (http_addr or mcp_stdio or mcp_http_addr or console_addr):
        raise click.UsageError("give at least one of --http, --mcp, --mcp-http and --console")
    if rate is not None and rate < 0:
        raise InvalidInputError("--rate must be 0 (no limit) or more")
    if burst is not None and burst < 1:
        raise InvalidInputError("--burst must be at least 1")
    if max_body is not None and max_body < 1024:
        raise InvalidInputError("--max-body must be at least 1024 bytes")
    if mcp_no_pass and mcp_require_pass:
        raise click.UsageError("--mcp-require-pass and --mcp-http-no-pass-single-user conflict")
    if mcp_no_pass and not mcp_http_addr:
        raise click.UsageError("--mcp-http-no-pass-single-user applies to --mcp-http only")
    needed = ["uvicorn", "fastapi"] + (["mcp"] if mcp_stdio or mcp_http_addr else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"serving needs the server extras ({', '.join(missing)} missing):"
            " pip install 'severance[server]'"
        )
    http = parse_address(http_addr, DEFAULT_HTTP_PORT) if http_addr else None
    mcp_http = parse_address(mcp_http_addr, DEFAULT_MCP_PORT) if mcp_http_addr else None
    console_at = parse_address(console_addr, DEFAULT_CONSOLE_PORT) if console_addr else None
    if console_at is not None and not _is_loopback(console_at[0]):
        raise InvalidInputError(
            "serve --console listens on loopback only; for another address use"
            " `severance console --listen ... --tls-cert ... --tls-key ...`"
        )
    for name, address in (("HTTP API", http), ("MCP server", mcp_http)):
        if address is not None and not _is_loopback(address[0]):
            click.echo(
                f"severance: warning: the {name} on {address[0]} is reachable from other"
                " machines and speaks plain HTTP; put a TLS proxy in front of it.",
                err=True,
            )
    # uvicorn and the MCP SDK log through `logging`; keep it on stderr and quiet.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="severance: %(message)s")
    with contextlib.ExitStack() as stack:
        # Bind first: a busy port is an error before anything is unlocked or loaded.
        http_sock = stack.enter_context(_bind(*http)) if http else None
        mcp_sock = stack.enter_context(_bind(*mcp_http)) if mcp_http else None
        console_sock = stack.enter_context(_bind(*console_at)) if console_at else None
        store = stack.enter_context(open_store())
        # A misspelt floor is an error now, not on every call once clients connect.
        for name in ([floor_name] if floor_name else []) + list(allowed_floors):
            store.resolve(floor=name)
        if mcp_http is not None and mcp_no_pass:
            click.echo(
                "severance: WARNING: MCP over HTTP without passes: any process on this machine"
                " (another user's, a script, a web page that gets past the Host/Origin checks)"
                " can claim any client and workspace and read or write the persona it wakes."
                " Use this only on a machine you are the only user of.",
                err=True,
            )
        sessions = AwakeSessions(store)
        stack.callback(sessions.close)
        store.embedder.embed(["warm up"])  # load the model now, not on the first request
        listeners: list[_Listener] = []
        stdio: SeveranceMCP | None = None
        if http is not None and http_sock is not None:
            from ..http import DEFAULT_BURST, DEFAULT_MAX_BODY_BYTES, DEFAULT_RATE, create_app

            app = create_app(
                store,
                rate=DEFAULT_RATE if rate is None else rate,
                burst=DEFAULT_BURST if burst is None else burst,
                max_body_bytes=DEFAULT_MAX_BODY_BYTES if max_body is None else max_body,
                sessions=sessions,
            )
            listeners.append(_Listener("HTTP API", "", http_sock, _uvicorn(app)))
        if mcp_http is not None or mcp_stdio:
            # Imported only when needed: the MCP SDK takes most of a second to import.
            from ..mcp import create_mcp_server

            if mcp_http is not None and mcp_sock is not None:
                mcp_app = create_mcp_server(
                    store,
                    floor=floor_name,
                    require_pass=not mcp_no_pass,
                    sessions=sessions,
                    allowed_floors=allowed_floors or None,
                    pass_routing="restrict" if pass_routing == "restrict" else "pin",
                ).streamable_http_app(host=mcp_http[0])
                listeners.append(_Listener("MCP server", "/mcp", mcp_sock, _uvicorn(mcp_app)))
            if mcp_stdio:
                stdio = create_mcp_server(
                    store,
                    floor=floor_name,
                    cwd_fallback=True,
                    sessions=sessions,
                    allowed_floors=allowed_floors or None,
                )
                click.echo("severance: MCP server on stdio", err=True)
        if console_sock is not None:
            from .console import console_app, offer_new_links

            console_asgi, console_state = console_app(store, console_sock)
            listeners.append(_Listener("console", "", console_sock, _uvicorn(console_asgi)))
            click.echo(f"severance: console login: {console_state.login_url()}", err=True)
            if not mcp_stdio:  # stdin belongs to MCP over stdio
                offer_new_links(console_state)
        anyio.run(_run, listeners, stdio)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
