"""Key files: a 256-bit key as URL-safe base64 on one line, mode 0600, outside the store.

By default a store's master key lives at ``$XDG_CONFIG_HOME/severance/keys/<store id>.key``,
so a copy of the data directory alone opens nothing. A retired key file is overwritten before
it is unlinked (see :mod:`severance.rotation`).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from .errors import InvalidInputError, MissingKeyError, UnlockError, WrongKeyError
from .seal import KEY_BYTES

__all__ = [
    "check_key_file_place",
    "decode_key",
    "default_key_dir",
    "default_key_file",
    "destroy_key_file",
    "encode_key",
    "read_key_file",
    "write_key_file",
]


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str, *, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be 32 bytes or their base64 text")
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise WrongKeyError(f"{what} is not a base64-encoded 256-bit key") from None
    if len(key) != KEY_BYTES:
        raise WrongKeyError(f"{what} is not a base64-encoded 256-bit key")
    return key


def default_key_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "severance" / "keys"


def default_key_file(store_id: str) -> Path:
    return default_key_dir() / f"{store_id}.key"


def write_key_file(path: Path, key: bytes) -> None:
    """Write a key file with mode 0600, refusing to overwrite one that exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encode_key(key) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise MissingKeyError(f"key file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UnlockError(f"key file {str(path)!r} cannot be read: {e}") from None
    if not stat.S_ISREG(mode):
        raise UnlockError(f"key file {str(path)!r} is not a regular file")
    return decode_key(text, what=f"key file {str(path)!r}")


def check_key_file_place(path: Path, location: str) -> None:
    """A key file must live outside the store directory, or a copy of the data opens it all."""
    if "://" in location:
        return
    store_dir = Path(location).expanduser().absolute()
    if path == store_dir or store_dir in path.parents:
        raise InvalidInputError("the key file must live outside the store directory")


def destroy_key_file(path: Path) -> None:
    """Overwrite a retired key file before unlinking it (best effort on copy-on-write disks)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        pass
