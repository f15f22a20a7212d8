"""Quality gate: GX suites on landed batches, the indicator checkpoint, the disclosure check.

Real DuckDB files, real Parquet/CSV files, real Great Expectations (imported once).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import STOCKHOLM_REFERENCE

from samverkan.config import EXPECTATIONS_DIR, Paths
from samverkan.disclosure import check_disclosure, check_lagesbild, check_primary_suppression
from samverkan.extract import Pull, SourceState, run_extract
from samverkan.landing import BatchManifest, write_batch
from samverkan.quality import (
    BATCH_REPORT,
    PUBLISHED_SUITES,
    available_suites,
    batch_validator,
    load_suite,
    validate_batch,
    validate_indicators,
    validate_lagesbild,
)
from samverkan.warehouse import EntityCounts

# Skatteverket's published test personnummer: seeded into failing rows, must never be reported.
TEST_PNR = "189001019802"
TEST_PNR_2 = "201301012397"
EXTRACTED_AT = dt.datetime(2025, 3, 3, 6, 0, tzinfo=dt.UTC)


def attendance_table(n: int = 2000) -> pa.Table:
    i = np.arange(n)
    ts = pd.Timestamp("2025-02-20 08:00", tz="UTC")
    return pa.table({
        "id": pa.array([f"att-{k:07d}" for k in i]),
        "calendar_event_id": pa.array([f"ev-{k % 97:04d}" for k in i]),
        "student_id": pa.array([f"stu-{k % 311:05d}" for k in i]),
        "is_reported": pa.array(i % 10 != 0),
        "attendance_minutes": pa.array((i % 6) * 10, pa.int32()),
        "valid_absence_minutes": pa.array(i % 5, pa.int32()),
        "invalid_absence_minutes": pa.array((i % 3) * 5, pa.int32()),
        "other_attendance_minutes": pa.array(np.zeros(n, dtype=np.int32)),
        "reported_timestamp": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
        "modified_at": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
    })


class ParquetAttendanceExtractor:
    """Loads the landed attendances Parquet file into raw_ss12000.attendances with DuckDB SQL."""

    source = "ss12000"

    def __init__(self, table: pa.Table | None = None) -> None:
        self.table = table

    def pull(self, state: SourceState) -> Pull:
        assert self.table is not None
        return Pull(tables={"attendances": self.table},
                    watermarks={"attendances": (state.watermarks.get("attendances"), "2025-02-20T08:00:00Z")})

    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        path = manifest.entity_path("attendances")
        inserted = conn.execute(
            """
            insert into raw_ss12000.attendances
            select ?, id, calendar_event_id, student_id, is_reported, attendance_minutes,
                   valid_absence_minutes, invalid_absence_minutes, other_attendance_minutes,
                   reported_timestamp, modified_at
            from read_parquet(?)
            """,
            [manifest.batch_id, str(path)],
        ).fetchone()[0]
        received = manifest.entities["attendances"].rows
        return {"attendances": EntityCounts(received, inserted, 0)}


def bad_attendance_table() -> pa.Table:
    df = attendance_table(500).to_pandas()
    df.loc[3, "attendance_minutes"] = -37
    df.loc[3, "student_id"] = TEST_PNR
    df.loc[[10, 11], "id"] = TEST_PNR_2  # a duplicate key, itself personnummer-like
    return pa.Table.from_pandas(df, schema=attendance_table(1).schema, preserve_index=False)


def land(paths: Paths, table: pa.Table) -> BatchManifest:
    return write_batch(paths.landing, "ss12000", {"attendances": table},
                       watermarks={"attendances": (None, "2025-02-20T08:00:00Z")},
                       extracted_at=EXTRACTED_AT)


def report_texts(report_path: str) -> dict[str, str]:
    directory = Path(report_path).parent
    return {p.name: p.read_text(encoding="utf-8") for p in directory.iterdir() if p.is_file()}


@pytest.fixture()
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "home").ensure()


def test_every_suite_file_is_well_formed() -> None:
    names = available_suites()
    for expected in ("ss12000.attendances", "ss12000.persons", "ss12000.calendar_events",
                     "ss12000.organisations", "case_system.aktualisering", "case_system.klient",
                     "case_system.utredning", "case_system.insats", "police.events", "indicators",
                     "lagesbild"):
        assert expected in names
    for name in names:
        spec = load_suite(name)
        assert spec.notes and len(spec.check_names) == len(spec.expectations)
        doc = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        if name in PUBLISHED_SUITES:
            assert doc["meta"]["table"] == f"published_{name}"
        else:
            source, table = name.split(".")
            assert doc["meta"]["table"] == f"raw_{source}.{table}"


def test_clean_batch_passes_without_touching_the_warehouse(paths: Paths) -> None:
    manifest = land(paths, attendance_table())
    outcome = validate_batch(manifest, ParquetAttendanceExtractor(), paths)
    assert outcome.success, outcome.failed_checks
    assert outcome.failed_checks == ()
    report = json.loads(Path(outcome.report_path).with_suffix(".json").read_text(encoding="utf-8"))
    assert Path(outcome.report_path).parent == paths.validation / manifest.batch_id
    [suite] = report["suites"]
    assert suite["suite"] == "ss12000.attendances" and suite["rows"] == 2000
    assert suite["table"] == "raw_ss12000.attendances"
    assert len(suite["expectations"]) == len(load_suite("ss12000.attendances").expectations)
    assert all(c["success"] for c in suite["expectations"])
    assert report["load"]["entities"]["attendances"] == {"received": 2000, "loaded": 2000, "quarantined": 0}
    assert not paths.restricted_db.exists()
    assert list((paths.validation / "scratch").iterdir()) == []


def test_bad_batch_fails_and_reports_counts_never_values(paths: Paths,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    manifest = land(paths, bad_attendance_table())
    outcome = validate_batch(manifest, ParquetAttendanceExtractor(), paths)
    assert not outcome.success
    minutes = "ss12000.attendances:expect_column_values_to_be_between(attendance_minutes)"
    unique = "ss12000.attendances:expect_column_values_to_be_unique(id)"
    assert set(outcome.failed_checks) == {minutes, unique}
    report = json.loads(Path(outcome.report_path).with_suffix(".json").read_text(encoding="utf-8"))
    checks = {c["name"]: c for c in report["suites"][0]["expectations"]}
    assert checks["expect_column_values_to_be_between(attendance_minutes)"]["unexpected_count"] == 1
    assert checks["expect_column_values_to_be_unique(id)"]["unexpected_count"] == 2
    texts = report_texts(outcome.report_path)
    assert set(texts) == {f"{BATCH_REPORT}.json", f"{BATCH_REPORT}.html"}
    assert "expect_column_values_to_be_between(attendance_minutes)" in texts[f"{BATCH_REPORT}.html"]
    for name, text in texts.items():
        for secret in (TEST_PNR, TEST_PNR_2, "-37"):
            assert secret not in text, f"{secret} leaked into {name}"
        for key in ("partial_unexpected", "unexpected_list", "unexpected_index", "details"):
            assert key not in text
    everything_logged = caplog.text + " ".join(outcome.failed_checks)
    assert TEST_PNR not in everything_logged and TEST_PNR_2 not in everything_logged
    assert list((paths.validation / "scratch").iterdir()) == []


def test_run_extract_loads_valid_batches_and_rejects_bad_ones(paths: Paths) -> None:
    good = ParquetAttendanceExtractor(attendance_table(300))
    result = run_extract(paths, good, batch_validator(good, paths))
    assert result.ok and result.totals()["loaded"] == 300

    bad = ParquetAttendanceExtractor(bad_attendance_table())
    result = run_extract(paths, bad, batch_validator(bad, paths))
    assert not result.ok
    [batch] = result.batches
    assert not batch.valid and batch.loaded == 0 and batch.report_path
    conn = duckdb.connect(str(paths.restricted_db), read_only=True)
    try:
        assert conn.execute("select count(*) from raw_ss12000.attendances").fetchone()[0] == 300
        failed = conn.execute("select failed_expectations from load_meta.batch_validations "
                              "where batch_id = ?", [batch.batch_id]).fetchone()[0]
    finally:
        conn.close()
    assert "attendance_minutes" in failed and TEST_PNR not in failed


def test_failing_load_fails_the_batch_without_quoting_the_error(paths: Paths) -> None:
    class BrokenExtractor(ParquetAttendanceExtractor):
        def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
            conn.execute(f"select cast('{TEST_PNR}-x' as integer)")  # the error message quotes the value
            return {}

    manifest = land(paths, attendance_table(10))
    outcome = validate_batch(manifest, BrokenExtractor(), paths)
    assert not outcome.success and outcome.failed_checks == ("ss12000:load_failed",)
    for text in report_texts(outcome.report_path).values():
        assert TEST_PNR not in text and "ConversionException" in text


# ---------------------------------------------------------------------------------------------
# Indicator checkpoint
# ---------------------------------------------------------------------------------------------

INDICATOR_SCHEMA = pa.schema([
    ("indicator_id", pa.string()), ("indicator_name", pa.string()), ("period_type", pa.string()),
    ("period_start", pa.date32()), ("period_end", pa.date32()), ("area_level", pa.string()),
    ("area_code", pa.string()), ("area_name", pa.string()), ("breakdown", pa.string()),
    ("breakdown_value", pa.string()), ("numerator", pa.int64()), ("denominator", pa.int64()),
    ("value", pa.float64()), ("unit", pa.string()), ("suppressed", pa.string()),
    ("target", pa.float64()), ("status", pa.string()), ("is_running", pa.bool_()),
    ("coverage", pa.string()), ("data_version", pa.string()),
])


def indicator_rows() -> pd.DataFrame:
    jan, jan_end = dt.date(2025, 1, 1), dt.date(2025, 1, 31)
    feb, feb_end = dt.date(2025, 2, 1), dt.date(2025, 2, 28)

    def row(ind: str, name: str, start: dt.date, end: dt.date, level: str, code: str, area: str,
            num: int | None, den: int | None, value: float | None, unit: str,
            suppressed: str | None = None, breakdown: tuple[str, str] = ("totalt", "totalt"),
            period_type: str = "manad", target: float | None = None, status: str | None = None,
            is_running: bool = False, coverage: str | None = None) -> dict:
        return dict(indicator_id=ind, indicator_name=name, period_type=period_type, period_start=start,
                    period_end=end, area_level=level, area_code=code, area_name=area,
                    breakdown=breakdown[0], breakdown_value=breakdown[1], numerator=num,
                    denominator=den, value=value, unit=unit, suppressed=suppressed, target=target,
                    status=status, is_running=is_running, coverage=coverage,
                    data_version="v2025-03-01T06:00:00Z")

    hf, oa, kf = "Andel elever med hög frånvaro", "Antal orosanmälningar", "Barn kända av flera verksamheter"
    rows = [
        row("hog_franvaro", hf, jan, jan_end, "stad", "0180", "Stockholm", 30, 200, 0.15, "andel"),
        row("hog_franvaro", hf, jan, jan_end, "stadsdelsomrade", "SDO01", "Rinkeby-Kista",
            None, None, None, "andel", "primär"),
        row("hog_franvaro", hf, feb, feb_end, "stad", "0180", "Stockholm", 0, 180, 0.0, "andel"),
        row("hog_franvaro", hf, feb, feb_end, "stadsdelsomrade", "SDO02", "Spånga-Tensta",
            20, 20, 1.0, "andel"),
        row("orosanmalningar", oa, jan, jan_end, "stad", "0180", "Stockholm", 12, None, 12.0, "antal"),
        row("orosanmalningar", oa, jan, jan_end, "stadsdelsomrade", "SDO01", "Rinkeby-Kista",
            None, None, None, "antal", "primär"),
        row("kanda_av_flera", kf, jan, jan_end, "stad", "0180", "Stockholm", 7, None, 7.0, "antal",
            breakdown=("antal_verksamheter", "3")),
        # the full catalogue's shape: week (spanning new year), term, year; SSPF area, school
        # unit; breakdowns; targets and status (a suppressed cell keeps its target, no status)
        row("hog_franvaro", hf, dt.date(2025, 12, 29), dt.date(2026, 1, 4), "stad", "0180", "Stockholm",
            30, 200, 0.15, "andel", period_type="vecka", target=0.1, status="röd"),
        row("hog_franvaro", hf, dt.date(2025, 7, 1), dt.date(2025, 12, 31), "sspf_omrade", "SSPF01",
            "Rinkeby", 10, 100, 0.1, "andel", breakdown=("huvudman", "fristående"), period_type="termin",
            target=0.1, status="grön"),
        row("rapporteringsgrad", "Rapporteringsgrad närvaro", dt.date(2025, 1, 1), dt.date(2025, 12, 31),
            "skolenhet", "12345678", "Skola X", None, None, None, "andel", "primär",
            breakdown=("arskurs", "7"), period_type="ar", target=0.95),
        row("unga_misstankta", "Antal unga misstänkta", jan, jan_end, "stad", "0180", "Stockholm",
            6, None, 6.0, "antal", breakdown=("brottskategori", "våld")),
        row("orosanmalningar", oa, jan, jan_end, "stad", "0180", "Stockholm", 8, None, 8.0, "antal",
            breakdown=("anmalare", "Skola")),
        # a running period and one the sources do not cover: a target, no status
        row("hog_franvaro", hf, dt.date(2025, 3, 1), dt.date(2025, 3, 31), "stad", "0180", "Stockholm",
            30, 200, 0.15, "andel", target=0.1, is_running=True),
        row("hog_franvaro", hf, dt.date(2024, 12, 1), dt.date(2024, 12, 31), "stad", "0180", "Stockholm",
            30, 200, 0.15, "andel", target=0.1, coverage="source_starts_in_period"),
    ]
    return pd.DataFrame(rows)


def write_indicators(df: pd.DataFrame, path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(df, schema=INDICATOR_SCHEMA, preserve_index=False), path)
    return path


def test_indicator_checkpoint_passes_on_a_correct_table(paths: Paths, tmp_path: Path) -> None:
    parquet = write_indicators(indicator_rows(), tmp_path / "indicators.parquet")
    outcome = validate_indicators(parquet, paths, "run-ok")
    assert outcome.success, outcome.failed_checks
    report = json.loads(Path(outcome.report_path).with_suffix(".json").read_text(encoding="utf-8"))
    assert Path(outcome.report_path).parent == paths.validation / "run-ok"
    assert report["suites"][0]["rows"] == len(indicator_rows()) == 14
    assert len(report["suites"][0]["expectations"]) == len(load_suite("indicators").expectations)

    # the same table from a DuckDB warehouse file (marts.published_indicators) and from CSV
    db = tmp_path / "analytics.duckdb"
    conn = duckdb.connect(str(db))
    conn.execute("create schema marts")
    conn.execute("create table marts.published_indicators as select * from read_parquet(?)", [str(parquet)])
    conn.close()
    assert validate_indicators(db, paths, "run-db").success
    csv = tmp_path / "indicators.csv"
    indicator_rows().to_csv(csv, index=False)
    assert validate_indicators(csv, paths, "run-csv").success


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda df: df.assign(value=df["value"].where(df.index != 0, 1.5)),
         "indicators:andel_value_between_0_and_1"),
        (lambda df: df.assign(value=df["value"].where(df.index != 1, 0.2)),
         "indicators:suppressed_rows_carry_no_numbers"),
        (lambda df: pd.concat([df, df.iloc[[4]]], ignore_index=True), "indicators:cell_unique"),
        (lambda df: df.drop(columns=["data_version"]), "indicators:published_columns_in_order"),
        (lambda df: df.assign(period_start=df["period_start"].where(df.index != 7, dt.date(2025, 12, 30))),
         "indicators:week_period_bounds"),
        (lambda df: df.assign(period_end=df["period_end"].where(df.index != 8, dt.date(2025, 12, 30))),
         "indicators:term_period_bounds"),
        (lambda df: df.assign(period_start=df["period_start"].where(df.index != 9, dt.date(2025, 2, 1))),
         "indicators:year_period_bounds"),
        (lambda df: df.assign(status=df["status"].where(df.index != 9, "röd")),
         "indicators:status_follows_target_and_suppression"),
        (lambda df: df.assign(status=df["status"].where(df.index != 7, None)),
         "indicators:status_follows_target_and_suppression"),
        (lambda df: df.assign(status=df["status"].where(df.index != 7, "lila")),
         "indicators:expect_column_values_to_be_in_set(status)"),
        (lambda df: df.assign(target=df["target"].where(df.index != 8, 1.5)),
         "indicators:expect_column_values_to_be_between(target)"),
        (lambda df: df.assign(area_level=df["area_level"].where(df.index != 4, "skolenhet")),
         "indicators:skolenhet_only_for_school_indicators"),
        (lambda df: df.assign(breakdown_value=df["breakdown_value"].where(df.index != 9, "10")),
         "indicators:breakdown_values"),
        (lambda df: df.assign(area_level=df["area_level"].where(df.index != 1, "kommun")),
         "indicators:expect_column_values_to_be_in_set(area_level)"),
        (lambda df: df.assign(status=df["status"].where(df.index != 12, "grön")),
         "indicators:status_follows_target_and_suppression"),
        (lambda df: df.assign(status=df["status"].where(df.index != 13, "grön")),
         "indicators:status_follows_target_and_suppression"),
        (lambda df: df.assign(coverage=df["coverage"].where(df.index != 13, "missing")),
         "indicators:expect_column_values_to_be_in_set(coverage)"),
        (lambda df: df.assign(is_running=df["is_running"].astype(object).where(df.index != 0, None)),
         "indicators:expect_column_values_to_not_be_null(is_running)"),
    ],
    ids=["andel_above_1", "suppressed_with_value", "duplicate_cell", "missing_column", "week_not_monday",
         "term_bounds", "year_bounds", "status_on_suppressed", "status_missing", "status_unknown",
         "target_above_1", "skolenhet_for_report_indicator", "arskurs_10", "unknown_area_level",
         "status_on_running_period", "status_on_uncovered_period", "unknown_coverage_code",
         "is_running_missing"],
)
def test_indicator_checkpoint_fails(paths: Paths, tmp_path: Path, mutate, expected: str) -> None:
    df = mutate(indicator_rows())
    schema = pa.schema([f for f in INDICATOR_SCHEMA if f.name in df.columns])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), path)
    outcome = validate_indicators(path, paths, "run-bad")
    assert not outcome.success
    assert expected in outcome.failed_checks


def test_indicator_checkpoint_fails_readably_on_a_missing_table(paths: Paths, tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    outcome = validate_indicators(db, paths, "run-missing")
    assert outcome.failed_checks == ("indicators:table_readable",)
    assert "CatalogException" in Path(outcome.report_path).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Disclosure check
# ---------------------------------------------------------------------------------------------


def test_disclosure_passes_a_properly_suppressed_table(tmp_path: Path) -> None:
    df = indicator_rows()
    report = check_primary_suppression(df)
    assert report.ok and report.problems == [] and report.rows_checked == len(df)
    path = write_indicators(df, tmp_path / "published.parquet")
    assert check_primary_suppression(path).ok
    csv = tmp_path / "published.csv"
    df.to_csv(csv, index=False)
    assert check_primary_suppression(csv).ok
    # The gate's full check also audits secondary suppression: this table publishes a city
    # month and all but one of its parts, so the hidden part is recovered by subtraction.
    full = check_disclosure(csv, reference_dir=STOCKHOLM_REFERENCE)
    assert full.counts_by_rule() == {"secondary_disclosed": 1}
    assert "SDO01" in str(full.problems[0])


def _only_rule(report, rule: str) -> None:
    assert not report.ok
    assert {c.rule for c in report.cells} == {rule}, report.problems


def test_disclosure_flags_an_unsuppressed_count_of_three() -> None:
    df = indicator_rows()
    df.loc[4, ["numerator", "value"]] = [3, 3.0]
    report = check_primary_suppression(df)
    _only_rule(report, "antal_below_min_cell")
    # the cell is named, the small count itself is not shown
    assert report.problems == ["orosanmalningar manad 2025-01-01, stad 0180, totalt=totalt: "
                               "an unsuppressed count is below min_cell [antal_below_min_cell]"]


def test_disclosure_flags_small_numerator_and_small_complement(tmp_path: Path) -> None:
    df = indicator_rows()
    df.loc[0, ["numerator", "denominator", "value"]] = [2, 200, 0.01]
    _only_rule(check_primary_suppression(df), "andel_numerator_small")

    df = indicator_rows()
    df.loc[0, ["numerator", "denominator", "value"]] = [199, 200, 0.995]
    _only_rule(check_primary_suppression(df), "andel_complement_small")

    df = indicator_rows()
    df.loc[0, ["numerator", "denominator", "value"]] = [0, 4, 0.0]
    report = check_primary_suppression(df)
    assert {c.rule for c in report.cells} == {"andel_denominator_below_min_cell", "andel_complement_small"}

    # the same through a CSV file as published
    df = indicator_rows()
    df.loc[0, ["numerator", "denominator", "value"]] = [199, 200, 0.995]
    csv = tmp_path / "published.csv"
    df.to_csv(csv, index=False)
    _only_rule(check_primary_suppression(csv), "andel_complement_small")


def test_disclosure_flags_suppressed_rows_that_carry_numbers_and_bad_markers() -> None:
    df = indicator_rows()
    df.loc[1, "value"] = 0.5
    _only_rule(check_primary_suppression(df), "suppressed_row_has_numbers")

    df = indicator_rows()
    df.loc[1, "suppressed"] = "ja"
    _only_rule(check_primary_suppression(df), "unknown_suppression_marker")

    df = indicator_rows()
    df.loc[0, "value"] = 0.4  # not 30/200: the published share reveals another cell
    _only_rule(check_primary_suppression(df), "andel_value_not_ratio")

    report = check_primary_suppression(indicator_rows().drop(columns=["suppressed"]))
    assert not report.ok and report.problems == ["missing_column: suppressed"]


def test_disclosure_flags_a_status_on_a_suppressed_row_and_accepts_over_suppression() -> None:
    df = indicator_rows()
    df.loc[9, "status"] = "röd"  # tells on which side of the target the hidden share lies
    _only_rule(check_primary_suppression(df), "suppressed_row_has_status")

    # a cell whose numbers would pass but that is suppressed anyway (the contributors rule:
    # fewer than min_cell pupils behind a share of minutes) is fine
    df = indicator_rows()
    over = dict(df.loc[0])
    over.update(indicator_id="ogiltig_franvaro_andel", indicator_name="Ogiltig frånvaro, andel av "
                "undervisningstiden", numerator=None, denominator=None, value=None, suppressed="primär",
                target=0.015, status=None)
    df = pd.concat([df, pd.DataFrame([over])], ignore_index=True)
    assert check_primary_suppression(df).ok


# ---------------------------------------------------------------------------------------------
# The weekly lägesbild: checkpoint and disclosure check
# ---------------------------------------------------------------------------------------------

LAGESBILD_SCHEMA = pa.schema([
    ("week_start", pa.date32()), ("week_end", pa.date32()), ("iso_week", pa.string()),
    ("area_level", pa.string()), ("area_code", pa.string()), ("area_name", pa.string()),
    ("measure", pa.string()), ("measure_name", pa.string()), ("category", pa.string()),
    ("category_name", pa.string()), ("value", pa.float64()), ("trailing_average", pa.float64()),
    ("suppressed", pa.string()), ("trailing_average_suppressed", pa.string()), ("data_version", pa.string()),
])
MEASURE_NAMES = {"nya_orosanmalningar": "Nya orosanmälningar", "nya_unga_misstankta": "Nya unga misstänkta",
                 "passerat_hog_franvaro": "Elever som passerat gränsen för hög frånvaro",
                 "rod_status": "Indikatorer som blivit röda"}


def lagesbild_rows() -> pd.DataFrame:
    """W = 2025-12-29..2026-01-04 (2026-W01), four trailing weeks, min_cell 5."""
    def row(level: str, code: str, area: str, measure: str, category: str, category_name: str,
            value: float | None, average: float | None, suppressed: bool = False,
            average_suppressed: bool = False) -> dict:
        return dict(week_start=dt.date(2025, 12, 29), week_end=dt.date(2026, 1, 4), iso_week="2026-W01",
                    area_level=level, area_code=code, area_name=area, measure=measure,
                    measure_name=MEASURE_NAMES[measure], category=category, category_name=category_name,
                    value=value, trailing_average=average, suppressed="primär" if suppressed else None,
                    trailing_average_suppressed="primär" if average_suppressed else None,
                    data_version="v2026-01-05T06:00:00Z")

    city, area = ("stad", "0180", "Stockholm"), ("sspf_omrade", "SSPF01", "Rinkeby")
    return pd.DataFrame([
        row(*city, "nya_orosanmalningar", "totalt", "Totalt", 14.0, 12.5),
        row(*city, "nya_orosanmalningar", "Skola", "Skola", None, 2.0, suppressed=True),   # total 8
        row(*city, "nya_unga_misstankta", "totalt", "Totalt", 0.0, None, average_suppressed=True),
        row(*city, "nya_unga_misstankta", "våld", "Våld", None, 0.0, suppressed=True),
        row(*city, "passerat_hog_franvaro", "totalt", "Totalt", 9.0, 7.25),                 # total 29
        row(*area, "nya_unga_misstankta", "våld", "Våld", 5.0, 0.0),   # no reports: the city only
        row(*area, "nya_unga_misstankta", "totalt", "Totalt", 5.0, 0.0),
        row(*area, "passerat_hog_franvaro", "totalt", "Totalt", None, 1.25, suppressed=True),  # total 5
        row(*city, "rod_status", "hog_franvaro", "Andel elever med hög frånvaro", None, None),
    ])


def write_lagesbild(df: pd.DataFrame, path: Path) -> Path:
    schema = pa.schema([f for f in LAGESBILD_SCHEMA if f.name in df.columns])
    pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), path)
    return path


def test_lagesbild_checkpoint_passes_on_a_correct_table(paths: Paths, tmp_path: Path) -> None:
    parquet = write_lagesbild(lagesbild_rows(), tmp_path / "lagesbild.parquet")
    outcome = validate_lagesbild(parquet, paths, "run-lb")
    assert outcome.success, outcome.failed_checks
    assert Path(outcome.report_path) == paths.validation / "run-lb" / "lagesbild_checkpoint.html"
    report = json.loads(Path(outcome.report_path).with_suffix(".json").read_text(encoding="utf-8"))
    assert report["suites"][0]["rows"] == 9
    assert len(report["suites"][0]["expectations"]) == len(load_suite("lagesbild").expectations)
    csv = tmp_path / "lagesbild.csv"
    lagesbild_rows().to_csv(csv, index=False)
    assert validate_lagesbild(csv, paths, "run-lb-csv").success


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda df: df.assign(week_start=df["week_start"].where(df.index != 3, dt.date(2025, 12, 22)),
                              week_end=df["week_end"].where(df.index != 3, dt.date(2025, 12, 28))),
         "lagesbild:one_week"),
        (lambda df: df.assign(iso_week="2025-W53"), "lagesbild:iso_week_bounds"),
        (lambda df: df.drop(index=6), "lagesbild:totalt_rows_present"),
        (lambda df: pd.concat([df, df.iloc[[0]].assign(area_level="sspf_omrade", area_code="SSPF01",
                                                       area_name="Rinkeby")], ignore_index=True),
         "lagesbild:reports_city_only"),
        (lambda df: df.assign(value=df["value"].where(df.index != 1, 3.0)),
         "lagesbild:suppressed_carry_no_numbers"),
        (lambda df: df.assign(value=df["value"].where(df.index != 8, 1.0)), "lagesbild:rod_status_shape"),
        (lambda df: df.assign(measure_name=df["measure_name"].where(df.index != 0, "Orosanmälningar")),
         "lagesbild:measure_names"),
        (lambda df: df.assign(value=df["value"].where(df.index != 0, 14.5)),
         "lagesbild:counts_are_whole_and_not_negative"),
        (lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True), "lagesbild:row_unique"),
        (lambda df: df.drop(columns=["trailing_average_suppressed"]), "lagesbild:published_columns_in_order"),
    ],
    ids=["two_weeks", "wrong_iso_week", "missing_totalt", "reports_in_an_sspf_area",
         "suppressed_with_value", "rod_status_with_value",
         "wrong_measure_name", "half_count", "duplicate_row", "missing_column"],
)
def test_lagesbild_checkpoint_fails(paths: Paths, tmp_path: Path, mutate, expected: str) -> None:
    path = write_lagesbild(mutate(lagesbild_rows()), tmp_path / "bad.parquet")
    outcome = validate_lagesbild(path, paths, "run-lb-bad")
    assert not outcome.success
    assert expected in outcome.failed_checks


def test_lagesbild_disclosure_passes_and_flags_small_counts_and_averages(tmp_path: Path) -> None:
    df = lagesbild_rows()
    report = check_lagesbild(df, min_cell=5, trailing_weeks=4)
    assert report.ok, report.problems
    assert report.rows_checked == 9
    csv = tmp_path / "lagesbild.csv"
    df.to_csv(csv, index=False)
    assert check_lagesbild(csv).ok
    assert check_lagesbild(write_lagesbild(df, tmp_path / "lagesbild.parquet")).ok

    small = lagesbild_rows()
    small.loc[5, "value"] = 3.0  # a published count of three suspects
    report = check_lagesbild(small)
    assert {c.rule for c in report.cells} == {"count_small"}
    # the row is named, the count is not shown
    assert report.problems == ["nya_unga_misstankta vecka 2025-12-29, sspf_omrade SSPF01, kategori=våld: "
                               "an unsuppressed count is between 1 and min_cell - 1 [count_small]"]

    average = lagesbild_rows()
    average.loc[6, "trailing_average"] = 0.75  # three suspects over four weeks
    assert {c.rule for c in check_lagesbild(average).cells} == {"average_total_small"}
    # the same average is safe when it stands for a total of 6 over 8 weeks
    assert check_lagesbild(average, trailing_weeks=8).ok

    unmarked = lagesbild_rows()
    unmarked.loc[1, ["value", "suppressed"]] = [2.0, None]
    assert {c.rule for c in check_lagesbild(unmarked).cells} == {"count_small"}

    leaked = lagesbild_rows()
    leaked.loc[7, "value"] = 2.0
    leaked.loc[8, "trailing_average"] = 1.0
    assert {c.rule for c in check_lagesbild(leaked).cells} == {"suppressed_value_published",
                                                               "status_row_has_numbers"}
    report = check_lagesbild(lagesbild_rows().drop(columns=["suppressed"]))
    assert not report.ok and report.problems == ["missing_column: suppressed"]


# ---------------------------------------------------------------------------------------------
# Every raw-table suite against the restricted schema (the contract it checks)
# ---------------------------------------------------------------------------------------------

CLEAN_ROWS = {
    "raw_ss12000.organisations": "('b', 'org-1', 'Huvudman', 'Huvudman', '212000-0142', null, '0180',"
                                 " null, null, timestamptz '2025-02-01 10:00:00+00'),"
                                 "('b', 'org-2', 'Skola', 'Skolenhet', null, '12345678', '0180', ['GR'],"
                                 " 'org-1', timestamptz '2025-02-01 10:00:00+00')",
    "raw_ss12000.persons": f"('b', 'p-1', '{TEST_PNR}', date '1890-01-01', 'Kvinna', 'Ingen',"
                           " timestamptz '2025-02-01 10:00:00+00')",
    "raw_ss12000.enrolments": "('b', 'p-1', 'org-2', 'GR', 7, date '2024-08-15', null, null),"
                              "('b', 'p-1', 'org-2', 'GR', 6, date '2023-08-15', date '2024-06-10', null)",
    "raw_ss12000.calendar_events": "('b', 'ev-1', 'act-1', timestamptz '2025-02-03 08:00:00+01',"
                                   " timestamptz '2025-02-03 09:00:00+01', null)",
    "raw_ss12000.attendances": "('b', 'a-1', 'ev-1', 'p-1', true, 50, 10, 0, 0, null, null)",
    "raw_ss12000.deleted_entities": "('b', 'attendances', 'a-0')",
    "raw_case_system.klient": "('b', 1, '20130101-2397', false, timestamp '2025-02-01 10:00:00')",
    "raw_case_system.aktualisering": "('b', 10, 1, date '2025-01-10', 'Anmälan', 'Skola', date '2025-01-10',"
                                     " date '2025-01-20', 'Inleda utredning', 'Rinkeby', null),"
                                     "('b', 11, 1, date '2025-02-25', 'Anmälan', 'Anonym', null, null, null,"
                                     " 'Rinkeby', null)",
    "raw_case_system.utredning": "('b', 20, 1, 10, date '2025-01-20', null, null, null)",
    "raw_case_system.insats": "('b', 30, 1, 'SST', date '2025-04-01', null, date '2025-06-01', null, null)",
    "raw_case_system.gallring": "('b', 'insats', 29, timestamp '2025-02-01 00:00:00')",
    "raw_police.events": "('b', 'polis_20250301.csv', 2, '5000-K123456-25', date '2025-02-27',"
                         " date '2025-02-28', '0930', 'Misshandel', 'Stockholm', 'Rinkeby', '20130101-2397',"
                         " 'Misstänkt', 12, 'Aktiv', timestamp '2025-03-01 07:00:00')",
}
# Rows only a suite catches: the row rules quarantine row-level faults before the suites run, so
# the suites keep what judges the batch (a repeated key or file position, an unknown security
# marking, a lesson over 600 minutes) and the key checks.
BAD_ROWS = {
    "raw_police.events": ("('b', 'polis_20250301.csv', 2, '5000-K123456-26', date '2025-02-27', null, '93A0',"
                          " null, null, null, null, 'Vittne', 12, 'Aktiv', null)",
                          {"file_position_unique"}),
    "raw_case_system.aktualisering": ("('b', 10, 1, date '2025-02-20', 'Anmälan', 'Skola', null,"
                                      " date '2025-02-19', 'Inleda utredning', null, null)",
                                      {"expect_column_values_to_be_unique(aktualisering_id)"}),
    "raw_case_system.gallring": ("('b', 'insats', 29, timestamp '2025-02-02 00:00:00')", {"key_unique"}),
    "raw_ss12000.calendar_events": ("('b', 'ev-2', null, timestamptz '2025-02-03 08:00:00+01',"
                                    " timestamptz '2025-02-03 19:00:00+01', null)",
                                    {"lesson_at_most_600_minutes"}),
    "raw_ss12000.persons": ("('b', 'p-2', null, date '2026-01-01', 'Man', 'Hemlig', null)",
                            {"expect_column_values_to_be_in_set(security_marking)"}),
}


def test_raw_suites_fit_the_restricted_schema(tmp_path: Path) -> None:
    from samverkan.quality import run_suites
    from samverkan.warehouse import ensure_restricted_schema

    db = tmp_path / "contract.duckdb"
    conn = duckdb.connect(str(db))
    ensure_restricted_schema(conn)
    targets = []
    for table, values in CLEAN_ROWS.items():
        conn.execute(f"insert into {table} values {values}")
        schema, name = table.split(".")
        suite = f"{schema.removeprefix('raw_')}.{name}"
        view = suite.replace(".", "__")
        conn.execute(f'create view main."{view}" as select * from {table}')
        targets.append((load_suite(suite), view, 1))
    conn.close()
    covered = {s.name for s, _, _ in targets}
    assert covered == {n for n in available_suites() if n not in PUBLISHED_SUITES}
    params = {"latest_plausible_date": "2025-03-04"}
    for result in run_suites(db, targets, params, "contract-clean"):
        bad = [(c.name, c.error) for c in result.checks if not c.success]
        assert not bad, (result.suite, bad)

    conn = duckdb.connect(str(db))
    for table, (values, _) in BAD_ROWS.items():
        conn.execute(f"insert into {table} values {values}")
    conn.close()
    by_suite = {r.suite: r for r in run_suites(db, targets, params, "contract-bad")}
    for table, (_, expected) in BAD_ROWS.items():
        schema, name = table.split(".")
        result = by_suite[f"{schema.removeprefix('raw_')}.{name}"]
        assert {c.name for c in result.checks if not c.success} == expected
        assert not any(c.raised_exception for c in result.checks)


def test_great_expectations_connection_gets_the_warehouse_settings(samverkan_home: Path) -> None:
    """GX's engine on a scratch file opens DuckDB with the [warehouse] settings."""
    import great_expectations as gx
    import sqlalchemy as sa
    from conftest import write_config

    from samverkan import database
    from samverkan.quality import _dispose, scratch_datasource

    write_config(samverkan_home, '\n[warehouse]\nmemory_limit = "1GiB"\nthreads = 1\n')
    p = Paths(samverkan_home).ensure()
    db = p.scratch / "settings.duckdb"
    database.connect(db, p=p).close()
    datasource = scratch_datasource(gx.get_context(mode="ephemeral"), db)
    try:
        with datasource.get_engine().connect() as conn:
            row = conn.execute(sa.text(
                "select current_setting('memory_limit'), current_setting('threads'), "
                "current_setting('preserve_insertion_order'), current_setting('temp_directory')"
            )).fetchone()
    finally:
        _dispose(datasource)
    assert row[:3] == ("1.0 GiB", 1, False)
    assert Path(row[3]).parent == p.spill


GX_PRELOAD_AT_EXIT = """
import atexit, logging, sys

class PrefectAtShutdown(logging.Handler):
    # what Prefect's API log handler does once the interpreter shuts down
    def emit(self, record):
        raise RuntimeError("can't register atexit after shutdown")

logging.getLogger("samverkan").addHandler(PrefectAtShutdown())
logging.getLogger("samverkan").setLevel(logging.INFO)
from samverkan.quality import preload
thread = preload()
atexit.register(thread.join, 120)  # Prefect's exit handlers take seconds: the import ends meanwhile
sys.exit(1)  # a run that failed fast, before its first validation
"""


def test_a_run_that_fails_fast_exits_without_a_logging_traceback() -> None:
    """The Great Expectations import started in the background finishes while the process
    exits; its log line must not reach a handler that can no longer work (logging would print
    its own traceback on the console)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", GX_PRELOAD_AT_EXIT], capture_output=True,
                            text=True, timeout=180, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]


GX_DEFERRED = """
import sys, types
from samverkan import quality
quality._gx()
print(sorted(n for n in quality.GX_DEFERRED_IMPORTS if type(sys.modules[n]) is types.ModuleType))
import inspect
inspect.stack()  # dbt does this whenever it makes an adapter: it reads every module's __file__
print(sorted(n for n in quality.GX_DEFERRED_IMPORTS if type(sys.modules[n]) is types.ModuleType))
from scipy import stats
import altair
print(round(float(stats.entropy([0.5, 0.5])), 4), bool(altair.__version__))
print(sorted(n for n in quality.GX_DEFERRED_IMPORTS if type(sys.modules[n]) is types.ModuleType))
"""


def test_great_expectations_import_defers_plots_and_statistics_until_used() -> None:
    """Importing GX leaves altair and scipy.stats unimported (about 3 s of every validating
    process), also when something scans sys.modules as inspect.stack() does (dbt, whenever it
    makes an adapter); code that uses them afterwards gets the real modules."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", GX_DEFERRED], capture_output=True, text=True,
                            timeout=180, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["[]", "[]", "0.6931 True", "['altair', 'scipy.stats']"]
