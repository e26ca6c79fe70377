"""Severance through its Python API, on SQLite or PostgreSQL.

Configured as the README and docs/concepts.md say: one store for the person, one persona per
scope (``work``, ``home``, ``client``), one floor per persona matching its workspace folder,
no default floor (so a context that matches nothing wakes nothing). The handle for a scope
is the session ``store.enter(floor=...)`` returns; every read and write goes through it.
The master key is a key file beside the store (created by ``Store.init``). The servers
(vector 8) are :mod:`bench.isolation.severance_servers`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.isolation.base import BIG_K, Adapter, Call, PeerUnavailable, capture
from bench.isolation.plants import SCOPES, Plant
from bench.isolation.tally import Tally

__all__ = ["FLOORS", "SeveranceAdapter"]

FLOORS: Mapping[str, str] = {"work": "office", "home": "house", "client": "studio"}
MODES = ("hybrid", "dense", "keyword")


class SeveranceAdapter(Adapter):
    handle = "a session: `store.enter(floor=...)` (one persona per scope, one floor each)"

    def __init__(
        self,
        workdir: Path,
        *,
        location: str | None = None,
        data_dir: Path | None = None,
        embedder: Any = None,
        servers: bool = True,
        http_timing_pairs: int = 100,
    ) -> None:
        super().__init__(workdir)
        self.http_timing_pairs = http_timing_pairs
        try:
            import severance
        except ImportError as exc:  # pragma: no cover - the package under test
            raise PeerUnavailable(f"severance is not importable ({exc})") from exc
        self._sev = severance
        self.backend = "postgresql" if location else "sqlite"
        self.label = f"Severance ({'PostgreSQL' if location else 'SQLite'})"
        self.location = location or str(workdir / "store")
        self.data_dir = data_dir  # the PostgreSQL server's files, when we started it
        self.key_file = workdir / "keys" / "master.key"
        self.workspaces = {s: workdir / "workspaces" / s for s in SCOPES}
        self.embedder = embedder
        self.with_servers = servers
        self.store: Any = None
        self.sessions: dict[str, Any] = {}
        for path in self.workspaces.values():
            path.mkdir(parents=True, exist_ok=True)
        # Created with the default embedder *spec* (what `severance serve` loads); the shared,
        # already loaded model is handed to this process's Store.open only.
        store = severance.Store.init(self.location, key_file=self.key_file)
        try:
            for scope in SCOPES:
                store.add_persona(scope)
                store.add_floor(
                    FLOORS[scope], persona=scope, paths=[f"{self.workspaces[scope]}/**"]
                )
        finally:
            store.close()
        self.reopen()

    # -- set-up and files --------------------------------------------------------------------
    def reopen(self) -> None:
        self.store = self._sev.Store.open(
            self.location, key_file=self.key_file, embedder=self.embedder
        )
        self.sessions = {s: self.store.enter(floor=FLOORS[s]) for s in SCOPES}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
            self.sessions = {}

    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        for scope, items in plants.items():
            for p in items:
                m = self.sessions[scope].remember(
                    p.text, kind="note", tags=[p.tag], metadata=p.metadata
                )
                self.ids[p.key] = m.id

    def files(self) -> list[Path]:
        roots = [self.key_file.parent]
        if self.backend == "sqlite":
            roots.append(Path(self.location))
        elif self.data_dir is not None:
            roots.append(self.data_dir)
        return roots

    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        s = self.sessions[scope]
        for p in plants:
            with contextlib.suppress(self._sev.MemoryNotFoundError):
                s.forget(self.ids[p.key])
        self.store.clean_slate(scope, confirm=scope)
        return [f"{scope}.forget(id) for each memory", f"store.clean_slate({scope!r}, confirm=...)"]

    def info(self) -> dict[str, Any]:
        return {
            "version": getattr(self._sev, "__version__", None),
            "backend": self.backend,
            "handle": self.handle,
            "configuration": "Store.init(location, key_file=...); add_persona(work|home|client);"
            " add_floor(office|house|studio, persona=..., paths=[<workspace>/**]); no default "
            "floor; memories written with Session.remember(text, tags=[...], metadata={...})",
            "doc": "README.md (In Python), docs/concepts.md (floors, sessions), docs/servers.md "
            "(passes, MCP over stdio and HTTP, --mcp-require-pass)",
        }

    # -- operations ---------------------------------------------------------------------------
    def _s(self, scope: str) -> Any:
        return self.sessions[scope]

    def search(self, scope: str, query: str) -> list[Call]:
        s = self._s(scope)
        return [
            capture(
                f"{scope}.recall({query!r}, k={BIG_K}, mode={mode!r})",
                functools.partial(s.recall, query, k=BIG_K, mode=mode),
            )
            for mode in MODES
        ]

    def filtered_search(self, scope: str, victim: Plant) -> list[Call]:
        s = self._s(scope)
        return [
            capture(
                f"{scope}.recall({victim.topic!r}, k={BIG_K}, tags=[{victim.tag!r}])",
                lambda: s.recall(victim.topic, k=BIG_K, tags=[victim.tag]),
            )
        ]

    def get(self, scope: str, ident: str) -> Call:
        return capture(f"{scope}.get({ident!r})", lambda: self._s(scope).get(ident))

    def update(self, scope: str, ident: str, text: str) -> Call:
        return capture(
            f"{scope}.update({ident!r}, {text!r})", lambda: self._s(scope).update(ident, text)
        )

    def delete(self, scope: str, ident: str) -> Call:
        return capture(f"{scope}.forget({ident!r})", lambda: self._s(scope).forget(ident))

    def history(self, scope: str, ident: str) -> Call:
        return capture(f"{scope}.history({ident!r})", lambda: self._s(scope).history(ident))

    def listing(self, scope: str) -> list[Call]:
        s = self._s(scope)
        return [
            capture(f"{scope}.memories(limit=1000)", lambda: s.memories(limit=1000)),
            capture(
                f"{scope}.memories(limit=1000, newest_first=False)",
                lambda: s.memories(limit=1000, newest_first=False),
            ),
            capture(f"{scope}.export()", s.export),
            capture(f"{scope}.audit()", s.audit),
            capture(f"{scope}.notices()", s.notices),
        ]

    def counts(self, scope: str) -> list[tuple[str, int]]:
        s = self._s(scope)
        return [
            (f"{scope}.count()", s.count()),
            (f"{scope}.memories(limit=1).total", s.memories(limit=1).total),
        ]

    def absent_id(self) -> str:
        from severance.model import new_id

        return new_id("m_")

    def forgotten(self) -> list[Call]:
        store = self.store

        def woken(session: Any) -> str:
            try:
                return f"woke {session.persona}: {session.memories(limit=1000)!r}"
            finally:
                session.close()

        attempts: list[tuple[str, Any]] = [
            ("store.enter()", lambda: store.enter()),
            ("store.enter({})", lambda: store.enter({})),
            ("store.enter(floor='')", lambda: store.enter(floor="")),
            ("store.enter(floor=None)", lambda: store.enter(floor=None)),
            ("store.enter(client='', paths=[])", lambda: store.enter(client="", paths=[])),
            (
                "store.enter(path=<a folder outside every floor>)",
                lambda: store.enter(path=str(self.workdir)),
            ),
        ]
        return [capture(call, fn, woken) for call, fn in attempts]

    def victim_view(self, scope: str, plant: Plant) -> str | None:
        try:
            return str(self._s(scope).get(self.ids[plant.key]).text)
        except self._sev.MemoryNotFoundError:
            return None

    def timed_get(self, scope: str, ident: str) -> Any:
        s = self._s(scope)
        return lambda: s.get(ident)

    def timed_label(self) -> str:
        return "work.get(<id>)"

    def servers(self, scope: str, victims: Sequence[Plant], tally: Tally) -> str | None:
        if not self.with_servers:
            return "servers not run in this configuration (--isolation-no-servers)"
        from bench.isolation.severance_servers import probe_servers

        probe_servers(self, scope, victims, tally)
        return None
