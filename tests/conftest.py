"""Shared fixtures: real database servers (fail, never skip, under CI=true), isolated homes."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

TEST_KEY = "samverkan-test-key-0123456789-abcdefghij"
POSTGRES_ADMIN_URL = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("SAMVERKAN_TEST_MARIADB_URL",
                                   "mysql+pymysql://root@127.0.0.1:3306/test")

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Prefect stops its temporary (ephemeral) server at interpreter exit and logs that line to a
# console stream pytest has already closed; do not print a logging traceback for it.
logging.raiseExceptions = False


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(available: bool, message: str) -> None:
    """Skip locally when something a test needs is missing; under CI that is a failure."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI=true: tests must not skip)")
    pytest.skip(message)


def require_server(name: str, host: str, port: int) -> None:
    require(_reachable(host, port), f"{name} is not reachable on {host}:{port}")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema on the real server; the URL selects it via search_path."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.fixture
def mariadb_database_url() -> Iterator[str]:
    """A fresh MariaDB database on the real server."""
    require_server("MariaDB", "127.0.0.1", 3306)
    import sqlalchemy as sa

    database = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MARIADB_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create database {database} character set utf8mb4"))
    try:
        yield MARIADB_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}?charset=utf8mb4"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop database {database}"))
        engine.dispose()


@pytest.fixture
def samverkan_home(tmp_path, monkeypatch):
    """An isolated data directory and a test key for code that reads the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SAMVERKAN_HOME", str(home))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.delenv("SAMVERKAN_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("SAMVERKAN_CONFIG", raising=False)
    return home
