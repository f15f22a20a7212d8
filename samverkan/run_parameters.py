"""Run parameters: the values of a dbt build that change from run to run.

The reference date and the data version change with every run, and the attendance logic
fingerprint with every change of the attendance chain's SQL. Given to dbt as ``--vars``, each
new value made dbt discard its parsed project ("config vars ... have changed") and parse all
of it again: seconds of CPU per invocation, several invocations per run. They reach the
models through the database connection instead: :func:`samverkan.transform.run_dbt` takes
them out of the vars and puts them in the environment of the invocation, and
``samverkan.dbt_plugin`` defines each as a DuckDB macro on every connection
(``samverkan_run_reference_date()``, ``samverkan_run_data_version()``,
``samverkan_run_attendance_logic_fingerprint()``), which the dbt macros of
``dbt_project/macros/run_parameters.sql`` call. DuckDB expands a macro when it binds a query,
so the value is a constant there, planned exactly like the literal it replaces.

A var of the same name (``dbt build --vars`` by hand, a unit test's ``overrides: vars``) still
wins: the dbt macros then render the literal. Without either, the defaults are those the vars
had: today in Europe/Stockholm, ``dev`` and an empty fingerprint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

# name -> the environment variable the invocation sets (empty: not given, the default applies)
RUN_PARAMETER_ENV = {
    "reference_date": "SAMVERKAN_RUN_REFERENCE_DATE",
    "data_version": "SAMVERKAN_RUN_DATA_VERSION",
    "attendance_logic_fingerprint": "SAMVERKAN_RUN_ATTENDANCE_LOGIC_FINGERPRINT",
}
MACRO_PREFIX = "samverkan_run_"
DEFAULT_DATA_VERSION = "dev"
TIME_ZONE = "Europe/Stockholm"


class RunParameterError(ValueError):
    """A run parameter that cannot be used (the message names the parameter, not the value)."""


def split_vars(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(dbt vars, run parameters)``: the run parameters taken out of a build's vars."""
    cli_vars = {k: v for k, v in values.items() if k not in RUN_PARAMETER_ENV}
    params = {k: v for k, v in values.items() if k in RUN_PARAMETER_ENV and v is not None}
    return cli_vars, params


def run_parameters_env(params: Mapping[str, Any]) -> dict[str, str]:
    """The environment of one invocation: every run parameter's variable, empty where not given.
    Checks the reference date (a date or an ISO date string)."""
    env = {name: "" for name in RUN_PARAMETER_ENV.values()}
    for name, value in params.items():
        if name == "reference_date":
            value = _iso_date(value)
        env[RUN_PARAMETER_ENV[name]] = str(value)
    return env


def run_parameter_macros_sql(environ: Mapping[str, str], today: dt.date | None = None) -> str:
    """``create or replace temp macro`` statements for the run parameters in ``environ``."""
    def given(name: str) -> str:
        return (environ.get(RUN_PARAMETER_ENV[name]) or "").strip()

    reference = _iso_date(given("reference_date")) if given("reference_date") else (
        today or dt.datetime.now(ZoneInfo(TIME_ZONE)).date()).isoformat()
    values = {
        "reference_date": f"date {_sql_string(reference)}",
        "data_version": _sql_string(given("data_version") or DEFAULT_DATA_VERSION),
        "attendance_logic_fingerprint": _sql_string(given("attendance_logic_fingerprint")),
    }
    return "\n".join(f"create or replace temp macro {MACRO_PREFIX}{name}() as {value};"
                     for name, value in values.items())


def _iso_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise RunParameterError("run parameter reference_date must be a date, got a timestamp")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise RunParameterError("run parameter reference_date must be an ISO date (YYYY-MM-DD)") from None


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
