"""Every flow holds the data directory's run lock (:mod:`samverkan.locks`).

A flow run a Prefect worker starts from a deployment (``prefect.yaml``) is a run like
``samverkan run``: it takes the same lock when it starts, or fails at once naming the run in
progress (pid, what it is, when it started), before it reads a setting or touches a file. The
run that takes the lock removes the validation scratch a killed run left, as the command does.
A flow called inside another flow, or by the command that holds the lock, runs under it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from samverkan.config import paths
from samverkan.locks import exclusive_run

P = ParamSpec("P")
R = TypeVar("R")


def _holder_command(flow_name: str) -> str:
    """What the lock file says holds it: the flow run, and its deployment when it has one."""
    from prefect.runtime import deployment, flow_run

    run = flow_run.name
    source = f"deployment {deployment.name}" if deployment.name else f"flow {flow_name}"
    return f"Prefect flow run {run} ({source})" if run else f"Prefect flow {flow_name}"


def exclusive(flow_name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated flow function holding the run lock (put it under ``@flow``)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with exclusive_run(paths().ensure(), _holder_command(flow_name)):
                return fn(*args, **kwargs)

        # Prefect reads the parameters' types from the function it is given: resolve them in
        # the flow's module (this module does not know its names).
        run.__annotations__ = typing.get_type_hints(fn)
        run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
        return run

    return decorate
