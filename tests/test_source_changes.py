"""Changes at the sources reach the published indicators on the next run.

Run 1 extracts the three simulated sources (SS 12000 server on 127.0.0.1, a SQLite case
system, a police CSV inbox), builds the models and publishes. Then the sources change the way
real systems change them:

- police: a later delivery file repeats a suspect row with ``Status = Makulerad`` and a newer
  ``Senast ändrad`` (the cancellation);
- SS 12000: an attendance record is deleted on the server (listed by ``/deletedEntities``);
- case system: an ``aktualisering``'s ``forhandsbedomning_datum`` is corrected from on time to
  late, and its ``andrad_tid`` bumped.

The same changes are applied to a copy of the simulator's frames and the ground truth is
recomputed. Run 2 extracts incrementally, builds and publishes again. Each change is aimed at
a city cell that is published both before and after it, so the test can see the published
number move; and every published cell of run 2 must equal the recomputed ground truth.

Plain step functions (no Prefect): extract → transform → publish.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from simulated_home import serving, simulated_home
from truth_compare import assert_equals_truth, read_cells

from samverkan.simulator.population import TZ, Population

SEED = 1
PUPILS = 1200  # the smallest size whose förhandsbedömning cells survive a one-report change
LESSONS_PER_DAY = 2  # half the default: the attendance volume does not matter here, time does
MIN_CELL = 5
TEST_KEY = "samverkan-test-key-0123456789-abcdefghij"
KEYS = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
        "breakdown_value"]
CITY = "0180"
MAX_TRIES = 25  # candidates tried (against the ground truth) per change


# --- helpers ----------------------------------------------------------------------------------

def _truth_csv(pop: Population, path: Path) -> pd.DataFrame:
    """The ground truth in the published CSV's text form (as the end-to-end test reads it)."""
    from samverkan.simulator.ground_truth import compute_ground_truth, write_ground_truth

    write_ground_truth(compute_ground_truth(pop), path)
    return read_cells(path)


def _truth(pop: Population) -> pd.DataFrame:
    from samverkan.simulator.ground_truth import compute_ground_truth

    t = compute_ground_truth(pop)
    return t.assign(period_start=[d.isoformat() for d in t["period_start"]])


def _city_cell(frame: pd.DataFrame, indicator: str, period_start: str) -> pd.Series | None:
    """The city's month cell (breakdown totalt) of an indicator."""
    rows = frame[(frame["indicator_id"] == indicator) & (frame["period_type"] == "manad")
                 & (frame["period_start"] == period_start)
                 & (frame["area_level"] == "stad") & (frame["area_code"] == CITY)
                 & (frame["breakdown"] == "totalt")]
    assert len(rows) <= 1
    return None if rows.empty else rows.iloc[0]


def _shown(cell: pd.Series | None) -> bool:
    return cell is not None and pd.isna(cell["suppressed"])


def _published_cells(frame: pd.DataFrame, indicator: str) -> list[str]:
    """Months whose city cell of ``indicator`` is published (not suppressed)."""
    rows = frame[(frame["indicator_id"] == indicator) & (frame["period_type"] == "manad")
                 & (frame["area_level"] == "stad") & (frame["breakdown"] == "totalt")]
    return list(rows.loc[rows["suppressed"].isna(), "period_start"])


@dataclass
class Change:
    """One source change: what it touches, and the city cell it is meant to move."""

    indicator: str
    period_start: str
    detail: dict[str, Any]


def _pick(pop: Population, truth: pd.DataFrame, candidates: Iterator[Change],
          mutate: Callable[[Population, Change], Population],
          expect: Callable[[pd.Series, pd.Series], bool]) -> Change:
    """The first candidate whose change moves its city cell as ``expect`` says, while the cell
    stays published (checked against the recomputed ground truth)."""
    indicator = "?"
    for _, change in zip(range(MAX_TRIES), candidates, strict=False):
        indicator = change.indicator
        before = _city_cell(truth, change.indicator, change.period_start)
        after = _city_cell(_truth(mutate(pop, change)), change.indicator, change.period_start)
        if _shown(before) and _shown(after) and expect(before, after):
            return change
    raise AssertionError(f"no source change found that moves a published {indicator} cell")


def _one_fewer(before: pd.Series, after: pd.Series) -> bool:
    return after["numerator"] == before["numerator"] - 1


def _one_fewer_same_base(before: pd.Series, after: pd.Series) -> bool:
    return _one_fewer(before, after) and after["denominator"] == before["denominator"]


def _month(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.to_period("M").dt.start_time.dt.strftime("%Y-%m-%d")


# --- the three changes, on the simulator's frames -----------------------------------------------

CANCELLED_AT = pd.Timestamp("2026-06-12 22:00")  # after every simulated change, on the data date
POLICE_FILE_DATE = dt.date(2026, 6, 13)          # the next morning's delivery


def _police_candidates(pop: Population, truth: pd.DataFrame) -> Iterator[Change]:
    """Newest, active suspect rows of young people whose city month has ≥ 6 suspects, and who
    have no other suspect row in that month (so the cancellation removes them)."""
    p = pop.police_rows.reset_index(drop=True)
    p = p.assign(_pos=np.arange(len(p))).sort_values(["Senast ändrad", "_pos"], kind="stable")
    newest = p.drop_duplicates(["Diarienummer", "Personnummer", "Roll"], keep="last")
    suspects = newest[(newest["Roll"] == "Misstänkt") & (newest["Status"] == "Aktiv")
                      & newest["identifier_valid"].astype(bool) & newest["person_key"].notna()]
    suspects = suspects.assign(_month=_month(suspects["Brottsdatum"]))
    per_month = suspects.groupby(["person_key", "_month"])["Diarienummer"].transform("size")
    protected = set(pop.persons.loc[pop.persons["protected"].astype(bool), "person_key"])
    cells = truth[(truth["indicator_id"] == "unga_misstankta") & (truth["area_level"] == "stad")
                  & (truth["period_type"] == "manad") & (truth["breakdown"] == "totalt")]
    months = set(cells.loc[cells["numerator"] > MIN_CELL, "period_start"])
    wanted = suspects[(per_month == 1) & (suspects["Ålder"] < 17)
                      & suspects["_month"].isin(months)
                      & ~suspects["person_key"].isin(protected)]
    for _, row in wanted.sort_values(["_month", "_pos"], ascending=[False, True]).iterrows():
        yield Change("unga_misstankta", row["_month"], {"position": int(row["_pos"])})


def _cancellation(pop: Population, change: Change) -> pd.DataFrame:
    row = pop.police_rows.iloc[[change.detail["position"]]].copy()
    row["Status"] = "Makulerad"
    row["Senast ändrad"] = CANCELLED_AT
    row["file_date"] = POLICE_FILE_DATE
    row["file_encoding"] = "cp1252"
    return row


def _cancel_police_row(pop: Population, change: Change) -> Population:
    rows = pd.concat([pop.police_rows, _cancellation(pop, change)], ignore_index=True)
    return dataclasses.replace(pop, police_rows=rows)


def _pupil_months(pop: Population) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reported attendance records with their lesson month and length, and the offered and
    absent minutes per pupil and month."""
    ev = pop.calendar_events
    start = pd.to_datetime(ev["start_time"], utc=True).dt.tz_convert(TZ)
    end = pd.to_datetime(ev["end_time"], utc=True).dt.tz_convert(TZ)
    lessons = pd.DataFrame({
        "calendar_event_id": ev["id"].to_numpy(),
        "month": start.dt.tz_localize(None).dt.to_period("M").dt.start_time.dt.strftime(
            "%Y-%m-%d").to_numpy(),
        "length": ((end - start).dt.total_seconds() / 60).to_numpy(),
    })
    att = pop.attendance_frame()
    att = att[att["is_reported"].astype(bool)]
    att = att.assign(absence=att["valid_absence_minutes"] + att["invalid_absence_minutes"])
    att = att[["id", "calendar_event_id", "person_key", "absence"]].merge(lessons,
                                                                         on="calendar_event_id")
    months = att.groupby(["person_key", "month"], as_index=False).agg(
        offered=("length", "sum"), absent=("absence", "sum"))
    return att, months


def _attendance_candidates(pop: Population, truth: pd.DataFrame) -> Iterator[Change]:
    """A wholly absent lesson of a pupil whose share is just above 15 %: without it, below."""
    records, months = _pupil_months(pop)
    o, a = months["offered"], months["absent"]
    protected = set(pop.persons.loc[pop.persons["protected"].astype(bool), "person_key"])
    tipping = months[(o - 60 >= 300) & (a / o >= 0.15) & ((a - 60) / (o - 60) < 0.15)
                     & months["month"].isin(set(_published_cells(truth, "hog_franvaro")))
                     & ~months["person_key"].isin(protected)]
    absent = records[(records["absence"] == 60) & (records["length"] == 60)]
    chosen = absent.merge(tipping[["person_key", "month"]], on=["person_key", "month"])
    chosen = chosen.drop_duplicates(["person_key", "month"]).sort_values(["month", "person_key"])
    for _, row in chosen.iterrows():
        yield Change("hog_franvaro", row["month"], {"id": row["id"]})


def _delete_attendance(pop: Population, change: Change) -> Population:
    """The record deleted at the source: the overlay of the world's attendance parts (the
    server and the ground truth both read it)."""
    return dataclasses.replace(pop, attendances=pop.attendances.without([change.detail["id"]]))


def _decision_candidates(pop: Population, truth: pd.DataFrame) -> Iterator[Change]:
    """Reports decided on time, due before the data date, in a month whose city cell has
    ≥ 6 on time and ≥ 5 late: one more late decision keeps the cell published."""
    r = pd.Timestamp(pop.reference_date)
    cells = truth[(truth["indicator_id"] == "forhandsbedomning_14_dagar")
                  & (truth["area_level"] == "stad") & (truth["period_type"] == "manad")
                  & (truth["breakdown"] == "totalt")]
    months = set(cells.loc[(cells["numerator"] >= 6)
                           & (cells["denominator"] - cells["numerator"] >= 5), "period_start"])
    a = pop.aktualisering
    inkom = pd.to_datetime(a["inkom_datum"])
    fb = pd.to_datetime(a["forhandsbedomning_datum"])
    deadline = inkom + pd.Timedelta(days=14)
    on_time = a[(a["typ"] == "Anmälan") & fb.notna() & (fb <= deadline) & (deadline < r)
                & _month(a["inkom_datum"]).isin(months)]
    for _, row in on_time.sort_values("aktualisering_id").iterrows():
        late = row["inkom_datum"] + dt.timedelta(days=15)
        yield Change("forhandsbedomning_14_dagar", _month(pd.Series([row["inkom_datum"]]))[0],
                     {"aktualisering_id": int(row["aktualisering_id"]), "late": late})


def _correct_decision(pop: Population, change: Change) -> Population:
    a = pop.aktualisering.copy()
    hit = a["aktualisering_id"] == change.detail["aktualisering_id"]
    a.loc[hit, "forhandsbedomning_datum"] = change.detail["late"]
    a.loc[hit, "andrad_tid"] = CANCELLED_AT
    return dataclasses.replace(pop, aktualisering=a)


# --- the pipeline -----------------------------------------------------------------------------

@dataclass
class Run:
    published: pd.DataFrame
    load_report: dict[str, dict[str, Any]]
    seconds: float


def _run_pipeline(settings_loader: Callable[[], Any]) -> Run:
    import time

    from samverkan import steps
    from samverkan.publish import new_version

    started = time.monotonic()
    settings = settings_loader()
    ref = steps.reference_date(settings)
    version = new_version()
    results = [steps.extract(settings, source) for source in steps.SOURCES]
    assert all(r.ok for r in results), [b for r in results for b in r.batches if not b.valid]
    outcome = steps.transform(settings, version, ref)
    assert outcome.success, outcome.failures
    publication = steps.publish(settings, version, ref, results, outcome.success)
    assert publication.published, publication.failed
    published = read_cells(settings.paths.current_publication / "indicators.csv")
    assert set(published["data_version"]) == {version}
    return Run(published, steps.load_report(results), time.monotonic() - started)


@dataclass
class Scenario:
    truth_before: pd.DataFrame
    truth_after: pd.DataFrame
    run1: Run
    run2: Run
    changes: list[Change]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Iterator[Scenario]:
    from samverkan.config import load_settings
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data

    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY)
    home = simulated_home(tmp_path_factory.mktemp("source_changes"), pop)
    sim, url, inbox = home.paths.simulator, home.case_system_url, home.police_inbox
    truth_before = _truth_csv(pop, sim / "truth_before.csv")

    # Choose the three changes on the frames first, each verified against the ground truth.
    police = _pick(pop, truth_before, _police_candidates(pop, truth_before),
                   _cancel_police_row, _one_fewer)
    attendance = _pick(pop, truth_before, _attendance_candidates(pop, truth_before),
                       _delete_attendance, _one_fewer_same_base)
    decision = _pick(pop, truth_before, _decision_candidates(pop, truth_before),
                     _correct_decision, _one_fewer_same_base)
    changed = _correct_decision(_delete_attendance(_cancel_police_row(pop, police), attendance),
                                decision)
    truth_after = _truth_csv(changed, sim / "truth_after.csv")

    data = SS12000Data.from_population(pop)
    with serving(home, pop, data, TEST_KEY, sim / "truth_before.csv"):
        run1 = _run_pipeline(load_settings)

        # (a) police: a later delivery cancels the suspect row
        cancel_pop = dataclasses.replace(pop, police_rows=_cancellation(pop, police))
        (new_file,) = write_police_files(cancel_pop, inbox)
        assert new_file.name == "polis_20260613.csv"
        # (b) SS 12000: the attendance record is deleted on the server
        data.delete("attendances", attendance.detail["id"])
        # (c) case system: the decision date is corrected, the row's change time bumped
        engine = sa.create_engine(url)
        try:
            table = sa.table("t_aktualisering", sa.column("aktualisering_id", sa.BigInteger),
                             sa.column("forhandsbedomning_datum", sa.Date),
                             sa.column("andrad_tid", sa.DateTime))
            with engine.begin() as conn:
                updated = conn.execute(
                    sa.update(table)
                    .where(table.c.aktualisering_id == decision.detail["aktualisering_id"])
                    .values(forhandsbedomning_datum=decision.detail["late"],
                            andrad_tid=CANCELLED_AT.to_pydatetime()))
                assert updated.rowcount == 1
        finally:
            engine.dispose()

        run2 = _run_pipeline(load_settings)
    yield Scenario(truth_before, truth_after, run1, run2, [police, attendance, decision])


# --- the assertions ---------------------------------------------------------------------------

def test_first_run_publishes_the_ground_truth(scenario):
    print(f"run 1 {scenario.run1.seconds:.1f} s, run 2 {scenario.run2.seconds:.1f} s")
    assert assert_equals_truth(scenario.run1.published, scenario.truth_before) > 50


def test_second_run_loads_only_the_changes(scenario):
    report = scenario.run2.load_report
    assert report["police"]["received"] == 1       # the cancellation line of the new file
    assert report["case_system"]["received"] == 1  # the corrected aktualisering
    assert report["ss12000"]["received"] >= 1      # at least the deletion
    assert all(s["quarantined"] == 0 for s in report.values())


@pytest.mark.parametrize("which", ["police_cancelled", "attendance_deleted", "decision_corrected"])
def test_each_change_moves_its_published_cell(scenario, which):
    change = scenario.changes[["police_cancelled", "attendance_deleted",
                               "decision_corrected"].index(which)]
    cells = [_city_cell(frame, change.indicator, change.period_start)
             for frame in (scenario.run1.published, scenario.run2.published,
                           scenario.truth_before, scenario.truth_after)]
    before, after, truth_before, truth_after = cells
    assert before is not None and after is not None
    assert pd.isna(before["suppressed"]) and pd.isna(after["suppressed"])
    assert before["numerator"] != after["numerator"]
    assert before["value"] != after["value"]
    assert after["numerator"] == before["numerator"] - 1
    assert (before["numerator"], after["numerator"]) == (truth_before["numerator"],
                                                         truth_after["numerator"])


def test_second_run_publishes_the_recomputed_ground_truth(scenario):
    assert assert_equals_truth(scenario.run2.published, scenario.truth_after) > 50
    # The changes did move the truth: the two publications differ.
    keyed = [frame.set_index(KEYS)["numerator"].sort_index()
             for frame in (scenario.run1.published, scenario.run2.published)]
    assert not keyed[0].equals(keyed[1])
