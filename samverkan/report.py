"""The management report (Swedish, one self-contained HTML file, no network fetches)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
import pyarrow.parquet as pq

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUPPRESSED_MARK = ".."

PERIOD_TYPES = {"vecka": "Vecka", "manad": "Månad", "termin": "Termin", "ar": "År"}
AREA_LEVELS = {"stad": "Stad", "stadsdelsomrade": "Stadsdelsområde", "sspf_omrade": "SSPF-område",
               "skolenhet": "Skolenhet"}
# Sections follow the catalogue of indicators.md: school, social services, police, cross-agency.
CATALOGUE_ORDER = [
    "hog_franvaro", "mycket_hog_franvaro", "ogiltig_franvaro_andel", "rapporteringsgrad",
    "orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
    "utredning_4_manader", "placerade_aterforening", "unga_misstankta",
    "unga_misstankta_upprepat", "unga_brottsoffer", "hog_franvaro_med_orosanmalan",
    "hog_franvaro_med_misstanke", "misstankta_med_hog_franvaro", "kanda_av_flera", "sst_effekt",
    "sig_effekt",
]
MONTHS_SV = ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
             "september", "oktober", "november", "december"]


def format_value(row: dict[str, Any]) -> str:
    if row.get("suppressed"):
        return SUPPRESSED_MARK
    value = row.get("value")
    if value is None:
        return "–"
    if row.get("unit") == "andel":
        return f"{value * 100:.1f} %".replace(".", ",")
    return f"{int(round(value)):d}"


def period_label(period_type: str, start: dt.date) -> str:
    if period_type == "manad":
        return f"{MONTHS_SV[start.month - 1]} {start.year}"
    if period_type == "vecka":
        year, week, _ = start.isocalendar()
        return f"v. {week} {year}"
    return start.isoformat()


def build_sections(rows: list[dict[str, Any]], catalogue: dict[str, dict[str, str]],
                   reference_date: dt.date | None) -> list[dict[str, Any]]:
    """One section per indicator; one table per (period type, breakdown value):
    periods down, areas across (the city first)."""
    by_indicator: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_indicator[row["indicator_id"]].append(row)
    sections = []
    def position(indicator_id: str) -> tuple[int, str]:
        known = indicator_id in CATALOGUE_ORDER
        return (CATALOGUE_ORDER.index(indicator_id) if known else len(CATALOGUE_ORDER), indicator_id)

    for indicator_id in sorted(by_indicator, key=position):
        cells = by_indicator[indicator_id]
        info = catalogue.get(indicator_id, {})
        tables = []
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for c in cells:
            groups[(c["period_type"], c["breakdown"], c["breakdown_value"])].append(c)
        for (period_type, breakdown, breakdown_value), group in sorted(groups.items()):
            areas: dict[tuple[int, str], str] = {}
            for c in group:
                order = 0 if c["area_level"] == "stad" else 1
                areas[(order, c["area_code"])] = c["area_name"]
            area_keys = sorted(areas)
            periods = sorted({c["period_start"] for c in group})
            lookup = {(c["period_start"], c["area_code"]): c for c in group}
            body = []
            for start in periods:
                running = reference_date is not None and any(
                    c["period_start"] == start and c["period_end"] >= reference_date for c in group)
                body.append({
                    "label": period_label(period_type, start) + (" (t.o.m. referensdagen)"
                                                                 if running else ""),
                    "cells": [
                        {"text": format_value(lookup[(start, code)]) if (start, code) in lookup
                         else "", "suppressed": bool(lookup.get((start, code), {}).get("suppressed")),
                         "title": _cell_title(lookup.get((start, code)))}
                        for _, code in area_keys
                    ],
                })
            tables.append({
                "caption": PERIOD_TYPES.get(period_type, period_type)
                + ("" if breakdown == "totalt" else f", {breakdown.replace('_', ' ')}: {breakdown_value}"),
                "areas": [areas[k] for k in area_keys],
                "rows": body,
            })
        latest_city = max((c for c in cells if c["area_level"] == "stad"
                           and c["breakdown"] == "totalt"),
                          key=lambda c: c["period_start"], default=None)
        sections.append({
            "id": indicator_id,
            "name": info.get("name") or cells[0]["indicator_name"],
            "definition": info.get("definition", ""),
            "unit": cells[0]["unit"],
            "latest": {"period": period_label(latest_city["period_type"], latest_city["period_start"]),
                       "value": format_value(latest_city)} if latest_city else None,
            "tables": tables,
        })
    return sections


def _cell_title(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "Inga uppgifter"
    if cell.get("suppressed"):
        return f"Skyddad uppgift ({cell['suppressed']} sekretessgranskning)"
    if cell.get("unit") == "andel":
        return f"{int(cell['numerator'])} av {int(cell['denominator'])}"
    return ""


def render_report(indicators_parquet: Path, *, version: str, reference_date: dt.date | None,
                  catalogue: dict[str, dict[str, str]], manifest: dict[str, Any],
                  min_cell: int = 5) -> str:
    rows = pq.read_table(indicators_parquet).to_pylist()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    template = env.get_template("report.html.j2")
    return template.render(
        version=version,
        produced_at=dt.datetime.now(dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M"),
        reference_date=reference_date.isoformat() if reference_date else "",
        sections=build_sections(rows, catalogue, reference_date),
        suppressed_mark=SUPPRESSED_MARK,
        min_cell=min_cell,
        load_report=manifest.get("load_report", {}),
        row_count=len(rows),
    )
