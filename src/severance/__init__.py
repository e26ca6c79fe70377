"""Severance: a memory layer for AI assistants that keeps a person's lives apart.

>>> store = severance.Store.init("~/.severance")
>>> store.add_persona("work"); store.add_floor("office", persona="work", default=True)
>>> with store.enter(floor="office") as s:
...     s.remember("Q3 launch moved to Oct 12")
...     s.recall("when is the launch?")
"""

from .drafts import read_turns
from .errors import (
    AlreadyExistsError,
    ConflictError,
    EmbedderError,
    EmbedderMismatchError,
    FloorNotFoundError,
    IntegrityError,
    InvalidFloorError,
    InvalidInputError,
    InvalidTurnsError,
    MemoryNotFoundError,
    MissingKeyError,
    NoFloorError,
    NotFoundError,
    PassError,
    PassNotFoundError,
    PersonaErasedError,
    PersonaNotFoundError,
    QuarantinedError,
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
    "ConflictError",
    "Context",
    "EmbedderError",
    "EmbedderMismatchError",
    "Floor",
    "FloorMatch",
    "FloorNotFoundError",
    "IntegrityError",
    "InvalidFloorError",
    "InvalidInputError",
    "InvalidTurnsError",
    "Memory",
    "MemoryDraft",
    "MemoryNotFoundError",
    "MissingKeyError",
    "NoFloorError",
    "NotFoundError",
    "Notice",
    "Page",
    "PassError",
    "PassNotFoundError",
    "PersonaErasedError",
    "PersonaInfo",
    "PersonaNotFoundError",
    "QuarantinedError",
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
