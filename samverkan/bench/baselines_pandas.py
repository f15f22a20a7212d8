"""The chosen indicators as a straightforward pandas pipeline: every raw table the indicators
need is read whole into a DataFrame (the columns they use), then the same rules as the dbt
models are applied with sorts, merges and group-bys (the newest version per record, deletions,
linkable persons, the report periods, the chosen enrolment per pupil and period, the cells of
each area level and breakdown).

The personnummer is normalised by the project's SQL macro while the (small) person and client
tables are read; everything after that is pandas. Like the SQL baseline it joins people on the
normalised number inside the restricted zone and returns cells only.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from samverkan.bench.baselines_sql import CELL_COLUMNS, INDICATORS, RAW

FAR_FUTURE = pd.Timestamp("2262-01-01")  # "open": later than any date (end dates after R are open)


def _df(conn: Any, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    return conn.execute(sql, params or []).df()


def _newest(frame: pd.DataFrame, key: str, modified: str, batches: pd.DataFrame,
            removed: pd.Series) -> pd.DataFrame:
    """The newest version of each ``key`` (modification time, then the batch loaded last, then
    the higher batch id), minus the removed keys."""
    frame = frame[~frame[key].isin(removed)]
    if not frame[key].duplicated().any():  # one version of each: it is the newest
        return frame
    frame = frame.merge(batches, on="batch_id", how="left")
    frame = frame.sort_values([key, modified, "loaded_at", "batch_id"],
                              ascending=[True, False, False, False], na_position="last")
    return frame.drop_duplicates(key, keep="first")


def _day(values: pd.Series) -> pd.Series:
    """Dates as datetime64 days (naive)."""
    return pd.to_datetime(values).astype("datetime64[ns]")


def birth_date(pnr12: pd.Series) -> pd.Series:
    """The birth date of each normalised number (the day less 60 for a samordningsnummer)."""
    text = pnr12.astype(object)

    def part(start: int, end: int) -> pd.Series:
        return pd.to_numeric(text.str.slice(start, end), errors="coerce").astype(float)

    day = part(6, 8)
    return pd.to_datetime(pd.DataFrame({"year": part(0, 4), "month": part(4, 6),
                                        "day": day.where(day <= 60, day - 60)}), errors="coerce")


def report_periods(params: dict[str, Any]) -> pd.DataFrame:
    """The report periods of the window ending at the reference date."""
    ref = pd.Timestamp(params["reference_date"])
    ws = (ref.to_period("M").to_timestamp()
          - pd.DateOffset(months=int(params["report_months"]) - 1))
    trailing = pd.DateOffset(months=int(params["trailing_months"]))
    kinds = {
        "vecka": (ws - pd.Timedelta(days=ws.weekday()), "7D", pd.DateOffset(days=7)),
        "manad": (ws, "MS", pd.DateOffset(months=1)),
        "termin": (pd.Timestamp(ws.year, 1 if ws.month <= 6 else 7, 1), "6MS", pd.DateOffset(months=6)),
        "ar": (pd.Timestamp(ws.year, 1, 1), "YS", pd.DateOffset(years=1)),
    }
    frames = []
    for kind, (first, freq, length) in kinds.items():
        starts = pd.date_range(first, ref, freq=freq)
        ends = pd.DatetimeIndex([s + length - pd.Timedelta(days=1) for s in starts])
        # a look-back ends at the period's last day, a running period's at the reference date
        lookback_ends = [min(e, ref) for e in ends]
        frames.append(pd.DataFrame({
            "period_type": kind, "period_start": starts, "period_end": ends,
            "lookback_end": lookback_ends, "trailing_window_start": [e - trailing for e in lookback_ends]}))
    return pd.concat(frames, ignore_index=True)


def _period_start(days: pd.Series, kind: str) -> pd.Series:
    if kind == "vecka":
        return days - pd.to_timedelta(days.dt.weekday, unit="D")
    if kind == "manad":
        return days.dt.to_period("M").dt.to_timestamp()
    if kind == "termin":
        return pd.to_datetime(pd.DataFrame({"year": days.dt.year,
                                            "month": np.where(days.dt.month <= 6, 1, 7), "day": 1}))
    return pd.to_datetime(pd.DataFrame({"year": days.dt.year, "month": 1, "day": 1}))


def cube(units: pd.DataFrame, levels: dict[str, str | None], breakdowns: dict[str, str],
         counted: str, city: str, flag: str | None) -> pd.DataFrame:
    """The cells: one group-by per area level × (totalt and each breakdown); a unit without a
    code or value there is in no cell; 'andel' (``flag``) counts the flagged units over all,
    'antal' counts the units. ``units`` has one row per ``counted`` unit and period."""
    duplicated = units.duplicated(["period_type", "period_start", counted]).any()
    if duplicated:
        raise ValueError(f"more than one row per {counted} and period")
    out = []
    for level, column in levels.items():
        for breakdown, bcolumn in [("totalt", None), *breakdowns.items()]:
            keys = ["period_type", "period_start"] + [c for c in (column, bcolumn) if c]
            frame = units.dropna(subset=keys)
            if frame.empty:
                continue
            if flag:  # one row per unit and period: counting rows counts units
                cells = frame.groupby(keys).agg(numerator=(flag, "sum"),
                                                denominator=(flag, "size")).reset_index()
                cells = cells[cells["denominator"] >= 1]
            else:
                cells = frame.groupby(keys).agg(numerator=(counted, "size")).reset_index()
                cells["denominator"] = pd.NA
                cells = cells[cells["numerator"] >= 1]
            cells["area_level"] = level
            cells["area_code"] = cells[column] if column else city
            cells["breakdown"] = breakdown
            cells["breakdown_value"] = cells[bcolumn].astype(str) if bcolumn else "totalt"
            out.append(cells[list(CELL_COLUMNS)])
    result = pd.concat(out, ignore_index=True)
    result["denominator"] = result["denominator"].astype("Int64")
    return result


class Pipeline:
    """The raw tables read once, then each indicator from them."""

    def __init__(self, conn: Any, params: dict[str, Any]) -> None:
        self.conn = conn
        self.params = params
        self.ref = pd.Timestamp(params["reference_date"])
        self.city = str(params["municipality_code"])
        self.periods = report_periods(params)
        self._cache: dict[str, pd.DataFrame] = {}

    def _memo(self, name: str, build: Any) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    # --- raw tables ---------------------------------------------------------------------------
    def batches(self) -> pd.DataFrame:
        return self._memo("batches", lambda: _df(
            self.conn, f"select batch_id, loaded_at from {RAW}.load_meta.batches"))

    def deleted(self, entity: str) -> pd.Series:
        def build() -> pd.DataFrame:
            frame = _df(self.conn, f"select entity_type, id from {RAW}.raw_ss12000.deleted_entities")
            frame["entity"] = frame["entity_type"].str.replace("[^A-Za-z]", "", regex=True).str.lower()
            return frame
        frame = self._memo("deleted", build)
        return frame.loc[frame["entity"] == entity, "id"]

    def weeded(self, table: str) -> pd.Series:
        frame = self._memo("gallring", lambda: _df(
            self.conn, f"select tabell, rad_id from {RAW}.raw_case_system.gallring"))
        return frame.loc[frame["tabell"].str.strip().str.lower() == table, "rad_id"]

    def normalised(self, raw: pd.Series) -> pd.Series:
        """The normalised 12-digit number of each raw identifier (None when unusable): the
        project's SQL macro over the distinct raw values, mapped back in pandas."""
        distinct = pd.DataFrame({"raw": raw.dropna().unique()})
        self.conn.register("distinct_raw", distinct)
        try:
            table = self.conn.execute(
                "select raw, samverkan_normalise_pnr_of(raw, candidate, ?::date) as pnr12 from ("
                "select raw, samverkan_pnr_candidate(samverkan_pnr_clean(raw), ?::date) as candidate "
                "from distinct_raw)", [self.params["reference_date"]] * 2).df()
        finally:
            self.conn.unregister("distinct_raw")
        return raw.map(dict(zip(table["raw"], table["pnr12"], strict=True)))

    def persons(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            frame = _df(self.conn, f"""select id, batch_id, modified_at, security_marking, civic_no
                        from {RAW}.raw_ss12000.persons""")
            frame = _newest(frame, "id", "modified_at", self.batches(), self.deleted("persons"))
            frame["pnr12"] = self.normalised(frame["civic_no"])
            frame["is_protected"] = frame["security_marking"].fillna("") != "Ingen"
            return frame.drop(columns=["civic_no"])
        return self._memo("persons", build)

    def clients(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            frame = _df(self.conn, f"""select klient_id, batch_id, andrad_tid, skyddad_identitet,
                        personnummer from {RAW}.raw_case_system.klient""")
            frame = _newest(frame, "klient_id", "andrad_tid", self.batches(), self.weeded("klient"))
            frame["pnr12"] = self.normalised(frame["personnummer"])
            frame["birth_date"] = birth_date(frame["pnr12"])
            frame["is_protected"] = frame["skyddad_identitet"].fillna(False).astype(bool)
            return frame.drop(columns=["personnummer"])
        return self._memo("clients", build)

    def linkable(self) -> pd.Series:
        def build() -> pd.DataFrame:
            both = pd.concat([self.persons()[["pnr12", "is_protected"]],
                              self.clients()[["pnr12", "is_protected"]]]).dropna(subset=["pnr12"])
            protected = both.groupby("pnr12")["is_protected"].any()
            return protected[~protected].index.to_frame(index=False)
        return self._memo("linkable", build)["pnr12"]

    def linkable_persons(self) -> pd.DataFrame:
        persons = self.persons()
        return persons[persons["pnr12"].isin(self.linkable())][["id", "pnr12", "batch_id"]]

    def organisations(self) -> pd.DataFrame:
        return self._memo("organisations", lambda: _newest(_df(
            self.conn, f"""select id, batch_id, modified_at, parent_organisation_id,
                           organisation_number, school_unit_code from {RAW}.raw_ss12000.organisations"""),
            "id", "modified_at", self.batches(), self.deleted("organisations")))

    def reference(self, table: str) -> pd.DataFrame:
        return self._memo(f"ref_{table}", lambda: _df(self.conn, f"select * from reference.{table}"))

    # --- school ---------------------------------------------------------------------------------
    def pupil_enrolments(self) -> pd.DataFrame:
        persons = self.persons()
        e = _df(self.conn, f"select * from {RAW}.raw_ss12000.enrolments")
        e = e.merge(persons[["id", "batch_id"]].rename(columns={"id": "person_id"}),
                    on=["person_id", "batch_id"])
        newest = e.groupby("person_id")["person_modified_at"].transform("max")
        e = e[(e["person_modified_at"] == newest)
              | (e["person_modified_at"].isna() & newest.isna())].copy()
        e["school_type"] = e["school_type"].str.strip().str.upper()
        e = e.drop_duplicates(["person_id", "school_unit_id", "school_type", "school_year",
                               "start_date", "end_date"])
        e = e.merge(self.linkable_persons()[["id", "pnr12"]].rename(columns={"id": "person_id"}),
                    on="person_id")
        orgs = self.organisations()
        units = orgs[["id", "parent_organisation_id", "school_unit_code"]].rename(
            columns={"id": "school_unit_id", "parent_organisation_id": "huvudman_id"})
        e = e.merge(units, on="school_unit_id", how="left", indicator="unit_found")
        huvudman = orgs[["id", "organisation_number"]].rename(columns={"id": "huvudman_id"})
        e = e.merge(huvudman, on="huvudman_id", how="left")
        digits = re.sub(r"[^0-9]", "", str(self.params["municipality_organisation_number"]))
        own = e["organisation_number"].fillna("").str.replace("[^0-9]", "", regex=True) == digits
        e["huvudman_kind"] = np.where(e["unit_found"] == "left_only", None,
                                      np.where(own, "kommunal", "fristående"))
        e = e.merge(self.reference("ref_skolenheter")[["school_unit_code", "sspf_omrade_code"]],
                    on="school_unit_code", how="left")
        e = e.merge(self.reference("ref_sspf_omraden")[["sspf_omrade_code", "stadsdelsomrade_code"]],
                    on="sspf_omrade_code", how="left")
        e["start_date"] = _day(e["start_date"])
        e["end_date"] = _day(e["end_date"])
        e = e[(e["school_type"] == "GR") & e["school_year"].between(1, 9)
              & e["start_date"].notna() & (e["start_date"] <= self.ref)].copy()
        e.loc[e["end_date"] > self.ref, "end_date"] = pd.NaT
        return e

    def enrolled(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            e = self.pupil_enrolments().merge(self.periods, how="cross")
            end = e["end_date"].fillna(FAR_FUTURE)
            e = e[(e["start_date"] <= e["period_end"]) & (end >= e["period_start"])].copy()
            e["active_last_day"] = e["end_date"].fillna(FAR_FUTURE) >= e["period_end"]
            e["end_key"] = e["end_date"].fillna(FAR_FUTURE)  # desc nulls first: null is largest
            e = e.sort_values(["pnr12", "period_type", "period_start", "active_last_day", "start_date",
                               "end_key", "school_unit_code", "school_year"],
                              ascending=[True, True, True, False, False, False, True, False],
                              na_position="last")
            return e.drop_duplicates(["pnr12", "period_type", "period_start"], keep="first")
        return self._memo("enrolled", build)

    def pupil_days(self) -> pd.DataFrame:
        lessons = _df(self.conn, f"""select id, batch_id, modified_at, start_time, end_time
                      from {RAW}.raw_ss12000.calendar_events""")
        lessons = _newest(lessons, "id", "modified_at", self.batches(), self.deleted("calendarevents"))
        lessons["lesson_date"] = (lessons["start_time"].dt.tz_convert("Europe/Stockholm")
                                  .dt.tz_localize(None).dt.normalize().astype("datetime64[ns]"))
        lessons["minutes"] = ((lessons["end_time"] - lessons["start_time"])
                              .dt.total_seconds() * 1000).round() / 60000
        lessons = lessons[lessons["lesson_date"] <= self.ref][["id", "lesson_date", "minutes"]]
        att = _df(self.conn, f"""select id, batch_id, modified_at, calendar_event_id, student_id,
                  is_reported, valid_absence_minutes, invalid_absence_minutes
                  from {RAW}.raw_ss12000.attendances""")
        att = _newest(att, "id", "modified_at", self.batches(), self.deleted("attendances"))
        att = att.merge(lessons.rename(columns={"id": "calendar_event_id"}), on="calendar_event_id")
        att = att.merge(self.linkable_persons()[["id", "pnr12"]].rename(columns={"id": "student_id"}),
                        on="student_id")
        reported = att["is_reported"].fillna(False).astype(bool)
        att["offered"] = att["minutes"].where(reported, 0.0)
        att["absent"] = (att["valid_absence_minutes"].fillna(0)
                         + att["invalid_absence_minutes"].fillna(0)).where(reported, 0)
        return att.groupby(["pnr12", "lesson_date"], as_index=False)[["offered", "absent"]].sum()

    def pupil_periods(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            days = self.pupil_days()
            sums = []
            for kind in ("vecka", "manad", "termin", "ar"):
                part = days.assign(period_type=kind, period_start=_period_start(days["lesson_date"], kind))
                sums.append(part.groupby(["pnr12", "period_type", "period_start"], as_index=False)
                            [["offered", "absent"]].sum())
            sums_frame = pd.concat(sums, ignore_index=True)
            p = self.enrolled().merge(sums_frame, on=["pnr12", "period_type", "period_start"], how="left")
            offered = p["offered"].fillna(0)
            p["is_assessed"] = offered >= float(self.params["min_offered_minutes"])
            share = p["absent"].fillna(0) / offered.where(offered > 0)
            p["is_high"] = p["is_assessed"] & (share >= float(self.params["high_absence_threshold"]))
            return p
        return self._memo("pupil_periods", build)

    # --- case system ----------------------------------------------------------------------------
    def reports(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            m = _df(self.conn, f"""select aktualisering_id, klient_id, batch_id, andrad_tid, typ,
                    inkom_datum, anmalare_kategori, stadsdel from {RAW}.raw_case_system.aktualisering""")
            m = _newest(m, "aktualisering_id", "andrad_tid", self.batches(), self.weeded("aktualisering"))
            m = m[m["typ"].str.strip() == "Anmälan"]
            clients = self.clients()
            clients = clients[clients["pnr12"].isin(self.linkable())]
            m = m.merge(clients[["klient_id", "pnr12", "birth_date"]], on="klient_id")
            # the stadsdelsområde handling the matter: its name, else its code
            areas = self.reference("ref_stadsdelsomraden")
            handling = dict(zip(areas["stadsdelsomrade_code"].str.strip(), areas["stadsdelsomrade_code"],
                                strict=True))
            handling.update(zip(areas["stadsdelsomrade_name"].str.strip(), areas["stadsdelsomrade_code"],
                                strict=True))
            m["stadsdelsomrade_code"] = m["stadsdel"].str.strip().map(handling)
            m["anmalare_kategori"] = m["anmalare_kategori"].str.strip().replace("", None).fillna("Okänd")
            m["inkom_datum"] = _day(m["inkom_datum"])
            m["birth_date"] = _day(m["birth_date"])
            return m[m["inkom_datum"].notna() & (m["inkom_datum"] <= self.ref)]
        return self._memo("reports", build)

    # --- the indicators ---------------------------------------------------------------------------
    def hog_franvaro(self) -> pd.DataFrame:
        units = self.pupil_periods()
        units = units[units["is_assessed"]].assign(arskurs=units["school_year"].astype("Int64").astype(str))
        return cube(units, {"stad": None, "stadsdelsomrade": "stadsdelsomrade_code",
                            "sspf_omrade": "sspf_omrade_code", "skolenhet": "school_unit_code"},
                    {"huvudman": "huvudman_kind", "arskurs": "arskurs"}, "pnr12", self.city, "is_high")

    def orosanmalningar(self) -> pd.DataFrame:
        r = self.reports()
        born, on = r["birth_date"], r["inkom_datum"]
        age = (on.dt.year - born.dt.year
               - ((on.dt.month * 100 + on.dt.day) < (born.dt.month * 100 + born.dt.day)).astype(int))
        r = r[age.between(0, 17)]
        units = r.merge(self.periods, how="cross")
        units = units[(units["inkom_datum"] >= units["period_start"])
                      & (units["inkom_datum"] <= units["period_end"])]
        # the handling stadsdelsområde only: the case system places no report in an SSPF area
        return cube(units, {"stad": None, "stadsdelsomrade": "stadsdelsomrade_code"},
                    {"anmalare": "anmalare_kategori"}, "aktualisering_id", self.city, None)

    def hog_franvaro_med_orosanmalan(self) -> pd.DataFrame:
        high = self.pupil_periods()
        high = high[high["is_high"]]
        pairs = high[["pnr12", "period_type", "period_start", "trailing_window_start", "lookback_end"]].merge(
            self.reports()[["pnr12", "inkom_datum"]], on="pnr12")
        hit = pairs[(pairs["inkom_datum"] > pairs["trailing_window_start"])
                    & (pairs["inkom_datum"] <= pairs["lookback_end"])]
        flagged = hit[["pnr12", "period_type", "period_start"]].drop_duplicates().assign(has_report=True)
        units = high.merge(flagged, on=["pnr12", "period_type", "period_start"], how="left")
        units["has_report"] = units["has_report"].fillna(False).astype(bool)
        return cube(units, {"stad": None, "stadsdelsomrade": "stadsdelsomrade_code",
                            "sspf_omrade": "sspf_omrade_code"}, {}, "pnr12", self.city, "has_report")

    def compute(self, indicator: str) -> pd.DataFrame:
        if indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {indicator!r}; one of {', '.join(INDICATORS)}")
        cells = getattr(self, indicator)()
        cells["period_start"] = cells["period_start"].dt.date
        return cells


def compute(conn: Any, indicator: str, params: dict[str, Any]) -> pd.DataFrame:
    """The cells of ``indicator`` (columns :data:`CELL_COLUMNS`) by the pandas pipeline."""
    return Pipeline(conn, params).compute(indicator)


