"""Ground truth: a hand-built municipality with every cell worked out by hand, plus checks of
the computation on a generated population against a naive per-pupil implementation."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samverkan.simulator.ground_truth import (
    INDICATOR_NAMES,
    OUTPUT_COLUMNS,
    compute_ground_truth,
    write_ground_truth,
)
from samverkan.simulator.population import Population, generate

TZ = "Europe/Stockholm"
D = dt.date
R = D(2026, 2, 27)  # reference date of the hand-built municipality


def _pnr(birth: D, serial: int) -> str:
    body = f"{birth:%y%m%d}{serial:03d}"
    total = 0
    for i, ch in enumerate(body):
        p = int(ch) * (2 if i % 2 == 0 else 1)
        total += p // 10 + p % 10
    return f"{birth:%Y}{body[2:]}{(10 - total % 10) % 10}"


class _Tiny:
    """Builder for a hand-made Population."""

    def __init__(self) -> None:
        self.persons: list[dict] = []
        self.enrolments: list[dict] = []
        self.events: list[dict] = []
        self.att: list[dict] = []
        self.klient: list[dict] = []
        self.akt: list[dict] = []
        self.utr: list[dict] = []
        self.ins: list[dict] = []
        self.gallring: list[dict] = []
        self.police: list[dict] = []

    def person(self, key: int, birth: D, pupil: bool, marking: str = "Ingen") -> None:
        self.persons.append({
            "person_key": key, "pnr": _pnr(birth, 100 + key), "is_samordningsnummer": False,
            "birth_date": birth, "sex": "Kvinna", "first_name": "Åsa", "last_name": "Öberg",
            "protected": marking != "Ingen", "security_marking": marking,
            "ss12000_id": f"person-{key}" if pupil else None,
            "modified_at": pd.Timestamp("2026-01-12 07:00", tz=TZ)})

    def enrol(self, key: int, unit: str, start: D, end: D | None = None,
              school_type: str = "GR") -> None:
        self.enrolments.append({"person_key": key, "school_unit_code": unit, "school_year": 7,
                                "school_type": school_type, "start_date": start,
                                "end_date": end})

    def lesson(self, key: int, unit: str, start: pd.Timestamp, *, valid: int = 0,
               invalid: int = 0, reported: bool = True, minutes: int = 60,
               record_id: str | None = None, modified: pd.Timestamp | None = None) -> None:
        ev_id = f"ev-{len(self.events)}"
        end = start + pd.Timedelta(minutes=minutes)
        self.events.append({"id": ev_id, "activity_id": "act", "school_unit_code": unit,
                            "school_year": 7, "start_time": start, "end_time": end,
                            "modified_at": pd.Timestamp("2026-01-12 07:00", tz=TZ)})
        self.att.append({
            "id": record_id or f"att-{len(self.att)}", "calendar_event_id": ev_id,
            "person_key": key, "is_reported": reported,
            "attendance_minutes": minutes - valid - invalid if reported else 0,
            "valid_absence_minutes": valid if reported else 0,
            "invalid_absence_minutes": invalid if reported else 0,
            "other_attendance_minutes": 0,
            "reported_timestamp": end if reported else pd.NaT,
            "modified_at": modified if modified is not None else end})

    def week(self, key: int, unit: str, first: D, n: int = 5,
             absences: dict[int, tuple[int, int]] | None = None) -> None:
        """n lessons at 08:15 local on consecutive days; absences: index -> (valid, invalid)."""
        absences = absences or {}
        for i in range(n):
            start = pd.Timestamp(dt.datetime.combine(first + dt.timedelta(days=i),
                                                     dt.time(8, 15)), tz=TZ)
            v, inv = absences.get(i, (0, 0))
            self.lesson(key, unit, start, valid=v, invalid=inv)

    def build(self) -> Population:
        def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
            return pd.DataFrame(rows, columns=columns)

        police = frame(self.police, [
            "file_date", "file_encoding", "person_key", "identifier_valid", "Diarienummer",
            "Brottsdatum", "Anmälningsdatum", "Brottskod", "Brottsbenämning", "Kommun",
            "Stadsdel", "Personnummer", "Roll", "Ålder", "Status", "Senast ändrad"])
        police["person_key"] = police["person_key"].astype("Int64")
        police["Senast ändrad"] = pd.to_datetime(police["Senast ändrad"])
        utr = frame(self.utr, ["utredning_id", "klient_id", "aktualisering_id", "startdatum",
                               "avslutsdatum", "resultat", "andrad_tid"])
        utr["aktualisering_id"] = utr["aktualisering_id"].astype("Int64")
        return Population(
            seed=0, pupils=6, term_start=D(2026, 1, 12), term_end=R, history_start=D(2024, 7, 1),
            reference_date=R, municipality_code="0180", municipality_name="Stockholm",
            municipality_organisation_number="212000-0142",
            organisations=pd.DataFrame(columns=[
                "id", "organisation_type", "display_name", "organisation_number",
                "school_unit_code", "municipality_code", "parent_organisation_id",
                "school_types", "modified_at"]),
            persons=pd.DataFrame(self.persons),
            enrolments=pd.DataFrame(self.enrolments),
            calendar_events=pd.DataFrame(self.events),
            attendances=pd.DataFrame(self.att),
            klient=frame(self.klient, ["klient_id", "person_key", "personnummer",
                                       "identifier_valid", "fornamn", "efternamn",
                                       "skyddad_identitet", "andrad_tid"]),
            aktualisering=frame(self.akt, [
                "aktualisering_id", "klient_id", "inkom_datum", "typ", "anmalare_kategori",
                "skyddsbedomning_datum", "forhandsbedomning_datum", "beslut", "stadsdel",
                "andrad_tid"]),
            utredning=utr,
            insats=frame(self.ins, ["insats_id", "klient_id", "insatstyp", "startdatum",
                                    "slutdatum", "planerat_slutdatum", "avslutsorsak",
                                    "andrad_tid"]),
            gallring=frame(self.gallring, ["tabell", "rad_id", "gallrad_tid"]),
            police_rows=police,
        )

    def client(self, klient_id: int, key: int, *, valid: bool = True,
               protected: bool = False) -> None:
        pnr = next(p["pnr"] for p in self.persons if p["person_key"] == key)
        written = f"{pnr[:8]}-{pnr[8:]}"
        if not valid:
            written = written[:-1] + str((int(written[-1]) + 3) % 10)
        self.klient.append({"klient_id": klient_id, "person_key": key, "personnummer": written,
                            "identifier_valid": valid, "fornamn": "Åsa", "efternamn": "Öberg",
                            "skyddad_identitet": protected,
                            "andrad_tid": pd.Timestamp("2025-01-01 10:00")})

    def report(self, akt_id: int, klient_id: int, inkom: D, stadsdel: str, *,
               fb: D | None = None, typ: str = "Anmälan",
               changed: str = "2026-02-27 12:00") -> None:
        self.akt.append({"aktualisering_id": akt_id, "klient_id": klient_id, "inkom_datum": inkom,
                         "typ": typ, "anmalare_kategori": "Skola", "skyddsbedomning_datum": inkom,
                         "forhandsbedomning_datum": fb,
                         "beslut": "Inte inleda utredning" if fb else None, "stadsdel": stadsdel,
                         "andrad_tid": pd.Timestamp(changed)})

    def police_row(self, diarie: str, key: int | None, brott: D, stadsdel: str, *,
                   roll: str = "Misstänkt", status: str = "Aktiv", valid: bool = True,
                   changed: str = "2026-02-01 10:00") -> None:
        if key is None:
            written, valid = "", False
        else:
            pnr = next(p["pnr"] for p in self.persons if p["person_key"] == key)
            written = pnr if valid else pnr[:-1] + str((int(pnr[-1]) + 1) % 10)
        self.police.append({
            "file_date": pd.Timestamp(changed).date(), "file_encoding": "utf-8-sig", "person_key": key,
            "identifier_valid": valid, "Diarienummer": diarie, "Brottsdatum": brott,
            "Anmälningsdatum": brott, "Brottskod": "0301", "Brottsbenämning": "Misshandel utomhus",
            "Kommun": "Stockholm", "Stadsdel": stadsdel, "Personnummer": written, "Roll": roll,
            "Ålder": 15, "Status": status, "Senast ändrad": pd.Timestamp(changed)})


def tiny_population() -> Population:
    t = _Tiny()
    t.person(1, D(2012, 5, 1), pupil=True)
    t.person(2, D(2013, 3, 3), pupil=True)
    t.person(3, D(2012, 8, 8), pupil=True, marking="Skyddad folkbokföring")
    t.person(4, D(2012, 9, 9), pupil=True)
    t.person(5, D(2014, 4, 4), pupil=True)
    t.person(6, D(2010, 6, 1), pupil=True)  # in SS 12000 but only with a GY enrolment
    t.person(7, D(2006, 1, 15), pupil=False)  # adult
    t.person(8, D(2011, 1, 1), pupil=False)  # klient identifier invalid
    t.person(9, D(2012, 10, 10), pupil=True)  # moves school in February
    t.person(10, D(2011, 7, 7), pupil=False)  # protected only in the case system

    t.enrol(1, "29384011", D(2025, 8, 18))
    t.enrol(2, "29384031", D(2025, 8, 18))
    t.enrol(3, "29384011", D(2025, 8, 18))
    t.enrol(4, "29384021", D(2025, 8, 18))
    t.enrol(5, "29384041", D(2026, 1, 13))
    t.enrol(6, "29384011", D(2025, 8, 18), school_type="GY")
    t.enrol(9, "29384011", D(2025, 8, 18), D(2026, 2, 10))
    t.enrol(9, "29384031", D(2026, 2, 11))

    jan, feb = D(2026, 1, 12), D(2026, 2, 2)
    # P1: January 300 min, no absence. February 300 + a lesson at 00:30 local on 1 Feb
    # (23:30 UTC on 31 Jan) with 60 min absence: 60/360 -> high in February only.
    t.week(1, "29384011", jan)
    t.week(1, "29384011", feb)
    t.lesson(1, "29384011", pd.Timestamp("2026-01-31 23:30", tz="UTC"), invalid=60)
    # P2: January 120/300 high; February one lesson unreported -> 240 offered, not assessed.
    t.week(2, "29384031", jan, absences={0: (60, 0), 1: (0, 60)})
    t.week(2, "29384031", feb, n=4)
    t.lesson(2, "29384031", pd.Timestamp("2026-02-06 08:15", tz=TZ), reported=False)
    # P3 (protected): 300/300 absent, never counted.
    t.week(3, "29384011", jan, absences={i: (60, 0) for i in range(5)})
    # P4: exactly 15 % in January (30 valid + 15 invalid of 300); 44/300 in February.
    t.week(4, "29384021", jan, absences={0: (30, 0), 1: (0, 15)})
    t.week(4, "29384021", feb, absences={2: (0, 44)})
    # P5: 240 min in January (not assessed); February 300 min, one record corrected later
    # from 60 min invalid absence to none (newest meta.modified wins).
    t.week(5, "29384041", jan, n=4)
    t.week(5, "29384041", feb, n=4)
    t.lesson(5, "29384041", pd.Timestamp("2026-02-06 08:15", tz=TZ), invalid=60,
             record_id="att-corrected", modified=pd.Timestamp("2026-02-06 10:00", tz=TZ))
    t.att.append({**t.att[-1], "invalid_absence_minutes": 0, "attendance_minutes": 60,
                  "modified_at": pd.Timestamp("2026-02-09 10:00", tz=TZ)})
    # P9: January 100/300 high at 29384011; February 5 lessons there without absence, then
    # 3 lessons at 29384031 fully absent: 180/480 high, area EAV (enrolled on the last day).
    t.week(9, "29384011", jan, absences={0: (0, 60), 1: (40, 0)})
    t.week(9, "29384011", feb)
    t.week(9, "29384031", D(2026, 2, 11), n=3, absences={i: (60, 0) for i in range(3)})

    t.client(1, 1)
    t.client(2, 6)
    t.client(3, 8, valid=False)
    t.client(4, 3, protected=True)
    t.client(5, 7)
    t.client(6, 9)
    t.client(7, 4)
    t.client(8, 2)
    t.client(9, 5)
    t.client(10, 10, protected=True)

    t.report(1, 1, D(2026, 1, 5), "Skärholmen", fb=D(2026, 1, 19))  # day 14: in time
    t.report(2, 2, D(2026, 1, 5), "Enskede-Årsta-Vantör", fb=D(2026, 1, 20))  # day 15: late
    t.report(3, 3, D(2026, 1, 10), "Skärholmen", fb=D(2026, 1, 11))  # invalid identifier
    t.report(4, 4, D(2026, 1, 10), "Skärholmen", fb=D(2026, 1, 11))  # protected
    t.report(5, 5, D(2026, 1, 12), "Skärholmen", fb=D(2026, 1, 13))  # adult (19)
    t.report(6, 6, D(2026, 2, 20), "Södermalm")  # deadline after R: not due yet
    t.report(7, 1, D(2026, 2, 5), "Skärholmen", typ="Ansökan", fb=D(2026, 2, 5))
    t.report(8, 2, D(2026, 2, 10), "Rågsved")  # pending past its deadline: late
    t.report(9, 1, D(2026, 2, 11), "Skärholmen", fb=D(2026, 2, 12))  # weeded
    t.gallring.append({"tabell": "aktualisering", "rad_id": 9,
                       "gallrad_tid": pd.Timestamp("2026-02-20 02:00")})
    # two versions: the newest (Skärholmen, decided after R -> pending, late) wins
    t.report(10, 2, D(2026, 2, 12), "Farsta", fb=D(2026, 2, 13), changed="2026-02-13 09:00")
    t.report(10, 2, D(2026, 2, 12), "Skärholmen", fb=D(2026, 3, 1), changed="2026-02-26 09:00")
    t.report(11, 1, D(2026, 2, 13), "Vårberg", fb=D(2026, 2, 16))  # deadline == R: not due
    t.report(12, 7, D(2025, 3, 1), "Skärholmen", fb=D(2025, 3, 2))  # P4, inside both windows
    t.report(13, 8, D(2025, 1, 31), "Rågsved", fb=D(2025, 2, 2))  # P2, window boundary: out

    t.utr.append({"utredning_id": 1, "klient_id": 8, "aktualisering_id": None,
                  "startdatum": D(2024, 10, 1), "avslutsdatum": D(2025, 1, 31),
                  "resultat": "Ingen insats", "andrad_tid": pd.Timestamp("2025-01-31 10:00")})
    t.ins.append({"insats_id": 1, "klient_id": 9, "insatstyp": "SST",
                  "startdatum": D(2026, 2, 15), "slutdatum": None, "planerat_slutdatum": None,
                  "avslutsorsak": None, "andrad_tid": pd.Timestamp("2026-02-15 10:00")})

    t.police_row("5000-K100001-26", 6, D(2026, 1, 20), "Bredäng", changed="2026-01-21 10:00")
    t.police_row("5000-K100001-26", 6, D(2026, 1, 20), "Rågsved", changed="2026-01-25 10:00")
    t.police_row("5000-K100002-26", 9, D(2026, 1, 25), "Sätra", changed="2026-01-26 10:00")
    t.police_row("5000-K100002-26", 9, D(2026, 1, 25), "Sätra", status="Makulerad",
                 changed="2026-01-28 10:00")
    t.police_row("5000-K100003-26", 7, D(2026, 1, 25), "Sätra")  # adult
    t.police_row("5000-K100004-26", 1, D(2026, 2, 3), "")  # blank district: city only
    t.police_row("5000-K100005-26", 1, D(2026, 2, 4), "Bredäng", valid=False)
    t.police_row("5000-K100006-26", 3, D(2026, 2, 5), "Bredäng")  # protected (SS 12000)
    t.police_row("5000-K100007-26", 6, D(2026, 2, 6), "Bredäng", roll="Målsägande")
    t.police_row("5000-K100008-26", None, D(2026, 2, 7), "Bredäng")  # unidentified
    t.police_row("5000-K100009-26", 6, D(2026, 2, 8), "Hägersten")  # unknown district
    t.police_row("5000-K100010-26", 2, D(2026, 2, 9), "Östberga", changed="2026-02-10 10:00")
    t.police_row("5000-K100010-26", 2, D(2026, 2, 9), "Östberga", status="Makulerad",
                 changed="2026-02-11 10:00")
    t.police_row("5000-K100010-26", 2, D(2026, 2, 9), "Östberga", changed="2026-02-12 10:00")
    t.police_row("5000-K100011-26", 10, D(2026, 2, 10), "Bredäng")  # protected (case system)
    return t.build()


JAN, FEB = "2026-01-01", "2026-02-01"
EXPECTED = {
    # (indicator, month, area_code, breakdown_value): (numerator, denominator or None)
    ("hog_franvaro", JAN, "0180", "totalt"): (3, 4),
    ("hog_franvaro", JAN, "SKH", "totalt"): (2, 3),
    ("hog_franvaro", JAN, "EAV", "totalt"): (1, 1),
    ("hog_franvaro", FEB, "0180", "totalt"): (2, 4),
    ("hog_franvaro", FEB, "SKH", "totalt"): (1, 2),
    ("hog_franvaro", FEB, "EAV", "totalt"): (1, 2),
    ("orosanmalningar", JAN, "0180", "totalt"): (2, None),
    ("orosanmalningar", JAN, "SKH", "totalt"): (1, None),
    ("orosanmalningar", JAN, "EAV", "totalt"): (1, None),
    ("orosanmalningar", FEB, "0180", "totalt"): (4, None),
    ("orosanmalningar", FEB, "SKH", "totalt"): (2, None),
    ("orosanmalningar", FEB, "EAV", "totalt"): (1, None),
    ("orosanmalningar", FEB, "SOD", "totalt"): (1, None),
    ("forhandsbedomning_14_dagar", JAN, "0180", "totalt"): (1, 2),
    ("forhandsbedomning_14_dagar", JAN, "SKH", "totalt"): (1, 1),
    ("forhandsbedomning_14_dagar", JAN, "EAV", "totalt"): (0, 1),
    ("forhandsbedomning_14_dagar", FEB, "0180", "totalt"): (0, 2),
    ("forhandsbedomning_14_dagar", FEB, "SKH", "totalt"): (0, 1),
    ("forhandsbedomning_14_dagar", FEB, "EAV", "totalt"): (0, 1),
    ("unga_misstankta", JAN, "0180", "totalt"): (1, None),
    ("unga_misstankta", JAN, "EAV", "totalt"): (1, None),
    ("unga_misstankta", FEB, "0180", "totalt"): (3, None),
    ("unga_misstankta", FEB, "EAV", "totalt"): (1, None),
    ("hog_franvaro_med_orosanmalan", JAN, "0180", "totalt"): (1, 3),
    ("hog_franvaro_med_orosanmalan", JAN, "SKH", "totalt"): (1, 2),
    ("hog_franvaro_med_orosanmalan", JAN, "EAV", "totalt"): (0, 1),
    ("hog_franvaro_med_orosanmalan", FEB, "0180", "totalt"): (2, 2),
    ("hog_franvaro_med_orosanmalan", FEB, "SKH", "totalt"): (1, 1),
    ("hog_franvaro_med_orosanmalan", FEB, "EAV", "totalt"): (1, 1),
    ("kanda_av_flera", JAN, "0180", "totalt"): (2, None),
    ("kanda_av_flera", JAN, "SKH", "totalt"): (1, None),
    ("kanda_av_flera", FEB, "0180", "totalt"): (5, None),
    ("kanda_av_flera", FEB, "SKH", "totalt"): (2, None),
    ("kanda_av_flera", FEB, "EAV", "totalt"): (2, None),
    ("kanda_av_flera", FEB, "0180", "3"): (1, None),
    ("kanda_av_flera", FEB, "SKH", "3"): (1, None),
}


def test_hand_built_population_gives_the_hand_computed_cells() -> None:
    gt = compute_ground_truth(tiny_population(), report_months=2)
    assert list(gt.columns) == OUTPUT_COLUMNS
    got = {}
    for row in gt.itertuples(index=False):
        key = (row.indicator_id, row.period_start.isoformat(), row.area_code, row.breakdown_value)
        assert key not in got, f"duplicate cell {key}"
        den = None if pd.isna(row.denominator) else int(row.denominator)
        got[key] = (int(row.numerator), den)
    assert got == EXPECTED


def test_hand_built_cell_layout() -> None:
    gt = compute_ground_truth(tiny_population(), report_months=2)
    assert set(gt["period_type"]) == {"manad"}
    feb = gt[gt["period_start"] == D(2026, 2, 1)]
    assert set(feb["period_end"]) == {D(2026, 2, 28)}  # the running month ends on its last day
    assert set(gt["indicator_id"]) == set(INDICATOR_NAMES)
    for row in gt.itertuples(index=False):
        assert row.indicator_name == INDICATOR_NAMES[row.indicator_id]
        if row.unit == "antal":
            assert pd.isna(row.denominator) and row.value == row.numerator >= 1
        else:
            assert row.denominator >= 1 and row.value == pytest.approx(row.numerator
                                                                       / row.denominator)
        if row.area_level == "stad":
            assert (row.area_code, row.area_name) == ("0180", "Stockholm")
        else:
            assert row.area_level == "stadsdelsomrade"
    names = dict(zip(gt["area_code"], gt["area_name"], strict=True))
    assert names["SKH"] == "Skärholmen" and names["EAV"] == "Enskede-Årsta-Vantör"
    kanda = gt[gt["indicator_id"] == "kanda_av_flera"]
    assert set(zip(kanda["breakdown"], kanda["breakdown_value"], strict=True)) == {
        ("totalt", "totalt"), ("antal_verksamheter", "3")}


def test_threshold_and_min_offered_are_parameters() -> None:
    pop = tiny_population()
    strict = compute_ground_truth(pop, high_absence_threshold=0.151, report_months=2)
    jan = strict[(strict["indicator_id"] == "hog_franvaro")
                 & (strict["period_start"] == D(2026, 1, 1)) & (strict["area_code"] == "0180")]
    assert (int(jan["numerator"].iloc[0]), int(jan["denominator"].iloc[0])) == (2, 4)  # P4 out
    low = compute_ground_truth(pop, min_offered_minutes=240, report_months=2)
    jan = low[(low["indicator_id"] == "hog_franvaro")
              & (low["period_start"] == D(2026, 1, 1)) & (low["area_code"] == "0180")]
    assert int(jan["denominator"].iloc[0]) == 5  # P5 (240 min) now assessed


def test_write_ground_truth_csv(tmp_path: Path) -> None:
    gt = compute_ground_truth(tiny_population(), report_months=2)
    path = write_ground_truth(gt, tmp_path / "out" / "ground_truth.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(gt)
    assert list(rows[0]) == OUTPUT_COLUMNS
    first = rows[0]
    assert first["period_start"] == "2026-01-01" and first["period_end"] == "2026-01-31"
    antal = next(r for r in rows if r["unit"] == "antal")
    assert antal["denominator"] == "" and antal["numerator"].isdigit()
    andel = next(r for r in rows if r["unit"] == "andel")
    assert andel["denominator"].isdigit()
    assert any("frånvaro" in r["indicator_name"] for r in rows)


# -- generated population: compare with a naive, loop-based reading of the rules -------------

@pytest.fixture(scope="module")
def generated() -> Population:
    return generate(seed=314, pupils=400)


def _age(birth: D, on: D) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def test_generated_population_against_naive_implementation(generated: Population) -> None:
    pop = generated
    gt = compute_ground_truth(pop)
    months = {(d.year, d.month) for d in gt["period_start"]}
    assert len(months) <= 12 and min(months) >= (2025, 7) and max(months) == (2026, 6)
    seeds = Path(__file__).resolve().parent.parent / "dbt_project" / "seeds"
    sspf_area = {r["sspf_omrade_code"]: r["stadsdelsomrade_code"]
                 for r in csv.DictReader((seeds / "ref_sspf_omraden.csv").open(encoding="utf-8"))}
    unit_area = {r["school_unit_code"]: sspf_area[r["sspf_omrade_code"]]
                 for r in csv.DictReader((seeds / "ref_skolenheter.csv").open(encoding="utf-8"))}
    district_area = {r["stadsdel_name"]: r["stadsdelsomrade_code"]
                     for r in csv.DictReader((seeds / "ref_stadsdelar.csv").open(encoding="utf-8"))}
    persons = {int(r.person_key): r for r in pop.persons.itertuples(index=False)}
    protected = {k for k, r in persons.items() if r.protected}
    birth = {k: r.birth_date for k, r in persons.items()}

    # hog_franvaro, per month (loop over records)
    ev = {}
    for r in pop.calendar_events.itertuples(index=False):
        local = r.start_time.tz_convert(TZ)
        ev[r.id] = (local.year, local.month, (r.end_time - r.start_time).total_seconds() / 60)
    offered: dict[tuple[int, int, int], float] = defaultdict(float)
    absence: dict[tuple[int, int, int], float] = defaultdict(float)
    att = pop.attendances
    for key, ev_id, rep, va, inv in zip(att["person_key"].to_numpy(), att["calendar_event_id"],
                                        att["is_reported"].to_numpy(),
                                        att["valid_absence_minutes"].to_numpy(),
                                        att["invalid_absence_minutes"].to_numpy(), strict=True):
        if not rep or int(key) in protected:
            continue
        year, month, minutes = ev[ev_id]
        k = (int(key), year, month)
        offered[k] += minutes
        absence[k] += int(va) + int(inv)
    enrol: dict[int, list] = defaultdict(list)
    for r in pop.enrolments.itertuples(index=False):
        enrol[int(r.person_key)].append(r)
    expected = {}
    for year, month in sorted(months):
        first = D(year, month, 1)
        last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
        cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for key, rows in enrol.items():
            if key in protected:
                continue
            active = [r for r in rows if r.start_date <= last
                      and (r.end_date is None or r.end_date >= first)]
            if not active:
                continue
            on_last = [r for r in active if r.end_date is None or r.end_date >= last]
            chosen = max(on_last or active, key=lambda r: r.start_date)
            off = offered.get((key, year, month), 0.0)
            if off < 300:
                continue
            high = absence[(key, year, month)] / off >= 0.15
            for area in ("0180", unit_area[chosen.school_unit_code]):
                cells[area][0] += high
                cells[area][1] += 1
        for area, (num, den) in cells.items():
            expected[(first, area)] = (num, den)
    hf = gt[gt["indicator_id"] == "hog_franvaro"]
    got = {(r.period_start, r.area_code): (int(r.numerator), int(r.denominator))
           for r in hf.itertuples(index=False)}
    assert got == expected and len(got) >= 3

    # unga_misstankta: newest version per (Diarienummer, person, Roll), loop
    newest: dict[tuple, tuple] = {}
    for i, r in enumerate(pop.police_rows.to_dict("records")):
        ident = (f"k{r['person_key']}" if r["identifier_valid"] and not pd.isna(r["person_key"])
                 else f"raw{r['Personnummer']}")
        key = (r["Diarienummer"], ident, r["Roll"])
        stamp = (r["Senast ändrad"], i)  # newest Senast ändrad, then delivery order
        if key not in newest or stamp > newest[key][0]:
            newest[key] = (stamp, r)
    sus: dict[tuple[D, str], set[int]] = defaultdict(set)
    for _, r in newest.values():
        if r["Status"] == "Makulerad" or not r["identifier_valid"] or r["Roll"] != "Misstänkt":
            continue
        key = int(r["person_key"])
        brott = r["Brottsdatum"]
        if key in protected or brott > pop.reference_date or _age(birth[key], brott) >= 18:
            continue
        first = brott.replace(day=1)
        sus[(first, "0180")].add(key)
        area = district_area.get(r["Stadsdel"].strip())
        if area:
            sus[(first, area)].add(key)
    um = gt[gt["indicator_id"] == "unga_misstankta"]
    got = {(r.period_start, r.area_code): int(r.numerator) for r in um.itertuples(index=False)}
    want = {k: len(v) for k, v in sus.items() if k[0] >= D(2025, 7, 1)}
    assert got == want


def test_generated_cells_are_consistent(generated: Population) -> None:
    gt = compute_ground_truth(generated)
    assert not gt.duplicated(["indicator_id", "period_start", "area_code", "breakdown",
                              "breakdown_value"]).any()
    andel = gt[gt["unit"] == "andel"]
    assert (andel["denominator"] >= 1).all()
    assert ((andel["numerator"] >= 0) & (andel["numerator"] <= andel["denominator"])).all()
    assert (gt.loc[gt["unit"] == "antal", "numerator"] >= 1).all()
    # area cells never exceed the city cell of the same indicator, period and breakdown
    city = gt[gt["area_level"] == "stad"].set_index(
        ["indicator_id", "period_start", "breakdown_value"])
    for r in gt[gt["area_level"] != "stad"].itertuples(index=False):
        c = city.loc[(r.indicator_id, r.period_start, r.breakdown_value)]
        count = r.numerator if r.unit == "antal" else r.denominator
        city_count = c["numerator"] if r.unit == "antal" else c["denominator"]
        assert count <= city_count
    # school indicators exist only for the months with lessons
    school = gt[gt["indicator_id"] == "hog_franvaro"]
    assert set(school["period_start"]) == {D(2026, m, 1) for m in range(1, 7)}
    assert np.isfinite(gt["value"]).all()
