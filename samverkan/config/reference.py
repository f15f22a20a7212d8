"""The municipality's reference data: CSV files in ``<SAMVERKAN_HOME>/reference/``.

| file | columns | what it says |
|---|---|---|
| ``ref_stadsdelsomraden.csv`` | stadsdelsomrade_code, stadsdelsomrade_name | the stadsdelsområden |
| ``ref_sspf_omraden.csv`` | sspf_omrade_code, sspf_omrade_name, stadsdelsomrade_code | SSPF areas |
| ``ref_stadsdelar.csv`` | stadsdel_name, stadsdelsomrade_code, sspf_omrade_code | the district names the case system and the police write → area |
| ``ref_skolenheter.csv`` | school_unit_code, [school_unit_name, huvudman,] sspf_omrade_code | school unit → SSPF area |
| ``ref_indicator_targets.csv`` | indicator_id, area_level, area_code, target, direction, tolerance | targets |
| ``ref_brottskoder.csv`` (optional) | brottskod, brottsbenamning, brottskategori | offence code → category; the product's default otherwise |
"""  # noqa: E501 - a table, one row a line

from __future__ import annotations

from pathlib import Path

REFERENCE_DIR_NAME = "reference"
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"


def reference_file(reference_dir: Path, table: str) -> Path:
    """The CSV of ``table`` (e.g. ``ref_brottskoder``): the municipality's file, or the
    product's default where the product ships one and the municipality has none."""
    own = Path(reference_dir) / f"{table}.csv"
    if own.exists():
        return own
    default = DEFAULTS_DIR / f"{table}.csv"
    return default if default.exists() else own
