"""A simulated SS 12000 v2.1 server on loopback: the school platform of the demo and the tests.

``SS12000Data.from_population`` turns the population frames into the JSON records of
``/organisations``, ``/persons``, ``/calendarEvents``, ``/attendances`` and ``/deletedEntities``
shaped by the official OpenAPI schemas. Every record is serialised once (canonical JSON) and the
records of an endpoint are kept sorted by ``(meta.modified, id)`` in one contiguous buffer, so a
``meta.modified.after``/``.before`` filter is a binary search and a page is one slice of bytes.

``serve`` runs the protocol (bearer token, ``limit`` + opaque ``pageToken`` paging, 400 when a
``pageToken`` is combined with a filter, JSON ``Error`` bodies) on ``http.server`` in a daemon
thread. With ``client_id``/``client_secret`` it also runs an OAuth2 token endpoint
(``POST /oauth/token``, client-credentials grant) whose tokens expire and can be revoked.
``fail_next`` / ``stall_next`` inject rate limits, server errors and slow answers one by one;
``fault_rate`` injects them at random (seeded, so a sequential client sees the same faults on
every run).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import email.utils
import hmac
import json
import random
import re
import secrets
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from samverkan.simulator.attendance import MINUTE_COLUMNS, AttendanceParts, WorldDirectory
from samverkan.sources.ss12000 import canonical_json, deletion_record, records_checksum

STOCKHOLM = ZoneInfo("Europe/Stockholm")
RECORD_ENDPOINTS = ("organisations", "persons", "calendarEvents", "attendances")
DELETED_ENDPOINT = "deletedEntities"
# endpoint -> key in the deletions payload (the spec spells the activities key 'activitites')
DELETED_KEYS: dict[str, str] = {
    "organisations": "organisations", "persons": "persons", "calendarEvents": "calendarEvents",
    "attendances": "attendances", "activities": "activitites", "absences": "absences",
    "attendanceEvents": "attendanceEvents", "attendanceSchedules": "attendanceSchedules",
    "grades": "grades", "resources": "resources", "rooms": "rooms", "duties": "duties",
    "placements": "placements", "studyPlans": "studyPlans", "programmes": "programmes",
    "syllabuses": "syllabuses", "schoolUnitOfferings": "schoolUnitOfferings", "groups": "groups",
}
# EndPointsEnum value (the `entities` filter of /deletedEntities) -> key in the payload
_ENTITY_ENUM: dict[str, str] = {
    "Absence": "absences", "AttendanceEvent": "attendanceEvents", "Attendance": "attendances",
    "Grade": "grades", "CalendarEvent": "calendarEvents", "AttendanceSchedule": "attendanceSchedules",
    "Resource": "resources", "Room": "rooms", "Activity": "activitites", "Duty": "duties",
    "Placement": "placements", "StudyPlan": "studyPlans", "Programme": "programmes",
    "Syllabus": "syllabuses", "SchoolUnitOffering": "schoolUnitOfferings", "Group": "groups",
    "Person": "persons", "Organisation": "organisations",
}
_RECORD_PARAMS = {"meta.modified.after", "meta.modified.before"}
_CALENDAR_PARAMS = {"startTime.onOrAfter", "startTime.onOrBefore"}
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
_MIN_US = np.iinfo(np.int64).min


# --- vectorised canonical JSON ---------------------------------------------------------------

def _digits(matrix: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as zero-padded decimal ``width`` digits into ``matrix[:, column:]``."""
    for k in range(width):
        matrix[:, column + k] = 48 + (values // 10 ** (width - 1 - k)) % 10


def _format_local(local_us: np.ndarray, unit: str) -> np.ndarray:
    """'YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]' of local wall-clock microseconds, as an (n, w) byte matrix."""
    n = len(local_us)
    fraction = {"s": 0, "ms": 3, "us": 6}[unit]
    width = 19 + (fraction + 1 if fraction else 0)
    out = np.empty((n, width), np.uint8)
    days = np.floor_divide(local_us, 86_400_000_000)
    in_day = local_us - days * 86_400_000_000
    date = days.astype("datetime64[D]")
    months = date.astype("datetime64[M]")
    _digits(out, 0, date.astype("datetime64[Y]").astype(np.int64) + 1970, 4)
    _digits(out, 5, months.astype(np.int64) % 12 + 1, 2)
    _digits(out, 8, (date - months.astype("datetime64[D]")).astype(np.int64) + 1, 2)
    _digits(out, 11, in_day // 3_600_000_000, 2)
    _digits(out, 14, in_day // 60_000_000 % 60, 2)
    _digits(out, 17, in_day // 1_000_000 % 60, 2)
    out[:, [4, 7]] = ord("-")
    out[:, 10] = ord("T")
    out[:, [13, 16]] = ord(":")
    if fraction:
        out[:, 19] = ord(".")
        _digits(out, 20, in_day % 1_000_000 // 10 ** (6 - fraction), fraction)
    return out


def _fixed_strings(matrix: np.ndarray) -> pa.Array:
    n, width = matrix.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n,
                                                 [None, pa.py_buffer(np.ascontiguousarray(matrix))])
    return fixed.cast(pa.binary()).cast(pa.string())


def _instant_unit(micros: np.ndarray) -> str:
    """The precision every instant shows: 's' when all are whole seconds, else 'ms' or 'us'."""
    valid = micros[micros != np.iinfo(np.int64).min]
    if (valid % 1_000_000 == 0).all():
        return "s"
    return "ms" if (valid % 1000 == 0).all() else "us"


def _instants(values: Any, unit: str | None = None) -> tuple[pa.Array, np.ndarray]:
    """RFC 3339 texts (Europe/Stockholm offset; null for NaT) and UTC microseconds; the
    fraction shown is the finest one any of the values needs, or ``unit``."""
    s = pd.Series(values)
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        try:
            s = pd.to_datetime(s)
        except (ValueError, TypeError):
            s = pd.to_datetime(s, utc=True)
        if not isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_localize(STOCKHOLM, ambiguous="NaT", nonexistent="shift_forward")
    s = s.dt.tz_convert(STOCKHOLM)
    utc = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").view(np.int64)
    local = s.dt.tz_localize(None).to_numpy("datetime64[us]").view(np.int64)
    nat = utc == np.iinfo(np.int64).min
    micros = utc.copy()
    local = np.where(nat, 0, local)
    unit = unit or _instant_unit(micros)
    offset_min = np.where(nat, 0, (local - np.where(nat, 0, utc)) // 60_000_000)
    uniq, inverse = np.unique(offset_min, return_inverse=True)
    labels = np.frombuffer(b"".join(
        f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}".encode() for m in uniq),
        np.uint8).reshape(len(uniq), 6)
    text = _fixed_strings(np.hstack([_format_local(local, unit), labels[inverse.reshape(-1)]]))
    if nat.any():
        text = pc.if_else(pa.array(nat), pa.scalar(None, pa.string()), text)
    return text, micros


def _arrow_strings(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.string())
    if isinstance(values, pd.Series):
        return pa.array(values.astype(object).where(values.notna(), None), pa.string()) \
            if values.dtype == object else pa.array(values, pa.string(), from_pandas=True)
    return pa.array(values, pa.string())


def _jstr(values: Any) -> pa.Array:
    """JSON string literals (null stays null = key omitted)."""
    arr = _arrow_strings(values)
    needs = pc.match_substring_regex(arr, _NEEDS_ESCAPE)
    if pc.any(needs).as_py():
        return pa.array([None if v is None else canonical_json(v) for v in arr.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', arr, '"', "")


# JSON fragments assembled by DuckDB (string concatenation, parallel): a column holding JSON
# string literals (from _jstr) is used as it is; ints and bools are rendered here.

def _sql_obj(members: dict[str, str | list[str]], nullable: Iterable[str] = ()) -> list[str]:
    """The pieces (SQL expressions) of a JSON object with sorted keys, for one ``concat``.

    A member is an SQL expression or the pieces of a nested object; a null value of a
    ``nullable`` key omits the key (``concat`` skips nulls)."""
    optional = set(nullable)
    pieces: list[str] = ["'{'"]
    for i, key in enumerate(sorted(members)):
        prefix = ("," if i else "") + f'"{key}":'
        value = members[key]
        if key in optional:
            if not i or not isinstance(value, str):
                raise ValueError(f"nullable member {key!r} must be a non-first plain expression")
            pieces.append(f"('{prefix}' || {value})")
        else:
            pieces.append(f"'{prefix}'")
            pieces.extend(value if isinstance(value, list) else [value])
    pieces.append("'}'")
    merged: list[str] = []
    for piece in pieces:  # adjacent literals become one
        if merged and _is_literal(piece) and _is_literal(merged[-1]):
            merged[-1] = merged[-1][:-1] + piece[1:]
        else:
            merged.append(piece)
    return merged


def _is_literal(piece: str) -> bool:
    return piece.startswith("'") and piece.endswith("'") and "'" not in piece[1:-1]


def _sql_concat(pieces: list[str]) -> str:
    return "concat(" + ", ".join(pieces) + ")"


def _sql_int(column: str) -> str:
    return f"cast({column} as varchar)"


def _sql_bool(column: str) -> str:
    return f"(case when {column} then 'true' else 'false' end)"


def _sql_ref(column: str) -> list[str]:
    return _sql_obj({"id": column})


_RENDER = threading.local()


def _render_items(columns: dict[str, pa.Array], body_sql: str) -> pa.Array:
    """The records (each followed by a comma) rendered by DuckDB from ``columns``, in order
    (one connection per thread: connecting costs more than rendering a page)."""
    conn = getattr(_RENDER, "conn", None)
    if conn is None:
        conn = _RENDER.conn = duckdb.connect()
        conn.execute("set preserve_insertion_order = true")
        conn.execute("set threads = 1")
    conn.register("_src", pa.table(columns))
    try:
        items = conn.execute(f"select {body_sql} as item from _src").to_arrow_table()
    finally:
        conn.unregister("_src")
    return items.column("item").combine_chunks().cast(pa.large_string())


def _render_store(columns: dict[str, Any], body_sql: str, ids: Any, micros: np.ndarray,
                  start: np.ndarray | None = None) -> _Store:
    """Records rendered by DuckDB from ``columns`` and sorted by (modified, id)."""
    n = len(micros)
    table = pa.table({
        **{name: v if isinstance(v, pa.Array) else pa.array(v) for name, v in columns.items()},
        "_mod": pa.array(micros, pa.int64()),
        "_id": _arrow_strings(ids),
        "_start": pa.array(start if start is not None else np.full(n, _MIN_US), pa.int64()),
    })
    # Sort the inputs (small) rather than the rendered records; DuckDB keeps insertion order.
    order = pc.sort_indices(table.select(["_mod", "_id"]),
                            sort_keys=[("_mod", "ascending"), ("_id", "ascending")])
    table = table.take(order)
    conn = duckdb.connect()
    try:
        conn.execute("set preserve_insertion_order = true")
        conn.execute("set arrow_large_buffer_size = true")
        conn.register("_src", table)
        rendered = conn.execute(
            f"select _mod as mod, _id as id, {body_sql} as item, _start as start from _src"
        ).to_arrow_table()
    finally:
        conn.close()
    return _Store(rendered, presorted=True)


# --- one endpoint's records ------------------------------------------------------------------

# item = the record's canonical JSON followed by a comma, so that a page is one slice
_STORE_SCHEMA = pa.schema([("mod", pa.int64()), ("id", pa.string()), ("item", pa.large_string()),
                           ("start", pa.int64())])


class _Store:
    """Records of one endpoint sorted by (modified, id); bodies in one buffer, each with a comma."""

    def __init__(self, table: pa.Table, presorted: bool = False) -> None:
        table = table.select(_STORE_SCHEMA.names).cast(_STORE_SCHEMA)
        mod = table.column("mod").to_numpy()
        if not presorted or (len(mod) > 1 and (np.diff(mod) < 0).any()):
            table = table.sort_by([("mod", "ascending"), ("id", "ascending")])
        table = table.combine_chunks()
        self.table = table
        n = table.num_rows
        self.mod = table.column("mod").to_numpy()
        ids = table.column("id")
        self.ids = ids.chunk(0) if ids.num_chunks else pa.array([], pa.string())
        start = table.column("start")
        self.start = start.to_numpy(zero_copy_only=False) if n else np.empty(0, np.int64)
        if n:
            items = table.column("item").chunk(0)
            _, offsets, data = items.buffers()
            self._offsets = np.frombuffer(offsets, dtype=np.int64, count=n + 1, offset=items.offset * 8)
            self._data = memoryview(data)
        else:
            self._offsets = np.zeros(1, np.int64)
            self._data = memoryview(b"")

    def __len__(self) -> int:
        return self.table.num_rows

    def bound(self, instant: int | None, default: int) -> int:
        """Index of the first record modified after ``instant`` (exclusive)."""
        return default if instant is None else int(np.searchsorted(self.mod, instant, "right"))

    def after_key(self, mod: int, rid: str) -> int:
        """Index of the first record after (mod, rid) in (modified, id) order."""
        lo = int(np.searchsorted(self.mod, mod, "left"))
        hi = int(np.searchsorted(self.mod, mod, "right"))
        if hi == lo:
            return lo
        return lo + int(pc.sum(pc.less_equal(self.ids.slice(lo, hi - lo), rid)).as_py() or 0)

    def body(self, i: int, j: int) -> bytes:
        """Records i..j-1 joined by commas."""
        if j <= i:
            return b""
        return bytes(self._data[int(self._offsets[i]):int(self._offsets[j]) - 1])

    def bodies(self, indices: np.ndarray) -> bytes:
        return b",".join(self.body(int(i), int(i) + 1) for i in indices)

    def texts(self, i: int, j: int) -> pa.Array:
        """The canonical JSON texts of records i..j-1."""
        if j <= i:
            return pa.array([], pa.large_string())
        return pc.utf8_slice_codeunits(self.table.column("item").chunk(0).slice(i, j - i), 0, -1)

    def key(self, i: int) -> tuple[int, str]:
        return int(self.mod[i]), self.ids[i].as_py()

    def position(self, rid: str) -> int | None:
        if not len(self):
            return None
        hits = np.flatnonzero(pc.equal(self.ids, rid).to_numpy(zero_copy_only=False))
        return int(hits[0]) if len(hits) else None

    # the interface SS12000Data and the HTTP handler use (shared with _DiskStore) ------------
    def last_mod(self) -> int | None:
        return int(self.mod[-1]) if len(self) else None

    def select(self, q: _PageQuery, count: int) -> np.ndarray:
        """Indices of the first ``count`` records (in order) matching ``q``."""
        n = len(self)
        lo = self.bound(q.after, 0)
        hi = n if q.before is None else int(np.searchsorted(self.mod, q.before, "right"))
        if q.key is not None:
            lo = max(lo, self.after_key(*q.key))
        if hi <= lo:
            return np.empty(0, np.int64)
        if q.start_range is None:
            return np.arange(lo, min(lo + count, hi), dtype=np.int64)
        starts = self.start[lo:hi]
        mask = (starts >= q.start_range[0]) & (starts <= q.start_range[1])
        return np.flatnonzero(mask)[:count] + lo

    def page(self, q: _PageQuery, limit: int) -> tuple[bytes, tuple[int, str] | None, bool]:
        """(records joined by commas, key of the last one, whether more follow)."""
        selected = self.select(q, limit + 1)
        more = len(selected) > limit
        selected = selected[:limit]
        if not len(selected):
            return b"", None, more
        if q.start_range is None:
            body = self.body(int(selected[0]), int(selected[-1]) + 1)
        else:
            body = self.bodies(selected)
        return body, self.key(int(selected[-1])), more

    def lookup(self, rids: Iterable[str]) -> dict[str, bytes]:
        """The current JSON texts of those of ``rids`` served (one hash pass, not one scan per id)."""
        wanted = pa.array(list(dict.fromkeys(rids)), pa.string())
        if not len(self) or not len(wanted):
            return {}
        where = pc.index_in(wanted, value_set=self.ids).to_numpy(zero_copy_only=False)
        return {rid: self.body(int(i), int(i) + 1) for rid, i in zip(wanted.to_pylist(), where, strict=True)
                if not pd.isna(i)}

    def id_list(self) -> list[str]:
        return self.ids.to_pylist()

    def texts_after(self, instant: int | None) -> pa.Array:
        return self.texts(self.bound(instant, 0), len(self))

    def replaced(self, drop_ids: set[str], add: pa.Table | None) -> _Store:
        """A new store without ``drop_ids`` and with the records of ``add``."""
        table = self.table
        if drop_ids and len(self):
            table = table.filter(pc.invert(pc.is_in(table.column("id"), pa.array(sorted(drop_ids)))))
        presorted = True
        if add is not None and add.num_rows:
            add = add.select(_STORE_SCHEMA.names).cast(_STORE_SCHEMA).sort_by(
                [("mod", "ascending"), ("id", "ascending")])
            if table.num_rows:
                last = (table.column("mod")[-1].as_py(), table.column("id")[-1].as_py())
                first = (add.column("mod")[0].as_py(), add.column("id")[0].as_py())
                presorted = first > last  # changes usually come after everything served so far
            table = pa.concat_tables([table, add])
        return _Store(table, presorted=presorted)


@dataclass(frozen=True)
class _PageQuery:
    """What a page of an endpoint asks for: modified after / at or before (UTC microseconds),
    the (modified, id) key of the last record of the previous page, the startTime range."""

    after: int | None = None
    before: int | None = None
    key: tuple[int, str] | None = None
    start_range: tuple[int, int] | None = None


class _SortedFile:
    """Raw records of one endpoint in a Parquet file sorted by (mod, id), written by DuckDB in
    row groups of ``DISK_ROW_GROUP`` rows; in memory only each group's row count and largest
    ``mod``. ``render`` turns raw rows into JSON texts, each followed by a comma."""

    def __init__(self, path: Path, render: Callable[[pa.Table], pa.Array], keep: Any) -> None:
        self.path = path
        self.render = render
        self._keep = keep  # the world directory the file lives in
        self._lock = threading.Lock()
        self._cache: dict[int, pa.Table] = {}
        self._file = pq.ParquetFile(path)
        md = self._file.metadata
        j = self._file.schema_arrow.get_field_index("mod")
        rows, top = [], []
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            stats = group.column(j).statistics
            if stats is not None and stats.has_min_max:
                top.append(int(stats.max))
            else:
                top.append(int(pc.max(self.read(g, ["mod"]).column("mod")).as_py()))
            rows.append(group.num_rows)
        self.group_rows = np.array(rows, np.int64)
        self.group_max = np.array(top, np.int64)
        self.rows = int(self.group_rows.sum())

    def read(self, group: int, columns: list[str] | None = None) -> pa.Table:
        """A row group (the last few read are kept: a client pages through them in order)."""
        with self._lock:
            table = self._cache.get(group)
            if table is None:
                table = self._file.read_row_group(group)
                self._cache[group] = table
                while len(self._cache) > 4:
                    self._cache.pop(next(iter(self._cache)))
        return table if columns is None else table.select(columns)

    def first_group(self, q: _PageQuery) -> int:
        """The first row group that can hold a record after the query's lower bound."""
        lower = np.iinfo(np.int64).min if q.after is None else q.after + 1
        if q.key is not None:
            lower = max(lower, q.key[0])
        return int(np.searchsorted(self.group_max, lower, "left"))

    def matching(self, table: pa.Table, q: _PageQuery, deleted: pa.Array | None) -> pa.Table:
        mod = table.column("mod")
        mask = pa.array(np.ones(table.num_rows, bool))
        if q.after is not None:
            mask = pc.and_(mask, pc.greater(mod, q.after))
        if q.before is not None:
            mask = pc.and_(mask, pc.less_equal(mod, q.before))
        if q.key is not None:
            mask = pc.and_(mask, pc.or_(pc.greater(mod, q.key[0]), pc.and_(
                pc.equal(mod, q.key[0]), pc.greater(table.column("id"), q.key[1]))))
        if q.start_range is not None:
            start = table.column("start")
            mask = pc.and_(mask, pc.and_(pc.greater_equal(start, q.start_range[0]),
                                         pc.less_equal(start, q.start_range[1])))
        if deleted is not None and len(deleted):
            mask = pc.and_(mask, pc.invert(pc.is_in(table.column("id"), value_set=deleted)))
        return table.filter(mask)

    def scan(self, q: _PageQuery, deleted: pa.Array | None, count: int | None) -> pa.Table:
        """The first ``count`` (None: all) raw records matching ``q``, in order."""
        parts: list[pa.Table] = []
        got = 0
        for g in range(self.first_group(q), len(self.group_rows)):
            table = self.read(g)
            if q.before is not None and table.num_rows and table.column("mod")[0].as_py() > q.before:
                break
            hit = self.matching(table, q, deleted)
            if count is not None:
                hit = hit.slice(0, count - got)
            parts.append(hit)
            got += hit.num_rows
            if count is not None and got >= count:
                break
        if not parts:
            return self._file.schema_arrow.empty_table()
        return pa.concat_tables(parts)

    def find(self, rids: pa.Array) -> pa.Table:
        """Raw records with these ids (one pass over the id column, by DuckDB)."""
        conn = duckdb.connect()
        try:
            conn.register("_ids", pa.table({"id": rids}))
            path = str(self.path).replace("'", "''")
            return conn.execute(f"select f.* from read_parquet('{path}') f semi join _ids i "
                                "on f.id = i.id").to_arrow_table()
        finally:
            conn.close()


class _DiskStore:
    """Records of one endpoint served from a _SortedFile, with an overlay: ids deleted from the
    file (or replaced) and the records added since (an in-memory _Store), merged in
    (modified, id) order when a page is served. A change costs the overlay, never a rewrite
    of the file or a scan per record."""

    def __init__(self, base: _SortedFile, deleted: frozenset[str] = frozenset(),
                 added: _Store | None = None, hidden: int = 0) -> None:
        self.base = base
        self.deleted = deleted
        self._deleted_array = pa.array(sorted(deleted), pa.string()) if deleted else None
        self.added = added if added is not None else _Store(_store_table([], np.empty(0, np.int64), []))
        self.hidden = hidden  # records of the file that are deleted

    def __len__(self) -> int:
        return self.base.rows - self.hidden + len(self.added)

    def last_mod(self) -> int | None:
        tops = [m for m in (self.added.last_mod(), self._base_last_mod()) if m is not None]
        return max(tops) if tops else None

    def _base_last_mod(self) -> int | None:
        for g in range(len(self.base.group_rows) - 1, -1, -1):
            hit = self.base.matching(self.base.read(g, ["mod", "id"]), _PageQuery(), self._deleted_array)
            if hit.num_rows:
                return int(pc.max(hit.column("mod")).as_py())
        return None

    def page(self, q: _PageQuery, limit: int) -> tuple[bytes, tuple[int, str] | None, bool]:
        raw = self.base.scan(q, self._deleted_array, limit + 1)
        extra = self.added.select(q, limit + 1)
        keys = [(m, i, 0, n) for n, (m, i) in enumerate(zip(raw.column("mod").to_pylist(),
                                                            raw.column("id").to_pylist(), strict=True))]
        keys += [(*self.added.key(int(j)), 1, int(j)) for j in extra]
        keys.sort()
        more = len(keys) > limit
        keys = keys[:limit]
        if not keys:
            return b"", None, more
        from_base = [n for _, _, src, n in keys if src == 0]
        rendered = self.base.render(raw.take(pa.array(from_base, pa.int64()))) if from_base else None
        texts = iter(rendered.to_pylist() if rendered is not None else [])
        bodies = [next(texts)[:-1].encode() if src == 0 else self.added.body(n, n + 1)
                  for _, _, src, n in keys]
        return b",".join(bodies), keys[-1][:2], more

    def lookup(self, rids: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(rids))
        found = self.added.lookup(wanted)
        rest = [r for r in wanted if r not in found and r not in self.deleted]
        if rest:
            raw = self.base.find(pa.array(rest, pa.string()))
            if raw.num_rows:
                texts = self.base.render(raw).to_pylist()
                found.update({rid: text[:-1].encode() for rid, text in
                              zip(raw.column("id").to_pylist(), texts, strict=True)})
        return found

    def id_list(self) -> list[str]:
        """Every id in (modified, id) order (reads the whole file: small worlds)."""
        raw = self.base.scan(_PageQuery(), self._deleted_array, None)
        keys = list(zip(raw.column("mod").to_pylist(), raw.column("id").to_pylist(), strict=True))
        keys += [self.added.key(j) for j in range(len(self.added))]
        return [rid for _, rid in sorted(keys)]

    def texts_after(self, instant: int | None) -> pa.Array:
        """The JSON texts of every record modified after ``instant`` (small worlds)."""
        q = _PageQuery(after=instant)
        raw = self.base.scan(q, self._deleted_array, None)
        texts = [t[:-1] for t in self.base.render(raw).to_pylist()] if raw.num_rows else []
        added = self.added.select(q, len(self.added))
        texts += [self.added.body(int(j), int(j) + 1).decode() for j in added]
        return pa.array(texts, pa.large_string())

    def replaced(self, drop_ids: set[str], add: pa.Table | None) -> _DiskStore:
        newly = [r for r in drop_ids if r not in self.deleted]
        hidden = self.hidden
        if newly:
            hidden += self.base.find(pa.array(newly, pa.string())).num_rows
        return _DiskStore(self.base, self.deleted | frozenset(drop_ids),
                          self.added.replaced(set(drop_ids), add), hidden)


def _store_table(ids: Any, micros: np.ndarray, bodies: list[str],
                 start: np.ndarray | None = None) -> pa.Table:
    """Records serialised in Python (small endpoints, mutations)."""
    n = len(micros)
    return pa.table({
        "mod": pa.array(micros, pa.int64()),
        "id": _arrow_strings(ids),
        "item": pa.array([f"{b}," for b in bodies], pa.large_string()),
        "start": pa.array(start if start is not None else np.full(n, _MIN_US), pa.int64()),
    }, schema=_STORE_SCHEMA)


def _parse_instant(value: str) -> int | None:
    """UTC microseconds of an RFC 3339 date-time with offset, None when it is not one."""
    if re.search(r" \d{2}:\d{2}$", value):  # '+' decoded as a space by a careless client
        value = value[:-6] + "+" + value[-5:]
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return _micros(at)


def _micros(at: dt.datetime) -> int:
    delta = at.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _record_instant(record: Any) -> int | None:
    meta = record.get("meta") if isinstance(record, dict) else None
    modified = meta.get("modified") if isinstance(meta, dict) else None
    return _parse_instant(modified) if isinstance(modified, str) else None


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(STOCKHOLM).isoformat(timespec="microseconds")


# --- the served state ------------------------------------------------------------------------

@dataclass(frozen=True)
class Deletion:
    at: int        # UTC microseconds
    key: str       # key in the deletions payload
    id: str


class SS12000Data:
    """What the simulated school platform serves; safe to mutate while it is being served."""

    def __init__(self, records: dict[str, _Store | _DiskStore] | None = None,
                 deletions: Iterable[Deletion] = (),
                 max_page_size: int = 10_000) -> None:
        empty = _store_table([], np.empty(0, np.int64), [])
        self._stores = {e: (records or {}).get(e) or _Store(empty) for e in RECORD_ENDPOINTS}
        self._deletions: list[tuple[int, str, str]] = sorted((d.at, d.key, d.id) for d in deletions)
        self._lock = threading.Lock()
        self.max_page_size = max_page_size

    # construction -----------------------------------------------------------------------------
    @classmethod
    def from_population(cls, pop: Any) -> SS12000Data:
        """Records per endpoint from the population frames (see brief_population: column names)."""
        orgs = pop.organisations.reset_index(drop=True)
        unit_ids = dict(zip(orgs.loc[orgs.organisation_type == "Skolenhet", "school_unit_code"],
                            orgs.loc[orgs.organisation_type == "Skolenhet", "id"], strict=True))
        return cls({
            "organisations": _organisation_store(orgs),
            "persons": _person_store(pop.persons, pop.enrolments, unit_ids),
            "calendarEvents": (_calendar_disk_store(pop.calendar_events, pop.attendances.world)
                               if isinstance(pop.attendances, AttendanceParts)
                               else _calendar_store(pop.calendar_events)),
            "attendances": (_attendance_disk_store(pop.attendances, pop.persons)
                            if isinstance(pop.attendances, AttendanceParts)
                            else _attendance_store(pop.attendances, pop.persons)),
        })

    @classmethod
    def from_records(cls, records: dict[str, list[dict[str, Any]]]) -> SS12000Data:
        """Records given as JSON objects (served as they are; tests use this for odd records)."""
        stores = {}
        for endpoint, recs in records.items():
            _check_endpoint(endpoint)
            stores[endpoint] = _Store(_verbatim_table(endpoint, recs, default=0))
        return cls(stores)

    # reading ----------------------------------------------------------------------------------
    def store(self, endpoint: str) -> _Store | _DiskStore:
        endpoint = _endpoint(endpoint)
        _check_endpoint(endpoint)
        return self._stores[endpoint]

    def count(self, endpoint: str) -> int:
        endpoint = _endpoint(endpoint)
        if endpoint == DELETED_ENDPOINT:
            return len(self._deletions)
        return len(self.store(endpoint))

    def get(self, endpoint: str, record_id: str) -> dict[str, Any] | None:
        """The current record with that id (a copy), or None."""
        text = self.store(_endpoint(endpoint)).lookup([record_id]).get(record_id)
        return None if text is None else json.loads(text)

    def ids(self, endpoint: str) -> list[str]:
        return self.store(_endpoint(endpoint)).id_list()

    def deletions(self) -> list[tuple[int, str, str]]:
        return list(self._deletions)

    def served_checksum(self, endpoint: str, after: str | dt.datetime | None = None) -> tuple[int, str]:
        """(count, records_checksum) of what a client pulling everything since ``after`` gets;
        ``endpoint`` is an endpoint ('calendarEvents') or an extractor entity ('calendar_events')."""
        endpoint = _endpoint(endpoint)
        instant = _after_instant(after)
        if endpoint == DELETED_ENDPOINT:
            rows = self._deletions
            lo = 0 if instant is None else bisect.bisect_right(rows, (instant, "\uffff", "\uffff"))
            texts = [canonical_json(deletion_record(k, i)) for _, k, i in rows[lo:]]
            return len(texts), records_checksum(texts)
        texts = self.store(endpoint).texts_after(instant)
        return len(texts), records_checksum(texts)

    # mutation ---------------------------------------------------------------------------------
    def now(self, at: dt.datetime | None = None) -> dt.datetime:
        """The server's modification clock: ``at`` (default: the wall clock), but never earlier
        than the newest modification served, like a real server stamping ``meta.modified``."""
        latest = max((m for s in self._stores.values() if (m := s.last_mod()) is not None),
                     default=_MIN_US)
        wanted = _micros(at if at is not None and at.tzinfo else
                         (at.replace(tzinfo=STOCKHOLM) if at is not None else dt.datetime.now(dt.UTC)))
        instant = max(wanted, latest + 1)
        return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
                + dt.timedelta(microseconds=instant)).astimezone(STOCKHOLM)

    def upsert(self, endpoint: str, record: dict[str, Any], at: dt.datetime | None = None, *,
               verbatim: bool = False) -> dict[str, Any]:
        """Insert or replace the record with ``record['id']``; ``meta.modified`` becomes ``at``
        (default: now; moved to just after the newest modification served if it is not later,
        so that an incremental client sees the change), ``meta.created`` is kept from the old
        version. ``verbatim`` serves the record exactly as given (for malformed records in
        tests; its own ``meta.modified`` orders it). Returns the served record."""
        return self.upsert_many(endpoint, [record], at, verbatim=verbatim)[0]

    def upsert_many(self, endpoint: str, records: list[dict[str, Any]], at: dt.datetime | None = None,
                    *, verbatim: bool = False) -> list[dict[str, Any]]:
        endpoint = _endpoint(endpoint)
        _check_endpoint(endpoint)
        with self._lock:
            store = self._stores[endpoint]
            when = self.now(at)
            served: list[dict[str, Any]] = []
            wanted = [r.get("id") for r in records if not verbatim and isinstance(r, dict)]
            current = store.lookup([r for r in wanted if isinstance(r, str) and r])
            for record in records:
                if verbatim:
                    served.append(record)
                    continue
                rid = record.get("id")
                if not isinstance(rid, str) or not rid:
                    raise ValueError(f"upsert {endpoint}: a record needs a string id")
                new = json.loads(canonical_json(record))
                old = current.get(rid)
                old_meta = json.loads(old).get("meta", {}) if old is not None else {}
                created = old_meta.get("created") if isinstance(old_meta, dict) else None
                new["meta"] = {"created": created or _rfc3339(when), "modified": _rfc3339(when)}
                served.append(new)
            ids = {r["id"] for r in served if isinstance(r, dict) and isinstance(r.get("id"), str)}
            table = _verbatim_table(endpoint, served, default=_micros(when))
            self._stores[endpoint] = store.replaced(ids, table)
        return served

    def delete(self, endpoint: str, record_id: str, at: dt.datetime | None = None) -> None:
        """Remove a record; it is listed by /deletedEntities for ``after`` earlier than ``at``."""
        self.delete_many(endpoint, [record_id], at)

    def delete_many(self, endpoint: str, record_ids: list[str], at: dt.datetime | None = None) -> None:
        endpoint = _endpoint(endpoint)
        _check_endpoint(endpoint)
        with self._lock:
            store = self._stores[endpoint]
            found = store.lookup(record_ids)
            missing = [r for r in record_ids if r not in found]
            if missing:
                raise KeyError(f"{endpoint}: {len(missing)} id(s) not served")
            instant = _micros(at or dt.datetime.now(dt.UTC))
            self._stores[endpoint] = store.replaced(set(record_ids), None)
            for rid in record_ids:
                bisect.insort(self._deletions, (instant, DELETED_KEYS[endpoint], rid))


# entity names of the extractor -> endpoints (served_checksum accepts either)
_ENTITY_ENDPOINTS = {"calendar_events": "calendarEvents", "deleted_entities": DELETED_ENDPOINT}


def _endpoint(name: str) -> str:
    name = name.strip("/")
    return _ENTITY_ENDPOINTS.get(name, name)


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in RECORD_ENDPOINTS:
        raise KeyError(f"unknown SS 12000 endpoint {endpoint!r}; served: {', '.join(RECORD_ENDPOINTS)}")


def _after_instant(after: str | dt.datetime | None) -> int | None:
    if after is None:
        return None
    if isinstance(after, dt.datetime):
        return _micros(after if after.tzinfo else after.replace(tzinfo=STOCKHOLM))
    instant = _parse_instant(after)
    if instant is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {after!r}")
    return instant


def _verbatim_table(endpoint: str, records: list[Any], default: int) -> pa.Table:
    ids, micros, bodies, starts = [], [], [], []
    for record in records:
        rid = record.get("id") if isinstance(record, dict) else None
        ids.append(rid if isinstance(rid, str) else f"~{uuid.uuid4()}")
        instant = _record_instant(record)
        micros.append(default if instant is None else instant)
        start = record.get("startTime") if isinstance(record, dict) else None
        start_us = _parse_instant(start) if isinstance(start, str) else None
        starts.append(_MIN_US if start_us is None else start_us)
        bodies.append(canonical_json(record))
    return _store_table(ids, np.array(micros, np.int64), bodies, np.array(starts, np.int64))


# --- population -> records -------------------------------------------------------------------

def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True  # list-like


def _organisation_store(orgs: pd.DataFrame) -> _Store:
    modified, micros = _instants(orgs["modified_at"])
    mod_text = modified.to_pylist()
    bodies = []
    for i, row in enumerate(orgs.itertuples(index=False)):
        rec: dict[str, Any] = {
            "id": row.id,
            "displayName": row.display_name,
            "organisationType": row.organisation_type,
            "meta": {"created": mod_text[i], "modified": mod_text[i]},
        }
        if _present(row.organisation_number):
            rec["organisationNumber"] = row.organisation_number
        if _present(row.municipality_code):
            rec["municipalityCode"] = row.municipality_code
        if row.organisation_type == "Skolenhet":
            if _present(row.school_unit_code):
                rec["schoolUnitCode"] = row.school_unit_code
            if row.school_types is not None and len(row.school_types):
                rec["schoolTypes"] = [str(t) for t in row.school_types]
            if _present(row.parent_organisation_id):
                rec["parentOrganisation"] = {"id": row.parent_organisation_id}
        bodies.append(canonical_json(rec))
    return _Store(_store_table(orgs["id"].tolist(), micros, bodies))


def _iso_date(value: Any) -> str | None:
    if not _present(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def _person_store(persons: pd.DataFrame, enrolments: pd.DataFrame, unit_ids: dict[str, str]) -> _Store:
    pupils = persons[persons["ss12000_id"].notna()].reset_index(drop=True)
    by_person: dict[Any, list[dict[str, Any]]] = {}
    enrol = enrolments.sort_values(["person_key", "start_date"], kind="stable")
    unknown = set(enrol["school_unit_code"]) - set(unit_ids)
    if unknown:
        raise ValueError(f"enrolments name {len(unknown)} school unit code(s) without a Skolenhet")
    for row in enrol.itertuples(index=False):
        item: dict[str, Any] = {
            "enroledAt": {"id": unit_ids[row.school_unit_code]},
            "schoolType": row.school_type,
            "schoolYear": int(row.school_year),
            "startDate": _iso_date(row.start_date),
        }
        end = _iso_date(row.end_date)
        if end:
            item["endDate"] = end
        by_person.setdefault(row.person_key, []).append(item)
    modified, micros = _instants(pupils["modified_at"])
    mod_text = modified.to_pylist()
    bodies = []
    for i, row in enumerate(pupils.itertuples(index=False)):
        rec = {
            "id": row.ss12000_id,
            "givenName": row.first_name,
            "familyName": row.last_name,
            "civicNo": {"value": row.pnr},
            "birthDate": _iso_date(row.birth_date),
            "sex": row.sex,
            "securityMarking": row.security_marking,
            "enrolments": by_person.get(row.person_key, []),
            "meta": {"created": mod_text[i], "modified": mod_text[i]},
        }
        bodies.append(canonical_json(rec))
    return _Store(_store_table(pupils["ss12000_id"].tolist(), micros, bodies))


def _calendar_store(events: pd.DataFrame) -> _Store:
    modified, micros = _instants(events["modified_at"])
    start, start_us = _instants(events["start_time"])
    end, _ = _instants(events["end_time"])
    columns = {"id": _jstr(events["id"]), "activity": _jstr(events["activity_id"]),
               "start_at": _jstr(start), "end_at": _jstr(end), "modified": _jstr(modified)}
    body = _sql_obj({
        "id": "id",
        "activity": _sql_ref("activity"),
        "startTime": "start_at",
        "endTime": "end_at",
        "meta": _sql_obj({"created": "modified", "modified": "modified"}),
    })
    return _render_store(columns, _sql_concat([*body, "','"]), events["id"], micros, start_us)


_ATTENDANCE_MINUTES = {"attendanceMinutes": "attendance_minutes",
                       "validAbsenceMinutes": "valid_absence_minutes",
                       "invalidAbsenceMinutes": "invalid_absence_minutes",
                       "otherAttendanceMinutes": "other_attendance_minutes"}
_ATTENDANCE_BODY = _sql_concat([*_sql_obj({
    "id": "id",
    "calendarEvent": _sql_ref("event"),
    "student": _sql_ref("student"),
    "isReported": _sql_bool("is_reported"),
    **{key: _sql_int(col) for key, col in _ATTENDANCE_MINUTES.items()},
    "reportedTimestamp": "reported",
    "meta": _sql_obj({"created": "modified", "modified": "modified"}),
}, nullable=["reportedTimestamp"]), "','"])


def _attendance_columns(ids: Any, events: Any, students: Any, is_reported: Any,
                        minutes: dict[str, Any], modified: pa.Array,
                        reported: pa.Array) -> dict[str, pa.Array]:
    """The inputs of _ATTENDANCE_BODY; ``modified``/``reported`` are RFC 3339 texts."""
    return {
        "id": _jstr(ids), "event": _jstr(events), "student": _jstr(students),
        "is_reported": pa.array(np.asarray(is_reported, dtype=bool)),
        "reported": _jstr(reported), "modified": _jstr(modified),
        **{col: pa.array(np.asarray(minutes[col], dtype=np.int64))
           for col in _ATTENDANCE_MINUTES.values()},
    }


def _attendance_store(att: pd.DataFrame, persons: pd.DataFrame) -> _Store:
    pupil_ids = persons.set_index("person_key")["ss12000_id"]
    student = att["person_key"].map(pupil_ids)
    if student.isna().any():
        raise ValueError(f"{int(student.isna().sum())} attendance records belong to people without "
                         "an SS 12000 id")
    modified, micros = _instants(att["modified_at"])
    reported, _ = _instants(att["reported_timestamp"])
    columns = _attendance_columns(att["id"], att["calendar_event_id"], student, att["is_reported"],
                                  {c: att[c] for c in MINUTE_COLUMNS}, modified, reported)
    return _render_store(columns, _ATTENDANCE_BODY, att["id"], micros)


DISK_ROW_GROUP = 8192
DISK_MEMORY_LIMIT = "512MB"


def _utc(micros: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(micros, unit="us", utc=True))


def _attendance_disk_store(parts: AttendanceParts, persons: pd.DataFrame) -> _DiskStore:
    """The attendance endpoint of a generated world, served from disk: DuckDB sorts the
    current records (the parts and their overlay) by (modified, id) into one Parquet file in
    the world directory (spilling to disk rather than holding them); a page reads the row
    groups it needs and renders only its records."""
    directory = parts.world.scratch("ss12000-attendances-")
    path = directory / "attendances.parquet"
    pupils = persons[persons["ss12000_id"].notna()]
    conn = duckdb.connect()
    try:
        conn.execute(f"set temp_directory = '{_sql_text(directory / 'spill')}'")
        conn.execute(f"set memory_limit = '{DISK_MEMORY_LIMIT}'")
        conn.execute("set preserve_insertion_order = false")
        conn.register("_pupils", pa.table({
            "person_key": pa.array(pupils["person_key"].to_numpy(dtype=np.int64)),
            "student": pa.array(pupils["ss12000_id"].astype(str).tolist(), pa.string())}))
        source = parts.sql_source(conn, ordered=False)
        orphans = conn.execute(f"select count(*) from ({source}) a anti join _pupils p "
                               "using (person_key)").fetchone()[0]
        if orphans:
            raise ValueError(f"{orphans} attendance records belong to people without an SS 12000 id")
        minutes = ", ".join(MINUTE_COLUMNS)
        conn.execute(f"""copy (
            select modified_ns // 1000 as mod, id, calendar_event_id as event, p.student,
                   is_reported, {minutes}, reported_ns // 1000 as reported_us
            from ({source}) a join _pupils p using (person_key)
            order by mod, id
        ) to '{_sql_text(path)}' (format parquet, row_group_size {DISK_ROW_GROUP})""")
        # the precision the timestamps show is the column's, as for a store in memory
        units = conn.execute(f"""select
            bool_and(mod % 1000000 = 0), bool_and(mod % 1000 = 0),
            bool_and(reported_us % 1000000 = 0), bool_and(reported_us % 1000 = 0)
            from read_parquet('{_sql_text(path)}')""").fetchone()
    finally:
        conn.close()
    mod_unit = "s" if units[0] is not False else "ms" if units[1] is not False else "us"
    rep_unit = "s" if units[2] is not False else "ms" if units[3] is not False else "us"

    def render(raw: pa.Table) -> pa.Array:
        if raw.num_rows <= _SMALL_PAGE:
            return _attendance_texts(raw, mod_unit, rep_unit)
        reported_us = pc.fill_null(raw.column("reported_us"), _MIN_US).to_numpy()
        modified, _ = _instants(_utc(raw.column("mod").to_numpy()), mod_unit)
        reported, _ = _instants(_utc(reported_us), rep_unit)
        columns = _attendance_columns(raw.column("id"), raw.column("event"), raw.column("student"),
                                      raw.column("is_reported").to_numpy(zero_copy_only=False),
                                      {c: raw.column(c).to_numpy() for c in MINUTE_COLUMNS},
                                      modified, reported)
        return _render_items(columns, _ATTENDANCE_BODY)

    base = _SortedFile(path, render, parts.world)
    weakref.finalize(base, shutil.rmtree, str(directory), True)
    return _DiskStore(base)


_SMALL_PAGE = 256  # rendered in Python: cheaper than a DuckDB query for a few records
_TIMESPEC = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


def _rfc3339_us(micros: int | None, unit: str) -> str | None:
    if micros is None:
        return None
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    return at.astimezone(STOCKHOLM).isoformat(timespec=_TIMESPEC[unit])


def _attendance_texts(raw: pa.Table, mod_unit: str, rep_unit: str) -> pa.Array:
    """The same texts as _ATTENDANCE_BODY renders, built record by record."""
    texts = []
    for r in raw.to_pylist():
        modified = _rfc3339_us(r["mod"], mod_unit)
        rec: dict[str, Any] = {
            "id": r["id"], "calendarEvent": {"id": r["event"]}, "student": {"id": r["student"]},
            "isReported": bool(r["is_reported"]),
            **{key: int(r[col]) for key, col in _ATTENDANCE_MINUTES.items()},
            "meta": {"created": modified, "modified": modified},
        }
        if r["reported_us"] is not None:
            rec["reportedTimestamp"] = _rfc3339_us(r["reported_us"], rep_unit)
        texts.append(canonical_json(rec) + ",")
    return pa.array(texts, pa.large_string())


_CALENDAR_BODY = _sql_concat([*_sql_obj({
    "id": "id",
    "activity": _sql_ref("activity"),
    "startTime": "start_at",
    "endTime": "end_at",
    "meta": _sql_obj({"created": "modified", "modified": "modified"}),
}), "','"])


def _calendar_disk_store(events: pd.DataFrame, world: WorldDirectory) -> _DiskStore:
    """The calendar events of a generated world (millions at Stockholm size), served from a
    Parquet file sorted by (modified, id) like the attendance records."""
    directory = world.scratch("ss12000-calendar-")
    path = directory / "calendarEvents.parquet"
    _, mod = _instants(events["modified_at"])
    _, start = _instants(events["start_time"])
    _, end = _instants(events["end_time"])
    units = {name: _instant_unit(v) for name, v in (("mod", mod), ("start", start), ("end", end))}
    conn = duckdb.connect()
    try:
        conn.execute(f"set temp_directory = '{_sql_text(directory / 'spill')}'")
        conn.execute(f"set memory_limit = '{DISK_MEMORY_LIMIT}'")
        conn.register("_events", pa.table({
            "mod": pa.array(mod, pa.int64()), "id": _arrow_strings(events["id"]),
            "activity": _arrow_strings(events["activity_id"]),
            "start": pa.array(start, pa.int64()), "end_us": pa.array(end, pa.int64())}))
        conn.execute(f"copy (select * from _events order by mod, id) to '{_sql_text(path)}' "
                     f"(format parquet, row_group_size {DISK_ROW_GROUP})")
    finally:
        conn.close()

    def render(raw: pa.Table) -> pa.Array:
        if raw.num_rows <= _SMALL_PAGE:
            texts = []
            for r in raw.to_pylist():
                modified = _rfc3339_us(r["mod"], units["mod"])
                texts.append(canonical_json({
                    "id": r["id"], "activity": {"id": r["activity"]},
                    "startTime": _rfc3339_us(r["start"], units["start"]),
                    "endTime": _rfc3339_us(r["end_us"], units["end"]),
                    "meta": {"created": modified, "modified": modified}}) + ",")
            return pa.array(texts, pa.large_string())
        modified, _ = _instants(_utc(raw.column("mod").to_numpy()), units["mod"])
        start_at, _ = _instants(_utc(raw.column("start").to_numpy()), units["start"])
        end_at, _ = _instants(_utc(raw.column("end_us").to_numpy()), units["end"])
        return _render_items({"id": _jstr(raw.column("id")), "activity": _jstr(raw.column("activity")),
                              "start_at": _jstr(start_at), "end_at": _jstr(end_at),
                              "modified": _jstr(modified)}, _CALENDAR_BODY)

    base = _SortedFile(path, render, world)
    weakref.finalize(base, shutil.rmtree, str(directory), True)
    return _DiskStore(base)


def _sql_text(value: Any) -> str:
    return str(value).replace("'", "''")


# --- HTTP ------------------------------------------------------------------------------------

class _BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()


def _oauth_error(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


def _encode_token(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, endpoint: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise _BadRequest("invalid_page_token", "pageToken is not valid") from None
    if not isinstance(doc, dict) or doc.get("e") != endpoint or not isinstance(doc.get("f"), dict):
        raise _BadRequest("invalid_page_token", "pageToken does not belong to this endpoint")
    return doc


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _BadRequest("invalid_parameter", f"{name} given more than once")
    return values[0]


def _instant_param(params: dict[str, list[str]], name: str) -> int | None:
    value = _single(params, name)
    if value is None:
        return None
    instant = _parse_instant(value)
    if instant is None:
        raise _BadRequest("invalid_parameter", f"{name} must be an RFC 3339 date-time with offset")
    return instant


TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path
FAULT_KINDS = ("429", "500", "503", "stall")
# A random fault never hits more than this many requests in a row: a client that retries a few
# times always gets through, however long the run (a real outage is fail_next's job).
MAX_CONSECUTIVE_FAULTS = 2


@dataclass
class RequestLog:
    path: str
    params: dict[str, list[str]]
    status: int
    fault: str | None = None  # the random fault injected ('429', '500', '503', 'stall'), if any


@dataclass
class _Injection:
    status: int
    retry_after: int | None = None
    stall_seconds: float = 0.0
    body: bytes | None = None
    kind: str | None = None  # set for random faults


class RunningServer:
    """A served ``SS12000Data``; ``base_url`` for clients, ``stop()`` (or ``with``) to end it."""

    def __init__(self, data: SS12000Data, token: str | None, host: str, port: int, *,
                 client_id: str | None = None, client_secret: str | None = None,
                 token_lifetime: float = 3600.0, fault_rate: float = 0.0, fault_seed: int = 0,
                 fault_retry_after: int = 1, fault_stall_seconds: float = 2.0) -> None:
        self.data = data
        self._token = token
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_lifetime = token_lifetime
        self._issued: dict[str, float] = {}  # access token -> expiry (time.monotonic)
        self.tokens_issued = 0
        self.fault_rate = fault_rate
        self.fault_retry_after = fault_retry_after
        self.fault_stall_seconds = fault_stall_seconds
        self._fault_rng = random.Random(fault_seed)
        self._fault_streak = 0
        self._injections: list[_Injection] = []
        self._lock = threading.Lock()
        self.requests: list[RequestLog] = []
        handler = type("_BoundHandler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ss12000-simulator",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None,
                  body: bytes | None = None) -> None:
        """The next ``count`` requests get HTTP ``status`` (with ``Retry-After`` if given) and
        an Error body, or ``body`` as it is (e.g. a truncated 200 answer)."""
        with self._lock:
            self._injections.extend(_Injection(status, retry_after, body=body) for _ in range(count))

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """The next ``count`` requests wait ``seconds`` before answering normally."""
        with self._lock:
            self._injections.extend(_Injection(0, None, seconds) for _ in range(count))

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def revoke_tokens(self) -> int:
        """Revoke every access token issued so far (a client must fetch a new one); returns how
        many were valid."""
        with self._lock:
            now = time.monotonic()
            valid = sum(1 for expiry in self._issued.values() if expiry > now)
            self._issued.clear()
        return valid

    def expire_tokens(self) -> None:
        """Let every issued access token run out now (as if its ``expires_in`` had passed)."""
        with self._lock:
            now = time.monotonic()
            self._issued = {t: min(expiry, now) for t, expiry in self._issued.items()}

    def faults(self) -> dict[str, int]:
        """How many random faults of each kind were injected so far."""
        counts = dict.fromkeys(FAULT_KINDS, 0)
        for entry in list(self.requests):
            if entry.fault:
                counts[entry.fault] += 1
        return counts

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # request handling -------------------------------------------------------------------------
    def _next_injection(self) -> _Injection | None:
        with self._lock:
            return self._injections.pop(0) if self._injections else None

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        given = header[7:].strip()
        if self._token and hmac.compare_digest(given.encode(), self._token.encode()):
            return True
        with self._lock:
            expiry = self._issued.get(given)
        return expiry is not None and expiry > time.monotonic()

    def _random_fault(self) -> _Injection | None:
        if self.fault_rate <= 0:
            return None
        with self._lock:
            draw, kind = self._fault_rng.random(), self._fault_rng.choice(FAULT_KINDS)
            if draw >= self.fault_rate or self._fault_streak >= MAX_CONSECUTIVE_FAULTS:
                self._fault_streak = 0
                return None
            self._fault_streak += 1
        if kind == "stall":
            return _Injection(0, None, self.fault_stall_seconds, kind=kind)
        return _Injection(int(kind), self.fault_retry_after if kind == "429" else None, kind=kind)

    def issue_token(self, handler: _Handler) -> tuple[int, bytes, dict[str, str]]:
        """``POST /oauth/token``: the OAuth2 client-credentials grant (RFC 6749 §4.4); the client
        authenticates by HTTP Basic or by ``client_id``/``client_secret`` form fields."""
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if not self._client_id or not self._client_secret:
            return 404, _error("not_found", "this server has no token endpoint"), {}
        length = int(handler.headers.get("Content-Length") or 0)
        form = parse_qs(handler.rfile.read(length).decode("utf-8", "replace") if length else "",
                        keep_blank_values=True)
        client_id = (form.get("client_id") or [None])[0]
        client_secret = (form.get("client_secret") or [None])[0]
        header = handler.headers.get("Authorization") or ""
        if header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (ValueError, binascii.Error):
                pair = ""
            if ":" in pair:
                user, _, password = pair.partition(":")
                client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if (form.get("grant_type") or [None])[0] != "client_credentials":
            return 400, _oauth_error("unsupported_grant_type",
                                     "grant_type must be client_credentials"), no_store
        if not (client_id and client_secret
                and hmac.compare_digest(client_id.encode(), self._client_id.encode())
                and hmac.compare_digest(client_secret.encode(), self._client_secret.encode())):
            return 401, _oauth_error("invalid_client", "client authentication failed"), {
                **no_store, "WWW-Authenticate": 'Basic realm="ss12000"'}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._issued[token] = time.monotonic() + self.token_lifetime
            self.tokens_issued += 1
        lifetime = self.token_lifetime
        body = json.dumps({"access_token": token, "token_type": "Bearer",
                           "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime})
        return 200, body.encode(), no_store

    def respond(self, handler: _Handler) -> tuple[int, bytes, dict[str, str]]:
        url = urlsplit(handler.path)
        params = parse_qs(url.query, keep_blank_values=True)
        injection = self._next_injection() or self._random_fault()
        handler.fault = injection.kind if injection is not None else None
        if injection is not None:
            if injection.stall_seconds:
                time.sleep(injection.stall_seconds)
            if injection.status:
                headers = ({"Retry-After": str(injection.retry_after)}
                           if injection.retry_after is not None else {})
                body = injection.body
                if body is None:
                    body = _error("injected", f"simulated HTTP {injection.status}")
                return injection.status, body, headers
        if not self._authorised(handler.headers.get("Authorization")):
            return 401, _error("unauthorized", "missing or invalid bearer token"), {
                "WWW-Authenticate": 'Bearer realm="ss12000"'}
        endpoint = url.path.strip("/")
        if endpoint not in (*RECORD_ENDPOINTS, DELETED_ENDPOINT):
            return 404, _error("not_found", f"no endpoint {url.path}"), {}
        try:
            if endpoint == DELETED_ENDPOINT:
                return 200, self._deleted_page(params), {}
            return 200, self._record_page(endpoint, params), {}
        except _BadRequest as exc:
            return exc.status, _error(exc.code, str(exc)), {}

    def _limit(self, params: dict[str, list[str]]) -> int:
        value = _single(params, "limit")
        if value is None:
            return self.data.max_page_size
        if not value.isdigit() or int(value) < 1:
            raise _BadRequest("invalid_parameter", "limit must be a positive integer")
        return min(int(value), self.data.max_page_size)

    def _filters(self, endpoint: str, params: dict[str, list[str]],
                 allowed: set[str]) -> tuple[dict[str, Any], list[Any] | None]:
        token = _single(params, "pageToken")
        others = sorted(set(params) - {"limit", "pageToken"})
        if token is not None:
            if others:
                raise _BadRequest("invalid_filter",
                                  f"pageToken cannot be combined with other filters ({', '.join(others)})")
            doc = _decode_token(token, endpoint)
            return doc["f"], doc.get("k")
        unknown = [p for p in others if p not in allowed]
        if unknown:
            raise _BadRequest("unsupported_parameter", f"unsupported parameter(s): {', '.join(unknown)}")
        return {}, None

    def _record_page(self, endpoint: str, params: dict[str, list[str]]) -> bytes:
        allowed = _RECORD_PARAMS | (_CALENDAR_PARAMS if endpoint == "calendarEvents" else set())
        limit = self._limit(params)
        filters, key = self._filters(endpoint, params, allowed)
        if key is None:
            filters = {name: _instant_param(params, name) for name in sorted(allowed)}
            if endpoint == "calendarEvents":
                missing = [n for n in sorted(_CALENDAR_PARAMS) if filters.get(n) is None]
                if missing:
                    raise _BadRequest("missing_parameter", f"required: {', '.join(missing)}")
        store = self.data.store(endpoint)
        query = _PageQuery(
            after=filters.get("meta.modified.after"), before=filters.get("meta.modified.before"),
            key=None if key is None else (int(key[0]), str(key[1])),
            start_range=((filters["startTime.onOrAfter"], filters["startTime.onOrBefore"])
                         if endpoint == "calendarEvents" else None))
        body, last, more = store.page(query, limit)
        token = None
        if more and last is not None:
            token = _encode_token({"e": endpoint, "f": filters, "k": list(last)})
        return b'{"data":[' + body + b'],"pageToken":' + json.dumps(token).encode() + b"}"

    def _deleted_page(self, params: dict[str, list[str]]) -> bytes:
        limit = self._limit(params)
        filters, key = self._filters(DELETED_ENDPOINT, params, {"after", "entities"})
        if key is None:
            wanted: list[str] | None = None
            raw = params.get("entities")
            if raw:
                names = [n.strip() for v in raw for n in v.split(",") if n.strip()]
                bad = [n for n in names if n not in _ENTITY_ENUM]
                if bad:
                    raise _BadRequest("invalid_parameter", f"unknown entities: {', '.join(bad)}")
                wanted = sorted({_ENTITY_ENUM[n] for n in names})
            filters = {"after": _instant_param(params, "after"), "entities": wanted}
        rows = self.data.deletions()
        after = filters.get("after")
        start = 0 if after is None else bisect.bisect_right(rows, (after, "\uffff", "\uffff"))
        if key is not None:
            start = max(start, bisect.bisect_right(rows, (int(key[0]), str(key[1]), str(key[2]))))
        wanted = filters.get("entities")
        page: list[tuple[int, str, str]] = []
        more = False
        for row in rows[start:]:
            if wanted is not None and row[1] not in wanted:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(row)
        data: dict[str, list[str]] = {}
        for _, k, rid in page:
            data.setdefault(k, []).append(rid)
        token = _encode_token({"e": DELETED_ENDPOINT, "f": filters, "k": list(page[-1])}) if more else None
        return json.dumps({"data": data, "pageToken": token}, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SamverkanSS12000Simulator/2.1"
    app: RunningServer
    _received_at: float | None = None
    fault: str | None = None

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._received_at = time.time()
        try:
            status, body, headers = self.app.respond(self)
        except Exception:  # noqa: BLE001 - a simulator bug must still answer with an Error body
            status, body, headers = 500, _error("internal", "simulator error"), {}
        # logged before answering, so that a client who has its answer sees its request logged
        self.app.requests.append(RequestLog(urlsplit(self.path).path,
                                            parse_qs(urlsplit(self.path).query), status, self.fault))
        self.fault = None
        try:
            self._send(status, body, headers)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        if urlsplit(self.path).path != TOKEN_PATH:
            self._refuse()
            return
        self._received_at = time.time()
        try:
            status, body, headers = self.app.issue_token(self)
        except Exception:  # noqa: BLE001 - a simulator bug must still answer with an Error body
            status, body, headers = 500, _error("internal", "simulator error"), {}
        self.app.requests.append(RequestLog(TOKEN_PATH, {}, status))
        self._send(status, body, headers)

    def _refuse(self) -> None:
        self._received_at = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        allow = f"GET (POST {TOKEN_PATH} only)"
        self._send(405, _error("method_not_allowed", f"the simulator serves {allow}"), {"Allow": "GET, POST"})

    do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is the time the request arrived: a client may use it as the snapshot
        # instant of /deletedEntities.
        return email.utils.formatdate(timestamp or self._received_at or time.time(), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        return


def serve(
    data: SS12000Data,
    token: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    token_lifetime: float = 3600.0,
    fault_rate: float = 0.0,
    fault_seed: int = 0,
    fault_retry_after: int = 1,
    fault_stall_seconds: float = 2.0,
) -> RunningServer:
    """Serve ``data`` over HTTP in a daemon thread.

    Requests need ``Authorization: Bearer <token>`` with the static ``token`` or with an access
    token issued by ``POST /oauth/token`` (client-credentials grant for ``client_id`` /
    ``client_secret``, valid ``token_lifetime`` seconds). ``fault_rate`` (0..1) answers about
    that share of GET requests, chosen by a ``random.Random(fault_seed)``, with an even mix of
    429 (``Retry-After: fault_retry_after``), 500, 503 and a stall of ``fault_stall_seconds``
    before a normal answer (set it above the client's time-out); at most
    ``MAX_CONSECUTIVE_FAULTS`` requests in a row fail. The token endpoint gets no random faults.
    """
    if not token and not (client_id and client_secret):
        raise ValueError("serve: a non-empty token or client_id and client_secret are required")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("serve: fault_rate must be between 0 and 1")
    if fault_retry_after < 0 or fault_stall_seconds < 0 or token_lifetime <= 0:
        raise ValueError("serve: fault_retry_after and fault_stall_seconds must not be negative, "
                         "token_lifetime must be positive")
    return RunningServer(data, token, host, port, client_id=client_id, client_secret=client_secret,
                         token_lifetime=token_lifetime, fault_rate=fault_rate, fault_seed=fault_seed,
                         fault_retry_after=fault_retry_after, fault_stall_seconds=fault_stall_seconds)


__all__ = ["DELETED_ENDPOINT", "FAULT_KINDS", "RECORD_ENDPOINTS", "TOKEN_PATH", "Deletion",
           "RequestLog", "RunningServer", "SS12000Data", "serve"]
