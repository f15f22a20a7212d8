"""The pipeline's steps as plain functions; the Prefect flows in ``flows/`` only order them.

Nightly: extract (per source) → transform (dbt build) → publish (gate, then atomic
publication). Weekly: transform_lagesbild (dbt build of the lägesbild models only) →
publish_lagesbild (its gate, then atomic publication under published/lagesbild/).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from samverkan import database
from samverkan.config import SOURCES, ConfigError, Settings
from samverkan.extract import BatchResult, Extractor, ExtractResult, run_extract
from samverkan.locks import WarehouseBusy, connect_warehouse
from samverkan.progress import progress
from samverkan.publish import (
    ANALYTICS_SNAPSHOT,
    DBT_DOCS_DIR,
    MANIFEST,
    GateCheck,
    PublicationResult,
    analysts_publication,
    copy_dbt_docs,
    current_manifest,
    discard_candidate,
    export_candidate,
    export_lagesbild_candidate,
    indicator_catalogue,
    indicator_publication,
    lagesbild_publication,
    new_staging,
    prune_snapshots,
    publish_candidate,
    write_analytics_snapshot,
)

log = logging.getLogger(__name__)

# The runs build every model and run every data test on the data; dbt's unit tests (fixed
# inputs, expected outputs: they test the SQL, not the data) run in the test suite
# (tests/test_dbt_project.py), as dbt recommends for production builds.
PIPELINE_DBT_ARGS = ("--exclude", "test_type:unit")
LAGESBILD_GATE_TITLE = "Publiceringsgrind lägesbild"
# Great Expectations contexts are not safe to build from several threads at once.
_VALIDATION_LOCK = threading.Lock()


def preload_quality_checks() -> None:
    """Import Great Expectations in the background while the sources are being pulled."""
    from samverkan.quality import preload

    preload()


def build_extractor(settings: Settings, source: str) -> Extractor:
    if settings.source_problems.get(source):
        raise ConfigError(settings.source_problems[source])
    if source == "ss12000":
        from samverkan.sources.ss12000 import SS12000Extractor

        if settings.ss12000 is None:
            raise ConfigError("no [ss12000] section in the configuration")
        return SS12000Extractor(settings.ss12000)
    if source == "case_system":
        from samverkan.sources.case_system import CaseSystemExtractor

        if settings.case_system is None:
            raise ConfigError("no [case_system] section in the configuration")
        return CaseSystemExtractor(settings.case_system)
    if source == "police":
        from samverkan.sources.police import PoliceExtractor

        if settings.police is None:
            raise ConfigError("no [police] section in the configuration")
        return PoliceExtractor(settings.police)
    raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")


def extract(settings: Settings, source: str, until: dt.date | None = None) -> ExtractResult:
    """Recover, pull, land, validate and load one source (up to the data date ``until``, for
    a backfill)."""
    from samverkan.database import loading
    from samverkan.quality import batch_validator, remove_stale_scratch

    settings.paths.ensure()
    remove_stale_scratch(settings.paths)  # left by a run that was killed mid-validation
    extractor = build_extractor(settings, source)
    check = batch_validator(extractor, settings.paths)

    def validate(manifest):  # noqa: ANN001, ANN202 - adapter for run_extract
        with _VALIDATION_LOCK:
            return check(manifest)

    with loading():  # its DuckDB connections get [warehouse] load_memory_limit
        return run_extract(settings.paths, extractor, validate, until=until)


def is_transient(exc: BaseException) -> bool:
    """Failures worth retrying a whole extract for (it resumes safely): time-outs, HTTP 429 and
    5xx, dropped connections. Refused connections, unknown hosts, TLS certificate failures,
    authentication, configuration, missing files or views and data errors are not retried.
    The rules live in :mod:`samverkan.sources.failures`."""
    from samverkan.sources.failures import is_transient as transient

    return transient(exc)


def failed_extract(source: str, error: BaseException | str | None) -> ExtractResult:
    """An extract that raised, as one failed placeholder batch (``<source>-failed``) carrying
    the cause, so the gate blocks publication and says why; the other sources' batches stay."""
    from samverkan.sources.failures import failure_cause

    cause = failure_cause(error)
    log.error("%s: extract failed: %s", source, cause)
    return ExtractResult(source, [BatchResult(f"{source}-failed", source, 0, 0, 0, False,
                                              ("extract failed",), cause=cause)])


def purge_landing(settings: Settings) -> list[str]:
    """Landing retention: loaded batches older than ``retention_days`` (default 30) go. When
    the restricted warehouse stays held by another process, the purge waits, then is skipped
    with one line saying why (the next run purges)."""
    from samverkan.retention import purge_landing as purge

    try:
        return purge(settings.paths, settings.retention_days)
    except WarehouseBusy as exc:
        log.warning("landing retention skipped this run: %s", exc)
        return []


def reference_date(settings: Settings, override: str | None = None) -> dt.date:
    if override:
        return dt.date.fromisoformat(override)
    return settings.reference_date or dt.date.today()


def dbt_vars(settings: Settings, version: str, ref: dt.date) -> dict[str, Any]:
    """Every parameter of a build, from the configuration: the municipality, the disclosure
    threshold, the indicators' thresholds and windows, the reference date and the version."""
    m = settings.municipality
    return {
        "reference_date": ref.isoformat(),
        "data_version": version,
        "municipality_code": m.code,
        "municipality_name": m.name,
        "municipality_organisation_number": m.organisation_number,
        "min_cell": settings.min_cell,
        **settings.indicator_parameters,
    }


def transform(settings: Settings, version: str, ref: dt.date, full_refresh: bool = False) -> Any:
    """dbt build (models and tests) over the restricted and analytics warehouses.

    The attendance chain is incremental: a night rebuilds only the records and days its SS
    12000 batches touched. ``full_refresh`` (``samverkan run --full-refresh``) rebuilds it
    from scratch; so does every build after a change that the nightly bookkeeping cannot see
    (:func:`samverkan.incremental.rebuild_reason`: the chain's models changed, loaded rows
    were removed), with one line saying why."""
    from samverkan.incremental import FINGERPRINT_VAR, logic_fingerprint, rebuild_reason
    from samverkan.transform import dbt_build, report_outcome

    settings.paths.ensure()
    fingerprint = logic_fingerprint()
    try:
        reason = "requested (--full-refresh)" if full_refresh else rebuild_reason(
            settings.paths, fingerprint)
    except WarehouseBusy:
        reason = None  # dbt_build waits for the file and says so when it stays held
    args: tuple[str, ...] = PIPELINE_DBT_ARGS
    if reason:
        progress("dbt build: full rebuild of the incremental attendance models: %s", reason)
        args = (*args, "--full-refresh")
    progress("dbt build: models and data tests (reference date %s) …", ref)
    outcome = dbt_build(settings.paths,
                        {**dbt_vars(settings, version, ref), FINGERPRINT_VAR: fingerprint},
                        extra_args=args)
    report_outcome(outcome)
    return outcome


@dataclass
class SourceLoad:
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)
    failed_batches: list[str] = field(default_factory=list)
    failure_causes: dict[str, str] = field(default_factory=dict)  # failed batch id -> cause


def load_report(results: list[ExtractResult]) -> dict[str, dict[str, Any]]:
    """Per source: rows received, loaded, quarantined (by reason) in this run."""
    report: dict[str, dict[str, Any]] = {}
    for r in results:
        s = SourceLoad()
        for b in r.batches:
            s.received += b.received
            s.loaded += b.loaded
            s.quarantined += b.quarantined
            for reason, n in b.quarantined_by_reason.items():
                s.quarantined_by_reason[reason] = s.quarantined_by_reason.get(reason, 0) + n
            (s.batches if b.valid else s.failed_batches).append(b.batch_id)
            if b.cause:
                s.failure_causes[b.batch_id] = b.cause
        report[r.source] = asdict(s)
    return report


def _loaded_batches(settings: Settings) -> list[dict[str, str]]:
    p = settings.paths
    if not p.restricted_db.exists():
        return []
    from samverkan.warehouse import warehouse_lock

    with warehouse_lock(p):
        conn = connect_warehouse(p.restricted_db, read_only=True)
        try:
            rows = conn.execute(
                "select batch_id, source from load_meta.batches order by loaded_at, batch_id"
            ).fetchall()
        finally:
            conn.close()
    return [{"batch_id": b, "source": s} for b, s in rows]


def _load_report_rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    """Rows of a dbt load-report model in the analytics warehouse; none before the first build."""
    conn = connect_warehouse(settings.paths.analytics_db, read_only=True)
    try:
        return conn.execute(query).fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        conn.close()


def _identity_exclusions(settings: Settings) -> dict[str, dict[str, dict[str, int]]]:
    """Per source and reason: records and people kept out of the indicators (dbt load report).
    People are counted where they can be identified (protected identities); an unusable
    identifier is counted by the records that carry it."""
    report: dict[str, dict[str, dict[str, int]]] = {}
    for source, reason, records, people in _load_report_rows(
            settings, "select source_system, reason, records, people from marts.rpt_identity_exclusions "
                      "order by source_system, reason"):
        report.setdefault(source, {})[reason] = {"records": int(records), "people": int(people)}
    return report


def _reference_coverage(settings: Settings) -> list[dict[str, Any]]:
    """What the reference files do not cover (dbt load report ``rpt_reference_coverage``):
    school units SS 12000 serves without an SSPF area, district names the sources write that
    the reference does not know; with the pupils or records behind each."""
    rows = _load_report_rows(
        settings, "select source_system, kind, value, value_name, records from marts.rpt_reference_coverage "
                  "order by kind, source_system, value")
    return [{"source": s, "kind": k, "value": v, "name": n, "records": int(r)} for s, k, v, n, r in rows]


def _data_coverage(settings: Settings) -> dict[str, dict[str, str | None]]:
    """Where each source's data starts and stops (dbt load report ``rpt_data_coverage``): per
    source its first and last data date up to R (ISO dates, null without data)."""
    rows = _load_report_rows(
        settings, "select source_system, first_data_date, last_data_date from marts.rpt_data_coverage "
                  "order by source_system")
    return {source: {"first_data_date": first.isoformat() if first else None,
                     "last_data_date": last.isoformat() if last else None}
            for source, first, last in rows}


def _write_gate_report(settings: Settings, version: str, checks: list[GateCheck],
                       kind: str = "gate", title: str = "Publiceringsgrind",
                       failed_extracts: list[dict[str, str]] | None = None,
                       loads: dict[str, dict[str, Any]] | None = None) -> str:
    """The readable gate report (validation/<kind>-<version>/gate.{json,html}): every check with
    its outcome and a detail that holds names and counts only; when extracts failed, each
    failed source with the cause (host or path and the error, never a data value); and the
    run's load report (``loads``: rows received, loaded and quarantined per source), so a run
    whose publication is held back still says what it loaded."""
    directory = settings.paths.validation / f"{kind}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"version": version, "success": all(c.success for c in checks),
                           "checks": [asdict(c) for c in checks]}
    if failed_extracts:
        doc["failed_extracts"] = failed_extracts
    if loads is not None:
        doc["load_report"] = loads
    (directory / "gate.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False),
                                         encoding="utf-8")
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(c.name)}</td><td>{'godkänd' if c.success else 'UNDERKÄND'}</td>"
        f"<td>{e(c.detail)}</td><td>{e(c.report_path or '')}</td></tr>" for c in checks)
    failures = ""
    if failed_extracts:
        failures = ("<h2>Misslyckade uttag</h2><table border='1'><tr><th>Källa</th><th>Batch</th>"
                    "<th>Orsak</th></tr>" + "".join(
                        f"<tr><td>{e(f['source'])}</td><td>{e(f['batch_id'])}</td>"
                        f"<td>{e(f['cause'])}</td></tr>" for f in failed_extracts) + "</table>")
    (directory / "gate.html").write_text(
        f"<!DOCTYPE html><html lang='sv'><head><meta charset='utf-8'><title>{e(title)} "
        f"{e(version)}</title></head><body><h1>{e(title)} {e(version)}</h1><table border='1'>"
        "<tr><th>Kontroll</th><th>Utfall</th><th>Detalj</th><th>Rapport</th></tr>"
        f"{rows}</table>{failures}</body></html>", encoding="utf-8")
    return str(directory / "gate.html")


def _disclosure_detail(report: Any) -> str:
    if report.ok:
        return "ok"
    by_rule = ", ".join(f"{rule} {n}" for rule, n in report.counts_by_rule().items())
    return f"{len(report.problems)} cells at risk ({by_rule})"


def lagesbild_trailing_weeks(settings: Settings) -> int:
    """Weeks of the lägesbild's trailing average the models were built with (dbt_vars)."""
    return int(settings.indicator_parameters["lagesbild_trailing_weeks"])


def _lagesbild_checks(settings: Settings, candidate: Path, run_id: str,
                     indicators: Path) -> list[GateCheck]:
    """The lägesbild's checkpoint (GX suite) and its independent disclosure check, against
    the indicator table ``indicators`` it is published with (or built on)."""
    from samverkan.disclosure import check_lagesbild
    from samverkan.quality import validate_lagesbild

    p = settings.paths
    with _VALIDATION_LOCK:
        gx = validate_lagesbild(candidate, p, run_id)
    disclosure = check_lagesbild(candidate, min_cell=settings.min_cell,
                                 trailing_weeks=lagesbild_trailing_weeks(settings),
                                 indicators=indicators)
    return [
        GateCheck("lagesbild_checkpoint", gx.success, ", ".join(gx.failed_checks) or "ok",
                  gx.report_path),
        GateCheck("lagesbild_disclosure_control", disclosure.ok, _disclosure_detail(disclosure)),
    ]


@dataclass
class SourceVolumes:
    """The anomaly check of a run (:mod:`samverkan.anomalies`) and the volumes it measured."""

    check: GateCheck
    volumes: dict[str, dict[str, int]] = field(default_factory=dict)


def source_volume_check(settings: Settings, ref: dt.date, confirmed: bool = False,
                        command: str = "samverkan run") -> SourceVolumes:
    """Does a source deliver far less than before? An anomaly fails the gate check
    ``source_volumes`` unless the operator ``confirmed`` it (``command`` with
    ``--confirm-anomalies``: ``samverkan run`` or ``samverkan backfill``)."""
    from samverkan.anomalies import find_anomalies
    from samverkan.sources.failures import failure_cause

    try:
        anomalies, volumes = find_anomalies(settings, ref)
    except Exception as exc:  # noqa: BLE001 - the check reports, the gate decides
        return SourceVolumes(GateCheck("source_volumes", False,
                                       f"could not be measured: {failure_cause(exc)}"))
    if not anomalies:
        return SourceVolumes(GateCheck("source_volumes", True, "as before"), volumes)
    detail = "; ".join(f"{a.source}: {a.detail}" for a in anomalies)
    if confirmed:
        log.warning("source volumes: confirmed by the operator: %s", detail)
        return SourceVolumes(GateCheck("source_volumes", True, f"confirmed by the operator: {detail}"),
                             volumes)
    return SourceVolumes(GateCheck(
        "source_volumes", False, f"{detail}. If this is right, publish with `{command} "
        "--confirm-anomalies`"), volumes)


def remember_volumes(settings: Settings, source_volumes: SourceVolumes) -> None:
    """The volumes of a run that published (or whose publication stands): the baseline of the
    next anomaly check."""
    from samverkan.anomalies import record_volumes

    if source_volumes.volumes:
        record_volumes(settings.paths, source_volumes.volumes)


def publish(settings: Settings, version: str, ref: dt.date, extract_results: list[ExtractResult],
            dbt_success: bool, dbt_detail: str = "",
            source_volumes: SourceVolumes | None = None) -> PublicationResult:
    """The publication gate, then an atomic switch of published/current."""
    from samverkan.disclosure import check_disclosure
    from samverkan.excel_files import ExcelFilesWriter
    from samverkan.quality import validate_indicators
    from samverkan.report import render_report

    p = settings.paths.ensure()
    failed = [b for r in extract_results for b in r.batches if not b.valid]
    failed_batches = [f"{b.source}:{b.batch_id}" + (f" ({b.cause})" if b.cause else "") for b in failed]
    failed_extracts = [{"source": b.source, "batch_id": b.batch_id, "cause": b.cause}
                       for b in failed if b.cause]
    loads = load_report(extract_results)
    checks = [
        GateCheck("extract_batches", not failed_batches,
                  "all batches passed" if not failed_batches
                  else "failed: " + "; ".join(failed_batches),
                  next((b.report_path for r in extract_results for b in r.batches
                        if not b.valid), None)),
        GateCheck("dbt_build", dbt_success, dbt_detail or ("ok" if dbt_success else "failed")),
    ]
    if source_volumes is not None:
        checks.insert(1, source_volumes.check)
    if not all(c.success for c in checks):
        gate = _write_gate_report(settings, version, checks, failed_extracts=failed_extracts,
                                  loads=loads)
        log.warning("publication blocked before export: %s (report %s)",
                    ", ".join(c.name for c in checks if not c.success), gate)
        return PublicationResult(version, False, None, checks, gate_report=gate)

    progress("gate: exporting the candidate, Great Expectations checkpoint, disclosure check …")
    try:
        staging = export_candidate(p, version, min_cell=settings.min_cell,
                                   trailing_weeks=lagesbild_trailing_weeks(settings))
    except WarehouseBusy as exc:
        checks.append(GateCheck("export", False, str(exc)))
        gate = _write_gate_report(settings, version, checks, loads=loads)
        log.warning("publication blocked before export: %s", exc)
        return PublicationResult(version, False, None, checks, gate_report=gate)
    catalogue = indicator_catalogue(p.dbt_target)
    targets = p.reference / "ref_indicator_targets.csv"
    # the files for Excel are written by a child process on the other core while the gate
    # checks the candidate; it is stopped when the gate fails (samverkan.excel_files)
    with ExcelFilesWriter(staging, catalogue, reference_date=ref, version=version,
                          min_cell=settings.min_cell, targets=targets,
                          parameters=settings.indicator_parameters) as excel_files:
        with _VALIDATION_LOCK:
            gx = validate_indicators(staging / "indicators.parquet", p, version)
        checks.append(GateCheck("indicator_checkpoint", gx.success,
                                ", ".join(gx.failed_checks) or "ok", gx.report_path))
        disclosure = check_disclosure(staging / "indicators.csv", min_cell=settings.min_cell,
                                      reference_dir=p.reference)
        checks.append(GateCheck("disclosure_control", disclosure.ok, _disclosure_detail(disclosure)))
        checks.extend(_lagesbild_checks(settings, staging / "lagesbild.parquet", version,
                                        staging / "indicators.parquet"))
        manifest_extra = {
            "reference_date": ref.isoformat(),
            "extract_batches": _loaded_batches(settings),
            "this_run_batches": [b.batch_id for r in extract_results for b in r.batches],
            "load_report": loads,
            "excluded_from_indicators": _identity_exclusions(settings),
            "reference_coverage": _reference_coverage(settings),
            "data_coverage": _data_coverage(settings),
            "min_cell": settings.min_cell,
            "build_fingerprint": build_fingerprint(settings, ref),
        }
        analysts_staging: Path | None = None
        if all(c.success for c in checks):
            progress("gate passed; writing the report, the workbook and indikatorer.csv, the "
                     "analysts' snapshot and docs …")
            html_report = render_report(
                staging / "indicators.parquet", lagesbild_parquet=staging / "lagesbild.parquet",
                version=version, reference_date=ref, catalogue=catalogue, manifest=manifest_extra,
                min_cell=settings.min_cell, targets=targets,
                parameters=settings.indicator_parameters)
            (staging / "report.html").write_text(html_report, encoding="utf-8")
            analysts_staging = new_staging(analysts_publication(p), version)
            checks.append(_analyst_access(settings, analysts_staging, version, ref))
            problem = excel_files.result()
            if problem:  # a check of its own only when it fails
                checks.append(GateCheck("excel_files", False, problem))
    gate = _write_gate_report(settings, version, checks, loads=loads)
    result = publish_candidate(indicator_publication(p), version, staging, checks, manifest_extra)
    result.gate_report = gate
    if result.published:
        progress("published version %s", version)
        # the analysts' snapshot of the same build, outside the published zone
        publish_candidate(analysts_publication(p), version, analysts_staging, checks,
                          {"reference_date": ref.isoformat(), "publication": version})
        prune_snapshots(p)
        if source_volumes is not None:
            remember_volumes(settings, source_volumes)
    else:
        if analysts_staging is not None:
            discard_candidate(analysts_staging)
        log.warning("publication blocked: see %s", gate)
    return result


def build_fingerprint(settings: Settings, ref: dt.date) -> str:
    """What a publication is built from besides the data: the dbt project (models, macros,
    tests, configuration), the quality suites, the municipality's reference files, the run
    parameters and the reference date."""
    from samverkan.config import DBT_PROJECT_DIR, EXPECTATIONS_DIR
    from samverkan.config.reference import read_reference

    digest = hashlib.sha256()
    params = {k: v for k, v in dbt_vars(settings, "", ref).items() if k != "data_version"}
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(read_reference(settings.paths.reference).fingerprint().encode())
    for root, patterns in ((DBT_PROJECT_DIR, ("models", "macros", "tests")),
                           (EXPECTATIONS_DIR, (".",))):
        for sub in patterns:
            for path in sorted((root / sub).rglob("*")):
                if path.is_file():
                    digest.update(str(path.relative_to(root)).encode())
                    digest.update(path.read_bytes())
    for name in ("dbt_project.yml", "profiles.yml"):
        digest.update((DBT_PROJECT_DIR / name).read_bytes())
    return digest.hexdigest()


def standing_publication(settings: Settings, ref: dt.date) -> str | None:
    """The current version, when publishing now would publish the same thing again: the same
    loaded extract batches, the same reference date and the same models, suites and
    parameters. Then there is nothing to build and nothing to publish."""
    manifest = current_manifest(indicator_publication(settings.paths))
    if (manifest is None or manifest.get("reference_date") != ref.isoformat()
            or manifest.get("extract_batches") != _loaded_batches(settings)
            or manifest.get("build_fingerprint") != build_fingerprint(settings, ref)):
        return None
    return str(manifest["version"])


def _analyst_access(settings: Settings, staging: Path, version: str, ref: dt.date) -> GateCheck:
    """The analysts' read-only snapshot of the analytics warehouse and the dbt docs, written
    into ``staging`` (the analysts' zone, analytics/.staging-<version>/, never the published
    zone): every publication comes with both, or it is not published."""
    from samverkan.transform import dbt_docs_generate

    try:
        write_analytics_snapshot(settings.paths, staging)
    except WarehouseBusy as exc:
        return GateCheck("analyst_access", False, f"analytics snapshot failed: {exc}")
    except duckdb.Error as exc:
        return GateCheck("analyst_access", False, f"analytics snapshot failed ({type(exc).__name__})")
    except OSError as exc:
        return GateCheck("analyst_access", False, f"analytics snapshot failed: {exc.strerror or exc}")
    docs = dbt_docs_generate(settings.paths, dbt_vars(settings, version, ref), static=True)
    if not docs.success:
        return GateCheck("analyst_access", False, "dbt docs generate failed: " + docs.summary())
    copy_dbt_docs(settings.paths.dbt_target, staging)
    return GateCheck("analyst_access", True,
                     f"{ANALYTICS_SNAPSHOT} (read-only snapshot) and {DBT_DOCS_DIR}/index.html written")


# --------------------------------------------------------------------------------------------
# The weekly lägesbild: built from what the nightly pipeline built and published
# --------------------------------------------------------------------------------------------

# Only the lägesbild models (and their tests) are built: they read the facts and the
# published indicator table the nightly pipeline has built.
LAGESBILD_SELECTION = ("--select", "path:models/marts/lagesbild", *PIPELINE_DBT_ARGS)


def lagesbild_reference_date(settings: Settings, override: str | None = None) -> dt.date:
    """The lägesbild's reference date: the override, else the reference date of the current
    indicator publication (the data the warehouse holds), else the configured date/today."""
    if override:
        return dt.date.fromisoformat(override)
    manifest = current_manifest(indicator_publication(settings.paths))
    if manifest and manifest.get("reference_date"):
        return dt.date.fromisoformat(manifest["reference_date"])
    return reference_date(settings)


def transform_lagesbild(settings: Settings, version: str, ref: dt.date) -> Any:
    """dbt build of the lägesbild models only (not a rebuild of the warehouse)."""
    from samverkan.transform import dbt_build, report_outcome

    settings.paths.ensure()
    outcome = dbt_build(settings.paths, dbt_vars(settings, version, ref), extra_args=LAGESBILD_SELECTION)
    report_outcome(outcome)
    return outcome


def _warehouse_indicator_versions(settings: Settings) -> list[str]:
    conn = connect_warehouse(settings.paths.analytics_db, read_only=True)
    try:
        rows = conn.execute(
            "select distinct data_version from marts.published_indicators order by 1").fetchall()
    except duckdb.Error:
        return []
    finally:
        conn.close()
    return [r[0] for r in rows]


def _candidate_week(candidate: Path) -> dict[str, str]:
    conn = database.connect()
    try:
        row = conn.execute(
            "select min(iso_week), min(week_start), max(week_end) from read_parquet(?)",
            [str(candidate)]).fetchone()
    finally:
        conn.close()
    iso_week, start, end = row
    if iso_week is None:
        return {}
    return {"iso_week": iso_week, "week_start": start.isoformat(), "week_end": end.isoformat()}


def _indicator_basis_check(settings: Settings, manifest: dict[str, Any],
                           week: dict[str, str]) -> GateCheck:
    """The lägesbild reads the facts and the indicator table in the warehouse: they must be
    the ones of the current indicator publication (``manifest``: built by a run that passed
    the gate), and that run's reference date must cover the whole week."""
    version = manifest["version"]
    built = _warehouse_indicator_versions(settings)
    if built != [version]:
        return GateCheck("indicator_basis", False,
                         f"the warehouse's indicators ({', '.join(built) or 'none'}) are not those "
                         f"of the current publication {version}")
    basis_date = manifest.get("reference_date")
    if not week or not basis_date or week["week_end"] > basis_date:
        return GateCheck("indicator_basis", False,
                         f"week {week.get('iso_week', '?')} is not covered by the data of publication "
                         f"{version} (reference date {basis_date})")
    return GateCheck("indicator_basis", True, f"publication {version}, reference date {basis_date}")


def publish_lagesbild(settings: Settings, version: str, ref: dt.date, dbt_success: bool,
                      dbt_detail: str = "") -> PublicationResult:
    """The lägesbild's gate (dbt build of its models, its basis, its checkpoint and disclosure
    check), then an atomic switch of published/lagesbild/current."""
    from samverkan.report import render_lagesbild

    p = settings.paths.ensure()
    checks = [GateCheck("dbt_build", dbt_success, dbt_detail or ("ok" if dbt_success else "failed"))]
    if not dbt_success:
        gate = _write_gate_report(settings, version, checks, "lagesbild-gate", LAGESBILD_GATE_TITLE)
        log.warning("lägesbild blocked before export: dbt_build (report %s)", gate)
        return PublicationResult(version, False, None, checks, gate_report=gate)
    # the publication the lägesbild is built on (resolved once: `current` may move meanwhile)
    basis_dir = indicator_publication(p).current.resolve()
    if not (basis_dir / MANIFEST).exists():
        checks.append(GateCheck("indicator_basis", False, "no indicator publication yet"))
        gate = _write_gate_report(settings, version, checks, "lagesbild-gate", LAGESBILD_GATE_TITLE)
        log.warning("lägesbild blocked before export: indicator_basis (report %s)", gate)
        return PublicationResult(version, False, None, checks, gate_report=gate)
    basis = json.loads((basis_dir / MANIFEST).read_text(encoding="utf-8"))
    target = lagesbild_publication(p)
    staging = export_lagesbild_candidate(p, version, basis_dir / "indicators.parquet", settings.min_cell,
                                         trailing_weeks=lagesbild_trailing_weeks(settings))
    candidate = staging / "lagesbild.parquet"
    week = _candidate_week(candidate)
    checks.append(_indicator_basis_check(settings, basis, week))
    checks.extend(_lagesbild_checks(settings, candidate, f"lagesbild-{version}",
                                    basis_dir / "indicators.parquet"))
    manifest_extra = {
        "reference_date": ref.isoformat(),
        "week": week,
        "indicator_version": basis["version"],
        "min_cell": settings.min_cell,
        "trailing_weeks": lagesbild_trailing_weeks(settings),
    }
    if all(c.success for c in checks):
        html_page = render_lagesbild(candidate, version=version, reference_date=ref,
                                     catalogue=indicator_catalogue(p.dbt_target), min_cell=settings.min_cell)
        (staging / "lagesbild.html").write_text(html_page, encoding="utf-8")
    gate = _write_gate_report(settings, version, checks, "lagesbild-gate", LAGESBILD_GATE_TITLE)
    result = publish_candidate(target, version, staging, checks, manifest_extra)
    result.gate_report = gate
    if not result.published:
        log.warning("lägesbild blocked: see %s", gate)
    return result
