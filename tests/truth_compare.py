"""Cell-by-cell comparison of a publication with the simulator's ground truth.

Both sides are read as the published CSV is (``pd.read_csv`` with text area codes and
breakdown values). The truth is ``data/simulator/ground_truth.csv``: the published columns
without ``data_version``, primary suppression applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
        "breakdown_value"]
TEXT_COLUMNS = ["indicator_name", "period_end", "area_name", "unit", "status", "is_running",
                "coverage"]
NUMBER_COLUMNS = ["numerator", "denominator", "value", "target"]
DTYPES = {"area_code": str, "breakdown_value": str}


def read_cells(path: Path | str) -> pd.DataFrame:
    cells = pd.read_csv(path, dtype=DTYPES, keep_default_na=False,
                        na_values={c: [""] for c in (*NUMBER_COLUMNS, "suppressed", "status")})
    if "is_running" in cells:  # 'true' (DuckDB) and 'True' (pandas) alike
        cells["is_running"] = cells["is_running"].astype(str).str.lower()
    return cells


def differences(published: pd.DataFrame, truth: pd.DataFrame, limit: int = 20) -> list[str]:
    """What differs, as readable lines (empty: the publication equals the truth).

    - the same cells exist on both sides;
    - a cell the truth suppresses (``primär``) is suppressed in the publication; a cell the
      publication suppresses and the truth does not may only be a secondary suppression
      (``sekundär``: the truth does not model which neighbour a secondary suppression picks);
    - every cell shown on both sides has the same numerator, denominator, value, target,
      names, unit, period end and status; every cell on both sides the same running flag
      and coverage mark.
    """
    problems: list[str] = []
    merged = truth.merge(published, on=KEYS, how="outer", suffixes=("_truth", "_pub"),
                         indicator=True)
    one_side = merged[merged["_merge"] != "both"]
    if not one_side.empty:
        counts = one_side.groupby(["indicator_id", "_merge"], observed=True).size()
        problems.append(f"{len(one_side)} cells only on one side: {counts.to_dict()}\n"
                        + one_side[KEYS + ["_merge"]].head(limit).to_string())
    both = merged[merged["_merge"] == "both"]
    truth_hidden = both["suppressed_truth"].notna()
    pub_hidden = both["suppressed_pub"].notna()
    wrong = both[truth_hidden & ~pub_hidden]
    if not wrong.empty:
        problems.append(f"{len(wrong)} cells suppressed by the truth are published:\n"
                        + wrong[KEYS].head(limit).to_string())
    extra = both[~truth_hidden & pub_hidden & (both["suppressed_pub"] != "sekundär")]
    if not extra.empty:
        problems.append(f"{len(extra)} cells suppressed although the truth shows them:\n"
                        + extra[KEYS + ["suppressed_pub"]].head(limit).to_string())
    marker = both[truth_hidden & pub_hidden
                  & (both["suppressed_truth"] != both["suppressed_pub"])
                  & (both["suppressed_pub"] != "sekundär")]
    if not marker.empty:
        problems.append(f"{len(marker)} cells with another suppression marker:\n"
                        + marker[KEYS].head(limit).to_string())
    shown = both[~truth_hidden & ~pub_hidden]
    for column in NUMBER_COLUMNS:
        a = pd.to_numeric(shown[f"{column}_truth"]).to_numpy(float)
        b = pd.to_numeric(shown[f"{column}_pub"]).to_numpy(float)
        same = np.isclose(a, b, rtol=0, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            bad = shown.loc[~same, KEYS + [f"{column}_truth", f"{column}_pub"]]
            by_indicator = bad.groupby("indicator_id").size().to_dict()
            problems.append(f"{column} differs in {len(bad)} cells {by_indicator}:\n"
                            + bad.head(limit).to_string())
    for column in TEXT_COLUMNS:
        a = both[f"{column}_truth"].fillna("").astype(str)
        b = both[f"{column}_pub"].fillna("").astype(str)
        if column == "status":  # a hidden cell has no status on either side
            a, b = a[~truth_hidden & ~pub_hidden], b[~truth_hidden & ~pub_hidden]
        bad = both.loc[a.index[a != b], KEYS + [f"{column}_truth", f"{column}_pub"]]
        if not bad.empty:
            problems.append(f"{column} differs in {len(bad)} cells:\n" + bad.head(limit).to_string())
    return problems


def assert_equals_truth(published: pd.DataFrame, truth: pd.DataFrame, *,
                        min_shown: int = 50) -> int:
    """Assert the publication equals the truth; returns the number of cells shown."""
    problems = differences(published, truth)
    assert not problems, "\n\n".join(problems)
    shown = int(truth["suppressed"].isna().sum())
    assert shown >= min_shown, f"only {shown} cells shown: the comparison proves little"
    return shown
