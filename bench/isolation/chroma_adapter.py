"""Chroma (embedded ``PersistentClient``), both multi-tenancy layouts its cookbook describes
(cookbook.chromadb.dev/strategies/multi-tenancy/naive-multi-tenancy):

* ``collection`` — *User-Per-Collection*: one collection per scope; the handle for a scope is
  its ``Collection`` object (``client.get_collection(<scope>)``), and every call goes through
  it;
* ``filter`` — *User-Per-Doc*: one collection for everyone, each document's metadata carrying
  its ``user_id``; the handle is that ``user_id``, passed as ``where={"user_id": ...}`` to
  every call that takes a ``where`` (query, get, delete). ``update`` takes none.

Ids are the caller's to choose, so each memory's id carries its canary (``id<canary>``).
Vectors come from Severance's bundled embedder and are passed explicitly to ``add``,
``update`` and ``query`` (a documents-only call would make Chroma fetch its default ONNX
model from the network). Telemetry off. Chroma has no history of a record.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from bench.isolation.base import BIG_K, Adapter, Call, PeerUnavailable, capture
from bench.isolation.plants import SCOPES, Plant
from bench.isolation.tally import Tally

__all__ = ["ChromaAdapter"]

_SHARED = "memories"


def _render(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class ChromaAdapter(Adapter):
    def __init__(
        self,
        workdir: Path,
        *,
        per_scope: Literal["collection", "filter"],
        embedder: Any = None,
    ) -> None:
        super().__init__(workdir)
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as exc:
            raise PeerUnavailable(f"chromadb is not installed ({exc})") from exc
        if embedder is None:
            from severance.embedders import load_embedder

            embedder = load_embedder()
        self._chromadb = chromadb
        self._settings = Settings(anonymized_telemetry=False)
        self._embedder = embedder
        self.mode = per_scope
        if per_scope == "collection":
            self.label = "Chroma (collection per scope)"
            self.handle = "the scope's `Collection` (`client.get_collection(<scope>)`)"
        else:
            self.label = "Chroma (metadata filter per scope)"
            self.handle = "`where={'user_id': <scope>}` on one shared collection"
        self.client: Any = None
        self.reopen()
        client: Any = self.client
        names = SCOPES if per_scope == "collection" else (_SHARED,)
        for name in names:
            client.create_collection(
                name=name, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )

    def _vec(self, text: str) -> list[float]:
        return [float(x) for x in self._embedder.embed([text])[0]]

    def _col(self, scope: str) -> Any:
        return self.client.get_collection(scope if self.mode == "collection" else _SHARED)

    def _where(self, scope: str) -> dict[str, Any] | None:
        return {"user_id": scope} if self.mode == "filter" else None

    def _name(self, scope: str) -> str:
        return f"client.get_collection({scope if self.mode == 'collection' else _SHARED!r})"

    def reopen(self) -> None:
        self.client = self._chromadb.PersistentClient(
            path=str(self.workdir / "chroma"), settings=self._settings
        )

    def close(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.client.clear_system_cache()
        self.client = None

    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        for scope, items in plants.items():
            meta = [
                {
                    **p.metadata,
                    "tag": p.tag,
                    **({"user_id": scope} if self.mode == "filter" else {}),
                }
                for p in items
            ]
            self._col(scope).add(
                ids=[p.chosen_id for p in items],
                documents=[p.text for p in items],
                embeddings=[self._vec(p.text) for p in items],
                metadatas=meta,
            )
            for p in items:
                self.ids[p.key] = p.chosen_id

    def files(self) -> list[Path]:
        return [self.workdir / "chroma"]

    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        col = self._col(scope)
        ids = [self.ids[p.key] for p in plants]
        if self.mode == "collection":
            col.delete(ids=ids)
            self.client.delete_collection(scope)
            return [
                f"{self._name(scope)}.delete(ids=[...])",
                f"client.delete_collection({scope!r})",
            ]
        col.delete(ids=ids, where={"user_id": scope})
        col.delete(where={"user_id": scope})
        return [
            f"col.delete(ids=[...], where={{'user_id': {scope!r}}})",
            f"col.delete(where={{'user_id': {scope!r}}})",
        ]

    def info(self) -> dict[str, Any]:
        return {
            "version": self._chromadb.__version__,
            "handle": self.handle,
            "configuration": "PersistentClient(path=<dir>, Settings(anonymized_telemetry=False)); "
            + (
                "one collection per scope (cosine)"
                if self.mode == "collection"
                else "one collection, metadata user_id per document, where= on every call "
                "that takes it"
            ),
            "doc": "cookbook.chromadb.dev/strategies/multi-tenancy/naive-multi-tenancy "
            f"({'User-Per-Collection' if self.mode == 'collection' else 'User-Per-Doc'}); "
            "docs.trychroma.com (Collection.query/get/update/delete)",
        }

    # -- operations ---------------------------------------------------------------------------
    def search(self, scope: str, query: str) -> list[Call]:
        col, where = self._col(scope), self._where(scope)
        w = f", where={where!r}" if where else ""
        vec = self._vec(query)
        return [
            capture(
                f"{self._name(scope)}.query(query_embeddings=[embed({query!r})], "
                f"n_results={BIG_K}{w})",
                lambda: col.query(query_embeddings=[vec], n_results=BIG_K, where=where),
                _render,
            ),
            capture(
                f"{self._name(scope)}.get(where_document={{'$contains': {query!r}}}{w})",
                lambda: col.get(where_document={"$contains": query}, where=where),
                _render,
            ),
        ]

    def filtered_search(self, scope: str, victim: Plant) -> list[Call]:
        col = self._col(scope)
        ref = {"ref": victim.metadata["ref"]}
        where = {"$and": [{"user_id": scope}, ref]} if self.mode == "filter" else ref
        vec = self._vec(victim.topic)
        return [
            capture(
                f"{self._name(scope)}.query(query_embeddings=[embed({victim.topic!r})], "
                f"n_results={BIG_K}, where={where!r})",
                lambda: col.query(query_embeddings=[vec], n_results=BIG_K, where=where),
                _render,
            )
        ]

    def get(self, scope: str, ident: str) -> Call:
        col, where = self._col(scope), self._where(scope)
        w = f", where={where!r}" if where else ""
        return capture(
            f"{self._name(scope)}.get(ids=[{ident!r}]{w})",
            lambda: col.get(ids=[ident], where=where),
            _render,
        )

    def update(self, scope: str, ident: str, text: str) -> Call:
        col = self._col(scope)
        vec = self._vec(text)
        return capture(
            f"{self._name(scope)}.update(ids=[{ident!r}], documents=[{text!r}], "
            "embeddings=[...])  # update takes no where=",
            lambda: col.update(ids=[ident], documents=[text], embeddings=[vec]),
            _render,
        )

    def delete(self, scope: str, ident: str) -> Call:
        col, where = self._col(scope), self._where(scope)
        w = f", where={where!r}" if where else ""
        return capture(
            f"{self._name(scope)}.delete(ids=[{ident!r}]{w})",
            lambda: col.delete(ids=[ident], where=where),
            _render,
        )

    def listing(self, scope: str) -> list[Call]:
        col, where = self._col(scope), self._where(scope)
        w = f", where={where!r}" if where else ""
        out = [
            capture(
                f"{self._name(scope)}.get(limit={BIG_K}{w})",
                lambda: col.get(limit=BIG_K, where=where),
                _render,
            )
        ]
        if self.mode == "collection":
            out.append(capture(f"{self._name(scope)}.peek(limit={BIG_K})", lambda: col.peek(BIG_K)))
        return out

    def counts(self, scope: str) -> list[tuple[str, int]]:
        col = self._col(scope)
        if self.mode == "collection":
            return [(f"{self._name(scope)}.count()", int(col.count()))]
        # count() takes no where=: the documented count of a user's documents is len(get(...)).
        got = col.get(where=self._where(scope), include=[])
        return [(f"len(col.get(where={self._where(scope)!r}, include=[])['ids'])", len(got["ids"]))]

    def absent_id(self) -> str:
        return f"id{uuid.uuid4().hex}"

    def forgotten(self) -> list[Call] | str:
        if self.mode == "collection":
            return "no call takes a scope argument: the collection object is the scope"
        col = self._col(scope="work")
        vec = self._vec("Saturday")
        return [
            capture(
                f"col.query(query_embeddings=[embed('Saturday')], n_results={BIG_K})",
                lambda: col.query(query_embeddings=[vec], n_results=BIG_K),
                _render,
            ),
            capture(
                f"col.query(query_embeddings=[embed('Saturday')], n_results={BIG_K}, where={{}})",
                lambda: col.query(query_embeddings=[vec], n_results=BIG_K, where={}),
                _render,
            ),
            capture(f"col.get(limit={BIG_K})", lambda: col.get(limit=BIG_K), _render),
            capture("col.peek(limit=1000)", lambda: col.peek(BIG_K), _render),
        ]

    def servers(self, scope: str, victims: Sequence[Plant], tally: Tally) -> str | None:
        return (
            "no per-scope credential exists: with either layout the application itself must "
            "act as the policy enforcement and decision point (cookbook.chromadb.dev/strategies"
            "/multi-tenancy/naive-multi-tenancy); Chroma's server authentication, where "
            "configured, admits a client to the whole server (cookbook.chromadb.dev/security/"
            "auth), so there is no credential of scope A to test"
        )

    def victim_view(self, scope: str, plant: Plant) -> str | None:
        got = self._col(scope).get(ids=[self.ids[plant.key]], where=self._where(scope))
        return str(got["documents"][0]) if got["ids"] else None

    def timed_get(self, scope: str, ident: str) -> Any:
        col, where = self._col(scope), self._where(scope)
        return lambda: col.get(ids=[ident], where=where)

    def timed_label(self) -> str:
        return "col.get(ids=[<id>]" + (
            ", where={'user_id': 'work'})" if self.mode == "filter" else ")"
        )
