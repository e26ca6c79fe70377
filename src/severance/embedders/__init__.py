"""Embedders: text in, unit float32 vectors out — chosen by a short spec string.

Specs rather than objects cross the boundary because the spec is what gets written into a
store's config and typed on the command line:

* ``"minilm"`` (the default): the bundled all-MiniLM-L6-v2 int8 ONNX model, offline.
* ``"e5-small"``: multilingual-e5-small (4-bit) from the optional extra ``e5``, offline.
* ``"sentence-transformers:<model name or local path>"``: needs the optional extra.
* ``"openai:<model>@<base_url>[#<dimension>]"``: any OpenAI-compatible ``/v1/embeddings``.

Loading a model is the expensive part, so :func:`load_embedder` caches one instance per spec
for the life of the process. Dispatch is a plain dict of scheme -> factory; nothing here
imports a module or class named by the spec.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from severance.embedders.base import Embedder, Vectors
from severance.errors import EmbedderError, InvalidInputError

__all__ = ["DEFAULT_EMBEDDER", "SCHEMES", "Embedder", "Vectors", "load_embedder", "spec_for"]

#: The spec of the bundled, offline default embedder.
DEFAULT_EMBEDDER: str = "minilm"


def _minilm(arg: str) -> Embedder:
    if arg:
        raise InvalidInputError(f"the 'minilm' embedder takes no argument, got 'minilm:{arg}'")
    from severance.embedders.minilm import MiniLM

    return MiniLM()


def _e5_small(arg: str) -> Embedder:
    if arg:
        raise InvalidInputError(f"the 'e5-small' embedder takes no argument, got 'e5-small:{arg}'")
    from severance.embedders.e5 import E5Small

    return E5Small()


def _sentence_transformers(arg: str) -> Embedder:
    if not arg.strip():
        raise InvalidInputError(
            "malformed embedder spec; expected 'sentence-transformers:<model name or path>'"
        )
    from severance.embedders.st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(arg)


def _openai(arg: str) -> Embedder:
    from severance.embedders.openai import parse_spec

    return parse_spec(arg)


#: Spec scheme -> factory taking the text after ``"<scheme>:"`` ("" when there is none).
SCHEMES: dict[str, Callable[[str], Embedder]] = {
    "minilm": _minilm,
    "e5-small": _e5_small,
    "sentence-transformers": _sentence_transformers,
    "openai": _openai,
}

_loaded: dict[str, Embedder] = {}
_spec_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def load_embedder(spec: str | None = None) -> Embedder:
    """Return the embedder for ``spec`` (``None`` means :data:`DEFAULT_EMBEDDER`).

    The first call for a spec loads it; later calls, from any thread, get the same instance.
    Concurrent first calls load it once. A failed load is not cached.

    Raises :class:`~severance.errors.InvalidInputError` for an unknown scheme or malformed
    spec, and :class:`~severance.errors.EmbedderError` when the model cannot be loaded.
    """
    text = DEFAULT_EMBEDDER if spec is None else spec.strip()
    cached = _loaded.get(text)
    if cached is not None:
        return cached
    scheme, _, arg = text.partition(":")
    scheme = scheme.strip().lower()
    factory = SCHEMES.get(scheme)
    if scheme == OBJECT_SCHEME:
        raise EmbedderError(
            f"this store's embedder, {arg!r}, was given to Store.init as an object: open the"
            " store with the same embedder (Store.open(..., embedder=...))"
        )
    if factory is None:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidInputError(f"unknown embedder spec {spec!r}; known schemes: {known}")
    key = f"{scheme}:{arg}" if arg else scheme
    cached = _loaded.get(key)
    if cached is not None:
        return cached
    with _guard:
        lock = _spec_locks.setdefault(key, threading.Lock())
    with lock:
        cached = _loaded.get(key)
        if cached is None:
            try:
                cached = factory(arg)
            except BaseException:
                # Do not keep a lock per rejected spec: specs may come from user input.
                with _guard:
                    if key not in _loaded:
                        _spec_locks.pop(key, None)
                raise
            _loaded[key] = cached
    if key != text:
        _loaded.setdefault(text, cached)
    return cached


#: What a store records for an embedder handed to it as an object it cannot load by itself.
OBJECT_SCHEME = "object"


def spec_for(embedder: Embedder) -> str:
    """The spec a store records for an embedder given as an object, so that opening the store
    later loads the same model: the object's own ``spec`` attribute if it has one, ``"minilm"``
    for the bundled model, else ``"object:<name>"`` — which :func:`load_embedder` refuses, as
    such a store must be opened with the same object again."""
    explicit = getattr(embedder, "spec", None)
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    # Not imported means no MiniLM exists in this process (and importing it loads onnxruntime).
    minilm = sys.modules.get("severance.embedders.minilm")
    if minilm is not None and isinstance(embedder, minilm.MiniLM) and embedder.name == minilm.NAME:
        return DEFAULT_EMBEDDER
    return f"{OBJECT_SCHEME}:{embedder.name}"
