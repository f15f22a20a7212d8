"""`samverkan bench`'s baselines on the session's demo world: the hand-written DuckDB SQL and
the pandas pipeline give exactly the cells of the dbt models they stand beside. Collected by
test_end_to_end.py (``from e2e_bench import *``), so that it runs on the test worker that built
the demo world, before the tests that change it. No timings are asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from samverkan.bench.baselines_sql import INDICATORS


@pytest.fixture(scope="module")
def bench_world(demo_world):  # noqa: ANN001, ANN201 - the session fixture
    assert demo_world.returncode == 0, demo_world.stdout[-2000:] + demo_world.stderr[-3000:]
    return demo_world


def test_bench_baselines_give_the_models_cells(bench_world, monkeypatch, tmp_path: Path) -> None:
    """hog_franvaro, orosanmalningar and hog_franvaro_med_orosanmalan by hand-written SQL and
    by pandas over the raw tables: the same cells (every key, numerator and denominator) as
    marts.ind_* of the demo's build, and none of them empty."""
    import pyarrow.parquet as pq

    from samverkan import steps
    from samverkan.bench import baselines_pandas, baselines_sql
    from samverkan.bench.run import compare_cells, node_timings, upstream_models
    from samverkan.config import load_settings

    monkeypatch.setenv("SAMVERKAN_HOME", str(bench_world.home))
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
