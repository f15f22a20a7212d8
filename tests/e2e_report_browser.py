"""The demo world's report and lägesbild page, read as a Swedish manager would: in headless
Chromium and printed on A4 (issue 15, points 4-6 and the acceptance's screenshots).

Collected by test_end_to_end.py (a star import) so that these tests share its demo world.
Screenshots of the report's first two pages and an area page, in the browser and printed
(PDF pages through ``pdftoppm``), are kept under test-artifacts/report/ (or
$SAMVERKAN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser_tools import (
    ARTIFACTS,
    axe_check,
    describe_violations,
    page_requests,
    pdf_info,
    pdf_page_png,
    pdf_pages_text,
    png_size,
    print_to_pdf,
    require_poppler,
)
from htmldom import parse
from markupsafe import escape

from samverkan.config import indicator_parameters
from samverkan.publish import indicator_catalogue
from samverkan.report import resolve_parameters

# the seventh column is the running month ("juni 2026 löpande t.o.m. …"); a header that wraps
# on paper is checked by its first line
OVERVIEW_HEADERS = ("Indikator", "Månad", "Värde", "Mål", "Status", "Förändring mot", "löpande t.o.m.")
# Printed, the report had 64 pages, some almost empty; now each overview and lägesbild area
# fills a page of its own and the indicators flow.
MAX_PAGES = 60
MIN_WORDS_PER_PAGE = 40
# Words a manager should never read: the source systems' field names and codes, English.
TECHNICAL = ["isReported", "PLAC_", "Roll =", "antal_verksamheter", "stadsdelsomrade", "sspf_omrade",
             "skolenhet_kod", "fillevererans", "None", "null", "NaN", "missing", "checksum", "bad ",
             "invalid", "unknown", "protected", "quarantine", "report_months", "dbt"]
SKOLENHETSKOD = re.compile(r"\b\d{8}\b")  # a school unit's official code, shown beside its name


class _VisibleText(HTMLParser):
    """The text a reader sees (no style, script, SVG title or attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


@pytest.fixture(scope="module")
def demo_pages(demo_world, lagesbild_run) -> tuple[Path, Path]:
    """The demo's published report.html and the weekly lägesbild.html."""
    assert demo_world.returncode == 0, demo_world.stdout[-2000:] + demo_world.stderr[-3000:]
    report = demo_world.paths.current_publication / "report.html"
    lagesbild = demo_world.paths.published / "lagesbild" / "current" / "lagesbild.html"
    assert report.is_file() and lagesbild.is_file()
    return report, lagesbild


def test_demo_report_speaks_plain_swedish(demo_world, demo_pages):
    """No variable, field or indicator id, no English, no ISO week or raw version; thousands
    grouped; each indicator's one-sentence definition before its value, the technical one
    (with its thresholds' values) once, in the appendix."""
    report, lagesbild = demo_pages
    html = report.read_text(encoding="utf-8")
    text = visible_text(html)
    catalogue = indicator_catalogue(demo_world.paths.dbt_target)
    assert len(catalogue) == 18
    names = set(indicator_parameters()) | {"min_cell", "reference_date", "data_version"}
    for page, page_text in ((report, text), (lagesbild, visible_text(lagesbild.read_text(encoding="utf-8")))):
        found = [w for w in sorted(names) + sorted(catalogue) if re.search(rf"\b{w}\b", page_text)]
        found += [w for w in TECHNICAL if w in page_text]
        assert not found, f"{page.name}: {found}"
        assert not re.search(r"\b\d{4}-W\d{2}\b|\b\d{8}T\d{6}Z\b|\b\d{4}-\d{2}-\d{2}\b", page_text), page.name
        # numbers of four digits or more are grouped (years and school unit codes aside)
        numbers = SKOLENHETSKOD.sub("", page_text.replace("SS 12000", "SS"))
        ungrouped = [n for n in re.findall(r"(?<![\d,])\d{4,}(?![\d,])", numbers)
                     if not re.fullmatch(r"20\d\d", n)]
        assert not ungrouped, f"{page.name}: {ungrouped[:10]}"
        assert re.search(r"vecka \d{1,2}, 20\d\d", page_text), page.name
        assert re.search(r"Dataversion \d{1,2} [a-zé]+ 20\d\d kl\. \d\d\.\d\d", page_text), page.name
    defaults = {name: option.default for name, option in indicator_parameters().items()}
    dom = parse(html)
    appendix = dom.one("section#definitioner")
    assert appendix.one("h2").clean_text == "Bilaga: definitioner"
    for indicator_id, entry in catalogue.items():
        section = dom.one(f"section#ind-{indicator_id}")
        summary = section.one("p.summary").clean_text
        assert summary.startswith(entry["summary"].split("{")[0].strip()[:40]), indicator_id
        assert summary.count(".") <= 2 and len(summary) < 220, summary  # one sentence
        kids = [c for c in section.children if not isinstance(c, str)]
        assert [c.tag for c in kids[:3]] == ["h3", "p", "p"] and "headline" in kids[2].classes, indicator_id
        technical = " ".join(appendix.one(f"dt#def-{indicator_id}").next_element().clean_text.split())
        assert "{" not in technical, technical
        definition = str(escape(resolve_parameters(entry["definition"], defaults)))
        assert html.count(definition) == 1, indicator_id  # the technical definition: printed once
    # thresholds with their values (the demo runs the catalogue's defaults)
    hog = " ".join(appendix.one("dt#def-hog_franvaro").next_element().clean_text.split())
    assert "minst 15 % av den erbjudna tiden" in hog and "minst 300 minuter" in hog
    assert "Polisens filleveranser" in html and "fillevererans" not in html


def test_demo_report_prints_on_a4_with_every_overview_column(demo_pages, chromium, recorder, tmp_path):
    """Printed by Chromium: A4, the overview's first page holds all six column headers and a
    status word, each overview area starts a page, the collapsed areas print open, the page
    count is bounded and no page is left almost empty. The first two pages and an SSPF area's
    page are kept as PNGs."""
    require_poppler()
    report, _ = demo_pages
    pdf = print_to_pdf(chromium, report, tmp_path / "report.pdf")
    assert page_requests(recorder) == []
    info = pdf_info(pdf)
    assert "A4" in info["Page size"], info
    pages = pdf_pages_text(pdf)
    words = [len(p.split()) for p in pages]
    print(f"printed report: {len(pages)} pages, words per page {words}")
    assert int(info["Pages"]) == len(pages) <= MAX_PAGES
    assert min(words[:-1]) >= MIN_WORDS_PER_PAGE, words
    first = next(i for i, p in enumerate(pages)
                 if "Översikt – senaste hela månaden" in p and "Indikator" in p)
    assert first <= 2, first
    flat = " ".join(pages[first].split())
    for header in OVERVIEW_HEADERS:
        assert header in flat, header
    assert re.search(r"\b(grön|gul|röd)\b", flat)
    dom = parse(report.read_text(encoding="utf-8"))
    areas = [(d.attrs["data-area"], d.one("summary").clean_text) for d in dom.select("details.overview-area")]
    assert len(areas) >= 5
    # the city follows the overview's introduction; every other area starts a page of its own
    starts = {areas[0][0]: first}
    for code, summary in areas[1:]:
        name = summary.split(" Stadsdelsområde")[0].split(" SSPF-område")[0]
        page = next((i for i, p in enumerate(pages) if p.strip().startswith(name)), None)
        assert page is not None, f"{name} does not start a printed page"
        starts[code] = page
    assert list(starts.values()) == list(range(first, first + len(areas)))  # one page each, in order
    for code, page in starts.items():
        assert "Indikator" in pages[page] and "Rapporteringsgrad närvaro" in pages[page], code
    # collapsed school-unit tables print open
    assert sum("Per skolenhet" in p for p in pages) >= 4

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sspf = next(code for code, _ in areas if "-" in code)
    shots = {"printed-page-1.png": 1, "printed-page-2.png": 2,
             f"printed-area-{sspf}.png": starts[sspf] + 1}
    for name, page in shots.items():
        shot = pdf_page_png(pdf, page, ARTIFACTS / name)
        width, height = png_size(shot)
        assert abs(width / height - 210 / 297) < 0.01 and shot.stat().st_size > 20_000, (name, width, height)
        print(f"printed page {page}: {shot}")


def test_demo_report_and_lagesbild_in_the_browser(demo_pages, chromium, recorder, tmp_path):
    """On screen: the first two screens of the report and one SSPF area's overview, as PNGs."""
    report, lagesbild = demo_pages
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    top = ARTIFACTS / "browser-pages-1-2.png"
    top.unlink(missing_ok=True)
    chromium(report, f"--screenshot={top}", "--window-size=1280,2000")
    assert page_requests(recorder) == []
    assert png_size(top) == (1280, 2000) and top.stat().st_size > 100_000
    # one area alone (its section opened, the rest hidden by a style in a copy of the page)
    html = report.read_text(encoding="utf-8")
    code = next(d.attrs["data-area"] for d in parse(html).select("details.overview-area")
                if d.attrs["data-level"] == "sspf_omrade")
    area = tmp_path / "report-area.html"
    area.write_text(
        html.replace(f'<details class="overview-area" data-area="{code}"',
                     f'<details class="overview-area" data-area="{code}" open')
        .replace("</head>", f'<style>body > :not(#oversikt), #oversikt > :not(details[data-area="{code}"])'
                            " { display: none !important; }</style></head>"), encoding="utf-8")
    shot = ARTIFACTS / f"browser-area-{code}.png"
    shot.unlink(missing_ok=True)
    chromium(area, f"--screenshot={shot}", "--window-size=1280,1400")
    assert png_size(shot) == (1280, 1400) and shot.stat().st_size > 60_000
    week = ARTIFACTS / "browser-lagesbild.png"
    week.unlink(missing_ok=True)
    chromium(lagesbild, f"--screenshot={week}", "--window-size=1280,2400")
    assert page_requests(recorder) == []
    assert png_size(week) == (1280, 2400)
    print(f"browser screenshots: {top}, {shot}, {week}")


def test_demo_report_and_lagesbild_have_no_wcag_violations(demo_pages, chromium, recorder, tmp_path):
    """axe-core's WCAG 2.1 A and AA rules in Chromium, every collapsed section opened: none."""
    for page in demo_pages:
        result = axe_check(chromium, page, tmp_path)
        assert page_requests(recorder) == []
        print(f"axe-core {result['version']} on {page.name}: {result['rules']} rules, "
              f"{len(result['violations'])} violations")
        assert result["rules"] > 15, result
        assert result["violations"] == [], f"{page.name}:\n" + describe_violations(result["violations"])
