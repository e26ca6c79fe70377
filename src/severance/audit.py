"""The audit log: an append-only chain of events, each link an HMAC of the one before.

Every entry's ``hash`` is ``HMAC-SHA256(audit key, prev_hash || canonical entry)``, where the
audit key is derived from the store's master key. Without the key nobody can forge a link, so
editing, deleting, inserting or reordering any entry breaks the chain at that point, and
:func:`verify` names the first bad entry. Truncating the tail is caught by the *head* record
kept in the store's meta (the last seq and hash, itself authenticated). Entries carry events,
persona ids and counts — never memory content.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import AuditRow, Backend
from .model import AuditEntry, from_epoch, utcnow

__all__ = ["AuditLog", "VerifyResult"]

GENESIS = "0" * 64
HEAD_KEY = "audit_head"


def _canonical(
    seq: int, at: float, event: str, persona_id: str | None, persona: str | None, detail: str
) -> bytes:
    return json.dumps(
        [seq, repr(at), event, persona_id, persona, detail], separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    #: What the store lacks compared with its anchor ("audit:812", "memory:m_…"…).
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "missing": list(self.missing),
        }


class AuditLog:
    """Appends to and verifies a store's audit chain."""

    def __init__(self, backend: Backend, key: bytes) -> None:
        self._backend = backend
        self._key = key

    def _mac(self, prev_hash: str, body: bytes) -> str:
        return hmac.new(self._key, prev_hash.encode() + body, hashlib.sha256).hexdigest()

    def _head_mac(self, seq: int, hash_: str) -> str:
        return self._mac("head", f"{seq}:{hash_}".encode())

    def append(
        self,
        event: str,
        persona_id: str | None = None,
        persona: str | None = None,
        **detail: Any,
    ) -> AuditEntry:
        """Append one entry (inside the caller's transaction, if any)."""
        with self._backend.transaction():
            # Appenders in other processes take turns (PostgreSQL reads the last entry under
            # READ COMMITTED: without the lock two would both write seq + 1).
            self._backend.lock()
            last = self._backend.last_audit()
            seq = 1 if last is None else last.seq + 1
            prev = GENESIS if last is None else last.hash
            at = utcnow().timestamp()
            detail_json = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
            digest = self._mac(prev, _canonical(seq, at, event, persona_id, persona, detail_json))
            row = AuditRow(seq, at, event, persona_id, persona, detail_json, prev, digest)
            self._backend.append_audit(row)
            self._backend.set_meta(HEAD_KEY, f"{seq}:{digest}:{self._head_mac(seq, digest)}")
        return to_entry(row)

    def verify(self) -> VerifyResult:
        rows = self._backend.audit_rows()
        prev = GENESIS
        expected_seq = 1
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(
                    False, len(rows), row.seq, f"expected entry {expected_seq} here"
                )
            if row.prev_hash != prev:
                return VerifyResult(False, len(rows), row.seq, "does not link to the entry before")
            body = _canonical(row.seq, row.at, row.event, row.persona_id, row.persona, row.detail)
            if not hmac.compare_digest(self._mac(prev, body), row.hash):
                return VerifyResult(False, len(rows), row.seq, "content does not match its hash")
            prev = row.hash
            expected_seq += 1
        head = self._backend.get_meta().get(HEAD_KEY)
        last_seq = rows[-1].seq if rows else 0
        if head is None:
            if rows:
                return VerifyResult(
                    False, len(rows), rows[0].seq, "the chain's head record is missing"
                )
            return VerifyResult(True, 0)
        try:
            head_seq_text, head_hash, head_mac = head.split(":")
            head_seq = int(head_seq_text)
        except ValueError:
            return VerifyResult(False, len(rows), last_seq or None, "the head record is malformed")
        if not hmac.compare_digest(self._head_mac(head_seq, head_hash), head_mac):
            return VerifyResult(False, len(rows), last_seq or None, "the head record was forged")
        if head_seq != last_seq or head_hash != prev:
            return VerifyResult(
                False,
                len(rows),
                min(head_seq, last_seq) + 1,
                f"the chain ends at entry {last_seq} but its head says {head_seq}",
            )
        return VerifyResult(True, len(rows))


def to_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=from_epoch(row.at),
        event=row.event,
        persona_id=row.persona_id,
        persona=row.persona,
        detail=json.loads(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def to_entries(rows: Sequence[AuditRow]) -> list[AuditEntry]:
    return [to_entry(r) for r in rows]
