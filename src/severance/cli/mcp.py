"""``severance mcp install CLIENT``: put Severance into an MCP client's configuration.

It first shows which floor (and so which persona) that client would wake here, then writes
the client's config file (or prints it, with ``--print``). See :mod:`severance.mcp_install`
for where each client keeps its config.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, cast

import click

from ..errors import NoFloorError
from ..keys import ENV_PASSPHRASE
from ..mcp_install import CLIENTS, Scope, config_path, install, server_entry
from .common import json_option, open_store, print_json, settings


@click.group("mcp")
def mcp() -> None:
    """MCP clients: connect Claude Desktop, Claude Code, Cursor or VS Code to Severance."""


@mcp.command("install")
@click.argument("client", type=click.Choice(list(CLIENTS)))
@click.option(
    "--scope",
    type=click.Choice(["user", "project"]),
    default="user",
    show_default=True,
    help="The client's user config, or the project's (in the current directory).",
)
@click.option(
    "--floor",
    "floor_name",
    help="Pin the server to this floor (default: each call picks by client and workspace).",
)
@click.option("--name", default="severance", show_default=True, help="The server's name there.")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Show the floor for this workspace (default: the current directory).",
)
@click.option("--print", "print_only", is_flag=True, help="Print the config; write nothing.")
@json_option
def install_(
    client: str,
    scope: str,
    floor_name: str | None,
    name: str,
    workspace: Path | None,
    print_only: bool,
    as_json: bool,
) -> None:
    """Write (or --print) CLIENT's MCP config to run this Severance, with absolute paths."""
    spec = CLIENTS[client]
    s = settings()
    path = config_path(client, cast(Scope, scope), cwd=Path.cwd())
    where = (workspace or Path.cwd()).absolute()
    context: dict[str, Any] = (
        {"floor": floor_name}
        if floor_name
        else {
            "client": spec.client_name,
            "paths": [str(where)] if spec.workspace else [],
            "host": socket.gethostname(),
        }
    )
    with open_store() as store:
        try:
            match = store.resolve(context)
            wakes: dict[str, Any] | None = match.to_dict()
        except NoFloorError:
            wakes = None
        location = store.location
    store_arg = location if "://" in location else str(Path(location).absolute())
    key_file = str(Path(s.key_file).absolute()) if s.key_file else None
    entry = server_entry(client, store_arg, key_file=key_file, floor=floor_name)
    result = install(client, path, entry, name=name, write=not print_only)
    if as_json:
        print_json(
            {
                "client": client,
                "path": str(path),
                "written": not print_only,
                "replaced": result.replaced,
                "backup": str(result.backup) if result.backup else None,
                "wakes": wakes,
                "entry": entry,
            }
        )
        return
    seen = f"in {where}" if spec.workspace and not floor_name else "anywhere"
    if wakes is None:
        click.echo(
            f"{client} ({spec.client_name!r}, {seen}) matches no floor and there is no default:"
            " its calls will be refused until you add one (`severance floor add`).",
            err=True,
        )
    else:
        why = "; ".join(wakes["reasons"])
        click.echo(
            f"{client} {seen} would wake persona {wakes['persona']} (floor {wakes['floor']}: "
            f"{why}).",
            err=True,
        )
    if print_only:
        click.echo(f"# {path}")
        click.echo(json.dumps({spec.key: {name: entry}}, indent=2, ensure_ascii=False))
        return
    verb = "Updated" if result.replaced else "Added"
    kept = f" (the previous file is kept as {result.backup})" if result.backup else ""
    click.echo(f"{verb} server {name!r} in {path}{kept}.")
    if os.environ.get(ENV_PASSPHRASE):
        click.echo(
            "Note: the passphrase is not written to the config; the client must be started "
            f"with {ENV_PASSPHRASE} set, or use a key file.",
            err=True,
        )


def register(cli: click.Group) -> None:
    cli.add_command(mcp)
