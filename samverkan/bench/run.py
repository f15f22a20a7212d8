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
            "repeat": opts.repeat, "skip_pandas": opts.skip_pandas,
            "pandas_ceiling_bytes": opts.pandas_ceiling_bytes, "indicators": list(opts.indicators)},
            "machine": {"cpus": os.cpu_count(), "memory_bytes": _memory_bytes()},
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
            self.say(f"Repeat {i + 1}/{len(homes)}: full build and baselines")
            self.results["repeats"][i].update(self.builds(world, home))
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
                night = self.child("incremental night (samverkan run)", home,
                                   ["samverkan.cli", "run", "--reference-date",
                                    world.reference_date.isoformat()],
                                   **{TOKEN_ENV: token, "PREFECT_API_URL": api})
                manifest = Paths(home).current_publication / "manifest.json"
                published = (json.loads(manifest.read_text(encoding="utf-8")).get("reference_date")
                             == world.reference_date.isoformat()) if manifest.exists() else False
                if not night.ok:
                    self.failures.append(f"incremental night (repeat {i + 1}): {night.error}")
                self.results["repeats"].append({"incremental": {**night.as_json(),
                                                                "published": published}})
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
        lines: list[tuple[str, str, str, str]] = []

        def walls(get: Callable[[dict[str, Any]], Any]) -> list[float]:
            values = []
            for r in reps:
                with _suppress():
                    v = get(r)
                    if v is not None:
                        values.append(float(v))
            return values

        def cell(values: list[float]) -> str:
            if not values:
                return "–"
            med = statistics.median(values)
            return f"{med:.1f}" + (f" ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else "")

        def mib(values: list[float]) -> str:
            return f"{max(values) / MIB:,.0f}" if values else "–"

        def ratio(num: list[float], den: list[float]) -> str:
            pairs = [a / b for a, b in zip(num, den, strict=False) if b]
            return f"{statistics.median(pairs):.2f}×" if pairs else "–"

        full = walls(lambda r: r["full_build"]["wall_seconds"])
        night = walls(lambda r: r["incremental"]["wall_seconds"])
        lines.append(("full build (transform step: dbt build, models + tests)", cell(full),
                      mib(walls(lambda r: r["full_build"]["peak_rss_bytes"])), ""))
        lines.append(("incremental night (samverkan run: extract ×3, build, gate, publish)",
                      cell(night), mib(walls(lambda r: r["incremental"]["peak_rss_bytes"])),
                      f"{ratio(night, full)} full build"))
        ratios: dict[str, dict[str, str]] = {}
        for ind in self.opts.indicators:
            def get(kind: str, key: str, ind: str = ind) -> Callable[[dict[str, Any]], Any]:
                def pick(rep: dict[str, Any]) -> Any:
                    entry = rep["indicators"][ind][kind]
                    if key == "wall_seconds" and (entry.get("exceeded_bytes") or entry.get("returncode")):
                        return None
                    return entry[key]
                return pick
            sql = walls(get("sql", "wall_seconds"))
            nodes = walls(lambda r, ind=ind: r["indicators"][ind]["dbt_nodes_seconds"])
            dbt_run = walls(get("dbt_run", "wall_seconds"))
            lines.append((f"{ind}: dbt models, Σ node times in the full build", cell(nodes), "–",
                          f"{ratio(nodes, sql)} SQL"))
            lines.append((f"{ind}: dbt run --select +ind_{ind} (models only)", cell(dbt_run),
                          mib(walls(get("dbt_run", "peak_rss_bytes"))), f"{ratio(dbt_run, sql)} SQL"))
            lines.append((f"{ind}: hand-written DuckDB SQL", cell(sql),
                          mib(walls(get("sql", "peak_rss_bytes"))), "1.00× SQL"))
            ratios[ind] = {"dbt_nodes_over_sql": ratio(nodes, sql), "dbt_run_over_sql": ratio(dbt_run, sql)}
            if not self.opts.skip_pandas:
                pandas = walls(get("pandas", "wall_seconds"))
                exceeded = [r["indicators"][ind]["pandas"].get("exceeded_bytes") for r in reps
                            if "indicators" in r and "pandas" in r["indicators"].get(ind, {})]
                if any(exceeded):
                    lines.append((f"{ind}: pandas", "–",
                                  f"exceeded {self.opts.pandas_ceiling_bytes / GIB:.0f} GiB", ""))
                else:
                    lines.append((f"{ind}: pandas", cell(pandas),
                                  mib(walls(get("pandas", "peak_rss_bytes"))),
                                  f"{ratio(pandas, sql)} SQL, {ratio(pandas, nodes)} dbt Σ"))
                    ratios[ind]["pandas_over_dbt_nodes"] = ratio(pandas, nodes)
        self.results["table"] = [dict(zip(("what", "wall_s", "peak_mib", "ratio"), line, strict=True))
                                 for line in lines]
        self.results["ratios"] = ratios
        self.results["failures"] = self.failures
        width = max(len(line[0]) for line in lines)
        o = self.results["options"]
        attendance = self.results.get("world", {}).get("raw_rows", {}).get("raw_ss12000.attendances", 0)
        out = [
            "",
            f"samverkan bench --pupils {o['pupils']} --lessons-per-day {o['lessons_per_day']} "
            f"--seed {o['seed']} --repeat {o['repeat']} (memory_limit {o['memory_limit']}; "
            f"{self.results['machine']['cpus']} cores, "
            f"{self.results['machine']['memory_bytes'] / GIB:.0f} GiB)",
            f"raw attendance rows: {attendance:,}; "
            f"Prefect start {self.results.get('prefect_start_seconds', 0):.1f} s (not in the night); "
            f"wall: median (min–max) of {len(reps)} run(s); peak: max",
            "",
            f"{'':{width}}  {'wall s':>16}  {'peak MiB':>10}  ratio",
        ]
        out += [f"{w:{width}}  {s:>16}  {m:>10}  {r}" for w, s, m, r in lines]
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
        json_file = self.opts.json_file or (self.work / "bench.json")
        json_file.write_text(json.dumps(self.results, indent=2, default=str), encoding="utf-8")
        self.say(f"\nFigures written to {json_file}")


class _suppress:
    """Skip a missing figure (a measurement that did not run)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, (KeyError, TypeError))


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cleanup_scratch(work: Path) -> None:
    """Remove the copies a bench measured (the cached worlds stay)."""
    shutil.rmtree(work / "scratch", ignore_errors=True)


def run_bench(opts: BenchOptions, say: Callable[[str], None] = print) -> int:
    """The whole benchmark; exit code 1 when a measurement failed or a baseline's cells differ
    from the model's."""
    return Bench(opts, say).run()


