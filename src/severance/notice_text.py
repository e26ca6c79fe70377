"""Notices told in words: one line per override or reintegration, the same on every interface.

A persona is shown what happened to it while it was not awake normally (see
:meth:`~severance.session.Session.notices`). The CLI prints these lines on stderr, the MCP
server puts them on its first result and behind its ``notices`` tool, the HTTP API returns the
same events at ``GET /v1/notices``.

A line never names another persona, nor says anything of its memories but how many: the
words go to whoever this persona's client is (an assistant, a pass holder), and personas do
not learn of each other through it. ``severance audit show`` tells the user the rest.
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
                f"{count} memories were {mode} into persona {persona} from another persona"
                f" on {when}{extra} (see `severance audit show`)"
            )
        return (
            f"{count} memories of persona {persona} were {mode} into another persona"
            f" on {when}{extra} (see `severance audit show`)"
        )
    return f"{notice.event} on {when}"
