"""Key rotation: re-wrapping every data key (and the audit key) under a new master key.

No memory is re-encrypted. The new key is derived from a passphrase or is random and written
to a key file; the rewrap runs in one transaction under the store's writer lock, so the
personas it reads are all there are until it commits (none added meanwhile stays wrapped by
the retired key), and a rotation made by another process just before is picked up first. The
key-file protocol survives a crash at any point: the new key waits in ``<key file>.new`` until
the commit, then replaces the old file (see :func:`severance.keys.find_master_key`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .audit import AuditLog
from .errors import AlreadyExistsError, StoreError
from .keys import (
    KdfParams,
    MasterKey,
    check_key_file_place,
    default_key_file,
    derive_passphrase_key,
    destroy_key_file,
    read_key_file,
    write_key_file,
)
from .records import AuthenticatedBackend

__all__ = ["rotate_master_key"]


def rotate_master_key(
    backend: AuthenticatedBackend,
    audit: AuditLog,
    store_id: str,
    current_master: Callable[[], MasterKey],
    *,
    passphrase: str | None,
    key_file: str | os.PathLike[str] | None,
    audit_key_id: str,
) -> tuple[MasterKey, Path | None]:
    """Rotate; returns the new master key and the key file it was written to (if any).
    ``current_master`` is called under the writer lock and returns the key in force."""
    meta = backend.get_meta()
    new_meta: dict[str, str] = {}
    pending: Path | None = None
    target: Path | None = None
    current = Path(meta["key_file"]) if meta.get("key_file") else None
    if passphrase is not None:
        params = KdfParams.fresh()
        master = MasterKey(derive_passphrase_key(passphrase, params), store_id)
        new_meta.update(key_mode="passphrase", kdf=params.to_text(), key_file="")
    else:
        target = (
            Path(key_file).expanduser().absolute()
            if key_file is not None
            else current or default_key_file(store_id)
        )
        check_key_file_place(target, backend.url)
        if target.exists() and target != current:
            # Never clobber a file we do not own: it may be another store's only key.
            raise AlreadyExistsError(f"key file {str(target)!r} already exists")
        master = MasterKey.generate(store_id)
        pending = target.with_name(target.name + ".new")
        pending.unlink(missing_ok=True)
        write_key_file(pending, master.raw)
        new_meta.update(key_mode="key-file", key_file=str(target), kdf="")
    try:
        with backend.transaction():
            backend.lock()
            old = current_master()
            meta = backend.get_meta()
            audit_key = old.unwrap(audit_key_id, base64.b64decode(meta["audit_key"]))
            rotated = 0
            for row in backend.personas():
                if row.sealed:
                    continue  # wrapped by its own secret, not by the master key
                data_key = old.unwrap(row.id, row.wrapped_key)
                backend.update_persona(replace(row, wrapped_key=master.wrap(row.id, data_key)))
                rotated += 1
            new_meta["key_check"] = base64.b64encode(master.check_value()).decode()
            new_meta["audit_key"] = base64.b64encode(master.wrap(audit_key_id, audit_key)).decode()
            for key, value in new_meta.items():
                backend.set_meta(key, value)
            audit.append("key_rotated", personas=rotated, key_mode=new_meta["key_mode"])
    except BaseException:
        if pending is not None:
            pending.unlink(missing_ok=True)
        raise
    if pending is not None and target is not None:
        # Committed: the new key is the only one that opens the store now. If we die before
        # this rename, opening finds the ".new" file (see find_master_key) — as another
        # process may already have done, finishing the rename for us.
        try:
            os.replace(pending, target)
        except FileNotFoundError:
            if read_key_file(target) != master.raw:
                raise StoreError(
                    f"the new key file {str(pending)!r} vanished after the rotation committed"
                ) from None
    if current is not None and current != target:
        # The retired key must not linger: with an old copy of the data it opens everything.
        destroy_key_file(current)
    return master, target
