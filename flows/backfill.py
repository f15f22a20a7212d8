"""Backfill flow: load a date range day by day, then build and publish once."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from prefect import flow, task
from prefect.states import Failed

from flows._artifacts import load_report_artifact
from flows._exclusive import exclusive
from flows._extract import retry_if_transient
from flows.publish import publish
from flows.transform import transform
from samverkan import backfill as backfill_steps
from samverkan import steps
from samverkan.config import load_settings
from samverkan.extract import ExtractResult
from samverkan.publish import PublicationResult, new_version

log = logging.getLogger(__name__)


@dataclass
class BackfillOutcome:
    days: list[str]
    loaded: int
    publication: PublicationResult | None  # None: nothing new, the current version stands
    unchanged_version: str | None = None


@task(name="extract-day", retries=2, retry_delay_seconds=[30, 120],
      retry_condition_fn=retry_if_transient)
def extract_day_task(day: str) -> list[ExtractResult]:
    return backfill_steps.extract_day(load_settings(), dt.date.fromisoformat(day)).results


@flow(name="backfill")
@exclusive("backfill")
def backfill(date_from: str, date_to: str, confirm_anomalies: bool = False) -> BackfillOutcome:
    """Pull every source day by day from ``date_from`` to ``date_to``, then publish once with
    ``date_to`` as the reference date (unless nothing new was loaded and that is published).
    As in the nightly pipeline, a source that delivers far less than at the last publication
    stops publication unless the operator confirms it (``confirm_anomalies``)."""
    settings = load_settings()
    days = backfill_steps.days_in_range(dt.date.fromisoformat(date_from),
                                        dt.date.fromisoformat(date_to))
    steps.preload_quality_checks()
    extract_day = extract_day_task.with_options(retries=settings.extract_retries)
    loaded_days = [backfill_steps.BackfillDay(day, extract_day(day.isoformat())) for day in days]
    results = backfill_steps.merge_results(loaded_days)
    loaded = sum(d.loaded for d in loaded_days)
    failed = any(not r.ok for r in results)
    end = days[-1]
    volumes = steps.source_volume_check(settings, end, confirm_anomalies, "samverkan backfill --from "
                                        f"{days[0].isoformat()} --to {end.isoformat()}")
    if not failed and volumes.check.success:
        standing = steps.standing_publication(settings, end)
        if standing:
            log.info("backfill %s..%s: nothing new; publication %s stands", days[0], end, standing)
            load_report_artifact(steps.load_report(results))
            steps.remember_volumes(settings, volumes)  # the baseline the next run compares with
            return BackfillOutcome([d.isoformat() for d in days], 0, None, standing)
    # From here on the publish flow leaves the load report and gate artifacts of this run.
    version = new_version()
    if failed:
        dbt_success, dbt_detail = False, "not run: an extract batch failed (see extract_batches)"
    elif not volumes.check.success:
        dbt_success = False
        dbt_detail = "not run: a source delivers far less than before (see source_volumes)"
    else:
        dbt_success, dbt_detail = transform(version=version, reference_date=end.isoformat())
    publication = publish(version=version, reference_date=end.isoformat(), extract_results=results,
                          dbt_success=dbt_success, dbt_detail=dbt_detail, source_volumes=volumes)
    outcome = BackfillOutcome([d.isoformat() for d in days], loaded, publication)
    if not publication.published:
        return Failed(message="publication gate failed: "
                      + ", ".join(c.name for c in publication.failed), data=outcome)
    return outcome


if __name__ == "__main__":
    import sys

    backfill(sys.argv[1], sys.argv[2])
