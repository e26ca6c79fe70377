"""Hybrid retrieval: dense cosine + BM25, fused, over one awake persona's index."""

from .hybrid import Fusion
from .index import Doc, Filter, Hit, PersonaIndex, SearchMode
from .keyword import tokenize

__all__ = ["Doc", "Filter", "Fusion", "Hit", "PersonaIndex", "SearchMode", "tokenize"]
