"""The management report and its exports (Swedish text, self-contained files, no network fetches).

- ``render_report``: one HTML file: a title page, an overview (latest month per area: value,
  target, status and the trend against the previous month), one section per indicator grouped
  Skola / Socialtjänst / Polis / Samverkan (inline SVG trend charts, months × areas, terms and
  years, the city's breakdowns, school units), the weekly lägesbild per SSPF area and the city,
  definitions and sources.
- ``render_lagesbild``: the lägesbild pages alone, for the weekly publication.
- ``write_indicator_workbook``: ``indicators.xlsx``, one sheet per indicator.

Everything shown is read from the published (already disclosure-controlled) files; the
report never re-derives a suppressed value. Suppressed cells are shown as ``..``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pyarrow.parquet as pq
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUPPRESSED_MARK = ".."
NO_VALUE = "–"
# An indicator that its source cannot place at an area level has no cell there (never 0).
NOT_AT_LEVEL = "uppgift saknas på denna nivå"
NBSP = "\u00a0"
LOCAL_TZ = ZoneInfo("Europe/Stockholm")

PERIOD_TYPES = {"vecka": "Vecka", "manad": "Månad", "termin": "Termin", "ar": "År"}
PERIOD_ORDER = {"manad": 0, "vecka": 1, "termin": 2, "ar": 3}
AREA_LEVELS = {"stad": "Stad", "stadsdelsomrade": "Stadsdelsområde", "sspf_omrade": "SSPF-område",
               "skolenhet": "Skolenhet"}
LEVEL_ORDER = {"stad": 0, "stadsdelsomrade": 1, "sspf_omrade": 2, "skolenhet": 3}
AREA_GROUPS = {"stad": "Hela staden", "stadsdelsomrade": "Stadsdelsområden", "sspf_omrade": "SSPF-områden",
               "skolenhet": "Skolenheter"}
GROUPS = ["Skola", "Socialtjänst", "Polis", "Samverkan"]
# The catalogue of indicators.md, in its order; the group is used when the dbt catalogue
# does not carry one (yet).
DEFAULT_GROUPS = {
    "hog_franvaro": "Skola", "mycket_hog_franvaro": "Skola", "ogiltig_franvaro_andel": "Skola",
    "rapporteringsgrad": "Skola",
    "orosanmalningar": "Socialtjänst", "forhandsbedomning_14_dagar": "Socialtjänst",
    "anmalan_till_utredning": "Socialtjänst", "utredning_4_manader": "Socialtjänst",
    "placerade_aterforening": "Socialtjänst",
    "unga_misstankta": "Polis", "unga_misstankta_upprepat": "Polis", "unga_brottsoffer": "Polis",
    "hog_franvaro_med_orosanmalan": "Samverkan", "hog_franvaro_med_misstanke": "Samverkan",
    "misstankta_med_hog_franvaro": "Samverkan", "kanda_av_flera": "Samverkan", "sst_effekt": "Samverkan",
    "sig_effekt": "Samverkan",
}
CATALOGUE_ORDER = list(DEFAULT_GROUPS)
DEFAULT_SOURCES = {
    "Skola": "Skolornas elev- och närvarouppgifter (SS 12000: inskrivningar, lektioner, närvaro)",
    "Socialtjänst": "Socialtjänstens verksamhetssystem (aktualiseringar, utredningar, insatser)",
    "Polis": "Polisens filleveranser (misstänkta och målsäganden)",
    "Samverkan": "SS 12000, socialtjänstens verksamhetssystem och polisens filleveranser, "
                 "samkörda på pseudonym i den skyddade miljön",
}
BREAKDOWNS = {"huvudman": "Huvudman", "arskurs": "Årskurs", "anmalare": "Anmälare",
              "brottskategori": "Brottskategori", "antal_verksamheter": "Antal verksamheter"}
MONTHS_SV = ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
             "september", "oktober", "november", "december"]
MONTHS_SHORT = ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"]
STATUS_TINT = {"grön": "tg", "gul": "ty", "röd": "tr"}
LAGESBILD_MEASURES = {
    "nya_orosanmalningar": "Nya orosanmälningar",
    "nya_unga_misstankta": "Nya unga misstänkta",
    "passerat_hog_franvaro": "Elever som passerat gränsen för hög frånvaro",
    "rod_status": "Indikatorer som blivit röda",
}
# Lägesbild measures published for the whole city only (published_lagesbild.sql: the case
# system places a report in the stadsdelsområde that handles it, never in an SSPF area).
LAGESBILD_CITY_ONLY = frozenset({"nya_orosanmalningar"})
SOURCE_LABELS = {"ss12000": "SS 12000 (skolor)", "case_system": "Socialtjänstens verksamhetssystem",
                 "police": "Polisens filleveranser"}
SCHOOL_MONTHS = 3  # months shown in the school-unit table (all months are in the xlsx/csv)

WORKBOOK_HEADERS = ["Indikator", "Periodtyp", "Periodstart", "Periodslut", "Områdesnivå", "Områdeskod",
                    "Område", "Uppdelning", "Värde för uppdelning", "Täljare", "Nämnare", "Värde", "Enhet",
                    "Undertryckt", "Mål", "Status", "Dataversion"]
WORKBOOK_COLUMNS = ["indicator_name", "period_type", "period_start", "period_end", "area_level",
                    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator",
                    "value", "unit", "suppressed", "target", "status", "data_version"]

Row = dict[str, Any]
Catalogue = dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Formatting (Swedish conventions: decimal comma, space as thousands separator)


def _decimal(x: float, decimals: int) -> str:
    text = f"{x:,.{decimals}f}"
    return text.replace(",", NBSP).replace(".", ",")


def format_number(value: float | None, unit: str) -> str:
    """A published value: ``andel`` as a percentage with one decimal, ``antal`` as an integer."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if unit == "andel":
        return _decimal(value * 100, 1) + NBSP + "%"
    return _decimal(round(value), 0)


def format_value(row: Row | None) -> str:
    if row is None:
        return ""
    if row.get("suppressed"):
        return SUPPRESSED_MARK
    return format_number(row.get("value"), row.get("unit", ""))


def period_label(period_type: str, start: dt.date, *, short: bool = False) -> str:
    if period_type == "manad":
        return f"{(MONTHS_SHORT if short else MONTHS_SV)[start.month - 1]} {start.year}"
    if period_type == "vecka":
        year, week, _ = start.isocalendar()
        return f"v. {week} {year}" if short else f"vecka {week} {year}"
    if period_type == "termin":
        return f"{'vt' if start.month < 7 else 'ht'} {start.year}"
    if period_type == "ar":
        return str(start.year)
    return start.isoformat()


def running_note(end: dt.date, reference_date: dt.date | None, start: dt.date | None = None) -> str:
    """The running period (the one that contains the reference date) is marked as such."""
    if reference_date is None or end < reference_date or (start is not None and start > reference_date):
        return ""
    return f"löpande, t.o.m. {reference_date.isoformat()}"


def _is_running(row: Row, reference_date: dt.date | None) -> bool:
    return bool(running_note(row["period_end"], reference_date, row["period_start"]))


def _cell(row: Row | None, *, at_level: bool = True) -> dict[str, str]:
    """A table cell: text, CSS classes, tooltip. ``at_level`` False: the indicator is not
    published at the cell's area level (its source cannot place it there)."""
    if not at_level:
        return {"text": NOT_AT_LEVEL, "cls": "not-at-level", "title": ""}
    if row is None:
        return {"text": "", "cls": "num empty", "title": "Inget underlag"}
    if row.get("suppressed"):
        return {"text": SUPPRESSED_MARK, "cls": "num suppressed",
                "title": f"Skyddad uppgift ({row['suppressed']} röjandekontroll)"}
    cls = "num"
    if row.get("status") in STATUS_TINT:
        cls += " " + STATUS_TINT[row["status"]]
    title = ""
    if row.get("unit") == "andel" and row.get("numerator") is not None and row.get("denominator") is not None:
        title = f"{_decimal(row['numerator'], 0)} av {_decimal(row['denominator'], 0)}"
        if row.get("status"):
            title += f", status {row['status']}"
    return {"text": format_value(row), "cls": cls, "title": title}


# ---------------------------------------------------------------------------------------------
# Catalogue and targets


@dataclass
class TargetRule:
    target: float | None
    direction: str
    tolerance: float | None


def read_target_rules(targets: Path | None) -> dict[str, TargetRule]:
    """The default (all-area) target row per indicator from the municipality's targets file
    (``ref_indicator_targets.csv``): it gives the direction and tolerance, which the published
    table does not carry."""
    from samverkan.config.reference import csv_rows

    rules: dict[str, TargetRule] = {}
    if targets is None or not targets.exists():
        return rules
    for rec in csv_rows(targets):
        if rec.get("area_level") or rec.get("area_code"):
            continue
        rules[rec["indicator_id"]] = TargetRule(
            _float(rec.get("target")), rec.get("direction", ""), _float(rec.get("tolerance")))
    return rules


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v)
    return str(value)


@dataclass
class IndicatorInfo:
    id: str
    name: str
    unit: str
    group: str
    definition: str
    sources: str
    direction: str
    tolerance: float | None
    # the area levels the indicator is published at (the model's meta.area_levels; without
    # a catalogue: the levels its rows have)
    area_levels: tuple[str, ...] = ()


def indicator_info(indicator_id: str, rows: Sequence[Row], catalogue: Catalogue,
                   rules: dict[str, TargetRule]) -> IndicatorInfo:
    entry = catalogue.get(indicator_id, {})
    group = _text(entry.get("group")) or DEFAULT_GROUPS.get(indicator_id, "Samverkan")
    if group not in GROUPS:
        group = "Samverkan"
    rule = rules.get(indicator_id)
    return IndicatorInfo(
        id=indicator_id,
        name=_text(entry.get("name")) or (rows[0]["indicator_name"] if rows else indicator_id),
        unit=(rows[0]["unit"] if rows else "") or _text(entry.get("unit")),
        group=group,
        definition=_text(entry.get("definition")),
        sources=_text(entry.get("sources")) or DEFAULT_SOURCES[group],
        direction=_text(entry.get("direction")) or (rule.direction if rule else ""),
        tolerance=_float(_text(entry.get("tolerance"))) if entry.get("tolerance") is not None
        else (rule.tolerance if rule else None),
        area_levels=tuple(entry.get("area_levels") or ()) or tuple(
            sorted({r["area_level"] for r in rows}, key=lambda lv: LEVEL_ORDER.get(lv, 9))),
    )


def area_levels_text(info: IndicatorInfo) -> str:
    """Which area levels an indicator is published at, and which not, in Swedish."""
    plural = {"stad": "hela staden", "stadsdelsomrade": "stadsdelsområden",
              "sspf_omrade": "SSPF-områden", "skolenhet": "skolenheter"}
    shown = [plural.get(lv, lv) for lv in sorted(info.area_levels, key=lambda lv: LEVEL_ORDER.get(lv, 9))]
    text = "Redovisas för " + _join_sv(shown) + "."
    missing = [AREA_LEVELS[lv] for lv in ("stadsdelsomrade", "sspf_omrade") if lv not in info.area_levels]
    if missing:
        text += " " + _join_sv(missing) + ": " + NOT_AT_LEVEL + "."
    return text


def _join_sv(items: list[str]) -> str:
    """"a", "a och b", "a, b och c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " och " + items[-1]


def _order(indicator_id: str) -> tuple[int, str]:
    known = indicator_id in CATALOGUE_ORDER
    return (CATALOGUE_ORDER.index(indicator_id) if known else len(CATALOGUE_ORDER), indicator_id)


def target_text(target: float | None, info: IndicatorInfo) -> str:
    if info.unit == "antal":
        return "Följs över tid, inget mål"
    if target is None:
        return "Inget mål fastställt"
    value = format_number(target, "andel")
    if info.direction == "lägre":
        return f"högst {value}"
    if info.direction == "högre":
        return f"minst {value}"
    return value


def direction_text(info: IndicatorInfo) -> str:
    if info.unit == "antal":
        return "Följs över tid, inget mål"
    tolerance = (f"; gul inom {_decimal(info.tolerance * 100, 1)} procentenheter från målet"
                 if info.tolerance is not None else "")
    if info.direction == "lägre":
        return "lägre är bättre" + tolerance
    if info.direction == "högre":
        return "högre är bättre" + tolerance
    return "riktning ej angiven"


# ---------------------------------------------------------------------------------------------
# Per-indicator data


@dataclass
class Indicator:
    info: IndicatorInfo
    rows: list[Row]
    index: dict[tuple[str, dt.date, str, str, str, str], Row] = field(default_factory=dict)
    periods: dict[str, list[tuple[dt.date, dt.date]]] = field(default_factory=dict)
    areas: list[tuple[str, str, str]] = field(default_factory=list)
    schools: list[tuple[str, str]] = field(default_factory=list)
    breakdowns: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, info: IndicatorInfo, rows: list[Row]) -> Indicator:
        ind = cls(info, rows)
        periods: dict[str, set[tuple[dt.date, dt.date]]] = defaultdict(set)
        areas: dict[tuple[str, str], str] = {}
        schools: dict[str, str] = {}
        breakdowns: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            ind.index[(r["period_type"], r["period_start"], r["area_level"], r["area_code"],
                       r["breakdown"], r["breakdown_value"])] = r
            periods[r["period_type"]].add((r["period_start"], r["period_end"]))
            if r["area_level"] == "skolenhet":
                schools[r["area_code"]] = r["area_name"]
            else:
                areas[(r["area_level"], r["area_code"])] = r["area_name"]
            if r["breakdown"] != "totalt":
                breakdowns[r["breakdown"]].add(r["breakdown_value"])
        ind.periods = {k: sorted(v) for k, v in periods.items()}
        ind.areas = sorted(((lvl, code, name) for (lvl, code), name in areas.items()),
                           key=lambda a: (LEVEL_ORDER.get(a[0], 9), a[2] or "", a[1]))
        ind.schools = sorted(schools.items(), key=lambda s: (s[1] or "", s[0]))
        ind.breakdowns = {b: sorted(v, key=_breakdown_sort_key)
                          for b, v in sorted(breakdowns.items(), key=lambda kv: _breakdown_order(kv[0]))}
        return ind

    def get(self, period_type: str, start: dt.date, level: str, code: str, breakdown: str = "totalt",
            value: str = "totalt") -> Row | None:
        return self.index.get((period_type, start, level, code, breakdown, value))

    @property
    def city(self) -> tuple[str, str, str] | None:
        return next((a for a in self.areas if a[0] == "stad"), None)


def _breakdown_order(breakdown: str) -> int:
    order = list(BREAKDOWNS)
    return order.index(breakdown) if breakdown in order else len(order)


def _breakdown_sort_key(value: str) -> tuple[int, int, str]:
    if value.isdigit():
        return (0, int(value), "")
    return (2 if value.lower() == "okänd" else 1, 0, value.lower())


def breakdown_value_label(breakdown: str, value: str) -> str:
    if breakdown == "arskurs":
        return f"Årskurs {value}"
    if breakdown == "antal_verksamheter":
        return "Kända av alla tre verksamheterna" if value == "3" else f"Kända av {value} verksamheter"
    return value[:1].upper() + value[1:]


# ---------------------------------------------------------------------------------------------
# Inline SVG charts


@dataclass
class ChartPoint:
    label: str
    value: float | None
    suppressed: bool = False
    running: bool = False
    tick: str = ""  # short x-axis label ("jul", "v27")
    year: int = 0


def _nice_scale(top: float, unit: str) -> tuple[float, float]:
    if top <= 0:
        return (0.1, 0.025) if unit == "andel" else (4.0, 1.0)
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if unit != "andel":
        step = max(1.0, math.ceil(step))
    return step * math.ceil(top / step - 1e-9) or step, step


def trend_svg(points: Sequence[ChartPoint], *, unit: str, target: float | None, title: str,
              period_type: str) -> Markup:
    """A line chart of the points (gaps where a value is suppressed or missing), with the
    target as a dashed line. Pure SVG: no script, no external resource."""
    values = [p.value for p in points if p.value is not None]
    if not values:
        return Markup('<p class="nochart">Inga publicerade värden att visa i diagram.</p>')  # noqa: S704
    width, height, left, right, top_pad, bottom = 680, 210, 58, 70, 14, 44
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    ymax, step = _nice_scale(max(values + ([target] if target is not None else [])), unit)
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: float) -> float:
        return top_pad + plot_h * (1 - v / ymax)

    def tick(v: float) -> str:
        if unit == "andel":
            decimals = 0 if round(step * 100, 6) == round(step * 100) else 1
            return _decimal(v * 100, decimals) + NBSP + "%"
        return _decimal(v, 0)

    out = [f'<svg class="trend" data-period="{period_type}" data-points="{n}" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>"]
    v = 0.0
    while v <= ymax + 1e-9:
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                   f'<text class="ytick" x="{left - 6}" y="{y(v) + 4:.1f}">{tick(v)}</text>')
        v += step
    if target is not None:
        out.append(f'<line class="target" x1="{left}" x2="{left + plot_w}" y1="{y(target):.1f}" '
                   f'y2="{y(target):.1f}"/><text class="target-label" x="{left + plot_w + 4}" '
                   f'y="{y(target) + 4:.1f}">Mål {format_number(target, unit)}</text>')
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, p in enumerate(points):
        if p.value is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            segment.append(f"{x(i):.1f},{y(p.value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) > 1:
            out.append(f'<polyline class="line" points="{" ".join(seg)}"/>')
    label_every = max(1, math.ceil(n / 13))
    labelled = {i for i in range(0, n, label_every) if i == n - 1 or n - 1 - i >= label_every * 0.6} | {n - 1}
    last_year = None
    for i, p in enumerate(points):
        if p.value is not None:
            cls = "point running" if p.running else "point"
            note = " (löpande)" if p.running else ""
            out.append(f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="3.5">'
                       f"<title>{escape(p.label)}{note}: {format_number(p.value, unit)}</title></circle>")
        elif p.suppressed:
            out.append(f'<text class="sup" x="{x(i):.1f}" y="{top_pad + plot_h - 4:.1f}">..'
                       f"<title>{escape(p.label)}: skyddad uppgift</title></text>")
        if i in labelled:
            year = f'<tspan x="{x(i):.1f}" dy="13">{p.year}</tspan>' if p.year != last_year else ""
            last_year = p.year
            out.append(f'<text class="xtick" x="{x(i):.1f}" y="{top_pad + plot_h + 15}">'
                       f"{escape(p.tick or p.label)}{year}</text>")
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top_pad + plot_h}" '
               f'y2="{top_pad + plot_h}"/></svg>')
    return Markup("".join(out))  # noqa: S704 - every text in it is escaped above


# ---------------------------------------------------------------------------------------------
# Sections


def _column(period_type: str, start: dt.date, end: dt.date, reference_date: dt.date | None) -> dict[str, str]:
    return {"label": period_label(period_type, start, short=True),
            "note": running_note(end, reference_date, start)}


def _table(caption: str, corner: str, columns: list[dict[str, str]], rows: list[dict[str, Any]],
           cls: str = "") -> dict[str, Any]:
    has_suppressed = any(c["text"] == SUPPRESSED_MARK for r in rows for c in r["cells"])
    return {"caption": caption, "corner": corner, "columns": columns, "rows": rows,
            "has_suppressed": has_suppressed, "cls": cls}


def build_section(ind: Indicator, reference_date: dt.date | None) -> dict[str, Any]:
    info = ind.info
    months = ind.periods.get("manad", [])
    weeks = ind.periods.get("vecka", [])
    terms = ind.periods.get("termin", [])
    years = ind.periods.get("ar", [])
    city = ind.city
    tables = []

    # Months × areas (the city, stadsdelsområden, SSPF areas).
    if months:
        tables.append(_table(
            "Per månad och område", "Område",
            [_column("manad", s, e, reference_date) for s, e in months],
            [{"label": name, "group": AREA_GROUPS.get(level, level), "code": "",
              "cells": [_cell(ind.get("manad", s, level, code)) for s, _ in months]}
             for level, code, name in ind.areas], cls="months"))
    # The latest terms and years × areas.
    longer = [("termin", s, e) for s, e in terms[-2:]] + [("ar", s, e) for s, e in years[-2:]]
    if longer:
        tables.append(_table(
            "Per termin och år", "Område",
            [_column(pt, s, e, reference_date) for pt, s, e in longer],
            [{"label": name, "group": AREA_GROUPS.get(level, level), "code": "",
              "cells": [_cell(ind.get(pt, s, level, code)) for pt, s, _ in longer]}
             for level, code, name in ind.areas], cls="terms"))
    # The city's breakdowns: months, the latest term and the latest year.
    if city:
        periods = [("manad", s, e) for s, e in months] + [("termin", s, e) for s, e in terms[-1:]] + [
            ("ar", s, e) for s, e in years[-1:]]
        for breakdown, values in ind.breakdowns.items():
            tables.append(_table(
                f"{BREAKDOWNS.get(breakdown, breakdown)}, {city[2]}",
                BREAKDOWNS.get(breakdown, breakdown),
                [_column(pt, s, e, reference_date) for pt, s, e in periods],
                [{"label": breakdown_value_label(breakdown, v), "group": "", "code": "",
                  "cells": [_cell(ind.get(pt, s, "stad", city[1], breakdown, v)) for pt, s, _ in periods]}
                 for v in values], cls="breakdown"))
    # School units: the latest months and the latest term.
    school_table = None
    if ind.schools:
        periods = [("manad", s, e) for s, e in months[-SCHOOL_MONTHS:]] + [
            ("termin", s, e) for s, e in terms[-1:]]
        school_table = _table(
            "Per skolenhet", "Skolenhet",
            [_column(pt, s, e, reference_date) for pt, s, e in periods],
            [{"label": name, "group": "", "code": code,
              "cells": [_cell(ind.get(pt, s, "skolenhet", code)) for pt, s, _ in periods]}
             for code, name in ind.schools], cls="schools")

    charts = []
    city_target = None
    if city:
        city_rows = [ind.get("manad", s, "stad", city[1]) for s, _ in months]
        city_target = next((r["target"] for r in reversed(city_rows) if r and r.get("target") is not None),
                           None)
        charts.append(trend_svg(
            [_point("manad", r, s, reference_date) for r, (s, _) in zip(city_rows, months, strict=True)],
            unit=info.unit, target=city_target, period_type="manad",
            title=f"{info.name}, {city[2]}, per månad"))
        week_rows = [ind.get("vecka", s, "stad", city[1]) for s, _ in weeks]
        if sum(1 for r in week_rows if r and r.get("value") is not None) >= 3:
            charts.append(trend_svg(
                [_point("vecka", r, s, reference_date) for r, (s, _) in zip(week_rows, weeks, strict=True)],
                unit=info.unit, target=city_target, period_type="vecka",
                title=f"{info.name}, {city[2]}, per vecka"))
    return {
        "id": info.id, "info": info, "charts": charts, "tables": tables, "school_table": school_table,
        "target": target_text(city_target, info), "direction": direction_text(info),
        "area_targets": _area_targets(ind, city_target), "area_levels": area_levels_text(info),
    }


def _point(period_type: str, row: Row | None, start: dt.date, reference_date: dt.date | None) -> ChartPoint:
    year, week, _ = start.isocalendar()
    return ChartPoint(label=period_label(period_type, start, short=True),
                      tick=f"v{week}" if period_type == "vecka" else MONTHS_SHORT[start.month - 1],
                      year=year if period_type == "vecka" else start.year,
                      value=None if row is None or row.get("suppressed") else row.get("value"),
                      suppressed=bool(row and row.get("suppressed")),
                      running=bool(row and _is_running(row, reference_date)))


def _area_targets(ind: Indicator, city_target: float | None) -> list[str]:
    """Targets that differ from the city's (area-specific rows of the targets seed)."""
    if ind.info.unit != "andel":
        return []
    by_area: dict[tuple[str, str, str], set[float]] = defaultdict(set)
    for r in ind.rows:
        if r["area_level"] != "stad" and r.get("target") is not None:
            by_area[(r["area_level"], r["area_code"], r["area_name"])].add(r["target"])
    notes = []
    for level in ("stadsdelsomrade", "sspf_omrade", "skolenhet"):
        areas = {a: t for a, t in by_area.items() if a[0] == level}
        distinct = {t for ts in areas.values() for t in ts}
        if not distinct or distinct == ({city_target} if city_target is not None else set()):
            continue
        label = AREA_LEVELS[level]
        if len(distinct) == 1 and len(areas) > 1:
            notes.append(f"{label}: {target_text(next(iter(distinct)), ind.info)}")
            continue
        for (_, _, name), ts in sorted(areas.items(), key=lambda kv: kv[0][2] or ""):
            if ts != {city_target}:
                notes.append(f"{name} ({label.lower()}): "
                             + ", ".join(target_text(t, ind.info) for t in sorted(ts)))
    return notes


def _trend(current: Row | None, previous: Row | None, unit: str, partial: bool = False) -> dict[str, str]:
    """The change against the previous period. A count for a running (partial) month is not
    comparable with a whole month: the change is shown, marked as a part of the month."""
    if (current is None or previous is None or current.get("suppressed") or previous.get("suppressed")
            or current.get("value") is None or previous.get("value") is None):
        return {"arrow": "", "text": "ingen jämförelse", "cls": "trend-none"}
    diff = current["value"] - previous["value"]
    if unit == "andel":
        shown = round(diff * 100, 1)
        text = _decimal(abs(shown), 1) + " procentenheter"
    else:
        shown = round(diff)
        text = _decimal(abs(shown), 0)
    note = " (del av månaden)" if partial and unit == "antal" else ""
    if shown > 0:
        return {"arrow": "↑", "text": "+" + text + note, "cls": "trend-up"}
    if shown < 0:
        return {"arrow": "↓", "text": "−" + text + note, "cls": "trend-down"}
    return {"arrow": "→", "text": "oförändrat" + note, "cls": "trend-flat"}


def build_overview(indicators: list[Indicator], reference_date: dt.date | None) -> list[dict[str, Any]]:
    """Per area (the city, each stadsdelsområde, each SSPF area): every indicator's latest month."""
    areas: dict[tuple[str, str], str] = {}
    for ind in indicators:
        for level, code, name in ind.areas:
            areas[(level, code)] = name
    ordered = sorted(areas.items(), key=lambda kv: (LEVEL_ORDER.get(kv[0][0], 9), kv[1] or "", kv[0][1]))
    overview = []
    for (level, code), name in ordered:
        groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
        counts = {"grön": 0, "gul": 0, "röd": 0}
        for ind in indicators:
            months = ind.periods.get("manad", [])
            if not months:
                continue
            (start, end) = months[-1]
            if level not in ind.info.area_levels:
                groups[ind.info.group].append({
                    "id": ind.info.id, "name": ind.info.name,
                    "period": period_label("manad", start),
                    "running": running_note(end, reference_date, start),
                    "value": _cell(None, at_level=False), "target": NO_VALUE, "status": None,
                    "status_text": NO_VALUE, "trend": {"arrow": "", "text": "", "cls": "trend-none"},
                })
                continue
            current = ind.get("manad", start, level, code)
            previous = ind.get("manad", months[-2][0], level, code) if len(months) > 1 else None
            status = current.get("status") if current else None
            if status in counts:
                counts[status] += 1
            target = current.get("target") if current else None
            groups[ind.info.group].append({
                "id": ind.info.id, "name": ind.info.name,
                "period": period_label("manad", start),
                "running": running_note(end, reference_date, start),
                "value": _cell(current),
                "target": target_text(target, ind.info),
                "status": status,
                "status_text": status or ("inget mål" if ind.info.unit == "antal" or target is None
                                          else NO_VALUE),
                "trend": _trend(current, previous, ind.info.unit,
                                partial=reference_date is not None and start <= reference_date < end),
            })
        overview.append({"level": level, "level_label": AREA_LEVELS.get(level, level), "code": code,
                         "name": name, "groups": [(g, rows) for g, rows in groups.items() if rows],
                         "counts": counts,
                         "has_suppressed": any(r["value"]["text"] == SUPPRESSED_MARK
                                               for rows in groups.values() for r in rows)})
    return overview


def _lagesbild_pages(rows: list[Row], catalogue: Catalogue) -> dict[str, Any] | None:
    """The latest week's lägesbild per area (the city first, then the SSPF areas)."""
    if not rows:
        return None
    week = max(r["week_start"] for r in rows)
    current = [r for r in rows if r["week_start"] == week]
    first = current[0]
    areas: dict[tuple[str, str], str] = {}
    by_area: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in current:
        areas[(r["area_level"], r["area_code"])] = r["area_name"]
        by_area[(r["area_level"], r["area_code"])].append(r)
    pages = []
    for (level, code), name in sorted(areas.items(),
                                      key=lambda kv: (LEVEL_ORDER.get(kv[0][0], 9), kv[1] or "")):
        measures = []
        red = []
        area_rows = by_area[(level, code)]
        for measure, default_name in LAGESBILD_MEASURES.items():
            mrows = [r for r in area_rows if r["measure"] == measure]
            if measure == "rod_status":
                for r in sorted(mrows, key=lambda r: _order(r["category"])):
                    entry = catalogue.get(r["category"], {})
                    red.append({"id": r["category"],
                                "name": r.get("category_name") or _text(entry.get("name")) or r["category"]})
                continue
            mrows.sort(key=lambda r: (r["category"] != "totalt", _breakdown_sort_key(r.get("category_name")
                                                                                      or r["category"])))
            measures.append({
                "measure": measure,
                "name": next((r["measure_name"] for r in mrows if r.get("measure_name")), default_name),
                "rows": [_lagesbild_row(r) for r in mrows],
                "not_at_level": level != "stad" and measure in LAGESBILD_CITY_ONLY and not mrows,
            })
        pages.append({"level": level, "code": code, "name": name, "measures": measures, "red": red,
                      "has_suppressed": any(c["suppressed"] for m in measures for c in m["rows"])})
    year, week_no, _ = week.isocalendar()
    return {"iso_week": first.get("iso_week") or f"{year}-W{week_no:02d}",
            "week_label": f"vecka {week_no} {year}", "week_short": f"v. {week_no}",
            "week_start": week.isoformat(),
            "week_end": first["week_end"].isoformat(), "pages": pages,
            "data_version": first.get("data_version", "")}


def _lagesbild_row(r: Row) -> dict[str, Any]:
    value = None if r.get("suppressed") else r.get("value")
    average = None if r.get("trailing_average_suppressed") else r.get("trailing_average")
    label = "Totalt" if r["category"] == "totalt" else (r.get("category_name") or r["category"])
    return {
        "label": label[:1].upper() + label[1:],
        "value": SUPPRESSED_MARK if r.get("suppressed") else format_number(value, "antal"),
        "value_cls": "num suppressed" if r.get("suppressed") else "num",
        "average": (SUPPRESSED_MARK if r.get("trailing_average_suppressed")
                    else NO_VALUE if average is None else _decimal(average, 1)),
        "average_cls": "num suppressed" if r.get("trailing_average_suppressed") else "num",
        "trend": _lagesbild_trend(value, average),
        "suppressed": bool(r.get("suppressed") or r.get("trailing_average_suppressed")),
        "total": r["category"] == "totalt",
    }


def _lagesbild_trend(value: float | None, average: float | None) -> dict[str, str]:
    if value is None or average is None:
        return {"arrow": "", "text": "ingen jämförelse", "cls": "trend-none"}
    diff = round(value - average, 1)
    if diff > 0:
        return {"arrow": "↑", "text": f"+{_decimal(diff, 1)}", "cls": "trend-up"}
    if diff < 0:
        return {"arrow": "↓", "text": f"−{_decimal(-diff, 1)}", "cls": "trend-down"}
    return {"arrow": "→", "text": "som snittet", "cls": "trend-flat"}


# ---------------------------------------------------------------------------------------------
# Public entry points


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _produced_at() -> str:
    return dt.datetime.now(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def _read_rows(path: Path | None) -> list[Row]:
    if path is None or not Path(path).exists():
        return []
    return pq.read_table(path).to_pylist()


def _exclusion_rows(exclusions: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    """The manifest's identity exclusions (counts only) with Swedish labels."""
    out = []
    for source, reasons in sorted(exclusions.items()):
        for reason, n in sorted(reasons.items()):
            if reason == "protected_identity":
                label = "Skyddad identitet"
            elif reason.startswith("invalid_identifier"):
                problem = reason.removeprefix("invalid_identifier").strip("_").replace("_", " ")
                label = "Ogiltigt eller saknat personnummer" + (f" ({problem})" if problem else "")
            else:
                label = reason.replace("_", " ")
            out.append({"source": SOURCE_LABELS.get(source, source), "reason": label,
                        "records": n.get("records", ""), "people": n.get("people", "")})
    return out


def _coverage_rows(coverage: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's reference coverage (what the municipality's reference files do not
    cover) with Swedish labels."""
    out = []
    for gap in coverage:
        if gap["kind"] == "school_unit_not_in_reference":
            what = f"Skolenhet {gap['value']}" + (f" ({gap['name']})" if gap.get("name") else "")
            effect = "saknar SSPF-område: eleverna räknas för hela staden och skolenheten"
            unit = "elever"
        elif gap["kind"] == "handling_district_blank":
            what = "Handläggande stadsdelsområde saknas"
            effect = "ärendena räknas bara för hela staden"
            unit = "ärenden"
        elif gap["kind"] == "handling_district_not_in_reference":
            what = f"Handläggande stadsdelsområde ”{gap['value']}”"
            effect = "okänt stadsdelsområde: ärendena räknas bara för hela staden"
            unit = "ärenden"
        else:
            what = f"Stadsdel ”{gap['value']}”"
            effect = "okänd stadsdel: posterna räknas bara för hela staden"
            unit = "poster"
        out.append({"source": SOURCE_LABELS.get(gap["source"], gap["source"]), "what": what,
                    "effect": effect, "count": f"{format_number(gap['records'], 'antal')} {unit}"})
    return out


def _catalogue_entries(indicators: Iterable[Indicator]) -> list[tuple[str, list[IndicatorInfo]]]:
    groups: dict[str, list[IndicatorInfo]] = {g: [] for g in GROUPS}
    for ind in indicators:
        groups[ind.info.group].append(ind.info)
    return [(g, infos) for g, infos in groups.items() if infos]


def render_report(indicators_parquet: Path, *, lagesbild_parquet: Path | None = None, version: str,
                  reference_date: dt.date | None, catalogue: Catalogue, manifest: dict[str, Any],
                  min_cell: int = 5, targets: Path | None = None) -> str:
    """The management report: one self-contained HTML file (inline CSS and SVG, no script,
    no external resource). ``targets`` is the municipality's ref_indicator_targets.csv."""
    rows = _read_rows(indicators_parquet)
    by_indicator: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_indicator[row["indicator_id"]].append(row)
    rules = read_target_rules(targets)
    indicators = [Indicator.build(indicator_info(i, by_indicator[i], catalogue, rules), by_indicator[i])
                  for i in sorted(by_indicator, key=_order)]
    sections = [(g, [build_section(ind, reference_date) for ind in indicators if ind.info.group == g])
                for g in GROUPS]
    months = sorted({s for ind in indicators for s, _ in ind.periods.get("manad", [])})
    template = _environment().get_template("report.html.j2")
    return template.render(
        version=version,
        produced_at=_produced_at(),
        reference_date=reference_date.isoformat() if reference_date else "",
        window=(period_label("manad", months[0]), period_label("manad", months[-1])) if months else None,
        overview=build_overview(indicators, reference_date),
        groups=[(g, s) for g, s in sections if s],
        catalogue_groups=_catalogue_entries(indicators),
        lagesbild=_lagesbild_pages(_read_rows(lagesbild_parquet), catalogue) if lagesbild_parquet else None,
        lagesbild_expected=lagesbild_parquet is not None,
        suppressed_mark=SUPPRESSED_MARK,
        min_cell=min_cell,
        load_report=manifest.get("load_report") or {},
        exclusions=_exclusion_rows(manifest.get("excluded_from_indicators") or {}),
        coverage=_coverage_rows(manifest.get("reference_coverage") or []),
        source_labels=SOURCE_LABELS,
        row_count=len(rows),
        area_levels=AREA_LEVELS,
        link_indicators=True,
    )


def render_lagesbild(lagesbild_parquet: Path, *, version: str, reference_date: dt.date | None,
                     catalogue: Catalogue, min_cell: int = 5) -> str:
    """The weekly lägesbild alone (the city and each SSPF area), self-contained HTML."""
    template = _environment().get_template("lagesbild.html.j2")
    return template.render(
        version=version,
        produced_at=_produced_at(),
        reference_date=reference_date.isoformat() if reference_date else "",
        lagesbild=_lagesbild_pages(_read_rows(lagesbild_parquet), catalogue),
        suppressed_mark=SUPPRESSED_MARK,
        min_cell=min_cell,
        link_indicators=False,
    )


def _sheet_title(indicator_id: str, used: set[str]) -> str:
    base = "".join("_" if ch in '[]:*?/\\' else ch for ch in indicator_id)[:31] or "indikator"
    title, n = base, 2
    while title.lower() in used or title.lower() == "om":
        suffix = f"_{n}"
        title, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


def write_indicator_workbook(indicators_parquet: Path, catalogue: Catalogue, path: Path,
                             min_cell: int = 5, targets: Path | None = None) -> Path:
    """indicators.xlsx: a sheet "Om" (data version, how to read it, the indicators) and one
    sheet per indicator with every published row; suppressed values are written as ``..``."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    rows = _read_rows(indicators_parquet)
    by_indicator: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_indicator[row["indicator_id"]].append(row)
    rules = read_target_rules(targets)
    ids = sorted(by_indicator, key=_order)
    versions = sorted({r["data_version"] for r in rows if r.get("data_version")})
    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    about = wb.create_sheet("Om")
    about.column_dimensions["A"].width = 30
    about.column_dimensions["B"].width = 45
    about.column_dimensions["C"].width = 100

    def heading(ws: Any, text: str) -> list[Any]:
        cell = WriteOnlyCell(ws, value=text)
        cell.font = bold
        return [cell]

    about.append(heading(about, "Samverkan – gemensamma indikatorer för skola, socialtjänst och polis"))
    about.append(["Dataversion", ", ".join(versions)])
    about.append(["Antal rader", len(rows)])
    about.append([])
    about.append(heading(about, "Undertryckta uppgifter"))
    about.append([f"'{SUPPRESSED_MARK}' i Täljare, Nämnare och Värde betyder att uppgiften inte redovisas "
                  f"av sekretesskäl. Primär: antalet eller nämnaren är mindre än {min_cell}, eller täljaren "
                  f"eller nämnare minus täljare ligger mellan 1 och {min_cell - 1}. Sekundär: uppgiften "
                  "hade kunnat räknas fram ur andra publicerade celler (summor och delar) och döljs därför "
                  "också."])
    about.append([])
    about.append(heading(about, "Koder"))
    about.append(["Periodtyp", "vecka (ISO-vecka, måndag–söndag), manad (kalendermånad), termin "
                  "(vt: jan–jun, ht: jul–dec), ar (kalenderår). Den period som innehåller referensdagen "
                  "är löpande."])
    about.append(["Områdesnivå", "stad, stadsdelsomrade, sspf_omrade, skolenhet"])
    about.append(["Enhet", "andel (0–1, visas i procent), antal"])
    about.append(["Status", "grön, gul eller röd mot målet; tom när målet saknas eller uppgiften är "
                  "undertryckt"])
    about.append([])
    about.append([heading(about, h)[0] for h in ("Flik", "Indikator", "Definition och källor")])
    used: set[str] = set()
    titles = {}
    for indicator_id in ids:
        titles[indicator_id] = _sheet_title(indicator_id, used)
        info = indicator_info(indicator_id, by_indicator[indicator_id], catalogue, rules)
        about.append([titles[indicator_id], info.name,
                      " ".join(t for t in (info.definition, f"Källor: {info.sources}.") if t)])

    percent = "0.0%"
    for indicator_id in ids:
        ws = wb.create_sheet(titles[indicator_id])
        ws.freeze_panes = "A2"
        for letter, width in zip("ABCDEFGHIJKLMNOPQ", (38, 9, 12, 12, 16, 12, 24, 16, 22, 9, 9, 10, 7, 11,
                                                      8, 8, 18), strict=True):
            ws.column_dimensions[letter].width = width
        header = []
        for h in WORKBOOK_HEADERS:
            cell = WriteOnlyCell(ws, value=h)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        cells = sorted(by_indicator[indicator_id], key=lambda r: (
            PERIOD_ORDER.get(r["period_type"], 9), r["period_start"], LEVEL_ORDER.get(r["area_level"], 9),
            r["area_code"], r["breakdown"] != "totalt", _breakdown_order(r["breakdown"]),
            _breakdown_sort_key(r["breakdown_value"])))
        for r in cells:
            out: list[Any] = [r.get(c) for c in WORKBOOK_COLUMNS]
            if r.get("suppressed"):
                out[9] = out[10] = out[11] = SUPPRESSED_MARK
            elif r.get("unit") == "andel" and r.get("value") is not None:
                value = WriteOnlyCell(ws, value=r["value"])
                value.number_format = percent
                out[11] = value
            if r.get("target") is not None:
                target = WriteOnlyCell(ws, value=r["target"])
                target.number_format = percent
                out[14] = target
            ws.append(out)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
