"""The weekly lägesbild: build its models, then gate and publish it under published/lagesbild/.

It runs on what the nightly pipeline has built and published (no extract, no full rebuild).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, task
from prefect.states import Failed

from flows._artifacts import gate_artifact
from flows._exclusive import exclusive
from samverkan import steps
from samverkan.config import load_settings
from samverkan.publish import PublicationResult, new_version


@task(name="dbt-build-lagesbild")
def build_lagesbild_task(version: str, reference_date: str) -> tuple[bool, str]:
    outcome = steps.transform_lagesbild(load_settings(), version, dt.date.fromisoformat(reference_date))
    detail = "ok" if outcome.success else "; ".join(str(f) for f in outcome.failures)[:2000]
    return outcome.success, detail


@task(name="gate-and-publish-lagesbild")
def publish_lagesbild_task(version: str, reference_date: str, dbt_success: bool,
                           dbt_detail: str) -> PublicationResult:
    return steps.publish_lagesbild(load_settings(), version, dt.date.fromisoformat(reference_date),
                                   dbt_success, dbt_detail)


@flow(name="lagesbild")
@exclusive("lagesbild")
def lagesbild(reference_date: str | None = None) -> PublicationResult:
    """Build, check and publish the lägesbild of the latest ended ISO week."""
    settings = load_settings()
    ref = steps.lagesbild_reference_date(settings, reference_date).isoformat()
    version = new_version()
    steps.preload_quality_checks()
    dbt_success, dbt_detail = build_lagesbild_task(version, ref)
    publication = publish_lagesbild_task(version, ref, dbt_success, dbt_detail)
    gate_artifact(publication, what="lägesbild", key="lagesbild-gate")
    if not publication.published:
        return Failed(message="lägesbild gate failed: "
                      + ", ".join(c.name for c in publication.failed), data=publication)
    return publication


if __name__ == "__main__":
    lagesbild()
