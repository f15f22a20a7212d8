"""Each indicator is published only at the area levels its source can place it: the table of
INDICATOR_RULES.md ("Area levels per indicator"), the indicator models (their ``areas`` and
``meta.area_levels``, which the report reads) and both disclosure modules agree. The demo world's
publication and ground truth are compared with the same table in test_end_to_end.py."""

from __future__ import annotations

import re

import pytest
import yaml
from area_levels import LEVELS, documented_area_levels

from samverkan.config import DBT_PROJECT_DIR
from samverkan.disclosure_audit import AUDIT_RELATIONS
from samverkan.suppression import RELATIONS

INDICATORS = DBT_PROJECT_DIR / "models" / "marts" / "indicators"
CASE_SYSTEM = {"orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
               "utredning_4_manader"}


@pytest.fixture(scope="module")
def documented() -> dict[str, set[str]]:
    return documented_area_levels()


def _macro_levels() -> dict[str, list[str]]:
    """The ``areas`` kinds of macros/indicators.sql (indicator_area_levels) and their levels."""
    macro = (DBT_PROJECT_DIR / "macros" / "indicators.sql").read_text(encoding="utf-8")
    body = macro.split("macro indicator_area_levels", 1)[1].split("endmacro", 1)[0]
    return {kind: re.findall(r"'(\w+)'", levels)
            for kind, levels in re.findall(r"'(\w+)': \[([^\]]*)\]", body)}


def test_the_table_covers_every_indicator_model(documented) -> None:
    models = {p.stem.removeprefix("ind_") for p in INDICATORS.glob("ind_*.sql")}
    assert len(models) == 18 and set(documented) == models
    assert all(documented[i] >= {"stad"} for i in documented)


def test_models_publish_the_documented_levels(documented) -> None:
    kinds = _macro_levels()
    assert kinds["handling"] == ["stad", "stadsdelsomrade"]
    for indicator, levels in documented.items():
        sql = (INDICATORS / f"ind_{indicator}.sql").read_text(encoding="utf-8")
        kind = re.search(r"areas='(\w+)'", sql).group(1)
        assert set(kinds[kind]) == levels, (indicator, kind)
        meta = yaml.safe_load((INDICATORS / f"ind_{indicator}.yml").read_text(encoding="utf-8"))
        model = next(m for m in meta["models"] if m["name"] == f"ind_{indicator}")
        assert model["config"]["meta"]["area_levels"] == [lv for lv in LEVELS if lv in levels], indicator


def test_case_system_indicators_have_no_sspf_level(documented) -> None:
    """The case system names the stadsdelsområde that handles a matter, nothing finer: its
    indicators have no SSPF cells, so neither disclosure module relates SSPF cells to them."""
    for indicator in CASE_SYSTEM:
        assert documented[indicator] == {"stad", "stadsdelsomrade"}, indicator
        assert RELATIONS[indicator].areas == "handling" and RELATIONS[indicator].sdo_sspf is None
        assert not any(name.startswith("sdo/sspf") for name in AUDIT_RELATIONS[indicator]), indicator
    sspf = {i for i, levels in documented.items() if "sspf_omrade" in levels}
    assert sspf == set(documented) - CASE_SYSTEM
    assert all(RELATIONS[i].sdo_sspf is not None for i in sspf)
