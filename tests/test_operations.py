"""Operations: a backfill over a date range.

One small simulated municipality (the SS 12000 server on 127.0.0.1, a SQLite case system, a
police CSV inbox) and an empty warehouse: `samverkan backfill --from 2026-05-30 --to
2026-06-12` (the real command, its Prefect flow) loads the two weeks day by day and publishes
once; run again, it adds nothing. (The analysts' snapshot is tested in test_end_to_end.py,
read while the second run rebuilds the warehouse.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from samverkan.config import Paths

ROOT = Path(__file__).resolve().parent.parent
SEED = 5
PUPILS = 150
LESSONS_PER_DAY = 1
TEST_KEY = "samverkan-test-key-0123456789-abcdefghij"
DATE_FROM, DATE_TO = dt.date(2026, 5, 30), dt.date(2026, 6, 12)


@dataclass
class World:
    home: Path
    paths: Paths
    env: dict[str, str]
    served_attendances: int


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_api_url: str) -> Iterator[World]:
    from samverkan.demo import TOKEN_ENV, SimulatedSources, write_demo_config
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    home = tmp_path_factory.mktemp("operations") / "home"
    p = Paths(home).ensure()
    p.simulator.mkdir(parents=True)
    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY)
    url = f"sqlite:///{p.simulator / 'case_system.sqlite'}"
    write_case_system(pop, url)
    inbox = p.simulator / "police_inbox"
    write_police_files(pop, inbox)
    token = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG")}
    env.update({"SAMVERKAN_HOME": str(home), "SAMVERKAN_PSEUDONYM_KEY": TEST_KEY, TOKEN_ENV: token,
                "PREFECT_API_URL": prefect_api_url})  # the worker's server (conftest)
    data = SS12000Data.from_population(pop)
    with serve(data, token) as server:
        write_demo_config(p, server.base_url, SimulatedSources(
            pop.reference_date, url, inbox, p.simulator / "ground_truth.csv"))
        yield World(home, p, env, data.served_checksum("attendances")[0])


def _cli(world: World, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samverkan.cli", *args], env=world.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def _versions(p: Paths) -> list[str]:
    versions = p.published / "versions"
    return sorted(d.name for d in versions.iterdir()) if versions.is_dir() else []


def _batches(p: Paths) -> list[tuple[str, str]]:
    conn = duckdb.connect(str(p.restricted_db), read_only=True)
    try:
        return conn.execute("select source, batch_id from load_meta.batches order by 1, 2").fetchall()
    finally:
        conn.close()


def test_backfill_over_two_weeks_publishes_once_and_adds_nothing_on_a_second_run(world: World) -> None:
    first = _cli(world, "backfill", "--from", DATE_FROM.isoformat(), "--to", DATE_TO.isoformat())
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Backfilling 14 days" in first.stdout
    assert len(_versions(world.paths)) == 1
    manifest = json.loads((world.paths.current_publication / "manifest.json").read_text())
    assert manifest["reference_date"] == DATE_TO.isoformat()
    batches = _batches(world.paths)
    per_source = {s: sum(1 for src, _ in batches if src == s) for s in ("ss12000", "case_system", "police")}
    # day-sized batches: the first day brings the history, then one batch per day with changes
    assert per_source["ss12000"] >= 10 and per_source["case_system"] >= 5, per_source
    assert per_source["police"] >= 2, per_source  # police files do not arrive every day
    # every served attendance record was loaded, across the daily batches
    conn = duckdb.connect(str(world.paths.restricted_db), read_only=True)
    try:
        loaded = conn.execute("select count(distinct id) from raw_ss12000.attendances").fetchone()[0]
        last_day_rows = conn.execute(
            "select count(*) from raw_ss12000.attendances "
            "where modified_at > timestamptz '2026-06-12 00:00:00+02'").fetchone()[0]
    finally:
        conn.close()
    assert loaded == world.served_attendances
    assert last_day_rows > 0

    current = world.paths.current_publication.resolve()
    second = _cli(world, "backfill", "--from", DATE_FROM.isoformat(), "--to", DATE_TO.isoformat())
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "nothing was published" in second.stdout
    assert _batches(world.paths) == batches
    assert len(_versions(world.paths)) == 1
    assert world.paths.current_publication.resolve() == current


def test_backfill_refuses_a_range_in_the_wrong_order(world: World) -> None:
    result = _cli(world, "backfill", "--from", "2026-06-12", "--to", "2026-06-01")
    assert result.returncode == 2
    assert "is after --to" in result.stderr and "Traceback" not in result.stderr


def test_a_backfill_after_the_case_system_emptied_waits_for_the_operator(world: World) -> None:
    """A backfill compares what the sources deliver with the last publication, as the nightly
    run does: views that emptied stop publication until the operator confirms it."""
    import sqlite3

    day = DATE_TO.isoformat()
    if not world.paths.current_publication.exists():  # the first test publishes; alone, do it here
        assert _cli(world, "backfill", "--from", day, "--to", day).returncode == 0
    current = world.paths.current_publication.resolve()
    with sqlite3.connect(world.paths.simulator / "case_system.sqlite") as conn:
        for (table,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
            conn.execute(f'delete from "{table}"')  # noqa: S608 - the test's own table names
    blocked = _cli(world, "backfill", "--from", day, "--to", day)
    console = blocked.stdout + blocked.stderr
    assert blocked.returncode == 1 and "Traceback" not in console, console[-3000:]
    line = next(x for x in console.splitlines() if "source_volumes" in x)
    assert "FAIL" in line and "view klient has 0 rows; it had" in line, line
    assert f"`samverkan backfill --from {day} --to {day} --confirm-anomalies`" in line, line
    assert world.paths.current_publication.resolve() == current
    confirmed = _cli(world, "backfill", "--from", day, "--to", day, "--confirm-anomalies")
    assert confirmed.returncode == 0, (confirmed.stdout + confirmed.stderr)[-3000:]
    assert world.paths.current_publication.resolve() == current  # nothing new to publish
    # the confirmed volumes are the new baseline: the next backfill needs no confirmation
    again = _cli(world, "backfill", "--from", day, "--to", day)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
