"""Closed reason codes, one enum per stage: path, event, file, row check, run.

Every code headwater stores (ledger entries, batch manifests, quarantine reason files and rows,
poison records, the run ledger) is a member of one of these enums. The values are the strings
stored since before the enums existed, so lakes written then still read
(``tests/fixtures/lake_v0``). Members are ``str`` subclasses: they compare equal to, and
serialise as, their value. Never pass a member to Spark: use ``.value``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TypeVar

C = TypeVar("C", bound="Code")


class Code(str, Enum):
    """Base of the code enums: prints as its value on every Python (3.10's mixin rules differ)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> list[str]:
        """Every valid value, in declaration order."""
        return [str(m.value) for m in cls]

    @classmethod
    def parse(cls: type[C], value: str) -> C:
        """The member for ``value``.

        Raises:
            UnknownCodeError: ``value`` is no member; the message lists the valid ones.
        """
        try:
            return cls(value)
        except ValueError:
            raise UnknownCodeError(cls, value) from None


class UnknownCodeError(ValueError):
    """A code that no enum member has (a mistyped filter, a lake from a newer version)."""

    def __init__(self, enum: type[Code] | Iterable[type[Code]], value: str) -> None:
        enums = [enum] if isinstance(enum, type) else list(enum)
        valid = sorted({v for e in enums for v in e.values()})
        kinds = "/".join(e.__name__ for e in enums)
        super().__init__(f"unknown reason code {value!r} ({kinds}); valid codes: {', '.join(valid)}")
        self.value = value
        self.valid = valid


class PathCode(Code):
    """Why a landing path is refused before anything reads the lake (hostile or unroutable)."""

    EMPTY = "empty"  # blank path
    CONTROL_CHARS = "control_chars"  # category Cc (NUL, newline, ESC...)
    FORMAT_CHARS = "format_chars"  # category Cf (U+202E bidi override, zero-width joiners...)
    ABSOLUTE = "absolute"  # /x, C:\x, scheme://x
    BACKSLASH = "backslash"
    TRAVERSAL = "traversal"  # a '..' or '.' segment
    EMPTY_SEGMENT = "empty_segment"  # a//b
    TOO_LONG = "too_long"  # > 1024 characters
    NOT_A_FILE = "not_a_file"  # names the landing zone itself
    NO_DATASET = "no_dataset"  # matches no dataset's landing pattern
    AMBIGUOUS = "ambiguous"  # matches several datasets


class EventCode(Code):
    """Why a storage event or blob trigger was ignored (nothing to record)."""

    OTHER_CONTAINER = "other_container"
    DIRECTORY = "directory"
    EMPTY_DIRECTORY = "empty_directory"
    ZERO_LENGTH = "zero_length"
    GONE = "gone"
    INCOMPLETE_WRITE = "incomplete_write"
    NO_LOCATION = "no_location"
    EVENT_TYPE = "event_type"


class FileCode(Code):
    """Why a landed file is rejected into quarantine as a whole (the original stays in landing)."""

    MISSING = "missing"  # gone from landing before its batch was read
    EMPTY = "empty"  # 0 bytes, only whitespace, or no records
    BINARY = "binary"  # NUL bytes in a text format
    BAD_GZIP = "bad_gzip"  # .gz name without gzip, gzip without .gz name, truncated or corrupt stream
    ENCODING = "encoding"  # not valid text in the declared encoding
    NOT_PARQUET = "not_parquet"  # no PAR1 magic
    NO_HEADER = "no_header"  # CSV header missing or blank
    DUPLICATE_COLUMNS = "duplicate_columns"  # CSV header repeats a column
    WRONG_FORMAT = "wrong_format"  # array vs lines, a CSV sharing no column with the contract
    UNPARSEABLE = "unparseable"  # no record could be parsed
    UNKNOWN_COLUMNS = "unknown_columns"  # columns outside the contract under schema policy 'freeze'
    UNREADABLE = "unreadable"  # the engine failed reading this file alone (corrupt Parquet footer...)
    ABANDONED = "abandoned"  # an operator abandoned the failed batch holding it
    BAD_CHANGES = "bad_changes"  # a SQL trigger batch that is not a JSON array of {Item, Operation}
    SCHEMA = "schema"  # a change file whose source dropped or retyped a contract column


class RowCheck(Code):
    """The kind of a row-level reason in quarantine's ``_errors`` (and bronze's ``_parse_error``).

    Stored ``check`` values are ``parse``, ``cast``, ``not_nullable``, ``unique``, or the name of
    a contract check (``isin``, ``greater_than_or_equal_to``...) or of a row rule; check and rule
    names are open-ended data, so they map to the kinds ``check`` and ``rule``
    (:func:`row_check_kind`).
    """

    PARSE = "parse"  # the record did not parse (malformed CSV line, invalid JSON)
    LINE_TOO_LONG = "line_too_long"  # a line of max_line_bytes or more (with its line break)
    CAST = "cast"  # a value does not cast to the contract's type
    NOT_NULLABLE = "not_nullable"
    UNIQUE = "unique"
    CHECK = "check"  # a pandera check of the contract, named in the row
    RULE = "rule"  # a row rule of the contract, named in the row
    OPERATION = "operation"  # a change row whose _change_op is none of insert/update/delete


def row_check_kind(check: str, *, rules: Iterable[str] = ()) -> RowCheck:
    """The kind of a stored ``check`` value: fixed kinds by value, rule names, else a check."""
    try:
        return RowCheck(check)
    except ValueError:
        return RowCheck.RULE if check in set(rules) else RowCheck.CHECK


class RunCode(Code):
    """Why a run (ingest, curate, publish, register) or one file's handling failed."""

    LEASE_HELD = "lease_held"  # another run holds the dataset's writer lease
    LEASE_LOST = "lease_lost"
    STORAGE = "storage"  # the lake could not be read or written (network, throttling, outage)
    SPARK = "spark"  # the engine failed outside any one file (cluster, executor lost)
    CONTRACT = "contract"  # a contract in schemas/ is invalid
    UNKNOWN_DATASET = "unknown_dataset"
    CONFIG = "config"  # settings missing or contradictory
    BATCHING_CONFIG = "batching_config"
    SUBMIT = "submit"  # a run could not be started
    BATCH_FAILED = "batch_failed"  # the open batch failed after its retries; an operator decides
    PATH_REJECTED = "path_rejected"
    FILE_REJECTED = "file_rejected"
    # curate (bronze -> silver)
    BAD_STATE = "bad_state"
    BAD_TRANSFORM = "bad_transform"
    CONCURRENT_RUN = "concurrent_run"
    SCHEMA_MISMATCH = "schema_mismatch"
    UNTAGGED_BRONZE_COMMIT = "untagged_bronze_commit"
    UNSUPPORTED_TYPE = "unsupported_type"
    CURATE = "curate"
    # gold and assets
    GOLD = "gold"
    ASSET = "asset"
    AUTH = "auth"  # the registry refused our credentials
    NETWORK = "network"  # the registry could not be reached
    # The registry answered with a status that means "try again later" (other statuses: network).
    HTTP_408 = "http_408"
    HTTP_429 = "http_429"
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"
    UNKNOWN = "unknown"  # an exception headwater does not know (counted transient up to the bound)


# Poison records written before the codes were closed hold the exception's class name.
_LEGACY_RUN_CODES = {
    "LeaseHeldError": RunCode.LEASE_HELD,
    "LeaseLostError": RunCode.LEASE_LOST,
    "StorageError": RunCode.STORAGE,
    "NotFoundError": RunCode.STORAGE,
    "AlreadyExistsError": RunCode.STORAGE,
    "PreconditionFailedError": RunCode.STORAGE,
    "OSError": RunCode.STORAGE,
    "IOError": RunCode.STORAGE,
    "ConnectionError": RunCode.STORAGE,
    "TimeoutError": RunCode.STORAGE,
    "ServiceRequestError": RunCode.STORAGE,
    "ServiceResponseError": RunCode.STORAGE,
    "HttpResponseError": RunCode.STORAGE,
    "Py4JJavaError": RunCode.SPARK,
    "Py4JError": RunCode.SPARK,
    "ContractError": RunCode.CONTRACT,
    "UnknownDatasetError": RunCode.UNKNOWN_DATASET,
    "ConfigError": RunCode.CONFIG,
}

ANY_CODE: tuple[type[Code], ...] = (PathCode, EventCode, FileCode, RowCheck, RunCode)


def parse_stored(value: str) -> Code:
    """Read a stored code of any stage back as its member (legacy class names included).

    A path code and a file code may share a value (``empty``); the path stage wins, which is
    the same string either way.

    Raises:
        UnknownCodeError: no stage has ``value``.
    """
    for enum in ANY_CODE:
        try:
            return enum(value)
        except ValueError:
            continue
    try:
        return parse_run_code(value)
    except UnknownCodeError:
        raise UnknownCodeError(ANY_CODE, value) from None


def parse_run_code(value: str) -> RunCode:
    """A stored run or poison code as a :class:`RunCode`; legacy exception class names map too.

    Raises:
        UnknownCodeError: neither a run code nor a known legacy class name.
    """
    try:
        return RunCode(value)
    except ValueError:
        pass
    if value in _LEGACY_RUN_CODES:
        return _LEGACY_RUN_CODES[value]
    if value[:1].isupper() and value.isidentifier():
        return RunCode.UNKNOWN  # another exception class name, from before the codes were closed
    raise UnknownCodeError(RunCode, value)


def run_error_code(error: str) -> RunCode:
    """The code of a run ledger ``error``.

    The error reads ``"<code>: <one line>"``; before the codes were closed it read
    ``"<ExceptionClass>: <message>"``.

    Raises:
        UnknownCodeError: the prefix is neither a run code nor a known legacy class name.
    """
    return parse_run_code(error.split(":", 1)[0].strip())
