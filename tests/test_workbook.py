"""The exports for Swedish Excel (samverkan/workbook.py) on real Parquet files shaped like the
published tables: indicators.xlsx read back with openpyxl and opened by LibreOffice, and
indikatorer.csv read back with Python's csv module. (The same checks on the demo world's
publication: tests/test_end_to_end.py.)"""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import report_data as rd
import workbook_checks as wc
from openpyxl import load_workbook

from samverkan.excel_files import INDICATORS_XLSX, INDIKATORER_CSV, ExcelFilesWriter, write_excel_files
from samverkan.report import format_version
from samverkan.workbook import (
    SHORT_SHEET_NAMES,
    is_running_period,
    sheet_names,
    swedish_number,
    write_indicator_workbook,
)

# rd.SPECS' names, as their sheets must be named: the name when it fits in 31 characters,
# else its short name.
EXPECTED_SHEETS = {
    "hog_franvaro": "Andel elever med hög frånvaro",
    "rapporteringsgrad": "Rapporteringsgrad närvaro",
    "orosanmalningar": "Antal orosanmälningar",
    "forhandsbedomning_14_dagar": "Förhandsbedömning inom 14 dagar",
    "unga_misstankta": "Antal unga misstänkta",
    "kanda_av_flera": "Kända av flera verksamheter",
    "sst_effekt": "Förbättrad närvaro efter SST",
}
VERSION_TEXT = "12 juni 2026 kl.\u00a008.00"  # rd.VERSION (06:00 UTC) in Swedish summer time


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published-shaped tables, indicators.csv as the publication writes it (DuckDB's
    COPY), the workbook and indikatorer.csv, written as the publication writes them: by the
    child process of samverkan.excel_files."""
    directory = tmp_path_factory.mktemp("published")
    indicators, lagesbild = rd.write_tables(directory)
    csv_path = directory / "indicators.csv"
    duckdb.sql(f"copy (select * from read_parquet('{indicators}')) to '{csv_path}' (format csv, header true)")
    with ExcelFilesWriter(directory, rd.CATALOGUE, reference_date=rd.REFERENCE_DATE, version=rd.VERSION,
                          min_cell=rd.MIN_CELL, targets=rd.TARGETS, parameters=None) as writer:
        assert writer.result() is None
    return {"dir": directory, "rows": pq.read_table(indicators).to_pylist(),
            "lagesbild": pq.read_table(lagesbild).to_pylist(), "workbook": directory / INDICATORS_XLSX,
            "csv": csv_path, "indikatorer": directory / INDIKATORER_CSV}


def test_the_child_writes_the_same_files_as_this_process(published, tmp_path):
    """The publication writes the files for Excel in a child process: the same sheets and
    cells, and the same indikatorer.csv, as writing them here."""
    indicators, lagesbild = rd.write_tables(tmp_path)
    written = write_excel_files(tmp_path, rd.CATALOGUE, reference_date=rd.REFERENCE_DATE,
                                version=rd.VERSION, min_cell=rd.MIN_CELL, targets=rd.TARGETS,
                                parameters=None)
    assert [p.name for p in written] == [INDICATORS_XLSX, INDIKATORER_CSV]
    assert (tmp_path / INDIKATORER_CSV).read_bytes() == published["indikatorer"].read_bytes()
    here, there = (load_workbook(p, read_only=True) for p in (written[0], published["workbook"]))
    try:
        assert here.sheetnames == there.sheetnames
        for name in here.sheetnames:
            rows_here = list(here[name].iter_rows(values_only=True))
            assert rows_here == list(there[name].iter_rows(values_only=True)), name
    finally:
        here.close()
        there.close()


def test_a_failing_child_gives_one_line_and_no_traceback(tmp_path):
    """A candidate table that is not Parquet: the child exits with one line naming the files
    and the error."""
    (tmp_path / "indicators.parquet").write_text("not parquet", encoding="utf-8")
    with ExcelFilesWriter(tmp_path, rd.CATALOGUE, reference_date=rd.REFERENCE_DATE, version=rd.VERSION,
                          min_cell=rd.MIN_CELL, targets=rd.TARGETS, parameters=None) as writer:
        problem = writer.result()
    assert problem is not None and "\n" not in problem and "Traceback" not in problem
    assert problem.startswith(f"{INDICATORS_XLSX} / {INDIKATORER_CSV}: ")
    assert "Parquet" in problem or "parquet" in problem, problem
    assert not (tmp_path / INDICATORS_XLSX).exists()


def _environment_of(process: subprocess.Popen) -> bytes:
    """A running child's environment. Right after it starts, /proc/<pid>/environ can read
    empty (seen once in the suite, under load): read again until it is not."""
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        environ = (Path("/proc") / str(process.pid) / "environ").read_bytes()
        if environ:
            return environ
        time.sleep(0.01)
    raise AssertionError("the child's environment could not be read while it ran")


def test_a_child_no_longer_wanted_is_stopped_and_never_had_the_key(tmp_path, monkeypatch):
    """The gate failed while the child was writing: leaving the block stops it. The child's
    environment holds nothing of this process's secrets (the pseudonym key, tokens)."""
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", "k" * 64)
    monkeypatch.setenv("SAMVERKAN_SS12000_TOKEN", "a-token")
    rd.write_tables(tmp_path)
    with ExcelFilesWriter(tmp_path, rd.CATALOGUE, reference_date=rd.REFERENCE_DATE, version=rd.VERSION,
                          min_cell=rd.MIN_CELL, targets=rd.TARGETS, parameters=None) as writer:
        process = writer._process
        environ = _environment_of(process)
    assert process.poll() is not None
    assert b"SAMVERKAN_" not in environ and b"k" * 64 not in environ and b"a-token" not in environ
    assert b"PYTHONPATH=" in environ


def test_workbook_reads_back_with_swedish_sheets_tables_words_and_status_colours(published):
    assert [s.id for s in rd.SPECS] == list(EXPECTED_SHEETS)
    wc.check_workbook(published["workbook"], published["rows"], published["lagesbild"],
                      reference_date=rd.REFERENCE_DATE, version_text=VERSION_TEXT,
                      sheet_names=EXPECTED_SHEETS)


def test_workbook_running_periods_are_those_not_ended_at_the_reference_date(published):
    wb = load_workbook(published["workbook"], read_only=True)
    rows = list(wb[EXPECTED_SHEETS["hog_franvaro"]].iter_rows(min_row=2, values_only=True))
    city = {(r[wc.COL["Periodtyp"]], r[wc.COL["Period"]]): r[wc.COL["Löpande"]] for r in rows
            if r[wc.COL["Områdesnivå"]] == "Stad" and r[wc.COL["Grupp"]] == "Totalt"}
    wb.close()
    # the reference date is Friday 12 June 2026
    assert city[("Månad", rd_label("manad", 2026, 6, 1))] == "Ja"
    assert city[("Månad", rd_label("manad", 2026, 5, 1))] == "Nej"
    assert city[("Vecka", rd_label("vecka", 2026, 6, 8))] == "Ja"  # Monday 8 – Sunday 14 June
    assert city[("Vecka", rd_label("vecka", 2026, 6, 1))] == "Nej"
    assert city[("Termin", rd_label("termin", 2026, 1, 1))] == "Ja"
    assert city[("Termin", rd_label("termin", 2025, 7, 1))] == "Nej"
    assert city[("År", rd_label("ar", 2026, 1, 1))] == "Ja"
    assert city[("År", rd_label("ar", 2025, 1, 1))] == "Nej"
    assert sum(v == "Ja" for v in city.values()) == 4


def rd_label(period_type: str, year: int, month: int, day: int) -> str:
    import datetime as dt

    from samverkan.report import period_label
    return period_label(period_type, dt.date(year, month, day))


def test_is_running_period():
    import datetime as dt

    ref = dt.date(2026, 6, 12)
    assert is_running_period(dt.date(2026, 6, 30), ref)
    assert not is_running_period(dt.date(2026, 6, 12), ref)  # ends on the reference date: complete
    assert not is_running_period(dt.date(2026, 5, 31), ref)
    assert not is_running_period(dt.date(2026, 6, 30), None)


def test_workbook_opens_in_libreoffice(published, tmp_path):
    started = time.monotonic()
    sheets = wc.convert_with_libreoffice(published["workbook"], tmp_path / "lo")
    wc.check_libreoffice_sheets(sheets, published["rows"], EXPECTED_SHEETS, reference_date=rd.REFERENCE_DATE)
    # the lägesbild as LibreOffice shows it: the week in words, suppressed counts as ..
    lagesbild = sheets["Lägesbild"]
    assert {r[0] for r in lagesbild[1:]} == {rd_label("vecka", 2026, 6, 1), rd_label("vecka", 2026, 5, 25)}
    assert any(r[8] == ".." for r in lagesbild[1:]) and any(r[11] == "röd" for r in lagesbild[1:])
    assert time.monotonic() - started < 120


def test_indikatorer_csv_is_for_swedish_excel_and_holds_the_published_cells(published):
    wc.check_swedish_csv(published["indikatorer"], published["csv"], reference_date=rd.REFERENCE_DATE)
    # Excel's own sniffing: a BOM, then the header with ';'
    assert published["indikatorer"].read_bytes()[:40].startswith(b"\xef\xbb\xbfIndikator;Periodtyp;")


def test_swedish_number_is_exact_with_a_decimal_comma():
    for value in (0.1, 1 / 3, 0.123456789012345, 1e-7, 2.5e-12, 12345.5):
        text = swedish_number(value)
        assert "e" not in text.lower() and "." not in text
        assert float(text.replace(",", ".")) == value
    assert swedish_number(3.0) == "3" and swedish_number(1250) == "1250" and swedish_number(None) == ""


def test_version_on_the_about_sheet_reads_as_in_the_report():
    """The workbook shows the version as the report does: local date and time in Swedish."""
    assert format_version("20260612T060000Z") == "12 juni 2026 kl.\u00a008.00"
    assert format_version("20261206T062404Z") == "6 december 2026 kl.\u00a007.24"  # winter time
    assert format_version("something else") == "something else"


def test_sheet_names_fit_excel_and_stay_unique():
    long_a = "En mycket lång indikator som inte får plats: variant a"
    long_b = "En mycket lång indikator som inte får plats: variant b"
    names = sheet_names({
        "a": long_a, "b": long_b, "c": "Om", "d": "Frånvaro [ogiltig]/giltig*?", "e": "'Citerad'",
        "f": "lägesbild", "mycket_hog_franvaro": "Andel elever med mycket hög frånvaro",
    })
    assert names["a"] == "En mycket lång indikator som…"
    assert names["b"] == "En mycket lång indikator… (2)"
    assert names["c"] == "Om (2)" and names["f"] == "lägesbild (2)"
    assert names["d"] == "Frånvaro -ogiltig--giltig--"
    assert names["e"] == "Citerad"
    assert names["mycket_hog_franvaro"] == SHORT_SHEET_NAMES["mycket_hog_franvaro"]
    for title in names.values():
        assert len(title) <= 31 and not set('[]:*?/\\') & set(title) and not title.startswith("'")
    assert len({t.lower() for t in names.values()}) == len(names)
    # the catalogue's short names fit as they are
    for short in SHORT_SHEET_NAMES.values():
        assert len(short) <= 31 and not set('[]:*?/\\') & set(short)


def test_workbook_with_every_indicator(tmp_path):
    """All 18 indicators of the catalogue: every sheet named by its short name, every row in
    its table. (A real publication of about 38 000 rows: test_end_to_end.py; Stockholm scale:
    tests/benchmarks/report_scale.py.)"""
    _, lagesbild = rd.write_tables(tmp_path)
    indicators = tmp_path / "months.parquet"  # months and years only: the sheets, not the size
    rows = [r for r in rd.indicator_rows(specs=rd.ALL_SPECS, n_schools=1)
            if r["period_type"] in ("manad", "ar")]
    pq.write_table(pa.Table.from_pylist(rows, schema=rd.INDICATOR_SCHEMA), indicators)
    n_rows = len(rows)
    started = time.process_time()
    path = write_indicator_workbook(indicators, rd.CATALOGUE, tmp_path / "indicators.xlsx",
                                    reference_date=rd.REFERENCE_DATE, version=rd.VERSION,
                                    lagesbild_parquet=lagesbild, targets=rd.TARGETS)
    cpu = time.process_time() - started
    wb = load_workbook(path, read_only=True)
    titles = wb.sheetnames
    wb.close()
    assert titles[:2] == ["Om", "Lägesbild"] and len(titles) == 2 + len(rd.ALL_SPECS)
    assert all(len(t) <= 31 for t in titles) and len(set(titles)) == len(titles)
    assert not [t for t in titles if "…" in t]  # every catalogue name has a short name
    # count the rows and table ranges in the sheets' XML itself (what Excel reads)
    with zipfile.ZipFile(path) as z:
        sheets = sorted((n for n in z.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
                        key=lambda n: int(re.search(r"\d+", n).group()))
        data_rows = sum(z.read(n).count(b"<row ") - 1 for n in sheets[2:])
        tables = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/tables/")]
    assert data_rows == n_rows
    assert len(tables) == 1 + len(rd.ALL_SPECS)
    covered = sum(int(re.search(r'ref="A1:[A-Z]+(\d+)"', t).group(1)) - 1 for t in tables
                  if 'displayName="Tabell_00_' not in t)
    assert covered == n_rows
    assert cpu < 2 + n_rows * 1.5e-3, f"{n_rows} rows took {cpu:.1f} s of CPU"


def test_workbook_without_lagesbild_and_for_an_unknown_indicator(tmp_path):
    name = "En ny indikator utan kort namn i katalogen"
    rows = [r | {"indicator_id": "ny_indikator", "indicator_name": name}
            for r in rd.indicator_rows(specs=[rd.SPECS[2]])[:3]]
    path = tmp_path / "ind.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=rd.INDICATOR_SCHEMA), path)
    wb = load_workbook(write_indicator_workbook(path, {}, tmp_path / "x.xlsx",
                                                reference_date=rd.REFERENCE_DATE))
    assert wb.sheetnames == ["Om", "En ny indikator utan kort namn…"]
    ws = wb["En ny indikator utan kort namn…"]
    assert next(iter(ws.tables.values())).ref == "A1:R4"
    wb.close()
