"""Publication: the gate's last checks and an atomic, versioned switch of ``published/current``.

Each publication is a directory ``published/versions/<version>/`` with ``indicators.csv``,
``indicators.parquet``, ``report.html`` and ``manifest.json``. ``published/current`` is a
symbolic link that is replaced in one ``rename``: readers see the old version or the new one,
never a mix. A candidate that fails any check is never moved into ``published/``; the
previous publication stays exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from samverkan.config import DBT_PROJECT_DIR, Paths
from samverkan.landing import file_sha256

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = [
    "indicator_id", "indicator_name", "period_type", "period_start", "period_end", "area_level",
    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator", "value",
    "unit", "suppressed", "target", "status", "data_version",
]


@dataclass
class GateCheck:
    name: str
    success: bool
    detail: str = ""
    report_path: str | None = None


@dataclass
class PublicationResult:
    version: str
    published: bool
    path: Path | None
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.success]


def new_version(now: dt.datetime | None = None) -> str:
    """A publication version: the UTC time of the run, sortable and unique per run."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def current_version(p: Paths) -> str | None:
    manifest = p.current_publication / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8"))["version"]


def export_candidate(p: Paths, version: str) -> Path:
    """Write the indicator table from the analytics warehouse into a staging directory."""
    staging = p.published / f".staging-{version}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    cols = ", ".join(PUBLISHED_COLUMNS)
    order = ("indicator_id, period_type, period_start, area_level, area_code, breakdown, "
             "breakdown_value")
    conn = duckdb.connect(str(p.analytics_db), read_only=True)
    try:
        query = f"select {cols} from marts.published_indicators order by {order}"
        conn.execute(f"copy ({query}) to '{staging / 'indicators.parquet'}' (format parquet)")
        conn.execute(f"copy ({query}) to '{staging / 'indicators.csv'}' (format csv, header true)")
    finally:
        conn.close()
    return staging


def indicator_catalogue(dbt_project_dir: Path = DBT_PROJECT_DIR) -> dict[str, dict[str, str]]:
    """Swedish names and definitions from the indicator models' YAML (via dbt's manifest)."""
    manifest = dbt_project_dir / "target" / "manifest.json"
    if not manifest.exists():
        return {}
    nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    catalogue: dict[str, dict[str, str]] = {}
    for node in nodes.values():
        name = node.get("name", "")
        if node.get("resource_type") != "model" or not name.startswith("ind_"):
            continue
        meta = {**node.get("config", {}).get("meta", {}), **node.get("meta", {})}
        catalogue[name.removeprefix("ind_")] = {
            "name": str(meta.get("indicator_name", "")),
            "unit": str(meta.get("unit", "")),
            "definition": str(meta.get("definition", node.get("description", ""))),
        }
    return catalogue


def _swap_current(p: Paths, target: Path) -> None:
    link = p.current_publication
    tmp_link = p.published / f".current-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(os.path.relpath(target, p.published), tmp_link)
    os.replace(tmp_link, link)  # atomic on POSIX


def publish_candidate(
    p: Paths,
    version: str,
    staging: Path,
    checks: list[GateCheck],
    manifest_extra: dict[str, Any],
    report_html: str,
) -> PublicationResult:
    """Move a checked candidate into place, or discard it if any check failed."""
    if not all(c.success for c in checks):
        shutil.rmtree(staging, ignore_errors=True)
        log.warning("gate failed (%s); version %s not published, current stays %s",
                    ", ".join(c.name for c in checks if not c.success), version, current_version(p))
        return PublicationResult(version, False, None, checks)
    (staging / "report.html").write_text(report_html, encoding="utf-8")
    manifest = {
        "version": version,
        "data_version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **manifest_extra,
        "validation": {"success": True, "checks": [asdict(c) for c in checks]},
        "files": {name: file_sha256(staging / name)
                  for name in ("indicators.csv", "indicators.parquet", "report.html")},
    }
    (staging / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    versions = p.published / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version
    os.rename(staging, final)
    _swap_current(p, final)
    log.info("published version %s", version)
    return PublicationResult(version, True, p.current_publication, checks)
