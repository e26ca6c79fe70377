"""Key rotation's key files: how a new master key file replaces the old one, crash-safely.

No memory is re-encrypted by a rotation: :meth:`severance.keys.Keyring.rotate` re-wraps every
data key (and the audit key) in one transaction under the store's writer lock. What has to
survive a crash at any point is the key file, since the database and the file cannot change
in one step. So the new key waits in ``<key file>.new`` until the commit, then replaces the
old file; a process that opens the store in between finds the pending key, checks it is the
one the store now expects, and finishes the rename itself (see
:func:`severance.keys.find_master_key`). A retired key file is overwritten, then unlinked: with
an old copy of the data it would open everything.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import AlreadyExistsError, StoreError
from .keyfiles import (
    check_key_file_place,
    default_key_file,
    destroy_key_file,
    read_key_file,
    write_key_file,
)

__all__ = ["NewKeyFile", "retire_key_file"]


class NewKeyFile:
    """A new master key written to ``<target>.new``, waiting for the rotation to commit."""

    def __init__(self, target: Path, raw: bytes) -> None:
        self.target = target
        self.pending = target.with_name(target.name + ".new")
        self._raw = raw

    @classmethod
    def prepare(
        cls,
        raw: bytes,
        *,
        location: str,
        store_id: str,
        key_file: str | os.PathLike[str] | None,
        current: Path | None,
    ) -> NewKeyFile:
        """Write ``raw`` beside its target: ``key_file``, else the store's current key file,
        else the default one. Refuses a place inside the store, or a file we do not own."""
        target = (
            Path(key_file).expanduser().absolute()
            if key_file is not None
            else current or default_key_file(store_id)
        )
        check_key_file_place(target, location)
        if target.exists() and target != current:
            # Never clobber a file we do not own: it may be another store's only key.
            raise AlreadyExistsError(f"key file {str(target)!r} already exists")
        new = cls(target, raw)
        new.pending.unlink(missing_ok=True)
        write_key_file(new.pending, raw)
        return new

    def discard(self) -> None:
        """The rotation did not commit: the pending key opens nothing, remove it."""
        self.pending.unlink(missing_ok=True)

    def commit(self) -> None:
        """The rotation committed: the new key is the only one that opens the store now."""
        # If we die before this rename, opening finds the ".new" file (see find_master_key)
        # — as another process may already have done, finishing the rename for us.
        try:
            os.replace(self.pending, self.target)
        except FileNotFoundError:
            if read_key_file(self.target) != self._raw:
                raise StoreError(
                    f"the new key file {str(self.pending)!r} vanished after the rotation committed"
                ) from None


def retire_key_file(current: Path | None, target: Path | None) -> None:
    """Destroy the key file a committed rotation retired (unless it is the new one's place)."""
    if current is not None and current != target:
        # The retired key must not linger: with an old copy of the data it opens everything.
        destroy_key_file(current)
