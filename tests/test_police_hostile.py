"""Hostile police deliveries on real files and a real DuckDB warehouse: row faults quarantine
rows (and the Great Expectations suite then passes), file faults set that file aside only,
second deliveries load as corrections, crafted names are escaped, links are refused, and a
quoted line break stays inside its record."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from samverkan.config import Paths, PoliceConfig
from samverkan.extract import run_extract
from samverkan.landing import BatchManifest
from samverkan.sources.police import BATCH_FAULTS, ROW_RULES, PoliceExtractor

HEADER = ("Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;"
          "Personnummer;Roll;Ålder;Status;Senast ändrad")
GOOD = ("5000-K100001-25;2025-03-01;2025-03-02;0301;Misshandel;Stockholm;Skärholmen;"
        "20130101-2397;Misstänkt;12;Aktiv;2025-03-02 10:15")
PNR = "20130101-2397"


def row(n: int, **changes: str) -> str:
    """GOOD with another diarienummer and some fields replaced (by header position)."""
    fields = GOOD.split(";")
    fields[0] = f"5000-K{100000 + n}-25"
    names = [h for h in HEADER.split(";")]
    for key, value in changes.items():
        fields[names.index(key.replace("_", " "))] = value
    return ";".join(fields)


def deliver(inbox: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    path = inbox / name
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join([header, *rows]) + "\r\n").encode("utf-8"))
    return path


@pytest.fixture
def env(tmp_path: Path) -> tuple[Paths, Path, PoliceExtractor]:
    p = Paths(tmp_path / "home").ensure()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return p, inbox, PoliceExtractor(PoliceConfig(inbox=inbox))


def _wh(p: Paths) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(p.restricted_db), read_only=True)


def test_the_rule_table_is_declared_once() -> None:
    reasons = [r.reason for r in ROW_RULES]
    assert len(reasons) == len(set(reasons))
    assert {"bad_role", "bad_status", "bad_crime_code", "implausible_date", "missing_key"} <= set(reasons)
    assert all(r.description for r in ROW_RULES) and all(BATCH_FAULTS.values())
    contract = (Path(__file__).parents[1] / "dbt_project" / "SOURCE_CONTRACTS.md").read_text("utf-8")
    for code in [*reasons, *BATCH_FAULTS]:
        assert f"`{code}`" in contract, code
    # The suite runs after the row rules: it holds only what no row rule covers (the loader's
    # file position) and the key's Diarienummer (the invariant of missing_key), never a check of
    # a column a row rule already judges, which could not fail.
    suite = json.loads((Path(__file__).parents[1] / "expectations" / "police.events.json"
                        ).read_text(encoding="utf-8"))
    checked = set()
    for exp in suite["expectations"]:
        checked |= set(exp["kwargs"].get("column_list") or [exp["kwargs"]["column"]])
    assert checked == {"file_name", "line_number", "diarienummer"}, checked
    ruled = " ".join(r.condition for r in ROW_RULES)
    for column in ("roll", "status", "brottskod", "alder", "brottsdatum"):
        assert column in ruled, column


def test_row_faults_are_quarantined_and_the_rest_loads_through_the_real_suite(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    from samverkan.quality import batch_validator

    p, inbox, extractor = env
    rows = [
        row(1),
        row(2, Roll="Vittne"),
        row(3, Status="Okänd"),
        row(4, Status=""),
        row(5, Brottskod="12345"),
        row(6, Brottsdatum="2100-01-01"),
        row(7, Brottsdatum="1899-12-31"),
        row(8, Senast_ändrad="2100-01-01 10:00"),
        row(9, Ålder="130"),
        row(10, Brottsdatum=""),
        row(11, Brottskod="31"),
    ]
    deliver(inbox, "polis_20250303.csv", rows)
    (b,) = run_extract(p, extractor, batch_validator(extractor, p)).batches
    assert b.valid, b.failed_checks
    assert (b.received, b.loaded, b.quarantined) == (11, 2, 9)
    assert b.quarantined_by_reason == {"bad_role": 1, "bad_status": 2, "bad_crime_code": 1,
                                       "implausible_date": 3, "implausible_age": 1,
                                       "missing_offence_date": 1}
    with _wh(p) as wh:
        q = wh.execute("select row_number, reason, detail from load_meta.quarantine order by 1").fetchall()
        assert q[0] == (3, "bad_role", "polis_20250303.csv, line 3: Roll is not Misstänkt or Målsägande")
        assert q[4] == (7, "implausible_date", "polis_20250303.csv, line 7: Brottsdatum")
        assert q[5] == (8, "implausible_date", "polis_20250303.csv, line 8: Brottsdatum")
        assert q[6] == (9, "implausible_date", "polis_20250303.csv, line 9: Senast ändrad")
        assert all(PNR not in detail for _, _, detail in q)
        assert wh.execute("select line_number, brottskod from raw_police.events order by 1").fetchall() == [
            (2, "0301"), (12, "0031")]
        assert wh.execute("select rows_received, rows_loaded, rows_quarantined from load_meta.batches"
                          ).fetchone() == (11, 2, 9)


def test_a_file_with_a_missing_column_is_set_aside_and_loads_once_fixed(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    deliver(inbox, "polis_20250301.csv", [row(1)])
    bad_header = HEADER.replace(";Status", "")
    bad_row = ";".join(f for i, f in enumerate(row(2).split(";")) if i != 10)
    deliver(inbox, "polis_20250302.csv", [bad_row], header=bad_header)
    deliver(inbox, "polis_20250303.csv", [row(3)])

    result = run_extract(p, extractor)
    refused = [b for b in result.batches if not b.valid]
    loaded = [b for b in result.batches if b.valid]
    assert len(refused) == 1 and len(loaded) == 1
    assert "'polis_20250302.csv': missing column 'Status'" in refused[0].cause
    assert "[bad_header]" in refused[0].cause and "quarantine/polis_20250302.csv" in refused[0].cause
    assert (loaded[0].received, loaded[0].loaded) == (2, 2)
    aside = inbox / "quarantine" / "polis_20250302.csv"
    assert aside.exists() and not (inbox / "polis_20250302.csv").exists()
    reason = (inbox / "quarantine" / "polis_20250302.csv.reason.txt").read_text(encoding="utf-8")
    assert "bad_header" in reason and "missing column 'Status'" in reason and PNR not in reason

    assert run_extract(p, extractor).batches == []  # set aside: the next night is not blocked

    deliver(inbox, "polis_20250302.csv", [row(2)])  # fixed and moved back
    aside.unlink()
    (b,) = run_extract(p, extractor).batches
    assert b.valid and (b.received, b.loaded) == (1, 1)
    with _wh(p) as wh:
        assert wh.execute("select file_name from load_meta.source_files order by 1").fetchall() == [
            ("polis_20250301.csv",), ("polis_20250302.csv",), ("polis_20250303.csv",)]


def test_released_file_moved_back_unchanged_is_refused_again_beside_the_first(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    (inbox / "polis_20250302.csv").write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n\xff\xfe\r\n")
    (b,) = run_extract(p, extractor).batches
    assert "[bad_encoding]" in b.cause and "byte order mark" in b.cause
    os.rename(inbox / "quarantine" / "polis_20250302.csv", inbox / "polis_20250302.csv")
    (b,) = run_extract(p, extractor).batches
    assert not b.valid and "quarantine/polis_20250302.2.csv" in b.cause
    assert sorted(f.name for f in (inbox / "quarantine").iterdir()) == [
        "polis_20250302.2.csv", "polis_20250302.2.csv.reason.txt", "polis_20250302.csv.reason.txt"]


@pytest.mark.parametrize("second", ["polis_20250303_2.csv", "POLIS_20250303.CSV", "polis_20250303.csv"])
def test_a_second_delivery_for_a_date_loads_as_a_correction(
        env: tuple[Paths, Path, PoliceExtractor], caplog: pytest.LogCaptureFixture, second: str) -> None:
    p, inbox, extractor = env
    deliver(inbox, "polis_20250303.csv", [row(1), row(2)])
    run_extract(p, extractor)
    corrected = row(2, Stadsdel="Bredäng", Senast_ändrad="2025-03-03 12:00")
    deliver(inbox, second, [corrected])
    with caplog.at_level(logging.WARNING, logger="samverkan"):
        (b,) = run_extract(p, extractor).batches
    assert b.valid and (b.received, b.loaded) == (1, 1)
    manifest = BatchManifest.read(p.landing / "police" / b.batch_id)
    (info,) = manifest.extra["files"]
    assert info["name"] == second and info["earlier_deliveries_for_date"] == ["polis_20250303.csv"]
    assert any("another delivery for 2025-03-03" in r.getMessage() for r in caplog.records)
    with _wh(p) as wh:
        assert wh.execute("select stadsdel from raw_police.events where diarienummer = '5000-K100002-25' "
                          "order by senast_andrad").fetchall() == [("Skärholmen",), ("Bredäng",)]


def test_a_crafted_file_name_is_escaped_in_every_log_line(
        env: tuple[Paths, Path, PoliceExtractor], caplog: pytest.LogCaptureFixture) -> None:
    p, inbox, extractor = env
    crafted = "polis_20250303\nINFO samverkan: all good.csv"
    deliver(inbox, crafted, [row(1)])
    deliver(inbox, "polis_20250304.csv", [row(2)])
    with caplog.at_level(logging.DEBUG, logger="samverkan"):
        result = run_extract(p, extractor)
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all("\n" not in m for m in messages)
    assert any(repr(crafted) in m for m in messages)
    refused = [b for b in result.batches if not b.valid]
    assert len(refused) == 1 and "\n" not in refused[0].cause and "[bad_file_name]" in refused[0].cause
    assert (inbox / "quarantine" / crafted).exists()
    with _wh(p) as wh:
        assert wh.execute("select distinct file_name from raw_police.events").fetchall() == [
            ("polis_20250304.csv",)]


def test_a_symlink_in_the_inbox_is_not_followed(env: tuple[Paths, Path, PoliceExtractor],
                                                tmp_path: Path) -> None:
    p, inbox, extractor = env
    outside = deliver(tmp_path, "polis_20250301.csv", [row(1)])
    (inbox / "polis_20250301.csv").symlink_to(outside)
    (b,) = run_extract(p, extractor).batches
    assert not b.valid and "symbolic link" in b.cause and "[not_a_regular_file]" in b.cause
    assert outside.exists()  # the target is untouched; the link itself was moved aside
    assert (inbox / "quarantine" / "polis_20250301.csv").is_symlink()
    with _wh(p) as wh:
        assert wh.execute("select count(*) from raw_police.events").fetchone()[0] == 0


def test_a_quoted_line_break_is_one_record(env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    multi = row(2, Brottsbenämning='"Misshandel,\r\nringa"')
    unclosed = row(4, Brottsbenämning='"Stöld')
    path = deliver(inbox, "polis_20250303.csv", [row(1), multi, row(3), unclosed])
    (b,) = run_extract(p, extractor).batches
    assert (b.received, b.loaded, b.quarantined) == (4, 3, 1)
    manifest = BatchManifest.read(p.landing / "police" / b.batch_id)
    landed = pq.read_table(manifest.entity_path("events")).to_pylist()
    assert [r["line_number"] for r in landed] == [2, 3, 5, 6]
    assert landed[1]["brottsbenamning"] == "Misshandel,\nringa"
    assert landed[1]["raw_line"] == row(2, Brottsbenämning='"Misshandel,\nringa"')
    assert manifest.extra["files"][0]["size"] == path.stat().st_size
    with _wh(p) as wh:
        assert wh.execute("select line_number, brottsbenamning from raw_police.events order by 1"
                          ).fetchall() == [(2, "Misshandel"), (3, "Misshandel,\nringa"), (5, "Misshandel")]
        assert wh.execute("select row_number, reason from load_meta.quarantine").fetchall() == [
            (6, "wrong_field_count")]


def test_dates_are_judged_against_the_extraction_date() -> None:
    from samverkan.sources.police import extraction_date

    m = BatchManifest("b", "police", "2025-03-03T23:30:00+00:00", 0, "", {})
    assert extraction_date(m) == dt.date(2025, 3, 4)  # already the 4th in Stockholm
