"""Where the console may listen, which origins it then answers to, and the TLS rule.

On a loopback address the console answers to ``127.0.0.1`` / ``localhost`` (or ``[::1]``) on
its port. Anywhere else it refuses to start unless it has TLS (a certificate and key) or was
told explicitly that plain HTTP is fine (``--insecure-remote``): a login cookie sent in the
clear over a network is a persona given away.
"""

from __future__ import annotations

import ipaddress
import socket

from ..errors import InvalidInputError

__all__ = ["bind", "check_exposure", "console_origins", "is_loopback"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, tls: bool, insecure_remote: bool) -> None:
    """Refuse a non-loopback address without TLS, unless explicitly allowed."""
    if not is_loopback(host) and not tls and not insecure_remote:
        raise InvalidInputError(
            f"the console would be reachable from other machines on {host} over plain HTTP;"
            " give --tls-cert and --tls-key, or --insecure-remote if you really mean it"
        )


def console_origins(host: str, port: int, tls: bool = False) -> list[str]:
    """The origins a console bound to ``host:port`` answers to; the first is the one to print."""
    scheme = "https" if tls else "http"
    if host in ("127.0.0.1", "localhost"):
        names = ["127.0.0.1", "localhost"]
    elif is_loopback(host):
        # Another loopback address (127.0.0.2, ::1): "localhost" would not reach it.
        names = [f"[{host}]" if ":" in host else host]
    elif host in ("0.0.0.0", "::", ""):
        names = [socket.getfqdn(), socket.gethostname(), "127.0.0.1", "localhost"]
    else:
        names = [f"[{host}]" if ":" in host else host, "127.0.0.1", "localhost"]
    return [f"{scheme}://{name.lower()}:{port}" for name in dict.fromkeys(names)]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything is unlocked: a busy port is a clear error."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except (OSError, OverflowError) as e:
        reason = getattr(e, "strerror", None) or e
        raise InvalidInputError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock
