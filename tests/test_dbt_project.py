"""The dbt project end to end: a hand-built raw warehouse -> ``dbt build`` (models, data tests,
unit tests) -> concrete indicator cells computed by hand from dbt_project/INDICATOR_RULES.md,
plus the privacy properties of the analytics warehouse, the target directory and the logs.

Reference date R = 2025-03-20; report window 2024-04-01 .. R: months April 2024 .. March 2025,
the ISO weeks from 2024-04-01, the terms vt 2024 .. vt 2025, the years 2024 and 2025.
Areas: SKH = Skärholmen, EAV = Enskede-Årsta-Vantör, SOD = Södermalm; city = 0180. SSPF areas:
SKH-BS (Bredäng/Sätra; the school unit 29384011, municipal), SKH-SV (Skärholmen/Vårberg), EAV-RA
(Rågsved; the school unit 29384031, independent), EAV-OB (Östberga).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import MUNICIPALITY_VARS, write_config, write_reference

from samverkan.config import DBT_PROJECT_DIR, Paths
from samverkan.transform import (
    dbt_build,
    dbt_docs_generate,
    dbt_env,
    dbt_log_dir,
    dbt_parse,
    ensure_raw_schema,
    run_dbt,
)

TEST_KEY = "samverkan-test-key-7f3a9c1e5b2d8046aa17c3e9"
REFERENCE_DATE = "2025-03-20"
# The reporting lag is one school day here (the default is 3): the last school day up to R is
# 10 March (LMAR), so February's records all count in the reporting rate.
VARS = {"reference_date": REFERENCE_DATE, "data_version": "test-1", "reporting_lag_school_days": 1,
        **MUNICIPALITY_VARS}
CITY = "0180"


# --- identifiers ------------------------------------------------------------------------------

def luhn_check_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return str((10 - total % 10) % 10)


def pnr(yyyymmdd: str, serial: str) -> str:
    """A Luhn-valid 12-digit number (fictional; serials 98x like Skatteverket's test series)."""
    return yyyymmdd + serial + luhn_check_digit(yyyymmdd[2:] + serial)


def fmt(number12: str, style: str) -> str:
    """The formats the sources deliver."""
    return {
        "12": number12,
        "dash12": f"{number12[:8]}-{number12[8:]}",
        "dash10": f"{number12[2:8]}-{number12[8:]}",
        "plus10": f"{number12[2:8]}+{number12[8:]}",
        "plain10": number12[2:],
        "spaced": f"{number12[:8]} {number12[8:]}",
    }[style]


def invalid(number12: str) -> str:
    """Same number with a wrong check digit."""
    return number12[:-1] + str((int(number12[-1]) + 1) % 10)


# Skatteverket test numbers
P1 = "201301012397"            # pupil, Skärholmen school
ADULT = "189001019802"         # born 1890
# computed fictional numbers
P2, P3, P4 = pnr("20120305", "981"), pnr("20120505", "982"), pnr("20130303", "983")
P5 = pnr("20120375", "984")    # samordningsnummer: born 2012-03-15
P6, P7, P8 = pnr("20120606", "985"), pnr("20120707", "986"), pnr("20120808", "987")
P9, P10 = pnr("20120909", "988"), pnr("20121010", "989")
X1, X3, X4 = pnr("20121111", "981"), pnr("20121212", "982"), pnr("20130113", "983")
X2_INVALID = invalid(pnr("20130114", "984"))
X5, X6 = pnr("20130115", "985"), pnr("20130116", "986")
Q1, Q2 = pnr("20130217", "987"), pnr("20130218", "988")
C1, C2, C3 = pnr("20080505", "981"), pnr("20080606", "982"), pnr("20080707", "983")
C4, C5, C6 = pnr("20091212", "984"), pnr("20090101", "985"), pnr("20090202", "986")
C7, C8, C9 = pnr("20090303", "987"), pnr("20061120", "988"), pnr("20090404", "989")
C11 = pnr("20100101", "981")
K11C, K12C, K13C = pnr("20140101", "982"), pnr("20140202", "983"), pnr("20140303", "984")
K14C, K16C, K20C = pnr("20140404", "985"), pnr("20140505", "986"), pnr("20140606", "987")
K15C, K17C, K18C = pnr("20140707", "988"), pnr("20140808", "989"), pnr("20140909", "981")
K19C, PROT_CHILD = pnr("20150101", "982"), pnr("20150202", "983")
INVALID_CHILD = invalid(pnr("20150303", "984"))
Y1 = pnr("20121224", "985")    # attends lessons without a GR enrolment; has an SST
ALL_VALID = [P1, ADULT, P2, P3, P4, P5, P6, P7, P8, P9, P10, X1, X3, X4, X5, X6, Q1, Q2, C1,
             C2, C3, C4, C5, C6, C7, C8, C9, C11, K11C, K12C, K13C, K14C, K16C, K20C, K15C,
             K17C, K18C, K19C, PROT_CHILD, Y1]
ALL_NUMBERS = ALL_VALID + [X2_INVALID, INVALID_CHILD]


# --- the raw warehouse ------------------------------------------------------------------------

def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def load_fixture(db: Path) -> None:
    conn = duckdb.connect(str(db))
    try:
        _insert_fixture(conn)
    finally:
        conn.close()


def _insert_fixture(conn: duckdb.DuckDBPyConnection) -> None:
    def insert(table: str, rows: list[tuple]) -> None:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"insert into {table} values ({marks})", rows)

    loaded = ts("2025-03-20T06:00:00")
    insert("load_meta.batches", [
        (b, src, loaded, loaded + dt.timedelta(minutes=i), None, None, 0, 0, 0, f"landing/{b}")
        for i, (b, src) in enumerate([
            ("ss-1", "ss12000"), ("ss-2", "ss12000"), ("cs-1", "case_system"),
            ("cs-2", "case_system"), ("po-1", "police"), ("po-2", "police")])
    ])

    # ---- SS 12000 -----------------------------------------------------------------------
    m0 = ts("2024-08-01T00:00:00")
    insert("raw_ss12000.organisations", [
        ("ss-1", "hm-stad", "Stockholms stad", "Huvudman", "212000-0142", None, "0180", None, None, m0),
        ("ss-1", "hm-fri", "Friskolan AB", "Huvudman", "556677-8899", None, "0180", None, None, m0),
        ("ss-1", "su-skh", "Skola Skärholmen", "Skolenhet", None, "29384011", "0180", ["GR"], "hm-stad", m0),
        ("ss-1", "su-eav", "Skola Rågsved", "Skolenhet", None, "29384031", "0180", ["GR"], "hm-fri", m0),
    ])

    persons = []   # (person_id, number, marking, enrolments [(unit, type, year, start, end)])
    skh = [("su-skh", "GR", 6, dt.date(2024, 8, 15), None)]
    eav = [("su-eav", "GR", 6, dt.date(2024, 8, 15), None)]
    for pid, number in [("pp-02", P2), ("pp-04", P4), ("pp-05", P5), ("pp-06", P6),
                        ("pp-07", P7), ("pp-08", P8), ("pp-09", P9), ("pp-10", P10),
                        ("pp-x3", X3), ("pp-x4", X4), ("pp-x6", X6)]:
        persons.append((pid, number, "Ingen", skh))
    persons += [
        ("pp-03", P3, "Ingen", [("su-eav", "GR", 7, dt.date(2024, 8, 15), dt.date(2025, 2, 10)),
                                ("su-skh", "GR", 7, dt.date(2025, 2, 11), None)]),
        ("pp-x1", X1, "Skyddad folkbokföring", skh),
        ("pp-x2", X2_INVALID, "Ingen", skh),
        ("pp-x5", X5, "Ingen", [("su-skh", "GY", 1, dt.date(2024, 8, 15), None)]),
        ("pp-q1", Q1, "Ingen", eav),
        ("pp-q2", Q2, "Ingen", eav),
        ("pp-y1", Y1, "Ingen", []),
    ]
    m1 = ts("2024-08-20T10:00:00")
    person_rows, enrolment_rows = [], []
    for pid, number, marking, enrolments in persons:
        person_rows.append(("ss-1", pid, number, None, "F", marking, m1))
        enrolment_rows += [("ss-1", pid, *e, m1) for e in enrolments]
    # P1: an older version enrolled in Rågsved; the newer version (newest wins) in Skärholmen
    person_rows.append(("ss-1", "pp-01", P1, None, "M", "Ingen", m1))
    enrolment_rows.append(("ss-1", "pp-01", "su-eav", "GR", 6, dt.date(2024, 8, 15), None, m1))
    m2 = ts("2024-09-01T10:00:00")
    person_rows.append(("ss-2", "pp-01", P1, None, "M", "Ingen", m2))
    enrolment_rows.append(("ss-2", "pp-01", "su-skh", "GR", 6, dt.date(2024, 8, 15), None, m2))
    insert("raw_ss12000.persons", person_rows)
    insert("raw_ss12000.enrolments", enrolment_rows)

    events = {
        "L1": ("2025-02-12T07:00:00", "2025-02-12T12:00:00"),        # 300 min
        "L2": ("2025-02-13T07:00:00", "2025-02-13T11:00:00"),        # 240 min
        "LATE": ("2025-01-31T23:30:00", "2025-02-01T00:30:00"),      # 60 min, 1 Feb local
        "L3": ("2025-02-14T07:00:00", "2025-02-14T09:00:00"),        # 120 min
        "LDEL": ("2025-02-15T07:00:00", "2025-02-15T12:00:00"),      # deleted event
        "LMAR": ("2025-03-10T07:00:00", "2025-03-10T12:00:00"),      # 300 min
        "LAFTER": ("2025-03-25T07:00:00", "2025-03-25T12:00:00"),    # after R
        "LNOV": ("2024-11-12T07:00:00", "2024-11-12T12:00:00"),      # 300 min, before two SSTs
    }
    insert("raw_ss12000.calendar_events", [
        ("ss-1", eid, "act-1", ts(start), ts(end), m2) for eid, (start, end) in events.items()
    ])

    att = []
    n = 0

    def record(student: str, event: str, valid: int, invalid_: int, reported: bool = True,
               modified: dt.datetime = m2, batch: str = "ss-1", att_id: str | None = None) -> None:
        nonlocal n
        n += 1
        att.append((batch, att_id or f"a-{n}", event, student, reported, None, valid, invalid_,
                    0, None, modified))

    record("pp-01", "L1", 30, 30)                     # 60/300 high
    record("pp-01", "LMAR", 0, 0)                     # March: 0/300
    record("pp-01", "LAFTER", 300, 0)                 # after R: ignored
    record("pp-02", "L2", 60, 0)                      # 60/(240+60)
    record("pp-02", "LATE", 0, 0)                     # local 1 February
    record("pp-03", "L1", 100, 0)
    record("pp-04", "L1", 0, 0, att_id="a-p4")        # old version: no absence
    record("pp-04", "L1", 30, 30, modified=ts("2025-02-20T10:00:00"), batch="ss-2",
           att_id="a-p4")                             # correction wins: 60/300 high
    record("pp-05", "L1", 45, 0)                      # exactly 0.15: high
    record("pp-06", "L1", 44, 0)                      # 0.1467: not high
    record("pp-06", "L3", 120, 0, att_id="a-p6-del")  # deleted record
    record("pp-07", "L1", 0, 0)
    record("pp-07", "LDEL", 300, 0)                   # its lesson was deleted
    record("pp-08", "L1", 0, 0)
    record("pp-09", "L1", 0, 0)
    record("pp-10", "L1", 0, 0)
    record("pp-10", "L3", 120, 0, reported=False)     # unreported: not offered
    for pid in ("pp-x1", "pp-x2", "pp-x3", "pp-x5", "pp-x6"):
        record(pid, "L1", 300, 0)                     # excluded persons, all absent
    record("pp-x4", "L2", 240, 0)                     # 240 < 300 offered: not assessed
    record("pp-q1", "L1", 100, 0)
    record("pp-q2", "L1", 0, 0)
    # not enrolled in GR (no school indicator), but in the windows of their SSTs (sst_effekt)
    record("pp-y1", "LNOV", 150, 0)                   # before: 0.5
    record("pp-y1", "L1", 0, 0)                       # after: 0.0, improved
    record("pp-x5", "LNOV", 300, 0)                   # before: 1.0; after (L1 above): 1.0
    insert("raw_ss12000.attendances", att)
    insert("raw_ss12000.deleted_entities", [
        ("ss-2", "attendances", "a-p6-del"),
        ("ss-2", "calendarEvents", "LDEL"),
        ("ss-2", "persons", "pp-x6"),
    ])

    # ---- case system --------------------------------------------------------------------
    t1, t2 = dt.datetime(2025, 1, 1, 9), dt.datetime(2025, 3, 1, 9)
    clients = [  # klient_id, personnummer as delivered, protected
        (1, fmt(P1, "dash12"), False), (2, fmt(P2, "dash10"), False),
        (3, fmt(P3, "spaced"), False), (4, fmt(P4, "12"), False),
        (5, fmt(P5, "dash10"), False), (6, fmt(Q1, "plain10"), False),
        (7, fmt(X3, "dash12"), True),                     # protected here: excluded everywhere
        (10, fmt(C1, "dash10"), False), (11, fmt(K11C, "12"), False),
        (12, fmt(K12C, "12"), False), (13, fmt(K13C, "dash12"), False),
        (14, fmt(K14C, "12"), False), (15, fmt(K15C, "12"), False),
        (16, fmt(K16C, "12"), False), (17, fmt(K17C, "12"), False),
        (18, fmt(K18C, "12"), False), (19, fmt(K19C, "12"), False),
        (20, fmt(K20C, "12"), False), (21, fmt(C9, "12"), False),
        (22, fmt(C11, "12"), False), (23, fmt(P3, "dash12"), False),
        (30, fmt(ADULT, "plus10"), False), (31, fmt(PROT_CHILD, "12"), True),
        (32, fmt(INVALID_CHILD, "dash12"), False), (33, None, False),
        (24, fmt(Y1, "12"), False), (26, fmt(X5, "dash12"), False),
    ]
    insert("raw_case_system.klient", [("cs-1", k, p, s, t1) for k, p, s in clients])

    d = dt.date
    # stadsdel: the stadsdelsområde handling the matter, by name or code (never a neighbourhood)
    matters = [  # id, klient, inkom, typ, stadsdel, förhandsbedömning
        (100, 1, d(2024, 2, 28), "Anmälan", "Skärholmen", None),
        (101, 2, d(2025, 2, 28), "Anmälan", "Skärholmen", d(2025, 3, 1)),
        (102, 3, d(2025, 3, 1), "Anmälan", "Skärholmen", d(2025, 3, 16)),   # day 15
        (103, 4, d(2024, 6, 1), "Anmälan", "Enskede-Årsta-Vantör", d(2024, 6, 10)),
        (104, 6, d(2024, 10, 10), "Anmälan", "EAV", None),                  # by code
        (110, 10, d(2025, 1, 5), "Anmälan", "Skärholmen", d(2025, 1, 19)),  # day 14
        (111, 11, d(2025, 1, 6), "Anmälan", "Skärholmen", d(2025, 1, 21)),  # day 15
        (112, 12, d(2025, 1, 7), "Anmälan", "Skärholmen", None),            # pending
        (113, 13, d(2025, 1, 8), "Anmälan", " Skärholmen ", d(2025, 1, 10)),
        (114, 10, d(2025, 1, 20), "Anmälan", "Skärholmen", d(2025, 3, 25)), # decided after R
        (116, 30, d(2025, 1, 10), "Anmälan", "Skärholmen", None),           # adult
        (117, 31, d(2025, 1, 11), "Anmälan", "Skärholmen", None),           # protected
        (118, 32, d(2025, 1, 12), "Anmälan", "Skärholmen", None),           # invalid number
        (119, 15, d(2025, 1, 13), "Ansökan", "Skärholmen", None),           # not a report
        (120, 16, d(2025, 1, 14), "Anmälan", "", d(2025, 1, 28)),           # blank: city only
        (121, 17, d(2025, 1, 15), "Anmälan", "Skärholmen", None),           # weeded
        (122, 18, d(2025, 1, 16), "Anmälan", "Skärholmen", None),           # client weeded
        (123, 19, d(2025, 3, 25), "Anmälan", "Skärholmen", None),           # after R
        (124, 19, d(2025, 3, 5), "Anmälan", "Skärholmen", None),            # pending, due 19 Mar
        (125, 19, d(2025, 3, 6), "Anmälan", "Skärholmen", None),            # due 20 Mar = R
        (126, 20, d(2025, 1, 17), "Anmälan", "Södermalm", d(2025, 1, 31)),
        (127, 33, d(2025, 1, 18), "Anmälan", "Skärholmen", None),           # missing number
        (128, 20, d(2025, 1, 19), "Övrigt", "Vårberg", None),   # a neighbourhood: unknown here
    ]
    reporter = {113: " Polis ", 120: "", 126: None}   # trimmed; blank and missing: 'Okänd'
    decision = {110: "Inte inleda utredning", 111: "Inleda utredning",
                114: "Inleda utredning"}               # 114 decided after R: not yet decided
    rows = [("cs-1", i, k, day, typ, reporter.get(i, "Skola"), None, fb, decision.get(i), sd, t1)
            for i, k, day, typ, sd, fb in matters]
    # a correction: first delivered as 'Övrigt' in December, corrected to an Anmälan in January
    rows.append(("cs-1", 115, 14, d(2024, 12, 30), "Övrigt", "Skola", None, None, None,
                 "Skärholmen", t1))
    rows.append(("cs-2", 115, 14, d(2025, 1, 2), "Anmälan", "Skola", None, d(2025, 1, 16),
                 "Inleda utredning", "Skärholmen", t2))
    insert("raw_case_system.aktualisering", rows)
    insert("raw_case_system.utredning", [
        ("cs-1", 200, 21, None, d(2023, 1, 1), d(2024, 3, 15), "Ingen insats", t1),
        ("cs-1", 201, 14, 115, d(2024, 10, 31), d(2025, 2, 28), "Ingen insats", t1),  # in time
        ("cs-1", 202, 13, 113, d(2024, 10, 31), d(2025, 3, 1), "Ingen insats", t1),   # late
        ("cs-1", 203, 30, None, d(2024, 11, 1), d(2025, 2, 10), "Ingen insats", t1),  # adult
        ("cs-1", 204, 12, 112, d(2025, 1, 1), d(2025, 3, 25), "Ingen insats", t1),    # after R
    ])
    insert("raw_case_system.insats", [
        ("cs-1", 300, 22, "KP", d(2023, 6, 1), d(2024, 2, 28), None, "Mål uppnått", t1),
        ("cs-1", 301, 23, "SST", d(2025, 2, 1), None, None, None, t1),
        ("cs-1", 302, 22, "SIG", d(2025, 3, 25), None, None, None, t1),     # starts after R
        ("cs-1", 303, 2, "PLAC_FH", d(2024, 6, 1), None, d(2025, 5, 1), None, t1),
        ("cs-1", 304, 6, "PLAC_HVB", d(2024, 1, 1), d(2025, 3, 5), None,
         "Återförening med vårdnadshavare", t1),
        ("cs-1", 305, 21, "SIG", d(2024, 8, 20), None, None, None, t1),     # F 2025-02-20
        ("cs-1", 306, 30, "SIG", d(2024, 9, 1), None, None, None, t1),      # F 2025-03-01
        ("cs-1", 307, 24, "SST", d(2024, 12, 2), d(2024, 12, 20), None, "Mål uppnått", t1),
        ("cs-1", 308, 26, "SST", d(2024, 12, 2), d(2024, 12, 20), None, "Mål uppnått", t1),
    ])
    insert("raw_case_system.gallring", [
        ("cs-2", "aktualisering", 121, t2),
        ("cs-2", "klient", 18, t2),
    ])

    # ---- police -------------------------------------------------------------------------
    s1, s2 = dt.datetime(2024, 12, 1, 8), dt.datetime(2025, 1, 10, 8)
    police = [  # diarienummer, brottsdatum, stadsdel, personnummer, roll, status, senast ändrad
        ("5000-K1-24", d(2024, 11, 3), "Rågsved", fmt(C1, "dash12"), "Misstänkt", "Aktiv", s1),
        ("5000-K2-24", d(2024, 11, 10), "Rågsved", fmt(C1, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K3-24", d(2024, 11, 5), "Rågsved", fmt(C2, "dash10"), "Misstänkt", "Aktiv", s1),
        ("5000-K4-24", d(2024, 11, 6), "Bredäng", fmt(C2, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K5-24", d(2024, 11, 7), "Rågsved", fmt(C3, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K5-24", d(2024, 11, 7), "Rågsved", fmt(C3, "dash12"), "Misstänkt", "Makulerad", s2),
        ("5000-K6-24", d(2024, 10, 15), "Rågsved", fmt(C4, "dash12"), "Misstänkt", "Aktiv", s1),
        ("5000-K6-24", d(2024, 11, 15), "Rågsved", fmt(C4, "spaced"), "Misstänkt", "Aktiv", s2),
        ("5000-K7-24", d(2024, 11, 8), "Rågsved", fmt(C5, "12"), "Målsägande", "Aktiv", s1),
        ("5000-K8-24", d(2024, 11, 9), "Rågsved", fmt(ADULT, "dash12"), "Misstänkt", "Aktiv", s1),
        ("5000-K9-24", d(2024, 11, 9), "Rågsved", fmt(X2_INVALID, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K10-24", d(2024, 11, 11), "Rågsved", fmt(X1, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K11-24", d(2024, 11, 12), "", fmt(C6, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K12-24", d(2024, 11, 13), "Gotham", fmt(C7, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K13-24", d(2024, 11, 20), "Rågsved", fmt(C8, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K14-24", d(2024, 11, 21), "Rågsved", None, "Misstänkt", "Aktiv", s1),
        ("5000-K15-24", d(2024, 5, 5), "Bredäng", fmt(P1, "12"), "Målsägande", "Aktiv", s1),
        ("5000-K16-24", d(2024, 12, 1), "Rågsved", fmt(P4, "12"), "Misstänkt", "Aktiv", s2),
        ("5000-K17-24", d(2024, 8, 8), "Rågsved", fmt(C9, "12"), "Målsägande", "Aktiv", s1),
        ("5000-K18-24", d(2024, 9, 9), "Rågsved", fmt(C11, "12"), "Misstänkt", "Aktiv", s1),
        ("5000-K19-25", d(2025, 2, 5), "Rågsved", fmt(P6, "12"), "Misstänkt", "Aktiv", s2),
        ("5000-K20-25", d(2025, 2, 12), "Rågsved", fmt(P3, "12"), "Misstänkt", "Aktiv", s2),
    ]
    # offence codes: 0301 (våld) unless listed; matched trimmed; 9999 is not in ref_brottskoder
    codes = {"5000-K2-24": " 0981", "5000-K11-24": "9999"}
    insert("raw_police.events", [
        ("po-2" if changed == s2 else "po-1", f"polis_{changed:%Y%m%d}.csv", i + 2, dn, bd,
         bd, codes.get(dn, "0301"), "Misshandel utomhus", "Stockholm", sd, p, roll, None, status,
         changed)
        for i, (dn, bd, sd, p, roll, status, changed) in enumerate(police)
    ])


# --- fixtures ---------------------------------------------------------------------------------

WAREHOUSE_TOML = '\n[warehouse]\nmemory_limit = "1GiB"\nthreads = 1\n'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("samverkan_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMVERKAN_HOME", str(home))
        mp.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
        mp.delenv("SAMVERKAN_PSEUDONYM_KEY_FILE", raising=False)
        paths = Paths(home).ensure()
        # a bounded warehouse: the build must work under it (test_dbt_connection_settings)
        write_config(home, WAREHOUSE_TOML)
        ensure_raw_schema(paths)
        load_fixture(paths.restricted_db)
        started = time.monotonic()
        outcome = dbt_build(paths, VARS)
        elapsed = time.monotonic() - started
        print(f"dbt build on the fixture: {elapsed:.1f}s; {outcome.summary()}")
        yield paths, outcome


@pytest.fixture(scope="module")
def analytics(built):
    paths, outcome = built
    assert outcome.success, outcome.failures
    conn = duckdb.connect(str(paths.analytics_db), read_only=True)
    yield conn
    conn.close()


def cells(conn: duckdb.DuckDBPyConnection, table: str, indicator: str | None = None,
          period_type: str = "manad", levels: tuple[str, ...] = ("stad", "stadsdelsomrade"),
          breakdowns: tuple[str, ...] = ("totalt",)) -> dict:
    """The cells of one period type, some area levels and breakdowns, keyed by (period,
    area_code, breakdown_value); the period is 'YYYY-MM' for months, else its first day."""
    period = "'%Y-%m'" if period_type == "manad" else "'%Y-%m-%d'"
    extra = ", suppressed" if table == "published_indicators" else ""
    rows = conn.execute(
        f"select strftime(period_start, {period}), area_code, breakdown_value, numerator,"
        f" denominator, value{extra} from marts.{table}"
        " where period_type = ? and list_contains(?, area_level) and list_contains(?, breakdown)"
        + (" and indicator_id = ?" if indicator else ""),
        [period_type, list(levels), list(breakdowns), *([indicator] if indicator else [])],
    ).fetchall()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def cell(conn: duckdb.DuckDBPyConnection, indicator: str, period_type: str, period_start: str,
         area_code: str, breakdown: str = "totalt", breakdown_value: str = "totalt",
         columns: str = "numerator, denominator, value", table: str = "indicators") -> tuple | None:
    """One cell of marts.indicators (or an ind_* table); None when it does not exist."""
    found = conn.execute(
        f"select {columns} from marts.{table} where indicator_id = ? and period_type = ?"
        " and period_start = ?::date and area_code = ? and breakdown = ? and breakdown_value = ?",
        [indicator, period_type, period_start, area_code, breakdown, breakdown_value],
    ).fetchall()
    assert len(found) <= 1
    return found[0] if found else None


def copy_of_warehouse(paths: Paths, home: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """The built warehouse files in another home (the module's read-only connection to the
    analytics file stays open; DuckDB cannot attach a file this process has open that way)."""
    other = Paths(home).ensure()
    shutil.copy(paths.restricted_db, other.restricted_db)
    shutil.copy(paths.analytics_db, other.analytics_db)
    monkeypatch.setenv("SAMVERKAN_HOME", str(home))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    return other


def andel(num: int, den: int) -> tuple:
    return (num, den, num / den)


def antal(count: int) -> tuple:
    return (count, None, float(count))


# --- tests ------------------------------------------------------------------------------------

def test_dbt_parse_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMVERKAN_HOME", str(tmp_path))
    outcome = dbt_parse(Paths(tmp_path), target_path=tmp_path / "target")
    assert outcome.success, outcome.failures
    assert (tmp_path / "target" / "manifest.json").exists()


def test_dbt_env_points_at_the_zones(tmp_path: Path) -> None:
    env = dbt_env(Paths(tmp_path))
    assert env["SAMVERKAN_RESTRICTED_DB"] == str(tmp_path / "warehouse" / "restricted.duckdb")
    assert env["SAMVERKAN_ANALYTICS_DB"] == str(tmp_path / "warehouse" / "analytics.duckdb")
    assert env["DBT_PROFILES_DIR"] == str(DBT_PROJECT_DIR)
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert not any("KEY" in name for name in env)


def test_build_runs_models_data_tests_and_unit_tests(built) -> None:
    _, outcome = built
    assert outcome.success, outcome.failures
    assert outcome.failures == []
    assert outcome.counts.get("pass", 0) >= 40   # data tests and unit tests
    assert outcome.counts.get("success", 0) >= 30  # seeds and models


def test_dbt_connection_settings(built) -> None:
    """dbt's DuckDB database has the [warehouse] settings: `dbt show` on the built project."""
    from dbt.cli.main import dbtRunner

    from samverkan.transform import _DBT_LOCK, _close_connections, _environment, _plain_vars

    paths, _ = built
    sql = ("select current_setting('memory_limit') as m, current_setting('threads') as t, "
           "current_setting('preserve_insertion_order') as o, current_setting('temp_directory') as d")
    with _DBT_LOCK, _environment(dbt_env(paths)):
        try:
            result = dbtRunner().invoke([
                "show", "--inline", sql, "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(paths.dbt_target),
                "--log-path", str(paths.logs / "dbt"), "--log-level", "none",
                "--vars", json.dumps(_plain_vars(VARS))])
        finally:
            _close_connections()
    assert result.success, result.exception
    memory, threads, keep_order, temp = result.result.results[0].agate_table.rows[0]
    assert (memory, int(threads), keep_order) == ("1.0 GiB", 1, False)
    assert Path(temp).parent == paths.spill
    assert not Path(temp).exists()  # removed with dbt's database (nothing left to clear)


def test_no_connection_left_open(built) -> None:
    paths, _ = built
    code = (
        "import duckdb, sys\n"
        "for p in sys.argv[1:]:\n"
        "    duckdb.connect(p).close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(paths.restricted_db),
                           str(paths.analytics_db)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]


def test_every_indicator_of_the_catalogue_is_built(analytics) -> None:
    rows = dict(analytics.execute(
        "select indicator_id, list(distinct period_type order by period_type)"
        " from marts.indicators group by 1").fetchall())
    assert set(rows) == {
        "hog_franvaro", "mycket_hog_franvaro", "ogiltig_franvaro_andel", "rapporteringsgrad",
        "orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
        "utredning_4_manader", "placerade_aterforening", "unga_misstankta",
        "unga_misstankta_upprepat", "unga_brottsoffer", "hog_franvaro_med_orosanmalan",
        "hog_franvaro_med_misstanke", "misstankta_med_hog_franvaro", "kanda_av_flera",
        "sst_effekt", "sig_effekt"}
    assert all(types == ["ar", "manad", "termin", "vecka"] for types in rows.values()), rows
    periods = analytics.execute(
        "select period_type, min(period_start), max(period_start) from marts.indicators"
        " group by 1").fetchall()
    d = dt.date
    # the report window is [2024-04-01, R]: every period overlapping it, the running one too
    assert {p[0]: (p[1], p[2]) for p in periods} == {
        "vecka": (d(2024, 4, 29), d(2025, 3, 17)),    # first and last week with any cell
        "manad": (d(2024, 5, 1), d(2025, 3, 1)),
        "termin": (d(2024, 1, 1), d(2025, 1, 1)),
        "ar": (d(2024, 1, 1), d(2025, 1, 1)),
    }


def test_hog_franvaro(analytics) -> None:
    # February: SKH pupils P1-P5 high (P2 via the local-date lesson, P4 via the correction,
    # P5 exactly at 0.15), P6-P10 not (P6's deleted record, P7's deleted lesson and P10's
    # unreported record do not count); protected, invalid, case-protected, deleted, GY and
    # under-300-minutes pupils are out. March: P1 0/300 (the lesson after R is ignored).
    assert cells(analytics, "indicators", "hog_franvaro") == {
        ("2025-02", CITY, "totalt"): andel(6, 12),
        ("2025-02", "SKH", "totalt"): andel(5, 10),
        ("2025-02", "EAV", "totalt"): andel(1, 2),
        ("2025-03", CITY, "totalt"): andel(0, 1),
        ("2025-03", "SKH", "totalt"): andel(0, 1),
    }


def test_hog_franvaro_by_week_term_and_year(analytics) -> None:
    # ISO week 2025-02-10: L1-L3; P2 has only L2 (240 minutes: not assessed that week; its
    # 60-minute lesson on Saturday 1 February belongs to the week before). P3's enrolment on
    # the week's last day is at the Skärholmen school.
    assert cells(analytics, "indicators", "hog_franvaro", "vecka") == {
        ("2025-02-10", CITY, "totalt"): andel(5, 11),
        ("2025-02-10", "SKH", "totalt"): andel(4, 9),
        ("2025-02-10", "EAV", "totalt"): andel(1, 2),
        ("2025-03-10", CITY, "totalt"): andel(0, 1),
        ("2025-03-10", "SKH", "totalt"): andel(0, 1),
    }
    # vt 2025 and the year 2025 hold February and March: P1 60 of 600 minutes is no longer
    # high; P2 (60 of 300) is
    for period_type in ("termin", "ar"):
        assert cells(analytics, "indicators", "hog_franvaro", period_type) == {
            ("2025-01-01", CITY, "totalt"): andel(5, 12),
            ("2025-01-01", "SKH", "totalt"): andel(4, 10),
            ("2025-01-01", "EAV", "totalt"): andel(1, 2),
        }


def test_school_areas_and_breakdowns(analytics) -> None:
    feb = "2025-02-01"
    # SSPF area and school unit of the enrolment (29384011 -> SKH-BS, 29384031 -> EAV-RA)
    assert cell(analytics, "hog_franvaro", "manad", feb, "SKH-BS") == andel(5, 10)
    assert cell(analytics, "hog_franvaro", "manad", feb, "EAV-RA") == andel(1, 2)
    assert cell(analytics, "hog_franvaro", "manad", feb, "29384011",
                columns="area_level, area_name, numerator, denominator") == (
        "skolenhet", "Skola Skärholmen", 5, 10)
    assert cell(analytics, "hog_franvaro", "manad", feb, "29384031") == andel(1, 2)
    # huvudman: the Skärholmen school is municipal, the Rågsved school independent
    assert cell(analytics, "hog_franvaro", "manad", feb, CITY, "huvudman", "kommunal") == andel(5, 10)
    assert cell(analytics, "hog_franvaro", "manad", feb, CITY, "huvudman", "fristående") == andel(1, 2)
    assert cell(analytics, "hog_franvaro", "manad", feb, "EAV", "huvudman", "kommunal") is None
    # arskurs: P3 is in year 7, everyone else in year 6; crossed with the areas
    assert cell(analytics, "hog_franvaro", "manad", feb, CITY, "arskurs", "6") == andel(5, 11)
    assert cell(analytics, "hog_franvaro", "manad", feb, CITY, "arskurs", "7") == andel(1, 1)
    assert cell(analytics, "hog_franvaro", "manad", feb, "SKH", "arskurs", "6") == andel(4, 9)
    assert cell(analytics, "hog_franvaro", "manad", feb, "29384011", "arskurs", "7") == andel(1, 1)
    # no skolenhet rows for indicators that are not school indicators
    assert analytics.execute(
        "select count(*) from marts.indicators where area_level = 'skolenhet' and indicator_id"
        " not in ('hog_franvaro', 'mycket_hog_franvaro', 'ogiltig_franvaro_andel',"
        " 'rapporteringsgrad')").fetchone() == (0,)


def test_other_school_indicators(analytics) -> None:
    feb = "2025-02-01"
    assert cell(analytics, "mycket_hog_franvaro", "manad", feb, CITY) == andel(0, 12)
    # invalid minutes of the enrolled pupils (P1 30 and P4 30 after the correction) over
    # their offered minutes (12 x 300 + X4's 240); contributors: pupils with offered minutes
    columns = "numerator, denominator, value, contributors"
    assert cell(analytics, "ogiltig_franvaro_andel", "manad", feb, CITY, columns=columns) == (
        60, 3840, 60 / 3840, 13)
    assert cell(analytics, "ogiltig_franvaro_andel", "manad", feb, "EAV", columns=columns) == (
        0, 600, 0.0, 2)
    # records of the enrolled pupils: P10's unreported L3 is scheduled, not reported; P6's
    # deleted record and P7's record of a deleted lesson do not exist
    assert cell(analytics, "rapporteringsgrad", "manad", feb, CITY, columns=columns) == (
        14, 15, 14 / 15, 13)
    assert cell(analytics, "rapporteringsgrad", "manad", feb, "29384031", columns=columns) == (
        2, 2, 1.0, 2)
    # March's only school day (10 March) is the reporting lag: no reporting-rate cell, while
    # the absence indicators count it
    assert cell(analytics, "rapporteringsgrad", "manad", "2025-03-01", CITY) is None
    assert cell(analytics, "hog_franvaro", "manad", "2025-03-01", CITY) == andel(0, 1)
    assert cell(analytics, "hog_franvaro", "manad", feb, CITY,
                columns="contributors") == (None,)


def test_orosanmalningar(analytics) -> None:
    assert cells(analytics, "indicators", "orosanmalningar") == {
        ("2024-06", CITY, "totalt"): antal(1), ("2024-06", "EAV", "totalt"): antal(1),
        ("2024-10", CITY, "totalt"): antal(1), ("2024-10", "EAV", "totalt"): antal(1),
        # 110-115 (115 corrected into January), 120 (blank district), 126 (Södermalm)
        ("2025-01", CITY, "totalt"): antal(8), ("2025-01", "SKH", "totalt"): antal(6),
        ("2025-01", "SOD", "totalt"): antal(1),
        ("2025-02", CITY, "totalt"): antal(1), ("2025-02", "SKH", "totalt"): antal(1),
        ("2025-03", CITY, "totalt"): antal(3), ("2025-03", "SKH", "totalt"): antal(3),
    }


def test_reports_by_anmalare_and_handling_area(analytics) -> None:
    # January: 113 ' Polis ' (trimmed), 120 blank and 126 missing ('Okänd'), the rest Skola;
    # by the handling stadsdelsområde (104 by its code 'EAV'), never in an SSPF area
    assert cells(analytics, "indicators", "orosanmalningar", levels=("stad", "stadsdelsomrade"),
                 breakdowns=("anmalare",)) == {
        ("2024-06", CITY, "Skola"): antal(1), ("2024-06", "EAV", "Skola"): antal(1),
        ("2024-10", CITY, "Skola"): antal(1), ("2024-10", "EAV", "Skola"): antal(1),
        ("2025-01", CITY, "Skola"): antal(5), ("2025-01", CITY, "Polis"): antal(1),
        ("2025-01", CITY, "Okänd"): antal(2),
        ("2025-01", "SKH", "Skola"): antal(5), ("2025-01", "SKH", "Polis"): antal(1),
        ("2025-01", "SOD", "Okänd"): antal(1),
        ("2025-02", CITY, "Skola"): antal(1), ("2025-02", "SKH", "Skola"): antal(1),
        ("2025-03", CITY, "Skola"): antal(3), ("2025-03", "SKH", "Skola"): antal(3),
    }
    for indicator in ("orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning",
                      "utredning_4_manader"):
        assert analytics.execute(
            "select count(*) from marts.indicators where indicator_id = ? and area_level = "
            "'sspf_omrade'", [indicator]).fetchone() == (0,), indicator
    # Södermalm: a stadsdelsområde row
    assert cell(analytics, "orosanmalningar", "manad", "2025-01-01", "SOD", "anmalare",
                "Okänd") == antal(1)


def test_reference_coverage_counts_unknown_and_blank_handling_districts(analytics) -> None:
    """A matter whose handling district is blank (120) or names no stadsdelsområde (128:
    'Vårberg', a neighbourhood) counts in the city only, and the load report says how many."""
    rows = analytics.execute(
        "select kind, value, records from marts.rpt_reference_coverage"
        " where source_system = 'case_system' order by kind").fetchall()
    assert rows == [("handling_district_blank", "(tom)", 1),
                    ("handling_district_not_in_reference", "Vårberg", 1)]


def test_forhandsbedomning_14_dagar(analytics) -> None:
    assert cells(analytics, "indicators", "forhandsbedomning_14_dagar") == {
        ("2024-06", CITY, "totalt"): andel(1, 1), ("2024-06", "EAV", "totalt"): andel(1, 1),
        ("2024-10", CITY, "totalt"): andel(0, 1), ("2024-10", "EAV", "totalt"): andel(0, 1),
        # day 14 in time, day 15 late, pending late, decided after R late
        ("2025-01", CITY, "totalt"): andel(5, 8), ("2025-01", "SKH", "totalt"): andel(3, 6),
        ("2025-01", "SOD", "totalt"): andel(1, 1),
        ("2025-02", CITY, "totalt"): andel(1, 1), ("2025-02", "SKH", "totalt"): andel(1, 1),
        # 102 (day 15) and 124 (pending, due 19 March) late; 125 (due on R) not yet due
        ("2025-03", CITY, "totalt"): andel(0, 2), ("2025-03", "SKH", "totalt"): andel(0, 2),
    }
    # by reporter: the Polis report 113 was decided in 2 days, the Okänd ones (120: day 14;
    # 126: day 14) in time
    assert cell(analytics, "forhandsbedomning_14_dagar", "manad", "2025-01-01", CITY,
                "anmalare", "Okänd") == andel(2, 2)
    assert cell(analytics, "forhandsbedomning_14_dagar", "manad", "2025-01-01", CITY,
                "anmalare", "Skola") == andel(2, 5)


def test_anmalan_till_utredning(analytics) -> None:
    # January: 110 'Inte inleda utredning', 111 and 115 'Inleda utredning'; 114's decision is
    # dated after R (not decided yet); the others have no beslut
    assert cells(analytics, "indicators", "anmalan_till_utredning",
                 levels=("stad", "stadsdelsomrade", "sspf_omrade")) == {
        ("2025-01", CITY, "totalt"): andel(2, 3), ("2025-01", "SKH", "totalt"): andel(2, 3),
    }


def test_utredning_4_manader(analytics) -> None:
    # 201 (2024-10-31 -> 2025-02-28, deadline 2025-02-28) in time, area of aktualisering 115
    # (Skärholmen); 202 (-> 2025-03-01) late, area of 113 (' Skärholmen ', trimmed); 203 is
    # about an adult, 204 closes after R; 200 (2023-01-01 -> 2024-03-15, no aktualisering)
    # counts in the city row of vt 2024 and 2024 only (March 2024 is not published)
    levels = ("stad", "stadsdelsomrade", "sspf_omrade")
    assert cells(analytics, "indicators", "utredning_4_manader", levels=levels) == {
        ("2025-02", CITY, "totalt"): andel(1, 1), ("2025-02", "SKH", "totalt"): andel(1, 1),
        ("2025-03", CITY, "totalt"): andel(0, 1), ("2025-03", "SKH", "totalt"): andel(0, 1),
    }
    assert cells(analytics, "indicators", "utredning_4_manader", "ar", levels=levels) == {
        ("2024-01-01", CITY, "totalt"): andel(0, 1),
        ("2025-01-01", CITY, "totalt"): andel(1, 2), ("2025-01-01", "SKH", "totalt"): andel(1, 2),
    }
    assert cell(analytics, "utredning_4_manader", "termin", "2024-01-01", CITY) == andel(0, 1)


def test_placerade_aterforening(analytics) -> None:
    # P2 (SKH pupil): placement with planned return 2025-05-01, within 90 days of A from
    # January (A = 2025-01-31 + 90 = 2025-05-01) on. Q1 (EAV pupil): reunited 2025-03-05.
    levels = ("stad", "stadsdelsomrade", "sspf_omrade")
    assert cells(analytics, "indicators", "placerade_aterforening", levels=levels) == {
        ("2025-01", CITY, "totalt"): antal(1), ("2025-01", "SKH", "totalt"): antal(1),
        ("2025-01", "SKH-BS", "totalt"): antal(1),
        ("2025-02", CITY, "totalt"): antal(1), ("2025-02", "SKH", "totalt"): antal(1),
        ("2025-02", "SKH-BS", "totalt"): antal(1),
        ("2025-03", CITY, "totalt"): antal(2), ("2025-03", "SKH", "totalt"): antal(1),
        ("2025-03", "SKH-BS", "totalt"): antal(1), ("2025-03", "EAV", "totalt"): antal(1),
        ("2025-03", "EAV-RA", "totalt"): antal(1),
    }
    # the week 2025-03-03 - 2025-03-09: A = 9 March; Q1 reunited within it
    assert cell(analytics, "placerade_aterforening", "vecka", "2025-03-03", CITY) == antal(2)


def test_unga_misstankta(analytics) -> None:
    # November: C1 (twice), C2 (two areas), C4 (corrected from October), C6 (blank district)
    # and C7 (unknown district); not C3 (cancelled), C5 (victim), the adult, the invalid
    # number, the protected pupil, C8 (18 on the offence date) or the blank number.
    # February 2025: the pupils P6 and P3.
    assert cells(analytics, "indicators", "unga_misstankta") == {
        ("2024-09", CITY, "totalt"): antal(1), ("2024-09", "EAV", "totalt"): antal(1),
        ("2024-11", CITY, "totalt"): antal(5), ("2024-11", "EAV", "totalt"): antal(3),
        ("2024-11", "SKH", "totalt"): antal(1),
        ("2024-12", CITY, "totalt"): antal(1), ("2024-12", "EAV", "totalt"): antal(1),
        ("2025-02", CITY, "totalt"): antal(2), ("2025-02", "EAV", "totalt"): antal(2),
    }


def test_police_by_brottskategori_and_week(analytics) -> None:
    # November: C1 has a våld and a rån (' 0981', trimmed) offence, C6's code 9999 is not in
    # ref_brottskoder ('okänd'); a person counts once per category
    assert cells(analytics, "indicators", "unga_misstankta", levels=("stad", "sspf_omrade"),
                 breakdowns=("brottskategori",)) == {
        ("2024-09", CITY, "våld"): antal(1), ("2024-09", "EAV-RA", "våld"): antal(1),
        ("2024-11", CITY, "våld"): antal(4), ("2024-11", CITY, "rån"): antal(1),
        ("2024-11", CITY, "okänd"): antal(1),
        ("2024-11", "EAV-RA", "våld"): antal(3), ("2024-11", "EAV-RA", "rån"): antal(1),
        ("2024-11", "SKH-BS", "våld"): antal(1),
        ("2024-12", CITY, "våld"): antal(1), ("2024-12", "EAV-RA", "våld"): antal(1),
        ("2025-02", CITY, "våld"): antal(2), ("2025-02", "EAV-RA", "våld"): antal(2),
    }
    assert cell(analytics, "unga_misstankta", "vecka", "2025-02-03", CITY) == antal(1)   # P6
    assert cell(analytics, "unga_misstankta", "vecka", "2025-02-10", CITY) == antal(1)   # P3
    # ht 2024: C11 (September), C1, C2, C4, C6, C7 (November), P4 (December)
    assert cell(analytics, "unga_misstankta", "termin", "2024-07-01", CITY) == antal(7)
    # victims: P1 (May 2024, Bredäng), C9 (August 2024), C5 (November 2024)
    assert cells(analytics, "indicators", "unga_brottsoffer") == {
        ("2024-05", CITY, "totalt"): antal(1), ("2024-05", "SKH", "totalt"): antal(1),
        ("2024-08", CITY, "totalt"): antal(1), ("2024-08", "EAV", "totalt"): antal(1),
        ("2024-11", CITY, "totalt"): antal(1), ("2024-11", "EAV", "totalt"): antal(1),
    }
    # repeat: C1 and C2 have two incidents each in the trailing window, C4 (corrected, one
    # incident), C6 and C7 one
    assert cells(analytics, "indicators", "unga_misstankta_upprepat") == {
        ("2024-09", CITY, "totalt"): andel(0, 1), ("2024-09", "EAV", "totalt"): andel(0, 1),
        ("2024-11", CITY, "totalt"): andel(2, 5), ("2024-11", "EAV", "totalt"): andel(2, 3),
        ("2024-11", "SKH", "totalt"): andel(1, 1),
        ("2024-12", CITY, "totalt"): andel(0, 1), ("2024-12", "EAV", "totalt"): andel(0, 1),
        ("2025-02", CITY, "totalt"): andel(0, 2), ("2025-02", "EAV", "totalt"): andel(0, 2),
    }


def test_hog_franvaro_med_orosanmalan(analytics) -> None:
    # window (2024-02-28, 2025-02-28]: P2 (on the last day) and P4 in, P1 (on the excluded
    # boundary) and P3 (1 March) out; Q1 in.
    assert cells(analytics, "indicators", "hog_franvaro_med_orosanmalan") == {
        ("2025-02", CITY, "totalt"): andel(3, 6),
        ("2025-02", "SKH", "totalt"): andel(2, 5),
        ("2025-02", "EAV", "totalt"): andel(1, 1),
    }


def test_cross_agency_suspicions(analytics) -> None:
    # high absence in February and suspected in the trailing window: P4 (2024-12-01), P3
    # (2025-02-12); P1 is a victim only
    assert cells(analytics, "indicators", "hog_franvaro_med_misstanke") == {
        ("2025-02", CITY, "totalt"): andel(2, 6),
        ("2025-02", "SKH", "totalt"): andel(2, 5),
        ("2025-02", "EAV", "totalt"): andel(0, 1),
    }
    # assessed pupils suspected in February: P3 (high), P6 (not high); in the week of
    # 2025-02-10 only P3 (P6's offence is in the week before, when P6 had no lessons)
    assert cells(analytics, "indicators", "misstankta_med_hog_franvaro",
                 levels=("stad", "stadsdelsomrade", "sspf_omrade")) == {
        ("2025-02", CITY, "totalt"): andel(1, 2), ("2025-02", "SKH", "totalt"): andel(1, 2),
        ("2025-02", "SKH-BS", "totalt"): andel(1, 2),
    }
    assert cells(analytics, "indicators", "misstankta_med_hog_franvaro", "vecka") == {
        ("2025-02-10", CITY, "totalt"): andel(1, 1), ("2025-02-10", "SKH", "totalt"): andel(1, 1),
    }


def test_kanda_av_flera(analytics) -> None:
    # P1: report of concern 2024-02-28 + victim 2024-05-05 (city only until enrolled in
    # August), then high absence + victim in February and March 2025. C9: investigation open
    # until 2024-03-15 + victim 2024-08-08, and from March 2025 a SIG (2024-08-20) keeps C9
    # known to social services. C11: intervention until 2024-02-28 + suspect 2024-09-09
    # (gone in February 2025: the window's start is excluded; the intervention starting after
    # R does not count). P4: report 2024-06-01 + suspect 2024-12-01 (+ school in February).
    # C1: reports in January 2025 + suspect in November 2024. Q1, P2, P3: high absence +
    # social services; P3 also suspected in February 2025 (all three agencies, like P4).
    assert cells(analytics, "indicators", "kanda_av_flera",
                 breakdowns=("totalt", "antal_verksamheter")) == {
        ("2024-05", CITY, "totalt"): antal(1),
        ("2024-06", CITY, "totalt"): antal(1),
        ("2024-07", CITY, "totalt"): antal(1),
        ("2024-08", CITY, "totalt"): antal(2), ("2024-08", "SKH", "totalt"): antal(1),
        ("2024-09", CITY, "totalt"): antal(3), ("2024-09", "SKH", "totalt"): antal(1),
        ("2024-10", CITY, "totalt"): antal(3), ("2024-10", "SKH", "totalt"): antal(1),
        ("2024-11", CITY, "totalt"): antal(3), ("2024-11", "SKH", "totalt"): antal(1),
        ("2024-12", CITY, "totalt"): antal(4), ("2024-12", "SKH", "totalt"): antal(2),
        ("2025-01", CITY, "totalt"): antal(5), ("2025-01", "SKH", "totalt"): antal(2),
        ("2025-02", CITY, "totalt"): antal(7), ("2025-02", "SKH", "totalt"): antal(4),
        ("2025-02", "EAV", "totalt"): antal(1),
        ("2025-02", CITY, "3"): antal(2), ("2025-02", "SKH", "3"): antal(2),            # P3, P4
        ("2025-03", CITY, "totalt"): antal(7), ("2025-03", "SKH", "totalt"): antal(4),
        ("2025-03", "EAV", "totalt"): antal(1),
        ("2025-03", CITY, "3"): antal(2), ("2025-03", "SKH", "3"): antal(2),
    }
    # the year 2024 (window (2023-12-31, 2024-12-31]): P1, C9, C11 and P4; C1's reports
    # came in 2025
    assert cell(analytics, "kanda_av_flera", "ar", "2024-01-01", CITY) == antal(4)


def test_sst_and_sig_effekt(analytics) -> None:
    # SSTs of Y1 and X5 (2024-12-02 - 2024-12-20; F = 2025-02-14): Y1 0.5 before, 0.0 after
    # (improved); X5 1.0 before and after (not). Neither is enrolled in GR: city only.
    # P3's SST has not ended.
    levels = ("stad", "stadsdelsomrade", "sspf_omrade")
    assert cells(analytics, "indicators", "sst_effekt", levels=levels) == {
        ("2025-02", CITY, "totalt"): andel(1, 2),
    }
    assert cell(analytics, "sst_effekt", "vecka", "2025-02-10", CITY) == andel(1, 2)
    assert cell(analytics, "sst_effekt", "ar", "2025-01-01", CITY) == andel(1, 2)
    # SIG: C9 (from 2024-08-20, F = 2025-02-20) has no new suspicion; the adult (from
    # 2024-09-01, F = 2025-03-01) was suspected on 2024-11-09. C11's SIG starts after R.
    assert cells(analytics, "indicators", "sig_effekt") == {
        ("2025-02", CITY, "totalt"): andel(1, 1),
        ("2025-03", CITY, "totalt"): andel(0, 1),
    }
    assert cell(analytics, "sig_effekt", "termin", "2025-01-01", CITY) == andel(1, 2)


def test_published_indicators_apply_primary_suppression(analytics) -> None:
    published = cells(analytics, "published_indicators", "hog_franvaro")
    assert published[("2025-02", CITY, "totalt")] == (6, 12, 0.5, None)
    assert published[("2025-02", "SKH", "totalt")] == (5, 10, 0.5, None)
    assert published[("2025-02", "EAV", "totalt")] == (None, None, None, "primär")
    oros = cells(analytics, "published_indicators", "orosanmalningar")
    assert oros[("2025-01", "SKH", "totalt")] == (6, None, 6.0, None)
    assert oros[("2025-01", "SOD", "totalt")] == (None, None, None, "primär")
    young = cells(analytics, "published_indicators", "unga_misstankta")
    assert young[("2024-11", CITY, "totalt")] == (5, None, 5.0, None)   # 5 = min_cell: shown
    assert young[("2024-11", "EAV", "totalt")] == (None, None, None, "primär")
    several = cells(analytics, "published_indicators", "kanda_av_flera")
    assert several[("2025-02", CITY, "totalt")] == (7, None, 7.0, None)
    fb = cells(analytics, "published_indicators", "forhandsbedomning_14_dagar")
    assert fb[("2025-01", CITY, "totalt")] == (None, None, None, "primär")  # 8 - 5 = 3
    # minutes: 0 of 600 is no small count, but only 2 pupils are behind it (contributors)
    invalid = cells(analytics, "published_indicators", "ogiltig_franvaro_andel")
    assert invalid[("2025-02", "EAV", "totalt")] == (None, None, None, "primär")

    row = analytics.execute(
        "select indicator_name, period_type, period_end, area_level, area_name, breakdown, unit,"
        " data_version from marts.published_indicators"
        " where indicator_id = 'hog_franvaro' and area_code = 'SKH' and period_type = 'manad'"
        " and period_start = date '2025-02-01' and breakdown = 'totalt'"
    ).fetchone()
    assert row == ("Andel elever med hög frånvaro", "manad", dt.date(2025, 2, 28),
                   "stadsdelsomrade", "Skärholmen", "totalt", "andel", "test-1")
    total = analytics.execute("select count(*) from marts.published_indicators").fetchone()[0]
    parts = analytics.execute("select count(*) from marts.indicators").fetchone()[0]
    assert total == parts > 500
    assert analytics.execute(
        "select count(*) from marts.published_indicators where suppressed is null"
        " and (numerator is null or value is null)").fetchone()[0] == 0


def test_pupil_period_fact_carries_huvudman_kind(analytics) -> None:
    kinds = dict(analytics.execute(
        "select stadsdelsomrade_code, any_value(huvudman_kind) from marts.fct_pupil_periods"
        " where period_type = 'manad' and period_start = date '2025-02-01' and is_enrolled"
        " group by 1").fetchall())
    assert kinds == {"SKH": "kommunal", "EAV": "fristående"}


def test_threshold_var_changes_the_published_values(built, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Stockholm's 20 % or any other threshold is a var: rebuilding the pupil facts and
    hog_franvaro with high_absence_threshold 0.3 leaves only P3 and Q1 (100 of 300 minutes)
    high, in February and in the week of 2025-02-10 (the default build: 6 of 12, 5 of 11)."""
    other = copy_of_warehouse(built[0], tmp_path / "home", monkeypatch)
    outcome = run_dbt(["run", "--select", "fct_pupil_periods", "ind_hog_franvaro"], other,
                      {**VARS, "high_absence_threshold": 0.3}, target_path=tmp_path / "target")
    assert outcome.success, outcome.failures
    conn = duckdb.connect(str(other.analytics_db), read_only=True)
    try:
        assert cells(conn, "ind_hog_franvaro") == {
            ("2025-02", CITY, "totalt"): andel(2, 12),
            ("2025-02", "SKH", "totalt"): andel(1, 10),
            ("2025-02", "EAV", "totalt"): andel(1, 2),
            ("2025-03", CITY, "totalt"): andel(0, 1),
            ("2025-03", "SKH", "totalt"): andel(0, 1),
        }
        assert cell(conn, "hog_franvaro", "vecka", "2025-02-10", CITY,
                    table="ind_hog_franvaro") == andel(2, 11)
    finally:
        conn.close()


def test_staging_keeps_the_newest_version_of_each_live_id_with_and_without_deletions(
        built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging models of versioned raw tables keep each id's newest version, minus the
    ids deleted (/deletedEntities) or weeded (gallring): with the fixture's deletions, and
    with none listed at all. The deleted ids are dropped by an anti join; DuckDB planned the
    `not exists` it replaced so that an empty list took 7.6 s over 37.9 M records."""
    other = copy_of_warehouse(built[0], tmp_path / "home", monkeypatch)
    expected_attendances = """
        select id, max(modified_at) from raw_ss12000.attendances
        where id not in (select id from raw_ss12000.deleted_entities
                         where entity_type = 'attendances')
        group by id"""
    expected_clients = """
        select klient_id, max(andrad_tid) from raw_case_system.klient
        where klient_id not in (select rad_id from raw_case_system.gallring
                                where tabell = 'klient')
        group by klient_id"""
    for deletions in (True, False):
        conn = duckdb.connect(str(other.restricted_db))
        try:
            if not deletions:
                conn.execute("delete from raw_ss12000.deleted_entities")
                conn.execute("delete from raw_case_system.gallring")
            attendances = set(conn.execute(expected_attendances).fetchall())
            clients = set(conn.execute(expected_clients).fetchall())
        finally:
            conn.close()
        assert ("a-p6-del" in {a for a, _ in attendances}) is not deletions
        assert (18 in {k for k, _ in clients}) is not deletions
        outcome = run_dbt(["run", "--full-refresh", "--select", "stg_ss12000__attendances",
                           "stg_case_system__klient"], other, VARS,
                          target_path=tmp_path / "target")
        assert outcome.success, outcome.failures
        conn = duckdb.connect(str(other.restricted_db), read_only=True)
        try:
            assert set(conn.execute("select attendance_id, modified_at "
                                    "from staging.stg_ss12000__attendances").fetchall()) \
                == attendances
            assert conn.execute("select count(*) from staging.stg_ss12000__attendances"
                                ).fetchone() == (len(attendances),)
            assert set(conn.execute("select klient_id, andrad_tid "
                                    "from staging.stg_case_system__klient").fetchall()) == clients
        finally:
            conn.close()


def test_one_test_per_model_checks_every_not_null_column_and_the_cells_domains(
        built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The columns a model declares not null are checked by one not_null_columns test (one dbt
    node and one scan instead of one per column), and an ind_* model's period types, unit,
    area levels and breakdowns by its indicator_cells_are_well_formed test: both fail on a
    copy of the built warehouse with two nulls in fct_pupil_periods (two columns, counted as
    two failing values) and a cell of an area level ind_hog_franvaro does not have. The
    arguments agree with each model's meta (unit, area_levels)."""
    other = copy_of_warehouse(built[0], tmp_path / "home", monkeypatch)
    conn = duckdb.connect(str(other.analytics_db))
    try:
        conn.execute("update marts.fct_pupil_periods set offered_minutes = null where rowid = 0")
        conn.execute("update marts.fct_pupil_periods set is_enrolled = null where rowid = 1")
        conn.execute("update marts.ind_hog_franvaro set area_level = 'lan' where rowid = 0")
    finally:
        conn.close()
    outcome = run_dbt(["test", "--select", "fct_pupil_periods", "ind_hog_franvaro"], other, VARS,
                      target_path=tmp_path / "target")
    failed = {f.node: f for f in outcome.failures}
    not_null = [f for name, f in failed.items() if name.startswith("not_null_columns_fct_pupil_periods")]
    cells_test = [f for name, f in failed.items()
                  if name.startswith("indicator_cells_are_well_formed_ind_hog_franvaro")]
    assert len(not_null) == 1 and "2" in not_null[0].message, failed
    assert len(cells_test) == 1, failed
    assert len(failed) == 2, failed

    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    nodes = manifest["nodes"].values()
    indicator_models = {n["name"]: n for n in nodes
                        if n["resource_type"] == "model" and n["name"].startswith("ind_")}
    checked = set()
    for test in nodes:
        meta = test.get("test_metadata") or {}
        if test["resource_type"] != "test" or meta.get("name") != "indicator_cells_are_well_formed":
            continue
        model = test["attached_node"].split(".")[-1]
        if model in indicator_models:
            kwargs = meta["kwargs"]
            model_meta = indicator_models[model]["config"]["meta"]
            assert kwargs["unit"] == model_meta["unit"], model
            assert kwargs["area_levels"] == model_meta["area_levels"], model
            checked.add(model)
    assert checked == set(indicator_models)
    plain_not_null = [n["unique_id"] for n in nodes if n["resource_type"] == "test"
                      and (n.get("test_metadata") or {}).get("name") == "not_null"
                      and not n["config"].get("where")]
    assert plain_not_null == [], "use the model's not_null_columns test"


def test_docs_generate(built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = copy_of_warehouse(built[0], tmp_path / "home", monkeypatch)
    outcome = dbt_docs_generate(paths, VARS, target_path=tmp_path / "docs")
    assert outcome.success, outcome.failures
    catalog = json.loads((tmp_path / "docs" / "catalog.json").read_text(encoding="utf-8"))
    manifest = json.loads((tmp_path / "docs" / "manifest.json").read_text(encoding="utf-8"))
    built_models = {node.split(".")[-1] for node in catalog["nodes"]}
    indicator_models = {n["name"] for n in manifest["nodes"].values()
                        if n["resource_type"] == "model" and n["name"].startswith("ind_")}
    assert len(indicator_models) == 18 and indicator_models <= built_models
    for name in indicator_models:
        node = manifest["nodes"][f"model.samverkan.{name}"]
        meta = node["config"]["meta"]
        assert set(meta) >= {"indicator_id", "indicator_name", "unit", "definition", "group",
                             "sources"}, name
        assert meta["group"] in {"Skola", "Socialtjänst", "Polis", "Samverkan"}
        assert all(column.get("description") for column in node["columns"].values()), name
        assert set(node["columns"]) >= set(catalog["nodes"][f"model.samverkan.{name}"]["columns"])


def test_pseudonyms_equal_python_hmac(built) -> None:
    paths, _ = built
    conn = duckdb.connect(str(paths.restricted_db), read_only=True)
    try:
        rows = conn.execute(
            "select pnr12, person_pseudonym from intermediate.int_identities").fetchall()
    finally:
        conn.close()
    # invalid numbers never get a pseudonym; nor do the deleted pupil, the person of the
    # cancelled police row and the weeded client, who appear nowhere else
    assert {r[0] for r in rows} == set(ALL_VALID) - {X6, C3, K18C}
    for number, pseudonym in rows:
        assert pseudonym == hmac.new(TEST_KEY.encode(), number.encode(), hashlib.sha256).hexdigest()


HEX_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
# Shaped like a personnummer/samordningsnummer: a plausible month and day (day + 60 for a
# samordningsnummer), so organisation numbers (month digits 20 and up) do not match.
DIGIT_RUN = re.compile(r"(?<!\d)(?:\d{2})?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])"
                       r"[-+ ]?\d{4}(?!\d)")


def test_analytics_holds_no_identifiers(analytics) -> None:
    tables = analytics.execute(
        "select table_schema, table_name, table_type from information_schema.tables"
        " where table_catalog = 'analytics'").fetchall()
    assert tables and all(t[2] == "BASE TABLE" for t in tables)   # no views into restricted
    forbidden_columns = re.compile(r"pnr|personnummer|civic|birth_date|namn$|fornamn|efternamn"
                                   r"|first_name|last_name|given_name|family_name|diarienummer")
    known = {n for number in ALL_NUMBERS for n in (number, number[2:])}
    scanned = 0
    for schema, table, _ in tables:
        columns = analytics.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_catalog = 'analytics' and table_schema = ? and table_name = ?",
            [schema, table]).fetchall()
        for column, data_type in columns:
            assert not forbidden_columns.search(column) or column in {
                "brottsbenamning"}, f"{schema}.{table}.{column}"
            assert data_type != "DATE" or "birth" not in column
            if data_type != "VARCHAR":
                continue
            values = analytics.execute(
                f'select distinct "{column}" from "{schema}"."{table}"'
                f' where "{column}" is not null').fetchall()
            for (value,) in values:
                scanned += 1
                assert not any(k in value for k in known), f"{schema}.{table}.{column}"
                if HEX_PSEUDONYM.fullmatch(value):
                    continue
                assert not DIGIT_RUN.search(value), f"{schema}.{table}.{column}"
    assert scanned > 50


def test_key_not_in_target_or_logs(built) -> None:
    paths, _ = built
    for root in (paths.dbt_target, dbt_log_dir(paths)):
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files, root
        for path in files:
            assert TEST_KEY.encode() not in path.read_bytes(), path


def test_the_warehouse_keeps_the_identity_macros_but_never_the_key(built) -> None:
    """The build leaves the identity macros in the restricted warehouse (every cursor of dbt's
    connection uses them from there); they read the key from a connection variable, so
    neither the macros nor the database file hold it."""
    paths, _ = built
    conn = duckdb.connect(str(paths.restricted_db), read_only=True)
    try:
        macros = dict(conn.execute(
            "select function_name, macro_definition from duckdb_functions() "
            "where function_type = 'macro' and not internal and schema_name = 'main' "
            "and function_name like 'samverkan_%'").fetchall())
    finally:
        conn.close()
    assert {"samverkan_normalise_pnr", "samverkan_pnr_problem", "samverkan_pseudonym"} <= set(macros)
    assert "getvariable('samverkan_pseudonym_key')" in macros["samverkan_pseudonym"]
    assert not any(TEST_KEY in (definition or "") for definition in macros.values())
    assert TEST_KEY.encode() not in paths.restricted_db.read_bytes()


def test_target_holds_no_identifiers(built) -> None:
    """Compiled SQL (models, unit tests with their fixtures) and the artifacts hold neither a
    fixture number nor anything shaped like a personnummer."""
    paths, _ = built
    known = {n for number in ALL_NUMBERS for n in (number, number[2:])}
    hex_token = re.compile(r"[0-9a-f]{32,}")
    sql_files = 0
    for path in paths.dbt_target.rglob("*"):
        if path.is_file() and path.suffix in {".sql", ".json"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not any(k in text for k in known), path
            if path.suffix == ".sql":
                sql_files += 1
                assert not DIGIT_RUN.search(hex_token.sub("", text)), path
    assert sql_files > 30


def test_empty_warehouse_builds_empty_indicators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SAMVERKAN_HOME", str(tmp_path))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    paths = Paths(tmp_path)
    # the data and unit tests ran on the fixture build; here the models must build on raw
    # tables that exist but are empty (and on a warehouse that did not exist before)
    assert not paths.restricted_db.exists()
    write_reference(tmp_path)
    outcome = dbt_build(paths, {"reference_date": REFERENCE_DATE, **MUNICIPALITY_VARS},
                        target_path=tmp_path / "target",
                        extra_args=["--exclude", "resource_type:test", "resource_type:unit_test"])
    assert outcome.success, outcome.failures
    # dbt prints nothing on the console; its per-node lines are in its log file
    printed = capfd.readouterr()
    assert not re.search(r"\d+ of \d+ (START|OK)|Running with dbt", printed.out + printed.err)
    assert re.search(r"\d+ of \d+ OK created", (dbt_log_dir(paths) / "dbt.log").read_text())
    conn = duckdb.connect(str(paths.analytics_db), read_only=True)
    try:
        assert conn.execute("select count(*) from marts.published_indicators").fetchone() == (0,)
    finally:
        conn.close()


def test_outcome_reported_as_a_summary_and_one_line_per_failed_node(
        caplog: pytest.LogCaptureFixture) -> None:
    from samverkan.transform import MAX_REPORTED_FAILURES, DbtFailure, DbtOutcome, report_outcome

    failures = [DbtFailure(f"not_null_model_{i}", "test", "fail", "3 failing rows")
                for i in range(MAX_REPORTED_FAILURES + 2)]
    outcome = DbtOutcome("build", False, failures, {"fail": len(failures), "pass": 5}, 4.2)
    with caplog.at_level("INFO", logger="samverkan.progress"):
        report_outcome(outcome)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "dbt build failed in 4.2s (fail=22, pass=5)"
    assert lines[1] == "dbt build: test not_null_model_0 fail: 3 failing rows"
    assert lines[-1] == "dbt build: 2 more failed nodes, see logs/dbt/dbt.log"
    assert len(lines) == 1 + MAX_REPORTED_FAILURES + 1


def test_missing_key_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAMVERKAN_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("SAMVERKAN_PSEUDONYM_KEY_FILE", raising=False)
    write_reference(tmp_path)
    outcome = dbt_build(Paths(tmp_path), {"reference_date": REFERENCE_DATE, **MUNICIPALITY_VARS},
                        target_path=tmp_path / "target")
    assert not outcome.success
    assert outcome.failures[0].node == "pseudonym_key"
    assert "SAMVERKAN_PSEUDONYM_KEY" in outcome.failures[0].message
