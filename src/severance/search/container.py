"""The flat container an index snapshot is stored in: named arrays plus a JSON header.

No pickles, no zip archive (no CRC to check on wake): the arrays are laid out 64-byte aligned
so that waking can read the largest of them in place, as views of the decrypted buffer.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAGIC", "Buffer", "is_container", "pack_arrays", "unpack_arrays"]

#: What a snapshot may be read from.
Buffer = bytes | bytearray | npt.NDArray[np.uint8]
MAGIC = b"SEVIDX\x00\x02"
_MAGIC = MAGIC
_ALIGN = 64


def is_container(data: Buffer) -> bool:
    """Whether ``data`` starts like :func:`pack_arrays` output."""
    return bool(np.frombuffer(data, dtype=np.uint8)[: len(MAGIC)].tobytes() == MAGIC)


def pack_arrays(meta: dict[str, object], arrays: dict[str, npt.NDArray[np.generic]]) -> bytes:
    """``meta`` and named arrays as one flat buffer: magic, header length (u64 LE), a JSON
    header (meta plus each array's dtype, shape and offset), then the raw little-endian array
    bytes, each 64-byte aligned. No pickles, nothing executable."""
    parts: list[bytes | memoryview] = []
    layout: dict[str, tuple[str, list[int], int]] = {}
    offset = 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        layout[name] = (data.dtype.str, list(data.shape), offset)
        parts.append(data.reshape(-1).view(np.uint8).data)
        pad = -data.nbytes % _ALIGN
        if pad:
            parts.append(b"\0" * pad)
        offset += data.nbytes + pad
    header = json.dumps({"meta": meta, "arrays": layout}).encode()
    header += b" " * (-(len(_MAGIC) + 8 + len(header)) % _ALIGN)
    return b"".join([_MAGIC, len(header).to_bytes(8, "little"), header, *parts])


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
