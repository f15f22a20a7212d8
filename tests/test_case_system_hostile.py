# ruff: noqa: F811 - the Backend fixtures of test_case_system.py are imported and used by name
"""Hostile input from the case system, against real SQLite, PostgreSQL and MariaDB databases:
null and late change times, repeated keys, implausible dates, errors that quote values, views
larger than a fetch chunk, and the row counts the anomaly gate reads.

Uses the :class:`Backend` abstraction and the fixture rows of ``test_case_system.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_case_system import (  # noqa: F401 - the fixtures are used by name
    FIXTURE,
    Backend,
    _manifest,
    _warehouse,
    backend,
    backend_factory,
    sqlite_backend,
)

from samverkan.config import EXPECTATIONS_DIR, CaseSystemConfig, Paths
from samverkan.extract import SourceState, run_extract
from samverkan.landing import BatchManifest
from samverkan.quality import batch_validator
from samverkan.sources import case_system as cs
from samverkan.sources.case_system import (
    ROW_RULES,
    VIEWS,
    CaseSystemError,
    CaseSystemExtractor,
    view_row_counts,
)
from samverkan.sources.failures import failure_cause

T = dt.datetime
D = dt.date
CONTRACTS = Path(__file__).resolve().parents[1] / "dbt_project" / "SOURCE_CONTRACTS.md"


def _akt(i: int, **kw: object) -> dict[str, object]:
    row: dict[str, object] = dict(aktualisering_id=i, klient_id=1, inkom_datum=D(2025, 3, 1), typ="Anmälan",
                                  anmalare_kategori="Skola", skyddsbedomning_datum=None,
                                  forhandsbedomning_datum=None, beslut=None, stadsdel="Skärholmen",
                                  andrad_tid=T(2025, 3, 1, 12, 0, 0))
    row.update(kw)
    return row


def _insert(b: Backend, view: str, rows: list[dict[str, object]]) -> None:
    md = sa.MetaData(schema=b.schema)
    table = sa.Table(f"t_{view}", md, autoload_with=b.engine)
    with b.engine.begin() as c:
        c.execute(table.insert(), rows)


def _counts(p: Paths, batch_id: str) -> dict[str, tuple[int, int, int]]:
    with _warehouse(p) as wh:
        return {e: (r, lo, q) for e, r, lo, q in wh.execute(
            "select entity, rows_received, rows_loaded, rows_quarantined from load_meta.batch_entities "
            "where batch_id = ?", [batch_id]).fetchall()}


def _quarantine(p: Paths) -> list[tuple[str, str, str]]:
    with _warehouse(p) as wh:
        return wh.execute("select entity, reason, detail from load_meta.quarantine "
                          "order by entity, row_number").fetchall()


# --- null change time: quarantined, once ------------------------------------------------------

def test_null_change_time_is_quarantined_once(backend: Backend, tmp_path: Path) -> None:
    b = backend
    b.reset(FIXTURE)
    _insert(b, "klient", [dict(klient_id=9, personnummer="20120315-0121", fornamn="Ulla", efternamn="Ek",
                               skyddad_identitet=False, andrad_tid=None)])
    p = Paths(tmp_path / "home").ensure()
    ex = CaseSystemExtractor(b.config)
    first = run_extract(p, ex).batches[0]
    assert first.quarantined_by_reason == {"missing_change_time": 1}
    assert first.received == first.loaded + first.quarantined == sum(map(len, FIXTURE.values())) + 1
    assert _quarantine(p) == [("klient", "missing_change_time", "missing andrad_tid")]

    # Every later pull selects the row again, recognises it and skips it: nothing new.
    assert run_extract(p, ex).batches == []
    # A new version of the row (still without a change time) is quarantined again.
    b.execute("update {p}t_klient set skyddad_identitet = :t where klient_id = 9", {"t": True})
    third = run_extract(p, ex).batches
    assert len(third) == 1 and third[0].quarantined_by_reason == {"missing_change_time": 1}
    assert third[0].received == 1 and third[0].loaded == 0
    assert run_extract(p, ex).batches == []


# --- overlap window and re-delivery -----------------------------------------------------------

def test_late_row_inside_the_overlap_window_is_read_and_redelivery_is_skipped(
        backend: Backend, tmp_path: Path) -> None:
    b = backend
    b.reset(FIXTURE)
    p = Paths(tmp_path / "home").ensure()
    ex = CaseSystemExtractor(b.config)  # default overlap 60 minutes
    assert ex.config.overlap_minutes == 60
    run_extract(p, ex)
    newest = T(2025, 3, 10, 16, 45, 0)  # the aktualisering watermark
    # Committed after the pull, with change times before the watermark: 30 min (inside the
    # window) and 3 h (outside: the documented limit of the window).
    _insert(b, "aktualisering", [_akt(7, andrad_tid=newest - dt.timedelta(minutes=30)),
                                 _akt(8, andrad_tid=newest - dt.timedelta(hours=3))])
    second = run_extract(p, ex).batches
    assert len(second) == 1
    assert (second[0].received, second[0].loaded, second[0].quarantined) == (1, 1, 0)
    m = _manifest(p, second[0].batch_id)
    assert m.entities["aktualisering"].rows == 1
    # Row 2 (16:45, the watermark itself) was delivered again by the window and skipped.
    assert m.extra["skipped_already_loaded"]["aktualisering"] == 1
    assert dt.datetime.fromisoformat(m.entities["aktualisering"].watermark_to) == newest  # never back
    with _warehouse(p) as wh:
        ids = [r[0] for r in wh.execute(
            "select aktualisering_id from raw_case_system.aktualisering order by 1").fetchall()]
    assert ids == [1, 2, 3, 7]  # 2 once, 7 picked up, 8 outside the window
    assert run_extract(p, ex).batches == []  # identical re-deliveries never load twice


# --- row faults quarantine rows, the batch loads ----------------------------------------------

def test_row_faults_quarantine_rows_and_the_rest_loads(backend: Backend, tmp_path: Path) -> None:
    b = backend
    b.reset(FIXTURE)
    hostile = [
        _akt(2, **{k: v for k, v in FIXTURE["aktualisering"][1].items() if k != "aktualisering_id"}),  # copy
        _akt(3, andrad_tid=T(2025, 1, 9, 11, 0, 0)),  # a newer version of 3 in the same pull
        _akt(20, inkom_datum=D(2031, 1, 1)),
        _akt(21, inkom_datum=D(1899, 12, 31)),
        _akt(22, typ="Okänd"),
        _akt(23, forhandsbedomning_datum=D(2025, 2, 1)),  # before inkom_datum
        _akt(24, klient_id=None),
        _akt(25),
    ]
    _insert(b, "aktualisering", hostile)
    _insert(b, "utredning", [dict(utredning_id=30, klient_id=1, startdatum=D(2025, 3, 1),
                                  andrad_tid=T(2031, 6, 1, 8, 0, 0))])
    p = Paths(tmp_path / "home").ensure()
    ex = CaseSystemExtractor(b.config)
    result = run_extract(p, ex, batch_validator(ex, p, EXPECTATIONS_DIR))
    assert result.ok, result.batches[0].failed_checks  # the GX safety net passes
    batch = result.batches[0]
    assert batch.quarantined_by_reason == {"duplicate_key": 2, "implausible_date": 3, "unknown_value": 1,
                                           "date_order": 1, "missing_value": 1}
    counts = _counts(p, batch.batch_id)
    assert counts["aktualisering"] == (11, 4, 7)
    assert counts["utredning"] == (3, 2, 1)
    assert all(r == lo + q for r, lo, q in counts.values())
    details = {d for e, r, d in _quarantine(p) if r == "duplicate_key"}
    assert details == {"an identical copy of a row in the same pull (one loads)",
                       "an older version of the key in the same pull (the newest loads)"}
    with _warehouse(p) as wh:
        loaded = wh.execute("select aktualisering_id, andrad_tid from raw_case_system.aktualisering "
                            "order by 1").fetchall()
    assert loaded == [(1, T(2025, 3, 3, 10, 0)), (2, T(2025, 3, 10, 16, 45)), (3, T(2025, 1, 9, 11, 0)),
                      (25, T(2025, 3, 1, 12, 0))]
    m = _manifest(p, batch.batch_id)
    # An implausible change time never moves the watermark.
    assert dt.datetime.fromisoformat(m.entities["utredning"].watermark_to) == T(2025, 3, 20, 9, 0)
    # The 2031 row is selected again every night, recognised and skipped.
    assert run_extract(p, ex, batch_validator(ex, p, EXPECTATIONS_DIR)).batches == []


def test_conflicting_copies_all_quarantine(sqlite_backend: Backend, tmp_path: Path) -> None:
    b = sqlite_backend
    b.reset(FIXTURE)
    _insert(b, "insats", [{**FIXTURE["insats"][1], "avslutsorsak": "Flytt", "slutdatum": D(2025, 4, 2)}])
    p = Paths(tmp_path / "home").ensure()
    batch = run_extract(p, CaseSystemExtractor(b.config)).batches[0]
    assert batch.quarantined_by_reason == {"duplicate_key": 2}
    assert _counts(p, batch.batch_id)["insats"] == (3, 1, 2)


# --- chunked reads ----------------------------------------------------------------------------

def test_view_larger_than_a_chunk_loads_completely(backend: Backend, tmp_path: Path) -> None:
    b = backend
    b.reset(FIXTURE)
    start = T(2025, 1, 1, 0, 0, 0)
    many = [_akt(1000 + i, andrad_tid=start + dt.timedelta(minutes=i)) for i in range(95)]
    many.append(_akt(1000, andrad_tid=start + dt.timedelta(days=30)))  # the key again, chunks later
    many.append(_akt(1001, andrad_tid=None))
    _insert(b, "aktualisering", many)
    p = Paths(tmp_path / "home").ensure()
    ex = CaseSystemExtractor(b.config, chunk_rows=7)
    batch = run_extract(p, ex).batches[0]
    total = len(FIXTURE["aktualisering"]) + len(many)
    assert _counts(p, batch.batch_id)["aktualisering"] == (total, total - 2, 2)
    assert batch.quarantined_by_reason == {"duplicate_key": 1, "missing_change_time": 1}
    m = _manifest(p, batch.batch_id)
    assert dt.datetime.fromisoformat(m.entities["aktualisering"].watermark_to) == T(2025, 3, 10, 16, 45)
    assert run_extract(p, ex).batches == []


# --- errors that quote a value ----------------------------------------------------------------

PNR = "20120315-0121"
PNR_PARTS = ("20120315", "201203150121", "0121")


def _klient_over_text(b: Backend) -> None:
    """The klient view over a text column, so that reading it fails on a personnummer."""
    b.reset(FIXTURE)
    b.execute("drop view {p}klient")
    b.execute("create table {p}t_klient_text (klient_id varchar(40), personnummer varchar(40), "
              "fornamn varchar(40), efternamn varchar(40), skyddad_identitet boolean, andrad_tid timestamp)")
    b.execute("insert into {p}t_klient_text values (:id, :id, 'Ulla', 'Ek', false, :t)",
              {"id": PNR, "t": T(2025, 1, 1, 8, 0)})
    if b.name == "postgresql":
        b.execute("create view {p}klient as select cast(klient_id as bigint) as klient_id, personnummer, "
                  "fornamn, efternamn, skyddad_identitet, andrad_tid from {p}t_klient_text")
    else:
        # MariaDB casts leniently (a warning): a view over a checking function that raises with
        # the value, as a vendor's validation function might.
        b.execute("create function {p}checked_id(v varchar(40)) returns bigint deterministic begin "
                  "declare msg varchar(200); if v not regexp '^[0-9]+$' then "
                  "set msg = concat('invalid klient_id ''', v, ''' (', v, ')'); "
                  "signal sqlstate '22018' set message_text = msg; end if; return cast(v as signed); end")
        b.execute("create view {p}klient as select {p}checked_id(klient_id) as klient_id, personnummer, "
                  "fornamn, efternamn, skyddad_identitet, andrad_tid from {p}t_klient_text")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_read_error_quoting_a_personnummer_is_scrubbed(backend: Backend, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    b = backend
    _klient_over_text(b)
    # The driver's own message does quote it (the point of the test).
    with pytest.raises(sa.exc.DBAPIError) as raw, b.engine.connect() as c:
        c.execute(sa.text(f"select klient_id from {b.prefix}klient")).fetchall()
    assert PNR in str(raw.value)
    p = Paths(tmp_path / "home").ensure()
    caplog.set_level(logging.DEBUG, logger="samverkan")
    with pytest.raises(CaseSystemError) as err:
        run_extract(p, CaseSystemExtractor(b.config))
    message, cause = str(err.value), failure_cause(err.value)
    assert f"cannot read view {b.prefix}klient" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    out = capsys.readouterr()
    for text in (message, cause, caplog.text, out.out, out.err):
        assert not any(part in text for part in PNR_PARTS), text
    assert not re.search(r"\d{6}[-+]?\d{4}", message + cause + caplog.text)


# --- row counts for the anomaly gate ----------------------------------------------------------

def test_view_row_counts(backend: Backend) -> None:
    b = backend
    b.reset(FIXTURE)
    assert view_row_counts(b.config) == {v: len(rows) for v, rows in FIXTURE.items()}
    b.execute("delete from {p}t_klient")
    assert view_row_counts(b.config)["klient"] == 0
    b.execute("drop view {p}gallring")
    with pytest.raises(CaseSystemError, match=rf"cannot count the rows of view {b.prefix}gallring") as err:
        view_row_counts(b.config)
    assert "[SQL" not in str(err.value) and "Traceback" not in str(err.value)


def test_view_row_counts_hides_the_password() -> None:
    url = "postgresql+psycopg://samverkan:S3cret-pw@127.0.0.1:1/cases"
    with pytest.raises(CaseSystemError) as err:
        view_row_counts(CaseSystemConfig(url=url, schema="dbo"))
    assert "S3cret-pw" not in str(err.value)


# --- the declared table -----------------------------------------------------------------------

def test_row_rules_are_documented_and_agree_with_the_suites() -> None:
    doc = CONTRACTS.read_text(encoding="utf-8")
    section = doc[doc.index("### Row faults and batch faults"):]
    for view, rules in ROW_RULES.items():
        for rule in rules:
            assert f"`{rule.reason}`" in section, (view, rule.reason)
    for code in cs.BATCH_FAULTS:
        assert f"`{code}`" in section, code
    # The row rules quarantine every row-level fault before the suites run, so a suite holds
    # only the key checks, kept as the post-quarantine invariant of missing_key and
    # duplicate_key (the rule that compares rows); a row check there could never fail.
    for spec in VIEWS:
        reasons = {r.reason for r in ROW_RULES[spec.name]}
        assert {"missing_key", "duplicate_key"} <= reasons, spec.name
        suite = json.loads((EXPECTATIONS_DIR / f"case_system.{spec.name}.json").read_text(encoding="utf-8"))
        found = set()
        for exp in suite["expectations"]:
            kwargs = exp["kwargs"]
            columns = tuple(kwargs.get("column_list") or [kwargs.get("column")])
            found.add((exp["type"], columns))
        unique = (("expect_column_values_to_be_unique", spec.key) if len(spec.key) == 1
                  else ("expect_compound_columns_to_be_unique", spec.key))
        assert found == {("expect_column_values_to_not_be_null", (k,)) for k in spec.key} | {unique}, \
            (spec.name, found)
    assert "only the key checks" in section


def test_pull_context_without_a_warehouse_history(sqlite_backend: Backend) -> None:
    sqlite_backend.reset(FIXTURE)
    pull = CaseSystemExtractor(sqlite_backend.config).pull(SourceState(watermarks={}))
    assert pull.extra["skipped_already_loaded"] == {v.name: 0 for v in VIEWS}


def _benchmark_module():  # noqa: ANN202 - the benchmark script's module
    import importlib.util

    path = Path(__file__).parent / "benchmarks" / "case_system_large_view.py"
    spec = importlib.util.spec_from_file_location("case_system_large_view", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_view_is_landed_chunk_by_chunk(tmp_path: Path) -> None:
    """Each chunk of the cursor becomes a row group of the landing file as it arrives (the
    pull never gathers a view); the file holds what an in-memory pull returns, the checksum
    is the one recomputed from the source rows, and the pull's spool directory is gone."""
    import sqlite3

    import pyarrow.parquet as pq

    database = tmp_path / "cases.db"
    _benchmark_module().build_case_system(database, rows=1_000, clients=50)
    extractor = CaseSystemExtractor(CaseSystemConfig(url=f"sqlite:///{database}"), chunk_rows=100)
    p = Paths(tmp_path / "home").ensure()
    (b,) = run_extract(p, extractor).batches
    assert b.valid and b.received == b.loaded + b.quarantined == 1_050
    manifest = BatchManifest.read(next((p.landing / "case_system").glob("case_system-*")))
    landed = pq.ParquetFile(manifest.entity_path("aktualisering"))
    assert (landed.metadata.num_rows, landed.metadata.num_row_groups) == (1_000, 10)
    assert pq.ParquetFile(manifest.entity_path("klient")).metadata.num_row_groups == 1
    in_memory = extractor.pull(SourceState(watermarks={})).tables["aktualisering"]
    assert landed.read().equals(in_memory)
    columns = ", ".join(cs.VIEW_BY_NAME["aktualisering"].column_names)
    with sqlite3.connect(database) as conn:
        rows = conn.execute(f"select {columns} from aktualisering").fetchall()  # noqa: S608
    assert manifest.entities["aktualisering"].content_checksum == cs.rows_checksum(rows)
    assert [d.name for d in (p.landing / "case_system").iterdir()] == [manifest.batch_id]
