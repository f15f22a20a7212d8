"""Extractor for the police file drop: ``polis_YYYYMMDD.csv`` files in an inbox directory.

Contract: ``dbt_project/SOURCE_CONTRACTS.md``, "Police". A pull takes every ``polis_*.csv``
(matched case-insensitively) whose (name, sha256) has not been loaded before, oldest file date
first. Each file is its own unit: a file that cannot be read as the contract says (see
:data:`BATCH_FAULTS`: a symbolic link or other non-regular file, a name with control
characters, an unreadable file, a broken encoding, a header that is blank, missing a column or
naming an unknown one) is *refused*: moved aside into ``<inbox>/quarantine/`` with a
``<name>.reason.txt`` beside it, reported by name as a failed input of the run, and the other
files of the pull load. Moving the fixed file back into the inbox delivers it again.

The accepted files are decoded (UTF-8 with BOM, else strict UTF-8, else Windows-1252) and
streamed into one landed Parquet file (the whole pull is never held in memory), one row per
record, untyped:

``file_name``, ``line_number`` (1-based line of the record's first line, header = 1), one text
column per contract column (``diarienummer`` … ``senast_andrad``, see :data:`COLUMNS`),
``raw_line`` (the record as delivered; a quoted line break stays inside its record) and
``parse_error`` (``'truncated_row'`` for a short last record without a line end,
``'wrong_field_count'`` for any other record with the wrong number of fields,
``'unparseable_row'`` for a record the CSV reader gives up on; the column values are null then).

Nothing is dropped at landing (blank lines carry no data and are only counted). ``load`` types the
rows into ``raw_police.events`` and quarantines every row a rule of :data:`ROW_RULES` matches,
with that rule's reason code; the other rows load. Corrections and cancellations are resolved
later in dbt staging, so every accepted row is loaded. The files are recorded in
``load_meta.source_files`` in the same transaction, which is what stops a file from being read
twice. An empty file (0 bytes or header only) lands no rows but is still recorded as seen.

File names are shown quoted and escaped (``repr``) in every log line, message and reason file,
so a crafted name cannot forge a log line.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import fnmatch
import hashlib
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from samverkan.config import PoliceConfig
from samverkan.config.check import CheckResult
from samverkan.extract import Pull, SourceState
from samverkan.landing import BatchManifest
from samverkan.sources.failures import SourceError, failure_cause
from samverkan.warehouse import EntityCounts

log = logging.getLogger(__name__)

SOURCE = "police"
ENTITY = "events"
FILE_GLOB = "polis_*.csv"
SEPARATOR = ";"
QUARANTINE_DIR = "quarantine"  # under the inbox: where refused files are moved
REASON_SUFFIX = ".reason.txt"
LOCAL_TZ = ZoneInfo("Europe/Stockholm")
EARLIEST_PLAUSIBLE_DATE = dt.date(1990, 1, 1)
ROLES = ("Misstänkt", "Målsägande")
STATUSES = ("Aktiv", "Makulerad")
MAX_AGE = 120
_CHUNK_ROWS = 50_000

# (header in the file, landing / raw column)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("Diarienummer", "diarienummer"),
    ("Brottsdatum", "brottsdatum"),
    ("Anmälningsdatum", "anmalningsdatum"),
    ("Brottskod", "brottskod"),
    ("Brottsbenämning", "brottsbenamning"),
    ("Kommun", "kommun"),
    ("Stadsdel", "stadsdel"),
    ("Personnummer", "personnummer"),
    ("Roll", "roll"),
    ("Ålder", "alder"),
    ("Status", "status"),
    ("Senast ändrad", "senast_andrad"),
)
HEADER_TO_COLUMN: dict[str, str] = dict(COLUMNS)
COLUMN_TO_HEADER: dict[str, str] = {c: h for h, c in COLUMNS}
FIELD_COUNT = len(COLUMNS)

LANDING_SCHEMA = pa.schema(
    [("file_name", pa.string()), ("line_number", pa.int64())]
    + [(c, pa.string()) for _, c in COLUMNS]
    + [("raw_line", pa.string()), ("parse_error", pa.string())]
)

_FILE_DATE_RE = re.compile(r"polis_(\d{8})", re.IGNORECASE)

# --------------------------------------------------------------------------------------------
# What is a file (batch) fault and what is a row fault: the one declared table
# --------------------------------------------------------------------------------------------

# A file fault refuses the whole file: it is moved to <inbox>/quarantine/ with a reason file,
# reported by name as a failed input of the run (the gate blocks that night's publication), and
# the other files of the pull load.
BATCH_FAULTS: dict[str, str] = {
    "not_a_regular_file": "a symbolic link (wherever it points), directory, FIFO or other "
                          "non-regular file named like a delivery",
    "bad_file_name": "a file name with control or other non-printable characters",
    "unreadable_file": "the file cannot be opened or read by this user",
    "bad_encoding": "starts with a UTF-8 byte order mark but is not valid UTF-8, or is neither "
                    "UTF-8 nor Windows-1252",
    "bad_header": "line 1 is blank, or the header misses a contract column, names an unknown "
                  "column or names one twice",
}


@dataclass(frozen=True)
class RowRule:
    """A row fault: rows where ``condition`` holds are quarantined with ``reason``.

    ``condition`` and ``detail`` are SQL over the landed text columns (``diarienummer`` …) and
    their typed values (``t_diarienummer`` …, null when blank or untypeable) and the parameter
    ``_latest`` (the extraction date, Europe/Stockholm); ``detail`` names columns, never values.
    The first rule that matches a row gives its reason."""

    reason: str
    condition: str
    description: str
    detail: str


def _blank_to_null(col: str) -> str:
    return f"nullif(trim({col}), '')"


def _date_expr(col: str) -> str:
    s = _blank_to_null(col)
    return (f"case when regexp_full_match({s}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') "
            f"then try_strptime({s}, '%Y-%m-%d')::date end")


def _timestamp_expr(col: str) -> str:
    s = _blank_to_null(col)
    return (f"case when regexp_full_match({s}, '\\d{{4}}-\\d{{2}}-\\d{{2}} \\d{{2}}:\\d{{2}}') "
            f"then try_strptime({s}, '%Y-%m-%d %H:%M') "
            f"when regexp_full_match({s}, '\\d{{4}}-\\d{{2}}-\\d{{2}} \\d{{2}}:\\d{{2}}:\\d{{2}}') "
            f"then try_strptime({s}, '%Y-%m-%d %H:%M:%S') end")


def _text_expr(col: str) -> str:
    return f"nfc_normalize({_blank_to_null(col)})"


# landing column -> SQL typing it from the landed text (null when blank or untypeable)
_TYPED: dict[str, str] = {
    "diarienummer": _text_expr("diarienummer"),
    "brottsdatum": _date_expr("brottsdatum"),
    "anmalningsdatum": _date_expr("anmalningsdatum"),
    "brottskod": (f"case when regexp_full_match({_blank_to_null('brottskod')}, '\\d{{1,4}}') "
                  f"then lpad({_blank_to_null('brottskod')}, 4, '0') "
                  f"else {_text_expr('brottskod')} end"),
    "brottsbenamning": _text_expr("brottsbenamning"),
    "kommun": _text_expr("kommun"),
    "stadsdel": _text_expr("stadsdel"),
    "personnummer": _blank_to_null("personnummer"),
    "roll": _text_expr("roll"),
    "alder": (f"case when regexp_full_match({_blank_to_null('alder')}, '\\d{{1,3}}') "
              f"then {_blank_to_null('alder')}::integer end"),
    "status": _text_expr("status"),
    "senast_andrad": _timestamp_expr("senast_andrad"),
}
_DATE_COLUMNS = ("brottsdatum", "anmalningsdatum", "senast_andrad")


def _checks(checks: list[tuple[str, str]]) -> tuple[str, str]:
    """(any-of condition, detail naming the columns that match) for (condition, label) pairs."""
    condition = " or ".join(f"({cond})" for cond, _ in checks)
    detail = ("concat_ws(', ', " + ", ".join(f"case when {cond} then '{label}' end"
                                             for cond, label in checks) + ")")
    return condition, detail


def _sql_set(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _untyped(cols: Iterable[str]) -> list[tuple[str, str]]:
    return [(f"{_blank_to_null(c)} is not null and t_{c} is null", COLUMN_TO_HEADER[c]) for c in cols]


def _out_of_window(cols: Iterable[str]) -> list[tuple[str, str]]:
    return [(f"t_{c}::date < date '{EARLIEST_PLAUSIBLE_DATE.isoformat()}' or t_{c}::date > _latest",
             COLUMN_TO_HEADER[c]) for c in cols]


def _rule(reason: str, description: str, checks: list[tuple[str, str]], prefix: str = "") -> RowRule:
    condition, detail = _checks(checks)
    return RowRule(reason, condition, description, f"'{prefix}' || {detail}" if prefix else detail)


_FIELDS = f"'expected {FIELD_COUNT} fields separated by ;'"

ROW_RULES: tuple[RowRule, ...] = (
    RowRule("truncated_row", "parse_error = 'truncated_row'",
            "the last record is short and has no line end (the file was cut off)", _FIELDS),
    RowRule("wrong_field_count", "parse_error = 'wrong_field_count'",
            f"a record without exactly {FIELD_COUNT} fields", _FIELDS),
    RowRule("unparseable_row", "parse_error = 'unparseable_row'",
            "a record the CSV reader cannot read (say a quoted field that never ends)",
            "'not a readable CSV record'"),
    _rule("missing_key", "Diarienummer or Roll is blank",
          [(f"{_blank_to_null(c)} is null", COLUMN_TO_HEADER[c]) for c in ("diarienummer", "roll")],
          "missing "),
    _rule("bad_date", "Brottsdatum, Anmälningsdatum or Senast ändrad is not a valid date (time)",
          _untyped(_DATE_COLUMNS)),
    _rule("bad_integer", "Ålder is not a whole number of 1-3 digits", _untyped(("alder",))),
    RowRule("missing_offence_date", condition="t_brottsdatum is null",
            description="Brottsdatum is blank", detail="'missing Brottsdatum'"),
    _rule("implausible_date",
          f"a date before {EARLIEST_PLAUSIBLE_DATE.isoformat()} or after the extraction date "
          "(Europe/Stockholm)", _out_of_window(_DATE_COLUMNS)),
    RowRule("bad_role", condition=f"t_roll not in ({_sql_set(ROLES)})",
            description=f"Roll is not one of {', '.join(ROLES)}",
            detail=f"'Roll is not {' or '.join(ROLES)}'"),
    RowRule("bad_status", condition=f"t_status is null or t_status not in ({_sql_set(STATUSES)})",
            description=f"Status is blank or not one of {', '.join(STATUSES)}",
            detail=f"'Status is not {' or '.join(STATUSES)}'"),
    RowRule("bad_crime_code",
            condition="t_brottskod is not null and not regexp_full_match(t_brottskod, '\\d{4}')",
            description="Brottskod is not 1-4 digits", detail="'Brottskod is not 1-4 digits'"),
    RowRule("implausible_age", condition=f"t_alder > {MAX_AGE}",
            description=f"Ålder is above {MAX_AGE}", detail=f"'Ålder is above {MAX_AGE}'"),
)

# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


class PoliceFileError(SourceError):
    """A delivered file (or the inbox) cannot be read as the contract says; the message names
    the file (escaped) or directory and the problem (a column name, an encoding), never a row's
    content. ``code`` is the :data:`BATCH_FAULTS` key for a file fault."""

    def __init__(self, message: str, code: str = "unreadable_file") -> None:
        super().__init__(message)
        self.code = code


def shown_name(name: str) -> str:
    """A file name as it may appear in a log line, message or report: quoted, with control and
    other non-printable characters escaped (``repr``), so it cannot forge a line."""
    return repr(name)


def is_delivery_name(name: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), FILE_GLOB)


def inbox_files(inbox: Path) -> list[Path]:
    """The entries named like a delivery (``polis_*.csv``, any case) in the inbox (unsorted),
    whatever their type; a :class:`PoliceFileError` naming the inbox when it does not exist, is
    not a directory or cannot be listed."""
    if not inbox.exists():
        raise PoliceFileError(f"police inbox {inbox} does not exist (check [police] inbox)")
    if not inbox.is_dir():
        raise PoliceFileError(f"police inbox {inbox} is not a directory (check [police] inbox)")
    try:
        with os.scandir(inbox) as entries:
            return [Path(e.path) for e in entries if is_delivery_name(e.name)]
    except OSError as exc:
        raise PoliceFileError(f"police inbox {inbox} cannot be listed "
                              f"({exc.strerror or type(exc).__name__})") from None


def probe(config: PoliceConfig) -> CheckResult:
    """Whether a run can read the police inbox: it exists, is a directory, can be listed, and
    its files can be read. Never raises for a failure the user can act on."""
    inbox = Path(config.inbox)
    try:
        files = [f for f in inbox_files(inbox) if f.is_file() and not f.is_symlink()]
        if not os.access(inbox, os.R_OK | os.X_OK):
            raise PoliceFileError(f"police inbox {inbox} is not readable by this user")
        unreadable = [p.name for p in files if not os.access(p, os.R_OK)]
    except PoliceFileError as exc:
        return CheckResult(SOURCE, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return CheckResult(SOURCE, False, f"police inbox {inbox}: {failure_cause(exc)}")
    if unreadable:
        names = [shown_name(n) for n in sorted(unreadable)[:5]]
        shown = ", ".join(names) + (" …" if len(unreadable) > 5 else "")
        return CheckResult(SOURCE, False, f"police inbox {inbox}: {len(unreadable)} file(s) not "
                                          f"readable by this user: {shown}")
    return CheckResult(SOURCE, True, f"police inbox {inbox}: a readable directory with "
                                     f"{len(files)} {FILE_GLOB} file(s)")


class LinesChecksum:
    """Order-independent content checksum of landed police records, computed while streaming:
    the sum (mod 2**256) of the sha256 of each record's raw text."""

    def __init__(self) -> None:
        self._total = 0

    def add(self, line: str) -> None:
        self._total += int.from_bytes(hashlib.sha256(line.encode("utf-8")).digest(), "big")

    def hexdigest(self) -> str:
        return f"{self._total % (1 << 256):064x}"


def lines_checksum(lines: Iterable[str]) -> str:
    """Content checksum of landed police rows (see :class:`LinesChecksum`)."""
    acc = LinesChecksum()
    for line in lines:
        acc.add(line)
    return acc.hexdigest()


def file_date(name: str) -> dt.date | None:
    m = _FILE_DATE_RE.match(name)
    if not m:
        return None
    try:
        return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def _open(path: Path) -> BinaryIO:
    """Open a delivered file for reading without following a symbolic link or blocking on a
    FIFO; a :class:`PoliceFileError` unless it is a regular file this user can read."""
    name = shown_name(path.name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if path.is_symlink():
            raise PoliceFileError(f"{name}: a symbolic link; only regular files are read",
                                  "not_a_regular_file") from None
        raise PoliceFileError(f"{name}: cannot be opened ({exc.strerror or type(exc).__name__})",
                              "unreadable_file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PoliceFileError(f"{name}: not a regular file", "not_a_regular_file")
    return os.fdopen(fd, "rb")


_READ = 1 << 20


@dataclass
class _Inspected:
    sha256: str
    size: int
    encoding: str | None  # None: an empty file
    order: list[str] | None  # landing column per header position; None: no rows


def _inspect(path: Path) -> _Inspected:
    """First pass over a file, streaming: checksum, size, encoding; raises for a file fault."""
    name = shown_name(path.name)
    sha = hashlib.sha256()
    size = 0
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_ok = True
    utf8_error_at = 0
    head = b""
    try:
        with _open(path) as fh:
            while chunk := fh.read(_READ):
                if size == 0:
                    head = chunk[:3]
                sha.update(chunk)
                if utf8_ok:
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError as exc:
                        utf8_ok, utf8_error_at = False, size + exc.start
                size += len(chunk)
            if utf8_ok:
                try:
                    utf8.decode(b"", final=True)
                except UnicodeDecodeError as exc:
                    utf8_ok, utf8_error_at = False, size - len(utf8.getstate()[0]) + exc.start
            if size == 0:
                return _Inspected(sha.hexdigest(), 0, None, None)
            if head.startswith(codecs.BOM_UTF8):
                if not utf8_ok:
                    raise PoliceFileError(f"{name}: starts with a UTF-8 byte order mark but is not "
                                          f"valid UTF-8 (byte offset {utf8_error_at})", "bad_encoding")
                encoding = "utf-8-sig"
            elif utf8_ok:
                encoding = "utf-8"
            else:
                encoding = "cp1252"
                fh.seek(0)
                cp = codecs.getincrementaldecoder("cp1252")()
                offset = 0
                while chunk := fh.read(_READ):
                    try:
                        cp.decode(chunk)
                    except UnicodeDecodeError as exc:
                        raise PoliceFileError(
                            f"{name}: neither UTF-8 nor Windows-1252 (undefined byte at offset "
                            f"{offset + exc.start})", "bad_encoding") from None
                    offset += len(chunk)
            fh.seek(0)
            order = _read_header(path.name, fh, encoding)
    except OSError as exc:
        raise PoliceFileError(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})",
                              "unreadable_file") from None
    return _Inspected(sha.hexdigest(), size, encoding, order)


def _decode_line(raw: bytes, encoding: str, first: bool) -> str:
    text = raw.decode("utf-8-sig" if encoding == "utf-8-sig" and first else
                      "utf-8" if encoding == "utf-8-sig" else encoding)
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def _read_header(file_name: str, fh: BinaryIO, encoding: str) -> list[str] | None:
    """The landing column per header position, or None when the file holds only blank lines."""
    first = _decode_line(fh.readline(), encoding, True)
    if first.strip():
        return _header_order(file_name, first)
    for raw in fh:
        if _decode_line(raw, encoding, False).strip():
            raise PoliceFileError(f"{shown_name(file_name)}: line 1 is blank; the header must be "
                                  "the first line", "bad_header")
    return None


_PLAIN_NAME_RE = re.compile(r"[^\d]{0,40}")


def _shown(field: str, position: int) -> str:
    """A header field for an error message; a field that looks like data (digits, long text:
    the header is probably missing and this is a row) is not echoed."""
    if _PLAIN_NAME_RE.fullmatch(field):
        return repr(field)
    return f"at position {position} (value not shown: it looks like data; is the header missing?)"


def _split_fields(line: str) -> list[str]:
    if '"' not in line:
        return line.split(SEPARATOR)
    return next(csv.reader([line], delimiter=SEPARATOR))


def _header_order(file_name: str, header_line: str) -> list[str]:
    """Landing column for each header position; raises naming the file and the column."""
    name = shown_name(file_name)
    fields = [unicodedata.normalize("NFC", f.strip()) for f in _split_fields(header_line)]
    seen: set[str] = set()
    order: list[str] = []
    for position, f in enumerate(fields, start=1):
        if f not in HEADER_TO_COLUMN:
            raise PoliceFileError(
                f"{name}: unknown column {_shown(f, position)} in the header (expected the columns "
                f"{', '.join(h for h, _ in COLUMNS)})", "bad_header")
        if f in seen:
            raise PoliceFileError(f"{name}: column {f!r} appears twice in the header", "bad_header")
        seen.add(f)
        order.append(HEADER_TO_COLUMN[f])
    missing = [h for h, _ in COLUMNS if h not in seen]
    if missing:
        raise PoliceFileError(
            f"{name}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} in the header", "bad_header")
    return order


class _Lines:
    """The data lines of a file for ``csv.reader`` (LF-terminated, CR stripped), remembering the
    lines each record consumed, the current line number, and the checksum of the bytes read."""

    def __init__(self, fh: BinaryIO, encoding: str, name: str) -> None:
        self.fh = fh
        self.encoding = encoding
        self.name = name
        self.sha = hashlib.sha256()
        self.number = 0
        self.consumed: list[str] = []
        self.last_had_newline = True

    def header(self) -> None:
        raw = self.fh.readline()
        self.sha.update(raw)
        self.number = 1

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.fh.readline()
        if not raw:
            raise StopIteration
        self.sha.update(raw)
        self.number += 1
        self.last_had_newline = raw.endswith(b"\n")
        try:
            text = _decode_line(raw, self.encoding, False)
        except UnicodeDecodeError:
            raise PoliceFileError(f"{shown_name(self.name)}: changed while it was read "
                                  "(no longer decodes); the next run reads it again") from None
        self.consumed.append(text)
        return text + "\n"


@dataclass
class _Accepted:
    path: Path
    info: dict[str, Any]  # the manifest's file entry; rows and blank_lines filled while streaming
    inspected: _Inspected


def _stream(files: list[_Accepted], checksum: LinesChecksum,
            checksums: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """Landing rows of the accepted files, in chunks; fills each file's row counts and, at the
    end, ``checksums[ENTITY]``."""
    names = LANDING_SCHEMA.names
    columns: dict[str, list[Any]] = {n: [] for n in names}
    pending = 0
    data_columns = [c for _, c in COLUMNS]
    for f in files:
        rows = blank = 0
        if f.inspected.order is not None:
            order = f.inspected.order
            name = f.path.name
            with _open(f.path) as fh:
                lines = _Lines(fh, f.inspected.encoding or "utf-8", name)
                lines.header()
                reader = csv.reader(lines, delimiter=SEPARATOR)
                while True:
                    lines.consumed = []
                    try:
                        fields = next(reader)
                        error = None
                    except StopIteration:
                        break
                    except csv.Error:
                        fields, error = [], "unparseable_row"
                    if not lines.consumed:
                        break
                    first_line = lines.number - len(lines.consumed) + 1
                    raw = "\n".join(lines.consumed)
                    if error is None and len(lines.consumed) == 1 and not raw.strip():
                        blank += 1
                        continue
                    if error is None and len(fields) != FIELD_COUNT:
                        truncated = not lines.last_had_newline and len(fields) < FIELD_COUNT
                        error = "truncated_row" if truncated else "wrong_field_count"
                    columns["file_name"].append(name)
                    columns["line_number"].append(first_line)
                    values = dict(zip(order, fields, strict=True)) if error is None else {}
                    for c in data_columns:
                        columns[c].append(values.get(c))
                    columns["raw_line"].append(raw)
                    columns["parse_error"].append(error)
                    checksum.add(raw)
                    rows += 1
                    pending += 1
                    if pending >= _CHUNK_ROWS:
                        yield pa.RecordBatch.from_pydict(columns, schema=LANDING_SCHEMA)
                        columns = {n: [] for n in names}
                        pending = 0
                # the rest of a file ending inside a quoted field was consumed by the reader
            if lines.sha.hexdigest() != f.inspected.sha256:
                raise PoliceFileError(f"{shown_name(name)}: changed while it was read; the next "
                                      "run reads it again")
        f.info["rows"] = rows
        f.info["blank_lines"] = blank
    if pending:
        yield pa.RecordBatch.from_pydict(columns, schema=LANDING_SCHEMA)
    checksums[ENTITY] = checksum.hexdigest()


def _sort_key(path: Path) -> tuple[dt.date, str]:
    return (file_date(path.name) or dt.date.max, path.name)


def _unique(directory: Path, name: str) -> Path:
    candidate = directory / name
    n = 1
    while candidate.exists() or candidate.is_symlink() or \
            (directory / (candidate.name + REASON_SUFFIX)).exists():
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = directory / (f"{stem}.{n}.{ext}" if dot else f"{name}.{n}")
    return candidate


def set_aside(inbox: Path, path: Path, error: PoliceFileError) -> str:
    """Move a refused file (or link: the link itself, never its target) into
    ``<inbox>/quarantine/`` with a reason file beside it; the cause for the run's report."""
    name = shown_name(path.name)
    directory = inbox / QUARANTINE_DIR
    try:
        directory.mkdir(exist_ok=True)
        target = _unique(directory, path.name)
        os.rename(path, target)
    except OSError as exc:
        return (f"{error} [{error.code}]; could not be moved aside "
                f"({exc.strerror or type(exc).__name__}), so it stays in the inbox and is refused "
                "again by the next run")
    reason = target.with_name(target.name + REASON_SUFFIX)
    reason.write_text(
        f"file: {name}\n"
        f"moved here as: {shown_name(target.name)}\n"
        f"refused at: {dt.datetime.now(LOCAL_TZ).isoformat(timespec='seconds')}\n"
        f"reason: {error.code}: {BATCH_FAULTS.get(error.code, '')}\n"
        f"detail: {error}\n"
        "release: fix the file, then move it back into the inbox (named polis_YYYYMMDD.csv); "
        "the next run reads it. Delete this reason file.\n",
        encoding="utf-8")
    return (f"{error} [{error.code}]; moved to {shown_name(str(Path(QUARANTINE_DIR) / target.name))} "
            "under the inbox")


class PoliceExtractor:
    """File-drop extractor for ``polis_*.csv`` (one entity, ``events``)."""

    source = SOURCE

    def __init__(self, config: PoliceConfig) -> None:
        self.config = config

    def candidate_files(self) -> list[Path]:
        """Entries named like a delivery in the inbox, oldest file date (from the name) first."""
        return sorted(inbox_files(Path(self.config.inbox)), key=_sort_key)

    def _refusal(self, path: Path) -> PoliceFileError | None:
        if not path.name.isprintable():
            return PoliceFileError(f"{shown_name(path.name)}: the file name has control or other "
                                   "non-printable characters", "bad_file_name")
        if path.is_symlink() or not path.is_file():
            what = "a symbolic link" if path.is_symlink() else "not a regular file"
            return PoliceFileError(f"{shown_name(path.name)}: {what}; only regular files in the "
                                   "inbox are read", "not_a_regular_file")
        return None

    def pull(self, state: SourceState) -> Pull:
        inbox = Path(self.config.inbox)
        accepted: list[_Accepted] = []
        refused: dict[str, str] = {}
        # date -> names of deliveries for it: loaded before, then accepted in this pull
        by_date: dict[dt.date, list[str]] = {}
        for seen_name, _ in sorted(state.seen_files):
            d = file_date(seen_name)
            if d is not None and seen_name not in by_date.setdefault(d, []):
                by_date[d].append(seen_name)
        for path in self.candidate_files():
            fdate = file_date(path.name)
            if state.until is not None and (fdate or dt.date.max) > state.until:
                continue  # a bounded (backfill) pull: deliveries up to that day only
            error = self._refusal(path)
            inspected = None
            if error is None:
                try:
                    inspected = _inspect(path)
                except PoliceFileError as exc:
                    error = exc
            if error is not None or inspected is None:
                assert error is not None
                refused[path.name] = set_aside(inbox, path, error)  # run_extract logs it
                continue
            if (path.name, inspected.sha256) in state.seen_files:
                continue  # this delivery (same name, same bytes) was loaded before
            info: dict[str, Any] = {
                "name": path.name, "sha256": inspected.sha256, "size": inspected.size,
                "encoding": inspected.encoding,
                "file_date": fdate.isoformat() if fdate else None, "rows": 0, "blank_lines": 0,
            }
            if fdate is not None:
                earlier = by_date.setdefault(fdate, [])
                if earlier:
                    info["earlier_deliveries_for_date"] = list(earlier)
                    log.warning("police: %s is another delivery for %s (earlier: %s); its rows load "
                                "as corrections: per Diarienummer, person and Roll the newest "
                                "Senast ändrad wins", shown_name(path.name), fdate.isoformat(),
                                ", ".join(shown_name(n) for n in earlier))
                if path.name not in earlier:
                    earlier.append(path.name)
            accepted.append(_Accepted(path, info, inspected))
        checksums: dict[str, str] = {}
        table = pa.RecordBatchReader.from_batches(
            LANDING_SCHEMA, _stream(accepted, LinesChecksum(), checksums))
        return Pull(
            tables={ENTITY: table},
            watermarks={},
            content_checksums=checksums,
            extra={"files": [f.info for f in accepted]},
            refused=refused,
        )

    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        files = manifest.extra.get("files")
        if files is None:
            raise PoliceFileError(f"batch {manifest.batch_id}: manifest lists no files")
        counts = _load_events(conn, manifest)
        for f in files:
            already = conn.execute(
                "select batch_id from load_meta.source_files "
                "where source = ? and file_name = ? and sha256 = ?",
                [SOURCE, f["name"], f["sha256"]],
            ).fetchone()
            if already:
                raise PoliceFileError(
                    f"batch {manifest.batch_id}: file {shown_name(f['name'])} with the same content "
                    f"was already loaded by batch {already[0]}"
                )
            conn.execute(
                "insert into load_meta.source_files (source, file_name, sha256, size_bytes, batch_id) "
                "values (?, ?, ?, ?, ?)",
                [SOURCE, f["name"], f["sha256"], f["size"], manifest.batch_id],
            )
        return {ENTITY: counts}


def extraction_date(manifest: BatchManifest) -> dt.date:
    """The local (Europe/Stockholm) date of the extraction: the latest plausible date."""
    try:
        at = dt.datetime.fromisoformat(manifest.extracted_at)
    except ValueError:
        at = dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(LOCAL_TZ).date()


def _load_events(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> EntityCounts:
    typed = ",\n                   ".join(f"{expr} as t_{c}" for c, expr in _TYPED.items())
    reason = "\n".join(f"when {r.condition} then '{r.reason}'" for r in ROW_RULES)
    detail = "\n".join(f"when {r.condition} then {r.detail}" for r in ROW_RULES)
    path = str(manifest.entity_path(ENTITY)).replace("'", "''")
    latest = extraction_date(manifest).isoformat()
    conn.execute(
        f"""
        create or replace temp view _police_landed as
        with typed as (
            select *, file_row_number + 1 as _position, date '{latest}' as _latest,
                   {typed}
            from read_parquet('{path}', file_row_number = true)
        )
        select *,
               case {reason} end as _reason,
               file_name || ', line ' || line_number || ': ' || case {detail} end as _detail
        from typed
        """
    )
    raw_columns = [c for _, c in COLUMNS]
    try:
        received = conn.execute("select count(*) from _police_landed").fetchone()[0]
        loaded = conn.execute(
            f"""
            insert into raw_police.events (batch_id, file_name, line_number, {", ".join(raw_columns)})
            select ?, file_name, line_number, {", ".join(f"t_{c}" for c in raw_columns)}
            from _police_landed where _reason is null
            order by _position
            """,
            [manifest.batch_id],
        ).fetchone()[0]
        quarantined = conn.execute(
            """
            insert into load_meta.quarantine
                (batch_id, source, entity, row_number, reason, detail, raw_row)
            select ?, ?, ?, line_number, _reason, _detail, raw_line
            from _police_landed where _reason is not null order by _position
            """,
            [manifest.batch_id, SOURCE, ENTITY],
        ).fetchone()[0]
    finally:
        conn.execute("drop view if exists _police_landed")
    return EntityCounts(received=received, loaded=loaded, quarantined=quarantined)
