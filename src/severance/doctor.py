"""What is wrong with a store's trust, and what the key holder can do about it.

:func:`diagnose` gathers the three checks — configuration rows that fail their MAC
(:mod:`severance.records`), what the store lacks compared with its anchor
(:mod:`severance.anchor`), and the audit chain itself (:mod:`severance.audit`) — and says for
each problem what can be done. Nothing here changes the store; ``severance doctor --accept``
(:meth:`Store.accept_current_state`) is the one repair that does, and only for the anchor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .audit import VerifyResult
from .backends.base import AuditRow, FloorRow, PassRow
from .records import RecordProblem

__all__ = ["Diagnosis", "advice", "revived_floors", "revived_passes"]

_ADVICE = {
    "pass": "revoke it (`severance pass revoke {id}`) or ignore it: it opens nothing",
    "floor": "remove it (`severance floor remove <name>`) and add it again: routing refuses"
    " until then",
    "persona": "restore the persona's row from a backup, or erase it (`severance clean-slate`)",
    "setting": "set it again through Severance (or restore it from a backup); it is ignored",
    "vectors": "the persona keeps its vectors sealed; `severance persona` commands reset it",
    "store": "the store's rows were signed before: restore the marker from a backup",
    "anchor": "the anchor file was changed: `severance doctor --accept` writes a new one",
    "audit": "restore the newer database from a backup; or, if this copy is the one you"
    " want, `severance doctor --accept`",
    "memory": "restore the memory from a backup or an export; or, if it was meant to go,"
    " `severance doctor --accept`",
}


def revived_passes(passes: list[PassRow], audit: list[AuditRow]) -> list[RecordProblem]:
    """Passes the audit log says were revoked but whose row says active: an older, authentic
    row put back by someone who can write the database (a replay the MAC cannot see)."""
    revoked = {json.loads(r.detail).get("pass_id") for r in audit if r.event == "pass_revoked"}
    return [
        RecordProblem("pass", p.id, "revoked, but an older row was put back")
        for p in passes
        if p.revoked_at is None and p.id in revoked
    ]


def revived_floors(floors: list[FloorRow], audit: list[AuditRow]) -> list[RecordProblem]:
    """Floors present although the audit log's last word on their name is ``floor_removed``:
    an older, authentic row put back (which would revive that floor's passes)."""
    last: dict[str, str] = {}
    for r in audit:
        if r.event in ("floor_added", "floor_removed"):
            last[json.loads(r.detail).get("floor", "")] = r.event
    return [
        RecordProblem("floor", f.id or f.name, "removed, but an older row was put back")
        for f in floors
        if last.get(f.name) == "floor_removed"
    ]


def advice(problem: RecordProblem) -> str:
    """What the key holder can do about one problem."""
    return _ADVICE.get(problem.kind, "see docs/security.md").replace("{id}", problem.record_id)


@dataclass(frozen=True)
class Diagnosis:
    """The outcome of :meth:`Store.diagnose`."""

    audit: VerifyResult
    records: list[RecordProblem] = field(default_factory=list)
    anchor: list[RecordProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.records and not self.anchor

    def lines(self) -> list[str]:
        """One line per problem, with what to do."""
        out = []
        if not self.audit.ok:
            out.append(
                f"audit chain broken at entry {self.audit.first_bad_seq}: {self.audit.reason}"
            )
        for p in [*self.records, *self.anchor]:
            out.append(f"{p.kind} {p.record_id}: {p.reason} — {advice(p)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "audit": self.audit.to_dict(),
            "problems": [
                {**p.to_dict(), "advice": advice(p)} for p in [*self.records, *self.anchor]
            ],
        }
