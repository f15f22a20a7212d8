"""The indicator values the simulator knows to be true, computed straight from its frames.

This is an independent implementation of ``dbt_project/INDICATOR_RULES.md`` (all indicators
of the catalogue, every period type, area level and breakdown the rules list, primary
suppression and the follow-up columns). It uses what only the simulator knows: the person
behind every row (``person_key``), whether a written identifier is valid, true birth dates. It
does not use the pipeline's SQL, the identity macros, the dbt models or anything else from the
pipeline (DuckDB only sums the attendance records per person and day, period and window, so
that a large world's records stay on disk); besides the frames it only reads the
municipality's reference CSVs (areas, school units, districts, offence categories, targets: by
default those of the population's profile, with the product's default ``ref_brottskoder``).
The result has the published table's columns (without ``data_version``), one row per cell, so
a publication can be compared with it cell by cell.

Dates are handled as day numbers (days since 1970-01-01): int64 where a value always exists,
float64 with NaN where it may be missing (a comparison with NaN is false, like SQL's null).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from samverkan.config.reference import reference_file
from samverkan.simulator.attendance import AttendanceParts
from samverkan.simulator.population import TZ, Population, load_reference

# id -> (Swedish name, unit), in catalogue order
INDICATORS: dict[str, tuple[str, str]] = {
    "hog_franvaro": ("Andel elever med hög frånvaro", "andel"),
    "mycket_hog_franvaro": ("Andel elever med mycket hög frånvaro", "andel"),
    "ogiltig_franvaro_andel": ("Ogiltig frånvaro, andel av undervisningstiden", "andel"),
    "rapporteringsgrad": ("Rapporteringsgrad närvaro", "andel"),
    "orosanmalningar": ("Antal orosanmälningar", "antal"),
    "forhandsbedomning_14_dagar": ("Andel förhandsbedömningar inom 14 dagar", "andel"),
    "anmalan_till_utredning": ("Andel anmälningar som leder till utredning", "andel"),
    "utredning_4_manader": ("Andel utredningar klara inom 4 månader", "andel"),
    "placerade_aterforening": ("Placerade barn med planerad återförening", "antal"),
    "unga_misstankta": ("Antal unga misstänkta", "antal"),
    "unga_misstankta_upprepat": ("Andel unga misstänkta vid upprepade tillfällen", "andel"),
    "unga_brottsoffer": ("Antal unga brottsoffer", "antal"),
    "hog_franvaro_med_orosanmalan": (
        "Andel elever med hög frånvaro som också har en orosanmälan", "andel"),
    "hog_franvaro_med_misstanke": (
        "Andel elever med hög frånvaro som också är misstänkta för brott", "andel"),
    "misstankta_med_hog_franvaro": ("Andel unga misstänkta med hög frånvaro", "andel"),
    "kanda_av_flera": ("Barn kända av flera verksamheter", "antal"),
    "sst_effekt": ("Andel elever med förbättrad närvaro efter skolsocialt team", "andel"),
    "sig_effekt": ("Andel unga utan ny misstanke efter SIG", "andel"),
}
INDICATOR_NAMES = {k: v[0] for k, v in INDICATORS.items()}
OUTPUT_COLUMNS = [
    "indicator_id", "indicator_name", "period_type", "period_start", "period_end", "area_level",
    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator",
    "value", "unit", "suppressed", "target", "status", "is_running", "coverage",
]
PERIOD_TYPES = ("vecka", "manad", "termin", "ar")
AREA_LEVELS = ("stad", "stadsdelsomrade", "sspf_omrade", "skolenhet")
SCHOOL_LEVELS = AREA_LEVELS[:3]  # "school" areas (and police "district" areas: the same three)
# the case system's handling stadsdelsområde: it places a matter in no SSPF area
HANDLING_LEVELS = AREA_LEVELS[:2]
BREAKDOWNS = ("totalt", "huvudman", "arskurs", "anmalare", "brottskategori", "antal_verksamheter")
PRIMARY = "primär"
SCHOOL_BREAKDOWNS = ("huvudman", "arskurs")
PKEY = ["ptype", "pstart"]
_AREA_COLUMN = {"stad": None, "stadsdelsomrade": "sdo", "sspf_omrade": "sspf", "skolenhet": "unit"}
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class _Params:
    R: int
    municipality_code: str
    municipality_name: str
    report_months: int
    high: float
    very_high: float
    min_offered: float
    trailing_months: int
    fb_days: int
    investigation_months: int
    placement_days: int
    sst_days: int
    sig_months: int
    repeat: int
    min_cell: int
    reporting_lag: int = 3
    source_gap: int = 7


# ---------------------------------------------------------------------------------------------
# Day numbers
# ---------------------------------------------------------------------------------------------

def _days(values: object) -> np.ndarray:
    """Dates (date objects, strings, Timestamps, None) -> float64 day numbers, NaN when missing."""
    ts = pd.to_datetime(pd.Series(values, dtype=object), errors="raise")
    arr = ts.to_numpy(dtype="datetime64[D]")
    out = (arr - _EPOCH).astype("timedelta64[D]").astype(np.int64).astype(np.float64)
    out[np.isnat(arr)] = np.nan
    return out


def _day(value: dt.date) -> int:
    return int((np.datetime64(value, "D") - _EPOCH).astype(np.int64))


def _to_dates(days: np.ndarray) -> np.ndarray:
    """Day numbers -> object array of datetime.date."""
    return (_EPOCH + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")).astype(object)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _EPOCH + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")
    month = d.astype("datetime64[M]")
    y = month.astype("datetime64[Y]").astype(np.int64) + 1970
    m = month.astype(np.int64) % 12 + 1
    dd = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, dd


def _add_months(days: np.ndarray, n: int) -> np.ndarray:
    """Calendar-month arithmetic clamped to the month's last day; NaN stays NaN."""
    days = np.asarray(days, dtype=np.float64)
    ok = ~np.isnan(days)
    out = np.full(days.shape, np.nan)
    d = _EPOCH + days[ok].astype(np.int64).astype("timedelta64[D]")
    month = d.astype("datetime64[M]")
    offset = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.timedelta64(n, "M")
    length = ((target + np.timedelta64(1, "M")).astype("datetime64[D]")
              - target.astype("datetime64[D]")).astype(np.int64)
    res = target.astype("datetime64[D]") + np.minimum(offset, length - 1).astype("timedelta64[D]")
    out[ok] = (res - _EPOCH).astype(np.int64)
    return out


def _age(birth: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years between birth day numbers and day numbers (element-wise)."""
    by, bm, bd = _ymd(birth)
    oy, om, od = _ymd(on)
    return oy - by - ((om < bm) | ((om == bm) & (od < bd))).astype(np.int64)


def _child(birth: np.ndarray, on: np.ndarray) -> np.ndarray:
    age = _age(birth, on)
    return (age >= 0) & (age <= 17)


def _period_start(days: np.ndarray, ptype: str) -> np.ndarray:
    days = np.asarray(days, dtype=np.int64)
    if ptype == "vecka":
        return days - (days + 3) % 7  # 1970-01-01 was a Thursday; Monday starts the ISO week
    d = _EPOCH + days.astype("timedelta64[D]")
    if ptype == "manad":
        return (d.astype("datetime64[M]").astype("datetime64[D]") - _EPOCH).astype(np.int64)
    year = d.astype("datetime64[Y]")
    jan1 = (year.astype("datetime64[D]") - _EPOCH).astype(np.int64)
    if ptype == "ar":
        return jan1
    jul1 = ((year.astype("datetime64[M]") + np.timedelta64(6, "M")).astype("datetime64[D]")
            - _EPOCH).astype(np.int64)
    return np.where(days >= jul1, jul1, jan1)


def _period_end(starts: np.ndarray, ptype: str) -> np.ndarray:
    starts = np.asarray(starts, dtype=np.int64)
    if ptype == "vecka":
        return starts + 6
    months = {"manad": 1, "termin": 6, "ar": 12}[ptype]
    return _add_months(starts, months).astype(np.int64) - 1


# ---------------------------------------------------------------------------------------------
# The sources as the rules see them
# ---------------------------------------------------------------------------------------------

def _newest(df: pd.DataFrame, key: str | list[str], stamp: str) -> pd.DataFrame:
    """Newest version per key (ties: the later row wins)."""
    return (df.reset_index(drop=True).reset_index(names="_pos")
            .sort_values([stamp, "_pos"], kind="stable")
            .drop_duplicates(key, keep="last").drop(columns="_pos"))


def _not_weeded(df: pd.DataFrame, gallring: pd.DataFrame, table: str, id_col: str) -> pd.DataFrame:
    gone = gallring.loc[gallring["tabell"] == table, "rad_id"].astype("int64")
    return df[~df[id_col].astype("int64").isin(gone)]


def _digits(value: object) -> str:
    """The digits of an organisation number ('' for null)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else re.sub(
        r"[^0-9]", "", str(value))


def _text(values: pd.Series) -> pd.Series:
    """Trimmed text, '' for null."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


class _Sources:
    """Linkable, unprotected rows of every source, with day numbers and areas."""

    def __init__(self, pop: Population, p: _Params, reference_dir: Path) -> None:
        self.pop = pop
        self.p = p
        ref = load_reference(reference_dir)
        self.reference_dir = reference_dir
        self.sdo_name = dict(zip(ref.areas["stadsdelsomrade_code"],
                                 ref.areas["stadsdelsomrade_name"], strict=True))
        self.sspf_name = dict(zip(ref.sspf["sspf_omrade_code"], ref.sspf["sspf_omrade_name"],
                                  strict=True))
        # a school unit missing from ref_skolenheter has no SSPF area and no stadsdelsområde:
        # its pupils count in the city and skolenhet rows only
        self.unit_sspf = dict(zip(ref.schools["school_unit_code"],
                                  ref.schools["sspf_omrade_code"], strict=True))
        self.sspf_sdo = dict(zip(ref.sspf["sspf_omrade_code"], ref.sspf["stadsdelsomrade_code"],
                                 strict=True))
        # the case system's stadsdel is the stadsdelsområde handling the matter: its name,
        # else its code (never a neighbourhood of ref_stadsdelar, whatever its name)
        self.handling_sdo = {**{c: c for c in ref.areas["stadsdelsomrade_code"]},
                             **dict(zip(ref.areas["stadsdelsomrade_name"].str.strip(),
                                        ref.areas["stadsdelsomrade_code"], strict=True))}
        # the police Stadsdel is the offence location: a neighbourhood of ref_stadsdelar
        self.district_sdo = dict(zip(ref.districts["stadsdel_name"],
                                     ref.districts["stadsdelsomrade_code"], strict=True))
        self.district_sspf = {k: v for k, v in zip(ref.districts["stadsdel_name"],
                                                   ref.districts["sspf_omrade_code"], strict=True)
                              if v}
        self.offence_category = dict(zip(ref.offences["brottskod"],
                                         ref.offences["brottskategori"], strict=True))

        persons = pop.persons
        keys = persons["person_key"].astype("int64").to_numpy()
        self.birth = pd.Series(_days(persons["birth_date"]).astype(np.int64), index=keys)
        # protected identity: SS 12000 marking, or the klient flag on a valid identifier
        in_ss = persons["ss12000_id"].notna().to_numpy()
        marked = in_ss & (persons["security_marking"].astype(str) != "Ingen").to_numpy()
        protected = set(keys[marked].tolist())
        klient = _not_weeded(_newest(pop.klient, "klient_id", "andrad_tid"), pop.gallring,
                             "klient", "klient_id")
        valid = klient[klient["identifier_valid"].astype(bool)]
        protected |= set(valid.loc[valid["skyddad_identitet"].astype(bool),
                                   "person_key"].astype("int64").tolist())
        self.protected = protected
        self.ss_persons = set(keys[in_ss].tolist()) - protected
        linked = valid[~valid["person_key"].astype("int64").isin(protected)]
        self.klient_person = pd.Series(linked["person_key"].astype("int64").to_numpy(),
                                       index=linked["klient_id"].astype("int64").to_numpy())
        self._organisations()

    # -- areas --------------------------------------------------------------------------------
    def _organisations(self) -> None:
        orgs = self.pop.organisations
        if len(orgs):
            orgs = _newest(orgs, "id", "modified_at")
        units = orgs[orgs["organisation_type"] == "Skolenhet"]
        self.unit_name = dict(zip(units["school_unit_code"].astype(str),
                                  units["display_name"].astype(str), strict=True))
        # the huvudman's organisation number equals the municipality's (digits compared) ->
        # kommunal, anything else -> fristående
        number = dict(zip(orgs["id"], orgs["organisation_number"].map(_digits), strict=True))
        municipal = _digits(self.pop.municipality_organisation_number)
        self.unit_huvudman = {
            code: "kommunal" if number.get(parent) == municipal else "fristående"
            for code, parent in zip(units["school_unit_code"].astype(str),
                                    units["parent_organisation_id"], strict=True)}

    def handling_area(self, stadsdel: pd.Series) -> np.ndarray:
        """The stadsdelsområde handling a case-system matter (null: blank or unknown)."""
        return _text(stadsdel).map(self.handling_sdo).to_numpy(dtype=object)

    def district_areas(self, stadsdel: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        name = _text(stadsdel)
        return (name.map(self.district_sdo).to_numpy(dtype=object),
                name.map(self.district_sspf).to_numpy(dtype=object))

    def link(self, klient_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(mask of linkable rows, person keys of those rows)."""
        kid = klient_id.astype("int64")
        ok = kid.isin(self.klient_person.index).to_numpy()
        return ok, self.klient_person.loc[kid[ok]].to_numpy()

    # -- case system --------------------------------------------------------------------------
    def aktualisering(self) -> pd.DataFrame:
        """Newest, not weeded aktualisering rows (every typ, linkable or not)."""
        pop = self.pop
        a = _not_weeded(_newest(pop.aktualisering, "aktualisering_id", "andrad_tid"),
                        pop.gallring, "aktualisering", "aktualisering_id")
        reporter = _text(a["anmalare_kategori"])
        return pd.DataFrame({
            "aktualisering_id": a["aktualisering_id"].astype("int64").to_numpy(),
            "klient_id": a["klient_id"].astype("int64").to_numpy(),
            "typ": a["typ"].astype(object).to_numpy(),
            "inkom": _days(a["inkom_datum"]),
            "fb": _days(a["forhandsbedomning_datum"]),
            "beslut": a["beslut"].astype(object).where(a["beslut"].notna(), None).to_numpy(),
            "anmalare": reporter.where(reporter != "", "Okänd").to_numpy(dtype=object),
            "sdo": self.handling_area(a["stadsdel"]),
        })

    def reports(self) -> pd.DataFrame:
        """Anmälan rows about a linkable, unprotected person, inkom_datum <= R (any age);
        column ``child``: 0-17 on inkom_datum."""
        a = self.aktualisering()
        a = a[(a["typ"] == "Anmälan") & (a["inkom"] <= self.p.R)]
        ok, person = self.link(a["klient_id"])
        a = a[ok].assign(person=person)
        a["inkom"] = a["inkom"].astype(np.int64)
        a["child"] = _child(self.birth.loc[a["person"]].to_numpy(), a["inkom"].to_numpy())
        return a.reset_index(drop=True)

    def case_table(self, table: str, id_col: str) -> pd.DataFrame:
        pop = self.pop
        df = _not_weeded(_newest(getattr(pop, table), id_col, "andrad_tid"), pop.gallring,
                         table, id_col)
        ok, person = self.link(df["klient_id"])
        return df[ok].assign(person=person).reset_index(drop=True)

    # -- police -------------------------------------------------------------------------------
    def police_existing(self) -> pd.DataFrame:
        """Existing police rows: the newest version of each (Diarienummer, person (the raw
        text when invalid), Roll), not Makulerad; every person, every date."""
        pr = self.pop.police_rows.reset_index(drop=True)
        valid = (pr["identifier_valid"].astype(bool) & pr["person_key"].notna()).to_numpy()
        identity = np.where(valid, "k" + pr["person_key"].astype("Int64").astype(str),
                            "raw:" + pr["Personnummer"].astype(object).fillna("").astype(str))
        pr = pr.assign(_identity=identity, _valid=valid,
                       _changed=pd.to_datetime(pr["Senast ändrad"]))
        pr = _newest(pr, ["Diarienummer", "_identity", "Roll"], "_changed")
        return pr[pr["Status"] != "Makulerad"]

    def police(self) -> pd.DataFrame:
        """Existing police rows (newest version, not Makulerad) of linkable, unprotected persons,
        Brottsdatum <= R."""
        pr = self.police_existing()
        pr = pr[pr["_valid"]]
        sdo, sspf = self.district_areas(pr["Stadsdel"])
        out = pd.DataFrame({
            "person": pr["person_key"].astype("int64").to_numpy(),
            "diarie": pr["Diarienummer"].astype(str).to_numpy(),
            "roll": pr["Roll"].astype(str).to_numpy(),
            "day": _days(pr["Brottsdatum"]),
            "kategori": _text(pr["Brottskod"]).map(self.offence_category).fillna("okänd")
            .to_numpy(dtype=object),
            "sdo": sdo, "sspf": sspf,
        })
        out = out[(out["day"] <= self.p.R) & ~out["person"].isin(self.protected)]
        out["day"] = out["day"].astype(np.int64)
        age = _age(self.birth.loc[out["person"]].to_numpy(), out["day"].to_numpy())
        out["young"] = (age >= 0) & (age < 18)
        return out.reset_index(drop=True)

    # -- school -------------------------------------------------------------------------------
    def enrolments(self) -> pd.DataFrame:
        e = self.pop.enrolments
        start = _days(e["start_date"])
        keep = ((e["school_type"] == "GR") & e["school_year"].between(1, 9)).to_numpy().copy()
        keep &= e["person_key"].astype("int64").isin(self.ss_persons).to_numpy()
        keep &= start <= self.p.R
        e = e[keep]
        end = _days(e["end_date"])
        unit = e["school_unit_code"].astype(str)
        sspf = unit.map(self.unit_sspf)
        return pd.DataFrame({
            "person": e["person_key"].astype("int64").to_numpy(),
            "unit": unit.to_numpy(dtype=object),
            "year": e["school_year"].astype("int64").astype(str).to_numpy(dtype=object),
            "huvudman": unit.map(self.unit_huvudman).fillna("fristående").to_numpy(dtype=object),
            "sspf": sspf.to_numpy(dtype=object),
            "sdo": sspf.map(self.sspf_sdo).to_numpy(dtype=object),
            "start": start[keep],
            "end": np.where(end <= self.p.R, end, np.nan),  # an end after R has not happened
        })

    def attendance_days(self) -> pd.DataFrame:
        """Per person and lesson day (<= R): scheduled and reported records, offered, absence and
        invalid minutes. Newest version of every record and lesson; protected persons left out."""
        pop = self.pop
        att = pop.attendances
        if isinstance(att, AttendanceParts):  # a generated world: summed by DuckDB over the parts
            return att.day_totals(self.p.R, self.protected)
        codes, uniques = pd.factorize(att["id"])
        if len(uniques) < len(att):  # several versions of a record: the newest meta.modified wins
            modified = pd.to_datetime(att["modified_at"], utc=True).to_numpy()
            order = np.lexsort((np.arange(len(att)), modified, codes))
            last = np.ones(len(order), dtype=bool)
            last[:-1] = codes[order][1:] != codes[order][:-1]
            att = att.iloc[np.sort(order[last])]
        ev = pop.calendar_events
        if len(pd.unique(ev["id"])) < len(ev):
            ev = _newest(ev, "id", "modified_at")
        start = pd.DatetimeIndex(pd.to_datetime(ev["start_time"], utc=True)).tz_convert(TZ)
        end = pd.DatetimeIndex(pd.to_datetime(ev["end_time"], utc=True)).tz_convert(TZ)
        ev_minutes = ((end - start).total_seconds() / 60).to_numpy(dtype=np.float64)
        local_day = start.tz_localize(None).normalize().to_numpy(dtype="datetime64[D]")
        ev_day = (local_day - _EPOCH).astype(np.int64)

        person = att["person_key"].to_numpy(dtype=np.int64)
        ev_codes, ev_uniques = pd.factorize(att["calendar_event_id"])
        pos = pd.Index(ev["id"]).get_indexer(pd.Index(ev_uniques))[ev_codes]
        keep = (pos >= 0) & ~np.isin(person, np.fromiter(self.protected, dtype=np.int64))
        pos = np.where(pos >= 0, pos, 0)
        keep &= ev_day[pos] <= self.p.R
        person, pos = person[keep], pos[keep]
        reported = att["is_reported"].to_numpy(dtype=bool)[keep]
        minutes = ev_minutes[pos]
        invalid = att["invalid_absence_minutes"].to_numpy(dtype=np.float64)[keep]
        absence = att["valid_absence_minutes"].to_numpy(dtype=np.float64)[keep] + invalid
        day = ev_day[pos]
        if person.size == 0:
            return pd.DataFrame({c: np.array([], dtype=np.int64) for c in ("person", "day")}
                                | {c: np.array([], dtype=np.float64) for c in
                                   ("scheduled", "reported", "offered", "absence", "invalid")})
        d0 = int(day.min())
        span = int(day.max()) - d0 + 1
        p_codes, p_uniques = pd.factorize(person)
        key = p_codes.astype(np.int64) * span + (day - d0)
        k_codes, k_uniques = pd.factorize(key, sort=True)
        n = k_uniques.size

        def total(weights: np.ndarray | None) -> np.ndarray:
            return np.bincount(k_codes, weights=weights, minlength=n)

        rep = reported.astype(np.float64)
        return pd.DataFrame({
            "person": p_uniques[k_uniques // span].astype(np.int64),
            "day": (k_uniques % span + d0).astype(np.int64),
            "scheduled": total(None).astype(np.float64),
            "reported": total(rep),
            "offered": total(rep * minutes),
            "absence": total(rep * absence),
            "invalid": total(rep * invalid),
        })


class _Attendance:
    """The attendance input of the rules in DuckDB: table ``att_days``, one row per person
    and lesson day (<= R, protected persons left out) with ``scheduled`` and ``reported``
    records and ``offered``, ``absence`` and ``invalid`` minutes.

    For a generated world DuckDB sums the Parquet parts (with a memory limit, spilling into a
    scratch directory of the world), so that the person-day rows (tens of millions at
    Stockholm size) never reach pandas; a population with the attendance as a frame has its
    person-day frame registered instead. Period and window sums are queried from it."""

    MEASURES = ("scheduled", "reported", "offered", "absence", "invalid", "settled_scheduled",
                "settled_reported")

    def __init__(self, src: _Sources) -> None:
        att = src.pop.attendances
        self._scratch: Path | None = None
        if isinstance(att, AttendanceParts):
            self._scratch = att.world.scratch("ground-truth-")
            # a database file: the person-day table (tens of millions of rows at Stockholm
            # size) lives on disk, DuckDB holds only what its memory limit allows
            self.conn = att.connect(self._scratch / "spill", self._scratch / "attendance.duckdb")
            try:
                self.conn.execute("create table att_base as "
                                  + att.day_totals_sql(self.conn, src.p.R, src.protected))
            except BaseException:
                self.close()
                raise
        else:
            self.conn = duckdb.connect()
            self.conn.register("att_base", src.attendance_days())
        # school days: the days (<= R) with any attendance record; the last reporting_lag of
        # them are still being reported and leave the reporting rate (settled_*)
        days = [int(d) for (d,) in self.conn.execute(
            "select distinct day from att_base where scheduled > 0 order by day").fetchall()]
        self.first_day = days[0] if days else None
        self.last_day = days[-1] if days else None
        lag = src.p.reporting_lag
        cutoff = days[-lag] if (lag > 0 and days) else 2**40
        if lag > len(days):
            cutoff = days[0] if days else cutoff
        self.conn.execute(f"""
            create temp view att_days as
            select *, case when day < {int(cutoff)} then scheduled else 0 end as settled_scheduled,
                case when day < {int(cutoff)} then reported else 0 end as settled_reported
            from att_base""")

    def close(self) -> None:
        self.conn.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _scatter(self, sql: str, n: int, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Runs ``sql`` (column ``_row`` in 0..n-1, then ``columns``, no nulls) and returns each
        column as a float64 array indexed by ``_row`` (0 where no row came back)."""
        out = {c: np.zeros(n, dtype=np.float64) for c in columns}
        reader = self.conn.execute(sql).to_arrow_reader(1_000_000)
        for batch in reader:
            rows = batch.column("_row").to_numpy()
            for c in columns:
                out[c][rows] = batch.column(c).to_numpy()
        return out

    def period_sums(self, person: np.ndarray, period: np.ndarray,
                    periods: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per (person, period: a row number of ``periods``, whose ``pstart``..``pend`` are a
        period's days): the attendance measures summed over the period's lesson days (0 without
        any)."""
        n = person.size
        if n == 0 or periods.empty:
            return {m: np.zeros(n, dtype=np.float64) for m in self.MEASURES}
        start = periods["pstart"].to_numpy(dtype=np.int64)
        length = periods["pend"].to_numpy(dtype=np.int64) - start + 1
        of = np.repeat(np.arange(len(periods), dtype=np.int32), length)
        self.conn.register("_day_map", pd.DataFrame({
            "day": start[of] + (np.arange(of.size) - np.repeat(np.cumsum(length) - length, length)),
            "period": of}))
        self.conn.register("_keys", pa.table({  # arrow takes the arrays without a copy
            "_row": np.arange(n, dtype=np.int64), "person": np.asarray(person, dtype=np.int64),
            "period": np.asarray(period, dtype=np.int32)}))
        sums = ", ".join(f"sum(a.{m}) as {m}" for m in self.MEASURES)
        try:
            return self._scatter(f"""
                with s as (select a.person, m.period, {sums}
                           from att_days a join _day_map m using (day) group by all)
                select k._row, {", ".join(f"s.{m}::double as {m}" for m in self.MEASURES)}
                from _keys k join s using (person, period)""", n, self.MEASURES)
        finally:
            self.conn.unregister("_keys")
            self.conn.unregister("_day_map")

    def window_sums(self, person: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offered, absence) of each person over the lesson days lo <= day <= hi."""
        n = person.size
        if n == 0:
            return np.zeros(0), np.zeros(0)
        self.conn.register("_windows", pd.DataFrame({
            "_row": np.arange(n, dtype=np.int64), "person": np.asarray(person, dtype=np.int64),
            "lo": np.asarray(lo, dtype=np.int64), "hi": np.asarray(hi, dtype=np.int64)}))
        try:
            out = self._scatter("""
                select w._row, sum(a.offered)::double as offered,
                       sum(a.absence)::double as absence
                from _windows w join att_days a
                  on a.person = w.person and a.day between w.lo and w.hi
                group by w._row""", n, ("offered", "absence"))
        finally:
            self.conn.unregister("_windows")
        return out["offered"], out["absence"]


# ---------------------------------------------------------------------------------------------
# Periods and cells
# ---------------------------------------------------------------------------------------------

def _published_periods(p: _Params) -> pd.DataFrame:
    first = _add_months(np.array([_period_start(np.array([p.R]), "manad")[0]], dtype=float),
                        -(p.report_months - 1))[0]
    days = np.arange(int(first), p.R + 1, dtype=np.int64)
    parts = []
    for ptype in PERIOD_TYPES:
        starts = np.unique(_period_start(days, ptype))
        parts.append(pd.DataFrame({"ptype": ptype, "pstart": starts,
                                   "pend": _period_end(starts, ptype)}))
    return pd.concat(parts, ignore_index=True)


def _by_period(frame: pd.DataFrame, day_col: str, periods: pd.DataFrame) -> pd.DataFrame:
    """One copy of every row per published period containing its ``day_col`` day."""
    parts = []
    days = frame[day_col].to_numpy(dtype=np.int64)
    for ptype in PERIOD_TYPES:
        pp = periods[periods["ptype"] == ptype]
        start = _period_start(days, ptype)
        keep = np.isin(start, pp["pstart"].to_numpy())
        parts.append(frame[keep].assign(ptype=ptype, pstart=start[keep],
                                        pend=_period_end(start[keep], ptype)))
    return pd.concat(parts, ignore_index=True)


def _codes(values: pd.Series) -> tuple[np.ndarray, object]:
    """pd.factorize with the codes as int32 (-1: null)."""
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int32), uniques


class _Cells:
    """Collects the cells of every indicator (before suppression and follow-up)."""

    def __init__(self, src: _Sources) -> None:
        self.src = src
        self.parts: list[pd.DataFrame] = []

    def add(self, indicator: str, units: pd.DataFrame, levels: tuple[str, ...],
            breakdowns: tuple[str, ...] = (), *, num: str | None = None, den: str | None = None,
            contributors: str | None = None, distinct: bool = True) -> None:
        """units: one row per counted unit and period (``ptype``, ``pstart``, ``id``), with the
        area columns the levels need (``sdo``, ``sspf``, ``unit``; null: no row at that level)
        and one column per breakdown (null: no row for that breakdown). ``antal`` counts
        distinct ids per cell; ``andel`` sums ``num`` and ``den`` (and ``contributors``) per
        cell, after keeping one row per cell and id when ``distinct``."""
        andel = INDICATORS[indicator][1] == "andel"
        measures = {"numerator": num, "denominator": den, "contributors": contributors}
        n = len(units)
        if n == 0:
            return
        # every key column as integer codes (-1: null), factorised once
        ptype_code, ptype_uni = pd.factorize(units["ptype"])
        pstart = units["pstart"].to_numpy(dtype=np.int64)
        pstart_code = (pstart - pstart.min()).astype(np.int32)
        id_code = pd.factorize(units["id"])[0].astype(np.int64) if distinct else None
        area = {level: (np.zeros(n, dtype=np.int32), np.array([self.src.p.municipality_code],
                                                              dtype=object))
                if _AREA_COLUMN[level] is None else _codes(units[_AREA_COLUMN[level]])
                for level in levels}
        # the measures as stored (float64 only for the rows of one aggregation)
        values = {name: units[col].to_numpy() for name, col in measures.items() if andel and col}
        breakdown_codes = {b: _codes(units[b]) for b in breakdowns}
        for breakdown, lv in itertools.product(("totalt", *breakdowns), levels):
            # one aggregation per breakdown and level (a level at a time keeps the arrays at
            # the size of the units)
            b_code, b_uni = ((np.zeros(n, dtype=np.int32), np.array(["totalt"], dtype=object))
                             if breakdown == "totalt" else breakdown_codes[breakdown])
            row = np.flatnonzero((area[lv][0] >= 0) & (b_code >= 0))
            if row.size == 0:
                continue
            code = area[lv][0][row].astype(np.int64)
            # one int64 key per cell: period type, period start, area code, breakdown value
            key = np.zeros(row.size, dtype=np.int64)
            for part in (ptype_code[row], pstart_code[row], code, b_code[row]):
                key = key * (int(part.max()) + 1) + part.astype(np.int64)
            if distinct:  # one row per cell and counted unit
                pair = key * (int(id_code.max()) + 1) + id_code[row]
                first = np.sort(np.unique(pair, return_index=True)[1])
                row, code, key = row[first], code[first], key[first]
                del pair, first
            cell = pd.factorize(key)[0]
            del key
            n_cells = int(cell.max()) + 1
            first_of_cell = np.empty(n_cells, dtype=np.int64)
            first_of_cell[cell[::-1]] = np.arange(cell.size - 1, -1, -1)
            rep = row[first_of_cell]
            out = pd.DataFrame({
                "indicator_id": indicator,
                "ptype": np.asarray(ptype_uni, dtype=object)[ptype_code[rep]],
                "pstart": pstart[rep],
                "area_level": lv,
                "area_code": np.asarray(area[lv][1], dtype=object)[code[first_of_cell]],
                "breakdown": breakdown,
                "breakdown_value": np.asarray(b_uni, dtype=object)[b_code[rep]]})
            if andel:
                for name in measures:
                    out[name] = (np.bincount(cell, weights=values[name][row].astype(np.float64),
                                             minlength=n_cells)
                                 if name in values else np.nan)
            else:
                out["numerator"] = np.bincount(cell, minlength=n_cells).astype(np.float64)
                out["denominator"] = np.nan
                out["contributors"] = np.nan
            self.parts.append(out)

    def frame(self) -> pd.DataFrame:
        cells = pd.concat(self.parts, ignore_index=True)
        count = np.where(cells["denominator"].isna(), cells["numerator"], cells["denominator"])
        cells = cells[count >= 1].reset_index(drop=True)
        for col in ("numerator", "denominator", "contributors"):
            cells[col] = cells[col].astype(np.float64)
        return cells


# ---------------------------------------------------------------------------------------------
# Helpers over person x period frames
# ---------------------------------------------------------------------------------------------

def _flag_events(rows: pd.DataFrame, events: pd.DataFrame, lo: str, hi: str,
                 *, lo_inclusive: bool = False, distinct: str | None = None) -> np.ndarray:
    """Per row of ``rows`` (``person`` and the bound columns ``lo``/``hi``): the number of
    ``events`` (``person``, ``day``) with lo < day <= hi (lo <= day with ``lo_inclusive``),
    counting distinct values of column ``distinct`` when given."""
    if rows.empty or events.empty:
        return np.zeros(len(rows), dtype=np.int64)
    cols = ["person", "day"] + ([distinct] if distinct else [])
    r = rows[["person", lo, hi]].reset_index(drop=True).reset_index(names="_row")
    m = r.merge(events[cols], on="person")
    low = m["day"] >= m[lo] if lo_inclusive else m["day"] > m[lo]
    m = m[low & (m["day"] <= m[hi])]
    counts = (m.groupby("_row")[distinct].nunique() if distinct else m.groupby("_row").size())
    out = np.zeros(len(rows), dtype=np.int64)
    out[counts.index.to_numpy()] = counts.to_numpy()
    return out


def _categorical(values: pd.Series) -> pd.Categorical:
    """Text as a categorical with its categories in text order (sorting by the codes sorts by
    the text; nulls stay null)."""
    text = values.to_numpy(dtype=object)
    present = pd.notna(text)
    return pd.Categorical(text, categories=sorted(set(text[present].tolist())))


def _pupil_periods(src: _Sources, periods: pd.DataFrame,
                   att: _Attendance) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per pupil and period of ``periods`` (published ones with their trailing window start
    ``wstart``, the other months of the trailing windows with NaN): the enrolment in the period
    (unit, year, huvudman, areas) and the attendance sums over the period's lesson days.

    Returns the published periods' rows (``pp``: sorted by person, period type and period
    start; the enrolment's text columns as categoricals) and the person and last day of every
    calendar month in which the pupil had high absence (``high_months``). Built from arrays
    so that no frame of every period's rows exists next to ``pp``."""
    e = src.enrolments()
    person = e["person"].to_numpy(dtype=np.int64)
    e_start = e["start"].to_numpy(dtype=np.float64)
    e_end = e["end"].to_numpy(dtype=np.float64)
    unit = _categorical(e["unit"])
    unit_code = unit.codes.astype(np.int64)
    p_type = periods["ptype"].to_numpy(dtype=object)
    p_start = periods["pstart"].to_numpy(dtype=np.int64)
    p_end = periods["pend"].to_numpy(dtype=np.int64)
    # one enrolment per pupil and period, chosen period by period: active in the period, the
    # one still active on its last day first, then the latest start, then the lowest unit code
    # (then the first enrolment row)
    chosen_e, chosen_p = [], []
    for j in range(len(periods)):
        i = np.flatnonzero((e_start <= p_end[j]) & (np.isnan(e_end) | (e_end >= p_start[j])))
        if i.size == 0:
            continue
        on_last = np.isnan(e_end[i]) | (e_end[i] >= p_end[j])
        order = np.lexsort((i, unit_code[i], -e_start[i], ~on_last, person[i]))
        i = i[order]
        first = np.ones(i.size, dtype=bool)
        first[1:] = person[i][1:] != person[i][:-1]
        chosen_e.append(i[first].astype(np.int32))
        chosen_p.append(np.full(int(first.sum()), j, dtype=np.int32))
    ei = np.concatenate(chosen_e) if chosen_e else np.zeros(0, dtype=np.int32)
    pj = np.concatenate(chosen_p) if chosen_p else np.zeros(0, dtype=np.int32)
    names = {name: rank for rank, name in enumerate(sorted(set(p_type.tolist())))}
    type_rank = np.array([names[t] for t in p_type], dtype=np.int64)
    order = np.lexsort((p_start[pj], type_rank[pj], person[ei]))
    ei, pj = ei[order], pj[order]
    del order, chosen_e, chosen_p

    p = src.p
    person_e = person[ei]
    sums = att.period_sums(person_e, pj, periods)
    offered, absence = sums["offered"], sums["absence"]
    assessed = offered >= p.min_offered
    share = absence / np.where(offered > 0, offered, np.nan)
    high = assessed & (share >= p.high)
    very_high = assessed & (share >= p.very_high)
    del share
    month = np.flatnonzero((p_type[pj] == "manad") & high)
    # a month's last day; for the month that contains R, R (its data ends there)
    high_months = pd.DataFrame({"person": person_e[month],
                                "pend": np.minimum(p_end[pj[month]], p.R)})
    wstart = periods["wstart"].to_numpy(dtype=np.float64)
    keep = np.flatnonzero(~np.isnan(wstart[pj]))
    ek, pk = ei[keep], pj[keep]
    del ei, pj, person_e
    del offered, absence
    # compact columns: categoricals, day numbers as int32, the sums as float32 where that is
    # exact (the cells read them back as float64)
    year = _categorical(e["year"])[ek]
    pp = pd.DataFrame({
        "person": person[ek],
        "unit": unit[ek],
        "year": year,
        **{c: _categorical(e[c])[ek] for c in ("huvudman", "sspf", "sdo")},
        "ptype": _categorical(pd.Series(p_type))[pk],
        "pstart": p_start[pk].astype(np.int32),
        "pend": p_end[pk].astype(np.int32),
        **{m: _exact_float32(sums.pop(m)[keep]) for m in _Attendance.MEASURES},
        "assessed": assessed[keep], "high": high[keep], "very_high": very_high[keep],
        "wstart": wstart[pk].astype(np.int32),
        "arskurs": year,
    }, copy=False)  # the arrays are the frame's own: no second copy of them
    pp["c_offered"] = pp["offered"].to_numpy() > 0
    pp["c_scheduled"] = pp["settled_scheduled"].to_numpy() > 0
    return pp, high_months


def _exact_float32(values: np.ndarray) -> np.ndarray:
    """float64 values as float32 when every value is exactly representable, else unchanged."""
    small = values.astype(np.float32)
    return small if np.array_equal(small.astype(np.float64), values) else values


def _latest_per_period(q: pd.DataFrame) -> pd.DataFrame:
    """One qualifying insats per person and period: the latest F, then the highest insats_id."""
    q = q.sort_values(["person", "ptype", "pstart", "F", "insats_id"], kind="stable")
    return q.drop_duplicates(["person", "ptype", "pstart"], keep="last")


def _with_school_area(rows: pd.DataFrame, enrolled: pd.DataFrame) -> pd.DataFrame:
    """Attach the school area (sdo, sspf) of the person's enrolment in the period; none: city."""
    areas = enrolled.loc[enrolled["person"].isin(rows["person"]),
                         ["person", "ptype", "pstart", "sdo", "sspf"]]
    areas = areas.astype({"ptype": rows["ptype"].dtype if "ptype" in rows else object,
                          "pstart": np.int64})
    return rows.drop(columns=[c for c in ("sdo", "sspf") if c in rows], errors="ignore").merge(
        areas, on=["person", "ptype", "pstart"], how="left")


# ---------------------------------------------------------------------------------------------
# Running periods and data coverage
# ---------------------------------------------------------------------------------------------

SOURCES = ("ss12000", "case_system", "police")
# What each indicator reads (INDICATOR_RULES.md, "Running periods and data coverage"): the
# sources the period itself counts, and the look-back (window, sources) read before it.
INDICATOR_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, tuple[str, ...]] | None]] = {
    "hog_franvaro": (("ss12000",), None),
    "mycket_hog_franvaro": (("ss12000",), None),
    "ogiltig_franvaro_andel": (("ss12000",), None),
    "rapporteringsgrad": (("ss12000",), None),
    "orosanmalningar": (("case_system",), None),
    "forhandsbedomning_14_dagar": (("case_system",), None),
    "anmalan_till_utredning": (("case_system",), None),
    "utredning_4_manader": (("case_system",), None),
    "placerade_aterforening": (("case_system",), None),
    "unga_misstankta": (("police",), None),
    "unga_misstankta_upprepat": (("police",), ("trailing", ("police",))),
    "unga_brottsoffer": (("police",), None),
    "hog_franvaro_med_orosanmalan": (("ss12000", "case_system"), ("trailing", ("case_system",))),
    "hog_franvaro_med_misstanke": (("ss12000", "police"), ("trailing", ("police",))),
    "misstankta_med_hog_franvaro": (("ss12000", "police"), None),
    "kanda_av_flera": (("ss12000", "case_system", "police"),
                       ("trailing", ("ss12000", "case_system", "police"))),
    "sst_effekt": (("case_system", "ss12000"), ("sst_windows", ("ss12000",))),
    "sig_effekt": (("case_system", "police"), ("sig_followup", ("police",))),
}
COVERAGE_CODES = ("source_starts_after_period", "source_starts_in_period", "source_ends_in_period",
                  "lookback_before_first_data")


def _data_coverage(src: _Sources, att: _Attendance) -> dict[str, tuple[int | None, int | None]]:
    """First and last data date (day numbers, None without data) of each source up to R:
    lesson days with attendance records, inkom_datum of the current aktualisering rows (every
    typ), Brottsdatum of the existing police rows (every person)."""
    R = src.p.R
    inkom = src.aktualisering()["inkom"].to_numpy(dtype=np.float64)
    inkom = inkom[~np.isnan(inkom) & (inkom <= R)]
    brott = _days(src.police_existing()["Brottsdatum"])
    brott = brott[~np.isnan(brott) & (brott <= R)]

    def bounds(days: np.ndarray) -> tuple[int | None, int | None]:
        return (int(days.min()), int(days.max())) if days.size else (None, None)

    return {"ss12000": (att.first_day, att.last_day), "case_system": bounds(inkom),
            "police": bounds(brott)}


def _period_coverage(periods: pd.DataFrame, coverage: dict[str, tuple[int | None, int | None]],
                     p: _Params) -> pd.DataFrame:
    """Per indicator and published period: ``is_running`` and ``coverage`` (the first code of
    COVERAGE_CODES that applies, None when covered)."""
    rows = []
    for indicator, (sources, lookback) in INDICATOR_SOURCES.items():
        for per in periods.itertuples(index=False):
            ranks = []
            for source in sources:
                first, last = coverage[source]
                if first is None or first > per.lend:
                    ranks.append(0)
                elif first > per.pstart:
                    ranks.append(1)
                elif last < per.lend - p.source_gap:
                    ranks.append(2)
            if lookback is not None:
                window, lb_sources = lookback
                begins = {"trailing": per.wstart + 1,
                          "sst_windows": per.pstart - 2 * p.sst_days,
                          "sig_followup": int(_add_months(np.array([per.pstart], dtype=float),
                                                          -p.sig_months)[0]) + 1}[window]
                for source in lb_sources:
                    first = coverage[source][0]
                    if first is None or first > begins:
                        ranks.append(3)
            rows.append({"indicator_id": indicator, "ptype": per.ptype, "pstart": per.pstart,
                         "is_running": bool(per.pend > p.R),
                         "coverage": COVERAGE_CODES[min(ranks)] if ranks else None})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The computation
# ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """What every indicator group needs: sources, vars, published periods (with the trailing
    window start ``wstart`` and A = least(period_end, R)), and the pupil x period frames
    (``pp``: published periods; ``high_months``: person and last day of every calendar month,
    also those of the trailing windows, in which the pupil had high absence) and the
    attendance."""

    src: _Sources
    p: _Params
    cells: _Cells
    periods: pd.DataFrame
    pp: pd.DataFrame
    high_months: pd.DataFrame
    att: _Attendance


def compute_ground_truth(
    pop: Population, *,
    reference_date: dt.date | None = None,
    report_months: int = 12,
    high_absence_threshold: float = 0.15,
    very_high_absence_threshold: float = 0.50,
    min_offered_minutes: int = 300,
    trailing_months: int = 12,
    forhandsbedomning_days: int = 14,
    investigation_months: int = 4,
    placement_horizon_days: int = 90,
    sst_window_weeks: int = 8,
    sig_followup_months: int = 6,
    repeat_incidents: int = 2,
    lagesbild_trailing_weeks: int = 4,
    reporting_lag_school_days: int = 3,
    source_gap_days: int = 7,
    municipality_code: str | None = None,
    municipality_name: str | None = None,
    min_cell: int = 5,
    reference_dir: Path | str | None = None,
) -> pd.DataFrame:
    """Every published cell of the catalogue, as the rules define it, straight from ``pop``.

    The keywords are the dbt vars of ``INDICATOR_RULES.md`` with their defaults;
    ``reference_date``, ``municipality_code`` and ``municipality_name`` default to the
    population's; ``reference_dir`` (the ``ref_*.csv`` files) to its profile's
    (``pop.municipality.reference_dir``). ``lagesbild_trailing_weeks`` only shapes the weekly
    lägesbild, which is not part of this table; it is accepted (and checked) so that a run's
    vars can be passed as they are. Rows are ordered by indicator (catalogue order), period
    type, period start, area level, area code and breakdown.
    """
    if report_months < 1 or trailing_months < 1 or min_cell < 1 or lagesbild_trailing_weeks < 1:
        raise ValueError("report_months, trailing_months, min_cell and lagesbild_trailing_weeks "
                         "must be at least 1")
    p = _Params(
        R=_day(reference_date or pop.reference_date),
        municipality_code=municipality_code or pop.municipality_code,
        municipality_name=municipality_name or pop.municipality_name,
        report_months=report_months, high=high_absence_threshold,
        very_high=very_high_absence_threshold, min_offered=min_offered_minutes,
        trailing_months=trailing_months, fb_days=forhandsbedomning_days,
        investigation_months=investigation_months, placement_days=placement_horizon_days,
        sst_days=7 * sst_window_weeks, sig_months=sig_followup_months, repeat=repeat_incidents,
        min_cell=min_cell, reporting_lag=reporting_lag_school_days, source_gap=source_gap_days)
    reference_dir = Path(reference_dir if reference_dir is not None
                         else pop.municipality.reference_dir)
    src = _Sources(pop, p, reference_dir)
    cells = _Cells(src)
    R = p.R
    periods = _published_periods(p)
    # every look-back ends at lend: the period's last day, R for the running period
    periods["lend"] = np.minimum(periods["pend"].to_numpy(), R)
    periods["wstart"] = _add_months(periods["lend"].to_numpy(), -p.trailing_months).astype(np.int64)
    periods["A"] = periods["lend"]
    # calendar months whose last day can lie in a trailing window of a published period
    first_month = _period_start(np.array([periods["wstart"].min() + 1]), "manad")[0]
    month_starts = np.unique(_period_start(np.arange(first_month, R + 1), "manad"))
    months = pd.DataFrame({"ptype": "manad", "pstart": month_starts,
                           "pend": _period_end(month_starts, "manad")})
    all_periods = pd.concat([periods[["ptype", "pstart", "pend", "wstart"]], months]).drop_duplicates(
        ["ptype", "pstart"]).reset_index(drop=True)

    att = _Attendance(src)
    try:
        pp, high_months = _pupil_periods(src, all_periods, att)
        run = _Run(src=src, p=p, cells=cells, periods=periods, pp=pp, high_months=high_months,
                   att=att)
        _school_indicators(run)
        reports, cases, ins = _social_services_indicators(run)
        suspicions, police = _police_indicators(run)
        _cross_agency_indicators(run, reports, suspicions, police, cases)
        _intervention_effects(run, ins, suspicions)
        coverage = _data_coverage(src, att)
    finally:
        att.close()
    del run, pp
    out = _publish(cells.frame(), src, periods, _period_coverage(periods, coverage, p))
    out.attrs["data_coverage"] = {
        source: {"first_data_date": None if first is None else _to_dates(np.array([first]))[0],
                 "last_data_date": None if last is None else _to_dates(np.array([last]))[0]}
        for source, (first, last) in coverage.items()}
    return out


def _school_indicators(run: _Run) -> None:
    cells, pp = run.cells, run.pp
    # no copy of the large pupil x period frame: the flags count as 1.0 / 0.0, so a pupil
    # not assessed adds 0 to numerator and denominator, and a cell of none (denominator 0)
    # is dropped like a cell that does not exist
    cells.add("hog_franvaro", pp, AREA_LEVELS, SCHOOL_BREAKDOWNS, num="high", den="assessed",
              distinct=False)
    cells.add("mycket_hog_franvaro", pp, AREA_LEVELS, SCHOOL_BREAKDOWNS, num="very_high",
              den="assessed", distinct=False)
    cells.add("ogiltig_franvaro_andel", pp, AREA_LEVELS, SCHOOL_BREAKDOWNS, num="invalid",
              den="offered", contributors="c_offered", distinct=False)
    # the reporting lag: records of the last reporting_lag school days are left out
    cells.add("rapporteringsgrad", pp, AREA_LEVELS, SCHOOL_BREAKDOWNS, num="settled_reported",
              den="settled_scheduled", contributors="c_scheduled", distinct=False)


def _social_services_indicators(run: _Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Report, investigation and placement indicators; returns the reports (any age), the
    investigations and interventions (person, start, end with ends after R as NaN) and the
    interventions' frame."""
    src, p, cells, periods = run.src, run.p, run.cells, run.periods
    R = p.R
    reports = src.reports()
    child_reports = _by_period(reports[reports["child"]], "inkom", periods)
    child_reports["id"] = child_reports["aktualisering_id"]
    cells.add("orosanmalningar", child_reports, HANDLING_LEVELS, ("anmalare",))
    due = child_reports[child_reports["inkom"] + p.fb_days < R]
    in_time = due["fb"].notna() & (due["fb"] <= R) & (due["fb"] <= due["inkom"] + p.fb_days)
    cells.add("forhandsbedomning_14_dagar", due.assign(num=in_time.astype(float), den=1.0),
              HANDLING_LEVELS, ("anmalare",), num="num", den="den")
    decided = child_reports[child_reports["beslut"].notna() & (child_reports["fb"] <= R)]
    cells.add("anmalan_till_utredning",
              decided.assign(num=(decided["beslut"] == "Inleda utredning").astype(float), den=1.0),
              HANDLING_LEVELS, ("anmalare",), num="num", den="den")

    utr = src.case_table("utredning", "utredning_id")
    u_start = _days(utr["startdatum"])
    u_end = _days(utr["avslutsdatum"])
    closed = (u_end <= R) & ~np.isnan(u_start)
    u_start_i = np.where(np.isnan(u_start), 0, u_start).astype(np.int64)
    closed &= _child(src.birth.loc[utr["person"]].to_numpy(), u_start_i)
    akt_area = src.aktualisering().set_index("aktualisering_id")[["sdo"]]
    akt_id = utr["aktualisering_id"].astype("Int64")
    investigations = pd.DataFrame({
        "id": utr["utredning_id"].astype("int64").to_numpy(),
        "day": np.where(closed, u_end, 0).astype(np.int64),
        "num": (u_end <= _add_months(u_start, p.investigation_months)).astype(float),
        "den": 1.0,
        "sdo": akt_id.map(akt_area["sdo"]).to_numpy(dtype=object),
    })[closed]
    cells.add("utredning_4_manader", _by_period(investigations, "day", periods), HANDLING_LEVELS,
              num="num", den="den")

    insats = src.case_table("insats", "insats_id")
    ins = pd.DataFrame({
        "insats_id": insats["insats_id"].astype("int64").to_numpy(),
        "person": insats["person"].to_numpy(),
        "typ": insats["insatstyp"].astype(str).to_numpy(),
        "start": _days(insats["startdatum"]),
        "end": _days(insats["slutdatum"]),
        "planned": _days(insats["planerat_slutdatum"]),
        "reason": insats["avslutsorsak"].astype(object).to_numpy(),
    })
    ins = ins[ins["start"] <= R]
    ins["end_by_r"] = ins["end"].where(ins["end"] <= R)  # an end after R has not happened

    plac = ins[ins["typ"].str.startswith("PLAC_")].merge(periods[[*PKEY, "pend", "A"]],
                                                          how="cross")
    a_day = plac["A"].to_numpy()
    ongoing = ((plac["start"] <= a_day) & (plac["end"].isna() | (plac["end"] > a_day))
               & (plac["planned"] > a_day) & (plac["planned"] <= a_day + p.placement_days))
    reunited = ((plac["end"] >= plac["pstart"]) & (plac["end"] <= a_day)
                & (plac["reason"] == "Återförening med vårdnadshavare"))
    plac = plac[(ongoing | reunited).to_numpy()
                & _child(src.birth.loc[plac["person"]].to_numpy(), a_day)]
    plac = _with_school_area(plac.assign(id=plac["person"]), run.pp)
    cells.add("placerade_aterforening", plac, SCHOOL_LEVELS)

    cases = pd.concat([
        pd.DataFrame({"person": utr["person"].to_numpy(), "start": u_start,
                      "end": np.where(u_end <= R, u_end, np.nan)}),
        ins[["person", "start"]].assign(end=ins["end_by_r"].to_numpy()),
    ], ignore_index=True)
    return reports, cases[cases["start"] <= R], ins


def _police_indicators(run: _Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Young suspects (repeat share) and victims; returns the suspicions and all rows."""
    p, cells, periods = run.p, run.cells, run.periods
    police = run.src.police()
    suspicions = police[police["roll"] == "Misstänkt"]
    young_sus = _by_period(suspicions[suspicions["young"]], "day", periods)
    young_sus = young_sus.assign(id=young_sus["person"], brottskategori=young_sus["kategori"])
    cells.add("unga_misstankta", young_sus, SCHOOL_LEVELS, ("brottskategori",))
    suspects = young_sus[[*PKEY, "person"]].drop_duplicates().merge(
        periods[[*PKEY, "wstart", "lend"]], on=PKEY)
    suspects["num"] = (_flag_events(suspects, suspicions, "wstart", "lend", distinct="diarie")
                       >= p.repeat).astype(float)
    repeat = young_sus.merge(suspects[[*PKEY, "person", "num"]], on=[*PKEY, "person"])
    cells.add("unga_misstankta_upprepat", repeat.assign(den=1.0), SCHOOL_LEVELS,
              num="num", den="den")
    victims = police[(police["roll"] == "Målsägande") & police["young"]]
    young_vic = _by_period(victims, "day", periods)
    cells.add("unga_brottsoffer",
              young_vic.assign(id=young_vic["person"], brottskategori=young_vic["kategori"]),
              SCHOOL_LEVELS, ("brottskategori",))
    return suspicions[["person", "day", "diarie"]], police


def _agencies_in_windows(wins: pd.DataFrame, events: list[tuple[int, pd.DataFrame]],
                         cases: pd.DataFrame) -> pd.DataFrame:
    """Per window (``ptype``, ``pstart``, ``pend``, ``wstart``) and person known to at least
    two agencies in it (``n``: how many): an agency knows a person from an event of theirs
    (``person``, ``day``) with wstart < day <= pend, social services (agency 2) also from a case
    (``person``, ``start``, ``end``; NaN: open) open in the window. Window by window, so that no
    person x window frame of every event is built; sorted by window and person."""
    arrays = [(agency, frame["person"].to_numpy(dtype=np.int64),
               frame["day"].to_numpy(dtype=np.float64)) for agency, frame in events]
    c_person = cases["person"].to_numpy(dtype=np.int64)
    c_start = cases["start"].to_numpy(dtype=np.float64)
    c_end = cases["end"].to_numpy(dtype=np.float64)
    parts = []
    for ptype, pstart, pend, wstart in zip(wins["ptype"], wins["pstart"], wins["pend"],
                                           wins["wstart"], strict=True):
        known: dict[int, list[np.ndarray]] = {}
        for agency, person, day in arrays:
            known.setdefault(agency, []).append(person[(day > wstart) & (day <= pend)])
        open_case = (c_start <= pend) & (np.isnan(c_end) | (c_end > wstart))
        known.setdefault(2, []).append(c_person[open_case])
        persons = np.concatenate([np.unique(np.concatenate(v)) for v in known.values()])
        person, n = np.unique(persons, return_counts=True)
        many = n >= 2
        parts.append(pd.DataFrame({"ptype": ptype, "pstart": pstart, "person": person[many],
                                   "n": n[many].astype(np.int64)}))
    if not parts:
        return pd.DataFrame({"ptype": pd.Series(dtype=object), "pstart": pd.Series(dtype=np.int64),
                             "person": pd.Series(dtype=np.int64), "n": pd.Series(dtype=np.int64)})
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values([*PKEY, "person"], kind="stable").reset_index(drop=True)


def _cross_agency_indicators(run: _Run, reports: pd.DataFrame, suspicions: pd.DataFrame,
                             police: pd.DataFrame, cases: pd.DataFrame) -> None:
    src, cells, pp = run.src, run.cells, run.pp
    report_events = reports[["person"]].assign(day=reports["inkom"])
    # only the columns the cells and the flags need: the pupil x period frame is large
    keys = [*PKEY, "person", "sdo", "sspf", "wstart", "pend"]
    high = pp.loc[pp["high"], keys]
    high["lend"] = np.minimum(high["pend"].to_numpy(dtype=np.int64), run.p.R)
    high["den"] = 1.0
    high["num"] = (_flag_events(high, report_events, "wstart", "lend") > 0).astype(float)
    cells.add("hog_franvaro_med_orosanmalan", high, SCHOOL_LEVELS, num="num", den="den",
              distinct=False)
    high["num"] = (_flag_events(high, suspicions, "wstart", "lend") > 0).astype(float)
    cells.add("hog_franvaro_med_misstanke", high, SCHOOL_LEVELS, num="num", den="den",
              distinct=False)
    assessed = pp.loc[pp["assessed"], [*keys, "high"]]
    suspected = assessed[_flag_events(assessed, suspicions, "pstart", "pend",
                                      lo_inclusive=True) > 0]
    cells.add("misstankta_med_hog_franvaro",
              suspected.assign(num=suspected["high"].astype(float), den=1.0), SCHOOL_LEVELS,
              num="num", den="den", distinct=False)

    # kanda_av_flera: known to school / social services / police in the trailing window
    wins = run.periods[[*PKEY, "lend", "wstart"]].rename(columns={"lend": "pend"})
    high_months = run.high_months
    n_agencies = _agencies_in_windows(wins, [
        (1, high_months[["person", "pend"]].rename(columns={"pend": "day"})),
        (2, report_events), (3, police)], cases)
    n_agencies = n_agencies[~n_agencies["person"].isin(src.protected)]
    n_agencies = n_agencies.merge(run.periods[[*PKEY, "lend"]], on=PKEY)
    child = _child(src.birth.loc[n_agencies["person"]].to_numpy(), n_agencies["lend"].to_numpy())
    many = n_agencies[child & (n_agencies["n"] >= 2).to_numpy()]
    many = _with_school_area(many.assign(id=many["person"]), pp)
    many["antal_verksamheter"] = np.where(many["n"] == 3, "3", None)
    cells.add("kanda_av_flera", many, SCHOOL_LEVELS, ("antal_verksamheter",))


def _intervention_effects(run: _Run, ins: pd.DataFrame, suspicions: pd.DataFrame) -> None:
    p, cells, periods, R = run.p, run.cells, run.periods, run.p.R
    # sst_effekt: absence share in the windows before the start and after the end
    sst = ins[(ins["typ"] == "SST") & ins["end_by_r"].notna()].copy()
    sst["F"] = sst["end_by_r"] + p.sst_days
    sst = sst[sst["F"] <= R]
    person = sst["person"].to_numpy(dtype=np.int64)
    start = sst["start"].to_numpy(dtype=np.int64)
    end = sst["end_by_r"].to_numpy(dtype=np.int64)
    off_before, abs_before = run.att.window_sums(person, start - p.sst_days, start - 1)
    off_after, abs_after = run.att.window_sums(person, end + 1, end + p.sst_days)
    sst["num"] = ((abs_after / np.where(off_after > 0, off_after, np.nan))
                  < (abs_before / np.where(off_before > 0, off_before, np.nan))).astype(float)
    sst = sst[(off_before >= p.min_offered) & (off_after >= p.min_offered)]
    sst = _latest_per_period(_by_period(sst.assign(F=sst["F"].astype(np.int64)), "F", periods))
    sst = _with_school_area(sst.assign(id=sst["person"], den=1.0), run.pp)
    cells.add("sst_effekt", sst, SCHOOL_LEVELS, num="num", den="den")

    # sig_effekt: no new suspicion within the follow-up after the start
    sig = ins[ins["typ"] == "SIG"].copy()
    sig["F"] = _add_months(sig["start"].to_numpy(), p.sig_months)
    sig = sig[sig["F"] <= R]
    sig["F"] = sig["F"].astype(np.int64)
    sig["num"] = (_flag_events(sig, suspicions, "start", "F") == 0).astype(float)
    sig = _latest_per_period(_by_period(sig, "F", periods))
    sig = _with_school_area(sig.assign(id=sig["person"], den=1.0), run.pp)
    cells.add("sig_effekt", sig, SCHOOL_LEVELS, num="num", den="den")


# ---------------------------------------------------------------------------------------------
# Suppression, follow-up, layout
# ---------------------------------------------------------------------------------------------

def _fraction(text: str) -> tuple[int, int]:
    """'0.15' -> (15, 100): an exact decimal as numerator and power-of-ten denominator."""
    sign, digits, exponent = Decimal(text.strip()).as_tuple()
    value = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent >= 0:
        return value * 10 ** exponent, 1
    return value, 10 ** -exponent


def _targets(cells: pd.DataFrame, reference_dir: Path) -> pd.DataFrame:
    """target, direction, tolerance (as exact fractions) of each cell: the most specific
    matching row of ref_indicator_targets (area_code, then area_level, then the default)."""
    t = pd.read_csv(reference_file(reference_dir, "ref_indicator_targets"), dtype=str,
                    keep_default_na=False, encoding="utf-8")
    t = t.apply(lambda c: c.str.strip())
    n = len(cells)
    out = pd.DataFrame({"target": np.full(n, np.nan), "direction": np.full(n, None, dtype=object),
                        "t_num": np.zeros(n), "t_den": np.ones(n), "tol_num": np.zeros(n),
                        "tol_den": np.ones(n)}, index=cells.index)
    andel = {k for k, (_, unit) in INDICATORS.items() if unit == "andel"}
    t = t[t["indicator_id"].isin(andel)].copy()
    t["_rank"] = (t["area_code"] != "").astype(int) * 2 + (t["area_level"] != "").astype(int)
    for row in t.sort_values("_rank", kind="stable").itertuples(index=False):  # most specific last
        match = cells["indicator_id"] == row.indicator_id
        if row.area_level:
            match &= cells["area_level"] == row.area_level
        if row.area_code:
            match &= cells["area_code"] == row.area_code
        tn, td = _fraction(row.target)
        on, od = _fraction(row.tolerance)
        for col, v in (("target", float(Decimal(row.target))), ("t_num", tn), ("t_den", td),
                       ("tol_num", on), ("tol_den", od), ("direction", row.direction)):
            out.loc[match, col] = v
    return out


def _publish(cells: pd.DataFrame, src: _Sources, periods: pd.DataFrame,
             period_coverage: pd.DataFrame) -> pd.DataFrame:
    p = src.p
    num, den = cells["numerator"].to_numpy(), cells["denominator"].to_numpy()
    antal = np.isnan(den)
    small = lambda v: (v >= 1) & (v <= p.min_cell - 1)  # noqa: E731
    hidden = np.where(antal, num < p.min_cell,
                      (den < p.min_cell) | small(num) | small(den - num))
    hidden |= cells["contributors"].to_numpy() < p.min_cell  # NaN (not applicable) is False
    value = np.where(antal, num, num / np.where(antal, 1.0, den))

    tg = _targets(cells, src.reference_dir)
    # status with exact arithmetic: value <= target  <=>  num * t_den <= t_num * den
    lhs = num * tg["t_den"].to_numpy()
    rhs = tg["t_num"].to_numpy() * den
    both = tg["t_den"].to_numpy() * tg["tol_den"].to_numpy()
    lhs2 = num * both
    plus = (tg["t_num"].to_numpy() * tg["tol_den"].to_numpy()
            + tg["tol_num"].to_numpy() * tg["t_den"].to_numpy()) * den
    minus = (tg["t_num"].to_numpy() * tg["tol_den"].to_numpy()
             - tg["tol_num"].to_numpy() * tg["t_den"].to_numpy()) * den
    direction = tg["direction"].to_numpy()
    lower = np.select([lhs <= rhs, lhs2 <= plus], ["grön", "gul"], "röd")
    higher = np.select([lhs >= rhs, lhs2 >= minus], ["grön", "gul"], "röd")
    status = np.where(direction == "lägre", lower, np.where(direction == "högre", higher, None))
    status = np.where(hidden | pd.isna(direction), None, status)
    # a running period or one a source does not cover has no status
    marks = cells[["indicator_id", "ptype", "pstart"]].merge(
        period_coverage, on=["indicator_id", "ptype", "pstart"], how="left")
    is_running = marks["is_running"].fillna(False).to_numpy(dtype=bool)
    coverage = marks["coverage"].to_numpy(dtype=object)
    status = np.where(is_running | pd.notna(coverage), None, status)

    pend = cells[["ptype", "pstart"]].merge(periods[["ptype", "pstart", "pend"]],
                                            on=["ptype", "pstart"], how="left")["pend"]
    names = {"stad": {p.municipality_code: p.municipality_name}, "stadsdelsomrade": src.sdo_name,
             "sspf_omrade": src.sspf_name, "skolenhet": src.unit_name}
    out = pd.DataFrame({
        "indicator_id": cells["indicator_id"].to_numpy(),
        "indicator_name": cells["indicator_id"].map(INDICATOR_NAMES).to_numpy(),
        "period_type": cells["ptype"].to_numpy(),
        "period_start": _to_dates(cells["pstart"].to_numpy()),
        "period_end": _to_dates(pend.to_numpy()),
        "area_level": cells["area_level"].to_numpy(),
        "area_code": cells["area_code"].astype(str).to_numpy(),
        "area_name": [names[lv].get(c) for lv, c in zip(cells["area_level"], cells["area_code"],
                                                         strict=True)],
        "breakdown": cells["breakdown"].to_numpy(),
        "breakdown_value": cells["breakdown_value"].astype(str).to_numpy(),
        "numerator": np.where(hidden, np.nan, num),
        "denominator": np.where(hidden, np.nan, den),
        "value": np.where(hidden, np.nan, value),
        "unit": cells["indicator_id"].map(lambda i: INDICATORS[i][1]).to_numpy(),
        "suppressed": np.where(hidden, PRIMARY, None),
        "target": tg["target"].to_numpy(),
        "status": status,
        "is_running": is_running,
        "coverage": np.where(pd.notna(coverage), coverage, None),
    })
    order = {k: i for i, k in enumerate(INDICATORS)}
    out = out.assign(
        _i=out["indicator_id"].map(order),
        _t=out["period_type"].map({k: i for i, k in enumerate(PERIOD_TYPES)}),
        _l=out["area_level"].map({k: i for i, k in enumerate(AREA_LEVELS)}),
        _b=out["breakdown"].map({k: i for i, k in enumerate(BREAKDOWNS)}),
    ).sort_values(["_i", "_t", "period_start", "_l", "area_code", "_b", "breakdown_value"],
                  kind="stable")
    return out[OUTPUT_COLUMNS].reset_index(drop=True)


DATA_COVERAGE_FILE = "ground_truth_data_coverage.json"


def write_ground_truth(df: pd.DataFrame, path: Path | str) -> Path:
    """Write the ground truth as CSV: UTF-8, comma, ISO dates, integral counts as integers,
    empty fields for nulls; and, when the frame carries them (``attrs['data_coverage']``),
    the sources' first and last data dates as JSON beside it (DATA_COVERAGE_FILE)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    for col in ("period_start", "period_end"):
        out[col] = [d.isoformat() if isinstance(d, dt.date) else d for d in out[col]]
    for col in ("numerator", "denominator"):
        values = out[col].astype(np.float64)
        if np.all(np.isnan(values) | (values == np.round(values))):
            out[col] = pd.array(values.round(), dtype="Int64")
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    coverage = df.attrs.get("data_coverage")
    if coverage is not None:  # the sources' first and last data dates, beside the cells
        path.with_name(DATA_COVERAGE_FILE).write_text(json.dumps(
            {source: {k: (v.isoformat() if v is not None else None) for k, v in dates.items()}
             for source, dates in coverage.items()}, indent=2), encoding="utf-8")
    return path
