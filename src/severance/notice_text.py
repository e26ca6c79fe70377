"""Notices told in words: one line per override or reintegration, the same on every interface.

A persona is shown what happened to it while it was not awake normally (see
:meth:`~severance.session.Session.notices`). The CLI prints these lines on stderr, the MCP
server puts them on its first result and behind its ``notices`` tool, the HTTP API returns the
same events at ``GET /v1/notices``.
"""

from __future__ import annotations

from .model import Notice

__all__ = ["describe"]


def describe(persona: str, notice: Notice) -> str:
    """One line saying what ``notice`` means for ``persona``."""
    d = notice.detail
    when = f"{notice.at:%Y-%m-%d %H:%M} UTC"
    if notice.event == "override":
        minutes = d.get("minutes")
        reason = d.get("reason")
        return (
            f"persona {persona} was woken by an override on {when}"
            + (f" for {minutes} min" if minutes else "")
            + (f" (reason: {reason})" if reason else "")
        )
    if notice.event in ("reintegrated_into", "reintegrated_from"):
        mode = "moved" if d.get("mode") == "move" else "copied"
        count = d.get("copied", d.get("selected", 0))
        merged = d.get("merged")
        extra = f", {merged} merged with identical ones" if merged else ""
        if notice.event == "reintegrated_from":
            return (
                f"{count} memories were {mode} into persona {persona} from"
                f" {d.get('source')!s} on {when}{extra}"
            )
        return (
            f"{count} memories of persona {persona} were {mode} into {d.get('into')!s}"
            f" on {when}{extra}"
        )
    return f"{notice.event} on {when}"
