"""The reference MCP memory server, ``@modelcontextprotocol/server-memory`` (npm), on the
machine's Node.js.

Its README gives one knob for where memories live, ``MEMORY_FILE_PATH``; one file per scope
is therefore one server process per scope, each started with its own file, and the handle for
a scope is the MCP connection to that scope's server (driven here by the official MCP Python
SDK client over stdio). Memories are entities (``create_entities``): the entity name is the
caller-chosen id (``id<canary>``), the text, tag and metadata value are its observations.

The package is pinned in ``bench/isolation/node/package.json`` and ``package-lock.json``;
install it with ``npm ci`` in that folder (nothing is downloaded at run time).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.isolation.base import Adapter, Call, PeerUnavailable
from bench.isolation.plants import SCOPES, Plant
from bench.isolation.tally import Outcome, Tally

__all__ = ["NODE_DIR", "McpMemoryAdapter", "server_entry"]

NODE_DIR = Path(__file__).resolve().parent / "node"
PACKAGE = "@modelcontextprotocol/server-memory"


def server_entry(node_dir: Path = NODE_DIR) -> Path:
    """The installed server's entry point; :class:`PeerUnavailable` if not installed."""
    entry = node_dir / "node_modules" / PACKAGE / "dist" / "index.js"
    if not entry.is_file():
        raise PeerUnavailable(f"{PACKAGE} is not installed: run `npm ci` in {node_dir}")
    return entry


def _outcome(result: Any) -> Outcome:
    body = " ".join(getattr(c, "text", "") for c in result.content)
    if result.structured_content is not None:
        body = json.dumps(result.structured_content, ensure_ascii=False) + " " + body
    return Outcome("tool-error" if result.is_error else "ok", body)


class McpMemoryAdapter(Adapter):
    label = "MCP memory server (reference, one file per scope)"
    handle = "the MCP connection to the scope's own server process (MEMORY_FILE_PATH)"

    def __init__(self, workdir: Path, *, node_dir: Path = NODE_DIR) -> None:
        super().__init__(workdir)
        self.entry = server_entry(node_dir)
        self.node = shutil.which("node")
        if self.node is None:
            raise PeerUnavailable("Node.js (`node`) is not on PATH")
        try:
            from mcp import Client  # noqa: F401
        except ImportError as exc:
            raise PeerUnavailable(f"the MCP SDK is not installed ({exc})") from exc
        package = json.loads((self.entry.parents[1] / "package.json").read_text("utf-8"))
        self.version = package.get("version")
        self._stack: contextlib.ExitStack | None = None
        self._portal: Any = None
        self._clients: dict[str, Any] = {}
        self.reopen()

    # -- processes ----------------------------------------------------------------------------
    def _file(self, scope: str) -> Path:
        return self.workdir / f"memory-{scope}.jsonl"

    def reopen(self) -> None:
        from anyio.from_thread import start_blocking_portal
        from mcp import Client, StdioServerParameters
        from mcp.types import Implementation

        stack = contextlib.ExitStack()
        self._portal = stack.enter_context(start_blocking_portal())
        for scope in SCOPES:
            params = StdioServerParameters(
                command=str(self.node),
                args=[str(self.entry)],
                env={"MEMORY_FILE_PATH": str(self._file(scope)), "PATH": "/usr/bin:/bin"},
                cwd=self.workdir,
            )
            client = Client(
                params, mode="legacy", client_info=Implementation(name="bench", version="1")
            )
            self._clients[scope] = stack.enter_context(
                self._portal.wrap_async_context_manager(client)
            )
        self._stack = stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._clients = {}

    def _tool(self, scope: str, name: str, args: dict[str, Any]) -> Call:
        shown = f"[{scope}'s server] {name}({json.dumps(args, ensure_ascii=False)})"
        try:
            result = self._portal.call(self._clients[scope].call_tool, name, args)
        except Exception as exc:  # a protocol error is an answer too
            return Call(shown, Outcome(type(exc).__name__, str(exc)))
        return Call(shown, _outcome(result))

    # -- set-up and files --------------------------------------------------------------------
    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        for scope, items in plants.items():
            entities = [
                {
                    "name": p.chosen_id,
                    "entityType": "memory",
                    "observations": [p.text, p.tag, p.metadata["ref"]],
                }
                for p in items
            ]
            c = self._tool(scope, "create_entities", {"entities": entities})
            if not c.outcome.ok:
                raise RuntimeError(f"create_entities failed: {c.outcome.text[:300]}")
            for p in items:
                self.ids[p.key] = p.chosen_id

    def files(self) -> list[Path]:
        return [self.workdir]

    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        names = [self.ids[p.key] for p in plants]
        self._tool(scope, "delete_entities", {"entityNames": names})
        return [f"[{scope}'s server] delete_entities(entityNames=[...])"]

    def info(self) -> dict[str, Any]:
        return {
            "version": f"{PACKAGE} {self.version}",
            "handle": self.handle,
            "configuration": f"`node {PACKAGE}/dist/index.js` per scope, env "
            "MEMORY_FILE_PATH=<dir>/memory-<scope>.jsonl; official MCP Python SDK client "
            "over stdio; a memory = an entity (name = id, observations = text, tag, metadata)",
            "doc": "the package README (npmjs.com/package/@modelcontextprotocol/server-memory:"
            " 'NPX with custom setting', MEMORY_FILE_PATH)",
        }

    # -- operations ---------------------------------------------------------------------------
    def search(self, scope: str, query: str) -> list[Call]:
        return [self._tool(scope, "search_nodes", {"query": query})]

    def get(self, scope: str, ident: str) -> Call:
        return self._tool(scope, "open_nodes", {"names": [ident]})

    def update(self, scope: str, ident: str, text: str) -> Call:
        return self._tool(
            scope, "add_observations", {"observations": [{"entityName": ident, "contents": [text]}]}
        )

    def delete(self, scope: str, ident: str) -> Call:
        return self._tool(scope, "delete_entities", {"entityNames": [ident]})

    def listing(self, scope: str) -> list[Call]:
        out = [self._tool(scope, "read_graph", {})]
        shown = f"[{scope}'s server] resources/read memory://knowledge-graph"
        try:
            res = self._portal.call(self._clients[scope].read_resource, "memory://knowledge-graph")
            text = " ".join(getattr(c, "text", "") for c in res.contents)
            out.append(Call(shown, Outcome("ok", text)))
        except Exception as exc:  # the resource is optional in older releases
            out.append(Call(shown, Outcome(type(exc).__name__, str(exc))))
        return out

    def absent_id(self) -> str:
        return f"id{uuid.uuid4().hex}"

    def forgotten(self) -> str:
        return (
            "no call takes a scope argument: the scope is which server process (and so which "
            "MEMORY_FILE_PATH) a client is connected to"
        )

    def servers(self, scope: str, victims: Sequence[Plant], tally: Tally) -> str:
        return (
            "no credentials: the server is a stdio process per scope; vectors 1-4 are measured "
            "through its MCP tools"
        )

    def victim_view(self, scope: str, plant: Plant) -> str | None:
        ident = self.ids[plant.key]
        result = self._portal.call(self._clients[scope].call_tool, "open_nodes", {"names": [ident]})
        graph = result.structured_content or {}
        for e in graph.get("entities", []):
            if e.get("name") == ident:
                return json.dumps(e.get("observations"))
        return None

    def timed_get(self, scope: str, ident: str) -> Any:
        return lambda: self.get(scope, ident)

    def timed_label(self) -> str:
        return "open_nodes(names=[<id>])"
