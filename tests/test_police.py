"""Police file-drop extractor on real files with explicit bytes (UTF-8 BOM, Windows-1252, CRLF/LF)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from samverkan.config import Paths, PoliceConfig
from samverkan.extract import SourceState, run_extract
from samverkan.landing import BatchManifest, list_batches
from samverkan.sources.police import PoliceExtractor, lines_checksum

HEADER = ("Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;"
          "Personnummer;Roll;Ålder;Status;Senast ändrad")
# The same columns in another order (the contract allows any order).
HEADER_REORDERED = ("Personnummer;Roll;Ålder;Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;"
                    "Brottsbenämning;Kommun;Stadsdel;Status;Senast ändrad")

ROW_A = ("5000-K100001-25;2025-03-01;2025-03-02;0301;Misshandel, grov;Stockholm;Skärholmen;"
         "20130101-2397;Misstänkt;12;Aktiv;2025-03-02 10:15")
ROW_B = ("5000-K100002-25;2025-03-01;2025-03-03;0850;Rån mot person;Stockholm;Enskede-Årsta-Vantör;"
         "201205171232;Målsägande;12;Aktiv;2025-03-03 08:05")
# Reordered header: Personnummer;Roll;Ålder;Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;...
ROW_C = ("120517-1232;Målsägande;12;5000-K100003-25;2025-03-04;2025-03-04;301;Stöld;Stockholm;"
         "Hägersten-Älvsjö;Aktiv;2025-03-04 17:00")
ROW_D = (" 189001019802;Misstänkt;17;5000-K100004-25;2025-03-04;2025-03-05;9001;Ofredande;Stockholm;;"
         "Makulerad;2025-03-05 09:30")


def csv_bytes(header: str, rows: list[str], *, encoding: str, newline: str = "\r\n",
              final_newline: bool = True) -> bytes:
    """A file as a desktop tool writes it: encoding 'utf-8-sig' writes the BOM explicitly."""
    text = newline.join([header, *rows]) + (newline if final_newline else "")
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode(encoding)


@pytest.fixture
def env(tmp_path: Path) -> tuple[Paths, Path, PoliceExtractor]:
    p = Paths(tmp_path / "home").ensure()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return p, inbox, PoliceExtractor(PoliceConfig(inbox=inbox))


def _wh(p: Paths) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(p.restricted_db), read_only=True)


def _manifest(p: Paths, batch_id: str) -> BatchManifest:
    return BatchManifest.read(p.landing / "police" / batch_id)


def test_bom_and_cp1252_files_load_and_swedish_text_survives(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    newer = csv_bytes(HEADER_REORDERED, [ROW_C, ROW_D], encoding="cp1252", newline="\n")
    older = csv_bytes(HEADER, [ROW_A, ROW_B], encoding="utf-8-sig", newline="\r\n")
    assert b"\xe5" in newer and b"\xc3\xa5" in older  # å as one cp1252 byte / two UTF-8 bytes
    (inbox / "polis_20250305.csv").write_bytes(newer)  # written first, but dated later
    (inbox / "polis_20250303.csv").write_bytes(older)
    (inbox / "README.txt").write_text("not a delivery")

    result = run_extract(p, extractor)
    assert len(result.batches) == 1
    b = result.batches[0]
    assert (b.received, b.loaded, b.quarantined) == (4, 4, 0)

    m = _manifest(p, b.batch_id)
    files = m.extra["files"]
    assert [(f["name"], f["encoding"], f["rows"], f["size"], f["sha256"]) for f in files] == [
        ("polis_20250303.csv", "utf-8-sig", 2, len(older), hashlib.sha256(older).hexdigest()),
        ("polis_20250305.csv", "cp1252", 2, len(newer), hashlib.sha256(newer).hexdigest()),
    ]
    assert m.entities["events"].content_checksum == lines_checksum([ROW_A, ROW_B, ROW_C, ROW_D])
    landed = pq.read_table(m.entity_path("events")).to_pylist()
    assert [(r["file_name"], r["line_number"]) for r in landed] == [
        ("polis_20250303.csv", 2), ("polis_20250303.csv", 3), ("polis_20250305.csv", 2),
        ("polis_20250305.csv", 3)]
    assert [r["raw_line"] for r in landed] == [ROW_A, ROW_B, ROW_C, ROW_D]
    assert landed[2]["stadsdel"] == "Hägersten-Älvsjö" and landed[2]["brottskod"] == "301"
    assert all(r["parse_error"] is None for r in landed)

    with _wh(p) as wh:
        rows = wh.execute(
            "select file_name, line_number, diarienummer, brottsdatum, anmalningsdatum, brottskod, "
            "brottsbenamning, kommun, stadsdel, personnummer, roll, alder, status, senast_andrad "
            "from raw_police.events order by file_name, line_number").fetchall()
        assert rows == [
            ("polis_20250303.csv", 2, "5000-K100001-25", dt.date(2025, 3, 1), dt.date(2025, 3, 2), "0301",
             "Misshandel, grov", "Stockholm", "Skärholmen", "20130101-2397", "Misstänkt", 12, "Aktiv",
             dt.datetime(2025, 3, 2, 10, 15)),
            ("polis_20250303.csv", 3, "5000-K100002-25", dt.date(2025, 3, 1), dt.date(2025, 3, 3), "0850",
             "Rån mot person", "Stockholm", "Enskede-Årsta-Vantör", "201205171232", "Målsägande", 12,
             "Aktiv", dt.datetime(2025, 3, 3, 8, 5)),
            ("polis_20250305.csv", 2, "5000-K100003-25", dt.date(2025, 3, 4), dt.date(2025, 3, 4), "0301",
             "Stöld", "Stockholm", "Hägersten-Älvsjö", "120517-1232", "Målsägande", 12, "Aktiv",
             dt.datetime(2025, 3, 4, 17, 0)),
            ("polis_20250305.csv", 3, "5000-K100004-25", dt.date(2025, 3, 4), dt.date(2025, 3, 5), "9001",
             "Ofredande", "Stockholm", None, "189001019802", "Misstänkt", 17, "Makulerad",
             dt.datetime(2025, 3, 5, 9, 30)),
        ]
        assert wh.execute("select file_name, sha256, size_bytes, batch_id from load_meta.source_files "
                          "where source = 'police' order by file_name").fetchall() == [
            ("polis_20250303.csv", hashlib.sha256(older).hexdigest(), len(older), b.batch_id),
            ("polis_20250305.csv", hashlib.sha256(newer).hexdigest(), len(newer), b.batch_id),
        ]


def test_same_file_twice_changes_nothing_but_new_content_is_a_new_delivery(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    data = csv_bytes(HEADER, [ROW_A, ROW_B], encoding="utf-8-sig")
    path = inbox / "polis_20250303.csv"
    path.write_bytes(data)
    assert len(run_extract(p, extractor).batches) == 1
    assert run_extract(p, extractor).batches == []
    path.unlink()
    path.write_bytes(data)  # delivered again, same bytes
    assert run_extract(p, extractor).batches == []

    corrected = ROW_B.replace("Enskede-Årsta-Vantör", "Skärholmen").replace("08:05", "14:40")
    path.write_bytes(csv_bytes(HEADER, [ROW_A, corrected], encoding="utf-8-sig"))
    again = run_extract(p, extractor)
    assert len(again.batches) == 1 and again.batches[0].loaded == 2
    with _wh(p) as wh:
        assert wh.execute("select count(*) from raw_police.events").fetchone()[0] == 4
        assert wh.execute("select stadsdel from raw_police.events where diarienummer = '5000-K100002-25' "
                          "order by senast_andrad").fetchall() == [("Enskede-Årsta-Vantör",), ("Skärholmen",)]
        assert wh.execute("select count(*) from load_meta.source_files").fetchone()[0] == 2
    assert run_extract(p, extractor).batches == []


def test_empty_files_are_recorded_and_not_read_again(env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    (inbox / "polis_20250306.csv").write_bytes(b"")
    (inbox / "polis_20250307.csv").write_bytes(csv_bytes(HEADER, [], encoding="utf-8-sig"))
    first = run_extract(p, extractor)
    assert [(b.received, b.loaded, b.quarantined) for b in first.batches] == [(0, 0, 0)]
    files = _manifest(p, first.batches[0].batch_id).extra["files"]
    assert [(f["name"], f["rows"], f["encoding"]) for f in files] == [
        ("polis_20250306.csv", 0, None), ("polis_20250307.csv", 0, "utf-8-sig")]
    with _wh(p) as wh:
        assert wh.execute("select count(*) from raw_police.events").fetchone()[0] == 0
        seen = frozenset(wh.execute("select file_name, sha256 from load_meta.source_files").fetchall())
    assert {name for name, _ in seen} == {"polis_20250306.csv", "polis_20250307.csv"}
    assert extractor.pull(SourceState(watermarks={}, seen_files=seen)).extra["files"] == []
    assert run_extract(p, extractor).batches == []
    assert len(list_batches(p.landing, "police")) == 1


def test_bad_rows_are_quarantined_with_reasons_and_counts_add_up(
        env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    too_many = ROW_A.replace("Aktiv", "Aktiv;extra").replace("K100001", "K100005")
    bad_date = ROW_A.replace("2025-03-01", "2025-02-30").replace("K100001", "K100006")
    bad_age = ROW_A.replace(";12;", ";tolv;").replace("K100001", "K100007")
    no_role = ROW_A.replace("Misstänkt", "").replace("K100001", "K100008")
    no_diarienummer = ROW_A.replace("5000-K100001-25", " ")
    bad_timestamp = ROW_A.replace("2025-03-02 10:15", "2025-03-02 25:15").replace("K100001", "K100009")
    truncated = ROW_B[:40]
    data = csv_bytes(HEADER, [ROW_A, too_many, bad_date, bad_age, no_role, no_diarienummer, bad_timestamp,
                              ROW_B, truncated], encoding="cp1252", final_newline=False)
    (inbox / "polis_20250308.csv").write_bytes(data)
    result = run_extract(p, extractor)
    (b,) = result.batches
    assert (b.received, b.loaded, b.quarantined) == (9, 2, 7)
    assert b.quarantined_by_reason == {"wrong_field_count": 1, "bad_date": 2, "bad_integer": 1,
                                       "missing_key": 2, "truncated_row": 1}
    with _wh(p) as wh:
        q = wh.execute("select row_number, reason, detail, raw_row from load_meta.quarantine "
                       "where source = 'police' order by row_number").fetchall()
        fields = "expected 12 fields separated by ;"
        assert q == [
            (3, "wrong_field_count", f"polis_20250308.csv, line 3: {fields}", too_many),
            (4, "bad_date", "polis_20250308.csv, line 4: Brottsdatum", bad_date),
            (5, "bad_integer", "polis_20250308.csv, line 5: Ålder", bad_age),
            (6, "missing_key", "polis_20250308.csv, line 6: missing Roll", no_role),
            (7, "missing_key", "polis_20250308.csv, line 7: missing Diarienummer", no_diarienummer),
            (8, "bad_date", "polis_20250308.csv, line 8: Senast ändrad", bad_timestamp),
            (10, "truncated_row", f"polis_20250308.csv, line 10: {fields}", truncated),
        ]
        assert wh.execute("select line_number from raw_police.events order by 1").fetchall() == [(2,), (9,)]
        assert wh.execute("select rows_received, rows_loaded, rows_quarantined from load_meta.batch_entities "
                          "where batch_id = ?", [b.batch_id]).fetchone() == (9, 2, 7)


@pytest.mark.parametrize(("header", "column"), [
    (HEADER + ";Brottsplats", "unknown column 'Brottsplats'"),
    (HEADER.replace(";Ålder", ""), "missing column 'Ålder'"),
])
def test_header_must_match_the_contract(env: tuple[Paths, Path, PoliceExtractor], header: str,
                                        column: str) -> None:
    """A bad header refuses that file only: it is moved aside, the good file loads."""
    p, inbox, extractor = env
    (inbox / "polis_20250301.csv").write_bytes(csv_bytes(HEADER, [ROW_A], encoding="utf-8-sig"))
    (inbox / "polis_20250302.csv").write_bytes(csv_bytes(header, [ROW_A], encoding="cp1252"))
    result = run_extract(p, extractor)
    refused, loaded = result.batches
    assert not refused.valid and refused.cause.startswith(f"'polis_20250302.csv': {column}")
    assert loaded.valid and (loaded.received, loaded.loaded) == (1, 1)
    assert not (inbox / "polis_20250302.csv").exists()
    assert (inbox / "quarantine" / "polis_20250302.csv").exists()


def test_lf_and_crlf_parse_the_same(env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    (inbox / "polis_20250310.csv").write_bytes(
        csv_bytes(HEADER, [ROW_A, ROW_B], encoding="utf-8", newline="\n"))
    (inbox / "polis_20250311.csv").write_bytes(
        csv_bytes(HEADER, [ROW_A, ROW_B], encoding="cp1252", newline="\r\n", final_newline=False))
    (b,) = run_extract(p, extractor).batches
    assert (b.received, b.loaded, b.quarantined) == (4, 4, 0)
    m = _manifest(p, b.batch_id)
    assert [f["encoding"] for f in m.extra["files"]] == ["utf-8", "cp1252"]
    with _wh(p) as wh:
        per_file = {}
        for name in ("polis_20250310.csv", "polis_20250311.csv"):
            per_file[name] = wh.execute(
                "select * exclude (batch_id, file_name) from raw_police.events where file_name = ? "
                "order by line_number", [name]).fetchall()
        assert per_file["polis_20250310.csv"] == per_file["polis_20250311.csv"]
        assert per_file["polis_20250310.csv"][1][7] == "Enskede-Årsta-Vantör"
    landed = pq.read_table(m.entity_path("events")).column("raw_line").to_pylist()
    assert landed == [ROW_A, ROW_B, ROW_A, ROW_B]  # no stray carriage returns


def test_missing_header_does_not_echo_the_data(env: tuple[Paths, Path, PoliceExtractor]) -> None:
    p, inbox, extractor = env
    (inbox / "polis_20250312.csv").write_bytes(csv_bytes(ROW_A, [ROW_B], encoding="utf-8"))
    (b,) = run_extract(p, extractor).batches
    assert b.cause.startswith("'polis_20250312.csv': unknown column at position 1")
    reason = (inbox / "quarantine" / "polis_20250312.csv.reason.txt").read_text(encoding="utf-8")
    for value in ("5000-K100001-25", "20130101-2397", "Skärholmen"):
        assert value not in b.cause and value not in reason
