"""Publish flow: the publication gate, then an atomic switch of published/current."""

from __future__ import annotations

from prefect import flow, task

from flows._artifacts import publication_artifacts
from flows._exclusive import exclusive
from samverkan import steps
from samverkan.config import load_settings
from samverkan.extract import ExtractResult
from samverkan.publish import PublicationResult, new_version


@task(name="gate-and-publish")
def publish_task(version: str, reference_date: str, extract_results: list[ExtractResult],
                 dbt_success: bool, dbt_detail: str,
                 source_volumes: steps.SourceVolumes | None = None) -> PublicationResult:
    import datetime as dt

    return steps.publish(load_settings(), version, dt.date.fromisoformat(reference_date),
                         extract_results, dbt_success, dbt_detail, source_volumes)


@flow(name="publish")
@exclusive("publish")
def publish(version: str | None = None, reference_date: str | None = None,
            extract_results: list[ExtractResult] | None = None, dbt_success: bool = True,
            dbt_detail: str = "", source_volumes: steps.SourceVolumes | None = None) -> PublicationResult:
    """Publish what the warehouse holds, if every check passes."""
    ref = steps.reference_date(load_settings(), reference_date)
    publication = publish_task(version or new_version(), ref.isoformat(), extract_results or [],
                               dbt_success, dbt_detail, source_volumes)
    publication_artifacts(extract_results or [], publication)
    return publication


if __name__ == "__main__":
    publish()
