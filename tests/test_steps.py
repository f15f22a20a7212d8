"""Which failures make the extract task retry as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import write_config
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


def test_a_source_that_stays_down_is_retried_by_the_prefect_task(samverkan_home, monkeypatch):
    """The client gives up after its own attempts; the Prefect task then retries the whole
    extract, which lands everything the server serves once it is back."""
    from prefect import flow

    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    data = SS12000Data.from_population(generate(seed=3, pupils=40, lessons_per_day=1))
    monkeypatch.setenv("SAMVERKAN_SS12000_TOKEN", "retry-test-token")

    @flow(name="extract-with-task-retries")
    def extract_with_retries():
        return extract_task.with_options(retry_delay_seconds=0)("ss12000")

    @flow(name="extract-without-task-retries")
    def extract_without_retries():
        return extract_task.with_options(retries=0)("ss12000")

    with serve(data, "retry-test-token") as server:
        write_config(samverkan_home,
                     f'[ss12000]\nbase_url = "{server.base_url}"\ntoken_env = "SAMVERKAN_SS12000_TOKEN"\n')
        # Without task retries the same outage fails the flow: the client alone gives up.
        server.fail_next(429, count=5, retry_after=0)  # the client's five attempts all fail
        with pytest.raises(SS12000UnavailableError):
            extract_without_retries()
        server.fail_next(429, count=5, retry_after=0)
        result = extract_with_retries()
        assert [entry.status for entry in server.requests][5:10] == [429] * 5
    assert result.ok and len(result.batches) == 1
    (batch,) = result.batches
    assert batch.loaded == sum(data.served_checksum(e)[0] for e in
                               ("organisations", "persons", "calendarEvents", "attendances"))


def test_lagesbild_reference_date_follows_the_current_publication(samverkan_home):
    """The weekly run reads what the nightly run built: by default its reference date is the
    current publication's; an explicit date wins; without a publication, config or today."""
    import datetime as dt
    import json

    from samverkan.config import load_settings
    from samverkan.publish import indicator_publication

    write_config(samverkan_home, '[general]\nreference_date = "2026-06-10"\n')
    settings = load_settings()
    assert steps.lagesbild_reference_date(settings) == dt.date(2026, 6, 10)
    target = indicator_publication(settings.paths)
    version = target.versions / "20260612T020000Z"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(json.dumps(
        {"version": "20260612T020000Z", "reference_date": "2026-06-12"}), encoding="utf-8")
    target.current.symlink_to(version.relative_to(target.root))
    assert steps.lagesbild_reference_date(settings) == dt.date(2026, 6, 12)
    assert steps.lagesbild_reference_date(settings, "2026-06-08") == dt.date(2026, 6, 8)
    # the disclosure check uses the trailing weeks the models were built with
    assert steps.dbt_vars(settings, "v", dt.date(2026, 6, 12))["lagesbild_trailing_weeks"] == \
        steps.lagesbild_trailing_weeks(settings) == 4


def test_the_lagesbild_needs_an_indicator_publication_to_be_built_on(samverkan_home):
    """Without a published indicator table there is nothing to check the lägesbild against:
    the gate fails before anything is exported, and says why in its readable report."""
    import datetime as dt

    from samverkan.config import load_settings
    from samverkan.publish import lagesbild_publication

    write_config(samverkan_home)
    settings = load_settings()
    result = steps.publish_lagesbild(settings, "29990101T000000Z", dt.date(2026, 6, 12), dbt_success=True)
    assert not result.published
    failed = [(c.name, c.detail) for c in result.failed]
    assert failed == [("indicator_basis", "no indicator publication yet")]
    assert "UNDERKÄND" in Path(result.gate_report).read_text(encoding="utf-8")
    lagesbild = lagesbild_publication(settings.paths).root
    assert not lagesbild.exists() or not any(lagesbild.iterdir())
