"""Incremental nightly builds equal a full rebuild and the ground truth.

The term comes in over three nights, each a bounded pull of every source (changes up to the
end of a day, as a backfill pulls them) followed by ``steps.transform``, which builds the
attendance chain incrementally (only the records and lesson days the night's SS 12000 batches
touched):

- night 1: everything up to ``DAY_1``, at R = ``DAY_1`` - 7 days (the days after R are in
  the warehouse but do not count yet); then the same night's build at R = ``DAY_1``, with
  nothing new (the week before ``DAY_1``'s must be rebuilt: days in it moved past R), and
  again with another high-absence threshold (every pupil-period must be rebuilt, and again
  the next night when the threshold is back);
- night 2: one more school day, at R = ``DAY_2``, plus a late correction of an old day's
  attendance record (a new version, stamped within that day), the deletion of another old
  record, and a pupil's enrolment given an end date between R of night 2 and night 3; then,
  with nothing new, a build at R = ``MONTH_END`` (a Sunday and May's last day: May and its
  last week hold R and have ended before night 3's R, with the same window);
- night 3: the rest of the term, at R = the term's end (a new month: new periods, the lag
  moves), plus a lesson moved to another week (its records move with it: the old and the
  new day must both be rebuilt), another correction and a deletion, a pupil who moves to
  another school unit and a pupil who becomes protected.

The same changes are applied to a copy of the simulator's frames and the ground truth is
recomputed. ``fct_pupil_periods`` is incremental too: night 3 must rebuild every period of
the pupils whose enrolments, protection or R-dependent enrolment state changed, and keep the
rows of the other pupils in periods no change reached. ``fct_child_agency_periods`` is built
with the chain every time: after each build its school flags must follow that build's high
absence (the threshold's change reaches kept rows of periods that have ended), night 3 must
rebuild the running periods whole and keep most rows of the periods that ended before, and
it must equal a full rebuild row for row at the end. After night 3 the incremental build
is published; then ``steps.transform`` with ``full_refresh=True`` rebuilds everything from
scratch and is published too. The two ``indicators.csv`` must be byte-identical apart from
``data_version``, and equal the ground truth. A touched-days rule that misses a day leaves
stale attendance in it and fails both.

Plain step functions (no Prefect): extract → transform → publish.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
from simulated_home import serving, simulated_home
from truth_compare import assert_equals_truth, read_cells

from samverkan.simulator.population import TZ, Population

SEED = 5
PUPILS = 800
LESSONS_PER_DAY = 2
TEST_KEY = "samverkan-test-key-incremental-0123456789"
DAY_1 = dt.date(2026, 5, 27)   # night 1 pulls up to here (a Wednesday)
DAY_2 = dt.date(2026, 5, 28)   # night 2: one more school day
OLD_DAYS = (dt.date(2026, 5, 4), dt.date(2026, 5, 12))  # corrected and deleted on night 2
MOVED_FROM = dt.date(2026, 5, 6)  # night 3 moves a lesson of this day one week on
FIRST_R = DAY_1 - dt.timedelta(days=7)  # night 1's first build: R a week before DAY_1
PAST_WEEK = dt.date(2026, 5, 18)         # FIRST_R's week (Monday)
MONTH_END = dt.date(2026, 5, 31)  # a Sunday, May's last day: R on the last day of periods
STOCKHOLM = TZ


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo("Europe/Stockholm"))


# --- choosing records on the frames ----------------------------------------------------------

def _lessons(pop: Population) -> pd.DataFrame:
    ev = pop.calendar_events
    start = pd.to_datetime(ev["start_time"], utc=True).dt.tz_convert(STOCKHOLM)
    end = pd.to_datetime(ev["end_time"], utc=True).dt.tz_convert(STOCKHOLM)
    return pd.DataFrame({"calendar_event_id": ev["id"].to_numpy(),
                         "day": start.dt.date.to_numpy(),
                         "length": ((end - start).dt.total_seconds() // 60).to_numpy()})


def _present_records(pop: Population, day: dt.date) -> pd.DataFrame:
    """Reported records of ``day`` without absence, of pupils with an SS 12000 id."""
    att = pop.attendances.merge(_lessons(pop), on="calendar_event_id")
    att = att[(att["day"] == day) & att["is_reported"].astype(bool)
              & (att["valid_absence_minutes"] == 0) & (att["invalid_absence_minutes"] == 0)]
    return att.sort_values("id")


def _absent(pop: Population, record_id: str, minutes: int) -> Population:
    att = pop.attendances.copy()
    hit = att["id"] == record_id
    assert hit.sum() == 1
    att.loc[hit, "invalid_absence_minutes"] = minutes
    att.loc[hit, "attendance_minutes"] = 0
    return dataclasses.replace(pop, attendances=att)


def _deleted(pop: Population, record_id: str) -> Population:
    att = pop.attendances
    assert (att["id"] == record_id).sum() == 1
    return dataclasses.replace(pop, attendances=att[att["id"] != record_id])


def _enrolments_changed(pop: Population, person_key: int, rows: list[dict[str, Any]]) -> Population:
    enrolments = pop.enrolments[pop.enrolments["person_key"] != person_key]
    new = pd.DataFrame([{"person_key": person_key, **row} for row in rows])
    enrolments = pd.concat([enrolments, new.astype(enrolments.dtypes.to_dict())], ignore_index=True)
    return dataclasses.replace(pop, enrolments=enrolments)


def _protected(pop: Population, person_key: int) -> Population:
    persons = pop.persons.copy()
    hit = persons["person_key"] == person_key
    assert hit.sum() == 1
    persons.loc[hit, "protected"] = True
    persons.loc[hit, "security_marking"] = "Sekretessmarkering"
    return dataclasses.replace(pop, persons=persons)


def _plain_pupils(pop: Population, day: dt.date) -> list[int]:
    """Linkable pupils (valid number, no security marking) present on ``day``, with one open
    enrolment, whose person record is served by then."""
    from samverkan.pseudonymisation import pseudonymise

    one = pop.enrolments.groupby("person_key").filter(
        lambda e: len(e) == 1 and e["end_date"].isna().all())["person_key"]
    persons = pop.persons[pop.persons["person_key"].isin(set(one))
                          & pop.persons["person_key"].isin(set(_present_records(pop, day)["person_key"]))
                          & (pop.persons["security_marking"] == "Ingen")
                          & (pd.to_datetime(pop.persons["modified_at"], utc=True) < _noon(day))
                          ].sort_values("person_key")
    valid = pseudonymise(persons["pnr"].tolist(), TEST_KEY.encode(), pop.reference_date)
    return [int(k) for k, v in zip(persons["person_key"], valid, strict=True) if v]


def _moved(pop: Population, event_id: str, by: dt.timedelta) -> Population:
    ev = pop.calendar_events.copy()
    hit = ev["id"] == event_id
    assert hit.sum() == 1
    for column in ("start_time", "end_time"):
        ev.loc[hit, column] = ev.loc[hit, column] + by
    return dataclasses.replace(pop, calendar_events=ev)


# --- the same changes on the server ----------------------------------------------------------

def _served_absent(data: Any, record_id: str, minutes: int, at: dt.datetime | None) -> None:
    """A new version of the record: absent the whole lesson. ``at`` stamps it (served
    verbatim, so a bounded pull up to that day sees it); None: the server's clock."""
    record = data.get("attendances", record_id)
    record["invalidAbsenceMinutes"] = minutes
    record["attendanceMinutes"] = 0
    if at is None:
        data.upsert("attendances", record)
    else:
        record["meta"]["modified"] = at.isoformat()
        data.upsert("attendances", record, verbatim=True)


def _served_person(data: Any, ss12000_id: str, at: dt.datetime | None, *,
                   enrolments: list[dict[str, Any]] | None = None,
                   security_marking: str | None = None) -> None:
    record = data.get("persons", ss12000_id)
    if enrolments is not None:
        record["enrolments"] = enrolments
    if security_marking is not None:
        record["securityMarking"] = security_marking
    if at is None:
        data.upsert("persons", record)
    else:
        record["meta"]["modified"] = at.isoformat()
        data.upsert("persons", record, verbatim=True)


def _served_moved(data: Any, event_id: str, by: dt.timedelta) -> None:
    record = data.get("calendarEvents", event_id)
    for key in ("startTime", "endTime"):
        record[key] = (dt.datetime.fromisoformat(record[key]) + by).isoformat()
    data.upsert("calendarEvents", record)


# --- the pipeline ------------------------------------------------------------------------------

def _night(settings: Any, until: dt.date | None) -> list[Any]:
    from samverkan import steps

    results = [steps.extract(settings, source, until=until) for source in steps.SOURCES]
    assert all(r.ok for r in results), [b for r in results for b in r.batches if not b.valid]
    return results


def _build_chain(settings: Any, ref: dt.date, **changed_vars: Any) -> float:
    """The night's build of the incremental models only (the models up to fct_pupil_periods,
    whose post-hook marks the batches built, and fct_child_agency_periods, with their data
    tests), as steps.transform runs it: the same vars (but ``changed_vars``) and logic
    fingerprint. The nights before the last need nothing more."""
    import time

    from samverkan import steps
    from samverkan.incremental import FINGERPRINT_VAR, logic_fingerprint, rebuild_reason
    from samverkan.transform import dbt_build

    started = time.monotonic()
    assert rebuild_reason(settings.paths) is None
    outcome = dbt_build(settings.paths, {**steps.dbt_vars(settings, "night", ref),
                                         FINGERPRINT_VAR: logic_fingerprint(), **changed_vars},
                        extra_args=("--select", "+fct_pupil_periods", "+fct_child_agency_periods",
                                    "--indirect-selection", "cautious",
                                    *steps.PIPELINE_DBT_ARGS))
    assert outcome.success, outcome.failures
    return time.monotonic() - started


def _publish(settings: Any, ref: dt.date, results: list[Any]) -> Path:
    """The last night as the pipeline runs it: an incremental build, the gate, publication."""
    from samverkan import steps
    from samverkan.publish import new_version

    version = new_version()
    outcome = steps.transform(settings, version, ref)
    assert outcome.success, outcome.failures
    publication = steps.publish(settings, version, ref, results, outcome.success)
    assert publication.published, publication.failed
    copy = settings.paths.home / "indicators-incremental.csv"
    shutil.copyfile(settings.paths.current_publication.resolve() / "indicators.csv", copy)
    return copy


def _full_refresh(settings: Any, ref: dt.date) -> Path:
    """A full rebuild (``samverkan run --full-refresh``) and the indicator table the gate would
    publish from it (``export_candidate``: the published CSV, secondary suppression applied)."""
    from samverkan import steps
    from samverkan.publish import discard_candidate, export_candidate, new_version

    version = new_version()
    outcome = steps.transform(settings, version, ref, full_refresh=True)
    assert outcome.success, outcome.failures
    staging = export_candidate(settings.paths, version, min_cell=settings.min_cell,
                               trailing_weeks=steps.lagesbild_trailing_weeks(settings))
    copy = settings.paths.home / "indicators-full.csv"
    shutil.copyfile(staging / "indicators.csv", copy)
    discard_candidate(staging)
    return copy


def _bookkeeping(settings: Any) -> pd.DataFrame:
    conn = duckdb.connect(str(settings.paths.restricted_db), read_only=True)
    try:
        return conn.execute("select * from staging.stg_ss12000__batch_lesson_days").df()
    finally:
        conn.close()


# The incremental marts and the column marked in their rows (x -> -1 - x, negative; no data
# test constrains its sign)
MARKED = {"fct_pupil_periods": "settled_reported_records",
          "fct_child_agency_periods": "age_on_period_end"}


def _mark_kept_rows(settings: Any) -> set[str]:
    """Mark every row of the incremental marts before a build: the rows the build keeps stay
    marked, the rows it writes are not. Returns the pupils in fct_pupil_periods."""
    conn = duckdb.connect(str(settings.paths.analytics_db))
    try:
        for table, column in MARKED.items():
            conn.execute(f"update marts.{table} set {column} = -1 - {column}")
        return {p for (p,) in conn.execute(
            "select distinct person_pseudonym from marts.fct_pupil_periods").fetchall()}
    finally:
        conn.close()


def _rewritten_and_unmarked(settings: Any) -> dict[str, pd.DataFrame]:
    """The rows of each incremental mart with is_rewritten (not marked); then the marks
    undone."""
    conn = duckdb.connect(str(settings.paths.analytics_db))
    try:
        out = {}
        for table, column in MARKED.items():
            out[table] = conn.execute(
                "select person_pseudonym, period_type, period_start, period_end, "
                f"{column} >= 0 as is_rewritten from marts.{table}").df()
            conn.execute(f"update marts.{table} set {column} = -1 - {column} where {column} < 0")
        return out
    finally:
        conn.close()


def _school_flags_astray(settings: Any) -> int:
    """Rows of fct_child_agency_periods whose is_known_to_school disagrees with the high
    absence months of fct_pupil_periods in the period's window (either way): after each
    build, every kept row must still follow the months of that build."""
    conn = duckdb.connect(str(settings.paths.analytics_db), read_only=True)
    try:
        return conn.execute(
            """
            with expected as (
                select distinct months.person_pseudonym, periods.period_type, periods.period_start
                from marts.fct_pupil_periods as months
                inner join marts.fct_child_agency_periods__as_built_periods as periods
                    on least(months.period_end, periods.reference_date) > periods.trailing_window_start
                    and least(months.period_end, periods.reference_date) <= periods.lookback_end
                where months.period_type = 'manad' and months.is_high_absence
            ),
            flagged as (
                select person_pseudonym, period_type, period_start
                from marts.fct_child_agency_periods
                where is_known_to_school
            )
            select count(*) from (
                (select * from expected except select * from flagged)
                union all
                (select * from flagged except select * from expected)
            )
            """).fetchone()[0]
    finally:
        conn.close()


def _week_not_summed_whole(settings: Any, week_start: dt.date) -> int:
    """Pupils whose fct_pupil_periods row of the week does not hold the offered minutes of all
    of its days in int_ss12000__attendance_periods (a week before R and the reporting lag)."""
    conn = duckdb.connect(str(settings.paths.analytics_db), read_only=True)
    try:
        conn.execute(f"attach '{settings.paths.restricted_db}' as restricted (read_only)")
        return conn.execute(
            """
            with days as (
                select pupils.person_pseudonym, sum(periods.offered_minutes) as offered_minutes
                from restricted.intermediate.int_ss12000__attendance_periods as periods
                join restricted.intermediate.int_ss12000__person_pseudonyms as pupils
                    using (person_id)
                where pupils.is_linkable and periods.period_type = 'vecka'
                    and periods.period_start = $week
                group by 1
            ),
            facts as (
                select person_pseudonym, offered_minutes from marts.fct_pupil_periods
                where period_type = 'vecka' and period_start = $week
            )
            select count(*) filter (where coalesce(days.offered_minutes, 0)
                                    <> coalesce(facts.offered_minutes, 0))
            from days full join facts using (person_pseudonym)
            """, {"week": week_start}).fetchone()[0]
    finally:
        conn.close()


def _high_absence_misclassified(settings: Any, threshold: float) -> int:
    """Rows of fct_pupil_periods whose is_high_absence does not follow ``threshold``."""
    conn = duckdb.connect(str(settings.paths.analytics_db), read_only=True)
    try:
        return conn.execute(
            "select count(*) from marts.fct_pupil_periods where is_high_absence "
            "is distinct from (is_assessed and absence_share >= ?)", [threshold]).fetchone()[0]
    finally:
        conn.close()


def _chain_tables(settings: Any) -> dict[str, pd.DataFrame]:
    """The incremental attendance periods and the pupil facts built from them, sorted."""
    tables = {"int_ss12000__attendance_periods": (settings.paths.restricted_db, "intermediate"),
              "fct_pupil_periods": (settings.paths.analytics_db, "marts"),
              "fct_child_agency_periods": (settings.paths.analytics_db, "marts")}
    out = {}
    for table, (db, schema) in tables.items():
        conn = duckdb.connect(str(db), read_only=True)
        try:
            out[table] = conn.execute(f"select * from {schema}.{table} order by all").df()
        finally:
            conn.close()
    return out


@dataclass
class Scenario:
    truth: pd.DataFrame
    incremental: Path
    full: Path
    nights: list[pd.DataFrame]        # the bookkeeping after each night
    touched_on_night_2: set[dt.date]  # the days night 2's changes are on
    moved: tuple[dt.date, dt.date]
    home: Path
    build_seconds: list[float]
    chain_incremental: dict[str, pd.DataFrame]  # after the last incremental night
    chain_full: dict[str, pd.DataFrame]         # after the full refresh
    rewritten_on_night_3: dict[str, pd.DataFrame]  # the incremental marts, with is_rewritten
    pupils_before_night_3: set[str]
    misclassified: list[int]  # after the threshold's change and after it is back
    week_short: list[int]     # PAST_WEEK's rows short of its days: R in it, then R after it
    changed_pupils: dict[str, str]      # 'moved', 'protected', 'ended' -> pseudonym
    school_flags_astray: list[int]      # after each build of the chain
    night_3_reference_dates: tuple[dt.date, dt.date]  # R of the build before night 3, of night 3


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Iterator[Scenario]:
    from samverkan.config import load_settings
    from samverkan.simulator.ground_truth import compute_ground_truth, write_ground_truth
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data

    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY)
    # The attendance as one frame (a small world): the changes below are made on it, and
    # the server and the ground truth read the same frame.
    pop = dataclasses.replace(pop, attendances=pop.attendance_frame())
    home = simulated_home(tmp_path_factory.mktemp("incremental"), pop)
    sim = home.paths.simulator

    # the changes, chosen on the frames
    corrected_2 = _present_records(pop, OLD_DAYS[0]).iloc[0]
    deleted_2 = _present_records(pop, OLD_DAYS[1]).iloc[0]
    moving = _present_records(pop, MOVED_FROM)
    moved_event = moving["calendar_event_id"].iloc[0]
    corrected_3 = _present_records(pop, OLD_DAYS[1]).iloc[1]
    deleted_3 = _present_records(pop, DAY_2).iloc[0]
    assert len({corrected_2["id"], deleted_2["id"], corrected_3["id"], deleted_3["id"]}) == 4
    # pupils whose own state changes: one whose enrolment ends between night 2's R and night
    # 3's (the record changes on night 2, what it means on night 3), one who moves to another
    # school unit and one who becomes protected (night 3)
    plain = _plain_pupils(pop, DAY_1)
    enrolment = pop.enrolments.set_index("person_key")
    ended = plain[0]
    moved = next(k for k in plain[1:] if enrolment.at[k, "school_unit_code"]
                 != enrolment.at[plain[0], "school_unit_code"])
    protected = plain[-1]
    assert len({ended, moved, protected}) == 3
    ends_on = DAY_2 + dt.timedelta(days=8)
    assert DAY_2 < ends_on < pop.reference_date
    moves_on = dt.date(2026, 6, 2)
    new_unit = enrolment.at[ended, "school_unit_code"]

    def _row(key: int, **changes: Any) -> dict[str, Any]:
        row = enrolment.loc[key]
        return {"school_unit_code": row["school_unit_code"], "school_year": row["school_year"],
                "school_type": row["school_type"], "start_date": row["start_date"],
                "end_date": row["end_date"], **changes}

    week = dt.timedelta(days=7)
    changed = _absent(pop, corrected_2["id"], int(corrected_2["length"]))
    changed = _deleted(changed, deleted_2["id"])
    changed = _enrolments_changed(changed, ended, [_row(ended, end_date=ends_on)])
    changed = _moved(changed, moved_event, week)
    changed = _absent(changed, corrected_3["id"], int(corrected_3["length"]))
    changed = _deleted(changed, deleted_3["id"])
    changed = _enrolments_changed(changed, moved, [
        _row(moved, end_date=moves_on - dt.timedelta(days=1)),
        _row(moved, school_unit_code=new_unit, start_date=moves_on)])
    changed = _protected(changed, protected)
    truth_path = sim / "ground_truth.csv"
    write_ground_truth(compute_ground_truth(changed), truth_path)

    data = SS12000Data.from_population(pop)
    ss12000_id = pop.persons.set_index("person_key")["ss12000_id"]
    served_enrolments = {k: data.get("persons", ss12000_id[k])["enrolments"]
                         for k in (ended, moved)}
    nights: list[pd.DataFrame] = []
    seconds: list[float] = []
    astray: list[int] = []

    def build(ref: dt.date, **changed_vars: Any) -> None:
        seconds.append(_build_chain(settings, ref, **changed_vars))
        astray.append(_school_flags_astray(settings))

    with serving(home, pop, data, TEST_KEY, truth_path):
        settings = load_settings()
        ref = pop.reference_date
        high = float(settings.indicator_parameters["high_absence_threshold"])

        _night(settings, DAY_1)
        build(FIRST_R)
        week_short = [_week_not_summed_whole(settings, PAST_WEEK)]
        build(DAY_1)
        week_short.append(_week_not_summed_whole(settings, PAST_WEEK))
        build(DAY_1, high_absence_threshold=high + 0.05)
        misclassified = [_high_absence_misclassified(settings, high + 0.05)]
        nights.append(_bookkeeping(settings))

        _served_absent(data, corrected_2["id"], int(corrected_2["length"]), _noon(DAY_2))
        # a deletion is listed from the moment it is made (no `before` bound on it)
        data.delete("attendances", deleted_2["id"])
        [item] = served_enrolments[ended]
        _served_person(data, ss12000_id[ended], _noon(DAY_2),
                       enrolments=[{**item, "endDate": ends_on.isoformat()}])
        _night(settings, DAY_2)
        build(DAY_2)
        misclassified.append(_high_absence_misclassified(settings, high))
        nights.append(_bookkeeping(settings))
        # a weekend night: nothing new, R on the last day of May and of its last week (they
        # still hold R, and end before the next R)
        build(MONTH_END)

        _served_moved(data, moved_event, week)
        _served_absent(data, corrected_3["id"], int(corrected_3["length"]), None)
        data.delete("attendances", deleted_3["id"])
        [item] = served_enrolments[moved]
        [elsewhere] = served_enrolments[ended]
        _served_person(data, ss12000_id[moved], None, enrolments=[
            {**item, "endDate": (moves_on - dt.timedelta(days=1)).isoformat()},
            {**item, "enroledAt": elsewhere["enroledAt"], "startDate": moves_on.isoformat()}])
        _served_person(data, ss12000_id[protected], None, security_marking="Sekretessmarkering")
        results = _night(settings, None)
        pupils_before = _mark_kept_rows(settings)
        build(ref)
        rewritten = _rewritten_and_unmarked(settings)
        # the pipeline's night: nothing new for the chain, the rest built and published
        incremental = _publish(settings, ref, results)
        astray.append(_school_flags_astray(settings))
        nights.append(_bookkeeping(settings))
        chain_incremental = _chain_tables(settings)
        full = _full_refresh(settings, ref)
        chain_full = _chain_tables(settings)
    from samverkan.pseudonymisation import pseudonymise

    pnr = pop.persons.set_index("person_key")["pnr"]
    pseudonyms = pseudonymise([pnr[k] for k in (moved, protected, ended)], TEST_KEY.encode(), ref)
    yield Scenario(read_cells(truth_path), incremental, full, nights,
                   {DAY_2, *OLD_DAYS}, (MOVED_FROM, MOVED_FROM + week), home.paths.home, seconds,
                   chain_incremental, chain_full, rewritten, pupils_before, misclassified,
                   week_short,
                   dict(zip(("moved", "protected", "ended"), pseudonyms, strict=True)),
                   astray, (MONTH_END, ref))


# --- the assertions ---------------------------------------------------------------------------

def _without_version(path: Path) -> list[list[str]]:
    """The CSV's rows as their exact field texts, without the data_version column (the
    version id of the publication, the one field that may differ)."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    at = rows[0].index("data_version")
    return [row[:at] + row[at + 1:] for row in rows]


def test_incremental_equals_full_refresh_byte_for_byte(scenario):
    print("incremental builds (s):", ", ".join(f"{s:.1f}" for s in scenario.build_seconds))
    incremental = _without_version(scenario.incremental)
    full = _without_version(scenario.full)
    assert len(incremental) > 1000
    assert incremental == full


def test_incremental_periods_and_pupil_facts_equal_a_full_rebuild(scenario):
    """Row for row: the calendar periods the nights rebuilt piecemeal (weeks and months from
    their days, terms and years from their months) and the pupil facts taken from them."""
    for table, full in scenario.chain_full.items():
        incremental = scenario.chain_incremental[table]
        assert len(full) > 100, table
        pd.testing.assert_frame_equal(incremental, full, check_exact=True, obj=table)
    periods = scenario.chain_full["int_ss12000__attendance_periods"]
    assert set(periods["period_type"]) == {"vecka", "manad", "termin", "ar"}


def test_night_3_rebuilt_the_changed_pupils_and_periods_and_kept_the_rest(scenario):
    """fct_pupil_periods on night 3 (marks tell the rows it wrote from those it kept): every
    row of the pupil who moved and of the pupil whose enrolment ended between the nights'
    R is new; the protected pupil has none. Pupils whose person record first came on night
    3 are new whole, and the simulator's own changes of the term's last weeks (enrolments
    that end or start by the new R) rebuild a few more pupils whole; the other pupils' rows
    of 2025 (no change reached that year) were kept, those of the spring term (new days,
    corrections) are new."""
    rows = scenario.rewritten_on_night_3["fct_pupil_periods"]
    pupils = scenario.changed_pupils
    assert {pupils["moved"], pupils["ended"], pupils["protected"]} <= scenario.pupils_before_night_3
    mine = rows[rows["person_pseudonym"].isin([pupils["moved"], pupils["ended"]])]
    assert len(mine) > 20 and mine["is_rewritten"].all()
    assert not (rows["person_pseudonym"] == pupils["protected"]).any()
    rows = rows[rows["person_pseudonym"].isin(scenario.pupils_before_night_3)]
    whole = rows.groupby("person_pseudonym")["is_rewritten"].all()
    rebuilt_whole = set(whole[whole].index)
    assert len(rebuilt_whole) < 0.05 * len(whole), len(rebuilt_whole)
    others = rows[~rows["person_pseudonym"].isin(rebuilt_whole)]
    year = others[(others["period_type"] == "ar") & (others["period_start"] == pd.Timestamp(2025, 1, 1))]
    term = others[(others["period_type"] == "termin")
                  & (others["period_start"] == pd.Timestamp(2026, 1, 1))]
    assert len(year) > 100 and not year["is_rewritten"].any()
    assert len(term) > 100 and term["is_rewritten"].all()
    print(f"night 3 rewrote {rows['is_rewritten'].mean():.0%} of fct_pupil_periods, "
          f"{len(rebuilt_whole)} of {len(whole)} pupils whole")
    assert 0.05 < rows["is_rewritten"].mean() < 0.95


def test_night_3_rebuilt_the_running_periods_and_changed_persons_of_child_agency_periods(scenario):
    """fct_child_agency_periods on night 3: every row of a period that ends on or after the
    previous build's R (May and its last week end on it: they held R then) is new, the
    protected pupil has none, and most rows of the periods that ended before it were kept
    (only persons whose rows changed are rebuilt there)."""
    rows = scenario.rewritten_on_night_3["fct_child_agency_periods"]
    earlier_r, _ = scenario.night_3_reference_dates
    assert not (rows["person_pseudonym"] == scenario.changed_pupils["protected"]).any()
    running = rows[rows["period_end"] >= pd.Timestamp(earlier_r)]
    ended = rows[rows["period_end"] < pd.Timestamp(earlier_r)]
    assert len(running) > 100 and running["is_rewritten"].all()
    assert len(ended) > 1000
    print(f"night 3 rewrote {rows['is_rewritten'].mean():.0%} of fct_child_agency_periods, "
          f"{ended['is_rewritten'].mean():.0%} of the periods that had ended")
    assert ended["is_rewritten"].mean() < 0.5


def test_every_build_flags_school_by_the_high_absence_of_that_build(scenario):
    """After each build (R moving, the threshold changed and back, corrections, the night's
    publication) the school flags of fct_child_agency_periods, kept or rebuilt, follow the
    high absence months of fct_pupil_periods in each period's window."""
    assert scenario.school_flags_astray == [0] * 7


def test_a_later_r_rebuilds_the_periods_whose_days_it_passed(scenario):
    """At R = FIRST_R the days after it in its week do not count (most pupils' rows are short
    of the week's sums); at R = DAY_1, with nothing new loaded, the week is rebuilt whole."""
    short_at_first_r, short_after = scenario.week_short
    assert short_at_first_r > 100
    assert short_after == 0


def test_a_changed_threshold_rebuilds_every_pupil_period(scenario):
    """After the build with another high-absence threshold, and after the next night's with
    the threshold back, every row follows the threshold of its build."""
    assert scenario.misclassified == [0, 0]


def test_incremental_publication_equals_the_ground_truth(scenario):
    assert assert_equals_truth(read_cells(scenario.incremental), scenario.truth) > 50


def test_full_refresh_publication_equals_the_ground_truth(scenario):
    assert assert_equals_truth(read_cells(scenario.full), scenario.truth) > 50


def test_nights_rebuild_only_the_days_their_batches_touched(scenario):
    first, second, third = scenario.nights
    # night 1: the first build records every batch for a rebuild of all days
    assert first["rebuilds_all_days"].all() and first["is_built"].all()
    assert first["lesson_date"].isna().all()
    # night 2: its SS 12000 batch touched the new school day and the two corrected days only
    new = second[~second["batch_id"].isin(first["batch_id"])]
    assert len(new["batch_id"].unique()) == 1
    assert not new["rebuilds_all_days"].any() and new["is_built"].all()
    days = {d.date() if hasattr(d, "date") else d for d in new["lesson_date"].dropna()}
    # the changes' days, and the few others the night's records and lessons are on (the
    # simulator's own late reports, lessons planned ahead): far from every day of the term
    assert scenario.touched_on_night_2 <= days
    assert len(days) <= 15, sorted(days)
    # night 3: the moved lesson's old and new day are among the days rebuilt
    new = third[~third["batch_id"].isin(second["batch_id"])]
    days = {d.date() if hasattr(d, "date") else d for d in new["lesson_date"].dropna()}
    assert set(scenario.moved) <= days
    assert not new["rebuilds_all_days"].any() and new["is_built"].all()


def test_a_change_of_the_models_or_removed_batches_force_a_full_rebuild(scenario, tmp_path):
    from samverkan.config import Paths
    from samverkan.incremental import logic_fingerprint, rebuild_reason

    home = tmp_path / "home"
    (home / "warehouse").mkdir(parents=True)
    shutil.copyfile(Paths(scenario.home).restricted_db, Paths(home).restricted_db)
    p = Paths(home)
    assert rebuild_reason(p) is None
    assert "changed" in rebuild_reason(p, logic_fingerprint() + "-other")
    for removal, reason in (
            ("delete from raw_ss12000.attendances where rowid = (select min(rowid) "
             "from raw_ss12000.attendances)", "raw_ss12000.attendances"),
            ("delete from load_meta.batches where batch_id = (select min(batch_id) "
             "from load_meta.batches where source = 'ss12000')", "no longer in the warehouse")):
        with duckdb.connect(str(p.restricted_db)) as conn:
            conn.execute(removal)
        assert reason in rebuild_reason(p)


@pytest.mark.parametrize("table", ["fct_pupil_periods__as_built_parameters",
                                   "fct_child_agency_periods__as_built_persons"])
def test_incremental_marts_without_their_as_built_tables_force_a_full_rebuild(
        scenario, tmp_path, table):
    from samverkan.config import Paths
    from samverkan.incremental import rebuild_reason

    p = Paths(tmp_path / "home")
    (p.home / "warehouse").mkdir(parents=True)
    for db in ("restricted_db", "analytics_db"):
        shutil.copyfile(getattr(Paths(scenario.home), db), getattr(p, db))
    assert rebuild_reason(p) is None
    with duckdb.connect(str(p.analytics_db)) as conn:
        conn.execute(f"drop table marts.{table}")
    mart = table.split("__")[0]
    assert f"{mart} is there without the tables that say what it was built from" \
        in rebuild_reason(p)


def test_bookkeeping_holds_no_person_data(scenario):
    columns = set(scenario.nights[-1].columns)
    assert columns == {"batch_id", "loaded_at", "lesson_date", "rebuilds_all_days", "is_built",
                       "logic_fingerprint"}
    text = json.dumps(scenario.nights[-1].astype(str).to_dict())
    assert TEST_KEY not in text


def test_the_logic_fingerprint_covers_every_model_the_incremental_models_read(tmp_path):
    """Every model upstream of an incremental model (and the incremental models themselves)
    is in a file the fingerprint hashes: a change of any of them forces a full rebuild."""
    from samverkan.config import DBT_PROJECT_DIR, Paths
    from samverkan.incremental import INCREMENTAL_MODELS, LOGIC_FILES, logic_fingerprint
    from samverkan.transform import dbt_parse

    outcome = dbt_parse(Paths(tmp_path / "home"), target_path=tmp_path / "target")
    assert outcome.success, outcome.failures
    nodes = json.loads((tmp_path / "target" / "manifest.json").read_text())["nodes"]
    incremental = {uid for uid, n in nodes.items()
                   if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"}
    assert {nodes[uid]["name"] for uid in incremental} == set(INCREMENTAL_MODELS)
    todo, upstream = list(incremental), set()
    while todo:
        uid = todo.pop()
        if uid in upstream or uid not in nodes:
            continue
        upstream.add(uid)
        todo.extend(nodes[uid]["depends_on"]["nodes"])
    for uid in upstream:
        path = nodes[uid]["original_file_path"]
        assert any(path == name or path.startswith(name + "/") for name in LOGIC_FILES), path
    # and a change of such a file changes the fingerprint
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    before = logic_fingerprint(project)
    model = project / "models" / "staging" / "ss12000" / "stg_ss12000__calendar_events.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert logic_fingerprint(project) != before
