"""Files the CLI writes that hold plaintext memories (exports): private and all-or-nothing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ..errors import InvalidInputError

__all__ = ["private_file"]


@contextmanager
def private_file(path: Path) -> Iterator[TextIO]:
    """A text file at ``path`` readable and writable by its owner only (mode 0600), written
    under a temporary name in the same directory and renamed into place when the block ends
    without error — so an interrupted export never leaves a partial file, and no other user
    can read the plaintext even while it is being written. The directory is checked first, so
    a bad path is refused before anything is decrypted."""
    target = path.expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InvalidInputError(f"cannot write {str(path)!r}: it is a directory")
    try:
        # mkstemp creates the file with mode 0600, whatever the umask.
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as e:
        raise InvalidInputError(f"cannot write {str(path)!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        try:
            os.replace(temp, target)
        except OSError as e:
            raise InvalidInputError(f"cannot write {str(path)!r}: {e.strerror}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
