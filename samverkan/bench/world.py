"""The benchmark's world, built once and cached: the simulated sources of one municipality
(seed, pupils, lessons a day) and a data directory that the real pipeline loaded up to the day
before the reference date (``samverkan backfill`` of that day: every source pulled up to its
end as one bounded batch, then one build and one publication), so that a copy of it can then
run the one-day incremental night.

The SS 12000 platform is the simulator's server on loopback, in a child process of its own
(``python -m samverkan.bench.world serve``): started once to build the world and again, from the
same seed, for each incremental night; its memory is the simulator's, not the pipeline's.

Cache: ``<work>/worlds/<municipality>-s<seed>-p<pupils>-l<lessons>-<version>/``, where the
version is a digest of what the raw tables depend on (the simulator, the extract and load code,
:data:`LOADED`): a change to any of them builds a new world (half an hour at 100 000 pupils). A
change to the models or the pipeline's steps after it (:data:`MODELS`) only rebuilds the
world's models, once (``dbt build --full-refresh`` at the day before the reference date, about
five minutes at 100 000 pupils), so that the measured night starts from what the current models
built. A world is complete when its ``world.json`` exists.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from samverkan.config import Paths

ROOT = Path(__file__).resolve().parent.parent.parent
# What a cached world's raw tables depend on: the simulated data and how it is pulled and loaded.
LOADED = ("samverkan/simulator", "samverkan/sources", "samverkan/sql/restricted_schema.sql",
          "samverkan/extract.py", "samverkan/landing.py", "samverkan/warehouse.py",
          "samverkan/backfill.py")
# What its built models depend on besides: rebuilt in place when these change.
MODELS = ("dbt_project/models", "dbt_project/macros", "dbt_project/dbt_project.yml",
          "samverkan/sql/identity_macros.sql", "samverkan/pseudonymisation.py",
          "samverkan/dbt_plugin.py", "samverkan/transform.py", "samverkan/incremental.py",
          "samverkan/run_parameters.py", "samverkan/steps.py", "samverkan/quality.py",
          "expectations")
WORLD_FILE = "world.json"
BUILD_MARK = "dbt build:"  # the progress line that starts a run's build (samverkan.steps.transform)
SOURCES_DIR = "simulator"   # under a data directory, as the demo lays it out
TOKEN_ENV = "SAMVERKAN_SS12000_TOKEN"  # noqa: S105 - the name of a variable (samverkan.demo)


@dataclass(frozen=True)
class WorldSpec:
    seed: int
    pupils: int
    lessons_per_day: int
    municipality: str = "stockholm"

    def name(self) -> str:
        return (f"{self.municipality}-s{self.seed}-p{self.pupils}-l{self.lessons_per_day}-"
                f"{digest(LOADED)[:12]}")


@dataclass
class World:
    spec: WorldSpec
    directory: Path
    reference_date: dt.date
    built_seconds: float
    backfill_seconds: float
    backfill_peak_rss_bytes: int
    simulator_peak_rss_bytes: int
    raw_rows: dict[str, int]
    models_version: str = ""  # digest(MODELS) of the models it was last built with
    # the backfill's peak before its build started: the first load's pull, landing,
    # validation and load alone (0: not measured, a world built before this was recorded)
    backfill_pull_peak_rss_bytes: int = 0

    @property
    def home(self) -> Path:
        return self.directory / "home"

    @property
    def loaded_until(self) -> dt.date:
        return self.reference_date - dt.timedelta(days=1)

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["spec"] = asdict(self.spec)
        doc["directory"] = str(self.directory)
        doc["reference_date"] = self.reference_date.isoformat()
        return doc

    @classmethod
    def load(cls, directory: Path) -> World:
        doc = json.loads((directory / WORLD_FILE).read_text(encoding="utf-8"))
        return cls(WorldSpec(**doc["spec"]), directory, dt.date.fromisoformat(doc["reference_date"]),
                   doc["built_seconds"], doc["backfill_seconds"], doc["backfill_peak_rss_bytes"],
                   doc["simulator_peak_rss_bytes"], doc["raw_rows"],
                   doc.get("models_version", ""), doc.get("backfill_pull_peak_rss_bytes", 0))

    def save(self, directory: Path | None = None) -> None:
        """``world.json`` in the world's directory (or in ``directory``, while it is built)."""
        (directory or self.directory).joinpath(WORLD_FILE).write_text(
            json.dumps(self.as_json(), indent=2), encoding="utf-8")


def digest(entries: tuple[str, ...]) -> str:
    """A digest of the files under ``entries`` (:data:`LOADED`, :data:`MODELS`)."""
    files_digest = hashlib.sha256()
    for entry in entries:
        path = ROOT / entry
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            files_digest.update(str(f.relative_to(ROOT)).encode())
            files_digest.update(f.read_bytes())
    return files_digest.hexdigest()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a pipeline child on ``home``: no key or configuration of the caller
    (the data directory's own key file, keys/pseudonym.key, is used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env["SAMVERKAN_HOME"] = str(home)
    env.update(extra)
    return env


# --- the simulated SS 12000 server, in a child process ----------------------------------------

@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    reference_date: dt.date

    def peak_rss_bytes(self) -> int:
        """The server process's peak resident memory so far (VmHWM)."""
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


@contextlib.contextmanager
def simulated_server(spec: WorldSpec, token: str, sources: Path | None = None,
                     timeout_seconds: float = 3600) -> Iterator[Server]:
    """The simulator's SS 12000 server for ``spec`` on loopback in a child process (and, with
    ``sources``, the case-system database and police files written there first)."""
    argv = [sys.executable, "-m", "samverkan.bench.world", "serve", "--seed", str(spec.seed),
            "--pupils", str(spec.pupils), "--lessons-per-day", str(spec.lessons_per_day),
            "--municipality", spec.municipality]
    if sources is not None:
        argv += ["--sources", str(sources)]
    env = {**os.environ, TOKEN_ENV: token}
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("{"):
            process.wait(timeout=60)
            raise RuntimeError(f"the simulated SS 12000 server did not start (exit code "
                               f"{process.returncode}, after {time.monotonic() - started:.0f} s)")
        ready = json.loads(line)
        yield Server(process, ready["base_url"], dt.date.fromisoformat(ready["reference_date"]))
    finally:
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=timeout_seconds if process.poll() is None else 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_main(args: argparse.Namespace) -> int:
    """The server child: simulate, write the other sources when asked, serve until stdin
    closes. Prints one JSON line (base URL, reference date) when it is ready."""
    from samverkan.simulator.municipalities import profile
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    token = os.environ[TOKEN_ENV]
    pop = generate(seed=args.seed, pupils=args.pupils, lessons_per_day=args.lessons_per_day,
                   municipality=profile(args.municipality))
    if args.sources:
        from samverkan.simulator.case_system_db import write_case_system
        from samverkan.simulator.police_files import write_police_files

        args.sources.mkdir(parents=True, exist_ok=True)
        write_case_system(pop, f"sqlite:///{args.sources / 'case_system.sqlite'}")
        write_police_files(pop, args.sources / "police_inbox")
    data = SS12000Data.from_population(pop)
    reference_date = pop.reference_date
    del pop
    with serve(data, token) as server:
        print(json.dumps({"base_url": server.base_url, "reference_date": reference_date.isoformat()}),
              flush=True)
        sys.stdin.read()  # until the bench closes it
    return 0


# --- configuration of a data directory ----------------------------------------------------------

def configure(home: Path, spec: WorldSpec, base_url: str, reference_date: dt.date,
              memory_limit: str | None) -> None:
    """``home``'s samverkan.toml and reference files, as the demo writes them: the simulated
    municipality, the server at ``base_url``, the sources under ``home/simulator``."""
    from samverkan.demo import SimulatedSources, write_demo_config
    from samverkan.simulator.municipalities import profile

    sources = home / SOURCES_DIR
    simulated = SimulatedSources(reference_date, f"sqlite:///{sources / 'case_system.sqlite'}",
                                 sources / "police_inbox", sources / "ground_truth.csv")
    write_demo_config(Paths(home), base_url, simulated, profile(spec.municipality),
                      memory_limit=memory_limit)


def copy_home(source: Path, target: Path) -> None:
    """A fresh copy of a data directory (symbolic links copied as links), written to disk
    before it returns: at 100 000 pupils the copy is 7 GB, and its writeback otherwise ran
    into the measured night."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    os.sync()


def raw_rows(home: Path) -> dict[str, int]:
    """Rows per raw table of ``home``'s restricted warehouse."""
    import duckdb

    conn = duckdb.connect(str(Paths(home).restricted_db), read_only=True)
    try:
        tables = conn.execute("select schema_name, table_name from duckdb_tables() where schema_name "
                              "like 'raw_%' order by all").fetchall()
        return {f"{s}.{t}": conn.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
                for s, t in tables}
    finally:
        conn.close()


def ensure_world(work: Path, spec: WorldSpec, prefect_api_url: str, memory_limit: str | None,
                 log_file: Path, say: Any = print) -> World:
    """The cached world for ``spec`` under ``work``, built first when it is missing or stale."""
    from samverkan.bench.measure import run_measured
    from samverkan.pseudonymisation import create_key_file, default_key_file

    directory = work / "worlds" / spec.name()
    models_version = digest(MODELS)
    if (directory / WORLD_FILE).exists():
        world = World.load(directory)
        say(f"World: cached {directory} (reference date {world.reference_date})")
        if world.models_version != models_version:
            rebuild_models(world, log_file, say)
            world.models_version = models_version
            world.save()
        return world
    building = directory.with_name(directory.name + ".building")
    if building.exists():
        shutil.rmtree(building)
    home = building / "home"
    home.mkdir(parents=True)
    say(f"World: building {directory.name} (simulating {spec.pupils} pupils, then the real "
        "pipeline loads every day before the reference date) …")
    started = time.monotonic()
    token = secrets.token_urlsafe(24)
    with simulated_server(spec, token, sources=home / SOURCES_DIR) as server:
        configure(home, spec, server.base_url, server.reference_date, memory_limit)
        create_key_file(default_key_file({"SAMVERKAN_HOME": str(home)}))
        day = (server.reference_date - dt.timedelta(days=1)).isoformat()
        backfill = run_measured(
            "world: backfill", [sys.executable, "-m", "samverkan.cli", "backfill", "--from", day,
                                "--to", day],
            env=clean_env(home, **{TOKEN_ENV: token, "PREFECT_API_URL": prefect_api_url}),
            cwd=ROOT, log_file=log_file, marks=(BUILD_MARK,))
        simulator_peak = server.peak_rss_bytes()
        reference_date = server.reference_date
    if not backfill.ok:
        raise RuntimeError(f"building the world failed: samverkan backfill: {backfill.error} "
                           f"(see {log_file})")
    world = World(spec, directory, reference_date, round(time.monotonic() - started, 1),
                  round(backfill.wall_seconds, 1), backfill.peak_rss_bytes, simulator_peak,
                  raw_rows(home), models_version, backfill.peak_before.get(BUILD_MARK, 0))
    world.save(building)
    if directory.exists():
        shutil.rmtree(directory)
    building.rename(directory)
    say(f"World: built in {world.built_seconds:.0f} s (backfill {world.backfill_seconds:.0f} s, "
        f"peak {world.backfill_peak_rss_bytes / 2**30:.1f} GiB, before its build "
        f"{world.backfill_pull_peak_rss_bytes / 2**30:.1f} GiB; simulator peak "
        f"{simulator_peak / 2**30:.1f} GiB)")
    return World.load(directory)


def rebuild_models(world: World, log_file: Path, say: Any = print) -> None:
    """The cached world's models rebuilt from its raw tables by the current models (``dbt build
    --full-refresh`` as the pipeline's transform step runs it, at the day before the reference
    date), in place: the models or the steps changed since the world was built."""
    from samverkan.bench.measure import run_measured

    say("World: the models changed since it was built; rebuilding them (dbt build "
        "--full-refresh at the day before the reference date, once) …")
    rebuilt = run_measured(
        "world: rebuild models", [sys.executable, "-m", "samverkan.bench.child", "transform",
                                  "--reference-date", world.loaded_until.isoformat(),
                                  "--full-refresh"],
        env=clean_env(world.home), cwd=ROOT, log_file=log_file)
    if not rebuilt.ok:
        raise RuntimeError(f"rebuilding the world's models failed: {rebuilt.error} (see {log_file})")
    say(f"World: models rebuilt in {rebuilt.wall_seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samverkan.bench.world")
    sub = parser.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--pupils", type=int, required=True)
    s.add_argument("--lessons-per-day", type=int, required=True)
    s.add_argument("--municipality", default="stockholm")
    s.add_argument("--sources", type=Path)
    args = parser.parse_args(argv)
    return serve_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
