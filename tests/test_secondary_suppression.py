"""Secondary suppression (samverkan.suppression) and its independent audit
(samverkan.disclosure_audit), on real published-shaped tables.

The adversarial tables of issue 5 are written out cell by cell (with their true numbers), run
through primary suppression, then:
* the audit must FAIL the primary-only table and a table with a wrong secondary choice,
* apply_secondary_suppression must protect it and the audit must then pass.
The random tables are aggregated from simulated units (pupils, reports, police events) over the
project's real area seeds, the way the dbt cube does it, so every relation the two modules
declare holds on them; the audit is also checked against brute-force enumeration.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STOCKHOLM_REFERENCE

from samverkan import disclosure_audit, suppression
from samverkan.config import DBT_PROJECT_DIR
from samverkan.disclosure_audit import AUDIT_RELATIONS, audit_secondary, secondary_rules
from samverkan.suppression import EQ, GE, RELATIONS, IndicatorRelations, apply_secondary_suppression

MIN_CELL = 5
PERIOD = ("manad", "2026-03-01", "2026-03-31")
TRUE_COLUMNS = ["true_numerator", "true_denominator", "primary"]
LEVEL_OF = {"stad": "stad", "sdo": "stadsdelsomrade", "sspf": "sspf_omrade", "school": "skolenhet"}


# ---------------------------------------------------------------------------------------------
# Building tables
# ---------------------------------------------------------------------------------------------

def primary_flags(unit: str, n: pd.Series, d: pd.Series) -> pd.Series:
    small = (lambda x: (x >= 1) & (x <= MIN_CELL - 1))  # noqa: E731
    if unit == "antal":
        return n < MIN_CELL
    return (d < MIN_CELL) | small(n) | small(d - n)


def table(indicator: str, unit: str, rows: list[tuple],
          period: tuple[str, str, str] = PERIOD) -> pd.DataFrame:
    """Published-shaped cells after primary suppression, with their true numbers.
    rows: (area_level, area_code, breakdown, breakdown_value, numerator, denominator or None)."""
    df = pd.DataFrame(rows, columns=["area_level", "area_code", "breakdown", "breakdown_value", "n", "d"])
    n = df["n"].astype("int64")
    d = df["d"].astype("Int64") if unit == "andel" else pd.Series(pd.NA, index=df.index, dtype="Int64")
    primary = primary_flags(unit, n, d.astype("float64"))
    numerator = n.astype("Int64").mask(primary)
    denominator = d.mask(primary)
    value = (numerator / denominator) if unit == "andel" else numerator.astype("Float64")
    return pd.DataFrame({
        "indicator_id": indicator, "indicator_name": indicator, "period_type": period[0],
        "period_start": period[1], "period_end": period[2],
        "area_level": df["area_level"], "area_code": df["area_code"], "area_name": df["area_code"],
        "breakdown": df["breakdown"], "breakdown_value": df["breakdown_value"],
        "numerator": numerator, "denominator": denominator, "value": value.astype("Float64"), "unit": unit,
        "suppressed": pd.Series(np.where(primary, "primär", None), dtype="object"),
        "target": pd.Series(np.nan, index=df.index),
        "status": pd.Series(None, index=df.index, dtype="object"),
        "data_version": "test",
        "true_numerator": n, "true_denominator": d, "primary": primary.astype(bool),
    })


def published(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in TRUE_COLUMNS if c in df.columns])


def cell(df: pd.DataFrame, level: str, code: str, breakdown: str = "totalt",
         value: str = "totalt") -> pd.Series:
    hit = df[(df["area_level"] == level) & (df["area_code"] == code) & (df["breakdown"] == breakdown)
             & (df["breakdown_value"] == value)]
    assert len(hit) == 1, (level, code, breakdown, value)
    return hit.iloc[0]


def disclosed(problems) -> set[tuple[str, str, str, str]]:
    return {(p.area_level, p.area_code, p.breakdown, p.breakdown_value) for p in problems
            if p.rule == "secondary_disclosed"}


def write_seeds(directory: Path, sspf_to_sdo: dict[str, str], school_to_sspf: dict[str, str],
                stadsdelar: list[tuple[str, str, str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "ref_sspf_omraden.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sspf_omrade_code", "sspf_omrade_name", "stadsdelsomrade_code"])
        w.writerows([code, code, sdo] for code, sdo in sspf_to_sdo.items())
    with (directory / "ref_skolenheter.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["school_unit_code", "sspf_omrade_code"])
        w.writerows(school_to_sspf.items())
    with (directory / "ref_stadsdelar.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["stadsdel_name", "stadsdelsomrade_code", "sspf_omrade_code"])
        w.writerows(stadsdelar)
    return directory


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """Two stadsdelsområden: A (SSPF areas A1, A2, every stadsdel in one) and B (SSPF area B1 and
    a stadsdel without SSPF area); schools a11, a12, a13 in A1, a21 in A2, b11 in B1 (and x99,
    in no SSPF area, counts in the city only)."""
    return write_seeds(
        tmp_path / "seeds",
        {"A1": "A", "A2": "A", "B1": "B"},
        {"a11": "A1", "a12": "A1", "a13": "A1", "a21": "A2", "b11": "B1"},
        [("Aby", "A", "A1"), ("Atorp", "A", "A2"), ("Bby", "B", "B1"), ("Bholm", "B", "")],
    )


# Events (one area each) placed by a district that ref_stadsdelar maps to an SSPF area: the
# relations of an event count by the police offence district (city ≥ Σ stadsdelsområden, a
# stadsdelsområde = Σ its SSPF areas, ≥ where one of its stadsdelar has none; each event in one
# category). No published indicator has exactly these today (the case-system indicators have no
# SSPF level, INDICATOR_RULES.md "Area levels per indicator"), so the adversarial tables below
# declare them for a test indicator in both modules.
DISTRICT_EVENTS = "district_events"


@pytest.fixture
def district_events(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(RELATIONS, DISTRICT_EVENTS, IndicatorRelations(
        areas="district", stad_sdo=GE, sdo_sspf=EQ, sdo_sspf_partial=GE, breakdowns={"anmalare": EQ}))
    monkeypatch.setitem(AUDIT_RELATIONS, DISTRICT_EVENTS, {"stad/top": ">=", "sdo/sspf": "=",
                                                           "sdo/sspf:partial": ">=", "bd:anmalare": "="})
    monkeypatch.setattr(disclosure_audit, "DISTRICT_INDICATORS",
                        disclosure_audit.DISTRICT_INDICATORS | {DISTRICT_EVENTS})
    return DISTRICT_EVENTS


def protect(df: pd.DataFrame, seeds_dir: Path) -> pd.DataFrame:
    out = apply_secondary_suppression(df, MIN_CELL, reference_dir=seeds_dir)
    # the primary cells stay primär, nothing hidden is published, no published cell is small
    assert (out.loc[df["primary"].to_numpy(), "suppressed"] == "primär").all()
    hidden = out["suppressed"].notna()
    assert out.loc[hidden, ["numerator", "denominator", "value"]].isna().all().all()
    assert not (out.loc[~hidden, "primary"]).any()
    assert set(out["suppressed"].dropna()) <= {"primär", "sekundär"}
    return out


# ---------------------------------------------------------------------------------------------
# The adversarial tables of issue 5
# ---------------------------------------------------------------------------------------------

def test_one_small_cell_in_a_row_of_three(seeds: Path) -> None:
    # high absence by school unit: SSPF area A1 = its three schools, and a12 is small
    df = table("hog_franvaro", "andel", [
        ("stad", "0180", "totalt", "totalt", 42, 203),
        ("stadsdelsomrade", "A", "totalt", "totalt", 31, 153),
        ("sspf_omrade", "A1", "totalt", "totalt", 19, 93),
        ("skolenhet", "a11", "totalt", "totalt", 10, 50),
        ("skolenhet", "a12", "totalt", "totalt", 1, 3),
        ("skolenhet", "a13", "totalt", "totalt", 8, 40),
        ("sspf_omrade", "A2", "totalt", "totalt", 12, 60),
        ("skolenhet", "a21", "totalt", "totalt", 12, 60),
        ("stadsdelsomrade", "B", "totalt", "totalt", 6, 30),
        ("sspf_omrade", "B1", "totalt", "totalt", 6, 30),
        ("skolenhet", "b11", "totalt", "totalt", 6, 30),
        ("skolenhet", "x99", "totalt", "totalt", 5, 20),         # not in the seed: the city only
    ])
    assert df["primary"].sum() == 1
    a12 = ("skolenhet", "a12", "totalt", "totalt")
    assert disclosed(audit_secondary(published(df), reference_dir=seeds)) == {a12}

    out = protect(df, seeds)
    # the smallest other school of A1 protects it (in A1 and in the city's sum over schools)
    assert out.loc[out["suppressed"] == "sekundär", "area_code"].tolist() == ["a13"]
    assert audit_secondary(published(out), reference_dir=seeds) == []

    # a wrong secondary choice: a school of another SSPF area leaves a12 = A1 − a11 − a13 (and
    # gives itself away: a21 is all of A2)
    wrong = df.copy()
    wrong.loc[wrong["area_code"] == "a21", ["suppressed", "numerator", "denominator", "value"]] = (
        "sekundär", pd.NA, pd.NA, pd.NA)
    assert disclosed(audit_secondary(published(wrong), reference_dir=seeds)) == {
        a12, ("skolenhet", "a21", "totalt", "totalt")}


def test_small_cell_whose_total_is_published(seeds: Path, district_events: str) -> None:
    # investigations (andel): stadsdelsområde A = its two SSPF areas A1 + A2 (every stadsdel of A
    # has an SSPF area); A1 has a small denominator, A's total is published
    df = table(district_events, "andel", [
        ("stad", "0180", "totalt", "totalt", 40, 70),
        ("stadsdelsomrade", "A", "totalt", "totalt", 30, 50),
        ("sspf_omrade", "A1", "totalt", "totalt", 1, 3),
        ("sspf_omrade", "A2", "totalt", "totalt", 29, 47),
    ])
    found = audit_secondary(published(df), reference_dir=seeds)
    assert disclosed(found) == {("sspf_omrade", "A1", "totalt", "totalt")}
    assert {p.quantity for p in found} == {"count/denominator", "numerator", "denominator - numerator"}

    out = protect(df, seeds)
    assert cell(out, "sspf_omrade", "A2")["suppressed"] == "sekundär"
    # A itself stays published: with A1 and A2 hidden, A1 ranges over 1..49
    assert pd.isna(cell(out, "stadsdelsomrade", "A")["suppressed"])
    assert audit_secondary(published(out), reference_dir=seeds) == []


def test_two_small_cells_that_would_give_each_other_away(seeds: Path) -> None:
    # two small parts hidden together look protected, but the published rest pins them: the
    # total minus the published part is 2, and each existing part holds at least 1
    df = table("orosanmalningar", "antal", [
        ("stad", "0180", "totalt", "totalt", 27, None),
        ("stad", "0180", "anmalare", "Polis", 1, None),
        ("stad", "0180", "anmalare", "Skola", 1, None),
        ("stad", "0180", "anmalare", "Vård", 25, None),
    ])
    assert disclosed(audit_secondary(published(df), reference_dir=seeds)) == {
        ("stad", "0180", "anmalare", "Polis"), ("stad", "0180", "anmalare", "Skola")}
    out = protect(df, seeds)
    assert cell(out, "stad", "0180", "anmalare", "Vård")["suppressed"] == "sekundär"
    assert audit_secondary(published(out), reference_dir=seeds) == []


def test_two_small_cells_across_two_relations(seeds: Path, district_events: str) -> None:
    # two small cells in the same row (SSPF area A1 by anmälare) hide each other in the row, but
    # each is alone in its column: (A1, Polis) = (A, Polis) − (A2, Polis)
    rows = [
        ("stad", "0180", "totalt", "totalt", 100, None),
        ("stad", "0180", "anmalare", "Polis", 40, None),
        ("stad", "0180", "anmalare", "Skola", 60, None),
        ("stadsdelsomrade", "A", "totalt", "totalt", 100, None),
        ("stadsdelsomrade", "A", "anmalare", "Polis", 40, None),
        ("stadsdelsomrade", "A", "anmalare", "Skola", 60, None),
        ("sspf_omrade", "A1", "totalt", "totalt", 6, None),
        ("sspf_omrade", "A1", "anmalare", "Polis", 3, None),
        ("sspf_omrade", "A1", "anmalare", "Skola", 3, None),
        ("sspf_omrade", "A2", "totalt", "totalt", 94, None),
        ("sspf_omrade", "A2", "anmalare", "Polis", 37, None),
        ("sspf_omrade", "A2", "anmalare", "Skola", 57, None),
    ]
    df = table(district_events, "antal", rows)
    a1_polis = ("sspf_omrade", "A1", "anmalare", "Polis")
    a1_skola = ("sspf_omrade", "A1", "anmalare", "Skola")
    assert disclosed(audit_secondary(published(df), reference_dir=seeds)) == {a1_polis, a1_skola}
    # a wrong secondary choice: hiding A1's total as well still leaves both columns (and the
    # total is their sum)
    wrong = df.copy()
    wrong.loc[(wrong["area_code"] == "A1") & (wrong["breakdown"] == "totalt"), "suppressed"] = "sekundär"
    wrong.loc[wrong["suppressed"].notna(), ["numerator", "value"]] = pd.NA
    assert disclosed(audit_secondary(published(wrong), reference_dir=seeds)) == {
        a1_polis, a1_skola, ("sspf_omrade", "A1", "totalt", "totalt")}
    out = protect(df, seeds)
    # each column gets a partner, A2's Polis and Skola: a 2 × 2 block that can shift by ±k
    assert set(out.loc[out["suppressed"] == "sekundär", ["area_code", "breakdown_value"]]
               .itertuples(index=False, name=None)) == {("A2", "Polis"), ("A2", "Skola")}
    assert audit_secondary(published(out), reference_dir=seeds) == []


# ---------------------------------------------------------------------------------------------
# Two dimensions, shares, inequalities, multiple membership
# ---------------------------------------------------------------------------------------------

def test_areas_by_huvudman(seeds: Path) -> None:
    """A school indicator by areas × huvudman (each school unit has one huvudman)."""
    composition = {  # school: (pupils, high absence, huvudman)
        "a11": (60, 10, "kommunal"), "a12": (4, 0, "fristående"), "a13": (45, 9, "kommunal"),
        "a21": (50, 5, "kommunal"), "b11": (40, 8, "fristående"), "x99": (30, 6, "kommunal"),
    }
    pupils = pd.DataFrame([(school, i < flagged, huvudman)
                           for school, (n, flagged, huvudman) in composition.items() for i in range(n)],
                          columns=["school", "flag", "huvudman"])
    df = school_table(pupils, "hog_franvaro", seeds, breakdowns=("huvudman",))
    # a12 is the only fristående school of A1: A1's fristående cell is a12's, and both are small;
    # A1's total − A1's kommunal gives them away
    assert cell(df, "sspf_omrade", "A1", "huvudman", "fristående")["primary"]
    assert cell(df, "skolenhet", "a12")["primary"]
    assert not cell(df, "sspf_omrade", "A1")["primary"]
    assert ("sspf_omrade", "A1", "huvudman", "fristående") in disclosed(
        audit_secondary(published(df), reference_dir=seeds))
    out = protect(df, seeds)
    assert (out["suppressed"] == "sekundär").any()
    assert audit_secondary(published(out), reference_dir=seeds) == []


def test_andel_numerator_and_denominator(seeds: Path, district_events: str) -> None:
    # a share has three checked quantities: numerator, denominator and denominator − numerator;
    # the hidden A1 is pinned in all three by A − A2
    df = table(district_events, "andel", [
        ("stad", "0180", "totalt", "totalt", 40, 90),
        ("stadsdelsomrade", "A", "totalt", "totalt", 20, 50),
        ("sspf_omrade", "A1", "totalt", "totalt", 2, 8),
        ("sspf_omrade", "A2", "totalt", "totalt", 18, 42),
    ])
    found = audit_secondary(published(df), reference_dir=seeds)
    assert {p.quantity for p in found} == {"count/denominator", "numerator", "denominator - numerator"}
    # each quantity on its own: a (broken) row that publishes A2's numerator but not its
    # denominator pins A1's numerator (A's − A2's) and leaves both denominators open
    half = df.copy()
    half.loc[half["area_code"] == "A2", ["suppressed", "denominator", "value"]] = ("sekundär", pd.NA, pd.NA)
    found = audit_secondary(published(half), reference_dir=seeds)
    assert {(p.area_code, p.quantity) for p in found} == {("A1", "numerator")}
    out = protect(df, seeds)
    assert audit_secondary(published(out), reference_dir=seeds) == []

    # zero numerators pinned by a published zero are not reported (zero_is_safe) unless asked
    zero = table(district_events, "andel", [
        ("stad", "0180", "totalt", "totalt", 0, 90),
        ("stadsdelsomrade", "A", "totalt", "totalt", 0, 50),
        ("sspf_omrade", "A1", "totalt", "totalt", 0, 3),
        ("sspf_omrade", "A2", "totalt", "totalt", 0, 47),
    ])
    out = protect(zero, seeds)
    assert audit_secondary(published(out), reference_dir=seeds) == []
    strict = audit_secondary(published(out), reference_dir=seeds, zero_is_safe=False)
    assert {p.quantity for p in strict} >= {"numerator"}


def test_greater_or_equal_relation(seeds: Path, district_events: str) -> None:
    # B has a stadsdel without SSPF area, so B ≥ B1 only: a hidden B1 ranges over 1..31
    open_rows = [
        ("stad", "0180", "totalt", "totalt", 45, None),
        ("stadsdelsomrade", "B", "totalt", "totalt", 31, None),
        ("sspf_omrade", "B1", "totalt", "totalt", 3, None),
        ("stadsdelsomrade", "A", "totalt", "totalt", 12, None),
        ("sspf_omrade", "A1", "totalt", "totalt", 12, None),
    ]
    df = table(district_events, "antal", open_rows)
    assert audit_secondary(published(df), reference_dir=seeds) == []
    out = protect(df, seeds)
    assert not (out["suppressed"] == "sekundär").any()        # nothing to add for ≥

    # the city ≥ Σ stadsdelsområden (reports without district): the bound on a hidden area
    # collapses when the city's rest is exactly the hidden parts' lower bounds (1 each)
    pinned = table(district_events, "antal", [
        ("stad", "0180", "totalt", "totalt", 31, None),
        ("stadsdelsomrade", "A", "totalt", "totalt", 30, None),
        ("sspf_omrade", "A1", "totalt", "totalt", 30, None),
        ("stadsdelsomrade", "B", "totalt", "totalt", 1, None),
    ])
    # B ≤ 31 − 30 = 1 and B ≥ 1 (the row exists)
    assert disclosed(audit_secondary(published(pinned), reference_dir=seeds)) == {
        ("stadsdelsomrade", "B", "totalt", "totalt")}
    out = protect(pinned, seeds)
    assert audit_secondary(published(out), reference_dir=seeds) == []


def test_distinct_persons_in_several_parts(seeds: Path) -> None:
    # police persons: a person counts in every brottskategori they have an event in, so the
    # total is at least each category and at most their sum. A total with one category equals it.
    df = table("unga_misstankta", "antal", [
        ("stad", "0180", "totalt", "totalt", 12, None),
        ("stad", "0180", "brottskategori", "våld", 12, None),
        ("stadsdelsomrade", "B", "totalt", "totalt", 3, None),
        ("stadsdelsomrade", "B", "brottskategori", "våld", 3, None),
    ])
    assert audit_secondary(published(df), reference_dir=seeds) == []      # both hidden together
    # hiding the city total for another reason: its single category gives it away
    wrong = df.copy()
    total = (wrong["area_level"] == "stad") & (wrong["breakdown"] == "totalt")
    wrong.loc[total, ["suppressed", "numerator", "value"]] = ("sekundär", pd.NA, pd.NA)
    assert disclosed(audit_secondary(published(wrong), reference_dir=seeds)) == {
        ("stad", "0180", "totalt", "totalt")}
    # two categories: every person of totalt has a våld event, so a hidden stöld is 1..12
    two = table("unga_misstankta", "antal", [
        ("stad", "0180", "totalt", "totalt", 12, None),
        ("stad", "0180", "brottskategori", "våld", 12, None),
        ("stad", "0180", "brottskategori", "stöld", 2, None),
    ])
    assert audit_secondary(published(two), reference_dir=seeds) == []
    # the suppressor: a city total hidden upstream (say, by the contributors rule) takes its
    # single category with it
    forced = df.copy()
    total = (forced["area_level"] == "stad") & (forced["breakdown"] == "totalt")
    forced.loc[total, ["primary", "suppressed"]] = (True, "primär")
    forced.loc[total, ["numerator", "value"]] = pd.NA
    out = protect(forced, seeds)
    assert cell(out, "stad", "0180", "brottskategori", "våld")["suppressed"] == "sekundär"
    assert audit_secondary(published(out), reference_dir=seeds) == []


def test_a_cell_pinned_by_several_relations_together() -> None:
    """Reports by anmälare over the project's seeds (a table the random generator produced).
    Every relation on its own leaves the hidden cells open, so the heuristic stops, but
    together (city ≥ Σ areas for two anmälare columns, the areas' totals, EAV ≥ its SSPF areas)
    they pin SOD's Hälso- och sjukvård at 1. Only the check with linear programmes sees it."""
    h, o, p, s = "Hälso- och sjukvård", "Okänd", "Polis", "Skola"
    counts = {
        ("stad", "0180"): {h: 7, o: 6, p: 15, s: 25},
        ("stadsdelsomrade", "EAV"): {h: 5, o: 4, p: 7, s: 12},
        ("stadsdelsomrade", "FAR"): {s: 1},
        ("stadsdelsomrade", "KUN"): {s: 1},
        ("stadsdelsomrade", "SKH"): {h: 1, o: 2, p: 5, s: 7},
        ("stadsdelsomrade", "SOD"): {h: 1, p: 3, s: 3},
        ("sspf_omrade", "EAV-OB"): {h: 1, o: 2, p: 3, s: 4},
        ("sspf_omrade", "EAV-RA"): {h: 2, o: 1, p: 1, s: 4},
        ("sspf_omrade", "SKH-BS"): {h: 1, o: 2, p: 4, s: 7},
        ("sspf_omrade", "SKH-SV"): {p: 1},
    }
    rows = []
    for (level, code), by in counts.items():
        rows.append((level, code, "totalt", "totalt", sum(by.values()), None))
        rows += [(level, code, "anmalare", k, v, None) for k, v in by.items()]
    df = table("orosanmalningar", "antal", rows)
    heuristic_only = apply_secondary_suppression(df, MIN_CELL, verify=False,
                                                 reference_dir=STOCKHOLM_REFERENCE)
    assert disclosed(audit_secondary(published(heuristic_only), reference_dir=STOCKHOLM_REFERENCE)) == {
        ("stadsdelsomrade", "SOD", "anmalare", h)}
    out = apply_secondary_suppression(df, MIN_CELL, reference_dir=STOCKHOLM_REFERENCE)
    assert (out["suppressed"] == "sekundär").sum() > (heuristic_only["suppressed"] == "sekundär").sum()
    assert audit_secondary(published(out), reference_dir=STOCKHOLM_REFERENCE) == []


# ---------------------------------------------------------------------------------------------
# Random hierarchical tables over the project's seeds
# ---------------------------------------------------------------------------------------------

def project_areas() -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, str | None]]]:
    def rows(name: str) -> list[dict[str, str]]:
        with (STOCKHOLM_REFERENCE / name).open(encoding="utf-8", newline="") as fh:
            return [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh)]
    sspf = {r["sspf_omrade_code"]: r["stadsdelsomrade_code"] for r in rows("ref_sspf_omraden.csv")}
    schools = {r["school_unit_code"]: r["sspf_omrade_code"] for r in rows("ref_skolenheter.csv")}
    districts = {r["stadsdel_name"]: (r["stadsdelsomrade_code"], r["sspf_omrade_code"] or None)
                 for r in rows("ref_stadsdelar.csv")}
    return sspf, schools, districts


def cube(members: pd.DataFrame, indicator: str, unit: str,
         period: tuple[str, str, str] = PERIOD) -> pd.DataFrame:
    """The cells the dbt cube builds: distinct units per (area, breakdown value), and of them
    the flagged ones. members: unit_id, level, code, breakdown, breakdown_value, flag."""
    keys = ["level", "code", "breakdown", "breakdown_value"]
    m = members.dropna(subset=["code", "breakdown_value"]).drop_duplicates([*keys, "unit_id"])
    agg = m.groupby(keys, sort=True).agg(d=("unit_id", "size"), n=("flag", "sum")).reset_index()
    rows = [(LEVEL_OF[r.level], r.code, r.breakdown, r.breakdown_value,
             int(r.d) if unit == "antal" else int(r.n), None if unit == "antal" else int(r.d))
            for r in agg.itertuples()]
    return table(indicator, unit, rows, period)


def memberships(units: pd.DataFrame, breakdowns: tuple[str, ...]) -> pd.DataFrame:
    """One row per unit (or event), area level and breakdown value it counts in."""
    parts = []
    for level in ("stad", "sdo", "sspf", "school"):
        if level not in units.columns:
            continue
        for bd in ("totalt", *breakdowns):
            parts.append(pd.DataFrame({
                "unit_id": units["unit_id"], "level": level, "code": units[level], "breakdown": bd,
                "breakdown_value": "totalt" if bd == "totalt" else units[bd], "flag": units["flag"]}))
    return pd.concat(parts, ignore_index=True)


def school_table(pupils: pd.DataFrame, indicator: str, seeds_dir: Path,
                 breakdowns: tuple[str, ...] = ("huvudman", "arskurs")) -> pd.DataFrame:
    sspf_to_sdo = dict(pd.read_csv(seeds_dir / "ref_sspf_omraden.csv", dtype=str)
                       .set_index("sspf_omrade_code")["stadsdelsomrade_code"])
    school_to_sspf = dict(pd.read_csv(seeds_dir / "ref_skolenheter.csv", dtype=str)
                          .set_index("school_unit_code")["sspf_omrade_code"])
    units = pupils.assign(unit_id=np.arange(len(pupils)), stad="0180")
    units["sspf"] = units["school"].map(school_to_sspf)
    units["sdo"] = units["sspf"].map(sspf_to_sdo)
    return cube(memberships(units, breakdowns), indicator, "andel")


def random_tables(rng: np.random.Generator, period: tuple[str, str, str]) -> pd.DataFrame:
    sspf_to_sdo, school_to_sspf, districts = project_areas()
    frames = []
    # pupils of the school indicators, some in school units missing from the seed
    schools = list(school_to_sspf) + ["39999901", "39999902"]
    n = int(rng.integers(250, 600))
    pupils = pd.DataFrame({"unit_id": np.arange(n), "stad": "0180",
                           "school": rng.choice(schools, n, p=rng.dirichlet(np.ones(len(schools)) * 2))})
    kommunal = {s: bool(rng.random() < 0.6) for s in schools}
    pupils["sspf"] = pupils["school"].map(school_to_sspf)
    pupils["sdo"] = pupils["sspf"].map(sspf_to_sdo)
    pupils["huvudman"] = pupils["school"].map(lambda s: "kommunal" if kommunal[s] else "fristående")
    pupils["arskurs"] = rng.integers(1, 10, n).astype(str)
    for indicator, rate in (("hog_franvaro", 0.15), ("mycket_hog_franvaro", 0.03)):
        pupils["flag"] = rng.random(n) < rate
        frames.append(cube(memberships(pupils, ("huvudman", "arskurs")), indicator, "andel", period))
    # reports of concern: the stadsdelsområde handling the report (blank or unknown: the city
    # only), never an SSPF area
    handling = sorted({sdo for sdo, _ in districts.values()})
    choices = [*handling, "", "Okänd"]
    m = int(rng.integers(40, 200))
    reports = pd.DataFrame({"unit_id": np.arange(m), "stad": "0180",
                            "handling": rng.choice(choices, m, p=rng.dirichlet(np.ones(len(choices))))})
    reports["sdo"] = reports["handling"].where(reports["handling"].isin(handling), None)
    reports = reports.drop(columns="handling")
    reports["anmalare"] = rng.choice(["Polis", "Skola", "Hälso- och sjukvård", "Okänd"], m,
                                     p=[.3, .4, .2, .1])
    reports["flag"] = rng.random(m) < 0.7
    frames.append(cube(memberships(reports, ("anmalare",)), "orosanmalningar", "antal", period))
    frames.append(cube(memberships(reports, ("anmalare",)), "forhandsbedomning_14_dagar", "andel", period))
    # young suspects: a person with several events, in several districts and categories
    names = [*districts, "", "Okänd stadsdel"]
    persons = int(rng.integers(20, 80))
    k = int(persons * 1.8)
    events = pd.DataFrame({"unit_id": rng.integers(0, persons, k), "stad": "0180",
                           "stadsdel": rng.choice(names, k)})
    events["sdo"] = events["stadsdel"].map(lambda s: districts.get(s, (None, None))[0])
    events["sspf"] = events["stadsdel"].map(lambda s: districts.get(s, (None, None))[1])
    events["brottskategori"] = rng.choice(["våld", "stöld", "narkotika", "okänd"], k)
    repeat = rng.random(persons) < 0.4
    events["flag"] = repeat[events["unit_id"]]
    frames.append(cube(memberships(events, ("brottskategori",)), "unga_misstankta", "antal", period))
    frames.append(cube(memberships(events, ()), "unga_misstankta_upprepat", "andel", period))
    # known to several agencies: school area of the person's enrolment, or none (the city only)
    people = int(rng.integers(20, 120))
    known = pd.DataFrame({"unit_id": np.arange(people), "stad": "0180",
                          "school": rng.choice([*schools, None], people)})
    known["sspf"] = known["school"].map(school_to_sspf)
    known["sdo"] = known["sspf"].map(sspf_to_sdo)
    known = known.drop(columns="school")
    known["antal_verksamheter"] = np.where(rng.random(people) < 0.3, "3", None)
    known["flag"] = False
    frames.append(cube(memberships(known, ("antal_verksamheter",)), "kanda_av_flera", "antal", period))
    return pd.concat(frames, ignore_index=True)


def test_random_hierarchical_tables_are_protected() -> None:
    rng = np.random.default_rng(20260312)
    frames = [random_tables(rng, ("vecka", f"2026-03-{d:02d}", f"2026-03-{d + 6:02d}")) for d in (2, 9, 16)]
    df = pd.concat(frames, ignore_index=True)
    assert df["primary"].any() and (~df["primary"]).any()
    # the primary suppression alone gives cells away (so the audit has something to find) ...
    assert disclosed(audit_secondary(published(df), reference_dir=STOCKHOLM_REFERENCE))
    out = apply_secondary_suppression(df, MIN_CELL, reference_dir=STOCKHOLM_REFERENCE)
    assert (out.loc[df["primary"].to_numpy(), "suppressed"] == "primär").all()
    assert (out["suppressed"] == "sekundär").any()
    # ... and after secondary suppression the independent audit finds nothing, also on the file
    assert audit_secondary(published(out), reference_dir=STOCKHOLM_REFERENCE) == []
    # and nothing was hidden in a system that had nothing to hide
    systems = ["indicator_id", "period_start"]
    untouched = df.groupby(systems)["primary"].transform("sum") == 0
    assert not (out.loc[untouched.to_numpy(), "suppressed"] == "sekundär").any()


def test_audit_reads_the_published_csv(tmp_path: Path, seeds: Path) -> None:
    from samverkan.disclosure import read_published

    df = table("orosanmalningar", "antal", [
        ("stad", "0180", "totalt", "totalt", 53, None),
        ("stad", "0180", "anmalare", "Polis", 3, None),
        ("stad", "0180", "anmalare", "Skola", 20, None),
        ("stad", "0180", "anmalare", "Vård", 30, None),
    ])
    for frame, expected in ((df, 1), (protect(df, seeds), 0)):
        path = tmp_path / "published.csv"
        published(frame).to_csv(path, index=False)
        text = read_published(path)
        assert len(audit_secondary(text, reference_dir=seeds)) == expected
    # the disclosure check's interface: masks over the rows, one per rule
    masks = secondary_rules(read_published(path), reference_dir=seeds)
    assert set(masks) == set(disclosure_audit.SECONDARY_RULES)
    assert not any(m.any() for m in masks.values())
    masks = secondary_rules(published(df), reference_dir=seeds)
    assert masks["secondary_disclosed"].tolist() == [False, True, False, False]


def test_problems_name_the_cell_and_never_the_number(seeds: Path) -> None:
    df = table("orosanmalningar", "antal", [
        ("stad", "0180", "totalt", "totalt", 9137, None),
        ("stad", "0180", "anmalare", "Polis", 3, None),
        ("stad", "0180", "anmalare", "Skola", 9134, None),
    ])
    problems = audit_secondary(published(df), reference_dir=seeds)
    assert len(problems) == 1
    text = str(problems[0])
    assert "orosanmalningar" in text and "Polis" in text and "2026-03-01" in text
    assert not re.search(r"\b(3|9134|9137)\b", text)


def test_a_small_cell_not_flagged_primary_is_suppressed_anyway(seeds: Path) -> None:
    df = table("orosanmalningar", "antal", [
        ("stad", "0180", "totalt", "totalt", 23, None),
        ("stad", "0180", "anmalare", "Polis", 3, None),
        ("stad", "0180", "anmalare", "Skola", 20, None),
    ])
    df.loc[1, ["primary", "suppressed"]] = (False, None)
    df.loc[1, ["numerator", "value"]] = (3, 3.0)
    out = apply_secondary_suppression(df, MIN_CELL, reference_dir=seeds)
    assert out["suppressed"].tolist() == [None, "primär", "sekundär"]
    assert out.loc[1, ["numerator", "value"]].isna().all()


def test_unknown_indicator_and_inconsistent_files_fail(seeds: Path) -> None:
    df = table("ny_indikator", "antal", [("stad", "0180", "totalt", "totalt", 3, None)])
    rules = {p.rule for p in audit_secondary(published(df), reference_dir=seeds)}
    assert rules == {"secondary_unknown_indicator"}
    with pytest.raises(ValueError, match="no relations declared"):
        apply_secondary_suppression(df, reference_dir=seeds)
    # published parts that add up to more than their published total: no consistent reading
    bad = table("orosanmalningar", "antal", [
        ("stad", "0180", "totalt", "totalt", 20, None),
        ("stad", "0180", "anmalare", "Polis", 3, None),
        ("stad", "0180", "anmalare", "Skola", 30, None),
    ])
    found = {p.rule for p in audit_secondary(published(bad), reference_dir=seeds)}
    assert found == {"secondary_inconsistent"}


def test_unknown_school_unit_relaxes_the_city_equalities(seeds: Path) -> None:
    """A pupil whose school unit is unknown counts in the city (totalt, årskurs) only: the
    city ≥ Σ school units then. The audit falls back to ≥ and still audits the rest."""
    rows = [
        ("stad", "0180", "totalt", "totalt", 10, 61),          # one pupil without school unit
        ("stadsdelsomrade", "A", "totalt", "totalt", 10, 60),
        ("sspf_omrade", "A1", "totalt", "totalt", 10, 60),
        ("skolenhet", "a11", "totalt", "totalt", 8, 57),
        ("skolenhet", "a12", "totalt", "totalt", 2, 3),
    ]
    df = table("hog_franvaro", "andel", rows)
    problems = audit_secondary(published(df), reference_dir=seeds)
    # a12 = A1 − a11 still holds (SSPF area = Σ its schools): disclosed, not inconsistent
    assert {p.rule for p in problems} == {"secondary_disclosed"}
    out = protect(df, seeds)
    assert audit_secondary(published(out), reference_dir=seeds) == []


# ---------------------------------------------------------------------------------------------
# The audit against brute force, and the two relation tables against each other
# ---------------------------------------------------------------------------------------------

def brute_force_disclosed(df: pd.DataFrame, bound: int) -> set[tuple[str, str, str, str]]:
    """The hidden cells of a city × anmälare × two SSPF areas antal table whose every integer
    completion consistent with the published cells gives the same value (enumeration)."""
    hidden = df[df["suppressed"].notna()]
    keys = [tuple(r) for r in hidden[["area_level", "area_code", "breakdown", "breakdown_value"]].to_numpy()]
    values = {tuple(r[:4]): r[4] for r in df[["area_level", "area_code", "breakdown", "breakdown_value",
                                              "numerator"]].to_numpy()}
    grids = np.meshgrid(*[np.arange(1, bound + 1, dtype=np.int16)] * len(keys), indexing="ij")
    cand = {k: g.ravel() for k, g in zip(keys, grids, strict=True)}

    def v(level, code, bd, bv):
        key = (level, code, bd, bv)
        if key in cand:
            return cand[key]
        return values.get(key, 0)

    ok = np.ones(len(next(iter(cand.values()))), dtype=bool)
    areas = (("stad", "0180"), ("stadsdelsomrade", "A"), ("sspf_omrade", "A1"), ("sspf_omrade", "A2"))
    for level, code in areas:           # totalt = Σ anmälare in every area
        ok &= v(level, code, "totalt", "totalt") == (v(level, code, "anmalare", "P")
                                                     + v(level, code, "anmalare", "S"))
    for bd, bv in (("totalt", "totalt"), ("anmalare", "P"), ("anmalare", "S")):
        ok &= v("stad", "0180", bd, bv) >= v("stadsdelsomrade", "A", bd, bv)
        ok &= v("stadsdelsomrade", "A", bd, bv) == (v("sspf_omrade", "A1", bd, bv)
                                                    + v("sspf_omrade", "A2", bd, bv))
    assert ok.any()
    return {k for k in keys if len(np.unique(cand[k][ok])) == 1}


def test_audit_agrees_with_brute_force(seeds: Path, district_events: str) -> None:
    """Random small tables (city ⊇ A = A1 + A2, by anmälare P/S), random extra cells hidden: the
    audit's findings are exactly the hidden cells whose value every integer completion shares."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(600):
        a = rng.integers(0, 10, size=(2, 2))         # SSPF area × anmälare counts (0: no row)
        extra = rng.integers(0, 3, size=2)           # reports in the city without district
        col = a.sum(axis=0)
        if not col.sum():
            continue
        rows = []
        for i, code in enumerate(("A1", "A2")):
            if a[i].sum():
                rows.append(("sspf_omrade", code, "totalt", "totalt", int(a[i].sum()), None))
            rows += [("sspf_omrade", code, "anmalare", c, int(a[i, j]), None)
                     for j, c in enumerate("PS") if a[i, j]]
        rows.append(("stadsdelsomrade", "A", "totalt", "totalt", int(col.sum()), None))
        rows += [("stadsdelsomrade", "A", "anmalare", c, int(col[j]), None)
                 for j, c in enumerate("PS") if col[j]]
        city = col + extra
        rows.append(("stad", "0180", "totalt", "totalt", int(city.sum()), None))
        rows += [("stad", "0180", "anmalare", c, int(city[j]), None) for j, c in enumerate("PS") if city[j]]
        df = table(district_events, "antal", rows)
        extra_hidden = rng.random(len(df)) < 0.2
        df.loc[extra_hidden & df["suppressed"].isna(), "suppressed"] = "sekundär"
        hidden = df["suppressed"].notna()
        df.loc[hidden, ["numerator", "value"]] = pd.NA
        if not 1 <= hidden.sum() <= 4:
            continue
        expected = brute_force_disclosed(df, bound=int(city.sum()))
        assert disclosed(audit_secondary(published(df), reference_dir=seeds)) == expected, rows
        checked += 1
        if checked == 40:
            break
    assert checked >= 25


def test_both_modules_declare_the_same_relations() -> None:
    names = {"eq": "=", "ge": ">=", "cover": "cover", "subset": "each"}
    fields = {"stad_sdo": "stad/top", "sdo_sspf": "sdo/sspf", "sdo_sspf_partial": "sdo/sspf:partial",
              "sspf_skolenhet": "sspf/skolenhet", "stad_skolenhet": "stad/skolenhet"}
    assert set(RELATIONS) == set(AUDIT_RELATIONS)
    for indicator, spec in RELATIONS.items():
        mine = {fields[f]: names[getattr(spec, f)] for f in fields if getattr(spec, f) is not None}
        mine |= {f"bd:{b}": names[k] for b, k in spec.breakdowns.items()}
        if spec.areas == "school":
            mine.pop("sdo/sspf:partial", None)
        assert mine == AUDIT_RELATIONS[indicator], indicator
        assert (spec.areas == "district") == (indicator in disclosure_audit.DISTRICT_INDICATORS)


def test_every_indicator_model_has_relations() -> None:
    folder = DBT_PROJECT_DIR / "models" / "marts" / "indicators"
    models = {p.stem.removeprefix("ind_") for p in folder.glob("ind_*.sql")}
    assert models == set(RELATIONS) == set(AUDIT_RELATIONS)


def test_the_audit_shares_no_code_with_the_suppressor() -> None:
    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not any("suppression" in name for name in imported(disclosure_audit))
    assert not any("disclosure" in name for name in imported(suppression))

