"""SS 12000: the simulator's HTTP server and the platform's extractor, end to end.

Real HTTP server on 127.0.0.1, real landing files, real DuckDB warehouse.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from types import SimpleNamespace
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests
import yaml

from samverkan.config import PROJECT_ROOT, ConfigError, Paths, SS12000Config
from samverkan.extract import SourceState, run_extract
from samverkan.landing import list_batches
from samverkan.simulator.ss12000_server import SS12000Data, serve
from samverkan.sources.ss12000 import (
    ENTITIES,
    SS12000AuthError,
    SS12000Client,
    SS12000Extractor,
    SS12000ResponseError,
    SS12000UnavailableError,
    StaticBearerToken,
    auth_from_config,
    canonical_json,
    records_checksum,
)

TOKEN = "test-token-3f9c2a7b"  # noqa: S105 - a test credential
TZ = "Europe/Stockholm"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
# The official SS 12000 OpenAPI file, carried unchanged in the repository (tests/reference/README.md).
OPENAPI = PROJECT_ROOT / "tests/reference/ss12000/openapi_ss12000_version2_1_0.yaml"
# required / properties of the schemas used, as in the official file (checked against it).
SCHEMAS: dict[str, dict[str, list[str]]] = {
    "Organisation": {"required": ["displayName", "id", "meta", "organisationType"], "properties": [
        "address", "contactInfo", "displayName", "email", "endDate", "id", "meta", "municipalityCode",
        "organisationCode", "organisationNumber", "organisationType", "parentOrganisation",
        "phoneNumber", "schoolTypes", "schoolUnitCode", "startDate", "url"]},
    "Person": {"required": ["familyName", "givenName", "id", "meta"], "properties": [
        "addresses", "birthDate", "civicNo", "eduPersonPrincipalNames", "emails", "enrolments",
        "externalIdentifiers", "familyName", "givenName", "id", "meta", "middleName", "personStatus",
        "phoneNumbers", "photo", "responsibles", "securityMarking", "sex"]},
    "CalendarEvent": {"required": ["activity", "endTime", "id", "meta", "startTime"], "properties": [
        "_embedded", "activity", "cancelled", "comment", "endTime", "id", "meta", "resources", "rooms",
        "startTime", "studentExceptions", "teacherExceptions", "teachingLengthStudent",
        "teachingLengthTeacher"]},
    "Attendance": {"required": ["calendarEvent", "id", "isReported", "meta", "student"], "properties": [
        "absenceReason", "attendanceMinutes", "calendarEvent", "id", "invalidAbsenceMinutes",
        "isReported", "meta", "otherAttendanceMinutes", "reportedTimestamp", "reporter", "student",
        "validAbsenceMinutes"]},
    "Enrolment": {"required": ["enroledAt", "schoolType", "startDate"], "properties": [
        "cancelled", "educationCode", "endDate", "enroledAt", "programme", "schoolType", "schoolYear",
        "specification", "startDate"]},
}
ENDPOINT_OF = {"organisations": "organisations", "persons": "persons",
               "calendar_events": "calendarEvents", "attendances": "attendances",
               "deleted_entities": "deletedEntities"}
RAW_TABLE = {"organisations": "organisations", "persons": "persons",
             "calendar_events": "calendar_events", "attendances": "attendances",
             "deleted_entities": "deleted_entities"}


# --- a small hand-made population (the columns of brief_population.md) ----------------------

def _luhn(digits: str) -> str:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def _pnr(date: str, serial: str) -> str:
    """A test personnummer (serials 98x/99x are Skatteverket's test range)."""
    return date + serial + _luhn(date[2:] + serial)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def small_population() -> SimpleNamespace:
    municipal, independent = "0a000000-0000-4000-8000-000000000001", "0a000000-0000-4000-8000-000000000002"
    units = {"29384011": "0b000000-0000-4000-8000-000000000011",
             "29384013": "0b000000-0000-4000-8000-000000000013",
             "29384021": "0b000000-0000-4000-8000-000000000021"}
    organisations = pd.DataFrame({
        "id": [municipal, independent, *units.values()],
        "organisation_type": ["Huvudman", "Huvudman", "Skolenhet", "Skolenhet", "Skolenhet"],
        "display_name": ["Stockholms stad", "Läroverket Söder AB", "Bredängsskolan",
                         "Läroverket Bredäng", "Skärholmsskolan"],
        "organisation_number": ["212000-0142", "556880-9189", None, "556880-9189", None],
        "school_unit_code": [None, None, *units.keys()],
        "municipality_code": ["0180"] * 5,
        "parent_organisation_id": [None, None, municipal, independent, municipal],
        "school_types": [None, None, ["GR"], ["GR"], ["GR"]],
        "modified_at": [_ts("2026-01-05 08:00:00"), _ts("2026-01-05 08:00:01"),
                        _ts("2026-01-06 09:00:00"), _ts("2026-01-06 09:00:00"),
                        _ts("2026-03-30 10:15:00")],
    })
    persons = pd.DataFrame({
        "person_key": [1, 2, 3, 4, 5, 6],
        "pnr": [_pnr("20130101", "980"), _pnr("20120615", "981"), _pnr("20140362", "982"),
                _pnr("20111111", "983"), _pnr("20100505", "984"), _pnr("20200202", "985")],
        "is_samordningsnummer": [False, False, True, False, False, False],
        "birth_date": [dt.date(2013, 1, 1), dt.date(2012, 6, 15), dt.date(2014, 3, 2),
                       dt.date(2011, 11, 11), dt.date(2010, 5, 5), dt.date(2020, 2, 2)],
        "sex": ["Kvinna", "Man", "Man", "Kvinna", "Man", "Kvinna"],
        "first_name": ["Åsa", "Björn", "Sigvard", "Maj-Britt", "Örjan", "Tuva"],
        "last_name": ["Öhrström", "Lindqvist", "Ängsmark", "Dahlbäck", "Nyquist", "Wikström"],
        "protected": [False, False, False, True, False, False],
        "security_marking": ["Ingen", "Ingen", "Ingen", "Skyddad folkbokföring", "Ingen", "Ingen"],
        "ss12000_id": ["0c000000-0000-4000-8000-000000000001", "0c000000-0000-4000-8000-000000000002",
                       "0c000000-0000-4000-8000-000000000003", "0c000000-0000-4000-8000-000000000004",
                       "0c000000-0000-4000-8000-000000000005", None],
        "modified_at": [_ts("2026-01-12 07:00:00"), _ts("2026-01-12 07:00:00"),
                        _ts("2026-02-01 12:30:00"), _ts("2026-01-12 07:00:00"),
                        _ts("2026-04-01 09:00:00.250"), _ts("2026-01-01 00:00:00")],
    })
    enrolments = pd.DataFrame({
        "person_key": [1, 2, 3, 3, 4, 5],
        "school_unit_code": ["29384011", "29384013", "29384011", "29384021", "29384021", "29384013"],
        "school_year": [7, 8, 6, 6, 9, 9],
        "school_type": ["GR"] * 6,
        "start_date": [dt.date(2025, 8, 18)] * 3 + [dt.date(2026, 2, 2), dt.date(2025, 8, 18),
                                                    dt.date(2025, 8, 18)],
        "end_date": [None, None, dt.date(2026, 2, 1), None, None, dt.date(2026, 4, 30)],
    })
    starts = [_ts("2026-01-12 08:15"), _ts("2026-01-12 09:30"), _ts("2026-03-30 08:15"),
              _ts("2026-03-30 09:30")]
    calendar_events = pd.DataFrame({
        "id": [f"0d000000-0000-4000-8000-00000000000{i}" for i in range(1, 5)],
        "activity_id": [f"0e000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 1, 2)],
        "school_unit_code": ["29384011"] * 4,
        "school_year": [7] * 4,
        "start_time": starts,
        "end_time": [s + pd.Timedelta(minutes=60) for s in starts],
        "modified_at": [_ts("2026-01-11 18:00")] * 2 + [_ts("2026-03-29 18:00")] * 2,
    })
    rows = []
    n = 0
    for event_i, event_id in enumerate(calendar_events["id"]):
        for person_key in (1, 2, 3, 4, 5):
            n += 1
            reported = not (event_i == 3 and person_key == 2)
            invalid = 15 if (person_key == 3 and event_i == 0) else 0
            minutes = (60 - invalid) if reported else 0
            if person_key == 5 and event_i == 1:
                invalid, minutes = -10, 70  # a bad record: loaded as it is, caught by the checks
            start = starts[event_i]
            rows.append({
                "id": f"0f000000-0000-4000-8000-{n:012d}",
                "calendar_event_id": event_id,
                "person_key": person_key,
                "is_reported": reported,
                "attendance_minutes": minutes if reported else 0,
                "valid_absence_minutes": 0,
                "invalid_absence_minutes": invalid if reported else 0,
                "other_attendance_minutes": 0,
                "reported_timestamp": start + pd.Timedelta(minutes=65 + n) if reported else pd.NaT,
                "modified_at": start + pd.Timedelta(minutes=65 + n) if reported else start,
            })
    attendances = pd.DataFrame(rows)
    attendances["reported_timestamp"] = pd.to_datetime(attendances["reported_timestamp"]).dt.tz_convert(TZ)
    return SimpleNamespace(
        organisations=organisations, persons=persons, enrolments=enrolments,
        calendar_events=calendar_events, attendances=attendances, municipality_code="0180",
        municipality_organisation_number="212000-0142",
    )


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def pop() -> SimpleNamespace:
    return small_population()


@pytest.fixture
def served(pop):
    data = SS12000Data.from_population(pop)
    with serve(data, TOKEN) as server:
        yield data, server


@pytest.fixture
def home(tmp_path, monkeypatch) -> Paths:
    monkeypatch.setenv("SAMVERKAN_HOME", str(tmp_path / "home"))
    return Paths(tmp_path / "home").ensure()


def extractor(server, token: str = TOKEN, page_size: int = 7, **client_options: Any) -> SS12000Extractor:
    options = {"backoff_seconds": 0.01, **client_options}
    return SS12000Extractor(SS12000Config(base_url=server.base_url, token=token, page_size=page_size,
                                          timeout_seconds=5), client_options=options)


def get(server, path: str, token: str | None = TOKEN, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.base_url + path, params=params, headers=headers, timeout=10)


def all_pages(server, path: str, **params: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    response = get(server, path, **params)
    while True:
        assert response.status_code == 200, response.text
        doc = response.json()
        records.extend(doc["data"])
        if doc["pageToken"] is None:
            return records
        response = get(server, path, pageToken=doc["pageToken"], limit=params.get("limit", 1000))


WINDOW = {"startTime.onOrAfter": "2020-01-01T00:00:00Z", "startTime.onOrBefore": "2030-01-01T00:00:00Z"}


# --- server: shapes, paging, filters, errors -------------------------------------------------

def _schemas() -> dict[str, dict[str, list[str]]]:
    assert OPENAPI.is_file(), f"the official SS 12000 OpenAPI file is missing: {OPENAPI}"
    official = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]
    found = {name: {"required": sorted(official[name]["required"]),
                    "properties": sorted(official[name]["properties"])} for name in SCHEMAS}
    assert found == SCHEMAS
    return found


def test_records_are_shaped_by_the_openapi_schemas(served, pop):
    data, server = served
    spec = _schemas()
    checks = {"/organisations": "Organisation", "/persons": "Person",
              "/calendarEvents": "CalendarEvent", "/attendances": "Attendance"}
    for path, schema_name in checks.items():
        params = WINDOW if path == "/calendarEvents" else {}
        records = all_pages(server, path, **params)
        schema = spec[schema_name]
        assert records, path
        for rec in records:
            assert set(schema["required"]) <= set(rec), (path, rec.keys())
            assert set(rec) <= set(schema["properties"]), (path, set(rec) - set(schema["properties"]))
            assert RFC3339.match(rec["meta"]["modified"]) and RFC3339.match(rec["meta"]["created"])
            # the bytes served are the canonical JSON of the record
            assert canonical_json(rec) == canonical_json(json.loads(canonical_json(rec)))

    orgs = {o["id"]: o for o in all_pages(server, "/organisations")}
    units = [o for o in orgs.values() if o["organisationType"] == "Skolenhet"]
    assert len(units) == 3
    assert all(o["schoolTypes"] == ["GR"] and len(o["schoolUnitCode"]) == 8 for o in units)
    assert all(orgs[u["parentOrganisation"]["id"]]["organisationType"] == "Huvudman" for u in units)
    assert {o["organisationNumber"] for o in orgs.values() if o["organisationType"] == "Huvudman"} == {
        "212000-0142", "556880-9189"}

    persons = all_pages(server, "/persons")
    assert len(persons) == 5  # the non-pupil is not served
    enrolment_props = set(spec["Enrolment"]["properties"])
    by_id = {p["id"]: p for p in persons}
    for p in persons:
        assert re.fullmatch(r"\d{12}", p["civicNo"]["value"])
        assert p["securityMarking"] in ("Ingen", "Sekretessmarkering", "Skyddad folkbokföring")
        for e in p["enrolments"]:
            assert set(spec["Enrolment"]["required"]) <= set(e) <= enrolment_props
            assert e["enroledAt"]["id"] in orgs
    mover = by_id["0c000000-0000-4000-8000-000000000003"]
    assert [e.get("endDate") for e in mover["enrolments"]] == ["2026-02-01", None]
    assert mover["civicNo"]["value"][6:8] == "62"  # samordningsnummer: day + 60
    assert by_id["0c000000-0000-4000-8000-000000000005"]["meta"]["modified"] == \
        "2026-04-01T09:00:00.250+02:00"

    att = all_pages(server, "/attendances")
    assert len(att) == len(pop.attendances)
    unreported = [a for a in att if not a["isReported"]]
    assert len(unreported) == 1 and "reportedTimestamp" not in unreported[0]
    assert any(a["invalidAbsenceMinutes"] < 0 for a in att)
    events = all_pages(server, "/calendarEvents", **WINDOW)
    assert {e["startTime"] for e in events} >= {"2026-01-12T08:15:00+01:00", "2026-03-30T08:15:00+02:00"}


def test_paging_filters_and_protocol_errors(served, pop):
    data, server = served
    records = all_pages(server, "/attendances", limit=3)
    assert len(records) == len({r["id"] for r in records}) == len(pop.attendances)
    first = get(server, "/attendances", limit=3).json()
    assert len(first["data"]) == 3 and isinstance(first["pageToken"], str)

    # pageToken cannot be combined with filters: 400 with an Error body
    bad = get(server, "/attendances", pageToken=first["pageToken"],
              **{"meta.modified.after": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 400
    assert set(bad.json()) == {"code", "message"} and bad.json()["code"] == "invalid_filter"
    assert get(server, "/attendances", pageToken="not-a-token").status_code == 400
    other = base64.urlsafe_b64encode(b'{"e":"persons","f":{},"k":[0,""]}').decode()
    assert get(server, "/attendances", pageToken=other).status_code == 400
    assert get(server, "/attendances", limit=0).status_code == 400
    assert get(server, "/attendances", expandReferenceNames="true").status_code == 400
    assert get(server, "/calendarEvents").status_code == 400  # startTime filters are required

    # the filters live on in the token: later pages honour meta.modified.after/before
    modified = sorted({r["meta"]["modified"] for r in records})
    after, before = modified[3], modified[-4]

    def instant(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text)

    expected = {r["id"] for r in records
                if instant(after) < instant(r["meta"]["modified"]) <= instant(before)}
    got = all_pages(server, "/attendances", limit=2,
                    **{"meta.modified.after": after, "meta.modified.before": before})
    assert {r["id"] for r in got} == expected and len(got) == len(expected)
    # the same instant written in UTC selects the same records
    utc_after = instant(after).astimezone(dt.UTC).isoformat()
    assert len(all_pages(server, "/attendances", **{"meta.modified.after": utc_after})) == \
        sum(instant(r["meta"]["modified"]) > instant(after) for r in records)

    # auth and routing
    missing = get(server, "/attendances", token=None)
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    assert get(server, "/attendances", token="wrong").status_code == 401  # noqa: S106
    assert get(server, "/nonsense").status_code == 404
    assert requests.post(server.base_url + "/attendances", timeout=5,
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_mutations_and_deleted_entities(served):
    data, server = served
    ids = data.ids("attendances")
    count, _ = data.served_checksum("attendances")
    before = data.now() - dt.timedelta(microseconds=1)  # later than every served modification
    rec = data.get("attendances", ids[0])
    rec["invalidAbsenceMinutes"] = 60
    rec["attendanceMinutes"] = 0
    served_rec = data.upsert("attendances", rec)
    assert served_rec["meta"]["created"] == rec["meta"]["created"]
    assert dt.datetime.fromisoformat(served_rec["meta"]["modified"]) > before
    # an explicit time that is not later than what was served moves just after it
    backdated = data.upsert("attendances", data.get("attendances", ids[2]),
                            dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert dt.datetime.fromisoformat(backdated["meta"]["modified"]) > \
        dt.datetime.fromisoformat(served_rec["meta"]["modified"])
    data.delete("attendances", ids[1])
    data.delete("persons", "0c000000-0000-4000-8000-000000000005")
    assert data.served_checksum("attendances")[0] == count - 1
    newest = get(server, "/attendances", **{"meta.modified.after": before.isoformat()}).json()["data"]
    assert [r["id"] for r in newest] == [ids[0], ids[2]] and newest[0]["invalidAbsenceMinutes"] == 60

    page1 = get(server, "/deletedEntities", limit=1).json()
    assert len([i for v in page1["data"].values() for i in v]) == 1 and page1["pageToken"]
    page2 = get(server, "/deletedEntities", pageToken=page1["pageToken"], limit=1).json()
    assert page2["pageToken"] is None
    assert {**page1["data"], **page2["data"]} == {
        "attendances": [ids[1]], "persons": ["0c000000-0000-4000-8000-000000000005"]}
    assert get(server, "/deletedEntities", entities="Person").json()["data"] == {
        "persons": ["0c000000-0000-4000-8000-000000000005"]}
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)).isoformat()
    assert get(server, "/deletedEntities", after=later).json() == {"data": {}, "pageToken": None}
    assert data.served_checksum("deletedEntities") == (2, records_checksum([
        canonical_json({"entity": "attendances", "id": ids[1]}),
        canonical_json({"entity": "persons", "id": "0c000000-0000-4000-8000-000000000005"})]))
    with pytest.raises(KeyError):
        data.delete("attendances", ids[1])


def test_records_checksum_definition():
    texts = ['{"b":1}', '{"a":"å"}', '{"a":"z"}']
    import hashlib

    expected = hashlib.sha256("".join(t + "\n" for t in sorted(texts)).encode()).hexdigest()
    assert records_checksum(texts) == records_checksum(list(reversed(texts))) == expected
    assert records_checksum([]) == hashlib.sha256(b"").hexdigest()
    assert canonical_json({"b": [1, None], "a": "ö\n"}) == '{"a":"ö\\n","b":[1,null]}'


# --- extractor: first run, idempotence, incremental -------------------------------------------

def _raw_counts(home: Paths) -> dict[str, int]:
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        return {t: conn.execute(f"select count(*) from raw_ss12000.{t}").fetchone()[0]
                for t in (*RAW_TABLE.values(), "enrolments")}


def _all_text_in_restricted_db(home: Paths) -> str:
    """Every text value of every table in the restricted warehouse, concatenated."""
    parts = []
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables").fetchall()
        for schema, table in tables:
            parts.append(conn.execute(
                f'select coalesce(string_agg(cast(columns(*) as varchar), \'|\'), \'\') '
                f'from "{schema}"."{table}"').fetchone().__str__())
    return "\n".join(parts)


def test_first_run_lands_and_loads_exactly_what_was_served(served, pop, home):
    data, server = served
    result = run_extract(home, extractor(server))
    assert result.ok and len(result.batches) == 1
    batch = result.batches[0]
    assert batch.quarantined == 0 and batch.received == batch.loaded
    manifest = list_batches(home.landing, "ss12000")[0]
    assert set(manifest.entities) == set(ENTITIES)

    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        for entity in ENTITIES:
            count, checksum = data.served_checksum(ENDPOINT_OF[entity])
            stats = manifest.entities[entity]
            assert (stats.rows, stats.content_checksum) == (count, checksum), entity
            landed = pq.read_table(manifest.entity_path(entity))
            assert records_checksum(landed.column("record")) == checksum
            raw = conn.execute(f"select count(*) from raw_ss12000.{RAW_TABLE[entity]}").fetchone()[0]
            assert raw == count, entity
            counts = conn.execute("select rows_received, rows_loaded, rows_quarantined from "
                                  "load_meta.batch_entities where entity = ?", [entity]).fetchone()
            assert counts == (count, count, 0)
        # the loaded rows are the served records, field by field
        served_att = {r["id"]: r for r in all_pages(server, "/attendances")}
        rows = conn.execute("""select id, calendar_event_id, student_id, is_reported,
                                      attendance_minutes, invalid_absence_minutes,
                                      epoch_us(modified_at), epoch_us(reported_timestamp)
                               from raw_ss12000.attendances""").fetchall()
        assert len(rows) == len(served_att)
        for rid, event, student, reported, minutes, invalid, mod_us, rep_us in rows:
            rec = served_att[rid]
            assert (event, student, reported, minutes, invalid) == (
                rec["calendarEvent"]["id"], rec["student"]["id"], rec["isReported"],
                rec["attendanceMinutes"], rec["invalidAbsenceMinutes"])
            assert mod_us == int(dt.datetime.fromisoformat(rec["meta"]["modified"]).timestamp() * 1e6)
            assert (rep_us is None) == ("reportedTimestamp" not in rec)
        assert conn.execute("select count(*) from raw_ss12000.attendances "
                            "where invalid_absence_minutes < 0").fetchone()[0] == 1
        enrolments = conn.execute("select person_id, school_unit_id, school_year, start_date, end_date "
                                  "from raw_ss12000.enrolments order by person_id, start_date").fetchall()
        assert len(enrolments) == 6
        assert enrolments[2][4] == dt.date(2026, 2, 1) and enrolments[3][4] is None
        persons = dict(conn.execute("select id, civic_no from raw_ss12000.persons").fetchall())
        assert sorted(persons.values()) == sorted(pop.persons["pnr"][pop.persons.ss12000_id.notna()])
        marks = dict(conn.execute("select id, security_marking from raw_ss12000.persons").fetchall())
        assert marks["0c000000-0000-4000-8000-000000000004"] == "Skyddad folkbokföring"
        types = conn.execute("select school_types from raw_ss12000.organisations "
                             "where organisation_type = 'Skolenhet'").fetchall()
        assert all(t == (["GR"],) for t in types)
        watermarks = dict(conn.execute("select entity, watermark from load_meta.watermarks").fetchall())
    assert watermarks["attendances"] == max(
        (r["meta"]["modified"] for r in served_att.values()), key=dt.datetime.fromisoformat)
    assert watermarks["persons"] == "2026-04-01T09:00:00.250+02:00"

    # names reach landing (allowed) but never the warehouse
    landed_persons = pq.read_table(manifest.entity_path("persons")).column("record").to_pylist()
    assert any("Öhrström" in text for text in landed_persons)
    everything = _all_text_in_restricted_db(home)
    assert pop.persons["pnr"][0] in everything and "Bredängsskolan" in everything  # the scan sees values
    for name in [*pop.persons["first_name"], *pop.persons["last_name"]]:
        assert name not in everything, "a name reached the restricted warehouse"


def test_second_run_with_nothing_new_creates_no_batch(served, home):
    data, server = served
    ex = extractor(server)
    run_extract(home, ex)
    counts = _raw_counts(home)
    requests_before = len(server.requests)
    again = run_extract(home, ex)
    assert again.batches == [] and again.ok
    assert len(list_batches(home.landing, "ss12000")) == 1
    assert _raw_counts(home) == counts
    # the second run asked for changes since the watermarks
    firsts = [r for r in server.requests[requests_before:] if "pageToken" not in r.params]
    assert all("meta.modified.after" in r.params for r in firsts if r.path != "/deletedEntities")
    assert all("after" in r.params for r in firsts if r.path == "/deletedEntities")


def test_incremental_run_lands_exactly_the_changes(served, home):
    data, server = served
    ex = extractor(server, page_size=2)
    run_extract(home, ex)
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        old_wm = dict(conn.execute("select entity, watermark from load_meta.watermarks").fetchall())
    counts = _raw_counts(home)

    ids = data.ids("attendances")
    changed = data.get("attendances", ids[5])
    changed["validAbsenceMinutes"], changed["attendanceMinutes"] = 60, 0
    data.upsert("attendances", changed)
    data.delete("attendances", ids[6])
    time.sleep(1.1)  # deletions are watermarked by the (whole-second) server Date of the pull
    start = len(server.requests)
    result = run_extract(home, ex)
    assert len(result.batches) == 1 and result.batches[0].received == 2
    manifest = list_batches(home.landing, "ss12000")[-1]
    rows = {e: s.rows for e, s in manifest.entities.items()}
    assert rows == {"organisations": 0, "persons": 0, "calendar_events": 0, "attendances": 1,
                    "deleted_entities": 1}
    assert manifest.entities["attendances"].content_checksum == \
        data.served_checksum("attendances", after=old_wm["attendances"])[1]
    assert manifest.entities["deleted_entities"].content_checksum == \
        data.served_checksum("deletedEntities", after=old_wm["deleted_entities"])[1]
    assert manifest.watermark_from["attendances"] == old_wm["attendances"]

    # follow-up pages carry only pageToken and limit; first requests carry the watermark
    for r in server.requests[start:]:
        if "pageToken" in r.params:
            assert set(r.params) <= {"pageToken", "limit"}
    new_counts = _raw_counts(home)
    assert new_counts == {**counts, "attendances": counts["attendances"] + 1, "deleted_entities": 1}
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        versions = conn.execute("select valid_absence_minutes from raw_ss12000.attendances "
                                "where id = ? order by modified_at", [ids[5]]).fetchall()
        assert versions[-1] == (60,) and len(versions) == 2
        assert conn.execute("select entity_type, id from raw_ss12000.deleted_entities").fetchall() == [
            ("attendances", ids[6])]
    assert run_extract(home, ex).batches == []


# --- extractor: quarantine --------------------------------------------------------------------

def test_untypable_records_are_quarantined_without_names(served, home):
    data, server = served
    base = data.get("attendances", data.ids("attendances")[0])
    modified = "2026-05-01T10:00:00+02:00"
    bad_attendances = [
        {**base, "id": None, "meta": {"created": modified, "modified": modified}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000b1",
         "meta": {"created": modified, "modified": "yesterday"}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000b2", "isReported": "yes",
         "meta": {"created": modified, "modified": modified}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000b3", "attendanceMinutes": 12.5,
         "student": {"id": base["student"]["id"], "displayName": "Åsa Öhrström"},
         "meta": {"created": modified, "modified": modified}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000b4", "calendarEvent": "not-a-reference",
         "meta": {"created": modified, "modified": modified}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000b5", "invalidAbsenceMinutes": -5,
         "meta": {"created": modified, "modified": modified}},  # negative: loaded, not quarantined
    ]
    data.upsert_many("attendances", bad_attendances, verbatim=True)
    person = data.get("persons", "0c000000-0000-4000-8000-000000000001")
    person["id"] = "0c000000-0000-4000-8000-0000000000b1"
    person["enrolments"] = [{**person["enrolments"][0], "startDate": "2025-02-30"}]
    data.upsert("persons", person)
    result = run_extract(home, extractor(server))
    batch = result.batches[0]
    assert batch.received == batch.loaded + batch.quarantined and batch.quarantined == 6
    assert batch.quarantined_by_reason == {"missing_id": 1, "bad_timestamp": 1, "wrong_type": 3,
                                           "bad_date": 1}
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        rows = conn.execute("select entity, reason, detail, raw_row from load_meta.quarantine "
                            "order by entity, reason, detail").fetchall()
        assert [(e, r, d) for e, r, d, _ in rows] == [
            ("attendances", "bad_timestamp", "meta.modified"),
            ("attendances", "missing_id", "id"),
            ("attendances", "wrong_type", "attendanceMinutes"),
            ("attendances", "wrong_type", "calendarEvent"),
            ("attendances", "wrong_type", "isReported"),
            ("persons", "bad_date", "enrolments[].startDate"),
        ]
        person_raw = json.loads(rows[-1][3])
        assert "givenName" not in person_raw and "familyName" not in person_raw
        assert person_raw["civicNo"] == person["civicNo"]
        assert all("Öhrström" not in (r[3] or "") for r in rows)
        assert conn.execute("select count(*) from raw_ss12000.attendances where id = ?",
                            ["0f000000-0000-4000-8000-0000000000b5"]).fetchone()[0] == 1
        assert conn.execute("select count(*) from raw_ss12000.enrolments where person_id = ?",
                            ["0c000000-0000-4000-8000-0000000000b1"]).fetchone()[0] == 0
        totals = conn.execute("select sum(rows_received), sum(rows_loaded), sum(rows_quarantined) "
                              "from load_meta.batch_entities").fetchone()
        assert totals[0] == totals[1] + totals[2]
    assert "Öhrström" not in _all_text_in_restricted_db(home)


def test_row_level_faults_are_quarantined_with_reasons_and_the_batch_passes(served, home):
    from samverkan.quality import batch_validator
    from samverkan.sources.ss12000 import BATCH_FAULTS, ROW_FAULTS

    data, server = served
    for aid in data.ids("attendances"):  # the population's negative minutes are a batch-level fault
        rec = data.get("attendances", aid)
        if rec["invalidAbsenceMinutes"] < 0:
            data.upsert("attendances", {**rec, "invalidAbsenceMinutes": 0})
    modified = "2026-05-01T10:00:00+02:00"
    org = data.get("organisations", data.ids("organisations")[0])
    data.upsert_many("organisations", [
        {**org, "id": "0a000000-0000-4000-8000-0000000000c1", "organisationType": "Skolhus",
         "meta": {"created": modified, "modified": modified}}], verbatim=True)
    base = data.get("attendances", data.ids("attendances")[0])
    data.upsert_many("attendances", [
        {**base, "id": "0f000000-0000-4000-8000-0000000000c1",
         "meta": {"created": modified, "modified": "1985-03-01T08:00:00Z"}},
        {**base, "id": "0f000000-0000-4000-8000-0000000000c2", "reportedTimestamp": "2099-01-01T00:00:00Z",
         "meta": {"created": modified, "modified": modified}},
    ], verbatim=True)
    event = data.get("calendarEvents", data.ids("calendarEvents")[0])
    data.upsert_many("calendarEvents", [
        {**event, "id": "0e000000-0000-4000-8000-0000000000c1", "startTime": "1970-01-01T08:00:00Z",
         "endTime": "1970-01-01T09:00:00Z", "meta": {"created": modified, "modified": modified}}],
        verbatim=True)
    person = data.get("persons", "0c000000-0000-4000-8000-000000000001")
    odd_sex = {**person, "id": "0c000000-0000-4000-8000-0000000000c1", "sex": "X"}
    odd_school = {**person, "id": "0c000000-0000-4000-8000-0000000000c2",
                  "enrolments": [{**person["enrolments"][0], "schoolType": "XX"}]}
    data.upsert("persons", odd_sex)
    data.upsert("persons", odd_school)
    ex = extractor(server)
    result = run_extract(home, ex, batch_validator(ex, home))
    assert result.ok, result
    batch = result.batches[0]
    assert batch.received == batch.loaded + batch.quarantined and batch.quarantined == 6
    assert batch.quarantined_by_reason == {"not_allowed": 3, "implausible_date": 3}
    assert set(batch.quarantined_by_reason) <= set(ROW_FAULTS) and not set(ROW_FAULTS) & set(BATCH_FAULTS)
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        rows = conn.execute("select entity, reason, detail from load_meta.quarantine "
                            "order by entity, reason, detail").fetchall()
        assert rows == [
            ("attendances", "implausible_date", "meta.modified"),
            ("attendances", "implausible_date", "reportedTimestamp"),
            ("calendar_events", "implausible_date", "startTime"),
            ("organisations", "not_allowed", "organisationType"),
            ("persons", "not_allowed", "enrolments[].schoolType"),
            ("persons", "not_allowed", "sex"),
        ]
        assert conn.execute("select count(*) from raw_ss12000.attendances").fetchone()[0] == \
            data.count("attendances") - 2


# --- extractor: retries and failures ---------------------------------------------------------

def test_rate_limits_and_server_errors_are_retried(served, home):
    data, server = served
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    server.fail_next(429, count=1, retry_after=1)
    server.fail_next(503, count=2)
    server.fail_next(500, count=1)
    ex = extractor(server, sleep=sleep, backoff_seconds=0.05)
    result = run_extract(home, ex)
    assert result.ok and len(result.batches) == 1
    assert slept == [1.0, 0.1, 0.2, 0.4]  # Retry-After honoured, then exponential backoff
    manifest = list_batches(home.landing, "ss12000")[0]
    for entity in ENTITIES:
        assert manifest.entities[entity].content_checksum == data.served_checksum(ENDPOINT_OF[entity])[1]
    assert manifest.extra["retries"] == 4
    statuses = [r.status for r in server.requests[:5]]
    assert statuses == [429, 503, 503, 500, 200]


def test_timeouts_are_retried_and_retries_are_bounded(served, home):
    data, server = served
    server.stall_next(1.5)
    ex = SS12000Extractor(SS12000Config(base_url=server.base_url, token=TOKEN, page_size=50,
                                        timeout_seconds=0.5),
                          client_options={"backoff_seconds": 0.01})
    pull = ex.pull(SourceState({}))
    assert pull.extra["retries"] == 1
    assert pull.tables["attendances"].num_rows == data.count("attendances")

    server.fail_next(502, count=10)
    failing = extractor(server, max_attempts=3)
    with pytest.raises(SS12000UnavailableError, match=r"GET /organisations page 1: HTTP 502 .*3 attempts"):
        run_extract(home, failing)
    assert list_batches(home.landing, "ss12000") == []


def test_wrong_token_fails_fast_with_a_clear_message(served, home):
    data, server = served
    secret = "wrong-token-zz9"  # noqa: S105
    start = len(server.requests)
    with pytest.raises(SS12000AuthError) as info:
        run_extract(home, extractor(server, token=secret))
    message = str(info.value)
    assert "GET /organisations" in message and "401" in message and "token" in message
    assert secret not in message
    assert len(server.requests) - start == 1  # no retries on 401
    assert list_batches(home.landing, "ss12000") == []
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        assert conn.execute("select count(*) from load_meta.watermarks").fetchone()[0] == 0


def test_bad_requests_and_malformed_answers_fail_fast(served, home):
    data, server = served
    server.fail_next(400, body=json.dumps({"code": "invalid_filter",
                                           "message": "bad civicNo 201301012397"}).encode())
    with pytest.raises(SS12000ResponseError) as info:
        extractor(server).pull(SourceState({}))
    assert "GET /organisations page 1: HTTP 400" in str(info.value)
    assert "201301012397" not in str(info.value) and "invalid_filter" in str(info.value)

    server.fail_next(200, body=b'{"data": [{"id": "x"}, ')
    with pytest.raises(SS12000ResponseError, match="GET /organisations page 1: the response is not valid"):
        extractor(server).pull(SourceState({}))
    server.fail_next(200, body=b'{"data": [{"x": NaN}], "pageToken": null}')
    with pytest.raises(SS12000ResponseError, match="not valid JSON"):
        extractor(server).pull(SourceState({}))
    server.fail_next(200, body=b'{"items": []}')
    with pytest.raises(SS12000ResponseError, match="not an object with 'data'"):
        extractor(server).pull(SourceState({}))
    assert list_batches(home.landing, "ss12000") == []


# --- the simulator's population --------------------------------------------------------------

def test_generated_population_round_trip(home):
    from samverkan.simulator.population import generate

    pop = generate(pupils=120)
    data = SS12000Data.from_population(pop)
    pupils = pop.persons[pop.persons["ss12000_id"].notna()]
    assert data.count("persons") == len(pupils)
    assert data.count("attendances") == len(pop.attendances)
    assert data.count("calendarEvents") == len(pop.calendar_events)
    with serve(data, TOKEN) as server:
        result = run_extract(home, extractor(server, page_size=5000))
    assert result.ok and result.batches[0].quarantined == 0
    manifest = list_batches(home.landing, "ss12000")[0]
    for entity in ENTITIES:
        assert (manifest.entities[entity].rows, manifest.entities[entity].content_checksum) == \
            data.served_checksum(ENDPOINT_OF[entity]), entity
    counts = _raw_counts(home)
    assert counts["attendances"] == len(pop.attendances)
    assert counts["enrolments"] == int(pop.enrolments["person_key"].isin(pupils["person_key"]).sum())
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        independent = conn.execute("""
            select count(*) from raw_ss12000.organisations u
            join raw_ss12000.organisations h on h.id = u.parent_organisation_id
            where u.organisation_type = 'Skolenhet' and h.organisation_number <> '212000-0142'
        """).fetchone()[0]
    assert independent >= 1


def test_served_records_can_be_given_as_json(home):
    records = {
        "organisations": [{"id": "0a000000-0000-4000-8000-0000000000aa", "displayName": "Skola",
                           "organisationType": "Skolenhet", "schoolUnitCode": "29384011",
                           "meta": {"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z"}}],
        "calendarEvents": [{"id": "0d000000-0000-4000-8000-0000000000aa",
                            "activity": {"id": "0e000000-0000-4000-8000-0000000000aa"},
                            "startTime": "2026-03-02T08:15:00+01:00", "endTime": "2026-03-02T09:15:00+01:00",
                            "meta": {"created": "2026-03-01T12:00:00+01:00",
                                     "modified": "2026-03-01T12:00:00+01:00"}},
                           {"id": "0d000000-0000-4000-8000-0000000000ab", "activity": {"id": 7},
                            "startTime": "2026-03-02T08:15:00+01:00", "endTime": "2026-03-02T09:15:00",
                            "meta": {"created": "2026-03-01T12:00:00+01:00",
                                     "modified": "2026-03-01T12:00:00+01:00"}}],
    }
    data = SS12000Data.from_records(records)
    assert data.count("calendar_events") == 2 and data.count("persons") == 0
    with serve(data, TOKEN) as server:
        events = all_pages(server, "/calendarEvents", **{**WINDOW, "limit": 1})
        assert [canonical_json(e) for e in events] == sorted(
            (canonical_json(e) for e in records["calendarEvents"]), key=lambda t: json.loads(t)["id"])
        outside = get(server, "/calendarEvents", **{"startTime.onOrAfter": "2026-03-03T00:00:00Z",
                                                   "startTime.onOrBefore": "2026-03-04T00:00:00Z"})
        assert outside.json() == {"data": [], "pageToken": None}
        result = run_extract(home, extractor(server))
    batch = result.batches[0]
    assert (batch.received, batch.loaded, batch.quarantined) == (3, 1 + 1, 1)
    assert batch.quarantined_by_reason == {"wrong_type": 1}
    manifest = list_batches(home.landing, "ss12000")[0]
    assert manifest.entities["calendar_events"].content_checksum == data.served_checksum("calendar_events")[1]


# --- OAuth2 client credentials --------------------------------------------------------------

CLIENT_ID, CLIENT_SECRET = "samverkan-test", "client-secret-7d1e90"  # noqa: S105 - test credentials
TOKENISH = re.compile(r"[A-Za-z0-9_\-]{30,}")  # an issued access token is 32 such characters


@pytest.fixture
def oauth_served(pop):
    data = SS12000Data.from_population(pop)
    with serve(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=600) as server:
        yield data, server


def oauth_config(server, secret: str = CLIENT_SECRET, page_size: int = 7, **kwargs: Any) -> SS12000Config:
    return SS12000Config(base_url=server.base_url, token_url=server.token_url, client_id=CLIENT_ID,
                         client_secret=secret, page_size=page_size, timeout_seconds=5, **kwargs)


def test_oauth2_token_endpoint_of_the_simulator(oauth_served):
    data, server = oauth_served
    url = server.token_url
    assert get(server, "/organisations", token=None).status_code == 401
    # HTTP Basic client authentication
    basic = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=5)
    assert basic.status_code == 200 and basic.headers["Cache-Control"] == "no-store"
    doc = basic.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 600 and doc["access_token"]  # noqa: S105
    assert get(server, "/organisations", token=doc["access_token"]).status_code == 200
    # form client authentication
    form = requests.post(url, data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                    "client_secret": CLIENT_SECRET}, timeout=5)
    assert form.status_code == 200 and form.json()["access_token"] != doc["access_token"]
    assert server.tokens_issued == 2
    # refusals
    wrong = requests.post(url, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "nope"),
                          timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = requests.post(url, data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    # revoked and expired tokens are refused
    assert server.revoke_tokens() == 2
    assert get(server, "/organisations", token=doc["access_token"]).status_code == 401
    fresh = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=5).json()["access_token"]
    assert get(server, "/organisations", token=fresh).status_code == 200
    server.expire_tokens()
    assert get(server, "/organisations", token=fresh).status_code == 401
    with pytest.raises(ValueError, match="token or client_id"):
        serve(data)


def test_oauth2_extract_refreshes_once_after_a_401_mid_run(oauth_served, home):
    data, server = oauth_served
    with SS12000Client(oauth_config(server, page_size=5)) as client:
        pages = client.pages("attendances")
        first = next(pages)
        assert server.tokens_issued == 1
        server.revoke_tokens()  # mid-run: the next page is refused once, then served
        records = [*first.body["data"], *(r for page in pages for r in page.body["data"])]
    assert len(records) == data.count("attendances")
    assert server.tokens_issued == 2
    statuses = [r.status for r in server.requests if r.path == "/attendances"]
    assert statuses.count(401) == 1 and statuses[1:3] == [401, 200]

    # a whole extract with OAuth2 lands exactly what was served
    result = run_extract(home, SS12000Extractor(oauth_config(server),
                                                client_options={"backoff_seconds": 0.01}))
    assert result.ok and result.batches[0].quarantined == 0
    manifest = list_batches(home.landing, "ss12000")[0]
    for entity in ENTITIES:
        assert (manifest.entities[entity].rows, manifest.entities[entity].content_checksum) == \
            data.served_checksum(ENDPOINT_OF[entity]), entity


def _attendance_requests(server) -> int:
    return sum(1 for r in server.requests if r.path == "/attendances")


def _wait_for(condition, seconds: float = 10.0) -> bool:
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.01)
    return True


def test_prefetch_asks_for_the_next_page_while_the_caller_works_on_this_one(served):
    """The extractor's pages: page 2 is asked for as soon as page 1's pageToken is known, while
    the caller still holds page 1; without prefetch only when the caller asks. Both read the
    same pages."""
    data, server = served
    config = SS12000Config(base_url=server.base_url, token=TOKEN, page_size=7, timeout_seconds=5)
    with SS12000Client(config) as client:
        pages = client.pages("attendances")
        first = next(pages)
        time.sleep(0.3)
        assert _attendance_requests(server) == 1
        plain = [first.body["data"], *(page.body["data"] for page in pages)]
    before = _attendance_requests(server)
    with SS12000Client(config) as client:
        pages = client.pages("attendances", prefetch=True)
        first = next(pages)
        assert _wait_for(lambda: _attendance_requests(server) == before + 2)
        prefetched = [first.body["data"], *(page.body["data"] for page in pages)]
    assert prefetched == plain and len(plain) > 2
    assert sum(map(len, plain)) == data.count("attendances")


def test_a_prefetched_page_left_unread_asks_for_nothing_more(served):
    """A caller that stops after page 1 (the pull failed on it) leaves page 2's request
    behind: it is not retried and the caller does not wait for it."""
    _, server = served
    server.stall_next(0.0)           # page 1: answered
    server.fail_next(503, count=20)  # page 2 and any retry of it: refused
    config = SS12000Config(base_url=server.base_url, token=TOKEN, page_size=7, timeout_seconds=5)
    with SS12000Client(config, backoff_seconds=0.2, max_attempts=10) as client:
        pages = client.pages("attendances", prefetch=True)
        next(pages)
        started = time.monotonic()
        pages.close()
        assert time.monotonic() - started < 0.2
        time.sleep(1.5)  # retries would have come at 0.2, 0.6 and 1.4 s
        assert _attendance_requests(server) <= 2 and client.retries <= 1


def test_oauth2_token_is_renewed_before_it_expires(pop):
    data = SS12000Data.from_population(pop)
    with serve(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=1) as server, \
            SS12000Client(oauth_config(server, page_size=5)) as client:
        pages = client.pages("attendances")
        next(pages)
        time.sleep(1.0)  # the token has (nearly) run out: the client fetches a new one first
        rest = list(pages)
    assert rest and server.tokens_issued == 2
    assert all(r.status == 200 for r in server.requests if r.path == "/attendances")


def test_oauth2_second_401_and_bad_credentials_fail_clearly(oauth_served, home):
    data, server = oauth_served
    # a 401 even with a fresh token: one refresh, then a clear error naming the endpoint
    server.fail_next(401, count=2)
    with pytest.raises(SS12000AuthError) as info:
        run_extract(home, SS12000Extractor(oauth_config(server)))
    message = str(info.value)
    assert "GET /organisations page 1: HTTP 401" in message and "freshly issued token" in message
    assert CLIENT_SECRET not in message and not TOKENISH.search(message)
    assert server.tokens_issued == 2
    assert [r.status for r in server.requests if r.path == "/organisations"] == [401, 401]

    # wrong client secret: the token endpoint refuses, the message names it, not the secret
    secret = "wrong-secret-zz9"  # noqa: S105
    with pytest.raises(SS12000AuthError) as info:
        run_extract(home, SS12000Extractor(oauth_config(server, secret=secret)))
    message = str(info.value)
    assert "POST /oauth/token" in message and "401" in message and "client_secret" in message
    assert secret not in message and CLIENT_SECRET not in message
    assert list_batches(home.landing, "ss12000") == []

    # configuration: token_url needs the client credentials; static tokens still win
    with pytest.raises(ConfigError, match="client_secret"):
        SS12000Extractor(SS12000Config(base_url=server.base_url, token_url=server.token_url,
                                       client_id=CLIENT_ID))
    assert isinstance(auth_from_config(SS12000Config(base_url="http://x", token=TOKEN,
                                                     token_url=server.token_url)), StaticBearerToken)
    assert CLIENT_SECRET not in repr(auth_from_config(oauth_config(server)))


# --- random fault injection -------------------------------------------------------------------

def test_random_faults_still_land_exactly_what_was_served(home):
    from samverkan.simulator.population import generate

    data = SS12000Data.from_population(generate(pupils=150))
    data.delete_many("attendances", data.ids("attendances")[:25])
    data.delete("persons", data.ids("persons")[0])
    with serve(data, TOKEN, fault_rate=0.2, fault_seed=11, fault_retry_after=1,
               fault_stall_seconds=1.2) as server:
        ex = SS12000Extractor(SS12000Config(base_url=server.base_url, token=TOKEN, page_size=3000,
                                            timeout_seconds=0.8),
                              client_options={"backoff_seconds": 0.05, "max_attempts": 5})
        result = run_extract(home, ex)
        faults = server.faults()
        log = list(server.requests)
    assert result.ok and len(result.batches) == 1 and result.batches[0].quarantined == 0
    manifest = list_batches(home.landing, "ss12000")[0]
    for entity in ENTITIES:
        assert (manifest.entities[entity].rows, manifest.entities[entity].content_checksum) == \
            data.served_checksum(ENDPOINT_OF[entity]), entity
    assert manifest.entities["deleted_entities"].rows == 26
    with duckdb.connect(str(home.restricted_db), read_only=True) as conn:
        for entity, table in RAW_TABLE.items():
            key = "entity_type, id" if entity == "deleted_entities" else "id"
            total, distinct = conn.execute(
                f"select count(*), count(distinct ({key})) from raw_ss12000.{table}").fetchone()
            assert total == distinct == data.served_checksum(ENDPOINT_OF[entity])[0], entity
    # faults really happened, of several kinds, and the client retried each of them
    injected = sum(faults.values())
    assert injected >= 5 and sum(1 for n in faults.values() if n) >= 3, faults
    assert 0.08 < injected / len(log) < 0.35, (injected, len(log))
    assert manifest.extra["retries"] >= injected  # a slow machine may add a real time-out
    assert {r.status for r in log if r.fault in ("429", "500", "503")} <= {429, 500, 503}
