"""The independent disclosure check on the final published indicator file.

This module re-derives the rules of ``privacy.md`` from the published rows alone. It does not
import or reuse the dbt suppression SQL: the gate must catch a bug in the code that
suppressed, so it shares no code with it.

Primary suppression (``min_cell`` default 5), for every row not marked suppressed:

* ``antal``: the count (``value``, = ``numerator``) is at least ``min_cell``;
* ``andel``: ``denominator`` ≥ ``min_cell``, ``numerator`` not in 1..min_cell−1 and
  ``denominator − numerator`` not in 1..min_cell−1, and ``value`` = numerator / denominator
  (otherwise the published value reveals a different cell than the one checked);

and every suppressed row is marked ``primär`` or ``sekundär`` and carries no numerator,
denominator, value or status (a status tells on which side of the target the hidden value
lies). A row suppressed although its numbers pass (the ``contributors`` rule: too few people
behind a share of minutes or records, which the published file cannot show) is accepted:
over-suppression never discloses.

The weekly lägesbild (:func:`check_lagesbild`) is checked the same way: every published
count is 0 or at least ``min_cell``, and so is the total behind every published trailing
average (average × trailing weeks); suppressed values and averages are not published, and
``rod_status`` rows publish no numbers. Given the indicator table it is published with, the
lägesbild's secondary audit runs too (:func:`samverkan.disclosure_audit.lagesbild_audit_rules`).

A problem names the cell (indicator, period, area, breakdown) and the rule it breaks, never
the small number itself. The module is organised as independent rule functions over one
normalised frame, so the secondary-suppression audit is one more function in
:func:`audits`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from samverkan.disclosure_audit import (
    LAGESBILD_AUDIT_RULES,
    SECONDARY_RULES,
    lagesbild_audit_rules,
    secondary_rules,
)

PUBLISHED_COLUMNS = (
    "indicator_id", "indicator_name", "period_type", "period_start", "period_end", "area_level",
    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator", "value",
    "unit", "suppressed", "target", "status", "is_running", "coverage", "data_version",
)
CELL_COLUMNS = ("indicator_id", "period_type", "period_start", "area_level", "area_code",
                "breakdown", "breakdown_value")
REQUIRED_COLUMNS = (*CELL_COLUMNS, "numerator", "denominator", "value", "unit", "suppressed")
SUPPRESSION_MARKERS = ("primär", "sekundär")
UNITS = ("andel", "antal")
RATIO_TOLERANCE = 1e-9

# Rule codes and what they mean (the text shown in a problem).
RULES: dict[str, str] = {
    "missing_column": "a column the check needs is missing from the file",
    "unreadable_number": "numerator, denominator or value is not a number",
    "unknown_unit": "unit is neither 'andel' nor 'antal': the cell cannot be assessed",
    "unknown_suppression_marker": "suppressed is neither empty, 'primär' nor 'sekundär'",
    "suppressed_row_has_numbers": "a suppressed row publishes a numerator, denominator or value",
    "suppressed_row_has_status": "a suppressed row publishes a status (it tells the side of the target)",
    "antal_without_count": "an unsuppressed count publishes no value",
    "antal_below_min_cell": "an unsuppressed count is below min_cell",
    "antal_numerator_differs": "an unsuppressed count publishes a numerator different from its value",
    "andel_incomplete": "an unsuppressed share lacks its numerator or denominator",
    "andel_denominator_below_min_cell": "an unsuppressed share has a denominator below min_cell",
    "andel_numerator_small": "an unsuppressed share has a numerator between 1 and min_cell - 1",
    "andel_complement_small": "an unsuppressed share has denominator - numerator between 1 and min_cell - 1",
    "andel_value_not_ratio": "an unsuppressed share publishes a value other than numerator / denominator",
}


@dataclass(frozen=True)
class CellProblem:
    """One cell that breaks a rule; the description holds no data value of the cell."""

    rule: str
    indicator_id: str
    period_type: str
    period_start: str
    area_level: str
    area_code: str
    breakdown: str
    breakdown_value: str

    @property
    def description(self) -> str:
        return (f"{self.indicator_id} {self.period_type} {self.period_start}, "
                f"{self.area_level} {self.area_code}, {self.breakdown}={self.breakdown_value}: "
                f"{RULES.get(self.rule, self.rule)} [{self.rule}]")

    def __str__(self) -> str:
        return self.description


@dataclass
class DisclosureReport:
    """Outcome of the disclosure check on one published table."""

    ok: bool
    problems: list[str]
    cells: list[CellProblem | LagesbildProblem] = field(default_factory=list)
    rows_checked: int = 0
    min_cell: int = 5
    checks: tuple[str, ...] = ()

    def counts_by_rule(self) -> dict[str, int]:
        counts = Counter(c.rule for c in self.cells)
        for p in self.problems:
            for rule in ("missing_column", "no_indicator_table"):
                if p.startswith(rule + ":"):
                    counts[rule] += 1
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "min_cell": self.min_cell,
            "rows_checked": self.rows_checked,
            "checks": list(self.checks),
            "problems_by_rule": self.counts_by_rule(),
            "problems": self.problems,
        }


def read_published(df_or_path: pd.DataFrame | Path | str) -> pd.DataFrame:
    """The published table as a frame; CSV is read as text so nothing is guessed."""
    if isinstance(df_or_path, pd.DataFrame):
        return df_or_path.copy()
    path = Path(df_or_path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    if suffix == ".csv":
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={c: "string" for c in PUBLISHED_COLUMNS},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
        return table.to_pandas()
    raise ValueError(f"{path.name}: expected a .csv or .parquet file")


@dataclass
class _Frame:
    """Normalised columns shared by every rule function."""

    df: pd.DataFrame
    numerator: pd.Series
    denominator: pd.Series
    value: pd.Series
    unit: pd.Series
    suppressed: pd.Series
    status: pd.Series
    bad_number: pd.Series


def _text(series: pd.Series) -> pd.Series:
    """Trimmed text with blanks as missing (CSV writes an empty field for null)."""
    s = series.astype("string").str.strip()
    return s.mask(s == "")


def _number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as float64 (missing = NaN), and a mask of non-blank fields that are not numbers."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), pd.Series(False, index=series.index)
    text = _text(series)
    nums = pd.to_numeric(text, errors="coerce").astype("float64")
    return nums, nums.isna() & text.notna()


def _normalise(df: pd.DataFrame) -> _Frame:
    numerator, bad_n = _number(df["numerator"])
    denominator, bad_d = _number(df["denominator"])
    value, bad_v = _number(df["value"])
    return _Frame(
        df=df,
        numerator=numerator,
        denominator=denominator,
        value=value,
        unit=_text(df["unit"]),
        suppressed=_text(df["suppressed"]),
        status=_text(df["status"]) if "status" in df.columns else pd.Series(pd.NA, index=df.index,
                                                                            dtype="string"),
        bad_number=(bad_n | bad_d | bad_v),
    )


def _small(x: pd.Series, min_cell: int) -> pd.Series:
    return (x >= 1) & (x <= min_cell - 1)


RuleFn = Callable[[_Frame, int], dict[str, pd.Series]]


def primary_rules(f: _Frame, min_cell: int) -> dict[str, pd.Series]:
    """Masks (row → breaks the rule) of the primary-suppression rules."""
    n, d, v = f.numerator, f.denominator, f.value
    marked = f.suppressed.notna()
    open_ = ~marked
    antal = open_ & (f.unit == "antal")
    andel = open_ & (f.unit == "andel")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = n / d
    return {
        "unreadable_number": f.bad_number,
        "unknown_unit": ~f.unit.isin(UNITS),
        "unknown_suppression_marker": marked & ~f.suppressed.isin(SUPPRESSION_MARKERS),
        "suppressed_row_has_numbers": marked & (n.notna() | d.notna() | v.notna()),
        "suppressed_row_has_status": marked & f.status.notna(),
        "antal_without_count": antal & v.isna(),
        "antal_below_min_cell": antal & ((v < min_cell) | (n.notna() & (n < min_cell))),
        "antal_numerator_differs": antal & n.notna() & v.notna() & (n != v),
        "andel_incomplete": andel & (n.isna() | d.isna()),
        "andel_denominator_below_min_cell": andel & (d < min_cell),
        "andel_numerator_small": andel & _small(n, min_cell),
        "andel_complement_small": andel & _small(d - n, min_cell),
        "andel_value_not_ratio": andel & n.notna() & d.notna() & (d > 0)
        & (v.isna() | ((v - ratio).abs() > RATIO_TOLERANCE)),
    }


# Audits run by check_disclosure, in order. The secondary-suppression audit joins here.
def audits(reference_dir: Path | str) -> dict[str, RuleFn]:
    """The disclosure check's audits by name, the secondary one over the areas of the
    reference files in ``reference_dir``."""
    return {"primary_suppression": primary_rules,
            "secondary_suppression": functools.partial(secondary_rules, reference_dir=reference_dir)}
RULES.update(SECONDARY_RULES)


def _cell_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def _run(df_or_path: pd.DataFrame | Path | str, min_cell: int, audits: dict[str, RuleFn]) -> DisclosureReport:
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    df = read_published(df_or_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        return DisclosureReport(False, [f"missing_column: {c}" for c in missing], rows_checked=len(df),
                                min_cell=min_cell, checks=tuple(audits))
    df = df.reset_index(drop=True)
    frame = _normalise(df)
    keys = df[list(CELL_COLUMNS)].astype("object")
    cells: list[CellProblem] = []
    for audit in audits.values():
        for rule, mask in audit(frame, min_cell).items():
            hits = np.flatnonzero(mask.astype("boolean").fillna(False).to_numpy(dtype=bool))
            for i in hits:
                row = keys.iloc[i]
                cells.append(CellProblem(rule, *(_cell_value(row[c]) for c in CELL_COLUMNS)))
    return DisclosureReport(
        ok=not cells,
        problems=[c.description for c in cells],
        cells=cells,
        rows_checked=len(df),
        min_cell=min_cell,
        checks=tuple(audits),
    )


def check_primary_suppression(df_or_path: pd.DataFrame | Path | str, min_cell: int = 5) -> DisclosureReport:
    """Re-check primary suppression on the published table (frame, CSV or Parquet file)."""
    return _run(df_or_path, min_cell, {"primary_suppression": primary_rules})


def check_disclosure(df_or_path: pd.DataFrame | Path | str, min_cell: int = 5, *,
                     reference_dir: Path | str) -> DisclosureReport:
    """Every disclosure audit: primary suppression, and the independent linear-programming
    audit of secondary suppression (samverkan/disclosure_audit.py) over the areas of the
    municipality's reference files in ``reference_dir``."""
    return _run(df_or_path, min_cell, audits(reference_dir))


# --------------------------------------------------------------------------------------------
# The weekly lägesbild
# --------------------------------------------------------------------------------------------

LAGESBILD_COLUMNS = (
    "week_start", "week_end", "iso_week", "area_level", "area_code", "area_name", "measure",
    "measure_name", "category", "category_name", "value", "trailing_average", "suppressed",
    "trailing_average_suppressed", "data_version",
)
LAGESBILD_CELL_COLUMNS = ("measure", "week_start", "area_level", "area_code", "category")
LAGESBILD_REQUIRED_COLUMNS = (*LAGESBILD_CELL_COLUMNS, "value", "trailing_average", "suppressed",
                              "trailing_average_suppressed")
LAGESBILD_STATUS_MEASURE = "rod_status"
LAGESBILD_COUNT_MEASURES = ("nya_orosanmalningar", "nya_unga_misstankta", "passerat_hog_franvaro")
DEFAULT_TRAILING_WEEKS = 4

LAGESBILD_RULES: dict[str, str] = {
    "missing_column": "a column the check needs is missing from the file",
    "unreadable_number": "value or trailing_average is not a number",
    "unknown_measure": "measure is not one of the lägesbild's measures: the row cannot be assessed",
    "unknown_suppression_marker": "suppressed or trailing_average_suppressed is neither empty, 'primär' "
                                  "nor 'sekundär'",
    "suppressed_value_published": "a suppressed count publishes its value",
    "suppressed_average_published": "a suppressed trailing average is published",
    "count_without_value": "an unsuppressed count publishes no value",
    "count_small": "an unsuppressed count is between 1 and min_cell - 1",
    "count_not_whole": "a count is not a whole number of at least 0",
    "average_without_value": "an unsuppressed trailing average is not published",
    "average_total_small": "an unsuppressed trailing average stands for a total between 1 and min_cell - 1",
    "average_total_not_whole": "a trailing average times the trailing weeks is not a whole number >= 0",
    "status_row_has_numbers": "a rod_status row publishes a value or an average",
    "no_indicator_table": "the indicator table the lägesbild is published with cannot be read: "
                          "the secondary audit cannot run",
    **LAGESBILD_AUDIT_RULES,
}


@dataclass(frozen=True)
class LagesbildProblem:
    """One lägesbild row that breaks a rule; the description holds no data value of the row."""

    rule: str
    measure: str
    week_start: str
    area_level: str
    area_code: str
    category: str

    @property
    def description(self) -> str:
        return (f"{self.measure} vecka {self.week_start}, {self.area_level} {self.area_code}, "
                f"kategori={self.category}: {LAGESBILD_RULES.get(self.rule, self.rule)} [{self.rule}]")

    def __str__(self) -> str:
        return self.description


def read_lagesbild(df_or_path: pd.DataFrame | Path | str) -> pd.DataFrame:
    """The published lägesbild as a frame; CSV is read as text so nothing is guessed."""
    if isinstance(df_or_path, pd.DataFrame):
        return df_or_path.copy()
    path = Path(df_or_path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    if suffix == ".csv":
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={c: "string" for c in LAGESBILD_COLUMNS},
                strings_can_be_null=True,
                null_values=[""],
            ),
        ).to_pandas()
    raise ValueError(f"{path.name}: expected a .csv or .parquet file")


def lagesbild_rules(df: pd.DataFrame, min_cell: int, trailing_weeks: int) -> dict[str, pd.Series]:
    """Masks (row → breaks the rule) of the lägesbild's primary-suppression rules."""
    value, bad_value = _number(df["value"])
    average, bad_average = _number(df["trailing_average"])
    measure = _text(df["measure"])
    value_marker = _text(df["suppressed"])
    average_marker = _text(df["trailing_average_suppressed"])
    status_row = measure == LAGESBILD_STATUS_MEASURE
    count_row = measure.isin(LAGESBILD_COUNT_MEASURES)
    open_value = count_row & value_marker.isna()
    open_average = count_row & average_marker.isna()
    total = average * trailing_weeks
    whole_total = (total - total.round()).abs() <= 1e-6
    return {
        "unreadable_number": bad_value | bad_average,
        "unknown_measure": ~(count_row | status_row),
        "unknown_suppression_marker": (value_marker.notna() & ~value_marker.isin(SUPPRESSION_MARKERS))
        | (average_marker.notna() & ~average_marker.isin(SUPPRESSION_MARKERS)),
        "suppressed_value_published": value_marker.notna() & value.notna(),
        "suppressed_average_published": average_marker.notna() & average.notna(),
        "count_without_value": open_value & value.isna(),
        "count_small": open_value & _small(value, min_cell),
        "count_not_whole": value.notna() & ((value < 0) | (value != value.round())),
        "average_without_value": open_average & average.isna(),
        "average_total_small": open_average & _small(total.round(), min_cell),
        "average_total_not_whole": average.notna() & ((average < 0) | ~whole_total),
        "status_row_has_numbers": status_row & (value.notna() | average.notna()),
    }


def check_lagesbild(df_or_path: pd.DataFrame | Path | str, min_cell: int = 5,
                    trailing_weeks: int = DEFAULT_TRAILING_WEEKS, *,
                    indicators: pd.DataFrame | Path | str | None = None) -> DisclosureReport:
    """Re-check the published lägesbild (frame, CSV or Parquet file).

    Primary suppression: no published count, and no total behind a published trailing
    average, is in 1..min_cell − 1 (``trailing_weeks`` is the number of weeks the average is
    taken over). With ``indicators`` (the indicator table published with the lägesbild, or the
    one it is built on) also the secondary audit (:func:`samverkan.disclosure_audit.
    lagesbild_audit_rules`): nothing hidden there or in the lägesbild can be recovered."""
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    if trailing_weeks < 1:
        raise ValueError("trailing_weeks must be at least 1")
    df = read_lagesbild(df_or_path)
    missing = [c for c in LAGESBILD_REQUIRED_COLUMNS if c not in df.columns]
    checks = ("lagesbild_primary_suppression",)
    if indicators is not None:
        checks += ("lagesbild_secondary_audit",)
    if missing:
        return DisclosureReport(False, [f"missing_column: {c}" for c in missing], rows_checked=len(df),
                                min_cell=min_cell, checks=checks)
    df = df.reset_index(drop=True)
    keys = df[list(LAGESBILD_CELL_COLUMNS)].astype("object")
    rules = lagesbild_rules(df, min_cell, trailing_weeks)
    general: list[str] = []
    if indicators is not None:
        try:
            table = read_published(indicators)
        except (OSError, ValueError) as exc:
            table = None
            general.append(f"no_indicator_table: {LAGESBILD_RULES['no_indicator_table']} "
                           f"({type(exc).__name__})")
        if table is not None:
            rules.update(lagesbild_audit_rules(df, table, trailing_weeks))
    problems: list[LagesbildProblem] = []
    for rule, mask in rules.items():
        for i in np.flatnonzero(mask.astype("boolean").fillna(False).to_numpy(dtype=bool)):
            row = keys.iloc[i]
            problems.append(LagesbildProblem(rule, *(_cell_value(row[c]) for c in LAGESBILD_CELL_COLUMNS)))
    return DisclosureReport(
        ok=not problems and not general,
        problems=general + [p.description for p in problems],
        cells=list(problems),
        rows_checked=len(df),
        min_cell=min_cell,
        checks=checks,
    )
