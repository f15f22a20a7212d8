"""The synthetic municipality: determinism, plausibility, its municipality profiles (Stockholm,
Malmö), and its real source writers (case-system views on SQLite / PostgreSQL / MariaDB,
police CSV files)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from samverkan.config.reference import DEFAULTS_DIR, reference_file
from samverkan.simulator.case_system_db import VIEWS, write_case_system
from samverkan.simulator.ground_truth import compute_ground_truth
from samverkan.simulator.municipalities import (
    MALMO,
    PROFILES,
    REFERENCE_TABLES,
    STOCKHOLM,
    Municipality,
    profile,
    write_reference,
)
from samverkan.simulator.police_files import HEADER, write_police_files
from samverkan.simulator.population import Population, generate
from samverkan.simulator.ss12000_server import SS12000Data

TZ = "Europe/Stockholm"
SEEDS = STOCKHOLM.reference_dir  # Stockholm's reference CSVs
FRAMES = ("organisations", "persons", "enrolments", "calendar_events", "attendances", "klient",
          "aktualisering", "utredning", "insats", "gallring", "police_rows")
COLUMNS = {
    "organisations": ["id", "organisation_type", "display_name", "organisation_number",
                      "school_unit_code", "municipality_code", "parent_organisation_id",
                      "school_types", "modified_at"],
    "persons": ["person_key", "pnr", "is_samordningsnummer", "birth_date", "sex", "first_name",
                "last_name", "protected", "security_marking", "ss12000_id", "modified_at"],
    "enrolments": ["person_key", "school_unit_code", "school_year", "school_type", "start_date",
                   "end_date"],
    "calendar_events": ["id", "activity_id", "school_unit_code", "school_year", "start_time",
                        "end_time", "modified_at"],
    "attendances": ["id", "calendar_event_id", "person_key", "is_reported", "attendance_minutes",
                    "valid_absence_minutes", "invalid_absence_minutes",
                    "other_attendance_minutes", "reported_timestamp", "modified_at"],
    "klient": ["klient_id", "person_key", "personnummer", "identifier_valid", "fornamn",
               "efternamn", "skyddad_identitet", "andrad_tid"],
    "aktualisering": ["aktualisering_id", "klient_id", "inkom_datum", "typ", "anmalare_kategori",
                      "skyddsbedomning_datum", "forhandsbedomning_datum", "beslut", "stadsdel",
                      "andrad_tid"],
    "utredning": ["utredning_id", "klient_id", "aktualisering_id", "startdatum", "avslutsdatum",
                  "resultat", "andrad_tid"],
    "insats": ["insats_id", "klient_id", "insatstyp", "startdatum", "slutdatum",
               "planerat_slutdatum", "avslutsorsak", "andrad_tid"],
    "gallring": ["tabell", "rad_id", "gallrad_tid"],
    "police_rows": ["file_date", "file_encoding", "person_key", "identifier_valid", *HEADER],
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _frame(pop: Population, name: str) -> pd.DataFrame:
    """A frame of ``pop``; the attendance records as read from the world's part files."""
    return pop.attendance_frame() if name == "attendances" else getattr(pop, name)


def _reported(pop: Population) -> pd.DataFrame:
    a = pop.attendance_frame()
    return a[a["is_reported"]]


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate(seed=11, pupils=400)


@pytest.fixture(scope="module")
def big() -> Population:
    return generate(seed=20260612, pupils=1500)


# -- an independent reading of identifiers (not the pipeline's macros) -----------------------

def _luhn_ok(d10: str) -> bool:
    total = 0
    for i, ch in enumerate(d10):
        p = int(ch) * (2 if i % 2 == 0 else 1)
        total += p // 10 + p % 10
    return total % 10 == 0


def _birth(pnr12: str) -> dt.date | None:
    day = int(pnr12[6:8])
    try:
        return dt.date(int(pnr12[:4]), int(pnr12[4:6]), day - 60 if day > 60 else day)
    except ValueError:
        return None


def _normalise(raw: object, ref: dt.date) -> str | None:
    """12 digits when the written identifier is valid, else None."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return None
    s = re.sub(r"\s+", "", str(raw))
    if re.fullmatch(r"\d{12}", s):
        cand = s
    elif re.fullmatch(r"\d{8}-\d{4}", s):
        cand = s[:8] + s[9:]
    elif re.fullmatch(r"\d{6}-\d{4}", s):
        yy, mm, dd = int(s[:2]), int(s[2:4]), int(s[4:6])
        year = ref.year // 100 * 100 + yy
        if (year, mm, dd - 60 if dd > 60 else dd) > (ref.year, ref.month, ref.day):
            year -= 100
        cand = f"{year:04d}" + s[2:6] + s[7:]
    else:
        return None
    b = _birth(cand)
    if b is None or b > ref or not _luhn_ok(cand[2:]):
        return None
    return cand


# -- determinism and shape ---------------------------------------------------------------------

def test_same_seed_gives_identical_frames(pop: Population) -> None:
    again = generate(seed=11, pupils=400)
    for name in FRAMES:
        pd.testing.assert_frame_equal(_frame(pop, name), _frame(again, name), obj=name)
    other = generate(seed=12, pupils=400)
    assert not pop.persons["pnr"].equals(other.persons["pnr"])
    assert set(pop.attendance_frame()["id"][:100]).isdisjoint(set(other.attendance_frame()["id"]))
    assert not pop.police_rows["Diarienummer"].equals(other.police_rows["Diarienummer"])


def test_frame_columns_follow_the_contract(pop: Population) -> None:
    for name in FRAMES:
        assert list(_frame(pop, name).columns) == COLUMNS[name], name
    assert pop.reference_date == pop.term_end == dt.date(2026, 6, 12)
    assert pop.term_start == dt.date(2026, 1, 12)
    assert pop.history_start == dt.date(2024, 7, 1)
    for frame, cols in (("organisations", ["modified_at"]), ("persons", ["modified_at"]),
                        ("calendar_events", ["start_time", "end_time", "modified_at"]),
                        ("attendances", ["reported_timestamp", "modified_at"])):
        for col in cols:
            assert str(_frame(pop, frame)[col].dt.tz) == TZ, (frame, col)
    for frame, cols in (("aktualisering", ["andrad_tid"]), ("klient", ["andrad_tid"]),
                        ("gallring", ["gallrad_tid"]), ("police_rows", ["Senast ändrad"])):
        for col in cols:
            assert _frame(pop, frame)[col].dt.tz is None, (frame, col)
    assert all(UUID.match(x) for x in pop.attendance_frame()["id"].head(1000))
    assert pop.attendance_frame()["id"].is_unique and pop.calendar_events["id"].is_unique
    assert set(pop.attendance_frame()["calendar_event_id"]) <= set(pop.calendar_events["id"])


def test_school_plausibility(big: Population) -> None:
    pop = big
    pupils = pop.enrolments["person_key"].unique()
    assert len(pupils) == 1500
    assert pop.persons.set_index("person_key").loc[pupils, "ss12000_id"].notna().all()
    seed_units = set(pd.read_csv(SEEDS / "ref_skolenheter.csv", dtype=str)["school_unit_code"])
    units = pop.organisations[pop.organisations["organisation_type"] == "Skolenhet"]
    assert set(units["school_unit_code"]) == seed_units and len(units) == 15
    huvudman = pop.organisations[pop.organisations["organisation_type"] == "Huvudman"]
    owner = units["parent_organisation_id"].map(
        huvudman.set_index("id")["organisation_number"])
    municipal = owner == pop.municipality_organisation_number
    assert 3 <= (~municipal).sum() <= 7 and municipal.sum() >= 8
    assert 2 <= owner[~municipal].nunique() <= 3
    assert all(re.fullmatch(r"556\d{3}-\d{4}", n) for n in owner[~municipal])
    assert set(pop.enrolments["school_year"]) == set(range(1, 10))
    assert pop.enrolments.groupby("person_key").size().max() == 2  # movers

    # lessons: weekdays of vt 2026 outside sportlov (v9) and påsklov (v14), 60 minutes each
    start = pop.calendar_events["start_time"]
    days = start.dt.tz_convert(TZ).dt.date
    assert min(days) == pop.term_start and max(days) == pop.term_end
    weeks = {d.isocalendar()[1] for d in days}
    assert 9 not in weeks and 14 not in weeks
    assert all(d.weekday() < 5 for d in set(days))
    length = (pop.calendar_events["end_time"] - start).dt.total_seconds()
    assert (length == 3600).all()

    # attendance: minutes add up; unreported records carry no minutes
    a = pop.attendance_frame()
    mins = a[["attendance_minutes", "valid_absence_minutes", "invalid_absence_minutes",
              "other_attendance_minutes"]]
    rep = a["is_reported"]
    assert (mins[rep].sum(axis=1) == 60).all() and (mins[~rep].sum(axis=1) == 0).all()
    assert a.loc[~rep, "reported_timestamp"].isna().all()
    assert a.loc[rep, "reported_timestamp"].notna().all()
    assert 0.90 < rep.mean() < 0.995
    # unreported lessons concentrate at some (independent) schools
    ev_unit = pop.calendar_events.set_index("id")["school_unit_code"]
    unit_rate = 1 - rep.groupby(a["calendar_event_id"].map(ev_unit)).mean()
    assert unit_rate.max() > 0.08 and unit_rate.min() < 0.04

    # absence: most pupils low, a tail; 8-20 % of assessed pupils >= 15 % in a month
    ev_month = pop.calendar_events.set_index("id")["start_time"].dt.month
    r = a[rep].assign(month=a.loc[rep, "calendar_event_id"].map(ev_month))
    g = r.groupby(["person_key", "month"])[["valid_absence_minutes",
                                           "invalid_absence_minutes"]].sum().sum(axis=1)
    share = g / (r.groupby(["person_key", "month"]).size() * 60)
    monthly = (share >= 0.15).groupby(level="month").mean()
    assert ((monthly > 0.06) & (monthly < 0.22)).all(), monthly
    assert 0.08 <= (share >= 0.15).mean() <= 0.18
    assert share.median() < 0.08 and share.quantile(0.99) > 0.3


def test_identifiers(big: Population) -> None:
    pop = big
    R = pop.reference_date
    p = pop.persons
    assert p["person_key"].is_unique and p["pnr"].is_unique
    for pnr, birth, samord in zip(p["pnr"], p["birth_date"], p["is_samordningsnummer"],
                                  strict=True):
        assert re.fullmatch(r"\d{12}", pnr) and _luhn_ok(pnr[2:])
        assert _birth(pnr) == birth
        assert (int(pnr[6:8]) > 60) == samord
    assert 0.01 <= p["is_samordningsnummer"].mean() <= 0.035
    truth = p.set_index("person_key")["pnr"]

    k = pop.klient
    norm = [_normalise(x, R) for x in k["personnummer"]]
    valid = np.array([n is not None for n in norm])
    assert (valid == k["identifier_valid"].to_numpy()).all()
    assert all(n == truth[key] for n, key in zip(norm, k["person_key"], strict=True) if n)
    assert 0.002 <= (~valid).mean() <= 0.03
    written = k["personnummer"].dropna()
    assert written.str.fullmatch(r"\d{8}-\d{4}").any()
    assert written.str.fullmatch(r"\d{6}-\d{4}").any()
    assert written.str.fullmatch(r"\d{12}").any()
    assert written.str.contains(r"\s").any()

    pr = pop.police_rows
    norm = [_normalise(x, R) for x in pr["Personnummer"]]
    valid = np.array([n is not None for n in norm])
    assert (valid == pr["identifier_valid"].to_numpy()).all()
    assert all(n == truth[int(key)] for n, key in zip(norm, pr["person_key"], strict=True) if n)
    assert 0.005 <= (~valid).mean() <= 0.04
    assert (pr.loc[pr["person_key"].isna(), "Personnummer"] == "").all()


def test_protected_identity_is_flagged_everywhere(big: Population) -> None:
    p = big.persons
    assert 0.004 <= p["protected"].mean() <= 0.02
    assert ((p["security_marking"] != "Ingen") == p["protected"]).all()
    assert set(p["security_marking"]) == {"Ingen", "Skyddad folkbokföring", "Sekretessmarkering"}
    prot = p.set_index("person_key")["protected"]
    k = big.klient
    assert (k["skyddad_identitet"].to_numpy() == prot.loc[k["person_key"]].to_numpy()).all()
    # every protected person is visible as such in SS 12000 or in a valid klient row
    visible = set(p.loc[p["ss12000_id"].notna() & p["protected"], "person_key"]) | set(
        k.loc[k["skyddad_identitet"] & k["identifier_valid"], "person_key"])
    assert set(p.loc[p["protected"], "person_key"]) == visible


def test_nothing_after_the_reference_date(big: Population) -> None:
    pop = big
    R = pop.reference_date
    end_of_r = pd.Timestamp(dt.datetime.combine(R, dt.time(23, 59, 59)), tz=TZ)
    term_start = pd.Timestamp(dt.datetime.combine(pop.term_start, dt.time()), tz=TZ)
    for frame, col in (("organisations", "modified_at"), ("persons", "modified_at"),
                       ("calendar_events", "modified_at"), ("attendances", "modified_at"),
                       ("attendances", "reported_timestamp")):
        values = _frame(pop, frame)[col].dropna()
        assert (values <= end_of_r).all() and (values >= term_start).all(), (frame, col)
    a = pop.attendance_frame()
    ends = a["calendar_event_id"].map(pop.calendar_events.set_index("id")["end_time"])
    assert (a["reported_timestamp"].dropna() >= ends[a["is_reported"]]).all()
    assert (a["modified_at"] >= a["reported_timestamp"].fillna(a["modified_at"])).all()

    naive_end = pd.Timestamp(dt.datetime.combine(R, dt.time(23, 59, 59)))
    history = pd.Timestamp(pop.history_start)
    dates = {"aktualisering": ["inkom_datum", "skyddsbedomning_datum",
                               "forhandsbedomning_datum"],
             "utredning": ["startdatum", "avslutsdatum"], "insats": ["startdatum", "slutdatum"],
             "police_rows": ["file_date", "Brottsdatum", "Anmälningsdatum"]}
    for frame, cols in dates.items():
        for col in cols:
            values = pd.to_datetime(_frame(pop, frame)[col].dropna())
            assert (values <= pd.Timestamp(R)).all() and (values >= history).all(), (frame, col)
    for frame, col in (("klient", "andrad_tid"), ("aktualisering", "andrad_tid"),
                       ("utredning", "andrad_tid"), ("insats", "andrad_tid"),
                       ("gallring", "gallrad_tid"), ("police_rows", "Senast ändrad")):
        assert (_frame(pop, frame)[col] <= naive_end).all(), (frame, col)


def test_case_system_and_police_plausibility(big: Population) -> None:
    pop = big
    R = pop.reference_date
    akt = pop.aktualisering
    # stadsdel: the stadsdelsområde handling the matter, by its reference name
    areas = pd.read_csv(SEEDS / "ref_stadsdelsomraden.csv", dtype=str, keep_default_na=False)
    assert set(akt["stadsdel"]) <= set(areas["stadsdelsomrade_name"])
    assert {"Skärholmen", "Enskede-Årsta-Vantör"} <= set(akt["stadsdel"])
    # the handling district follows the child's home area: one per client, whatever the matter
    assert (akt.groupby("klient_id")["stadsdel"].nunique() == 1).all()
    assert {"Skola", "Polis", "Anonym"} <= set(akt["anmalare_kategori"])
    anm = akt[akt["typ"] == "Anmälan"]
    delay = (pd.to_datetime(anm["forhandsbedomning_datum"])
             - pd.to_datetime(anm["inkom_datum"])).dt.days
    assert (delay.dropna() <= 14).mean() > 0.7 and (delay.dropna() > 14).any()
    assert anm["forhandsbedomning_datum"].isna().any()
    assert anm.loc[anm["forhandsbedomning_datum"].isna(), "beslut"].isna().all()
    # >= 5 reports a month in the simulated areas most months, small counts elsewhere
    month = pd.to_datetime(anm["inkom_datum"]).dt.to_period("M")
    per_cell = anm.groupby([month, anm["stadsdel"]]).size()
    assert (per_cell >= 5).mean() > 0.3 and (per_cell < 5).any()
    assert set(pop.insats["insatstyp"]) >= {"SST", "SIG", "PLAC_FH"}
    plac = pop.insats[pop.insats["insatstyp"].str.startswith("PLAC_")]
    assert plac["planerat_slutdatum"].notna().all()
    assert set(pop.utredning["aktualisering_id"].dropna()) <= set(akt["aktualisering_id"])
    # gallring names rows that are gone
    assert len(pop.gallring) >= 1
    for table, col in (("aktualisering", "aktualisering_id"), ("insats", "insats_id")):
        ids = set(pop.gallring.loc[pop.gallring["tabell"] == table, "rad_id"])
        assert ids.isdisjoint(set(getattr(pop, table)[col]))

    pr = pop.police_rows
    assert set(pr["Roll"]) == {"Misstänkt", "Målsägande"}
    assert pr["Brottskod"].str.fullmatch(r"\d{4}").all() and pr["Brottskod"].str.startswith(
        "0").any()
    assert (pr["Kommun"] == "Stockholm").all()
    districts = pd.read_csv(SEEDS / "ref_stadsdelar.csv", dtype=str, keep_default_na=False)
    known = set(districts["stadsdel_name"])
    assert (pr["Stadsdel"] == "").any() and pr["Stadsdel"].isin(known).mean() > 0.85
    assert pr["Stadsdel"].isin(["Södermalm", "Kungsholmen", "Farsta"]).any()
    sus = pr[(pr["Roll"] == "Misstänkt") & pr["person_key"].notna()]
    ages = sus["Ålder"]
    assert ages.between(12, 17).mean() > 0.7 and ages.between(18, 25).any()
    assert pr["Diarienummer"].str.fullmatch(r"5000-K\d{6}-\d{2}").all()
    # corrections (same key, newer Senast ändrad, other district/code) and cancellations
    key = ["Diarienummer", "Personnummer", "Roll"]
    versions = pr.groupby(key).agg(n=("Status", "size"), stadsdel=("Stadsdel", "nunique"),
                                   kod=("Brottskod", "nunique"))
    assert (versions["n"] > 1).any() and (versions["stadsdel"] > 1).any()
    assert (versions["kod"] > 1).any()
    assert (pr["Status"] == "Makulerad").any()
    assert pr["file_date"].is_monotonic_increasing
    assert (pd.to_datetime(pr["Senast ändrad"]).dt.date <= pr["file_date"]).all()
    assert (pd.to_datetime(pr["Brottsdatum"]) <= pd.to_datetime(pr["Anmälningsdatum"])).all()
    assert max(pr["file_date"]) <= R


def test_spring_sst_cohort_closes_its_follow_up_and_mostly_works(big: Population) -> None:
    """The spring SST cohort: starts 2-13 March, lasts 4-5 weeks, so the 8 weeks after its
    end close by R; the pupils had high absence and, for most, less absence afterwards."""
    pop = big
    R = pd.Timestamp(pop.reference_date)
    ins = pop.insats[pop.insats["insatstyp"] == "SST"]
    start = pd.to_datetime(ins["startdatum"])
    end = pd.to_datetime(ins["slutdatum"])
    days = (end - start).dt.days
    cohort = ins[(start >= "2026-03-02") & (start <= "2026-03-13") & days.between(28, 35)]
    assert 12 <= len(cohort) <= 30  # about 1 % of the 1500 pupils, plus a few regular SSTs
    assert (pd.to_datetime(cohort["slutdatum"]) + pd.Timedelta(days=56) <= R).all()
    person = cohort["klient_id"].map(pop.klient.set_index("klient_id")["person_key"])
    # absence share in the 8 weeks before the start and the 8 weeks after the end
    a = _reported(pop)
    lesson_day = a["calendar_event_id"].map(
        pop.calendar_events.set_index("id")["start_time"].dt.tz_convert(TZ).dt.tz_localize(None)
        .dt.normalize())
    absent = a["valid_absence_minutes"] + a["invalid_absence_minutes"]
    improved, before_shares = [], []
    for key, s, e in zip(person, pd.to_datetime(cohort["startdatum"]),
                         pd.to_datetime(cohort["slutdatum"]), strict=True):
        mine = a["person_key"] == key
        before = mine & (lesson_day >= s - pd.Timedelta(days=56)) & (lesson_day < s)
        after = mine & (lesson_day > e) & (lesson_day <= e + pd.Timedelta(days=56))
        share_before = absent[before].sum() / (60 * before.sum())
        share_after = absent[after].sum() / (60 * after.sum())
        before_shares.append(share_before)
        improved.append(share_after < share_before)
    assert np.median(before_shares) >= 0.10
    assert 0.6 <= np.mean(improved) <= 0.95, np.mean(improved)


# -- Stockholm's frames, pinned ------------------------------------------------------------------

# (rows, digest) of every frame for seed 20260612, 1500 pupils, 2 lessons a day, computed with
# the simulator as it was before municipality profiles existed (the Stockholm constants in
# population.py, the dbt seeds): the STOCKHOLM profile must give exactly those frames. The
# attendance digest changed once, on purpose, when the records became drawn per lesson day
# from streams keyed by (seed, day) and written to part files (same record count; every other
# frame unchanged). The aktualisering digest changed once, on purpose, when the case system's
# stadsdel became the child's home stadsdelsområde for every matter (the district handling it;
# before, 7 % named a random one): same rows, only that column differs; every other frame
# unchanged.
STOCKHOLM_FRAMES = {
    "organisations": (19, "74ac88e49ab4df300a8293b72f40b967667fa0ad1634fdb6ecd38de52305e204"),
    "persons": (1800, "deea886dc8c3a15cc2d37816c5a997261a7c830c0a8f32259e222e1be0d58de0"),
    "enrolments": (1536, "6e0885ec7c384c1c3af31f1eade221fdd68c402c2307a5bf6b23be7da2b8e615"),
    "calendar_events": (26190, "1bf47476859ab0c3adcaf92054fd99f19fdc0bb2ee93b44693e658a719fed939"),
    "attendances": (287896, "f2cb5813b296f2bd1341639b93b787e18927f137cf3778693f88a6dde8a270ce"),
    "klient": (356, "edd0131fc0e90b2f774be19917a2aee41c440ea2b7c0993ce9f3b3ff66b5e755"),
    "aktualisering": (427, "e280415467dcc80c2fb4111241ef60a56dab29602a801bf9a3b932112bf443c6"),
    "utredning": (193, "91ed35552946eb60dc02b936b4007559e0df9c12ae27cfa164e072d9e73ff5ed"),
    "insats": (173, "4377652d1e0f32e25c3610cc7b9d23e8b355b751bad25ba0020b947ff01453e2"),
    "gallring": (4, "d55de010c1744b9440531befeb298b8eadff975485090efca096c0bef6629317"),
    "police_rows": (439, "7f6e6e122aba791c320559d3840c670c27980f85a536c84d1a148439fbf24bfd"),
}


def _frame_digest(frame: pd.DataFrame) -> str:
    """sha256 over the column names, the dtypes and every value (object columns by repr:
    dates, lists, None)."""
    h = hashlib.sha256()
    h.update(repr(list(frame.columns)).encode())
    h.update(repr([str(t) for t in frame.dtypes]).encode())
    for col in frame.columns:
        values = frame[col]
        if values.dtype == object:
            values = values.map(repr)
        h.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return h.hexdigest()


def test_stockholm_frames_are_pinned() -> None:
    """A mismatch changes every Stockholm demo and test population: only ever on purpose (or
    after a pandas / numpy upgrade that renames a dtype or changes a value's repr)."""
    pop = generate(seed=20260612, pupils=1500, lessons_per_day=2)
    assert pop.municipality is STOCKHOLM
    assert (pop.municipality_code, pop.municipality_name, pop.municipality_organisation_number) == (
        "0180", "Stockholm", "212000-0142")
    got = {name: (len(_frame(pop, name)), _frame_digest(_frame(pop, name))) for name in FRAMES}
    assert got == STOCKHOLM_FRAMES


# -- municipality profiles -----------------------------------------------------------------------

def _reference(m: Municipality, table: str) -> pd.DataFrame:
    return pd.read_csv(reference_file(m.reference_dir, table), dtype=str, keep_default_na=False)


def _unmapped(m: Municipality) -> set[str]:
    return {u.code for u in m.school_units} - set(_reference(m, "ref_skolenheter")["school_unit_code"])


@pytest.fixture(scope="module")
def malmo() -> Population:
    return generate(seed=21, pupils=600, municipality=MALMO)


def test_profiles_and_their_reference_files() -> None:
    assert profile("stockholm") is STOCKHOLM and profile("malmo") is MALMO
    assert profile(" Malmö ") is MALMO and set(PROFILES) == {"stockholm", "malmo"}
    with pytest.raises(ValueError, match="unknown municipality profile"):
        profile("göteborg")
    for m in PROFILES.values():
        assert [p.name for p in m.reference_files()] == [f"{t}.csv" for t in REFERENCE_TABLES]
        assert all(p.is_file() for p in m.reference_files())
        assert not (m.reference_dir / "ref_brottskoder.csv").exists()  # the product's default
        assert reference_file(m.reference_dir, "ref_brottskoder") == DEFAULTS_DIR / "ref_brottskoder.csv"
        schools = _reference(m, "ref_skolenheter")
        assert list(schools.columns) == ["school_unit_code", "school_unit_name", "huvudman",
                                         "sspf_omrade_code"]
        # the informational columns agree with what SS 12000 serves
        served = {u.code: (u.name, "kommunal" if u.huvudman is None else "fristående")
                  for u in m.school_units}
        for row in schools.itertuples(index=False):
            assert served[row.school_unit_code] == (row.school_unit_name, row.huvudman)
        sspf = _reference(m, "ref_sspf_omraden")
        areas = set(_reference(m, "ref_stadsdelsomraden")["stadsdelsomrade_code"])
        districts = set(_reference(m, "ref_stadsdelar")["stadsdel_name"])
        assert set(schools["sspf_omrade_code"]) <= set(sspf["sspf_omrade_code"])
        assert set(sspf["stadsdelsomrade_code"]) <= areas and set(m.other_areas) <= areas
        names = _reference(m, "ref_stadsdelsomraden")
        assert set(m.case_districts) <= set(zip(names["stadsdelsomrade_code"],
                                                names["stadsdelsomrade_name"], strict=True))
        assert m.unknown_police_district not in districts
        assert {code for code, _ in m.area_effects} == set(sspf["sspf_omrade_code"])
        assert all(re.fullmatch(r"\d{8}", u.code) for u in m.school_units)
    assert _unmapped(STOCKHOLM) == set() and len(_unmapped(MALMO)) == 1
    assert 8 <= len(MALMO.school_units) <= 10 and 3 <= len(_reference(MALMO, "ref_sspf_omraden")) <= 4
    assert len(_reference(MALMO, "ref_stadsdelsomraden")) == 2
    assert {u.code for u in MALMO.school_units}.isdisjoint({u.code for u in STOCKHOLM.school_units})
    assert set(MALMO.independent_huvudman).isdisjoint(STOCKHOLM.independent_huvudman)


def test_write_reference(tmp_path: Path) -> None:
    target = tmp_path / "home" / "reference"
    assert [p.name for p in write_reference(STOCKHOLM, target)] == [
        f"{t}.csv" for t in REFERENCE_TABLES]
    written = write_reference(MALMO, target)  # replaces the files of the same name
    assert written == [target / f"{t}.csv" for t in REFERENCE_TABLES]
    assert sorted(target.iterdir()) == sorted(written)
    for path in written:
        assert path.read_bytes() == (MALMO.reference_dir / path.name).read_bytes()
    assert reference_file(target, "ref_brottskoder") == DEFAULTS_DIR / "ref_brottskoder.csv"


def test_malmo_is_deterministic(malmo: Population) -> None:
    assert malmo.municipality is MALMO
    again = generate(seed=21, pupils=600, municipality=MALMO)
    for name in FRAMES:
        pd.testing.assert_frame_equal(_frame(malmo, name), _frame(again, name), obj=name)
    stockholm = generate(seed=21, pupils=600)
    assert set(stockholm.enrolments["school_unit_code"]).isdisjoint(
        set(malmo.enrolments["school_unit_code"]))


def test_malmo_organisations_and_sources(malmo: Population) -> None:
    pop = malmo
    assert (pop.municipality_code, pop.municipality_name, pop.municipality_organisation_number) == (
        "1280", "Malmö", "212000-1124")
    orgs = pop.organisations
    assert (orgs["municipality_code"] == "1280").all()
    huvudman = orgs[orgs["organisation_type"] == "Huvudman"].set_index("id")
    municipal = huvudman[huvudman["organisation_number"] == "212000-1124"]
    assert municipal["display_name"].tolist() == ["Malmö stad"]
    independent = huvudman.drop(municipal.index)
    assert sorted(independent["display_name"]) == sorted(MALMO.independent_huvudman)
    assert all(re.fullmatch(r"556\d{3}-\d{4}", n) for n in independent["organisation_number"])
    units = orgs[orgs["organisation_type"] == "Skolenhet"]
    assert list(zip(units["school_unit_code"], units["display_name"], strict=True)) == [
        (u.code, u.name) for u in MALMO.school_units]
    owner = units["parent_organisation_id"].map(huvudman["display_name"])
    assert owner.tolist() == ["Malmö stad" if u.huvudman is None
                              else MALMO.independent_huvudman[u.huvudman] for u in MALMO.school_units]

    # the unit missing from ref_skolenheter is served like every other: pupils, lessons, records
    (code,) = _unmapped(MALMO)
    assert (pop.enrolments["school_unit_code"] == code).sum() > 20
    assert (pop.calendar_events["school_unit_code"] == code).any()
    unit_id = units.loc[units["school_unit_code"] == code, "id"].item()
    data = SS12000Data.from_population(pop)
    record = data.get("organisations", unit_id)
    assert record["schoolUnitCode"] == code and record["municipalityCode"] == "1280"
    pupil = pop.persons.set_index("person_key").loc[
        pop.enrolments.loc[pop.enrolments["school_unit_code"] == code, "person_key"].iloc[0],
        "ss12000_id"]
    assert unit_id in {e["enroledAt"]["id"] for e in data.get("persons", pupil)["enrolments"]}

    # district names: the case system writes the stadsområde, the police a neighbourhood
    districts = _reference(MALMO, "ref_stadsdelar")
    assert set(pop.aktualisering["stadsdel"]) == {"Söder", "Öster"}
    pr = pop.police_rows
    assert (pr["Kommun"] == "Malmö").all()
    written = set(pr["Stadsdel"]) - {""}
    assert MALMO.unknown_police_district in written
    assert written - {MALMO.unknown_police_district} <= set(districts["stadsdel_name"])
    assert written.isdisjoint({"Söder", "Öster"})
    outside = set(districts.loc[districts["sspf_omrade_code"] == "", "stadsdel_name"])
    assert written & outside  # people living outside the SSPF areas


def _hog_franvaro(gt: pd.DataFrame, level: str, breakdown: str = "totalt",
                 area: str | None = None, value: str | None = None) -> pd.Series:
    """hog_franvaro denominators (assessed pupils) per period, summed over the level's areas
    (or of ``area``) and breakdown values (or ``value``)."""
    cells = gt[(gt["indicator_id"] == "hog_franvaro") & (gt["area_level"] == level)
               & (gt["breakdown"] == breakdown)]
    if area is not None:
        cells = cells[cells["area_code"] == area]
    if value is not None:
        cells = cells[cells["breakdown_value"] == value]
    return cells.groupby(["period_type", "period_start"])["denominator"].sum()


def test_malmo_ground_truth(malmo: Population, tmp_path: Path) -> None:
    gt = compute_ground_truth(malmo, min_cell=1)
    areas = gt[["area_level", "area_code", "area_name"]].drop_duplicates()
    names = {lv: dict(zip(g["area_code"], g["area_name"], strict=True))
             for lv, g in areas.groupby("area_level")}
    assert names["stad"] == {"1280": "Malmö"}
    assert names["stadsdelsomrade"] == {"SOR": "Söder", "OST": "Öster"}
    sspf = _reference(MALMO, "ref_sspf_omraden")
    assert names["sspf_omrade"] == dict(zip(sspf["sspf_omrade_code"], sspf["sspf_omrade_name"],
                                            strict=True))
    assert names["skolenhet"] == {u.code: u.name for u in MALMO.school_units}

    # the unmapped unit's pupils count in the city and skolenhet rows, in no area
    (code,) = _unmapped(MALMO)
    city = _hog_franvaro(gt, "stad")
    unit = _hog_franvaro(gt, "skolenhet", area=code)
    assert (unit > 0).all() and unit.index.equals(city.index) and len(city) >= 6
    pd.testing.assert_series_equal(_hog_franvaro(gt, "skolenhet"), city)
    pd.testing.assert_series_equal(_hog_franvaro(gt, "stadsdelsomrade") + unit, city)
    pd.testing.assert_series_equal(_hog_franvaro(gt, "sspf_omrade") + unit, city)
    assert not ((gt["area_code"] == code) & (gt["area_level"] != "skolenhet")).any()

    # huvudman: the municipality's organisation number is kommunal, the rest fristående
    assert set(gt.loc[gt["breakdown"] == "huvudman", "breakdown_value"]) == {"kommunal",
                                                                             "fristående"}
    owner = gt[(gt["indicator_id"] == "hog_franvaro") & (gt["area_level"] == "skolenhet")
               & (gt["breakdown"] == "huvudman")].groupby("area_code")["breakdown_value"].unique()
    assert {c: list(v) for c, v in owner.items()} == {
        u.code: ["kommunal" if u.huvudman is None else "fristående"] for u in MALMO.school_units}
    for kind in ("kommunal", "fristående"):
        kind_units = [u.code for u in MALMO.school_units
                      if (u.huvudman is None) == (kind == "kommunal")]
        pd.testing.assert_series_equal(
            _hog_franvaro(gt, "stad", "huvudman", value=kind),
            sum(_hog_franvaro(gt, "skolenhet", area=c) for c in kind_units))

    # another reference directory: once the unit is listed, it counts in its SSPF area
    reference = tmp_path / "reference"
    write_reference(MALMO, reference)
    with (reference / "ref_skolenheter.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"{code},Sundsskolan Kulladal,fristående,SOR-FO\n")
    listed = compute_ground_truth(malmo, min_cell=1, reference_dir=reference)
    pd.testing.assert_series_equal(_hog_franvaro(listed, "stadsdelsomrade"), city)
    pd.testing.assert_series_equal(_hog_franvaro(listed, "sspf_omrade", area="SOR-FO"),
                                   _hog_franvaro(gt, "sspf_omrade", area="SOR-FO") + unit)

# -- case system database ----------------------------------------------------------------------

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "sim_test"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/test", "sim_test"),
}


def _server(kind: str) -> tuple[str, str]:
    url, schema = SERVERS[kind]
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except OperationalError:
        require(False, f"{kind} server at {url.split('@')[-1]} is not reachable")
    return url, schema


def _read_view(url: str, schema: str | None, view: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        q = engine.dialect.identifier_preparer.quote
        name = f"{q(schema)}.{q(view)}" if schema else q(view)
        with engine.connect() as conn:
            result = conn.execute(text(f"select * from {name}"))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    finally:
        engine.dispose()


def _comparable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = {}
    for c in columns:
        s = frame[c]
        if s.dtype.kind == "M" or c.endswith("_tid"):
            out[c] = [None if pd.isna(v) else pd.Timestamp(v).to_pydatetime() for v in s]
        elif c.endswith("datum"):
            out[c] = [None if v is None or pd.isna(v) else pd.Timestamp(v).date() for v in s]
        elif c in ("skyddad_identitet",):
            out[c] = [bool(v) for v in s]
        else:
            out[c] = [None if v is None or (not isinstance(v, str) and pd.isna(v))
                      else (int(v) if isinstance(v, np.integer | int) and not isinstance(v, bool)
                            else v) for v in s]
    return pd.DataFrame(out)


def _check_round_trip(pop: Population, url: str, schema: str | None) -> None:
    counts = write_case_system(pop, url, schema)
    assert counts == {v: len(getattr(pop, v)) for v in VIEWS}
    assert write_case_system(pop, url, schema) == counts  # re-run replaces, does not append
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        assert set(VIEWS) <= set(insp.get_view_names(schema=schema))
        assert {f"t_{v}" for v in VIEWS} <= set(insp.get_table_names(schema=schema))
    finally:
        engine.dispose()
    for view in VIEWS:
        got = _read_view(url, schema, view)
        expected_cols = [c for c in getattr(pop, view).columns
                         if c not in ("person_key", "identifier_valid")]
        assert list(got.columns) == expected_cols, view
        key = expected_cols[0] if view != "gallring" else ["tabell", "rad_id"]
        want = _comparable(getattr(pop, view), expected_cols).sort_values(key).reset_index(
            drop=True)
        have = _comparable(got, expected_cols).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(have, want, check_dtype=False, obj=view)
    names = _read_view(url, schema, "klient")
    text_values = "".join(names["fornamn"].tolist() + names["efternamn"].tolist())
    assert re.search("[åäöÅÄÖ]", text_values)
    akt = _read_view(url, schema, "aktualisering")
    assert "Enskede-Årsta-Vantör" in set(akt["stadsdel"]) and "Anmälan" in set(akt["typ"])


def test_case_system_sqlite(pop: Population, tmp_path: Path) -> None:
    _check_round_trip(pop, f"sqlite:///{tmp_path / 'case_system.sqlite'}", None)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_case_system_server(pop: Population, kind: str) -> None:
    url, schema = _server(kind)
    try:
        _check_round_trip(pop, url, schema)
    finally:
        engine = create_engine(url)
        drop = ("drop schema if exists sim_test cascade" if kind == "postgresql"
                else "drop database if exists sim_test")
        with engine.begin() as conn:
            conn.execute(text(drop))
        engine.dispose()


# -- police files ------------------------------------------------------------------------------

def test_police_files(pop: Population, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    paths = write_police_files(pop, inbox)
    rows = pop.police_rows
    assert [p.name for p in paths] == sorted(
        f"polis_{d:%Y%m%d}.csv" for d in set(rows["file_date"]))
    assert sorted(inbox.iterdir()) == sorted(paths)
    encodings_seen = set()
    read_back = []
    for path in paths:
        raw = path.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        else:
            encoding = "cp1252"
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")  # å/ä/ö in the header are single cp1252 bytes
        encodings_seen.add(encoding)
        assert raw.count(b"\r\n") == raw.count(b"\n") and raw.endswith(b"\r\n")
        day = dt.datetime.strptime(path.stem.split("_")[1], "%Y%m%d").date()
        assert set(rows.loc[rows["file_date"] == day, "file_encoding"]) == {encoding}
        reader = csv.reader(io.StringIO(raw.decode(encoding), newline=""), delimiter=";")
        header = next(reader)
        assert header == HEADER
        for line in reader:
            read_back.append([day, *line])
    assert encodings_seen == {"utf-8-sig", "cp1252"}
    assert len(read_back) == len(rows)
    want = [[r["file_date"], r["Diarienummer"], r["Brottsdatum"].isoformat(),
             r["Anmälningsdatum"].isoformat(), r["Brottskod"], r["Brottsbenämning"], r["Kommun"],
             r["Stadsdel"], r["Personnummer"], r["Roll"], str(r["Ålder"]), r["Status"],
             r["Senast ändrad"].strftime("%Y-%m-%d %H:%M")]
            for r in rows.to_dict("records")]
    assert read_back == want
    flat = ";".join(";".join(map(str, r)) for r in read_back)
    assert re.search("[åäö]", flat) and "Målsägande" in flat
    assert any(r[4].startswith("0") and len(r[4]) == 4 for r in read_back)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", r[12]) for r in read_back)
    # deterministic: writing again gives identical bytes
    again = write_police_files(pop, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
