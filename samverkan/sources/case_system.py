"""Extractor for the social-services case system: reporting views read through SQLAlchemy.

Contract: ``dbt_project/SOURCE_CONTRACTS.md``, "Case system". The same code reads the views on
SQLite, PostgreSQL and MariaDB (tested) and on other SQLAlchemy backends (untested). Each view
is pulled incrementally on its modification column (``andrad_tid``; ``gallring.gallrad_tid``)
with a streaming cursor and converted chunk by chunk into Arrow record batches, each written as
a row group of the view's landing Parquet file as it arrives (``run_extract``'s spool
directory, moved into the batch when it lands), so memory is bounded by the chunk, whatever
the view's size.

Landing (restricted zone) keeps every contract column, names included, typed to the contract
(integer → int64, boolean → bool, varchar → string, date → date32, timestamp → timestamp[us],
naive local time). Backends differ in what the driver returns (SQLite gives dates as text,
MariaDB booleans as 0/1); those representations are normalised, the values themselves are kept
as received. A value that cannot be typed becomes null in its typed column, and the row carries
two extra landing columns so nothing is lost:

- ``_type_errors``: ``'<reason>:<column>'`` entries joined by ``,`` (``bad_date`` for dates and
  timestamps, ``bad_type`` otherwise), null for a clean row;
- ``_raw_row``: the row as received (JSON object of canonical texts, without the name columns),
  only for rows with a type error.

``load`` inserts the clean rows into ``raw_case_system.*`` without ``fornamn``/``efternamn`` and
quarantines, with a reason code, the rows that break a row rule (:data:`ROW_RULES`: type
errors, a missing key or change time, unknown values, implausible dates, a repeated key); only
the faults in :data:`BATCH_FAULTS` block a batch. Pulls reach back ``overlap_minutes`` before
the watermark and also select rows with a null change time; rows the warehouse already holds
(:meth:`CaseSystemExtractor.pull_context`) are skipped before landing and counted.

The content checksum of an entity is :func:`rows_checksum` over the rows exactly as the driver
returned them (their texts computed vectorised per chunk, spooled and sorted by DuckDB within a
fixed memory limit), so it can be recomputed independently from the source database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from samverkan import database
from samverkan.config import CaseSystemConfig
from samverkan.config.check import CheckResult
from samverkan.extract import Pull, SourceState
from samverkan.landing import (
    BatchManifest,
    SpooledTable,
    parquet_writer,
    sorted_texts,
    spool_connection,
)
from samverkan.sources.failures import SourceError, database_failure, failure_cause, scrub_driver_message
from samverkan.warehouse import EntityCounts, quarantine

log = logging.getLogger(__name__)

SOURCE = "case_system"
LOCAL_TZ = ZoneInfo("Europe/Stockholm")
DEFAULT_CHUNK_ROWS = 20_000

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "date": pa.date32(),
    "ts": pa.timestamp("us"),
}


@dataclass(frozen=True)
class ViewSpec:
    """One contract view: its columns (name, kind), key, watermark column and landing-only columns."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    watermark_column: str
    landing_only: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def warehouse_columns(self) -> list[str]:
        return [c for c, _ in self.columns if c not in self.landing_only]


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        "klient",
        (("klient_id", "int"), ("personnummer", "str"), ("fornamn", "str"), ("efternamn", "str"),
         ("skyddad_identitet", "bool"), ("andrad_tid", "ts")),
        key=("klient_id",), watermark_column="andrad_tid", landing_only=("fornamn", "efternamn"),
    ),
    ViewSpec(
        "aktualisering",
        (("aktualisering_id", "int"), ("klient_id", "int"), ("inkom_datum", "date"), ("typ", "str"),
         ("anmalare_kategori", "str"), ("skyddsbedomning_datum", "date"),
         ("forhandsbedomning_datum", "date"), ("beslut", "str"), ("stadsdel", "str"),
         ("andrad_tid", "ts")),
        key=("aktualisering_id",), watermark_column="andrad_tid",
    ),
    ViewSpec(
        "utredning",
        (("utredning_id", "int"), ("klient_id", "int"), ("aktualisering_id", "int"),
         ("startdatum", "date"), ("avslutsdatum", "date"), ("resultat", "str"), ("andrad_tid", "ts")),
        key=("utredning_id",), watermark_column="andrad_tid",
    ),
    ViewSpec(
        "insats",
        (("insats_id", "int"), ("klient_id", "int"), ("insatstyp", "str"), ("startdatum", "date"),
         ("slutdatum", "date"), ("planerat_slutdatum", "date"), ("avslutsorsak", "str"),
         ("andrad_tid", "ts")),
        key=("insats_id",), watermark_column="andrad_tid",
    ),
    ViewSpec(
        "gallring",
        (("tabell", "str"), ("rad_id", "int"), ("gallrad_tid", "ts")),
        key=("tabell", "rad_id"), watermark_column="gallrad_tid",
    ),
)
VIEW_BY_NAME: dict[str, ViewSpec] = {v.name: v for v in VIEWS}

TYPE_ERRORS_COLUMN = "_type_errors"
RAW_ROW_COLUMN = "_raw_row"


# --- what quarantines a row and what blocks a batch (the one table) ---------------------------

EARLIEST_PLAUSIBLE_DATE = dt.date(1990, 1, 1)
# Dates may not lie after the extraction date; the margin absorbs clock skew (as the GX suites).
PLAUSIBLE_DATE_MARGIN = dt.timedelta(days=1)

TYP_VALUES = ("Anmälan", "Ansökan", "Övrigt")
ANMALARE_VALUES = ("Skola", "Förskola", "Polis", "Hälso- och sjukvård", "Socialtjänst", "Anhörig",
                   "Annan", "Anonym")
BESLUT_VALUES = ("Inleda utredning", "Inte inleda utredning", "Överförd")
RESULTAT_VALUES = ("Insats beviljad", "Ingen insats", "Avslutad utan beslut")
INSATSTYP_VALUES = ("SST", "SIG", "KP", "KF", "OV", "PLAC_FH", "PLAC_HVB", "PLAC_SIS")
AVSLUTSORSAK_VALUES = ("Mål uppnått", "Återförening med vårdnadshavare", "Flytt", "Avbruten", "Annan")
GALLRING_TABLES = ("klient", "aktualisering", "utredning", "insats")

DUPLICATE_KEY = "duplicate_key"
MISSING_CHANGE_TIME = "missing_change_time"


@dataclass(frozen=True)
class RowRule:
    """A row-level fault: the row is quarantined with ``reason`` and the rest of the batch loads.

    ``condition`` is DuckDB SQL over one landed row (contract columns typed, ``_type_errors``),
    where ``{earliest}`` and ``{latest}`` are the plausible date bounds (1990-01-01 and the
    extraction date plus a day); ``detail`` is SQL for the quarantine detail (default: the
    description). The first rule that matches gives the reason. ``duplicate_key`` has no
    condition: it compares rows (see :func:`_load_entity`)."""

    reason: str
    condition: str | None
    description: str
    detail: str | None = None


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _typing_rules(spec: ViewSpec) -> tuple[RowRule, ...]:
    wm = spec.watermark_column
    own_error = f"list_contains(string_split(coalesce({TYPE_ERRORS_COLUMN}, ''), ','), 'bad_date:{wm}')"
    first_error = f"split_part(split_part({TYPE_ERRORS_COLUMN}, ',', 1), ':', 1)"
    missing = ", ".join(f"case when {k} is null then '{k}' end" for k in spec.key)
    return (
        RowRule(MISSING_CHANGE_TIME, f"{wm} is null and not {own_error}",
                f"{wm} (the watermark column) is null: the row is quarantined once (its content is "
                "remembered) instead of being missed by every incremental pull",
                f"concat_ws(', ', 'missing {wm}', {TYPE_ERRORS_COLUMN})"),
        RowRule("bad_date", f"{first_error} = 'bad_date'",
                "a date or timestamp cannot be converted to its contract type", TYPE_ERRORS_COLUMN),
        RowRule("bad_type", f"{TYPE_ERRORS_COLUMN} is not null",
                "a value cannot be converted to its contract type", TYPE_ERRORS_COLUMN),
        RowRule("missing_key", " or ".join(f"{k} is null" for k in spec.key),
                f"the key ({', '.join(spec.key)}) is null", f"'missing ' || concat_ws(', ', {missing})"),
    )


def _required(column: str) -> RowRule:
    return RowRule("missing_value", f"{column} is null", f"{column} is null")


def _allowed(column: str, values: Sequence[str]) -> RowRule:
    return RowRule("unknown_value", f"{column} is not null and {column} not in ({_sql_list(values)})",
                   f"{column} is not one of the contract's values")


def _plausible(column: str, *, future_allowed: bool = False) -> RowRule:
    if future_allowed:
        return RowRule("implausible_date", f"{column} < DATE '{{earliest}}'", f"{column} is before 1990")
    return RowRule("implausible_date", f"{column} < DATE '{{earliest}}' or {column} > DATE '{{latest}}'",
                   f"{column} is before 1990 or after the extraction date")


def _ordered(later: str, earlier: str) -> RowRule:
    return RowRule("date_order", f"{later} < {earlier}", f"{later} is before {earlier}")


_CONTENT_RULES: dict[str, tuple[RowRule, ...]] = {
    "klient": (_plausible("andrad_tid"),),
    "aktualisering": (
        _required("klient_id"), _required("inkom_datum"),
        _allowed("typ", TYP_VALUES), _allowed("anmalare_kategori", ANMALARE_VALUES),
        _allowed("beslut", BESLUT_VALUES),
        _plausible("inkom_datum"), _plausible("skyddsbedomning_datum"),
        _plausible("forhandsbedomning_datum"), _plausible("andrad_tid"),
        _ordered("forhandsbedomning_datum", "inkom_datum"),
    ),
    "utredning": (
        _required("klient_id"), _required("startdatum"), _allowed("resultat", RESULTAT_VALUES),
        _plausible("startdatum"), _plausible("avslutsdatum"), _plausible("andrad_tid"),
        _ordered("avslutsdatum", "startdatum"),
    ),
    "insats": (
        _required("klient_id"), _required("insatstyp"), _required("startdatum"),
        _allowed("insatstyp", INSATSTYP_VALUES), _allowed("avslutsorsak", AVSLUTSORSAK_VALUES),
        _plausible("startdatum", future_allowed=True), _plausible("slutdatum"),
        _plausible("planerat_slutdatum", future_allowed=True), _plausible("andrad_tid"),
        _ordered("slutdatum", "startdatum"),
    ),
    "gallring": (_allowed("tabell", GALLRING_TABLES), _plausible("gallrad_tid")),
}

ROW_RULES: dict[str, tuple[RowRule, ...]] = {
    spec.name: (*_typing_rules(spec), *_CONTENT_RULES[spec.name],
                RowRule(DUPLICATE_KEY, None,
                        f"the key ({', '.join(spec.key)}) repeats in one pull: the version with the "
                        f"latest {spec.watermark_column} loads; identical copies load once; copies "
                        "with the same time but different content all quarantine"))
    for spec in VIEWS
}

# Faults that block the whole batch (the extract fails, the watermark does not move, nothing of
# the source is loaded that night): code -> (what happens, where it is detected).
BATCH_FAULTS: dict[str, tuple[str, str]] = {
    "connection": ("the database cannot be reached or refuses the login", "pull (connect)"),
    "view_missing": ("a contract view does not exist or is not visible to the user", "pull, probe"),
    "column_missing": ("a contract view lacks a contract column", "pull, probe"),
    "view_unreadable": ("the select of a view fails (a privilege, or a cast in the view that "
                        "fails at read time: no row can be isolated)", "pull"),
    "accounting": ("rows received differ from rows loaded plus rows quarantined", "load"),
    "suite_failed": ("a Great Expectations suite fails on the rows left after the row rules "
                     "(the key set and unique: an invariant of missing_key and duplicate_key)",
                     "validation"),
    "view_emptied": ("a view that had rows now has none (a wiped or mis-permissioned "
                     "reporting database)", "the anomaly gate, from view_row_counts()"),
}


class CaseSystemError(SourceError):
    """The case system could not be read; the message names the database (URL without the
    password) or file, the view and the cause, never credentials or data values."""


# --- canonical text and checksums ------------------------------------------------------------

def canonical_text(value: Any) -> str | None:
    """A stable text for a value as a DB-API driver returns it (None stays None).

    Booleans and 0/1 integers give the same text, so a MariaDB tinyint and a PostgreSQL
    boolean agree; dates and timestamps are ISO 8601 (space separator)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "\\x" + raw.hex()
    return str(value)


def _field_text(text: str | None) -> str:
    return "-" if text is None else f"{len(text)}:{text}"


def row_text(row: Sequence[Any]) -> str:
    """Canonical text of one row: each value as ``<length>:<canonical text>``, null as ``-``,
    concatenated. Self-delimiting for a fixed column count, so no escaping is needed."""
    return "".join(_field_text(canonical_text(v)) for v in row)


def rows_checksum(rows: Iterable[Sequence[Any]]) -> str:
    """Order-independent content checksum of rows as returned by a DB-API driver.

    sha256 over the sorted canonical row texts (:func:`row_text`) joined by newlines. Select the
    contract columns of a view in contract order (``ViewSpec.column_names``) and pass the rows
    here to get the checksum the extractor records for that entity."""
    return hashlib.sha256("\n".join(sorted(row_text(r) for r in rows)).encode("utf-8")).hexdigest()


_NONE = type(None)


def canonical_texts(values: list[Any]) -> pa.Array:
    """:func:`canonical_text` of every value of a column chunk, vectorised for the common
    homogeneous driver types (str, int, bool, date, naive datetime)."""
    types = set(map(type, values))
    types.discard(_NONE)
    try:
        if not types:
            return pa.nulls(len(values), pa.string())
        if types == {str}:
            return pa.array(values, pa.string())
        if types == {int}:
            return pa.array(values, pa.int64()).cast(pa.string())
        if types == {bool}:
            return pc.if_else(pa.array(values, pa.bool_()), "1", "0")
        if types == {dt.date}:
            return pa.array(values, pa.date32()).cast(pa.string())
        if types == {dt.datetime} and all(v.tzinfo is None for v in values if v is not None):
            ts = pa.array(values, pa.timestamp("us"))
            seconds = pc.floor_temporal(ts, unit="second")
            base = pc.strftime(seconds.cast(pa.timestamp("s")), "%Y-%m-%d %H:%M:%S")
            micros = pc.subtract(ts.cast(pa.int64()), seconds.cast(pa.int64()))
            suffix = pc.if_else(pc.equal(micros, 0), "",
                                pc.binary_join_element_wise(
                                    ".", pc.utf8_lpad(micros.cast(pa.string()), 6, "0"), ""))
            return pc.binary_join_element_wise(base, suffix, "")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass
    return pa.array([canonical_text(v) for v in values], pa.string())


def row_texts(columns: Sequence[list[Any]], n_rows: int) -> pa.Array:
    """:func:`row_text` of every row of a chunk given column-wise, vectorised."""
    if n_rows == 0:
        return pa.array([], pa.string())
    fields = []
    for values in columns:
        text = canonical_texts(values)
        length = pc.utf8_length(text).cast(pa.string())
        fields.append(pc.fill_null(pc.binary_join_element_wise(length, text, ":"), "-"))
    return pc.binary_join_element_wise(*fields, "")


def _hash_sorted_texts(parts: Iterable[pa.Array]) -> str:
    """sha256 over texts that arrive sorted, in parts, joined by newlines."""
    h = hashlib.sha256()
    separator = pa.scalar("\n", pa.large_string())
    first = True
    for part in parts:
        if not len(part):
            continue
        part = part.cast(pa.large_string())
        joined = pc.binary_join(
            pa.LargeListArray.from_arrays(pa.array([0, len(part)], pa.int64()), part), separator)[0]
        if not first:
            h.update(b"\n")
        h.update(joined.as_buffer())
        first = False
    return h.hexdigest()


def checksum_of_row_texts(chunks: Sequence[pa.Array], slice_rows: int = 200_000) -> str:
    """sha256 over the sorted row texts joined by newlines (same as :func:`rows_checksum`), in
    memory.

    Arrow sorts strings by their UTF-8 bytes, which is code point order, as Python sorts."""
    if not chunks:
        return _hash_sorted_texts([])
    texts = pa.concat_arrays([c.cast(pa.large_string()) for c in chunks])
    texts = texts.take(pc.sort_indices(texts))
    return _hash_sorted_texts(texts.slice(start, slice_rows) for start in range(0, len(texts), slice_rows))


def checksum_of_spooled_row_texts(path: Path, temp_directory: Path, slice_rows: int = 100_000) -> str:
    """:func:`checksum_of_row_texts` of the row texts in a Parquet file (column ``t``), sorted
    by :func:`samverkan.landing.sorted_texts` (an external merge sort whose runs go to
    ``temp_directory``), so memory does not grow with the view. The order is the texts' UTF-8
    bytes, as in :func:`checksum_of_row_texts`."""
    with spool_connection(temp_directory) as conn:
        return _hash_sorted_texts(sorted_texts(conn, path, "t", slice_rows))


# --- typing values to the contract -----------------------------------------------------------

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MIDNIGHT_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T]00:00(:00(\.0+)?)?")
_INT_RE = re.compile(r"[+-]?\d+")
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


class _Untypeable(Exception):
    pass


def _local_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(LOCAL_TZ).replace(tzinfo=None)


def _type_one(value: Any, kind: str) -> Any:
    """Slow path: type one value or raise _Untypeable."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool):
            raise _Untypeable
        if isinstance(value, int):
            return value
        if isinstance(value, decimal.Decimal | float) and value == int(value):
            return int(value)
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value.strip())
        raise _Untypeable
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | decimal.Decimal) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Untypeable
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _Untypeable from None
        return canonical_text(value)
    if kind == "date":
        if isinstance(value, dt.datetime):
            if value.tzinfo is None and value.time() == dt.time(0):
                return value.date()
            raise _Untypeable
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            text = value.strip()
            m = _MIDNIGHT_RE.fullmatch(text)
            if m:
                text = m.group(1)
            if _DATE_RE.fullmatch(text):
                try:
                    return dt.date.fromisoformat(text)
                except ValueError:
                    raise _Untypeable from None
        raise _Untypeable
    if kind == "ts":
        if isinstance(value, dt.datetime):
            return _local_naive(value)
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time(0))
        if isinstance(value, str):
            text = value.strip()
            if _DATE_RE.match(text):
                try:
                    return _local_naive(dt.datetime.fromisoformat(text))
                except ValueError:
                    raise _Untypeable from None
        raise _Untypeable
    raise ValueError(f"unknown column kind {kind!r}")


def _fast_path(values: list[Any], kind: str) -> pa.Array | None:
    """Vectorised typing for the common case; None when the slow path is needed."""
    target = ARROW_TYPES[kind]
    try:
        if kind in ("int", "str"):
            return pa.array(values, type=target)
        inferred = pa.array(values)
        t = inferred.type
        if pa.types.is_null(t):
            return pa.nulls(len(values), target)
        if kind == "bool":
            if pa.types.is_boolean(t):
                return inferred
            if pa.types.is_integer(t):
                valid = inferred.drop_null()
                if pc.all(pc.is_in(valid, value_set=pa.array([0, 1], t))).as_py() is not False:
                    return pc.not_equal(inferred, pa.scalar(0, t))
            return None
        if kind == "date":
            if pa.types.is_date(t) or pa.types.is_string(t):
                return inferred.cast(target)
            if pa.types.is_timestamp(t) and t.tz is None:
                as_date = inferred.cast(pa.date32())
                if pc.all(pc.equal(as_date.cast(t), inferred)).as_py() is not False:
                    return as_date
            return None
        if kind == "ts":
            if (pa.types.is_timestamp(t) and t.tz is None) or pa.types.is_date(t) or pa.types.is_string(t):
                return inferred.cast(target)
            return None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    return None


def type_column(values: list[Any], kind: str) -> tuple[pa.Array, list[int]]:
    """Type a column chunk to its contract Arrow type; returns the array and the indexes of the
    values that could not be typed (null in the array)."""
    fast = _fast_path(values, kind)
    if fast is not None:
        return fast, []
    typed: list[Any] = []
    bad: list[int] = []
    for i, value in enumerate(values):
        try:
            typed.append(_type_one(value, kind))
        except _Untypeable:
            typed.append(None)
            bad.append(i)
    return pa.array(typed, type=ARROW_TYPES[kind]), bad


def landing_schema(spec: ViewSpec) -> pa.Schema:
    return pa.schema(
        [(name, ARROW_TYPES[kind]) for name, kind in spec.columns]
        + [(TYPE_ERRORS_COLUMN, pa.string()), (RAW_ROW_COLUMN, pa.string())]
    )


def rows_to_batch(spec: ViewSpec, rows: Sequence[Sequence[Any]]) -> tuple[pa.RecordBatch, pa.Array]:
    """Convert a chunk of driver rows (contract column order) into a typed landing batch, and
    return it with the canonical row texts of the rows as received (for the checksum)."""
    n = len(rows)
    columns = [list(c) for c in zip(*rows, strict=True)] if n else [[] for _ in spec.columns]
    texts = row_texts(columns, n)
    arrays: list[pa.Array] = []
    errors: dict[int, list[str]] = {}
    for (name, kind), values in zip(spec.columns, columns, strict=True):
        array, bad = type_column(values, kind)
        arrays.append(array)
        reason = "bad_date" if kind in ("date", "ts") else "bad_type"
        for i in bad:
            errors.setdefault(i, []).append(f"{reason}:{name}")
    type_errors: list[str | None] = [None] * n
    raw_rows: list[str | None] = [None] * n
    for i, errs in errors.items():
        type_errors[i] = ",".join(errs)
        raw_rows[i] = json.dumps(
            {name: canonical_text(v) for (name, _), v in zip(spec.columns, rows[i], strict=True)
             if name not in spec.landing_only},
            ensure_ascii=False,
        )
    arrays.append(pa.array(type_errors, pa.string()))
    arrays.append(pa.array(raw_rows, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=landing_schema(spec)), texts


# --- backend differences (the one place) -----------------------------------------------------

def _watermark_bind(dialect: str, watermark: str) -> sa.BindParameter[Any]:
    """The lower bound of an incremental pull, bound the way the backend compares it.

    SQLite has no timestamp type: the column holds text and compares as text, so the watermark
    is the highest value exactly as the source stored it and is bound as text. Servers compare
    real timestamps and get a datetime."""
    if dialect == "sqlite":
        return sa.bindparam("watermark", watermark, type_=sa.String())
    return sa.bindparam("watermark", dt.datetime.fromisoformat(watermark), type_=sa.DateTime())


def _day_bound(dialect: str, day: dt.date) -> sa.BindParameter[Any]:
    """Midnight (local, as the views store their timestamps) starting ``day``, bound like the
    watermark: text on SQLite (``'YYYY-MM-DD'`` sorts before every time of that day), a
    datetime on servers."""
    if dialect == "sqlite":
        return sa.bindparam("until", day.isoformat(), type_=sa.String())
    return sa.bindparam("until", dt.datetime.combine(day, dt.time()), type_=sa.DateTime())


# --- connecting, and why it failed (the extract and the probe share this) --------------------

EXTRACT_CONNECT_TIMEOUT_SECONDS = 30
PROBE_TIMEOUT_SECONDS = 5


def safe_url(url: str | URL) -> str:
    """The URL for a message: without the password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL must not be echoed
        return "<unparsable case-system URL>"


def _password(url: str | URL) -> str | None:
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001
        return None
    return str(password) if password else None


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        if str(url.query.get("mode", "")).lower() == "memory":
            return None
        if database.startswith("file:"):
            parsed = urllib.parse.urlsplit(database)
            database = urllib.parse.unquote(parsed.path)
    if database in ("", ":memory:"):
        return None
    return Path(database).absolute()


def _read_only_sqlite(url: URL, path: Path) -> URL:
    """The same database as a read-only SQLite URI: a read-only open never creates a file.

    (``sqlite:///path?mode=ro&uri=true`` does not do this: SQLite reads a name without the
    ``file:`` scheme as a plain file name, query included, and creates it.)"""
    query = {k: v for k, v in url.query.items() if k not in ("uri", "mode")}
    return url.set(database="file:" + urllib.parse.quote(str(path)),
                   query={**query, "mode": "ro", "uri": "true"})


def _connect_args(url: URL, connect_timeout: int, read_timeout: int | None) -> dict[str, Any]:
    """Time-outs in the terms of the URL's driver (a value set in the URL wins)."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    args: dict[str, Any] = {}
    if backend == "postgresql":
        args["timeout" if driver == "pg8000" else "connect_timeout"] = connect_timeout
    elif backend in ("mysql", "mariadb"):
        args["connect_timeout"] = connect_timeout
        if read_timeout is not None:
            args["read_timeout"] = read_timeout
    elif backend == "mssql" and driver == "pyodbc":
        args["timeout"] = connect_timeout
    elif backend == "sqlite" and read_timeout is not None:
        args["timeout"] = float(read_timeout)  # waiting for a locked database
    return {k: v for k, v in args.items() if k not in url.query}


def source_engine(url_text: str, *, connect_timeout: int,
                  read_timeout: int | None = None) -> sa.Engine:
    """An engine for the configured URL. A SQLite database file must exist (it is opened
    read-only and never created); the errors name the URL without its password."""
    try:
        url = make_url(url_text)
    except Exception as exc:  # noqa: BLE001 - an unparsable URL is not echoed
        raise CaseSystemError(f"case system: the configured URL cannot be parsed "
                              f"({type(exc).__name__})") from None
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None:
            if not path.exists():
                raise CaseSystemError(f"case system: the SQLite database {path} does not exist "
                                      "(check [case_system] url; no file was created)")
            if not path.is_file():
                raise CaseSystemError(f"case system: the SQLite database {path} is not a file")
            url = _read_only_sqlite(url, path)
    try:
        return sa.create_engine(url, connect_args=_connect_args(url, connect_timeout, read_timeout))
    except Exception as exc:  # noqa: BLE001 - bad URL or missing driver
        text = scrub_driver_message(str(exc).splitlines()[0] if str(exc) else "", [_password(url_text)])
        raise CaseSystemError(f"case system: cannot use the configured URL {safe_url(url_text)}: "
                              f"{type(exc).__name__}{': ' + text if text else ''}") from None


def driver_error(exc: BaseException, url: str | URL) -> str:
    """A database error for a message: the failure's reason, the driver's error class and its
    first line without literals, digit runs or the password."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        message = f"{args[0]} {args[1]}"  # MariaDB/MySQL drivers: (error number, message)
    else:
        lines = [line for line in str(orig).splitlines() if line.strip()]
        message = lines[0] if lines else ""  # further lines quote the SQL or give hints
    text = scrub_driver_message(message, [_password(url)])
    return f"{database_failure(exc).reason}; {type(orig).__name__}{': ' + text if text else ''}"


def connect(engine: sa.Engine, url: str) -> sa.Connection:
    """A connection, or a :class:`CaseSystemError` naming the database and the cause, transient
    only when retrying can help (a time-out, a dropped connection; not a refused connection, an
    unknown host, a refused login or an unknown database)."""
    try:
        return engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise CaseSystemError(f"case system: cannot connect to {safe_url(url)}: {driver_error(exc, url)}",
                              transient=database_failure(exc).transient) from None


def view_select(spec: ViewSpec, schema: str | None) -> sa.Select[Any]:
    """The extractor's select of a view: the contract columns in contract order."""
    view = sa.table(spec.name, *[sa.column(c) for c in spec.column_names], schema=schema)
    return sa.select(*[view.c[c] for c in spec.column_names])


def view_problems(conn: sa.Connection, schema: str | None, specs: Sequence[ViewSpec] = VIEWS,
                  *, try_select: bool = False) -> dict[str, str]:
    """Per contract view that cannot be read as the extractor reads it: why (the view is
    missing, or lacks contract columns, named; with ``try_select`` also the driver's error when
    the extractor's select of no rows fails, e.g. for want of a privilege). Empty when every
    view can be read."""
    inspector = sa.inspect(conn)
    names = {n.lower() for n in [*inspector.get_view_names(schema), *inspector.get_table_names(schema)]}
    problems: dict[str, str] = {}
    for spec in specs:
        if spec.name not in names:
            problems[spec.name] = "the view does not exist or is not visible to this user"
            continue
        present = {str(c["name"]).lower() for c in inspector.get_columns(spec.name, schema)}
        missing = [c for c in spec.column_names if c not in present]
        if missing:
            problems[spec.name] = f"the view lacks the contract column(s) {', '.join(missing)}"
        elif try_select:
            try:
                conn.execute(view_select(spec, schema).where(sa.false())).fetchall()
            except sa.exc.DBAPIError as exc:
                if database_failure(exc).transient:
                    raise
                conn.rollback()
                problems[spec.name] = f"cannot be read: {driver_error(exc, conn.engine.url)}"
    return problems


def probe(config: CaseSystemConfig) -> CheckResult:
    """Whether a run can read the case system: it connects (a SQLite file must exist; it is
    never created) and each of the five contract views exists with the columns the extractor
    reads. Connect and statement time-outs of 5 s, no retries; never raises for a failure the
    user can act on; the detail names the database without its password."""
    where = safe_url(config.url)
    try:
        engine = source_engine(config.url, connect_timeout=PROBE_TIMEOUT_SECONDS,
                               read_timeout=PROBE_TIMEOUT_SECONDS)
    except CaseSystemError as exc:
        return CheckResult(SOURCE, False, str(exc))
    try:
        with connect(engine, config.url) as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"set statement_timeout = {PROBE_TIMEOUT_SECONDS * 1000}"))
            problems = view_problems(conn, config.schema, try_select=True)
    except CaseSystemError as exc:
        return CheckResult(SOURCE, False, str(exc))
    except sa.exc.SQLAlchemyError as exc:
        return CheckResult(SOURCE, False, f"case system {where}: cannot read the views: "
                                          f"{driver_error(exc, config.url)}")
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return CheckResult(SOURCE, False, f"case system {where}: {failure_cause(exc)}")
    finally:
        engine.dispose()
    prefix = f"{config.schema}." if config.schema else ""
    if problems:
        return CheckResult(SOURCE, False, f"case system {where}: " + "; ".join(
            f"view {prefix}{view}: {problem}" for view, problem in problems.items()))
    return CheckResult(SOURCE, True, f"case system {where} ({engine.dialect.name}): the views "
                                     f"{', '.join(prefix + v.name for v in VIEWS)} have the contract columns")


def view_row_counts(config: CaseSystemConfig) -> dict[str, int]:
    """The current number of rows of each contract view (``select count(*)``), for the anomaly
    gate: a view that had rows and now has none points to a wiped or mis-permissioned reporting
    database. Raises :class:`CaseSystemError` (no data values, no password) when a view cannot
    be counted."""
    engine = source_engine(config.url, connect_timeout=PROBE_TIMEOUT_SECONDS * 6)
    counts: dict[str, int] = {}
    try:
        with connect(engine, config.url) as conn:
            for spec in VIEWS:
                view = sa.table(spec.name, schema=config.schema)
                try:
                    counts[spec.name] = int(conn.execute(
                        sa.select(sa.func.count()).select_from(view)).scalar_one())
                except sa.exc.SQLAlchemyError as exc:
                    prefix = f"{config.schema}." if config.schema else ""
                    raise CaseSystemError(
                        f"case system {safe_url(config.url)}: cannot count the rows of view "
                        f"{prefix}{spec.name}: {driver_error(exc, config.url)}",
                        transient=database_failure(exc).transient) from None
                conn.rollback()
    finally:
        engine.dispose()
    return counts


# --- the extractor ---------------------------------------------------------------------------

@dataclass
class _EntityPull:
    table: pa.Table | SpooledTable
    watermark_to: str | None
    checksum: str
    type_errors: int
    already_loaded: int = 0
    already_quarantined: int = 0


@dataclass(frozen=True)
class KnownRows:
    """What the warehouse already holds near a view's watermark, as md5 of the row JSON
    (:func:`row_json_sql`): rows loaded since the watermark minus the overlap, and rows
    quarantined with a null change time (ever) or a change time since then."""

    loaded: frozenset[str] = frozenset()
    quarantined: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.loaded or self.quarantined)


def _parse_time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return _local_naive(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two watermark texts (a watermark never moves back)."""
    if a is None or b is None:
        return a if b is None else b
    ta, tb = _parse_time(a), _parse_time(b)
    if ta is not None and tb is not None:
        return b if tb > ta else a
    return b if b > a else a


def overlap_lower_bound(watermark: str, overlap_minutes: int) -> str:
    """The lower bound (exclusive) of a pull: the stored watermark minus the overlap, in the
    watermark's own text form (SQLite compares it as text)."""
    at = _parse_time(watermark)
    if at is None or overlap_minutes <= 0:
        return watermark
    sep = "T" if len(watermark) > 10 and watermark[10] == "T" else " "
    return (at - dt.timedelta(minutes=overlap_minutes)).isoformat(sep=sep)


def latest_plausible_change(now: dt.datetime | None = None) -> dt.datetime:
    """Change times after this (the start of the latest plausible date, as the row rules and the
    GX suites compare) are implausible: they are quarantined and never move a watermark."""
    _, latest = plausible_bounds(now)
    return dt.datetime.combine(latest, dt.time())


def _drop_known(scratch: duckdb.DuckDBPyConnection, spec: ViewSpec, batch: pa.RecordBatch,
                known: KnownRows, stored: dt.datetime | None,
                cap: pa.Scalar) -> tuple[pa.Array | None, int, int]:
    """Which rows of a chunk to keep: a row that can be a re-delivery (null change time, change
    time at or before the stored watermark, or implausibly late) and whose content the warehouse
    already holds, loaded or quarantined, is dropped. Returns (keep mask or None, dropped as
    loaded, dropped as quarantined)."""
    wm_array = batch.column(spec.watermark_column)
    maybe = pc.or_kleene(pc.is_null(wm_array), pc.greater(wm_array, cap))
    if stored is not None:
        maybe = pc.or_kleene(maybe, pc.less_equal(wm_array, pa.scalar(stored, pa.timestamp("us"))))
    maybe = pc.fill_null(maybe, True)
    if not pc.any(maybe).as_py():
        return None, 0, 0
    candidates = pa.Table.from_batches([batch]).append_column(
        "_index", pa.array(range(batch.num_rows), pa.int64())).filter(maybe)
    scratch.register("_chunk", candidates)
    try:
        found = scratch.execute(
            f"""
            select _index, {TYPE_ERRORS_COLUMN} is null as clean, md5({row_json_sql(spec)}) as loaded_hash,
                   md5(coalesce({RAW_ROW_COLUMN}, {row_json_sql(spec)})) as quarantined_hash
            from _chunk
            """).fetchall()
    finally:
        scratch.unregister("_chunk")
    keep = [True] * batch.num_rows
    n_loaded = n_quarantined = 0
    for index, clean, loaded_hash, quarantined_hash in found:
        if clean and loaded_hash in known.loaded:
            keep[index] = False
            n_loaded += 1
        elif quarantined_hash in known.quarantined:
            keep[index] = False
            n_quarantined += 1
    if n_loaded + n_quarantined == 0:
        return None, 0, 0
    return pa.array(keep, pa.bool_()), n_loaded, n_quarantined


_TEXTS_SCHEMA = pa.schema([("t", pa.string())])


@contextlib.contextmanager
def _texts_writer(sink: Path | list[pa.Array]) -> Iterator[Callable[[pa.Array], None]]:
    """A function that keeps the row texts of a chunk: appended to ``sink`` in memory, or
    written as a row group of the Parquet file ``sink``."""
    if isinstance(sink, list):
        yield sink.append
        return
    with pq.ParquetWriter(sink, _TEXTS_SCHEMA) as writer:
        yield lambda texts: writer.write_batch(pa.record_batch([texts.cast(pa.string())],
                                                               schema=_TEXTS_SCHEMA))


class CaseSystemExtractor:
    """Incremental extractor for the case-system views (``klient``, ``aktualisering``,
    ``utredning``, ``insats``, ``gallring``)."""

    source = SOURCE

    def __init__(self, config: CaseSystemConfig, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.config = config
        self.chunk_rows = chunk_rows

    # -- pull --
    def _safe_url(self) -> str:
        return safe_url(self.config.url)

    def _qualified(self, view: str) -> str:
        return f"{self.config.schema}.{view}" if self.config.schema else view

    def pull_context(self, conn: duckdb.DuckDBPyConnection,
                     watermarks: dict[str, str]) -> dict[str, KnownRows]:
        """Per view, the rows the warehouse already holds that the overlap window (or the
        null-change-time select) can deliver again; read by ``run_extract`` before the pull."""
        known: dict[str, KnownRows] = {}
        for spec in VIEWS:
            wm = spec.watermark_column
            stored = _parse_time(watermarks.get(spec.name))
            lower = stored - dt.timedelta(minutes=self.config.overlap_minutes) if stored else None
            loaded: set[str] = set()
            if lower is not None:
                loaded = {r[0] for r in conn.execute(
                    f"select md5({row_json_sql(spec)}) from raw_case_system.{spec.name} where {wm} >= ?",
                    [lower]).fetchall()}
            quarantined = {r[0] for r in conn.execute(
                f"""
                select md5(raw_row) from load_meta.quarantine
                where source = ? and entity = ? and raw_row is not null
                  and (reason = '{MISSING_CHANGE_TIME}'
                       or try_cast(json_extract_string(raw_row, '$.{wm}') as timestamp) >= ?)
                """, [SOURCE, spec.name, lower or dt.datetime.max]).fetchall()}
            known[spec.name] = KnownRows(frozenset(loaded), frozenset(quarantined))
        return known

    def pull(self, state: SourceState) -> Pull:
        engine = source_engine(self.config.url, connect_timeout=EXTRACT_CONNECT_TIMEOUT_SECONDS)
        tables: dict[str, pa.Table | SpooledTable] = {}
        watermarks: dict[str, tuple[str | None, str | None]] = {}
        checksums: dict[str, str] = {}
        type_errors: dict[str, int] = {}
        already_loaded: dict[str, int] = {}
        already_quarantined: dict[str, int] = {}
        context = state.context if isinstance(state.context, dict) else {}
        try:
            conn = connect(engine, self.config.url)
            with conn:
                for spec in VIEWS:
                    wm_from = state.watermarks.get(spec.name)
                    try:
                        got = self._pull_view(conn, spec, wm_from, state.until,
                                              context.get(spec.name) or KnownRows(), state.spool)
                    except sa.exc.SQLAlchemyError as exc:
                        raise self._view_error(conn, spec, exc) from None
                    tables[spec.name] = got.table
                    watermarks[spec.name] = (wm_from, _later(wm_from, got.watermark_to))
                    checksums[spec.name] = got.checksum
                    type_errors[spec.name] = got.type_errors
                    already_loaded[spec.name] = got.already_loaded
                    already_quarantined[spec.name] = got.already_quarantined
                    conn.rollback()  # end the read transaction (server-side cursors live in one)
            dialect = engine.dialect.name
        finally:
            engine.dispose()
        skipped = sum(already_loaded.values()) + sum(already_quarantined.values())
        if skipped:
            log.info("case system: %d rows delivered again (overlap window or null change time) "
                     "were already loaded (%d) or quarantined (%d) and are skipped", skipped,
                     sum(already_loaded.values()), sum(already_quarantined.values()))
        return Pull(
            tables=tables,
            watermarks=watermarks,
            content_checksums=checksums,
            extra={"backend": dialect, "schema": self.config.schema, "rows_with_type_errors": type_errors,
                   "overlap_minutes": self.config.overlap_minutes,
                   "skipped_already_loaded": already_loaded,
                   "skipped_already_quarantined": already_quarantined},
        )

    def _view_error(self, conn: sa.Connection, spec: ViewSpec,
                    exc: sa.exc.SQLAlchemyError) -> CaseSystemError:
        """Why a view could not be read: in contract terms (the view or columns missing) when
        the catalogue says so, else the driver's error; transient only when retrying can help."""
        failure = database_failure(exc)
        reason: str | None = None
        try:
            conn.rollback()
            reason = view_problems(conn, self.config.schema, [spec]).get(spec.name)
        except Exception:  # noqa: BLE001, S110 - diagnosis is best effort; the driver's reason is used
            pass
        return CaseSystemError(
            f"case system {self._safe_url()}: cannot read view {self._qualified(spec.name)} "
            f"({conn.dialect.name}): {reason or driver_error(exc, self.config.url)}",
            transient=failure.transient and reason is None)

    def _pull_view(self, conn: sa.Connection, spec: ViewSpec, wm_from: str | None,
                   until: dt.date | None = None, known: KnownRows | None = None,
                   spool: Path | None = None) -> _EntityPull:
        """Read one view in chunks (a server-side cursor, ``chunk_rows`` at a time): the rows
        changed after the watermark minus the overlap, and every row with a null change time.
        Rows the warehouse already holds (``known``) are dropped before landing and counted.

        Each chunk is written as it arrives, as a row group of the view's landing file in
        ``spool`` (its row texts, for the content checksum, into a file beside it, sorted
        there), so memory is bounded by the chunk, whatever the view's size. Without a spool
        (a pull outside ``run_extract``) the same is written in memory and returned as a table."""
        known = known or KnownRows()
        stmt = view_select(spec, self.config.schema)
        wm_col = stmt.selected_columns[spec.watermark_column]
        bounds: list[Any] = []
        if wm_from is not None:
            lower = overlap_lower_bound(wm_from, self.config.overlap_minutes)
            bounds.append(wm_col > _watermark_bind(conn.dialect.name, lower))
        if until is not None:  # a bounded (backfill) pull: changes made on or before that day
            bounds.append(wm_col < _day_bound(conn.dialect.name, until + dt.timedelta(days=1)))
        if bounds:
            stmt = stmt.where(sa.or_(sa.and_(*bounds), wm_col.is_(None)))
        stmt = stmt.order_by(wm_col)
        result = conn.execution_options(stream_results=True, yield_per=self.chunk_rows).execute(stmt)
        best: Any = None
        best_text: str | None = None
        wm_index = spec.column_names.index(spec.watermark_column)
        n_rows = n_errors = n_loaded = n_quarantined = 0
        cap = pa.scalar(latest_plausible_change(), pa.timestamp("us"))
        stored = _parse_time(wm_from)
        rows_sink: Path | pa.BufferOutputStream = (
            spool / f"{spec.name}.parquet" if spool is not None else pa.BufferOutputStream())
        texts_sink: Path | list[pa.Array] = (
            spool / f"{spec.name}.row-texts.parquet" if spool is not None else [])
        scratch = database.connect() if known else None
        try:
            with parquet_writer(rows_sink, landing_schema(spec)) as writer, \
                    _texts_writer(texts_sink) as write_texts:
                for rows in result.partitions():
                    batch, chunk_texts = rows_to_batch(spec, rows)
                    wm_array = batch.column(spec.watermark_column)
                    plausible = pc.filter(wm_array, pc.less_equal(wm_array, cap))
                    if len(plausible):
                        chunk_max = pc.max(plausible)
                        if best is None or chunk_max.as_py() > best:
                            best = chunk_max.as_py()
                            idx = pc.index(wm_array, chunk_max).as_py()
                            best_text = canonical_text(rows[idx][wm_index])
                    del rows
                    if scratch is not None:
                        keep, n_l, n_q = _drop_known(scratch, spec, batch, known, stored, cap)
                        if keep is not None:
                            batch, chunk_texts = batch.filter(keep), chunk_texts.filter(keep)
                            n_loaded += n_l
                            n_quarantined += n_q
                    if batch.num_rows:
                        writer.write_batch(batch)
                        write_texts(chunk_texts)
                    n_rows += batch.num_rows
                    n_errors += batch.num_rows - batch.column(TYPE_ERRORS_COLUMN).null_count
        finally:
            if scratch is not None:
                scratch.close()
        table: pa.Table | SpooledTable
        if isinstance(rows_sink, Path) and isinstance(texts_sink, Path):
            checksum = checksum_of_spooled_row_texts(texts_sink, texts_sink.parent)
            texts_sink.unlink()
            table = SpooledTable(rows_sink, n_rows)
        else:
            assert isinstance(rows_sink, pa.BufferOutputStream) and isinstance(texts_sink, list)
            checksum = checksum_of_row_texts(texts_sink)
            table = pq.read_table(pa.BufferReader(rows_sink.getvalue()))
        return _EntityPull(table, best_text, checksum, n_errors, n_loaded, n_quarantined)

    # -- load --
    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        counts: dict[str, EntityCounts] = {}
        for entity in manifest.entities:
            spec = VIEW_BY_NAME.get(entity)
            if spec is None:
                raise CaseSystemError(f"batch {manifest.batch_id}: unknown case-system entity {entity!r}")
            counts[entity] = _load_entity(conn, manifest, spec)
        return counts


def plausible_bounds(extracted_at: str | dt.datetime | None) -> tuple[dt.date, dt.date]:
    """The plausible date range of a batch: 1990-01-01 to the extraction date plus a day."""
    if isinstance(extracted_at, str):
        try:
            extracted_at = dt.datetime.fromisoformat(extracted_at)
        except ValueError:
            extracted_at = None
    at = extracted_at or dt.datetime.now(dt.UTC)
    return EARLIEST_PLAUSIBLE_DATE, (at + PLAUSIBLE_DATE_MARGIN).date()


def row_json_sql(spec: ViewSpec) -> str:
    """DuckDB SQL for a row as JSON (the warehouse columns): the quarantine's ``raw_row`` of a
    row without a type error, and, hashed, how the pull recognises a row already loaded."""
    return "to_json(struct_pack(" + ", ".join(f"{c} := {c}" for c in spec.warehouse_columns) + "))::varchar"


def _rule_sql(spec: ViewSpec, extracted_at: str) -> tuple[str, str]:
    """The CASE expressions for the reason and the detail of a landed row (null: no fault)."""
    earliest, latest = plausible_bounds(extracted_at)
    reasons, details = [], []
    for rule in ROW_RULES[spec.name]:
        if rule.condition is None:
            continue
        cond = (rule.condition.replace("{earliest}", earliest.isoformat())
                .replace("{latest}", latest.isoformat()))
        reasons.append(f"when {cond} then '{rule.reason}'")
        details.append(f"when {cond} then {rule.detail or _sql_list([rule.description])}")
    return f"case {' '.join(reasons)} end", f"case {' '.join(details)} end"


def _load_entity(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, spec: ViewSpec) -> EntityCounts:
    cols = spec.warehouse_columns
    col_list = ", ".join(cols)
    exclude = f" exclude ({', '.join(spec.landing_only)})" if spec.landing_only else ""
    reason_sql, detail_sql = _rule_sql(spec, manifest.extracted_at)
    conn.execute(
        f"""
        create or replace temp table _case_system_landed as
        select *{exclude},
               file_row_number + 1 as _row_number,
               {reason_sql} as _reason,
               {detail_sql} as _detail
        from read_parquet(?, file_row_number = true)
        """,
        [str(manifest.entity_path(spec.name))],
    )
    try:
        _mark_duplicate_keys(conn, spec)
        received = conn.execute("select count(*) from _case_system_landed").fetchone()[0]
        loaded = conn.execute(
            f"""
            insert into raw_case_system.{spec.name} (batch_id, {col_list})
            select ?, {col_list} from _case_system_landed where _reason is null order by _row_number
            """,
            [manifest.batch_id],
        ).fetchone()[0]
        rejected = conn.execute(
            f"""
            select _row_number as row_number, _reason as reason, _detail as detail,
                   coalesce({RAW_ROW_COLUMN}, {row_json_sql(spec)}) as raw_row
            from _case_system_landed where _reason is not null order by _row_number
            """
        ).to_arrow_table()
        quarantined = quarantine(conn, manifest, spec.name, rejected)
    finally:
        conn.execute("drop table if exists _case_system_landed")
    return EntityCounts(received=received, loaded=loaded, quarantined=quarantined)


def _mark_duplicate_keys(conn: duckdb.DuckDBPyConnection, spec: ViewSpec) -> None:
    """Quarantine (``duplicate_key``) the rows whose key repeats among the rows that passed the
    other rules: the version with the latest change time loads; of identical copies of it the
    first loads; copies with that time but different content all quarantine (which one is
    right cannot be known)."""
    key = ", ".join(spec.key)
    wm = spec.watermark_column
    content = f"md5({row_json_sql(spec)})"
    conn.execute(
        f"""
        update _case_system_landed as l
        set _reason = '{DUPLICATE_KEY}', _detail = r.detail
        from (
            select _row_number,
                   case when {wm} < newest
                             then 'an older version of the key in the same pull (the newest loads)'
                        when lowest <> highest
                             then 'copies of the key with the same {wm} but different content (none loads)'
                        else 'an identical copy of a row in the same pull (one loads)' end as detail
            from (
                select _row_number, {wm},
                       max({wm}) over (partition by {key}) as newest,
                       min(content) over (partition by {key}, {wm}) as lowest,
                       max(content) over (partition by {key}, {wm}) as highest,
                       row_number() over (partition by {key}, {wm} order by _row_number) as copy_number,
                       count(*) over (partition by {key}) as copies
                from (select *, {content} as content from _case_system_landed where _reason is null)
            )
            where copies > 1 and ({wm} < newest or lowest <> highest or copy_number > 1)
        ) as r
        where l._row_number = r._row_number
        """
    )
