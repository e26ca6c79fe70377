"""Authenticated configuration: only the key holder can make a pass, floor, persona or setting.

The database (a PostgreSQL server shared with others, a SQLite file anyone with write access
can edit) keeps the rows that *grant access* (passes) and *decide where memories go* (floors,
personas and their key wraps, vector mode and embedder, store settings). Encryption protects
memory text, not those rows, so each one carries a MAC::

    audit key ──HKDF("severance records")──> record key ──HMAC-SHA256──> row MAC

The record key derives from the store's audit key, which is random and wrapped by the master
key: only someone who unlocked the store can sign, and rotating the master key does not
invalidate the signatures. Each MAC covers the row's kind, the store id and every field that
matters, so a row moved to another store, another persona or another name fails.

:class:`AuthenticatedBackend` wraps a back-end and is what the store hands down to everything
else (passes, sessions, crossings): it signs rows on the way in and checks them on the way
out. A row that fails is never obeyed:

* a pass that fails is left out (a forged pass opens nothing);
* a persona that fails is quarantined: still listed, so its floors lead to it, but waking it
  raises :class:`TamperedRecordError`; the other personas are unaffected;
* a floor that fails makes routing refuse with :class:`TamperedRecordError` — ignoring it
  would silently re-route its contexts to the next floor;
* a setting that fails is left out of :meth:`get_meta`;
* a persona's vector mode is signed as a setting (``vectors:<persona id>``): a persona the
  database says is "indexed" without that signature keeps its vectors sealed, so nobody can
  make a client write plain vectors into the database.

Every rejection is reported once per process: in :meth:`problems` and as a ``record_rejected``
audit entry (kind and id, never the row's content). Rows of a store made before this existed
have no MAC; the key holder's first open signs them ("adoption", audited) unless the store's
anchor (see :mod:`severance.anchor`) shows the store was already signed, in which case the
missing marker is itself reported as tampering.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .audit import AuditLog
from .backends.base import Backend, FloorRow, PassRow, PersonaRow, PersonaRows, VectorRows
from .errors import StorageError, TamperedRecordError
from .model import new_id
from .seal import QUARANTINED

__all__ = [
    "SIGNED_MARKER",
    "AuthenticatedBackend",
    "RecordAuthenticator",
    "RecordProblem",
    "authenticated",
    "is_quarantined",
    "record_key",
]

#: Meta key whose (signed) presence says every row of the store carries a MAC.
SIGNED_MARKER = "records_signed"
_MAC_PREFIX = "mac:"
_MARKER_GONE = "the signature marker was removed"
#: Settings with their own authentication: the audit head is MAC'd by the audit log.
_SELF_AUTHENTICATED = frozenset({"audit_head"})
_VECTOR_METHODS = frozenset({"enable_vectors", "disable_vectors", "vector_dimension"})

Reporter = Callable[["RecordProblem"], None]


def record_key(audit_key: bytes) -> bytes:
    """The key that signs configuration rows, derived from the store's audit key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"severance records").derive(
        audit_key
    )


@dataclass(frozen=True)
class RecordProblem:
    """A row that failed authentication: what kind, which id, and why."""

    kind: str  # "pass", "floor", "persona", "setting" or "store"
    record_id: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.record_id, "reason": self.reason}


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _num(value: float | None) -> str | None:
    # repr round-trips a float64 exactly; SQLite REAL and PostgreSQL double keep float64.
    return None if value is None else repr(float(value))


class RecordAuthenticator:
    """Computes and checks the MACs of one store's configuration rows."""

    def __init__(self, key: bytes, store_id: str) -> None:
        self._key = key
        self.store_id = store_id
        self._good: dict[Any, None] = {}

    def _mac(self, kind: str, fields: list[Any]) -> bytes:
        body = json.dumps([kind, self.store_id, *fields], separators=(",", ":"))
        return hmac.new(self._key, body.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def persona_mac(self, row: PersonaRow) -> bytes:
        return self._mac(
            "persona",
            [
                row.id,
                row.name,
                _num(row.created_at),
                _bytes(row.wrapped_key),
                bool(row.sealed),
                row.seal_kdf,
                row.embedder,
                int(row.dimension),
            ],
        )

    def floor_mac(self, row: FloorRow) -> bytes:
        return self._mac(
            "floor",
            [row.id, row.name, int(row.position), row.persona_id, row.rule, bool(row.is_default)],
        )

    def pass_mac(self, row: PassRow) -> bytes:
        return self._mac(
            "pass",
            [
                row.id,
                row.token_hash,
                row.floor_id,
                row.floor,
                row.persona_id,
                _num(row.created_at),
                _num(row.expires_at),
                bool(row.read_only),
                _num(row.revoked_at),
                row.label,
            ],
        )

    def setting_mac(self, key: str, value: str) -> str:
        return self._mac("setting", [key, value]).hex()

    def setting_row_mac(self, row: tuple[str, str, str]) -> str:
        return self.setting_mac(row[1], row[2])

    def verified(self, row: Any, found: bytes | str, mac_of: Callable[[Any], bytes | str]) -> bool:
        """Whether ``found`` is the row's MAC. A server reads the same pass and floor rows on
        every request: rows already verified (the whole row, MAC included, is the key) are
        remembered, so a request costs a dictionary lookup per row, not an HMAC."""
        if row in self._good:
            return True
        ok = self.ok(mac_of(row), found)
        if ok:
            if len(self._good) >= 10_000:
                self._good.clear()
            self._good[row] = None
        return ok

    @staticmethod
    def ok(expected: bytes | str, found: bytes | str) -> bool:
        if isinstance(expected, str) and isinstance(found, str):
            return hmac.compare_digest(expected, found)
        if isinstance(expected, bytes) and isinstance(found, bytes):
            return hmac.compare_digest(expected, found)
        return False


def protected_setting(key: str) -> bool:
    """Whether a meta key is signed by :class:`AuthenticatedBackend`."""
    return not key.startswith(_MAC_PREFIX) and key not in _SELF_AUTHENTICATED


class AuthenticatedBackend:
    """A back-end whose configuration rows are signed on write and checked on read.

    Everything not about configuration (memories, the audit chain, transactions) passes
    through to the wrapped back-end unchanged.
    """

    def __init__(self, backend: Backend, auth: RecordAuthenticator, report: Reporter) -> None:
        self._raw = backend
        self._auth = auth
        self._report_to = report
        self._reported: set[RecordProblem] = set()
        self._problems: list[RecordProblem] = []
        self._scan: list[RecordProblem] | None = None
        self._lock = threading.Lock()

    # Attributes and methods this class does not override (url, indexed_vectors, memories,
    # audit, reclaim...) are the wrapped back-end's own.
    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    @property
    def url(self) -> str:
        return self._raw.url

    @property
    def raw(self) -> Backend:
        """The wrapped back-end (for the audit log, which authenticates its own rows)."""
        return self._raw

    def transaction(self) -> AbstractContextManager[None]:
        return self._raw.transaction()

    # -- reporting ----------------------------------------------------------------------------
    def reject(self, kind: str, record_id: str, reason: str) -> None:
        """Report a row that failed authentication (once per process: :meth:`problems` and a
        ``record_rejected`` audit entry)."""
        problem = RecordProblem(kind, record_id, reason)
        with self._lock:
            if self._scan is not None:
                self._scan.append(problem)
            if problem in self._reported:
                return
            self._reported.add(problem)
            self._problems.append(problem)
        self._report_to(problem)

    def problems(self) -> list[RecordProblem]:
        """Rows rejected by this process so far (each reported once)."""
        with self._lock:
            return list(self._problems)

    def check(self) -> list[RecordProblem]:
        """Read every configuration row now and return the ones that fail."""
        with self._lock:
            self._scan = []
        try:
            if SIGNED_MARKER not in self.get_meta():
                self.reject("store", SIGNED_MARKER, _MARKER_GONE)
            personas = [p.id for p in self.personas()]
            self._checked_floors()
            self.passes()
            for persona_id in personas:
                if self._raw.indexed_vectors:
                    self.vector_rows(persona_id).vector_dimension()
        finally:
            with self._lock:
                found, self._scan = self._scan or [], None
        return list(dict.fromkeys(found))

    # -- settings -----------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        raw = self._raw.get_meta()
        out: dict[str, str] = {}
        for key, value in raw.items():
            if not protected_setting(key):
                if key in _SELF_AUTHENTICATED:
                    out[key] = value
                continue
            mac = raw.get(_MAC_PREFIX + key)
            if mac is not None and self._auth.verified(
                ("setting", key, value), mac, self._auth.setting_row_mac
            ):
                out[key] = value
            else:
                self.reject("setting", key, "unsigned" if mac is None else "MAC mismatch")
        return out

    def set_meta(self, key: str, value: str) -> None:
        with self._raw.transaction():
            self._raw.set_meta(key, value)
            if protected_setting(key):
                self._raw.set_meta(_MAC_PREFIX + key, self._auth.setting_mac(key, value))

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]:
        """Every persona; one whose record fails is *quarantined*: listed (its floors still
        lead to it) but its key is replaced by :data:`QUARANTINED`, so waking, sealing or
        rotating it refuses with :class:`TamperedRecordError` and nothing else is affected."""
        out = []
        for row in self._raw.personas():
            if self._auth.verified(row, row.mac, self._auth.persona_mac):
                out.append(row)
            else:
                self.reject("persona", row.id, _why(row.mac))
                out.append(
                    replace(
                        row,
                        wrapped_key=QUARANTINED + row.id.encode(),
                        sealed=False,
                        seal_kdf=None,
                        mac=b"",
                    )
                )
        return out

    def insert_persona(self, row: PersonaRow) -> None:
        self._raw.insert_persona(replace(row, mac=self._auth.persona_mac(row)))

    def update_persona(self, row: PersonaRow) -> None:
        self._raw.update_persona(replace(row, mac=self._auth.persona_mac(row)))

    def rewrap_personas(self, wraps: Mapping[str, tuple[bytes, str | None]]) -> None:
        """Give personas new key wraps: ``{persona id: (wrapped key, seal kdf)}``, sealed
        exactly when a kdf is given (see :class:`severance.keys.Keyring`). Each row is signed
        again whole; a quarantined one is refused, never signed as it stands."""
        with self._raw.transaction():
            for row in self.personas():
                if row.id not in wraps:
                    continue
                if is_quarantined(row):
                    raise TamperedRecordError(
                        "this persona's record was changed outside Severance and is not"
                        " trusted; run `severance doctor`",
                        "persona",
                        row.id,
                    )
                wrapped, kdf = wraps[row.id]
                self.update_persona(
                    replace(row, wrapped_key=wrapped, sealed=kdf is not None, seal_kdf=kdf)
                )

    def lock(self) -> None:
        """Inside a transaction: keep every other writer of the store out until it ends."""
        self._raw.lock()

    # -- floors -------------------------------------------------------------------------------
    def floors(self) -> list[FloorRow]:
        """The floors in order; :class:`TamperedRecordError` if any of them fails (routing
        around a forged floor would re-route silently, so nothing is routed)."""
        return self._checked_floors(strict=True)

    def _checked_floors(self, strict: bool = False) -> list[FloorRow]:
        rows = self._raw.floors()
        bad: list[tuple[FloorRow, str]] = []
        for row in rows:
            if not row.id or not self._auth.verified(row, row.mac, self._auth.floor_mac):
                bad.append((row, _why(row.mac)))
        for row, reason in bad:
            self.reject("floor", _floor_key(row), reason)
        if bad and strict:
            row, reason = bad[0]
            raise TamperedRecordError(
                f"floor {row.name!r} was changed outside Severance ({reason}), so no floor is"
                " obeyed; run `severance doctor` to see what to do",
                "floor",
                _floor_key(row),
            )
        return [r for r in rows if all(r is not b for b, _ in bad)]

    def insert_floor(self, row: FloorRow) -> None:
        if not row.id:
            row = replace(row, id=new_id("f_"))
        self._raw.insert_floor(replace(row, mac=self._auth.floor_mac(row)))

    def update_floor(self, row: FloorRow) -> None:
        if not row.id:
            row = replace(row, id=new_id("f_"))
        self._raw.update_floor(replace(row, mac=self._auth.floor_mac(row)))

    # -- passes -------------------------------------------------------------------------------
    def _checked_pass(self, row: PassRow) -> bool:
        if row.floor_id and self._auth.verified(row, row.mac, self._auth.pass_mac):
            return True
        self.reject("pass", row.id, _why(row.mac))
        return False

    def passes(self) -> list[PassRow]:
        return [r for r in self._raw.passes() if self._checked_pass(r)]

    def pass_by_hash(self, token_hash: str) -> PassRow | None:
        row = self._raw.pass_by_hash(token_hash)
        return row if row is not None and self._checked_pass(row) else None

    def insert_pass(self, row: PassRow) -> None:
        self._raw.insert_pass(replace(row, mac=self._auth.pass_mac(row)))

    def update_pass(self, row: PassRow) -> None:
        self._raw.update_pass(replace(row, mac=self._auth.pass_mac(row)))

    def revoke_pass(self, pass_id: str, at: float) -> bool:
        with self._raw.transaction():
            row = next((r for r in self.passes() if r.id == pass_id), None)
            if row is None or not self._raw.revoke_pass(pass_id, at):
                return False
            self.update_pass(replace(row, revoked_at=at))
        return True

    # -- vector mode --------------------------------------------------------------------------
    def rows(self, persona_id: str) -> PersonaRows:
        rows = self._raw.rows(persona_id)
        return _CheckedRows(rows, self, persona_id) if self._raw.indexed_vectors else rows

    def vector_rows(self, persona_id: str) -> VectorRows:
        return _CheckedRows(self._raw.vector_rows(persona_id), self, persona_id)

    def signed_vectors(self, persona_id: str) -> str | None:
        """The vector mode the key holder signed for a persona (``indexed:<dim>``), if any."""
        return self.get_meta().get(f"vectors:{persona_id}")

    # -- adoption -----------------------------------------------------------------------------
    def signed(self) -> bool:
        """Whether the store's rows are signed (its marker is present and authentic)."""
        return SIGNED_MARKER in self.get_meta()

    def adopt(self) -> dict[str, int]:
        """Sign every configuration row of a store made before rows were signed.

        Trust on first use: whatever the rows say now is taken to be the key holder's. Floors
        gain ids; passes are tied to their floor's id when that floor still wakes the same
        persona (the others can never open anything again). Returns the counts signed.
        """
        counts = {"settings": 0, "personas": 0, "floors": 0, "passes": 0}
        with self._raw.transaction():
            for key, value in self._raw.get_meta().items():
                if protected_setting(key):
                    self.set_meta(key, value)
                    counts["settings"] += 1
            for persona in self._raw.personas():
                self.update_persona(persona)
                counts["personas"] += 1
                rows = self._raw.vector_rows(persona.id) if self._raw.indexed_vectors else None
                if rows is not None and (dim := rows.vector_dimension()) is not None:
                    self.set_meta(f"vectors:{persona.id}", f"indexed:{dim}")
            floors = {}
            for floor in self._raw.floors():
                floor = replace(floor, id=floor.id or new_id("f_"))
                self.update_floor(floor)
                floors[floor.name] = floor
                counts["floors"] += 1
            for p in self._raw.passes():
                match = floors.get(p.floor)
                if match is not None and match.persona_id == p.persona_id:
                    self.update_pass(replace(p, floor_id=p.floor_id or match.id))
                    counts["passes"] += 1
            self.set_meta(SIGNED_MARKER, "1")
        return counts


class _CheckedRows:
    """A persona's rows whose vector mode is believed only if the key holder signed it."""

    def __init__(self, rows: PersonaRows, backend: AuthenticatedBackend, persona_id: str):
        self._rows = rows
        self._backend = backend
        self.persona_id = persona_id

    def __getattr__(self, name: str) -> Any:
        if name in _VECTOR_METHODS:
            return getattr(self, "_" + name)
        return getattr(self._rows, name)

    def _vector_dimension(self) -> int | None:
        found: int | None = self._rows.vector_dimension()  # type: ignore[attr-defined]
        signed = self._backend.signed_vectors(self.persona_id)
        expected = signed.partition(":")[2] if signed and signed.startswith("indexed:") else None
        if found is None:
            if expected is not None:
                self._backend.reject("vectors", self.persona_id, "index removed outside Severance")
            return None
        if expected != str(found):
            # Trusting it would make this client write plain vectors into the database.
            self._backend.reject("vectors", self.persona_id, "indexed mode not signed")
            return None
        return found

    def _enable_vectors(self, dimension: int) -> None:
        with self._backend.transaction():
            self._rows.enable_vectors(dimension)  # type: ignore[attr-defined]
            self._backend.set_meta(f"vectors:{self.persona_id}", f"indexed:{dimension}")

    def _disable_vectors(self) -> None:
        with self._backend.transaction():
            self._rows.disable_vectors()  # type: ignore[attr-defined]
            self._backend.set_meta(f"vectors:{self.persona_id}", "sealed")


def is_quarantined(row: PersonaRow) -> bool:
    """Whether a persona row failed authentication (see :meth:`AuthenticatedBackend.personas`)."""
    return row.wrapped_key.startswith(QUARANTINED)


def _floor_key(row: FloorRow) -> str:
    return row.id or f"name:{row.name}"


def _why(mac: bytes) -> str:
    return "unsigned" if not mac else "MAC mismatch"


def authenticated(
    backend: Backend, store_id: str, audit_key: bytes, audit: AuditLog, *, may_adopt: bool = True
) -> AuthenticatedBackend:
    """The store's back-end as everything above the store should see it: rows checked on
    read, signed on write, rejections audited. Signs an older store's rows on first open,
    unless ``may_adopt`` is false (the anchor knows the store was signed already)."""

    def report(problem: RecordProblem) -> None:
        # The rejection is kept in problems() either way; a database that refuses the audit
        # write (read-only, failing) must not turn a refused pass into a server error.
        with suppress(StorageError):
            audit.append(
                "record_rejected",
                kind=problem.kind,
                record=problem.record_id,
                reason=problem.reason,
            )

    checked = AuthenticatedBackend(
        backend, RecordAuthenticator(record_key(audit_key), store_id), report
    )
    if SIGNED_MARKER not in backend.get_meta():
        if not may_adopt:
            # Removing the marker must not get forged rows signed: nothing is adopted, so
            # every unsigned row keeps failing.
            checked.reject("store", SIGNED_MARKER, _MARKER_GONE)
            return checked
        counts = checked.adopt()
        if backend.last_audit() is not None:
            audit.append(
                "records_signed",
                settings=counts["settings"],
                personas=counts["personas"],
                floors=counts["floors"],
                passes=counts["passes"],
            )
    return checked
