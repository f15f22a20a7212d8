"""The chosen indicators in hand-written DuckDB SQL, straight from the raw tables of the
restricted warehouse (``raw_ss12000.*``, ``raw_case_system.*``, ``load_meta.batches``) and the
municipality's reference files, giving the same cells as the dbt models ``ind_<id>``:

- ``hog_franvaro``: pupils with high absence (school areas and unit, Huvudman, årskurs);
- ``orosanmalningar``: reports of concern about children (the handling stadsdelsområde, reporter);
- ``hog_franvaro_med_orosanmalan``: pupils with high absence and a report of concern in the
  trailing window (school areas; attendance × case system).

The same rules as the models (INDICATOR_RULES.md): the newest version of each record, minus
deletions (SS 12000 /deletedEntities, case-system gallring); linkable persons only (a valid
number, not protected in any source); the report periods of the window ending at the
reference date. Inside the restricted zone the queries join people on the normalised
personnummer itself (counting distinct numbers counts distinct pseudonyms); no number leaves
the query: the result is cells (period, area, breakdown, counts) only.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import duckdb

INDICATORS = ("hog_franvaro", "orosanmalningar", "hog_franvaro_med_orosanmalan")
CELL_COLUMNS = ("period_type", "period_start", "area_level", "area_code", "breakdown",
                "breakdown_value", "numerator", "denominator")
RAW = "raw"  # the restricted warehouse, attached read-only under this name


def _date(value: str | dt.date) -> str:
    return f"date '{dt.date.fromisoformat(str(value)).isoformat()}'"


def _int(value: Any) -> int:
    return int(str(value).strip())


def _number(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise ValueError(f"not a number: {text!r}")
    return text


def _string(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def common_ctes(params: dict[str, Any]) -> str:
    """The CTEs every indicator reads from: report periods, live persons and clients, linkable
    numbers, current pupils' enrolments per period, attendance per pupil and period and the
    reports of concern. Unreferenced CTEs cost nothing."""
    r = _date(params["reference_date"])
    months = _int(params["report_months"])
    trailing = _int(params["trailing_months"])
    orgnr = re.sub(r"[^0-9]", "", str(params["municipality_organisation_number"]))
    return f"""
    batches as (select batch_id, loaded_at from {RAW}.load_meta.batches),
    window_bounds as (
        select cast(date_trunc('month', {r}) - to_months({months - 1}) as date) as ws
    ),
    period_starts as (
        select 'vecka' as period_type, unnest(generate_series(cast(date_trunc('week', ws) as timestamp),
               cast({r} as timestamp), interval 7 day)) as ts, interval 7 day as len from window_bounds
        union all
        select 'manad', unnest(generate_series(cast(ws as timestamp), cast({r} as timestamp),
               interval 1 month)), interval 1 month from window_bounds
        union all
        select 'termin', unnest(generate_series(cast(make_date(year(ws), case when month(ws) <= 6
               then 1 else 7 end, 1) as timestamp), cast({r} as timestamp), interval 6 month)),
               interval 6 month from window_bounds
        union all
        select 'ar', unnest(generate_series(cast(date_trunc('year', ws) as timestamp),
               cast({r} as timestamp), interval 1 year)), interval 1 year from window_bounds
    ),
    periods as (
        select period_type, cast(ts as date) as period_start,
               cast(ts + len - interval 1 day as date) as period_end,
               -- a look-back ends at the period's last day, a running period's at R
               least(cast(ts + len - interval 1 day as date), {r}) as lookback_end,
               cast(least(cast(ts + len - interval 1 day as date), {r}) - to_months({trailing}) as date)
                   as trailing_window_start
        from period_starts
    ),
    ss_deleted as (
        select lower(regexp_replace(entity_type, '[^A-Za-z]', '', 'g')) as entity, id
        from {RAW}.raw_ss12000.deleted_entities
    ),
    persons as materialized (
        select p.id as person_id, p.batch_id, p.modified_at,
               samverkan_normalise_pnr_of(p.civic_no, p.candidate, {r}) as pnr12,
               coalesce(p.security_marking, '') <> 'Ingen' as is_protected
        from (select *, samverkan_pnr_candidate(samverkan_pnr_clean(civic_no), {r}) as candidate
              from {RAW}.raw_ss12000.persons) as p left join batches using (batch_id)
        where p.id not in (select id from ss_deleted where entity = 'persons')
        qualify row_number() over (partition by p.id order by p.modified_at desc nulls last,
                                   loaded_at desc nulls last, p.batch_id desc) = 1
    ),
    clients as materialized (
        select k.klient_id, samverkan_normalise_pnr_of(k.personnummer, k.candidate, {r}) as pnr12,
               coalesce(k.skyddad_identitet, false) as is_protected
        from (select *, samverkan_pnr_candidate(samverkan_pnr_clean(personnummer), {r}) as candidate
              from {RAW}.raw_case_system.klient) as k left join batches using (batch_id)
        where k.klient_id not in (select rad_id from {RAW}.raw_case_system.gallring
                                  where lower(trim(tabell)) = 'klient')
        qualify row_number() over (partition by k.klient_id order by k.andrad_tid desc nulls last,
                                   loaded_at desc nulls last, k.batch_id desc) = 1
    ),
    linkable as (
        select pnr12 from (
            select pnr12, is_protected from persons
            union all
            select pnr12, is_protected from clients
        ) where pnr12 is not null
        group by pnr12 having not bool_or(is_protected)
    ),
    linkable_persons as (
        select persons.person_id, persons.pnr12, persons.batch_id
        from persons inner join linkable using (pnr12)
    ),
    organisations as (
        select o.id, o.parent_organisation_id, o.organisation_number, o.school_unit_code
        from {RAW}.raw_ss12000.organisations as o left join batches using (batch_id)
        where o.id not in (select id from ss_deleted where entity = 'organisations')
        qualify row_number() over (partition by o.id order by o.modified_at desc nulls last,
                                   loaded_at desc nulls last, o.batch_id desc) = 1
    ),
    enrolments as (
        select distinct e.person_id, e.school_unit_id, upper(trim(e.school_type)) as school_type,
               e.school_year, e.start_date, e.end_date
        from {RAW}.raw_ss12000.enrolments as e
        inner join persons on persons.person_id = e.person_id and persons.batch_id = e.batch_id
        qualify e.person_modified_at is not distinct from
            max(e.person_modified_at) over (partition by e.person_id)
    ),
    pupil_enrolments as (
        select lp.pnr12, units.school_unit_code, e.school_year,
               case when units.id is null then null
                    when regexp_replace(coalesce(huvudman.organisation_number, ''), '[^0-9]', '', 'g')
                         = {_string(orgnr)} then 'kommunal'
                    else 'fristående' end as huvudman_kind,
               su.sspf_omrade_code, sspf.stadsdelsomrade_code, e.start_date,
               case when e.end_date <= {r} then e.end_date end as end_date
        from enrolments as e
        inner join linkable_persons as lp on lp.person_id = e.person_id
        left join organisations as units on units.id = e.school_unit_id
        left join organisations as huvudman on huvudman.id = units.parent_organisation_id
        left join reference.ref_skolenheter as su on su.school_unit_code = units.school_unit_code
        left join reference.ref_sspf_omraden as sspf on sspf.sspf_omrade_code = su.sspf_omrade_code
        where e.school_type = 'GR' and e.school_year between 1 and 9
            and e.start_date is not null and e.start_date <= {r}
    ),
    enrolled as (
        select pe.*, periods.period_type, periods.period_start, periods.period_end,
               periods.lookback_end, periods.trailing_window_start
        from pupil_enrolments as pe
        inner join periods on pe.start_date <= periods.period_end
            and coalesce(pe.end_date, date '9999-12-31') >= periods.period_start
        qualify row_number() over (
            partition by pe.pnr12, periods.period_type, periods.period_start
            order by coalesce(pe.end_date, date '9999-12-31') >= periods.period_end desc,
                     pe.start_date desc, pe.end_date desc nulls first,
                     pe.school_unit_code nulls last, pe.school_year desc) = 1
    ),
    lessons as (
        select c.id, cast(timezone('Europe/Stockholm', c.start_time) as date) as lesson_date,
               cast(epoch_ms(c.end_time) - epoch_ms(c.start_time) as double) / 60000 as minutes
        from {RAW}.raw_ss12000.calendar_events as c left join batches using (batch_id)
        where c.id not in (select id from ss_deleted where entity = 'calendarevents')
        qualify row_number() over (partition by c.id order by c.modified_at desc nulls last,
                                   loaded_at desc nulls last, c.batch_id desc) = 1
    ),
    attendances as (
        -- the newest version of each record: the window runs over the few columns that choose
        -- it and the row's position, then the chosen rows are read
        select a.calendar_event_id, a.student_id, coalesce(a.is_reported, false) as is_reported,
               coalesce(a.valid_absence_minutes, 0) + coalesce(a.invalid_absence_minutes, 0)
                   as absence_minutes
        from {RAW}.raw_ss12000.attendances as a
        where a.rowid in (
            select v.rowid from {RAW}.raw_ss12000.attendances as v left join batches using (batch_id)
            where v.id not in (select id from ss_deleted where entity = 'attendances')
            qualify row_number() over (partition by v.id order by v.modified_at desc nulls last,
                                       loaded_at desc nulls last, v.batch_id desc) = 1)
    ),
    pupil_days as (
        select lp.pnr12, lessons.lesson_date,
               sum(lessons.minutes) filter (where a.is_reported) as offered,
               sum(a.absence_minutes) filter (where a.is_reported) as absent
        from attendances as a
        inner join lessons on lessons.id = a.calendar_event_id and lessons.lesson_date <= {r}
        inner join linkable_persons as lp on lp.person_id = a.student_id
        group by all
    ),
    pupil_periods as (
        select enrolled.*,
               coalesce(sums.offered, 0) >= {_number(params["min_offered_minutes"])} as is_assessed,
               coalesce(sums.offered, 0) >= {_number(params["min_offered_minutes"])}
                   and coalesce(sums.absent, 0) / sums.offered
                       >= cast({_number(params["high_absence_threshold"])} as double) as is_high
        from enrolled
        left join (
            -- each day's four periods by arithmetic, joined to the periods by equality
            select pd.pnr12, k.period_type, k.period_start,
                   sum(coalesce(pd.offered, 0)) as offered, sum(coalesce(pd.absent, 0)) as absent
            from pupil_days as pd
            cross join lateral (
                select unnest(['vecka', 'manad', 'termin', 'ar']) as period_type,
                       unnest([cast(date_trunc('week', pd.lesson_date) as date),
                               cast(date_trunc('month', pd.lesson_date) as date),
                               make_date(year(pd.lesson_date),
                                         case when month(pd.lesson_date) <= 6 then 1 else 7 end, 1),
                               cast(date_trunc('year', pd.lesson_date) as date)]) as period_start
            ) as k
            group by all
        ) as sums using (pnr12, period_type, period_start)
    ),
    matters as (
        select a.*
        from {RAW}.raw_case_system.aktualisering as a left join batches using (batch_id)
        where a.aktualisering_id not in (select rad_id from {RAW}.raw_case_system.gallring
                                         where lower(trim(tabell)) = 'aktualisering')
        qualify row_number() over (partition by a.aktualisering_id order by a.andrad_tid desc
                                   nulls last, loaded_at desc nulls last, a.batch_id desc) = 1
    ),
    reports as (
        select m.aktualisering_id as report_key, clients.pnr12, m.inkom_datum,
               coalesce(nullif(trim(m.anmalare_kategori), ''), 'Okänd') as anmalare_kategori,
               -- the stadsdelsområde handling the matter: its name, else its code
               coalesce(by_name.stadsdelsomrade_code, by_code.stadsdelsomrade_code)
                   as stadsdelsomrade_code,
               samverkan_pnr_birth_date(clients.pnr12) as birth_date
        from matters as m
        inner join clients on clients.klient_id = m.klient_id
        inner join linkable on linkable.pnr12 = clients.pnr12
        left join reference.ref_stadsdelsomraden as by_name
            on nullif(trim(by_name.stadsdelsomrade_name), '') = nullif(trim(m.stadsdel), '')
        left join reference.ref_stadsdelsomraden as by_code
            on nullif(trim(by_code.stadsdelsomrade_code), '') = nullif(trim(m.stadsdel), '')
        where trim(m.typ) = 'Anmälan'
    ),
    live_reports as (
        select * from reports
        where inkom_datum is not null and inkom_datum <= {r}
    )"""


def _age_between_0_and_17(birth: str, on: str) -> str:
    return (f"(year({on}) - year({birth}) - case when month({on}) * 100 + day({on}) "
            f"< month({birth}) * 100 + day({birth}) then 1 else 0 end) between 0 and 17")


def _area_columns(city: str, school_units: bool = False, sspf: bool = True) -> str:
    """``area_level`` and ``area_code`` of a cell from which area column its grouping set
    holds: district (stadsdelsområde), SSPF area (unless not asked), school unit (when asked),
    else the city."""
    levels = [("stadsdelsomrade_code", "stadsdelsomrade")] + (
        [("sspf_omrade_code", "sspf_omrade")] if sspf else [])
    if school_units:
        levels.append(("school_unit_code", "skolenhet"))
    level = " ".join(f"when grouping({c}) = 0 then '{name}'" for c, name in levels)
    code = " ".join(f"when grouping({c}) = 0 then {c}" for c, _ in levels)
    return (f"case {level} else 'stad' end as area_level,\n"
            f"                case {code} else {city} end as area_code")


def indicator_sql(indicator: str, params: dict[str, Any]) -> str:
    """One query giving the cells of ``indicator`` (columns :data:`CELL_COLUMNS`)."""
    city = _string(params["municipality_code"])
    ctes = common_ctes(params)
    if indicator == "hog_franvaro":
        return f"""
        with {ctes},
        units as (
            select * , cast(school_year as varchar) as arskurs from pupil_periods where is_assessed
        ),
        cells as (
            select period_type, period_start,
                {_area_columns(city, school_units=True)},
                case when grouping(huvudman_kind) = 0 then 'huvudman'
                     when grouping(arskurs) = 0 then 'arskurs' else 'totalt' end as breakdown,
                case when grouping(huvudman_kind) = 0 then huvudman_kind
                     when grouping(arskurs) = 0 then arskurs else 'totalt' end as breakdown_value,
                -- one row per pupil and period: counting rows counts pupils
                count(*) filter (where is_high) as numerator,
                count(*) as denominator
            from units
            group by grouping sets (
                (period_type, period_start), (period_type, period_start, huvudman_kind),
                (period_type, period_start, arskurs),
                (period_type, period_start, stadsdelsomrade_code),
                (period_type, period_start, stadsdelsomrade_code, huvudman_kind),
                (period_type, period_start, stadsdelsomrade_code, arskurs),
                (period_type, period_start, sspf_omrade_code),
                (period_type, period_start, sspf_omrade_code, huvudman_kind),
                (period_type, period_start, sspf_omrade_code, arskurs),
                (period_type, period_start, school_unit_code),
                (period_type, period_start, school_unit_code, huvudman_kind),
                (period_type, period_start, school_unit_code, arskurs))
        )
        select {', '.join(CELL_COLUMNS)} from cells
        where area_code is not null and breakdown_value is not null and denominator >= 1
        """
    if indicator == "orosanmalningar":
        return f"""
        with {ctes},
        units as (
            select periods.period_type, periods.period_start, lr.*
            from live_reports as lr
            inner join periods on lr.inkom_datum between periods.period_start and periods.period_end
            where {_age_between_0_and_17('lr.birth_date', 'lr.inkom_datum')}
        ),
        cells as (
            select period_type, period_start,
                {_area_columns(city, sspf=False)},
                case when grouping(anmalare_kategori) = 0 then 'anmalare' else 'totalt' end as breakdown,
                case when grouping(anmalare_kategori) = 0 then anmalare_kategori else 'totalt' end
                    as breakdown_value,
                count(*) as numerator,  -- one row per report and period
                cast(null as bigint) as denominator
            from units
            group by grouping sets (
                (period_type, period_start), (period_type, period_start, anmalare_kategori),
                (period_type, period_start, stadsdelsomrade_code),
                (period_type, period_start, stadsdelsomrade_code, anmalare_kategori))
        )
        select {', '.join(CELL_COLUMNS)} from cells
        where area_code is not null and breakdown_value is not null and numerator >= 1
        """
    if indicator == "hog_franvaro_med_orosanmalan":
        return f"""
        with {ctes},
        high as (select * from pupil_periods where is_high),
        units as (
            select high.*, exists (
                select 1 from live_reports as lr
                where lr.pnr12 = high.pnr12 and lr.inkom_datum > high.trailing_window_start
                    and lr.inkom_datum <= high.lookback_end) as has_report
            from high
        ),
        cells as (
            select period_type, period_start,
                {_area_columns(city)},
                'totalt' as breakdown, 'totalt' as breakdown_value,
                count(*) filter (where has_report) as numerator,  -- one row per pupil and period
                count(*) as denominator
            from units
            group by grouping sets ((period_type, period_start),
                (period_type, period_start, stadsdelsomrade_code),
                (period_type, period_start, sspf_omrade_code))
        )
        select {', '.join(CELL_COLUMNS)} from cells
        where area_code is not null and denominator >= 1
        """
    raise ValueError(f"unknown indicator {indicator!r}; one of {', '.join(INDICATORS)}")


def connect(restricted_db: str, reference_dir: str, p: Any = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection (the data directory's DuckDB settings) with the restricted
    warehouse attached read-only as ``raw``, the municipality's reference files (checked as
    the pipeline checks them) in ``reference.*`` and the identity macros (no key: the queries
    never pseudonymise)."""
    from pathlib import Path

    from samverkan import database
    from samverkan.config.reference import load_reference, read_reference
    from samverkan.pseudonymisation import install_identity_functions

    conn = database.connect(":memory:", p=p)
    conn.execute(f"attach '{restricted_db}' as {RAW} (read_only)")
    load_reference(conn, read_reference(Path(reference_dir)))
    install_identity_functions(conn, None)
    return conn


def compute(conn: duckdb.DuckDBPyConnection, indicator: str, params: dict[str, Any]) -> Any:
    """The cells of ``indicator`` as an Arrow table."""
    return conn.execute(indicator_sql(indicator, params)).fetch_arrow_table()
