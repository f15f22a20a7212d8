"""Write the simulated social-services case system into a real SQL database.

Like a real case system (Treserva, Lifecare, ...) the data lives in base tables (``t_klient``,
``t_aktualisering``, ...) and the platform reads the reporting views named in the contract
(``klient``, ``aktualisering``, ``utredning``, ``insats``, ``gallring``; sources.md §2). The
same code runs on SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy. Simulator-only
columns (``person_key``, ``identifier_valid``) never reach the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    text,
)

from samverkan.simulator.population import Population

CHUNK_ROWS = 5000

# view -> (base table, [(column, type, nullable)])
_CONTRACT: dict[str, tuple[str, list[tuple[str, Any, bool]]]] = {
    "klient": ("t_klient", [
        ("klient_id", BigInteger, False),
        ("personnummer", String(40), True),
        ("fornamn", String(100), True),
        ("efternamn", String(100), True),
        ("skyddad_identitet", Boolean, False),
        ("andrad_tid", DateTime, False),
    ]),
    "aktualisering": ("t_aktualisering", [
        ("aktualisering_id", BigInteger, False),
        ("klient_id", BigInteger, False),
        ("inkom_datum", Date, False),
        ("typ", String(40), False),
        ("anmalare_kategori", String(60), True),
        ("skyddsbedomning_datum", Date, True),
        ("forhandsbedomning_datum", Date, True),
        ("beslut", String(60), True),
        ("stadsdel", String(100), True),
        ("andrad_tid", DateTime, False),
    ]),
    "utredning": ("t_utredning", [
        ("utredning_id", BigInteger, False),
        ("klient_id", BigInteger, False),
        ("aktualisering_id", BigInteger, True),
        ("startdatum", Date, False),
        ("avslutsdatum", Date, True),
        ("resultat", String(60), True),
        ("andrad_tid", DateTime, False),
    ]),
    "insats": ("t_insats", [
        ("insats_id", BigInteger, False),
        ("klient_id", BigInteger, False),
        ("insatstyp", String(20), False),
        ("startdatum", Date, False),
        ("slutdatum", Date, True),
        ("planerat_slutdatum", Date, True),
        ("avslutsorsak", String(60), True),
        ("andrad_tid", DateTime, False),
    ]),
    "gallring": ("t_gallring", [
        ("tabell", String(40), False),
        ("rad_id", BigInteger, False),
        ("gallrad_tid", DateTime, False),
    ]),
}
VIEWS = tuple(_CONTRACT)


class CaseSystemWriteError(Exception):
    """The case-system database could not be written; the message says why (no row data)."""


def _tables(metadata: MetaData) -> dict[str, Table]:
    tables = {}
    for view, (table_name, columns) in _CONTRACT.items():
        cols = [Column(name, type_() if isinstance(type_, type) else type_, nullable=nullable,
                       primary_key=(name == f"{view}_id"), autoincrement=False)
                for name, type_, nullable in columns]
        tables[view] = Table(table_name, metadata, *cols, mysql_charset="utf8mb4",
                             mysql_collate="utf8mb4_unicode_ci")
    return tables


def _python_values(series: pd.Series) -> list[Any]:
    """Column values as plain Python objects (None for missing) for any DB-API driver."""
    if series.dtype.kind == "M":
        return [None if pd.isna(v) else v.to_pydatetime() for v in series]
    if series.dtype.kind == "b":
        return [bool(v) for v in series.to_numpy()]
    out: list[Any] = []
    for v in series.astype(object).tolist():
        missing = v is None or v is pd.NA or v is pd.NaT
        if missing or (isinstance(v, float | np.floating) and np.isnan(v)):
            out.append(None)
        elif isinstance(v, pd.Timestamp):
            out.append(v.to_pydatetime())
        elif isinstance(v, np.integer):
            out.append(int(v))
        elif isinstance(v, np.bool_):
            out.append(bool(v))
        else:
            out.append(v)
    return out


def _records(frame: pd.DataFrame, columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    cols = {c: _python_values(frame[c]) for c in columns}
    n = len(frame)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        yield [{c: cols[c][i] for c in columns} for i in range(start, stop)]


def _qualified(engine: Engine, schema: str | None, name: str) -> str:
    q = engine.dialect.identifier_preparer.quote
    return f"{q(schema)}.{q(name)}" if schema else q(name)


def _prepare_schema(engine: Engine, schema: str | None) -> None:
    if schema is None:
        return
    q = engine.dialect.identifier_preparer.quote
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect in ("mysql", "mariadb"):
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS {q(schema)} "
                              "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        elif dialect == "sqlite":
            raise CaseSystemWriteError("SQLite has no schemas: leave schema empty "
                                       "(use a separate database file instead)")
        else:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}"))


def _drop_existing(engine: Engine, schema: str | None, tables: dict[str, Table]) -> None:
    insp = inspect(engine)
    views = set(insp.get_view_names(schema=schema))
    existing_tables = set(insp.get_table_names(schema=schema))
    with engine.begin() as conn:
        for view in VIEWS:
            if view in views:
                conn.execute(text(f"DROP VIEW {_qualified(engine, schema, view)}"))
            elif view in existing_tables:  # an older layout with plain tables
                conn.execute(text(f"DROP TABLE {_qualified(engine, schema, view)}"))
        for table in tables.values():
            if table.name in existing_tables:
                conn.execute(text(f"DROP TABLE {_qualified(engine, schema, table.name)}"))


def write_case_system(pop: Population, url: str, schema: str | None = None) -> dict[str, int]:
    """(Re)create the case-system base tables and contract views at ``url``; rows per view.

    Existing views and base tables of the same names (in ``schema``) are dropped first, so a
    re-run replaces the content. For PostgreSQL ``schema`` is a schema, for MariaDB/MySQL a
    database; both are created when missing. SQLite takes no schema.
    """
    engine = create_engine(url)
    try:
        _prepare_schema(engine, schema)
        metadata = MetaData(schema=schema)
        tables = _tables(metadata)
        _drop_existing(engine, schema, tables)
        metadata.create_all(engine)
        frames = {view: getattr(pop, view) for view in VIEWS}
        with engine.begin() as conn:
            for view, table in tables.items():
                columns = [c.name for c in table.columns]
                missing = [c for c in columns if c not in frames[view].columns]
                if missing:
                    raise CaseSystemWriteError(f"frame {view} lacks columns {missing}")
                for chunk in _records(frames[view], columns):
                    conn.execute(table.insert(), chunk)
            for view, table in tables.items():
                cols = ", ".join(engine.dialect.identifier_preparer.quote(c.name)
                                 for c in table.columns)
                conn.execute(text(f"CREATE VIEW {_qualified(engine, schema, view)} AS "
                                  f"SELECT {cols} FROM {_qualified(engine, schema, table.name)}"))
        counts = {}
        with engine.connect() as conn:
            for view in VIEWS:
                counts[view] = int(conn.execute(
                    text(f"SELECT COUNT(*) FROM {_qualified(engine, schema, view)}")).scalar_one())
        return counts
    finally:
        engine.dispose()
