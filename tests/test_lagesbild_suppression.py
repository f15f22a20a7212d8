"""Secondary suppression of the weekly lägesbild (samverkan.lagesbild_suppression) and its
independent audit (samverkan.disclosure_audit.lagesbild_audit_rules, run by check_lagesbild).

The lägesbild and the weekly indicator cells it relates to are aggregated here from simulated
units (reports with an anmälare category, young suspects with offence categories, pupils with
a high-absence flag per week), the way the dbt models count them, then primary-suppressed the
way dbt does. The adversarial cases: a small category beside its published total, SSPF areas
that add up to the city, a count whose weekly indicator cell the indicator table hid, a
trailing average over a hidden week, and the status list. Then random worlds: the suppressor's
output always passes the audit and every value it shows is the true one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from samverkan.disclosure import check_lagesbild
from samverkan.lagesbild_suppression import LAGESBILD_RELATIONS, suppress_lagesbild
from samverkan.publish import LAGESBILD_COLUMNS

MIN_CELL = 5
WEEKS = 4  # trailing weeks
W = dt.date(2026, 6, 1)
CITY = "0180"
AREAS = ("A1", "A2", "B1")
NAMES = {"nya_orosanmalningar": "Nya orosanmälningar", "nya_unga_misstankta": "Nya unga misstänkta",
         "passerat_hog_franvaro": "Elever som passerat gränsen för hög frånvaro"}
INDICATOR = {"nya_orosanmalningar": ("orosanmalningar", "anmalare"),
             "nya_unga_misstankta": ("unga_misstankta", "brottskategori")}


def week_start(offset: int) -> dt.date:
    return W - dt.timedelta(weeks=offset)


@dataclass
class World:
    """Counted units: (week offset, measure, category, SSPF area or None, unit key); pupils:
    (key, SSPF area or None) with the set of week offsets they have high absence in, assessed in
    every week. Weekly indicator cells can be hidden (``hidden``: key → marker) and given a
    status (``status``: (indicator, week offset, level, code) → status)."""

    units: list[tuple[int, str, str | None, str | None, str]] = field(default_factory=list)
    pupils: dict[str, tuple[str | None, set[int]]] = field(default_factory=dict)
    hidden: dict[tuple, str] = field(default_factory=dict)
    status: dict[tuple, str] = field(default_factory=dict)

    def reports(self, week: int, category: str, area: str | None, n: int) -> World:
        start = len(self.units)
        self.units += [(week, "nya_orosanmalningar", category, area, f"r{start + i}") for i in range(n)]
        return self

    def suspects(self, week: int, categories: list[str], area: str | None, n: int) -> World:
        start = len(self.units)
        self.units += [(week, "nya_unga_misstankta", c, area, f"p{start + i}") for i in range(n)
                       for c in categories]
        return self

    def pupil(self, area: str | None, high_weeks: set[int], n: int = 1) -> World:
        for _ in range(n):
            self.pupils[f"e{len(self.pupils)}"] = (area, set(high_weeks))
        return self

    # --- what the dbt models count --------------------------------------------------------

    def all_units(self) -> pd.DataFrame:
        passed = [(k, "passerat_hog_franvaro", None, area, key)
                  for key, (area, high) in self.pupils.items() for k in range(WEEKS + 1)
                  if k in high and k + 1 not in high]
        return pd.DataFrame(self.units + passed, columns=["week", "measure", "category", "area", "key"])

    def lagesbild(self) -> pd.DataFrame:
        """published_lagesbild (primary suppression) with the true counts, as exported."""
        units = self.all_units()
        rows = []
        for measure in NAMES:
            mu = units[units["measure"] == measure]
            for level, code in [("stad", CITY), *(("sspf_omrade", a) for a in AREAS)]:
                au = mu if level == "stad" else mu[mu["area"] == code]
                for category in ["totalt", *sorted(set(au["category"].dropna()))]:
                    cu = au if category == "totalt" else au[au["category"] == category]
                    per_week = cu.groupby("week")["key"].nunique()
                    value = int(per_week.get(0, 0))
                    total = int(sum(per_week.get(k, 0) for k in range(1, WEEKS + 1)))
                    if category != "totalt" and value == 0 and total == 0:
                        continue
                    small_v, small_t = 1 <= value < MIN_CELL, 1 <= total < MIN_CELL
                    rows.append(dict(
                        week_start=W, week_end=W + dt.timedelta(days=6), iso_week="2026-W23",
                        area_level=level, area_code=code, area_name=code, measure=measure,
                        measure_name=NAMES[measure], category=category,
                        category_name="Totalt" if category == "totalt" else category.capitalize(),
                        value=None if small_v else float(value),
                        trailing_average=None if small_t else total / WEEKS,
                        suppressed="primär" if small_v else None,
                        trailing_average_suppressed="primär" if small_t else None,
                        data_version="test", true_value=value, true_trailing_total=total))
        return pd.DataFrame(rows)

    def indicators(self) -> pd.DataFrame:
        """The weekly cells of orosanmalningar, unga_misstankta and hog_franvaro for W and the
        trailing weeks (city and SSPF areas), primary-suppressed, then ``hidden`` applied."""
        units = self.all_units()
        rows = []

        def add(indicator, offset, level, code, breakdown, value, numerator, denominator=None):
            unit = "antal" if denominator is None else "andel"
            if unit == "antal":
                primary = numerator < MIN_CELL
            else:
                primary = (denominator < MIN_CELL or 1 <= numerator < MIN_CELL
                           or 1 <= denominator - numerator < MIN_CELL)
            key = (indicator, offset, level, code, breakdown, value)
            marker = "primär" if primary else self.hidden.get(key)
            status = None if marker else self.status.get((indicator, offset, level, code))
            rows.append(dict(
                indicator_id=indicator, indicator_name=indicator, period_type="vecka",
                period_start=week_start(offset), period_end=week_start(offset) + dt.timedelta(days=6),
                area_level=level, area_code=code, area_name=code, breakdown=breakdown,
                breakdown_value=value, numerator=None if marker else numerator,
                denominator=None if marker or denominator is None else denominator,
                value=None if marker else (numerator if denominator is None else numerator / denominator),
                unit=unit, suppressed=marker, target=None, status=status, data_version="test"))

        areas = [("stad", CITY), *(("sspf_omrade", a) for a in AREAS)]
        for measure, (indicator, breakdown) in INDICATOR.items():
            mu = units[units["measure"] == measure]
            for offset in range(WEEKS + 1):
                wu = mu[mu["week"] == offset]
                for level, code in areas:
                    au = wu if level == "stad" else wu[wu["area"] == code]
                    if au.empty:
                        continue
                    add(indicator, offset, level, code, "totalt", "totalt", au["key"].nunique())
                    for category, cu in au.groupby("category"):
                        add(indicator, offset, level, code, breakdown, category, cu["key"].nunique())
        for offset in range(WEEKS + 1):
            for level, code in areas:
                pupils = [(a, h) for a, h in self.pupils.values() if level == "stad" or a == code]
                if pupils:
                    add("hog_franvaro", offset, level, code, "totalt", "totalt",
                        sum(offset in h for _, h in pupils), len(pupils))
        return pd.DataFrame(rows)


def run(world: World, indicators: pd.DataFrame | None = None) -> pd.DataFrame:
    out = suppress_lagesbild(world.lagesbild(), world.indicators() if indicators is None else indicators,
                             MIN_CELL, trailing_weeks=WEEKS)
    assert list(out.columns[:len(LAGESBILD_COLUMNS)]) == LAGESBILD_COLUMNS
    return out


def audit(lagesbild: pd.DataFrame, indicators: pd.DataFrame) -> set[str]:
    report = check_lagesbild(lagesbild[LAGESBILD_COLUMNS], MIN_CELL, WEEKS, indicators=indicators)
    assert report.checks == ("lagesbild_primary_suppression", "lagesbild_secondary_audit")
    return {c.rule for c in report.cells}


def row(df: pd.DataFrame, measure: str, code: str, category: str = "totalt") -> pd.Series:
    hit = df[(df["measure"] == measure) & (df["area_code"] == code) & (df["category"] == category)]
    assert len(hit) == 1, (measure, code, category)
    return hit.iloc[0]


def assert_truthful(out: pd.DataFrame) -> None:
    """Shown numbers are the true ones; the dbt primary markers stay; hidden rows show nothing."""
    counts = out[out["measure"] != "rod_status"]
    shown = counts["suppressed"].isna()
    assert (counts.loc[shown, "value"] == counts.loc[shown, "true_value"]).all()
    assert counts.loc[~shown, "value"].isna().all()
    shown = counts["trailing_average_suppressed"].isna()
    assert np.allclose(counts.loc[shown, "trailing_average"].astype(float),
                       counts.loc[shown, "true_trailing_total"].astype(float) / WEEKS)
    assert counts.loc[~shown, "trailing_average"].isna().all()
    small = counts["true_value"].between(1, MIN_CELL - 1)
    assert (counts.loc[small, "suppressed"] == "primär").all()
    assert set(counts["suppressed"].dropna()) | set(counts["trailing_average_suppressed"].dropna()) <= {
        "primär", "sekundär"}


# ---------------------------------------------------------------------------------------------
# Adversarial cases
# ---------------------------------------------------------------------------------------------

def test_a_small_category_beside_its_published_total() -> None:
    """City reports in W: 3 from Skola (primär) and 17 from Polis under a published total of 20:
    Polis would give Skola away (20 - 17). The indicator table does not publish W here, so only
    the lägesbild's own relations protect it."""
    world = World().reports(0, "Skola", None, 3).reports(0, "Polis", None, 17)
    unpublished = world.indicators().iloc[0:0]
    primary_only = world.lagesbild()
    assert "lagesbild_secondary_disclosed" in audit(primary_only, unpublished)
    out = run(world, unpublished)
    assert row(out, "nya_orosanmalningar", CITY, "Skola")["suppressed"] == "primär"
    assert row(out, "nya_orosanmalningar", CITY, "Polis")["suppressed"] == "sekundär"
    assert row(out, "nya_orosanmalningar", CITY)["value"] == 20
    assert audit(out, unpublished) == set()
    assert_truthful(out)


def test_sspf_areas_that_add_up_to_the_city() -> None:
    """Pupils past the threshold in W: 3 in A1 (primär) and 9 in A2 under a city row of 12."""
    world = World().pupil("A1", {0}, 3).pupil("A2", {0}, 9).pupil("B1", set(), 20)
    primary_only = world.lagesbild()
    assert "lagesbild_secondary_disclosed" in audit(primary_only, world.indicators())
    out = run(world)
    assert row(out, "passerat_hog_franvaro", "A1")["suppressed"] == "primär"
    assert row(out, "passerat_hog_franvaro", "A2")["suppressed"] == "sekundär"
    assert row(out, "passerat_hog_franvaro", CITY)["value"] == 12
    assert audit(out, world.indicators()) == set()
    assert_truthful(out)


def test_a_count_whose_weekly_indicator_cell_is_hidden() -> None:
    """A1's 7 reports in W are the orosanmalningar cell the indicator table hid (sekundär, to
    protect another cell): the lägesbild must not show it either."""
    world = World().reports(0, "Skola", "A1", 7).reports(0, "Skola", "A2", 9).reports(0, "Polis", "A2", 6)
    world.hidden[("orosanmalningar", 0, "sspf_omrade", "A1", "totalt", "totalt")] = "sekundär"
    indicators = world.indicators()
    primary_only = world.lagesbild()
    assert audit(primary_only, indicators) == {"lagesbild_shows_suppressed_cell"}
    out = run(world, indicators)
    assert row(out, "nya_orosanmalningar", "A1")["suppressed"] == "sekundär"
    assert pd.isna(row(out, "nya_orosanmalningar", "A1")["value"])
    assert audit(out, indicators) == set()
    assert_truthful(out)
    # a count that disagrees with its weekly cell is caught too
    wrong = out.copy()
    i = wrong.index[(wrong["measure"] == "nya_orosanmalningar") & (wrong["area_code"] == "A2")
                    & (wrong["category"] == "totalt")][0]
    wrong.loc[i, "value"] = 16.0
    assert "lagesbild_contradicts_indicators" in audit(wrong, indicators)


def test_a_trailing_average_over_a_hidden_week() -> None:
    """The city's suspects in the four weeks before W: 6 + 7 + 5 + 8. Week 3's cell is hidden in
    the indicator table, so the total (26) would give it away from the other three."""
    world = World()
    for week, n in ((1, 6), (2, 7), (3, 5), (4, 8), (0, 9)):
        world.suspects(week, ["stöld"], "A1", n)
    world.hidden[("unga_misstankta", 3, "stad", CITY, "totalt", "totalt")] = "sekundär"
    indicators = world.indicators()
    assert "lagesbild_shows_suppressed_cell" in audit(world.lagesbild(), indicators)
    out = run(world, indicators)
    assert row(out, "nya_unga_misstankta", CITY)["trailing_average_suppressed"] == "sekundär"
    assert row(out, "nya_unga_misstankta", CITY)["value"] == 9
    assert audit(out, indicators) == set()
    assert_truthful(out)
    # with every week published the average is shown, and equals the weekly cells' mean
    world.hidden.clear()
    out = run(world)
    assert row(out, "nya_unga_misstankta", CITY)["trailing_average"] == pytest.approx(26 / WEEKS)
    # a week the indicator table does not publish: its count would follow from the total
    four_weeks = world.indicators()
    four_weeks = four_weeks[four_weeks["period_start"] != week_start(4)]
    assert "lagesbild_average_over_unpublished_week" in audit(world.lagesbild(), four_weeks)
    out = run(world, four_weeks)
    assert row(out, "nya_unga_misstankta", CITY)["trailing_average_suppressed"] == "sekundär"


def test_the_status_list_follows_the_published_statuses() -> None:
    """rod_status: red in W and not published red in W - 1. A W - 1 cell hidden by secondary
    suppression does not count as red (else its absence from the list would tell)."""
    world = World().pupil("A1", {0, 1}, 10).pupil("A1", set(), 30).pupil("A2", {0}, 8).pupil("A2", set(), 30)
    world.pupil("B1", {0, 1}, 6).pupil("B1", set(), 30)
    for code in (CITY, "A1", "A2", "B1"):
        level = "stad" if code == CITY else "sspf_omrade"
        world.status[("hog_franvaro", 0, level, code)] = "röd"
        world.status[("hog_franvaro", 1, level, code)] = "röd"
    world.hidden[("hog_franvaro", 1, "sspf_omrade", "A1", "totalt", "totalt")] = "sekundär"
    world.hidden[("hog_franvaro", 0, "sspf_omrade", "B1", "totalt", "totalt")] = "sekundär"
    indicators = world.indicators()
    out = run(world, indicators)
    red = out[out["measure"] == "rod_status"]
    # A1: W - 1 hidden; A2: W - 1 has 0 high (hog_franvaro 0 of 38 is published, red there)
    assert set(red["area_code"]) == {"A1"} and set(red["category"]) == {"hog_franvaro"}
    assert red["value"].isna().all() and (red["measure_name"] == "Indikatorer som blivit röda").all()
    assert audit(out, indicators) == set()
    # a missing row and a wrong row are caught
    assert audit(out[out["measure"] != "rod_status"], indicators) == {"lagesbild_status_missing"}
    wrong = pd.concat([out, red.assign(area_code="B1")], ignore_index=True)
    assert "lagesbild_status_not_shown_red" in audit(wrong, indicators)


def test_passed_threshold_is_hidden_where_the_high_absence_numerator_is() -> None:
    """Pupils past the threshold are some of the hog_franvaro numerator: a shown count would
    bound a hidden numerator from below."""
    world = World().pupil("A1", {0}, 6).pupil("A1", set(), 30).pupil("A2", {0}, 7).pupil("A2", set(), 30)
    world.hidden[("hog_franvaro", 0, "sspf_omrade", "A1", "totalt", "totalt")] = "sekundär"
    indicators = world.indicators()
    assert "lagesbild_shows_suppressed_cell" in audit(world.lagesbild(), indicators)
    out = run(world, indicators)
    assert row(out, "passerat_hog_franvaro", "A1")["suppressed"] == "sekundär"
    assert audit(out, indicators) == set()
    assert_truthful(out)


# ---------------------------------------------------------------------------------------------
# Random worlds
# ---------------------------------------------------------------------------------------------

def random_world(rng: np.random.Generator) -> World:
    world = World()
    areas = [*AREAS, None]
    for week in range(WEEKS + 1):
        for _ in range(rng.integers(2, 9)):
            world.reports(week, str(rng.choice(["Skola", "Polis", "Hälso- och sjukvård", "Okänd"])),
                          areas[rng.integers(0, 4)], int(rng.integers(1, 9)))
        for _ in range(rng.integers(1, 6)):
            k = int(rng.integers(1, 3))
            cats = list(rng.choice(["stöld", "våld", "narkotika", "okänd"], size=k, replace=False))
            world.suspects(week, cats, areas[rng.integers(0, 4)], int(rng.integers(1, 7)))
    for _ in range(rng.integers(20, 120)):
        high = {w for w in range(WEEKS + 2) if rng.random() < 0.25}
        world.pupil(areas[rng.integers(0, 4)], high)
    indicators = world.indicators()
    shown = indicators[indicators["suppressed"].isna()]
    for i in rng.choice(len(shown), size=min(len(shown), int(rng.integers(0, 6))), replace=False):
        r = shown.iloc[i]
        world.hidden[(r.indicator_id, (W - r.period_start).days // 7, r.area_level, r.area_code,
                      r.breakdown, r.breakdown_value)] = "sekundär"
    for indicator, offset, level, code in {(r.indicator_id, (W - r.period_start).days // 7, r.area_level,
                                            r.area_code) for r in indicators.itertuples()
                                           if r.indicator_id == "hog_franvaro"}:
        if rng.random() < 0.5:
            world.status[(indicator, offset, level, code)] = "röd"
    return world


def test_random_worlds_pass_the_audit_and_show_the_truth() -> None:
    rng = np.random.default_rng(20261123)
    secondary = 0
    for _ in range(20):
        world = random_world(rng)
        indicators = world.indicators()
        out = run(world, indicators)
        assert audit(out, indicators) == set()
        assert_truthful(out)
        secondary += int((out["suppressed"] == "sekundär").sum()
                         + (out["trailing_average_suppressed"] == "sekundär").sum())
    assert secondary > 0


def test_the_lagesbild_relations_match_the_audit() -> None:
    from samverkan.disclosure_audit import LAGESBILD_AUDIT_RELATIONS

    names = {"eq": "=", "ge": ">=", "cover": "cover", "subset": "each"}
    assert set(LAGESBILD_RELATIONS) == set(LAGESBILD_AUDIT_RELATIONS)
    for measure, spec in LAGESBILD_RELATIONS.items():
        mine = {"stad/top": names[spec.stad_sdo]} | {f"bd:{b}": names[k] for b, k in spec.breakdowns.items()}
        assert mine == LAGESBILD_AUDIT_RELATIONS[measure], measure


def test_the_audit_shares_no_code_with_the_lagesbild_suppressor() -> None:
    import ast
    from pathlib import Path

    from samverkan import disclosure_audit, lagesbild_suppression

    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not any("suppression" in name for name in imported(disclosure_audit))
    assert not any("disclosure" in name for name in imported(lagesbild_suppression))
