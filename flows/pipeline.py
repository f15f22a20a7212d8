"""The nightly pipeline: the three extracts concurrently, then transform, then publish.

Each step is a task of this flow (the extract flows' task per source, the transform flow's
``dbt-build``, the publish flow's ``gate-and-publish``), not those flows as subflows: the
Prefect server took seconds to create each subflow run (the three extracts started one after
another), and each subflow waited up to a second for its heartbeat thread when it ended. The
flows stay for running one step alone; all hold the same run lock."""

from __future__ import annotations

import datetime as dt
import logging

from prefect import flow, task
from prefect.states import Failed, State

from flows._artifacts import load_report_artifact, publication_artifacts
from flows._exclusive import exclusive
from flows._extract import source_extract_task
from flows.publish import publish_task
from flows.transform import dbt_build_task
from samverkan import steps
from samverkan.config import load_settings
from samverkan.extract import ExtractResult
from samverkan.publish import PublicationResult, new_version

log = logging.getLogger(__name__)


def _failure(state: State) -> BaseException | str | None:
    """The exception a failed extract raised (or the state's message when there is none)."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - the result itself could not be read
        error = exc
    return error if isinstance(error, BaseException) else (state.message or None)


@task(name="purge-landing")
def purge_landing_task() -> list[str]:
    return steps.purge_landing(load_settings())


@flow(name="pipeline")
@exclusive("pipeline")
def pipeline(reference_date: str | None = None, confirm_anomalies: bool = False,
             full_refresh: bool = False) -> PublicationResult:
    """Extract all sources concurrently, look for anomalies in what they deliver, build the
    models, then gate and publish. ``confirm_anomalies``: the operator confirms the anomalies
    found (the gate lets them pass). ``full_refresh``: rebuild the incremental models from
    scratch (and build even when nothing new was loaded)."""
    settings = load_settings()
    ref = steps.reference_date(settings, reference_date).isoformat()
    version = new_version()
    steps.preload_quality_checks()
    futures = {source: source_extract_task(source).submit(source) for source in steps.SOURCES}
    results: list[ExtractResult] = []
    for source, future in futures.items():
        state = future.wait() or future.state
        if state.is_completed():
            results.append(future.result())
        else:
            # The source could not be extracted: record it as a failed batch carrying the
            # cause, so the gate blocks publication and says why; the other sources' batches
            # stay loaded.
            results.append(steps.failed_extract(source, _failure(state)))
    volumes = steps.source_volume_check(settings, dt.date.fromisoformat(ref), confirm_anomalies)
    if not all(r.ok for r in results):
        # The gate cannot pass with a failed batch: do not rebuild, say why.
        dbt_success, dbt_detail = False, "not run: an extract batch failed (see extract_batches)"
    elif not volumes.check.success:
        # A source delivers far less than before: the old figures must not stand silently.
        dbt_success = False
        dbt_detail = "not run: a source delivers far less than before (see source_volumes)"
    elif not full_refresh and (standing := steps.standing_publication(settings,
                                                                    dt.date.fromisoformat(ref))):
        log.info("nothing new since version %s (same batches, reference date and models)", standing)
        purge_landing_task()
        load_report_artifact(steps.load_report(results))
        steps.remember_volumes(settings, volumes)  # the baseline the next run compares with
        return PublicationResult(standing, True, settings.paths.current_publication,
                                 [volumes.check], unchanged=True)
    else:
        dbt_success, dbt_detail = dbt_build_task(version, ref, full_refresh)
    publication = publish_task(version, ref, results, dbt_success, dbt_detail, volumes)
    publication_artifacts(results, publication)
    purge_landing_task()
    if not publication.published:
        return Failed(message="publication gate failed: "
                      + ", ".join(c.name for c in publication.failed), data=publication)
    return publication


if __name__ == "__main__":
    pipeline()
