"""The shared extract procedure on real files and a real DuckDB warehouse.

The source here is a list of rows in a JSON-lines file, read by a small extractor written for
the test; the procedure under test (recover → pull → land → validate → load) is the one every
source uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from samverkan.config import Paths
from samverkan.extract import Pull, SourceState, ValidationOutcome, run_extract
from samverkan.landing import BatchManifest, list_batches
from samverkan.warehouse import AccountingError, EntityCounts, quarantine


class FileSource:
    """Rows {id, modified, minutes} in a JSON-lines file; watermark = highest 'modified'."""

    source = "testsource"

    def __init__(self, path: Path) -> None:
        self.path = path

    def pull(self, state: SourceState) -> Pull:
        wm = state.watermarks.get("items")
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        new = [r for r in rows if wm is None or r["modified"] > wm]
        table = pa.Table.from_pylist(new, schema=pa.schema(
            [("id", pa.string()), ("modified", pa.string()), ("minutes", pa.string())]))
        top = max((r["modified"] for r in new), default=None)
        return Pull({"items": table}, {"items": (wm, top)})

    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        conn.execute("create table if not exists raw_items (batch_id varchar, id varchar, minutes int)")
        path = manifest.entity_path("items")
        conn.execute(
            "insert into raw_items select ?, id, try_cast(minutes as int) from read_parquet(?) "
            "where try_cast(minutes as int) is not null", [manifest.batch_id, str(path)])
        bad = conn.execute(
            "select row_number() over () as row_number, 'bad_integer' as reason, 'minutes' as detail, "
            "id as raw_row from read_parquet(?) where try_cast(minutes as int) is null",
            [str(path)]).arrow()
        bad = bad.read_all() if hasattr(bad, "read_all") else bad
        q = quarantine(conn, manifest, "items", bad)
        received = manifest.entities["items"].rows
        return {"items": EntityCounts(received, received - q, q)}


def write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def warehouse_rows(p: Paths) -> list[tuple]:
    conn = duckdb.connect(str(p.restricted_db), read_only=True)
    try:
        return conn.execute("select id, minutes from raw_items order by id").fetchall()
    finally:
        conn.close()


@pytest.fixture
def setup(tmp_path):
    p = Paths(tmp_path / "home").ensure()
    src = tmp_path / "source.jsonl"
    write_rows(src, [{"id": "a", "modified": "2026-01-01T10:00:00", "minutes": "5"},
                     {"id": "b", "modified": "2026-01-02T10:00:00", "minutes": "x"}])
    return p, src, FileSource(src)


def test_load_accounts_for_every_row_and_second_run_adds_nothing(setup):
    p, src, extractor = setup
    result = run_extract(p, extractor)
    assert [(b.received, b.loaded, b.quarantined) for b in result.batches] == [(2, 1, 1)]
    assert result.batches[0].quarantined_by_reason == {"bad_integer": 1}
    assert warehouse_rows(p) == [("a", 5)]
    again = run_extract(p, extractor)
    assert again.batches == []
    assert len(list_batches(p.landing, "testsource")) == 1
    assert warehouse_rows(p) == [("a", 5)]
    manifest = list_batches(p.landing, "testsource")[0]
    assert manifest.row_count == 2 and manifest.watermark_to == {"items": "2026-01-02T10:00:00"}
    doc = json.loads((manifest.directory / "manifest.json").read_text())
    assert {"batch_id", "source", "extracted_at", "watermark_range", "row_count", "checksum"} <= set(doc)


def test_a_batch_landed_but_not_loaded_is_loaded_by_the_next_run(setup, monkeypatch):
    p, src, extractor = setup

    def crash(*args, **kwargs):
        raise RuntimeError("killed after landing")

    monkeypatch.setattr(extractor, "load", crash)
    with pytest.raises(RuntimeError):
        run_extract(p, extractor)
    assert len(list_batches(p.landing, "testsource")) == 1
    monkeypatch.undo()
    result = run_extract(p, extractor)
    assert [b.recovered for b in result.batches] == [True]
    assert warehouse_rows(p) == [("a", 5)]
    assert run_extract(p, extractor).batches == []


def test_a_rejected_batch_is_not_loaded_and_the_watermark_stays(setup):
    p, src, extractor = setup
    run_extract(p, extractor)
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    write_rows(src, rows + [{"id": "c", "modified": "2026-01-03T10:00:00", "minutes": "-7"}])

    def reject_negative(manifest: BatchManifest) -> ValidationOutcome:
        path = manifest.entity_path("items")
        t = duckdb.sql(f"select min(try_cast(minutes as int)) from read_parquet('{path}')")
        return ValidationOutcome(success=t.fetchone()[0] >= 0, failed_checks=("minutes_non_negative",))

    result = run_extract(p, extractor, reject_negative)
    assert [b.valid for b in result.batches] == [False]
    assert warehouse_rows(p) == [("a", 5)]
    # The source is still broken: the next run pulls the same rows again (nothing skipped).
    result = run_extract(p, extractor, reject_negative)
    assert [(b.valid, b.received) for b in result.batches] == [(False, 1)]
    # Fixed at the source: the correction is loaded.
    write_rows(src, rows + [{"id": "c", "modified": "2026-01-04T10:00:00", "minutes": "7"}])
    result = run_extract(p, extractor, reject_negative)
    assert [(b.valid, b.loaded) for b in result.batches] == [(True, 1)]
    assert warehouse_rows(p) == [("a", 5), ("c", 7)]


def test_counts_that_do_not_add_up_are_refused(setup, monkeypatch):
    p, src, extractor = setup
    monkeypatch.setattr(extractor, "load", lambda conn, m: {"items": EntityCounts(2, 1, 0)})
    with pytest.raises(AccountingError, match="received 2 rows but loaded 1 and quarantined 0"):
        run_extract(p, extractor)
    conn = duckdb.connect(str(p.restricted_db), read_only=True)
    try:
        assert conn.execute("select count(*) from load_meta.batches").fetchone()[0] == 0
        assert conn.execute("select count(*) from load_meta.watermarks").fetchone()[0] == 0
    finally:
        conn.close()


@pytest.mark.parametrize("run_rows", [1_000_000, 7, 1])
def test_sorted_texts_is_an_external_sort_in_byte_order(tmp_path, monkeypatch, run_rows):
    """sorted_texts gives the texts in UTF-8 byte order (Python's order), in batches, whether
    they fit one run or need many runs merged (runs of 7 or 1 texts here, row groups of 3); the
    runs live in the connection's temp directory and are gone afterwards."""
    import random

    import pyarrow.parquet as pq

    from samverkan import landing

    monkeypatch.setattr(landing, "SORT_RUN_ROWS", run_rows)
    monkeypatch.setattr(landing, "RUN_GROUP_ROWS", 3)
    rng = random.Random(run_rows)
    alphabet = "aAzZ09 åäöÅÄÖé€😀{}\":,"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(200)]
    texts += texts[:20]  # duplicates
    path = tmp_path / "spool.parquet"
    pq.write_table(pa.table({"record": texts}), path, row_group_size=11)
    spill = tmp_path / "spill"
    spill.mkdir()
    with landing.spool_connection(spill) as conn:
        parts = list(landing.sorted_texts(conn, path, "record", batch_rows=16))
    assert all(0 < len(p) <= 16 for p in parts)
    assert [t for p in parts for t in p.to_pylist()] == sorted(texts)
    assert not any(spill.iterdir())


def test_sorted_texts_refuses_a_null_text(tmp_path):
    import pyarrow.parquet as pq

    from samverkan import landing

    path = tmp_path / "spool.parquet"
    pq.write_table(pa.table({"record": ["b", None, "a"]}), path)
    with landing.spool_connection(tmp_path) as conn, pytest.raises(ValueError, match="null text"):
        list(landing.sorted_texts(conn, path, "record"))
