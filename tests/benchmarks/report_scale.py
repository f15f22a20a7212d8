"""Benchmark: the management report and the workbook at Stockholm scale (about 100 000
published rows: 18 indicators, 100 school units, 11 stadsdelsområden). Prints figures.

    .venv/bin/python tests/benchmarks/report_scale.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import report_data as rd  # noqa: E402

from samverkan.report import render_report  # noqa: E402
from samverkan.workbook import write_indicator_workbook, write_swedish_csv  # noqa: E402

TARGET_HTML_BYTES = 3 * 1024 * 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        indicators, lagesbild = rd.write_tables(tmp_path, specs=rd.ALL_SPECS, n_schools=100,
                                                districts=rd.MANY_DISTRICTS)
        rows = pq.read_metadata(indicators).num_rows
        started = time.monotonic()
        html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                             reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest={},
                             targets=rd.TARGETS)
        report_s = time.monotonic() - started
        size = len(html.encode("utf-8"))
        started = time.monotonic()
        path = write_indicator_workbook(indicators, rd.CATALOGUE, tmp_path / "indicators.xlsx",
                                        reference_date=rd.REFERENCE_DATE, version=rd.VERSION,
                                        lagesbild_parquet=lagesbild, targets=rd.TARGETS)
        workbook_s = time.monotonic() - started
        started = time.monotonic()
        swedish = write_swedish_csv(indicators, tmp_path / "indikatorer.csv",
                                    reference_date=rd.REFERENCE_DATE)
        csv_s = time.monotonic() - started
        print(f"published rows          {rows:>10,}")
        print(f"report.html             {size / 1e6:>10.2f} MB  (target < {TARGET_HTML_BYTES / 1e6:.1f} MB)"
              f"  rendered in {report_s:.1f} s")
        print(f"indicators.xlsx         {path.stat().st_size / 1e6:>10.2f} MB  written in {workbook_s:.1f} s")
        print(f"indikatorer.csv         {swedish.stat().st_size / 1e6:>10.2f} MB  written in {csv_s:.1f} s")


if __name__ == "__main__":
    main()
