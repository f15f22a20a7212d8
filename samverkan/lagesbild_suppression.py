"""Secondary suppression of the weekly lägesbild (privacy.md, "Disclosure control").

The lägesbild publishes, for the city and each SSPF area, counts by category with their
``totalt`` and a trailing average; dbt applies primary suppression. A reader also holds the
published indicator table, so three things can give a hidden number away:

* inside the lägesbild: ``totalt`` against its categories, the city against the SSPF areas
  (for the week's count and, separately, for the total behind the trailing average);
* against the indicator table: ``nya_orosanmalningar`` and ``nya_unga_misstankta`` count the
  populations of ``orosanmalningar`` and ``unga_misstankta``, so their count in W *is* the
  weekly indicator cell of W (same area, same category) and their trailing total is the sum
  of the weekly cells of the trailing weeks; ``passerat_hog_franvaro`` counts a subset of the
  pupils in the ``hog_franvaro`` numerator of the same area and week;
* ``rod_status`` says on which side of its target a weekly cell lies.

So, given the final (secondary-suppressed) indicator table:

1. A count whose weekly indicator cell is suppressed there is suppressed too; a trailing
   average is suppressed when any of its weeks' cells is suppressed, or (for the two counts
   that equal indicator cells) when one of its weeks is not a published ``vecka`` period
   (the total would reveal that week's count). ``passerat_hog_franvaro`` is suppressed where
   the area's ``hog_franvaro`` numerator of that week is (its count bounds that numerator
   from below).
2. The relations inside the lägesbild (:data:`LAGESBILD_RELATIONS`) go through the same
   secondary suppression as the indicator table (:func:`samverkan.suppression.
   apply_secondary_suppression`: heuristic, then linear programmes), one system for the
   week's counts and one for the trailing totals of each measure.
3. ``rod_status`` is derived again from the final indicator table: an indicator whose weekly
   ``totalt`` cell of the area is published with status ``röd`` in W and not published as
   ``röd`` in W − 1. A suppressed cell has no status, so the list says nothing about it.

Suppressed by 1 or 2 (and not by the primary rule) is marked ``sekundär``. The gate audits the
result independently (:func:`samverkan.disclosure_audit.audit_lagesbild`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from samverkan.suppression import (
    COVER,
    EQ,
    GE,
    SECONDARY,
    SUBSET,
    AreaHierarchy,
    IndicatorRelations,
    apply_secondary_suppression,
)

log = logging.getLogger(__name__)

COUNT_MEASURES = ("nya_orosanmalningar", "nya_unga_misstankta", "passerat_hog_franvaro")
STATUS_MEASURE = "rod_status"
STATUS_MEASURE_NAME = "Indikatorer som blivit röda"
# The breakdown of the indicator table a measure's categories are.
BREAKDOWN = {"nya_orosanmalningar": "anmalare", "nya_unga_misstankta": "brottskategori"}
# The weekly indicator whose cells the measure's counts equal.
SAME_CELLS = {"nya_orosanmalningar": "orosanmalningar", "nya_unga_misstankta": "unga_misstankta"}
# The weekly indicator whose numerator holds the measure's units (a subset of them).
WITHIN_NUMERATOR = {"passerat_hog_franvaro": "hog_franvaro"}

# The lägesbild's areas are the city and the SSPF areas, the SSPF areas directly under the city.
# Reports: the city rows only (the case system places a report in the stadsdelsområde that
# handles it, never in an SSPF area; the relation to SSPF rows, had there been any, would be ≥),
# one anmälare each. Young suspects:
# a person counts in every area and brottskategori of the week (the city also counts persons
# without a district). Pupils past the threshold: one school area in W; declared = (a pupil
# whose school unit has no SSPF area makes it ≥, which the suppressor sees on the true values).
LAGESBILD_RELATIONS: dict[str, IndicatorRelations] = {
    "nya_orosanmalningar": IndicatorRelations(areas="district", stad_sdo=GE, sdo_sspf=EQ,
                                              breakdowns={"anmalare": EQ}),
    "nya_unga_misstankta": IndicatorRelations(areas="district", stad_sdo=SUBSET, sdo_sspf=COVER,
                                              breakdowns={"brottskategori": COVER}),
    "passerat_hog_franvaro": IndicatorRelations(areas="school", stad_sdo=EQ, sdo_sspf=EQ),
}
FLAT_AREAS = AreaHierarchy({}, {}, frozenset())
# period_type of the two systems of a measure: the week's counts and the trailing totals
WEEK, TRAILING = "vecka", "glidande"


def iso_day(value: object) -> str:
    """A date (date, Timestamp or ISO text) as YYYY-MM-DD; '' when missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return str(value).strip()[:10]


def _breakdown(measure: pd.Series, category: pd.Series) -> tuple[pd.Series, pd.Series]:
    is_total = category == "totalt"
    breakdown = measure.map(BREAKDOWN).where(~is_total, "totalt").fillna("totalt")
    return breakdown, category.where(~is_total, "totalt")


class _WeeklyCells:
    """The ``vecka`` cells of the final indicator table: which are suppressed, their status."""

    def __init__(self, indicators: pd.DataFrame) -> None:
        weekly = indicators[indicators["period_type"].astype("string") == "vecka"]
        start = weekly["period_start"].map(iso_day)
        keys = zip(weekly["indicator_id"], start, weekly["area_level"], weekly["area_code"].astype(str),
                   weekly["breakdown"], weekly["breakdown_value"].astype(str), strict=True)
        marker = weekly["suppressed"].astype("object")
        self.hidden = {k for k, m in zip(keys, marker, strict=True) if isinstance(m, str) and m.strip()}
        self.weeks = set(start)
        self.frame = weekly.assign(period_start=start)

    def any_hidden(self, keys: Iterable[tuple]) -> bool:
        return any(k in self.hidden for k in keys)


def _forced(rows: pd.DataFrame, cells: _WeeklyCells, trailing_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per count row: must its value / trailing average be suppressed because of the
    indicator table (step 1 of the module docstring)?"""
    breakdown, breakdown_value = _breakdown(rows["measure"], rows["category"])
    value = np.zeros(len(rows), dtype=bool)
    trailing = np.zeros(len(rows), dtype=bool)
    for i, (measure, start, level, code, bd, bv, true_value, true_total) in enumerate(zip(
            rows["measure"], rows["week_start"].map(iso_day), rows["area_level"],
            rows["area_code"].astype(str), breakdown, breakdown_value, rows["true_value"],
            rows["true_trailing_total"], strict=True)):
        w = dt.date.fromisoformat(start)
        weeks = [(w - dt.timedelta(weeks=k)).isoformat() for k in range(1, trailing_weeks + 1)]
        if measure in SAME_CELLS:
            key = (SAME_CELLS[measure], level, code, bd, bv)
            value[i] = true_value > 0 and (SAME_CELLS[measure], start, *key[1:]) in cells.hidden
            trailing[i] = true_total > 0 and (
                cells.any_hidden((key[0], week, *key[1:]) for week in weeks)
                or not set(weeks) <= cells.weeks)
        elif measure in WITHIN_NUMERATOR:
            key = (WITHIN_NUMERATOR[measure], level, code, "totalt", "totalt")
            value[i] = true_value > 0 and (key[0], start, *key[1:]) in cells.hidden
            trailing[i] = true_total > 0 and cells.any_hidden((key[0], week, *key[1:]) for week in weeks)
    return value, trailing


def _system_cells(rows: pd.DataFrame, period_type: str, true: str, primary: np.ndarray) -> pd.DataFrame:
    """The count rows as cells of one system (indicator_id = measure) for the suppressor; rows
    with a true count of 0 are left out (a missing cell is 0 to the suppressor)."""
    breakdown, breakdown_value = _breakdown(rows["measure"], rows["category"])
    cells = pd.DataFrame({
        "row": np.arange(len(rows)),
        "indicator_id": rows["measure"].to_numpy(),
        "period_type": period_type,
        "period_start": rows["week_start"].map(iso_day).to_numpy(),
        "area_level": rows["area_level"].to_numpy(),
        "area_code": rows["area_code"].astype(str).to_numpy(),
        "breakdown": breakdown.to_numpy(),
        "breakdown_value": breakdown_value.to_numpy(),
        "unit": "antal",
        "true_numerator": rows[true].astype("float64").to_numpy(),
        "true_denominator": np.nan,
        "primary": primary,
    })
    return cells[cells["true_numerator"] > 0]


def suppress_lagesbild(lagesbild: pd.DataFrame, indicators: pd.DataFrame, min_cell: int = 5, *,
                       trailing_weeks: int) -> pd.DataFrame:
    """The lägesbild with secondary suppression (see the module docstring).

    ``lagesbild`` is ``published_lagesbild`` (primary suppression done) with the true counts in
    ``true_value`` (the week's count) and ``true_trailing_total`` (the total behind the trailing
    average) on every count row; ``indicators`` is the final published indicator table. The
    result has the same columns with ``value`` / ``trailing_average`` nulled and ``suppressed``
    / ``trailing_average_suppressed`` set to ``sekundär`` where hidden in addition, and the
    ``rod_status`` rows derived from ``indicators``. The true_* columns are kept: drop them
    before publishing."""
    if trailing_weeks < 1:
        raise ValueError("trailing_weeks must be at least 1")
    frame = lagesbild.reset_index(drop=True)
    counts = frame[frame["measure"].isin(COUNT_MEASURES)].reset_index(drop=True)
    cells = _WeeklyCells(indicators)
    out = counts.copy()
    if not counts.empty:
        forced_value, forced_trailing = _forced(counts, cells, trailing_weeks)
        dbt_value = counts["suppressed"].notna().to_numpy()
        dbt_trailing = counts["trailing_average_suppressed"].notna().to_numpy()
        system = pd.concat([
            _system_cells(counts, WEEK, "true_value", dbt_value | forced_value),
            _system_cells(counts, TRAILING, "true_trailing_total", dbt_trailing | forced_trailing),
        ], ignore_index=True)
        result = apply_secondary_suppression(system, min_cell, hierarchy=FLAT_AREAS,
                                             relations=LAGESBILD_RELATIONS)
        hidden = result[result["suppressed"].notna()]
        for period_type, column, marker_column, dbt in (
                (WEEK, "value", "suppressed", dbt_value),
                (TRAILING, "trailing_average", "trailing_average_suppressed", dbt_trailing)):
            hide = np.zeros(len(counts), dtype=bool)
            hide[hidden.loc[hidden["period_type"] == period_type, "row"].to_numpy()] = True
            hide &= ~dbt
            out[marker_column] = out[marker_column].astype("object").where(~hide, SECONDARY)
            out[column] = out[column].mask(hide)
            log.info("lägesbild secondary suppression: %d %s(s) hidden besides %d primary",
                     int(hide.sum()), column, int(dbt.sum()))
    status = _turned_red(frame, cells)
    return pd.concat([out, status], ignore_index=True) if len(status) else out


def _turned_red(frame: pd.DataFrame, cells: _WeeklyCells) -> pd.DataFrame:
    """The ``rod_status`` rows from the final indicator table (step 3 of the module docstring)."""
    columns = list(frame.columns)
    if frame.empty:
        return frame.iloc[0:0]
    first = frame.iloc[0]
    week = iso_day(first["week_start"])
    previous = (dt.date.fromisoformat(week) - dt.timedelta(weeks=1)).isoformat()
    areas = frame.drop_duplicates(["area_level", "area_code"]).set_index(
        ["area_level", "area_code"])["area_name"]
    weekly = cells.frame[(cells.frame["breakdown"] == "totalt")
                         & cells.frame["area_level"].isin(["stad", "sspf_omrade"])]
    weekly = weekly.assign(area_code=weekly["area_code"].astype(str))
    key = ["indicator_id", "area_level", "area_code"]
    now = weekly[(weekly["period_start"] == week) & (weekly["status"] == "röd")]
    before = weekly[(weekly["period_start"] == previous) & (weekly["status"] == "röd")][key]
    turned = now.merge(before, on=key, how="left", indicator=True)
    turned = turned[turned["_merge"] == "left_only"]
    rows = []
    for r in turned.itertuples(index=False):
        area = (r.area_level, r.area_code)
        if area not in areas.index:
            continue
        row = {c: None for c in columns}
        row.update({c: first[c] for c in ("week_start", "week_end", "iso_week", "data_version")
                    if c in columns})
        row.update({"area_level": r.area_level, "area_code": r.area_code, "area_name": areas[area],
                    "measure": STATUS_MEASURE, "measure_name": STATUS_MEASURE_NAME,
                    "category": r.indicator_id, "category_name": r.indicator_name})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


__all__ = ["LAGESBILD_RELATIONS", "suppress_lagesbild"]
