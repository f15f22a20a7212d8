"""Which failures make the extract task retry as a whole."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError

from flows._extract import extract_task
from samverkan import steps
from samverkan.config import ConfigError
from samverkan.sources.ss12000 import SS12000AuthError, SS12000UnavailableError


def test_transient_failures_are_retried_and_others_are_not(tmp_path):
    # A real "database is gone" error from SQLAlchemy: a SQLite file in a missing directory.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    try:
        engine.connect()
    except OperationalError as exc:
        assert steps.is_transient(exc)
    finally:
        engine.dispose()
    assert steps.is_transient(SS12000UnavailableError("GET /attendances: 503 after 5 attempts"))
    assert steps.is_transient(TimeoutError())
    assert not steps.is_transient(SS12000AuthError("GET /persons: 401"))
    assert not steps.is_transient(ConfigError("no [police] section"))
    assert not steps.is_transient(ProgrammingError("select", {}, Exception("no such view")))
    assert not steps.is_transient(ValueError("bad data"))


def test_extract_task_retries_with_backoff():
    assert extract_task.retries == 2
    assert extract_task.retry_delay_seconds == [30, 120]
    assert extract_task.retry_condition_fn is not None
