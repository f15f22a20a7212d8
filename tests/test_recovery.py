"""Kill-and-rerun: an extract killed (SIGKILL) at any point, then run again, leaves the
restricted warehouse exactly as an uninterrupted extract does, and a watermark never moves
past data that was not loaded.

Real components: a simulated municipality (SS 12000 server on 127.0.0.1 in this process, a
SQLite case system, a police CSV inbox), the real ``steps.extract(load_settings(), source)``
(Great Expectations validation, DuckDB warehouse) in a separate process that pauses at a named
point in ``samverkan.extract`` (``SAMVERKAN_PAUSE_AT``) and is killed there with SIGKILL.

Importing Great Expectations costs seconds of CPU per interpreter, so one launcher interpreter
imports the pipeline once and forks one process per case (all run in parallel); each forked
process sets its environment and makes the same call as a fresh
``python -c "...; steps.extract(load_settings(), source)"`` would. The re-runs happen in this
process.

Every interrupted extract gets its own empty data directory; the reference is one
uninterrupted extract of all three sources into another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from samverkan.config import Paths, load_settings
from samverkan.landing import list_batches

REPO = Path(__file__).resolve().parent.parent
PUPILS = 120
SEED = 11
# Points in samverkan.extract (and the SS 12000 page loop) where the subprocess is killed.
POINTS = ("after_pull", "after_land", "after_validate", "before_commit", "after_commit")
CASES = ([("ss12000", "ss12000_after_first_page")]
         + [(source, p) for source in ("ss12000", "case_system", "police") for p in POINTS])
# Killed before the load committed: the warehouse must hold nothing of the batch.
UNCOMMITTED = {"ss12000_after_first_page", "after_pull", "after_land", "after_validate",
               "before_commit"}
LANDED = {"after_land", "after_validate", "before_commit", "after_commit"}
# The SS 12000 deletions watermark is the time of the pull (deletions carry no timestamp), so
# two runs differ in its value; only its presence is compared.
CLOCK_WATERMARKS = {("ss12000", "deleted_entities")}
EXCLUDED_COLUMNS = {"batch_id", "loaded_at", "updated_at", "validated_at"}
PAUSE_TIMEOUT_S = 240.0
TEST_KEY = "samverkan-recovery-test-key-0123456789-abcdef"


@dataclass
class World:
    env: dict[str, str]  # the environment of the extracts (token, key), without SAMVERKAN_HOME
    reference: Paths  # one uninterrupted extract of every source
    killed: dict[tuple[str, str], Paths]  # (source, point) -> data directory of the killed run


def _home(root: Path, name: str, base_url: str, sources: Any) -> Paths:
    from samverkan.demo import write_demo_config

    p = Paths(root / name)
    p.home.mkdir(parents=True)
    write_demo_config(p, base_url, sources)
    return p


def _settings(env: dict[str, str], p: Paths):  # noqa: ANN202 - samverkan.config.Settings
    return load_settings({**env, "SAMVERKAN_HOME": str(p.home)})


def _add_police_file_with_a_bad_row(inbox: Path) -> None:
    """One more delivery: a good row and a row with an impossible date (to be quarantined)."""
    files = sorted(inbox.glob("polis_*.csv"))
    last = files[-1]
    lines = last.read_bytes().splitlines()
    header, row = lines[0], lines[1]
    fields = row.split(b";")
    fields[0] = b"5000-K999999-99"
    bad = list(fields)
    bad[1] = b"2025-02-30"
    day = dt.datetime.strptime(last.stem.split("_", 1)[1], "%Y%m%d").date() + dt.timedelta(days=1)
    (inbox / f"polis_{day:%Y%m%d}.csv").write_bytes(
        b"\r\n".join([header, b";".join(fields), b";".join(bad)]) + b"\r\n")


# Imports the pipeline (and Great Expectations) once, then forks one extract per case:
# argv[1] is a JSON list of [source, point, home]. Each forked process writes its pid to
# <home>/pid before it starts, its stderr to <home>/stderr.txt, and the launcher writes its
# wait status to <home>/exit when it ends (a killed process never reaches the end).
LAUNCHER = """
import json, os, sys, traceback
from samverkan.config import load_settings
from samverkan import steps
from samverkan.quality import preload
preload().join()
children = {}
for source, point, home in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(os.path.join(home, 'stderr.txt'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            os.environ.update(SAMVERKAN_HOME=home, SAMVERKAN_PAUSE_AT=point,
                              SAMVERKAN_PAUSE_FILE=os.path.join(home, 'paused'))
            steps.extract(load_settings(), source)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    with open(os.path.join(home, 'pid'), 'w') as fh:
        fh.write(str(pid))
    children[pid] = home
while children:
    pid, status = os.wait()
    with open(os.path.join(children.pop(pid), 'exit'), 'w') as fh:
        fh.write(str(status))
"""


def _pid(p: Paths) -> int | None:
    try:
        return int((p.home / "pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """Simulated sources; one kill per case (processes run in parallel); the reference run."""
    from samverkan import steps
    from samverkan.demo import SimulatedSources
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    root = tmp_path_factory.mktemp("recovery")
    # One lesson a day keeps the SS 12000 batch small (about 20 000 records).
    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=1)
    case_url = f"sqlite:///{root / 'case_system.sqlite'}"
    write_case_system(pop, case_url)
    write_police_files(pop, root / "police_inbox")
    _add_police_file_with_a_bad_row(root / "police_inbox")
    sources = SimulatedSources(pop.reference_date, case_url, root / "police_inbox",
                               root / "ground_truth.csv")
    token = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG", "SAMVERKAN_PAUSE_AT",
                        "SAMVERKAN_PAUSE_FILE")}
    env.update(SAMVERKAN_SS12000_TOKEN=token, SAMVERKAN_PSEUDONYM_KEY=TEST_KEY)
    server = serve(SS12000Data.from_population(pop), token)
    homes = {case: _home(root, f"{case[0]}-{case[1]}", server.base_url, sources)
             for case in CASES}
    with (root / "launcher.txt").open("wb") as launcher_err:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER,
             json.dumps([[s, point, str(homes[(s, point)].home)] for s, point in CASES])],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=launcher_err)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in ("SAMVERKAN_SS12000_TOKEN", "SAMVERKAN_PSEUDONYM_KEY"):
                mp.setenv(k, env[k])

            reference = _home(root, "reference", server.base_url, sources)
            for source in steps.SOURCES:
                result = steps.extract(_settings(env, reference), source)
                assert result.ok and len(result.batches) == 1, source

            killed: dict[tuple[str, str], Paths] = {}
            deadline = time.monotonic() + PAUSE_TIMEOUT_S
            while len(killed) < len(homes):
                for case, p in homes.items():
                    if case in killed:
                        continue
                    pid = _pid(p)
                    if pid is not None and (p.home / "paused").exists():
                        os.kill(pid, signal.SIGKILL)
                        killed[case] = p
                    elif (p.home / "exit").exists() or launcher.poll() is not None:
                        err = ((p.home / "stderr.txt").read_text(errors="replace")[-3000:]
                               if (p.home / "stderr.txt").exists()
                               else (root / "launcher.txt").read_text(errors="replace")[-3000:])
                        pytest.fail(f"{case}: the extract ended without reaching the pause "
                                    f"point:\n{err}")
                if time.monotonic() > deadline:
                    pytest.fail(f"not all extracts reached their pause point within "
                                f"{PAUSE_TIMEOUT_S} s: {sorted(set(homes) - set(killed))}")
                time.sleep(0.05)
            launcher.wait(timeout=30)
            for case, p in homes.items():
                status = int((p.home / "exit").read_text())
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, case
            yield World(env, reference, killed)
    finally:
        for p in homes.values():
            pid = _pid(p)
            if pid is not None and not (p.home / "exit").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait()
        server.stop()


# --- snapshots ------------------------------------------------------------------------------

def _connect(p: Paths) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(p.restricted_db), read_only=True)


def _checksum(conn: duckdb.DuckDBPyConnection, schema: str, table: str,
              where: str = "", params: list[Any] | None = None) -> tuple[int, int]:
    """Row count and an order-independent checksum (sum of row hashes, so duplicates count)
    of the rows, without the columns that name the batch or the time of loading."""
    columns = [r[0] for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = ? "
        "and table_name = ? order by ordinal_position", [schema, table]).fetchall()
        if r[0] not in EXCLUDED_COLUMNS]
    cols = ", ".join(f'"{c}"' for c in columns)
    count, total = conn.execute(
        f'select count(*), coalesce(sum(hash({cols})::hugeint), 0) from "{schema}"."{table}" {where}',
        params or []).fetchone()
    return int(count), int(total)


def snapshot(p: Paths, source: str) -> dict[str, Any]:
    """What the warehouse holds for ``source``, independent of batch ids and load times."""
    conn = _connect(p)
    try:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "order by table_name", [f"raw_{source}"]).fetchall()]
        snap: dict[str, Any] = {f"raw_{source}.{t}": _checksum(conn, f"raw_{source}", t)
                                for t in tables}
        for table in ("quarantine", "source_files"):
            snap[f"load_meta.{table}"] = _checksum(conn, "load_meta", table, "where source = ?",
                                                   [source])
        snap["watermarks"] = {
            entity: ("<present>" if (source, entity) in CLOCK_WATERMARKS else value)
            for entity, value in conn.execute(
                "select entity, watermark from load_meta.watermarks where source = ?",
                [source]).fetchall()}
        snap["batches"] = conn.execute(
            "select count(*), sum(rows_received), sum(rows_loaded), sum(rows_quarantined) "
            "from load_meta.batches where source = ?", [source]).fetchone()
        snap["batch_entities"] = sorted(conn.execute(
            "select e.entity, e.rows_received, e.rows_loaded, e.rows_quarantined "
            "from load_meta.batch_entities e join load_meta.batches b using (batch_id) "
            "where b.source = ?", [source]).fetchall())
        snap["validations"] = conn.execute(
            "select count(*), bool_and(success) from load_meta.batch_validations where source = ?",
            [source]).fetchone()
    finally:
        conn.close()
    return snap


def assert_no_watermark_without_its_batch(p: Paths, source: str) -> None:
    """Every watermark was written by a committed batch that carried it, and every stored row
    belongs to a committed batch."""
    conn = _connect(p)
    try:
        batches = {b: json.loads(wm) if wm else {} for b, wm in conn.execute(
            "select batch_id, watermark_to from load_meta.batches where source = ?",
            [source]).fetchall()}
        for entity, value in conn.execute(
                "select entity, watermark from load_meta.watermarks where source = ?",
                [source]).fetchall():
            assert any(wm.get(entity) == value for wm in batches.values()), \
                f"{source}.{entity}: watermark without a loaded batch that reached it"
        stored: set[str] = set()
        for (table,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [f"raw_{source}"]).fetchall():
            stored |= {r[0] for r in conn.execute(
                f'select distinct batch_id from "raw_{source}"."{table}"').fetchall()}
        for table in ("quarantine", "source_files", "batch_validations"):
            stored |= {r[0] for r in conn.execute(
                f"select distinct batch_id from load_meta.{table} where source = ?",
                [source]).fetchall()}
        assert stored <= set(batches), f"{source}: rows of batches that were never committed"
        orphans = conn.execute("select count(*) from load_meta.batch_entities "
                               "where batch_id not in (select batch_id from load_meta.batches)"
                               ).fetchone()[0]
        assert orphans == 0, "load records of batches that were never committed"
    finally:
        conn.close()


def _landing_state(p: Paths, source: str) -> tuple[int, list[str]]:
    directory = p.landing / source
    temporaries = sorted(d.name for d in directory.iterdir()
                         if d.name.startswith(".")) if directory.exists() else []
    return len(list_batches(p.landing, source)), temporaries


def _empty(snap: dict[str, Any]) -> bool:
    counts = [v[0] for k, v in snap.items() if k.startswith(("raw_", "load_meta."))]
    return (not any(counts) and not snap["watermarks"] and snap["batches"][0] == 0
            and snap["validations"][0] == 0)


# --- tests ----------------------------------------------------------------------------------

def test_reference_run_is_complete_and_a_second_run_changes_nothing(world):
    from samverkan import steps

    p = world.reference
    before = {s: snapshot(p, s) for s in steps.SOURCES}
    for s, snap in before.items():
        assert snap["batches"][0] == 1 and snap["validations"] == (1, True), s
        assert snap["batches"][1] == snap["batches"][2] + snap["batches"][3] > 0, s
        assert_no_watermark_without_its_batch(p, s)
    assert before["police"]["load_meta.quarantine"][0] == 1  # the impossible date
    assert set(before["ss12000"]["watermarks"]) >= {"attendances", "persons", "deleted_entities"}
    assert before["case_system"]["watermarks"]
    for s in steps.SOURCES:
        result = steps.extract(_settings(world.env, p), s)
        assert result.ok and result.batches == [], s
    assert {s: snapshot(p, s) for s in steps.SOURCES} == before
    assert {s: _landing_state(p, s) for s in steps.SOURCES} == {s: (1, []) for s in steps.SOURCES}


@pytest.mark.parametrize(("source", "point"), CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_killed_extract_then_rerun_equals_uninterrupted_run(world, source, point):
    from samverkan import steps

    p = world.killed[(source, point)]
    expected = snapshot(world.reference, source)

    # Right after the kill: no watermark without its batch, nothing half-loaded.
    assert_no_watermark_without_its_batch(p, source)
    after_kill = snapshot(p, source)
    if point in UNCOMMITTED:
        assert _empty(after_kill), f"{point}: the warehouse holds data of an uncommitted load"
    else:
        assert after_kill == expected
    assert _landing_state(p, source)[0] == (1 if point in LANDED else 0)

    # Re-run (no pause): the landed batch is recovered, or the window pulled again.
    result = steps.extract(_settings(world.env, p), source)
    assert result.ok
    if point == "after_commit":
        assert result.batches == []
    else:
        assert len(result.batches) == 1
        assert result.batches[0].recovered is (point in LANDED)
    assert snapshot(p, source) == expected
    assert_no_watermark_without_its_batch(p, source)
    assert _landing_state(p, source) == (1, [])

    # And once more: nothing new, nothing duplicated.
    result = steps.extract(_settings(world.env, p), source)
    assert result.ok and result.batches == []
    assert snapshot(p, source) == expected
    assert _landing_state(p, source) == (1, [])
