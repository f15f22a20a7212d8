"""`samverkan bench`'s parts that must be right for its figures to mean anything: the
hand-written SQL and the pandas pipeline give exactly the dbt models' cells (on the session's
demo world, no world of their own), and the process-tree sampler sees a grandchild's memory.
No timings are asserted: the bench is a benchmark, not a test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from samverkan.bench.baselines_sql import INDICATORS
from samverkan.bench.measure import run_measured

# a child that starts a grandchild which touches 300 MiB and holds it for a second
ALLOCATE = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "\"import time; b = b'x' * (300 * 2**20); time.sleep(1.5)\"], check=True)")


def test_sampler_counts_the_memory_of_the_whole_process_tree() -> None:
    m = run_measured("allocate", [sys.executable, "-c", ALLOCATE])
    assert m.returncode == 0 and m.ok
    assert m.peak_rss_bytes >= 250 * 2**20


def test_a_child_past_its_ceiling_is_stopped_and_reported() -> None:
    m = run_measured("allocate", [sys.executable, "-c", ALLOCATE], ceiling_bytes=100 * 2**20)
    assert m.exceeded_bytes is not None and m.exceeded_bytes > 100 * 2**20
    assert not m.ok and m.returncode != 0


@pytest.fixture(scope="module")
def built_world(demo_world):  # noqa: ANN001, ANN201 - the session fixture
    assert demo_world.returncode == 0, demo_world.stdout[-2000:] + demo_world.stderr[-3000:]
    return demo_world


def test_baselines_give_the_models_cells(built_world, monkeypatch, tmp_path: Path) -> None:
    """hog_franvaro, orosanmalningar and hog_franvaro_med_orosanmalan by hand-written SQL and
    by pandas over the raw tables: the same cells (every key, numerator and denominator) as
    marts.ind_* of the demo's build, and none of them empty."""
    import pyarrow.parquet as pq

    from samverkan import steps
    from samverkan.bench import baselines_pandas, baselines_sql
    from samverkan.bench.run import compare_cells, node_timings, upstream_models
    from samverkan.config import load_settings

    monkeypatch.setenv("SAMVERKAN_HOME", str(built_world.home))
    settings = load_settings()
    p = settings.paths
    params = steps.dbt_vars(settings, "test", steps.reference_date(settings))
    conn = baselines_sql.connect(str(p.restricted_db), str(p.reference), p)
    try:
        pipeline = baselines_pandas.Pipeline(conn, params)
        for indicator in INDICATORS:
            sql_cells = tmp_path / f"{indicator}.sql.parquet"
            pq.write_table(baselines_sql.compute(conn, indicator, params), sql_cells)
            pandas_cells = tmp_path / f"{indicator}.pandas.parquet"
            pipeline.compute(indicator).to_parquet(pandas_cells, index=False)
            for cells in (sql_cells, pandas_cells):
                check = compare_cells(p.analytics_db, f"ind_{indicator}", cells)
                assert check["model_cells"] > 0, indicator
                assert check["only_in_model"] == 0, (indicator, cells.name, check)
                assert check["only_in_baseline"] == 0, (indicator, cells.name, check)
    finally:
        conn.close()
    # the per-indicator dbt time sums the model's upstream nodes of the build's run_results
    upstream = upstream_models(p.dbt_target, "ind_hog_franvaro")
    assert {"model.samverkan.fct_pupil_periods", "model.samverkan.stg_ss12000__attendances"} <= upstream
    assert "model.samverkan.fct_reports_of_concern" not in upstream
    timed = {t["node"] for t in node_timings(p.dbt_target)}
    assert upstream <= timed
