"""Server-side rendering: one Jinja2 environment, autoescaping everything.

Memory text, tags, metadata and audit details are user data and are *always* escaped (the
environment autoescapes every template, and no template marks user data ``|safe``), so a
memory holding ``<script>`` shows as those characters. Together with the CSP, which allows no
inline script at all, stored markup has no way to run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["environment", "render_page"]


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _when_exact(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plain(value: Any) -> str:
    """An audit detail value as a person reads it (not Python's ``None``/``True``)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _seconds_left(value: datetime) -> int:
    """Seconds until ``value`` by the server's clock: the page counts down from this, so a
    browser whose clock is off still shows the right time (and does not reload in a loop)."""
    return max(0, int((value - datetime.now(UTC)).total_seconds()))


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("severance.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when,
        when_exact=_when_exact,
        iso=_iso,
        pretty=_pretty,
        score=_score,
        plain=_plain,
        seconds_left=_seconds_left,
    )
    return env


def render_page(env: Environment, template: str, context: dict[str, Any]) -> str:
    return env.get_template(template).render(context)
