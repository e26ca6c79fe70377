"""mem0 (open-source ``Memory``), configured as its docs recommend for a local set-up.

* Vector store: Qdrant in local mode (``path=``), as docs.mem0.ai/components/vectordbs/dbs/qdrant
  lists it (``path``: "Path for local Qdrant database"); history in its SQLite
  ``history_db_path``.
* Writes: ``Memory.add(messages, user_id=<scope>, metadata={...}, infer=False)``: stored
  verbatim, no LLM (docs.mem0.ai/core-concepts/memory-operations/add, "infer=False").
* The scope handle is the ``user_id`` (docs.mem0.ai/core-concepts/memory-types: memories are
  scoped by ``user_id`` / ``agent_id`` / ``run_id``); reads pass it as
  ``filters={"user_id": ...}``, which mem0 2.x requires of ``search`` and ``get_all``.
* mem0 has no tags; the tag goes into the metadata with the other canary forms.
* Offline: ``MEM0_TELEMETRY=False`` and ``MEM0_DIR`` in the work directory before import, a
  dummy ``OPENAI_API_KEY`` (construction builds an LLM client ``infer=False`` never calls),
  and Severance's bundled embedder behind mem0's ``EmbeddingBase``: the set-up of
  :func:`bench.systems.mem0_peer.make_memory`, shared with the other sections.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.isolation.base import BIG_K, Adapter, Call, PeerUnavailable, capture
from bench.isolation.plants import Plant
from bench.isolation.tally import Tally
from bench.systems.base import SystemUnavailable
from bench.systems.mem0_peer import import_mem0, make_memory

__all__ = ["Mem0Adapter"]


def _render(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class Mem0Adapter(Adapter):
    label = "mem0 (`infer=False`, local Qdrant)"
    handle = "`user_id` (passed as `filters={'user_id': ...}`)"

    def __init__(self, workdir: Path, *, embedder: Any = None) -> None:
        super().__init__(workdir)
        try:
            self._mem0 = import_mem0(workdir / "mem0dir")
        except SystemUnavailable as exc:
            raise PeerUnavailable(str(exc)) from exc
        if embedder is None:
            from severance.embedders import load_embedder

            embedder = load_embedder()
        self._embedder = embedder
        self.m: Any = None
        self.reopen()

    def reopen(self) -> None:
        # The same set-up as the retrieval and speed sections' mem0 (one place for it).
        self.m = make_memory(self.workdir, self._embedder, collection="memories")

    def close(self) -> None:
        if self.m is None:
            return
        with contextlib.suppress(Exception):
            self.m.close()
        with contextlib.suppress(Exception):
            self.m.vector_store.client.close()
        self.m = None

    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        for scope, items in plants.items():
            for p in items:
                res = self.m.add(
                    [{"role": "user", "content": p.text}],
                    user_id=scope,
                    metadata={**p.metadata, "tag": p.tag},
                    infer=False,
                )
                self.ids[p.key] = res["results"][0]["id"]

    def files(self) -> list[Path]:
        return [self.workdir]

    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        for p in plants:
            with contextlib.suppress(Exception):
                self.m.delete(self.ids[p.key])
        self.m.delete_all(user_id=scope)
        return [f"m.delete(id) for each memory of {scope!r}", f"m.delete_all(user_id={scope!r})"]

    def info(self) -> dict[str, Any]:
        return {
            "version": getattr(self._mem0, "__version__", None),
            "handle": self.handle,
            "configuration": "Memory(MemoryConfig(vector_store=qdrant {path: <dir>, on_disk: "
            "true}, history_db_path=<dir>/history.db)); add([{role: user, content}], "
            "user_id=<scope>, metadata={...}, infer=False)",
            "doc": "docs.mem0.ai/components/vectordbs/dbs/qdrant (local `path`); "
            "docs.mem0.ai/core-concepts/memory-operations/add (`infer=False`); "
            "docs.mem0.ai/open-source/features/rest-api (REST server)",
        }

    # -- operations ---------------------------------------------------------------------------
    def search(self, scope: str, query: str) -> list[Call]:
        f = {"user_id": scope}
        return [
            capture(
                f"m.search({query!r}, top_k={BIG_K}, filters={f!r}, threshold=0.0)",
                lambda: self.m.search(query, top_k=BIG_K, filters=f, threshold=0.0),
                _render,
            )
        ]

    def filtered_search(self, scope: str, victim: Plant) -> list[Call]:
        f = {"user_id": scope, "ref": victim.metadata["ref"]}
        return [
            capture(
                f"m.search({victim.topic!r}, top_k={BIG_K}, filters={f!r}, threshold=0.0)",
                lambda: self.m.search(victim.topic, top_k=BIG_K, filters=f, threshold=0.0),
                _render,
            )
        ]

    def get(self, scope: str, ident: str) -> Call:
        return capture(f"m.get({ident!r})", lambda: self.m.get(ident), _render)

    def update(self, scope: str, ident: str, text: str) -> Call:
        return capture(
            f"m.update({ident!r}, {text!r})", lambda: self.m.update(ident, text), _render
        )

    def delete(self, scope: str, ident: str) -> Call:
        return capture(f"m.delete({ident!r})", lambda: self.m.delete(ident), _render)

    def history(self, scope: str, ident: str) -> Call:
        return capture(f"m.history({ident!r})", lambda: self.m.history(ident), _render)

    def listing(self, scope: str) -> list[Call]:
        f = {"user_id": scope}
        return [
            capture(
                f"m.get_all(filters={f!r}, top_k={BIG_K})",
                lambda: self.m.get_all(filters=f, top_k=BIG_K),
                _render,
            )
        ]

    def absent_id(self) -> str:
        return str(uuid.uuid4())

    def forgotten(self) -> list[Call]:
        out: list[Call] = []
        for shown, kwargs in (
            ("", {}),
            ("filters={}", {"filters": {}}),
            ("filters={'user_id': ''}", {"filters": {"user_id": ""}}),
            ("filters={'user_id': None}", {"filters": {"user_id": None}}),
        ):
            sep = ", " if shown else ""
            out.append(
                capture(
                    f"m.search('Saturday', top_k={BIG_K}{sep}{shown})",
                    functools.partial(self.m.search, "Saturday", top_k=BIG_K, **kwargs),
                    _render,
                )
            )
            out.append(
                capture(
                    f"m.get_all(top_k={BIG_K}{sep}{shown})",
                    functools.partial(self.m.get_all, top_k=BIG_K, **kwargs),
                    _render,
                )
            )
        return out

    def servers(self, scope: str, victims: Sequence[Plant], tally: Tally) -> str | None:
        tally.not_run(
            "servers",
            "mem0's REST server is not part of the mem0ai package (server/ in its repository, "
            "run with Docker; docs.mem0.ai/open-source/features/rest-api), so it is not run here",
        )
        return None

    def victim_view(self, scope: str, plant: Plant) -> str | None:
        got = self.m.get(self.ids[plant.key])
        if not got or got.get("user_id") != scope:
            return None
        return str(got.get("memory"))

    def timed_get(self, scope: str, ident: str) -> Any:
        return lambda: self.m.get(ident)

    def timed_label(self) -> str:
        return "m.get(<id>)"
