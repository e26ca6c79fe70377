"""Severance: a memory layer for AI assistants that keeps a person's lives apart.

>>> store = severance.Store.init("~/.severance")
>>> store.add_persona("work"); store.add_floor("office", persona="work", default=True)
>>> with store.enter(floor="office") as s:
...     s.remember("Q3 launch moved to Oct 12")
...     s.recall("when is the launch?")
"""

from .client import Client
from .drafts import read_turns
from .errors import (
    AlreadyExistsError,
    EmbedderError,
    EmbedderMismatchError,
    ExtractorError,
    ExtractorOutputError,
    ExtractorUnavailableError,
    FloorNotFoundError,
    IntegrityError,
    InvalidExportError,
    InvalidFloorError,
    InvalidInputError,
    InvalidTurnsError,
    MemoryNotFoundError,
    MissingKeyError,
    NoExtractorError,
    NoFloorError,
    NotFoundError,
    PassError,
    PassNotFoundError,
    PersonaNotFoundError,
    RateLimitedError,
    ReadOnlyPassError,
    RequestTooLargeError,
    SessionClosedError,
    SeveranceError,
    StorageError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
    UnlockError,
    WrongKeyError,
)
from .floors import Context, Floor, FloorMatch
from .model import AuditEntry, Memory, MemoryDraft, Notice, Page, PersonaInfo, Recall
from .session import Session
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "AuditEntry",
    "Client",
    "Context",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractorError",
    "ExtractorOutputError",
    "ExtractorUnavailableError",
    "Floor",
    "FloorMatch",
    "FloorNotFoundError",
    "IntegrityError",
    "InvalidExportError",
    "InvalidFloorError",
    "InvalidInputError",
    "InvalidTurnsError",
    "Memory",
    "MemoryDraft",
    "MemoryNotFoundError",
    "MissingKeyError",
    "NoExtractorError",
    "NoFloorError",
    "NotFoundError",
    "Notice",
    "Page",
    "PassError",
    "PassNotFoundError",
    "PersonaInfo",
    "PersonaNotFoundError",
    "RateLimitedError",
    "ReadOnlyPassError",
    "Recall",
    "RequestTooLargeError",
    "Session",
    "SessionClosedError",
    "SeveranceError",
    "StorageError",
    "Store",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StorePathError",
    "UnlockError",
    "WrongKeyError",
    "__version__",
    "read_turns",
]
