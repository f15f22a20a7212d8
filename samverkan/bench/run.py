"""``samverkan bench``: build (or reuse) a world, then measure side by side, in one run and on
fresh copies of the cached data directory:

- the one-day incremental night: ``samverkan run`` bringing the reference date (extract ×3,
  dbt build, gate, publish) against an already started Prefect server and the simulated
  SS 12000 server;
- the full build: the pipeline's transform step (dbt build of every model and data test; with
  ``full_refresh`` where the checkout's transform step takes it) on the same copy;
- per indicator: the dbt models upstream of ``ind_<id>`` (their execution times summed from the
  full build's run_results.json, and a measured ``dbt run --select +ind_<id>``), the
  hand-written DuckDB SQL and the pandas pipeline over the same raw tables; the SQL's and
  pandas' cells must equal the model's, or the bench fails.

Each measurement runs in a child process: wall time, and peak resident memory sampled over the
child's whole process tree. Prints one table and writes every figure to a JSON file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samverkan.bench.baselines_sql import INDICATORS
from samverkan.bench.measure import Measurement, run_measured
from samverkan.bench.world import (
    ROOT,
    TOKEN_ENV,
    World,
    WorldSpec,
    clean_env,
    configure,
    copy_home,
    ensure_world,
    simulated_server,
)
from samverkan.config import Paths
from samverkan.database import physical_memory

GIB = 2**30
MIB = 2**20
TOP_NODES = 10


def default_work_dir() -> Path:
    """Where worlds are cached and copies measured: ``$XDG_CACHE_HOME/samverkan/bench``
    (default ``~/.cache/samverkan/bench``): outside any data directory, kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "samverkan" / "bench"


@dataclass
class BenchOptions:
    pupils: int = 5000
    lessons_per_day: int = 4
    seed: int = 20260612
    municipality: str = "stockholm"
    work: Path = field(default_factory=default_work_dir)
    memory_limit: str | None = None
    repeat: int = 1
    json_file: Path | None = None
    skip_pandas: bool = False
    night_only: bool = False  # measure the incremental night only (no full build, no baselines)
    pandas_ceiling_bytes: int = 12 * GIB
    indicators: tuple[str, ...] = INDICATORS


# --- reading dbt's artifacts ------------------------------------------------------------------------

def node_timings(target: Path) -> list[dict[str, Any]]:
    """Every node of a dbt invocation's run_results.json: id, resource type, status, seconds."""
    doc = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    return [{"node": r["unique_id"], "status": r["status"],
             "resource_type": r["unique_id"].split(".", 1)[0],
             "seconds": float(r.get("execution_time") or 0.0)} for r in doc["results"]]


def upstream_models(target: Path, model: str) -> set[str]:
    """The model ``model`` and every model it reads, directly or not (manifest.json)."""
    parents = json.loads((target / "manifest.json").read_text(encoding="utf-8"))["parent_map"]
    start = f"model.samverkan.{model}"
    found, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in found or not node.startswith("model."):
            continue
        found.add(node)
        todo.extend(parents.get(node, []))
    return found


def upstream_seconds(timings: list[dict[str, Any]], models: set[str]) -> float:
    return sum(t["seconds"] for t in timings if t["node"] in models)


# --- verification ------------------------------------------------------------------------------------

def compare_cells(analytics_db: Path, model: str, cells_file: Path) -> dict[str, int]:
    """Cells of ``marts.<model>`` against a baseline's Parquet file: the cells only in the
    model, only in the baseline, and in both (counts only, never a value)."""
    import duckdb

    columns = ("cast(period_type as varchar), cast(period_start as date), cast(area_level as varchar), "
               "cast(area_code as varchar), cast(breakdown as varchar), "
               "cast(breakdown_value as varchar), cast(numerator as bigint), cast(denominator as bigint)")
    conn = duckdb.connect()
    try:
        conn.execute(f"attach '{analytics_db}' as a (read_only)")
        conn.execute(f"create temp table m as select {columns} from a.marts.{model}")
        conn.execute(f"create temp table b as select {columns} from read_parquet(?)", [str(cells_file)])
        count = "select count(*) from (select * from {} except all select * from {})"
        only_model = conn.execute(count.format("m", "b")).fetchone()[0]
        only_base = conn.execute(count.format("b", "m")).fetchone()[0]
        total = conn.execute("select count(*) from m").fetchone()[0]
    finally:
        conn.close()
    return {"model_cells": total, "only_in_model": only_model, "only_in_baseline": only_base}


# --- the measurements -------------------------------------------------------------------------------

class Bench:
    def __init__(self, opts: BenchOptions, say: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.say = say
        self.work = opts.work.resolve()
        self.log = self.work / "bench.log"
        self.results: dict[str, Any] = {"options": {
            "pupils": opts.pupils, "lessons_per_day": opts.lessons_per_day, "seed": opts.seed,
            "municipality": opts.municipality, "memory_limit": opts.memory_limit or "default",
            "repeat": opts.repeat, "skip_pandas": opts.skip_pandas, "night_only": opts.night_only,
            "pandas_ceiling_bytes": opts.pandas_ceiling_bytes, "indicators": list(opts.indicators)},
            "machine": {"cpus": os.cpu_count(), "memory_bytes": physical_memory()},
            "repeats": []}
        self.failures: list[str] = []

    def child(self, label: str, home: Path, args: list[str], ceiling: int | None = None,
              **env: str) -> Measurement:
        self.say(f"  {label} …")
        m = run_measured(label, [sys.executable, "-m", *args], env=clean_env(home, **env), cwd=ROOT,
                         ceiling_bytes=ceiling, log_file=self.log)
        state = (f"stopped: exceeded {ceiling / GIB:.0f} GiB" if m.exceeded_bytes and ceiling
                 else "ok" if m.ok else f"FAILED ({m.error})")
        self.say(f"    {m.wall_seconds:8.1f} s  {m.peak_rss_bytes / MIB:8.0f} MiB  {state}")
        return m

    def run(self) -> int:
        from prefect.testing.utilities import prefect_test_harness

        self.work.mkdir(parents=True, exist_ok=True)
        self.log.write_text("", encoding="utf-8")
        spec = WorldSpec(self.opts.seed, self.opts.pupils, self.opts.lessons_per_day,
                         self.opts.municipality)
        self.say(f"samverkan bench: {spec.pupils} pupils, {spec.lessons_per_day} lessons a day, "
                 f"seed {spec.seed}; work directory {self.work}; child output in {self.log}")
        started = time.monotonic()
        with prefect_test_harness(server_startup_timeout=None):
            from prefect.settings import PREFECT_API_URL

            prefect_seconds = time.monotonic() - started
            api = str(PREFECT_API_URL.value())
            self.results["prefect_start_seconds"] = round(prefect_seconds, 1)
            self.say(f"Prefect server started in {prefect_seconds:.1f} s")
            world = ensure_world(self.work, spec, api, self.opts.memory_limit, self.log, self.say)
            self.results["world"] = world.as_json()
            homes = self.nights(world, api)
        for i, home in enumerate(homes):
            if self.opts.night_only:
                shutil.rmtree(home.parent, ignore_errors=True)
                continue
            self.say(f"Repeat {i + 1}/{len(homes)}: full build and baselines")
            self.results["repeats"][i].update(self.builds(world, home))
            self.write_json()  # the figures so far, should a later measurement take the bench down
            shutil.rmtree(home.parent, ignore_errors=True)  # the copy (the cached world stays)
        self.summarise()
        return 1 if self.failures else 0

    def nights(self, world: World, api: str) -> list[Path]:
        """The incremental night on a fresh copy of the world per repeat (one server start)."""
        homes = []
        token = secrets.token_urlsafe(24)
        self.say("Starting the simulated SS 12000 server for the incremental nights …")
        started = time.monotonic()
        with simulated_server(world.spec, token) as server:
            self.results["simulator_start_seconds"] = round(time.monotonic() - started, 1)
            for i in range(self.opts.repeat):
                home = self.work / "scratch" / f"r{i + 1}" / "home"
                self.say(f"Repeat {i + 1}/{self.opts.repeat}: copying the world, incremental night")
                copy_home(world.home, home)
                configure(home, world.spec, server.base_url, world.reference_date,
                          self.opts.memory_limit)
                # not measured: the parse a deployment's previous night left (the copy's path
                # is part of dbt's profile, so the world's parse state does not apply here)
                self.child("dbt parse in the copy (not part of the night)", home,
                           ["samverkan.bench.child", "parse", "--reference-date",
                            world.reference_date.isoformat()])
                night = self.child("incremental night (samverkan run)", home,
                                   ["samverkan.cli", "run", "--reference-date",
                                    world.reference_date.isoformat()],
                                   **{TOKEN_ENV: token, "PREFECT_API_URL": api})
                manifest = Paths(home).current_publication / "manifest.json"
                published = (json.loads(manifest.read_text(encoding="utf-8")).get("reference_date")
                             == world.reference_date.isoformat()) if manifest.exists() else False
                if not night.ok:
                    self.failures.append(f"incremental night (repeat {i + 1}): {night.error}")
                # the night's dbt build: its run_results.json stays in the target directory
                # (the publication's docs generation does not compile, so it writes none)
                target = Paths(home).dbt_target
                nodes = sorted(node_timings(target), key=lambda t: -t["seconds"]) \
                    if night.ok and (target / "run_results.json").exists() else []
                self.results["repeats"].append({"incremental": {**night.as_json(),
                                                                "published": published,
                                                                "nodes": nodes}})
                homes.append(home)
            self.results["simulator_peak_rss_bytes"] = server.peak_rss_bytes()
        return homes

    def builds(self, world: World, home: Path) -> dict[str, Any]:
        from samverkan.bench.child import supports_full_refresh

        ref = world.reference_date.isoformat()
        out: dict[str, Any] = {}
        full = self.child("full build (transform step)", home,
                          ["samverkan.bench.child", "transform", "--reference-date", ref,
                           "--full-refresh"])
        out["full_build"] = {**full.as_json(), "full_refresh": supports_full_refresh()}
        if not full.ok:
            self.failures.append(f"full build: {full.error}")
            return out
        target = Paths(home).dbt_target
        timings = node_timings(target)
        out["nodes"] = sorted(timings, key=lambda t: -t["seconds"])
        out["indicators"] = {}
        scratch = home.parent / "cells"
        scratch.mkdir(exist_ok=True)
        for indicator in self.opts.indicators:
            model = f"ind_{indicator}"
            row: dict[str, Any] = {"dbt_nodes_seconds": round(
                upstream_seconds(timings, upstream_models(target, model)), 2),
                "dbt_upstream_models": len(upstream_models(target, model))}
            row["dbt_run"] = self.child(f"{indicator}: dbt run --select +{model}", home,
                                        ["samverkan.bench.child", "dbt-models", "--reference-date",
                                         ref, "--select", f"+{model}"]).as_json()
            for kind in ("sql", "pandas"):
                if kind == "pandas" and self.opts.skip_pandas:
                    continue
                cells = scratch / f"{indicator}.{kind}.parquet"
                ceiling = self.opts.pandas_ceiling_bytes if kind == "pandas" else None
                m = self.child(f"{indicator}: {kind}", home,
                               ["samverkan.bench.child", kind, "--reference-date", ref,
                                "--indicator", indicator, "--out", str(cells)], ceiling=ceiling)
                entry = m.as_json()
                if m.ok:
                    check = compare_cells(Paths(home).analytics_db, model, cells)
                    entry["check"] = check
                    if check["only_in_model"] or check["only_in_baseline"]:
                        self.failures.append(
                            f"{indicator}: the {kind} baseline differs from {model}: "
                            f"{check['only_in_model']} of {check['model_cells']} model cells missing, "
                            f"{check['only_in_baseline']} other cells")
                    else:
                        self.say(f"    same {check['model_cells']} cells as {model}")
                elif not m.exceeded_bytes:
                    self.failures.append(f"{indicator}: {kind} baseline failed: {m.error}")
                row[kind] = entry
            out["indicators"][indicator] = row
        return out

    # --- the table ------------------------------------------------------------------------------------
    def summarise(self) -> None:
        reps = self.results["repeats"]
        lines: list[tuple[str, str, str, str, str]] = []

        def values(get: Callable[[dict[str, Any]], Any]) -> list[float | None]:
            """One figure per repeat (None where it is missing: a failed or stopped child)."""
            out: list[float | None] = []
            for rep in reps:
                try:
                    v = get(rep)
                except (KeyError, TypeError):
                    v = None
                out.append(float(v) if v is not None else None)
            return out

        def cell(figures: list[float | None]) -> str:
            present = [v for v in figures if v is not None]
            if not present:
                return "–"
            med = statistics.median(present)
            if len(present) == 1:
                return f"{med:.1f}"
            return f"{med:.1f} ({min(present):.1f}–{max(present):.1f})"

        def mib(figures: list[float | None]) -> str:
            present = [v for v in figures if v is not None]
            return f"{max(present) / MIB:,.0f}" if present else "–"

        def ratio(num: list[float | None], den: list[float | None]) -> float | None:
            """The median over the repeats of num / den, each pair from the same repeat."""
            pairs = [a / b for a, b in zip(num, den, strict=True) if a is not None and b]
            return statistics.median(pairs) if pairs else None

        def times(value: float | None) -> str:
            return f"{value:.2f}×" if value is not None else "–"

        def measured(kind: str, ind: str, key: str) -> Callable[[dict[str, Any]], Any]:
            def pick(rep: dict[str, Any]) -> Any:
                entry = rep["indicators"][ind][kind]
                if entry.get("exceeded_bytes") or entry.get("returncode"):
                    return None
                return entry["result"].get(key) if key != "wall_seconds" and key != "peak_rss_bytes" \
                    else entry[key]
            return pick

        full = values(lambda r: r["full_build"]["wall_seconds"])
        night = values(lambda r: r["incremental"]["wall_seconds"])
        lines.append(("full build (dbt build: models + tests)", cell(full),
                      cell(values(lambda r: r["full_build"]["result"]["dbt_seconds"])),
                      mib(values(lambda r: r["full_build"]["peak_rss_bytes"])), ""))
        lines.append(("incremental night (samverkan run)",
                      cell(night), "–", mib(values(lambda r: r["incremental"]["peak_rss_bytes"])),
                      f"{times(ratio(night, full))} full build"))
        ratios: dict[str, dict[str, float | None]] = {}
        for ind in () if self.opts.night_only else self.opts.indicators:
            nodes = values(lambda r, ind=ind: r["indicators"][ind]["dbt_nodes_seconds"])
            run_wall = values(measured("dbt_run", ind, "wall_seconds"))
            sql_wall = values(measured("sql", ind, "wall_seconds"))
            sql_query = values(measured("sql", ind, "query_seconds"))
            r = ratios[ind] = {"dbt_nodes_over_sql_query": ratio(nodes, sql_query),
                               "dbt_run_over_sql_wall": ratio(run_wall, sql_wall)}
            lines.append((ind, "", "", "", ""))
            lines.append(("  dbt: Σ upstream model nodes (full build)", "–",
                          cell(nodes), "–", f"{times(r['dbt_nodes_over_sql_query'])} SQL query"))
            lines.append(("  dbt run --select +ind_… (models only)", cell(run_wall),
                          cell(values(measured("dbt_run", ind, "dbt_seconds"))),
                          mib(values(measured("dbt_run", ind, "peak_rss_bytes"))),
                          f"{times(r['dbt_run_over_sql_wall'])} SQL wall"))
            lines.append(("  hand-written DuckDB SQL", cell(sql_wall), cell(sql_query),
                          mib(values(measured("sql", ind, "peak_rss_bytes"))), "1.00×"))
            if self.opts.skip_pandas:
                continue
            stopped = [rep["indicators"][ind]["pandas"].get("exceeded_bytes") for rep in reps
                       if "pandas" in rep.get("indicators", {}).get(ind, {})]
            if any(stopped):
                lines.append(("  pandas", "–", "–",
                              f"> {self.opts.pandas_ceiling_bytes / GIB:.0f} GiB",
                              "stopped: exceeded the ceiling"))
                r["pandas_exceeded_bytes"] = max(v for v in stopped if v)
                continue
            pandas_wall = values(measured("pandas", ind, "wall_seconds"))
            pandas_query = values(measured("pandas", ind, "query_seconds"))
            r["pandas_over_dbt_run_wall"] = ratio(pandas_wall, run_wall)
            r["pandas_over_dbt_nodes"] = ratio(pandas_query, nodes)
            lines.append(("  pandas", cell(pandas_wall), cell(pandas_query),
                          mib(values(measured("pandas", ind, "peak_rss_bytes"))),
                          f"{times(ratio(pandas_wall, sql_wall))} SQL wall; "
                          f"{times(r['pandas_over_dbt_run_wall'])} dbt run; "
                          f"{times(r['pandas_over_dbt_nodes'])} dbt Σ"))
        self.results["table"] = [dict(zip(("what", "wall_s", "engine_s", "peak_mib", "ratio"), line,
                                          strict=True)) for line in lines]
        self.results["ratios"] = ratios
        self.results["failures"] = self.failures
        width = max(len(line[0]) for line in lines)
        o = self.results["options"]
        world = self.results.get("world", {})
        attendance = world.get("raw_rows", {}).get("raw_ss12000.attendances", 0)
        out = [
            "",
            f"samverkan bench --pupils {o['pupils']} --lessons-per-day {o['lessons_per_day']} "
            f"--seed {o['seed']} --repeat {o['repeat']} (memory_limit {o['memory_limit']}; "
            f"{self.results['machine']['cpus']} cores, "
            f"{self.results['machine']['memory_bytes'] / GIB:.0f} GiB)",
            f"raw attendance rows: {attendance:,}; first load (the world's backfill to R−1): "
            f"{world.get('backfill_seconds', 0):.0f} s, "
            f"peak {world.get('backfill_peak_rss_bytes', 0) / MIB:,.0f} MiB, "
            f"{world.get('backfill_pull_peak_rss_bytes', 0) / MIB:,.0f} MiB before its build; "
            f"Prefect start {self.results.get('prefect_start_seconds', 0):.1f} s (not in the night); "
            f"wall: median (min–max) of {len(reps)} run(s); peak: max",
            "",
            f"{'':{width}}  {'wall s':>17}  {'engine s':>17}  {'peak MiB':>9}  ratio",
        ]
        out += [f"{w:{width}}  {s:>17}  {e:>17}  {m:>9}  {r}" for w, s, e, m, r in lines]
        out += ["", "wall s: the child process, start to end (median, min–max over the repeats); "
                "engine s: dbt's own time (the build, the invocation, or the models' node times "
                "summed from run_results.json), the SQL query or the pandas pipeline from the raw "
                "tables to the cells; peak MiB: resident memory of the child's process tree, "
                "sampled every 0.2 s (max over the repeats); ratios: medians of per-repeat ratios."]
        night_nodes = reps[0]["incremental"].get("nodes") if reps else None
        if night_nodes:
            self.results["night_hot_spots"] = night_nodes[:TOP_NODES]
            out += ["", f"Hot spots of the incremental night's dbt build (run_results.json, repeat 1, "
                    f"top {TOP_NODES} of {len(night_nodes)} nodes, "
                    f"{sum(n['seconds'] for n in night_nodes):.1f} s summed):"]
            out += [f"  {n['seconds']:8.2f} s  {n['resource_type']:9s} {n['node'].split('.', 2)[-1]}"
                    for n in night_nodes[:TOP_NODES]]
        nodes = reps[0].get("nodes") if reps else None
        if nodes:
            self.results["hot_spots"] = nodes[:TOP_NODES]
            out += ["", f"Hot spots of the full build (run_results.json, repeat 1, top {TOP_NODES}):"]
            out += [f"  {n['seconds']:8.2f} s  {n['resource_type']:9s} {n['node'].split('.', 2)[-1]}"
                    for n in nodes[:TOP_NODES]]
        if self.failures:
            out += ["", "FAILED:"] + [f"  {f}" for f in self.failures]
        for line in out:
            self.say(line)
        self.say(f"\nFigures written to {self.write_json()}")

    def write_json(self) -> Path:
        json_file = self.opts.json_file or (self.work / "bench.json")
        json_file.write_text(json.dumps(self.results, indent=2, default=str), encoding="utf-8")
        return json_file


def run_bench(opts: BenchOptions, say: Callable[[str], None] = print) -> int:
    """The whole benchmark; exit code 1 when a measurement failed or a baseline's cells differ
    from the model's."""
    return Bench(opts, say).run()


