"""Sealing and opening a persona's index snapshot.

A snapshot is :meth:`severance.search.PersonaIndex.to_bytes` cut into chunks of
:data:`CHUNK` bytes, each sealed with associated data naming the store, persona, watermark
and the chunk's place (``part/parts``), so chunks cannot be reordered, dropped or moved to
another snapshot. Opening decrypts every chunk straight into one buffer (no per-chunk
plaintext, no join): at 100k memories a snapshot is over 200 MiB, and each copy of it costs
wake time.
"""

from __future__ import annotations

import mmap

from .backends.base import Snapshot
from .seal import OVERHEAD, Sealer, aad

__all__ = ["CHUNK", "Plaintext", "open_snapshot", "seal_snapshot"]

#: What a snapshot is opened into: one writable buffer the index reads its arrays from.
Plaintext = bytearray | mmap.mmap

#: Plaintext bytes per sealed chunk.
CHUNK = 16 * 1024 * 1024


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


def open_snapshot(sealer: Sealer, store_id: str, persona_id: str, snapshot: Snapshot) -> Plaintext:
    """The plaintext of a snapshot, in one buffer. Raises
    :class:`~severance.errors.IntegrityError` if any chunk fails authentication."""
    parts = len(snapshot.chunks)
    size = sum(max(0, len(chunk) - OVERHEAD) for chunk in snapshot.chunks)
    out = _buffer(size)
    view = memoryview(out)
    at = 0
    try:
        for i, chunk in enumerate(snapshot.chunks):
            n = max(0, len(chunk) - OVERHEAD)
            sealer.open_into(
                chunk, _aad(store_id, persona_id, snapshot.watermark, i, parts), view[at : at + n]
            )
            at += n
    finally:
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
