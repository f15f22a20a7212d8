"""The school-day check of the anomaly gate (``samverkan.anomalies.school_day_without_attendance``)
on a real restricted warehouse: the latest day up to R with lessons, in Stockholm's local time,
must have at least one attendance record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from samverkan.anomalies import school_day_without_attendance
from samverkan.config import Paths
from samverkan.warehouse import ensure_restricted_schema

R = dt.date(2026, 6, 12)  # a Friday in summer time: Stockholm is UTC+2


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    paths = Paths(tmp_path / "home")
    paths.restricted_db.parent.mkdir(parents=True)
    conn = duckdb.connect(str(paths.restricted_db))
    try:
        ensure_restricted_schema(conn)
    finally:
        conn.close()
    return paths.restricted_db


def _lessons(db: Path, *lessons: tuple[str, str]) -> None:
    """Calendar events (id, start as an ISO instant); each lasts 40 minutes."""
    conn = duckdb.connect(str(db))
    try:
        for lesson_id, start in lessons:
            conn.execute("insert into raw_ss12000.calendar_events (batch_id, id, start_time, end_time) "
                         "values ('b1', ?, ?::timestamptz, ?::timestamptz + interval 40 minute)",
                         [lesson_id, start, start])
    finally:
        conn.close()


def _records(db: Path, *lesson_ids: str) -> None:
    conn = duckdb.connect(str(db))
    try:
        for n, lesson_id in enumerate(lesson_ids):
            conn.execute("insert into raw_ss12000.attendances (batch_id, id, calendar_event_id, student_id) "
                         "values ('b1', ?, ?, 'pupil')", [f"a{n}-{lesson_id}", lesson_id])
    finally:
        conn.close()


def test_no_warehouse_or_no_lessons_is_no_anomaly(tmp_path, warehouse):
    assert school_day_without_attendance(tmp_path / "missing.duckdb", R) == []
    assert school_day_without_attendance(warehouse, R) == []


def test_the_last_school_day_with_records_is_no_anomaly(warehouse):
    _lessons(warehouse, ("l1", "2026-06-12T06:00:00Z"), ("l2", "2026-06-12T08:00:00Z"))
    _records(warehouse, "l2")
    assert school_day_without_attendance(warehouse, R) == []


def test_the_last_school_day_without_records_is_an_anomaly(warehouse):
    # 11 June has records; 12 June, the last school day up to R, has two lessons and none
    _lessons(warehouse, ("l0", "2026-06-11T06:00:00Z"), ("l1", "2026-06-12T06:00:00Z"),
             ("l2", "2026-06-12T08:00:00Z"), ("l2", "2026-06-12T08:00:00Z"))  # a second version
    _records(warehouse, "l0")
    (anomaly,) = school_day_without_attendance(warehouse, R)
    assert anomaly.source == "ss12000"
    assert anomaly.detail == "no attendance recorded on 2026-06-12, a school day with 2 lessons"


def test_days_are_local_and_days_after_r_do_not_count(warehouse):
    # 22:30 UTC on 12 June is 00:30 on 13 June in Stockholm: after R, so the last school day
    # is 12 June, whose lesson at 23:30 local time (21:30 UTC) has no record; the day after R
    # has records and changes nothing
    _lessons(warehouse, ("late", "2026-06-12T21:30:00Z"), ("next", "2026-06-12T22:30:00Z"),
             ("early", "2026-06-11T22:10:00Z"))  # 00:10 on 12 June, local
    _records(warehouse, "next")
    (anomaly,) = school_day_without_attendance(warehouse, R)
    assert anomaly.detail == "no attendance recorded on 2026-06-12, a school day with 2 lessons"
    # with R the 13th, the 13th is the last school day, and it has a record
    assert school_day_without_attendance(warehouse, R + dt.timedelta(days=1)) == []
    # in winter Stockholm is UTC+1: 23:30 UTC on 14 January is 00:30 on the 15th
    _lessons(warehouse, ("winter", "2026-01-14T23:30:00Z"))
    (anomaly,) = school_day_without_attendance(warehouse, dt.date(2026, 1, 15))
    assert anomaly.detail == "no attendance recorded on 2026-01-15, a school day with 1 lessons"
    assert school_day_without_attendance(warehouse, dt.date(2026, 1, 14)) == []
