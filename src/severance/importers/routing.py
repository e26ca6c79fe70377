"""Which persona each imported item goes to: ``--route`` rules, then ``--default``.

A rule reads ``FIELD~REGEX -> PERSONA``, where FIELD is ``title`` or ``project`` (where the
export names projects: Claude projects, Markdown sub-folders, mem0 scopes, MCP entity types).
The regular expression is searched for anywhere in the field, case-insensitively; rules are
tried in the order given and the first that matches wins; an item no rule matches goes to the
default persona. Both the rule and the field are compared in Unicode NFC, so ``title~café``
matches a title whose "é" an export wrote as "e" and a combining accent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidInputError
from .base import Item

__all__ = ["Route", "Routed", "parse_route", "route"]

_RULE = re.compile(
    r"\s*(title|project)\s*~\s*(?P<regex>.*)->\s*(?P<persona>[^\s>]+)\s*", re.DOTALL | re.IGNORECASE
)


@dataclass(frozen=True)
class Route:
    """One ``--route`` rule."""

    field: Literal["title", "project"]
    pattern: re.Pattern[str]
    persona: str
    spec: str

    def matches(self, item: Item) -> bool:
        value = item.title if self.field == "title" else item.project
        if value is None:
            return False
        return self.pattern.search(unicodedata.normalize("NFC", value)) is not None


@dataclass(frozen=True)
class Routed:
    """An item and the persona it goes to (``rule`` is the matching rule, or ``default``)."""

    item: Item
    persona: str
    rule: str


def parse_route(spec: str) -> Route:
    """Parse ``title~REGEX -> PERSONA`` or ``project~REGEX -> PERSONA``."""
    match = _RULE.fullmatch(spec)
    if match is None:
        raise InvalidInputError(
            f"invalid route {spec!r}: write 'title~REGEX -> PERSONA' or 'project~REGEX -> PERSONA'"
        )
    regex = match.group("regex").strip()
    if not regex:
        raise InvalidInputError(f"invalid route {spec!r}: the regular expression is empty")
    try:
        pattern = re.compile(unicodedata.normalize("NFC", regex), re.IGNORECASE)
    except re.error as e:
        raise InvalidInputError(f"invalid route {spec!r}: {e}") from None
    field: Literal["title", "project"] = "title" if match.group(1).lower() == "title" else "project"
    return Route(field, pattern, match.group("persona"), spec.strip())


def route(items: Iterable[Item], routes: Sequence[Route], default: str) -> list[Routed]:
    """Each item with its persona: the first matching rule's, else ``default``."""
    out = []
    for item in items:
        rule = next((r for r in routes if r.matches(item)), None)
        out.append(
            Routed(item, rule.persona, rule.spec) if rule else Routed(item, default, "default")
        )
    return out
