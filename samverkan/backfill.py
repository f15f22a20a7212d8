"""Backfill: load a date range day by day, then publish once, as of the range's last day.

A backfill catches up after the platform was down or a source was connected late. Each day of
the range is pulled as its own bounded extract batch per source (changes made up to the end
of that day: SS 12000 ``meta.modified.before``, case-system ``andrad_tid``, police files by
the date in their name), so batches stay day-sized at Stockholm scale and lineage says which
day a row came from. Then the models are built once and the gate publishes once, with the
range's last day as the reference date.

It is idempotent: days already loaded pull nothing new (the watermarks are past them, the
police files are recorded), and when the current publication was built from the same batches,
reference date and models (``steps.standing_publication``), nothing is published again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from samverkan.config import SOURCES, Settings
from samverkan.extract import ExtractResult

log = logging.getLogger(__name__)

MAX_DAYS = 366


class BackfillError(ValueError):
    """The requested range cannot be backfilled."""


@dataclass
class BackfillDay:
    day: dt.date
    results: list[ExtractResult] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return sum(b.loaded for r in self.results for b in r.batches if b.valid)


def days_in_range(start: dt.date, end: dt.date, today: dt.date | None = None) -> list[dt.date]:
    """The days of a backfill, checked: start ≤ end ≤ today, at most a year."""
    today = today or dt.date.today()
    if start > end:
        raise BackfillError(f"--from {start} is after --to {end}")
    if end > today:
        raise BackfillError(f"--to {end} is in the future (today is {today})")
    n = (end - start).days + 1
    if n > MAX_DAYS:
        raise BackfillError(f"{n} days requested; a backfill covers at most {MAX_DAYS} days")
    return [start + dt.timedelta(days=i) for i in range(n)]


def extract_day(settings: Settings, day: dt.date) -> BackfillDay:
    """Pull, validate and load every source up to the end of ``day``."""
    from samverkan import steps

    result = BackfillDay(day)
    for source in SOURCES:
        result.results.append(steps.extract(settings, source, until=day))
    log.info("backfill %s: %d rows loaded (%s)", day, result.loaded,
             ", ".join(f"{r.source} {r.totals()['loaded']}" for r in result.results))
    return result


def merge_results(days: list[BackfillDay]) -> list[ExtractResult]:
    """One ExtractResult per source holding every day's batches (for the gate and load report)."""
    merged = {source: ExtractResult(source) for source in SOURCES}
    for day in days:
        for r in day.results:
            merged[r.source].batches.extend(r.batches)
    return list(merged.values())
