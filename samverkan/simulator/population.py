"""A deterministic synthetic municipality: pupils, lessons, attendance, cases and police rows.

``generate(seed, pupils, municipality=STOCKHOLM)`` builds every frame of a :class:`Population`
from one seed. The same seed gives identical frames (uuids included: they come from numpy
generators, not ``uuid4``). Everything municipality-specific (codes, names, school units,
huvudmän, areas, district names) comes from the municipality profile
(:class:`samverkan.simulator.municipalities.Municipality`) and its reference CSVs.

Everything that can involve millions of rows (lessons and attendance) is built with numpy
array operations; the social-services and police parts are a few thousand rows per 5 000
pupils and are built with vectorised pandas/numpy too.

One latent risk score per person drives everything that should correlate: school absence,
reports of concern, investigations, interventions and police suspicions. A spring cohort of
school social team (SST) interventions (about 1 % of the pupils, high absence, March, 4-5
weeks) lowers most of its pupils' absence afterwards, so that ``sst_effekt`` has follow-up
windows that close within the simulated term.

Frame columns and dtypes are the contract described in the simulator brief (see the
``Population`` docstring); the SS 12000 server, the case-system writer, the police file
writer and the ground truth read them.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

from samverkan.config.reference import reference_file
from samverkan.simulator.attendance import (
    PART_SCHEMA,
    AttendanceParts,
    WorldDirectory,
    attendance_frame,
)
from samverkan.simulator.municipalities import STOCKHOLM, Municipality

TZ = "Europe/Stockholm"
DEFAULT_SEED = 20260612
DEFAULT_PUPILS = 5000
TERM_START = dt.date(2026, 1, 12)
TERM_END = dt.date(2026, 6, 12)
HISTORY_START = dt.date(2024, 7, 1)
SCHOOL_YEAR_START = dt.date(2025, 8, 18)
HOLIDAY_WEEKS = (9, 14)  # sportlov, påsklov
PUBLIC_HOLIDAYS = (dt.date(2026, 4, 6), dt.date(2026, 5, 1), dt.date(2026, 5, 14))
LESSON_STARTS_MINUTES = (495, 570, 645, 780, 855, 930)  # 08:15 09:30 10:45 13:00 14:15 15:30
LESSON_MINUTES = 60

_EPOCH = dt.date(1970, 1, 1)
_NAT = np.datetime64("NaT", "D")

_REPORTERS = np.array(["Skola", "Förskola", "Polis", "Hälso- och sjukvård", "Socialtjänst",
                       "Anhörig", "Annan", "Anonym"])
# Reporter probabilities by age band (<6, 6-15, 16-17, 18+), in _REPORTERS order.
_REPORTER_P = np.array([
    [0.00, 0.30, 0.15, 0.25, 0.10, 0.08, 0.05, 0.07],
    [0.42, 0.00, 0.18, 0.10, 0.08, 0.07, 0.07, 0.08],
    [0.28, 0.00, 0.35, 0.10, 0.08, 0.06, 0.06, 0.07],
    [0.00, 0.00, 0.30, 0.20, 0.25, 0.10, 0.10, 0.05],
])
_OFFENCE_CATEGORY_P = {"stöld": 0.24, "våld": 0.20, "narkotika": 0.14, "rån": 0.10,
                       "skadegörelse": 0.10, "hot": 0.12, "vapen": 0.10}
_PERSON_DIRECTED = ("våld", "rån", "hot")

# The spring SST cohort: pupils with high absence whose school social team (SST) starts in the
# first half of March and lasts 4-5 weeks, so that the 8-week follow-up after it closes before
# the end of the term. For about 80 % the work helps: their absence rate drops after the end.
SST_COHORT_SHARE = 0.01  # of the pupils
SST_COHORT_MIN_RATE = 0.10  # daily absence rate that gets a pupil considered
SST_COHORT_START = (dt.date(2026, 3, 2), dt.date(2026, 3, 13))
SST_COHORT_DAYS = (28, 35)
SST_COHORT_SUCCESS = 0.8
SST_RATE_AFTER = (0.35, 1.15)  # factor on the absence rate after the end: works, does not
SST_RATE_DURING = (0.7, 1.0)
# The attendance of lesson day d comes from SeedSequence(seed, spawn_key=(ATTENDANCE_STREAM, d)):
# far from the spawn keys 0..8 of the population's other streams.
ATTENDANCE_STREAM = 1000
PART_ROW_GROUP = 65_536


@dataclass
class Population:
    """Every frame the simulator serves, plus the facts the ground truth needs.

    organisations: id, organisation_type, display_name, organisation_number, school_unit_code,
        municipality_code, parent_organisation_id, school_types, modified_at
    persons: person_key, pnr, is_samordningsnummer, birth_date, sex, first_name, last_name,
        protected, security_marking, ss12000_id, modified_at
    enrolments: person_key, school_unit_code, school_year, school_type, start_date, end_date
    calendar_events: id, activity_id, school_unit_code, school_year, start_time, end_time,
        modified_at
    attendances: id, calendar_event_id, person_key, is_reported, attendance_minutes,
        valid_absence_minutes, invalid_absence_minutes, other_attendance_minutes,
        reported_timestamp, modified_at. A generated world keeps them on disk
        (:class:`~samverkan.simulator.attendance.AttendanceParts`, Parquet part files written
        one lesson day at a time); ``attendance_frame()`` gives the frame (small worlds), a
        hand-built population may hold the frame itself.
    klient: klient_id, person_key, personnummer, identifier_valid, fornamn, efternamn,
        skyddad_identitet, andrad_tid
    aktualisering, utredning, insats, gallring: the columns of sources.md §2
    police_rows: file_date, file_encoding, person_key, identifier_valid, then the CSV columns
        (Diarienummer, Brottsdatum, Anmälningsdatum [date], Brottskod [str, 4 digits],
        Brottsbenämning, Kommun, Stadsdel, Personnummer [as written], Roll, Ålder [int],
        Status, Senast ändrad [naive timestamp, minute precision]) in delivery order.
    municipality: the profile the population was generated for (its reference CSVs are the
        areas, school units and district names the ground truth reads).
    """

    seed: int
    pupils: int
    term_start: dt.date
    term_end: dt.date
    history_start: dt.date
    reference_date: dt.date
    municipality_code: str
    municipality_name: str
    municipality_organisation_number: str
    organisations: pd.DataFrame
    persons: pd.DataFrame
    enrolments: pd.DataFrame
    calendar_events: pd.DataFrame
    attendances: pd.DataFrame | AttendanceParts
    klient: pd.DataFrame
    aktualisering: pd.DataFrame
    utredning: pd.DataFrame
    insats: pd.DataFrame
    gallring: pd.DataFrame
    police_rows: pd.DataFrame
    municipality: Municipality = STOCKHOLM

    def attendance_frame(self) -> pd.DataFrame:
        """The attendance records as one frame (reads the parts of a generated world: meant
        for small worlds and tests)."""
        return attendance_frame(self.attendances)


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------

def _d(day: dt.date) -> int:
    return (day - _EPOCH).days


def _date_objects(days: np.ndarray) -> np.ndarray:
    """int days since epoch (or datetime64[D] with NaT) -> object array of date / None."""
    arr = np.asarray(days)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[D]")
    return arr.astype("datetime64[D]").astype(object)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days).astype("datetime64[D]")
    years = d.astype("datetime64[Y]").astype(np.int64) + 1970
    months_since = d.astype("datetime64[M]")
    months = months_since.astype(np.int64) % 12 + 1
    mdays = (d - months_since.astype("datetime64[D]")).astype(np.int64) + 1
    return years, months, mdays


def age_on(birth_days: np.ndarray, on_days: np.ndarray) -> np.ndarray:
    """Whole years between birth dates and dates (both int days since epoch)."""
    by, bm, bd = _ymd(birth_days)
    oy, om, od = _ymd(on_days)
    before_birthday = (om < bm) | ((om == bm) & (od < bd))
    return oy - by - before_birthday.astype(np.int64)


def _add_years(days: np.ndarray, years: int) -> np.ndarray:
    """Same calendar day ``years`` later (29 Feb -> 28 Feb)."""
    y, m, d = _ymd(days)
    y = y + years
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    d = np.where((m == 2) & (d == 29) & ~leap, 28, d)
    month_start = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]").astype("datetime64[D]")
    return month_start.astype(np.int64) + d - 1


def luhn_check_digit(digits: np.ndarray) -> np.ndarray:
    """Check digit for rows of 9 digits (YYMMDDNNN), Luhn with weights 2,1,2,..."""
    weights = np.array([2, 1, 2, 1, 2, 1, 2, 1, 2])
    prod = digits * weights
    total = (prod // 10 + prod % 10).sum(axis=1)
    return (10 - total % 10) % 10


def _uuids(rng: np.random.Generator, n: int) -> pd.Series:
    """n random (version 4 layout) uuids as a pyarrow-backed string Series."""
    return pd.Series(_uuid_array(rng, n), dtype="str")


def _uuid_array(rng: np.random.Generator, n: int) -> pa.Array:
    """n random (version 4 layout) uuids as an Arrow string array."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    chars = hexdigits[nibbles]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8] = chars[:, 0:8]
    out[:, 9:13] = chars[:, 8:12]
    out[:, 14:18] = chars[:, 12:16]
    out[:, 19:23] = chars[:, 16:20]
    out[:, 24:36] = chars[:, 20:32]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))
    return arr.cast(pa.string())


def _local_to_utc_ns(naive_minutes: np.ndarray) -> np.ndarray:
    """Naive local times (datetime64[m]) in Europe/Stockholm -> UTC epoch nanoseconds."""
    idx = pd.DatetimeIndex(np.asarray(naive_minutes).astype("datetime64[m]"))
    return idx.tz_localize(TZ).as_unit("ns").asi8


def _aware(utc_ns: np.ndarray) -> pd.Series:
    """UTC epoch nanoseconds (int64, NaT allowed as iNaT) -> tz-aware Europe/Stockholm Series."""
    return pd.Series(pd.to_datetime(np.asarray(utc_ns, dtype=np.int64), unit="ns", utc=True)
                     .tz_convert(TZ))


def _naive_local(days: np.ndarray, minutes: np.ndarray) -> pd.Series:
    """Naive local timestamps from int days and minute of day (datetime64[us])."""
    values = (np.asarray(days, dtype=np.int64) * 1440 + np.asarray(minutes, dtype=np.int64))
    return pd.Series(values.astype("datetime64[m]").astype("datetime64[us]"))


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.maximum(np.asarray(hi, dtype=np.int64), lo)
    return lo + np.floor(rng.random(lo.shape) * (hi - lo + 1)).astype(np.int64)


def _weekday(days: np.ndarray) -> np.ndarray:
    return (np.asarray(days, dtype=np.int64) + 3) % 7  # Monday = 0


def _mostly_weekdays(rng: np.random.Generator, days: np.ndarray, hi: int,
                     share: float = 0.8) -> np.ndarray:
    """Move ``share`` of weekend dates to the next Monday (or back to Friday past ``hi``)."""
    wd = _weekday(days)
    move = (wd >= 5) & (rng.random(days.shape) < share)
    forward = days + (7 - wd)
    backward = days - (wd - 4)
    moved = np.where(forward <= hi, forward, backward)
    return np.where(move, moved, days)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _organisation_number(rng: np.random.Generator, prefix: str) -> str:
    body = prefix + "".join(str(int(v)) for v in rng.integers(0, 10, 9 - len(prefix)))
    check = int(luhn_check_digit(np.array([[int(c) for c in body]]))[0])
    return f"{body[:6]}-{body[6:]}{check}"


def written_personnummer(pnr12: np.ndarray, fmt: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Write 12-digit numbers as a case system or police export would.

    fmt: 0 'YYYYMMDD-NNNC', 1 'YYMMDD-NNNC', 2 'YYYYMMDDNNNC'.
    spacing: 0 none, 1 leading and trailing space, 2 a space before the last four digits,
    3 a trailing space.
    """
    out = []
    for p, f, s in zip(pnr12.tolist(), fmt.tolist(), spacing.tolist(), strict=True):
        if f == 0:
            text = f"{p[:8]}-{p[8:]}"
        elif f == 1:
            text = f"{p[2:8]}-{p[8:]}"
        else:
            text = p
        if s == 1:
            text = f" {text} "
        elif s == 2:
            text = f"{text[:-4]} {text[-4:]}"
        elif s == 3:
            text = f"{text} "
        out.append(text)
    return np.array(out, dtype=object)


def _corrupt_check_digit(text: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Replace the last digit of each written identifier by (digit + shift) mod 10."""
    out = []
    for t, k in zip(text.tolist(), shift.tolist(), strict=True):
        stripped = t.rstrip()
        tail = t[len(stripped):]
        out.append(f"{stripped[:-1]}{(int(stripped[-1]) + k) % 10}{tail}")
    return np.array(out, dtype=object)


# ---------------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """A municipality's reference tables (``<SAMVERKAN_HOME>/reference/ref_*.csv``), as text."""

    schools: pd.DataFrame    # school_unit_code, [school_unit_name, huvudman,] sspf_omrade_code,
    #                          stadsdelsomrade_code
    sspf: pd.DataFrame       # sspf_omrade_code, sspf_omrade_name, stadsdelsomrade_code
    districts: pd.DataFrame  # stadsdel_name, stadsdelsomrade_code, sspf_omrade_code ('' = none)
    areas: pd.DataFrame      # stadsdelsomrade_code, stadsdelsomrade_name
    offences: pd.DataFrame   # brottskod, brottsbenamning, brottskategori


def load_reference(reference_dir: Path | str) -> Reference:
    """The reference tables in ``reference_dir``; ``ref_brottskoder`` falls back to the
    product's default when the directory has none."""
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(reference_file(Path(reference_dir), name), dtype=str,
                           keep_default_na=False, encoding="utf-8")

    sspf = read("ref_sspf_omraden")
    schools = read("ref_skolenheter").merge(sspf[["sspf_omrade_code", "stadsdelsomrade_code"]],
                                            on="sspf_omrade_code", how="left")
    return Reference(schools=schools, sspf=sspf, districts=read("ref_stadsdelar"),
                     areas=read("ref_stadsdelsomraden"), offences=read("ref_brottskoder"))


def school_days(term_start: dt.date = TERM_START, term_end: dt.date = TERM_END) -> np.ndarray:
    """Lesson days (int days since epoch): weekdays, minus sportlov, påsklov and red days."""
    days = np.arange(_d(term_start), _d(term_end) + 1, dtype=np.int64)
    weeks = pd.DatetimeIndex(days.astype("datetime64[D]")).isocalendar().week.to_numpy()
    holidays = np.array([_d(h) for h in PUBLIC_HOLIDAYS], dtype=np.int64)
    keep = (_weekday(days) < 5) & ~np.isin(weeks, HOLIDAY_WEEKS) & ~np.isin(days, holidays)
    return days[keep]


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, seed: int, pupils: int, lessons_per_day: int,
                 municipality: Municipality = STOCKHOLM) -> None:
        if pupils < 1:
            raise ValueError("pupils must be at least 1")
        if not 1 <= lessons_per_day <= len(LESSON_STARTS_MINUTES):
            raise ValueError(f"lessons_per_day must be 1..{len(LESSON_STARTS_MINUTES)}")
        self.seed = seed
        self.n_pupils = pupils
        self.lessons_per_day = lessons_per_day
        streams = np.random.SeedSequence(seed).spawn(9)  # the first 8 as before: stable data
        (self.rng_org, self.rng_people, self.rng_school, self.rng_att, self.rng_police,
         self.rng_case, self.rng_ids, self.rng_names, self.rng_sst) = (
            np.random.default_rng(s) for s in streams)
        self.m = municipality
        self.ref = load_reference(municipality.reference_dir)
        self._check_profile()
        self.R = _d(TERM_END)
        self.H = _d(HISTORY_START)
        self.days = school_days()
        self.term_start_ns = int(_local_to_utc_ns(
            np.array([np.datetime64(TERM_START, "m") + np.timedelta64(6 * 60, "m")]))[0])
        self.ref_end_ns = int(_local_to_utc_ns(
            np.array([np.datetime64(TERM_END, "m") + np.timedelta64(23 * 60 + 59, "m")]))[0])

    def _check_profile(self) -> None:
        """The profile's district names and areas must be in its own reference."""
        m, ref = self.m, self.ref
        if not m.school_units:
            raise ValueError(f"{m.key}: the profile serves no school unit")
        if ref.sspf.empty:
            raise ValueError(f"{m.key}: ref_sspf_omraden lists no SSPF area")
        known = set(ref.districts["stadsdel_name"])
        areas = set(zip(ref.areas["stadsdelsomrade_code"], ref.areas["stadsdelsomrade_name"],
                        strict=True))
        unknown = set(m.case_districts) - areas
        if unknown:
            raise ValueError(f"{m.key}: case-system districts that are no (code, name) of "
                             f"ref_stadsdelsomraden: {sorted(unknown)}")
        if m.unknown_police_district in known:
            raise ValueError(f"{m.key}: {m.unknown_police_district!r} is in ref_stadsdelar")
        needed = set(ref.sspf["stadsdelsomrade_code"]) | set(m.other_areas)
        missing = needed - {a for a, _ in m.case_districts}
        if missing:
            raise ValueError(f"{m.key}: no case-system district name for {sorted(missing)}")

    # -- organisations -----------------------------------------------------------------------
    def organisations(self) -> pd.DataFrame:
        rng = self.rng_org
        m = self.m
        # the units SS 12000 serves; their SSPF area from ref_skolenheter (None: not listed)
        codes = [u.code for u in m.school_units]
        names = [u.name for u in m.school_units]
        owner = [u.huvudman for u in m.school_units]
        unit_sspf = dict(zip(self.ref.schools["school_unit_code"],
                             self.ref.schools["sspf_omrade_code"], strict=True))
        n_hm = 1 + len(m.independent_huvudman)
        ids = _uuids(self.rng_ids, n_hm + len(codes)).tolist()
        hm_numbers = [m.organisation_number] + [
            _organisation_number(rng, "556") for _ in m.independent_huvudman]
        hm_names = [m.huvudman_name, *m.independent_huvudman]
        modified = self.term_start_ns + (rng.random(n_hm + len(codes))
                                         * (self.ref_end_ns - self.term_start_ns) * 0.2)
        rows = []
        for h in range(n_hm):
            rows.append({"id": ids[h], "organisation_type": "Huvudman",
                         "display_name": hm_names[h], "organisation_number": hm_numbers[h],
                         "school_unit_code": None, "municipality_code": m.code,
                         "parent_organisation_id": None, "school_types": None})
        unreported = []
        for i, code in enumerate(codes):
            h = 0 if owner[i] is None else owner[i] + 1
            rows.append({"id": ids[n_hm + i], "organisation_type": "Skolenhet",
                         "display_name": names[i],
                         "organisation_number": hm_numbers[h] if h > 0 else None,
                         "school_unit_code": code, "municipality_code": m.code,
                         "parent_organisation_id": ids[h], "school_types": ["GR"]})
            unreported.append(m.independent_unreported[owner[i]] if owner[i] is not None
                              else float(rng.uniform(0.005, 0.025)))
        frame = pd.DataFrame(rows)
        frame["modified_at"] = _aware((modified // 1_000_000_000 * 1_000_000_000).astype(np.int64))
        self.unit_codes = np.array(codes)
        self.unit_sspf = np.array([unit_sspf.get(c) for c in codes], dtype=object)
        self.unit_unreported = np.array(unreported)
        return frame

    # -- persons -----------------------------------------------------------------------------
    def persons(self) -> pd.DataFrame:
        rng = self.rng_people
        n_p = self.n_pupils
        n_pre = round(n_p * 0.08)
        n_gym = round(n_p * 0.07)
        n_adult = round(n_p * 0.05)
        n = n_p + n_pre + n_gym + n_adult
        group = np.repeat(np.array([0, 1, 2, 3]), [n_p, n_pre, n_gym, n_adult])  # pupil, pre, gym, adult

        # pupils: school unit and grade
        n_units = len(self.unit_codes)
        weights = rng.uniform(0.6, 1.4, n_units)
        unit = rng.choice(n_units, size=n_p, p=weights / weights.sum())
        grade = rng.integers(1, 10, size=n_p)
        birth_year = 2019 - grade - (rng.random(n_p) < 0.03)
        jan1 = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
        pupil_birth = jan1 + rng.integers(0, 365, size=n_p)
        birth = np.concatenate([
            pupil_birth,
            _uniform_days(rng, np.full(n_pre, _d(dt.date(2020, 7, 1))),
                          np.full(n_pre, _d(dt.date(2025, 12, 31)))),
            _uniform_days(rng, np.full(n_gym, _d(dt.date(2008, 6, 13))),
                          np.full(n_gym, _d(dt.date(2009, 12, 31)))),
            _uniform_days(rng, np.full(n_adult, _d(dt.date(2000, 6, 13))),
                          np.full(n_adult, _d(dt.date(2008, 6, 12)))),
        ])

        # home area: an SSPF area code, or another stadsdelsområde code
        # (pupils of a unit missing from ref_skolenheter keep the drawn SSPF area)
        sspf_codes = self.ref.sspf["sspf_omrade_code"].to_numpy()
        home = rng.choice(sspf_codes, size=n).astype(object)
        own_school = rng.random(n_p) < 0.85
        mapped = np.array([s is not None for s in self.unit_sspf])
        home[:n_p] = np.where(own_school & mapped[unit], self.unit_sspf[unit], home[:n_p])
        elsewhere = (group > 0) & (rng.random(n) < 0.08)
        home[elsewhere] = rng.choice(np.array(self.m.other_areas), size=int(elsewhere.sum()))
        area_effect = self.m.area_effect
        default_effect = self.m.default_area_effect
        risk = rng.normal(size=n) + np.array([area_effect.get(h, default_effect) for h in home])

        sex_male = rng.random(n) < 0.5
        samord = rng.random(n) < 0.02
        y, m, d = _ymd(birth)
        serial = rng.integers(0, 100, size=n) * 10 + np.where(
            sex_male, rng.choice([1, 3, 5, 7, 9], size=n), rng.choice([0, 2, 4, 6, 8], size=n))
        for _ in range(50):  # make the numbers unique
            core = (y * 10000 + m * 100 + d + np.where(samord, 60, 0)) * 1000 + serial
            dup = pd.Series(core).duplicated().to_numpy()
            if not dup.any():
                break
            serial[dup] = rng.integers(0, 100, size=int(dup.sum())) * 10 + serial[dup] % 10
        else:  # pragma: no cover - needs an absurdly crowded birth date
            raise RuntimeError("could not draw unique personnummer")
        digits = np.stack([(core // 10 ** k) % 10 for k in range(8, -1, -1)], axis=1)
        check = luhn_check_digit(digits)
        pnr = np.char.add(np.char.zfill(core.astype(str), 11), check.astype(str))

        fk = Faker("sv_SE")
        fk.seed_instance(self.seed)
        male_pool = np.array(sorted({fk.first_name_male() for _ in range(600)}), dtype=object)
        female_pool = np.array(sorted({fk.first_name_female() for _ in range(600)}), dtype=object)
        last_pool = np.array(sorted({fk.last_name() for _ in range(800)}), dtype=object)
        rn = self.rng_names
        first = np.where(sex_male, male_pool[rn.integers(0, len(male_pool), n)],
                         female_pool[rn.integers(0, len(female_pool), n)])
        last = last_pool[rn.integers(0, len(last_pool), n)]

        protected = np.zeros(n, dtype=bool)
        protected[:n_p] = rng.random(n_p) < 0.01  # non-pupils: decided once the case system exists
        ss_ids = _uuids(self.rng_ids, n_p).to_numpy(dtype=object)
        ss12000_id = np.concatenate([ss_ids, np.full(n - n_p, None, dtype=object)])
        modified = self.term_start_ns + (rng.random(n) * (self.ref_end_ns - self.term_start_ns
                                                          - 6 * 3600 * 10**9))

        self.n = n
        self.group = group
        self.birth = birth
        self.home = home
        self.risk = risk
        self.protected = protected
        self.pupil_unit = unit
        self.pupil_grade = grade
        self.pnr = pnr
        self.first_names = first
        self.last_names = last
        self.marking_draw = rng.random(n)
        return pd.DataFrame({
            "person_key": np.arange(1, n + 1, dtype=np.int64),
            "pnr": pd.Series(pnr, dtype="str"),
            "is_samordningsnummer": samord,
            "birth_date": _date_objects(birth),
            "sex": np.where(sex_male, "Man", "Kvinna"),
            "first_name": pd.Series(first, dtype="str"),
            "last_name": pd.Series(last, dtype="str"),
            "protected": protected,
            "security_marking": "Ingen",
            "ss12000_id": ss12000_id,
            "modified_at": _aware((modified // 10**9 * 10**9).astype(np.int64)),
        })

    # -- enrolments, lessons, attendance -----------------------------------------------------
    def school(self, world: WorldDirectory) -> tuple[pd.DataFrame, pd.DataFrame, AttendanceParts]:
        rng = self.rng_school
        n_p = self.n_pupils
        days = self.days
        nd = len(days)
        L = self.lessons_per_day
        n_units = len(self.unit_codes)

        # enrolments: everyone from the start of the school year; movers, leavers, arrivals
        kind = rng.choice(4, size=n_p, p=[0.945, 0.03, 0.01, 0.015])  # stay, move, leave, arrive
        event_day = days[rng.integers(min(10, nd - 1), max(nd - 10, min(10, nd - 1) + 1), n_p)]
        e_pupil = np.arange(n_p)
        e_unit = self.pupil_unit.copy()
        e_start = np.full(n_p, _d(SCHOOL_YEAR_START), dtype=np.int64)
        e_end = np.full(n_p, -1, dtype=np.int64)  # -1: open
        e_start[kind == 3] = event_day[kind == 3]
        e_end[kind == 2] = event_day[kind == 2]
        e_end[kind == 1] = event_day[kind == 1] - 1
        movers = np.flatnonzero(kind == 1)
        new_unit = (self.pupil_unit[movers] + rng.integers(1, n_units, movers.size)) % n_units
        e_pupil = np.concatenate([e_pupil, movers])
        e_unit = np.concatenate([e_unit, new_unit])
        e_start = np.concatenate([e_start, event_day[movers]])
        e_end = np.concatenate([e_end, np.full(movers.size, -1, dtype=np.int64)])
        e_grade = self.pupil_grade[e_pupil]
        order = np.lexsort((e_start, e_pupil))
        e_pupil, e_unit, e_start, e_end, e_grade = (a[order] for a in
                                                   (e_pupil, e_unit, e_start, e_end, e_grade))
        enrolments = pd.DataFrame({
            "person_key": e_pupil.astype(np.int64) + 1,
            "school_unit_code": pd.Series(self.unit_codes[e_unit], dtype="str"),
            "school_year": e_grade.astype(np.int64),
            "school_type": "GR",
            "start_date": _date_objects(e_start),
            "end_date": _date_objects(np.where(e_end < 0, _NAT, e_end.astype("datetime64[D]"))),
        })

        # classes: school unit x grade x section (about 25 pupils per section)
        ug = e_unit * 10 + e_grade
        ug_codes, ug_inverse, ug_counts = np.unique(ug, return_inverse=True, return_counts=True)
        sections = np.maximum(1, np.ceil(ug_counts / 25).astype(np.int64))
        class_offset = np.concatenate([[0], np.cumsum(sections)[:-1]])
        e_class = class_offset[ug_inverse] + rng.integers(0, sections[ug_inverse])
        n_classes = int(sections.sum())
        class_unit = np.repeat(ug_codes // 10, sections)
        class_grade = np.repeat(ug_codes % 10, sections)

        # calendar events: class-major, then day, then lesson
        n_events = n_classes * nd * L
        ev_class = np.repeat(np.arange(n_classes), nd * L)
        ev_day_idx = np.tile(np.repeat(np.arange(nd), L), n_classes)
        ev_lesson = np.tile(np.arange(L), n_classes * nd)
        starts_min = np.array(LESSON_STARTS_MINUTES[:L])
        local_start = (days[ev_day_idx] * 1440 + starts_min[ev_lesson]).astype("datetime64[m]")
        start_ns = _local_to_utc_ns(local_start)
        end_ns = start_ns + LESSON_MINUTES * 60 * 10**9
        n_subjects = 6
        activity_ids = _uuids(self.rng_ids, n_classes * n_subjects).to_numpy()
        subject = (ev_day_idx * L + ev_lesson) % n_subjects
        ev_changed = rng.random(n_events) < 0.05
        created_ns = self.term_start_ns + np.int64(3600 * 10**9)
        ev_modified = np.where(
            ev_changed,
            created_ns + (rng.random(n_events) * np.maximum(start_ns - created_ns, 0)).astype(np.int64),
            created_ns)
        ev_modified = np.minimum(ev_modified // 10**9 * 10**9, start_ns)
        event_ids = _uuid_array(self.rng_ids, n_events)
        calendar_events = pd.DataFrame({
            "id": pd.Series(event_ids, dtype="str"),
            "activity_id": pd.Series(activity_ids[ev_class * n_subjects + subject], dtype="str"),
            "school_unit_code": pd.Series(self.unit_codes[class_unit[ev_class]], dtype="str"),
            "school_year": class_grade[ev_class].astype(np.int64),
            "start_time": _aware(start_ns),
            "end_time": _aware(end_ns),
            "modified_at": _aware(ev_modified),
        })

        # attendance records: one per enrolment per lesson of its class while enrolled,
        # generated and written one lesson day at a time
        ra = self.rng_att
        risk = self.risk[:n_p]
        # daily absence rate: log-normal in the risk score, with month and pupil-month noise
        base_rate = np.clip(0.03 * np.exp(0.95 * risk), 0.002, 0.75)
        day_month = _ymd(days)[1] - 1  # 0 = January
        season = np.array([1.0, 1.25, 1.1, 0.95, 0.9, 0.85, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
        month_noise = np.exp(ra.normal(0, 0.25, size=(n_p, 12)))
        rate_pm = np.clip(base_rate[:, None] * season[None, :] * month_noise, 0, 0.95)
        self.sst_cohort = self._sst_cohort(kind, base_rate)
        invalid_share = 0.05 + 0.55 * _sigmoid(2.0 * (risk - 1.5))
        partial_p = 0.01 + 0.05 * _sigmoid(risk - 1.0)
        self.base_absence_rate = base_rate

        d0 = np.searchsorted(days, e_start, side="left")
        d1 = np.searchsorted(days, np.where(e_end < 0, days[-1], e_end), side="right") - 1
        attendance_dir = world.path / "attendance"
        if attendance_dir.exists():
            shutil.rmtree(attendance_dir)
        attendance_dir.mkdir(parents=True)
        class_unrep = self.unit_unreported[class_unit]
        parts = []
        rows = 0
        for t in range(nd):
            table = self._attendance_day(t, days, month=int(day_month[t]), rate_pm=rate_pm,
                                         invalid_share=invalid_share, partial_p=partial_p,
                                         enrolled=np.flatnonzero((d0 <= t) & (t <= d1)),
                                         e_class=e_class, e_pupil=e_pupil,
                                         class_unrep=class_unrep, start_ns=start_ns,
                                         event_ids=event_ids)
            path = attendance_dir / f"part-{t:05d}.parquet"
            pq.write_table(table, path, row_group_size=PART_ROW_GROUP)
            parts.append(path)
            rows += table.num_rows
        attendances = AttendanceParts(world, tuple(parts), rows)
        return enrolments, calendar_events, attendances

    def _attendance_day(self, t: int, days: np.ndarray, *, month: int, rate_pm: np.ndarray,
                        invalid_share: np.ndarray, partial_p: np.ndarray, enrolled: np.ndarray,
                        e_class: np.ndarray, e_pupil: np.ndarray, class_unrep: np.ndarray,
                        start_ns: np.ndarray, event_ids: pa.Array) -> pa.Table:
        """The attendance records of lesson day ``t`` (PART_SCHEMA), drawn from a random
        stream of their own keyed by (seed, day): a day does not depend on the others."""
        n_p = self.n_pupils
        nd = len(days)
        L = self.lessons_per_day
        day = int(days[t])
        ra = np.random.default_rng(np.random.SeedSequence(self.seed,
                                                          spawn_key=(ATTENDANCE_STREAM, day)))
        # pupil-day draws: whole day absent, and whether such a day is invalid
        rate = rate_pm[:, month].copy()
        c_pupil, c_start, c_end, c_works = self.sst_cohort
        during = (c_start <= day) & (day <= c_end)
        after = day > c_end
        rate[c_pupil[during]] *= np.where(c_works[during], SST_RATE_DURING[0], SST_RATE_DURING[1])
        rate[c_pupil[after]] *= np.where(c_works[after], SST_RATE_AFTER[0], SST_RATE_AFTER[1])
        absent_day = ra.random(n_p) < np.clip(rate, 0, 0.95)
        invalid_day = ra.random(n_p) < invalid_share

        # records: enrolment-major, then lesson
        rec_enrol = np.repeat(enrolled, L)
        rec_lesson = np.tile(np.arange(L), enrolled.size)
        total = rec_enrol.size
        rec_class = e_class[rec_enrol]
        rec_event = rec_class * nd * L + t * L + rec_lesson
        rec_pupil = e_pupil[rec_enrol]
        # lesson draws: one per lesson of the day (class x lesson)
        n_classes = class_unrep.size
        unrep_lesson = ra.random((n_classes, L)) < class_unrep[:, None]
        bucket = ra.random((n_classes, L))
        delay_s = np.select(
            [bucket < 0.60, bucket < 0.85, bucket < 0.97],
            [ra.uniform(60, 3600, bucket.shape), ra.uniform(3600, 8 * 3600, bucket.shape),
             ra.uniform(86400, 3 * 86400, bucket.shape)],
            ra.uniform(3 * 86400, 10 * 86400, bucket.shape))
        delay_ns = (delay_s * 1e9).astype(np.int64) // 10**9 * 10**9

        whole = absent_day[rec_pupil]
        whole_invalid = invalid_day[rec_pupil]
        u = ra.random(total)
        partial = ~whole & (u < partial_p[rec_pupil])
        skip = partial & (ra.random(total) < 0.45)
        late_minutes = ra.integers(5, 31, size=total)
        late_valid = ra.random(total) < 0.3
        other = ~whole & ~partial & (u > 0.99)

        lesson_len = LESSON_MINUTES
        valid_abs = np.where(whole & ~whole_invalid, lesson_len, 0)
        valid_abs = np.where(partial & ~skip & late_valid, late_minutes, valid_abs)
        invalid_abs = np.where(whole & whole_invalid, lesson_len, 0)
        invalid_abs = np.where(skip, lesson_len, invalid_abs)
        invalid_abs = np.where(partial & ~skip & ~late_valid, late_minutes, invalid_abs)
        other_min = np.where(other, lesson_len, 0)

        # reporting: whole lessons unreported by school, single records, and late reporting
        end_ns = start_ns[rec_event] + LESSON_MINUTES * 60 * 10**9
        reported_ns = end_ns + delay_ns[rec_class, rec_lesson]
        is_reported = (~unrep_lesson[rec_class, rec_lesson] & (ra.random(total) >= 0.003)
                       & (reported_ns <= self.ref_end_ns))
        corrected = is_reported & (ra.random(total) < 0.03)
        corrected_ns = reported_ns + (ra.uniform(3600, 7 * 86400, total) * 1e9).astype(np.int64)
        corrected_ns = corrected_ns // 10**9 * 10**9
        modified_ns = np.where(corrected & (corrected_ns <= self.ref_end_ns), corrected_ns,
                               reported_ns)
        modified_ns = np.where(is_reported, modified_ns, end_ns)

        def minutes(values: np.ndarray) -> pa.Array:
            return pa.array(np.where(is_reported, values, 0).astype(np.int16))

        return pa.table({
            "id": _uuid_array(ra, total),
            "calendar_event_id": event_ids.take(pa.array(rec_event)),
            "person_key": pa.array(rec_pupil.astype(np.int64) + 1),
            "is_reported": pa.array(is_reported),
            "attendance_minutes": minutes(lesson_len - valid_abs - invalid_abs - other_min),
            "valid_absence_minutes": minutes(valid_abs),
            "invalid_absence_minutes": minutes(invalid_abs),
            "other_attendance_minutes": minutes(other_min),
            "reported_ns": pa.array(reported_ns, pa.int64(), mask=~is_reported),
            "modified_ns": pa.array(modified_ns, pa.int64()),
            "lesson_day": pa.array(np.full(total, day, np.int32)),
            "lesson_minutes": pa.array(np.full(total, lesson_len, np.int16)),
        }, schema=PART_SCHEMA)

    def _sst_cohort(self, kind: np.ndarray, base_rate: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pupil index, start day, end day, works) of the spring SST cohort, from its own
        random stream so that the rest of the municipality does not depend on it."""
        rng = self.rng_sst
        eligible = np.flatnonzero((kind == 0) & (base_rate >= SST_COHORT_MIN_RATE))
        k = min(eligible.size, round(self.n_pupils * SST_COHORT_SHARE))
        pupil = np.sort(rng.choice(eligible, size=k, replace=False))
        lo, hi = (_d(d) for d in SST_COHORT_START)
        start_days = np.arange(lo, hi + 1)
        start_days = start_days[_weekday(start_days) < 5]
        start = start_days[rng.integers(0, start_days.size, k)]
        end = start + rng.integers(SST_COHORT_DAYS[0], SST_COHORT_DAYS[1] + 1, k)
        works = rng.random(k) < SST_COHORT_SUCCESS
        return pupil, start, end, works

    # -- police ------------------------------------------------------------------------------
    def police(self) -> pd.DataFrame:
        rng = self.rng_police
        R, H = self.R, self.H
        offences = self.ref.offences
        birth, risk = self.birth, self.risk

        # suspect events per person (ages 12-17 mostly, some 18-25)
        from12 = _add_years(birth, 12)
        lo = np.maximum(from12, H)
        eligible_years = np.maximum(R - lo, 0) / 365.25
        adult_now = age_on(birth, np.full(self.n, R)) >= 18
        rate = np.where(adult_now, 0.025 * np.exp(1.0 * risk), 0.06 * np.exp(1.3 * risk))
        k = rng.poisson(rate * eligible_years)
        s_person = np.repeat(np.arange(self.n), k)
        s_day = _uniform_days(rng, lo[s_person], np.full(s_person.size, R))
        n_inc = s_person.size

        # offence and place per incident
        cats = np.array(list(_OFFENCE_CATEGORY_P))
        cat = rng.choice(cats, size=n_inc, p=np.array(list(_OFFENCE_CATEGORY_P.values())))
        code = np.empty(n_inc, dtype=object)
        for c in cats:
            sel = cat == c
            pool = offences.loc[offences["brottskategori"] == c, "brottskod"].to_numpy()
            code[sel] = rng.choice(pool, size=int(sel.sum()))

        # victim-only incidents (unknown or unidentified suspect)
        n_vo = round(n_inc * 0.5)
        vo_cat = rng.choice(np.array(["våld", "rån", "hot", "stöld"]), size=n_vo,
                            p=[0.4, 0.2, 0.25, 0.15])
        vo_code = np.empty(n_vo, dtype=object)
        for c in np.unique(vo_cat):
            sel = vo_cat == c
            pool = offences.loc[offences["brottskategori"] == c, "brottskod"].to_numpy()
            vo_code[sel] = rng.choice(pool, size=int(sel.sum()))
        vo_day = _uniform_days(rng, np.full(n_vo, H), np.full(n_vo, R))

        inc_day = np.concatenate([s_day, vo_day])
        inc_code = np.concatenate([code, vo_code])
        inc_cat = np.concatenate([cat, vo_cat])
        n_all = inc_day.size

        rows_inc: list[np.ndarray] = []
        rows_person: list[np.ndarray] = []
        rows_role: list[np.ndarray] = []
        rows_inc.append(np.arange(n_inc))
        rows_person.append(s_person)
        rows_role.append(np.full(n_inc, "Misstänkt", dtype=object))

        w_sus = np.exp(1.3 * risk)
        w_sus = w_sus / w_sus.sum()
        co = np.flatnonzero(rng.random(n_inc) < 0.25)
        co_person = rng.choice(self.n, size=co.size, p=w_sus)
        co_age = age_on(birth[co_person], inc_day[co])
        ok = (co_age >= 12) & (co_age <= 25) & (co_person != s_person[co])
        rows_inc.append(co[ok])
        rows_person.append(co_person[ok])
        rows_role.append(np.full(int(ok.sum()), "Misstänkt", dtype=object))

        w_vic = np.exp(0.4 * risk)
        w_vic = w_vic / w_vic.sum()
        needs_victim = np.flatnonzero(np.isin(inc_cat, _PERSON_DIRECTED)
                                      & ((np.arange(n_all) >= n_inc)
                                         | (rng.random(n_all) < 0.7)))
        v_person = rng.choice(self.n, size=needs_victim.size, p=w_vic)
        v_age = age_on(birth[v_person], inc_day[needs_victim])
        suspect_of = np.full(n_all, -1)
        suspect_of[:n_inc] = s_person
        ok = (v_age >= 6) & (v_age <= 25) & (v_person != suspect_of[needs_victim])
        if co.size:
            co_of = np.full(n_all, -1)
            co_of[co] = co_person
            ok &= v_person != co_of[needs_victim]
        rows_inc.append(needs_victim[ok])
        rows_person.append(v_person[ok])
        rows_role.append(np.full(int(ok.sum()), "Målsägande", dtype=object))

        r_inc = np.concatenate(rows_inc)
        r_person = np.concatenate(rows_person).astype(np.int64)
        r_role = np.concatenate(rows_role)
        # incidents whose victim was rejected and that have no suspect row are dropped
        # unidentified persons (blank Personnummer): at most one per incident and role
        has_row = np.zeros(n_all, dtype=bool)
        has_row[r_inc] = True
        blank_inc = np.flatnonzero(has_row & (rng.random(n_all) < 0.012))
        r_inc = np.concatenate([r_inc, blank_inc])
        r_person = np.concatenate([r_person, np.full(blank_inc.size, -1)])
        r_role = np.concatenate([r_role, np.full(blank_inc.size, "Misstänkt", dtype=object)])

        # place: district of the first person's home area, sometimes elsewhere or blank
        districts = self.ref.districts
        # district names usable as offence locations: not a stadsdelsområde's own name when
        # that area lists other districts and the name belongs to no SSPF area
        area_name = dict(zip(self.ref.areas["stadsdelsomrade_code"],
                             self.ref.areas["stadsdelsomrade_name"], strict=True))
        per_area = districts.groupby("stadsdelsomrade_code")["stadsdel_name"].transform("size")
        umbrella = ((districts["stadsdel_name"] == districts["stadsdelsomrade_code"].map(area_name))
                    & (per_area > 1) & (districts["sspf_omrade_code"] == ""))
        street = districts[~umbrella]
        by_sspf = {c: g["stadsdel_name"].to_numpy() for c, g in
                   street[street["sspf_omrade_code"] != ""].groupby("sspf_omrade_code")}
        # people outside every SSPF area: a district of their area outside the SSPF areas
        by_area = {c: g["stadsdel_name"].to_numpy() for c, g in street.groupby("stadsdelsomrade_code")}
        by_area.update({c: g["stadsdel_name"].to_numpy() for c, g in
                        street[street["sspf_omrade_code"] == ""].groupby("stadsdelsomrade_code")})
        all_names = street["stadsdel_name"].to_numpy()
        first_person = np.full(n_all, -1)
        order = np.argsort(r_inc, kind="stable")
        firsts = np.unique(r_inc[order], return_index=True)
        first_person[firsts[0]] = r_person[order][firsts[1]]
        u = rng.random(n_all)
        district = np.empty(n_all, dtype=object)
        pick = rng.random(n_all)
        for i in range(n_all):  # incidents: thousands, not millions
            p = first_person[i]
            h = self.home[p] if p >= 0 else None
            if u[i] < 0.05:
                district[i] = ""
            elif u[i] < 0.065:
                district[i] = self.m.unknown_police_district
            elif u[i] < 0.18 or h is None:
                district[i] = all_names[int(pick[i] * len(all_names))]
            else:
                pool = by_sspf.get(h)
                if pool is None:
                    pool = by_area.get(h, all_names)
                district[i] = pool[int(pick[i] * len(pool))]

        lag_u = rng.random(n_all)
        lag = np.select([lag_u < 0.55, lag_u < 0.85], [0, rng.integers(1, 4, n_all)],
                        rng.integers(4, 31, n_all))
        anm_day = inc_day + lag
        file_day = anm_day + np.where(rng.random(n_all) < 0.8, 1, rng.integers(2, 5, n_all))
        delivered = file_day <= R
        base_minute = rng.integers(8 * 60, 22 * 60, n_all)
        diarie_no = rng.choice(np.arange(100000, 999999), size=n_all, replace=False)
        anm_year = _ymd(anm_day)[0]
        diarie = np.array([f"5000-K{no}-{y % 100:02d}" for no, y in
                           zip(diarie_no.tolist(), anm_year.tolist(), strict=True)], dtype=object)

        keep = delivered[r_inc]
        r_inc, r_person, r_role = r_inc[keep], r_person[keep], r_role[keep]
        n_rows = r_inc.size
        known = r_person >= 0
        # the way each person's number is written in this incident (kept in later versions)
        fmt = rng.choice(3, size=n_rows, p=[0.45, 0.25, 0.30])
        spacing = np.where(rng.random(n_rows) < 0.05, rng.integers(1, 4, n_rows), 0)
        pnr_known = np.where(known, self.pnr[np.maximum(r_person, 0)], "000000000000")
        written = written_personnummer(pnr_known, fmt, spacing)
        corrupt = known & (rng.random(n_rows) < 0.01)
        written[corrupt] = _corrupt_check_digit(written[corrupt],
                                                rng.integers(1, 10, int(corrupt.sum())))
        written[~known] = ""
        age_at = np.where(known, age_on(self.birth[np.maximum(r_person, 0)], inc_day[r_inc]),
                          rng.integers(14, 20, n_rows))
        code_to_name = dict(zip(offences["brottskod"], offences["brottsbenamning"], strict=True))

        base = pd.DataFrame({
            "file_day": file_day[r_inc],
            "person_key": np.where(known, r_person + 1, -1),
            "identifier_valid": known & ~corrupt,
            "Diarienummer": diarie[r_inc],
            "brott_day": inc_day[r_inc],
            "anm_day": anm_day[r_inc],
            "Brottskod": inc_code[r_inc],
            "Stadsdel": district[r_inc],
            "Personnummer": written,
            "Roll": r_role,
            "Ålder": age_at.astype(np.int64),
            "Status": "Aktiv",
            "changed_min": anm_day[r_inc] * 1440 + base_minute[r_inc],
            "_fmt": fmt,
            "_pnr": pnr_known,
        })
        base = base.sort_values(["file_day", "Diarienummer", "Roll", "person_key"],
                                kind="stable").reset_index(drop=True)
        versions = [base]

        # corrections: whole incidents re-delivered with a changed district, code or date
        incidents = base["Diarienummer"].unique()
        corr_inc = incidents[rng.random(incidents.size) < 0.06]
        corr = base[base["Diarienummer"].isin(corr_inc)].copy()
        if not corr.empty:
            per_inc = pd.DataFrame({"Diarienummer": corr_inc,
                                    "shift": rng.integers(3, 91, corr_inc.size),
                                    "what": rng.random(corr_inc.size),
                                    "new_code": rng.choice(offences["brottskod"].to_numpy(),
                                                           corr_inc.size),
                                    "new_district": rng.choice(all_names, corr_inc.size),
                                    "date_shift": rng.integers(1, 6, corr_inc.size),
                                    "minute": rng.integers(7 * 60, 20 * 60, corr_inc.size)})
            corr = corr.merge(per_inc, on="Diarienummer", how="left")
            corr["file_day"] = corr["file_day"] + corr["shift"]
            corr["changed_min"] = (corr["file_day"] - 1) * 1440 + corr["minute"]
            what = corr["what"]
            new_code = corr["new_code"].where(corr["new_code"] != corr["Brottskod"],
                                              offences["brottskod"].iloc[0])
            corr["Stadsdel"] = np.where(what < 0.45, corr["new_district"], corr["Stadsdel"])
            corr["Brottskod"] = np.where((what >= 0.45) & (what < 0.85), new_code, corr["Brottskod"])
            shifted = np.maximum(corr["brott_day"] - corr["date_shift"], H)
            corr["brott_day"] = np.where(what >= 0.85, shifted, corr["brott_day"])
            # sometimes the same (valid) number is written differently in the correction
            reformat = corr["identifier_valid"] & (rng.random(len(corr)) < 0.2)
            if reformat.any():
                corr.loc[reformat, "Personnummer"] = written_personnummer(
                    corr.loc[reformat, "_pnr"].to_numpy(),
                    (corr.loc[reformat, "_fmt"].to_numpy() + 1) % 3,
                    np.zeros(int(reformat.sum()), dtype=np.int64))
            corr = corr[corr["file_day"] <= R][base.columns]
            versions.append(corr)

        def latest() -> pd.DataFrame:
            allv = pd.concat(versions, ignore_index=True)
            return allv.sort_values("changed_min", kind="stable").drop_duplicates(
                ["Diarienummer", "person_key", "Roll"], keep="last")

        # cancellations of single rows, some re-activated later
        cur = latest()
        canc = cur[rng.random(len(cur)) < 0.03].copy()
        canc["file_day"] = canc["file_day"] + rng.integers(2, 60, len(canc))
        canc["changed_min"] = (canc["file_day"] - 1) * 1440 + rng.integers(7 * 60, 20 * 60,
                                                                           len(canc))
        canc["Status"] = "Makulerad"
        canc = canc[canc["file_day"] <= R]
        versions.append(canc)
        react = canc[rng.random(len(canc)) < 0.15].copy()
        react["file_day"] = react["file_day"] + rng.integers(2, 30, len(react))
        react["changed_min"] = (react["file_day"] - 1) * 1440 + rng.integers(7 * 60, 20 * 60,
                                                                             len(react))
        react["Status"] = "Aktiv"
        versions.append(react[react["file_day"] <= R])

        # identical re-deliveries (a file sent twice)
        allv = pd.concat(versions, ignore_index=True)
        dup = allv[rng.random(len(allv)) < 0.01].copy()
        dup["file_day"] = dup["file_day"] + rng.integers(1, 6, len(dup))
        versions.append(dup[dup["file_day"] <= R])

        rows = pd.concat(versions, ignore_index=True)
        rows = rows.sort_values(["file_day", "changed_min", "Diarienummer", "Roll", "person_key"],
                                kind="stable").reset_index(drop=True)
        rows["Ålder"] = np.where(rows["person_key"] > 0,
                                 age_on(self.birth[np.maximum(rows["person_key"].to_numpy() - 1, 0)],
                                        rows["brott_day"].to_numpy()),
                                 rows["Ålder"])
        files = np.unique(rows["file_day"].to_numpy())
        enc_pick = rng.random(files.size) < 0.55
        if files.size >= 2 and enc_pick.all():
            enc_pick[-1] = False
        if files.size >= 2 and not enc_pick.any():
            enc_pick[0] = True
        encoding = dict(zip(files.tolist(), np.where(enc_pick, "utf-8-sig", "cp1252").tolist(),
                            strict=True))
        self.police_suspicions = rows  # used by the case system (Polis reports, SIG)
        out = pd.DataFrame({
            "file_date": _date_objects(rows["file_day"].to_numpy()),
            "file_encoding": rows["file_day"].map(encoding).astype("str"),
            "person_key": pd.array(np.where(rows["person_key"] > 0, rows["person_key"], 0),
                                   dtype="Int64"),
            "identifier_valid": rows["identifier_valid"].to_numpy(dtype=bool),
            "Diarienummer": rows["Diarienummer"].astype("str"),
            "Brottsdatum": _date_objects(rows["brott_day"].to_numpy()),
            "Anmälningsdatum": _date_objects(rows["anm_day"].to_numpy()),
            "Brottskod": rows["Brottskod"].astype("str"),
            "Brottsbenämning": rows["Brottskod"].map(code_to_name).astype("str"),
            "Kommun": self.m.name,
            "Stadsdel": rows["Stadsdel"].astype("str"),
            "Personnummer": rows["Personnummer"].astype("str"),
            "Roll": rows["Roll"].astype("str"),
            "Ålder": rows["Ålder"].astype(np.int64),
            "Status": rows["Status"].astype("str"),
            "Senast ändrad": pd.Series(rows["changed_min"].to_numpy(dtype=np.int64)
                                       .astype("datetime64[m]").astype("datetime64[us]")),
        })
        out.loc[rows["person_key"].to_numpy() <= 0, "person_key"] = pd.NA
        return out

    # -- case system -------------------------------------------------------------------------
    def case_system(self) -> dict[str, pd.DataFrame]:
        rng = self.rng_case
        R, H = self.R, self.H
        n = self.n
        birth, risk, group = self.birth, self.risk, self.group

        # reports over the history: rate per year by age group and risk
        age_now = age_on(birth, np.full(n, R))
        rate = np.select([group == 1, age_now >= 18], [0.035 * np.exp(1.0 * risk),
                                                        0.03 * np.exp(0.8 * risk)],
                         0.05 * np.exp(1.1 * risk))
        lo = np.maximum(H, birth + 14)
        years = np.maximum(R - lo, 0) / 365.25
        k = rng.poisson(rate * years)
        a_person = np.repeat(np.arange(n), k)
        a_day = _mostly_weekdays(rng, _uniform_days(rng, lo[a_person], np.full(a_person.size, R)), R)
        a_day = np.maximum(a_day, lo[a_person])
        a_police = np.zeros(a_person.size, dtype=bool)

        # police-triggered reports about children suspected or victimised
        pol = self.police_suspicions
        pol = pol[(pol["person_key"] > 0) & (pol["Status"] == "Aktiv")].drop_duplicates(
            ["Diarienummer", "person_key", "Roll"])
        pk = pol["person_key"].to_numpy() - 1
        child = age_on(birth[pk], pol["anm_day"].to_numpy()) < 18
        trig = child & (rng.random(pk.size) < 0.3)
        t_day = pol["anm_day"].to_numpy()[trig] + rng.integers(0, 6, int(trig.sum()))
        ok = t_day <= R
        a_person = np.concatenate([a_person, pk[trig][ok]])
        a_day = np.concatenate([a_day, t_day[ok]])
        a_police = np.concatenate([a_police, np.ones(int(ok.sum()), dtype=bool)])

        m = a_person.size
        age_at = age_on(birth[a_person], a_day)
        band = np.select([age_at < 6, age_at < 16, age_at < 18], [0, 1, 2], 3)
        cum = _REPORTER_P.cumsum(axis=1)
        reporter = _REPORTERS[(rng.random(m)[:, None] > cum[band]).sum(axis=1).clip(0, 7)]
        reporter = np.where(a_police, "Polis", reporter)
        u = rng.random(m)
        typ = np.where(age_at < 18,
                       np.select([u < 0.88, u < 0.95], ["Anmälan", "Ansökan"], "Övrigt"),
                       np.select([u < 0.05, u < 0.80], ["Anmälan", "Ansökan"], "Övrigt"))
        typ = np.where(a_police & (age_at < 18), "Anmälan", typ)
        anm = typ == "Anmälan"
        u = rng.random(m)
        skydd = np.where(anm & (u < 0.85), a_day, np.where(anm & (u < 0.93), a_day + 1, -1))
        skydd = np.where(skydd > R, -1, skydd)

        # förhandsbedömning: most within 14 days, some late, a few never decided
        u = rng.random(m)
        delay = np.select([u < 0.80, u < 0.92, u < 0.97],
                          [rng.integers(0, 15, m), rng.integers(15, 31, m),
                           rng.integers(31, 61, m)], 10**6)
        delay = np.where(typ == "Anmälan", delay, 0)
        fb = a_day + delay
        pending = fb > R
        p_open = _sigmoid(-0.9 + 0.8 * risk[a_person])
        u = rng.random(m)
        beslut = np.select([u < p_open, u < p_open + 0.04], ["Inleda utredning", "Överförd"],
                           "Inte inleda utredning").astype(object)
        beslut = np.where(typ == "Ansökan", np.where(u < 0.8, "Inleda utredning",
                                                     "Inte inleda utredning"), beslut)
        beslut = np.where(typ == "Övrigt", np.where(u < 0.3, "Överförd",
                                                    "Inte inleda utredning"), beslut)
        beslut = np.where(pending, None, beslut)
        fb = np.where(pending, -1, fb)

        home = self.home[a_person]
        # stadsdel: the district handling the matter, i.e. the stadsdelsområde (its
        # stadsdelsnämnd) where the child lives: the SSPF area's stadsdelsområde, or the home
        # area itself (outside every SSPF area), written by its name as the case system
        # holds it (Skärholmen, Enskede-Årsta-Vantör; in Malmö the stadsområde). Never a
        # neighbourhood: the case system does not know which SSPF area a child belongs to.
        sspf_area = dict(zip(self.ref.sspf["sspf_omrade_code"],
                             self.ref.sspf["stadsdelsomrade_code"], strict=True))
        case_district = self.m.case_district_by_area
        home_area = np.array([sspf_area.get(h, h) for h in home], dtype=object)
        # drawn as before (a random handling district for 7 %), no longer used: the handling
        # district follows the home area; the draws keep the rest of the stream unchanged
        other = rng.random(m) < 0.07
        rng.choice(np.array(list(case_district)), int(other.sum()))
        stadsdel = np.array([case_district[a] for a in home_area], dtype=object)

        last_day = np.maximum.reduce([a_day, skydd, fb])
        order = np.lexsort((a_person, a_day))
        akt = pd.DataFrame({
            "person": a_person, "inkom": a_day, "typ": typ, "anmalare_kategori": reporter,
            "skydd": skydd, "fb": fb, "beslut": beslut, "stadsdel": stadsdel,
            "changed_min": last_day * 1440 + rng.integers(8 * 60, 17 * 60, m),
        }).iloc[order].reset_index(drop=True)
        akt["aktualisering_id"] = np.arange(50001, 50001 + len(akt))

        # investigations
        start_inv = akt[akt["beslut"] == "Inleda utredning"]
        u_n = len(start_inv)
        u = rng.random(u_n)
        duration = np.select([u < 0.70, u < 0.90], [rng.integers(30, 121, u_n),
                                                     rng.integers(121, 181, u_n)],
                             rng.integers(181, 241, u_n))
        utr = pd.DataFrame({"person": start_inv["person"].to_numpy(),
                            "aktualisering_id": start_inv["aktualisering_id"].to_numpy(),
                            "start": start_inv["fb"].to_numpy()})
        # a few investigations opened without a registered matter
        candidates = np.unique(a_person)
        own = (rng.choice(candidates, size=max(1, round(u_n * 0.03))) if candidates.size
               else np.array([], dtype=np.int64))
        own_start = _uniform_days(rng, np.maximum(H, birth[own] + 30), np.full(own.size, R))
        utr = pd.concat([utr, pd.DataFrame({"person": own, "aktualisering_id": -1,
                                            "start": own_start})], ignore_index=True)
        u_n = len(utr)
        u = rng.random(u_n)
        duration = np.concatenate([duration, rng.integers(30, 150, u_n - duration.size)])
        end = utr["start"].to_numpy() + duration
        closed = end <= R
        p_granted = 0.25 + 0.35 * _sigmoid(risk[utr["person"].to_numpy()])
        resultat = np.select([u < p_granted, u < 0.92], ["Insats beviljad", "Ingen insats"],
                             "Avslutad utan beslut").astype(object)
        utr["end"] = np.where(closed, end, -1)
        utr["resultat"] = np.where(closed, resultat, None)
        utr["changed_min"] = np.maximum(utr["start"], utr["end"]) * 1440 + rng.integers(
            8 * 60, 17 * 60, u_n)
        utr = utr.sort_values(["start", "person"], kind="stable").reset_index(drop=True)
        utr["utredning_id"] = np.arange(70001, 70001 + len(utr))

        # interventions from granted investigations, SST for absent pupils, SIG for repeat suspects
        granted = utr[utr["resultat"] == "Insats beviljad"]
        g_n = len(granted)
        g_person = granted["person"].to_numpy()
        g_start = granted["end"].to_numpy() + rng.integers(0, 22, g_n)
        g_age = age_on(birth[g_person], g_start)
        u = rng.random(g_n)
        young = g_age < 6
        g_type = np.where(
            young,
            np.select([u < 0.3, u < 0.8, u < 0.95], ["KF", "OV", "PLAC_FH"], "KP"),
            np.select([u < 0.15, u < 0.35, u < 0.45, u < 0.70, u < 0.82, u < 0.92, u < 0.97],
                      ["SST", "KP", "KF", "OV", "PLAC_FH", "PLAC_HVB", "SIG"],
                      np.where(g_age >= 12, "PLAC_SIS", "PLAC_HVB"))).astype(object)
        g_type = np.where((g_type == "SIG") & ((g_age < 12) | (g_age > 17)), "OV", g_type)
        g_type = np.where((g_type == "SST") & (group[g_person] != 0), "KP", g_type)

        pupils = np.arange(self.n_pupils)
        sst_p = pupils[(self.base_absence_rate >= 0.10) & (rng.random(pupils.size) < 0.35)]
        sst_start = _uniform_days(rng, np.full(sst_p.size, _d(dt.date(2025, 8, 25))),
                                  np.full(sst_p.size, R - 7))

        sus = self.police_suspicions
        sus = sus[(sus["person_key"] > 0) & (sus["Roll"] == "Misstänkt")].drop_duplicates(
            ["Diarienummer", "person_key"]).sort_values("brott_day")
        sus = sus.assign(nth=sus.groupby("person_key").cumcount())
        second = sus[sus["nth"] == 1]
        sp = second["person_key"].to_numpy() - 1
        sig_age = age_on(birth[sp], second["brott_day"].to_numpy())
        sig_sel = (sig_age >= 12) & (sig_age <= 17) & (rng.random(sp.size) < 0.4)
        sig_p = sp[sig_sel]
        sig_start = second["brott_day"].to_numpy()[sig_sel] + rng.integers(7, 45, sig_p.size)

        i_person = np.concatenate([g_person, sst_p, sig_p])
        i_type = np.concatenate([g_type, np.full(sst_p.size, "SST", dtype=object),
                                 np.full(sig_p.size, "SIG", dtype=object)])
        i_start = np.concatenate([g_start, sst_start, sig_start])
        keep = i_start <= R
        i_person, i_type, i_start = i_person[keep], i_type[keep], i_start[keep]
        i_n = i_person.size
        placement = np.char.startswith(i_type.astype(str), "PLAC_")
        u = rng.random(i_n)
        dur = np.select([placement, i_type == "SST"],
                        [rng.integers(120, 731, i_n), rng.integers(42, 99, i_n)],
                        rng.integers(60, 366, i_n))
        planned = np.where(placement, i_start + rng.integers(180, 731, i_n),
                           np.where(u < 0.5, i_start + rng.integers(60, 366, i_n), -1))
        i_end = i_start + dur
        ended = i_end <= R
        reason_place = np.select([u < 0.50, u < 0.60, u < 0.75, u < 0.85],
                                 ["Återförening med vårdnadshavare", "Flytt", "Annan", "Avbruten"],
                                 "Mål uppnått")
        reason_other = np.select([u < 0.55, u < 0.75, u < 0.85], ["Mål uppnått", "Avbruten", "Flytt"],
                                 "Annan")
        ins = pd.DataFrame({
            "person": i_person, "insatstyp": i_type, "start": i_start,
            "end": np.where(ended, i_end, -1), "planned": planned,
            "avslutsorsak": np.where(ended, np.where(placement, reason_place, reason_other), None),
        })
        ins["changed_min"] = np.maximum(ins["start"], ins["end"]) * 1440 + rng.integers(
            8 * 60, 17 * 60, i_n)
        # the spring SST cohort (its absence was shaped in school()), ended by R
        c_pupil, c_start, c_end, c_works = self.sst_cohort
        rs = self.rng_sst
        c_reason = np.where(c_works, "Mål uppnått",
                            np.where(rs.random(c_pupil.size) < 0.5, "Avbruten", "Annan"))
        cohort = pd.DataFrame({
            "person": c_pupil, "insatstyp": "SST", "start": c_start, "end": c_end,
            "planned": c_start + 35, "avslutsorsak": c_reason.astype(object),
            "changed_min": c_end * 1440 + rs.integers(8 * 60, 17 * 60, c_pupil.size),
        })
        ins = pd.concat([ins, cohort[ins.columns]], ignore_index=True)
        ins = ins.sort_values(["start", "person"], kind="stable").reset_index(drop=True)
        ins["insats_id"] = np.arange(90001, 90001 + len(ins))

        # clients: everyone with a matter, an investigation or an intervention
        persons = np.unique(np.concatenate([akt["person"], utr["person"], ins["person"]]))
        persons = persons[rng.permutation(persons.size)]
        kl = pd.DataFrame({"person": persons, "klient_id": np.arange(10001, 10001 + persons.size)})
        first_seen = pd.concat([akt[["person", "inkom"]].rename(columns={"inkom": "d"}),
                                utr[["person", "start"]].rename(columns={"start": "d"}),
                                ins[["person", "start"]].rename(columns={"start": "d"})]
                               ).groupby("person")["d"].min()
        kl["first"] = kl["person"].map(first_seen).to_numpy()

        # protected identity for ~1 % of the non-pupil clients (pupils were decided earlier)
        non_pupil = kl["person"].to_numpy() >= self.n_pupils
        newly_protected = kl["person"].to_numpy()[non_pupil & (rng.random(len(kl)) < 0.01)]
        self.protected[newly_protected] = True
        kp = kl["person"].to_numpy()
        prot = self.protected[kp]
        fmt = rng.choice(3, size=len(kl), p=[0.40, 0.25, 0.35])
        spacing = np.where(rng.random(len(kl)) < 0.06, rng.integers(1, 4, len(kl)), 0)
        written = written_personnummer(self.pnr[kp], fmt, spacing)
        u = rng.random(len(kl))
        bad = ~prot & (u < 0.01)
        blank = bad & (u < 0.003)
        wrong = bad & ~blank
        written[wrong] = _corrupt_check_digit(written[wrong], rng.integers(1, 10, int(wrong.sum())))
        written[blank] = np.where(rng.random(int(blank.sum())) < 0.5, "", None)
        later = np.minimum(kl["first"].to_numpy() + rng.integers(0, 200, len(kl)), R)
        klient = pd.DataFrame({
            "klient_id": kl["klient_id"].to_numpy(dtype=np.int64),
            "person_key": (kp + 1).astype(np.int64),
            "personnummer": written,
            "identifier_valid": ~bad,
            "fornamn": pd.Series(self.first_names[kp], dtype="str"),
            "efternamn": pd.Series(self.last_names[kp], dtype="str"),
            "skyddad_identitet": prot,
            "andrad_tid": _naive_local(later, rng.integers(8 * 60, 17 * 60, len(kl))),
        }).sort_values("klient_id").reset_index(drop=True)
        kid = dict(zip(kp.tolist(), kl["klient_id"].tolist(), strict=True))

        def opt_dates(values: np.ndarray) -> np.ndarray:
            v = np.asarray(values, dtype=np.int64)
            return _date_objects(np.where(v < 0, _NAT, v.astype("datetime64[D]")))

        aktualisering = pd.DataFrame({
            "aktualisering_id": akt["aktualisering_id"].to_numpy(dtype=np.int64),
            "klient_id": akt["person"].map(kid).to_numpy(dtype=np.int64),
            "inkom_datum": _date_objects(akt["inkom"].to_numpy()),
            "typ": akt["typ"].astype("str"),
            "anmalare_kategori": akt["anmalare_kategori"].astype("str"),
            "skyddsbedomning_datum": opt_dates(akt["skydd"]),
            "forhandsbedomning_datum": opt_dates(akt["fb"]),
            "beslut": akt["beslut"].to_numpy(dtype=object),
            "stadsdel": akt["stadsdel"].astype("str"),
            "andrad_tid": pd.Series(akt["changed_min"].to_numpy(dtype=np.int64)
                                    .astype("datetime64[m]").astype("datetime64[us]")),
        })
        utredning = pd.DataFrame({
            "utredning_id": utr["utredning_id"].to_numpy(dtype=np.int64),
            "klient_id": utr["person"].map(kid).to_numpy(dtype=np.int64),
            "aktualisering_id": pd.array(np.where(utr["aktualisering_id"] < 0, 0,
                                                  utr["aktualisering_id"]), dtype="Int64"),
            "startdatum": _date_objects(utr["start"].to_numpy()),
            "avslutsdatum": opt_dates(utr["end"]),
            "resultat": utr["resultat"].to_numpy(dtype=object),
            "andrad_tid": pd.Series(utr["changed_min"].to_numpy(dtype=np.int64)
                                    .astype("datetime64[m]").astype("datetime64[us]")),
        })
        utredning.loc[utr["aktualisering_id"].to_numpy() < 0, "aktualisering_id"] = pd.NA
        insats = pd.DataFrame({
            "insats_id": ins["insats_id"].to_numpy(dtype=np.int64),
            "klient_id": ins["person"].map(kid).to_numpy(dtype=np.int64),
            "insatstyp": ins["insatstyp"].astype("str"),
            "startdatum": _date_objects(ins["start"].to_numpy()),
            "slutdatum": opt_dates(ins["end"]),
            "planerat_slutdatum": opt_dates(ins["planned"]),
            "avslutsorsak": ins["avslutsorsak"].to_numpy(dtype=object),
            "andrad_tid": pd.Series(ins["changed_min"].to_numpy(dtype=np.int64)
                                    .astype("datetime64[m]").astype("datetime64[us]")),
        })

        # weeding: old matters that led nowhere, and old finished interventions
        def pick_some(candidates: np.ndarray, share: float) -> np.ndarray:
            chosen = np.zeros(candidates.size, dtype=bool)
            idx = np.flatnonzero(candidates)
            if idx.size:
                k = max(1, round(idx.size * share))
                chosen[rng.choice(idx, size=k, replace=False)] = True
            return chosen

        weed_akt = pick_some(((akt["inkom"] < _d(dt.date(2025, 1, 1)))
                              & (akt["beslut"] == "Inte inleda utredning")).to_numpy(), 0.05)
        ins_end = ins["end"].to_numpy()
        weed_ins = pick_some((ins_end >= 0) & (ins_end < _d(dt.date(2025, 7, 1))), 0.05)
        g_akt = akt.loc[weed_akt, ["aktualisering_id", "inkom"]].to_numpy()
        g_ins = ins.loc[weed_ins, ["insats_id", "end"]].to_numpy()
        g_day = np.minimum(np.concatenate([g_akt[:, 1] + rng.integers(180, 366, len(g_akt)),
                                           g_ins[:, 1] + rng.integers(90, 366, len(g_ins))]), R)
        gallring = pd.DataFrame({
            "tabell": pd.Series(["aktualisering"] * len(g_akt) + ["insats"] * len(g_ins),
                                dtype="str"),
            "rad_id": np.concatenate([g_akt[:, 0], g_ins[:, 0]]).astype(np.int64),
            "gallrad_tid": _naive_local(g_day, np.full(g_day.size, 2 * 60 + 15)),
        }).sort_values("gallrad_tid", kind="stable").reset_index(drop=True)
        aktualisering = aktualisering[~weed_akt].reset_index(drop=True)
        insats = insats[~weed_ins].reset_index(drop=True)
        return {"klient": klient, "aktualisering": aktualisering, "utredning": utredning,
                "insats": insats, "gallring": gallring}

    def security_marking(self, persons: pd.DataFrame) -> pd.DataFrame:
        marking = np.where(self.marking_draw < 0.7, "Skyddad folkbokföring",
                           "Sekretessmarkering")
        persons["protected"] = self.protected.copy()
        persons["security_marking"] = pd.Series(np.where(self.protected, marking, "Ingen"),
                                                dtype="str")
        return persons


def generate(seed: int = DEFAULT_SEED, pupils: int = DEFAULT_PUPILS,
             lessons_per_day: int = 4, municipality: Municipality = STOCKHOLM,
             directory: Path | str | None = None) -> Population:
    """Build the synthetic ``municipality`` for ``seed`` with about ``pupils`` pupils
    (grades 1-9) and ``lessons_per_day`` recorded lessons a pupil and school day.

    The attendance records are written, one lesson day at a time, as Parquet part files into
    ``directory`` (``attendance/part-NNNNN.parquet``, replacing earlier parts there); without a
    directory into a private temporary one, removed once the population (and every server
    store or copy made from it) is garbage collected, or when the process exits."""
    b = _Builder(seed, pupils, lessons_per_day, municipality)
    world = WorldDirectory(directory)
    organisations = b.organisations()
    persons = b.persons()
    enrolments, calendar_events, attendances = b.school(world)
    police_rows = b.police()
    case = b.case_system()
    persons = b.security_marking(persons)
    return Population(
        seed=seed, pupils=pupils, term_start=TERM_START, term_end=TERM_END,
        history_start=HISTORY_START, reference_date=TERM_END,
        municipality_code=municipality.code, municipality_name=municipality.name,
        municipality_organisation_number=municipality.organisation_number,
        organisations=organisations, persons=persons, enrolments=enrolments,
        calendar_events=calendar_events, attendances=attendances,
        klient=case["klient"], aktualisering=case["aktualisering"],
        utredning=case["utredning"], insats=case["insats"], gallring=case["gallring"],
        police_rows=police_rows, municipality=municipality,
    )
