"""Complete periods lead; where the data starts and stops (issue 15, points 1 and 3), end to end
on the default demo world (collected by test_end_to_end.py, which shares the world with these
tests, before its own tests change the world).

The demo's reference date is Friday 2026-06-12: June 2026, vt 2026 and 2026 are running. The
school data (SS 12000) starts on the first lesson day of the spring term (2026-01-12); the case
system and the police deliver from July 2024, a year before the report window (July 2025).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from truth_compare import differences, read_cells

R = dt.date(2026, 6, 12)
JAN, MAY, JUN = "2026-01-01", "2026-05-01", "2026-06-01"
SCHOOL_INDICATORS = ("hog_franvaro", "mycket_hog_franvaro", "ogiltig_franvaro_andel", "rapporteringsgrad")
CASE_AND_POLICE = ("orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
                   "unga_misstankta", "unga_brottsoffer")
LOOKBACK = ("hog_franvaro_med_orosanmalan", "kanda_av_flera", "unga_misstankta_upprepat")


@pytest.fixture(scope="module")
def period_cells(demo_world) -> pd.DataFrame:
    assert demo_world.returncode == 0, demo_world.stdout[-2000:] + demo_world.stderr[-3000:]
    return read_cells(demo_world.paths.current_publication / "indicators.csv")


@pytest.fixture(scope="module")
def world_population(demo_world):
    from samverkan.simulator.population import generate

    return generate(seed=demo_world.seed, pupils=demo_world.pupils,
                    lessons_per_day=demo_world.lessons_per_day)


def _truth(population, directory, **changed) -> pd.DataFrame:
    """The ground truth with ``changed`` rules, read back as the published CSV is."""
    from samverkan.simulator.ground_truth import compute_ground_truth, write_ground_truth

    return read_cells(write_ground_truth(compute_ground_truth(population, **changed),
                                         directory / "truth.csv"))


def _totals(period_cells: pd.DataFrame, indicator: str, period_type: str) -> pd.DataFrame:
    rows = period_cells[(period_cells["indicator_id"] == indicator)
                     & (period_cells["period_type"] == period_type)
                     & (period_cells["breakdown"] == "totalt")]
    return rows.set_index(["area_level", "area_code", "period_start"])


def test_running_periods_are_flagged_and_have_no_status(period_cells):
    """is_running is exactly period_end > R; a running or marked period has no status, every
    other shown cell with a target has one."""
    ends = pd.to_datetime(period_cells["period_end"]).dt.date
    assert period_cells["is_running"].eq((ends > R).map({True: "true", False: "false"})).all()
    assert set(period_cells.loc[period_cells["is_running"] == "true", "period_start"]) == {
        "2026-06-08", JUN, JAN}  # the running week, June, vt 2026 and 2026
    marked = (period_cells["is_running"] == "true") | (period_cells["coverage"] != "")
    assert period_cells.loc[marked, "status"].isna().all()
    open_cells = period_cells[~marked & period_cells["target"].notna() & period_cells["suppressed"].isna()]
    assert len(open_cells) > 100 and open_cells["status"].notna().all()


def test_running_year_and_running_term_agree_over_the_same_pupils(period_cells):
    """The issue's example: hog_franvaro_med_orosanmalan was 35,4 % for vt 2026 but 19,3 % for
    2026 over the same pupils (the year's look-back ended on 31 December). Both look back from
    R now: the running year and the running term hold the same data and agree in every area;
    so do the other look-back indicators."""
    for indicator in LOOKBACK:
        year = _totals(period_cells, indicator, "ar").xs(JAN, level="period_start")
        term = _totals(period_cells, indicator, "termin").xs(JAN, level="period_start")
        assert len(year) >= 5, indicator
        assert year.index.equals(term.index) or set(year.index) == set(term.index), indicator
        both = year.join(term, lsuffix="_ar", rsuffix="_vt")
        for column in ("numerator", "denominator", "suppressed"):
            a, b = both[f"{column}_ar"], both[f"{column}_vt"]
            assert ((a == b) | (a.isna() & b.isna())).all(), (indicator, column)
    city = _totals(period_cells, "hog_franvaro_med_orosanmalan", "ar").loc[("stad", "0180", JAN)]
    assert city["denominator"] > 100 and city["value"] > 0.25


def test_reporting_rate_leaves_out_the_reporting_lag(period_cells, world_population, tmp_path):
    """rapporteringsgrad leaves out the last 3 school days up to R (still being reported).
    The published table equals the ground truth with that lag; the truth without the lag
    differs only in rapporteringsgrad cells of the periods that hold those days (the running
    week, month, term and year), and the lag's days pull the running month's rate down."""
    truth = _truth(world_population, tmp_path, reporting_lag_school_days=0)
    problems = differences(period_cells, truth)
    assert problems, "the lag made no difference"
    text = "\n".join(problems)
    assert "rapporteringsgrad" in text
    others = [p for p in problems if "rapporteringsgrad" not in p.split("\n")[0]
              and "differs in" in p.split("\n")[0]]
    assert not others, others
    key = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
           "breakdown_value"]
    merged = period_cells.merge(truth, on=key, suffixes=("", "_nolag"))
    changed = merged[(merged["denominator"].fillna(-1) != merged["denominator_nolag"].fillna(-1))
                     & merged["suppressed"].isna() & merged["suppressed_nolag"].isna()]
    assert set(changed["indicator_id"]) == {"rapporteringsgrad"}
    assert set(changed["period_start"]) <= {"2026-06-08", JUN, JAN}
    city = merged[(merged["indicator_id"] == "rapporteringsgrad") & (merged["period_type"] == "manad")
                  & (merged["period_start"] == JUN) & (merged["area_level"] == "stad")
                  & (merged["breakdown"] == "totalt")].iloc[0]
    assert city["denominator"] < city["denominator_nolag"]
    assert city["value"] > city["value_nolag"]  # the lag's days are the least reported


def test_a_broken_rule_is_caught_by_the_comparison_with_the_ground_truth(period_cells,
                                                                         world_population,
                                                                         tmp_path):
    """The end-to-end comparison is not vacuous for the new rules: a truth computed with a
    shorter look-back or without the gap tolerance of the coverage marks differs from the
    publication."""
    for changed, indicator in (({"trailing_months": 11}, "hog_franvaro_med_orosanmalan"),
                               ({"source_gap_days": 0}, "coverage")):
        problems = differences(period_cells, _truth(world_population, tmp_path, **changed))
        assert problems and indicator in "\n".join(problems), changed


def test_coverage_marks_where_the_school_data_starts(period_cells):
    """School data starts in January 2026, the other series in July 2025 (their data a year
    earlier): the school indicators' January is marked source_starts_in_period (and has no
    status), February - May are covered; the case-system and police months are all covered;
    a look-back over school data (kanda_av_flera) is marked in every month: before January
    the school has no data at all, in January it starts, later the 12-month look-back still
    reaches before it."""
    months = period_cells[(period_cells["period_type"] == "manad")]
    for indicator in SCHOOL_INDICATORS:
        rows = months[months["indicator_id"] == indicator]
        assert set(rows.loc[rows["period_start"] == JAN, "coverage"]) == {"source_starts_in_period"}
        later = rows[rows["period_start"] > JAN]
        assert len(later) > 50 and set(later["coverage"]) == {""}, indicator
        assert rows.loc[rows["period_start"] == MAY, "status"].notna().any(), indicator
    for indicator in CASE_AND_POLICE:
        rows = months[months["indicator_id"] == indicator]
        assert rows["period_start"].min() == "2025-07-01" and set(rows["coverage"]) == {""}
    kanda = _totals(period_cells, "kanda_av_flera", "manad").loc[("stad", "0180")]
    codes = kanda["coverage"].to_dict()
    assert {p: c for p, c in codes.items() if p < JAN} and all(
        c == "source_starts_after_period" for p, c in codes.items() if p < JAN)
    assert codes[JAN] == "source_starts_in_period"
    assert all(c == "lookback_before_first_data" for p, c in codes.items() if p > JAN)


def test_manifest_data_coverage_equals_the_sources_real_dates(demo_world, world_population):
    """manifest.json's data_coverage (from the warehouse) equals the first and last data
    dates the simulator's independent ground truth reads from the sources it served."""
    manifest = json.loads((demo_world.paths.current_publication / "manifest.json")
                          .read_text(encoding="utf-8"))
    served = json.loads((demo_world.paths.simulator / "ground_truth_data_coverage.json")
                        .read_text(encoding="utf-8"))
    assert manifest["data_coverage"] == served
    assert manifest["data_coverage"]["ss12000"] == {
        "first_data_date": world_population.term_start.isoformat(),
        "last_data_date": R.isoformat()}
    for source in ("case_system", "police"):
        first = dt.date.fromisoformat(manifest["data_coverage"][source]["first_data_date"])
        last = dt.date.fromisoformat(manifest["data_coverage"][source]["last_data_date"])
        assert world_population.history_start <= first < dt.date(2024, 8, 1)
        assert R - dt.timedelta(days=7) <= last <= R


def test_report_leads_with_the_last_complete_month_and_shows_where_data_starts(demo_world,
                                                                                period_cells):
    """The demo report: the city overview leads with May 2026 (the last complete month) and
    its status; June is beside it, "löpande t.o.m. 12 juni 2026", without status or arrow;
    the data coverage section lists each source's first and last date; kanda_av_flera's chart
    draws no line through its marked months."""
    from htmldom import parse

    doc = parse((demo_world.paths.current_publication / "report.html").read_text(encoding="utf-8"))
    city = doc.one("details.overview-area[data-area=0180]")
    assert city.select("thead th")[-1].clean_text == "juni 2026 löpande t.o.m. 12 juni 2026"
    rates = _totals(period_cells, "rapporteringsgrad", "manad").loc[("stad", "0180")]
    june = set(period_cells.loc[(period_cells["period_type"] == "manad")
                                & (period_cells["period_start"] == JUN), "indicator_id"])
    assert len(june) >= 15
    for row in city.select("tr[data-indicator]"):
        tds = row.select("td")
        assert tds[0].clean_text == "maj 2026", row.attrs["data-indicator"]
        if row.attrs["data-indicator"] not in june:  # no cell in June at all: nothing beside
            assert tds[5].clean_text == ""
            continue
        assert tds[5].clean_text  # June's value (or ..), no status colour, no arrow
        assert not tds[5].select(".status") and not ({"tg", "ty", "tr"} & tds[5].classes)
        assert not any(a in tds[5].clean_text for a in "↑↓→")
    rate = city.one("tr[data-indicator=rapporteringsgrad]").select("td")
    assert rate[3].one("span.status").clean_text == rates.loc[MAY, "status"]
    assert rates.loc[JUN, "status"] is None or pd.isna(rates.loc[JUN, "status"])
    table = doc.one("table.data-coverage")
    rows = {tr.one("th").clean_text: [td.clean_text for td in tr.select("td")]
            for tr in table.select("tbody tr")}
    assert rows["Skolornas elev- och närvarouppgifter"] == ["12 januari 2026", "12 juni 2026"]
    chart = doc.one("section#ind-kanda_av_flera svg.trend[data-period=manad]")
    assert chart.select("circle.point.coverage") and not chart.select("polyline")
    assert doc.one("section#ind-kanda_av_flera p.chart-note")
