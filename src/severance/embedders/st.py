"""sentence-transformers models as embedders: the optional, heavyweight route.

sentence-transformers brings torch (over a gigabyte), so it is an optional extra and imported
only when a ``sentence-transformers:`` spec is loaded. Models are loaded with
``local_files_only=True``: Severance never downloads weights at run time, so a model must
already be on disk (a local path, or a name already in the Hugging Face cache).

This module is named ``st`` rather than ``sentence_transformers`` so that nobody reading an
``import sentence_transformers`` here has to wonder which of the two it means.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from severance.embedders.base import Vectors, check_texts, empty, l2_normalise
from severance.errors import EmbedderError, InvalidInputError

__all__ = ["INSTALL_HINT", "SentenceTransformerEmbedder"]

#: What to run when the extra is missing.
INSTALL_HINT = "pip install 'severance[sentence-transformers]'"


class SentenceTransformerEmbedder:
    """A sentence-transformers model, by Hugging Face name or local directory.

    ``name`` is ``"st:"`` plus the model's last path component, e.g. ``st:all-MiniLM-L6-v2``.
    Vectors are normalised by sentence-transformers (``normalize_embeddings=True``) and checked
    again here.
    """

    def __init__(self, model: str, *, batch_size: int = 32, device: str | None = "cpu") -> None:
        basename = os.path.basename(model.strip().rstrip("/\\"))
        if not basename:
            raise InvalidInputError(f"invalid sentence-transformers model {model!r}")
        try:
            import sentence_transformers
        except ImportError as exc:
            raise EmbedderError(
                f"the embedder 'sentence-transformers:{model}' needs the optional extra: "
                f"{INSTALL_HINT}"
            ) from exc
        try:
            self._model: Any = sentence_transformers.SentenceTransformer(
                model.strip(), device=device, local_files_only=True
            )
        except Exception as exc:  # torch/transformers/hub raise many unrelated types
            raise EmbedderError(
                f"cannot load sentence-transformers model {model!r} from local files "
                f"(Severance does not download models at run time): {exc}"
            ) from exc
        self.model: str = model.strip()
        self.name: str = f"st:{basename}"
        self.batch_size: int = batch_size
        self.dimension: int = self._discover_dimension()

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` with the model's own batching and truncation."""
        items = check_texts(texts)
        if not items:
            return empty(self.dimension)
        try:
            raw = self._model.encode(
                items,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbedderError(f"{self.name} failed to embed: {exc}") from exc
        vectors = l2_normalise(np.asarray(raw, dtype=np.float32), source=self.name)
        if vectors.shape != (len(items), self.dimension):
            raise EmbedderError(
                f"{self.name} returned shape {vectors.shape}, "
                f"expected {(len(items), self.dimension)}"
            )
        return vectors

    def _discover_dimension(self) -> int:
        for method in ("get_sentence_embedding_dimension", "get_embedding_dimension"):
            getter = getattr(self._model, method, None)
            if callable(getter):
                value = getter()
                if isinstance(value, int) and value > 0:
                    return value
        try:
            probe = self._model.encode(["dimension probe"], convert_to_numpy=True)
        except Exception as exc:
            raise EmbedderError(f"{self.name} failed to embed a probe text: {exc}") from exc
        return int(np.asarray(probe).shape[-1])
