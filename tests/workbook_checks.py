"""Checks of the Excel exports (indicators.xlsx, indikatorer.csv) against the published rows,
shared by the tests on published-shaped tables (test_workbook.py) and on the demo world
(test_end_to_end.py).

The expected Swedish words are written out here, independently of samverkan/workbook.py;
period labels are compared with ``samverkan.report.period_label`` (their format is the
report's) and breakdown values with ``samverkan.report.breakdown_value_label``.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from openpyxl import load_workbook

from samverkan.report import breakdown_value_label, period_label

HEADERS = ["Indikator", "Periodtyp", "Period", "Periodstart", "Periodslut", "Löpande", "Områdesnivå",
           "Områdeskod", "Område", "Uppdelning", "Grupp", "Täljare", "Nämnare", "Värde", "Enhet", "Skyddad",
           "Mål", "Status"]
COL = {h: i for i, h in enumerate(HEADERS)}
LAGESBILD_HEADERS = ["Vecka", "Veckostart", "Veckoslut", "Områdesnivå", "Områdeskod", "Område", "Mått",
                     "Kategori", "Antal", "Snitt föregående veckor", "Skyddad", "Status"]
PERIOD_WORDS = {"vecka": "Vecka", "manad": "Månad", "termin": "Termin", "ar": "År"}
LEVEL_WORDS = {"stad": "Stad", "stadsdelsomrade": "Stadsdelsområde", "sspf_omrade": "SSPF-område",
               "skolenhet": "Skolenhet"}
BREAKDOWN_WORDS = {"totalt": "Totalt", "huvudman": "Huvudman", "arskurs": "Årskurs", "anmalare": "Anmälare",
                   "brottskategori": "Brottskategori", "antal_verksamheter": "Antal verksamheter"}
UNIT_WORDS = {"andel": "Andel", "antal": "Antal"}
SUPPRESSED_WORDS = {"primär": "skyddad (primär)", "sekundär": "skyddad (sekundär)"}
# Codes of the published table that must not show up as a cell of the workbook.
CODE_CELLS = {*PERIOD_WORDS, *LEVEL_WORDS, *BREAKDOWN_WORDS, *UNIT_WORDS, *SUPPRESSED_WORDS}
SNAKE_CASE = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
# codes written without å/ä/ö ("brottskategori" is also the Swedish word, so it is not here)
ASCII_CODES = re.compile(r"\b(manad|stadsdelsomrade|sspf_omrade|arskurs|anmalare)\b")
FORBIDDEN = set('[]:*?/\\')
MIN_CONTRAST = 4.5


def running(period_end: dt.date, reference_date: dt.date) -> str:
    return "Ja" if period_end > reference_date else "Nej"


def group_word(breakdown: str, value: str) -> str:
    return "Totalt" if breakdown == "totalt" else breakdown_value_label(breakdown, value)


def _date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _luminance(hex_rgb: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_rgb[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((_luminance(fg[-6:]), _luminance(bg[-6:])), reverse=True)
    return (a + 0.05) / (b + 0.05)


def expected_cells(row: dict[str, Any], reference_date: dt.date) -> tuple:
    """The Swedish cells of a published row that do not depend on number formats."""
    return (row["indicator_name"], PERIOD_WORDS[row["period_type"]],
            period_label(row["period_type"], row["period_start"]), row["period_start"], row["period_end"],
            running(row["period_end"], reference_date), LEVEL_WORDS[row["area_level"]], row["area_code"],
            row["area_name"], BREAKDOWN_WORDS[row["breakdown"]],
            group_word(row["breakdown"], row["breakdown_value"]),
            UNIT_WORDS[row["unit"]], SUPPRESSED_WORDS.get(row["suppressed"] or ""),
            row["status"] or None)


def _sheet_cells(values: tuple) -> tuple:
    return (values[COL["Indikator"]], values[COL["Periodtyp"]], values[COL["Period"]],
            _date(values[COL["Periodstart"]]), _date(values[COL["Periodslut"]]), values[COL["Löpande"]],
            values[COL["Områdesnivå"]], values[COL["Områdeskod"]], values[COL["Område"]],
            values[COL["Uppdelning"]], values[COL["Grupp"]], values[COL["Enhet"]], values[COL["Skyddad"]],
            values[COL["Status"]])


def check_workbook(path: Path, rows: list[dict[str, Any]], lagesbild: list[dict[str, Any]] | None, *,
                   reference_date: dt.date, version_text: str, sheet_names: dict[str, str]) -> None:
    """Read ``indicators.xlsx`` back with openpyxl and check it against the published rows
    (and the published lägesbild). ``sheet_names`` maps an indicator id to its expected sheet."""
    wb = load_workbook(path)  # not read-only: tables, fills and widths are read too
    ids = list(sheet_names)
    lagesbild_sheet = ["Lägesbild"] if lagesbild is not None else []
    assert wb.sheetnames == ["Om", *lagesbild_sheet, *(sheet_names[i] for i in ids)]
    for name in wb.sheetnames:
        assert len(name) <= 31 and not FORBIDDEN & set(name), name
    assert len({n.lower() for n in wb.sheetnames}) == len(wb.sheetnames)

    by_indicator: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in rows:
        by_indicator[r["indicator_id"]].append(r)
    statuses: Counter[str] = Counter()
    running_seen: Counter[str] = Counter()
    table_names = set()
    for indicator_id in ids:
        ws = wb[sheet_names[indicator_id]]
        published = by_indicator[indicator_id]
        n = len(published)
        # one Excel table over the header and every row, with filter buttons; header row frozen
        assert list(ws.tables) and len(ws.tables) == 1, ws.title
        table = next(iter(ws.tables.values()))
        table_names.add(table.displayName)
        assert table.ref == f"A1:R{n + 1}" == ws.dimensions, (ws.title, table.ref, ws.dimensions)
        assert table.autoFilter is not None and table.autoFilter.ref == table.ref
        assert [c.name for c in table.tableColumns] == HEADERS
        assert ws.freeze_panes == "A2"
        assert [c.value for c in ws[1]] == HEADERS
        for letter in "ABCDEFGHIJKLMNOPQR":
            assert 8 <= ws.column_dimensions[letter].width <= 50, (ws.title, letter)
        assert ws.column_dimensions["A"].width >= min(len(published[0]["indicator_name"]), 48)

        data = list(ws.iter_rows(min_row=2))
        assert len(data) == n
        got = Counter(_sheet_cells(tuple(c.value for c in r)) for r in data)
        assert got == Counter(expected_cells(r, reference_date) for r in published), ws.title
        by_key = {(_date(r[COL["Periodstart"]].value), r[COL["Periodtyp"]].value, r[COL["Områdeskod"]].value,
                   r[COL["Uppdelning"]].value, r[COL["Grupp"]].value): r for r in data}
        assert len(by_key) == n
        for p in published:
            cells = by_key[(p["period_start"], PERIOD_WORDS[p["period_type"]], p["area_code"],
                            BREAKDOWN_WORDS[p["breakdown"]],
                            group_word(p["breakdown"], p["breakdown_value"]))]
            value, target, status = cells[COL["Värde"]], cells[COL["Mål"]], cells[COL["Status"]]
            assert cells[COL["Periodstart"]].number_format == "yyyy-mm-dd"
            running_seen[cells[COL["Löpande"]].value] += 1
            if p["suppressed"]:
                assert [cells[COL[h]].value for h in ("Täljare", "Nämnare", "Värde")] == ["..", "..", ".."]
                assert status.value is None and status.fill.fill_type is None
            else:
                # the workbook stores 16 significant digits (Excel keeps 15)
                assert isinstance(value.value, int | float)
                assert value.value == pytest.approx(p["value"], rel=1e-14)
                assert value.number_format == ("0.0%" if p["unit"] == "andel" else "#,##0")
                assert cells[COL["Täljare"]].value == p["numerator"]
                assert cells[COL["Nämnare"]].value == p["denominator"]
            if p["target"] is not None:
                assert target.value == pytest.approx(p["target"], rel=1e-14)
                assert target.number_format == "0.0%"
            if p["status"]:
                statuses[p["status"]] += 1
                assert status.value == p["status"]
                assert status.fill.fill_type == "solid"
                assert contrast(status.font.color.rgb, status.fill.fgColor.rgb) >= MIN_CONTRAST
            else:
                assert status.fill.fill_type is None
    assert len(table_names) == len(ids)
    assert set(statuses) == {"grön", "gul", "röd"}
    assert running_seen["Ja"] and running_seen["Nej"]

    # no code anywhere: no cell is a code, no snake_case identifier, no ascii-fied Swedish word,
    # no threshold left as a {placeholder} in the definitions on "Om"
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                value = cell.value
                if isinstance(value, str):
                    assert "{" not in value, (ws.title, value)
                    assert value not in CODE_CELLS, (ws.title, value)
                    assert not SNAKE_CASE.search(value), (ws.title, value)
                    assert not ASCII_CODES.search(value), (ws.title, value)

    if lagesbild is not None:
        _check_lagesbild_sheet(wb["Lägesbild"], lagesbild)
    _check_about_sheet(wb["Om"], reference_date=reference_date, version_text=version_text,
                       sheet_names=[sheet_names[i] for i in ids],
                       names=[by_indicator[i][0]["indicator_name"] for i in ids])
    wb.close()


def _check_lagesbild_sheet(ws: Any, lagesbild: list[dict[str, Any]]) -> None:
    table = next(iter(ws.tables.values()))
    assert table.ref == f"A1:L{len(lagesbild) + 1}" and table.autoFilter.ref == table.ref
    assert [c.value for c in ws[1]] == LAGESBILD_HEADERS and ws.freeze_panes == "A2"
    data = [tuple(c for c in r) for r in ws.iter_rows(min_row=2)]
    assert len(data) == len(lagesbild)
    weeks = {r["week_start"] for r in lagesbild}
    assert {r[0].value for r in data} == {period_label("vecka", w) for w in weeks}
    assert _date(data[0][1].value) == max(weeks)  # the newest week first
    keyed = {(_date(r[1].value), r[4].value, r[6].value, r[7].value): r for r in data}
    for r in lagesbild:
        category = "Totalt" if r["category"] == "totalt" else r["category_name"] or r["category"]
        cells = keyed[(r["week_start"], r["area_code"], r["measure_name"],
                       category[:1].upper() + category[1:])]
        assert cells[3].value == LEVEL_WORDS[r["area_level"]] and cells[5].value == r["area_name"]
        if r["measure"] == "rod_status":
            assert cells[11].value == "röd" and cells[11].fill.fill_type == "solid"
            assert contrast(cells[11].font.color.rgb, cells[11].fill.fgColor.rgb) >= MIN_CONTRAST
            continue
        assert cells[8].value == (".." if r["suppressed"] else pytest.approx(r["value"], rel=1e-14))
        assert cells[9].value == (".." if r["trailing_average_suppressed"]
                                  else pytest.approx(r["trailing_average"], rel=1e-14))
        hidden = bool(r["suppressed"] or r["trailing_average_suppressed"])
        assert (cells[10].value is not None and "skydd" in cells[10].value) == hidden, cells[10].value


def _check_about_sheet(ws: Any, *, reference_date: dt.date, version_text: str, sheet_names: list[str],
                       names: list[str]) -> None:
    rows = [[c for c in r if c.value is not None] for r in ws.iter_rows()]
    rows = [r for r in rows if r]
    text = "\n".join(str(c.value) for r in rows for c in r)
    assert version_text in text and reference_date.isoformat() in text
    assert "Två punkter" in text and "skyddad (primär)" in text.lower()
    for source in ("SS 12000", "socialtjänstens verksamhetssystem", "Polisens filleveranser"):
        assert source.lower() in text.lower(), source
    # every cell with text wraps (but the title); the columns are wide enough to read and the
    # rows high enough for their lines
    assert rows[0][0].value.startswith("Samverkan")
    for r in rows[1:]:
        for c in r:
            assert c.alignment.wrap_text and c.alignment.vertical == "top", c.coordinate
        longest = max(len(str(c.value)) / ws.column_dimensions[c.column_letter].width for c in r)
        if longest > 1.2:
            assert (ws.row_dimensions[r[0].row].height or 0) >= 15 * longest * 0.9, r[0].coordinate
    for letter, least in zip("ABC", (20, 30, 60), strict=True):
        assert ws.column_dimensions[letter].width >= least
    header = next(i for i, r in enumerate(rows) if [c.value for c in r][:2] == ["Flik", "Indikator"])
    listed = [(r[0].value, r[1].value) for r in rows[header + 1:]]
    assert listed == list(zip(sheet_names, names, strict=True))


# --- LibreOffice -------------------------------------------------------------------------------

def libreoffice() -> str | None:
    return shutil.which("libreoffice") or shutil.which("soffice")


def convert_with_libreoffice(path: Path, outdir: Path) -> dict[str, list[list[str]]]:
    """Every sheet of ``path`` as CSV, converted by LibreOffice (headless, a private profile),
    the cells as LibreOffice shows them. Returns the rows per sheet name."""
    binary = libreoffice()
    require(binary is not None, "LibreOffice is not installed (Debian package libreoffice-calc)")
    outdir.mkdir(parents=True, exist_ok=True)
    profile = outdir / "profile"
    # CSV filter options: ';' separator, '"' quotes, UTF-8, from row 1, cells as shown, every sheet
    # in a file of its own (the last token, -1).
    options = "59,34,76,1,,0,false,true,true,false,false,-1"
    result = subprocess.run(
        [binary, f"-env:UserInstallation={profile.absolute().as_uri()}", "--headless", "--norestore",
         "--convert-to", f"csv:Text - txt - csv (StarCalc):{options}", "--outdir", str(outdir), str(path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(outdir)})
    assert result.returncode == 0, result.stdout + result.stderr
    sheets = {}
    for csv_path in outdir.glob(f"{path.stem}-*.csv"):
        with csv_path.open(encoding="utf-8", newline="") as f:
            sheets[csv_path.stem.removeprefix(f"{path.stem}-")] = list(csv.reader(f, delimiter=";"))
    assert sheets, result.stdout + result.stderr
    return sheets


def check_libreoffice_sheets(sheets: dict[str, list[list[str]]], rows: list[dict[str, Any]],
                             sheet_names: dict[str, str], *, reference_date: dt.date,
                             lagesbild: bool = True) -> None:
    """What LibreOffice read from the workbook: every sheet, every row, the Swedish words, dates
    as dates and shares as percentages."""
    assert set(sheets) == {"Om", *(["Lägesbild"] if lagesbild else []), *sheet_names.values()}
    assert any("Samverkan" in cell for row in sheets["Om"] for cell in row)
    if lagesbild:
        assert sheets["Lägesbild"][0] == LAGESBILD_HEADERS
    for indicator_id, name in sheet_names.items():
        published = [r for r in rows if r["indicator_id"] == indicator_id]
        table = sheets[name]
        assert table[0] == HEADERS
        assert len(table) - 1 == len(published), name
        got = Counter((r[COL["Periodtyp"]], r[COL["Period"]], r[COL["Periodstart"]], r[COL["Löpande"]],
                       r[COL["Områdeskod"]], r[COL["Grupp"]], r[COL["Status"]]) for r in table[1:])
        expected = Counter((PERIOD_WORDS[p["period_type"]], period_label(p["period_type"], p["period_start"]),
                            p["period_start"].isoformat(), running(p["period_end"], reference_date),
                            p["area_code"], group_word(p["breakdown"], p["breakdown_value"]),
                            p["status"] or "")
                           for p in published)
        assert got == expected, name
        for r, p in zip(sorted(table[1:], key=lambda r: (r[COL["Periodtyp"]], r[COL["Periodstart"]],
                                                         r[COL["Områdeskod"]], r[COL["Grupp"]])),
                        sorted(published, key=lambda p: (PERIOD_WORDS[p["period_type"]],
                                                         p["period_start"].isoformat(), p["area_code"],
                                                         group_word(p["breakdown"], p["breakdown_value"]))),
                        strict=True):
            shown = r[COL["Värde"]]
            if p["suppressed"]:
                assert shown == "..", (name, r)
            elif p["unit"] == "andel":
                assert re.fullmatch(r"\d+[.,]\d %", shown.replace("\u00a0", " ")) or \
                    re.fullmatch(r"\d+[.,]\d%", shown), (name, shown)
            else:
                assert re.fullmatch(r"\d{1,3}([ ,\u00a0]?\d{3})*", shown), (name, shown)


# --- indikatorer.csv --------------------------------------------------------------------------

def _number(text: str) -> float | None:
    if text == "":
        return None
    assert "." not in text and " " not in text, text  # a decimal comma, no thousands separator
    return float(text.replace(",", "."))


def check_swedish_csv(indikatorer: Path, indicators_csv: Path, *, reference_date: dt.date) -> None:
    """``indikatorer.csv``: UTF-8 with BOM, ``;``, decimal comma, Swedish headers and words;
    read back with Python's csv module it holds the same cells as ``indicators.csv``, row by
    row."""
    raw = indikatorer.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == ";".join(HEADERS)
    swedish = list(csv.reader(text.splitlines(), delimiter=";"))
    with indicators_csv.open(encoding="utf-8", newline="") as f:
        machine = list(csv.DictReader(f))
    assert swedish[0] == HEADERS and len(swedish) - 1 == len(machine) > 0
    decimals = 0
    for sv, m in zip(swedish[1:], machine, strict=True):
        start, end = dt.date.fromisoformat(m["period_start"]), dt.date.fromisoformat(m["period_end"])
        assert sv[:11] == [m["indicator_name"], PERIOD_WORDS[m["period_type"]],
                           period_label(m["period_type"], start), m["period_start"], m["period_end"],
                           running(end, reference_date), LEVEL_WORDS[m["area_level"]], m["area_code"],
                           m["area_name"], BREAKDOWN_WORDS[m["breakdown"]],
                           group_word(m["breakdown"], m["breakdown_value"])]
        assert sv[COL["Enhet"]] == UNIT_WORDS[m["unit"]]
        assert sv[COL["Skyddad"]] == SUPPRESSED_WORDS.get(m["suppressed"], "")
        assert sv[COL["Status"]] == m["status"]
        for header, column in (("Täljare", "numerator"), ("Nämnare", "denominator"), ("Värde", "value")):
            if m["suppressed"]:
                assert sv[COL[header]] == ".."
            else:
                assert _number(sv[COL[header]]) == (float(m[column]) if m[column] else None), (header, sv)
        assert _number(sv[COL["Mål"]]) == (float(m["target"]) if m["target"] else None)
        decimals += "," in sv[COL["Värde"]]
    assert decimals > 0  # shares are written with a decimal comma
