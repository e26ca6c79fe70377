"""Reintegration: the consented crossing of memories from one persona into another.

Both personas must be unlocked (a sealed one with its own secret). The selection is every
memory of the source, or those passing a filter (kind, tags, time), or the best matches of a
query. Each selected memory is re-sealed with the target's key — its vector is reused, not
re-embedded, so both personas must share an embedder — and carries *provenance*: the origin
persona, the origin id, when and how it crossed.

De-duplication: a selected memory whose vector has cosine similarity of at least
:data:`DUPLICATE_SIMILARITY` with a memory already in the target (which includes every exact
text match) is *merged* into it instead of copied: the target memory keeps its text, gains the
source's tags and a provenance entry (holding the crossing text too when it differs, since a
near duplicate may differ in a word that matters), and its previous version stays in its
history. Duplicates
inside the selection itself cross once: the one copy gains the tags and a provenance entry of each
of its twins (so a moved twin is never lost without a trace), and the twins count as merged.

``move`` deletes the crossed memories from the source in the same transaction that writes them
into the target, with the audit entries: an interruption at any point leaves the state before
or the state after, never a memory in both or in neither. A dry run computes the same plan and
writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import validate
from .errors import EmbedderMismatchError, InvalidInputError
from .keys import Secret
from .model import Memory, MemoryDraft, utcnow
from .search import Filter
from .session import Session

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DUPLICATE_SIMILARITY", "Reintegration", "Selection", "reintegrate"]

#: Cosine similarity at or above which an incoming memory is merged with an existing one.
DUPLICATE_SIMILARITY = 0.95
#: With a query, results below this similarity (and sharing no keyword) are not selected.
QUERY_MIN_SIMILARITY = 0.3


@dataclass(frozen=True)
class Selection:
    """Which memories cross. Empty means all of them.

    ``query`` selects up to ``limit`` best matches (with ``kinds``/``tags``/``since``/``until``
    applied as filters); without a query the filters alone select. ``ids``, when given,
    narrows the selection to those source memories (e.g. what a reviewer kept after a dry
    run): a memory that is not also selected by the rest does not cross.
    """

    query: str | None = None
    limit: int = 50
    kinds: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    since: datetime | str | None = None
    until: datetime | str | None = None
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Reintegration:
    """What a reintegration did (or, for a dry run, would do)."""

    source: str
    into: str
    mode: str
    dry_run: bool
    selected: int
    copied: int
    merged: int
    removed_from_source: int
    #: The selected memories (shown to the holder of both keys, e.g. for review).
    memories: tuple[Memory, ...] = field(default=(), repr=False)

    def to_dict(self, with_memories: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "into": self.into,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "selected": self.selected,
            "copied": self.copied,
            "merged": self.merged,
            "removed_from_source": self.removed_from_source,
        }
        if with_memories:
            data["memories"] = [m.to_dict() for m in self.memories]
        return data


def _select(session: Session, selection: Selection) -> list[str]:
    ids = _select_unnarrowed(session, selection)
    if selection.ids is None:
        return ids
    if isinstance(selection.ids, str):
        raise InvalidInputError("ids must be a list of memory ids")
    keep = {validate.memory_id(i) for i in selection.ids}
    return [i for i in ids if i in keep]


def _select_unnarrowed(session: Session, selection: Selection) -> list[str]:
    kinds = frozenset(map(validate.kind, selection.kinds)) if selection.kinds else None
    tags = validate.tags(selection.tags) if selection.tags else None
    if selection.query is not None:
        if (
            isinstance(selection.limit, bool)
            or not isinstance(selection.limit, int)
            or not (1 <= selection.limit <= validate.MAX_K)
        ):
            raise InvalidInputError(f"limit must be an integer from 1 to {validate.MAX_K}")
        hits = session.recall(
            selection.query,
            selection.limit,
            kind=kinds,
            tags=tags,
            since=selection.since,
            until=selection.until,
            min_similarity=QUERY_MIN_SIMILARITY,
        )
        return [h.memory.id for h in hits]
    since = validate.when(selection.since, "since")
    until = validate.when(selection.until, "until")
    flt = Filter(
        kinds=kinds,
        tags=frozenset(tags) if tags else None,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
    )
    return list(session._sync().ids_matching(flt))


def reintegrate(
    store: Store,
    source: str,
    into: str,
    *,
    select: Selection | None,
    mode: Literal["copy", "move"],
    dry_run: bool,
    source_secret: Secret | None,
    into_secret: Secret | None,
) -> Reintegration:
    if mode not in ("copy", "move"):
        raise InvalidInputError("mode must be 'copy' or 'move'")
    src_row = store._persona_row(source)
    dst_row = store._persona_row(into)
    if src_row.id == dst_row.id:
        raise InvalidInputError("a persona cannot be reintegrated into itself")
    if (src_row.embedder, src_row.dimension) != (dst_row.embedder, dst_row.dimension):
        raise EmbedderMismatchError(
            f"{source!r} and {into!r} use different embedders; re-embed one of them first"
        )
    src = store._wake(src_row, source_secret, floor=None, by="reintegration", audited=False)
    try:
        dst = store._wake(dst_row, into_secret, floor=None, by="reintegration", audited=False)
    except BaseException:
        src._abandon()
        raise
    try:
        ids = _select(src, select or Selection())
        rows = src._rows.get_many(ids)
        chosen = [rows[i] for i in ids if i in rows]
        memories = [src._to_memory(r) for r in chosen]
        vectors = np.stack([src._open_vector(r) for r in chosen]) if chosen else None

        # Plan: merge into the closest existing target memory, or copy (once per duplicate set).
        dst_index = dst._sync()
        target_vectors = dst_index.dense.vectors()
        alive = dst_index.alive[: dst_index.n_slots]
        copies: list[int] = []
        merges: list[tuple[int, str]] = []
        twins: dict[int, list[int]] = {}  # copy -> the selected duplicates that cross with it
        for i in range(len(memories)):
            assert vectors is not None
            v = vectors[i]
            if alive.any():
                sims = np.where(alive, target_vectors @ v, -1.0)
                best = int(np.argmax(sims))
                if sims[best] >= DUPLICATE_SIMILARITY:
                    merges.append((i, dst_index.ids[best]))
                    continue
            twin = next((j for j in copies if float(vectors[j] @ v) >= DUPLICATE_SIMILARITY), None)
            if twin is not None:
                # A duplicate inside the selection: crosses once, merged into its twin's copy.
                merges.append((i, ""))
                twins.setdefault(twin, []).append(i)
                continue
            copies.append(i)
        report = Reintegration(
            source=source,
            into=into,
            mode=mode,
            dry_run=dry_run,
            selected=len(memories),
            copied=len(copies),
            merged=len(merges),
            removed_from_source=len(memories) if mode == "move" else 0,
            memories=tuple(memories),
        )
        if dry_run or not memories:
            return report

        at = utcnow().isoformat()

        def origin(m: Memory, kept_text: str | None = None) -> dict[str, Any]:
            entry = {
                "persona": source,
                "persona_id": src_row.id,
                "memory_id": m.id,
                "at": at,
                "mode": mode,
            }
            if kept_text is not None and kept_text != m.text:
                # Similar is not identical ("Thursday" vs "Friday" can score 0.97): keep the
                # crossing text in the provenance so that a move never loses it.
                entry["text"] = m.text
            return entry

        with store._backend.transaction():
            if copies:
                assert vectors is not None

                def tags_with_twins(i: int) -> tuple[str, ...]:
                    tags = list(memories[i].tags)
                    for t in (t for j in twins.get(i, ()) for t in memories[j].tags):
                        if t not in tags:
                            tags.append(t)
                    return tuple(tags[: validate.MAX_TAGS])

                drafts = [
                    MemoryDraft(
                        text=memories[i].text,
                        kind=memories[i].kind,
                        tags=tags_with_twins(i),
                        metadata=memories[i].metadata,
                        occurred_at=memories[i].occurred_at,
                        source=memories[i].source,
                    )
                    for i in copies
                ]
                dst._write_new(
                    drafts,
                    vectors[copies],
                    provenance=[
                        (
                            *memories[i].provenance,
                            origin(memories[i]),
                            *(origin(memories[j], memories[i].text) for j in twins.get(i, ())),
                        )
                        for i in copies
                    ],
                )
            for i, target_id in merges:
                if target_id:
                    existing = dst.get(target_id)
                    tags = existing.tags + tuple(
                        t for t in memories[i].tags if t not in existing.tags
                    )
                    dst.update(
                        target_id,
                        tags=tags[: validate.MAX_TAGS],
                        _provenance=origin(memories[i], existing.text),
                    )
            if mode == "move":
                src._rows.delete_many([m.id for m in memories])
            counts = {
                "mode": mode,
                "selected": report.selected,
                "copied": report.copied,
                "merged": report.merged,
            }
            store._audit.append("reintegrated_into", src_row.id, source, into=into, **counts)
            store._audit.append("reintegrated_from", dst_row.id, into, source=source, **counts)
        return report
    finally:
        src._abandon()
        dst._abandon()
