"""Every error Severance raises, in one tree, with its CLI exit code and HTTP status.

                                          exit HTTP
    SeveranceError                          1  400
    ├── InvalidInputError                   2  422  bad text, kind, tag, metadata, limit, spec…
    │   ├── WeakPassphraseError             2  422  a new passphrase too easy to guess
    │   ├── InvalidFloorError               2  422  a floor rule that cannot be parsed
    │   ├── InvalidTurnsError               2  422  a malformed conversation/turns file
    │   ├── InvalidExportError              2  422  an export (ChatGPT, Claude, mem0…) unreadable
    │   └── RequestTooLargeError            2  413  an HTTP request body over the server's limit
    ├── NotFoundError                       3  404
    │   ├── MemoryNotFoundError             3  404  also for ids that belong to another persona
    │   ├── PersonaNotFoundError            3  404
    │   ├── FloorNotFoundError              3  404
    │   └── PassNotFoundError               3  404
    ├── AlreadyExistsError                  4  409  a persona or floor name already in use
    ├── ConflictError                       1  409  another writer changed the same memories first
    │   └── ExtractionConflictError         1  409  a memory an extractor revises changed meanwhile
    ├── NoFloorError                        5  404  no floor matches and there is no default
    ├── StoreError                          9  503
    │   ├── StoreNotFoundError              9  503
    │   ├── StoreExistsError                9  503
    │   └── StorePathError                  9  503  the path is not a usable store directory
    ├── UnlockError                         6  403
    │   ├── MissingKeyError                 6  403  no key, passphrase or key file was given/found
    │   ├── WrongKeyError                   6  403  a key, passphrase or secret that does not open
    │   └── PassError                       6  401  no pass, or one unknown, revoked or expired
    │       └── ReadOnlyPassError           6  403  a read-only pass used to change memories
    ├── RateLimitedError                    1  429  a pass made more requests than its rate allows
    ├── IntegrityError                      7  503  a ciphertext or audit entry fails authentication
    │   ├── TamperedRecordError             7  503  a pass, floor, persona or setting not ours
    │   ├── RollbackError                   7  503  the store is older than its anchor says
    │   └── QuarantinedError                7  409  one memory fails authentication (skipped)
    ├── EmbedderError                       8  503
    │   └── EmbedderMismatchError           8  503  the persona's vectors come from another model
    ├── ExtractorError                     12  502  the persona's fact extractor (an LLM) failed
    │   ├── NoExtractorError               12  409  infer=True on a persona with no extractor set
    │   ├── ExtractorUnavailableError      12  502  endpoint down, HTTP error or timeout
    │   └── ExtractorOutputError           12  502  malformed answer, or an id it was not shown
    ├── SessionClosedError                 10  503  the session was closed (or its override expired)
    │   └── PersonaErasedError             10  410  its persona was erased by a clean slate
    └── StorageError                       11  503  the database failed in a way not classified
        └── StorageTimeoutError            11  503  a statement ran past the database's time limit

Each class carries both as attributes, ``exit_code`` and ``http_status`` (set on every class,
so a new one has to choose), beside its stable ``code``. The CLI, the HTTP API, the MCP
server and the console read them there; nothing ever matches on message text. A 503 is a
failure of the server's own storage or configuration, not of the request; a 502 one of the
persona's extractor upstream. Messages never say whether *another* persona exists: an id
owned by another persona raises exactly what an id that never existed raises.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractionConflictError",
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
    #: The ``severance`` command's exit status for this error (never 0).
    exit_code = 1
    #: The HTTP status of the problem document answering this error (4xx, 502 or 503).
    http_status = 400


class InvalidInputError(SeveranceError, ValueError):
    """An argument was rejected before anything was changed."""

    code = "invalid_input"
    exit_code = 2
    http_status = 422


class WeakPassphraseError(InvalidInputError):
    """A new passphrase is too easy to guess (see docs/security.md for the minimum)."""

    code = "weak_passphrase"
    exit_code = 2
    http_status = 422


class InvalidFloorError(InvalidInputError):
    code = "invalid_floor"
    exit_code = 2
    http_status = 422


class InvalidTurnsError(InvalidInputError):
    code = "invalid_turns"
    exit_code = 2
    http_status = 422


class InvalidExportError(InvalidInputError):
    """An export file that cannot be read as the format it was given as."""

    code = "invalid_export"
    exit_code = 2
    http_status = 422


class NotFoundError(SeveranceError, LookupError):
    code = "not_found"
    exit_code = 3
    http_status = 404


class MemoryNotFoundError(NotFoundError):
    code = "memory_not_found"
    exit_code = 3
    http_status = 404

    def __init__(self, memory_id: str) -> None:
        # One message for "never existed", "forgotten" and "belongs to another persona".
        super().__init__(f"no memory with id {memory_id!r}")
        self.memory_id = memory_id


class PersonaNotFoundError(NotFoundError):
    code = "persona_not_found"
    exit_code = 3
    http_status = 404


class FloorNotFoundError(NotFoundError):
    code = "floor_not_found"
    exit_code = 3
    http_status = 404


class AlreadyExistsError(SeveranceError):
    code = "already_exists"
    exit_code = 4
    http_status = 409


class ConflictError(SeveranceError):
    """Another writer changed the same memories between read and commit; nothing was written
    (retry)."""

    code = "conflict"
    exit_code = 1
    http_status = 409


class ExtractionConflictError(ConflictError):
    """A memory the extractor's answer revises was changed or forgotten by another writer
    between the prompt and the apply: the answer was decided on words that are no longer
    there, so nothing of the extraction was written (run it again)."""

    code = "extraction_conflict"
    exit_code = 1
    http_status = 409

    def __init__(self, message: str, *, memory_id: str = "") -> None:
        super().__init__(message)
        self.memory_id = memory_id


class NoFloorError(SeveranceError):
    code = "no_floor"
    exit_code = 5
    http_status = 404


class StoreError(SeveranceError):
    code = "store_error"
    exit_code = 9
    http_status = 503


class StoreNotFoundError(StoreError):
    code = "store_not_found"
    exit_code = 9
    http_status = 503


class StoreExistsError(StoreError):
    code = "store_exists"
    exit_code = 9
    http_status = 503


class StorePathError(StoreError):
    code = "store_path"
    exit_code = 9
    http_status = 503


class UnlockError(SeveranceError):
    code = "unlock_failed"
    exit_code = 6
    http_status = 403


class MissingKeyError(UnlockError):
    code = "missing_key"
    exit_code = 6
    http_status = 403


class WrongKeyError(UnlockError):
    code = "wrong_key"
    exit_code = 6
    http_status = 403


class IntegrityError(SeveranceError):
    code = "integrity"
    exit_code = 7
    http_status = 503


class TamperedRecordError(IntegrityError):
    """A row that grants access or routes memories fails its MAC: it was written by someone
    without the store's key (raw SQL, an edited file) and is not obeyed."""

    code = "tampered_record"
    exit_code = 7
    http_status = 503

    def __init__(self, message: str, kind: str = "", record_id: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.record_id = record_id


class RollbackError(IntegrityError):
    """The store holds less than its key holder last saw: an older copy, or deleted rows."""

    code = "rollback_detected"
    exit_code = 7
    http_status = 503


class QuarantinedError(IntegrityError):
    """One memory fails authentication (a swapped or corrupted row). Every read skips it; it
    can be forgotten. The rest of the persona stays readable."""

    code = "quarantined"
    exit_code = 7
    http_status = 409

    def __init__(self, memory_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"memory {memory_id!r} fails authentication (tampered or corrupted) and is"
            " quarantined; forget it to remove it"
        )
        self.memory_id = memory_id


class EmbedderError(SeveranceError):
    code = "embedder_error"
    exit_code = 8
    http_status = 503


class EmbedderMismatchError(EmbedderError):
    code = "embedder_mismatch"
    exit_code = 8
    http_status = 503


class SessionClosedError(SeveranceError):
    code = "session_closed"
    exit_code = 10
    http_status = 503


class PersonaErasedError(SessionClosedError):
    """The session's persona was erased by a clean slate (perhaps by another process)."""

    code = "persona_erased"
    exit_code = 10
    http_status = 410


class StorageError(SeveranceError):
    code = "storage_error"
    exit_code = 11
    http_status = 503


class StorageTimeoutError(StorageError):
    """A statement was cancelled by the database's time limit (not a lost connection)."""

    code = "storage_timeout"
    exit_code = 11
    http_status = 503


class PassError(UnlockError):
    """No pass, or a pass that does not (or no longer) open its floor."""

    code = "invalid_pass"
    exit_code = 6
    http_status = 401


class ReadOnlyPassError(PassError):
    """A read-only pass was used to change memories."""

    code = "read_only_pass"
    exit_code = 6
    http_status = 403


class PassNotFoundError(NotFoundError):
    code = "pass_not_found"
    exit_code = 3
    http_status = 404


class RequestTooLargeError(InvalidInputError):
    """The request body is larger than the server accepts."""

    code = "request_too_large"
    exit_code = 2
    http_status = 413


class RateLimitedError(SeveranceError):
    """The pass made more requests than its rate allows; retry after ``retry_after`` s."""

    code = "rate_limited"
    exit_code = 1
    http_status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests on this pass; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


class ExtractorError(SeveranceError):
    """The persona's fact extractor failed; nothing was written."""

    code = "extractor_error"
    exit_code = 12
    http_status = 502


class NoExtractorError(ExtractorError):
    """Extraction was asked of a persona that has no extractor set."""

    code = "no_extractor"
    exit_code = 12
    http_status = 409


class ExtractorUnavailableError(ExtractorError):
    """The extractor's endpoint refused, failed, answered an HTTP error or timed out."""

    code = "extractor_unavailable"
    exit_code = 12
    http_status = 502


class ExtractorOutputError(ExtractorError):
    """The extractor's answer was not valid JSON, did not fit the schema, or named a memory it
    was not shown (after the one retry)."""

    code = "extractor_output"
    exit_code = 12
    http_status = 502
