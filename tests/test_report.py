"""The management report renders every indicator in catalogue order with suppressed cells marked."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pyarrow.parquet as pq

from samverkan.report import render_report


def _cell(indicator, name, start, area_level, code, area, unit, num, den, value, suppressed=None):
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return {"indicator_id": indicator, "indicator_name": name, "period_type": "manad",
            "period_start": start, "period_end": end, "area_level": area_level, "area_code": code,
            "area_name": area, "breakdown": "totalt", "breakdown_value": "totalt", "numerator": num,
            "denominator": den, "value": value, "unit": unit, "suppressed": suppressed,
            "target": None, "status": None, "data_version": "v1"}


def test_report_orders_sections_marks_suppression_and_formats_swedish(tmp_path):
    may, june = dt.date(2026, 5, 1), dt.date(2026, 6, 1)
    rows = [
        _cell("kanda_av_flera", "Barn kända av flera verksamheter", may, "stad", "0180", "Stockholm",
              "antal", 12, None, 12.0),
        _cell("hog_franvaro", "Andel elever med hög frånvaro", may, "stad", "0180", "Stockholm",
              "andel", 123, 1000, 0.123),
        _cell("hog_franvaro", "Andel elever med hög frånvaro", june, "stad", "0180", "Stockholm",
              "andel", 100, 1000, 0.1),
        _cell("hog_franvaro", "Andel elever med hög frånvaro", may, "stadsdelsomrade", "SKH",
              "Skärholmen", "andel", None, None, None, "primär"),
    ]
    path = tmp_path / "indicators.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    catalogue = {"hog_franvaro": {"name": "Andel elever med hög frånvaro",
                                  "definition": "Elever med minst 15 % frånvaro."}}
    html = render_report(path, version="v1", reference_date=dt.date(2026, 6, 12),
                         catalogue=catalogue, manifest={})
    assert re.findall(r'data-indicator="(\w+)"', html) == ["hog_franvaro", "kanda_av_flera"]
    assert "12,3 %" in html and "Elever med minst 15 % frånvaro." in html
    assert 'class="num suppressed" title="Skyddad uppgift (primär sekretessgranskning)">..<' in html
    assert "juni 2026 (t.o.m. referensdagen)" in html and "maj 2026 (t.o.m." not in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
