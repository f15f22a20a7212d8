"""The table "Area levels per indicator" of INDICATOR_RULES.md, read as data (for the tests that
compare it with the models' meta, the ground truth and a publication)."""

from __future__ import annotations

import re
from pathlib import Path

RULES = Path(__file__).resolve().parent.parent / "dbt_project" / "INDICATOR_RULES.md"
LEVELS = ("stad", "stadsdelsomrade", "sspf_omrade", "skolenhet")


def documented_area_levels(rules: Path = RULES) -> dict[str, set[str]]:
    """indicator id -> the levels the table marks 'yes' (every row must say yes or no)."""
    text = rules.read_text(encoding="utf-8")
    section = text.split("### Area levels per indicator", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:5] == ["id", *LEVELS], header
    out: dict[str, set[str]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        indicator = re.fullmatch(r"`(\w+)`", cells[0])
        assert indicator, line
        marks = cells[1:5]
        assert set(marks) <= {"yes", "no"}, line
        assert cells[5] and cells[6], f"{indicator.group(1)}: say how it is placed and why"
        out[indicator.group(1)] = {lv for lv, mark in zip(LEVELS, marks, strict=True) if mark == "yes"}
    return out
