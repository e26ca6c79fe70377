"""Floors: the rules that decide which persona wakes for a context.

A floor names one persona and any of these conditions:

- ``clients``: client families (``cursor`` matches what Cursor really sends, ``cursor-vscode``;
  see :mod:`severance.clients`) or globs on the client's name as sent, case-insensitive; a
  pattern starting with ``!`` excludes (``!terminal``: not from the Severance CLI);
- ``paths``: globs on the workspace path. A pattern matches a workspace when it matches the
  path *or any of its ancestors*, so ``~/work`` and ``~/work/**`` both cover ``~/work/acme/x``;
  ``*`` stays within one path segment, ``**`` crosses segments; ``~`` is expanded; symlinks
  are resolved on both sides and case is folded where the file system folds it
  (:mod:`severance.workspace`);
- ``hosts``: globs on the host name, case-insensitive;
- ``hours``: weekly windows such as ``mon-fri 09:00-17:30`` or ``sat 10:00-14:00`` or
  ``daily 22:00-02:00`` (a window may wrap past midnight), read in ``timezone`` (IANA name,
  default UTC).

Within one condition any pattern may match; across conditions all given ones must match.
Floors are tried in order and the first match wins; a context that names a floor explicitly
wakes exactly that floor; a floor with no conditions matches only by name or as the default.
A *strict* resolution never falls back to the default floor. :func:`shadows` finds floors an
earlier floor makes unreachable; :func:`explain` says for every floor why it did or did not
match.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import clients
from .errors import FloorNotFoundError, InvalidFloorError, NoFloorError
from .workspace import (
    is_anchored,
    literal_prefix,
    path_matches,
    resolve_path,
    resolve_pattern,
)

__all__ = [
    "Context",
    "Floor",
    "FloorCheck",
    "FloorMatch",
    "Shadow",
    "explain",
    "path_matches",
    "resolve",
    "shadows",
]

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
                if not isinstance(p, str) or not p.strip() or p.strip() == "!":
                    raise InvalidFloorError("floor patterns may not be empty")
                if any(unicodedata.category(ch) == "Cc" for ch in p):
                    raise InvalidFloorError(f"invalid pattern {p!r}: it holds control characters")
        for p in (*self.paths, *self.hosts):
            if p.startswith("!"):
                raise InvalidFloorError(
                    f"invalid pattern {p!r}: only client patterns may exclude with '!'"
                )
        for p in self.paths:
            if not is_anchored(p):
                raise InvalidFloorError(
                    f"floor {self.name!r}: invalid path pattern {p!r}: a relative path would mean"
                    f" a different folder"
                    f" from every directory; write it from '/' or '~' (e.g. '~/{p}'), or start"
                    f" it with '**/' to match it anywhere"
                )

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

    def check(self, context: Context) -> FloorCheck:
        """Whether this floor matches ``context``, with one reason per condition either way."""
        if not self.has_conditions:
            why = (
                "it has no conditions: it wakes by name, or as the default when no floor matches"
                if self.default
                else "it has no conditions: it wakes only by name"
            )
            return FloorCheck(self, False, (why,))
        reasons: list[str] = []
        matched = True
        for ok, reason in (
            self._check_clients(context),
            self._check_paths(context),
            self._check_hosts(context),
            self._check_hours(context),
        ):
            if reason:
                reasons.append(reason)
                matched = matched and ok
        return FloorCheck(self, matched, tuple(reasons))

    def match(self, context: Context) -> list[str] | None:
        """The reasons this floor matches the context, or None if it does not."""
        result = self.check(context)
        return list(result.reasons) if result.matched else None

    def _check_clients(self, context: Context) -> tuple[bool, str]:
        if not self.clients:
            return True, ""
        shown = describe_client(context.client)
        excluded = [p for p in self.clients if p.startswith("!")]
        wanted = [p for p in self.clients if not p.startswith("!")]
        hit = next((p for p in excluded if clients.pattern_matches(p[1:], context.client)), None)
        if hit is not None:
            return False, f"client {shown} is excluded by {hit!r}"
        if not wanted:
            return True, f"client {shown} is not excluded by {', '.join(map(repr, excluded))}"
        hit = next((p for p in wanted if clients.pattern_matches(p, context.client)), None)
        if hit is None:
            return False, f"client {shown} matches none of {', '.join(map(repr, wanted))}"
        return True, f"client {shown} matches {hit!r}"

    def _check_paths(self, context: Context) -> tuple[bool, str]:
        if not self.paths:
            return True, ""
        if not context.paths:
            return False, "no workspace path was given"
        for path in context.paths:
            for pattern in self.paths:
                if path_matches(pattern, path):
                    return True, f"path {_shown_path(path)} matches {pattern!r}"
        shown = ", ".join(_shown_path(p) for p in context.paths)
        return False, f"path {shown} matches none of {', '.join(map(repr, self.paths))}"

    def _check_hosts(self, context: Context) -> tuple[bool, str]:
        if not self.hosts:
            return True, ""
        host = (context.host or "").casefold()
        hit = next(
            (p for p in self.hosts if host and fnmatch.fnmatchcase(host, p.casefold())), None
        )
        if hit is None:
            return (
                False,
                f"host {context.host!r} matches none of {', '.join(map(repr, self.hosts))}",
            )
        return True, f"host {context.host!r} matches {hit!r}"

    def _check_hours(self, context: Context) -> tuple[bool, str]:
        if not self.hours:
            return True, ""
        zone = _zone(self.timezone or "UTC")
        at = context.at or clock()
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # naive means UTC, as everywhere else
        local = at.astimezone(zone)
        hit = next((w for w in self.hours if HoursWindow.parse(w).contains(local)), None)
        if hit is None:
            windows = ", ".join(map(repr, self.hours))
            return False, f"time {local:%a %H:%M} {zone.key} is outside {windows}"
        return True, f"time {local:%a %H:%M} {zone.key} is within {hit!r}"


def _now() -> datetime:
    return datetime.now(UTC)


#: Where a floor's hours read the time when a context carries none (``Context.at``). Tests
#: that must not depend on the wall clock replace it with one that fails.
clock: Callable[[], datetime] = _now


def describe_client(client: str | None) -> str:
    """``'cursor-vscode' (cursor)``: a client name as sent, with its family if known."""
    if not client:
        return "(none given)"
    family = clients.family_of(client)
    return f"{client!r} ({family})" if family and family != client.casefold() else repr(client)


def _shown_path(path: str) -> str:
    resolved = resolve_path(path)
    expanded = os.path.normpath(os.path.abspath(os.path.expanduser(path)))
    return repr(path) if resolved == expanded else f"{path!r} (resolved {resolved!r})"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidFloorError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Context:
    """What is known about where a request comes from.

    ``floor`` names a floor explicitly; ``client`` is the client's name as it sends it;
    ``paths`` are workspace roots (an MCP client may give several); ``at`` defaults to now;
    ``strict`` refuses a context no floor matches even when there is a default floor.
    """

    floor: str | None = None
    client: str | None = None
    paths: tuple[str, ...] = ()
    host: str | None = None
    at: datetime | None = None
    strict: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def client_family(self) -> str | None:
        return clients.family_of(self.client)

    def describe(self) -> str:
        """One line naming what the context says, for errors and audit displays."""
        where = ", ".join(repr(p) for p in self.paths) or "no workspace"
        host = f" on host {self.host!r}" if self.host else ""
        return f"client {describe_client(self.client)} in {where}{host}"

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Context:
        for key in ("floor", "client", "host"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidFloorError(f"the context's {key!r} must be a string")
            if data.get(key) is not None:
                _check_text(data[key], key, MAX_NAME_CHARS)
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
        if len(paths) > MAX_PATHS:
            raise InvalidFloorError(
                f"the context gives {len(paths)} workspace paths; at most {MAX_PATHS} are read"
            )
        for p in paths:
            _check_text(os.fspath(p), "path", MAX_PATH_CHARS)
        at = data.get("at") or data.get("time")
        if isinstance(at, str):
            try:
                at = datetime.fromisoformat(at)
            except ValueError:
                raise InvalidFloorError(f"invalid time {at!r} in context") from None
        if at is not None and not isinstance(at, datetime):
            raise InvalidFloorError("the context's time must be a datetime or ISO-8601 text")
        strict = data.get("strict", False)
        if not isinstance(strict, bool):
            raise InvalidFloorError("the context's 'strict' must be true or false")
        known = {"floor", "client", "path", "paths", "host", "at", "time", "strict"}
        unknown = set(data) - known
        if unknown:
            raise InvalidFloorError(f"unknown context keys: {', '.join(sorted(unknown))}")
        return cls(
            floor=data.get("floor"),
            client=data.get("client"),
            # Relative paths are made absolute now, against the caller's directory, so that the
            # audit log records where the request really came from (never ".").
            paths=tuple(_absolute(os.fspath(p)) for p in paths),
            host=data.get("host"),
            at=at,
            strict=strict,
        )


#: Longest client or host name a context may give: real ones are a few dozen characters, and
#: each is written to the audit log and kept in the matchers' caches.
MAX_NAME_CHARS = 256
#: Most workspace paths (MCP roots) one context may give, and the longest one.
MAX_PATHS = 256
MAX_PATH_CHARS = 4096


def _check_text(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidFloorError(f"the context's {what} is too long ({len(value)} > {limit} chars)")
    # Control characters are in no real name or path; they could forge lines in `floor
    # clients` or audit displays, and a NUL cannot reach the file system at all.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidFloorError(f"the context's {what} {value!r} holds control characters")


def _absolute(path: str) -> str:
    if not path or path.startswith("~") or os.path.isabs(path):
        return path
    return os.path.abspath(path)


@dataclass(frozen=True)
class FloorCheck:
    """One floor tried against one context: did it match, and why (or why not)."""

    floor: Floor
    matched: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"floor": self.floor.name, "matched": self.matched, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class FloorMatch:
    """Which floor woke which persona, and why."""

    floor: Floor
    persona: str
    reasons: tuple[str, ...]

    @property
    def by(self) -> str:
        """How the floor was chosen: ``name``, ``rule`` or ``default``."""
        if self.reasons and self.reasons[0].startswith("floor ") and "named" in self.reasons[0]:
            return "name"
        return "default" if self.reasons == (DEFAULT_REASON,) else "rule"

    def to_dict(self) -> dict[str, Any]:
        return {"floor": self.floor.name, "persona": self.persona, "reasons": list(self.reasons)}


DEFAULT_REASON = "no floor matched; this is the default floor"


def resolve(floors: Sequence[Floor], context: Context, *, strict: bool = False) -> FloorMatch:
    """The floor that wakes for ``context``: explicit name, else first match, else default.

    With ``strict`` (or ``context.strict``) the default floor is never used: a context no
    floor matches is refused with :class:`NoFloorError`, whose message says which floor to add.
    """
    if context.floor is not None:
        for floor in floors:
            if floor.name == context.floor:
                return FloorMatch(floor, floor.persona, (f"floor {floor.name!r} named explicitly",))
        raise FloorNotFoundError(f"no floor named {context.floor!r}")
    for floor in floors:
        reasons = floor.match(context)
        if reasons is not None:
            return FloorMatch(floor, floor.persona, tuple(reasons))
    strict = strict or context.strict
    default = next((f for f in floors if f.default), None)
    if default is not None and not strict:
        return FloorMatch(default, default.persona, (DEFAULT_REASON,))
    raise NoFloorError(no_floor_message(context, strict=default is not None))


def explain(floors: Sequence[Floor], context: Context) -> list[FloorCheck]:
    """Every floor, in order, tried against ``context`` — for ``floor test``."""
    return [floor.check(context) for floor in floors]


def no_floor_message(context: Context, *, strict: bool) -> str:
    """Why nothing woke, and the floor to add so that this context wakes something."""
    why = (
        "and strict mode does not fall back to the default floor"
        if strict
        else "and no default floor is set"
    )
    suggestion = ["severance floor add NAME --persona PERSONA"]
    family = context.client_family
    if context.client:
        suggestion.append(f"--client {shlex.quote(family or context.client)}")
    if context.paths:
        suggestion.append(f"--path {shlex.quote(_home_relative(context.paths[0]) + '/**')}")
    return (
        f"no floor matches {context.describe()} {why}, so nothing was read or stored;"
        f" add a floor for it, e.g. `{' '.join(suggestion)}`"
    )


def _home_relative(path: str) -> str:
    resolved = resolve_path(path)
    home = resolve_path("~")
    if resolved == home or resolved.startswith(home + "/"):
        return "~" + resolved[len(home) :]
    return resolved


# -- shadowing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shadow:
    """A floor that can never match by rule, because an earlier floor matches all it does."""

    floor: str
    by: str

    @property
    def message(self) -> str:
        return (
            f"floor {self.floor!r} can never match by rule: floor {self.by!r}, tried before it,"
            f" matches every context it does; to fix, run"
            f" `severance floor move {self.floor} --before {self.by}`"
        )

    def to_dict(self) -> dict[str, str]:
        return {"floor": self.floor, "by": self.by, "message": self.message}


def shadows(floors: Sequence[Floor]) -> list[Shadow]:
    """Every floor shadowed by an earlier one (the first such earlier floor for each)."""
    found: list[Shadow] = []
    for i, later in enumerate(floors):
        if not later.has_conditions:
            continue
        by = next((f for f in floors[:i] if f.has_conditions and covers(f, later)), None)
        if by is not None:
            found.append(Shadow(later.name, by.name))
    return found


def covers(earlier: Floor, later: Floor) -> bool:
    """Whether every context ``later`` matches is certainly matched by ``earlier`` too.

    Conservative: True only when each of ``earlier``'s conditions provably includes the same
    condition of ``later`` (so a warning is never a false alarm; some overlaps go unreported).
    """
    return (
        earlier.has_conditions
        and later.has_conditions
        and _covers_clients(earlier.clients, later.clients)
        and _covers_paths(earlier.paths, later.paths)
        and _covers_globs(earlier.hosts, later.hosts)
        and _covers_hours(earlier, later)
    )


def _client_covers(a: str, b: str) -> bool:
    a, b = a.casefold(), b.casefold()
    if a == b:
        return True
    a_family = next((f for f in clients.FAMILIES if f.name == a), None)
    b_family = next((f for f in clients.FAMILIES if f.name == b), None)
    if b_family is not None:
        # b stands for every name of its family (and itself): a must take in all of them.
        names = [b, *(s.casefold() for s in b_family.sends)]
        return a_family is None and all(_glob_covers(a, n) for n in names)
    if a_family is not None:
        return not _has_glob(b) and a_family.claims(b)
    return _glob_covers(a, b)


def _covers_clients(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a:
        return True
    a_out = {p[1:].casefold() for p in a if p.startswith("!")}
    b_out = {p[1:].casefold() for p in b if p.startswith("!")}
    a_in = [p for p in a if not p.startswith("!")]
    b_in = [p for p in b if not p.startswith("!")]
    if not b or not a_out <= b_out:
        return False
    if not a_in:
        return True
    return bool(b_in) and all(any(_client_covers(x, y) for x in a_in) for y in b_in)


def _covers_paths(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a:
        return True
    if not b:
        return False
    # Everything ``y`` matches lies under its literal prefix, and a pattern that matches a
    # directory matches all below it: so ``x`` covers ``y`` iff it matches that prefix.
    return all(any(path_matches(x, literal_prefix(resolve_pattern(y))) for x in a) for y in b)


def _covers_globs(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a:
        return True
    return bool(b) and all(any(_glob_covers(x.casefold(), y.casefold()) for x in a) for y in b)


def _covers_hours(earlier: Floor, later: Floor) -> bool:
    if not earlier.hours:
        return True
    if not later.hours or (earlier.timezone or "UTC") != (later.timezone or "UTC"):
        return False
    norm = {" ".join(w.lower().split()) for w in earlier.hours}
    return all(" ".join(w.lower().split()) in norm for w in later.hours)


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _glob_covers(x: str, y: str) -> bool:
    """Whether glob ``x`` certainly matches every name glob ``y`` matches (both folded).

    Matching ``y`` as if it were a name would be wrong: ``laptop-?`` "matches" the text
    ``laptop-*`` yet not ``laptop-12``. So only the provable cases count: ``y`` has no
    wildcard and ``x`` matches it; or ``x`` is a literal followed by one ``*`` that ``y``
    starts with (``*`` alone included).
    """
    if x == y or (not _has_glob(y) and fnmatch.fnmatchcase(y, x)):
        return True
    head = x.removesuffix("*")
    return x.endswith("*") and not _has_glob(head) and y.startswith(head)
