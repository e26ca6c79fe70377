"""Every error Severance raises, in one tree.

    SeveranceError
    ├── InvalidInputError          bad text, kind, tag, metadata, limit, spec…
    │   ├── InvalidFloorError      a floor rule that cannot be parsed
    │   ├── InvalidTurnsError      a malformed conversation/turns file
    │   ├── InvalidExportError     an export file (ChatGPT, Claude, mem0…) that cannot be read
    │   └── RequestTooLargeError   an HTTP request body over the server's limit
    ├── NotFoundError
    │   ├── MemoryNotFoundError    also for ids that belong to another persona
    │   ├── PersonaNotFoundError
    │   ├── FloorNotFoundError
    │   └── PassNotFoundError
    ├── AlreadyExistsError         a persona or floor name already in use
    ├── NoFloorError               no floor matches the context and there is no default
    ├── StoreError
    │   ├── StoreNotFoundError
    │   ├── StoreExistsError
    │   └── StorePathError         the path is not a usable store directory
    ├── UnlockError
    │   ├── MissingKeyError        no key, passphrase or key file was supplied or found
    │   ├── WrongKeyError          a key, passphrase or secret that does not open the lock
    │   └── PassError              no pass, or one that is unknown, revoked or expired
    │       └── ReadOnlyPassError  a read-only pass used to change memories
    ├── RateLimitedError           a pass made more requests than its rate allows
    ├── IntegrityError             a ciphertext or audit entry that fails authentication
    ├── EmbedderError
    │   └── EmbedderMismatchError  the persona's vectors come from another model
    ├── ExtractorError             the persona's fact extractor (an LLM endpoint) failed
    │   ├── NoExtractorError       infer=True on a persona with no extractor set
    │   ├── ExtractorUnavailableError  endpoint down, HTTP error or timeout
    │   └── ExtractorOutputError   malformed or out-of-schema answer, or an id it was not shown
    ├── SessionClosedError         the session was closed (or its override expired)
    └── StorageError               the database failed in a way we could not classify

Interfaces (CLI exit codes, HTTP statuses) map these types in one table each; nothing ever
matches on message text. Messages never say whether *another* persona exists: an id owned by
another persona raises exactly what an id that never existed raises.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractorError",
    "ExtractorOutputError",
    "ExtractorUnavailableError",
    "FloorNotFoundError",
    "IntegrityError",
    "InvalidExportError",
    "InvalidFloorError",
    "InvalidInputError",
    "InvalidTurnsError",
    "MemoryNotFoundError",
    "MissingKeyError",
    "NoExtractorError",
    "NoFloorError",
    "NotFoundError",
    "PassError",
    "PassNotFoundError",
    "PersonaNotFoundError",
    "RateLimitedError",
    "ReadOnlyPassError",
    "RequestTooLargeError",
    "SessionClosedError",
    "SeveranceError",
    "StorageError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StorePathError",
    "UnlockError",
    "WrongKeyError",
]


class SeveranceError(Exception):
    """Base class of every error Severance raises on purpose."""

    #: A stable, machine-readable name for interfaces (JSON problem bodies, --json output).
    code = "severance_error"


class InvalidInputError(SeveranceError, ValueError):
    """An argument was rejected before anything was changed."""

    code = "invalid_input"


class InvalidFloorError(InvalidInputError):
    code = "invalid_floor"


class InvalidTurnsError(InvalidInputError):
    code = "invalid_turns"


class InvalidExportError(InvalidInputError):
    """An export file that cannot be read as the format it was given as."""

    code = "invalid_export"


class NotFoundError(SeveranceError, LookupError):
    code = "not_found"


class MemoryNotFoundError(NotFoundError):
    code = "memory_not_found"

    def __init__(self, memory_id: str) -> None:
        # One message for "never existed", "forgotten" and "belongs to another persona".
        super().__init__(f"no memory with id {memory_id!r}")
        self.memory_id = memory_id


class PersonaNotFoundError(NotFoundError):
    code = "persona_not_found"


class FloorNotFoundError(NotFoundError):
    code = "floor_not_found"


class AlreadyExistsError(SeveranceError):
    code = "already_exists"


class NoFloorError(SeveranceError):
    code = "no_floor"


class StoreError(SeveranceError):
    code = "store_error"


class StoreNotFoundError(StoreError):
    code = "store_not_found"


class StoreExistsError(StoreError):
    code = "store_exists"


class StorePathError(StoreError):
    code = "store_path"


class UnlockError(SeveranceError):
    code = "unlock_failed"


class MissingKeyError(UnlockError):
    code = "missing_key"


class WrongKeyError(UnlockError):
    code = "wrong_key"


class IntegrityError(SeveranceError):
    code = "integrity"


class EmbedderError(SeveranceError):
    code = "embedder_error"


class EmbedderMismatchError(EmbedderError):
    code = "embedder_mismatch"


class SessionClosedError(SeveranceError):
    code = "session_closed"


class StorageError(SeveranceError):
    code = "storage_error"


class PassError(UnlockError):
    """No pass, or a pass that does not (or no longer) open its floor."""

    code = "invalid_pass"


class ReadOnlyPassError(PassError):
    """A read-only pass was used to change memories."""

    code = "read_only_pass"


class PassNotFoundError(NotFoundError):
    code = "pass_not_found"


class RequestTooLargeError(InvalidInputError):
    """The request body is larger than the server accepts."""

    code = "request_too_large"


class RateLimitedError(SeveranceError):
    """The pass made more requests than its rate allows; retry after ``retry_after`` s."""

    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests on this pass; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


class ExtractorError(SeveranceError):
    """The persona's fact extractor failed; nothing was written."""

    code = "extractor_error"


class NoExtractorError(ExtractorError):
    """Extraction was asked of a persona that has no extractor set."""

    code = "no_extractor"


class ExtractorUnavailableError(ExtractorError):
    """The extractor's endpoint refused, failed, answered an HTTP error or timed out."""

    code = "extractor_unavailable"


class ExtractorOutputError(ExtractorError):
    """The extractor's answer was not valid JSON, did not fit the schema, or named a memory it
    was not shown (after the one retry)."""

    code = "extractor_output"
