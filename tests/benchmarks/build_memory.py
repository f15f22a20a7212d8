"""Benchmark: wall time and peak memory of the dbt build at K times a demo's size, under a
memory limit. Prints figures; ``--json FILE`` writes them.

    # a demo to scale (or reuse one: --data DIR)
    .venv/bin/python tests/benchmarks/build_memory.py --build-demo /tmp/bench/demo --pupils 5000 \\
        --work /tmp/bench/work --scale 1 2 5 --memory-limit default 1GiB --json /tmp/bench/figures.json

For each K the raw tables of the demo's restricted warehouse are copied K times into a fresh
data directory (``<work>/k<K>``): copy 0 as it is, copy k with fresh identifiers (SS 12000 ids,
case-system ids, police diarienummer, and personnummer that are new, valid and consistent
across the three sources: the same birth date and sex digit, a free serial number and its
check digit; unusable identifiers stay unusable). The organisations (the school units of the
reference files) and the load metadata are copied once. The build then runs exactly as the
pipeline's transform step runs it (:func:`samverkan.steps.transform`, with the configuration
of the demo and ``[warehouse] memory_limit`` as given) in a child process, while this process
samples the resident memory of the child and all its descendants
(:mod:`samverkan.bench.measure`, shared with ``samverkan bench``).

The figures are counts, times and sizes only; the pseudonym key is a fresh random one that is
never printed, and no identifier is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

UUID_COLUMNS = {
    "raw_ss12000.persons": ["id"],
    "raw_ss12000.enrolments": ["person_id"],
    "raw_ss12000.calendar_events": ["id", "activity_id"],
    "raw_ss12000.attendances": ["id", "calendar_event_id", "student_id"],
    "raw_ss12000.deleted_entities": ["id"],
}
BIGINT_COLUMNS = {
    "raw_case_system.klient": ["klient_id"],
    "raw_case_system.aktualisering": ["aktualisering_id", "klient_id"],
    "raw_case_system.utredning": ["utredning_id", "klient_id", "aktualisering_id"],
    "raw_case_system.insats": ["insats_id", "klient_id"],
    "raw_case_system.gallring": ["rad_id"],
}
PNR_COLUMNS = {
    "raw_ss12000.persons": "civic_no",
    "raw_case_system.klient": "personnummer",
    "raw_police.events": "personnummer",
}
TEXT_ID_COLUMNS = {"raw_police.events": ["diarienummer"]}
COPIED_ONCE = {"raw_ss12000.organisations"}
BIGINT_OFFSET = 10_000_000_000


# --- scaling ----------------------------------------------------------------------------------

def _luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 - i % 2)
        total += d // 10 + d % 10
    return str((10 - total % 10) % 10)


def pnr_map(conn: Any, scale: int, ref: dt.date) -> list[tuple[str, int, str]]:
    """(raw identifier, copy, new raw identifier) for every usable personnummer in the three
    sources and every copy 1..scale-1: the same text with its last four digits (serial and
    check digit) replaced, a free serial of the same birth date and sex digit, shared by every
    raw spelling of one person."""
    raws: list[tuple[str, str]] = []
    for table, column in PNR_COLUMNS.items():
        raws += conn.execute(
            f"select distinct {column}, samverkan_normalise_pnr({column}, ?::date) "
            f"from src.{table} where {column} is not null", [ref]).fetchall()
    used: dict[str, set[int]] = {}
    for _, pnr12 in raws:
        if pnr12:
            used.setdefault(pnr12[:8], set()).add(int(pnr12[8:11]))
    new_serial: dict[tuple[str, int], int] = {}
    for pnr12 in sorted({p for _, p in raws if p}):
        date, serial = pnr12[:8], int(pnr12[8:11])
        taken = used[date]
        for k in range(1, scale):
            candidate = serial
            while candidate in taken:
                candidate = (candidate + 2) % 1000  # the last serial digit (sex) is kept
                if candidate == serial:
                    raise SystemExit(f"no free serial numbers left for one birth date at K={scale}")
            taken.add(candidate)
            new_serial[(pnr12, k)] = candidate
    out: list[tuple[str, int, str]] = []
    for raw, pnr12 in set(raws):
        if not pnr12:
            continue
        clean = "".join(raw.split())
        for k in range(1, scale):
            serial = f"{new_serial[(pnr12, k)]:03d}"
            out.append((raw, k, clean[:-4] + serial + _luhn_digit(pnr12[2:8] + serial)))
    return out


def _column_expression(table: str, column: str) -> str:
    if column in UUID_COLUMNS.get(table, []):
        h = f"md5({column} || '#' || copy.k)"
        uuid = (f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) "
                f"|| '-' || substr({h}, 17, 4) || '-' || substr({h}, 21, 12)")
        return f"case when copy.k = 0 then {column} else {uuid} end as {column}"
    if column in BIGINT_COLUMNS.get(table, []):
        return f"{column} + copy.k * {BIGINT_OFFSET} as {column}"
    if column in TEXT_ID_COLUMNS.get(table, []):
        return f"case when copy.k = 0 then {column} else {column} || '-' || copy.k end as {column}"
    if PNR_COLUMNS.get(table) == column:
        return f"coalesce(pnr_map.new_raw, t.{column}) as {column}"
    return f"t.{column}"


def scale_warehouse(source_db: Path, target_db: Path, scale: int, ref: dt.date) -> dict[str, int]:
    """The raw tables of ``source_db`` scaled ``scale`` times into ``target_db`` (new file);
    returns the rows per raw table."""
    import duckdb

    from samverkan.pseudonymisation import install_identity_functions
    from samverkan.warehouse import restricted_schema_sql

    conn = duckdb.connect(str(target_db))
    try:
        conn.execute(restricted_schema_sql())
        conn.execute(f"attach '{source_db}' as src (read_only)")
        install_identity_functions(conn, None)
        mapping = pnr_map(conn, scale, ref)
        conn.execute("create temp table pnr_map (raw varchar, k integer, new_raw varchar)")
        if mapping:
            conn.executemany("insert into pnr_map values (?, ?, ?)", mapping)
        tables = conn.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'src' "
            "and schema_name in ('load_meta', 'raw_ss12000', 'raw_case_system', 'raw_police') "
            "order by all").fetchall()
        rows: dict[str, int] = {}
        for schema, table in tables:
            name = f"{schema}.{table}"
            columns = [r[0] for r in conn.execute(
                "select column_name from duckdb_columns() where database_name = 'src' and "
                "schema_name = ? and table_name = ? order by column_index", [schema, table]).fetchall()]
            copies = 1 if (schema == "load_meta" or name in COPIED_ONCE) else scale
            pnr_join = (f"left join pnr_map on pnr_map.raw = t.{PNR_COLUMNS[name]} "
                        "and pnr_map.k = copy.k" if name in PNR_COLUMNS else "")
            select = ", ".join(_column_expression(name, c) for c in columns)
            if name == "raw_ss12000.deleted_entities":  # a deleted organisation exists once
                where = "where copy.k = 0 or t.entity_type <> 'organisations'"
            else:
                where = ""
            conn.execute(f"insert into {name} select {select} from src.{name} as t "
                         f"cross join range({copies}) as copy(k) {pnr_join} {where}")
            if schema != "load_meta":
                rows[name] = conn.execute(f"select count(*) from {name}").fetchone()[0]
        conn.execute("detach src")
        conn.execute("checkpoint")
    finally:
        conn.close()
    return rows


def prepare_home(demo: Path, home: Path, scale: int, memory_limit: str | None) -> dict[str, int]:
    """A data directory with the demo's configuration and reference files and the scaled raw
    warehouse (the scaled warehouse is reused when it exists)."""
    from samverkan.config import Paths
    from samverkan.config.settings import wal_file

    p = Paths(home)
    if p.analytics_db.exists():  # a full build every time
        p.analytics_db.unlink()
    for leftover in (wal_file(p.analytics_db), p.dbt_target):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    p.ensure()
    shutil.copytree(demo / "reference", p.reference, dirs_exist_ok=True)
    config = (demo / "samverkan.toml").read_text(encoding="utf-8")
    if memory_limit:
        config += f'\n[warehouse]\nmemory_limit = "{memory_limit}"\n'
    (home / "samverkan.toml").write_text(config, encoding="utf-8")
    marker = home / "scaled.json"
    if p.restricted_db.exists() and marker.exists():
        return json.loads(marker.read_text(encoding="utf-8"))
    for partial in (p.restricted_db, wal_file(p.restricted_db)):
        if partial.exists():
            partial.unlink()
    os.environ["SAMVERKAN_HOME"] = str(home)
    from samverkan.config import load_settings

    ref = load_settings().reference_date or dt.date.today()
    rows = scale_warehouse(Paths(demo).restricted_db, p.restricted_db, scale, ref)
    marker.write_text(json.dumps(rows), encoding="utf-8")
    return rows


# --- measuring ---------------------------------------------------------------------------------

def measured_build(home: Path) -> dict[str, Any]:
    """The build in a child process, measured by :func:`samverkan.bench.measure.run_measured`
    (wall time, peak resident memory of the child and all its descendants)."""
    from samverkan.bench.measure import run_measured

    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env.update(SAMVERKAN_HOME=str(home), SAMVERKAN_PSEUDONYM_KEY=secrets.token_hex(32),
               PREFECT_HOME=os.environ.get("PREFECT_HOME", str(home / "run" / "prefect")))
    m = run_measured("build", [sys.executable, __file__, "--child"], env=env, cwd=ROOT)
    result: dict[str, Any] = {"wall_seconds": round(m.wall_seconds, 1),
                              "peak_rss_bytes": m.peak_rss_bytes, "returncode": m.returncode}
    if m.result:
        result.update(m.result)
    else:
        result["error"] = [m.error or "no output"]
    return result


def child_build() -> None:
    """The transform step as the pipeline runs it, on the configured data directory."""
    from samverkan import steps
    from samverkan.config import load_settings

    settings = load_settings()
    outcome = steps.transform(settings, "benchmark", steps.reference_date(settings))
    try:
        from samverkan.database import warehouse_settings_for
    except ImportError:  # a checkout from before [warehouse] (a "before" figure): no limit
        limit, threads = "none", os.cpu_count()
    else:
        warehouse = warehouse_settings_for(settings.paths)
        limit, threads = warehouse.memory_limit, warehouse.threads
    print(json.dumps({"success": outcome.success, "dbt_seconds": round(outcome.elapsed_seconds, 1),
                      "counts": outcome.counts, "memory_limit": limit, "threads": threads,
                      "failures": [f"{f.resource_type} {f.node}: {f.status}"
                                   for f in outcome.failures][:10]}))


def build_demo(target: Path, pupils: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env["SAMVERKAN_HOME"] = str(target)
    subprocess.run([sys.executable, "-m", "samverkan.cli", "demo", "--pupils", str(pupils)],
                   env=env, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help="a data directory `samverkan demo` filled")
    parser.add_argument("--build-demo", type=Path, help="run `samverkan demo` into this folder first")
    parser.add_argument("--pupils", type=int, default=5000, help="the demo's size (with --build-demo)")
    parser.add_argument("--work", type=Path, required=False, help="where the scaled data directories go")
    parser.add_argument("--scale", type=int, nargs="+", default=[1], help="the factors K")
    parser.add_argument("--memory-limit", nargs="+", default=["default"],
                        help="[warehouse] memory_limit values (\"default\": the configured default)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.child:
        child_build()
        return
    demo = args.data
    if args.build_demo:
        build_demo(args.build_demo, args.pupils)
        demo = args.build_demo
    if demo is None or args.work is None:
        parser.error("give --data (or --build-demo) and --work")
    demo = demo.resolve()
    figures = []
    print(f"{'K':>3} {'memory_limit':>13} {'raw rows':>12} {'wall s':>8} {'peak GiB':>9}  result")
    for scale in args.scale:
        for limit in args.memory_limit:
            home = (args.work / f"k{scale}").resolve()
            rows = prepare_home(demo, home, scale, None if limit == "default" else limit)
            result = measured_build(home)
            result.update(scale=scale, memory_limit_asked=limit, raw_rows=sum(rows.values()),
                          attendance_rows=rows.get("raw_ss12000.attendances", 0))
            figures.append(result)
            why = result.get("failures") or result.get("error")
            state = "ok" if result.get("success") else f"FAILED {why}"
            print(f"{scale:>3} {result.get('memory_limit', limit):>13} {result['raw_rows']:>12,} "
                  f"{result['wall_seconds']:>8.1f} {result['peak_rss_bytes'] / 2**30:>9.2f}  {state}",
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
