"""The MCP server is ``severance.mcp`` (the style guide's name) without shadowing the SDK.

Circles among the adapters and module sizes are checked for the whole package by
tests/test_layers.py.
"""

from __future__ import annotations

from pathlib import Path

import severance

SRC = Path(severance.__file__).parent


def test_mcp_is_the_module_and_the_sdk_is_still_mcp() -> None:
    import mcp

    import severance.mcp as server

    assert not (SRC / "mcp_server.py").exists()
    assert Path(mcp.__file__).parent.name == "mcp" and "site-packages" in mcp.__file__
    assert server.create_mcp_server.__module__ == "severance.mcp"
