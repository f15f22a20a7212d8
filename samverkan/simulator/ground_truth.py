"""The indicator values the simulator knows to be true, computed straight from its frames.

This is an independent implementation of ``dbt_project/INDICATOR_RULES.md`` (the six
indicators of the first release). It uses what only the simulator knows: the person behind
every row (``person_key``), whether a written identifier is valid, true birth dates. It does
not use the DuckDB identity macros or anything else from the pipeline; from ``dbt_project`` it
only reads the seed CSVs (school unit / district -> area). The result is one row per
unsuppressed cell, in the published table's layout (without the suppression and follow-up
columns), so the pipeline's published values can be compared cell by cell.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from samverkan.simulator.population import TZ, Population, load_seeds

INDICATOR_NAMES = {
    "hog_franvaro": "Andel elever med hög frånvaro",
    "orosanmalningar": "Antal orosanmälningar",
    "forhandsbedomning_14_dagar": "Andel förhandsbedömningar inom 14 dagar",
    "unga_misstankta": "Antal unga misstänkta",
    "hog_franvaro_med_orosanmalan": "Andel elever med hög frånvaro som också har en orosanmälan",
    "kanda_av_flera": "Barn kända av flera verksamheter",
}
OUTPUT_COLUMNS = [
    "indicator_id", "indicator_name", "period_type", "period_start", "period_end", "area_level",
    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator",
    "value", "unit",
]


def _ts(values: pd.Series) -> pd.Series:
    """Dates (date objects / strings / None) -> naive datetime64 at midnight."""
    return pd.to_datetime(pd.Series(values, dtype=object), errors="raise").dt.normalize()


def _age(birth: pd.Series, on: pd.Series) -> pd.Series:
    """Whole years between two datetime Series (element-wise)."""
    b = pd.DatetimeIndex(birth)
    o = pd.DatetimeIndex(on)
    before = (o.month < b.month) | ((o.month == b.month) & (o.day < b.day))
    return pd.Series(o.year - b.year - before.astype(int), index=birth.index)


def _newest(df: pd.DataFrame, key: str | list[str], stamp: str) -> pd.DataFrame:
    """Newest version per key (ties: the later row wins)."""
    return (df.reset_index(drop=True).reset_index(names="_pos")
            .sort_values([stamp, "_pos"], kind="stable")
            .drop_duplicates(key, keep="last").drop(columns="_pos"))


def _not_weeded(df: pd.DataFrame, gallring: pd.DataFrame, table: str, id_col: str) -> pd.DataFrame:
    gone = gallring.loc[gallring["tabell"] == table, "rad_id"].astype("int64")
    return df[~df[id_col].astype("int64").isin(gone)]


class _Context:
    def __init__(self, pop: Population, report_months: int) -> None:
        if report_months < 1:
            raise ValueError("report_months must be at least 1")
        self.pop = pop
        self.R = pd.Timestamp(pop.reference_date)
        last = self.R.to_period("M")
        self.months = pd.period_range(end=last, periods=report_months, freq="M")
        # school months that can fall in a trailing 12-month window of a published month
        self.school_months = pd.period_range(end=last, periods=report_months + 11, freq="M")
        seeds = load_seeds()
        self.area_name = dict(zip(seeds.areas["stadsdelsomrade_code"],
                                  seeds.areas["stadsdelsomrade_name"], strict=True))
        self.unit_area = dict(zip(seeds.schools["school_unit_code"],
                                  seeds.schools["stadsdelsomrade_code"], strict=True))
        self.district_area = dict(zip(seeds.districts["stadsdel_name"],
                                      seeds.districts["stadsdelsomrade_code"], strict=True))
        persons = pop.persons
        self.birth = pd.Series(_ts(persons["birth_date"]).to_numpy(),
                               index=persons["person_key"].astype("int64").to_numpy())

        # protected identity, as the sources show it: SS 12000 marking or klient flag
        ss = persons[persons["ss12000_id"].notna()]
        protected = set(ss.loc[ss["security_marking"] != "Ingen", "person_key"].astype("int64"))
        klient = _not_weeded(_newest(pop.klient, "klient_id", "andrad_tid"), pop.gallring,
                             "klient", "klient_id")
        valid_klient = klient[klient["identifier_valid"].astype(bool)]
        protected |= set(valid_klient.loc[valid_klient["skyddad_identitet"].astype(bool),
                                          "person_key"].astype("int64"))
        self.protected = protected
        self.pupil_keys = set(ss["person_key"].astype("int64"))
        # klient_id -> person for rows that can be linked and may be counted
        linked = valid_klient[~valid_klient["person_key"].astype("int64").isin(protected)]
        self.klient_person = pd.Series(linked["person_key"].astype("int64").to_numpy(),
                                       index=linked["klient_id"].astype("int64").to_numpy())

    def month_bounds(self, months: pd.PeriodIndex) -> pd.DataFrame:
        return pd.DataFrame({
            "month": months,
            "m_start": months.start_time.normalize(),
            "m_end": months.end_time.normalize(),
        })


# ---------------------------------------------------------------------------------------------
# School
# ---------------------------------------------------------------------------------------------

def _enrolment_months(ctx: _Context) -> pd.DataFrame:
    """(person_key, month, area): the pupil's GR enrolment in each school month."""
    e = ctx.pop.enrolments
    e = e[(e["school_type"] == "GR") & e["school_year"].between(1, 9)]
    e = e[e["person_key"].astype("int64").isin(ctx.pupil_keys)
          & ~e["person_key"].astype("int64").isin(ctx.protected)]
    e = pd.DataFrame({"person_key": e["person_key"].astype("int64").to_numpy(),
                      "unit": e["school_unit_code"].astype(str).to_numpy(),
                      "start": _ts(e["start_date"]).to_numpy(),
                      "end": _ts(e["end_date"]).to_numpy()})
    x = e.merge(ctx.month_bounds(ctx.school_months), how="cross")
    open_end = x["end"].isna()
    active = (x["start"] <= x["m_end"]) & (open_end | (x["end"] >= x["m_start"]))
    x = x[active].copy()
    x["on_last"] = open_end[active] | (x["end"] >= x["m_end"])
    x = x.sort_values(["person_key", "month", "on_last", "start"],
                      ascending=[True, True, False, False], kind="stable")
    x = x.drop_duplicates(["person_key", "month"], keep="first")
    x["area"] = x["unit"].map(ctx.unit_area)
    return x[["person_key", "month", "area"]].reset_index(drop=True)


def _offered_absence(ctx: _Context) -> pd.DataFrame:
    """(person_key, month, offered, absence) from reported attendance records."""
    pop = ctx.pop
    att = pop.attendances
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
    att = att[["calendar_event_id", "person_key", "is_reported", "valid_absence_minutes",
               "invalid_absence_minutes"]]
    keep = att["is_reported"].astype(bool).to_numpy() & ~att["person_key"].astype(
        "int64").isin(ctx.protected).to_numpy()
    ev_codes, ev_uniques = pd.factorize(att["calendar_event_id"])
    pos = pd.Index(ev["id"]).get_indexer(pd.Index(ev_uniques))[ev_codes]
    keep &= pos >= 0
    pos = pos[keep]
    start = pd.DatetimeIndex(pd.to_datetime(ev["start_time"], utc=True)).tz_convert(TZ)
    end = pd.DatetimeIndex(pd.to_datetime(ev["end_time"], utc=True)).tz_convert(TZ)
    ev_minutes = ((end - start).total_seconds() / 60).to_numpy()
    ev_day = start.tz_localize(None).normalize()
    ev_month = pd.PeriodIndex(ev_day, freq="M").asi8
    ev_in_range = np.asarray(ev_day <= ctx.R)
    frame = pd.DataFrame({
        "person_key": att["person_key"].to_numpy(dtype=np.int64)[keep],
        "month": ev_month[pos],
        "offered": ev_minutes[pos],
        "absence": (att["valid_absence_minutes"].to_numpy(dtype=np.int64)
                    + att["invalid_absence_minutes"].to_numpy(dtype=np.int64))[keep],
    })[ev_in_range[pos]]
    out = frame.groupby(["person_key", "month"], as_index=False)[["offered", "absence"]].sum()
    out["month"] = pd.PeriodIndex.from_ordinals(out["month"].to_numpy(), freq="M")
    return out


def _pupil_months(ctx: _Context, threshold: float, min_offered: float) -> pd.DataFrame:
    enrol = _enrolment_months(ctx)
    offered = _offered_absence(ctx)
    pm = enrol.merge(offered, on=["person_key", "month"], how="left")
    pm[["offered", "absence"]] = pm[["offered", "absence"]].fillna(0)
    pm["assessed"] = pm["offered"] >= min_offered
    share = pm["absence"] / pm["offered"].where(pm["offered"] > 0)
    pm["high"] = pm["assessed"] & (share >= threshold)
    return pm


# ---------------------------------------------------------------------------------------------
# Case system and police
# ---------------------------------------------------------------------------------------------

def _reports(ctx: _Context) -> pd.DataFrame:
    """Anmälan rows (existing, dated <= R) about a linkable, unprotected person."""
    pop = ctx.pop
    a = _not_weeded(_newest(pop.aktualisering, "aktualisering_id", "andrad_tid"), pop.gallring,
                    "aktualisering", "aktualisering_id")
    a = a[a["typ"] == "Anmälan"]
    kid = a["klient_id"].astype("int64")
    a = a[kid.isin(ctx.klient_person.index)]
    out = pd.DataFrame({
        "aktualisering_id": a["aktualisering_id"].astype("int64").to_numpy(),
        "person_key": ctx.klient_person.loc[a["klient_id"].astype("int64")].to_numpy(),
        "inkom": _ts(a["inkom_datum"]).to_numpy(),
        "fb": _ts(a["forhandsbedomning_datum"]).to_numpy(),
        "area": a["stadsdel"].fillna("").astype(str).str.strip().map(ctx.district_area).to_numpy(),
    })
    return out[out["inkom"] <= ctx.R].reset_index(drop=True)


def _open_cases(ctx: _Context) -> pd.DataFrame:
    """(person_key, start, end) of investigations and interventions (end NaT = open)."""
    pop = ctx.pop
    parts = []
    for table, id_col, start_col, end_col in (("utredning", "utredning_id", "startdatum",
                                               "avslutsdatum"),
                                              ("insats", "insats_id", "startdatum", "slutdatum")):
        df = _not_weeded(_newest(getattr(pop, table), id_col, "andrad_tid"), pop.gallring,
                         table, id_col)
        kid = df["klient_id"].astype("int64")
        df = df[kid.isin(ctx.klient_person.index)]
        start = _ts(df[start_col])
        end = _ts(df[end_col])
        end = end.where(end <= ctx.R)  # an end after R has not happened yet
        part = pd.DataFrame({
            "person_key": ctx.klient_person.loc[df["klient_id"].astype("int64")].to_numpy(),
            "start": start.to_numpy(), "end": end.to_numpy()})
        parts.append(part[part["start"] <= ctx.R])
    return pd.concat(parts, ignore_index=True)


def _police(ctx: _Context) -> pd.DataFrame:
    """Newest, not cancelled police rows of linkable, unprotected persons, Brottsdatum <= R."""
    p = ctx.pop.police_rows.reset_index(drop=True)
    valid = p["identifier_valid"].astype(bool) & p["person_key"].notna()
    identity = np.where(valid, "k" + p["person_key"].astype("Int64").astype(str),
                        "raw:" + p["Personnummer"].fillna("").astype(str))
    p = p.assign(_identity=identity, _valid=valid.to_numpy(),
                 _changed=pd.to_datetime(p["Senast ändrad"]))
    p = _newest(p, ["Diarienummer", "_identity", "Roll"], "_changed")
    p = p[(p["Status"] != "Makulerad") & p["_valid"]]
    out = pd.DataFrame({
        "person_key": p["person_key"].astype("int64").to_numpy(),
        "roll": p["Roll"].astype(str).to_numpy(),
        "brott": _ts(p["Brottsdatum"]).to_numpy(),
        "area": p["Stadsdel"].fillna("").astype(str).str.strip().map(ctx.district_area).to_numpy(),
    })
    out = out[(out["brott"] <= ctx.R) & ~out["person_key"].isin(ctx.protected)]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

def _cells(ctx: _Context, indicator: str, frame: pd.DataFrame, unit: str,
           breakdown: tuple[str, str] = ("totalt", "totalt")) -> pd.DataFrame:
    """frame: month, area (code or NaN), id (the counted unit), and for andel a bool ``num``.

    Every id counts once per month in the city cell and once per month and area."""
    frame = frame[frame["month"].isin(ctx.months)]
    pieces = []
    for level, keys in (("stad", ["month"]), ("stadsdelsomrade", ["month", "area"])):
        f = frame if level == "stad" else frame[frame["area"].notna()]
        if unit == "antal":
            g = f.drop_duplicates([*keys, "id"]).groupby(keys).size().rename("numerator")
            g = g.reset_index()
            g["denominator"] = np.nan
            g["value"] = g["numerator"].astype(float)
        else:
            d = f.groupby([*keys, "id"], as_index=False)["num"].max()
            g = d.groupby(keys).agg(numerator=("num", "sum"), denominator=("num", "size"))
            g = g.reset_index()
            g["value"] = g["numerator"] / g["denominator"]
        if level == "stad":
            g["area_code"] = ctx.pop.municipality_code
            g["area_name"] = ctx.pop.municipality_name
        else:
            g["area_code"] = g["area"]
            g["area_name"] = g["area"].map(ctx.area_name)
        g["area_level"] = level
        pieces.append(g)
    out = pd.concat(pieces, ignore_index=True)
    count = out["numerator"] if unit == "antal" else out["denominator"]
    out = out[count >= 1]
    months = pd.PeriodIndex(out["month"], freq="M")
    return pd.DataFrame({
        "indicator_id": indicator,
        "indicator_name": INDICATOR_NAMES[indicator],
        "period_type": "manad",
        "period_start": [d.date() for d in months.start_time],
        "period_end": [d.date() for d in months.end_time.normalize()],
        "area_level": out["area_level"].to_numpy(),
        "area_code": out["area_code"].to_numpy(),
        "area_name": out["area_name"].to_numpy(),
        "breakdown": breakdown[0],
        "breakdown_value": breakdown[1],
        "numerator": out["numerator"].astype("int64").to_numpy(),
        "denominator": out["denominator"].astype(float).to_numpy(),
        "value": out["value"].astype(float).to_numpy(),
        "unit": unit,
    })


def _window_join(events: pd.DataFrame, months: pd.DataFrame, date_col: str) -> pd.DataFrame:
    """Pairs (event, month) with period_end - 12 months < date <= period_end."""
    x = events.merge(months, how="cross")
    return x[(x[date_col] > x["w_start"]) & (x[date_col] <= x["m_end"])]


def compute_ground_truth(pop: Population, *, high_absence_threshold: float = 0.15,
                         min_offered_minutes: int = 300, report_months: int = 12) -> pd.DataFrame:
    """The six first-release indicators per month, for the city and each stadsdelsområde."""
    ctx = _Context(pop, report_months)
    R = ctx.R
    months = ctx.month_bounds(ctx.months)
    months["w_start"] = months["m_end"] - pd.DateOffset(months=12)
    out = []

    # hog_franvaro
    pm = _pupil_months(ctx, high_absence_threshold, min_offered_minutes)
    assessed = pm[pm["assessed"]]
    out.append(_cells(ctx, "hog_franvaro", assessed.assign(id=assessed["person_key"],
                                                           num=assessed["high"]), "andel"))

    # orosanmalningar and forhandsbedomning_14_dagar
    reports = _reports(ctx)
    ages = _age(pd.Series(ctx.birth.loc[reports["person_key"]].to_numpy()), reports["inkom"])
    child_reports = reports[(ages >= 0).to_numpy() & (ages <= 17).to_numpy()].copy()
    child_reports["month"] = pd.PeriodIndex(child_reports["inkom"], freq="M")
    out.append(_cells(ctx, "orosanmalningar",
                      child_reports.assign(id=child_reports["aktualisering_id"]), "antal"))
    deadline = child_reports["inkom"] + pd.Timedelta(days=14)
    due = child_reports[deadline < R]
    fb = due["fb"].where(due["fb"] <= R)  # a decision dated after R is still pending
    out.append(_cells(ctx, "forhandsbedomning_14_dagar",
                      due.assign(id=due["aktualisering_id"],
                                 num=fb.notna() & (fb <= deadline[deadline < R])), "andel"))

    # unga_misstankta
    police = _police(ctx)
    page = _age(pd.Series(ctx.birth.loc[police["person_key"]].to_numpy()), police["brott"])
    young = police[(police["roll"] == "Misstänkt").to_numpy() & (page >= 0).to_numpy()
                   & (page < 18).to_numpy()].copy()
    young["month"] = pd.PeriodIndex(young["brott"], freq="M")
    out.append(_cells(ctx, "unga_misstankta", young.assign(id=young["person_key"]), "antal"))

    # hog_franvaro_med_orosanmalan
    high = pm[pm["high"] & pm["month"].isin(ctx.months)]
    high = high.merge(months[["month", "m_end", "w_start"]], on="month")
    with_report = high.merge(reports[["person_key", "inkom"]], on="person_key")
    with_report = with_report[(with_report["inkom"] > with_report["w_start"])
                              & (with_report["inkom"] <= with_report["m_end"])]
    hit = with_report[["person_key", "month"]].drop_duplicates().assign(num=True)
    high = high.merge(hit, on=["person_key", "month"], how="left")
    high["num"] = high["num"].astype("boolean").fillna(False).astype(bool)
    out.append(_cells(ctx, "hog_franvaro_med_orosanmalan", high.assign(id=high["person_key"]),
                      "andel"))

    # kanda_av_flera
    mb = months[["month", "m_end", "w_start"]]
    school_high = pm[pm["high"]][["person_key", "month"]].rename(columns={"month": "hm"})
    school_high["hm_end"] = pd.PeriodIndex(school_high["hm"], freq="M").end_time.normalize()
    school = _window_join(school_high, mb, "hm_end")[["person_key", "month"]]
    social_reports = _window_join(reports[["person_key", "inkom"]], mb, "inkom")
    cases = _open_cases(ctx).merge(mb, how="cross")
    cases = cases[(cases["start"] <= cases["m_end"])
                  & (cases["end"].isna() | (cases["end"] > cases["w_start"]))]
    social = pd.concat([social_reports[["person_key", "month"]], cases[["person_key", "month"]]])
    police_known = _window_join(police[["person_key", "brott"]], mb, "brott")[["person_key", "month"]]
    known = pd.concat([
        school.drop_duplicates().assign(agency=1),
        social.drop_duplicates().assign(agency=2),
        police_known.drop_duplicates().assign(agency=3),
    ])
    n_agencies = known.groupby(["person_key", "month"]).size().rename("n").reset_index()
    n_agencies = n_agencies.merge(mb[["month", "m_end"]], on="month")
    kage = _age(pd.Series(ctx.birth.loc[n_agencies["person_key"]].to_numpy()), n_agencies["m_end"])
    n_agencies = n_agencies[(kage >= 0).to_numpy() & (kage <= 17).to_numpy()
                            & (n_agencies["n"] >= 2).to_numpy()]
    n_agencies = n_agencies[~n_agencies["person_key"].isin(ctx.protected)]
    enrol = _enrolment_months(ctx)
    n_agencies = n_agencies.merge(enrol, on=["person_key", "month"], how="left")
    out.append(_cells(ctx, "kanda_av_flera", n_agencies.assign(id=n_agencies["person_key"]),
                      "antal"))
    three = n_agencies[n_agencies["n"] == 3]
    out.append(_cells(ctx, "kanda_av_flera", three.assign(id=three["person_key"]), "antal",
                      breakdown=("antal_verksamheter", "3")))

    result = pd.concat(out, ignore_index=True)[OUTPUT_COLUMNS]
    order = {k: i for i, k in enumerate(INDICATOR_NAMES)}
    result = result.assign(_i=result["indicator_id"].map(order),
                           _l=(result["area_level"] != "stad").astype(int))
    result = result.sort_values(["_i", "period_start", "breakdown", "_l", "area_code"],
                                kind="stable").drop(columns=["_i", "_l"])
    return result.reset_index(drop=True)


def write_ground_truth(df: pd.DataFrame, path: Path | str) -> Path:
    """Write the ground truth as CSV (UTF-8, comma, ISO dates, integer counts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    for col in ("period_start", "period_end"):
        out[col] = [d.isoformat() if isinstance(d, dt.date) else d for d in out[col]]
    out["numerator"] = out["numerator"].astype("Int64")
    out["denominator"] = pd.array(out["denominator"].astype(float).round(), dtype="Int64")
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path
