"""Every error Severance raises, in one tree.

    SeveranceError
    ├── InvalidInputError          bad text, kind, tag, metadata, limit, spec…
    │   ├── WeakPassphraseError    a new passphrase that is too easy to guess
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
    ├── ConflictError              another writer changed the same memories first
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
    │   ├── TamperedRecordError    a pass, floor, persona or setting not made by the key holder
    │   ├── RollbackError          the store is older than its anchor says (rows missing)
    │   └── QuarantinedError       one memory fails authentication (skipped; can be forgotten)
    ├── EmbedderError
    │   └── EmbedderMismatchError  the persona's vectors come from another model
    ├── ExtractorError             the persona's fact extractor (an LLM endpoint) failed
    │   ├── NoExtractorError       infer=True on a persona with no extractor set
    │   ├── ExtractorUnavailableError  endpoint down, HTTP error or timeout
    │   └── ExtractorOutputError   malformed or out-of-schema answer, or an id it was not shown
    ├── SessionClosedError         the session was closed (or its override expired)
    │   └── PersonaErasedError     its persona was erased by a clean slate (maybe elsewhere)
    └── StorageError               the database failed in a way we could not classify
        └── StorageTimeoutError    a statement ran past the database's time limit

Interfaces (CLI exit codes, HTTP statuses) map these types in one table each; nothing ever
matches on message text. Messages never say whether *another* persona exists: an id owned by
another persona raises exactly what an id that never existed raises.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
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
    "PersonaErasedError",
    "PersonaNotFoundError",
    "QuarantinedError",
    "RateLimitedError",
    "ReadOnlyPassError",
    "RequestTooLargeError",
    "RollbackError",
    "SessionClosedError",
    "SeveranceError",
    "StorageError",
    "StorageTimeoutError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StorePathError",
    "TamperedRecordError",
    "UnlockError",
    "WeakPassphraseError",
    "WrongKeyError",
]


class SeveranceError(Exception):
    """Base class of every error Severance raises on purpose."""

    #: A stable, machine-readable name for interfaces (JSON problem bodies, --json output).
    code = "severance_error"


class InvalidInputError(SeveranceError, ValueError):
    """An argument was rejected before anything was changed."""

    code = "invalid_input"


class WeakPassphraseError(InvalidInputError):
    """A new passphrase is too easy to guess (see docs/security.md for the minimum)."""

    code = "weak_passphrase"


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


class ConflictError(SeveranceError):
    """Another writer changed the same memories between read and commit; nothing was written
    (retry)."""

    code = "conflict"


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


class TamperedRecordError(IntegrityError):
    """A row that grants access or routes memories fails its MAC: it was written by someone
    without the store's key (raw SQL, an edited file) and is not obeyed."""

    code = "tampered_record"

    def __init__(self, message: str, kind: str = "", record_id: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.record_id = record_id


class RollbackError(IntegrityError):
    """The store holds less than its key holder last saw: an older copy, or deleted rows."""

    code = "rollback_detected"


class QuarantinedError(IntegrityError):
    """One memory fails authentication (a swapped or corrupted row). Every read skips it; it
    can be forgotten. The rest of the persona stays readable."""

    code = "quarantined"

    def __init__(self, memory_id: str) -> None:
        super().__init__(
            f"memory {memory_id!r} fails authentication (tampered or corrupted) and is"
            f" quarantined; forget it to remove it"
        )
        self.memory_id = memory_id


class EmbedderError(SeveranceError):
    code = "embedder_error"


class EmbedderMismatchError(EmbedderError):
    code = "embedder_mismatch"


class SessionClosedError(SeveranceError):
    code = "session_closed"


class PersonaErasedError(SessionClosedError):
    """The session's persona was erased by a clean slate (perhaps by another process)."""

    code = "persona_erased"


class StorageError(SeveranceError):
    code = "storage_error"


class StorageTimeoutError(StorageError):
    """A statement was cancelled by the database's time limit (not a lost connection)."""

    code = "storage_timeout"


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
