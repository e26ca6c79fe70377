"""What a store can say about its own trustworthiness: forged records, rollback against its
anchor, the audit chain — and the audit reads that go with them (entries, notices).

:class:`StoreChecks` is handed the store's authenticated records (through a getter that
refuses once the store is closed), its audit log and its anchor; it checks the anchor when
the store opens and advances it when the store closes. See :mod:`severance.records`,
:mod:`severance.anchor` and :mod:`severance.doctor` for what each check means.
"""

from __future__ import annotations

from collections.abc import Callable

from .anchor import Anchor, advance_anchor, check_anchor, with_anchor
from .audit import AuditLog, VerifyResult, persona_view, to_entries
from .backends.base import Backend
from .doctor import Diagnosis, revived_floors, revived_passes
from .errors import SeveranceError
from .model import AuditEntry, Notice
from .records import AuthenticatedBackend, RecordProblem

__all__ = ["NOTICE_EVENTS", "StoreChecks"]

#: Audit events a persona is told about the next time it wakes normally.
NOTICE_EVENTS = frozenset({"override", "reintegrated_into", "reintegrated_from"})
_NOTICE_PAGE = 32


class StoreChecks:
    """The trust checks of one open store (and its anchor's lifetime)."""

    def __init__(
        self, records: Callable[[], AuthenticatedBackend], audit: AuditLog, anchor: Anchor
    ) -> None:
        self._records = records
        # check_records() answers on a closed store too, as it always has.
        self._checked = records()
        self._audit = audit
        self._anchor = anchor
        self._rollback = check_anchor(anchor, records().raw, audit)

    def closing(self, raw: Backend) -> None:
        """The store is closing: record what it holds now in its anchor."""
        advance_anchor(self._anchor, raw)

    def audit(self, persona_id: str | None) -> list[AuditEntry]:
        """The audit chain, or the entries about one persona."""
        return to_entries(self._records().audit_rows(persona_id))

    def check_records(self) -> list[RecordProblem]:
        """Every configuration row that fails authentication right now."""
        return self._checked.check()

    def verify_audit(self) -> VerifyResult:
        """The whole audit chain, and the store against its anchor."""
        missing = self._anchor.check(self._records().raw, full_audit=True)
        return with_anchor(self._audit.verify(), missing)

    def reachable(self) -> bool:
        """Whether the database answers right now (never raises)."""
        try:
            self._records().raw.last_audit()
        except SeveranceError:
            return False
        return True

    def shares_login(self) -> bool:
        """Whether the database login can also reach other people's stores."""
        probe = getattr(self._records().raw, "shared_login", None)
        return bool(probe()) if callable(probe) else False

    @property
    def rollback_problems(self) -> list[RecordProblem]:
        """What the store lacked, compared with its anchor, when it was opened."""
        return list(self._rollback)

    def diagnose(self) -> Diagnosis:
        """Every trust problem of the store with what can be done about each."""
        backend = self._records()
        audit = backend.audit_rows()
        revived = revived_passes(backend.passes(), audit)
        revived += revived_floors(backend.raw.floors(), audit)
        return Diagnosis(
            self._audit.verify(),
            [*self.check_records(), *revived],
            self._anchor.check(backend.raw, full_audit=True),
        )

    def accept_current_state(self) -> None:
        """Take the store as it is now as the state to compare with from here on."""
        self._audit.append("anchor_reset")
        self._anchor.advance(self._records().raw, signed=True, accept=True)
        self._rollback = []

    def notices_for(self, persona_id: str) -> list[Notice]:
        """Crossings that touched a persona since it last woke normally."""
        # Read back from the newest entry, a page at a time, only as far as the last normal
        # wake: the cost is what happened since, not the persona's whole history.
        notices: list[Notice] = []
        before: int | None = None
        while True:
            page = self._records().audit_page(persona_id, before, _NOTICE_PAGE)
            for entry in to_entries(page):
                if entry.event == "enter" and not entry.detail.get("override"):
                    return list(reversed(notices))
                if entry.event in NOTICE_EVENTS:
                    seen = persona_view(entry)
                    notices.append(Notice(seen.at, seen.event, seen.detail))
            if len(page) < _NOTICE_PAGE:
                return list(reversed(notices))
            before = page[-1].seq
