"""The report in a real browser (Debian's headless Chromium) with the network blocked.

Every request the browser makes goes to a loopback HTTP proxy that records it and answers
nothing useful; host names do not resolve. A control page with external resources proves the
recorder sees page fetches; the report must cause none. The rendered DOM must hold every
indicator section, the SVG charts and the status marks, laid out with a size and the status
colours; screenshots are kept under test-artifacts/ (or $SAMVERKAN_TEST_ARTIFACTS). axe-core
finds no WCAG 2.1 A/AA violation; printed, the overview keeps every column. The same on the demo
world: e2e_report_browser.py.
"""

from __future__ import annotations

import json

import report_data as rd
from browser_tools import (
    ARTIFACTS,
    axe_check,
    describe_violations,
    page_requests,
    pdf_info,
    pdf_pages_text,
    png_size,
    print_to_pdf,
    require_poppler,
)
from htmldom import parse

from samverkan.report import render_lagesbild, render_report

STATUS_COLOURS = {"grön": "rgb(26, 127, 55)", "gul": "rgb(201, 151, 0)", "röd": "rgb(198, 40, 40)"}

MEASURE = """<script>
(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const box = e => {
    const r = e.getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)];
  };
  const out = {sections: [], charts: [], marks: [], lagesbild: []};
  for (const s of document.querySelectorAll('section.indicator'))
    out.sections.push({id: s.dataset.indicator, box: box(s)});
  for (const svg of document.querySelectorAll('svg.trend')) {
    const line = svg.querySelector('polyline');
    out.charts.push({id: svg.closest('section.indicator').dataset.indicator, period: svg.dataset.period,
                     box: box(svg), line: line ? box(line) : null,
                     stroke: line ? getComputedStyle(line).stroke : null,
                     points: Array.from(svg.querySelectorAll('circle.point'))
                       .filter(c => box(c)[0] > 0).length});
  }
  for (const dot of document.querySelectorAll('.status .dot'))
    out.marks.push({cls: dot.parentElement.className, box: box(dot),
                    bg: getComputedStyle(dot).backgroundColor});
  for (const p of document.querySelectorAll('section.lagesbild'))
    out.lagesbild.push({area: p.dataset.area, box: box(p)});
  const pre = document.createElement('pre');
  pre.id = 'render-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def test_report_renders_offline_in_chromium(tmp_path, chromium, recorder):
    indicators, lagesbild = rd.write_tables(tmp_path / "published")
    html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                         reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest={},
                         min_cell=rd.MIN_CELL, targets=rd.TARGETS)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")

    # The recorder sees what a page fetches: a control page with external resources.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><head><style>body{background:url(http://bg.example.org/a.png)}'
                       '</style></head><body><img src="http://img.example.com/x.png"></body></html>')
    chromium(control, "--dump-dom")
    assert {("GET", "img.example.com"), ("GET", "bg.example.org")} <= set(page_requests(recorder))

    # The report: no request at all besides the browser's own services.
    dom = parse(chromium(report, "--dump-dom"))
    assert page_requests(recorder) == []
    ids = [s.attrs["data-indicator"] for s in dom.select("section.indicator")]
    assert ids == [s.id for s in rd.SPECS]
    for spec in rd.SPECS:
        section = dom.one(f"section#ind-{spec.id}")
        assert section.one("svg.trend[data-period=manad]").select("circle.point")
        assert section.select("table.months td")
    assert len(dom.select("section.lagesbild")) == 3
    assert dom.select("details.overview-area[data-area=0180] .status-röd")

    # Laid out: sections and charts have a size, the line is drawn, the marks carry their colours.
    instrumented = tmp_path / "report-measured.html"
    instrumented.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    measured = parse(chromium(instrumented, "--dump-dom"))
    assert page_requests(recorder) == []
    check = json.loads(measured.one("pre#render-check").text)
    assert [s["id"] for s in check["sections"]] == ids
    assert all(s["box"][0] > 600 and s["box"][1] > 300 for s in check["sections"]), check["sections"]
    monthly = {c["id"]: c for c in check["charts"] if c["period"] == "manad"}
    assert set(monthly) == set(ids)
    for chart in check["charts"]:
        assert chart["box"][0] >= 600 and chart["box"][1] >= 150, chart
        assert chart["points"] > 0, chart
        if chart["line"] is not None:
            assert chart["line"][0] > 100 and chart["stroke"] == "rgb(0, 90, 156)", chart
    assert monthly["hog_franvaro"]["line"] is not None and monthly["sst_effekt"]["line"] is None
    colours = {}
    for mark in check["marks"]:
        status = next(c.removeprefix("status-") for c in mark["cls"].split() if c.startswith("status-"))
        assert mark["box"][0] >= 8 and mark["box"][1] >= 8, mark
        assert mark["bg"] == STATUS_COLOURS[status], mark
        colours[status] = colours.get(status, 0) + 1
    expected = {st for st in STATUS_COLOURS if dom.select(f".status-{st}")}
    assert set(colours) == expected and "röd" in expected
    assert [p["area"] for p in check["lagesbild"]] == ["0180", "SKH-BS", "SKH-SV"]
    assert all(p["box"][1] > 200 for p in check["lagesbild"])

    # Screenshots, kept as test artifacts.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium(report, f"--screenshot={shot}", "--window-size=1280,5000")
    assert page_requests(recorder) == []
    assert png_size(shot) == (1280, 5000) and shot.stat().st_size > 100_000
    print(f"report screenshot: {shot}")


def test_lagesbild_renders_offline_in_chromium(tmp_path, chromium, recorder):
    _, lagesbild = rd.write_tables(tmp_path / "published")
    page = tmp_path / "lagesbild.html"
    page.write_text(render_lagesbild(lagesbild, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                                     catalogue=rd.CATALOGUE), encoding="utf-8")
    dom = parse(chromium(page, "--dump-dom"))
    assert page_requests(recorder) == []
    assert [p.attrs["data-area"] for p in dom.select("section.lagesbild")] == ["0180", "SKH-BS", "SKH-SV"]
    assert len(dom.select("section.lagesbild .status-röd")) == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lagesbild.png"
    shot.unlink(missing_ok=True)
    chromium(page, f"--screenshot={shot}", "--window-size=1280,2400")
    assert page_requests(recorder) == []
    assert png_size(shot) == (1280, 2400)
    print(f"lägesbild screenshot: {shot}")


def _fixture_report(tmp_path):
    indicators, lagesbild = rd.write_tables(tmp_path / "published")
    report = tmp_path / "report.html"
    report.write_text(render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                                    reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest={},
                                    min_cell=rd.MIN_CELL, targets=rd.TARGETS), encoding="utf-8")
    page = tmp_path / "lagesbild.html"
    page.write_text(render_lagesbild(lagesbild, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                                     catalogue=rd.CATALOGUE), encoding="utf-8")
    return report, page


def test_report_and_lagesbild_have_no_wcag_violations(tmp_path, chromium, recorder):
    """axe-core (WCAG 2.1 A and AA rules) in Chromium, every collapsed section opened: none."""
    report, page = _fixture_report(tmp_path)
    for html in (report, page):
        result = axe_check(chromium, html, tmp_path)
        assert page_requests(recorder) == []
        assert result["rules"] > 15, result  # the checker ran its rules (not an empty result)
        assert result["violations"] == [], f"{html.name}:\n" + describe_violations(result["violations"])


def test_printed_report_keeps_every_overview_column_and_opens_collapsed_areas(tmp_path, chromium):
    """Printed to PDF on A4: the overview's seven column headers and the status words on its first
    page, each area on a page of its own, the collapsed areas and school tables printed open."""
    require_poppler()
    report, _ = _fixture_report(tmp_path)
    pdf = print_to_pdf(chromium, report, tmp_path / "report.pdf")
    assert "A4" in pdf_info(pdf)["Page size"]
    pages = pdf_pages_text(pdf)
    overview = next(i for i, p in enumerate(pages)
                    if "Översikt – senaste hela månaden" in p and "Indikator" in p)
    assert overview <= 2, overview
    first = " ".join(pages[overview].split())
    for header in ("Indikator", "Månad", "Värde", "Mål", "Status", "Förändring mot", "löpande t.o.m."):
        assert header in first, header
    assert "röd" in first and "högst 10,0 %" in first
    # each overview area starts a page; the closed ones (all but the city) print open
    for name in ("Skärholmen", "Enskede-Årsta-Vantör", "Bredäng/Sätra", "Rågsved"):
        start = [p for p in pages if p.strip().startswith(name)]
        assert start and "Andel elever med hög frånvaro" in start[0], name
    assert any("Per skolenhet" in p and "Testskolan 1" in p for p in pages)  # a collapsed table, printed
    words = [len(p.split()) for p in pages]
    assert len(pages) <= 40 and min(words[:-1]) >= 40, words
