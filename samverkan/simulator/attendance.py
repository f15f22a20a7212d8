"""The attendance records of a generated world, kept on disk as Parquet part files.

A municipality's term of attendance is tens of millions of records at Stockholm size, far
more than fits in memory next to everything else, so ``population.generate`` writes them one
school day at a time into ``<world>/attendance/part-NNNNN.parquet`` (one file per lesson day,
in generation order) and never holds more than one day. :class:`AttendanceParts` names those
files and carries a small overlay of changes (records deleted, new versions of records) that
both the SS 12000 server and the ground truth apply, so that a test can change the source
without rewriting the parts.

The parts' columns (:data:`PART_SCHEMA`) are the attendance contract of ``Population`` with the
timestamps as UTC epoch nanoseconds, plus the lesson's local day and length so that the ground
truth's per person and day sums need no join with the calendar events.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TZ = "Europe/Stockholm"
MINUTE_COLUMNS = ("attendance_minutes", "valid_absence_minutes", "invalid_absence_minutes",
                  "other_attendance_minutes")
PART_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("calendar_event_id", pa.string()),
    ("person_key", pa.int64()),
    ("is_reported", pa.bool_()),
    *[(c, pa.int16()) for c in MINUTE_COLUMNS],
    ("reported_ns", pa.int64()),   # UTC epoch nanoseconds, null: not reported
    ("modified_ns", pa.int64()),   # UTC epoch nanoseconds
    ("lesson_day", pa.int32()),    # the lesson's local date, days since 1970-01-01
    ("lesson_minutes", pa.int16()),
])
FRAME_COLUMNS = ["id", "calendar_event_id", "person_key", "is_reported", *MINUTE_COLUMNS,
                 "reported_timestamp", "modified_at"]
DUCKDB_MEMORY_LIMIT = "512MB"


class WorldDirectory:
    """A directory a world is written into; a private temporary one is removed when the last
    object holding it is garbage collected (or when the process exits)."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is None:
            self.path = Path(tempfile.mkdtemp(prefix="samverkan-world-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        else:
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
        self.temporary = path is None

    def scratch(self, prefix: str) -> Path:
        """A new empty directory inside the world (removed with a temporary world)."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.path))


@dataclass(frozen=True)
class AttendanceParts:
    """The attendance records of a world: Parquet part files plus an overlay of changes.

    files: the part files (PART_SCHEMA), in generation order.
    rows: records in the files.
    deleted: ids removed from the parts (the newest version wins otherwise).
    versions: further versions of records (PART_SCHEMA); a version replaces every earlier one
        of its id (by ``modified_ns``, then by its position here).
    """

    world: WorldDirectory
    files: tuple[Path, ...]
    rows: int
    deleted: frozenset[str] = frozenset()
    versions: pa.Table = field(default_factory=PART_SCHEMA.empty_table)

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Current records (after the overlay); for a world without overlay, the part rows."""
        if not self.deleted and not self.versions.num_rows:
            return self.rows
        return int(self._query("select count(*) from ({current})").fetchone()[0])

    def batches(self) -> Iterator[pa.Table]:
        """The parts' records as they were written, one part at a time (no overlay)."""
        for path in self.files:
            yield pq.read_table(path, schema=PART_SCHEMA)

    def table(self) -> pa.Table:
        """Every current record (overlay applied) in PART_SCHEMA; small worlds only."""
        return self._query("select * from ({current}) order by _part, _row").to_arrow_table() \
            .select(PART_SCHEMA.names).cast(PART_SCHEMA)

    def frame(self) -> pd.DataFrame:
        """The current records as the ``Population.attendances`` contract frame (small worlds)."""
        return parts_frame(self.table())

    def records(self, ids: Iterable[str]) -> pa.Table:
        """The current versions of the records with these ids (PART_SCHEMA)."""
        wanted = pa.table({"id": pa.array(sorted(set(ids)), pa.string())})
        return self._query("select c.* from ({current}) c semi join _wanted w on c.id = w.id "
                           "order by _part, _row", _wanted=wanted).to_arrow_table() \
            .select(PART_SCHEMA.names).cast(PART_SCHEMA)

    def sql_source(self, conn: duckdb.DuckDBPyConnection, ordered: bool = True) -> str:
        """Registers what the overlay needs on ``conn`` and returns a SQL subquery of the
        current records (PART_SCHEMA columns plus ``_part``, ``_row``: generation order, only
        meaningful when ``ordered`` or when the overlay has versions)."""
        names = ", ".join(PART_SCHEMA.names)
        if self.files and not ordered and not self.versions.num_rows:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in self.files)
            base = f"select {names}, 0::bigint as _part, 0::bigint as _row from read_parquet([{files}])"
        elif self.files:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in self.files)
            conn.register("_att_files", pa.table({
                "_file": pa.array([str(p) for p in self.files]),
                "_part": pa.array(np.arange(len(self.files)), pa.int64())}))
            base = (f"select {names}, f._part, b.file_row_number as _row from read_parquet("
                    f"[{files}], file_row_number = true, filename = true) b "
                    "join _att_files f on b.filename = f._file")
        else:
            conn.register("_att_empty", PART_SCHEMA.empty_table())
            base = f"select {names}, 0::bigint as _part, 0::bigint as _row from _att_empty"
        if self.deleted:
            conn.register("_att_deleted", pa.table({"id": pa.array(sorted(self.deleted),
                                                                   pa.string())}))
            base = f"select * from ({base}) b anti join _att_deleted d on b.id = d.id"
        if not self.versions.num_rows:
            return base
        versions = self.versions.append_column(
            "_part", pa.array(np.full(self.versions.num_rows, len(self.files)), pa.int64())
        ).append_column("_row", pa.array(np.arange(self.versions.num_rows), pa.int64()))
        conn.register("_att_versions", versions)
        return (f"select * exclude (_rank) from (select *, row_number() over (partition by id "
                "order by modified_ns desc, _part desc, _row desc) as _rank from "
                f"(select * from ({base}) union all by name select * from _att_versions)) "
                "where _rank = 1")

    def _query(self, sql: str, **tables: pa.Table) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect()
        for name, table in tables.items():
            conn.register(name, table)
        return conn.execute(sql.format(current=self.sql_source(conn)))

    def connect(self, spill: Path | None = None,
                database: Path | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection (to ``database``, default in memory) that spills into ``spill``
        (default ``<world>/duckdb-spill``) rather than taking most of the machine's memory
        (memory limit :data:`DUCKDB_MEMORY_LIMIT`; results in no particular order unless asked
        for)."""
        conn = duckdb.connect(str(database) if database is not None else ":memory:")
        try:
            conn.execute("set preserve_insertion_order = false")
            directory = str(spill or self.world.path / "duckdb-spill").replace("'", "''")
            conn.execute(f"set temp_directory = '{directory}'")
            conn.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        except BaseException:
            conn.close()
            raise
        return conn

    def day_totals_sql(self, conn: duckdb.DuckDBPyConnection, last_day: int,
                       excluded: Iterable[int] = ()) -> str:
        """Registers what it needs on ``conn`` and returns a SQL query of the ground truth's
        attendance input: per person and lesson day (<= ``last_day``, days since epoch) of the
        current records, persons in ``excluded`` left out, the columns ``person``, ``day``
        (bigint) and ``scheduled``, ``reported`` (records), ``offered``, ``absence``,
        ``invalid`` (minutes of the reported records), all double; in no particular order."""
        source = self.sql_source(conn, ordered=False)
        conn.register("_excluded", pa.table({"person_key": pa.array(sorted(set(excluded)),
                                                                    pa.int64())}))
        return f"""
            select person_key as person, lesson_day::bigint as day,
                   count(*)::double as scheduled,
                   count(*) filter (where is_reported)::double as reported,
                   coalesce(sum(lesson_minutes) filter (where is_reported), 0)::double as offered,
                   coalesce(sum(valid_absence_minutes + invalid_absence_minutes)
                            filter (where is_reported), 0)::double as absence,
                   coalesce(sum(invalid_absence_minutes) filter (where is_reported), 0)::double
                       as invalid
            from ({source}) a anti join _excluded x using (person_key)
            where lesson_day <= {int(last_day)}
            group by all"""

    def day_totals(self, last_day: int, excluded: Iterable[int] = ()) -> pd.DataFrame:
        """:meth:`day_totals_sql` as a frame, sorted by person and day (small worlds: the
        ground truth of a large one sums in DuckDB without this frame)."""
        conn = self.connect()
        try:
            table = conn.execute(self.day_totals_sql(conn, last_day, excluded)
                                 + " order by person, day").to_arrow_table()
        finally:
            conn.close()
        return table.to_pandas()

    # -- changes (copies; the part files are shared) ----------------------------------------------
    def without(self, ids: Iterable[str]) -> AttendanceParts:
        """A copy with the records of ``ids`` deleted (every version)."""
        drop = frozenset(ids)
        versions = self.versions
        if versions.num_rows and drop:
            keep = pa.compute.invert(pa.compute.is_in(versions.column("id"),
                                                      pa.array(sorted(drop), pa.string())))
            versions = versions.filter(keep)
        return replace(self, deleted=self.deleted | drop, versions=versions)

    def with_versions(self, records: pa.Table | pd.DataFrame) -> AttendanceParts:
        """A copy with new versions of records (PART_SCHEMA, or the contract frame's columns
        for records that exist: their lesson day and length are taken from the current one)."""
        if isinstance(records, pd.DataFrame):
            records = frame_parts(records, self)
        records = records.select(PART_SCHEMA.names).cast(PART_SCHEMA)
        versions = pa.concat_tables([self.versions, records])
        undeleted = self.deleted - set(records.column("id").to_pylist())
        return replace(self, deleted=frozenset(undeleted), versions=versions)


def _aware(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True)
                     .tz_convert(TZ))


def parts_frame(table: pa.Table) -> pd.DataFrame:
    """PART_SCHEMA records -> the ``Population.attendances`` contract frame."""
    nat = np.iinfo(np.int64).min
    reported = table.column("reported_ns").to_numpy(zero_copy_only=False)
    reported = np.where(pd.isna(reported), nat, reported).astype(np.int64) \
        if table.num_rows else np.empty(0, np.int64)
    out = pd.DataFrame({
        "id": pd.Series(table.column("id").to_numpy(zero_copy_only=False), dtype="str"),
        "calendar_event_id": pd.Series(table.column("calendar_event_id")
                                       .to_numpy(zero_copy_only=False), dtype="str"),
        "person_key": table.column("person_key").to_numpy().astype(np.int64),
        "is_reported": table.column("is_reported").to_numpy(zero_copy_only=False).astype(bool),
        **{c: table.column(c).to_numpy().astype(np.int64) for c in MINUTE_COLUMNS},
        "reported_timestamp": _aware(reported),
        "modified_at": _aware(table.column("modified_ns").to_numpy().astype(np.int64)),
    })
    return out[FRAME_COLUMNS]


def frame_parts(frame: pd.DataFrame, parts: AttendanceParts | None = None,
                lesson: pd.DataFrame | None = None) -> pa.Table:
    """Contract-frame records -> PART_SCHEMA. The lesson day and length come from ``lesson``
    (columns calendar_event_id, lesson_day, lesson_minutes) or from the current records of
    ``parts`` with the same id."""
    def ns(values: pd.Series) -> np.ndarray:
        return pd.to_datetime(values, utc=True).dt.as_unit("ns").astype("int64").to_numpy()

    frame = frame.reset_index(drop=True)
    if lesson is None:
        if parts is None:
            raise ValueError("frame_parts: the lesson day and length need parts or lesson")
        known = parts.records(frame["id"].astype(str))
        lesson = pd.DataFrame({"id": known.column("id").to_pylist(),
                               "lesson_day": known.column("lesson_day").to_numpy(),
                               "lesson_minutes": known.column("lesson_minutes").to_numpy()})
        merged = frame[["id"]].merge(lesson, on="id", how="left")
    else:
        merged = frame[["calendar_event_id"]].merge(lesson, on="calendar_event_id", how="left")
    if merged["lesson_day"].isna().any():
        raise ValueError(f"{int(merged['lesson_day'].isna().sum())} attendance record(s) of an "
                         "unknown record or lesson")
    reported = pd.to_datetime(frame["reported_timestamp"], utc=True)
    return pa.table({
        "id": pa.array(frame["id"].astype(str).tolist(), pa.string()),
        "calendar_event_id": pa.array(frame["calendar_event_id"].astype(str).tolist(), pa.string()),
        "person_key": pa.array(frame["person_key"].to_numpy(dtype=np.int64)),
        "is_reported": pa.array(frame["is_reported"].to_numpy(dtype=bool)),
        **{c: pa.array(frame[c].to_numpy(dtype=np.int64), pa.int16()) for c in MINUTE_COLUMNS},
        "reported_ns": pa.array(np.where(reported.isna(), 0, ns(reported.fillna(pd.Timestamp(0, tz="UTC")))),
                                pa.int64(), mask=reported.isna().to_numpy()),
        "modified_ns": pa.array(ns(frame["modified_at"]), pa.int64()),
        "lesson_day": pa.array(merged["lesson_day"].to_numpy(dtype=np.int64), pa.int32()),
        "lesson_minutes": pa.array(merged["lesson_minutes"].to_numpy(dtype=np.int64), pa.int16()),
    }, schema=PART_SCHEMA)


def attendance_frame(attendances: pd.DataFrame | AttendanceParts) -> pd.DataFrame:
    """The contract frame of either form of ``Population.attendances``."""
    return attendances.frame() if isinstance(attendances, AttendanceParts) else attendances


__all__ = ["FRAME_COLUMNS", "PART_SCHEMA", "AttendanceParts", "WorldDirectory",
           "attendance_frame", "frame_parts", "parts_frame"]
