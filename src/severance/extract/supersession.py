"""Supersession: a memory that is no longer true is kept, marked, and left out of recall.

A superseded memory carries ``valid_until`` (ISO-8601: when it stopped being true — the time of
the turn that said so) and, when a new memory replaced it, ``superseded_by`` (that memory's id)
in its metadata. Marking is an update, so the unmarked version stays in the memory's history;
nothing is deleted. :meth:`Session.recall` leaves superseded memories out unless asked for
history (``include_superseded=True``); :attr:`Memory.superseded_by` shows what replaced one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..model import SUPERSEDED_BY, VALID_UNTIL

__all__ = ["mark_superseded"]


def mark_superseded(
    metadata: Mapping[str, Any], at: datetime, by: str | None = None
) -> dict[str, Any]:
    """``metadata`` with the marks of a memory that stopped being true ``at``."""
    marked = {k: v for k, v in metadata.items() if k != SUPERSEDED_BY}
    marked[VALID_UNTIL] = at.isoformat()
    if by is not None:
        marked[SUPERSEDED_BY] = by
    return marked
