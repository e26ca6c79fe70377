"""Store: everything of one person — personas, floors, keys and the audit log.

``Store.init`` creates a store and its master key; ``Store.open`` unlocks an existing one.
A store is one directory (SQLite, the default) or one PostgreSQL database. Reading and writing
memories happens only through a :class:`Session`, obtained with :meth:`Store.enter`, which
wakes exactly one persona chosen by the floors.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import validate
from .anchor import Anchor, advance_anchor, anchor_path, check_anchor, with_anchor
from .audit import AuditLog, VerifyResult, persona_view, to_entries
from .backends import Backend, open_backend
from .backends.base import FloorRow, PersonaRow
from .codec import MemoryCodec
from .doctor import Diagnosis, revived_floors, revived_passes
from .embedders import DEFAULT_EMBEDDER, Embedder, load_embedder, spec_for
from .errors import (
    AlreadyExistsError,
    EmbedderMismatchError,
    FloorNotFoundError,
    IntegrityError,
    InvalidFloorError,
    InvalidInputError,
    PersonaNotFoundError,
    SessionClosedError,
    SeveranceError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
    UnlockError,
)
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
from .keys import (
    KdfParams,
    KeyInput,
    MasterKey,
    Secret,
    check_key_file_place,
    check_new_passphrase,
    default_key_dir,
    default_key_file,
    derive_passphrase_key,
    find_master_key,
    key_bytes,
    write_key_file,
)
from .model import AuditEntry, Notice, PersonaInfo, from_epoch, new_id
from .records import AuthenticatedBackend, RecordProblem, authenticated
from .seal import new_key
from .session import Session

if TYPE_CHECKING:
    from .crossings import Reintegration, Selection

__all__ = ["Store"]

STORE_FORMAT = "1"
#: The longest an override may last.
MAX_OVERRIDE_MINUTES = 240
_AUDIT_KEY_ID = "audit"
_STRICT_KEY = "floor_strict"
_NOTICE_PAGE = 32


def _location_text(location: str | os.PathLike[str]) -> str:
    if not isinstance(location, str | os.PathLike):
        raise StorePathError("a store location is a path or a URL")
    text = os.fspath(location)
    if not str(text).strip():
        raise StorePathError("a store location may not be empty")
    return text if "://" in text else str(Path(text).expanduser())


class Store:
    """An unlocked store. Open one with :meth:`Store.open` (or create it with :meth:`init`)."""

    def __init__(
        self, backend: Backend, master: MasterKey, embedder: str | Embedder | None
    ) -> None:
        self._closed = False
        self._master = master
        audit_key = master.unwrap(_AUDIT_KEY_ID, base64.b64decode(backend.get_meta()["audit_key"]))
        self._audit = AuditLog(backend, audit_key)
        self._anchor = Anchor(
            anchor_path(default_key_dir(), master.store_id), master.store_id, audit_key
        )
        # Everything above the store sees the back-end through the record checks.
        self._open_backend = authenticated(
            backend, master.store_id, audit_key, self._audit, may_adopt=not self._anchor.signed
        )
        self._rollback = check_anchor(self._anchor, backend, self._audit)
        meta = self._open_backend.get_meta()
        self._embedder_spec = embedder if embedder is not None else meta.get("embedder")
        self._embedder: Embedder | None = embedder if not isinstance(embedder, str | None) else None
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._lock = threading.RLock()
        # What opened us, to pick up a key rotation made by another process (_refresh_master).
        self._key_check = meta["key_check"]
        self._key_args: tuple[str | None, KeyInput | None, str | os.PathLike[str] | None] = (
            None,
            None,
            None,
        )

    # -- creating and opening -----------------------------------------------------------------
    @classmethod
    def init(
        cls,
        location: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key: KeyInput | None = None,
        key_file: str | os.PathLike[str] | None = None,
        embedder: str | Embedder | None = None,
    ) -> Store:
        """Create a new, empty store and its master key.

        By default a random master key is written to a key file outside the store, at
        ``$XDG_CONFIG_HOME/severance/keys/<store id>.key`` (mode 0600). Alternatively the key
        is derived from ``passphrase`` (scrypt), taken from ``key`` (32 bytes, or base64 of
        them), or written to ``key_file``.
        """
        if sum(x is not None for x in (passphrase, key, key_file)) > 1:
            raise InvalidInputError("give at most one of passphrase, key and key_file")
        text = _location_text(location)
        backend = open_backend(text)
        try:
            return cls._create(backend, text, passphrase, key, key_file, embedder)
        except BaseException:
            backend.close()
            raise

    @classmethod
    def _create(
        cls,
        backend: Backend,
        text: str,
        passphrase: str | None,
        key: KeyInput | None,
        key_file: str | os.PathLike[str] | None,
        embedder: str | Embedder | None,
    ) -> Store:
        if backend.exists():
            # backend.url, not the text given: a PostgreSQL URL may carry a password.
            raise StoreExistsError(f"a store already exists at {backend.url!r}")
        if passphrase is not None:
            validate.new_passphrase(passphrase)
            check_new_passphrase(passphrase)
        spec = embedder if isinstance(embedder, str) else DEFAULT_EMBEDDER
        if not isinstance(embedder, str) and embedder is not None:
            spec = spec_for(embedder)
        store_id = new_id("s_")
        meta = {
            "store_id": store_id,
            "format": STORE_FORMAT,
            "embedder": spec,
            "created_at": repr(time.time()),
        }
        written_key_file: Path | None = None
        if passphrase is not None:
            params = KdfParams.fresh()
            master = MasterKey(derive_passphrase_key(passphrase, params), store_id)
            meta.update(key_mode="passphrase", kdf=params.to_text())
        elif key is not None:
            master = MasterKey(key_bytes(key), store_id)
            meta.update(key_mode="key")
        else:
            master = MasterKey.generate(store_id)
            path = (
                Path(key_file).expanduser().absolute() if key_file else default_key_file(store_id)
            )
            check_key_file_place(path, text)
            try:
                write_key_file(path, master.raw)
            except FileExistsError:
                raise StoreExistsError(f"key file {str(path)!r} already exists") from None
            except OSError as e:
                raise InvalidInputError(
                    f"cannot write key file {str(path)!r}: {e.strerror}"
                ) from None
            written_key_file = path
            meta.update(key_mode="key-file", key_file=str(path))
        meta["key_check"] = base64.b64encode(master.check_value()).decode()
        meta["audit_key"] = base64.b64encode(master.wrap(_AUDIT_KEY_ID, new_key())).decode()
        try:
            backend.create(meta)
        except BaseException:
            if written_key_file is not None:
                written_key_file.unlink(missing_ok=True)
            raise
        store = cls(backend, master, embedder)
        store._audit.append("store_created", key_mode=meta["key_mode"])
        return store

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key: KeyInput | None = None,
        key_file: str | os.PathLike[str] | None = None,
        embedder: str | Embedder | None = None,
    ) -> Store:
        """Unlock an existing store.

        The key is looked for in this order: the ``passphrase``, ``key`` or ``key_file``
        arguments; the environment (``SEVERANCE_KEY``, ``SEVERANCE_KEY_FILE``,
        ``SEVERANCE_PASSPHRASE``); the key file recorded when the store was created.
        """
        backend = open_backend(_location_text(location))
        try:
            if not backend.exists():
                raise StoreNotFoundError(
                    f"no store at {backend.url!r}; create one with `severance init`"
                )
            meta = backend.get_meta()
            if not {"store_id", "key_check", "audit_key"} <= set(meta):
                raise StorePathError(
                    f"{backend.url!r} holds no Severance store (its settings are missing)"
                )
            store_id = meta["store_id"]
            raw = find_master_key(meta, passphrase, key, key_file)
            master = MasterKey(raw, store_id)
            master.verify(base64.b64decode(meta["key_check"]))
        except BaseException:
            backend.close()
            raise
        store = cls(backend, master, embedder)
        store._key_args = (passphrase, key, key_file)
        return store

    def close(self) -> None:
        """Close every open session and the database connection."""
        with self._lock:
            if self._closed:
                return
            for session in list(self._sessions):
                session.close()
            self._closed = True
            advance_anchor(self._anchor, self._open_backend.raw)
            self._open_backend.close()

    @property
    def _backend(self) -> AuthenticatedBackend:
        # Every use of the store goes through here, so a closed store refuses them all
        # (rather than the back-end quietly reconnecting).
        if self._closed:
            raise StoreError("this store is closed")
        return self._open_backend

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------------
    @property
    def store_id(self) -> str:
        return self._master.store_id

    @property
    def location(self) -> str:
        return self._backend.url

    @property
    def embedder(self) -> Embedder:
        """The store's embedder, loaded on first use."""
        if self._embedder is None:
            spec = self._embedder_spec
            self._embedder = load_embedder(spec if isinstance(spec, str) else None)
        return self._embedder

    # -- personas -----------------------------------------------------------------------------
    def _persona_row(self, name: str) -> PersonaRow:
        for row in self._backend.personas():
            if row.name == name:
                return row
        raise PersonaNotFoundError(f"no persona named {name!r}")

    def add_persona(
        self,
        name: str,
        *,
        sealed_with: Secret | None = None,
        vectors: Literal["sealed", "indexed"] = "sealed",
    ) -> PersonaInfo:
        """Create a persona with a fresh data key.

        The key is wrapped by the master key, or — with ``sealed_with`` — only by the persona's
        own secret, so that the person's master key cannot open it. ``vectors="indexed"``
        (PostgreSQL with pgvector only) keeps its vectors *plain* in the database under an HNSW
        index, for very large personas: the database's administrators can then read them.
        """
        check_name(name, "persona")
        if vectors not in ("sealed", "indexed"):
            raise InvalidInputError("vectors must be 'sealed' or 'indexed'")
        if vectors == "indexed" and not self._backend.indexed_vectors:
            raise InvalidInputError("this back-end keeps vectors sealed only (use PostgreSQL)")
        embedder = self.embedder
        persona_id = new_id("p_")
        data_key = new_key()
        wrapped, kdf = self._wrap_for(persona_id, data_key, sealed_with)
        row = PersonaRow(
            id=persona_id,
            name=name,
            created_at=time.time(),
            wrapped_key=wrapped,
            sealed=sealed_with is not None,
            seal_kdf=kdf,
            embedder=embedder.name,
            dimension=embedder.dimension,
        )
        with self._backend.transaction():
            self._backend.lock()
            if sealed_with is None and self._refresh_master():
                row = dataclasses.replace(row, wrapped_key=self._master.wrap(persona_id, data_key))
            if any(p.name == name for p in self._backend.personas()):
                raise AlreadyExistsError(f"a persona named {name!r} already exists")
            self._backend.insert_persona(row)
            if vectors == "indexed":
                self._backend.vector_rows(persona_id).enable_vectors(embedder.dimension)
            self._audit.append(
                "persona_added", persona_id, name, sealed=row.sealed, vectors=vectors
            )
        return _info(row, vectors)

    def _wrap_for(
        self, persona_id: str, data_key: bytes, secret: Secret | None
    ) -> tuple[bytes, str | None]:
        if secret is None:
            return self._master.wrap(persona_id, data_key), None
        if secret.key_file is not None and not Path(secret.key_file).expanduser().exists():
            # A new sealing key file, e.g. one an employer will keep.
            write_key_file(Path(secret.key_file).expanduser(), new_key())
        kdf = secret.kdf_text()
        return secret.derive(self.store_id, kdf).wrap(persona_id, data_key), kdf

    def seal_persona(self, name: str, secret: Secret) -> PersonaInfo:
        """Re-wrap a persona's data key with its own secret instead of the master key."""
        row = self._persona_row(name)
        if row.sealed:
            raise InvalidInputError(f"persona {name!r} is already sealed")
        data_key = self._unlock(row, None)
        wrapped, kdf = self._wrap_for(row.id, data_key, secret)
        sealed = PersonaRow(
            **{**_fields(row), "wrapped_key": wrapped, "sealed": True, "seal_kdf": kdf}
        )
        with self._backend.transaction():
            self._backend.update_persona(sealed)
            self._audit.append("persona_sealed", row.id, row.name)
        return _info(sealed, self._vector_mode(row.id))

    def unseal_persona(self, name: str, secret: Secret) -> PersonaInfo:
        """Wrap a sealed persona's data key with the master key again (needs its secret)."""
        row = self._persona_row(name)
        if not row.sealed:
            raise InvalidInputError(f"persona {name!r} is not sealed")
        data_key = self._unlock(row, secret)
        unsealed = PersonaRow(
            **{
                **_fields(row),
                "wrapped_key": self._master.wrap(row.id, data_key),
                "sealed": False,
                "seal_kdf": None,
            }
        )
        with self._backend.transaction():
            self._backend.update_persona(unsealed)
            self._audit.append("persona_unsealed", row.id, row.name)
        return _info(unsealed, self._vector_mode(row.id))

    def reembed(
        self,
        name: str,
        *,
        secret: Secret | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed every memory of a persona with the store's current embedder.

        Needed after switching embedders: a persona's vectors all come from one model. Runs in
        one transaction (all or nothing). Returns the number of memories re-embedded.
        """
        self._check_open()
        row = self._persona_row(name)
        data_key = self._unlock(row, secret)
        embedder = self.embedder
        updated = PersonaRow(
            **{**_fields(row), "embedder": embedder.name, "dimension": embedder.dimension}
        )
        session = self._session(updated, data_key, audited=False)

        def commit() -> None:
            self._backend.update_persona(updated)
            self._audit.append(
                "reembedded", row.id, row.name, memories=session.count(), embedder=embedder.name
            )

        try:
            return session.reembed(commit, progress)
        finally:
            session.abandon()

    def personas(self) -> list[PersonaInfo]:
        return [_info(r, self._vector_mode(r.id)) for r in self._backend.personas()]

    def persona(self, name: str) -> PersonaInfo:
        row = self._persona_row(name)
        return _info(row, self._vector_mode(row.id))

    def memory_count(self, name: str) -> int:
        """How many memories persona ``name`` holds (counted without unlocking it)."""
        return self._backend.rows(self._persona_row(name).id).count()

    def set_extractor(
        self,
        persona: str,
        spec: str,
        *,
        api_key_env: str | None = None,
        api_key: str | None = None,
        secret: Secret | None = None,
    ) -> dict[str, Any] | None:
        """Give persona ``persona`` its own fact extractor (``"none"`` removes it).

        ``spec`` is ``openai:URL#model=NAME``, ``ollama:URL#model=NAME`` or ``none`` (see
        :mod:`severance.extract.spec`). The API key is read at each call from the environment
        variable ``api_key_env``, or ``api_key`` is kept in the settings, which are sealed with
        the persona's own data key (so a sealed persona needs ``secret``). Returns what may be
        shown of the new settings (never the key), or None for ``none``.
        """
        from .extract import ExtractorSettings, meta_key, parse_spec, seal_settings
        from .seal import Sealer

        self._check_open()
        row = self._persona_row(persona)
        parsed = parse_spec(spec)
        settings = (
            None
            if parsed is None
            else ExtractorSettings.build(parsed, api_key_env=api_key_env, api_key=api_key)
        )
        if settings is None and (api_key_env is not None or api_key is not None):
            raise InvalidInputError("an API key goes with an extractor, not with 'none'")
        value = seal_settings(settings, Sealer(self._unlock(row, secret)), self.store_id, row.id)
        with self._backend.transaction():
            self._backend.set_meta(meta_key(row.id), value)
            self._audit.append(
                "extractor_set",
                row.id,
                row.name,
                extractor="none" if parsed is None else parsed.protocol,
            )
        return None if settings is None else settings.describe()

    def _vector_mode(self, persona_id: str) -> str:
        if not self._backend.indexed_vectors:
            return "sealed"
        indexed = self._backend.vector_rows(persona_id).vector_dimension() is not None
        return "indexed" if indexed else "sealed"

    # -- floors -------------------------------------------------------------------------------
    def add_floor(
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
        """Add a floor after the existing ones, or ``before``/``after`` a named one.

        Floors are tried in order and the first match wins; :meth:`shadowed_floors` then says
        whether the new floor (or one it now precedes) can ever match.
        """
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
        with self._backend.transaction():
            existing = self._backend.floors()
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
            self._backend.insert_floor(
                FloorRow(name, position, row.id, floor.rule_json(), floor.default)
            )
            if index < len(order):
                order.insert(index, name)
                self._renumber_floors(order)
            self._audit.append("floor_added", row.id, row.name, floor=name, position=index + 1)
        return floor

    def move_floor(self, name: str, *, before: str | None = None, after: str | None = None) -> int:
        """Move floor ``name`` just before or after another; returns its new position (1-based).

        The floor keeps its identity (and so its passes); only the order changes.
        """
        check_name(name, "floor")
        if (before is None) == (after is None):
            raise InvalidFloorError("say where to move it: --before FLOOR or --after FLOOR")
        if name in (before, after):
            raise InvalidFloorError("a floor cannot move relative to itself")
        with self._backend.transaction():
            order = [f.name for f in self._backend.floors()]
            if name not in order:
                raise FloorNotFoundError(f"no floor named {name!r}")
            order.remove(name)
            index = _insert_index(order, before, after)
            order.insert(index, name)
            self._renumber_floors(order)
            self._audit.append("floor_moved", floor=name, position=index + 1)
        return index + 1

    def _renumber_floors(self, order: list[str]) -> None:
        """Give the floors positions 1, 2, … in ``order`` (inside the caller's transaction).

        Each moved row is written whole through the authenticated back-end, which signs it
        again: the position is part of a floor's MAC, so a bare position update would leave the
        row looking forged.
        """
        rows = {f.name: f for f in self._backend.floors()}
        for position, name in enumerate(order, start=1):
            row = rows[name]
            if row.position != position:
                self._backend.update_floor(dataclasses.replace(row, position=position))

    def floors(self) -> list[Floor]:
        """The floors, in the order they are tried."""
        names = {p.id: p.name for p in self._backend.personas()}
        return [
            Floor.from_rule(r.name, names[r.persona_id], r.rule, r.is_default)
            for r in self._backend.floors()
        ]

    def remove_floor(self, name: str) -> None:
        check_name(name, "floor")
        with self._backend.transaction():
            if not self._backend.delete_floor(name):
                raise FloorNotFoundError(f"no floor named {name!r}")
            self._audit.append("floor_removed", floor=name)

    def shadowed_floors(self) -> list[Shadow]:
        """Floors that can never match by rule because an earlier floor matches all they do."""
        return shadows(self.floors())

    @property
    def strict(self) -> bool:
        """Whether a context no floor matches is refused even when a default floor exists."""
        return self._backend.get_meta().get(_STRICT_KEY) == "1"

    def set_strict(self, strict: bool) -> None:
        """Turn strict routing on or off for the whole store (audited)."""
        with self._backend.transaction():
            self._backend.set_meta(_STRICT_KEY, "1" if strict else "0")
            self._audit.append("floor_strict", strict=bool(strict))

    def resolve(
        self, context: Context | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> FloorMatch:
        """Which floor (and so which persona) a context wakes, and why."""
        return resolve(self.floors(), _context(context, kwargs), strict=self.strict)

    def explain(
        self, context: Context | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[FloorCheck]:
        """Every floor tried against a context, in order, with why it did or did not match."""
        return explain(self.floors(), _context(context, kwargs))

    def note_route(self, match: FloorMatch, context: Context | Mapping[str, Any]) -> None:
        """Record that ``context`` was routed to ``match`` by a server whose session for that
        persona was already awake (so no new ``enter`` entry says so). Never content."""
        ctx = _context(context, {})
        row = self._persona_row(match.persona)
        self._audit.append(
            "routed", row.id, row.name, floor=match.floor.name, by=match.by, **_where(ctx)
        )

    def clients_seen(self) -> list[dict[str, Any]]:
        """Every client name that woke a persona (``enter``/``routed`` entries), with its
        family, the floors and personas it woke, how often and when last."""
        seen: dict[str, dict[str, Any]] = {}
        for entry in to_entries(self._backend.audit_rows(None)):
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

    # -- waking -------------------------------------------------------------------------------
    def enter(
        self,
        context: Context | Mapping[str, Any] | None = None,
        *,
        secret: Secret | None = None,
        **kwargs: Any,
    ) -> Session:
        """Wake the persona whose floor matches the context and return its session.

        ``context`` is a :class:`Context` or a dict with ``floor``, ``client``, ``path`` (or
        ``paths``), ``host`` and ``at``; the same keys may be given as keyword arguments:
        ``store.enter(floor="office")``, ``store.enter(client="claude-code", path="~/work")``.
        A sealed persona also needs its ``secret``.
        """
        self._check_open()
        ctx = _context(context, kwargs)
        match = resolve(self.floors(), ctx, strict=self.strict)
        row = self._persona_row(match.persona)
        return self._wake(row, secret, floor=match.floor.name, by=match.by, context=ctx)

    def _wake(
        self,
        row: PersonaRow,
        secret: Secret | None,
        *,
        floor: str | None,
        by: str,
        expires_at: float | None = None,
        audited: bool = True,
        context: Context | None = None,
    ) -> Session:
        data_key = self._unlock(row, secret)
        self._check_embedder(row)
        notices = self._notices_for(row.id) if expires_at is None else []
        session = self._session(
            row, data_key, floor=floor, expires_at=expires_at, notices=notices, audited=audited
        )
        if audited:
            where = _where(context) if context is not None else {}
            self._audit.append(
                "enter",
                row.id,
                row.name,
                floor=floor,
                by=by,
                override=expires_at is not None,
                **where,
            )
        return session

    def _session(
        self,
        row: PersonaRow,
        data_key: bytes,
        *,
        floor: str | None = None,
        expires_at: float | None = None,
        notices: Sequence[Notice] = (),
        audited: bool = True,
    ) -> Session:
        """A session of persona ``row`` built from its collaborators (no link back to us)."""
        backend = self._backend
        rows = backend.rows(row.id)
        vector_rows = backend.vector_rows(row.id) if backend.indexed_vectors else None
        if vector_rows is not None and vector_rows.vector_dimension() is None:
            vector_rows = None
        session = Session(
            row,
            rows=rows,
            codec=MemoryCodec(data_key, self.store_id, row.id, row.dimension),
            embedder=self.embedder,
            transaction=backend.transaction,
            audit=self._audit.append,
            audit_rows=backend.audit_rows,
            on_close=self._session_closed,
            read_meta=backend.get_meta,
            vector_rows=vector_rows,
            floor=floor,
            expires_at=expires_at,
            notices=notices,
            audited=audited,
        )
        with self._lock:
            self._sessions.add(session)
        return session

    def override(
        self,
        persona: str,
        *,
        reason: str,
        minutes: int,
        secret: Secret | None = None,
    ) -> Session:
        """Wake ``persona`` outside its floor (the overtime contingency).

        Needs the persona's own unlock (its secret, if sealed), a non-empty reason and a time
        limit of at most :data:`MAX_OVERRIDE_MINUTES`; the session refuses every call once the
        time is up, and the persona is told the next time it wakes normally. The grant is
        recorded so that other processes of the same person (the CLI) can
        :meth:`resume_override` until it expires.
        """
        self._check_open()
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise InvalidInputError("an override needs a reason (1-500 characters)")
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not (1 <= minutes <= MAX_OVERRIDE_MINUTES)
        ):
            raise InvalidInputError(f"an override lasts 1 to {MAX_OVERRIDE_MINUTES} minutes")
        row = self._persona_row(persona)
        self._unlock(row, secret)  # refuse before anything is recorded
        expires_at = time.time() + minutes * 60
        with self._backend.transaction():
            self._audit.append(
                "override",
                row.id,
                row.name,
                reason=reason.strip(),
                minutes=minutes,
                expires_at=from_epoch(expires_at).isoformat(),
            )
            self._backend.set_meta(f"override:{row.id}", repr(expires_at))
        return self._wake(row, secret, floor=None, by="override", expires_at=expires_at)

    def resume_override(self, persona: str, *, secret: Secret | None = None) -> Session:
        """A session on an override granted earlier (e.g. by another process) that is still
        running; :class:`SessionClosedError` if there is none or it expired."""
        self._check_open()
        row = self._persona_row(persona)
        grant = self._backend.get_meta().get(f"override:{row.id}")
        if grant is None or float(grant) <= time.time():
            raise SessionClosedError(f"no override of persona {persona!r} is running")
        return self._wake(row, secret, floor=None, by="override", expires_at=float(grant))

    def _unlock(self, row: PersonaRow, secret: Secret | None) -> bytes:
        if row.sealed:
            if secret is None:
                raise UnlockError(f"persona {row.name!r} is sealed; it needs its own secret")
            return secret.derive(self.store_id, row.seal_kdf).unwrap(row.id, row.wrapped_key)
        try:
            return self._master.unwrap(row.id, row.wrapped_key)
        except IntegrityError:
            # Another process may have rotated the master key since we opened the store.
            if not self._refresh_master():
                raise
        fresh = next((p for p in self._backend.personas() if p.id == row.id), None)
        if fresh is None:
            raise PersonaNotFoundError(f"no persona named {row.name!r}")
        return self._master.unwrap(fresh.id, fresh.wrapped_key)

    def _refresh_master(self) -> bool:
        """Pick up a key rotation made by another process: True if the master key changed.

        A key-file store re-reads its (replaced) key file; a store opened with an explicit key
        or passphrase that the rotation retired gets a typed error, not "tampered"."""
        meta = self._backend.get_meta()
        if meta.get("key_check") == self._key_check:
            return False
        try:
            master = MasterKey(find_master_key(meta, *self._key_args), self.store_id)
            master.verify(base64.b64decode(meta["key_check"]))
        except (UnlockError, InvalidInputError):
            raise UnlockError(
                "the store's master key was rotated by another process; the key this process"
                " was opened with no longer opens it: open the store again with the new key"
            ) from None
        self._master, self._key_check = master, meta["key_check"]
        return True

    def _check_embedder(self, row: PersonaRow) -> None:
        embedder = self.embedder
        if row.embedder != embedder.name or row.dimension != embedder.dimension:
            raise EmbedderMismatchError(
                f"persona {row.name!r} holds vectors from {row.embedder!r} ({row.dimension} dims)"
                f" but this store is using {embedder.name!r} ({embedder.dimension} dims); open the"
                f" store with that embedder, or run `severance persona reembed {row.name}`"
            )

    def _session_closed(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
        if not self._closed and session.audited:
            self._audit.append("exit", session.persona_id, session.persona, **session.counts)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this store is closed")

    # -- crossings ----------------------------------------------------------------------------
    def reintegrate(
        self,
        source: str,
        into: str,
        *,
        select: Selection | None = None,
        mode: Literal["copy", "move"] = "copy",
        dry_run: bool = False,
        merge_similar: bool = False,
        source_secret: Secret | None = None,
        into_secret: Secret | None = None,
    ) -> Reintegration:
        """Copy or move memories from persona ``source`` into persona ``into``.

        Only memories with identical (normalised) text merge; ``merge_similar=True`` also
        merges near-duplicates. See :mod:`severance.crossings` for selection, de-duplication,
        provenance and concurrency.
        """
        from .crossings import reintegrate

        self._check_open()
        if mode not in ("copy", "move"):
            raise InvalidInputError("mode must be 'copy' or 'move'")
        src_row = self._persona_row(source)
        dst_row = self._persona_row(into)
        if src_row.id == dst_row.id:
            raise InvalidInputError("a persona cannot be reintegrated into itself")
        if (src_row.embedder, src_row.dimension) != (dst_row.embedder, dst_row.dimension):
            raise EmbedderMismatchError(
                f"{source!r} and {into!r} use different embedders; re-embed one of them first"
            )
        src = self._wake(src_row, source_secret, floor=None, by="reintegration", audited=False)
        try:
            dst = self._wake(dst_row, into_secret, floor=None, by="reintegration", audited=False)
        except BaseException:
            src.abandon()
            raise
        try:
            return reintegrate(
                src,
                dst,
                select=select,
                mode=mode,
                dry_run=dry_run,
                merge_similar=merge_similar,
                audit=self._audit.append,
            )
        finally:
            src.abandon()
            dst.abandon()

    def clean_slate(self, persona: str, *, confirm: str) -> int:
        """Erase a persona for good: destroy its wrapped key, delete its rows, history, index
        snapshots and floors, and reclaim the space so freed pages hold nothing of it.

        ``confirm`` must repeat the persona's name. Returns how many memories were erased.
        The name can be reused afterwards for a brand-new, empty persona.
        """
        self._check_open()
        row = self._persona_row(persona)
        if confirm != persona:
            raise InvalidInputError("to erase a persona, confirm= must repeat its name exactly")
        with self._lock:
            for session in [s for s in self._sessions if s.persona_id == row.id]:
                session.abandon(erased=True)
        rows = self._backend.rows(row.id)
        with self._backend.transaction():
            # Under the writer lock, so the count is of exactly what is erased, and every
            # write another process makes after it finds the persona gone (and fails).
            rows.lock()
            erased = rows.count()
            self._backend.delete_persona(row.id)
            if f"override:{row.id}" in self._backend.get_meta():
                self._backend.set_meta(f"override:{row.id}", "0")  # end a running override
            _erase_extractor(self._backend, row.id)
            self._audit.append("clean_slate", row.id, row.name, memories=erased)
        self._backend.reclaim()
        return erased

    def rotate_key(
        self,
        *,
        passphrase: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> str | None:
        """Re-wrap every data key (and the audit key) under a new master key.

        No memory is re-encrypted. The new key comes from ``passphrase``, or is random and
        written to ``key_file`` (default: the store's key file, replaced once the new key is
        committed). The old key stops working. Returns the key file path, if any.
        """
        from .rotation import rotate_master_key

        self._check_open()
        if passphrase is not None and key_file is not None:
            raise InvalidInputError("give a passphrase or a key file, not both")
        if passphrase is not None:
            validate.new_passphrase(passphrase)
            check_new_passphrase(passphrase)

        def current_master() -> MasterKey:
            self._refresh_master()  # under the writer lock: a rotation made elsewhere counts
            return self._master

        master, target = rotate_master_key(
            self._backend,
            self._audit,
            self.store_id,
            current_master,
            passphrase=passphrase,
            key_file=key_file,
            audit_key_id=_AUDIT_KEY_ID,
        )
        self._master, self._key_check = master, self._backend.get_meta()["key_check"]
        self._key_args = (passphrase, None, None) if passphrase is not None else (None, None, None)
        return str(target) if target is not None else None

    # -- audit --------------------------------------------------------------------------------
    def audit(self, persona: str | None = None) -> list[AuditEntry]:
        """The audit chain, or the entries about one persona."""
        persona_id = self._persona_row(persona).id if persona is not None else None
        return to_entries(self._backend.audit_rows(persona_id))

    def check_records(self) -> list[RecordProblem]:
        """Every pass, floor, persona and setting that fails authentication right now
        (written by someone without the store's key); see :mod:`severance.records`."""
        return self._open_backend.check()

    def verify_audit(self) -> VerifyResult:
        """Check the whole audit chain, and the store against its anchor (rollback, deleted
        memories); names the first bad entry, and every missing one, if any."""
        missing = self._anchor.check(self._backend.raw, full_audit=True)
        return with_anchor(self._audit.verify(), missing)

    def reachable(self) -> bool:
        """Whether the database answers right now (for health checks; never raises)."""
        try:
            self._backend.raw.last_audit()
        except SeveranceError:
            return False
        return True

    def shares_login(self) -> bool:
        """Whether the database login this store uses can also reach other people's stores
        (PostgreSQL's shared-login mode): then the database protects nothing between stores;
        see docs/postgres.md for one login per store."""
        probe = getattr(self._backend.raw, "shared_login", None)
        return bool(probe()) if callable(probe) else False

    @property
    def rollback_problems(self) -> list[RecordProblem]:
        """What the store lacked, compared with its anchor, when it was opened."""
        return list(self._rollback)

    def diagnose(self) -> Diagnosis:
        """Every trust problem of the store (forged rows, rollback, audit chain) with what
        can be done about each; changes nothing. See :mod:`severance.doctor`."""
        backend = self._backend
        audit = backend.audit_rows()
        revived = revived_passes(backend.passes(), audit)
        revived += revived_floors(backend.raw.floors(), audit)
        return Diagnosis(
            self._audit.verify(),
            [*self.check_records(), *revived],
            self._anchor.check(backend.raw, full_audit=True),
        )

    def accept_current_state(self) -> None:
        """Take the store as it is now as the state to compare with from here on (after a
        backup was restored on purpose, say). Audited."""
        self._audit.append("anchor_reset")
        self._anchor.advance(self._backend.raw, signed=True, accept=True)
        self._rollback = []

    def _notices_for(self, persona_id: str) -> list[Notice]:
        """Crossings that touched a persona since it last woke normally."""
        # Read back from the newest entry, a page at a time, only as far as the last normal
        # wake: the cost is what happened since, not the persona's whole history.
        notices: list[Notice] = []
        before: int | None = None
        while True:
            page = self._backend.audit_page(persona_id, before, _NOTICE_PAGE)
            for entry in to_entries(page):
                if entry.event == "enter" and not entry.detail.get("override"):
                    return list(reversed(notices))
                if entry.event in NOTICE_EVENTS:
                    seen = persona_view(entry)
                    notices.append(Notice(seen.at, seen.event, seen.detail))
            if len(page) < _NOTICE_PAGE:
                return list(reversed(notices))
            before = page[-1].seq


NOTICE_EVENTS = frozenset({"override", "reintegrated_into", "reintegrated_from"})


def _erase_extractor(backend: AuthenticatedBackend, persona_id: str) -> None:
    """Blank a persona's sealed extractor settings (its key is being destroyed too)."""
    from .extract import meta_key

    if backend.get_meta().get(meta_key(persona_id)):
        backend.set_meta(meta_key(persona_id), "")


def _fields(row: PersonaRow) -> dict[str, Any]:
    return {f: getattr(row, f) for f in row.__slots__}


def _info(row: PersonaRow, vectors: str = "sealed") -> PersonaInfo:
    return PersonaInfo(
        vectors=vectors,
        id=row.id,
        name=row.name,
        created_at=from_epoch(row.created_at),
        sealed=row.sealed,
        embedder=row.embedder,
        dimension=row.dimension,
    )


def _insert_index(order: list[str], before: str | None, after: str | None) -> int:
    """Where a floor goes in ``order`` (names): before/after a named floor, else at the end."""
    anchor = before if before is not None else after
    if anchor is None:
        return len(order)
    check_name(anchor, "floor")
    if anchor not in order:
        raise FloorNotFoundError(f"no floor named {anchor!r}")
    return order.index(anchor) + (1 if after is not None else 0)


def _where(context: Context) -> dict[str, Any]:
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


def _context(context: Context | Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> Context:
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
