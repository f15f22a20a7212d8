"""The published cells for people who open them in (Swedish) Excel.

- ``write_indicator_workbook``: ``indicators.xlsx``. A sheet "Om" (the version as a date and
  time, the reference date, how to read the file, the sources, every indicator's definition),
  a sheet "Lägesbild" (the published weekly lägesbild) and one sheet per indicator, named by
  its Swedish name shortened to Excel's 31 characters. Each data sheet is an Excel table
  (filter buttons, frozen header row) with Swedish words for every code, a period label and a
  "Löpande" column, numbers as numbers (shares formatted as percent) and the status cells
  filled green, yellow or red with the word kept in the cell.
- ``write_swedish_csv``: ``indikatorer.csv``, the same cells and columns as the indicator
  sheets in one file for Swedish Excel: UTF-8 with BOM, ``;`` between fields, decimal comma,
  dates as YYYY-MM-DD. ``indicators.csv`` stays the machine-readable file (codes, comma,
  decimal point).

Both read the published (already disclosure-controlled) Parquet files; a suppressed cell is
written as ``..`` as in the report, never re-derived.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from samverkan.report import (
    AREA_LEVELS,
    BREAKDOWNS,
    DEFAULT_SOURCES,
    GROUPS,
    LAGESBILD_MEASURES,
    LEVEL_ORDER,
    PERIOD_ORDER,
    PERIOD_TYPES,
    SUPPRESSED_MARK,
    Catalogue,
    Row,
    _breakdown_order,
    _breakdown_sort_key,
    _order,
    _read_rows,
    breakdown_value_label,
    direction_text,
    format_version,
    indicator_info,
    period_label,
    read_target_rules,
    target_text,
)

EXCEL_SHEET_TITLE_MAX = 31
FORBIDDEN_IN_SHEET_TITLES = '[]:*?/\\'
ABOUT_SHEET = "Om"
LAGESBILD_SHEET = "Lägesbild"
# Short sheet names (Excel allows 31 characters) for the catalogue's indicators whose Swedish
# name is longer; the "Om" sheet gives every sheet's full name. Other long names are cut at
# a word and end with "…".
SHORT_SHEET_NAMES = {
    "mycket_hog_franvaro": "Elever med mycket hög frånvaro",
    "ogiltig_franvaro_andel": "Ogiltig frånvaro, andel",
    "forhandsbedomning_14_dagar": "Förhandsbedömning inom 14 dagar",
    "anmalan_till_utredning": "Anmälningar till utredning",
    "utredning_4_manader": "Utredning klar inom 4 månader",
    "placerade_aterforening": "Placerade barn – återförening",
    "unga_misstankta_upprepat": "Unga misstänkta flera gånger",
    "hog_franvaro_med_orosanmalan": "Hög frånvaro och orosanmälan",
    "hog_franvaro_med_misstanke": "Hög frånvaro och misstanke",
    "misstankta_med_hog_franvaro": "Misstänkta med hög frånvaro",
    "kanda_av_flera": "Kända av flera verksamheter",
    "sst_effekt": "Förbättrad närvaro efter SST",
    "sig_effekt": "Unga utan ny misstanke (SIG)",
}

UNITS = {"andel": "Andel", "antal": "Antal"}
SUPPRESSION = {"primär": "skyddad (primär)", "sekundär": "skyddad (sekundär)"}
TOTAL = "Totalt"
YES, NO = "Ja", "Nej"

# The indicator sheets' and indikatorer.csv's columns: header and Excel column width (None:
# from the longest text in the column, within bounds).
INDICATOR_COLUMNS: list[tuple[str, float | None]] = [
    ("Indikator", None), ("Periodtyp", 12), ("Period", None), ("Periodstart", 13), ("Periodslut", 13),
    ("Löpande", 11), ("Områdesnivå", 18), ("Områdeskod", None), ("Område", None), ("Uppdelning", None),
    ("Grupp", None), ("Täljare", 11), ("Nämnare", 11), ("Värde", 10), ("Enhet", 9), ("Skyddad", None),
    ("Mål", 9), ("Status", 10),
]
HEADERS = [h for h, _ in INDICATOR_COLUMNS]
LAGESBILD_COLUMNS: list[tuple[str, float | None]] = [
    ("Vecka", None), ("Veckostart", 13), ("Veckoslut", 13), ("Områdesnivå", 18), ("Områdeskod", None),
    ("Område", None), ("Mått", None), ("Kategori", None), ("Antal", 10), ("Snitt föregående veckor", 26),
    ("Skyddad", None), ("Status", 10),
]
LAGESBILD_HEADERS = [h for h, _ in LAGESBILD_COLUMNS]
MIN_WIDTH, MAX_WIDTH = 8, 48
FILTER_BUTTON = 3  # characters the filter button takes in a header cell

# Number formats (stored in Excel's neutral notation; Swedish Excel shows a decimal comma and
# a space as the thousands separator).
PERCENT = "0.0%"
INTEGER = "#,##0"
DECIMAL = "#,##0.0"
DATE = "yyyy-mm-dd"
# Status fills with dark text of the same hue (contrast ≥ 4.5:1 against the fill, WCAG AA).
STATUS_COLOURS = {"grön": ("C6EFCE", "006100"), "gul": ("FFEB9C", "7A4500"), "röd": ("FFC7CE", "9C0006")}
TABLE_STYLE = "TableStyleMedium2"
FONT = "Calibri"  # the workbook's default font (XlsxWriter's and openpyxl's), named on every format
# The "Om" sheet: column widths (characters) and row heights (points) of wrapped text.
ABOUT_WIDTHS = (33, 60, 80, 34)
LINE_HEIGHT = 15.0
TITLE_HEIGHT = 24.0
PAPER_A4 = 9  # the paperSize code of A4 (ECMA-376)
CHARACTER_PIXELS = 7  # the width of a digit of Calibri 11: Excel's unit of column width


def _running(row: Row, reference_date: dt.date | None) -> bool:
    """The published ``is_running`` column; a table without it: derived from the dates."""
    if row.get("is_running") is not None:
        return bool(row["is_running"])
    return is_running_period(row["period_end"], reference_date)


def is_running_period(period_end: dt.date, reference_date: dt.date | None) -> bool:
    """A period that has not ended at the reference date is running ("löpande"): its figures
    cover only the days up to the reference date."""
    return reference_date is not None and period_end > reference_date


# ---------------------------------------------------------------------------------------------
# The Swedish row


def breakdown_label(breakdown: str) -> str:
    return TOTAL if breakdown == "totalt" else BREAKDOWNS.get(breakdown, breakdown)


def group_label(breakdown: str, value: str) -> str:
    return TOTAL if breakdown == "totalt" else breakdown_value_label(breakdown, value)


def swedish_row(row: Row, reference_date: dt.date | None) -> list[Any]:
    """A published cell in the columns of ``HEADERS``: Swedish words for every code, dates as
    dates, numbers as numbers, ``..`` for a suppressed count or value."""
    suppressed = bool(row.get("suppressed"))

    def number(value: Any) -> Any:
        return SUPPRESSED_MARK if suppressed else value

    return [
        row["indicator_name"],
        PERIOD_TYPES.get(row["period_type"], row["period_type"]),
        period_label(row["period_type"], row["period_start"]),
        row["period_start"],
        row["period_end"],
        YES if _running(row, reference_date) else NO,
        AREA_LEVELS.get(row["area_level"], row["area_level"]),
        row["area_code"],
        row["area_name"],
        breakdown_label(row["breakdown"]),
        group_label(row["breakdown"], row["breakdown_value"]),
        number(row.get("numerator")),
        number(row.get("denominator")),
        number(row.get("value")),
        UNITS.get(row["unit"], row["unit"]),
        SUPPRESSION.get(row.get("suppressed") or "", row.get("suppressed") or ""),
        row.get("target"),
        row.get("status") or "",
    ]


def _sheet_order(row: Row) -> tuple:
    """Months, weeks, terms, years; oldest first; the city, stadsdelsområden, SSPF areas,
    school units; the total before its breakdowns."""
    return (PERIOD_ORDER.get(row["period_type"], 9), row["period_start"],
            LEVEL_ORDER.get(row["area_level"], 9), row["area_name"] or "", row["area_code"],
            row["breakdown"] != "totalt",
            _breakdown_order(row["breakdown"]), _breakdown_sort_key(row["breakdown_value"]))


# ---------------------------------------------------------------------------------------------
# Sheet names


def _clean_title(text: str) -> str:
    text = "".join("-" if ch in FORBIDDEN_IN_SHEET_TITLES else ch for ch in text)
    return " ".join(text.split()).strip("'")


def _shorten(text: str, limit: int = EXCEL_SHEET_TITLE_MAX) -> str:
    """Cut at the last word that fits and end with "…"."""
    if len(text) <= limit:
        return text
    head = text[:limit - 1]
    if text[limit - 1] != " " and " " in head:  # a word cut in two: drop it
        head = head[:head.rindex(" ")]
    return head.rstrip(" ,;:–-") + "…"


def sheet_names(names: Mapping[str, str], reserved: Iterable[str] = (ABOUT_SHEET, LAGESBILD_SHEET)
                ) -> dict[str, str]:
    """A sheet name per indicator id: its Swedish name if it fits Excel's 31 characters, else
    its short name (``SHORT_SHEET_NAMES``) or the name cut at a word; unique regardless of case,
    without the characters Excel forbids."""
    used = {r.lower() for r in reserved} | {"history"}  # "History" is reserved by Excel
    out = {}
    for indicator_id, name in names.items():
        full = _clean_title(name) or _clean_title(indicator_id) or "Indikator"
        if len(full) <= EXCEL_SHEET_TITLE_MAX:
            base = full
        else:
            base = _shorten(_clean_title(SHORT_SHEET_NAMES.get(indicator_id, "")) or full)
        title, n = base, 2
        while title.lower() in used:
            suffix = f" ({n})"
            title, n = _shorten(base, EXCEL_SHEET_TITLE_MAX - len(suffix)) + suffix, n + 1
        used.add(title.lower())
        out[indicator_id] = title
    return out


def _table_name(n: int, key: str) -> str:
    return f"Tabell_{n:02d}_" + (re.sub(r"[^A-Za-z0-9_]", "_", key)[:40] or "data")


# ---------------------------------------------------------------------------------------------
# The workbook


@dataclass
class _Styles:
    """The workbook's cell formats, made once (XlsxWriter keeps one style per format object):
    ``kinds`` maps a number-format kind ("percent", "integer", "decimal", "date"), "mark" (the
    right-aligned suppression mark) and each status word to its format."""

    title: Any
    wrap: Any
    wrap_bold: Any
    kinds: dict[str, Any]


def _styles(wb: Any) -> _Styles:
    def add(**properties: Any) -> Any:
        return wb.add_format({"font_name": FONT, "font_size": 11, **properties})

    kinds = {"percent": add(num_format=PERCENT), "integer": add(num_format=INTEGER),
             "decimal": add(num_format=DECIMAL), "date": add(num_format=DATE), "mark": add(align="right")}
    for status, (background, foreground) in STATUS_COLOURS.items():
        kinds[status] = add(bold=True, font_color=f"#{foreground}", pattern=1, bg_color=f"#{background}")
    return _Styles(title=add(bold=True, font_size=14), wrap=add(text_wrap=True, valign="top"),
                   wrap_bold=add(text_wrap=True, valign="top", bold=True), kinds=kinds)


def _text_lines(text: str, width: float) -> int:
    """The lines a text wraps into in a column ``width`` characters wide (an estimate that
    errs on the high side: a proportional font fits more than ``width`` letters)."""
    per_line = max(1, int(width * 1.1) - 2)
    return sum(max(1, math.ceil(len(part) / per_line)) for part in text.split("\n"))


def _widths(headers: Sequence[tuple[str, float | None]], rows: Iterable[Sequence[Any]]) -> list[float]:
    """Column widths: fixed for numbers and dates, else the longest text (within bounds)."""
    longest = [len(h) + FILTER_BUTTON for h, _ in headers]
    auto = [i for i, (_, w) in enumerate(headers) if w is None]
    for row in rows:
        for i in auto:
            value = row[i]
            if isinstance(value, str) and len(value) > longest[i]:
                longest[i] = len(value)
    return [float(w) if w is not None else float(min(MAX_WIDTH, max(MIN_WIDTH, longest[i] + 2)))
            for i, (_, w) in enumerate(headers)]


def _set_widths(ws: Any, widths: Sequence[float]) -> None:
    """Column widths in characters, stored as given (as openpyxl did): XlsxWriter's
    ``set_column`` adds the cell padding (13 becomes 13.71, what Excel's dialog calls 13),
    so the width is given in pixels, seven per character of Calibri 11."""
    for i, width in enumerate(widths):
        ws.set_column_pixels(i, i, width * CHARACTER_PIXELS)


def _print_setup(ws: Any, *, landscape: bool) -> None:
    """Printed on A4, as wide as the page (as many pages down as it takes), with the margins
    openpyxl wrote (Excel's "Normal" margins before Excel 2007)."""
    ws.set_paper(PAPER_A4)
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.75, right=0.75, top=1.0, bottom=1.0)
    ws.set_header("", {"margin": 0.5})
    ws.set_footer("", {"margin": 0.5})


def _add_table(ws: Any, name: str, headers: Sequence[str], n_rows: int) -> None:
    """One Excel table over the header row and ``n_rows`` data rows: filter buttons, style
    ``TABLE_STYLE`` with row stripes.

    XlsxWriter refuses ``add_table`` in constant_memory mode: the table writes its header
    cells, and rows already streamed out cannot be written again. Here it is added before any
    cell of the sheet, while the header row is still the row in memory, with the mode switched
    off for the call; the caller then writes the header cells again as in-line strings, like
    every other cell in this mode (the names the table wrote stay, unused, in the shared-string
    part). ``add_table`` also records every cell of its range (to refuse overlapping tables), a
    dictionary entry per cell, about 85 MB for the 25 000-pupil publication: so the table is
    added over the header and one row and then given its full range. Both rely on XlsxWriter's
    internals (``constant_memory``, ``tables``), checked by tests/test_workbook.py."""
    last_col = len(headers) - 1
    ws.constant_memory = False
    try:
        status = ws.add_table(0, 0, 1, last_col, {
            "name": name, "style": TABLE_STYLE, "banded_rows": True,
            "columns": [{"header": h} for h in headers]})
    finally:
        ws.constant_memory = True
    if status != 0:
        raise ValueError(f"XlsxWriter refused the table {name} ({status})")
    from xlsxwriter.utility import xl_range

    table = ws.tables[-1]
    full = xl_range(0, 0, n_rows, last_col)
    table["range"] = table["a_range"] = table["autofilter"] = full


def _data_sheet(wb: Any, title: str, table: str, columns: Sequence[tuple[str, float | None]],
                rows: list[list[Any]], styles: _Styles, formats: dict[int, Any]) -> None:
    """A sheet that is one Excel table: header row frozen, filter buttons, column widths.
    ``formats`` maps a column to a number-format kind, or to a callable giving the kind
    for a row (None: no format). Rows are written in order (constant_memory: each row is
    streamed out when the next begins)."""
    ws = wb.add_worksheet(title)
    ws.freeze_panes(1, 0)
    _print_setup(ws, landscape=True)
    ws.repeat_rows(0)  # the header row on every printed page
    _set_widths(ws, _widths(columns, rows))
    headers = [h for h, _ in columns]
    if rows:  # an Excel table needs a data row
        _add_table(ws, table, headers, len(rows))
    for i, header in enumerate(headers):
        ws.write_string(0, i, header)
    status_column = headers.index("Status")
    kinds = styles.kinds
    mark = kinds["mark"]
    # per column: the number format's kind (None: none, a callable: per row); whether ".." is
    # the suppression mark there
    column_kinds = [formats.get(i) for i in range(len(headers))]
    marked = [i in formats for i in range(len(headers))]
    write_string, write_number = ws.write_string, ws.write_number
    write_datetime, write_boolean = ws.write_datetime, ws.write_boolean
    for r, row in enumerate(rows, start=1):
        for i, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                if not value:
                    continue
                style = None
                if value == SUPPRESSED_MARK and marked[i]:
                    style = mark  # aligned with the numbers
                elif i == status_column and value in STATUS_COLOURS:
                    style = kinds[value]
                write_string(r, i, value, style)
                continue
            kind = column_kinds[i]
            if callable(kind):
                kind = kind(row)
            style = kinds[kind] if kind else None
            if isinstance(value, bool):
                write_boolean(r, i, value, style)
            elif isinstance(value, int | float | Decimal):
                write_number(r, i, value, style)
            elif isinstance(value, dt.date):  # a datetime too; the date format when none is given
                write_datetime(r, i, value, style)
            else:
                raise TypeError(f"{title}: cannot write a {type(value).__name__} in column {headers[i]}")


def _about_sheet(wb: Any, *, styles: _Styles, version: str, reference_date: dt.date | None,
                 min_cell: int, n_rows: int, infos: list[Any], titles: dict[str, str],
                 targets: dict[str, float | None], has_lagesbild: bool) -> None:
    ws = wb.add_worksheet(ABOUT_SHEET)  # the first sheet: made before the others
    _print_setup(ws, landscape=True)
    _set_widths(ws, ABOUT_WIDTHS)
    rows = 0

    def append(values: Sequence[Any], *, bold: Sequence[bool] = (), title: bool = False) -> None:
        """A row of wrapped text, as high as its longest cell needs (neither Excel nor
        LibreOffice fits the height of a wrapped row on opening a file)."""
        nonlocal rows
        row, rows = rows, rows + 1
        lines = max((_text_lines(str(v), ABOUT_WIDTHS[i]) for i, v in enumerate(values) if v), default=1)
        if title:
            ws.set_row(row, TITLE_HEIGHT)
        elif lines > 1:
            ws.set_row(row, LINE_HEIGHT * lines)
        for i, value in enumerate(values):
            style = styles.title if title else styles.wrap_bold if i < len(bold) and bold[i] else styles.wrap
            if isinstance(value, str):
                ws.write_string(row, i, value, style)  # an empty text: an empty cell with the style
            else:
                ws.write(row, i, value, style)

    def heading(text: str) -> None:
        append([text], bold=[True])

    def line(label: str, text: str) -> None:
        append([label, text], bold=[True])

    append(["Samverkan – gemensamma indikatorer för skola, socialtjänst och polis"], title=True)
    append([])
    line("Version", f"{format_version(version)} (svensk tid)" if version else "")
    line("Referensdag", (f"{reference_date.isoformat()}: uppgifterna avser tiden till och med denna dag"
                         if reference_date else ""))
    line("Antal rader", f"{n_rows:,}".replace(",", "\u00a0"))
    append([])
    heading("Så läser du filen")
    line("Flikar", "En flik per indikator (namnen står i tabellen nedan) och fliken Lägesbild med veckans "
                   "lägesbild. Varje flik är en tabell: filtrera och sortera med knapparna i rubrikraden."
         if has_lagesbild else
         "En flik per indikator (namnen står i tabellen nedan). Varje flik är en tabell: filtrera och "
         "sortera med knapparna i rubrikraden.")
    line("Period", "Vecka (måndag–söndag), månad, termin (vt: januari–juni, ht: juli–december) och år. "
                   "Kolumnen Period anger perioden i ord; Periodstart och Periodslut är första och sista "
                   "dagen.")
    line("Löpande", "Ja när perioden inte har slutat på referensdagen. Uppgifterna gäller då bara dagarna "
                    "till och med referensdagen och ska inte jämföras med hela perioder.")
    line("Område", "Hela staden, stadsdelsområde, SSPF-område och (för skolans indikatorer) skolenhet.")
    line("Uppdelning och grupp", "Totalt för hela gruppen, annars den uppdelning (till exempel huvudman "
                                 "eller årskurs) och den grupp som raden gäller.")
    line("Värde", "Andelar visas i procent (Täljare av Nämnare), antal som heltal.")
    line("Mål och status", "Andelar har ett mål. Status är grön när målet är nått, gul när värdet ligger "
                           "nära målet och röd annars; färgen och ordet står i cellen. Antal följs över "
                           "tid och har inget mål. Status saknas när uppgiften är skyddad.")
    append([])
    heading("Skyddade uppgifter")
    line(SUPPRESSED_MARK, f"Två punkter i Täljare, Nämnare och Värde betyder att uppgiften inte redovisas av "
                          f"sekretesskäl; kolumnen Skyddad anger varför. Skyddad (primär): antalet eller "
                          f"nämnaren är mindre än {min_cell}, eller täljaren eller nämnaren minus täljaren "
                          f"ligger mellan 1 och {min_cell - 1}. Skyddad (sekundär): uppgiften hade kunnat "
                          "räknas fram ur andra publicerade uppgifter (summor och delar) och döljs därför "
                          "också. En rad som saknas betyder att det inte finns något underlag.")
    append([])
    heading("Källor")
    for group in GROUPS:
        line(group, DEFAULT_SOURCES[group])
    line("Personuppgifter", "Uppgifterna samkörs endast på pseudonym i en skyddad miljö. Filen innehåller "
                            "enbart sammanställda uppgifter som har granskats före publicering.")
    append([])
    append(["Flik", "Indikator", "Definition och källor", "Mål"], bold=[True] * 4)
    for info in infos:
        text = " ".join(t for t in (info.definition, f"Källor: {info.sources}.") if t)
        goal = target_text(targets.get(info.id), info)
        if info.unit != "antal":
            goal += f" ({direction_text(info)})"
        append([titles[info.id], info.name, text, goal])


def _lagesbild_rows(rows: list[Row]) -> list[list[Any]]:
    measures = list(LAGESBILD_MEASURES)
    rows = sorted(rows, key=lambda r: (
        -r["week_start"].toordinal(), LEVEL_ORDER.get(r["area_level"], 9), r["area_name"] or "",
        r["area_code"], measures.index(r["measure"]) if r["measure"] in measures else len(measures),
        r["category"] != "totalt", _order(r["category"]) if r["measure"] == "rod_status"
        else (0, ""), _breakdown_sort_key(r.get("category_name") or r["category"])))
    out = []
    for r in rows:
        red = r["measure"] == "rod_status"
        value_hidden, average_hidden = bool(r.get("suppressed")), bool(r.get("trailing_average_suppressed"))
        hidden = {(True, True): "antal och snitt skyddade", (True, False): "antal skyddat",
                  (False, True): "snitt skyddat"}.get((value_hidden, average_hidden), "")
        category = TOTAL if r["category"] == "totalt" else (r.get("category_name") or r["category"])
        out.append([
            period_label("vecka", r["week_start"]), r["week_start"], r["week_end"],
            AREA_LEVELS.get(r["area_level"], r["area_level"]), r["area_code"], r["area_name"],
            r.get("measure_name") or LAGESBILD_MEASURES.get(r["measure"], r["measure"]),
            category[:1].upper() + category[1:],
            None if red else SUPPRESSED_MARK if value_hidden else r.get("value"),
            None if red else SUPPRESSED_MARK if average_hidden else r.get("trailing_average"),
            hidden, "röd" if red else "",
        ])
    return out


def write_indicator_workbook(indicators_parquet: Path, catalogue: Catalogue, path: Path, *,
                             reference_date: dt.date | None = None, version: str = "",
                             lagesbild_parquet: Path | None = None, min_cell: int = 5,
                             targets: Path | None = None,
                             parameters: dict[str, Any] | None = None) -> Path:
    """indicators.xlsx: the sheets "Om" and "Lägesbild" and one Excel table per indicator (see
    the module docstring). Written with XlsxWriter in constant_memory mode: each sheet's rows are
    streamed to a temporary file in order, so memory does not grow with the rows written.
    ``parameters`` are the thresholds and windows the run used, written into the definitions on
    "Om"."""
    import xlsxwriter

    rows = _read_rows(indicators_parquet)
    by_indicator: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_indicator[row["indicator_id"]].append(row)
    rules = read_target_rules(targets)
    ids = sorted(by_indicator, key=_order)
    infos = [indicator_info(i, by_indicator[i], catalogue, rules, parameters) for i in ids]
    titles = sheet_names({info.id: info.name for info in infos})
    version = version or next((r["data_version"] for r in rows if r.get("data_version")), "")
    city_targets = {i: next((r["target"] for r in sorted(by_indicator[i], key=lambda r: r["period_start"],
                                                           reverse=True)
                             if r["area_level"] == "stad" and r["breakdown"] == "totalt"
                             and r.get("target") is not None), None) for i in ids}
    lagesbild = _lagesbild_rows(_read_rows(lagesbild_parquet)) if lagesbild_parquet else []

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file is written by close(): a failure before it leaves no workbook behind.
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "default_date_format": DATE})
    styles = _styles(wb)
    _about_sheet(wb, styles=styles, version=version, reference_date=reference_date, min_cell=min_cell,
                 n_rows=len(rows), infos=infos, titles=titles, targets=city_targets,
                 has_lagesbild=lagesbild_parquet is not None)
    if lagesbild_parquet is not None:
        _data_sheet(wb, LAGESBILD_SHEET, _table_name(0, "lagesbild"), LAGESBILD_COLUMNS, lagesbild, styles,
                    {1: "date", 2: "date", 8: "integer", 9: "decimal"})
    value_kind = {"andel": "percent", "antal": "integer"}
    for n, info in enumerate(infos, start=1):
        cells = [swedish_row(r, reference_date) for r in sorted(by_indicator[info.id], key=_sheet_order)]
        kind = value_kind.get(info.unit)
        _data_sheet(wb, titles[info.id], _table_name(n, info.id), INDICATOR_COLUMNS, cells, styles,
                    {3: "date", 4: "date", 11: "integer", 12: "integer", 13: kind, 16: "percent"})
    wb.close()
    return path


# ---------------------------------------------------------------------------------------------
# indikatorer.csv


def swedish_number(value: Any) -> str:
    """A number with a decimal comma, no thousands separator and no exponent; exact (the
    shortest text that reads back as the same float)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f").replace(".", ",")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float):
        return swedish_number(value)
    return str(value)


def write_swedish_csv(indicators_parquet: Path, path: Path, *, reference_date: dt.date | None) -> Path:
    """indikatorer.csv: every published cell, in the order of ``indicators.csv``, with the
    indicator sheets' Swedish headers and words, for Swedish Excel (UTF-8 with BOM, ``;``,
    decimal comma, dates as YYYY-MM-DD)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, delimiter=";", lineterminator="\r\n")
        writer.writerow(HEADERS)
        for row in _read_rows(indicators_parquet):
            writer.writerow([_csv_text(v) for v in swedish_row(row, reference_date)])
    return path
