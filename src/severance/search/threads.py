"""One BLAS thread while a search runs.

A search multiplies small matrices by one vector (a few hundred candidate rows, or at most
:data:`~severance.search.index.HNSW_THRESHOLD` rows for exact search). Spreading such a
product over OpenBLAS's thread pool costs more in hand-off than it saves, and on a loaded
machine the pool's threads wait for cores: measured on 2 shared cores, 1.3-1.5x slower for
the candidate re-scoring and up to 20x for exact search at 10k memories. So searches run
with the pool limited to one thread (through threadpoolctl, which knows every BLAS build
numpy may carry) and restore it afterwards, leaving the rest of the process alone.

The limit is process-wide (BLAS has no per-thread setting), so overlapping searches in
several threads share it: the first one in sets it, the last one out restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LIMIT", "one_blas_thread"]

#: Whether searches limit BLAS at all (tests turn it off to compare results both ways).
LIMIT = True

_lock = threading.Lock()
#: ``libs``: threadpoolctl's controllers of the BLAS libraries loaded, found once (looking
#: them up again, as ``ThreadpoolController.limit`` does, cost ~10 µs a search); ``saved``:
#: each one's thread count before the outermost search, put back after it.
_state: dict[str, Any] = {"libs": None, "depth": 0, "saved": []}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with numpy's BLAS limited to one thread (nested and concurrent uses
    share one limit)."""
    if not LIMIT:
        yield
        return
    with _lock:
        if _state["depth"] == 0:
            libs = _state["libs"]
            if libs is None:
                from threadpoolctl import ThreadpoolController

                libs = _state["libs"] = (
                    ThreadpoolController().select(user_api="blas").lib_controllers
                )
            saved = [(lib, lib.num_threads) for lib in libs]
            for lib, threads in saved:
                if threads != 1:
                    lib.set_num_threads(1)
            _state["saved"] = saved
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for lib, threads in _state["saved"]:
                    if threads != 1:
                        lib.set_num_threads(threads)
                _state["saved"] = []
