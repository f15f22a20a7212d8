"""The management report, the standalone lägesbild and the Excel export, on real parquet files
shaped like the published tables (every period type, suppressed cells, targets and statuses)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import report_data as rd
from htmldom import parse
from openpyxl import load_workbook

from samverkan.report import (
    WORKBOOK_HEADERS,
    render_lagesbild,
    render_report,
    write_indicator_workbook,
)

MANIFEST = {
    "reference_date": rd.REFERENCE_DATE.isoformat(),
    "load_report": {"ss12000": {"received": 1200, "loaded": 1190, "quarantined": 10},
                    "police": {"received": 300, "loaded": 300, "quarantined": 0}},
    "excluded_from_indicators": {"case_system": {"protected_identity": {"records": 7, "people": 2},
                                                 "invalid_identifier_luhn": {"records": 3, "people": 0}}},
    "min_cell": rd.MIN_CELL,
}


def percent(value: float) -> str:
    return f"{value * 100:.1f} %".replace(".", ",")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return rd.write_tables(tmp_path_factory.mktemp("published"))


@pytest.fixture(scope="module")
def report(tables):
    indicators, lagesbild = tables
    html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                         reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest=MANIFEST,
                         min_cell=rd.MIN_CELL, targets=rd.TARGETS)
    return html, parse(html), pq.read_table(indicators).to_pylist()


def cells(tr) -> list[str]:
    """A table row's header and data cells, in document order."""
    return [c.clean_text for c in tr.children if not isinstance(c, str) and c.tag in ("th", "td")]


def _city(rows, indicator, period_type="manad"):
    cells = [r for r in rows if r["indicator_id"] == indicator and r["area_level"] == "stad"
             and r["breakdown"] == "totalt" and r["period_type"] == period_type]
    return sorted(cells, key=lambda r: r["period_start"])


def assert_self_contained(html: str) -> None:
    """Nothing that a browser would fetch: no script, no stylesheet link, no external src/href,
    no CSS import or url(), no http(s) address at all."""
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<iframe" not in html.lower()
    pattern = r'\b(src|href|xlink:href|action|poster|srcset)\s*=\s*["\']?([^"\'\s>]*)'
    for attr, target in re.findall(pattern, html):
        assert attr == "href" and target.startswith("#"), (attr, target)
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html)


def test_report_has_a_section_per_indicator_grouped_with_name_definition_sources_and_target(report):
    html, dom, rows = report
    ids = [s.attrs["data-indicator"] for s in dom.select("section.indicator")]
    assert ids == [s.id for s in rd.SPECS]  # catalogue order within the groups Skola → Samverkan
    groups = [g.attrs["data-group"] for g in dom.select("section.group")]
    assert groups == ["Skola", "Socialtjänst", "Polis", "Samverkan"]
    for spec in rd.SPECS:
        section = dom.one(f"section#ind-{spec.id}")
        assert section.parent.attrs["data-group"] == spec.group
        assert section.one("h3").clean_text == spec.name
        assert section.one("dd.definition").clean_text == rd.CATALOGUE[spec.id]["definition"]
        assert section.one("dd.sources").clean_text == rd.CATALOGUE[spec.id]["sources"]
        target = section.one("dd.target").clean_text
        if spec.unit == "antal":
            assert target == "Följs över tid, inget mål" and not section.select("dd.direction")
        else:
            # the city's target; the direction and tolerance come from the targets seed
            bound = "högst" if spec.direction == "lägre" else "minst"
            assert target == f"{bound} {percent(spec.target)}"
            direction = section.one("dd.direction").clean_text
            assert direction.startswith("lägre är bättre" if spec.direction == "lägre" else "högre är bättre")
            assert f"gul inom {spec.tolerance * 100:.1f}".replace(".", ",") in direction
    # an area-specific target is named
    assert "Skärholmen (stadsdelsområde): högst 12,0 %" in dom.one(
        "section#ind-hog_franvaro dd.area-targets").clean_text
    assert "Skolenhet: minst 95,0 %" in dom.one("section#ind-rapporteringsgrad dd.area-targets").clean_text
    assert dom.one("dd.data-version").clean_text == rd.VERSION
    assert dom.one("dd.reference-date").clean_text == "2026-06-12"
    assert rd.VERSION in dom.one("footer.report-footer").clean_text
    element_ids = [n.attrs["id"] for n in dom.iter() if "id" in n.attrs]
    assert len(element_ids) == len(set(element_ids))
    internal_links = {a.attrs["href"][1:] for a in dom.select("a[href]")}
    assert internal_links <= set(element_ids)  # every internal link has its target
    assert_self_contained(html)


def test_overview_shows_latest_month_value_target_status_and_trend_per_area(report):
    _, dom, rows = report
    areas = [(d.attrs["data-level"], d.attrs["data-area"]) for d in dom.select("details.overview-area")]
    assert areas[0] == ("stad", "0180")
    assert sorted(areas[1:]) == sorted([(lvl, code) for lvl, code, _ in rd.DISTRICTS + rd.SSPF])
    not_at_level = 0
    for level, code in areas:
        overview = dom.one(f"details.overview-area[data-area={code}]")
        for spec in rd.SPECS:
            row = overview.one(f"tr[data-indicator={spec.id}]")
            tds = row.select("td")
            if level not in rd.area_levels(spec.id, spec.school_units):
                # no cell can exist at this level: said so, never 0 or blank, no status or trend
                assert tds[1].clean_text == "uppgift saknas på denna nivå", (spec.id, code)
                assert "not-at-level" in tds[1].classes and not tds[3].select("span.dot")
                assert "↑" not in tds[4].clean_text and "↓" not in tds[4].clean_text
                not_at_level += 1
                continue
            cells = sorted((r for r in rows if r["indicator_id"] == spec.id and r["area_code"] == code
                            and r["period_type"] == "manad" and r["breakdown"] == "totalt"),
                           key=lambda r: r["period_start"])
            latest, previous = cells[-1], cells[-2]
            assert latest["period_start"] == dt.date(2026, 6, 1)
            assert tds[0].clean_text == "juni 2026 löpande, t.o.m. 2026-06-12"
            if latest["suppressed"]:
                assert tds[1].clean_text == ".." and "suppressed" in tds[1].classes
                assert tds[3].clean_text in ("–", "inget mål") and not tds[3].select(".status-röd")
                assert tds[4].clean_text == "ingen jämförelse"
                continue
            expected = percent(latest["value"]) if spec.unit == "andel" else str(int(latest["value"]))
            assert tds[1].clean_text == expected
            if spec.unit == "antal":
                assert tds[2].clean_text == "Följs över tid, inget mål" and tds[3].clean_text == "inget mål"
            else:
                mark = tds[3].one("span.status")
                assert mark.classes == {"status", f"status-{latest['status']}"}
                assert mark.clean_text == latest["status"] and mark.select("span.dot")
            trend = tds[4].clean_text
            if previous["suppressed"]:
                assert trend == "ingen jämförelse"
                continue
            change = latest["value"] - previous["value"]
            shown = round(change * 100, 1) if spec.unit == "andel" else round(change)
            arrow = "↑" if shown > 0 else "↓" if shown < 0 else "→"
            assert trend.startswith(arrow), (spec.id, code, trend, change)
            if spec.unit == "andel" and shown:
                assert f"{abs(shown):.1f}".replace(".", ",") + " procentenheter" in trend
            if spec.unit == "antal":  # June is running on 2026-06-12: a count of part of the month
                assert trend.endswith("(del av månaden)") and (f"{abs(shown)}" in trend or shown == 0)
            else:
                assert "del av månaden" not in trend
    # the case-system indicators in each SSPF area
    assert not_at_level == len(rd.SSPF) * len([s for s in rd.SPECS if s.id in rd.HANDLING]) > 0
    # The summary counts the statuses of the city's latest month.
    city_statuses = [c["status"] for s in rd.SPECS for c in _city(rows, s.id)[-1:] if c["status"]]
    summary = dom.one("details.overview-area[data-area=0180] summary").clean_text
    for status in ("grön", "gul", "röd"):
        n = city_statuses.count(status)
        assert (f"{n} {status}" in summary) == (n > 0)


def test_tables_mark_suppressed_cells_with_a_footnote_and_the_running_period(report):
    _, dom, rows = report
    section = dom.one("section#ind-hog_franvaro")
    months = section.one("table.months")
    header = [th.clean_text for th in months.select("thead th")]
    assert header[1] == "jul 2025" and header[-1] == "jun 2026 löpande, t.o.m. 2026-06-12"
    assert all("löpande" not in h for h in header[:-1])
    body = {tr.one("th").clean_text: [td.clean_text for td in tr.select("td")]
            for tr in months.select("tbody tr") if tr.select("td")}
    assert body["Skärholmen/Vårberg"] == [".."] * 12  # primary suppression everywhere
    assert body["Rinkeby-Kista"][0] == ".."  # secondary suppression in the first month
    may = next(r for r in _city(rows, "hog_franvaro") if r["period_start"] == dt.date(2026, 5, 1))
    assert body["Stockholm"][10] == percent(may["value"])
    note = section.select("div.table-block")[0].one("p.suppression-note").clean_text
    assert "mindre än 5" in note and "sekundär" in note and "primär" in note
    terms = section.one("table.terms")
    assert [th.clean_text for th in terms.select("thead th")] == [
        "Område", "ht 2025", "vt 2026 löpande, t.o.m. 2026-06-12", "2025", "2026 löpande, t.o.m. 2026-06-12"]
    captions = [c.clean_text for c in section.select("table.breakdown caption")]
    assert captions == ["Huvudman, Stockholm", "Årskurs, Stockholm"]
    arskurs = section.select("table.breakdown")[1]
    assert [tr.one("th").clean_text for tr in arskurs.select("tbody tr")] == [
        f"Årskurs {i}" for i in range(1, 10)]
    schools = section.one("details.schools table.schools")
    assert len(schools.select("tbody tr")) == 3
    # Every table with a suppressed cell has the footnote, and only those.
    blocks = dom.select("div.table-block")
    assert len(blocks) > 20
    for block in blocks:
        has_suppressed = any(td.clean_text == ".." for td in block.select("td"))
        assert bool(block.select("p.suppression-note")) == has_suppressed
    assert any(not b.select("p.suppression-note") for b in blocks)
    # antal cells are integers; Okänd is listed last
    anmalare = dom.one("section#ind-orosanmalningar table.breakdown")
    assert [tr.one("th").clean_text for tr in anmalare.select("tbody tr")][-1] == "Okänd"
    values = [td.clean_text for td in anmalare.select("td")]
    assert all(re.fullmatch(r"\d{1,3}( \d{3})*", v) for v in values) and any(" " in v for v in values)


def test_trend_charts_are_inline_svg_with_gaps_for_suppressed_months(report):
    _, dom, rows = report
    for spec in rd.SPECS:
        section = dom.one(f"section#ind-{spec.id}")
        monthly = section.one("svg.trend[data-period=manad]")
        assert monthly.attrs["data-points"] == "12"
        weekly = section.one("svg.trend[data-period=vecka]")
        assert int(weekly.attrs["data-points"]) == len(_city(rows, spec.id, "vecka"))
        assert section.select("svg.trend circle.point.running")  # the running month/week
        if spec.target is not None:
            assert section.select("svg.trend line.target")
        else:
            assert not section.select("svg.trend line.target")
    sst = dom.one("section#ind-sst_effekt svg.trend[data-period=manad]")
    suppressed = [r for r in _city(rows, "sst_effekt") if r["suppressed"]]
    assert len(sst.select("text.sup")) == len(suppressed) == 6
    assert len(sst.select("circle.point")) == 6
    assert not sst.select("polyline")  # every other month is missing: no line between them


def test_lagesbild_pages_for_the_city_and_each_sspf_area(report):
    _, dom, _ = report
    pages = dom.select("section.lagesbild")
    assert [p.attrs["data-area"] for p in pages] == ["0180", "SKH-BS", "SKH-SV"]
    city = pages[0]
    assert "vecka 23 2026" in city.one("h3").clean_text
    oros = city.one("table[data-measure=nya_orosanmalningar]")
    assert [cells(tr)[:3] for tr in oros.select("tbody tr")] == [
        ["Totalt", "40", "10,0"], ["Skola", "23", "7,2"]]
    assert "999" not in city.clean_text  # an older week is not shown
    suspects = city.one("table[data-measure=nya_unga_misstankta]")
    assert [td.clean_text for td in suspects.select("tbody tr")[1].select("td")][:2] == ["..", "2,0"]
    assert "mellan 1 och 4" in city.one("p.suppression-note").clean_text
    assert [li.attrs["data-indicator"] for li in city.select("ul.red-list li")] == ["hog_franvaro"]
    assert city.one("ul.red-list a").attrs["href"] == "#ind-hog_franvaro"
    small = pages[2]
    first = small.select("table[data-measure=nya_unga_misstankta] tbody tr")[0]
    assert cells(first)[:3] == ["Totalt", "..", "12,5"]
    assert "Inga indikatorer har blivit röda" in small.one("p.no-red").clean_text


def test_definitions_sources_and_load_report(report):
    _, dom, _ = report
    definitions = dom.one("section#definitioner")
    for spec in rd.SPECS:
        entry = definitions.one(f"dt#def-{spec.id}")
        assert entry.clean_text == spec.name
    about = dom.one("section#om-uppgifterna")
    assert "mindre än 5" in about.one("p#sekretess").clean_text
    load = [cells(tr) for tr in about.select("table.load-report tbody tr")]
    assert load == [["SS 12000 (skolor)", "1200", "1190", "10"],
                    ["Polisens filleveranser", "300", "300", "0"]]
    exclusions = [cells(tr) for tr in about.select("table.exclusions tbody tr")]
    assert ["Socialtjänstens verksamhetssystem", "Skyddad identitet", "7", "2"] in exclusions


def test_report_degrades_without_group_sources_and_lagesbild(tmp_path):
    indicators, _ = rd.write_tables(tmp_path, with_lagesbild=False)
    old_catalogue = {i: {"name": c["name"], "unit": c["unit"], "definition": c["definition"]}
                     for i, c in rd.CATALOGUE.items()}
    html = render_report(indicators, version="v2", reference_date=rd.REFERENCE_DATE,
                         catalogue=old_catalogue, manifest={})
    dom = parse(html)
    assert [g.attrs["data-group"] for g in dom.select("section.group")] == [
        "Skola", "Socialtjänst", "Polis", "Samverkan"]
    assert "SS 12000" in dom.one("section#ind-hog_franvaro dd.sources").clean_text
    assert "polisens filleveranser" in dom.one("section#ind-kanda_av_flera dd.sources").clean_text
    assert not dom.select("section.lagesbild")
    assert "ingår inte" in dom.one("section#lagesbild").clean_text
    assert_self_contained(html)


def test_standalone_lagesbild(tables):
    _, lagesbild = tables
    html = render_lagesbild(lagesbild, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                            catalogue=rd.CATALOGUE)
    dom = parse(html)
    assert [p.attrs["data-area"] for p in dom.select("section.lagesbild")] == ["0180", "SKH-BS", "SKH-SV"]
    assert dom.one("dd.iso-week").clean_text == "2026-W23 (2026-06-01 – 2026-06-07)"
    assert dom.one("dd.data-version").clean_text == rd.VERSION
    red = dom.one("section.lagesbild[data-area=SKH-BS] ul.red-list li")
    assert red.clean_text == "röd Andel elever med hög frånvaro" and not red.select("a")
    assert not dom.select("section.indicator")
    assert_self_contained(html)


def test_workbook_has_an_about_sheet_and_one_sheet_per_indicator(tables, tmp_path):
    indicators, _ = tables
    rows = pq.read_table(indicators).to_pylist()
    path = write_indicator_workbook(indicators, rd.CATALOGUE, tmp_path / "out" / "indicators.xlsx",
                                    targets=rd.TARGETS)
    assert path == tmp_path / "out" / "indicators.xlsx"
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == ["Om"] + [s.id for s in rd.SPECS]
    about = [[c for c in r if c is not None] for r in wb["Om"].iter_rows(values_only=True)]
    assert ["Dataversion", rd.VERSION] in about
    assert any(".." in str(r[0]) and "mindre än 5" in str(r[0]) for r in about if r)
    assert ["hog_franvaro", "Andel elever med hög frånvaro",
            "Definition av andel elever med hög frånvaro (testkatalog). "
            "Källor: SS 12000 (närvaro, inskrivningar)."] in about
    for spec in rd.SPECS:
        sheet = list(wb[spec.id].iter_rows(values_only=True))
        assert list(sheet[0]) == WORKBOOK_HEADERS
        expected = [r for r in rows if r["indicator_id"] == spec.id]
        assert len(sheet) - 1 == len(expected)
        by_key = {(r[1], r[2].date(), r[5], r[7], r[8]): r for r in sheet[1:]}
        for r in expected:
            got = by_key[(r["period_type"], r["period_start"], r["area_code"], r["breakdown"],
                          r["breakdown_value"])]
            assert got[0] == spec.name and got[3].date() == r["period_end"] and got[6] == r["area_name"]
            if r["suppressed"]:
                assert got[9:12] == ("..", "..", "..") and got[13] == r["suppressed"] and got[15] is None
            else:
                assert got[9] == r["numerator"] and got[10] == r["denominator"]
                assert got[11] == pytest.approx(r["value"]) and got[15] == r["status"]
            assert got[12] == spec.unit and got[16] == rd.VERSION
            assert (got[14] is None) == (r["target"] is None)
    # the first data row of a sheet: months before weeks, the city first, totalt first
    first = list(wb["hog_franvaro"].iter_rows(min_row=2, max_row=2, values_only=True))[0]
    assert first[1:3] == ("manad", dt.datetime(2025, 7, 1)) and first[4] == "stad" and first[7] == "totalt"
    wb.close()


def test_workbook_sheet_names_are_short_and_unique(tmp_path):
    long_a = "en_mycket_lang_indikator_som_inte_far_plats_a"
    long_b = "en_mycket_lang_indikator_som_inte_far_plats_b"
    rows = [r | {"indicator_id": i} for i in (long_a, long_b)
            for r in rd.indicator_rows(specs=[rd.SPECS[2]])[:3]]
    path = tmp_path / "ind.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=rd.INDICATOR_SCHEMA), path)
    wb = load_workbook(write_indicator_workbook(path, {}, tmp_path / "x.xlsx"), read_only=True)
    names = wb.sheetnames
    assert names[0] == "Om" and len(names) == 3 and len(set(names)) == 3
    assert all(len(n) <= 31 for n in names) and names[1] == long_a[:31]


def test_report_and_workbook_with_many_areas(tmp_path):
    """Every indicator, 11 stadsdelsområden, 15 school units: one section per indicator, one
    overview per area, every row in the workbook. (Size and time at Stockholm scale:
    tests/benchmarks/report_scale.py.)"""
    indicators, lagesbild = rd.write_tables(tmp_path, specs=rd.ALL_SPECS, n_schools=15,
                                            districts=rd.MANY_DISTRICTS)
    n_rows = pq.read_metadata(indicators).num_rows
    html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                         reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest=MANIFEST,
                         targets=rd.TARGETS)
    dom = parse(html)
    ids = [s.attrs["data-indicator"] for s in dom.select("section.indicator")]
    assert ids == [s.id for s in rd.ALL_SPECS]
    assert len(dom.select("details.overview-area")) == 1 + len(rd.MANY_DISTRICTS) + len(rd.SSPF)
    path = write_indicator_workbook(indicators, rd.CATALOGUE, tmp_path / "indicators.xlsx",
                                    targets=rd.TARGETS)
    # write-only sheets carry no dimension: count the rows in the sheets' XML
    with zipfile.ZipFile(path) as z:
        sheets = sorted(n for n in z.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        assert len(sheets) == 1 + len(rd.ALL_SPECS)
        data_rows = sum(z.read(n).count(b"<row ") - 1 for n in sheets if not n.endswith("sheet1.xml"))
    assert data_rows == n_rows


def test_levels_an_indicator_is_not_published_at_are_named(report):
    """Each indicator section names its area levels; a case-system indicator says that the SSPF
    level has no figure, and its area tables list no SSPF area (no 0, no blank row). The
    lägesbild of an SSPF area says the same for new reports of concern."""
    _, dom, _ = report
    reports = dom.one("section#ind-orosanmalningar dd.area-levels").clean_text
    assert reports == ("Redovisas för hela staden och stadsdelsområden. "
                       "SSPF-område: uppgift saknas på denna nivå.")
    school = dom.one("section#ind-hog_franvaro dd.area-levels").clean_text
    assert school == "Redovisas för hela staden, stadsdelsområden, SSPF-områden och skolenheter."
    months = dom.one("section#ind-orosanmalningar table.months")
    assert not [g for g in months.select("tr.group-row") if "SSPF" in g.clean_text]
    assert any("SSPF" in g.clean_text for g in
               dom.one("section#ind-hog_franvaro table.months").select("tr.group-row"))
    for code in ("SKH-BS", "SKH-SV"):
        page = dom.one(f"section.lagesbild[data-area={code}]")
        table = page.one("table.lagesbild-measure[data-measure=nya_orosanmalningar]")
        assert "uppgift saknas på denna nivå" in table.clean_text.lower()
        assert "Inga uppgifter" not in table.clean_text
    city = dom.one("section.lagesbild[data-level=stad]")
    assert "saknas" not in city.one("table.lagesbild-measure[data-measure=nya_orosanmalningar]").clean_text
