"""The layout of an index snapshot: what :meth:`PersonaIndex.to_bytes` writes and reads back.

A snapshot holds the live slots of one index, renumbered ``0 .. n`` (retired slots are
compacted away before :func:`encode`), as named arrays in a flat container
(:mod:`.container`) with a JSON header. Formats:

1. an ``.npz`` archive, one tag list per memory;
2. the flat container (no zip reading or CRC on wake), which may carry the HNSW graph
   (``hnsw``, ``hnsw_keys``), tags as distinct tag sets plus a code per memory;
3. also the re-ranking features (``has_time``, ``speaker_codes``, ``speakers``);
4. also ``addressed_codes``, and speakers named by a ``"Name:"`` text prefix;
5. also the versions of the tokenizer and of the feature rules the snapshot was built with
   (:data:`.keyword.TOKENIZER_VERSION`, :data:`.documents.FEATURES_VERSION`);
6. also the conversation-order links (``order_before``, ``order_after``, ``order_tail``), so
   that the first recall after a wake does not sort every memory by time to find a turn's
   neighbours (an older snapshot's are derived on that first recall, as before); and the
   ids as an array of lines (``ids``, ``id_count``) instead of a JSON list in the header;
7. also each memory's identity key (``identities``, see :mod:`.identity`), and the version of
   the identity rules (:data:`.identity.IDENTITY_VERSION`), so that the first duplicate check
   after a wake reads its leads from the index instead of decrypting every memory.

All are read. What a snapshot does not have, or has from other rules than today's, is
reported in :attr:`Parts.stale_features` / :attr:`Parts.stale_keywords` /
:attr:`Parts.stale_identities`: the caller reads
those from the rows (the vectors and the graph, the expensive parts, are kept).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .columns import NO_SPEAKER
from .container import Buffer, Packable, is_container, pack_pieces, unpack_arrays
from .context import NO_SLOT, SeqOrder
from .documents import FEATURES_VERSION
from .identity import IDENTITY_VERSION, NO_KEY
from .keyword import TOKENIZER_VERSION, KeywordIndex

__all__ = [
    "SNAPSHOT_FORMAT",
    "Parts",
    "decode",
    "encode",
    "encode_pieces",
    "live_rows",
    "restore_order",
    "saved_order",
]

SNAPSHOT_FORMAT = 7
_READABLE_FORMATS = frozenset({1, 2, 3, 4, 5, 6, 7})
#: Arrays read in place (read-only views of the decrypted buffer): the largest parts of a
#: snapshot, and only read until the first write, which makes copies of its own
#: (``DenseIndex`` grows into a new matrix, the graph copies itself; the keyword postings'
#: base arrays are never written, changes go to their tail).
_VIEWS = frozenset({"ids", "vectors", "hnsw", "kw_offsets", "kw_slots", "kw_tfs"})
#: Runs of live rows up to which a snapshot writes the vectors from views of the runs (more:
#: one compacted copy; each run costs a view and a write of its own).
_MAX_RUNS = 4096
#: Conversation order as saved: ``before`` and ``after`` links of slots ``0 .. n``, last slot.
Order = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]


@dataclass
class Parts:
    """What a snapshot holds of an index, for slots ``0 .. len(ids)``."""

    dimension: int
    ids: list[str]
    seqs: npt.NDArray[np.int64]
    kind_codes: npt.NDArray[np.int32]
    kind_names: list[str]
    occurred: npt.NDArray[np.float64]
    learned: npt.NDArray[np.float64]
    tags: list[tuple[str, ...]]
    has_time: npt.NDArray[np.bool_]
    speaker_codes: npt.NDArray[np.int32]
    addressed_codes: npt.NDArray[np.int32]
    speaker_names: list[str]
    #: The identity key of each memory (:data:`.identity.NO_KEY` where not known).
    identities: npt.NDArray[np.uint64]
    #: The rows, or blocks of them in order (runs of live rows, written without a copy).
    vectors: npt.NDArray[np.floating] | Sequence[npt.NDArray[np.floating]]
    keyword: KeywordIndex
    hnsw: npt.NDArray[np.uint8] | None = None
    hnsw_keys: npt.NDArray[np.int64] | None = None
    hnsw_covered: int = 0
    #: The re-ranking features are missing or from other rules (the caller re-derives them).
    stale_features: bool = False
    #: The postings are from another tokenizer (the caller re-tokenises the texts).
    stale_keywords: bool = False
    #: The identity keys are missing or from other rules (the caller derives them again).
    stale_identities: bool = False
    #: Tag -> the slots that have it, in slot order (filled in by :func:`decode`).
    tag_slots: dict[str, list[int]] = field(default_factory=dict)
    #: Conversation order as links between slots (:class:`.context.SeqOrder`'s ``before``
    #: and ``after`` for slots ``0 .. n``, and its last slot); None when not saved.
    order: Order | None = None


def live_rows(
    rows: npt.NDArray[np.floating], live: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.floating] | list[npt.NDArray[np.floating]]:
    """Rows ``live`` (increasing, below ``n``) of ``rows``: the rows themselves when every
    slot is live, views of the runs of consecutive live slots when there are few
    (compacting a million float16 rows is a 768 MiB copy), else one compacted copy."""
    if len(live) == n or len(live) == 0:
        return rows[: len(live)]
    breaks = np.flatnonzero(np.diff(live) != 1) + 1
    if len(breaks) >= _MAX_RUNS:
        return rows[live]
    firsts = live[np.concatenate([[0], breaks])].tolist()
    lasts = live[np.concatenate([breaks - 1, [len(live) - 1]])].tolist()
    return [rows[a : b + 1] for a, b in zip(firsts, lasts, strict=True)]


def saved_order(
    order: SeqOrder, live: npt.NDArray[np.int64], remap: npt.NDArray[np.int64]
) -> Order:
    """``order``'s links between ``live`` slots, renumbered by ``remap`` (compaction keeps
    the order of the live slots, so the links stay links; retired slots are not linked)."""

    def relinked(links: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        linked = links[live]
        return np.where(linked == NO_SLOT, NO_SLOT, remap[linked])

    tail = order.tail
    return (
        relinked(order.before),
        relinked(order.after),
        (NO_SLOT if tail == NO_SLOT else int(remap[tail])),
    )


def restore_order(order: SeqOrder, saved: Order) -> None:
    """Set an empty ``order`` to the links a snapshot saved (slots ``0 .. n`` taken in)."""
    before, after, tail = saved
    n = len(before)
    order.before = np.full(n + 1, NO_SLOT, dtype=np.int64)
    order.after = np.full(n + 1, NO_SLOT, dtype=np.int64)
    order.before[:n] = before
    order.after[:n] = after
    order.tail = tail
    order.n_slots = n


def encode(parts: Parts) -> bytes:
    """``parts`` as snapshot bytes (the current format)."""
    return b"".join(encode_pieces(parts))


def encode_pieces(parts: Parts) -> list[memoryview]:
    """``parts`` in the current format, as the pieces of the snapshot (their concatenation;
    see :func:`.container.pack_pieces`): views of the arrays, nothing joined."""
    n = len(parts.ids)
    meta: dict[str, object] = {
        "format": SNAPSHOT_FORMAT,
        "dimension": parts.dimension,
        "kind_names": parts.kind_names,
        "speakers": parts.speaker_names,
        "tokenizer": TOKENIZER_VERSION,
        "features": FEATURES_VERSION,
        "identity": IDENTITY_VERSION,
    }
    # Tags as distinct tag sets plus one code per memory: most memories share a few sets,
    # and waking then needs no per-memory JSON parsing.
    tag_sets: dict[tuple[str, ...], int] = {}
    tag_codes = np.fromiter(
        (tag_sets.setdefault(t, len(tag_sets)) for t in parts.tags), dtype=np.int32, count=n
    )
    meta["tag_sets"] = [list(t) for t in tag_sets]
    # The ids one per line rather than a JSON list: splitting them is about twice as fast as
    # parsing, at a million memories a tenth of a second of every wake. An id holding a line
    # break (never made by Severance; a caller's own id could) keeps the JSON list.
    joined = "\n".join(parts.ids).encode()
    if joined.count(b"\n") == max(n - 1, 0):
        meta["id_count"] = n
        id_lines = np.frombuffer(joined, dtype=np.uint8)
    else:
        meta["ids"] = parts.ids
        id_lines = np.zeros(0, dtype=np.uint8)
    keyword = parts.keyword
    arrays: dict[str, Packable] = {
        "ids": id_lines,
        "seqs": parts.seqs,
        "kind_codes": parts.kind_codes,
        "occurred": parts.occurred,
        "learned": parts.learned,
        "tag_codes": tag_codes,
        "has_time": parts.has_time,
        "speaker_codes": parts.speaker_codes,
        "addressed_codes": parts.addressed_codes,
        "identities": parts.identities,
        "vectors": parts.vectors,
        "doc_len": keyword.doc_len[:n],
        **keyword.arrays(),
    }
    if parts.hnsw is not None and parts.hnsw_keys is not None:
        meta["hnsw_covered"] = parts.hnsw_covered
        arrays["hnsw"] = parts.hnsw
        arrays["hnsw_keys"] = parts.hnsw_keys
    if parts.order is not None:
        before, after, tail = parts.order
        meta["order_tail"] = tail
        # Slots fit in 32 bits; the links are widened again on wake (a copy made anyway,
        # since they change with every write).
        arrays["order_before"] = before[:n].astype(np.int32)
        arrays["order_after"] = after[:n].astype(np.int32)
    return pack_pieces(meta, arrays)


def decode(data: Buffer) -> Parts:
    """The parts of a snapshot of any readable format; :class:`ValueError` for anything else.
    The vectors and the graph are views of ``data``; everything else is copied."""
    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]
    if is_container(data):
        meta, arrays = unpack_arrays(data, views=_VIEWS)
    else:  # format 1: an .npz archive
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays["meta"].tobytes().decode())
    if meta.get("format") not in _READABLE_FORMATS:
        raise ValueError("unknown snapshot format")
    dimension = int(meta["dimension"])
    ids: list[str]
    if "ids" in meta:
        ids = meta["ids"]
    else:
        text = arrays["ids"].tobytes().decode()
        ids = text.split("\n") if text else []
        if len(ids) != int(meta["id_count"]):
            raise ValueError("the snapshot's ids do not match their count")
    n = len(ids)
    tag_slots: dict[str, list[int]] = {}
    if "tag_codes" in arrays:
        tag_sets = [tuple(t) for t in meta["tag_sets"]]
        codes = arrays["tag_codes"].astype(np.int64, copy=False)
        tags = [tag_sets[c] for c in codes.tolist()]
        order = np.argsort(codes, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
            if len(group):
                for tag in tag_sets[int(codes[group[0]])]:
                    tag_slots.setdefault(tag, []).extend(group.tolist())
    else:  # format 1: one list of tags per memory
        tags = [tuple(t) for t in meta["tags"]]
        for slot, memory_tags in enumerate(tags):
            for tag in memory_tags:
                tag_slots.setdefault(tag, []).append(slot)
    has_features = "has_time" in arrays and "addressed_codes" in arrays
    parts = Parts(
        dimension=dimension,
        ids=ids,
        seqs=arrays["seqs"].astype(np.int64, copy=False),
        kind_codes=arrays["kind_codes"].astype(np.int32, copy=False),
        kind_names=list(meta["kind_names"]),
        occurred=arrays["occurred"].astype(np.float64, copy=False),
        learned=arrays["learned"].astype(np.float64, copy=False),
        tags=tags,
        has_time=(
            arrays["has_time"].astype(np.bool_, copy=False)
            if has_features
            else np.zeros(n, dtype=np.bool_)
        ),
        speaker_codes=(
            arrays["speaker_codes"].astype(np.int32, copy=False)
            if has_features
            else np.full(n, NO_SPEAKER, dtype=np.int32)
        ),
        addressed_codes=(
            arrays["addressed_codes"].astype(np.int32, copy=False)
            if has_features
            else np.full(n, NO_SPEAKER, dtype=np.int32)
        ),
        speaker_names=list(meta["speakers"]) if has_features else [],
        identities=(
            arrays["identities"].astype(np.uint64, copy=False)
            if "identities" in arrays
            else np.full(n, NO_KEY, dtype=np.uint64)
        ),
        vectors=arrays["vectors"].reshape(n, dimension),
        keyword=KeywordIndex.from_arrays(arrays, arrays["doc_len"]),
        # Formats 1 to 4 were written with the rules of version 1 of each.
        stale_features=not has_features or meta.get("features", 1) != FEATURES_VERSION,
        stale_keywords=meta.get("tokenizer", 1) != TOKENIZER_VERSION,
        stale_identities=meta.get("identity") != IDENTITY_VERSION or "identities" not in arrays,
        tag_slots=tag_slots,
    )
    if len(parts.identities) != n:
        raise ValueError("the snapshot's identity keys do not match its memories")
    if "order_before" in arrays:
        before, after = arrays["order_before"], arrays["order_after"]
        tail = int(meta["order_tail"])
        if (
            len(before) != n
            or len(after) != n
            or not -1 <= tail < n
            or any(len(a) and (a.min() < -1 or a.max() >= n) for a in (before, after))
        ):
            raise ValueError("the snapshot's conversation order does not fit its memories")
        parts.order = (before.astype(np.int64), after.astype(np.int64), tail)
    if "hnsw" in arrays:
        parts.hnsw = arrays["hnsw"]
        parts.hnsw_keys = arrays["hnsw_keys"]
        parts.hnsw_covered = int(meta["hnsw_covered"])
    return parts
