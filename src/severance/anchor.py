"""The anchor: what the key holder last saw, kept beside the key, so rollback shows.

Everything in the database can be rolled back by whoever can write it: an older backup
restored, the audit log's tail cut together with its head record, a memory row deleted. Each
such state is *authentic* (every MAC in it was once made by the key holder), so no check
inside the database can tell. The anchor is a small file outside it, next to the key file
(``$XDG_CONFIG_HOME/severance/keys/<store id>.anchor``, mode 0600)::

    {"store_id": …, "signed": true,
     "audit": {"seq": 812, "hash": "…"},                     last audit head seen
     "personas": {"p_…": {"count": 120, "hw": 5310,           memories seen (ids up to 20k)
                          "ids": ["m_…", …]}},
     "mac": "…"}                                              HMAC under the audit key

On open and by ``audit verify`` the store is compared with it: an audit chain shorter than
the anchor's head, or with another entry at that seq, is an older or cut copy (reported by
seq); a memory the anchor saw that is neither present nor tombstoned was deleted outside
Severance (reported by id; for personas over :data:`MAX_TRACKED_IDS` memories, by count). A
missing signature marker on a store the anchor knows was signed is reported too.

It only moves forward. Several processes (a server and the CLI) update it under an exclusive
``flock`` on a lock file, reading, merging and replacing it atomically (write, fsync,
rename): the audit head kept is the longest chain that extends the previous one; a persona's
ids are replaced by what is there now only when nothing of it is missing. A problem stays
reported until the key holder accepts the current state (``severance doctor --accept``).
The anchor is local: another machine opening the same database starts its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import AuditLog, VerifyResult
from .backends.base import Backend
from .errors import SeveranceError, StorageError
from .records import SIGNED_MARKER, RecordProblem

__all__ = [
    "MAX_TRACKED_IDS",
    "Anchor",
    "advance_anchor",
    "anchor_path",
    "check_anchor",
    "with_anchor",
]

#: Personas with more memories than this are anchored by count only (the file stays small).
MAX_TRACKED_IDS = 20_000


def anchor_path(key_dir: Path, store_id: str) -> Path:
    return key_dir / f"{store_id}.anchor"


@dataclass
class _State:
    signed: bool
    audit_seq: int
    audit_hash: str
    personas: dict[str, dict[str, Any]]

    def to_json(self, store_id: str) -> dict[str, Any]:
        return {
            "store_id": store_id,
            "signed": self.signed,
            "audit": {"seq": self.audit_seq, "hash": self.audit_hash},
            "personas": self.personas,
        }


class Anchor:
    """One store's anchor file; checks a back-end against it and moves it forward."""

    def __init__(self, path: Path, store_id: str, key: bytes) -> None:
        self.path = path
        self.store_id = store_id
        self._key = hashlib.sha256(b"severance anchor\x1f" + key).digest()

    # -- the file -----------------------------------------------------------------------------
    def _mac(self, body: dict[str, Any]) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def read(self) -> _State | None:
        """The anchored state; None if there is none yet. A forged or unreadable file is
        treated as absent (and reported by :meth:`check`)."""
        try:
            data = json.loads(self.path.read_text())
            body = {k: v for k, v in data.items() if k != "mac"}
            if body.get("store_id") != self.store_id:
                return None
            if not hmac.compare_digest(self._mac(body), str(data.get("mac"))):
                return None
            return _State(
                bool(body["signed"]),
                int(body["audit"]["seq"]),
                str(body["audit"]["hash"]),
                dict(body["personas"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def signed(self) -> bool:
        """Whether the anchor knows the store's rows were signed."""
        state = self.read()
        return state is not None and state.signed

    def _write(self, state: _State) -> None:
        body = state.to_json(self.store_id)
        data = {**body, "mac": self._mac(body)}
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock, not a lock file's existence: the lock dies with its process (kill -9 too).
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- comparing ----------------------------------------------------------------------------
    def check(self, backend: Backend, *, full_audit: bool = False) -> list[RecordProblem]:
        """What the store lacks compared with the anchor (empty if all is there)."""
        if not self.path.exists():
            return []
        state = self.read()
        if state is None:
            return [RecordProblem("anchor", str(self.path), "the anchor file fails its MAC")]
        problems = self._check_audit(backend, state, full_audit)
        present = {p.id for p in backend.personas()}
        erased: set[str] | None = None
        for persona_id, seen in state.personas.items():
            if persona_id not in present:
                erased = _erased(backend) if erased is None else erased
                if persona_id not in erased:
                    problems.append(
                        RecordProblem("persona", persona_id, "persona missing (not erased)")
                    )
                continue
            problems.extend(_check_persona(backend, persona_id, seen))
        return problems

    def _check_audit(self, backend: Backend, state: _State, full: bool) -> list[RecordProblem]:
        if state.audit_seq == 0:
            return []
        last = backend.last_audit()
        last_seq = last.seq if last is not None else 0
        if last_seq < state.audit_seq:
            return [
                RecordProblem(
                    "audit",
                    f"{last_seq + 1}-{state.audit_seq}",
                    f"audit entries {last_seq + 1} to {state.audit_seq} are missing:"
                    " the log was cut or an older copy restored",
                )
            ]
        if last is not None and last.seq == state.audit_seq:
            seen = last.hash
        elif full:
            seen = next((r.hash for r in backend.audit_rows() if r.seq == state.audit_seq), "")
        else:
            return []
        if not hmac.compare_digest(seen, state.audit_hash):
            return [
                RecordProblem(
                    "audit",
                    str(state.audit_seq),
                    f"audit entry {state.audit_seq} is not the one seen before (older copy)",
                )
            ]
        return []

    # -- moving forward -----------------------------------------------------------------------
    def advance(self, backend: Backend, *, signed: bool, accept: bool = False) -> None:
        """Record the store's current state, never moving backwards (unless ``accept``)."""
        with self._locked():
            old = None if accept else self.read()
            if old is None and not accept and self.path.exists():
                return  # a forged anchor stays (and is reported) until the holder accepts
            last = backend.last_audit()
            seq, digest = (last.seq, last.hash) if last is not None else (0, "")
            if old is not None and self._check_audit(backend, old, full=True):
                seq, digest = old.audit_seq, old.audit_hash  # keep what was seen
            personas: dict[str, dict[str, Any]] = {}
            for persona in backend.personas():
                now = _snapshot(backend, persona.id)
                before = old.personas.get(persona.id) if old is not None else None
                if before is not None and _check_persona(backend, persona.id, before):
                    now = before  # something is missing: keep reporting it
                personas[persona.id] = now
            self._write(_State(signed or bool(old and old.signed), seq, digest, personas))


def _snapshot(backend: Backend, persona_id: str) -> dict[str, Any]:
    rows = backend.rows(persona_id)
    # Any change after this point takes a larger seq (seqs are commit-ordered store-wide).
    high_water = rows.high_water()
    count = rows.count()
    ids = None if count > MAX_TRACKED_IDS else sorted(rows.changes_since(0).changed)
    return {"count": count, "hw": high_water, "ids": ids}


def _check_persona(backend: Backend, persona_id: str, seen: dict[str, Any]) -> list[RecordProblem]:
    rows = backend.rows(persona_id)
    ids = seen.get("ids")
    if ids is None and rows.count() >= int(seen["count"]):
        return []
    changes = rows.changes_since(0)
    if ids is None:
        lost = int(seen["count"]) - len(changes.changed) - len(changes.deleted)
        gone: list[str] = [persona_id] if lost > 0 else []
    else:
        gone = sorted(set(ids) - set(changes.changed) - set(changes.deleted))
    if not gone:
        return []
    # A forget leaves a tombstone, but an index snapshot written since may have compacted it
    # away: then a memory forgotten through Severance cannot be told from one deleted behind
    # its back, and nothing is claimed.
    snapshot = rows.read_snapshot()
    if snapshot is not None and snapshot.watermark > int(seen.get("hw", 0)):
        return []
    if ids is None:
        return [RecordProblem("memory", persona_id, f"{lost} memories missing")]
    return [
        RecordProblem("memory", memory_id, "memory missing (deleted outside Severance)")
        for memory_id in gone
    ]


def _erased(backend: Backend) -> set[str]:
    return {r.persona_id for r in backend.audit_rows() if r.event == "clean_slate" and r.persona_id}


def check_anchor(anchor: Anchor, backend: Backend, audit: AuditLog) -> list[RecordProblem]:
    """The cheap check made on every open; problems found are audited (by id)."""
    try:
        problems = anchor.check(backend)
    except OSError:
        return []
    if problems:
        with contextlib.suppress(StorageError):
            audit.append(
                "rollback_detected",
                problems=len(problems),
                ids=[p.record_id for p in problems[:50]],
            )
    return problems


def advance_anchor(anchor: Anchor, backend: Backend) -> None:
    """Move the anchor forward as a store closes. Best effort: a read-only home or a lost
    connection leaves the old anchor, which only makes the next check less strict."""
    with contextlib.suppress(OSError, SeveranceError):
        anchor.advance(backend, signed=SIGNED_MARKER in backend.get_meta())


def with_anchor(result: VerifyResult, problems: list[RecordProblem]) -> VerifyResult:
    """An audit verdict that also fails when the store lacks what its anchor saw."""
    if not problems:
        return result
    reason = "; ".join(p.reason for p in problems[:5])
    if len(problems) > 5:
        reason += f"; and {len(problems) - 5} more"
    first = result.first_bad_seq
    if first is None:
        audit_gap = next((p for p in problems if p.kind == "audit"), None)
        if audit_gap is not None:
            first = int(audit_gap.record_id.split("-")[0])
    return VerifyResult(
        False,
        result.entries,
        first,
        reason if result.ok else f"{result.reason}; {reason}",
        tuple(f"{p.kind}:{p.record_id}" for p in problems),
    )
