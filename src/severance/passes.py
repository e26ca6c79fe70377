"""Passes: bearer tokens for the servers, each good for exactly one floor (and so one persona).

A pass is issued for a floor by name and follows that floor by its id. Its token is ``sev_``
followed by 32 random bytes in URL-safe base64; it is shown once, when issued, and only its
SHA-256 hash is stored. A request that presents a token is authenticated by hashing it and
looking the hash up; the pass then names the one floor it may enter. The token never selects
a persona by itself: the floor does, and the pass records which persona that floor woke when
the pass was issued, so re-pointing a floor at another persona silently invalidates its
passes rather than moving them.

A pass stops working the moment it is revoked or expires (every request reads the pass row
again), or when its floor is removed (a floor added again under the same name is another
floor) or now wakes another persona. Pass rows are signed by the key holder
(:mod:`severance.records`): a row written by anyone else opens nothing. Issuing and revoking are
recorded in the audit log (pass id, floor, flags — never the token).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from .audit import AuditLog
from .backends.base import PassRow
from .errors import (
    FloorNotFoundError,
    InvalidInputError,
    PassError,
    PassNotFoundError,
    ReadOnlyPassError,
    TamperedRecordError,
)
from .model import PersonaInfo, from_epoch, new_id
from .records import AuthenticatedBackend, is_quarantined

__all__ = [
    "TOKEN_PREFIX",
    "Grant",
    "IssuedPass",
    "PassError",
    "PassInfo",
    "PassNotFoundError",
    "Passes",
    "ReadOnlyPassError",
    "hash_token",
    "parse_duration",
]

TOKEN_PREFIX = "sev_"
#: Longest lifetime a pass may be issued with.
MAX_LIFETIME = timedelta(days=3660)
MAX_LABEL_CHARS = 200
# A real token is 47 characters; anything much longer is not worth hashing.
_MAX_TOKEN_CHARS = 256
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_token() -> str:
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return TOKEN_PREFIX + raw


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``1d12h`` → a positive :class:`timedelta`."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise InvalidInputError(f"invalid duration {text!r}: use e.g. 30d, 12h, 90m, 2w or 1d12h")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise InvalidInputError("a duration must be longer than zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class PassInfo:
    """What is known about a pass (never its token)."""

    id: str
    floor: str
    persona: str
    created_at: datetime
    expires_at: datetime | None
    read_only: bool
    revoked_at: datetime | None
    label: str | None

    @property
    def status(self) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at.timestamp() <= time.time():
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "floor": self.floor,
            "persona": self.persona,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "read_only": self.read_only,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "label": self.label,
            "status": self.status,
        }


@dataclass(frozen=True)
class IssuedPass:
    """A new pass and its token. The token cannot be recovered later: hand it over now."""

    token: str
    info: PassInfo


@dataclass(frozen=True)
class Grant:
    """What an authenticated token allows: one floor (one persona), maybe read-only."""

    pass_id: str
    floor: str
    persona_id: str
    read_only: bool
    expires_at: float | None


class PassHost(Protocol):
    """What passes need of a store (a :class:`~severance.store.Store` is one)."""

    @property
    def records(self) -> AuthenticatedBackend: ...

    @property
    def audit_log(self) -> AuditLog: ...

    def personas(self) -> builtins.list[PersonaInfo]: ...


class Passes:
    """Issue, list, revoke and authenticate the passes of a store: ``Passes(store)``."""

    def __init__(self, store: PassHost) -> None:
        self._store = store
        self._backend = store.records
        self._audit = store.audit_log

    def _info(self, row: PassRow, names: dict[str, str]) -> PassInfo:
        return PassInfo(
            id=row.id,
            floor=row.floor,
            persona=names.get(row.persona_id, "?"),
            created_at=from_epoch(row.created_at),
            expires_at=from_epoch(row.expires_at) if row.expires_at is not None else None,
            read_only=row.read_only,
            revoked_at=from_epoch(row.revoked_at) if row.revoked_at is not None else None,
            label=row.label,
        )

    def issue(
        self,
        floor: str,
        *,
        expires_in: timedelta | None = None,
        read_only: bool = False,
        label: str | None = None,
    ) -> IssuedPass:
        """Issue a pass for ``floor``; the token is in the result and nowhere else."""
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_LIFETIME:
            raise InvalidInputError("a pass must expire after more than zero and at most ~10 years")
        if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL_CHARS):
            raise InvalidInputError(f"a label is a string of at most {MAX_LABEL_CHARS} characters")
        match = next((f for f in self._backend.floors() if f.name == floor), None)
        if match is None:
            raise FloorNotFoundError(f"no floor named {floor!r}")
        persona_row = next(p for p in self._backend.personas() if p.id == match.persona_id)
        if is_quarantined(persona_row):
            raise TamperedRecordError(
                f"floor {floor!r} leads to a persona whose record was changed outside Severance;"
                " run `severance doctor`",
                "persona",
                persona_row.id,
            )
        persona = next(p for p in self._store.personas() if p.id == match.persona_id)
        if persona.sealed:
            raise InvalidInputError(
                f"floor {floor!r} wakes sealed persona {persona.name!r}, which a server cannot open"
            )
        now = time.time()
        token = _new_token()
        row = PassRow(
            id=new_id("ps_"),
            token_hash=hash_token(token),
            floor=floor,
            persona_id=persona.id,
            created_at=now,
            expires_at=now + expires_in.total_seconds() if expires_in is not None else None,
            read_only=bool(read_only),
            revoked_at=None,
            label=label,
            floor_id=match.id,
        )
        with self._backend.transaction():
            self._backend.insert_pass(row)
            self._audit.append(
                "pass_issued",
                persona.id,
                persona.name,
                pass_id=row.id,
                floor=floor,
                read_only=row.read_only,
                expires_at=row.expires_at,
            )
        return IssuedPass(token, self._info(row, {persona.id: persona.name}))

    def revoke(self, pass_id: str) -> PassInfo:
        """Revoke a pass; it stops working at once. Revoking twice is harmless."""
        names = self._names()
        row = next((r for r in self._backend.passes() if r.id == pass_id), None)
        if row is None:
            raise PassNotFoundError(f"no pass with id {pass_id!r}")
        if row.revoked_at is None:
            now = time.time()
            with self._backend.transaction():
                if self._backend.revoke_pass(pass_id, now):
                    self._audit.append(
                        "pass_revoked",
                        row.persona_id,
                        names.get(row.persona_id),
                        pass_id=row.id,
                        floor=row.floor,
                    )
            row = next(r for r in self._backend.passes() if r.id == pass_id)
        return self._info(row, names)

    def authenticate(self, token: str | None) -> Grant:
        """The grant a token carries, or :class:`PassError` if it opens nothing right now."""
        if not token:
            raise PassError("no pass given: send 'Authorization: Bearer <token>'")
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
            raise PassError("that is not a valid pass")
        digest = hash_token(token)
        row = self._backend.pass_by_hash(digest)
        # The lookup is by hash (a token's hash reveals nothing useful about another token);
        # the final comparison is constant-time all the same.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise PassError("that is not a valid pass")
        if row.revoked_at is not None:
            raise PassError("this pass was revoked")
        if row.expires_at is not None and time.time() >= row.expires_at:
            raise PassError("this pass has expired")
        # By id: a floor removed and added again under the same name is another floor, and
        # its passes died with the first one.
        floor = next((f for f in self._backend.floors() if f.id == row.floor_id), None)
        if floor is None or floor.persona_id != row.persona_id:
            raise PassError("this pass no longer matches its floor; issue a new one")
        return Grant(row.id, row.floor, row.persona_id, row.read_only, row.expires_at)

    def _names(self) -> dict[str, str]:
        return {p.id: p.name for p in self._store.personas()}

    # Last, so that ``list`` inside the class body above still means the builtin.
    def list(self) -> builtins.list[PassInfo]:
        """Every pass (active, expired and revoked), oldest first."""
        names = self._names()
        return [self._info(r, names) for r in self._backend.passes()]
