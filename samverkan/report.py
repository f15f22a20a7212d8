"""The management report and its exports (Swedish text, self-contained files, no network fetches).

- ``render_report``: one HTML file: a title page, an overview (the last complete month per
  area: value, target, status and the trend against the complete month before; the running
  month beside it, without status or trend), one section per indicator grouped
  Skola / Socialtjänst / Polis / Samverkan (a one-sentence definition, the city's latest value,
  inline SVG trend charts per month and per week with their own captions and targets, months ×
  areas, terms and years, the city's breakdowns, school units), the weekly lägesbild per SSPF
  area and the city, "Om uppgifterna" and the appendix "Bilaga: definitioner" (the technical
  definitions with the run's thresholds and windows, and the sources). Printed, it is A4: each
  overview and lägesbild area on a page of its own, collapsed sections open.

Everything a reader sees is Swedish: "vecka 23, 2026", "12 juni 2026", the data version as
the local time it was built ("6 december 2026 kl. 07.24"), digits grouped with a no-break
space and a decimal comma. The status is a word (with an icon) wherever a cell is coloured.
- ``render_lagesbild``: the lägesbild pages alone, for the weekly publication.
- The workbook and the CSV file for Swedish Excel are written by samverkan/workbook.py from
  the same published files, with the labels defined here.

Everything shown is read from the published (already disclosure-controlled) files; the
report never re-derives a suppressed value. Suppressed cells are shown as ``..``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
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
# A period that a source the indicator uses does not fully cover (published column coverage):
# its value is shown with this mark and an explanation, without status, trend or chart line.
COVERAGE_MARK = "*"
COVERAGE_TEXT = {
    "source_starts_after_period": "källan har inga uppgifter för perioden",
    "source_starts_in_period": "källans uppgifter börjar först under perioden",
    "source_ends_in_period": "källans uppgifter tar slut under perioden",
    "lookback_before_first_data":
        "bakåtblicken (de senaste tolv månaderna) når före källans första uppgifter",
}
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
SUPPRESSION_KINDS = {"primar": "primär", "primär": "primär", "primary": "primär",
                     "sekundar": "sekundär", "sekundär": "sekundär", "secondary": "sekundär"}
LAGESBILD_MEASURES = {
    "nya_orosanmalningar": "Nya orosanmälningar",
    "nya_unga_misstankta": "Nya unga misstänkta",
    "passerat_hog_franvaro": "Elever som passerat gränsen för hög frånvaro",
    "rod_status": "Indikatorer som blivit röda",
}
# Lägesbild measures published for the whole city only (published_lagesbild.sql: the case
# system places a report in the stadsdelsområde that handles it, never in an SSPF area).
LAGESBILD_CITY_ONLY = frozenset({"nya_orosanmalningar"})
SOURCE_LABELS = {"ss12000": "Skolornas elev- och närvarouppgifter",
                 "case_system": "Socialtjänstens verksamhetssystem", "police": "Polisens filleveranser"}
SCHOOL_MONTHS = 3  # months shown in the school-unit table (all months are in the xlsx/csv)

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
    """A period in Swedish: "maj 2026" ("maj 2026" short: "maj 2026"), "vecka 23, 2026"
    ("v. 23, 2026"), "vt 2026", "2026"."""
    if period_type == "manad":
        return f"{(MONTHS_SHORT if short else MONTHS_SV)[start.month - 1]} {start.year}"
    if period_type == "vecka":
        year, week, _ = start.isocalendar()
        return f"v.{NBSP}{week}, {year}" if short else f"vecka {week}, {year}"
    if period_type == "termin":
        return f"{'vt' if start.month < 7 else 'ht'} {start.year}"
    if period_type == "ar":
        return str(start.year)
    return start.isoformat()


def format_date(day: dt.date | None, *, year: bool = True) -> str:
    """A date as Swedish text: "6 december 2026" (without the year: "6 december")."""
    if day is None:
        return ""
    text = f"{day.day} {MONTHS_SV[day.month - 1]}"
    return f"{text} {day.year}" if year else text


def format_date_range(start: dt.date, end: dt.date) -> str:
    """ "1–7 juni 2026", "29 juni – 5 juli 2026", "29 december 2025 – 4 januari 2026"."""
    if start.year != end.year:
        return f"{format_date(start)} – {format_date(end)}"
    if start.month != end.month:
        return f"{format_date(start, year=False)} – {format_date(end)}"
    return f"{start.day}–{format_date(end)}"


def format_timestamp(moment: dt.datetime) -> str:
    """A point in time in Swedish local time: "6 december 2026 kl. 07.24"."""
    local = moment.astimezone(LOCAL_TZ) if moment.tzinfo else moment
    return f"{format_date(local.date())} kl.{NBSP}{local:%H.%M}"


def format_version(version: str) -> str:
    """The data version (a UTC timestamp such as ``20261206T062404Z``) as the local date and
    time it was built: "6 december 2026 kl. 07.24". Another version string is shown as it is."""
    try:
        moment = dt.datetime.strptime(version, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return version
    return format_timestamp(moment)


def running_note(end: dt.date, reference_date: dt.date | None, start: dt.date | None = None) -> str:
    """The running period (the one that contains the reference date: period_end > R) is
    labelled as such."""
    if reference_date is None or end <= reference_date or (start is not None and start > reference_date):
        return ""
    return f"löpande t.o.m. {format_date(reference_date).replace(' ', NBSP, 1)}"


def _is_running(row: Row, reference_date: dt.date | None) -> bool:
    if row.get("is_running") is not None:  # the published flag
        return bool(row["is_running"])
    return bool(running_note(row["period_end"], reference_date, row["period_start"]))


def coverage_text(row: Row | None) -> str:
    """Why a period is marked (published column coverage), in Swedish; empty when covered."""
    code = row.get("coverage") if row else None
    if not code:
        return ""
    return "Perioden täcks inte helt av uppgifterna: " + COVERAGE_TEXT.get(code, code) + "; ingen status."


def _cell(row: Row | None, *, at_level: bool = True) -> dict[str, str]:
    """A table cell: text, CSS classes, tooltip; ``mark`` and ``mark_title`` for a period the
    sources do not fully cover. ``at_level`` False: the indicator is not published at the
    cell's area level (its source cannot place it there)."""
    if not at_level:
        return {"text": NOT_AT_LEVEL, "cls": "not-at-level", "title": "", "status": "", "mark": "",
                "mark_title": ""}
    if row is None:
        return {"text": "", "cls": "num empty", "title": "Inget underlag", "status": "", "mark": "",
                "mark_title": ""}
    if row.get("suppressed"):
        kind = SUPPRESSION_KINDS.get(str(row["suppressed"]), "")
        return {"text": SUPPRESSED_MARK, "cls": "num suppressed",
                "title": f"Skyddad uppgift ({kind} röjandekontroll)" if kind else "Skyddad uppgift",
                "status": "", "mark": "", "mark_title": ""}
    cls = "num"
    status = row.get("status") if row.get("status") in STATUS_TINT else ""
    if status:
        cls += " " + STATUS_TINT[status]
    title = ""
    if row.get("unit") == "andel" and row.get("numerator") is not None and row.get("denominator") is not None:
        title = f"{_decimal(row['numerator'], 0)} av {_decimal(row['denominator'], 0)}"
    cell = {"text": format_value(row), "cls": cls, "title": title, "status": status, "mark": "",
            "mark_title": ""}
    if row.get("coverage"):
        cell.update(cls=cls + " coverage", mark=COVERAGE_MARK, mark_title=coverage_text(row))
    return cell


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
    definition: str  # the technical definition, thresholds with their values (the appendix)
    sources: str
    direction: str
    tolerance: float | None
    summary: str = ""  # one sentence a manager understands (beside the value)
    # the area levels the indicator is published at (the model's meta.area_levels; without
    # a catalogue: the levels its rows have)
    area_levels: tuple[str, ...] = ()


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def parameter_text(value: Any) -> str:
    """A run parameter as the definitions show it: a share as a percentage ("15 %"), a
    number with Swedish digit grouping."""
    if isinstance(value, float):  # the catalogue's shares (0..1)
        return _decimal(value * 100, 1).removesuffix(",0") + NBSP + "%"
    return _decimal(float(value), 0)


def default_parameters() -> dict[str, Any]:
    """The indicators' thresholds and windows as the dbt project declares them (defaults)."""
    from samverkan.config import indicator_parameters

    return {name: option.default for name, option in indicator_parameters().items()}


def resolve_parameters(text: str, parameters: dict[str, Any]) -> str:
    """The catalogue's texts name a threshold or window as ``{high_absence_threshold}``: replaced
    by the value the run used ("15 %"); an unknown name is left for the tests to find."""
    return PLACEHOLDER.sub(lambda m: parameter_text(parameters[m.group(1)]) if m.group(1) in parameters
                           else m.group(0), text)


def indicator_info(indicator_id: str, rows: Sequence[Row], catalogue: Catalogue,
                   rules: dict[str, TargetRule], parameters: dict[str, Any] | None = None) -> IndicatorInfo:
    """The catalogue entry of one indicator; ``parameters`` are the thresholds and windows the
    run used (by default the catalogue's defaults), written into the definitions."""
    entry = catalogue.get(indicator_id, {})
    values = {**default_parameters(), **(parameters or {})}
    group = _text(entry.get("group")) or DEFAULT_GROUPS.get(indicator_id, "Samverkan")
    if group not in GROUPS:
        group = "Samverkan"
    rule = rules.get(indicator_id)
    return IndicatorInfo(
        id=indicator_id,
        name=_text(entry.get("name")) or (rows[0]["indicator_name"] if rows else indicator_id),
        unit=(rows[0]["unit"] if rows else "") or _text(entry.get("unit")),
        group=group,
        definition=resolve_parameters(_text(entry.get("definition")), values),
        summary=resolve_parameters(_text(entry.get("summary")), values),
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
    coverage: str = ""  # why a source does not cover the period (no line through the point)
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
        # a gap where a value is missing or a source does not cover the period: no line
        # through a period whose change is an artefact of where the data starts or stops
        if p.value is None or p.coverage:
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
            if p.coverage:
                cls += " coverage"
                note += " (" + COVERAGE_TEXT.get(p.coverage, p.coverage) + ")"
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
    has_coverage = any(c.get("mark") for r in rows for c in r["cells"])
    return {"caption": caption, "corner": corner, "columns": columns, "rows": rows,
            "has_suppressed": has_suppressed, "has_coverage": has_coverage, "cls": cls}


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
    chart_notes: list[str] = []
    city_target = None
    if city:
        city_rows = [ind.get("manad", s, "stad", city[1]) for s, _ in months]
        city_target = _latest_target(city_rows, info)
        charts.append(_chart(info, "manad", city_rows, months, city_target, city[2], reference_date))
        week_rows = [ind.get("vecka", s, "stad", city[1]) for s, _ in weeks]
        if sum(1 for r in week_rows if r and r.get("value") is not None) >= 3:
            # The week's own target: a share's target applies to any period; a count has none.
            charts.append(_chart(info, "vecka", week_rows, weeks, _latest_target(week_rows, info), city[2],
                                 reference_date))
        marked = [i for i, r in enumerate(city_rows) if r and r.get("coverage")]
        if marked:
            chart_notes.append(
                "Grå punkter utan linje (" + _month_ranges([months[i][0] for i in marked])
                + ") täcks inte helt av källornas uppgifter (se Uppgifternas omfattning): en "
                  "förändring där kan bero på var uppgifterna börjar eller slutar.")
    return {
        "id": info.id, "info": info, "charts": charts, "chart_notes": chart_notes, "tables": tables,
        "school_table": school_table,
        "target": target_text(city_target, info), "direction": direction_text(info),
        "area_targets": _area_targets(ind, city_target), "area_levels": area_levels_text(info),
    }


def _latest_target(rows: Sequence[Row | None], info: IndicatorInfo) -> float | None:
    """The target the latest rows of one period type carry (a share's only; counts have none)."""
    if info.unit != "andel":
        return None
    return next((r["target"] for r in reversed(rows) if r and r.get("target") is not None), None)


CHART_PERIODS = {"manad": ("per månad", "månad", "den löpande månaden"),
                 "vecka": ("per vecka (måndag–söndag)", "vecka", "den löpande veckan")}


def _chart(info: IndicatorInfo, period_type: str, rows: list[Row | None],
           periods: list[tuple[dt.date, dt.date]], target: float | None, area: str,
           reference_date: dt.date | None) -> dict[str, Any]:
    """One trend chart and its own caption (what one point is, the target that fits the period)."""
    per, one, running = CHART_PERIODS[period_type]
    points = [_point(period_type, r, s, reference_date) for r, (s, _) in zip(rows, periods, strict=True)]
    caption = [f"{area}, {per}: varje punkt är en {one}."]
    if target is not None:
        caption.append(f"Streckad linje: målet, {target_text(target, info)}"
                       + (", som gäller för varje vecka lika väl som för månaden." if period_type == "vecka"
                          else "."))
    elif info.unit == "antal":
        caption.append("Antal följs över tid utan mål.")
    if any(p.running for p in points):
        caption.append(f"Ofylld punkt: {running} t.o.m. {format_date(reference_date)}.")
    if any(p.suppressed for p in points):
        caption.append("Tecknet .. vid axeln betyder skyddad uppgift.")
    return {"period_type": period_type, "caption": " ".join(caption),
            "svg": trend_svg(points, unit=info.unit, target=target, period_type=period_type,
                             title=f"{info.name}, {area}, {per}")}


def _month_ranges(starts: list[dt.date]) -> str:
    """Months as compact ranges: "jul 2025–jan 2026, mar 2026"."""
    ranges: list[list[dt.date]] = []
    for start in sorted(starts):
        if ranges and (ranges[-1][1].year * 12 + ranges[-1][1].month + 1
                       == start.year * 12 + start.month):
            ranges[-1][1] = start
        else:
            ranges.append([start, start])
    return ", ".join(period_label("manad", a, short=True) if a == b else
                     f"{period_label('manad', a, short=True)}–{period_label('manad', b, short=True)}"
                     for a, b in ranges)


def _point(period_type: str, row: Row | None, start: dt.date, reference_date: dt.date | None) -> ChartPoint:
    year, week, _ = start.isocalendar()
    return ChartPoint(label=period_label(period_type, start, short=True),
                      tick=f"v{week}" if period_type == "vecka" else MONTHS_SHORT[start.month - 1],
                      year=year if period_type == "vecka" else start.year,
                      value=None if row is None or row.get("suppressed") else row.get("value"),
                      suppressed=bool(row and row.get("suppressed")),
                      running=bool(row and _is_running(row, reference_date)),
                      coverage=(row.get("coverage") or "") if row else "")


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


def _trend(current: Row | None, previous: Row | None, unit: str) -> dict[str, str]:
    """The change of a complete period against the previous complete period; none when either
    is suppressed or not fully covered by the sources (the change would be an artefact)."""
    if (current is None or previous is None or current.get("suppressed") or previous.get("suppressed")
            or current.get("value") is None or previous.get("value") is None):
        return {"arrow": "", "text": "ingen jämförelse", "cls": "trend-none"}
    if current.get("coverage") or previous.get("coverage"):
        return {"arrow": "", "text": "ingen jämförelse (ofullständiga uppgifter)", "cls": "trend-none"}
    diff = current["value"] - previous["value"]
    if unit == "andel":
        shown = round(diff * 100, 1)
        text = _decimal(abs(shown), 1) + " procentenheter"
    else:
        shown = round(diff)
        text = _decimal(abs(shown), 0)
    if shown > 0:
        return {"arrow": "↑", "text": "+" + text, "cls": "trend-up"}
    if shown < 0:
        return {"arrow": "↓", "text": "−" + text, "cls": "trend-down"}
    return {"arrow": "→", "text": "oförändrat", "cls": "trend-flat"}


def _complete_and_running(periods: list[tuple[dt.date, dt.date]], rows: Iterable[Row | None],
                          reference_date: dt.date | None
                          ) -> tuple[list[tuple[dt.date, dt.date]], tuple[dt.date, dt.date] | None]:
    """The complete periods (period_end <= R) and the running one (period_end > R), if any."""
    running_starts = {r["period_start"] for r in rows if r and _is_running(r, reference_date)}
    complete = [(s, e) for s, e in periods
                if s not in running_starts and not running_note(e, reference_date, s)]
    running = next(((s, e) for s, e in periods if (s, e) not in complete), None)
    return complete, running


def build_overview(indicators: list[Indicator], reference_date: dt.date | None) -> list[dict[str, Any]]:
    """Per area (the city, each stadsdelsområde, each SSPF area): every indicator's last
    complete month (value, target, status, change against the complete month before), and the
    running month beside it, labelled, without status or change."""
    areas: dict[tuple[str, str], str] = {}
    for ind in indicators:
        for level, code, name in ind.areas:
            areas[(level, code)] = name
    ordered = sorted(areas.items(), key=lambda kv: (LEVEL_ORDER.get(kv[0][0], 9), kv[1] or "", kv[0][1]))
    overview = []
    for (level, code), name in ordered:
        groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
        counts = {"grön": 0, "gul": 0, "röd": 0}
        running_label: tuple[str, str] | None = None
        for ind in indicators:
            months = ind.periods.get("manad", [])
            if not months:
                continue
            complete, running = _complete_and_running(
                months, (ind.get("manad", s, level, code) for s, _ in months), reference_date)
            current = ind.get("manad", complete[-1][0], level, code) if complete else None
            previous = ind.get("manad", complete[-2][0], level, code) if len(complete) > 1 else None
            if level not in ind.info.area_levels:
                groups[ind.info.group].append({
                    "id": ind.info.id, "name": ind.info.name,
                    "period": period_label("manad", complete[-1][0]) if complete else NO_VALUE,
                    "value": _cell(None, at_level=False), "target": NO_VALUE, "status": None,
                    "status_text": NO_VALUE, "coverage": "",
                    "trend": {"arrow": "", "text": "", "cls": "trend-none"},
                    "running_period": "", "running": "", "running_value": None,
                })
                continue
            status = current.get("status") if current else None
            if status in counts:
                counts[status] += 1
            target = current.get("target") if current else None
            if ind.info.unit == "antal" or target is None:
                status_text = "inget mål"
            elif current and current.get("coverage"):
                status_text = "ingen status"
            else:
                status_text = NO_VALUE
            running_row = ind.get("manad", running[0], level, code) if running else None
            if running and running_label is None:
                running_label = (period_label("manad", running[0]),
                                 running_note(running[1], reference_date, running[0]))
            running_cell = _cell(running_row) if running else None
            if running_cell is not None:  # beside the complete month: no status colour
                running_cell["cls"] = " ".join(c for c in running_cell["cls"].split()
                                               if c not in STATUS_TINT.values())
            groups[ind.info.group].append({
                "id": ind.info.id, "name": ind.info.name,
                "period": period_label("manad", complete[-1][0]) if complete else NO_VALUE,
                "value": _cell(current) if complete else _cell(None),
                "target": target_text(target, ind.info),
                "status": status,
                "status_text": status_text,
                # the reason is the mark's title (and "Uppgifternas omfattning"); here a short note
                "coverage": "perioden täcks inte helt" if current and current.get("coverage")
                and not current.get("suppressed") else "",
                "trend": _trend(current, previous, ind.info.unit),
                "running_period": period_label("manad", running[0]) if running else "",
                "running": running_note(running[1], reference_date, running[0]) if running else "",
                "running_value": running_cell,
            })
        overview.append({"level": level, "level_label": AREA_LEVELS.get(level, level), "code": code,
                         "name": name, "groups": [(g, rows) for g, rows in groups.items() if rows],
                         "counts": counts,
                         # the running month, labelled once in the column header
                         "running_period": running_label[0] if running_label else "",
                         "running": running_label[1] if running_label else "",
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
            "week_label": period_label("vecka", week), "week_short": f"v.{NBSP}{week_no}",
            "week_dates": format_date_range(week, first["week_end"]),
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


def _untinted(cls: str) -> str:
    """A cell's classes without the status tint (where the status has a column of its own)."""
    return " ".join(c for c in cls.split() if c not in STATUS_TINT.values())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["untinted"] = _untinted
    return env


def _produced_at() -> str:
    return format_timestamp(dt.datetime.now(LOCAL_TZ))


def _read_rows(path: Path | None) -> list[Row]:
    if path is None or not Path(path).exists():
        return []
    return pq.read_table(path).to_pylist()


IDENTIFIER_PROBLEMS = {
    "missing": "Personnummer saknas",
    "bad_format": "Ogiltigt personnummer (felaktigt format)",
    "bad_date": "Ogiltigt personnummer (omöjligt eller framtida födelsedatum)",
    "bad_checksum": "Ogiltigt personnummer (felaktig kontrollsiffra)",
}


def exclusion_reason(reason: str) -> str:
    """Why records were left out of the indicators, in Swedish (the manifest's reason codes)."""
    if reason == "protected_identity":
        return "Skyddad identitet"
    if reason.startswith("invalid_identifier"):
        problem = reason.removeprefix("invalid_identifier").strip("_")
        return IDENTIFIER_PROBLEMS.get(problem, "Ogiltigt eller saknat personnummer")
    return "Annat skäl"


def _count(value: Any) -> str:
    return format_number(value, "antal") if isinstance(value, int | float) else ""


def _load_rows(load_report: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    return [{"source": SOURCE_LABELS.get(source, "Annan källa"), "received": _count(r.get("received")),
             "loaded": _count(r.get("loaded")), "quarantined": _count(r.get("quarantined"))}
            for source, r in load_report.items()]


def _exclusion_rows(exclusions: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    """The manifest's identity exclusions (counts only) with Swedish labels."""
    out = []
    for source, reasons in sorted(exclusions.items()):
        for reason, n in sorted(reasons.items()):
            out.append({"source": SOURCE_LABELS.get(source, source), "reason": exclusion_reason(reason),
                        "records": _count(n.get("records")), "people": _count(n.get("people"))})
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


def _data_coverage_rows(data_coverage: dict[str, dict[str, str | None]]) -> list[dict[str, str]]:
    """The manifest's data coverage: per source its first and last data date."""
    def day(text: str | None) -> str:
        return format_date(dt.date.fromisoformat(text)) if text else "inga uppgifter"

    return [{"source": SOURCE_LABELS.get(source, source),
             "first": day(dates.get("first_data_date")), "last": day(dates.get("last_data_date"))}
            for source, dates in sorted(data_coverage.items(),
                                        key=lambda kv: list(SOURCE_LABELS).index(kv[0])
                                        if kv[0] in SOURCE_LABELS else len(SOURCE_LABELS))]


def _catalogue_entries(indicators: Iterable[Indicator]) -> list[tuple[str, list[IndicatorInfo]]]:
    groups: dict[str, list[IndicatorInfo]] = {g: [] for g in GROUPS}
    for ind in indicators:
        groups[ind.info.group].append(ind.info)
    return [(g, infos) for g, infos in groups.items() if infos]


def render_report(indicators_parquet: Path, *, lagesbild_parquet: Path | None = None, version: str,
                  reference_date: dt.date | None, catalogue: Catalogue, manifest: dict[str, Any],
                  min_cell: int = 5, targets: Path | None = None,
                  parameters: dict[str, Any] | None = None) -> str:
    """The management report: one self-contained HTML file (inline CSS and SVG, no script,
    no external resource). ``targets`` is the municipality's ref_indicator_targets.csv;
    ``parameters`` the indicators' thresholds and windows the run used (the definitions give
    their values; by default the catalogue's)."""
    rows = _read_rows(indicators_parquet)
    by_indicator: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_indicator[row["indicator_id"]].append(row)
    rules = read_target_rules(targets)
    indicators = [Indicator.build(indicator_info(i, by_indicator[i], catalogue, rules, parameters),
                                  by_indicator[i])
                  for i in sorted(by_indicator, key=_order)]
    overview = build_overview(indicators, reference_date)
    # Each indicator's headline (beside its one-sentence definition): the city's overview row.
    headline = {r["id"]: r for a in overview if a["level"] == "stad" for _, rows in a["groups"] for r in rows}
    sections = [(g, [{**build_section(ind, reference_date), "headline": headline.get(ind.info.id)}
                     for ind in indicators if ind.info.group == g])
                for g in GROUPS]
    months = sorted({s for ind in indicators for s, _ in ind.periods.get("manad", [])})
    template = _environment().get_template("report.html.j2")
    return template.render(
        version=version,
        version_label=format_version(version),
        produced_at=_produced_at(),
        reference_date=format_date(reference_date),
        window=(period_label("manad", months[0]), period_label("manad", months[-1])) if months else None,
        overview=overview,
        groups=[(g, s) for g, s in sections if s],
        catalogue_groups=_catalogue_entries(indicators),
        lagesbild=_lagesbild_pages(_read_rows(lagesbild_parquet), catalogue) if lagesbild_parquet else None,
        lagesbild_expected=lagesbild_parquet is not None,
        suppressed_mark=SUPPRESSED_MARK,
        min_cell=min_cell,
        load_report=_load_rows(manifest.get("load_report") or {}),
        exclusions=_exclusion_rows(manifest.get("excluded_from_indicators") or {}),
        coverage=_coverage_rows(manifest.get("reference_coverage") or []),
        data_coverage=_data_coverage_rows(manifest.get("data_coverage") or {}),
        coverage_mark=COVERAGE_MARK,
        source_labels=SOURCE_LABELS,
        row_count=format_number(len(rows), "antal"),
        area_levels=AREA_LEVELS,
        link_indicators=True,
    )


def render_lagesbild(lagesbild_parquet: Path, *, version: str, reference_date: dt.date | None,
                     catalogue: Catalogue, min_cell: int = 5) -> str:
    """The weekly lägesbild alone (the city and each SSPF area), self-contained HTML."""
    template = _environment().get_template("lagesbild.html.j2")
    return template.render(
        version=version,
        version_label=format_version(version),
        produced_at=_produced_at(),
        reference_date=format_date(reference_date),
        lagesbild=_lagesbild_pages(_read_rows(lagesbild_parquet), catalogue),
        suppressed_mark=SUPPRESSED_MARK,
        min_cell=min_cell,
        link_indicators=False,
    )
