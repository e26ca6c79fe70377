"""pgvector's ``vector`` type as a psycopg parameter (binary), for the indexed-vector mode.

Hand-written rather than taken from the ``pgvector`` package: it is fifteen lines, and that
package's psycopg hook would send *every* numpy array as a ``vector``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

__all__ = ["VectorParam", "register_vector"]


class VectorParam:
    """A float32 array bound for a pgvector parameter (wrapped, so that other numpy arrays
    keep psycopg's default adaptation)."""

    __slots__ = ("array",)

    def __init__(self, array: NDArray[np.float32]) -> None:
        self.array = array


def register_vector(conn: psycopg.Connection[Any]) -> bool:
    """Teach this connection to send :class:`VectorParam` as pgvector's binary ``vector``;
    False if the database has no ``vector`` type (pgvector is not installed)."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        return False
    vector_oid = info.oid

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Any) -> bytes:
            # pgvector's binary form: int16 dimension, int16 unused, big-endian float4s.
            array = np.ascontiguousarray(obj.array, dtype=">f4")
            return struct.pack(">HH", array.size, 0) + array.tobytes()

    conn.adapters.register_dumper(VectorParam, VectorDumper)
    return True
