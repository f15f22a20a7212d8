"""The zones of a data directory: modes, what the published zone may hold, the analysts' zone,
one run at a time, scratch files, and waiting for a warehouse file another process holds.

One small simulated municipality (the SS 12000 server on 127.0.0.1, a SQLite case system, a
police CSV inbox) and the real `samverkan run` (its Prefect flows, on the test worker's Prefect
server) in a subprocess; the lock holders are real processes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from samverkan.config import Paths
from samverkan.config.settings import wal_file

ROOT = Path(__file__).resolve().parent.parent
SEED = 11
PUPILS = 150
LESSONS_PER_DAY = 1
TEST_KEY = "samverkan-test-key-0123456789-abcdefghij"
# Column names of person-level data: a pseudonym or an identifier.
PERSON_COLUMN = re.compile(r"pseudonym|pnr|personnummer|person_id|civic|samordningsnummer|birth",
                           re.IGNORECASE)
PSEUDONYM_VALUE = re.compile(r"\b[0-9a-f]{64}\b")
PUBLISHED_FILES = {"indicators.csv", "indicators.parquet", "indicators.xlsx", "indikatorer.csv",
                   "lagesbild.csv", "lagesbild.parquet", "report.html", "manifest.json"}


@dataclass
class World:
    home: Path
    paths: Paths
    env: dict[str, str]
    stale_scratch: Path
    first_run: subprocess.CompletedProcess


def _cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samverkan.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_api_url: str) -> Iterator[World]:
    """A small municipality and one `samverkan run`; before it, a scratch file a killed
    validation left (fresh: the run must remove it all the same)."""
    from samverkan.demo import TOKEN_ENV, SimulatedSources, write_demo_config
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    home = tmp_path_factory.mktemp("zones") / "home"
    p = Paths(home)
    p.simulator.mkdir(parents=True)
    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY)
    url = f"sqlite:///{p.simulator / 'case_system.sqlite'}"
    write_case_system(pop, url)
    inbox = p.simulator / "police_inbox"
    write_police_files(pop, inbox)
    # what a run killed during batch validation leaves behind (an old installation's modes)
    p.scratch.mkdir(parents=True)
    p.validation.chmod(0o755)
    p.scratch.chmod(0o755)
    stale = p.scratch / "ss12000-20260101T000000-abcdef-0123abcd.duckdb"
    conn = duckdb.connect(str(stale))
    conn.execute("create table raw as select 'left by a killed run' as what")
    conn.close()
    token = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG")}
    env.update({"SAMVERKAN_HOME": str(home), "SAMVERKAN_PSEUDONYM_KEY": TEST_KEY, TOKEN_ENV: token,
                "PREFECT_API_URL": prefect_api_url})
    data = SS12000Data.from_population(pop)
    with serve(data, token) as server:
        write_demo_config(p, server.base_url, SimulatedSources(
            pop.reference_date, url, inbox, p.simulator / "ground_truth.csv"))
        first = _cli(env, "run")
        yield World(home, p, env, stale, first)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _tree(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def test_the_run_publishes(world: World) -> None:
    assert world.first_run.returncode == 0, world.first_run.stdout[-3000:] + world.first_run.stderr[-3000:]


def test_owner_only_zones(world: World) -> None:
    """Landing, the warehouse (both DuckDB files), validation with its scratch folder, keys,
    run and logs: folders 0700, files 0600; nothing there readable by group or others."""
    p = world.paths
    assert p.restricted_db.exists() and p.analytics_db.exists()
    assert list(p.landing.rglob("*.parquet"))
    checked = 0
    for zone in (p.landing, p.warehouse, p.validation, p.scratch, p.keys, p.run_state, p.logs):
        assert _mode(zone) == 0o700, f"{zone}: {_mode(zone):04o}"
        for path in _tree(zone):
            if path.is_symlink():
                continue
            expected = 0o700 if path.is_dir() else 0o600
            assert _mode(path) == expected, f"{path}: {_mode(path):04o}"
            checked += 1
    assert checked > 50
    for database in (p.restricted_db, p.analytics_db):
        assert _mode(database) == 0o600


def test_published_zone_is_group_readable_at_most_and_holds_aggregates_only(world: World) -> None:
    p = world.paths
    current = p.current_publication
    assert current.is_symlink()
    assert {f.name for f in current.resolve().iterdir()} == PUBLISHED_FILES
    manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == PUBLISHED_FILES - {"manifest.json"}
    for path in _tree(p.published):
        if path.is_symlink():
            continue
        expected = 0o750 if path.is_dir() else 0o640
        assert _mode(path) == expected, f"{path}: {_mode(path):04o}"
    files = [f for f in p.published.rglob("*") if f.is_file()]
    assert not [f for f in files if f.suffix in (".duckdb", ".wal", ".db", ".sqlite")]
    assert not [f for f in p.published.rglob("dbt_docs")]
    tables = [f for f in files if f.suffix in (".csv", ".parquet", ".xlsx")]
    assert {f.name for f in tables} >= {"indicators.csv", "indicators.parquet", "lagesbild.csv"}
    for path in tables:
        if path.suffix == ".parquet":
            frames = {"": pd.read_parquet(path)}
        elif path.suffix == ".csv":  # indikatorer.csv is for Swedish Excel: BOM and ';'
            frames = {"": pd.read_csv(path, dtype=str, encoding="utf-8-sig",
                                      sep=";" if path.name == "indikatorer.csv" else ",")}
        else:
            frames = pd.read_excel(path, sheet_name=None, dtype=str)
        for sheet, frame in frames.items():
            where = f"{path.name}{'/' + sheet if sheet else ''}"
            assert not [c for c in frame.columns if PERSON_COLUMN.search(str(c))], where
            text = frame.astype(str).to_csv(index=False)
            assert not PSEUDONYM_VALUE.search(text), f"a pseudonym in {where}"
    # every row is an aggregate cell: one per indicator, period, area and breakdown
    cells = pd.read_parquet(current / "indicators.parquet")
    key = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
           "breakdown_value"]
    assert not cells.duplicated(key).any()
    assert set(cells["area_level"]) <= {"stad", "stadsdelsomrade", "sspf_omrade", "skolenhet"}
    assert cells["area_code"].notna().all()
    weekly = pd.read_parquet(current / "lagesbild.parquet")
    assert set(weekly["area_level"]) <= {"stad", "sspf_omrade"}
    html = (current / "report.html").read_text(encoding="utf-8")
    assert not PSEUDONYM_VALUE.search(html)


def test_the_analysts_snapshot_has_a_folder_of_its_own(world: World) -> None:
    p = world.paths
    current = p.analysts / "current"
    assert current.is_symlink() and os.readlink(current) == f"versions/{p.current_publication.resolve().name}"
    snapshot = current / "analytics.duckdb"
    assert _mode(snapshot) == 0o440
    assert (current / "dbt_docs" / "index.html").is_file()
    manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["publication"] == p.current_publication.resolve().name
    assert set(manifest["files"]) == {"analytics.duckdb"}
    for path in _tree(p.analysts):
        if path.is_symlink() or path == snapshot.resolve():
            continue
        expected = 0o750 if path.is_dir() else 0o640
        assert _mode(path) == expected, f"{path}: {_mode(path):04o}"
    conn = duckdb.connect(str(snapshot), read_only=True)
    try:
        assert conn.execute("select count(distinct person_pseudonym) from marts.fct_pupil_periods"
                            ).fetchone()[0] > 0
    finally:
        conn.close()


def test_a_scratch_file_a_killed_run_left_is_removed_when_a_run_starts(world: World) -> None:
    assert world.first_run.returncode == 0
    assert not world.stale_scratch.exists()
    assert list(world.paths.scratch.iterdir()) == []


HOLD_RUN_LOCK = """
import sys, time
from pathlib import Path
from samverkan.config import Paths
from samverkan.locks import run_lock
with run_lock(Paths(Path(sys.argv[1])), "samverkan run") as holder:
    print(holder["started"], flush=True)
    time.sleep(120)
"""


def _holder(code: str, *args: str) -> tuple[subprocess.Popen, str]:
    """A process that takes a lock and says so on its first line (then holds it)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = process.stdout.readline().strip()
    assert line, process.stderr.read()
    return process, line


def test_a_second_run_exits_at_once_naming_the_run_in_progress(world: World) -> None:
    from samverkan.locks import run_lock

    holder, started = _holder(HOLD_RUN_LOCK, str(world.home))
    try:
        before = time.monotonic()
        second = _cli(world.env, "run", timeout=120)
        seconds = time.monotonic() - before
    finally:
        holder.kill()
        holder.wait()
    output = second.stdout + second.stderr
    assert second.returncode == 1, output
    assert f"pid {holder.pid}" in second.stderr and started in second.stderr, output
    assert "a run is in progress" in second.stderr and "samverkan run" in second.stderr
    assert "Traceback" not in output
    assert "Checks passed" not in output  # refused before the checks and Prefect
    assert seconds < 20, seconds
    # the holder died: its lock file stays, but does not block the next run
    assert world.paths.run_lock.exists()
    with run_lock(world.paths, "test") as mine:
        assert mine["pid"] == os.getpid()


HOLD_CONNECTION = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def short_wait(monkeypatch) -> float:
    monkeypatch.setenv("SAMVERKAN_WAREHOUSE_WAIT_SECONDS", "2")
    return 2.0


def test_the_build_waits_for_an_analysts_connection_then_names_the_holder(world: World,
                                                                         short_wait: float) -> None:
    """An analyst's read-only connection on analytics.duckdb: dbt cannot write it. The build
    waits, then fails with one message naming the file and the process, without starting dbt."""
    from samverkan.transform import dbt_build

    holder, _ = _holder(HOLD_CONNECTION, str(world.paths.analytics_db), "read_only")
    try:
        before = time.monotonic()
        outcome = dbt_build(world.paths, {})
        seconds = time.monotonic() - before
    finally:
        holder.kill()
        holder.wait()
    assert not outcome.success
    assert len(outcome.failures) == 1, outcome.failures
    message = outcome.failures[0].message
    assert str(world.paths.analytics_db) in message and f"(PID {holder.pid}" in message, message
    assert "waited 2 s" in message, message
    assert short_wait <= seconds < short_wait + 15, seconds
    assert "Traceback" not in message


def test_the_landing_purge_waits_then_says_who_holds_the_restricted_warehouse(
        world: World, short_wait: float) -> None:
    """An open read-write DuckDB session on restricted.duckdb (the DuckDB CLI's default): the
    purge waits, then raises one clear error; the pipeline's purge step skips with a warning."""
    from samverkan.locks import WarehouseBusy
    from samverkan.retention import purge_landing

    holder, _ = _holder(HOLD_CONNECTION, str(world.paths.restricted_db), "read_write")
    try:
        before = time.monotonic()
        with pytest.raises(WarehouseBusy) as err:
            purge_landing(world.paths, retention_days=0)
        seconds = time.monotonic() - before
    finally:
        holder.kill()
        holder.wait()
    message = str(err.value)
    assert str(world.paths.restricted_db) in message and f"(PID {holder.pid}" in message, message
    assert err.value.pid == holder.pid
    assert short_wait <= seconds < short_wait + 15, seconds
    # released: the purge works again (nothing is old enough with the default retention)
    assert purge_landing(world.paths) == []


def test_an_earlier_release_s_snapshot_is_removed_from_the_published_versions(tmp_path) -> None:
    """Earlier releases put the analysts' snapshot and the dbt docs into each published
    version: a run removes them; the aggregates stay."""
    from samverkan.publish import remove_person_level_from_published

    p = Paths(tmp_path / "home")
    version = p.published / "versions" / "20260101T000000Z"
    (version / "dbt_docs").mkdir(parents=True)
    (version / "dbt_docs" / "index.html").write_text("<html></html>", encoding="utf-8")
    duckdb.connect(str(version / "analytics.duckdb")).close()
    (version / "indicators.csv").write_text("indicator_id\n", encoding="utf-8")
    removed = remove_person_level_from_published(p)
    assert {path.name for path in removed} == {"analytics.duckdb", "dbt_docs"}
    assert sorted(path.name for path in version.iterdir()) == ["indicators.csv"]


def _analytics_warehouse(p: Paths) -> None:
    p.warehouse.mkdir(parents=True)
    conn = duckdb.connect(str(p.analytics_db))
    conn.execute("create schema marts")
    conn.execute("create table marts.fct_pupil_periods as "
                 "select 'p' || range as person_pseudonym, range as offered_minutes from range(1000)")
    conn.close()


def _snapshot_rows(snapshot: Path) -> int:
    conn = duckdb.connect(str(snapshot), read_only=True)
    try:
        return conn.execute("select count(*) from marts.fct_pupil_periods").fetchone()[0]
    finally:
        conn.close()


def test_the_analysts_snapshot_copies_the_warehouse_file_under_a_read_lock(tmp_path, monkeypatch) -> None:
    """The snapshot is the warehouse file, copied while a read-only connection holds it: a
    writer that tries to open the warehouse meanwhile is refused."""
    from samverkan import publish

    p = Paths(tmp_path / "home")
    _analytics_warehouse(p)
    staging = tmp_path / "staging"
    staging.mkdir()
    refused: list[str] = []
    copy = publish.shutil.copyfile

    def copy_while_a_writer_tries(source, target):  # noqa: ANN001, ANN202
        probe = subprocess.run(
            [sys.executable, "-c", f"import duckdb; duckdb.connect({str(p.analytics_db)!r})"],
            capture_output=True, text=True)
        refused.append(probe.stderr)
        return copy(source, target)

    monkeypatch.setattr(publish.shutil, "copyfile", copy_while_a_writer_tries)
    snapshot = publish.write_analytics_snapshot(p, staging)
    assert refused and "lock" in refused[0].lower()
    assert snapshot.read_bytes() == p.analytics_db.read_bytes()
    assert _mode(snapshot) == 0o440
    assert _snapshot_rows(snapshot) == 1000


def test_the_analysts_snapshot_takes_what_a_stopped_writer_left_in_the_wal(tmp_path) -> None:
    """A writer that stopped before its checkpoint leaves rows only in the write-ahead log: a
    copy of the file alone would miss them, so the tables are copied through DuckDB."""
    from samverkan import publish

    p = Paths(tmp_path / "home")
    _analytics_warehouse(p)
    conn = duckdb.connect(str(p.analytics_db))
    conn.execute("pragma disable_checkpoint_on_shutdown")
    conn.execute("set wal_autocheckpoint = '1TB'")
    conn.execute("insert into marts.fct_pupil_periods select 'q' || range, range from range(500)")
    conn.close()
    assert wal_file(p.analytics_db).exists()
    staging = tmp_path / "staging"
    staging.mkdir()
    snapshot = publish.write_analytics_snapshot(p, staging)
    assert _snapshot_rows(snapshot) == 1500
    assert not wal_file(snapshot).exists()
