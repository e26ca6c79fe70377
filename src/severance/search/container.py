"""The flat container an index snapshot is stored in: named arrays plus a JSON header.

No pickles, no zip archive (no CRC to check on wake): the arrays are laid out 64-byte aligned
so that waking can read the largest of them in place, as views of the decrypted buffer.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAGIC",
    "Buffer",
    "Packable",
    "is_container",
    "pack_arrays",
    "pack_pieces",
    "unpack_arrays",
]

#: What a snapshot may be read from.
Buffer = bytes | bytearray | mmap.mmap | npt.NDArray[np.uint8]
MAGIC = b"SEVIDX\x00\x02"
_MAGIC = MAGIC
_ALIGN = 64
_ZEROS = bytes(_ALIGN)


def is_container(data: Buffer) -> bool:
    """Whether ``data`` starts like :func:`pack_arrays` output."""
    return bool(np.frombuffer(data, dtype=np.uint8)[: len(MAGIC)].tobytes() == MAGIC)


#: An array to pack, or blocks of rows packed as one array (their concatenation along the
#: first axis, without making it): a compacted matrix is written from views of its live runs.
Packable = npt.NDArray[Any] | Sequence[npt.NDArray[Any]]


def pack_pieces(meta: dict[str, object], arrays: dict[str, Packable]) -> list[memoryview]:
    """``meta`` and named arrays as the pieces of one flat buffer (their concatenation):
    magic, header length (u64 LE), a JSON header (meta plus each array's dtype, shape and
    offset), then the raw little-endian array bytes, each 64-byte aligned. No pickles,
    nothing executable. The pieces are views of the arrays themselves where they are
    contiguous and little-endian (nothing is copied), so they must not change until used."""
    parts: list[memoryview] = []
    layout: dict[str, tuple[str, list[int], int]] = {}
    offset = 0
    for name, array in arrays.items():
        blocks = [array] if isinstance(array, np.ndarray) else list(array)
        if not blocks:
            raise ValueError(f"array {name!r} has no blocks")
        dtype = blocks[0].dtype.newbyteorder("<")
        rows = sum(len(b) for b in blocks) if blocks[0].ndim else 0
        shape = [rows, *blocks[0].shape[1:]] if blocks[0].ndim else []
        nbytes = 0
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype)
            if data.nbytes:
                parts.append(data.reshape(-1).view(np.uint8).data)
            nbytes += data.nbytes
        layout[name] = (dtype.str, shape, offset)
        pad = -nbytes % _ALIGN
        if pad:
            parts.append(memoryview(_ZEROS[:pad]))
        offset += nbytes + pad
    header = json.dumps({"meta": meta, "arrays": layout}).encode()
    header += b" " * (-(len(_MAGIC) + 8 + len(header)) % _ALIGN)
    head = memoryview(b"".join([_MAGIC, len(header).to_bytes(8, "little"), header]))
    return [head, *parts]


def pack_arrays(meta: dict[str, object], arrays: dict[str, Packable]) -> bytes:
    """:func:`pack_pieces` joined into one ``bytes``."""
    return b"".join(pack_pieces(meta, arrays))


def unpack_arrays(
    data: Buffer, views: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The inverse of :func:`pack_arrays`. Arrays are copied out (writable, not keeping
    ``data`` alive), except those named in ``views``: read-only views into ``data``."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw[: len(_MAGIC)].tobytes() != _MAGIC:
        raise ValueError("not an index snapshot")
    start = len(_MAGIC) + 8
    size = int.from_bytes(raw[len(_MAGIC) : start].tobytes(), "little")
    header = json.loads(raw[start : start + size].tobytes())
    base = start + size
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, (dtype, shape, offset) in header["arrays"].items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        view = np.frombuffer(raw, dtype=dt, count=count, offset=base + int(offset))
        view = view.reshape(shape)
        if name in views:
            view.flags.writeable = False
            arrays[name] = view
        else:
            arrays[name] = view.astype(dt.newbyteorder("="), copy=True)
    meta: dict[str, Any] = header["meta"]
    return meta, arrays
