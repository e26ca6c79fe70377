"""Floors: the rules that decide which persona wakes for a context.

A floor names one persona and any of these conditions:

- ``clients``: globs on the client's name (``claude-code``, ``cursor*``), case-insensitive;
- ``paths``: globs on the workspace path. A pattern matches a workspace when it matches the
  path *or any of its ancestors*, so ``~/work`` and ``~/work/**`` both cover ``~/work/acme/x``;
  ``*`` stays within one path segment, ``**`` crosses segments; ``~`` is expanded;
- ``hosts``: globs on the host name, case-insensitive;
- ``hours``: weekly windows such as ``mon-fri 09:00-17:30`` or ``sat 10:00-14:00`` or
  ``daily 22:00-02:00`` (a window may wrap past midnight), read in ``timezone`` (IANA name,
  default UTC).

Within one condition any pattern may match; across conditions all given ones must match.
Floors are tried in order and the first match wins; a context that names a floor explicitly
wakes exactly that floor; a floor with no conditions matches only by name or as the default.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import FloorNotFoundError, InvalidFloorError, NoFloorError

__all__ = ["Context", "Floor", "FloorMatch", "resolve"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WINDOW = re.compile(
    r"^(?P<days>daily|weekdays|weekends|[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$"
)


def check_name(name: str, what: str) -> str:
    """Validate a persona or floor name: lower-case letters, digits, ``_ . -``; ≤ 64 chars."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidFloorError(
            f"invalid {what} name {name!r}: use 1-64 lower-case letters, digits, '_', '.' or '-'"
            ", starting with a letter or digit"
        )
    return name


def _minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise InvalidFloorError(f"invalid time of day {text!r}")
    return hours * 60 + minutes


def _days(spec: str) -> frozenset[int]:
    if spec == "daily":
        return frozenset(range(7))
    if spec == "weekdays":
        return frozenset(range(5))
    if spec == "weekends":
        return frozenset({5, 6})
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise InvalidFloorError(f"invalid day in {spec!r}: use mon, tue, … sun")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


@dataclass(frozen=True)
class HoursWindow:
    days: frozenset[int]
    start: int  # minutes after midnight
    end: int

    @classmethod
    def parse(cls, text: str) -> HoursWindow:
        m = _WINDOW.match(text.strip().lower())
        if not m:
            raise InvalidFloorError(
                f"invalid hours {text!r}: expected e.g. 'mon-fri 09:00-17:30'"
                " or 'daily 22:00-02:00'"
            )
        start, end = _minutes(m["start"]), _minutes(m["end"])
        if start == end:
            raise InvalidFloorError(f"invalid hours {text!r}: the window is empty")
        return cls(_days(m["days"]), start, end)

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Wraps past midnight: the late part belongs to the listed day, the early part to the
        # day after it.
        return (day in self.days and minute >= self.start) or (
            (day - 1) % 7 in self.days and minute < self.end
        )


def _expand(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


@lru_cache(maxsize=512)
def _path_regex(expanded: str) -> re.Pattern[str]:
    # Cached on the *expanded* pattern: ``~`` and relative patterns depend on HOME and the
    # working directory, which may change during the life of a process.
    out = []
    i = 0
    while i < len(expanded):
        c = expanded[i]
        if expanded.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z" if not expanded.endswith("**") else "".join(out))


def path_matches(pattern: str, path: str) -> bool:
    target = _expand(path)
    regex = _path_regex(_expand(pattern))
    # Trailing "/.*" in the regex already lets a pattern match any descendant of a match.
    return bool(regex.match(target)) or bool(regex.match(target + "/"))


@dataclass(frozen=True)
class Floor:
    """A named rule that wakes one persona."""

    name: str
    persona: str
    clients: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    hours: tuple[str, ...] = ()
    timezone: str | None = None
    default: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "floor")
        for window in self.hours:
            HoursWindow.parse(window)
        if self.timezone is not None:
            _zone(self.timezone)
        for patterns in (self.clients, self.paths, self.hosts):
            for p in patterns:
                if not isinstance(p, str) or not p.strip():
                    raise InvalidFloorError("floor patterns may not be empty")

    @property
    def has_conditions(self) -> bool:
        return bool(self.clients or self.paths or self.hosts or self.hours)

    def rule_json(self) -> str:
        return json.dumps(
            {
                "clients": list(self.clients),
                "paths": list(self.paths),
                "hosts": list(self.hosts),
                "hours": list(self.hours),
                "timezone": self.timezone,
            },
            sort_keys=True,
        )

    @classmethod
    def from_rule(cls, name: str, persona: str, rule: str, default: bool) -> Floor:
        data = json.loads(rule)
        return cls(
            name=name,
            persona=persona,
            clients=tuple(data.get("clients", ())),
            paths=tuple(data.get("paths", ())),
            hosts=tuple(data.get("hosts", ())),
            hours=tuple(data.get("hours", ())),
            timezone=data.get("timezone"),
            default=default,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "persona": self.persona,
            "clients": list(self.clients),
            "paths": list(self.paths),
            "hosts": list(self.hosts),
            "hours": list(self.hours),
            "timezone": self.timezone,
            "default": self.default,
        }

    def match(self, context: Context) -> list[str] | None:
        """The reasons this floor matches the context, or None if it does not."""
        if not self.has_conditions:
            return None
        reasons: list[str] = []
        if self.clients:
            client = (context.client or "").lower()
            hit = next(
                (p for p in self.clients if client and fnmatch.fnmatchcase(client, p.lower())), None
            )
            if hit is None:
                return None
            reasons.append(f"client {context.client!r} matches {hit!r}")
        if self.paths:
            found = next(
                ((p, path) for path in context.paths for p in self.paths if path_matches(p, path)),
                None,
            )
            if found is None:
                return None
            reasons.append(f"path {found[1]!r} matches {found[0]!r}")
        if self.hosts:
            host = (context.host or "").lower()
            hit = next(
                (p for p in self.hosts if host and fnmatch.fnmatchcase(host, p.lower())), None
            )
            if hit is None:
                return None
            reasons.append(f"host {context.host!r} matches {hit!r}")
        if self.hours:
            zone = _zone(self.timezone or "UTC")
            at = context.at or datetime.now(UTC)
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)  # naive means UTC, as everywhere else
            local = at.astimezone(zone)
            hit = next((w for w in self.hours if HoursWindow.parse(w).contains(local)), None)
            if hit is None:
                return None
            reasons.append(f"time {local:%a %H:%M} {zone.key} is within {hit!r}")
        return reasons


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidFloorError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Context:
    """What is known about where a request comes from.

    ``floor`` names a floor explicitly; ``paths`` are workspace roots (an MCP client may give
    several); ``at`` defaults to now.
    """

    floor: str | None = None
    client: str | None = None
    paths: tuple[str, ...] = ()
    host: str | None = None
    at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Context:
        for key in ("floor", "client", "host"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidFloorError(f"the context's {key!r} must be a string")
        paths = data.get("paths") or ()
        if isinstance(paths, str | os.PathLike):
            paths = (paths,)
        if not isinstance(paths, Iterable):
            raise InvalidFloorError("the context's paths must be strings")
        paths = tuple(paths)
        if data.get("path"):
            paths = (data["path"], *paths)
        if not all(isinstance(p, str | os.PathLike) for p in paths):
            raise InvalidFloorError("the context's paths must be strings")
        at = data.get("at") or data.get("time")
        if isinstance(at, str):
            try:
                at = datetime.fromisoformat(at)
            except ValueError:
                raise InvalidFloorError(f"invalid time {at!r} in context") from None
        if at is not None and not isinstance(at, datetime):
            raise InvalidFloorError("the context's time must be a datetime or ISO-8601 text")
        known = {"floor", "client", "path", "paths", "host", "at", "time"}
        unknown = set(data) - known
        if unknown:
            raise InvalidFloorError(f"unknown context keys: {', '.join(sorted(unknown))}")
        return cls(
            floor=data.get("floor"),
            client=data.get("client"),
            paths=tuple(str(p) for p in paths),
            host=data.get("host"),
            at=at,
        )


@dataclass(frozen=True)
class FloorMatch:
    """Which floor woke which persona, and why."""

    floor: Floor
    persona: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"floor": self.floor.name, "persona": self.persona, "reasons": list(self.reasons)}


def resolve(floors: Sequence[Floor], context: Context) -> FloorMatch:
    """The floor that wakes for ``context``: explicit name, else first match, else default."""
    if context.floor is not None:
        for floor in floors:
            if floor.name == context.floor:
                return FloorMatch(floor, floor.persona, (f"floor {floor.name!r} named explicitly",))
        raise FloorNotFoundError(f"no floor named {context.floor!r}")
    for floor in floors:
        reasons = floor.match(context)
        if reasons is not None:
            return FloorMatch(floor, floor.persona, tuple(reasons))
    for floor in floors:
        if floor.default:
            return FloorMatch(
                floor, floor.persona, ("no floor matched; this is the default floor",)
            )
    raise NoFloorError("no floor matches this context and no default floor is set")
