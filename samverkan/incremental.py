"""When the incremental attendance chain must be rebuilt from scratch.

The large attendance models are dbt incremental models (``stg_ss12000__attendances``,
``stg_ss12000__calendar_events``, ``int_ss12000__attendance_days``,
``int_ss12000__attendance_periods``): a night rebuilds only the records, lessons, lesson days
and calendar periods its SS 12000 batches touched, which
``stg_ss12000__batch_lesson_days`` records per batch (README, "Incremental nightly builds").
They hold no pseudonym and do not depend on the reference date, the identities or the
pseudonym key, so a change of any of these leaves nothing stale in them. ``fct_pupil_periods``,
which applies them, is incremental too: it keeps beside it what it was built from (the
pupils' states, R, the reporting lag, the thresholds, the periods) and rebuilds what changed
(``dbt_project/macros/pupil_periods.sql``), and so is ``fct_child_agency_periods``, which
keeps a digest of each person's rows and the report periods' windows
(``dbt_project/macros/child_agency_periods.sql``). What can leave stale rows is checked here before
each build, and answered with a full rebuild (dbt's ``--full-refresh``):

- the SQL the chain is built from changed (its models, the macros, the project file, the raw
  schema, the dbt versions): every bookkeeping row carries the fingerprint of the logic that
  built it (:func:`logic_fingerprint`, passed as the dbt var ``attendance_logic_fingerprint``);
- rows the chain was built from were removed from the warehouse (a batch that is no longer in
  ``load_meta.batches``, raw rows removed from a loaded batch): deletions the bookkeeping
  cannot see as a new batch;
- ``fct_pupil_periods`` or ``fct_child_agency_periods`` is there without the tables that say
  what it was built from.

Reasons name tables, counts and batch ids only.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import duckdb

from samverkan.config import DBT_PROJECT_DIR, SQL_DIR, Paths
from samverkan.locks import connect_warehouse

FINGERPRINT_VAR = "attendance_logic_fingerprint"
BOOKKEEPING = "staging.stg_ss12000__batch_lesson_days"
# The incremental marts and the tables beside each that say what it was built from.
AS_BUILT = {
    "marts.fct_pupil_periods": ("marts.fct_pupil_periods__as_built_pupils",
                                "marts.fct_pupil_periods__as_built_parameters"),
    "marts.fct_child_agency_periods": ("marts.fct_child_agency_periods__as_built_persons",
                                       "marts.fct_child_agency_periods__as_built_periods"),
}
INCREMENTAL_MODELS = ("stg_ss12000__batch_lesson_days", "stg_ss12000__attendances",
                      "stg_ss12000__calendar_events", "int_ss12000__attendance_days",
                      "int_ss12000__attendance_periods", "fct_pupil_periods",
                      "fct_child_agency_periods")

# What the incremental models are built from, relative to the dbt project: every model
# upstream of them (fct_pupil_periods reads the identities, so every staging and
# intermediate model; fct_child_agency_periods the social services' and police facts), the
# models themselves, all macros and the project file.
# tests/test_incremental_nightly.py checks this list against dbt's lineage.
LOGIC_FILES = ("models/staging", "models/intermediate",
               *(f"models/marts/{model}.sql" for model in (
                   "fct_pupil_periods", "fct_child_agency_periods",
                   "fct_social_services_involvement", "fct_reports_of_concern",
                   "fct_investigations", "fct_interventions", "fct_police_events")),
               "macros", "dbt_project.yml")
# Raw tables the chain reads, with their entity name in load_meta.batch_entities.
RAW_TABLES = {"raw_ss12000.attendances": "attendances",
              "raw_ss12000.calendar_events": "calendar_events",
              "raw_ss12000.deleted_entities": "deleted_entities"}


def logic_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """SHA-256 over the files the incremental models are built from, the raw schema and the
    dbt versions: when it changes, rows built by the old logic may be wrong."""
    digest = hashlib.sha256()
    for name in LOGIC_FILES:
        root = project_dir / name
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.suffix in (".sql", ".yml"):
                digest.update(str(path.relative_to(project_dir)).encode())
                digest.update(path.read_bytes())
    digest.update((SQL_DIR / "restricted_schema.sql").read_bytes())
    for package in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{package}={metadata.version(package)}".encode())
    return digest.hexdigest()


def rebuild_reason(paths: Paths, fingerprint: str | None = None) -> str | None:
    """Why the incremental attendance models must be rebuilt from scratch, or None when the
    next build may be incremental (also when they were never built: that build is full)."""
    if not paths.restricted_db.exists():
        return None
    fingerprint = fingerprint or logic_fingerprint()
    conn = connect_warehouse(paths.restricted_db, read_only=True)
    try:
        try:
            stale_logic, vanished = conn.execute(
                f"""
                select
                    count(distinct batch_id) filter (where logic_fingerprint <> ?),
                    count(distinct batch_id) filter (
                        where is_built
                        and batch_id not in (select batch_id from load_meta.batches))
                from {BOOKKEEPING}
                """, [fingerprint]).fetchone()
        except duckdb.CatalogException:
            return None  # never built: the first build is a full one
        if stale_logic:
            return "the models of the attendance chain changed since they were built"
        if vanished:
            return f"{vanished} SS 12000 batches built earlier are no longer in the warehouse"
        for table, entity in RAW_TABLES.items():
            held, loaded = conn.execute(
                f"""
                select
                    (select count(*) from {table}),
                    (select coalesce(sum(rows_loaded), 0) from load_meta.batch_entities
                     where entity = ? and batch_id in (
                        select batch_id from load_meta.batches where source = 'ss12000'))
                """, [entity]).fetchone()
            if held < loaded:
                return f"{loaded - held} rows of {table} were removed after they were loaded"
    finally:
        conn.close()
    return _as_built_reason(paths)


def _as_built_reason(paths: Paths) -> str | None:
    if not paths.analytics_db.exists():
        return None
    conn = connect_warehouse(paths.analytics_db, read_only=True)
    try:
        tables = {f"{schema}.{name}" for schema, name in conn.execute(
            "select schema_name, table_name from duckdb_tables()").fetchall()}
    finally:
        conn.close()
    for table, as_built in AS_BUILT.items():
        if table in tables and not set(as_built) <= tables:
            return f"{table} is there without the tables that say what it was built from"
    return None
