"""Failures an operator can act on, through the real `samverkan` command: each ends with exit
code 1 and one clear message naming the source, host or path and the cause; no traceback on
the console (it goes to the log file); the previous publication is untouched.

The sources are the simulator's small Malmö: a SQLite case system and a police inbox on disk,
and, for SS 12000, a loopback server that lists the municipality in /organisations (so
`samverkan check` passes) but refuses every other request, as a platform whose token lost its
rights in the middle of a run would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import http_server

from samverkan.simulator.municipalities import MALMO, write_reference

ROOT = Path(__file__).resolve().parent.parent
KEY = "hostile-cli-test-key-0123456789abcdefghij"
TOKEN_ENV = "HOSTILE_SS12000_TOKEN"  # noqa: S105 - the name of a variable

ORGANISATIONS = {"data": [{"id": "7f1c0d7e-0000-4000-8000-000000000001", "displayName": "Malmö stad",
                           "organisationType": "Huvudman", "organisationNumber": "212000-1124",
                           "meta": {"created": "2026-01-01T00:00:00+01:00",
                                    "modified": "2026-01-01T00:00:00+01:00"}}]}


def _rights_lost_mid_run(request: BaseHTTPRequestHandler) -> None:
    """Lists the municipality in /organisations, refuses everything else."""
    if request.path.split("?")[0].endswith("/organisations"):
        body, status = json.dumps(ORGANISATIONS).encode(), 200
    else:
        body, status = b'{"error": "insufficient rights"}', 403
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


@pytest.fixture(scope="module")
def platform() -> Iterator[str]:
    with http_server(_rights_lost_mid_run) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2.0"


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate

    root = tmp_path_factory.mktemp("malmo-systems")
    pop = generate(seed=7, pupils=120, lessons_per_day=1, municipality=MALMO)
    write_case_system(pop, f"sqlite:///{root / 'rapport.sqlite'}")
    write_police_files(pop, root / "inbox")
    return root / "rapport.sqlite", root / "inbox"


@pytest.fixture
def home(tmp_path: Path, platform: str, systems: tuple[Path, Path],
         prefect_api_url: str) -> tuple[Path, dict]:
    sqlite, inbox = systems
    return installation(tmp_path / "data", platform, "token", sqlite, inbox, prefect_api_url)


def installation(path: Path, base_url: str, token: str, sqlite: Path, inbox: Path,
                 prefect_api_url: str) -> tuple[Path, dict]:
    """Malmö's data directory (configuration and reference files) and the environment of a
    `samverkan` command on it."""
    write_reference(MALMO, path / "reference")
    (path / "samverkan.toml").write_text(
        '[municipality]\ncode = "1280"\nname = "Malmö"\norganisation_number = "212000-1124"\n\n'
        '[general]\nreference_date = "2026-06-12"\n\n'
        f'[ss12000]\nbase_url = "{base_url}"\ntoken_env = "{TOKEN_ENV}"\n\n'
        f'[case_system]\nurl = "sqlite:///{sqlite}"\n\n[police]\ninbox = "{inbox}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_CONFIG", "SAMVERKAN_PSEUDONYM_KEY_FILE")}
    env.update({"SAMVERKAN_HOME": str(path), "SAMVERKAN_PSEUDONYM_KEY": KEY, TOKEN_ENV: token,
                "PREFECT_API_URL": prefect_api_url})
    return path, env


def _cli(env: dict, *args: str):  # noqa: ANN202 - CompletedProcess
    import subprocess

    return subprocess.run([sys.executable, "-m", "samverkan.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_a_source_failing_mid_run_ends_with_its_cause_and_no_traceback(home: tuple[Path, dict]) -> None:
    path, env = home
    result = _cli(env, "run")
    console = result.stdout + result.stderr
    assert result.returncode == 1, console
    assert "Checks passed" in console  # it failed after the checks, inside the Prefect run
    assert "Traceback" not in console, console
    assert "Sources that could not be extracted:" in console
    ss12000 = next(line for line in console.splitlines() if line.strip().startswith("ss12000 "))
    assert "HTTP 403" in ss12000 and "127.0.0.1" in ss12000, ss12000
    gate = json.loads(next((path / "validation").glob("gate-*/gate.json")).read_text(encoding="utf-8"))
    assert any("HTTP 403" in f["cause"] for f in gate["failed_extracts"] if f["source"] == "ss12000")
    assert not (path / "published" / "current").exists()
    log = (path / "logs" / "samverkan.log").read_text(encoding="utf-8")
    assert "Traceback" in log  # the details are kept, in the log file


def test_a_read_only_data_directory(home: tuple[Path, dict]) -> None:
    path, env = home
    if os.geteuid() == 0:
        # root writes anyway: make the data directory a file's child instead
        blocker = path.parent / "not-a-directory"
        blocker.write_text("x", encoding="utf-8")
        env = {**env, "SAMVERKAN_HOME": str(blocker / "data")}
        expected = str(blocker / "data")
    else:
        path.chmod(0o500)
        expected = str(path)
    result = _cli(env, "check")
    console = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in console, console
    line = next(x for x in console.splitlines() if "data directory" in x)
    assert "FAIL" in line and expected in line and "cannot be written" in line, line


def test_an_unparsable_case_system_url(home: tuple[Path, dict]) -> None:
    path, env = home
    config = path / "samverkan.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('url = "sqlite:///', 'url = "postgresql+psycopg://reader@casedb:port/x#'),
                      encoding="utf-8")
    for command in ("check", "run"):
        result = _cli(env, command)
        console = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in console, console
        line = next(x for x in console.splitlines() if "case_system" in x and "FAIL" in x)
        assert "URL" in line or "url" in line, line


# --- anomalies: a source that suddenly delivers far less ---------------------------------------

@pytest.fixture
def served_home(tmp_path: Path, systems: tuple[Path, Path],
                prefect_api_url: str) -> Iterator[tuple[Path, dict]]:
    """The small Malmö with its real SS 12000 platform, and its own copy of the case system."""
    import secrets
    import shutil

    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    sqlite, inbox = systems
    copy = tmp_path / "rapport.sqlite"
    shutil.copyfile(sqlite, copy)
    token = secrets.token_urlsafe(12)
    with serve(SS12000Data.from_population(generate(seed=7, pupils=120, lessons_per_day=1,
                                                    municipality=MALMO)), token) as server:
        path, env = installation(tmp_path / "data", server.base_url, token, copy, inbox, prefect_api_url)
        env["CASE_DB"] = str(copy)
        yield path, env


def test_a_case_system_that_empties_stops_publication_until_confirmed(
        served_home: tuple[Path, dict]) -> None:
    import sqlite3

    path, env = served_home
    first = _cli(env, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    published = (path / "published" / "current").resolve()
    # the reporting database is wiped (or the reader lost its rights to the rows)
    with sqlite3.connect(env["CASE_DB"]) as conn:
        for (table,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
            conn.execute(f'delete from "{table}"')  # noqa: S608 - the test's own table names
    second = _cli(env, "run")
    console = second.stdout + second.stderr
    assert second.returncode == 1 and "Traceback" not in console, console
    line = next(x for x in console.splitlines() if "source_volumes" in x)
    assert "FAIL" in line and "view klient has 0 rows; it had" in line and "--confirm-anomalies" in line
    assert (path / "published" / "current").resolve() == published  # the old figures stand, said so
    confirmed = _cli(env, "run", "--confirm-anomalies")
    console = confirmed.stdout + confirmed.stderr
    assert confirmed.returncode == 0, console
    line = next(x for x in console.splitlines() if "source_volumes" in x)
    assert "[ok  ] source_volumes: confirmed by the operator" in line and "view klient has 0 rows" in line
    # the warehouse keeps what was loaded: nothing new to publish, the confirmed volumes are the
    # new baseline, and the next night passes without a confirmation
    assert (path / "published" / "current").resolve() == published
    again = _cli(env, "run")
    assert again.returncode == 0, again.stdout + again.stderr
