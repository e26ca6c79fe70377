"""The store's floors as kept: adding, moving and removing them, strict routing, and routing
a context (the matching itself is :mod:`severance.floors`).

A :class:`FloorBook` is handed its collaborators by the store — the authenticated records
(through a getter that refuses once the store is closed), the persona lookup and the audit
log's ``append`` — so every change is signed (a floor's position is part of its MAC) and
audited, and nothing here knows the store.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .audit import to_entries
from .backends.base import FloorRow, PersonaRow
from .errors import AlreadyExistsError, FloorNotFoundError, InvalidFloorError, InvalidInputError
from .floors import (
    Context,
    Floor,
    FloorCheck,
    FloorMatch,
    Shadow,
    check_name,
    explain,
    resolve,
    shadows,
)
from .records import AuthenticatedBackend

__all__ = ["STRICT_KEY", "FloorBook", "as_context", "where"]

#: The store setting that turns strict routing on ("1") or off.
STRICT_KEY = "floor_strict"


class FloorBook:
    """The ordered floors of one store, and routing by them."""

    def __init__(
        self,
        records: Callable[[], AuthenticatedBackend],
        persona_row: Callable[[str], PersonaRow],
        audit: Callable[..., object],
    ) -> None:
        self._records = records
        self._persona_row = persona_row
        self._audit = audit

    def add(
        self,
        name: str,
        persona: str,
        *,
        clients: Iterable[str] = (),
        paths: Iterable[str] = (),
        hosts: Iterable[str] = (),
        hours: Iterable[str] = (),
        timezone: str | None = None,
        default: bool = False,
        before: str | None = None,
        after: str | None = None,
    ) -> Floor:
        """See :meth:`severance.store.Store.add_floor`."""
        floor = Floor(
            name=name,
            persona=persona,
            clients=_strings(clients, "clients"),
            paths=_strings(paths, "paths"),
            hosts=_strings(hosts, "hosts"),
            hours=_strings(hours, "hours"),
            timezone=timezone,
            default=bool(default),
        )
        if before is not None and after is not None:
            raise InvalidFloorError("give --before or --after, not both")
        row = self._persona_row(persona)
        backend = self._records()
        with backend.transaction():
            existing = backend.floors()
            if any(f.name == name for f in existing):
                raise AlreadyExistsError(f"a floor named {name!r} already exists")
            if default and any(f.is_default for f in existing):
                current = next(f.name for f in existing if f.is_default)
                raise InvalidFloorError(
                    f"floor {current!r} is already the default; remove it first"
                )
            order = [f.name for f in existing]
            index = _insert_index(order, before, after)
            position = max((f.position for f in existing), default=0) + 1
            backend.insert_floor(FloorRow(name, position, row.id, floor.rule_json(), floor.default))
            if index < len(order):
                order.insert(index, name)
                self._renumber(order)
            self._audit("floor_added", row.id, row.name, floor=name, position=index + 1)
        return floor

    def move(self, name: str, *, before: str | None = None, after: str | None = None) -> int:
        """See :meth:`severance.store.Store.move_floor`."""
        check_name(name, "floor")
        if (before is None) == (after is None):
            raise InvalidFloorError("say where to move it: --before FLOOR or --after FLOOR")
        if name in (before, after):
            raise InvalidFloorError("a floor cannot move relative to itself")
        backend = self._records()
        with backend.transaction():
            order = [f.name for f in backend.floors()]
            if name not in order:
                raise FloorNotFoundError(f"no floor named {name!r}")
            order.remove(name)
            index = _insert_index(order, before, after)
            order.insert(index, name)
            self._renumber(order)
            self._audit("floor_moved", floor=name, position=index + 1)
        return index + 1

    def _renumber(self, order: list[str]) -> None:
        """Give the floors positions 1, 2, … in ``order`` (inside the caller's transaction).

        Each moved row is written whole through the authenticated back-end, which signs it
        again: the position is part of a floor's MAC, so a bare position update would leave the
        row looking forged.
        """
        backend = self._records()
        rows = {f.name: f for f in backend.floors()}
        for position, name in enumerate(order, start=1):
            row = rows[name]
            if row.position != position:
                backend.update_floor(dataclasses.replace(row, position=position))

    def floors(self) -> list[Floor]:
        """The floors, in the order they are tried."""
        backend = self._records()
        names = {p.id: p.name for p in backend.personas()}
        return [
            Floor.from_rule(r.name, names[r.persona_id], r.rule, r.is_default)
            for r in backend.floors()
        ]

    def remove(self, name: str) -> None:
        check_name(name, "floor")
        backend = self._records()
        with backend.transaction():
            if not backend.delete_floor(name):
                raise FloorNotFoundError(f"no floor named {name!r}")
            self._audit("floor_removed", floor=name)

    def shadowed(self) -> list[Shadow]:
        """Floors that can never match by rule because an earlier floor matches all they do."""
        return shadows(self.floors())

    @property
    def strict(self) -> bool:
        """Whether a context no floor matches is refused even when a default floor exists."""
        return self._records().get_meta().get(STRICT_KEY) == "1"

    def set_strict(self, strict: bool) -> None:
        backend = self._records()
        with backend.transaction():
            backend.set_meta(STRICT_KEY, "1" if strict else "0")
            self._audit("floor_strict", strict=bool(strict))

    def resolve(
        self, context: Context | Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> FloorMatch:
        """Which floor (and so which persona) a context wakes, and why."""
        return resolve(self.floors(), as_context(context, kwargs), strict=self.strict)

    def explain(
        self, context: Context | Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> list[FloorCheck]:
        """Every floor tried against a context, in order, with why it did or did not match."""
        return explain(self.floors(), as_context(context, kwargs))

    def note_route(self, match: FloorMatch, context: Context) -> None:
        """See :meth:`severance.store.Store.note_route`."""
        row = self._persona_row(match.persona)
        self._audit(
            "routed", row.id, row.name, floor=match.floor.name, by=match.by, **where(context)
        )

    def clients_seen(self) -> list[dict[str, Any]]:
        """See :meth:`severance.store.Store.clients_seen`."""
        seen: dict[str, dict[str, Any]] = {}
        for entry in to_entries(self._records().audit_rows(None)):
            if entry.event not in ("enter", "routed") or "client" not in entry.detail:
                continue
            client = entry.detail.get("client") or ""
            item = seen.setdefault(
                client,
                {
                    "client": client or None,
                    "family": entry.detail.get("client_family"),
                    "floors": {},
                    "count": 0,
                    "last_seen": None,
                },
            )
            item["count"] += 1
            item["last_seen"] = entry.at.isoformat()
            floor = entry.detail.get("floor")
            if floor:
                item["floors"][floor] = entry.persona
        return sorted(seen.values(), key=lambda i: i["last_seen"] or "", reverse=True)


def _insert_index(order: list[str], before: str | None, after: str | None) -> int:
    """Where a floor goes in ``order`` (names): before/after a named floor, else at the end."""
    anchor = before if before is not None else after
    if anchor is None:
        return len(order)
    check_name(anchor, "floor")
    if anchor not in order:
        raise FloorNotFoundError(f"no floor named {anchor!r}")
    return order.index(anchor) + (1 if after is not None else 0)


def where(context: Context) -> dict[str, Any]:
    """What an audit entry records of a context: who asked and from where, never content."""
    if context.floor is not None:
        return {}
    return {
        "client": context.client,
        "client_family": context.client_family,
        "paths": list(context.paths),
    }


def _strings(values: object, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    if not isinstance(values, Iterable):
        raise InvalidFloorError(f"{what} must be a list of strings")
    out = tuple(values)
    if not all(isinstance(v, str) for v in out):
        raise InvalidFloorError(f"{what} must be strings")
    return out


def as_context(context: Context | Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> Context:
    """A :class:`Context` from one, a mapping, or keyword arguments (none: this host and the
    current directory)."""
    if isinstance(context, Context):
        if kwargs:
            raise InvalidInputError("give a Context or keyword arguments, not both")
        return context
    if context is not None and not isinstance(context, Mapping):
        raise InvalidInputError("a context is a Context or a mapping such as {'floor': 'office'}")
    data = {**(context or {}), **kwargs}
    if not data:
        data = {"host": socket.gethostname(), "path": os.getcwd()}
    return Context.from_mapping(data)
