"""Benchmark: the nightly dbt build with one new school day (incremental) against a full
build, on a demo's data (K times scaled as build_memory.py scales it). Prints figures and the
slowest nodes of each build (from dbt's run_results.json); ``--json FILE`` writes them.

    .venv/bin/python tests/benchmarks/incremental_nightly.py --data /tmp/demo/data \\
        --work /tmp/bench/incremental --scale 1 --memory-limit 2GiB --json /tmp/bench/nightly.json

On the work copy of the (scaled) restricted warehouse:

1. the last school day up to the reference date is held back: its lessons and their
   attendance records leave the raw tables; ``--corrections`` attendance records of the two
   weeks before (default 500) will get corrected versions that night;
2. full build (``steps.transform`` with ``full_refresh``), as the first night builds it;
3. the held-back day arrives as a new SS 12000 batch with the corrected old records (a new
   version each: absent the whole lesson, modified a day later), recorded in load_meta like a
   loaded batch;
4. the nightly build (``steps.transform``: incremental, as the pipeline runs it);
5. a full rebuild of everything (``--full-refresh``), for comparison.

Each build runs in a child process (build_memory.measured_build's way, with its memory
sampling). Figures are counts, times and sizes only; the pseudonym key is a fresh random one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
NIGHT_BATCH = "ss12000-benchmark-night"
CORRECTION_DAYS = 14
CHAIN = ("stg_ss12000__batch_lesson_days", "stg_ss12000__attendances", "int_ss12000__attendance_days",
         "int_ss12000__attendance_periods",
         "fct_pupil_periods")


def hold_back_last_day(restricted_db: Path, corrections: int) -> dict[str, Any]:
    """Move the last school day's lessons and records out of the raw tables into the tables
    ``bench.held_*``; choose ``corrections`` records of the weeks before (``bench.corrected``)."""
    import duckdb

    conn = duckdb.connect(str(restricted_db))
    try:
        conn.execute("create schema if not exists bench")
        day = conn.execute("""
            select max(cast(timezone('Europe/Stockholm', e.start_time) as date))
            from raw_ss12000.calendar_events as e
            where exists (select 1 from raw_ss12000.attendances as a where a.calendar_event_id = e.id)
        """).fetchone()[0]
        conn.execute("""
            create or replace table bench.held_events as
            select * from raw_ss12000.calendar_events
            where cast(timezone('Europe/Stockholm', start_time) as date) = ?""", [day])
        conn.execute("""
            create or replace table bench.held_attendances as
            select * from raw_ss12000.attendances
            where calendar_event_id in (select id from bench.held_events)""")
        # late reports and corrections concern the last weeks (CORRECTION_DAYS before the day)
        conn.execute(f"""
            create or replace table bench.corrected as
            select * from raw_ss12000.attendances
            where calendar_event_id in (
                select id from raw_ss12000.calendar_events
                where cast(timezone('Europe/Stockholm', start_time) as date)
                    between ? - {CORRECTION_DAYS} and ? - 1)
                and is_reported
            order by hash(id)
            limit {int(corrections)}""", [day, day])
        conn.execute("delete from raw_ss12000.attendances where calendar_event_id in "
                     "(select id from bench.held_events)")
        conn.execute("delete from raw_ss12000.calendar_events where id in "
                     "(select id from bench.held_events)")
        counts = {name: conn.execute(f"select count(*) from bench.{name}").fetchone()[0]
                  for name in ("held_events", "held_attendances", "corrected")}
        _adjust_batch_entities(conn)
    finally:
        conn.close()
    return {"day": str(day), **counts}


def _adjust_batch_entities(conn: Any) -> None:
    """Keep load_meta.batch_entities equal to the raw rows per batch (what was loaded)."""
    for entity in ("attendances", "calendar_events"):
        conn.execute(f"""
            update load_meta.batch_entities as b
            set rows_loaded = (select count(*) from raw_ss12000.{entity} as r
                               where r.batch_id = b.batch_id)
            where b.entity = ? and b.batch_id in (
                select batch_id from load_meta.batches where source = 'ss12000')""", [entity])


def deliver_the_night(restricted_db: Path) -> None:
    """The held-back day and the corrections as one new loaded SS 12000 batch."""
    import duckdb

    conn = duckdb.connect(str(restricted_db))
    try:
        conn.execute("begin")
        conn.execute(f"""
            insert into load_meta.batches
            select '{NIGHT_BATCH}', 'ss12000', now(), now(), null, null, 0, 0, 0, ''
        """)
        conn.execute(f"insert into raw_ss12000.calendar_events select * replace "
                     f"('{NIGHT_BATCH}' as batch_id) from bench.held_events")
        conn.execute(f"insert into raw_ss12000.attendances select * replace "
                     f"('{NIGHT_BATCH}' as batch_id) from bench.held_attendances")
        conn.execute(f"""
            insert into raw_ss12000.attendances
            select * replace ('{NIGHT_BATCH}' as batch_id, 0 as attendance_minutes,
                              invalid_absence_minutes + attendance_minutes as invalid_absence_minutes,
                              modified_at + interval 1 day as modified_at)
            from bench.corrected""")
        for entity in ("attendances", "calendar_events"):
            conn.execute(f"""
                insert into load_meta.batch_entities
                select '{NIGHT_BATCH}', '{entity}', n, n, 0
                from (select count(*) as n from raw_ss12000.{entity} where batch_id = '{NIGHT_BATCH}')
            """)
        conn.execute("commit")
    finally:
        conn.close()


def slowest_nodes(target: Path, n: int = 10) -> list[dict[str, Any]]:
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    total = sum(r["execution_time"] for r in results) or 1.0
    return [{"node": r["unique_id"].split(".", 1)[1], "seconds": round(r["execution_time"], 2),
             "share": round(r["execution_time"] / total, 3)}
            for r in sorted(results, key=lambda r: -r["execution_time"])[:n]]


def child_build(full_refresh: bool) -> None:
    """The transform step as the pipeline runs it (``--full-refresh`` when asked)."""
    from samverkan import steps
    from samverkan.config import load_settings

    settings = load_settings()
    outcome = steps.transform(settings, "benchmark", steps.reference_date(settings),
                              full_refresh=full_refresh)
    print(json.dumps({"success": outcome.success, "dbt_seconds": round(outcome.elapsed_seconds, 1),
                      "counts": outcome.counts,
                      "failures": [f"{f.resource_type} {f.node}: {f.status}"
                                   for f in outcome.failures][:10]}))


def chain_nodes(target: Path) -> dict[str, float]:
    """Seconds per node of the attendance chain (its models and their data tests)."""
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    return {r["unique_id"].split(".", 2)[2]: round(r["execution_time"], 2) for r in results
            if any(m in r["unique_id"] for m in CHAIN)}


def measured(home: Path, full_refresh: bool, key: str, name: str) -> dict[str, Any]:
    from samverkan.config import Paths

    result = _measured_child(home, full_refresh, key)
    target = Paths(home).dbt_target
    shutil.copyfile(target / "run_results.json", home / f"run_results-{name}.json")
    result["slowest"] = slowest_nodes(target)
    result["attendance_chain"] = chain_nodes(target)
    return result


def _measured_child(home: Path, full_refresh: bool, key: str) -> dict[str, Any]:
    """build_memory.measured_build's way, with this script as the child."""
    import subprocess
    import threading
    import time

    from build_memory import SAMPLE_SECONDS, tree_rss

    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env.update(SAMVERKAN_HOME=str(home), SAMVERKAN_PSEUDONYM_KEY=key,
               PREFECT_HOME=os.environ.get("PREFECT_HOME", str(home / "run" / "prefect")))
    started = time.monotonic()
    args = [sys.executable, __file__, "--child"] + (["--full"] if full_refresh else [])
    child = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(child.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    done.set()
    sampler.join()
    result: dict[str, Any] = {"wall_seconds": round(time.monotonic() - started, 1),
                              "peak_rss_bytes": peak[0], "returncode": child.returncode}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = stderr.strip().splitlines()[-1:] if stderr.strip() else ["no output"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help="a data directory `samverkan demo` filled")
    parser.add_argument("--work", type=Path, help="work folder (a data directory per scale)")
    parser.add_argument("--scale", type=int, default=1, help="K: copies of the demo (default 1)")
    parser.add_argument("--memory-limit", default=None, help="[warehouse] memory_limit")
    parser.add_argument("--corrections", type=int, default=500,
                        help="old attendance records corrected by the night's batch")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.child:
        child_build(args.full)
        return
    if args.data is None or args.work is None:
        parser.error("--data and --work are required")
    sys.path.insert(0, str(HERE))
    import secrets

    from build_memory import prepare_home

    key = secrets.token_hex(32)  # one key for the three builds, never printed
    home = args.work / f"k{args.scale}"
    if home.exists():
        shutil.rmtree(home)
    rows = prepare_home(args.data, home, args.scale, args.memory_limit)
    from samverkan.config import Paths

    held = hold_back_last_day(Paths(home).restricted_db, args.corrections)
    print(f"scale {args.scale}: {rows.get('raw_ss12000.attendances', '?')} attendance rows; "
          f"held back {held['day']}: {held['held_events']} lessons, "
          f"{held['held_attendances']} records; {held['corrected']} corrections", flush=True)
    figures: dict[str, Any] = {"scale": args.scale, "held_back": held}
    for name, full in (("first_build", True), ("nightly", False), ("full_rebuild", True)):
        if name == "nightly":
            deliver_the_night(Paths(home).restricted_db)
        figures[name] = measured(home, full, key, name)
        f = figures[name]
        print(f"{name}: dbt {f.get('dbt_seconds')} s (wall {f['wall_seconds']} s, peak "
              f"{f['peak_rss_bytes'] / 2**30:.2f} GiB) {f.get('counts')} {f.get('failures') or ''}",
              flush=True)
        for node in f["slowest"]:
            print(f"    {node['seconds']:7.2f} s {100 * node['share']:5.1f} %  {node['node']}")
        chain = f["attendance_chain"]
        print(f"  attendance chain (models and their tests): {sum(chain.values()):.2f} s")
        for node, seconds in sorted(chain.items(), key=lambda kv: -kv[1]):
            print(f"    {seconds:7.2f} s  {node}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
