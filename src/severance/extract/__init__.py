"""Optional fact extraction and supersession, each persona with its own model.

Writes stay LLM-free by default. A persona given an extractor (``store.set_extractor`` or
``severance persona set NAME --extractor SPEC``) can turn conversations into durable facts:
``session.remember_messages(messages, infer=True)`` sends the new turns and the memories the
persona's *own* recall finds relevant to *that persona's* endpoint, validates the operations
it answers (add / update / supersede / none) and applies them, each memory with provenance to
its turns. A work persona can use the employer's endpoint and a home persona a local Ollama:
neither ever sees the other's memories, because a session can only read its own persona.

Modules: :mod:`.spec` (specs and settings), :mod:`.sealed` (settings at rest),
:mod:`.client` (the HTTP call), :mod:`.prompt`, :mod:`.operations` (the answer's schema),
:mod:`.run` (plan, then apply), :mod:`.supersession`.
"""

from __future__ import annotations

from .client import ChatClient, Reply
from .operations import ANSWER_SCHEMA, Operation, parse_answer
from .run import Cost, Extraction, Writer, extract
from .sealed import meta_key, open_settings, seal_settings
from .spec import ExtractorSettings, ExtractorSpec, parse_spec
from .supersession import mark_superseded

__all__ = [
    "ANSWER_SCHEMA",
    "ChatClient",
    "Cost",
    "Extraction",
    "ExtractorSettings",
    "ExtractorSpec",
    "Operation",
    "Reply",
    "Writer",
    "extract",
    "mark_superseded",
    "meta_key",
    "open_settings",
    "parse_answer",
    "parse_spec",
    "seal_settings",
]
