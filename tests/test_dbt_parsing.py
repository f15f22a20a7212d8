"""dbt parses the project once per project version (samverkan/run_parameters.py,
samverkan/transform.py): a build with a new reference date or data version reuses the parse
(the per-run values reach the models through the connection, not dbt's --vars), a new data
directory starts from the parse cache, an edited model is parsed again, and a data directory
built from another checkout does not reuse that checkout's parse.

Real dbt builds of one model (int_periods, which reads nothing but the run parameters) on a
copy of the dbt project, so that the test can edit a model without touching the project the
other tests build."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import MUNICIPALITY_VARS, write_reference

from samverkan import transform
from samverkan.config import DBT_PROJECT_DIR, Paths
from samverkan.run_parameters import RunParameterError, run_parameter_macros_sql, run_parameters_env

TEST_KEY = "samverkan-test-key-parse-5c1e9a7b3d2f4e60"
FULL_PARSE = "Unable to do partial parsing"
NO_CHANGES = "Nothing changed, skipping partial parsing."
EDIT = "-- edited by test_dbt_parsing"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the dbt project that run_dbt builds, and a parse cache of this test's own."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", copy)
    monkeypatch.setenv(transform.PARSE_CACHE_ENV, str(tmp_path / "parse-cache"))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    return copy


def build(home: Path, reference_date: str, version: str) -> str:
    """Build int_periods (and its tests) in ``home``; returns what dbt logged meanwhile."""
    paths = Paths(home)
    if not paths.reference.exists():
        write_reference(home)
    log = transform.dbt_log_dir(paths) / "dbt.log"
    before = log.stat().st_size if log.exists() else 0
    level = transform.log.level
    transform.log.setLevel(logging.DEBUG)  # as `samverkan -v`: dbt's debug lines in its log
    try:
        outcome = transform.dbt_build(
            paths, {"reference_date": reference_date, "data_version": version, **MUNICIPALITY_VARS},
            extra_args=["--select", "int_periods"])
    finally:
        transform.log.setLevel(level)
    assert outcome.success, outcome.failures
    with log.open("rb") as fh:
        fh.seek(before)
        return fh.read().decode("utf-8", errors="replace")


def running_month(home: Path) -> dt.date:
    conn = duckdb.connect(str(Paths(home).restricted_db), read_only=True)
    try:
        return conn.execute("select period_start from intermediate.int_periods "
                            "where period_type = 'manad' and is_running_period").fetchone()[0]
    finally:
        conn.close()


def compiled_model(home: Path) -> str:
    return (Paths(home).dbt_target / "compiled" / "samverkan" / "models" / "intermediate"
            / "int_periods.sql").read_text(encoding="utf-8")


def test_new_run_values_reuse_the_parse_and_an_edited_model_is_parsed_again(
        project: Path, tmp_path: Path) -> None:
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"

    log = build(first, "2026-03-20", "v1")
    assert f"{FULL_PARSE} because saved manifest not found" in log
    assert running_month(first) == dt.date(2026, 3, 1)
    # dbt's state check hashes the vars: the per-run values are not among them
    vars_line = next(line for line in log.splitlines() if "checksum:" in line and "vars:" in line)
    assert "reference_date" not in vars_line and "data_version" not in vars_line

    # the next run: another reference date and version, the same parse
    log = build(first, "2026-04-02", "v2")
    assert FULL_PARSE not in log
    assert NO_CHANGES in log
    assert running_month(first) == dt.date(2026, 4, 1)

    # a new data directory starts from the cached parse
    log = build(second, "2026-05-05", "v3")
    assert FULL_PARSE not in log
    assert NO_CHANGES in log
    assert running_month(second) == dt.date(2026, 5, 1)

    # an edited model is parsed again (that file only), in a data directory that has a parse
    model = project / "models" / "intermediate" / "int_periods.sql"
    model.write_text(model.read_text(encoding="utf-8") + f"\n{EDIT}\n", encoding="utf-8")
    log = build(first, "2026-05-05", "v4")
    assert FULL_PARSE not in log
    assert "Partial parsing enabled: 0 files deleted, 0 files added, 1 files changed." in log
    assert EDIT in compiled_model(first)
    # and a new data directory never gets the parse of the project before the edit
    build(third, "2026-05-05", "v5")
    assert EDIT in compiled_model(third)

    # the parses hold no key and no data directory (the key is bound per connection)
    cache = tmp_path / "parse-cache"
    assert sorted(cache.glob("*.msgpack"))
    for parsed in [*cache.glob("*.msgpack"), *(Paths(h).dbt_target / transform.PARTIAL_PARSE_FILE
                                               for h in (first, second, third))]:
        data = parsed.read_bytes()
        assert TEST_KEY.encode() not in data
        assert str(tmp_path / "first").encode() not in data


def test_a_parse_of_another_checkout_is_not_reused(project: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    build(home, "2026-03-20", "v1")
    # the same data directory built from another checkout (an upgrade in a new folder), whose
    # model differs: not a partial parse of the first checkout's parse
    other = tmp_path / "other" / "dbt_project"
    shutil.copytree(project, other)
    model = other / "models" / "intermediate" / "int_periods.sql"
    model.write_text(model.read_text(encoding="utf-8") + f"\n{EDIT}\n", encoding="utf-8")
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", other)
    log = build(home, "2026-04-02", "v2")
    assert f"{FULL_PARSE} because saved manifest not found" in log
    assert EDIT in compiled_model(home)
    assert (Paths(home).dbt_target / transform.PARSE_PROJECT_FILE).read_text(encoding="utf-8") == \
        str(other.resolve())
    # back to the first checkout: the cache's parse of it, without the edit
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", project)
    log = build(home, "2026-04-03", "v3")
    assert FULL_PARSE not in log
    assert EDIT not in compiled_model(home)
    # and the next run from it reuses the data directory's own parse
    log = build(home, "2026-04-04", "v4")
    assert NO_CHANGES in log


def test_run_parameters_are_constants_on_the_connection() -> None:
    env = run_parameters_env({"reference_date": dt.date(2026, 3, 20), "data_version": "v'1"})
    conn = duckdb.connect()
    try:
        conn.execute(run_parameter_macros_sql(env))
        assert conn.execute("select samverkan_run_reference_date(), samverkan_run_data_version(), "
                            "samverkan_run_attendance_logic_fingerprint()").fetchone() == (
            dt.date(2026, 3, 20), "v'1", "")
        # a constant once bound: the plan filters on the literal date
        plan = conn.execute("explain select * from range(10) as t(i) "
                            "where date '2026-01-01' + cast(i as integer) <= samverkan_run_reference_date()"
                            ).fetchall()
        assert "samverkan_run_reference_date" not in str(plan)
        # without values: today in Stockholm, 'dev', ''
        conn.execute(run_parameter_macros_sql({}, today=dt.date(2026, 1, 2)))
        assert conn.execute("select samverkan_run_reference_date(), samverkan_run_data_version()"
                            ).fetchone() == (dt.date(2026, 1, 2), "dev")
    finally:
        conn.close()
    with pytest.raises(RunParameterError, match="reference_date must be an ISO date"):
        run_parameters_env({"reference_date": "20 mars"})
    outcome = transform.run_dbt(["build"], Paths(Path("/nonexistent")), {"reference_date": "x"})
    assert not outcome.success and outcome.failures[0].node == "run_parameters"


def test_the_parse_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(transform.PARSE_CACHE_ENV, " ")
    assert transform.parse_cache_dir() is None
    monkeypatch.setenv(transform.PARSE_CACHE_ENV, str(tmp_path / "cache"))
    assert transform.parse_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(transform.PARSE_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert transform.parse_cache_dir() == tmp_path / "xdg" / "samverkan" / "dbt-parse"


def test_no_view_reads_a_run_parameter(tmp_path: Path) -> None:
    """A view keeps its SQL, and the run parameters are macros of dbt's connections only: a
    model that reads one must be a table (materialised while dbt's connection has them)."""
    import json

    outcome = transform.dbt_parse(Paths(tmp_path / "home"), target_path=tmp_path / "target")
    assert outcome.success, outcome.failures
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    macros = manifest["macros"]
    run_parameter = "macro.samverkan.run_parameter"

    def reads_run_parameter(uid: str, seen: set[str]) -> bool:
        if uid == run_parameter:
            return True
        if uid in seen or uid not in macros:
            return False
        seen.add(uid)
        return any(reads_run_parameter(m, seen) for m in macros[uid]["depends_on"]["macros"])

    readers = {n["name"]: n["config"]["materialized"] for n in manifest["nodes"].values()
               if n["resource_type"] == "model"
               and any(reads_run_parameter(m, set()) for m in n["depends_on"]["macros"])}
    assert {"int_periods", "published_indicators", "stg_ss12000__batch_lesson_days",
            "stg_ss12000__persons"} <= set(readers)
    assert not {name for name, materialized in readers.items() if materialized == "view"}, readers
