"""Store: everything of one person — personas, floors, keys and the audit log.

``Store.init`` creates a store and its master key; ``Store.open`` unlocks an existing one.
A store is one directory (SQLite, the default) or one PostgreSQL database. Reading and writing
memories happens only through a :class:`Session`, obtained with :meth:`Store.enter`, which
wakes exactly one persona chosen by the floors.

The store opens and closes, and delegates to parts it builds and hands their collaborators
(the authenticated records, the audit log, the keyring) — none of them knows the store: the
key lifecycle is :class:`~severance.keys.Keyring`, personas a
:class:`~severance.persona_book.PersonaBook`, floors a :class:`~severance.floor_book.FloorBook`,
waking a :class:`~severance.waker.Waker`, trust checks
:class:`~severance.store_checks.StoreChecks`, extractor settings
:mod:`severance.extractor_settings`, reintegration :mod:`severance.crossings`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .anchor import Anchor, anchor_path
from .audit import AuditLog, VerifyResult
from .backends import Backend, open_backend
from .backends.base import PersonaRow
from .doctor import Diagnosis
from .embedders import DEFAULT_EMBEDDER, Embedder, load_embedder, spec_for
from .errors import (
    EmbedderMismatchError,
    InvalidInputError,
    SessionClosedError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
)
from .extractor_settings import set_extractor
from .floor_book import FloorBook, as_context
from .floors import Context, Floor, FloorCheck, FloorMatch, Shadow
from .keys import KeyInput, Keyring, MasterKey, Secret, Unlock, default_key_dir
from .model import AuditEntry, PersonaInfo, from_epoch, new_id
from .persona_book import PersonaBook
from .records import AuthenticatedBackend, RecordProblem, authenticated
from .session import Session
from .store_checks import StoreChecks
from .waker import Waker

if TYPE_CHECKING:
    from .crossings import Reintegration, Selection

__all__ = ["Store"]

STORE_FORMAT = "1"
#: The longest an override may last.
MAX_OVERRIDE_MINUTES = 240


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
        self,
        backend: Backend,
        master: MasterKey,
        embedder: str | Embedder | None,
        *,
        unlock: Unlock | None = None,
        created: str | None = None,
    ) -> None:
        self._closed = False
        audit_key = Keyring.audit_key(master, backend.get_meta())
        self._audit = AuditLog(backend, audit_key)
        anchor = Anchor(anchor_path(default_key_dir(), master.store_id), master.store_id, audit_key)
        # Everything above the store sees the back-end through the record checks.
        self._open_backend = authenticated(
            backend, master.store_id, audit_key, self._audit, may_adopt=not anchor.signed
        )
        self._checks = StoreChecks(lambda: self._backend, self._audit, anchor)
        self._keys = Keyring(self._open_backend, self._audit.append, master, unlock or Unlock())
        self._personas = PersonaBook(
            lambda: self._backend, self._keys, self._audit.append, lambda: self.embedder
        )
        self._floors = FloorBook(lambda: self._backend, self._personas.row, self._audit.append)
        self._waker = Waker(
            lambda: self._backend,
            self._keys,
            self._audit,
            lambda: self.embedder,
            self._checks.notices_for,
        )
        meta = self._open_backend.get_meta()
        self._embedder_spec = embedder if embedder is not None else meta.get("embedder")
        self._embedder: Embedder | None = embedder if not isinstance(embedder, str | None) else None
        self._lock = threading.RLock()
        if created is not None:
            self._audit.append("store_created", key_mode=created)

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
        is derived from ``passphrase`` (Argon2id), taken from ``key`` (32 bytes, or base64 of
        them), or written to ``key_file``.
        """
        if sum(x is not None for x in (passphrase, key, key_file)) > 1:
            raise InvalidInputError("give at most one of passphrase, key and key_file")
        text = _location_text(location)
        backend = open_backend(text)
        try:
            if backend.exists():
                # backend.url, not the text given: a PostgreSQL URL may carry a password.
                raise StoreExistsError(f"a store already exists at {backend.url!r}")
            spec = embedder if isinstance(embedder, str) else DEFAULT_EMBEDDER
            if not isinstance(embedder, str) and embedder is not None:
                spec = spec_for(embedder)
            store_id = new_id("s_")
            new = Keyring.create_master(
                store_id, text, passphrase=passphrase, key=key, key_file=key_file
            )
            meta = {
                "store_id": store_id,
                "format": STORE_FORMAT,
                "embedder": spec,
                "created_at": repr(time.time()),
                **new.settings,
            }
            try:
                backend.create(meta)
            except BaseException:
                new.discard()
                raise
            return cls(backend, new.master, embedder, created=meta["key_mode"])
        except BaseException:
            backend.close()
            raise

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
            unlock = Unlock(passphrase, key, key_file)
            master = Keyring.unlock_master(meta, unlock)
        except BaseException:
            backend.close()
            raise
        return cls(backend, master, embedder, unlock=unlock)

    def close(self) -> None:
        """Close every open session and the database connection."""
        with self._lock:
            if self._closed:
                return
            self._waker.close_all()
            self._closed = True
            self._checks.closing(self._open_backend.raw)
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
        return self._keys.store_id

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

    # -- personas (kept by a PersonaBook; see severance.persona_book) ----------------------------
    def _persona_row(self, name: str) -> PersonaRow:
        return self._personas.row(name)

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
        return self._personas.add(name, sealed_with, vectors)

    def seal_persona(self, name: str, secret: Secret) -> PersonaInfo:
        """Re-wrap a persona's data key with its own secret instead of the master key."""
        row = self._persona_row(name)
        if row.sealed:
            raise InvalidInputError(f"persona {name!r} is already sealed")
        self._keys.seal(row, secret)
        return self.persona(name)

    def unseal_persona(self, name: str, secret: Secret) -> PersonaInfo:
        """Wrap a sealed persona's data key with the master key again (needs its secret)."""
        row = self._persona_row(name)
        if not row.sealed:
            raise InvalidInputError(f"persona {name!r} is not sealed")
        self._keys.unseal(row, secret)
        return self.persona(name)

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
        data_key = self._keys.unlock(row, secret)
        embedder = self.embedder
        updated = dataclasses.replace(row, embedder=embedder.name, dimension=embedder.dimension)
        session = self._waker.session(updated, data_key, audited=False)

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
        return self._personas.all()

    def persona(self, name: str) -> PersonaInfo:
        return self._personas.info(self._persona_row(name))

    def memory_count(self, name: str) -> int:
        """How many memories persona ``name`` holds (counted without unlocking it)."""
        return self._personas.count(name)

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
        self._check_open()
        row = self._persona_row(persona)
        return set_extractor(
            self._backend,
            self._audit.append,
            row,
            lambda: self._keys.unlock(row, secret),
            self.store_id,
            spec,
            api_key_env=api_key_env,
            api_key=api_key,
        )

    # -- floors (kept by a FloorBook; see severance.floor_book) --------------------------------
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
        return self._floors.add(
            name,
            persona,
            clients=clients,
            paths=paths,
            hosts=hosts,
            hours=hours,
            timezone=timezone,
            default=default,
            before=before,
            after=after,
        )

    def move_floor(self, name: str, *, before: str | None = None, after: str | None = None) -> int:
        """Move floor ``name`` just before or after another; returns its new position (1-based).

        The floor keeps its identity (and so its passes); only the order changes.
        """
        return self._floors.move(name, before=before, after=after)

    def floors(self) -> list[Floor]:
        """The floors, in the order they are tried."""
        return self._floors.floors()

    def remove_floor(self, name: str) -> None:
        self._floors.remove(name)

    def shadowed_floors(self) -> list[Shadow]:
        """Floors that can never match by rule because an earlier floor matches all they do."""
        return self._floors.shadowed()

    @property
    def strict(self) -> bool:
        """Whether a context no floor matches is refused even when a default floor exists."""
        return self._floors.strict

    def set_strict(self, strict: bool) -> None:
        """Turn strict routing on or off for the whole store (audited)."""
        self._floors.set_strict(strict)

    def resolve(
        self, context: Context | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> FloorMatch:
        """Which floor (and so which persona) a context wakes, and why."""
        return self._floors.resolve(context, kwargs)

    def explain(
        self, context: Context | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[FloorCheck]:
        """Every floor tried against a context, in order, with why it did or did not match."""
        return self._floors.explain(context, kwargs)

    def note_route(self, match: FloorMatch, context: Context | Mapping[str, Any]) -> None:
        """Record that ``context`` was routed to ``match`` by a server whose session for that
        persona was already awake (so no new ``enter`` entry says so). Never content."""
        self._floors.note_route(match, as_context(context, {}))

    def clients_seen(self) -> list[dict[str, Any]]:
        """Every client name that woke a persona (``enter``/``routed`` entries), with its
        family, the floors and personas it woke, how often and when last."""
        return self._floors.clients_seen()

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
        ctx = as_context(context, kwargs)
        match = self._floors.resolve(ctx, {})
        row = self._persona_row(match.persona)
        return self._waker.wake(row, secret, floor=match.floor.name, by=match.by, context=ctx)

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
        self._keys.unlock(row, secret)  # refuse before anything is recorded
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
        return self._waker.wake(row, secret, floor=None, by="override", expires_at=expires_at)

    def resume_override(self, persona: str, *, secret: Secret | None = None) -> Session:
        """A session on an override granted earlier (e.g. by another process) that is still
        running; :class:`SessionClosedError` if there is none or it expired."""
        self._check_open()
        row = self._persona_row(persona)
        grant = self._backend.get_meta().get(f"override:{row.id}")
        if grant is None or float(grant) <= time.time():
            raise SessionClosedError(f"no override of persona {persona!r} is running")
        return self._waker.wake(row, secret, floor=None, by="override", expires_at=float(grant))

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
        src = self._waker.wake(
            src_row, source_secret, floor=None, by="reintegration", audited=False
        )
        try:
            dst = self._waker.wake(
                dst_row, into_secret, floor=None, by="reintegration", audited=False
            )
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
        self._waker.erase(row.id)
        return self._personas.erase(row)

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
        self._check_open()
        target = self._keys.rotate(passphrase=passphrase, key_file=key_file)
        return str(target) if target is not None else None

    # -- audit and trust (see severance.store_checks) --------------------------------------------
    def audit(self, persona: str | None = None) -> list[AuditEntry]:
        """The audit chain, or the entries about one persona."""
        persona_id = self._persona_row(persona).id if persona is not None else None
        return self._checks.audit(persona_id)

    def check_records(self) -> list[RecordProblem]:
        """Every pass, floor, persona and setting that fails authentication right now
        (written by someone without the store's key); see :mod:`severance.records`."""
        return self._checks.check_records()

    def verify_audit(self) -> VerifyResult:
        """Check the whole audit chain, and the store against its anchor (rollback, deleted
        memories); names the first bad entry, and every missing one, if any."""
        return self._checks.verify_audit()

    def reachable(self) -> bool:
        """Whether the database answers right now (for health checks; never raises)."""
        return self._checks.reachable()

    def shares_login(self) -> bool:
        """Whether the database login this store uses can also reach other people's stores
        (PostgreSQL's shared-login mode): then the database protects nothing between stores;
        see docs/postgres.md for one login per store."""
        return self._checks.shares_login()

    @property
    def rollback_problems(self) -> list[RecordProblem]:
        """What the store lacked, compared with its anchor, when it was opened."""
        return self._checks.rollback_problems

    def diagnose(self) -> Diagnosis:
        """Every trust problem of the store (forged rows, rollback, audit chain) with what
        can be done about each; changes nothing. See :mod:`severance.doctor`."""
        return self._checks.diagnose()

    def accept_current_state(self) -> None:
        """Take the store as it is now as the state to compare with from here on (after a
        backup was restored on purpose, say). Audited."""
        self._checks.accept_current_state()

    # -- for the store's own services (passes) and the adapters --------------------------------
    @property
    def records(self) -> AuthenticatedBackend:
        """The store's configuration records, signed on write and checked on read (see
        :mod:`severance.records`): what :class:`~severance.passes.Passes` keeps passes in."""
        return self._backend

    @property
    def audit_log(self) -> AuditLog:
        """The store's audit log (to append entries about the store's own services)."""
        self._check_open()
        return self._audit

    def info(self) -> dict[str, Any]:
        """What may be shown about the store: where it is, its id, how it is unlocked (its key
        mode and key file, if any — never a key) and its embedder."""
        meta = self._backend.get_meta()
        return {
            "store": self.location,
            "store_id": self.store_id,
            "key_mode": meta.get("key_mode"),
            "key_file": meta.get("key_file") or None,
            "embedder": meta.get("embedder"),
        }
