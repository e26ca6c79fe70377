"""Where the servers listen: their default ports and ``HOST:PORT`` as typed on the command line.

Shared by ``severance serve`` and ``severance console``.
"""

from __future__ import annotations

from ..errors import InvalidInputError

__all__ = ["DEFAULT_CONSOLE_PORT", "DEFAULT_HTTP_PORT", "DEFAULT_MCP_PORT", "parse_address"]

DEFAULT_HTTP_PORT = 8765
DEFAULT_MCP_PORT = 8766
DEFAULT_CONSOLE_PORT = 8767


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``HOST`` or ``PORT`` → (host, port); host defaults to
    127.0.0.1."""
    value = text.strip()
    host, port_text = "127.0.0.1", str(default_port)
    if value.isdigit():
        port_text = value
    elif value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        host = inner
        if rest.startswith(":"):
            port_text = rest[1:]
        elif rest:
            raise InvalidInputError(f"invalid address {text!r}: use HOST:PORT")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif value and ":" not in value:
        host = value
    else:
        raise InvalidInputError(f"invalid address {text!r}: use HOST:PORT or [IPV6]:PORT")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidInputError(f"invalid address {text!r}: use HOST:PORT")
    return host, int(port_text)
