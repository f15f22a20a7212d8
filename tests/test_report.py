"""The management report and the standalone lägesbild, on real parquet files shaped like the
published tables (every period type, suppressed cells, targets and statuses)."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow.parquet as pq
import pytest
import report_data as rd
from htmldom import parse

from samverkan.report import render_lagesbild, render_report

MANIFEST = {
    "reference_date": rd.REFERENCE_DATE.isoformat(),
    "load_report": {"ss12000": {"received": 1200, "loaded": 1190, "quarantined": 10},
                    "police": {"received": 300, "loaded": 300, "quarantined": 0}},
    "excluded_from_indicators": {"case_system": {"protected_identity": {"records": 7, "people": 2},
                                                 "invalid_identifier_luhn": {"records": 3, "people": 0}}},
    "min_cell": rd.MIN_CELL,
    "data_coverage": rd.DATA_COVERAGE,
}


SUPPRESSED = ".. skyddad uppgift"  # the mark and its visually hidden accessible name
RUNNING = "löpande t.o.m. 12 juni 2026"


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
        # the one-sentence definition, then the city's latest value; the technical definition
        # and the sources only in the appendix
        summary = section.one("p.summary")
        assert summary.clean_text == rd.CATALOGUE[spec.id]["summary"] + " Exakt definition i bilagan"
        assert summary.one("a").attrs["href"] == f"#def-{spec.id}"
        headline = section.one("p.headline").clean_text
        # the last complete month leads (with its status); the running month follows, without
        assert headline.startswith("Hela staden, maj 2026: "), headline
        running_part = section.one("span.headline-running").clean_text
        assert running_part.startswith(f"· juni 2026 ({RUNNING}): "), running_part
        assert not section.one("span.headline-running").select(".status")
        assert not any(arrow in running_part for arrow in "↑↓→")
        assert rd.CATALOGUE[spec.id]["definition"][:30] not in section.clean_text
        assert not section.select("dd.sources") and not section.select("code")
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
    # the data version (UTC) as the local date and time it was built
    assert dom.one("dd.data-version").clean_text == "12 juni 2026 kl. 08.00"
    assert dom.one("dd.data-version").attrs["data-version"] == rd.VERSION
    assert dom.one("dd.reference-date").clean_text == "12 juni 2026"
    assert "dataversion 12 juni 2026 kl. 08.00" in dom.one("footer.report-footer").clean_text
    assert rd.VERSION not in dom.clean_text
    element_ids = [n.attrs["id"] for n in dom.iter() if "id" in n.attrs]
    assert len(element_ids) == len(set(element_ids))
    internal_links = {a.attrs["href"][1:] for a in dom.select("a[href]")}
    assert internal_links <= set(element_ids)  # every internal link has its target
    assert_self_contained(html)


def test_overview_leads_with_the_last_complete_month_and_shows_the_running_one_beside_it(report):
    """Per area and indicator: the last complete month (May 2026; June is running on
    2026-06-12) with its value, target, status and change against April; the running June
    beside it, labelled "löpande t.o.m. 2026-06-12", without status colour or arrow."""
    _, dom, rows = report
    areas = [(d.attrs["data-level"], d.attrs["data-area"]) for d in dom.select("details.overview-area")]
    assert areas[0] == ("stad", "0180")
    assert sorted(areas[1:]) == sorted([(lvl, code) for lvl, code, _ in rd.DISTRICTS + rd.SSPF])
    not_at_level = 0
    for level, code in areas:
        overview = dom.one(f"details.overview-area[data-area={code}]")
        # the running month beside the complete one, labelled once in its column header
        header = [th.clean_text for th in overview.select("thead th")]
        assert header == ["Indikator", "Månad", "Värde", "Mål", "Status",
                          "Förändring mot föregående månad", f"juni 2026 {RUNNING}"]
        assert overview.select("thead th")[-1].one("span.running-note")
        for spec in rd.SPECS:
            row = overview.one(f"tr[data-indicator={spec.id}]")
            tds = row.select("td")
            if level not in rd.area_levels(spec.id, spec.school_units):
                # no cell can exist at this level: said so, never 0 or blank, no status or trend
                # one cell across value, target, status, change and the running month
                assert tds[1].clean_text == "uppgift saknas på denna nivå", (spec.id, code)
                assert "not-at-level" in tds[1].classes and tds[1].attrs["colspan"] == "5"
                assert len(tds) == 2 and not row.select("span.dot") and not row.select(".trend")
                not_at_level += 1
                continue
            cells = sorted((r for r in rows if r["indicator_id"] == spec.id and r["area_code"] == code
                            and r["period_type"] == "manad" and r["breakdown"] == "totalt"),
                           key=lambda r: r["period_start"])
            running, latest, previous = cells[-1], cells[-2], cells[-3]
            assert running["is_running"] and not latest["is_running"]
            assert latest["period_start"] == dt.date(2026, 5, 1)
            assert tds[0].clean_text == "maj 2026"  # the complete month leads
            # the running month beside it: its value, no status colour, no arrow
            beside = tds[5]
            expected_running = (SUPPRESSED if running["suppressed"] else percent(running["value"])
                                if spec.unit == "andel" else str(int(running["value"])))
            assert beside.clean_text == expected_running
            assert not beside.select(".status") and not ({"tg", "ty", "tr"} & beside.classes)
            assert not any(a in beside.clean_text for a in "↑↓→")
            if latest["suppressed"]:
                assert tds[1].clean_text == SUPPRESSED and "suppressed" in tds[1].classes
                assert tds[1].one("abbr").attrs["title"] == "skyddad uppgift"
                assert tds[3].clean_text in ("–", "inget mål") and not tds[3].select(".status-röd")
                assert tds[4].clean_text == "ingen jämförelse"
                continue
            expected = percent(latest["value"]) if spec.unit == "andel" else str(int(latest["value"]))
            if latest["coverage"]:  # a period the school data does not cover: marked, no status
                assert tds[1].clean_text == expected + "*" and tds[1].select("abbr.coverage-mark")
                assert tds[3].clean_text.startswith("ingen status" if spec.unit == "andel" else "inget mål")
                assert not tds[3].select("span.dot") and "täcks inte helt" in tds[3].clean_text
                assert tds[4].clean_text.startswith("ingen jämförelse")
                continue
            assert tds[1].clean_text == expected
            assert not {"tg", "ty", "tr"} & tds[1].classes  # the status has its own column
            if spec.unit == "antal":
                assert tds[2].clean_text == "Följs över tid, inget mål" and tds[3].clean_text == "inget mål"
            else:
                mark = tds[3].one("span.status")
                assert latest["status"] and mark.classes == {"status", f"status-{latest['status']}"}
                assert mark.clean_text == latest["status"] and mark.select("span.dot")
            trend = tds[4].clean_text
            if previous["suppressed"]:
                assert trend == "ingen jämförelse"
                continue
            change = latest["value"] - previous["value"]  # complete month against complete month
            shown = round(change * 100, 1) if spec.unit == "andel" else round(change)
            arrow = "↑" if shown > 0 else "↓" if shown < 0 else "→"
            assert trend.startswith(arrow), (spec.id, code, trend, change)
            if spec.unit == "andel" and shown:
                assert f"{abs(shown):.1f}".replace(".", ",") + " procentenheter" in trend
            assert "del av månaden" not in trend
    # the case-system indicators in each SSPF area
    assert not_at_level == len(rd.SSPF) * len([s for s in rd.SPECS if s.id in rd.HANDLING]) > 0
    # The summary counts the statuses of the city's last complete month.
    city_statuses = [c["status"] for s in rd.SPECS for c in _city(rows, s.id)[-2:-1] if c["status"]]
    assert city_statuses  # the complete month has statuses to count
    summary = dom.one("details.overview-area[data-area=0180] summary").clean_text
    for status in ("grön", "gul", "röd"):
        n = city_statuses.count(status)
        assert (f"{n} {status}" in summary) == (n > 0)


def test_coverage_marks_where_the_school_data_starts_and_the_report_says_why(report):
    """School data starts in January 2026, the other series in July 2025: the school
    indicators' months before and in January are marked and carry no status; a count whose
    look-back reaches before the school data (kanda_av_flera) is marked in every month, and
    its chart draws no line through marked months (no jump), with a note; a series the
    school data does not feed (orosanmalningar) is not marked. The report lists each source's
    first and last data date."""
    _, dom, rows = report
    months = dom.one("section#ind-hog_franvaro table.months")
    city = next(tr for tr in months.select("tbody tr")
                if tr.select("td") and tr.one("th").clean_text == "Stockholm")
    tds = city.select("td")
    marked = [("coverage" in td.classes) for td in tds]
    assert marked == [True] * 7 + [False] * 5  # Jul 2025 - Jan 2026 marked, Feb - Jun not
    assert all(td.select("abbr.coverage-mark") for td in tds[:7])
    assert "källans uppgifter börjar först under perioden" in tds[6].one("abbr").attrs["title"]
    assert not any(c in td.classes for td in tds[:7] for c in ("tg", "ty", "tr"))  # no status colour
    assert dom.select("p.coverage-footnote")
    oros = dom.one("section#ind-orosanmalningar table.months")
    assert not oros.select("td.coverage")
    # kanda_av_flera: every month marked, no line through them in the chart, a note
    kanda = dom.one("section#ind-kanda_av_flera")
    chart = kanda.one("svg.trend[data-period=manad]")
    assert len(chart.select("circle.point.coverage")) == 12 and not chart.select("polyline")
    assert kanda.one("p.chart-note").clean_text.startswith("Grå punkter utan linje (jul 2025–jun 2026)")
    hog_note = dom.one("section#ind-hog_franvaro p.chart-note").clean_text
    assert "(jul 2025–jan 2026)" in hog_note and "täcks inte helt" in hog_note
    # hog_franvaro's chart: a line from February on, none through the marked months
    chart = dom.one("section#ind-hog_franvaro svg.trend[data-period=manad]")
    assert len(chart.select("circle.point.coverage")) == 7
    assert len(chart.select("polyline")) == 1
    assert len(chart.one("polyline").attrs["points"].split()) == 5  # Feb - Jun
    # the data coverage section: first and last date per source
    table = dom.one("section#om-uppgifterna table.data-coverage")
    assert [cells(tr) for tr in table.select("tbody tr")] == [
        ["Skolornas elev- och närvarouppgifter", "12 januari 2026", "12 juni 2026"],
        ["Socialtjänstens verksamhetssystem", "2 juli 2024", "11 juni 2026"],
        ["Polisens filleveranser", "1 juli 2024", "10 juni 2026"]]
    assert dom.one("h3#omfattning").clean_text == "Uppgifternas omfattning"


def test_tables_mark_suppressed_cells_with_a_footnote_and_the_running_period(report):
    _, dom, rows = report
    section = dom.one("section#ind-hog_franvaro")
    months = section.one("table.months")
    header = [th.clean_text for th in months.select("thead th")]
    assert header[1] == "jul 2025" and header[-1] == f"jun 2026 {RUNNING}"
    assert all("löpande" not in h for h in header[:-1])
    body = {tr.one("th").clean_text: [td.clean_text for td in tr.select("td")]
            for tr in months.select("tbody tr") if tr.select("td")}
    assert body["Skärholmen/Vårberg"] == [SUPPRESSED] * 12  # primary suppression everywhere
    assert body["Rinkeby-Kista"][0] == SUPPRESSED  # secondary suppression in the first month
    may = next(r for r in _city(rows, "hog_franvaro") if r["period_start"] == dt.date(2026, 5, 1))
    icon = {"grön": "✓", "gul": "!", "röd": "✕"}[may["status"]]
    assert body["Stockholm"][10] == f"{percent(may['value'])} {icon} {may['status']}"
    # every coloured cell carries its status as a word, not only in a title
    tinted = [td for td in dom.select("td") if {"tg", "ty", "tr"} & td.classes]
    assert len(tinted) > 100
    for td in tinted:
        status = {"tg": "grön", "ty": "gul", "tr": "röd"}[next(iter({"tg", "ty", "tr"} & td.classes))]
        assert td.one("span.cell-status").clean_text.endswith(status), td.clean_text
    note = section.select("div.table-block")[0].one("p.suppression-note").clean_text
    assert "mindre än 5" in note and "sekundär" in note and "primär" in note
    terms = section.one("table.terms")
    assert [th.clean_text for th in terms.select("thead th")] == [
        "Område", "ht 2025", f"vt 2026 {RUNNING}", "2025", f"2026 {RUNNING}"]
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
        has_suppressed = any(td.clean_text == SUPPRESSED for td in block.select("td"))
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
    assert "vecka 23, 2026" in city.one("h3").clean_text
    oros = city.one("table[data-measure=nya_orosanmalningar]")
    assert [cells(tr)[:3] for tr in oros.select("tbody tr")] == [
        ["Totalt", "40", "10,0"], ["Skola", "23", "7,2"]]
    assert "999" not in city.clean_text  # an older week is not shown
    suspects = city.one("table[data-measure=nya_unga_misstankta]")
    assert [td.clean_text for td in suspects.select("tbody tr")[1].select("td")][:2] == [SUPPRESSED, "2,0"]
    assert "mellan 1 och 4" in city.one("p.suppression-note").clean_text
    assert [li.attrs["data-indicator"] for li in city.select("ul.red-list li")] == ["hog_franvaro"]
    assert city.one("ul.red-list a").attrs["href"] == "#ind-hog_franvaro"
    small = pages[2]
    first = small.select("table[data-measure=nya_unga_misstankta] tbody tr")[0]
    assert cells(first)[:3] == ["Totalt", SUPPRESSED, "12,5"]
    assert "Inga indikatorer har blivit röda" in small.one("p.no-red").clean_text


def test_definitions_sources_and_load_report(report):
    html, dom, _ = report
    definitions = dom.one("section#definitioner")
    assert definitions.one("h2").clean_text == "Bilaga: definitioner"
    for spec in rd.SPECS:
        entry = definitions.one(f"dt#def-{spec.id}")
        assert entry.clean_text == spec.name
        # the technical definition and the sources: once in the report, in the appendix
        definition = rd.CATALOGUE[spec.id]["definition"].split(" Minst")[0]
        assert html.count(definition) == 1
        assert f"Källor: {rd.CATALOGUE[spec.id]['sources']}." in entry.next_element().clean_text
    # thresholds with the values of the run, not their variable names
    assert "Minst 15 % frånvaro av minst 300 minuter." in definitions.clean_text
    assert "{" not in definitions.clean_text
    about = dom.one("section#om-uppgifterna")
    assert "mindre än 5" in about.one("p#sekretess").clean_text
    load = [cells(tr) for tr in about.select("table.load-report tbody tr")]
    assert load == [["Skolornas elev- och närvarouppgifter", "1 200", "1 190", "10"],
                    ["Polisens filleveranser", "300", "300", "0"]]
    exclusions = [cells(tr) for tr in about.select("table.exclusions tbody tr")]
    assert ["Socialtjänstens verksamhetssystem", "Skyddad identitet", "7", "2"] in exclusions
    assert ["Socialtjänstens verksamhetssystem", "Ogiltigt eller saknat personnummer", "3", "0"] in exclusions


def test_definitions_give_the_thresholds_the_run_used(tables):
    indicators, _ = tables
    html = render_report(indicators, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                         catalogue=rd.CATALOGUE, manifest={}, targets=rd.TARGETS,
                         parameters={"high_absence_threshold": 0.125, "min_offered_minutes": 1200})
    text = parse(html).one("dt#def-hog_franvaro").next_element().clean_text
    assert "Minst 12,5 % frånvaro av minst 1 200 minuter." in text


def test_exclusion_reasons_and_numbers_in_swedish(tables):
    indicators, _ = tables
    manifest = {"load_report": {"ss12000": {"received": 2027511, "loaded": 2027500, "quarantined": 11}},
                "excluded_from_indicators": {"police": {
                    f"invalid_identifier_{p}": {"records": 1234, "people": 5}
                    for p in ("missing", "bad_format", "bad_date", "bad_checksum")}}}
    html = render_report(indicators, version="20261206T062404Z", reference_date=dt.date(2026, 12, 6),
                         catalogue=rd.CATALOGUE, manifest=manifest)
    dom = parse(html)
    assert dom.one("dd.data-version").clean_text == "6 december 2026 kl. 07.24"
    load = [cells(tr) for tr in dom.select("table.load-report tbody tr")]
    assert load == [["Skolornas elev- och närvarouppgifter", "2 027 511", "2 027 500", "11"]]
    reasons = [cells(tr)[1] for tr in dom.select("table.exclusions tbody tr")]
    assert reasons == ["Ogiltigt personnummer (felaktig kontrollsiffra)",
                       "Ogiltigt personnummer (omöjligt eller framtida födelsedatum)",
                       "Ogiltigt personnummer (felaktigt format)", "Personnummer saknas"]
    assert all(cells(tr)[2] == "1 234" for tr in dom.select("table.exclusions tbody tr"))
    for english in ("missing", "checksum", "bad ", "invalid", "None", "W49", "20261206T"):
        assert english not in dom.clean_text, english


def test_report_degrades_without_group_sources_and_lagesbild(tmp_path):
    indicators, _ = rd.write_tables(tmp_path, with_lagesbild=False)
    old_catalogue = {i: {"name": c["name"], "unit": c["unit"], "definition": c["definition"]}
                     for i, c in rd.CATALOGUE.items()}
    html = render_report(indicators, version="v2", reference_date=rd.REFERENCE_DATE,
                         catalogue=old_catalogue, manifest={})
    dom = parse(html)
    assert [g.attrs["data-group"] for g in dom.select("section.group")] == [
        "Skola", "Socialtjänst", "Polis", "Samverkan"]
    sources = {dt.attrs["id"]: dt.next_element().clean_text for dt in dom.select("section#definitioner dt")}
    assert "SS 12000" in sources["def-hog_franvaro"]
    assert "polisens filleveranser" in sources["def-kanda_av_flera"]
    # without a one-sentence summary in the catalogue, the definition stands beside the value
    assert dom.one("section#ind-hog_franvaro p.summary").clean_text.startswith("Definition av")
    assert not dom.select("section.lagesbild")
    assert "ingår inte" in dom.one("section#lagesbild").clean_text
    assert_self_contained(html)


def test_standalone_lagesbild(tables):
    _, lagesbild = tables
    html = render_lagesbild(lagesbild, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                            catalogue=rd.CATALOGUE)
    dom = parse(html)
    assert [p.attrs["data-area"] for p in dom.select("section.lagesbild")] == ["0180", "SKH-BS", "SKH-SV"]
    assert dom.one("dd.iso-week").clean_text == "vecka 23, 2026 (1–7 juni 2026)"
    assert dom.one("dd.data-version").clean_text == "12 juni 2026 kl. 08.00"
    assert "2026-W23" not in dom.clean_text and rd.VERSION not in dom.clean_text
    red = dom.one("section.lagesbild[data-area=SKH-BS] ul.red-list li")
    assert red.clean_text == "röd Andel elever med hög frånvaro" and not red.select("a")
    assert not dom.select("section.indicator")
    assert_self_contained(html)


def test_report_with_many_areas(tmp_path):
    """Every indicator, 11 stadsdelsområden, 15 school units: one section per indicator, one
    overview per area. (The workbook with the same tables: tests/test_workbook.py; size and
    time at Stockholm scale: tests/benchmarks/report_scale.py.)"""
    indicators, lagesbild = rd.write_tables(tmp_path, specs=rd.ALL_SPECS, n_schools=15,
                                            districts=rd.MANY_DISTRICTS)
    html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                         reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest=MANIFEST,
                         targets=rd.TARGETS)
    dom = parse(html)
    ids = [s.attrs["data-indicator"] for s in dom.select("section.indicator")]
    assert ids == [s.id for s in rd.ALL_SPECS]
    assert len(dom.select("details.overview-area")) == 1 + len(rd.MANY_DISTRICTS) + len(rd.SSPF)


def test_catalogue_texts_are_plain_swedish():
    """The indicator models' meta (what the report shows): a one-sentence summary, a technical
    definition and sources in plain words; thresholds only as {var} placeholders of known vars,
    never a var's name, a source field, a code or English."""
    from pathlib import Path

    import yaml

    from samverkan.config import indicator_parameters
    from samverkan.report import PLACEHOLDER

    names = set(indicator_parameters())
    models = sorted((Path(__file__).resolve().parent.parent / "dbt_project" / "models" / "marts"
                     / "indicators").glob("ind_*.yml"))
    assert len(models) == 18
    for path in models:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))["models"][0]["config"]["meta"]
        summary, definition, sources = meta["summary"], meta["definition"], meta["sources"]
        assert summary.strip().endswith(".") and summary.count(". ") == 0 and len(summary) < 200, path.name
        for text in (summary, definition, sources):
            assert set(PLACEHOLDER.findall(text)) <= names, path.name
            bare = PLACEHOLDER.sub("", text)
            assert not [n for n in names if n in bare], (path.name, text)
            for word in ("isReported", "PLAC_", "Roll =", "antal_verksamheter", "fillevererans", "SS12000",
                         "missing", "checksum", "(standard"):
                assert word not in bare, (path.name, word)
            assert "_" not in bare, (path.name, text)


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
