"""The quality gate: Great Expectations suites on landed batches and on the indicator table.

Suites live as JSON files in ``expectations/`` (GX suite format: ``name``, ``expectations``
with ``type`` + ``kwargs`` and optional ``meta.name`` / ``meta.notes``, plus ``meta.notes`` on
the suite). A suite named ``<source>.<table>`` checks the raw table ``raw_<source>.<table>``;
``indicators`` checks the published indicator table and ``lagesbild`` the published weekly
lägesbild.

Validation never touches the warehouse and never copies data out of the database:

* :func:`validate_batch` loads a landed batch with the extractor's own ``load`` into a
  scratch DuckDB file (the same code the warehouse load runs), then runs every suite of the
  source whose raw table received rows, in-database through GX + SQLAlchemy (duckdb-engine).
* :func:`validate_indicators` (:func:`validate_lagesbild`) copies the candidate indicator
  (lägesbild) table (Parquet, CSV or a DuckDB table) into a scratch DuckDB file and runs the
  ``indicators`` (``lagesbild``) checkpoint.

Reports (JSON + a small self-contained HTML page) list every expectation with pass/fail and
unexpected *counts* only. Everything GX returns that could hold data values (partial and full
unexpected lists, value counts, index lists, row details, exception messages) is dropped, so
no personnummer or other value can reach a report, a log line or an exception.

GX is imported lazily, once per process (the import costs several seconds).
"""

from __future__ import annotations

import contextvars
import copy
import datetime as dt
import html
import importlib
import importlib.util
import json
import logging
import re
import secrets
import shutil
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from samverkan import database
from samverkan.config import EXPECTATIONS_DIR, Paths
from samverkan.config.settings import wal_file
from samverkan.extract import Extractor, ValidationOutcome
from samverkan.landing import BatchManifest
from samverkan.warehouse import AccountingError, ensure_restricted_schema

log = logging.getLogger(__name__)

INDICATOR_SUITE = "indicators"
INDICATOR_TABLE = "published_indicators"
DEFAULT_INDICATOR_SOURCE_TABLE = "marts.published_indicators"
LAGESBILD_SUITE = "lagesbild"
LAGESBILD_TABLE = "published_lagesbild"
DEFAULT_LAGESBILD_SOURCE_TABLE = "marts.published_lagesbild"
# Suites on published tables (not on raw batches).
PUBLISHED_SUITES = (INDICATOR_SUITE, LAGESBILD_SUITE)
# Dates and timestamps may not lie after the extraction; the margin absorbs clock skew
# between the source system and this platform.
PLAUSIBLE_DATE_MARGIN = dt.timedelta(days=1)

# Result keys that hold counts or shares only; everything else GX returns is dropped.
_COUNT_KEYS = (
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
    "missing_count",
    "missing_percent",
)
# Expectations whose observed_value is a row count (not a data value).
_COUNT_OBSERVED = {
    "unexpected_rows_expectation",
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
}
# Expectations whose observed_value is the list of column names (schema, not data).
_SCHEMA_OBSERVED = {
    "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set",
}
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
_SAFE_TOKEN = re.compile(r"^\(([A-Za-z_][\w.]*)\)")


class QualityConfigError(Exception):
    """An expectation suite file is missing or malformed; the message names the file."""


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteSpec:
    """One suite file: its name, notes and expectation configurations (GX JSON format)."""

    name: str
    path: Path
    notes: str
    expectations: tuple[dict[str, Any], ...]
    check_names: tuple[str, ...]

    def subset(self, keep: list[int]) -> SuiteSpec:
        return SuiteSpec(self.name, self.path, self.notes,
                         tuple(self.expectations[i] for i in keep), tuple(self.check_names[i] for i in keep))


def referenced_columns(expectation: dict[str, Any]) -> set[str]:
    """Columns an expectation names in its kwargs (not those inside SQL text)."""
    kw = expectation["kwargs"]
    cols = {kw[key] for key in ("column", "column_A", "column_B") if isinstance(kw.get(key), str)}
    if expectation["type"] not in _SCHEMA_OBSERVED and isinstance(kw.get("column_list"), list):
        cols.update(c for c in kw["column_list"] if isinstance(c, str))
    return cols


def check_name(expectation: dict[str, Any]) -> str:
    """A readable, stable name of one expectation: ``meta.name`` or ``type(column)``."""
    meta = expectation.get("meta") or {}
    if meta.get("name"):
        return str(meta["name"])
    kw = expectation.get("kwargs") or {}
    if isinstance(kw.get("column"), str):
        target = kw["column"]
    elif kw.get("column_A") and kw.get("column_B"):
        target = f"{kw['column_A']},{kw['column_B']}"
    elif isinstance(kw.get("column_list"), list):
        target = ",".join(map(str, kw["column_list"]))
    else:
        target = ""
    return f"{expectation.get('type')}({target})" if target else str(expectation.get("type"))


def suite_path(name: str, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{name}.json"


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> SuiteSpec:
    """Read and check one suite file (structure only; GX checks the kwargs when it runs)."""
    path = suite_path(name, directory)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QualityConfigError(f"{path}: expectation suite not found") from None
    except json.JSONDecodeError as exc:
        raise QualityConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("name") != name:
        raise QualityConfigError(f"{path}: 'name' must be {name!r}")
    exps = doc.get("expectations")
    if not isinstance(exps, list) or not exps:
        raise QualityConfigError(f"{path}: 'expectations' must be a non-empty list")
    names: list[str] = []
    for i, exp in enumerate(exps):
        if not (isinstance(exp, dict) and isinstance(exp.get("type"), str)
                and isinstance(exp.get("kwargs"), dict)):
            raise QualityConfigError(f"{path}: expectation {i} needs a 'type' and a 'kwargs' object")
        names.append(check_name(exp))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise QualityConfigError(f"{path}: duplicate check names {dupes}; give them meta.name")
    notes = (doc.get("meta") or {}).get("notes")
    if not notes:
        raise QualityConfigError(f"{path}: meta.notes must say what the suite protects")
    return SuiteSpec(name, path, str(notes), tuple(exps), tuple(names))


def available_suites(directory: Path = EXPECTATIONS_DIR) -> list[str]:
    return sorted(p.name[: -len(".json")] for p in directory.glob("*.json"))


# --------------------------------------------------------------------------------------------
# Great Expectations (lazy, once per process)
# --------------------------------------------------------------------------------------------

_import_lock = threading.Lock()
_run_lock = threading.Lock()
_gx_modules: dict[str, Any] | None = None
gx_import_seconds: float | None = None

# Modules Great Expectations imports for expectations this project never runs (the KL
# divergence and KS tests: plots and statistics). Importing them costs about 3 s of CPU, a
# third of GX's import, in every process that validates; they are imported on first use
# instead.
GX_DEFERRED_IMPORTS = ("altair", "scipy.stats")


class _DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module until one of its attributes is read, then imports
    the real module and forwards to it (``import x`` and ``from p import x`` bind the stand-in,
    which is all GX does with these at import time)."""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get("_deferred_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            _bind_on_parent(self.__name__, real)
            self.__dict__["_deferred_real"] = real
        return getattr(real, attr)


def _defer_import(name: str) -> None:
    """Put a :class:`_DeferredModule` for ``name`` in ``sys.modules`` (and on its parent
    package) unless the module is imported already or not installed."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        return
    if spec is None:
        return
    module = _DeferredModule(name)
    module.__spec__ = spec
    # inspect.getmodule() (behind inspect.stack(), which dbt calls whenever it makes an
    # adapter) reads __file__ of every module in sys.modules: without one here it would
    # import the real module, 1.5-3 s at the start of every dbt build after GX was imported
    module.__file__ = spec.origin
    sys.modules[name] = module
    _bind_on_parent(name, module)


def _bind_on_parent(name: str, module: types.ModuleType) -> None:
    """``module`` as the attribute of its parent package (what ``from p import x`` reads)."""
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


class _DialectName(str):
    """A dialect name usable in GX's persisted-connection tuple (compared as str, has .value)."""

    @property
    def value(self) -> str:
        return str(self)


def _gx() -> dict[str, Any]:
    """Import GX once; make it keep one connection per DuckDB engine.

    GX releases the connection after each metric batch on dialects it does not know, and
    reads the result after the rollback (IndexError in ``resolve_metric_bundle`` on DuckDB).
    Registering ``duckdb`` among the persisted-connection dialects (as GX does for sqlite)
    makes it use a StaticPool and keep the connection, which works and stays in-database.
    """
    global _gx_modules, gx_import_seconds
    with _import_lock:
        if _gx_modules is None:
            started = time.perf_counter()
            for name in GX_DEFERRED_IMPORTS:
                _defer_import(name)
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.execution_engine import sqlalchemy_execution_engine as sae
            from great_expectations.expectations.expectation_configuration import (
                ExpectationConfiguration,
            )

            if "duckdb" not in [str(getattr(d, "value", d)) for d in sae._PERSISTED_CONNECTION_DIALECTS]:
                sae._PERSISTED_CONNECTION_DIALECTS = (
                    *sae._PERSISTED_CONNECTION_DIALECTS, _DialectName("duckdb"))
            # GX logs metric errors with the database's message, which can quote data
            # values; the sanitised outcome goes to our report instead.
            for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
                logging.getLogger(name).setLevel(logging.CRITICAL)
            logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
            _gx_modules = {
                "gx": gx,
                "ProgressBarsConfig": ProgressBarsConfig,
                "ExpectationConfiguration": ExpectationConfiguration,
            }
            gx_import_seconds = time.perf_counter() - started
            if threading.main_thread().is_alive():  # not while the process exits (a run that
                # failed fast): Prefect's log handler cannot start its worker then
                log.info("great_expectations imported in %.1f s", gx_import_seconds)
        return _gx_modules


def _preload() -> None:
    """:func:`_gx`, best effort: a run that failed fast exits while the import is still going,
    and an import that needs the interpreter (its exit hooks) then fails; the first validation
    imports it again and reports what goes wrong there."""
    try:
        _gx()
    except Exception:  # noqa: BLE001 - see above
        if threading.main_thread().is_alive():
            log.debug("importing great_expectations in the background failed", exc_info=True)


def preload() -> threading.Thread:
    """Start importing Great Expectations in the background (it takes seconds), so the first
    validation does not wait for it; the import lock makes a concurrent caller wait instead.
    The thread runs in a copy of the caller's context: its log line belongs to the caller's
    Prefect run (a new thread has no run context, and Prefect warns about such a line)."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(_preload,),
                              name="gx-preload", daemon=True)
    thread.start()
    return thread


@dataclass
class CheckResult:
    name: str
    type: str
    kwargs: dict[str, Any]
    success: bool
    counts: dict[str, Any] = field(default_factory=dict)
    raised_exception: bool = False
    error: str | None = None
    notes: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "kwargs": self.kwargs,
            "success": self.success,
            **self.counts,
        }
        if self.raised_exception:
            doc["raised_exception"] = True
            doc["error"] = self.error
        if self.notes:
            doc["notes"] = self.notes
        return doc


@dataclass
class SuiteResult:
    suite: str
    table: str
    rows: int
    notes: str
    checks: list[CheckResult]
    checkpoint_seconds: float = 0.0  # the whole checkpoint (all suites of the run)

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [f"{self.suite}:{c.name}" for c in self.checks if not c.success]

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "table": self.table,
            "rows": self.rows,
            "success": self.success,
            "notes": self.notes,
            "expectations": [c.to_json() for c in self.checks],
        }


def _safe_error(exception_info: Any) -> tuple[bool, str | None]:
    """Whether GX caught an exception, and the exception class only (never its message)."""
    infos: list[dict[str, Any]] = []
    if isinstance(exception_info, dict):
        if "raised_exception" in exception_info:
            infos.append(exception_info)
        else:
            infos.extend(v for v in exception_info.values() if isinstance(v, dict))
    raised = [i for i in infos if i.get("raised_exception")]
    if not raised:
        return False, None
    message = str(raised[0].get("exception_message") or "")
    match = _SAFE_TOKEN.match(message)
    kind = match.group(1) if match else "error"
    return True, f"{kind} while computing the check (details withheld: they may quote data)"


def _safe_counts(exp_type: str, result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _COUNT_KEYS:
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    observed = result.get("observed_value")
    if exp_type in _COUNT_OBSERVED and isinstance(observed, int) and not isinstance(observed, bool):
        key = "unexpected_count" if exp_type == "unexpected_rows_expectation" else "observed_row_count"
        out[key] = observed
    elif exp_type in _SCHEMA_OBSERVED and isinstance(observed, list):
        out["observed_columns"] = [str(c) for c in observed]
    return out


def _table_columns(db: Path, table: str) -> list[str]:
    conn = _connect_scratch(db, read_only=True)
    try:
        rows = conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'main' and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def run_suites(db: Path, targets: list[tuple[SuiteSpec, str, int]], parameters: dict[str, Any],
               checkpoint_name: str) -> list[SuiteResult]:
    """Run suites on tables of the ``main`` schema of a DuckDB file, as one GX checkpoint.

    ``targets`` are (suite, table, row count). The file is opened read-only; the engine and its
    connection are disposed before returning. Results hold counts only.
    """
    if not targets:
        return []
    mods = _gx()
    gx = mods["gx"]
    expectation_configuration = mods["ExpectationConfiguration"]
    plans: list[tuple[SuiteSpec, str, int, dict[int, list[str]]]] = []
    runnable: list[tuple[SuiteSpec, str]] = []
    for spec, table, rows in targets:
        present = set(_table_columns(db, table))
        missing = {i: sorted(referenced_columns(exp) - present) for i, exp in enumerate(spec.expectations)}
        missing = {i: cols for i, cols in missing.items() if cols}
        plans.append((spec, table, rows, missing))
        keep = [i for i in range(len(spec.expectations)) if i not in missing]
        if keep:
            runnable.append((spec.subset(keep), table))
    outcome: dict[str, list[CheckResult]] = {}
    elapsed = 0.0
    if runnable:
        started = time.perf_counter()
        with _run_lock:
            outcome = _run_checkpoint(gx, mods["ProgressBarsConfig"], expectation_configuration, db,
                                      runnable, parameters, checkpoint_name)
        elapsed = time.perf_counter() - started
    results = []
    for spec, table, rows, missing in plans:
        ran = iter(outcome.get(spec.name, []))
        checks = []
        for i, (name, exp) in enumerate(zip(spec.check_names, spec.expectations, strict=True)):
            if i in missing:
                # A readable schema failure instead of a GX exception.
                checks.append(CheckResult(name, exp["type"], exp["kwargs"], False, raised_exception=True,
                                          error=f"columns missing from the table: {missing[i]}"))
            else:
                checks.append(next(ran))
        results.append(SuiteResult(spec.name, table, rows, spec.notes, checks, checkpoint_seconds=elapsed))
    return results


def scratch_datasource(context: Any, db: Path) -> Any:
    """A GX SQL datasource on a scratch DuckDB file, read-only, with the warehouse settings of
    its data directory (memory limit, threads, spill folder)."""
    return context.data_sources.add_sql(
        name="scratch",
        connection_string=f"duckdb:///{db}",
        kwargs={"connect_args": database.sqlalchemy_connect_args(_scratch_home(db),
                                                                 read_only=True)},
    )


def _run_checkpoint(gx: Any, progress_bars_config: Any, expectation_configuration: Any, db: Path,
                    runnable: list[tuple[SuiteSpec, str]], parameters: dict[str, Any],
                    checkpoint_name: str) -> dict[str, list[CheckResult]]:
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = progress_bars_config(globally=False)
    datasource = scratch_datasource(context, db)
    try:
        return _checkpoint_results(gx, context, datasource, expectation_configuration, runnable,
                                   parameters, checkpoint_name)
    finally:
        _dispose(datasource)


def _checkpoint_results(gx: Any, context: Any, datasource: Any, expectation_configuration: Any,
                        runnable: list[tuple[SuiteSpec, str]], parameters: dict[str, Any],
                        checkpoint_name: str) -> dict[str, list[CheckResult]]:
    definitions = []
    ids: dict[str, list[str]] = {}
    for spec, table in runnable:
        asset = datasource.add_table_asset(name=table, table_name=table)
        batch = asset.add_batch_definition_whole_table(f"{table}_whole")
        domain = []
        for name, exp in zip(spec.check_names, spec.expectations, strict=True):
            try:
                domain.append(expectation_configuration(**copy.deepcopy(exp)).to_domain_obj())
            except Exception as exc:  # GX raises several kinds for a bad configuration
                raise QualityConfigError(
                    f"{spec.path}: expectation {name!r} is not a valid GX expectation "
                    f"({type(exc).__name__}: {exc})") from None
        suite = context.suites.add(gx.ExpectationSuite(name=spec.name, expectations=domain))
        if len(suite.expectations) != len(spec.expectations):
            raise QualityConfigError(f"{spec.path}: GX dropped expectations it could not accept")
        ids[spec.name] = [e.id for e in suite.expectations]
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=checkpoint_name, validation_definitions=definitions, result_format=_RESULT_FORMAT))
    result = checkpoint.run(expectation_parameters=parameters)
    by_suite: dict[str, dict[str, Any]] = {}
    for suite_result in result.run_results.values():
        by_suite[suite_result.suite_name] = {r.expectation_config.id: r for r in suite_result.results}
    out: dict[str, list[CheckResult]] = {}
    for spec, _table in runnable:
        found = by_suite.get(spec.name, {})
        checks = []
        for name, exp, exp_id in zip(spec.check_names, spec.expectations, ids[spec.name], strict=True):
            notes = (exp.get("meta") or {}).get("notes")
            r = found.get(exp_id)
            if r is None:
                checks.append(CheckResult(name, exp["type"], exp["kwargs"], False, raised_exception=True,
                                          error="no result returned by Great Expectations", notes=notes))
                continue
            raised, error = _safe_error(r.exception_info)
            checks.append(CheckResult(
                name, exp["type"], exp["kwargs"], bool(r.success) and not raised,
                counts=_safe_counts(exp["type"], dict(r.result or {})),
                raised_exception=raised, error=error, notes=notes))
        out[spec.name] = checks
    return out


def _dispose(datasource: Any) -> None:
    """Close every connection GX opened on the scratch file, so it is released at once.

    GX keeps two engines per SQL data source: the one its table assets use to test the
    connection (``_engine``, a QueuePool) and the execution engine's (StaticPool, plus the
    connection it keeps). DuckDB refuses a read-write connection to a file while a read-only
    one is open in the same process, so both must be disposed.
    """
    execution_engine = getattr(datasource, "_execution_engine", None)
    if execution_engine is not None:
        connection = getattr(execution_engine, "_connection", None)
        if connection is not None:
            with suppress(Exception):
                connection.close()
            execution_engine._connection = None
        with suppress(Exception):
            execution_engine.engine.dispose()
    engine = getattr(datasource, "_engine", None)
    if engine is not None:
        with suppress(Exception):
            engine.dispose()


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _write_report(directory: Path, stem: str, doc: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    tmp = directory / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(json_path)
    tmp = directory / f".{stem}.html.tmp"
    tmp.write_text(_render_html(doc), encoding="utf-8")
    tmp.replace(html_path)
    return html_path


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}
th{background:#f0f0f0}.ok{color:#11701b;font-weight:600}.fail{color:#b00020;font-weight:600}
code{font-size:.85rem}.notes{color:#555;font-size:.9rem}
"""


def _render_html(doc: dict[str, Any]) -> str:
    e = html.escape

    def status(ok: bool) -> str:
        return '<span class="ok">passed</span>' if ok else '<span class="fail">FAILED</span>'

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(doc['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['title'])}</h1>",
        f"<p>Outcome: {status(doc['success'])} &middot; generated {e(doc['generated_at'])}</p>",
        "<p class='notes'>Counts only: this report never shows data values.</p>",
    ]
    if doc.get("failed_checks"):
        parts.append("<h2>Failed checks</h2><ul>")
        parts += [f"<li><code>{e(c)}</code></li>" for c in doc["failed_checks"]]
        parts.append("</ul>")
    if doc.get("problems"):
        parts.append("<h2>Problems</h2><ul>")
        parts += [f"<li>{e(p)}</li>" for p in doc["problems"]]
        parts.append("</ul>")
    load = doc.get("load")
    if load:
        parts.append("<h2>Load into the scratch database</h2><table><tr><th>entity</th>"
                     "<th>received</th><th>loaded</th><th>quarantined</th></tr>")
        for entity, c in load.get("entities", {}).items():
            parts.append(f"<tr><td>{e(entity)}</td><td>{c['received']}</td><td>{c['loaded']}</td>"
                         f"<td>{c['quarantined']}</td></tr>")
        parts.append("</table>")
        if load.get("quarantined_by_reason"):
            parts.append("<table><tr><th>quarantine reason</th><th>rows</th></tr>")
            parts += [f"<tr><td>{e(k)}</td><td>{v}</td></tr>"
                      for k, v in load["quarantined_by_reason"].items()]
            parts.append("</table>")
    if doc.get("tables_without_suite"):
        listed = ", ".join(f"<code>{e(t)}</code> ({n} rows)" for t, n in doc["tables_without_suite"].items())
        parts.append(f"<p>Loaded tables without a suite (not checked): {listed}</p>")
    for suite in doc.get("suites", []):
        parts.append(f"<h2>Suite <code>{e(suite['suite'])}</code> on <code>{e(suite['table'])}</code>"
                     f" ({suite['rows']} rows): {status(suite['success'])}</h2>")
        parts.append(f"<p class='notes'>{e(suite['notes'])}</p>")
        parts.append("<table><tr><th>check</th><th>outcome</th><th>unexpected</th><th>of rows</th>"
                     "<th>remarks</th></tr>")
        for c in suite["expectations"]:
            detail = c.get("error") or ""
            if c.get("observed_columns") is not None and not c["success"]:
                detail = "columns found: " + ", ".join(c["observed_columns"])
            if c.get("notes"):
                detail = f"{detail} {c['notes']}".strip()
            parts.append(
                f"<tr><td><code>{e(c['name'])}</code></td><td>{status(c['success'])}</td>"
                f"<td>{e(str(c.get('unexpected_count', '')))}</td>"
                f"<td>{e(str(c.get('element_count', '')))}</td><td>{e(detail)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Scratch databases
# --------------------------------------------------------------------------------------------


def _scratch_home(db: Path) -> Paths | None:
    """The data directory a scratch file (``<home>/validation/scratch/…``) belongs to (None:
    the configured one), whose ``[warehouse]`` settings its connections get."""
    db = Path(db)
    if db.parent.name == "scratch" and db.parent.parent.name == "validation":
        return Paths(db.parent.parent.parent)
    return None


def _connect_scratch(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    return database.connect(db, read_only=read_only, p=_scratch_home(db))


@contextmanager
def _scratch_db(p: Paths, label: str, keep: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """A scratch DuckDB file, removed afterwards unless ``keep()`` says it is still needed."""
    directory = p.scratch
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only: it holds personnummer
    path = directory / f"{label}-{secrets.token_hex(4)}.duckdb"
    try:
        yield path
    finally:
        if not keep():
            discard_scratch(path)


def discard_scratch(path: Path | str) -> None:
    path = Path(path)
    for leftover in (path, wal_file(path)):
        with suppress(FileNotFoundError):
            leftover.unlink()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _plausibility_parameters(extracted_at: str) -> dict[str, str]:
    try:
        at = dt.datetime.fromisoformat(extracted_at)
    except ValueError:
        at = dt.datetime.now(dt.UTC)
    return {"latest_plausible_date": (at + PLAUSIBLE_DATE_MARGIN).date().isoformat()}


# --------------------------------------------------------------------------------------------
# Batch validation
# --------------------------------------------------------------------------------------------

BATCH_REPORT = "batch_validation"
INDICATOR_REPORT = "indicator_checkpoint"
LAGESBILD_REPORT = "lagesbild_checkpoint"


def validate_batch(manifest: BatchManifest, extractor: Extractor, paths: Paths,
                   expectations_dir: Path = EXPECTATIONS_DIR, *,
                   keep_staged: bool = False) -> ValidationOutcome:
    """Validate a landed batch before it is loaded; never touches the warehouse.

    The batch is loaded with ``extractor.load`` into a scratch DuckDB file that has the
    restricted schema, then each suite ``<source>.<table>`` runs on each raw table of the
    source that received rows. A failing load (exception or rows not accounted for) fails the
    batch. The report goes to ``paths.validation/<batch_id>/batch_validation.{json,html}``;
    ``report_path`` is the HTML page.

    With ``keep_staged``, a batch that passes keeps its scratch file: the outcome's
    ``staged_path`` and ``staged_counts`` let the warehouse load copy exactly the rows that
    were validated instead of parsing the batch a second time.
    """
    started = time.perf_counter()
    counts: dict[str, Any] = {}
    passed = [False]
    source = manifest.source
    schema = f"raw_{source}"
    failed: list[str] = []
    problems: list[str] = []
    load_doc: dict[str, Any] = {"entities": {}, "quarantined_by_reason": {}}
    suites: list[SuiteResult] = []
    unchecked: dict[str, int] = {}
    with _scratch_db(paths, manifest.batch_id, keep=lambda: keep_staged and passed[0]) as db:
        conn = _connect_scratch(db)
        targets: list[tuple[SuiteSpec, str, int]] = []
        try:
            ensure_restricted_schema(conn)
            load_started = time.perf_counter()
            try:
                conn.execute("begin transaction")
                counts = extractor.load(conn, manifest)
                for entity, c in counts.items():
                    c.check(manifest.batch_id, entity)
                conn.execute("commit")
            except Exception as exc:
                with suppress(Exception):
                    conn.execute("rollback")
                # The message of a database error can quote a data value: record the class only.
                kind = "accounting" if isinstance(exc, AccountingError) else "load_failed"
                failed.append(f"{source}:{kind}")
                problems.append(f"the extractor's load failed in the scratch database "
                                 f"({type(exc).__name__}); the batch cannot be loaded")
                counts = {}
            load_doc["seconds"] = round(time.perf_counter() - load_started, 3)
            load_doc["entities"] = {e: {"received": c.received, "loaded": c.loaded,
                                        "quarantined": c.quarantined} for e, c in counts.items()}
            load_doc["quarantined_by_reason"] = dict(conn.execute(
                "select reason, count(*) from load_meta.quarantine group by reason order by reason"
            ).fetchall())
            tables = [r[0] for r in conn.execute(
                "select table_name from information_schema.tables "
                "where table_schema = ? and table_type = 'BASE TABLE' order by table_name", [schema]
            ).fetchall()]
            for table in tables:
                rows = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
                name = f"{source}.{table}"
                if rows == 0:
                    continue
                if not suite_path(name, expectations_dir).exists():
                    unchecked[f"{schema}.{table}"] = rows
                    continue
                view = f"{source}__{table}"
                conn.execute(f'create view main."{view}" as select * from "{schema}"."{table}"')
                targets.append((load_suite(name, expectations_dir), view, rows))
        finally:
            conn.close()
        if not failed:
            suites = run_suites(db, targets, _plausibility_parameters(manifest.extracted_at),
                                checkpoint_name=f"batch-{manifest.batch_id}")
        for s in suites:
            s.table = f"{schema}.{s.table.split('__', 1)[1]}"
            failed.extend(s.failed)
        passed[0] = not failed
        if passed[0] and keep_staged:
            conn = _connect_scratch(db)
            try:
                for view in conn.execute("select view_name from duckdb_views() "
                                         "where schema_name = 'main' and not internal").fetchall():
                    conn.execute(f'drop view main."{view[0]}"')
            finally:
                conn.close()
    success = not failed
    doc = {
        "title": f"Batch validation {manifest.batch_id}",
        "kind": "batch",
        "batch_id": manifest.batch_id,
        "source": source,
        "extracted_at": manifest.extracted_at,
        "row_count": manifest.row_count,
        "generated_at": _now(),
        "success": success,
        "failed_checks": failed,
        "problems": problems,
        "load": load_doc,
        "suites": [s.to_json() for s in suites],
        "tables_without_suite": unchecked,
        "parameters": _plausibility_parameters(manifest.extracted_at),
        "checkpoint_seconds": round(suites[0].checkpoint_seconds, 3) if suites else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
    }
    report = _write_report(paths.validation / manifest.batch_id, BATCH_REPORT, doc)
    log.info("batch %s (%s) validation %s: %d suites, %d failed checks, %.1f s", manifest.batch_id,
             source, "passed" if success else "FAILED", len(suites), len(failed), doc["seconds"])
    staged = success and keep_staged
    return ValidationOutcome(success=success, failed_checks=tuple(failed), report_path=str(report),
                             staged_path=str(db) if staged else None,
                             staged_counts=counts if staged else None)


def batch_validator(
    extractor: Extractor, paths: Paths, expectations_dir: Path = EXPECTATIONS_DIR
) -> Callable[[BatchManifest], ValidationOutcome]:
    """The validator :func:`samverkan.extract.run_extract` takes for this extractor."""

    def validate(manifest: BatchManifest) -> ValidationOutcome:
        return validate_batch(manifest, extractor, paths, expectations_dir, keep_staged=True)

    return validate


# --------------------------------------------------------------------------------------------
# Indicator checkpoint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedTable:
    """A published table the gate checks with one suite: the suite's name, the table's name in
    the scratch database (the suite's ``meta.table``), its default table in the analytics
    warehouse and the stem of its report."""

    suite: str
    table: str
    default_source_table: str
    report: str
    title: str


INDICATOR_TABLE_SPEC = PublishedTable(INDICATOR_SUITE, INDICATOR_TABLE, DEFAULT_INDICATOR_SOURCE_TABLE,
                                      INDICATOR_REPORT, "Indicator checkpoint")
LAGESBILD_TABLE_SPEC = PublishedTable(LAGESBILD_SUITE, LAGESBILD_TABLE, DEFAULT_LAGESBILD_SOURCE_TABLE,
                                      LAGESBILD_REPORT, "Lägesbild checkpoint")


def _copy_published(conn: duckdb.DuckDBPyConnection, source: Path, table: str, target: str) -> None:
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        conn.execute(f"create table main.{target} as select * from read_parquet(?)", [str(source)])
    elif suffix == ".csv":
        conn.execute(f"create table main.{target} as select * from read_csv(?, header = true)",
                     [str(source)])
    elif suffix in (".duckdb", ".db"):
        quoted = str(source).replace("'", "''")
        conn.execute(f"attach '{quoted}' as published_source (read_only)")
        try:
            conn.execute(f"create table main.{target} as select * from published_source.{table}")
        finally:
            conn.execute("detach published_source")
    else:
        raise ValueError(f"unsupported table file type {suffix!r}")


def _validate_published(spec_of: PublishedTable, table_path_or_db: Path | str, paths: Paths, run_id: str,
                        table: str | None, expectations_dir: Path) -> ValidationOutcome:
    started = time.perf_counter()
    source = Path(table_path_or_db)
    table = table or spec_of.default_source_table
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)?", table):
        raise ValueError("table must be a plain [schema.]name")
    spec = load_suite(spec_of.suite, expectations_dir)
    failed: list[str] = []
    problems: list[str] = []
    suites: list[SuiteResult] = []
    is_file = source.suffix.lower() in (".parquet", ".csv")
    with _scratch_db(paths, f"{spec_of.suite}-{run_id}") as db:
        conn = _connect_scratch(db)
        rows = 0
        try:
            _copy_published(conn, source, table, spec_of.table)
            rows = conn.execute(f"select count(*) from main.{spec_of.table}").fetchone()[0]
        except (duckdb.Error, ValueError) as exc:
            failed.append(f"{spec_of.suite}:table_readable")
            problems.append(f"could not read the table from {source.name}"
                            f"{'' if is_file else ' (' + table + ')'}: {type(exc).__name__}")
        finally:
            conn.close()
        if not failed:
            suites = run_suites(db, [(spec, spec_of.table, rows)], {},
                                checkpoint_name=f"{spec_of.suite}-{run_id}")
    for s in suites:
        s.table = source.name if is_file else f"{source.name}:{table}"
        failed.extend(s.failed)
    success = not failed
    doc = {
        "title": f"{spec_of.title}, run {run_id}",
        "kind": spec_of.suite,
        "run_id": run_id,
        "source": str(source),
        "generated_at": _now(),
        "success": success,
        "failed_checks": failed,
        "problems": problems,
        "suites": [s.to_json() for s in suites],
        "checkpoint_seconds": round(suites[0].checkpoint_seconds, 3) if suites else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
    }
    report = _write_report(paths.validation / run_id, spec_of.report, doc)
    log.info("%s checkpoint for run %s %s: %d failed checks, %.1f s", spec_of.suite, run_id,
             "passed" if success else "FAILED", len(failed), doc["seconds"])
    return ValidationOutcome(success=success, failed_checks=tuple(failed), report_path=str(report))


def validate_indicators(table_path_or_db: Path | str, paths: Paths, run_id: str,
                        table: str = DEFAULT_INDICATOR_SOURCE_TABLE,
                        expectations_dir: Path = EXPECTATIONS_DIR) -> ValidationOutcome:
    """Run the ``indicators`` checkpoint on a candidate indicator table.

    ``table_path_or_db`` is the published candidate file (``.parquet`` or ``.csv``) or a DuckDB
    file (``analytics.duckdb``), read-only, whose ``table`` (default
    ``marts.published_indicators``) is checked. The rows are copied into a scratch DuckDB file
    first, so the source is never held open. The report goes to
    ``paths.validation/<run_id>/indicator_checkpoint.{json,html}``; ``report_path`` is the HTML.
    """
    return _validate_published(INDICATOR_TABLE_SPEC, table_path_or_db, paths, run_id, table,
                               expectations_dir)


def validate_lagesbild(table_path_or_db: Path | str, paths: Paths, run_id: str,
                       table: str = DEFAULT_LAGESBILD_SOURCE_TABLE,
                       expectations_dir: Path = EXPECTATIONS_DIR) -> ValidationOutcome:
    """Run the ``lagesbild`` checkpoint on a candidate lägesbild table (file or DuckDB file,
    default table ``marts.published_lagesbild``), like :func:`validate_indicators`; the report
    goes to ``paths.validation/<run_id>/lagesbild_checkpoint.{json,html}``."""
    return _validate_published(LAGESBILD_TABLE_SPEC, table_path_or_db, paths, run_id, table,
                               expectations_dir)


def clear_scratch(paths: Paths) -> int:
    """Delete every scratch database (a killed validation's leftovers hold personnummer);
    returns how many. Only for a process that holds the run lock (:mod:`samverkan.locks`):
    no other run's validation can be using one."""
    return remove_stale_scratch(paths, older_than=None)


def remove_stale_scratch(paths: Paths,
                         older_than: dt.timedelta | None = dt.timedelta(hours=12)) -> int:
    """Delete scratch databases a killed validation left behind (older than ``older_than``,
    so a validation running in another process keeps its file; all of them when ``None``);
    returns how many."""
    directory = paths.scratch
    if not directory.exists():
        return 0
    limit = time.time() - (older_than.total_seconds() if older_than is not None else -60.0)
    removed = 0
    for item in directory.iterdir():
        with suppress(FileNotFoundError):
            if item.stat().st_mtime < limit:
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink()
                removed += 1
    return removed
