"""Index snapshots kept as files beside an embedded store's database.

At 100k memories a snapshot is over 200 MiB of ciphertext; reading it back out of SQLite
BLOB chunks was nearly half of a wake. Here each persona's snapshot is one file,
``<store>/snapshots/<persona_id>.snap``, read through ``mmap`` so that the chunks handed to
decryption are views of the page cache (no copy out of the database, no join).

Layout: magic, watermark (u64 LE), chunk count (u32 LE), each chunk's length (u64 LE), then
the sealed chunks. The header is not authenticated by itself, but every chunk is sealed with
associated data naming the store, persona, watermark and its place, so a changed header makes
authentication fail, and the caller rebuilds from the rows.

Crash safety: a snapshot is written to a temporary file, fsynced, renamed over the old one and
the directory fsynced, all before the caller drops the tombstones the snapshot covers. A crash
at any point leaves the old snapshot or the new one (each consistent with the tombstones still
kept); a torn or missing file is not a snapshot, and the index is rebuilt from the rows.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import tempfile
from pathlib import Path

from ..errors import IntegrityError, StorageError
from .base import Snapshot, SnapshotOut

__all__ = ["SNAPSHOT_DIR", "SnapshotFiles"]

#: The directory, inside the store's directory, holding the snapshot files.
SNAPSHOT_DIR = "snapshots"
_MAGIC = b"SEVSNAP\x01"
_HEAD = struct.Struct("<8sQI")
_LENGTH = struct.Struct("<Q")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Bytes zeroed per write when a snapshot file is erased.
_ZERO_BLOCK = 1 << 20


class SnapshotFiles:
    """The snapshot files of one store directory."""

    def __init__(self, store_dir: Path) -> None:
        self.dir = store_dir / SNAPSHOT_DIR

    def path(self, persona_id: str) -> Path:
        """Where ``persona_id``'s snapshot lives (whether or not it exists)."""
        if not _SAFE_ID.fullmatch(persona_id):
            raise StorageError(f"persona id {persona_id!r} cannot name a snapshot file")
        return self.dir / f"{persona_id}.snap"

    def prepare(self, persona_id: str, snapshot: SnapshotOut) -> Path:
        """Write ``snapshot`` to a new temporary file beside its final place and fsync it.
        The caller installs it with :meth:`install` (or drops it with :meth:`discard`).

        A :class:`~.base.SnapshotStream` is sealed chunk by chunk as it is written, each
        chunk one ``write`` of 16 MiB or less: measured at 800 MiB, that took 1.2-1.4 s
        where sealing into one mapped buffer and writing it took 1.6 s and more, most of it
        faulting the buffer in."""
        target = self.path(persona_id)
        try:
            self.dir.mkdir(mode=0o700, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{persona_id}.", suffix=".tmp", dir=self.dir)
        except OSError as e:
            raise StorageError(f"cannot write a snapshot in {str(self.dir)!r}: {e}") from None
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                sizes = snapshot.sizes
                f.write(_HEAD.pack(_MAGIC, snapshot.watermark, len(sizes)))
                f.write(b"".join(_LENGTH.pack(n) for n in sizes))
                for chunk in snapshot.each():
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StorageError(f"cannot write snapshot {str(target)!r}: {e}") from None
            raise
        return tmp

    def install(self, persona_id: str, prepared: Path) -> None:
        """Atomically replace ``persona_id``'s snapshot by the prepared file, durably."""
        try:
            os.replace(prepared, self.path(persona_id))
            self._sync_dir()
        except OSError as e:
            prepared.unlink(missing_ok=True)
            raise StorageError(f"cannot install a snapshot: {e}") from None

    @staticmethod
    def discard(prepared: Path) -> None:
        """Remove a prepared file that will not be installed."""
        prepared.unlink(missing_ok=True)

    def watermark(self, persona_id: str) -> int | None:
        """The watermark in the header of ``persona_id``'s snapshot file, or None when there
        is no readable one."""
        try:
            with self.path(persona_id).open("rb") as f:
                head = f.read(_HEAD.size)
        except OSError:
            return None
        if len(head) != _HEAD.size:
            return None
        magic, watermark, _parts = _HEAD.unpack(head)
        return int(watermark) if magic == _MAGIC else None

    def read(self, persona_id: str) -> Snapshot | None:
        """``persona_id``'s snapshot, its chunks views of the mapped file, or None if there
        is no file. Raises :class:`~severance.errors.IntegrityError` for a file that is not a
        whole snapshot (torn, truncated, or not one at all)."""
        try:
            with self.path(persona_id).open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _HEAD.size:
                    raise IntegrityError("the index snapshot file is truncated")
                # MAP_POPULATE faults every page in with one call instead of one fault per
                # page as decryption walks the file.
                flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                mapped = mmap.mmap(f.fileno(), size, flags=flags, prot=mmap.PROT_READ)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot read the index snapshot: {e}") from None
        view = memoryview(mapped)
        magic, watermark, parts = _HEAD.unpack(view[: _HEAD.size])
        table_end = _HEAD.size + parts * _LENGTH.size
        if magic != _MAGIC or table_end > size:
            raise IntegrityError("the index snapshot file is malformed")
        lengths = [
            _LENGTH.unpack_from(view, _HEAD.size + i * _LENGTH.size)[0] for i in range(parts)
        ]
        if table_end + sum(lengths) != size:
            raise IntegrityError("the index snapshot file is truncated or overlong")
        chunks: list[memoryview] = []
        at = table_end
        for n in lengths:
            chunks.append(view[at : at + n])
            at += n
        return Snapshot(int(watermark), tuple(chunks))

    def remove(self, persona_id: str) -> None:
        """Erase ``persona_id``'s snapshot and any temporary file a crashed write left:
        overwritten with zeros, then unlinked (as ``secure_delete`` does for the database's
        pages), so nothing of it stays in the store's directory."""
        try:
            leftovers = list(self.dir.glob(f"{persona_id}.*.tmp"))
        except OSError:
            leftovers = []
        for path in [self.path(persona_id), *leftovers]:
            try:
                _zero(path)
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise StorageError(f"cannot remove snapshot {str(path)!r}: {e}") from None
        if self.dir.is_dir():
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _zero(path: Path) -> None:
    with path.open("r+b") as f:
        size = os.fstat(f.fileno()).st_size
        block = bytes(min(size, _ZERO_BLOCK))
        for start in range(0, size, _ZERO_BLOCK):
            f.write(block[: min(_ZERO_BLOCK, size - start)])
        f.flush()
        with contextlib.suppress(OSError):
            os.fsync(f.fileno())
