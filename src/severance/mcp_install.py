"""Writing Severance into an MCP client's configuration (``severance mcp install CLIENT``).

Each client keeps its MCP servers in a JSON file of its own, at its own place:

==============  ===============================================  ===========================
client          user scope (default)                             project scope (``--scope``)
==============  ===============================================  ===========================
claude-desktop  ``claude_desktop_config.json`` in Claude's        (none)
                config folder: ``~/Library/Application
                Support/Claude`` (macOS), ``%APPDATA%\\Claude``
                (Windows), ``$XDG_CONFIG_HOME/Claude`` (Linux)
claude-code     ``~/.claude.json``                               ``.mcp.json``
cursor          ``~/.cursor/mcp.json``                           ``.cursor/mcp.json``
vscode          ``mcp.json`` in the ``Code/User`` profile folder  ``.vscode/mcp.json``
==============  ===============================================  ===========================

Claude Desktop, Claude Code and Cursor list servers under ``mcpServers``; VS Code under
``servers``, with ``"type": "stdio"``. The entry runs this installation's own ``severance``
executable with absolute paths (the clients start servers from a folder of their choosing,
with a minimal ``PATH``), so the config works however the client is launched. Everything else
in the file is kept as it was (its layout aside); the file is replaced atomically, its previous
content kept as ``<file>.bak``, and a file with comments is refused rather than stripped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import InvalidInputError

__all__ = ["CLIENTS", "ClientSpec", "config_path", "install", "server_entry"]

Scope = Literal["user", "project"]


@dataclass(frozen=True)
class ClientSpec:
    """How one MCP client is configured."""

    name: str
    #: The name the client sends in ``initialize`` (what floors match on).
    client_name: str
    #: The key its config file lists servers under.
    key: str
    #: Whether the entry carries ``"type": "stdio"``.
    typed: bool
    #: Whether the client runs inside a workspace (its roots decide the floor).
    workspace: bool
    scopes: tuple[Scope, ...]


CLIENTS: dict[str, ClientSpec] = {
    "claude-desktop": ClientSpec(
        "claude-desktop", "claude-ai", "mcpServers", False, False, ("user",)
    ),
    "claude-code": ClientSpec(
        "claude-code", "claude-code", "mcpServers", True, True, ("user", "project")
    ),
    "cursor": ClientSpec("cursor", "cursor-vscode", "mcpServers", False, True, ("user", "project")),
    "vscode": ClientSpec(
        "vscode", "Visual Studio Code", "servers", True, True, ("user", "project")
    ),
}


def _app_data(home: Path, platform: str, env: Mapping[str, str]) -> Path:
    """Where desktop applications keep per-user configuration on this platform."""
    if platform == "darwin":
        return home / "Library" / "Application Support"
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config")


def config_path(
    client: str,
    scope: Scope = "user",
    *,
    home: Path | None = None,
    cwd: Path | None = None,
    platform: str = sys.platform,
    env: Mapping[str, str] = os.environ,
) -> Path:
    """The config file ``client`` reads its MCP servers from, for ``scope``."""
    spec = _spec(client)
    if scope not in spec.scopes:
        raise InvalidInputError(f"{client} has no {scope}-scope MCP config")
    home = home or Path.home()
    cwd = cwd or Path.cwd()
    if client == "claude-desktop":
        return _app_data(home, platform, env) / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return home / ".claude.json" if scope == "user" else cwd / ".mcp.json"
    if client == "cursor":
        return (home if scope == "user" else cwd) / ".cursor" / "mcp.json"
    if scope == "project":
        return cwd / ".vscode" / "mcp.json"
    return _app_data(home, platform, env) / "Code" / "User" / "mcp.json"


def _spec(client: str) -> ClientSpec:
    try:
        return CLIENTS[client]
    except KeyError:
        raise InvalidInputError(
            f"unknown client {client!r}: use one of {', '.join(CLIENTS)}"
        ) from None


def severance_command() -> list[str]:
    """The absolute command line that runs this installation's ``severance``."""
    scripts = Path(sys.executable).parent
    for name in ("severance", "severance.exe"):
        if (scripts / name).is_file():
            return [str((scripts / name).absolute())]
    return [str(Path(sys.executable).absolute()), "-c", "from severance.cli import main; main()"]


def server_entry(
    client: str,
    store: str,
    *,
    key_file: str | None = None,
    floor: str | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The server entry for ``client``: absolute command, store and (optional) key file."""
    spec = _spec(client)
    program, *prefix = list(command or severance_command())
    args = [*prefix, "--store", store]
    if key_file is not None:
        args += ["--key-file", key_file]
    args += ["serve", "--mcp"]
    if floor is not None:
        args += ["--floor", floor]
    entry: dict[str, Any] = {"type": "stdio"} if spec.typed else {}
    entry.update(command=program, args=args)
    return entry


@dataclass(frozen=True)
class Installed:
    path: Path
    name: str
    replaced: bool
    document: dict[str, Any]
    #: Where the file's previous content was kept, when there was a file.
    backup: Path | None = None


def install(
    client: str,
    path: Path,
    entry: Mapping[str, Any],
    *,
    name: str = "severance",
    write: bool = True,
) -> Installed:
    """Put ``entry`` under ``name`` in the client's config at ``path`` (kept otherwise).

    Refuses a file that is not a JSON object (changing nothing): a file with comments (VS
    Code and Cursor accept JSONC) is refused rather than rewritten without them. Before an
    existing file is replaced, its previous content is kept beside it as ``<name>.bak``; a
    link is followed, so the file it points to is updated and the link stays. With
    ``write=False`` only computes the resulting document.
    """
    spec = _spec(client)
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise InvalidInputError("a server name is a non-empty printable string")
    target = path.resolve() if path.is_symlink() else path
    document: dict[str, Any] = {}
    before: bytes | None = None
    if target.exists():
        try:
            before = target.read_bytes()
            text = before.decode("utf-8-sig")
            loaded = json.loads(text) if text.strip() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise InvalidInputError(
                f"cannot read {path} as JSON ({e}); left it unchanged (comments and trailing "
                "commas are not read: add the entry `--print` shows by hand)"
            ) from None
        if not isinstance(loaded, dict):
            raise InvalidInputError(f"{path} is not a JSON object; left it unchanged")
        document = loaded
    servers = document.get(spec.key)
    if servers is None:
        servers = document[spec.key] = {}
    if not isinstance(servers, dict):
        raise InvalidInputError(f"{path}: {spec.key!r} is not an object; left it unchanged")
    replaced = name in servers
    servers[name] = dict(entry)
    backup = None
    if write:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if before is not None else 0o600
        if before is not None:
            backup = target.with_name(f"{target.name}.bak")
            _write_atomically(backup, before, mode)
        body = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
        # The client may rewrite its own file at any time (Claude Code keeps state in
        # ~/.claude.json): if it changed since it was read, stop rather than lose that (this
        # narrows the window to the replace itself; the backup covers the rest).
        now = target.read_bytes() if target.exists() else None
        if now != before:
            raise InvalidInputError(f"{path} changed while it was being updated; run it again")
        _write_atomically(target, body, mode)
    return Installed(path, name, replaced, document, backup)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.severance-tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
