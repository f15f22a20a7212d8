"""End to end on the embedded default: the `samverkan demo` command, then the same pipeline
in-process for a second run and a broken batch.

Real components throughout: the simulator's SS 12000 server on 127.0.0.1, a SQLite case
system, a police CSV inbox, DuckDB warehouses, dbt, Great Expectations, Prefect (ephemeral).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from samverkan.config import DBT_PROJECT_DIR, Paths
from samverkan.landing import list_batches

SEED = 7
PUPILS = 1200
MIN_CELL = 5
# Shaped like a personnummer/samordningsnummer (plausible month, day or day + 60).
PNR_SHAPE = re.compile(r"(?<!\d)(?:\d{2})?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])"
                       r"[-+ ]?\d{4}(?!\d)")
KEYS = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
        "breakdown_value"]


@dataclass
class Demo:
    home: Path
    paths: Paths
    stdout: str
    stderr: str
    returncode: int


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """`samverkan demo` in a fresh data directory, with no key configured."""
    home = tmp_path_factory.mktemp("e2e") / "data"
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_PSEUDONYM_KEY", "SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG")}
    env["SAMVERKAN_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "samverkan.cli", "demo", "--seed", str(SEED), "--pupils", str(PUPILS)],
        capture_output=True, text=True, env=env, timeout=900, cwd=Path(__file__).parent.parent)
    return Demo(home, Paths(home), result.stdout, result.stderr, result.returncode)


@pytest.fixture(scope="module")
def population():
    from samverkan.simulator.population import generate

    return generate(seed=SEED, pupils=PUPILS)


def test_demo_publishes_and_says_where_the_report_is(demo):
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-5000:]
    current = demo.paths.current_publication
    for name in ("indicators.csv", "indicators.parquet", "report.html", "manifest.json"):
        assert (current / name).is_file(), name
    assert str((current / "report.html").absolute()) in demo.stdout
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["validation"]["success"] is True
    assert {c["name"] for c in manifest["validation"]["checks"]} >= {
        "extract_batches", "dbt_build", "indicator_checkpoint", "disclosure_control"}
    sources = {b["source"] for b in manifest["extract_batches"]}
    assert sources == {"ss12000", "case_system", "police"}
    assert manifest["version"] and manifest["data_version"] == manifest["version"]
    published = pd.read_csv(current / "indicators.csv", dtype=str)
    assert set(published["data_version"]) == {manifest["version"]}
    excluded = manifest["excluded_from_indicators"]
    assert excluded["ss12000"]["protected_identity"]["people"] > 0
    assert excluded["police"]["invalid_identifier_bad_checksum"]["records"] > 0
    assert "kept out of the indicators" in demo.stdout
    key_file = demo.home / "keys" / "pseudonym.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600


def test_report_is_swedish_and_marks_suppressed_cells(demo):
    html = (demo.paths.current_publication / "report.html").read_text(encoding="utf-8")
    assert '<html lang="sv">' in html
    for name in ("Andel elever med hög frånvaro", "Antal orosanmälningar",
                 "Andel förhandsbedömningar inom 14 dagar", "Antal unga misstänkta",
                 "Andel elever med hög frånvaro som också har en orosanmälan",
                 "Barn kända av flera verksamheter"):
        assert name in html
    assert 'class="num suppressed"' in html and "sekretesskäl" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_each_extractor_landed_exactly_what_the_simulator_served(demo, population):
    from samverkan.simulator.ss12000_server import SS12000Data
    from samverkan.sources.case_system import VIEW_BY_NAME
    from samverkan.sources.case_system import rows_checksum as case_rows_checksum
    from samverkan.sources.police import lines_checksum

    data = SS12000Data.from_population(population)
    (ss_batch,) = list_batches(demo.paths.landing, "ss12000")
    for endpoint, entity in (("organisations", "organisations"), ("persons", "persons"),
                             ("calendarEvents", "calendar_events"), ("attendances", "attendances")):
        count, checksum = data.served_checksum(endpoint)
        assert ss_batch.entities[entity].rows == count, entity
        assert ss_batch.entities[entity].content_checksum == checksum, entity

    (case_batch,) = list_batches(demo.paths.landing, "case_system")
    engine = sa.create_engine(f"sqlite:///{demo.paths.simulator / 'case_system.sqlite'}")
    with engine.connect() as conn:
        for view in ("klient", "aktualisering", "utredning", "insats", "gallring"):
            columns = ", ".join(VIEW_BY_NAME[view].column_names)
            rows = conn.execute(sa.text(f"select {columns} from {view}")).all()
            if not rows:
                assert view not in case_batch.entities or case_batch.entities[view].rows == 0
                continue
            assert case_batch.entities[view].rows == len(rows), view
            assert case_batch.entities[view].content_checksum == case_rows_checksum(rows), view
    engine.dispose()

    (police_batch,) = list_batches(demo.paths.landing, "police")
    lines = []
    for path in sorted((demo.paths.simulator / "police_inbox").glob("polis_*.csv")):
        raw = path.read_bytes()
        text = raw[3:].decode("utf-8") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("cp1252")
        lines.extend(line for line in text.replace("\r\n", "\n").split("\n")[1:] if line)
    assert police_batch.entities["events"].rows == len(lines)
    assert police_batch.entities["events"].content_checksum == lines_checksum(lines)

    conn = duckdb.connect(str(demo.paths.restricted_db), read_only=True)
    try:
        loaded = dict(conn.execute(
            "select source, sum(rows_received) from load_meta.batches group by source").fetchall())
        accounted = conn.execute(
            "select count(*) from load_meta.batches "
            "where rows_received <> rows_loaded + rows_quarantined").fetchone()[0]
        attendances = conn.execute("select count(*) from raw_ss12000.attendances").fetchone()[0]
    finally:
        conn.close()
    assert loaded["ss12000"] == ss_batch.row_count
    assert loaded["police"] == police_batch.row_count
    assert accounted == 0
    assert attendances == data.served_checksum("attendances")[0]


def _primary_suppressed(row: pd.Series) -> bool:
    if row["unit"] == "antal":
        return row["numerator"] < MIN_CELL
    n, d = row["numerator"], row["denominator"]
    return d < MIN_CELL or 1 <= n <= MIN_CELL - 1 or 1 <= d - n <= MIN_CELL - 1


def test_published_indicators_equal_the_simulators_ground_truth(demo):
    published = pd.read_csv(demo.paths.current_publication / "indicators.csv",
                            dtype={"area_code": str, "breakdown_value": str})
    truth = pd.read_csv(demo.paths.simulator / "ground_truth.csv",
                        dtype={"area_code": str, "breakdown_value": str})
    assert set(truth["indicator_id"]) >= {
        "hog_franvaro", "orosanmalningar", "forhandsbedomning_14_dagar", "unga_misstankta",
        "hog_franvaro_med_orosanmalan", "kanda_av_flera"}
    published = published[published["indicator_id"].isin(set(truth["indicator_id"]))]
    merged = truth.merge(published, on=KEYS, how="outer", suffixes=("_truth", "_pub"),
                         indicator=True)
    missing = merged[merged["_merge"] != "both"]
    assert missing.empty, f"cells only on one side:\n{missing[KEYS + ['_merge']].head(20)}"
    suppressed = merged[merged["suppressed"].notna()]
    shown = merged[merged["suppressed"].isna()]
    assert len(shown) > 50 and len(suppressed) > 0
    for column in ("numerator", "denominator", "value"):
        a, b = shown[f"{column}_truth"].to_numpy(float), shown[f"{column}_pub"].to_numpy(float)
        both_nan = np.isnan(a) & np.isnan(b)
        close = np.isclose(a, b, rtol=0, atol=1e-9) | both_nan
        bad = shown.loc[~close, KEYS + [f"{column}_truth", f"{column}_pub"]]
        assert bad.empty, f"{column} differs in {len(bad)} cells:\n{bad.head(20)}"
    truth_cells = suppressed.rename(columns={"numerator_truth": "numerator",
                                             "denominator_truth": "denominator",
                                             "unit_truth": "unit"})
    should = truth_cells.apply(_primary_suppressed, axis=1)
    assert should.all(), truth_cells.loc[~should, KEYS]
    # ... and every cell the truth says must be suppressed is suppressed.
    shown_cells = shown.rename(columns={"numerator_truth": "numerator",
                                        "denominator_truth": "denominator", "unit_truth": "unit"})
    assert not shown_cells.apply(_primary_suppressed, axis=1).any()
    assert (suppressed["numerator_pub"].isna() & suppressed["value_pub"].isna()).all()


def _identifier_variants(pop) -> set[str]:
    variants: set[str] = set()
    for pnr in pop.persons["pnr"]:
        variants |= {pnr, pnr[2:], f"{pnr[:8]}-{pnr[8:]}", f"{pnr[2:8]}-{pnr[8:]}"}
    for frame, column in ((pop.klient, "personnummer"), (pop.police_rows, "Personnummer")):
        for value in frame[column].dropna():
            value = str(value).strip()
            if len(re.sub(r"\D", "", value)) >= 10:
                variants.add(value)
    return variants


def _scan_text(text: str, needles: set[str], pattern: re.Pattern[str]) -> set[str]:
    return {m for m in pattern.findall(text) if m in needles}


def test_no_personnummer_or_key_in_analytics_published_target_or_logs(demo, population):
    needles = _identifier_variants(population)
    key = (demo.home / "keys" / "pseudonym.key").read_text().splitlines()[0]
    pattern = re.compile(r"\d{6,8}[-+]?\d{4}")
    problems: list[str] = []

    # The analytics database, through SQL (DuckDB compresses strings on disk) and as bytes.
    conn = duckdb.connect(str(demo.paths.analytics_db), read_only=True)
    try:
        columns = conn.execute(
            "select table_catalog, table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_catalog = 'analytics'").fetchall()
        assert columns, "no varchar columns found in analytics"
        for catalog, schema, table, column in columns:
            # Pseudonyms are 64 hex digits and may hold digit runs by chance: drop hex tokens first.
            values = conn.execute(
                f'select distinct regexp_replace("{column}", \'[0-9a-f]{{32,}}\', \'\', \'g\') '
                f'from "{catalog}"."{schema}"."{table}"').fetchall()
            hits = [v[0] for v in values if v[0] and PNR_SHAPE.search(v[0])]
            if hits:
                problems.append(f"analytics {schema}.{table}.{column}: {len(hits)} identifier-like values")
        for table in ("persons", "klient"):
            assert not conn.execute(
                f"select count(*) from information_schema.tables where table_name = '{table}'"
            ).fetchone()[0]
    finally:
        conn.close()
    raw = demo.paths.analytics_db.read_bytes()
    if key.encode() in raw:
        problems.append("key bytes in analytics.duckdb")

    files = [p for p in demo.paths.published.rglob("*") if p.is_file()]
    files += [p for p in (DBT_PROJECT_DIR / "target").rglob("*") if p.is_file()]
    files += [p for p in demo.paths.logs.rglob("*") if p.is_file()]
    files += [p for p in demo.paths.validation.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).to_csv()
        elif path.suffix == ".duckdb":
            continue
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        if key in text:
            problems.append(f"key in {path}")
        found = _scan_text(text, needles, pattern)
        if found:
            problems.append(f"{len(found)} personnummer in {path}")
    for name, text in (("stdout", demo.stdout), ("stderr", demo.stderr)):
        if key in text:
            problems.append(f"key in demo {name}")
        if _scan_text(text, needles, pattern):
            problems.append(f"personnummer in demo {name}")
    assert not problems, "\n".join(problems)


# --- the same pipeline in-process: nothing new, then a broken batch ----------------------------

@pytest.fixture(scope="module")
def live(demo, population):
    """A fresh SS 12000 server over the same population, and the demo's configuration."""
    from samverkan.demo import SimulatedSources, write_demo_config
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    saved = dict(os.environ)
    os.environ["SAMVERKAN_HOME"] = str(demo.home)
    os.environ.pop("SAMVERKAN_PSEUDONYM_KEY", None)
    os.environ.pop("SAMVERKAN_PSEUDONYM_KEY_FILE", None)
    token = secrets.token_urlsafe(16)
    os.environ["SAMVERKAN_SS12000_TOKEN"] = token
    data = SS12000Data.from_population(population)
    server = serve(data, token)
    sources = SimulatedSources(population.reference_date,
                               f"sqlite:///{demo.paths.simulator / 'case_system.sqlite'}",
                               demo.paths.simulator / "police_inbox",
                               demo.paths.simulator / "ground_truth.csv")
    write_demo_config(demo.paths, server.base_url, sources)
    yield data
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


def _raw_counts(p: Paths) -> dict[str, int]:
    conn = duckdb.connect(str(p.restricted_db), read_only=True)
    try:
        tables = conn.execute("select table_schema, table_name from information_schema.tables "
                              "where table_schema like 'raw_%' or table_schema = 'load_meta'").fetchall()
        return {f"{s}.{t}": conn.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
                for s, t in tables if t != "batch_validations"}
    finally:
        conn.close()


def _tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_second_run_with_nothing_new_adds_nothing(demo, live):
    from samverkan.cli import run_pipeline

    before = _raw_counts(demo.paths)
    sources = ("ss12000", "case_system", "police")
    batches_before = {s: len(list_batches(demo.paths.landing, s)) for s in sources}
    assert run_pipeline(demo.paths, "2026-06-12") == 0
    assert _raw_counts(demo.paths) == before
    assert {s: len(list_batches(demo.paths.landing, s)) for s in batches_before} == batches_before


def test_a_broken_batch_blocks_publication_and_leaves_the_previous_version_untouched(demo, live):
    from samverkan.cli import run_pipeline

    current = demo.paths.current_publication
    target_before = os.readlink(current)
    digest_before = _tree_digest(current.resolve())
    some_id = live.ids("attendances")[0]
    record = live.get("attendances", some_id)
    record["invalidAbsenceMinutes"] = -40  # impossible: negative minutes
    live.upsert("attendances", record, dt.datetime(2026, 6, 12, 18, 0, tzinfo=dt.UTC))

    assert run_pipeline(demo.paths, "2026-06-12") == 1
    assert os.readlink(current) == target_before
    assert _tree_digest(current.resolve()) == digest_before
    gate_reports = sorted(demo.paths.validation.glob("gate-*/gate.json"))
    gate = json.loads(gate_reports[-1].read_text())
    assert gate["success"] is False
    failed = {c["name"] for c in gate["checks"] if not c["success"]}
    assert "extract_batches" in failed
    # The broken batch was landed but not loaded: no negative minutes in the warehouse.
    conn = duckdb.connect(str(demo.paths.restricted_db), read_only=True)
    try:
        assert conn.execute("select count(*) from raw_ss12000.attendances "
                            "where invalid_absence_minutes < 0").fetchone()[0] == 0
    finally:
        conn.close()
