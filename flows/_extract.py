"""One extract flow per source, all built the same way."""

from __future__ import annotations

from prefect import Flow, flow, task

from samverkan import steps
from samverkan.config import load_settings
from samverkan.extract import ExtractResult


@task(name="recover-pull-land-validate-load")
def extract_task(source: str) -> ExtractResult:
    # One coarse task: the page loop, landing, validation and load all happen inside it.
    return steps.extract(load_settings(), source)


def make_extract_flow(source: str) -> Flow:
    @flow(name=f"extract-{source.replace('_', '-')}", log_prints=False)
    def extract_flow() -> ExtractResult:
        """Incremental extract of one source into landing and the restricted warehouse."""
        return extract_task(source)

    return extract_flow
