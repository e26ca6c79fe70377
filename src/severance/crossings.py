"""Reintegration: the consented crossing of memories from one persona into another.

Both personas must be unlocked (a sealed one with its own secret). The selection is every
memory of the source, or those passing a filter (kind, tags, time), or the best matches of a
query. Each selected memory is re-sealed with the target's key — its vector is reused, not
re-embedded, so both personas must share an embedder — and carries *provenance*: the origin
persona, the origin id, when and how it crossed.

De-duplication never turns a memory into provenance. Only a memory whose *normalised text*
(Unicode NFKC, case-folded, white space collapsed) is identical to a memory already in the
target — and, for a move, whose kind and metadata agree too — is *merged* into it: the target
memory keeps its text, gains the source's tags and a provenance entry, and its previous
version stays in its history. Identical memories inside the selection cross once the same
way. Memories that are merely *similar* (cosine similarity of at least
:data:`DUPLICATE_SIMILARITY`: "Invoice 4411 is paid" and "Invoice 4412 is paid" score 0.98)
are copied and listed in the report as "similar, kept apart"; ``merge_similar=True`` (the CLI's
``--merge-similar``) merges them instead, keeping the crossing text, kind and metadata in the
provenance entry whenever they differ.

Identical texts are found by comparing the normalised text with every memory of the target
(decrypted inside the crossing: a cost linear in the target's size); similar ones among the
target's nearest memories by vector.

Concurrency. The crossing is planned first (the slow part), then written in *one* transaction
that takes the store's writer lock (see :meth:`Session.lock`) and checks, before writing, that
nothing the plan read has changed — the selected memories are at the versions planned, the
target is untouched — and otherwise plans again under the lock, where nothing can change. So
an update acknowledged to another process is never lost with a moved memory and a forgotten
memory never reappears in the target, while other writers wait only for the write itself.
``move`` deletes the crossed memories from the source, checking each is still at the version
copied, in the same transaction as the copy and the audit entries: an interruption leaves the
state before or the state after, never a memory in both or in neither. A dry run computes the
same plan, writes no memory, and records one audit entry (it decrypted the selection).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import validate
from .errors import InvalidInputError
from .model import Memory, MemoryDraft, utcnow
from .search import Filter
from .session import Audit, Session

__all__ = [
    "DUPLICATE_SIMILARITY",
    "Reintegration",
    "Selection",
    "Similar",
    "normalise_text",
    "reintegrate",
]

#: Cosine similarity at or above which two different memories are reported as similar.
DUPLICATE_SIMILARITY = 0.95
#: With a query, results below this similarity (and sharing no keyword) are not selected.
QUERY_MIN_SIMILARITY = 0.3
#: How many of the target's nearest memories are compared with each selected memory.
_CANDIDATES = 8


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
class Similar:
    """A selected memory similar to (not identical with) another: kept apart unless the caller
    opted into ``merge_similar``."""

    memory_id: str
    #: The target's memory, or (``in_target`` False) another selected memory.
    similar_to: str
    in_target: bool
    similarity: float
    merged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "similar_to": self.similar_to,
            "in_target": self.in_target,
            "similarity": round(self.similarity, 4),
            "merged": self.merged,
        }


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
    #: Near-duplicates found, and whether they were merged (only with ``merge_similar``).
    similar: tuple[Similar, ...] = ()

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
            "similar": [s.to_dict() for s in self.similar],
        }
        if with_memories:
            data["memories"] = [m.to_dict() for m in self.memories]
        return data


def normalise_text(text: str) -> str:
    """The form in which two texts must be identical to merge: NFKC, case-folded, white space
    collapsed (so "Invoice 4411" and "invoice  4411" merge; "4411" and "4412" never do)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _key(memory: Memory, mode: str) -> tuple[str, ...]:
    if mode == "copy":
        return (normalise_text(memory.text),)
    # A move deletes the source: merge only what loses nothing but its time and id.
    return (
        normalise_text(memory.text),
        memory.kind,
        json.dumps(memory.metadata, sort_keys=True, separators=(",", ":")),
    )


@dataclass
class _Plan:
    copies: list[int] = field(default_factory=list)
    #: selected index -> target memory id it merges into
    into_target: dict[int, str] = field(default_factory=dict)
    #: copy index -> the selected indexes that cross with it
    twins: dict[int, list[int]] = field(default_factory=dict)
    similar: list[Similar] = field(default_factory=list)


def _plan(
    memories: list[Memory],
    vectors: npt.NDArray[np.float32],
    neighbours: list[list[tuple[str, float]]],
    targets: dict[str, Memory],
    mode: str,
    merge_similar: bool,
) -> _Plan:
    plan = _Plan()
    by_key: dict[tuple[str, ...], int] = {}  # key -> the copy that carries it
    in_target: dict[tuple[str, ...], str] = {}
    for existing in targets.values():
        in_target.setdefault(_key(existing, mode), existing.id)
    for i, memory in enumerate(memories):
        key = _key(memory, mode)
        same = in_target.get(key)
        if same is not None:
            plan.into_target[i] = same
            continue
        if key in by_key:
            plan.twins.setdefault(by_key[key], []).append(i)
            continue
        close = [(t, s) for t, s in neighbours[i] if s >= DUPLICATE_SIMILARITY and t in targets]
        if close:
            near, score = close[0]
            plan.similar.append(Similar(memory.id, near, True, score, merge_similar))
            if merge_similar:
                plan.into_target[i] = near
                continue
        twin = None
        if plan.copies:
            scores = vectors[plan.copies] @ vectors[i]
            best = int(np.argmax(scores))
            if float(scores[best]) >= DUPLICATE_SIMILARITY:
                twin = plan.copies[best]
                plan.similar.append(
                    Similar(memory.id, memories[twin].id, False, float(scores[best]), merge_similar)
                )
        if twin is not None and merge_similar:
            plan.twins.setdefault(twin, []).append(i)
            continue
        by_key[key] = i
        plan.copies.append(i)
    return plan


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
    return session.matching(
        Filter(
            kinds=kinds,
            tags=frozenset(tags) if tags else None,
            since=since.timestamp() if since else None,
            until=until.timestamp() if until else None,
        )
    )


def reintegrate(
    src: Session,
    dst: Session,
    *,
    select: Selection | None,
    mode: Literal["copy", "move"],
    dry_run: bool,
    merge_similar: bool,
    audit: Audit,
) -> Reintegration:
    """Copy or move memories from ``src``'s persona into ``dst``'s (see the module docstring).

    Both sessions belong to the caller, who closes them.
    """
    if mode not in ("copy", "move"):
        raise InvalidInputError("mode must be 'copy' or 'move'")
    if not isinstance(merge_similar, bool):
        raise InvalidInputError("merge_similar must be True or False")
    selection = select or Selection()
    # Plan outside the writer lock (the slow part: decrypting and comparing), then, under the
    # lock, check nothing it read has changed since — else plan again there, where nothing can
    # change. Other processes' writers then wait only for the write itself.
    dst_mark = dst.mark()
    prepared = _prepare(src, dst, selection, mode, merge_similar)
    with src.transaction():
        if not dry_run:
            src.lock()
            current = src.versions([m.id for m in prepared.memories])
            planned = {m.id: m.version for m in prepared.memories}
            if current != planned or dst.changed_since(dst_mark):
                prepared = _prepare(src, dst, selection, mode, merge_similar)
        memories, vectors, plan = prepared.memories, prepared.vectors, prepared.plan
        merged = len(plan.into_target) + sum(len(t) for t in plan.twins.values())
        report = Reintegration(
            source=src.persona,
            into=dst.persona,
            mode=mode,
            dry_run=dry_run,
            selected=len(memories),
            copied=len(plan.copies),
            merged=merged,
            removed_from_source=len(memories) if mode == "move" else 0,
            memories=tuple(memories),
            similar=tuple(plan.similar),
        )
        counts = {
            "mode": mode,
            "selected": report.selected,
            "copied": report.copied,
            "merged": report.merged,
            "similar_kept_apart": sum(not s.merged for s in plan.similar),
        }
        if dry_run:
            # The selection was decrypted for review: that is recorded, with no content.
            audit(
                "reintegration_previewed", src.persona_id, src.persona, into=dst.persona, **counts
            )
            return report
        if not memories:
            return report
        _write(src, dst, memories, vectors, plan, mode)
        audit("reintegrated_into", src.persona_id, src.persona, into=dst.persona, **counts)
        audit("reintegrated_from", dst.persona_id, dst.persona, source=src.persona, **counts)
    return report


@dataclass
class _Prepared:
    memories: list[Memory]
    vectors: npt.NDArray[np.float32]
    plan: _Plan


def _prepare(
    src: Session, dst: Session, selection: Selection, mode: str, merge_similar: bool
) -> _Prepared:
    ids = _select(src, selection)
    taken = src.take(ids)
    memories = [m for m, _ in taken]
    dim = src.embedder.dimension
    vectors = np.stack([v for _, v in taken]) if taken else np.zeros((0, dim), np.float32)
    neighbours = dst.nearest(vectors, _CANDIDATES) if taken else []
    # Every target memory, so an identical text is found whatever the vectors say.
    targets = {m.id: m for m in dst.texts()} if taken else {}
    return _Prepared(
        memories, vectors, _plan(memories, vectors, neighbours, targets, mode, merge_similar)
    )


def _write(
    src: Session,
    dst: Session,
    memories: list[Memory],
    vectors: npt.NDArray[np.float32],
    plan: _Plan,
    mode: str,
) -> None:
    at = utcnow().isoformat()

    def origin(m: Memory, kept: Memory | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "persona": src.persona,
            "persona_id": src.persona_id,
            "memory_id": m.id,
            "at": at,
            "mode": mode,
        }
        if kept is not None:
            # Merged into another memory: keep what would otherwise be lost with a move.
            entry["occurred_at"] = m.occurred_at.isoformat()
            if kept.text != m.text:
                entry["text"] = m.text
            if kept.kind != m.kind:
                entry["kind"] = m.kind
            if kept.metadata != m.metadata:
                entry["metadata"] = m.metadata
        return entry

    def tags_with_twins(i: int) -> tuple[str, ...]:
        tags = list(memories[i].tags)
        for t in (t for j in plan.twins.get(i, ()) for t in memories[j].tags):
            if t not in tags:
                tags.append(t)
        return tuple(tags[: validate.MAX_TAGS])

    if plan.copies:
        drafts = [
            MemoryDraft(
                text=memories[i].text,
                kind=memories[i].kind,
                tags=tags_with_twins(i),
                metadata=memories[i].metadata,
                occurred_at=memories[i].occurred_at,
                source=memories[i].source,
            )
            for i in plan.copies
        ]
        dst.put(
            drafts,
            vectors[plan.copies],
            provenance=[
                (
                    *memories[i].provenance,
                    origin(memories[i]),
                    *(origin(memories[j], memories[i]) for j in plan.twins.get(i, ())),
                )
                for i in plan.copies
            ],
        )
    for i, target_id in plan.into_target.items():
        existing = dst.take([target_id])[0][0]
        dst.annotate(target_id, add_tags=memories[i].tags, provenance=origin(memories[i], existing))
    if mode == "move":
        src.delete({m.id: m.version for m in memories})
