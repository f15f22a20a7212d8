"""Transform flow: dbt build (models and tests) over the warehouses."""

from __future__ import annotations

from prefect import flow, task

from flows._exclusive import exclusive
from samverkan import steps
from samverkan.config import load_settings
from samverkan.publish import new_version


@task(name="dbt-build")
def dbt_build_task(version: str, reference_date: str, full_refresh: bool = False) -> tuple[bool, str]:
    import datetime as dt

    outcome = steps.transform(load_settings(), version, dt.date.fromisoformat(reference_date),
                              full_refresh=full_refresh)
    detail = "ok" if outcome.success else "; ".join(str(f) for f in outcome.failures)[:2000]
    return outcome.success, detail


@flow(name="transform")
@exclusive("transform")
def transform(version: str | None = None, reference_date: str | None = None,
              full_refresh: bool = False) -> tuple[bool, str]:
    """Build every dbt model and run its tests; returns (success, detail). ``full_refresh``
    rebuilds the incremental attendance models from scratch."""
    ref = steps.reference_date(load_settings(), reference_date)
    return dbt_build_task(version or new_version(), ref.isoformat(), full_refresh)


if __name__ == "__main__":
    transform()
