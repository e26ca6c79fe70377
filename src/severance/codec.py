"""Sealing and opening one persona's rows: the only place a memory becomes ciphertext or back.

A :class:`MemoryCodec` holds one persona's :class:`~severance.seal.Sealer` and the names that
bind every ciphertext to its place (store id, persona id, memory id, field, version) as
associated data, so a payload or vector copied into another row, persona, store or version
fails authentication. Sessions, crossings and re-embedding all build rows and memories here,
so there is one definition of what a stored memory is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import index_snapshots
from .backends.base import HistoryRow, MemoryRow, PayloadRow, Snapshot, SnapshotStream
from .errors import IntegrityError
from .model import Memory, from_epoch
from .seal import Sealer, aad
from .search.dense import pack_vector, unpack_vector

__all__ = ["MemoryCodec"]

_decode_json = json.JSONDecoder().decode


class MemoryCodec:
    """Seals and opens the memories, vectors and index snapshots of one persona."""

    def __init__(self, data_key: bytes, store_id: str, persona_id: str, dimension: int) -> None:
        self._sealer = Sealer(data_key)
        self.store_id = store_id
        self.persona_id = persona_id
        self.dimension = dimension

    @property
    def sealer(self) -> Sealer:
        """The persona's sealer, for what else is sealed with its key (extractor settings)."""
        return self._sealer

    def _aad(self, memory_id: str, field: str, version: int) -> bytes:
        return aad(self.store_id, self.persona_id, memory_id, field, str(version))

    # -- memories -----------------------------------------------------------------------------
    def seal_payload(
        self,
        memory_id: str,
        version: int,
        *,
        text: str,
        kind: str,
        tags: Sequence[str],
        metadata: Mapping[str, Any],
        source: str | None,
        provenance: Sequence[Mapping[str, Any]] = (),
    ) -> bytes:
        body = json.dumps(
            {
                "text": text,
                "kind": kind,
                "tags": list(tags),
                "metadata": metadata,
                "source": source,
                "provenance": [dict(p) for p in provenance],
            },
            separators=(",", ":"),
        ).encode()
        return self._sealer.seal(body, self._aad(memory_id, "payload", version))

    def open_payload(self, memory_id: str, version: int, blob: bytes) -> dict[str, Any]:
        raw = self._sealer.open(blob, self._aad(memory_id, "payload", version))
        try:
            # The payload is our own compact UTF-8 JSON: decoded directly, without json.loads'
            # detection of the encoding (a recall opens every memory it returns).
            data = _decode_json(raw.decode())
        except ValueError:  # UnicodeDecodeError too
            raise IntegrityError(f"memory {memory_id!r} holds a malformed payload") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise IntegrityError(f"memory {memory_id!r} holds a malformed payload")
        return data

    def seal_vector(self, memory_id: str, version: int, vector: npt.NDArray[np.float32]) -> bytes:
        return self._sealer.seal(pack_vector(vector), self._aad(memory_id, "vector", version))

    def open_vector(self, row: MemoryRow) -> npt.NDArray[np.float32]:
        raw = self._sealer.open(row.vector, self._aad(row.id, "vector", row.version))
        try:
            return unpack_vector(raw, self.dimension)
        except ValueError:
            raise IntegrityError(f"memory {row.id!r} holds a malformed vector") from None

    def row(
        self,
        memory: Memory,
        vector: npt.NDArray[np.float32],
        *,
        learned_at: float,
        occurred_at: float,
        updated_at: float,
    ) -> MemoryRow:
        """The sealed row of ``memory`` (its id and version are the row's)."""
        return MemoryRow(
            id=memory.id,
            seq=0,
            version=memory.version,
            learned_at=learned_at,
            occurred_at=occurred_at,
            updated_at=updated_at,
            payload=self.seal_payload(
                memory.id,
                memory.version,
                text=memory.text,
                kind=memory.kind,
                tags=memory.tags,
                metadata=memory.metadata,
                source=memory.source,
                provenance=memory.provenance,
            ),
            vector=self.seal_vector(memory.id, memory.version, vector),
        )

    def memory(self, row: PayloadRow) -> Memory:
        """The memory a row holds; :class:`IntegrityError` naming it if it fails to open."""
        return self._memory(
            row.id, row.version, row.payload, row.occurred_at, row.learned_at, row.updated_at
        )

    def past(self, old: HistoryRow, learned_at: float) -> Memory:
        """A superseded version of a memory."""
        return self._memory(
            old.memory_id, old.version, old.payload, old.occurred_at, learned_at, old.updated_at
        )

    def _memory(
        self,
        memory_id: str,
        version: int,
        payload: bytes,
        occurred_at: float,
        learned_at: float,
        updated_at: float,
    ) -> Memory:
        data = self.open_payload(memory_id, version, payload)
        try:
            return Memory(
                id=memory_id,
                text=data["text"],
                kind=data["kind"],
                tags=tuple(data["tags"]),
                metadata=data["metadata"],
                occurred_at=from_epoch(occurred_at),
                learned_at=from_epoch(learned_at),
                updated_at=from_epoch(updated_at),
                version=version,
                source=data.get("source"),
                provenance=tuple(data.get("provenance") or ()),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise IntegrityError(f"memory {memory_id!r} holds a malformed payload") from None

    # -- index snapshots ----------------------------------------------------------------------
    def open_snapshot(self, snapshot: Snapshot) -> index_snapshots.Plaintext:
        """The plaintext of a snapshot, in one buffer (see :mod:`severance.index_snapshots`)."""
        return index_snapshots.open_snapshot(self._sealer, self.store_id, self.persona_id, snapshot)

    def seal_snapshot(self, watermark: int, data: bytes) -> Snapshot:
        return index_snapshots.seal_snapshot(
            self._sealer, self.store_id, self.persona_id, watermark, data
        )

    def stream_snapshot(
        self, watermark: int, pieces: Sequence[bytes | memoryview]
    ) -> SnapshotStream:
        """A snapshot of ``pieces`` sealed as it is written (see :mod:`.index_snapshots`)."""
        return index_snapshots.stream_snapshot(
            self._sealer, self.store_id, self.persona_id, watermark, pieces
        )
