"""Sealing and opening a persona's index snapshot.

A snapshot is :meth:`severance.search.PersonaIndex.to_bytes` cut into chunks of
:data:`CHUNK` bytes, each sealed with associated data naming the store, persona, watermark
and the chunk's place (``part/parts``), so chunks cannot be reordered, dropped or moved to
another snapshot. Opening decrypts every chunk straight into one buffer (no per-chunk
plaintext, no join): at 100k memories a snapshot is over 200 MiB, and each copy of it costs
wake time.

A checkpoint seals the snapshot as it is written (:func:`stream_snapshot`): each chunk from
a view of the index's own arrays (:meth:`~severance.search.PersonaIndex.snapshot_pieces`),
into one reused buffer the back-end writes out before the next chunk is sealed. Chunks are
cut at array bounds (small arrays gathered into one chunk), so no plaintext copy of the
snapshot and no buffer of its size are ever made. Opening does not depend on where chunks
are cut: their plaintexts are laid end to end.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .backends.base import Snapshot, SnapshotStream
from .seal import OVERHEAD, Sealer, aad
from .search.dense import load_graph_library

__all__ = ["CHUNK", "Plaintext", "open_snapshot", "seal_snapshot", "stream_snapshot"]

#: What a snapshot is opened into: one writable buffer the index reads its arrays from.
Plaintext = bytearray | mmap.mmap

#: Plaintext bytes per sealed chunk (at most).
CHUNK = 16 * 1024 * 1024
#: A piece of a streamed snapshot at least this long is sealed from views of itself; shorter
#: ones are gathered, in order, into chunks of up to :data:`CHUNK` bytes.
_DIRECT = 1024 * 1024
#: Plaintext bytes from which a snapshot is opened on two threads.
_PARALLEL_FROM = 64 * 1024 * 1024


def _aad(store_id: str, persona_id: str, watermark: int, part: int, parts: int) -> bytes:
    return aad(store_id, persona_id, "snapshot", str(watermark), f"{part}/{parts}")


def seal_snapshot(
    sealer: Sealer,
    store_id: str,
    persona_id: str,
    watermark: int,
    data: bytes | bytearray | memoryview,
) -> Snapshot:
    """``data`` sealed as a snapshot taken at ``watermark``.

    Every chunk is sealed from a view of ``data`` (no per-chunk plaintext copy) into one
    ciphertext buffer whose pages are faulted in with one call (see :func:`_buffer`); the
    chunks handed back are views of it. At a million memories a snapshot is well over a
    gigabyte, so each copy avoided is a noticeable part of a checkpoint."""
    view = memoryview(data).cast("B")
    size = len(view)
    starts = range(0, size, CHUNK)
    parts = len(starts)
    out = _buffer(size + parts * OVERHEAD)
    sealed = memoryview(out)
    chunks: list[memoryview] = []
    at = 0
    for i, start in enumerate(starts):
        piece = view[start : start + CHUNK]
        end = at + len(piece) + OVERHEAD
        sealer.seal_into(piece, _aad(store_id, persona_id, watermark, i, parts), sealed[at:end])
        chunks.append(sealed[at:end])
        at = end
    return Snapshot(watermark, tuple(chunks))


def stream_snapshot(
    sealer: Sealer,
    store_id: str,
    persona_id: str,
    watermark: int,
    pieces: Sequence[bytes | memoryview],
) -> SnapshotStream:
    """The snapshot whose plaintext is ``pieces`` laid end to end, taken at ``watermark``,
    to be sealed chunk by chunk as the back-end writes it (see the module's docstring).
    ``pieces`` must not change until the stream has been written."""
    plan = _plan([memoryview(p).cast("B") for p in pieces])
    parts = len(plan)

    def seal(i: int, out: memoryview) -> None:
        spans = plan[i]
        plain = spans[0] if len(spans) == 1 else b"".join(spans)
        sealer.seal_into(plain, _aad(store_id, persona_id, watermark, i, parts), out)

    sizes = tuple(sum(len(s) for s in spans) + OVERHEAD for spans in plan)
    return SnapshotStream(watermark, sizes, seal)


def _plan(views: Sequence[memoryview]) -> list[list[memoryview]]:
    """The plaintext of each chunk, as the spans of ``views`` it is made of."""
    chunks: list[list[memoryview]] = []
    gathered: list[memoryview] = []
    size = 0
    for view in views:
        if len(view) >= _DIRECT:
            if gathered:
                chunks.append(gathered)
                gathered, size = [], 0
            chunks.extend([view[at : at + CHUNK]] for at in range(0, len(view), CHUNK))
            continue
        if gathered and size + len(view) > CHUNK:
            chunks.append(gathered)
            gathered, size = [], 0
        gathered.append(view)
        size += len(view)
    if gathered or not chunks:
        chunks.append(gathered or [memoryview(b"")])
    return chunks


def open_snapshot(sealer: Sealer, store_id: str, persona_id: str, snapshot: Snapshot) -> Plaintext:
    """The plaintext of a snapshot, in one buffer. Raises
    :class:`~severance.errors.IntegrityError` if any chunk fails authentication.

    A large snapshot's chunks are opened on two threads: decryption releases the GIL, and at
    a million memories (1.5 GiB) it is most of a wake."""
    parts = len(snapshot.chunks)
    size = sum(max(0, len(chunk) - OVERHEAD) for chunk in snapshot.chunks)
    out = _buffer(size)
    view = memoryview(out)
    jobs: list[tuple[bytes | memoryview, bytes, memoryview]] = []
    at = 0
    for i, chunk in enumerate(snapshot.chunks):
        n = max(0, len(chunk) - OVERHEAD)
        jobs.append(
            (chunk, _aad(store_id, persona_id, snapshot.watermark, i, parts), view[at : at + n])
        )
        at += n
    try:
        if size >= _PARALLEL_FROM and parts > 1 and (os.cpu_count() or 1) > 1:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="severance-open") as pool:
                opened = pool.map(lambda job: sealer.open_into(*job), jobs)
                # While the chunks decrypt (without the GIL), import what the woken index
                # needs next: a snapshot this large holds an HNSW graph.
                load_graph_library()
                for _ in opened:
                    pass
        else:
            for job in jobs:
                sealer.open_into(*job)
    finally:
        jobs.clear()
        view.release()
    return out


def _buffer(size: int) -> Plaintext:
    """A zeroed, writable buffer of ``size`` bytes, its pages already in memory.

    An anonymous mapping with ``MAP_POPULATE`` has the kernel fault every page in with one
    call; a ``bytearray`` zero-fills page by page (one fault each), which at 200 MiB took
    longer than decrypting into it. Not ``numpy.empty``: numpy asks for huge pages on large
    allocations, whose faults were slower and far more variable here."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if size == 0 or not populate:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
