"""Client families: what real MCP clients call themselves, and the one name floors use.

A floor's ``--client cursor`` must match Cursor, yet Cursor says ``cursor-vscode`` in the
``clientInfo.name`` of its MCP ``initialize`` request, VS Code says ``Visual Studio Code``,
Codex ``codex-mcp-client`` and Claude Desktop ``claude-ai``. :data:`FAMILIES` maps those names
(matched case-insensitively; a few are globs, for variants such as ``Visual Studio Code -
Insiders``) to one *family* name. A floor's client pattern that is a family name matches every
name of the family; any other pattern is a glob on the name as sent, exactly as before.

The names come from the clients' own source (Continue's ``new Client({name:
"continue-client"})``, the Python SDK's default ``mcp``), from Apify's
``mcp-client-capabilities`` index (keyed by ``clientInfo.name`` as captured from each client)
and from MCP inspector logs in issue threads. ``docs/concepts.md`` prints this table; a test
checks the two agree.

A client behind a stdio-to-HTTP bridge is known by what it says it is: ``mcp-remote`` appends
`` (via mcp-remote 0.1.37)`` to the name it forwards (Claude Desktop then sends ``claude-ai (via
mcp-remote 0.1.37)``), so a trailing ``(via …)`` is set aside when finding the family.

The Severance command line identifies itself as ``severance-cli`` (family ``terminal``), so a
floor can take in the terminal (``--client terminal``) or leave it out (``--client '!terminal'``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CLI_CLIENT",
    "FAMILIES",
    "ClientFamily",
    "family_names",
    "family_of",
    "is_known",
    "pattern_matches",
    "underlying",
]

#: The client name the Severance CLI sends for itself.
CLI_CLIENT = "severance-cli"


@dataclass(frozen=True)
class ClientFamily:
    """One client product and every ``clientInfo.name`` it is known to send."""

    name: str
    title: str
    #: Names as sent (case-insensitive); entries with ``*`` or ``?`` are globs.
    sends: tuple[str, ...]

    def claims(self, client: str) -> bool:
        folded = client.casefold()
        return any(fnmatch.fnmatchcase(folded, s.casefold()) for s in self.sends)


# Order matters only for globs: the first family that claims a name owns it. Exact names are
# unique across the table (a test checks).
FAMILIES: tuple[ClientFamily, ...] = (
    ClientFamily("claude-desktop", "Claude Desktop (and claude.ai)", ("claude-ai",)),
    ClientFamily("claude-code", "Claude Code", ("claude-code", "Claude Code")),
    ClientFamily("cursor", "Cursor", ("cursor-vscode",)),
    ClientFamily(
        "vscode",
        "Visual Studio Code (GitHub Copilot)",
        ("Visual Studio Code", "Visual-Studio-Code", "Visual Studio Code - *"),
    ),
    ClientFamily("windsurf", "Windsurf", ("windsurf-client", "Windsurf")),
    ClientFamily("zed", "Zed", ("Zed",)),
    ClientFamily("codex", "OpenAI Codex", ("codex-mcp-client", "Codex")),
    ClientFamily("cline", "Cline", ("Cline",)),
    ClientFamily("roo-code", "Roo Code", ("Roo Code", "Roo-Code")),
    ClientFamily("kilo-code", "Kilo Code", ("Kilo-Code",)),
    ClientFamily("continue", "Continue", ("continue-client", "continue-cli-client")),
    ClientFamily("goose", "Goose", ("goose", "goose-cli")),
    ClientFamily("gemini-cli", "Gemini CLI", ("gemini-cli-mcp-client",)),
    ClientFamily("copilot-cli", "GitHub Copilot CLI", ("github-copilot-developer",)),
    ClientFamily("jetbrains", "JetBrains AI Assistant", ("JetBrains-*-copilot-intellij",)),
    ClientFamily("opencode", "opencode", ("opencode",)),
    ClientFamily("amp", "Amp", ("amp-mcp-client",)),
    ClientFamily("amazon-q", "Amazon Q Developer CLI", ("Q-DEV-CLI", "Q DEV CLI")),
    ClientFamily("chatgpt", "ChatGPT", ("ChatGPT",)),
    # Warp names itself by its bundle id: dev.warp.Warp-Stable, -Preview, -Dev (a Warp
    # developer's log in effect-mcp issue 18).
    ClientFamily("warp", "Warp", ("dev.warp.Warp-*",)),
    ClientFamily("antigravity", "Google Antigravity", ("antigravity-client",)),
    ClientFamily("inspector", "MCP Inspector", ("mcp-inspector",)),
    ClientFamily("mcp-python-sdk", "MCP Python SDK (no name given)", ("mcp",)),
    ClientFamily("terminal", "Severance CLI (the terminal)", (CLI_CLIENT,)),
)

_BY_NAME = {f.name: f for f in FAMILIES}
# What a bridge adds to the name it forwards: "claude-ai (via mcp-remote 0.1.37)".
_VIA = re.compile(r"\s*\(via [^()]*\)\s*\Z", re.IGNORECASE)


def underlying(client: str) -> str:
    """The client's own name, without a bridge's ``(via …)`` annotation."""
    return _VIA.sub("", client) or client


def family_names() -> tuple[str, ...]:
    """Every family name, in table order."""
    return tuple(_BY_NAME)


@lru_cache(maxsize=1024)
def family_of(client: str | None) -> str | None:
    """The family a client name belongs to, or None if the table does not know it."""
    if not client:
        return None
    own = underlying(client)
    return next((f.name for f in FAMILIES if f.claims(own)), None)


def pattern_matches(pattern: str, client: str | None) -> bool:
    """Whether one floor client pattern (a family name or a glob, no ``!``) matches ``client``.

    A family name matches every name of its family, and also the family name itself sent
    verbatim; anything else is a case-insensitive glob on the name as sent.
    """
    if not client:
        return False
    folded = pattern.casefold()
    family = _BY_NAME.get(folded)
    own = underlying(client)
    if family is not None and (family.claims(own) or own.casefold() == folded):
        return True
    return fnmatch.fnmatchcase(client.casefold(), folded)


def is_known(pattern: str) -> bool:
    """Whether a client pattern can match anything the table knows (a family or a sent name).

    Used to warn about typos (``--client cursr``); an unknown pattern still works as a glob.
    """
    folded = pattern.removeprefix("!").casefold()
    if folded in _BY_NAME or any(ch in folded for ch in "*?["):
        return True
    return family_of(folded) is not None
