"""What ``samverkan bench`` runs in its measured child processes (``python -m
samverkan.bench.child KIND ...``), each on the data directory in ``SAMVERKAN_HOME``. Each prints
one JSON line of counts and times (never a data value) as its last line."""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any


def _settings() -> Any:
    from samverkan.config import load_settings

    return load_settings()


def supports_full_refresh() -> bool:
    """Does this checkout's transform step take ``full_refresh`` (incremental models)?"""
    from samverkan import steps

    return "full_refresh" in inspect.signature(steps.transform).parameters


def transform(reference_date: str, full_refresh: bool) -> dict[str, Any]:
    """The pipeline's transform step (dbt build, models and data tests), as a run does it."""
    import datetime as dt

    from samverkan import steps

    settings = _settings()
    ref = dt.date.fromisoformat(reference_date)
    kwargs = {"full_refresh": True} if full_refresh and supports_full_refresh() else {}
    outcome = steps.transform(settings, "bench", ref, **kwargs)
    return {"success": outcome.success, "dbt_seconds": round(outcome.elapsed_seconds, 2),
            "counts": outcome.counts, "full_refresh": bool(kwargs),
            "failures": [f"{f.resource_type} {f.node}: {f.status}" for f in outcome.failures][:10]}


def dbt_models(reference_date: str, select: str) -> dict[str, Any]:
    """``dbt run --select SELECT`` (models only, no tests) with the run's parameters."""
    import datetime as dt

    from samverkan import steps
    from samverkan.transform import run_dbt

    settings = _settings()
    ref = dt.date.fromisoformat(reference_date)
    outcome = run_dbt(["run", "--select", select], settings.paths,
                      steps.dbt_vars(settings, "bench", ref),
                      target_path=settings.paths.home / "bench-target")
    return {"success": outcome.success, "dbt_seconds": round(outcome.elapsed_seconds, 2),
            "counts": outcome.counts}


def parse(reference_date: str) -> dict[str, Any]:
    """``dbt parse`` with the run's vars: what the platform's previous night left in its target
    directory (dbt's partial-parse state for this data directory's profile). A copied world
    sits at another path, which changes the profile, so without this the measured night
    would parse the whole project again."""
    import datetime as dt

    from samverkan import steps
    from samverkan.transform import run_dbt

    settings = _settings()
    outcome = run_dbt(["parse"], settings.paths,
                      steps.dbt_vars(settings, "bench", dt.date.fromisoformat(reference_date)))
    return {"success": outcome.success, "dbt_seconds": round(outcome.elapsed_seconds, 2)}


def baseline(kind: str, indicator: str, reference_date: str, out: Path) -> dict[str, Any]:
    """One indicator by the hand-written SQL (``kind`` 'sql') or the pandas pipeline
    ('pandas') over the raw tables; the cells go to ``out`` (Parquet)."""
    import datetime as dt

    from samverkan import steps
    from samverkan.bench import baselines_sql

    settings = _settings()
    params = steps.dbt_vars(settings, "bench", dt.date.fromisoformat(reference_date))
    p = settings.paths
    started = time.monotonic()
    conn = baselines_sql.connect(str(p.restricted_db), str(p.reference), p)
    try:
        connected = time.monotonic()
        if kind == "sql":
            cells = baselines_sql.compute(conn, indicator, params)
            query_seconds = time.monotonic() - connected
            import pyarrow.parquet as pq

            pq.write_table(cells, out)
            rows = cells.num_rows
        else:
            from samverkan.bench import baselines_pandas

            frame = baselines_pandas.compute(conn, indicator, params)
            query_seconds = time.monotonic() - connected
            frame.to_parquet(out, index=False)
            rows = len(frame)
    finally:
        conn.close()
    # query_seconds: from the raw tables to the cells in memory (for pandas that includes
    # reading the raw tables into DataFrames); seconds: also the connection (the reference
    # files, the identity macros) and writing the cells
    return {"cells": rows, "seconds": round(time.monotonic() - started, 2),
            "query_seconds": round(query_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samverkan.bench.child")
    sub = parser.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("transform")
    t.add_argument("--reference-date", required=True)
    t.add_argument("--full-refresh", action="store_true")
    sub.add_parser("parse").add_argument("--reference-date", required=True)
    d = sub.add_parser("dbt-models")
    d.add_argument("--reference-date", required=True)
    d.add_argument("--select", required=True)
    for kind in ("sql", "pandas"):
        b = sub.add_parser(kind)
        b.add_argument("--reference-date", required=True)
        b.add_argument("--indicator", required=True)
        b.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from samverkan.runtime import apply_environment_defaults

    apply_environment_defaults(verbose=False)
    if args.kind == "transform":
        result = transform(args.reference_date, args.full_refresh)
    elif args.kind == "parse":
        result = parse(args.reference_date)
    elif args.kind == "dbt-models":
        result = dbt_models(args.reference_date, args.select)
    else:
        result = baseline(args.kind, args.indicator, args.reference_date, args.out)
    print(json.dumps(result), flush=True)
    return 0 if result.get("success", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
