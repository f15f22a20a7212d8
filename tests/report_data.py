"""Published-shaped indicator and lägesbild tables for the report tests (no pipeline needed).

The rows follow the published contract (INDICATOR_RULES.md): every period type, the city,
stadsdelsområden, SSPF areas and school units, breakdowns, primary and secondary suppression,
targets with a direction and tolerance and the status they give.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REFERENCE_DATE = dt.date(2026, 6, 12)
WINDOW_START = dt.date(2025, 7, 1)
# Where the data starts, as in the demo world: the school data (SS 12000) on the first lesson
# day of the spring term, the case system and the police a year before the report window.
SCHOOL_DATA_START = dt.date(2026, 1, 12)
DATA_COVERAGE = {
    "ss12000": {"first_data_date": "2026-01-12", "last_data_date": "2026-06-12"},
    "case_system": {"first_data_date": "2024-07-02", "last_data_date": "2026-06-11"},
    "police": {"first_data_date": "2024-07-01", "last_data_date": "2026-06-10"},
}
# The indicators that read school data, and those whose 12-month look-back reads it.
SCHOOL_SOURCED = {"hog_franvaro", "mycket_hog_franvaro", "ogiltig_franvaro_andel", "rapporteringsgrad",
                  "hog_franvaro_med_orosanmalan", "hog_franvaro_med_misstanke",
                  "misstankta_med_hog_franvaro", "kanda_av_flera", "sst_effekt"}
SCHOOL_LOOKBACK = {"kanda_av_flera"}
VERSION = "20260612T060000Z"
MIN_CELL = 5
# the demo municipality's targets file: the direction and tolerance of each target
TARGETS = (Path(__file__).resolve().parent.parent / "samverkan" / "simulator" / "municipalities"
           / "stockholm" / "ref_indicator_targets.csv")

CITY = ("stad", "0180", "Stockholm")
DISTRICTS = [("stadsdelsomrade", "SKH", "Skärholmen"), ("stadsdelsomrade", "EAV", "Enskede-Årsta-Vantör"),
             ("stadsdelsomrade", "RKI", "Rinkeby-Kista")]
SSPF = [("sspf_omrade", "SKH-BS", "Bredäng/Sätra"), ("sspf_omrade", "SKH-SV", "Skärholmen/Vårberg"),
        ("sspf_omrade", "EAV-RA", "Rågsved")]
# Case-system indicators: placed by the handling stadsdelsområde, no SSPF rows (INDICATOR_RULES.md,
# "Area levels per indicator").
HANDLING = frozenset({"orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
                      "utredning_4_manader"})


def area_levels(spec_id: str, school_units: bool) -> list[str]:
    """The levels an indicator is published at (its model's meta.area_levels)."""
    if spec_id in HANDLING:
        return ["stad", "stadsdelsomrade"]
    return ["stad", "stadsdelsomrade", "sspf_omrade"] + (["skolenhet"] if school_units else [])


@dataclass(frozen=True)
class Spec:
    id: str
    name: str
    unit: str
    group: str
    breakdowns: dict[str, list[str]]
    school_units: bool = False
    target: float | None = None
    direction: str = ""
    tolerance: float = 0.0
    level: float = 0.2  # typical value (andel) or count per month in the city (antal)


SPECS = [
    Spec("hog_franvaro", "Andel elever med hög frånvaro", "andel", "Skola",
         {"huvudman": ["kommunal", "fristående"], "arskurs": [str(i) for i in range(1, 10)]},
         school_units=True, target=0.10, direction="lägre", tolerance=0.03, level=0.11),
    Spec("rapporteringsgrad", "Rapporteringsgrad närvaro", "andel", "Skola",
         {"huvudman": ["kommunal", "fristående"]}, school_units=True, target=0.98, direction="högre",
         tolerance=0.03, level=0.97),
    Spec("orosanmalningar", "Antal orosanmälningar", "antal", "Socialtjänst",
         {"anmalare": ["Skola", "Polis", "Hälso- och sjukvård", "Okänd"]}, level=400),
    Spec("forhandsbedomning_14_dagar", "Andel förhandsbedömningar inom 14 dagar", "andel", "Socialtjänst",
         {}, target=1.0, direction="högre", tolerance=0.05, level=0.9),
    Spec("unga_misstankta", "Antal unga misstänkta", "antal", "Polis",
         {"brottskategori": ["Våldsbrott", "Stöld", "Narkotikabrott", "okänd"]}, level=60),
    Spec("kanda_av_flera", "Barn kända av flera verksamheter", "antal", "Samverkan",
         {"antal_verksamheter": ["3"]}, level=150),
    Spec("sst_effekt", "Andel elever med förbättrad närvaro efter skolsocialt team", "andel", "Samverkan",
         {}, target=0.8, direction="högre", tolerance=0.1, level=0.75),
]

_SCHOOL = {"huvudman": ["kommunal", "fristående"], "arskurs": [str(i) for i in range(1, 10)]}
_REPORTERS = {"anmalare": ["Skola", "Polis", "Hälso- och sjukvård", "Förskola", "Okänd"]}
_CRIMES = {"brottskategori": ["Våldsbrott", "Stöld", "Narkotikabrott", "Skadegörelse", "okänd"]}
# All 18 indicators of the catalogue (the scale test: about 100 000 published rows).
ALL_SPECS = [
    SPECS[0],
    Spec("mycket_hog_franvaro", "Andel elever med mycket hög frånvaro", "andel", "Skola", _SCHOOL,
         school_units=True, target=0.01, direction="lägre", tolerance=0.01, level=0.02),
    Spec("ogiltig_franvaro_andel", "Ogiltig frånvaro, andel av undervisningstiden", "andel", "Skola", _SCHOOL,
         school_units=True, target=0.015, direction="lägre", tolerance=0.01, level=0.02),
    Spec("rapporteringsgrad", "Rapporteringsgrad närvaro", "andel", "Skola", _SCHOOL, school_units=True,
         target=0.98, direction="högre", tolerance=0.03, level=0.97),
    Spec("orosanmalningar", "Antal orosanmälningar", "antal", "Socialtjänst", _REPORTERS, level=400),
    Spec("forhandsbedomning_14_dagar", "Andel förhandsbedömningar inom 14 dagar", "andel", "Socialtjänst",
         _REPORTERS, target=1.0, direction="högre", tolerance=0.05, level=0.9),
    Spec("anmalan_till_utredning", "Andel anmälningar som leder till utredning", "andel", "Socialtjänst",
         _REPORTERS, target=0.4, direction="högre", tolerance=0.1, level=0.35),
    Spec("utredning_4_manader", "Andel utredningar klara inom 4 månader", "andel", "Socialtjänst", {},
         target=1.0, direction="högre", tolerance=0.1, level=0.85),
    Spec("placerade_aterforening", "Placerade barn med planerad återförening", "antal", "Socialtjänst", {},
         level=30),
    Spec("unga_misstankta", "Antal unga misstänkta", "antal", "Polis", _CRIMES, level=60),
    Spec("unga_misstankta_upprepat", "Andel unga misstänkta vid upprepade tillfällen", "andel", "Polis", {},
         target=0.3, direction="lägre", tolerance=0.1, level=0.3),
    Spec("unga_brottsoffer", "Antal unga brottsoffer", "antal", "Polis", _CRIMES, level=80),
    Spec("hog_franvaro_med_orosanmalan", "Andel elever med hög frånvaro som också har en orosanmälan",
         "andel", "Samverkan", {}, target=0.5, direction="högre", tolerance=0.15, level=0.4),
    Spec("hog_franvaro_med_misstanke", "Andel elever med hög frånvaro som också är misstänkta för brott",
         "andel", "Samverkan", {}, target=0.05, direction="lägre", tolerance=0.05, level=0.06),
    Spec("misstankta_med_hog_franvaro", "Andel unga misstänkta med hög frånvaro", "andel", "Samverkan", {},
         target=0.3, direction="lägre", tolerance=0.1, level=0.35),
    Spec("kanda_av_flera", "Barn kända av flera verksamheter", "antal", "Samverkan",
         {"antal_verksamheter": ["3"]}, level=150),
    Spec("sst_effekt", "Andel elever med förbättrad närvaro efter skolsocialt team", "andel", "Samverkan",
         {}, target=0.8, direction="högre", tolerance=0.1, level=0.75),
    Spec("sig_effekt", "Andel unga utan ny misstanke efter SIG", "andel", "Samverkan", {},
         target=0.7, direction="högre", tolerance=0.1, level=0.7),
]
# Stockholm's scale of areas: the city, eleven stadsdelsområden, SSPF areas.
MANY_DISTRICTS = [("stadsdelsomrade", f"SD{i:02d}", f"Stadsdelsområde {i}") for i in range(1, 12)]

CATALOGUE = {
    s.id: {"name": s.name, "unit": s.unit, "group": s.group,
           "summary": f"Kort beskrivning av {s.name.lower()}.",
           "definition": f"Definition av {s.name.lower()} (testkatalog)."
           + (" Minst {high_absence_threshold} frånvaro av minst {min_offered_minutes} minuter."
              if s.id == "hog_franvaro" else ""),
           "sources": {"Skola": "SS 12000 (närvaro, inskrivningar)", "Socialtjänst": "Verksamhetssystemet",
                       "Polis": "Polisens filleverans", "Samverkan": "Alla tre källorna"}[s.group],
           "area_levels": area_levels(s.id, s.school_units)}
    for s in ALL_SPECS
}


def month_end(d: dt.date) -> dt.date:
    return (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def periods(reference_date: dt.date = REFERENCE_DATE,
            window_start: dt.date = WINDOW_START) -> list[tuple[str, dt.date, dt.date]]:
    """Every published period (overlapping the window), as the rules define them."""
    out = []
    monday = window_start - dt.timedelta(days=window_start.weekday())
    while monday <= reference_date:
        out.append(("vecka", monday, monday + dt.timedelta(days=6)))
        monday += dt.timedelta(days=7)
    month = window_start
    while month <= reference_date:
        out.append(("manad", month, month_end(month)))
        month = month_end(month) + dt.timedelta(days=1)
    for year in range(window_start.year, reference_date.year + 1):
        terms = ((dt.date(year, 1, 1), dt.date(year, 6, 30)), (dt.date(year, 7, 1), dt.date(year, 12, 31)))
        for start, end in terms:
            if start <= reference_date and end >= window_start:
                out.append(("termin", start, end))
        out.append(("ar", dt.date(year, 1, 1), dt.date(year, 12, 31)))
    return out


def coverage(indicator_id: str, start: dt.date, end: dt.date) -> str | None:
    """The published coverage mark of a period (INDICATOR_RULES.md): only the school data
    starts inside the report window here."""
    if indicator_id not in SCHOOL_SOURCED:
        return None
    covered_end = min(end, REFERENCE_DATE)
    if covered_end < SCHOOL_DATA_START:
        return "source_starts_after_period"
    if start < SCHOOL_DATA_START:
        return "source_starts_in_period"
    if indicator_id in SCHOOL_LOOKBACK:  # the look-back (12 months to covered_end) starts earlier
        return "lookback_before_first_data"
    return None


def status(value: float, spec: Spec, target: float) -> str:
    if spec.direction == "lägre":
        return "grön" if value <= target else "gul" if value <= target + spec.tolerance else "röd"
    return "grön" if value >= target else "gul" if value >= target - spec.tolerance else "röd"


def _scale(period_type: str) -> float:
    return {"vecka": 0.25, "manad": 1.0, "termin": 6.0, "ar": 12.0}[period_type]


def indicator_rows(*, n_schools: int = 3, seed: int = 7, specs: list[Spec] | None = None,
                   districts: list[tuple[str, str, str]] | None = None,
                   suppress_area: str = "SKH-SV") -> list[dict]:
    """Published rows. Cells of ``suppress_area`` are small and primary-suppressed; one
    stadsdelsområde cell per indicator and month is secondarily suppressed in the
    first month; sst_effekt's city rows are suppressed in odd months (gaps in the chart)."""
    rng = random.Random(seed)
    schools = [("skolenhet", f"{10000000 + i}", f"Testskolan {i}") for i in range(1, n_schools + 1)]
    rows = []
    for spec in specs or SPECS:
        levels = [CITY, *(districts or DISTRICTS)] + ([] if spec.id in HANDLING else SSPF) + (
            schools if spec.school_units else [])
        for period_type, start, end in periods():
            for level, code, area in levels:
                size = 1.0 if level == "stad" else 0.25 if level != "skolenhet" else 0.05
                values = [("totalt", "totalt")] + [(b, v) for b, vs in spec.breakdowns.items() for v in vs
                                                   if level != "skolenhet"]
                for breakdown, breakdown_value in values:
                    share = 1.0 if breakdown == "totalt" else 1.0 / len(spec.breakdowns[breakdown])
                    suppressed = None
                    if code == suppress_area or (spec.id == "sst_effekt" and level == "stad"
                                                 and period_type == "manad" and start.month % 2 == 1):
                        suppressed = "primär"
                    elif (code == "RKI" and period_type == "manad" and start == WINDOW_START
                          and breakdown == "totalt"):
                        suppressed = "sekundär"
                    if spec.unit == "andel":
                        denominator = max(20, int(2000 * size * share * _scale(period_type)))
                        value_ = min(1.0, max(0.0, spec.level + rng.uniform(-0.05, 0.05)))
                        numerator = round(denominator * value_)
                        value = numerator / denominator
                    else:
                        numerator = max(5, round(spec.level * size * share * _scale(period_type)
                                                 * rng.uniform(0.8, 1.2)))
                        denominator, value = None, float(numerator)
                    target = None
                    if spec.target is not None:
                        target = spec.target
                        if spec.id == "hog_franvaro" and code == "SKH":
                            target = 0.12
                        if spec.id == "rapporteringsgrad" and level == "skolenhet":
                            target = 0.95
                    row = {
                        "indicator_id": spec.id, "indicator_name": spec.name, "period_type": period_type,
                        "period_start": start, "period_end": end, "area_level": level, "area_code": code,
                        "area_name": area, "breakdown": breakdown, "breakdown_value": breakdown_value,
                        "numerator": None if suppressed else numerator,
                        "denominator": None if suppressed or spec.unit == "antal" else denominator,
                        "value": None if suppressed else value, "unit": spec.unit, "suppressed": suppressed,
                        "target": target,
                        "status": (None if suppressed or target is None or end > REFERENCE_DATE
                                   or coverage(spec.id, start, end) else status(value, spec, target)),
                        "is_running": end > REFERENCE_DATE,
                        "coverage": coverage(spec.id, start, end),
                        "data_version": VERSION,
                    }
                    rows.append(row)
    return rows


INDICATOR_SCHEMA = pa.schema([
    ("indicator_id", pa.string()), ("indicator_name", pa.string()), ("period_type", pa.string()),
    ("period_start", pa.date32()), ("period_end", pa.date32()), ("area_level", pa.string()),
    ("area_code", pa.string()), ("area_name", pa.string()), ("breakdown", pa.string()),
    ("breakdown_value", pa.string()), ("numerator", pa.int64()), ("denominator", pa.int64()),
    ("value", pa.float64()), ("unit", pa.string()), ("suppressed", pa.string()), ("target", pa.float64()),
    ("status", pa.string()), ("is_running", pa.bool_()), ("coverage", pa.string()),
    ("data_version", pa.string()),
])

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


def lagesbild_rows() -> list[dict]:
    """The week before the reference date (2026-W23) for the city and two SSPF areas, plus an
    older week that the report must not show."""
    rows = []
    for week_start, values in ((dt.date(2026, 6, 1), (40, 10.0)), (dt.date(2026, 5, 25), (999, 999.0))):
        year, week, _ = week_start.isocalendar()
        for level, code, area in (CITY, SSPF[0], SSPF[1]):
            def add(measure, category, category_name, value, average, sup=None, avg_sup=None,
                    _level=level, _code=code, _area=area, _week_start=week_start, _iso=f"{year}-W{week:02d}"):
                rows.append({
                    "week_start": _week_start, "week_end": _week_start + dt.timedelta(days=6),
                    "iso_week": _iso, "area_level": _level, "area_code": _code, "area_name": _area,
                    "measure": measure, "measure_name": MEASURE_NAMES[measure], "category": category,
                    "category_name": category_name,
                    "value": None if sup or measure == "rod_status" else value,
                    "trailing_average": None if avg_sup or measure == "rod_status" else average,
                    "suppressed": sup, "trailing_average_suppressed": avg_sup, "data_version": VERSION})
            small = code == "SKH-SV"
            count, average = values
            if level == "stad":  # new reports of concern: the city only (no SSPF placement)
                add("nya_orosanmalningar", "totalt", "Totalt", count, average)
                add("nya_orosanmalningar", "Skola", "Skola", 23, 7.25)
            add("nya_unga_misstankta", "totalt", "Totalt", None if small else 17, 12.5,
                sup="primär" if small else None)
            add("nya_unga_misstankta", "Våldsbrott", "Våldsbrott", None, 2.0, sup="primär")
            add("passerat_hog_franvaro", "totalt", "Totalt", 0, 6.75)
            if code in ("0180", "SKH-BS"):
                add("rod_status", "hog_franvaro", "Andel elever med hög frånvaro", None, None)
    return rows


def write_tables(directory: Path, *, with_lagesbild: bool = True, **kwargs) -> tuple[Path, Path | None]:
    directory.mkdir(parents=True, exist_ok=True)
    indicators = directory / "indicators.parquet"
    pq.write_table(pa.Table.from_pylist(indicator_rows(**kwargs), schema=INDICATOR_SCHEMA), indicators)
    if not with_lagesbild:
        return indicators, None
    lagesbild = directory / "lagesbild.parquet"
    pq.write_table(pa.Table.from_pylist(lagesbild_rows(), schema=LAGESBILD_SCHEMA), lagesbild)
    return indicators, lagesbild
