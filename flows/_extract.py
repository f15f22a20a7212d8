"""One extract flow per source, all built the same way."""

from __future__ import annotations

from prefect import Flow, Task, flow, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows._artifacts import load_report_artifact
from flows._exclusive import exclusive
from samverkan import steps
from samverkan.config import load_settings
from samverkan.extract import ExtractResult


def retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and steps.is_transient(exc)


# The client already retries single requests (429 Retry-After, 5xx, time-outs, dropped
# connections with backoff); a source that stays down is retried as a whole, which resumes
# safely from landing. What retrying cannot fix (refused connection, unknown host, certificate,
# refused login, missing file or view: samverkan.sources.failures) is not retried.
# `[general] extract_retries` sets how many times (default 2, as declared here).
@task(name="recover-pull-land-validate-load", retries=2, retry_delay_seconds=[30, 120],
      retry_condition_fn=retry_if_transient)
def extract_task(source: str) -> ExtractResult:
    # One coarse task: the page loop, landing, validation and load all happen inside it.
    return steps.extract(load_settings(), source)


def extract_name(source: str) -> str:
    """The name of a source's extract flow and of its task run in the pipeline."""
    return f"extract-{source.replace('_', '-')}"


def source_extract_task(source: str) -> Task:
    """:func:`extract_task` for ``source``: `[general] extract_retries` retries, its run named
    after the source."""
    return extract_task.with_options(retries=load_settings().extract_retries,
                                     task_run_name=extract_name(source))


def make_extract_flow(source: str) -> Flow:
    name = extract_name(source)

    @flow(name=name, log_prints=False)
    @exclusive(name)
    def extract_flow() -> ExtractResult:
        """Incremental extract of one source into landing and the restricted warehouse."""
        result = source_extract_task(source)(source)
        load_report_artifact(steps.load_report([result]), key=f"load-report-{source.replace('_', '-')}")
        return result

    return extract_flow
