"""The pipeline's steps as plain functions; the Prefect flows in ``flows/`` only order them.

extract (per source) → transform (dbt build) → publish (gate, then atomic publication).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from samverkan.config import SOURCES, ConfigError, Settings
from samverkan.extract import Extractor, ExtractResult, run_extract
from samverkan.publish import (
    GateCheck,
    PublicationResult,
    export_candidate,
    indicator_catalogue,
    publish_candidate,
)

log = logging.getLogger(__name__)

MIN_CELL = 5
# Great Expectations contexts are not safe to build from several threads at once.
_VALIDATION_LOCK = threading.Lock()


def preload_quality_checks() -> None:
    """Import Great Expectations in the background while the sources are being pulled."""
    from samverkan.quality import preload

    preload()


def build_extractor(settings: Settings, source: str) -> Extractor:
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


def extract(settings: Settings, source: str) -> ExtractResult:
    """Recover, pull, land, validate and load one source."""
    from samverkan.quality import batch_validator, remove_stale_scratch

    settings.paths.ensure()
    remove_stale_scratch(settings.paths)  # left by a run that was killed mid-validation
    extractor = build_extractor(settings, source)
    check = batch_validator(extractor, settings.paths)

    def validate(manifest):  # noqa: ANN001, ANN202 - adapter for run_extract
        with _VALIDATION_LOCK:
            return check(manifest)

    return run_extract(settings.paths, extractor, validate)


def is_transient(exc: BaseException) -> bool:
    """Failures worth retrying a whole extract for (it resumes safely): a source that is down
    or timing out, a dropped database connection. Configuration, authentication and data
    errors are not retried."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from samverkan.sources.ss12000 import SS12000UnavailableError

    if isinstance(exc, SS12000UnavailableError | OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, ConnectionError | TimeoutError)


def purge_landing(settings: Settings) -> list[str]:
    """Landing retention: loaded batches older than ``retention_days`` (default 30) go."""
    from samverkan.retention import DEFAULT_RETENTION_DAYS
    from samverkan.retention import purge_landing as purge

    return purge(settings.paths, int(settings.extra.get("retention_days", DEFAULT_RETENTION_DAYS)))


def reference_date(settings: Settings, override: str | None = None) -> dt.date:
    value = override or settings.reference_date
    return dt.date.fromisoformat(value) if value else dt.date.today()


def dbt_vars(settings: Settings, version: str, ref: dt.date) -> dict[str, Any]:
    return {
        "reference_date": ref.isoformat(),
        "data_version": version,
        "municipality_code": settings.municipality_code,
        "municipality_name": settings.municipality_name,
        "min_cell": MIN_CELL,
        **settings.extra.get("dbt_vars", {}),
    }


def transform(settings: Settings, version: str, ref: dt.date) -> Any:
    """dbt build (models and tests) over the restricted and analytics warehouses."""
    from samverkan.transform import dbt_build

    settings.paths.ensure()
    return dbt_build(settings.paths, dbt_vars(settings, version, ref))


@dataclass
class SourceLoad:
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)
    failed_batches: list[str] = field(default_factory=list)


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
        report[r.source] = asdict(s)
    return report


def _loaded_batches(settings: Settings) -> list[dict[str, str]]:
    p = settings.paths
    if not p.restricted_db.exists():
        return []
    from samverkan.warehouse import warehouse_lock

    with warehouse_lock(p):
        conn = duckdb.connect(str(p.restricted_db), read_only=True)
        try:
            rows = conn.execute(
                "select batch_id, source from load_meta.batches order by loaded_at, batch_id"
            ).fetchall()
        finally:
            conn.close()
    return [{"batch_id": b, "source": s} for b, s in rows]


def _identity_exclusions(settings: Settings) -> dict[str, dict[str, dict[str, int]]]:
    """Per source and reason: records and people kept out of the indicators (dbt load report).
    People are counted where they can be identified (protected identities); an unusable
    identifier is counted by the records that carry it."""
    conn = duckdb.connect(str(settings.paths.analytics_db), read_only=True)
    try:
        rows = conn.execute(
            "select source_system, reason, records, people from marts.rpt_identity_exclusions "
            "order by source_system, reason").fetchall()
    except duckdb.CatalogException:
        return {}
    finally:
        conn.close()
    report: dict[str, dict[str, dict[str, int]]] = {}
    for source, reason, records, people in rows:
        report.setdefault(source, {})[reason] = {"records": int(records), "people": int(people)}
    return report


def _write_gate_report(settings: Settings, version: str, checks: list[GateCheck]) -> str:
    directory = settings.paths.validation / f"gate-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "gate.json").write_text(
        json.dumps({"version": version, "success": all(c.success for c in checks),
                    "checks": [asdict(c) for c in checks]}, indent=2, ensure_ascii=False),
        encoding="utf-8")
    rows = "".join(
        f"<tr><td>{c.name}</td><td>{'godkänd' if c.success else 'UNDERKÄND'}</td>"
        f"<td>{c.detail}</td><td>{c.report_path or ''}</td></tr>" for c in checks)
    (directory / "gate.html").write_text(
        "<!DOCTYPE html><html lang='sv'><head><meta charset='utf-8'><title>Publiceringsgrind "
        f"{version}</title></head><body><h1>Publiceringsgrind {version}</h1><table border='1'>"
        "<tr><th>Kontroll</th><th>Utfall</th><th>Detalj</th><th>Rapport</th></tr>"
        f"{rows}</table></body></html>", encoding="utf-8")
    return str(directory / "gate.html")


def publish(settings: Settings, version: str, ref: dt.date, extract_results: list[ExtractResult],
            dbt_success: bool, dbt_detail: str = "") -> PublicationResult:
    """The publication gate, then an atomic switch of published/current."""
    from samverkan.disclosure import check_primary_suppression
    from samverkan.quality import validate_indicators
    from samverkan.report import render_report

    p = settings.paths.ensure()
    failed_batches = [f"{b.source}:{b.batch_id}" for r in extract_results for b in r.batches
                      if not b.valid]
    checks = [
        GateCheck("extract_batches", not failed_batches,
                  "all batches passed" if not failed_batches
                  else "failed: " + ", ".join(failed_batches),
                  next((b.report_path for r in extract_results for b in r.batches
                        if not b.valid), None)),
        GateCheck("dbt_build", dbt_success, dbt_detail or ("ok" if dbt_success else "failed")),
    ]
    if not all(c.success for c in checks):
        gate = _write_gate_report(settings, version, checks)
        log.warning("publication blocked before export: %s (report %s)",
                    ", ".join(c.name for c in checks if not c.success), gate)
        return PublicationResult(version, False, None, checks)

    staging = export_candidate(p, version)
    with _VALIDATION_LOCK:
        gx = validate_indicators(staging / "indicators.parquet", p, version)
    checks.append(GateCheck("indicator_checkpoint", gx.success,
                            ", ".join(gx.failed_checks) or "ok", gx.report_path))
    disclosure = check_primary_suppression(staging / "indicators.csv", min_cell=MIN_CELL)
    checks.append(GateCheck("disclosure_control", disclosure.ok,
                            "ok" if disclosure.ok else f"{len(disclosure.problems)} cells at risk"))
    manifest_extra = {
        "reference_date": ref.isoformat(),
        "extract_batches": _loaded_batches(settings),
        "this_run_batches": [b.batch_id for r in extract_results for b in r.batches],
        "load_report": load_report(extract_results),
        "excluded_from_indicators": _identity_exclusions(settings),
        "min_cell": MIN_CELL,
    }
    html = ""
    if all(c.success for c in checks):
        html = render_report(staging / "indicators.parquet", version=version, reference_date=ref,
                             catalogue=indicator_catalogue(), manifest=manifest_extra,
                             min_cell=MIN_CELL)
    gate = _write_gate_report(settings, version, checks)
    result = publish_candidate(p, version, staging, checks, manifest_extra, html)
    if not result.published:
        log.warning("publication blocked: see %s", gate)
    return result
