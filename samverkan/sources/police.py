"""Extractor for the police file drop: ``polis_YYYYMMDD.csv`` files in an inbox directory.

Contract: ``dbt_project/SOURCE_CONTRACTS.md``, "Police". A pull takes every ``polis_*.csv``
whose (name, sha256) has not been loaded before, oldest file date first, decodes it (UTF-8
with BOM, else strict UTF-8, else Windows-1252), checks the header against the contract and
lands one row per data line, untyped:

``file_name``, ``line_number`` (1-based, header = 1), one text column per contract column
(``diarienummer`` … ``senast_andrad``, see :data:`COLUMNS`), ``raw_line`` and ``parse_error``
(``'truncated_row'`` for a short last line without a line end, ``'wrong_field_count'`` for any
other line with the wrong number of fields; the column values are null on such a line).

Nothing is dropped at landing (blank lines carry no data and are only counted). ``load`` types the
rows into ``raw_police.events`` and quarantines what cannot be typed; corrections and
cancellations are resolved later in dbt staging, so every row is loaded. The files are recorded
in ``load_meta.source_files`` in the same transaction, which is what stops a file from being read
twice. An empty file (0 bytes or header only) lands no rows but is still recorded as seen.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import fnmatch
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from samverkan.config import PoliceConfig
from samverkan.config.check import CheckResult
from samverkan.extract import Pull, SourceState
from samverkan.landing import BatchManifest
from samverkan.sources.failures import SourceError, failure_cause
from samverkan.warehouse import EntityCounts, quarantine

SOURCE = "police"
ENTITY = "events"
FILE_GLOB = "polis_*.csv"
SEPARATOR = ";"

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

_FILE_DATE_RE = re.compile(r"polis_(\d{8})")


class PoliceFileError(SourceError):
    """A delivered file (or the inbox) cannot be read as the contract says; the message names
    the file or directory and the problem (a column name, an encoding), never a row's content."""


def inbox_files(inbox: Path) -> list[Path]:
    """The ``polis_*.csv`` files in the inbox (unsorted); a :class:`PoliceFileError` naming the
    inbox when it does not exist, is not a directory or cannot be listed."""
    if not inbox.exists():
        raise PoliceFileError(f"police inbox {inbox} does not exist (check [police] inbox)")
    if not inbox.is_dir():
        raise PoliceFileError(f"police inbox {inbox} is not a directory (check [police] inbox)")
    try:
        with os.scandir(inbox) as entries:
            return [Path(e.path) for e in entries
                    if fnmatch.fnmatchcase(e.name, FILE_GLOB) and e.is_file()]
    except OSError as exc:
        raise PoliceFileError(f"police inbox {inbox} cannot be listed "
                              f"({exc.strerror or type(exc).__name__})") from None


def probe(config: PoliceConfig) -> CheckResult:
    """Whether a run can read the police inbox: it exists, is a directory, can be listed, and
    its files can be read. Never raises for a failure the user can act on."""
    inbox = Path(config.inbox)
    try:
        files = inbox_files(inbox)
        if not os.access(inbox, os.R_OK | os.X_OK):
            raise PoliceFileError(f"police inbox {inbox} is not readable by this user")
        unreadable = [p.name for p in files if not os.access(p, os.R_OK)]
    except PoliceFileError as exc:
        return CheckResult(SOURCE, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return CheckResult(SOURCE, False, f"police inbox {inbox}: {failure_cause(exc)}")
    if unreadable:
        shown = ", ".join(sorted(unreadable)[:5]) + (" …" if len(unreadable) > 5 else "")
        return CheckResult(SOURCE, False, f"police inbox {inbox}: {len(unreadable)} file(s) not "
                                          f"readable by this user: {shown}")
    return CheckResult(SOURCE, True, f"police inbox {inbox}: a readable directory with "
                                     f"{len(files)} {FILE_GLOB} file(s)")


@dataclass(frozen=True)
class ParsedFile:
    name: str
    sha256: str
    size: int
    encoding: str | None
    file_date: str | None
    rows: list[dict[str, Any]]
    blank_lines: int

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "encoding": self.encoding,
            "file_date": self.file_date,
            "rows": len(self.rows),
            "blank_lines": self.blank_lines,
        }


def lines_checksum(lines: Iterable[str]) -> str:
    """Content checksum of landed police rows: sha256 over the sorted raw line texts."""
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def file_date(name: str) -> dt.date | None:
    m = _FILE_DATE_RE.match(name)
    if not m:
        return None
    try:
        return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def decode(name: str, data: bytes) -> tuple[str, str]:
    """Text and encoding of a file: BOM → UTF-8-sig; else strict UTF-8; else Windows-1252."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise PoliceFileError(
                f"{name}: starts with a UTF-8 byte order mark but is not valid UTF-8 "
                f"(byte offset {exc.start})"
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise PoliceFileError(
            f"{name}: neither UTF-8 nor Windows-1252 (undefined byte at offset {exc.start})"
        ) from None


def _split_fields(line: str) -> list[str]:
    if '"' not in line:
        return line.split(SEPARATOR)
    return next(csv.reader([line], delimiter=SEPARATOR))


_PLAIN_NAME_RE = re.compile(r"[^\d]{0,40}")


def _shown(field: str, position: int) -> str:
    """A header field for an error message; a field that looks like data (digits, long text:
    the header is probably missing and this is a row) is not echoed."""
    if _PLAIN_NAME_RE.fullmatch(field):
        return repr(field)
    return f"at position {position} (value not shown: it looks like data; is the header missing?)"


def _header_order(name: str, header_line: str) -> list[str]:
    """Landing column for each header position; raises naming the file and the column."""
    fields = [unicodedata.normalize("NFC", f.strip()) for f in _split_fields(header_line)]
    seen: set[str] = set()
    order: list[str] = []
    for position, f in enumerate(fields, start=1):
        if f not in HEADER_TO_COLUMN:
            raise PoliceFileError(
                f"{name}: unknown column {_shown(f, position)} in the header (expected the columns "
                f"{', '.join(h for h, _ in COLUMNS)})"
            )
        if f in seen:
            raise PoliceFileError(f"{name}: column {f!r} appears twice in the header")
        seen.add(f)
        order.append(HEADER_TO_COLUMN[f])
    missing = [h for h, _ in COLUMNS if h not in seen]
    if missing:
        raise PoliceFileError(
            f"{name}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} in the header"
        )
    return order


def parse_file(path: Path, data: bytes | None = None) -> ParsedFile:
    """Read one delivered file into landing rows (no typing)."""
    data = path.read_bytes() if data is None else data
    name = path.name
    sha = hashlib.sha256(data).hexdigest()
    fdate = file_date(name)
    base = {"name": name, "sha256": sha, "size": len(data),
            "file_date": fdate.isoformat() if fdate else None}
    if not data:
        return ParsedFile(encoding=None, rows=[], blank_lines=0, **base)
    text, encoding = decode(name, data)
    ends_with_newline = text.endswith("\n")
    lines = text.split("\n")
    if ends_with_newline:
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not any(ln.strip() for ln in lines):
        return ParsedFile(encoding=encoding, rows=[], blank_lines=len(lines), **base)
    if not lines[0].strip():
        raise PoliceFileError(f"{name}: line 1 is blank; the header must be the first line")
    order = _header_order(name, lines[0])
    rows: list[dict[str, Any]] = []
    blank = 0
    last = len(lines)
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            blank += 1
            continue
        fields = _split_fields(line)
        row: dict[str, Any] = {"file_name": name, "line_number": line_number, "raw_line": line,
                               "parse_error": None}
        if len(fields) == FIELD_COUNT:
            row.update(zip(order, fields, strict=True))
        else:
            truncated = line_number == last and not ends_with_newline and len(fields) < FIELD_COUNT
            row["parse_error"] = "truncated_row" if truncated else "wrong_field_count"
        rows.append(row)
    return ParsedFile(encoding=encoding, rows=rows, blank_lines=blank, **base)


def _sort_key(path: Path) -> tuple[dt.date, str]:
    return (file_date(path.name) or dt.date.max, path.name)


class PoliceExtractor:
    """File-drop extractor for ``polis_*.csv`` (one entity, ``events``)."""

    source = SOURCE

    def __init__(self, config: PoliceConfig) -> None:
        self.config = config

    def candidate_files(self) -> list[Path]:
        """``polis_*.csv`` files in the inbox, oldest file date (from the name) first."""
        return sorted(inbox_files(Path(self.config.inbox)), key=_sort_key)

    def pull(self, state: SourceState) -> Pull:
        parsed: list[ParsedFile] = []
        for path in self.candidate_files():
            if state.until is not None and (file_date(path.name) or dt.date.max) > state.until:
                continue  # a bounded (backfill) pull: deliveries up to that day only
            data = path.read_bytes()
            if (path.name, hashlib.sha256(data).hexdigest()) in state.seen_files:
                continue  # this delivery (same name, same bytes) was loaded before
            parsed.append(parse_file(path, data))
        rows = [r for f in parsed for r in f.rows]
        columns = {field.name: [r.get(field.name) for r in rows] for field in LANDING_SCHEMA}
        table = pa.Table.from_pydict(columns, schema=LANDING_SCHEMA)
        return Pull(
            tables={ENTITY: table},
            watermarks={},
            content_checksums={ENTITY: lines_checksum(r["raw_line"] for r in rows)},
            extra={"files": [f.info() for f in parsed]},
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
                    f"batch {manifest.batch_id}: file {f['name']} with the same content was already "
                    f"loaded by batch {already[0]}"
                )
            conn.execute(
                "insert into load_meta.source_files (source, file_name, sha256, size_bytes, batch_id) "
                "values (?, ?, ?, ?, ?)",
                [SOURCE, f["name"], f["sha256"], f["size"], manifest.batch_id],
            )
        return {ENTITY: counts}


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
_KEY_COLUMNS = ("diarienummer", "roll")
_DATE_COLUMNS = ("brottsdatum", "anmalningsdatum", "senast_andrad")
_INTEGER_COLUMNS = ("alder",)


def _failed(cols: tuple[str, ...]) -> list[tuple[str, str]]:
    """(condition, header name) per column whose non-blank text did not type."""
    return [(f"({_blank_to_null(c)} is not null and t_{c} is null)", COLUMN_TO_HEADER[c]) for c in cols]


def _load_events(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> EntityCounts:
    typed = ",\n                   ".join(f"{expr} as t_{c}" for c, expr in _TYPED.items())
    missing = [(f"{_blank_to_null(c)} is null", COLUMN_TO_HEADER[c]) for c in _KEY_COLUMNS]
    bad_dates = _failed(_DATE_COLUMNS)
    bad_ints = _failed(_INTEGER_COLUMNS)

    def any_of(checks: list[tuple[str, str]]) -> str:
        return " or ".join(cond for cond, _ in checks)

    def names_of(checks: list[tuple[str, str]]) -> str:
        return "concat_ws(', ', " + ", ".join(f"case when {cond} then '{name}' end"
                                              for cond, name in checks) + ")"

    conn.execute(
        f"""
        create or replace temp table _police_landed as
        with typed as (
            select *, file_row_number + 1 as _position,
                   {typed}
            from read_parquet(?, file_row_number = true)
        )
        select *,
               case when parse_error is not null then parse_error
                    when {any_of(missing)} then 'missing_key'
                    when {any_of(bad_dates)} then 'bad_date'
                    when {any_of(bad_ints)} then 'bad_integer'
               end as _reason,
               file_name || ', line ' || line_number || ': ' || case
                    when parse_error is not null then 'expected {FIELD_COUNT} fields separated by ;'
                    when {any_of(missing)} then 'missing ' || {names_of(missing)}
                    when {any_of(bad_dates)} then {names_of(bad_dates)}
                    when {any_of(bad_ints)} then {names_of(bad_ints)}
               end as _detail
        from typed
        """,
        [str(manifest.entity_path(ENTITY))],
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
        rejected = conn.execute(
            """
            select line_number as row_number, _reason as reason, _detail as detail, raw_line as raw_row
            from _police_landed where _reason is not null order by _position
            """
        ).to_arrow_table()
        quarantined = quarantine(conn, manifest, ENTITY, rejected)
    finally:
        conn.execute("drop table if exists _police_landed")
    return EntityCounts(received=received, loaded=loaded, quarantined=quarantined)
