"""The bad-input corpus, part 3: row and file faults that are quarantined while the rest loads,
through the real `samverkan run` in a subprocess.

Every case is one row of :data:`CASES`: its source, how the fault is put into the night's
sources and the outcome it must have. To stay cheap, the corpus runs two nights on one small
Malmö (``tests/hostile.py``), one dbt build in all:

1. **The faults.** Every fault of the three sources at once, each in its own recognisable row
   (a distinct id, key or Diarienummer) or file: the SS 12000 records are added to the served
   data, the case-system rows to the SQLite copy (through a reporting view over the base table
   and a table without constraints, so NULL change times and repeated keys can exist), the
   police rows to a new delivery in the inbox copy; police deliveries that load (a quoted line
   break, a second delivery for a date, an empty file) and files that are refused (a missing
   column, a broken byte-order mark, not UTF-8, a crafted name with a newline and an ANSI
   escape, a symbolic link to a file outside the inbox). Each faulty row is in
   ``load_meta.quarantine`` with its reason code and the rest loads (rows received = loaded +
   quarantined for every batch); each refused file is moved to ``<inbox>/quarantine/`` with
   its reason file and named (quoted, escaped) on the console; the refused files hold the
   publication back (exit 1), and the console still says what was loaded and quarantined.
2. **The release.** The operator fixes each refused file, moves it back as
   ``polis_YYYYMMDD.csv`` and deletes the reason file: the next run loads each once, quarantines
   nothing again, and publishes.

The assertions read the warehouse (read-only) and the files after each subprocess ended. No
night may print a traceback or write a personnummer to the console, a log, a gate report or a
reason file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import hostile
import pytest

from samverkan.sources.police import BATCH_FAULTS as POLICE_FILE_FAULTS

# --- the faults ------------------------------------------------------------------------------

BAD_IDENTIFIER = "bad_identifier"  # loads, kept out of the indicators as an unusable identifier
ONE_RECORD = "one_record"          # a quoted line break: one record, loaded
CORRECTION = "correction"          # a second delivery for a date: loads, the newest version wins
EMPTY = "empty_file"               # recorded as read, delivers nothing, not refused

FAULTS, RELEASE = 1, 2                      # the two nights
MODIFIED = "2026-06-01T10:00:00+02:00"      # SS 12000 records added for the corpus
CHANGED = "2026-06-01 10:00:00.000000"      # case-system change time, as the simulator stores it
ROW_FILE = "polis_20260601.csv"             # the night's police delivery with the row faults
EMPTY_FILE = "polis_20260602.csv"
SECOND_OF = "polis_20260528.csv"            # a delivery of the small Malmö ...
SECOND_FILE = "polis_20260528_2.csv"        # ... and its correction
CRAFTED_NAME = "polis_20260606\n\x1b[31mOK.csv"
POLICE_HEADER = ["Diarienummer", "Brottsdatum", "Anmälningsdatum", "Brottskod", "Brottsbenämning",
                 "Kommun", "Stadsdel", "Personnummer", "Roll", "Ålder", "Status", "Senast ändrad"]


def _personnummer(serial: int, checksum_ok: bool = True) -> str:
    """A personnummer (12 digits with a hyphen) of a child born 2012-03-15; with a wrong check
    digit when ``checksum_ok`` is false."""
    digits = f"120315{serial:03d}"
    total = 0
    for i, d in enumerate(digits):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n // 10 + n % 10
    check = (10 - total % 10) % 10
    if not checksum_ok:
        check = (check + 1) % 10
    return f"20{digits[:6]}-{digits[6:]}{check}"


@dataclass
class Sources:
    """One night's sources, as a case injects its fault into them."""

    ss: Any                 # samverkan.simulator.ss12000_server.SS12000Data, being served
    case_db: Path
    inbox: Path
    outside: Path           # a folder outside the inbox
    identifiers: set[str] = field(default_factory=set)  # every personnummer a case wrote

    # police ------------------------------------------------------------------------------
    def police_row(self, diarienummer: str, serial: int, **changes: str) -> list[str]:
        pnr = _personnummer(serial)
        row = {"Diarienummer": diarienummer, "Brottsdatum": "2026-05-30", "Anmälningsdatum": "2026-05-31",
               "Brottskod": "1240", "Brottsbenämning": "Skadegörelse", "Kommun": "Malmö",
               "Stadsdel": "Oxie", "Personnummer": pnr, "Roll": "Misstänkt", "Ålder": "14",
               "Status": "Aktiv", "Senast ändrad": "2026-06-01 09:00", **changes}
        self.identifiers.add(row["Personnummer"])
        return [row[h] for h in POLICE_HEADER]

    def append_police(self, name: str, rows: list[list[str]]) -> None:
        """Rows appended to a delivery in the inbox (UTF-8 with BOM, CRLF), header first."""
        path = self.inbox / name
        new = not path.exists()
        with path.open("a", encoding="utf-8-sig" if new else "utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
            if new:
                writer.writerow(POLICE_HEADER)
            writer.writerows(rows)

    # case system -------------------------------------------------------------------------
    def case_row(self, view: str, row: dict[str, Any]) -> None:
        if row.get("personnummer"):
            self.identifiers.add(row["personnummer"])
        with sqlite3.connect(self.case_db) as conn:
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"insert into t_{view}_corpus ({columns}) values ({marks})",  # noqa: S608
                         list(row.values()))

    # SS 12000 ----------------------------------------------------------------------------
    def ss_record(self, endpoint: str, rid: str, change: Callable[[dict], dict],
                  modified: str = MODIFIED) -> None:
        base = self.ss.get(endpoint, self.ss.ids(endpoint)[0])
        record = change({**base, "id": rid, "meta": {"created": MODIFIED, "modified": modified}})
        if isinstance(record.get("civicNo"), dict):
            self.identifiers.add(record["civicNo"]["value"])
        self.ss.upsert(endpoint, record, verbatim=True)


def _open_case_views(db: Path, views: tuple[str, ...] = ("klient", "aktualisering")) -> None:
    """Each view over its base table and a table without constraints (as a reporting view that
    unions two systems), so the corpus can add rows with NULL change times and repeated keys."""
    with sqlite3.connect(db) as conn:
        for view in views:
            cols = [r[1] for r in conn.execute(f"pragma table_info(t_{view})").fetchall()]
            listed = ", ".join(cols)
            conn.execute(f"create table t_{view}_corpus as select * from t_{view} where 0")  # noqa: S608
            conn.execute(f"drop view {view}")
            conn.execute(f"create view {view} as select {listed} from t_{view} "  # noqa: S608
                         f"union all select {listed} from t_{view}_corpus")


def _ss(endpoint: str, rid: str, change: Callable[[dict], dict],
        modified: str = MODIFIED) -> Callable[[Sources], None]:
    return lambda s: s.ss_record(endpoint, rid, change, modified)


def _person(serial: int, checksum_ok: bool = True,
            **changes: Any) -> Callable[[dict], dict]:
    def change(record: dict) -> dict:
        return {**record, "civicNo": {"value": _personnummer(serial, checksum_ok).replace("-", "")},
                **changes}
    return change


def _enrolled_before_1990(record: dict) -> dict:
    person = _person(902)(record)
    person["enrolments"] = [{**record["enrolments"][0], "startDate": "1989-08-15"}]
    return person


def _case(view: str, **row: Any) -> Callable[[Sources], None]:
    return lambda s: s.case_row(view, row)


def _klient(klient_id: int, serial: int, checksum_ok: bool = True,
            andrad_tid: str | None = CHANGED) -> Callable[[Sources], None]:
    return _case("klient", klient_id=klient_id, personnummer=_personnummer(serial, checksum_ok),
                 fornamn="Test", efternamn="Korpus", skyddad_identitet=0, andrad_tid=andrad_tid)


def _aktualisering(aktualisering_id: int, **changes: Any) -> dict[str, Any]:
    return {"aktualisering_id": aktualisering_id, "klient_id": 10001, "inkom_datum": "2026-05-20",
            "typ": "Anmälan", "anmalare_kategori": "Skola", "skyddsbedomning_datum": None,
            "forhandsbedomning_datum": None, "beslut": None, "stadsdel": "Oxie",
            "andrad_tid": CHANGED, **changes}


def _conflicting_copies(aktualisering_id: int) -> Callable[[Sources], None]:
    def inject(s: Sources) -> None:
        s.case_row("aktualisering", _aktualisering(aktualisering_id, typ="Anmälan"))
        s.case_row("aktualisering", _aktualisering(aktualisering_id, typ="Ansökan"))
    return inject


def _police(diarienummer: str, serial: int, **changes: str) -> Callable[[Sources], None]:
    return lambda s: s.append_police(ROW_FILE, [s.police_row(diarienummer, serial, **changes)])


def _second_delivery(s: Sources) -> None:
    """A correction of the first row of an earlier delivery: a later Senast ändrad and another
    Brottskod, in a second file for the same date."""
    raw = (s.inbox / SECOND_OF).read_bytes()
    text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("cp1252")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    first = dict(zip(rows[0], rows[1], strict=True))
    s.identifiers.add(first["Personnummer"])
    corrected = {**first, "Brottskod": "0856" if first["Brottskod"] != "0856" else "1240",
                 "Senast ändrad": "2026-06-02 08:00"}
    s.append_police(SECOND_FILE, [[corrected[h] for h in POLICE_HEADER]])


def _empty_delivery(s: Sources) -> None:
    s.append_police(EMPTY_FILE, [])


def _good_rows(s: Sources, prefix: str, serial: int, n: int = 2) -> list[list[str]]:
    return [s.police_row(f"5000-K{prefix}{i:02d}-26", serial + i) for i in range(n)]


def _write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8-sig",
           tail: bytes = b"") -> None:
    """A police delivery; ``tail`` is put at the end of the first data line (a broken byte)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    body = buffer.getvalue().encode(encoding)
    lines = body.split(b"\r\n")
    # the fault goes into the first data line, so the header stays readable
    data = (lines[0] + b"\r\n" + lines[1] + tail + b"\r\n" + b"\r\n".join(lines[2:])) if tail else body
    path.write_bytes(data)


# The rows of each refused file: (Diarienummer prefix, serial of the first personnummer).
REFUSED_ROWS = {"polis_20260603.csv": ("9903", 301), "polis_20260604.csv": ("9904", 311),
                "polis_20260605.csv": ("9905", 321), CRAFTED_NAME: ("9906", 331),
                "polis_20260607.csv": ("9907", 341)}


def _rows_of(s: Sources, name: str) -> list[list[str]]:
    return _good_rows(s, *REFUSED_ROWS[name])


def _missing_column(s: Sources) -> None:
    name = "polis_20260603.csv"
    header = [h for h in POLICE_HEADER if h != "Ålder"]
    rows = [[v for h, v in zip(POLICE_HEADER, r, strict=True) if h != "Ålder"] for r in _rows_of(s, name)]
    _write(s.inbox / name, header, rows)


def _broken_bom(s: Sources) -> None:
    name = "polis_20260604.csv"
    _write(s.inbox / name, POLICE_HEADER, _rows_of(s, name), tail=b"\xc3\x28")


def _not_utf8(s: Sources) -> None:
    # 0x81 is neither UTF-8 (a lone continuation byte) nor defined in Windows-1252
    name = "polis_20260605.csv"
    _write(s.inbox / name, POLICE_HEADER, _rows_of(s, name), encoding="utf-8", tail=b"\x81")


def _crafted_name(s: Sources) -> None:
    _write(s.inbox / CRAFTED_NAME, POLICE_HEADER, _rows_of(s, CRAFTED_NAME))


def _symlink_outside(s: Sources) -> None:
    name = "polis_20260607.csv"
    target = s.outside / name
    _write(target, POLICE_HEADER, _rows_of(s, name))
    (s.inbox / name).symlink_to(target)


@dataclass(frozen=True)
class Case:
    """One fault: its source, how it is injected into the night's sources, and the outcome it
    must have: a row reason code (quarantined with it), BAD_IDENTIFIER, ONE_RECORD,
    CORRECTION, EMPTY, or the police file-fault code the file is refused with."""

    id: str
    source: str
    inject: Callable[[Sources], None]
    outcome: str
    key: str            # the row's id (SS 12000), key (case system), Diarienummer or file name
    entity: str = ""
    rows: int = 1       # rows the fault puts in quarantine (or loads)
    detail: str = ""    # what the quarantine detail or refusal names (a field, column, cause)


CASES: tuple[Case, ...] = (
    # --- SS 12000 records (added to the served data) -------------------------------------
    Case("ss12000_future_dated_record", "ss12000",
         _ss("attendances", "corpus-att-future", lambda r: r, modified="2100-01-01T08:00:00+01:00"),
         "implausible_date", "corpus-att-future", "attendances", detail="meta.modified"),
    Case("ss12000_enrolment_start_before_1990", "ss12000",
         _ss("persons", "corpus-person-1989", _enrolled_before_1990),
         "implausible_date", "corpus-person-1989", "persons", detail="enrolments[].startDate"),
    Case("ss12000_invalid_civic_no", "ss12000",
         _ss("persons", "corpus-person-bad-civic", _person(903, checksum_ok=False)),
         BAD_IDENTIFIER, "corpus-person-bad-civic", "persons"),
    Case("ss12000_attendance_invalid_value", "ss12000",
         _ss("attendances", "corpus-att-is-reported", lambda r: {**r, "isReported": "ja"}),
         "wrong_type", "corpus-att-is-reported", "attendances", detail="isReported"),
    Case("ss12000_oversized_record", "ss12000",
         _ss("persons", "corpus-person-oversized", _person(905, photo="A" * 100_000)),
         "oversized_record", "corpus-person-oversized", "persons", detail="record"),
    Case("ss12000_sex_outside_the_allowed_set", "ss12000",
         _ss("persons", "corpus-person-sex", _person(906, sex="X")),
         "not_allowed", "corpus-person-sex", "persons", detail="sex"),
    Case("ss12000_timestamp_without_offset", "ss12000",
         _ss("attendances", "corpus-att-no-offset",
             lambda r: {**r, "reportedTimestamp": "2026-05-20T08:15:00"}),
         "bad_timestamp", "corpus-att-no-offset", "attendances", detail="reportedTimestamp"),
    # --- case-system rows (added to the SQLite copy) -------------------------------------
    Case("case_system_null_andrad_tid", "case_system", _klient(990001, 911, andrad_tid=None),
         "missing_change_time", "990001", "klient", detail="andrad_tid"),
    Case("case_system_duplicate_aktualisering_id_conflicting", "case_system", _conflicting_copies(990002),
         "duplicate_key", "990002", "aktualisering", rows=2),
    Case("case_system_inkom_datum_2031", "case_system",
         _case("aktualisering", **_aktualisering(990003, inkom_datum="2031-03-01")),
         "implausible_date", "990003", "aktualisering", detail="inkom_datum"),
    Case("case_system_date_before_1990", "case_system",
         _case("aktualisering", **_aktualisering(990004, inkom_datum="1989-12-31")),
         "implausible_date", "990004", "aktualisering", detail="inkom_datum"),
    Case("case_system_invalid_personnummer", "case_system", _klient(990005, 915, checksum_ok=False),
         BAD_IDENTIFIER, "990005", "klient"),
    Case("case_system_unknown_typ", "case_system",
         _case("aktualisering", **_aktualisering(990006, typ="Okänd")),
         "unknown_value", "990006", "aktualisering", detail="typ"),
    # --- police rows (a new delivery in the inbox copy) ----------------------------------
    Case("police_role_outside_the_allowed_set", "police", _police("5000-K990001-26", 921, Roll="Vittne"),
         "bad_role", "5000-K990001-26", "events"),
    Case("police_status_outside_the_allowed_set", "police",
         _police("5000-K990002-26", 922, Status="Arkiverad"), "bad_status", "5000-K990002-26", "events"),
    Case("police_five_digit_crime_code", "police", _police("5000-K990003-26", 923, Brottskod="12345"),
         "bad_crime_code", "5000-K990003-26", "events"),
    Case("police_offence_dated_2100", "police", _police("5000-K990004-26", 924, Brottsdatum="2100-01-01"),
         "implausible_date", "5000-K990004-26", "events", detail="Brottsdatum"),
    Case("police_offence_dated_1899", "police", _police("5000-K990005-26", 925, Brottsdatum="1899-12-31"),
         "implausible_date", "5000-K990005-26", "events", detail="Brottsdatum"),
    Case("police_invalid_personnummer", "police",
         _police("5000-K990006-26", 926, Personnummer=_personnummer(926, checksum_ok=False)),
         BAD_IDENTIFIER, "5000-K990006-26", "events"),
    Case("police_unparsable_date", "police", _police("5000-K990007-26", 927, Brottsdatum="2026-13-45"),
         "bad_date", "5000-K990007-26", "events", detail="Brottsdatum"),
    Case("police_age_not_a_number", "police", _police("5000-K990008-26", 928, **{"Ålder": "fjorton"}),
         "bad_integer", "5000-K990008-26", "events", detail="Ålder"),
    Case("police_blank_role", "police", _police("5000-K990009-26", 929, Roll=""),
         "missing_key", "5000-K990009-26", "events", detail="Roll"),
    Case("police_quoted_line_break", "police",
         _police("5000-K990010-26", 930, **{"Brottsbenämning": "Skadegörelse;\r\npå skola"}),
         ONE_RECORD, "5000-K990010-26", "events"),
    # --- police files that load ----------------------------------------------------------
    Case("police_second_delivery_for_a_date", "police", _second_delivery, CORRECTION, SECOND_FILE),
    Case("police_empty_file", "police", _empty_delivery, EMPTY, EMPTY_FILE, rows=0),
    # --- police files that are refused ---------------------------------------------------
    Case("police_missing_column", "police", _missing_column, "bad_header", "polis_20260603.csv",
         rows=2, detail="missing column 'Ålder'"),
    Case("police_broken_byte_order_mark", "police", _broken_bom, "bad_encoding", "polis_20260604.csv",
         rows=2, detail="byte order mark but is not valid UTF-8"),
    Case("police_not_utf8", "police", _not_utf8, "bad_encoding", "polis_20260605.csv",
         rows=2, detail="neither UTF-8 nor Windows-1252"),
    Case("police_crafted_file_name", "police", _crafted_name, "bad_file_name", CRAFTED_NAME,
         rows=2, detail="non-printable characters"),
    Case("police_symlink_outside_the_inbox", "police", _symlink_outside, "not_a_regular_file",
         "polis_20260607.csv", rows=2, detail="a symbolic link"),
)
REFUSED = tuple(c for c in CASES if c.outcome in POLICE_FILE_FAULTS)
FILE_CASES = tuple(c for c in CASES if c.outcome in (CORRECTION, EMPTY))
ROW_CASES = tuple(c for c in CASES if c not in REFUSED and c not in FILE_CASES)
RAW_TABLES = {"ss12000": "raw_ss12000", "case_system": "raw_case_system", "police": "raw_police"}
SOURCES = tuple(RAW_TABLES)


def test_the_corpus_is_declared_once() -> None:
    assert len(CASES) >= 18 and len({c.id for c in CASES}) == len(CASES)
    assert len({(c.source, c.key) for c in CASES}) == len(CASES)  # each fault in its own row or file
    assert {c.source for c in ROW_CASES} == set(SOURCES) and set(REFUSED_ROWS) == {c.key for c in REFUSED}


# --- the two nights --------------------------------------------------------------------------

@dataclass
class Night:
    result: Any                          # subprocess.CompletedProcess
    batches: list[str]                   # the batches this night loaded
    log: str                             # what the night added to data/logs/samverkan.log
    gate: dict[str, Any]                 # the night's gate.json
    manifest: dict[str, Any] | None      # the publication's manifest.json, when it published
    published: dict[str, str]            # the published zone after the night (file -> sha256)


@dataclass
class Corpus:
    world: hostile.Installation
    sources: Sources
    nights: dict[int, Night] = field(default_factory=dict)
    after_faults: dict[str, Any] = field(default_factory=dict)  # the inbox after the first night

    def warehouse(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.world.paths.restricted_db), read_only=True)


def _run_night(corpus: Corpus, number: int) -> Night:
    paths = corpus.world.paths
    log_file = paths.logs / "samverkan.log"
    offset = log_file.stat().st_size if log_file.exists() else 0
    gates = set(paths.validation.glob("gate-*/gate.json"))
    before: set[str] = set()
    if paths.restricted_db.exists():
        with corpus.warehouse() as conn:
            before = {r[0] for r in conn.execute("select batch_id from load_meta.batches").fetchall()}
    result = hostile.cli(corpus.world.env, "run")
    # kept beside the data directory, for the diagnosis of a failing case
    (paths.home.parent / f"night-{number}.console.txt").write_text(hostile.console(result), encoding="utf-8")
    with corpus.warehouse() as conn:
        batches = [r[0] for r in conn.execute("select batch_id from load_meta.batches").fetchall()
                   if r[0] not in before]
    with log_file.open("rb") as fh:
        fh.seek(offset)
        log = fh.read().decode("utf-8", "replace")
    new_gates = sorted(set(paths.validation.glob("gate-*/gate.json")) - gates)
    gate = json.loads(new_gates[-1].read_text(encoding="utf-8")) if new_gates else {}
    current = paths.current_publication / "manifest.json"
    manifest = json.loads(current.read_text(encoding="utf-8")) \
        if result.returncode == 0 and current.exists() else None
    night = Night(result, batches, log, gate, manifest, hostile.publication_fingerprint(paths))
    corpus.nights[number] = night
    return night


def _release(s: Sources) -> None:
    """What the operator does with each refused file: fix it, move it back into the inbox as
    polis_YYYYMMDD.csv, delete the reason file."""
    quarantine = s.inbox / "quarantine"
    for name, encoding in (("polis_20260603.csv", "utf-8-sig"), ("polis_20260604.csv", "utf-8-sig"),
                           ("polis_20260605.csv", "cp1252")):  # Windows-1252 is a valid encoding
        _write(s.inbox / name, POLICE_HEADER, _rows_of(s, name), encoding)
        (quarantine / name).unlink()
        (quarantine / (name + ".reason.txt")).unlink()
    (quarantine / CRAFTED_NAME).rename(s.inbox / "polis_20260606.csv")  # the content was fine
    (quarantine / (CRAFTED_NAME + ".reason.txt")).unlink()
    link = quarantine / "polis_20260607.csv"
    shutil.copyfile(link.resolve(), s.inbox / "polis_20260607.csv")  # the file, no longer a link
    link.unlink()
    (quarantine / "polis_20260607.csv.reason.txt").unlink()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Corpus]:
    from samverkan.simulator.ss12000_server import serve

    root = tmp_path_factory.mktemp("corpus-quarantine")
    case_db, inbox = hostile.write_sources(root / "systems")
    (root / "outside").mkdir()
    data = hostile.ss12000_data()
    sources = Sources(data, case_db, inbox, root / "outside")
    _open_case_views(case_db)
    for case in CASES:
        case.inject(sources)
    token = secrets.token_urlsafe(12)
    with serve(data, token) as server:
        world = hostile.install(root / "data", server.base_url, token, case_db, inbox, prefect_api_url)
        corpus = Corpus(world, sources)
        night = _run_night(corpus, FAULTS)
        quarantine = inbox / "quarantine"
        corpus.after_faults = {
            "inbox": sorted(p.name for p in inbox.iterdir()),
            "quarantine": {p.name: (p.is_symlink(), p.read_text(encoding="utf-8")
                                    if p.name.endswith(".reason.txt") else None)
                           for p in quarantine.iterdir()} if quarantine.is_dir() else {},
        }
        if night.result.returncode == 1 and all(c.key in corpus.after_faults["quarantine"] for c in REFUSED):
            _release(sources)
            _run_night(corpus, RELEASE)
        yield corpus


def _night(corpus: Corpus, number: int) -> Night:
    assert number in corpus.nights, f"night {number} did not run (the first night went wrong)"
    return corpus.nights[number]


def _console(night: Night) -> str:
    return hostile.console(night.result)


def _in_batches(column: str = "batch_id") -> str:
    return f"{column} in (select unnest(?::varchar[]))"


# --- the nights ------------------------------------------------------------------------------

def test_the_fault_night_loads_what_it_can_and_holds_the_publication_back(corpus: Corpus) -> None:
    night = _night(corpus, FAULTS)
    text = _console(night)
    hostile.assert_clean_failure(night.result, "police", "[bad_header]")
    assert "What could not be loaded (a source that failed, a file refused):" in text
    assert not night.published  # nothing published (and nothing was before)
    # every source loaded its batch: only the refused files failed the gate
    with corpus.warehouse() as conn:
        loaded = {r[0] for r in conn.execute(
            f"select distinct source from load_meta.batches where {_in_batches()}",
            [night.batches]).fetchall()}
    assert loaded == set(SOURCES)
    extract = next(c for c in night.gate["checks"] if c["name"] == "extract_batches")
    failed = re.findall(r"(\w+):(\S+) \(", extract["detail"])
    assert sorted(failed) == sorted(("police", f"police-refused-{n}") for n in range(1, len(REFUSED) + 1))
    assert "Loaded by this run (into the warehouse; not published):" in text


def test_the_release_night_loads_each_released_file_once_and_publishes(corpus: Corpus) -> None:
    night = _night(corpus, RELEASE)
    text = _console(night)
    assert night.result.returncode == 0, text[-4000:]
    hostile.assert_no_traceback(night.result)
    assert night.manifest is not None and set(night.manifest["this_run_batches"]) == set(night.batches)
    assert night.published["current"] == f"-> versions/{night.manifest['version']}"
    with corpus.warehouse() as conn:
        sources = {r[0] for r in conn.execute(
            f"select distinct source from load_meta.batches where {_in_batches()}",
            [night.batches]).fetchall()}
        assert sources == {"police"}  # the other sources had nothing new
        for day in range(3, 8):
            name = f"polis_2026060{day}.csv"
            rows = conn.execute("select count(*), count(distinct line_number), min(batch_id), max(batch_id) "
                                "from raw_police.events where file_name = ?", [name]).fetchone()
            assert rows[0] == rows[1] == 2 and rows[2] == rows[3] and rows[2] in night.batches, (name, rows)
            seen = conn.execute("select count(*) from load_meta.source_files where file_name = ?",
                                [name]).fetchone()[0]
            assert seen == 1, name
        crafted = conn.execute("select count(*) from load_meta.source_files where file_name = ?",
                               [CRAFTED_NAME]).fetchone()[0]
    assert crafted == 0  # the crafted name itself never loaded
    assert not list((corpus.sources.inbox / "quarantine").iterdir())
    police = next(line for line in text.splitlines() if line.strip().startswith("police "))
    assert re.search(r"received\s+10\s+loaded\s+10\s+quarantined\s+0$", police), police
    # SS 12000 serves the future-dated record again: recognised as quarantined, skipped
    assert "ss12000: records served again and already in quarantine (same content) were skipped: " \
           "attendances 1" in night.log


@pytest.mark.parametrize("number", [FAULTS, RELEASE], ids=["faults", "release"])
def test_no_personnummer_or_raw_control_character_leaves_the_restricted_zone(
        corpus: Corpus, number: int) -> None:
    night = _night(corpus, number)
    paths = corpus.world.paths
    texts = {"console": _console(night), "log": night.log, "gate report": json.dumps(night.gate)}
    dbt_log = paths.logs / "dbt" / "dbt.log"
    if dbt_log.exists():
        texts["dbt log"] = dbt_log.read_text(encoding="utf-8", errors="replace")
    if night.manifest is not None:
        texts["manifest"] = json.dumps(night.manifest)
    texts["reason files"] = "".join(v[1] for v in corpus.after_faults["quarantine"].values() if v[1])
    identifiers = {i.replace("-", "") for i in corpus.sources.identifiers} | corpus.sources.identifiers
    assert len(identifiers) > 40
    for where, text in texts.items():
        leaked = [i for i in identifiers if i in text]
        assert not leaked, f"{len(leaked)} personnummer in the {where}"
        assert "\x1b" not in text, f"a raw escape character in the {where}"
        assert not re.search(r"^\[31mOK\.csv", text, re.MULTILINE), f"a forged line in the {where}"


# --- row accounting --------------------------------------------------------------------------

@pytest.mark.parametrize("source", SOURCES)
def test_received_equals_loaded_plus_quarantined_for_every_batch(corpus: Corpus, source: str) -> None:
    """Per batch and entity, from four places written independently: the landing manifest (rows
    landed), load_meta.batch_entities (the loader's counts), the raw table and the quarantine
    (the rows themselves); and per night, the console's load report and the gate report's (or
    the publication manifest's)."""
    _night(corpus, RELEASE)
    with corpus.warehouse() as conn:
        batches = conn.execute("select batch_id, rows_received, rows_loaded, rows_quarantined, manifest_path "
                               "from load_meta.batches where source = ?", [source]).fetchall()
        assert batches
        for batch_id, received, loaded, quarantined, manifest_path in batches:
            assert received == loaded + quarantined, batch_id
            landed = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
            assert landed["row_count"] == received, batch_id
            entities = conn.execute("select entity, rows_received, rows_loaded, rows_quarantined "
                                    "from load_meta.batch_entities where batch_id = ?", [batch_id]).fetchall()
            assert sum(e[1] for e in entities) == received
            for entity, e_received, e_loaded, e_quarantined in entities:
                assert e_received == e_loaded + e_quarantined == landed["entities"][entity]["rows"], \
                    (batch_id, entity)
                in_raw = conn.execute(f"select count(*) from {RAW_TABLES[source]}.{entity} "  # noqa: S608
                                      "where batch_id = ?", [batch_id]).fetchone()[0]
                in_quarantine = conn.execute(
                    "select count(*) from load_meta.quarantine where batch_id = ? and entity = ?",
                    [batch_id, entity]).fetchone()[0]
                assert (in_raw, in_quarantine) == (e_loaded, e_quarantined), (batch_id, entity)
        for number, night in corpus.nights.items():
            mine = [b for b in batches if b[0] in night.batches]
            totals = (sum(b[1] for b in mine), sum(b[2] for b in mine), sum(b[3] for b in mine))
            reasons = dict(conn.execute(
                f"select reason, count(*) from load_meta.quarantine where source = ? and {_in_batches()} "
                "group by reason", [source, night.batches]).fetchall())
            report = (night.manifest or night.gate)["load_report"].get(source)
            if not mine:  # nothing new for the source that night
                assert report is None or report["received"] == 0, (number, report)
                continue
            assert (report["received"], report["loaded"], report["quarantined"]) == totals, number
            assert report["quarantined_by_reason"] == reasons, number
            _assert_summary_line(_console(night), source, totals, reasons)


def _assert_summary_line(console: str, source: str, totals: tuple[int, int, int],
                         reasons: dict[str, int]) -> None:
    line = next((x for x in console.splitlines() if x.strip().startswith(f"{source} ")
                 and "received" in x), None)
    assert line is not None, f"no load report line for {source}:\n{console[-3000:]}"
    counts = re.findall(r"(?:received|loaded|quarantined)\s+([\d,]+)", line)
    assert tuple(int(n.replace(",", "")) for n in counts) == totals, line
    for reason, n in reasons.items():
        assert f"{reason} {n}" in line, (reason, n, line)


# --- the cases -------------------------------------------------------------------------------

def _quarantined(conn: duckdb.DuckDBPyConnection, case: Case) -> list[tuple[str, str, str]]:
    """(batch, reason, detail) of the case's rows in the quarantine, over both nights."""
    if case.source == "ss12000":
        where = "json_extract_string(raw_row, '$.id') = ?"
    elif case.source == "case_system":
        where = f"json_extract_string(raw_row, '$.{case.entity}_id') = ?"
    else:
        where = "starts_with(raw_row, ? || ';')"
    return conn.execute(f"select batch_id, reason, detail from load_meta.quarantine "  # noqa: S608
                        f"where source = ? and entity = ? and {where} order by batch_id, row_number",
                        [case.source, case.entity, case.key]).fetchall()


def _key(case: Case) -> tuple[str, Any]:
    column = {"ss12000": "id", "case_system": f"{case.entity}_id", "police": "diarienummer"}[case.source]
    return column, int(case.key) if case.source == "case_system" else case.key


def _loaded(conn: duckdb.DuckDBPyConnection, case: Case) -> list[tuple[Any, ...]]:
    column, value = _key(case)
    return conn.execute(f"select batch_id from {RAW_TABLES[case.source]}.{case.entity} "  # noqa: S608
                        f"where {column} = ?", [value]).fetchall()


def _pnr_problem(conn: duckdb.DuckDBPyConnection, case: Case) -> list[str | None]:
    model = {"ss12000": "stg_ss12000__persons", "case_system": "stg_case_system__klient",
             "police": "stg_police__events"}[case.source]
    column, value = _key(case)
    column = "person_id" if case.source == "ss12000" else column
    return [r[0] for r in conn.execute(f"select pnr_problem from staging.{model} "  # noqa: S608
                                       f"where {column} = ?", [value]).fetchall()]


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.id for c in ROW_CASES])
def test_row_fault(corpus: Corpus, case: Case) -> None:
    faults = _night(corpus, FAULTS)
    _night(corpus, RELEASE)  # staging is built by the release night
    with corpus.warehouse() as conn:
        quarantined = _quarantined(conn, case)
        loaded = _loaded(conn, case)
        if case.outcome in (BAD_IDENTIFIER, ONE_RECORD):
            assert not quarantined, quarantined
            assert len(loaded) == case.rows and loaded[0][0] in faults.batches
            if case.outcome == BAD_IDENTIFIER:  # loaded, kept out of linkage and person counts
                assert _pnr_problem(conn, case) == ["bad_checksum"] * case.rows
            else:
                text, line = conn.execute("select brottsbenamning, line_number from raw_police.events "
                                          "where diarienummer = ?", [case.key]).fetchone()
                assert text == "Skadegörelse;\npå skola"
                # numbered by its first line; the file holds one record per police row case
                police_rows = [c for c in ROW_CASES if c.source == "police"]
                assert line == 2 + police_rows.index(case)
                manifest_path = conn.execute("select manifest_path from load_meta.batches where batch_id = ?",
                                             [loaded[0][0]]).fetchone()[0]
                files = json.loads(Path(manifest_path).read_text(encoding="utf-8"))["extra"]["files"]
                assert next(f for f in files if f["name"] == ROW_FILE)["rows"] == len(police_rows)
            return
        kept = conn.execute("select raw_row from load_meta.quarantine where reason = 'oversized_record'"
                            ).fetchone() if case.outcome == "oversized_record" else None
    # a row fault: quarantined once (not again by the next night), with its reason; not loaded
    assert not loaded, loaded
    assert len(quarantined) == case.rows, quarantined
    for batch_id, reason, detail in quarantined:
        assert batch_id in faults.batches and reason == case.outcome, (batch_id, reason)
        assert case.detail in detail, detail
    # the console's load report names the reason for the source
    line = next(x for x in _console(faults).splitlines() if x.strip().startswith(f"{case.source} ")
                and "received" in x)
    assert re.search(rf"\b{case.outcome} [1-9]", line), line
    if kept is not None:  # its id and meta, not the 100 KB
        assert len(kept[0]) < 1000 and json.loads(kept[0])["id"] == case.key


def test_bad_identifiers_are_counted_out_of_the_indicators(corpus: Corpus) -> None:
    manifest = _night(corpus, RELEASE).manifest
    assert manifest is not None
    excluded = manifest["excluded_from_indicators"]
    for case in (c for c in ROW_CASES if c.outcome == BAD_IDENTIFIER):
        assert excluded[case.source]["invalid_identifier_bad_checksum"]["records"] >= 1, case.id


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_police_delivery_that_loads(corpus: Corpus, case: Case) -> None:
    night = _night(corpus, FAULTS)
    _night(corpus, RELEASE)  # staging is built by the release night
    assert (corpus.sources.inbox / case.key).is_file()  # not refused, not moved
    with corpus.warehouse() as conn:
        seen = conn.execute("select batch_id from load_meta.source_files where file_name = ?",
                            [case.key]).fetchall()
        assert len(seen) == 1 and seen[0][0] in night.batches  # recorded as read, once
        rows = conn.execute("select count(*) from raw_police.events where file_name = ?",
                            [case.key]).fetchone()[0]
        if case.outcome == EMPTY:
            assert rows == 0
            return
        assert rows == 1
        # the correction won: staging holds the second delivery's version of the record
        diarienummer, brottskod = conn.execute(
            "select diarienummer, brottskod from raw_police.events where file_name = ?", [case.key]
        ).fetchone()
        newest = conn.execute("select file_name, brottskod from staging.stg_police__events "
                              "where diarienummer = ?", [diarienummer]).fetchall()
        assert newest == [(case.key, brottskod)], newest
        manifest_path = conn.execute("select manifest_path from load_meta.batches where batch_id = ?",
                                     [seen[0][0]]).fetchone()[0]
    files = json.loads(Path(manifest_path).read_text(encoding="utf-8"))["extra"]["files"]
    entry = next(f for f in files if f["name"] == case.key)
    assert entry["earlier_deliveries_for_date"] == [SECOND_OF]
    warning = next(line for line in night.log.splitlines() if "another delivery" in line)
    assert repr(case.key) in warning and repr(SECOND_OF) in warning


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_refused_file(corpus: Corpus, case: Case) -> None:
    night = _night(corpus, FAULTS)
    shown = repr(case.key)
    # named on the console, quoted and escaped, with its code, its cause and where it went
    line = hostile.assert_clean_failure(night.result, shown, f"[{case.outcome}]")
    assert case.detail in line and "moved to" in line, line
    # moved aside whole (a link as the link itself), with its reason file
    assert case.key not in corpus.after_faults["inbox"]
    is_link, _ = corpus.after_faults["quarantine"][case.key]
    assert is_link == (case.outcome == "not_a_regular_file")
    reason = corpus.after_faults["quarantine"][case.key + ".reason.txt"][1]
    assert f"file: {shown}\n" in reason and f"reason: {case.outcome}:" in reason and "release:" in reason
    # nothing of it loaded that night
    with corpus.warehouse() as conn:
        seen = conn.execute(
            f"select count(*) from load_meta.source_files where file_name = ? and {_in_batches()}",
            [case.key, night.batches]).fetchone()[0]
        rows = conn.execute(
            f"select count(*) from raw_police.events where diarienummer like ? and {_in_batches()}",
            [f"5000-K{REFUSED_ROWS[case.key][0]}%", night.batches]).fetchone()[0]
    assert (seen, rows) == (0, 0)
    if case.outcome == "not_a_regular_file":
        assert (corpus.sources.outside / "polis_20260607.csv").is_file()  # the target untouched


def test_a_record_served_again_is_skipped_only_while_its_date_is_still_in_the_future() -> None:
    """The rule behind ss12000_future_dated_record at function level, with the clock as a
    parameter: an identical copy of a quarantined record is skipped while its meta.modified is
    still in the future, judged again once that date has come, and a changed copy always is."""
    import hashlib

    import pyarrow as pa

    from samverkan.sources.ss12000 import _record_batch, _without_quarantined, scrub_raw_row

    record = {"id": "att-1", "calendarEvent": {"id": "ev-1"}, "student": {"id": "p-1"},
              "isReported": True, "meta": {"created": MODIFIED, "modified": "2027-01-10T08:00:00+01:00"}}
    other = {**record, "id": "att-2"}
    table = pa.Table.from_batches([_record_batch([record, other])])
    kept = scrub_raw_row("attendances", table["record"][0].as_py())
    known = {"att-1": frozenset({hashlib.md5(kept.encode()).hexdigest()})}  # noqa: S324
    before = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    after = dt.datetime(2027, 1, 11, tzinfo=dt.UTC)
    rest, skipped = _without_quarantined(table, "attendances", known, before)
    assert skipped == 1 and rest["id"].to_pylist() == ["att-2"]
    rest, skipped = _without_quarantined(table, "attendances", known, after)
    assert skipped == 0 and rest.num_rows == 2  # its date has come: judged again
    changed = pa.Table.from_batches([_record_batch([{**record, "isReported": False}])])
    assert _without_quarantined(changed, "attendances", known, before)[1] == 0
