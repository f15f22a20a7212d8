"""Publication: the gate's last checks and an atomic, versioned switch of a ``current`` link.

Two publications share this code:

* the nightly indicator publication, ``published/versions/<version>/`` with
  ``indicators.csv``, ``indicators.parquet``, ``indicators.xlsx``, ``indikatorer.csv`` (the
  cells for Swedish Excel, samverkan/workbook.py), ``lagesbild.csv``,
  ``lagesbild.parquet``, ``report.html`` and ``manifest.json``, behind ``published/current``;
* the weekly lägesbild, ``published/lagesbild/versions/<version>/`` with ``lagesbild.csv``,
  ``lagesbild.parquet``, ``lagesbild.html`` and ``manifest.json``, behind
  ``published/lagesbild/current``.

The published zone holds aggregates only: it goes to management and partners. The analysts'
person-level (pseudonymised) snapshot of the analytics warehouse and the dbt docs are a third
target of the same kind outside it, ``analytics/versions/<version>/`` behind
``analytics/current``, written and switched only when the nightly publication is.

A candidate is written to a staging directory next to ``versions/``; ``current`` is a
symbolic link that is replaced in one ``rename``: readers see the old version or the new one,
never a mix. A candidate that fails any check is never moved into ``versions/``; the previous
publication stays exactly as it was.
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
import pandas as pd

from samverkan.config import Paths
from samverkan.config.settings import GROUP_READ_DIR, GROUP_READ_FILE, wal_file
from samverkan.landing import file_sha256
from samverkan.locks import connect_warehouse

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = [
    "indicator_id", "indicator_name", "period_type", "period_start", "period_end", "area_level",
    "area_code", "area_name", "breakdown", "breakdown_value", "numerator", "denominator", "value",
    "unit", "suppressed", "target", "status", "is_running", "coverage", "data_version",
]
LAGESBILD_COLUMNS = [
    "week_start", "week_end", "iso_week", "area_level", "area_code", "area_name", "measure",
    "measure_name", "category", "category_name", "value", "trailing_average", "suppressed",
    "trailing_average_suppressed", "data_version",
]
INDICATOR_QUERY = (
    f"select {', '.join(PUBLISHED_COLUMNS)} from marts.published_indicators order by indicator_id, "
    "period_type, period_start, area_level, area_code, breakdown, breakdown_value")
# The city first, then the SSPF areas; measures in the order of indicators.md.
LAGESBILD_ORDER = (
    "case area_level when 'stad' then 0 else 1 end, area_code, "
    "case measure when 'nya_orosanmalningar' then 1 when 'nya_unga_misstankta' then 2 "
    "when 'passerat_hog_franvaro' then 3 else 4 end, category <> 'totalt', category")
# published_lagesbild (primary suppression done in dbt) with the true counts behind each row:
# the week's count and the total over the trailing weeks.
LAGESBILD_CELLS_QUERY = f"""
    with true_counts as (
        select counts.area_level, counts.area_code, counts.measure, counts.category,
            coalesce(sum(counts.unit_count) filter (where weeks.is_lagesbild_week), 0) as true_value,
            coalesce(sum(counts.unit_count) filter (where weeks.is_trailing_week), 0)
                as true_trailing_total
        from marts.lagesbild_weekly_counts as counts
        inner join marts.lagesbild_weeks as weeks using (week_offset)
        group by all
    )
    select {', '.join('published.' + c for c in LAGESBILD_COLUMNS)},
        coalesce(true_counts.true_value, 0) as true_value,
        coalesce(true_counts.true_trailing_total, 0) as true_trailing_total
    from marts.published_lagesbild as published
    left join true_counts using (area_level, area_code, measure, category)
"""
# The suppressed lägesbild (a DataFrame) in the published types and order.
LAGESBILD_CANDIDATE_QUERY = (
    "select cast(week_start as date) as week_start, cast(week_end as date) as week_end, iso_week, "
    "area_level, area_code, area_name, measure, measure_name, category, category_name, "
    "cast(value as double) as value, cast(trailing_average as double) as trailing_average, "
    "cast(suppressed as varchar) as suppressed, "
    "cast(trailing_average_suppressed as varchar) as trailing_average_suppressed, data_version "
    f"from lagesbild_candidate order by {LAGESBILD_ORDER}")
MANIFEST = "manifest.json"
# Analysts' access, written with every nightly publication: a read-only copy of the analytics
# warehouse and the dbt documentation of the models in it.
ANALYTICS_SNAPSHOT = "analytics.duckdb"
DBT_DOCS_DIR = "dbt_docs"
DBT_DOCS_FILES = {"static_index.html": "index.html", "catalog.json": "catalog.json",
                  "manifest.json": "manifest.json"}
SNAPSHOTS_KEPT = 3  # analysts' versions kept (snapshot and docs)
SNAPSHOT_MODE = 0o440  # read-only, for the owner and the analysts' group


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
    gate_report: str | None = None  # the readable gate report (validation/<kind>-<version>/)
    unchanged: bool = False  # nothing new: the current publication stands (nothing was built)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.success]


@dataclass(frozen=True)
class PublicationTarget:
    """Where one kind of publication lives: ``root/versions/<version>/`` and ``root/current``."""

    root: Path
    name: str

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    def staging(self, version: str) -> Path:
        return self.root / f".staging-{version}"


def indicator_publication(p: Paths) -> PublicationTarget:
    """The nightly publication: ``published/current``."""
    return PublicationTarget(p.published, "indicators")


def lagesbild_publication(p: Paths) -> PublicationTarget:
    """The weekly lägesbild: ``published/lagesbild/current``."""
    return PublicationTarget(p.published / "lagesbild", "lagesbild")


def analysts_publication(p: Paths) -> PublicationTarget:
    """The analysts' snapshot and dbt docs: ``analytics/current`` (not in the published zone)."""
    return PublicationTarget(p.analysts, "analysts' snapshot")


def set_group_readable(root: Path) -> None:
    """``root`` and everything below it readable by the group at most: directories 0750,
    files 0640 (the analytics snapshot 0440, read-only)."""
    root.chmod(GROUP_READ_DIR)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(GROUP_READ_DIR)
        else:
            path.chmod(SNAPSHOT_MODE if path.name == ANALYTICS_SNAPSHOT else GROUP_READ_FILE)


def new_version(now: dt.datetime | None = None) -> str:
    """A publication version: the UTC time of the run, sortable and unique per run."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def current_manifest(target: PublicationTarget) -> dict[str, Any] | None:
    """The manifest of the publication ``current`` points at, if any."""
    manifest = target.current / MANIFEST
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8"))


def current_version(p: Paths | PublicationTarget) -> str | None:
    target = p if isinstance(p, PublicationTarget) else indicator_publication(p)
    manifest = current_manifest(target)
    return manifest["version"] if manifest else None


def new_staging(target: PublicationTarget, version: str) -> Path:
    staging = target.staging(version)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def _export(conn: duckdb.DuckDBPyConnection, query: str, staging: Path, stem: str) -> None:
    conn.execute(f"copy ({query}) to '{staging / (stem + '.parquet')}' (format parquet)")
    conn.execute(f"copy ({query}) to '{staging / (stem + '.csv')}' (format csv, header true)")


CELL_KEY = ["indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
            "breakdown_value"]
# The suppressed candidate (a DataFrame) in the published types and order.
CANDIDATE_QUERY = (
    "select indicator_id, indicator_name, period_type, cast(period_start as date) as period_start, "
    "cast(period_end as date) as period_end, area_level, area_code, area_name, breakdown, "
    "breakdown_value, cast(numerator as bigint) as numerator, cast(denominator as bigint) as denominator, "
    "cast(value as double) as value, unit, cast(suppressed as varchar) as suppressed, "
    "cast(target as double) as target, cast(status as varchar) as status, "
    "cast(is_running as boolean) as is_running, cast(coverage as varchar) as coverage, data_version "
    f"from candidate order by {', '.join(CELL_KEY)}")


def export_candidate(p: Paths, version: str, min_cell: int = 5, *, trailing_weeks: int) -> Path:
    """Write the indicator table and the weekly lägesbild (both after secondary suppression)
    from the analytics warehouse into the nightly publication's staging directory."""
    staging = new_staging(indicator_publication(p), version)
    conn = connect_warehouse(p.analytics_db, read_only=True)
    try:
        indicators = secondary_suppressed(conn, min_cell, p.reference)
        conn.register("candidate", indicators)
        _export(conn, CANDIDATE_QUERY, staging, "indicators")
        _export_lagesbild(conn, indicators, staging, min_cell, trailing_weeks)
    finally:
        conn.close()
    return staging


def _export_lagesbild(conn: duckdb.DuckDBPyConnection, indicators: pd.DataFrame, staging: Path,
                      min_cell: int, trailing_weeks: int) -> None:
    """The lägesbild with secondary suppression against itself and against the final
    indicator table ``indicators`` (samverkan/lagesbild_suppression.py)."""
    from samverkan.lagesbild_suppression import suppress_lagesbild

    cells = conn.execute(LAGESBILD_CELLS_QUERY).df()
    suppressed = suppress_lagesbild(cells, indicators, min_cell, trailing_weeks=trailing_weeks)
    conn.register("lagesbild_candidate", suppressed[LAGESBILD_COLUMNS])
    _export(conn, LAGESBILD_CANDIDATE_QUERY, staging, "lagesbild")
    conn.unregister("lagesbild_candidate")


def secondary_suppressed(conn: duckdb.DuckDBPyConnection, min_cell: int, reference_dir: Path) -> pd.DataFrame:
    """``published_indicators`` (primary suppression done in dbt) with secondary suppression
    (samverkan/suppression.py): the cells that would let a reader recover a suppressed cell
    from its total and the other parts are suppressed too (``sekundär``). The true numbers come
    from the unsuppressed ``indicators`` model; the published columns and row order are
    those of ``published_indicators``. The areas come from the municipality's reference files
    in ``reference_dir``."""
    from samverkan.suppression import apply_secondary_suppression

    cells = conn.execute(f"""
        select published.*, cells.numerator as true_numerator,
            cells.denominator as true_denominator,
            coalesce(published.suppressed = 'primär', false) as "primary"
        from ({INDICATOR_QUERY}) as published
        inner join marts.indicators as cells using ({", ".join(CELL_KEY)})
    """).df()
    return apply_secondary_suppression(cells, min_cell, reference_dir=reference_dir)


def write_analytics_snapshot(p: Paths, staging: Path) -> Path:
    """A read-only copy of the analytics warehouse (pseudonymised models and reference seeds,
    no direct identifiers) for analysts, who open it with DuckDB while the next load writes
    the warehouse itself (DuckDB allows one writer or many readers per file, never both).

    A copy of the file, taken while a read-only connection holds it (no writer can open it
    meanwhile): about 0.1 s for the 440 MiB of 100 000 pupils, where copying the tables
    through DuckDB took 6 s. A writer that stopped without its checkpoint leaves a
    write-ahead log beside the file, which the copy would miss: then the tables are copied
    through DuckDB instead (``copy from database``), as they were before."""
    target = staging / ANALYTICS_SNAPSHOT
    conn = connect_warehouse(p.analytics_db, read_only=True)
    try:
        if wal_file(p.analytics_db).exists():
            warehouse = conn.execute("select current_database()").fetchone()[0]
            # a read-only connection attaches read-only unless told otherwise
            conn.execute(f"attach '{target}' as snapshot (read_only false)")
            conn.execute(f'copy from database "{warehouse}" to snapshot')
            conn.execute("detach snapshot")
        else:
            shutil.copyfile(p.analytics_db, target)
    finally:
        conn.close()
    target.chmod(SNAPSHOT_MODE)
    return target


def copy_dbt_docs(target_dir: Path, staging: Path) -> Path:
    """The output of ``dbt docs generate --static`` (one self-contained page, plus the
    manifest and catalog for tools) into the candidate's ``dbt_docs/``."""
    docs = staging / DBT_DOCS_DIR
    docs.mkdir(exist_ok=True)
    for source, name in DBT_DOCS_FILES.items():
        shutil.copyfile(target_dir / source, docs / name)
    return docs


def prune_snapshots(p: Paths, keep: int = SNAPSHOTS_KEPT) -> list[str]:
    """Remove all but the newest ``keep`` versions of the analysts' zone (snapshot and docs;
    never the one ``current`` points at). An analyst who still has an old snapshot open keeps
    reading it: the file lives until closed."""
    target = analysts_publication(p)
    if not target.versions.is_dir():
        return []
    current = target.current.resolve() if target.current.is_symlink() else None
    pruned = []
    for directory in sorted(d for d in target.versions.iterdir() if d.is_dir())[:-keep or None]:
        if directory.resolve() != current:
            shutil.rmtree(directory)
            pruned.append(directory.name)
    if pruned:
        log.info("analysts' snapshots removed: versions %s", ", ".join(pruned))
    remove_person_level_from_published(p)
    return pruned


def remove_person_level_from_published(p: Paths) -> list[Path]:
    """Remove what earlier releases put into the published versions for analysts (the
    snapshot and the dbt docs): person-level data never stays in the published zone."""
    versions = indicator_publication(p).versions
    if not versions.is_dir():
        return []
    removed = []
    for directory in sorted(d for d in versions.iterdir() if d.is_dir()):
        for name in (ANALYTICS_SNAPSHOT, ANALYTICS_SNAPSHOT + ".wal", DBT_DOCS_DIR):
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(path)
    if removed:
        log.info("removed %d analysts' files from the published versions (they live in %s)",
                 len(removed), p.analysts)
    return removed


def export_lagesbild_candidate(p: Paths, version: str, indicators: Path, min_cell: int = 5, *,
                               trailing_weeks: int) -> Path:
    """Write the weekly lägesbild from the analytics warehouse into its staging directory,
    with secondary suppression against the published indicator table ``indicators`` (the
    Parquet file of the publication it is built on)."""
    staging = new_staging(lagesbild_publication(p), version)
    conn = connect_warehouse(p.analytics_db, read_only=True)
    try:
        _export_lagesbild(conn, pd.read_parquet(indicators), staging, min_cell, trailing_weeks)
    finally:
        conn.close()
    return staging


def indicator_catalogue(target_dir: Path) -> dict[str, dict[str, Any]]:
    """Swedish names, definitions, groups and sources from the indicator models' YAML meta (via
    dbt's manifest)."""
    manifest = target_dir / "manifest.json"
    if not manifest.exists():
        return {}
    nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    catalogue: dict[str, dict[str, Any]] = {}
    for node in nodes.values():
        name = node.get("name", "")
        if node.get("resource_type") != "model" or not name.startswith("ind_"):
            continue
        meta = {**node.get("config", {}).get("meta", {}), **node.get("meta", {})}
        catalogue[name.removeprefix("ind_")] = {
            "name": str(meta.get("indicator_name", "")),
            "unit": str(meta.get("unit", "")),
            "definition": str(meta.get("definition", node.get("description", ""))),
            "summary": str(meta.get("summary", "")),
            "group": meta.get("group", ""),
            "sources": meta.get("sources", ""),
            "area_levels": list(meta.get("area_levels") or []),
        }
    return catalogue


def _swap_current(target: PublicationTarget, final: Path) -> None:
    link = target.current
    tmp_link = target.root / f".current-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(os.path.relpath(final, target.root), tmp_link)
    os.replace(tmp_link, link)  # atomic on POSIX


def discard_candidate(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def publish_candidate(
    target: PublicationTarget,
    version: str,
    staging: Path,
    checks: list[GateCheck],
    manifest_extra: dict[str, Any],
) -> PublicationResult:
    """Move a checked candidate (every file in ``staging``) into place and switch ``current``
    to it, or discard it if any check failed. The manifest lists every file with its
    SHA-256."""
    if not all(c.success for c in checks):
        discard_candidate(staging)
        log.warning("%s gate failed (%s); version %s not published, current stays %s", target.name,
                    ", ".join(c.name for c in checks if not c.success), version, current_version(target))
        return PublicationResult(version, False, None, checks)
    files = sorted(f.name for f in staging.iterdir() if f.is_file() and f.name != MANIFEST)
    manifest = {
        "version": version,
        "data_version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **manifest_extra,
        "validation": {"success": True, "checks": [asdict(c) for c in checks]},
        "files": {name: file_sha256(staging / name) for name in files},
    }
    (staging / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    target.versions.mkdir(mode=GROUP_READ_DIR, parents=True, exist_ok=True)
    final = target.versions / version
    set_group_readable(staging)
    target.root.chmod(GROUP_READ_DIR)
    target.versions.chmod(GROUP_READ_DIR)
    os.rename(staging, final)
    _swap_current(target, final)
    log.info("published %s version %s", target.name, version)
    return PublicationResult(version, True, target.current, checks)
