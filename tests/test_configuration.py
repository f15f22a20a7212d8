"""Configuration, reference files and `samverkan check` / `samverkan init`, as an operator
meets them: every misconfiguration ends with exit code 1 and one message naming the problem,
no traceback, within seconds (the figures are printed, not asserted).

The sources are real: a simulated municipality (Malmö, small) served by the SS 12000 simulator
on 127.0.0.1, its case system in a SQLite file, its police inbox on disk.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from samverkan.config import ConfigError, load_settings
from samverkan.config.reference import ReferenceError, read_reference, write_templates
from samverkan.simulator.municipalities import MALMO, write_reference

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "SAMVERKAN_TEST_SS12000_TOKEN"  # noqa: S105 - the name of a variable
KEY = "samverkan-configuration-test-key-0123456789"


@dataclass
class Sources:
    base_url: str
    token: str
    sqlite: Path
    inbox: Path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    root = tmp_path_factory.mktemp("malmo-sources")
    pop = generate(seed=5, pupils=150, lessons_per_day=1, municipality=MALMO)
    sqlite = root / "case_system.sqlite"
    write_case_system(pop, f"sqlite:///{sqlite}")
    inbox = root / "police_inbox"
    write_police_files(pop, inbox)
    token = secrets.token_urlsafe(16)
    with serve(SS12000Data.from_population(pop), token) as server:
        yield Sources(server.base_url, token, sqlite, inbox)


def config_text(s: Sources, **overrides: str) -> str:
    """A complete samverkan.toml for the Malmö sources; ``overrides`` replaces whole lines by
    key (``key=None`` drops the line)."""
    lines = {
        "header_m": "[municipality]",
        "code": 'code = "1280"',
        "name": 'name = "Malmö"',
        "organisation_number": 'organisation_number = "212000-1124"',
        "header_g": "\n[general]",
        "reference_date": 'reference_date = "2026-06-12"',
        "header_s": "\n[ss12000]",
        "base_url": f'base_url = "{s.base_url}"',
        "token_env": f'token_env = "{TOKEN_ENV}"',
        "timeout_seconds": "timeout_seconds = 5",
        "header_c": "\n[case_system]",
        "url": f'url = "sqlite:///{s.sqlite}"',
        "header_p": "\n[police]",
        "inbox": f'inbox = "{s.inbox}"',
    }
    lines.update(overrides)
    return "\n".join(v for v in lines.values() if v is not None) + "\n"


@dataclass
class Home:
    path: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.path / "samverkan.toml"

    def write(self, text: str) -> None:
        self.config.write_text(text, encoding="utf-8")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "samverkan.cli", *args], env=self.env, cwd=ROOT,
                                capture_output=True, text=True, timeout=timeout)
        print(f"samverkan {' '.join(args)}: exit {result.returncode} in {time.monotonic() - started:.1f} s")
        return result


@pytest.fixture
def home(tmp_path: Path, sources: Sources) -> Home:
    """A data directory with the Malmö reference files and a complete configuration."""
    path = tmp_path / "data"
    write_reference(MALMO, path / "reference")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_CONFIG", "SAMVERKAN_PSEUDONYM_KEY_FILE")}
    env.update({"SAMVERKAN_HOME": str(path), "SAMVERKAN_PSEUDONYM_KEY": KEY, TOKEN_ENV: sources.token})
    h = Home(path, env)
    h.write(config_text(sources))
    return h


def check_fails_with(h: Home, name: str, expected: str) -> subprocess.CompletedProcess:
    """`samverkan check` exits 1, names ``expected`` on the FAIL line of check ``name``, and
    prints no traceback."""
    result = h.cli("check")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    failing = [line for line in output.splitlines() if line.strip().startswith("FAIL")]
    assert any(name in line for line in failing), output
    assert expected in output, output
    return result


def check_line(result: subprocess.CompletedProcess, name: str) -> str:
    return next(line for line in result.stdout.splitlines() if f" {name} " in line + " ")


# --- a working installation --------------------------------------------------------------------

def test_check_passes_on_a_complete_installation(home: Home) -> None:
    result = home.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout
    assert str(home.config) in check_line(result, "configuration")
    assert "Malmö, 1280, 212000-1124" in result.stdout
    for name in ("pseudonym key", "data directory", "reference", "warehouse", "ss12000",
                 "case_system", "police"):
        assert check_line(result, name).strip().startswith("ok"), result.stdout
    assert "memory_limit" in check_line(result, "warehouse")


def test_settings_reach_the_build_parameters(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from samverkan import steps

    home.write(config_text(home_sources(home)) + "\n[indicators]\nhigh_absence_threshold = 0.2\n"
               "\n[disclosure]\nmin_cell = 6\n")
    settings = load_settings(home.env)
    params = steps.dbt_vars(settings, "v1", dt.date(2026, 6, 12))
    assert params["municipality_code"] == "1280" and params["municipality_name"] == "Malmö"
    assert params["municipality_organisation_number"] == "212000-1124"
    assert params["high_absence_threshold"] == 0.2 and params["min_cell"] == 6
    assert params["trailing_months"] == 12  # the catalogue's default (dbt_project.yml)
    assert settings.min_cell == 6


def home_sources(h: Home) -> Sources:
    text = h.config.read_text(encoding="utf-8")
    value = {line.split(" = ")[0]: line.split(" = ", 1)[1].strip('"') for line in text.splitlines()
             if " = " in line}
    return Sources(value["base_url"], "", Path(value["url"].removeprefix("sqlite:///")), Path(value["inbox"]))


# --- the configuration file --------------------------------------------------------------------

def test_no_configuration_file(home: Home) -> None:
    home.config.unlink()
    check_fails_with(home, "configuration", f"no configuration file: looked for {home.config}")


def test_samverkan_config_naming_a_missing_file(home: Home) -> None:
    missing = home.path / "elsewhere.toml"
    home.env["SAMVERKAN_CONFIG"] = str(missing)
    check_fails_with(home, "configuration", f"SAMVERKAN_CONFIG names {missing}, which does not exist")


def test_unknown_key_suggests_the_nearest(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, base_url=f'base_ur = "{sources.base_url}"'))
    check_fails_with(home, "configuration", "unknown key 'base_ur' in [ss12000] (did you mean 'base_url'?)")


def test_unknown_section_suggests_the_nearest(home: Home, sources: Sources) -> None:
    home.write(config_text(sources) + "\n[indicator]\nhigh_absence_threshold = 0.2\n")
    check_fails_with(home, "configuration", "unknown section [indicator] (did you mean 'indicators'?)")


@pytest.mark.parametrize(("key", "line", "expected"), [
    ("timeout_seconds", 'timeout_seconds = "thirty"',
     '[ss12000] timeout_seconds: expected a number, got the text "thirty"'),
    ("inbox", "inbox = 5", "[police] inbox: expected a path in quotes, got the number 5"),
    ("reference_date", 'reference_date = "2026-13-45"',
     '[general] reference_date: not a valid date (YYYY-MM-DD): the text "2026-13-45"'),
    ("code", 'code = "180"', '[municipality] code: must be four digits, e.g. "0180", got the text "180"'),
    ("timeout_seconds", "timeout_seconds = -1", "[ss12000] timeout_seconds: must be at least 0.1, got -1"),
])
def test_wrong_type_or_value_names_the_key(home: Home, sources: Sources, key: str, line: str,
                                           expected: str) -> None:
    home.write(config_text(sources, **{key: line}))
    check_fails_with(home, "configuration", expected)


def test_an_unquoted_toml_date_is_a_date(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, reference_date="reference_date = 2026-06-12"))
    assert load_settings(home.env).reference_date == dt.date(2026, 6, 12)


def test_the_municipality_is_required(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, header_m=None, code=None, name=None, organisation_number=None))
    check_fails_with(home, "configuration", "no [municipality] section")
    home.write(config_text(sources, organisation_number=None))
    check_fails_with(home, "configuration", "[municipality] organisation_number is required")


def test_a_token_variable_that_is_not_set(home: Home) -> None:
    del home.env[TOKEN_ENV]
    result = check_fails_with(home, "ss12000",
                              f"[ss12000] token_env: the environment variable {TOKEN_ENV} is not set")
    assert check_line(result, "configuration").strip().startswith("ok")
    # the weekly lägesbild reads no source: its settings load without the token
    assert load_settings(home.env).source_problems == {"ss12000": [
        f"{home.config}: [ss12000] token_env: the environment variable {TOKEN_ENV} is not set"]}


def test_every_problem_is_reported_at_once(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, base_url=f'base_ur = "{sources.base_url}"', inbox="inbox = 5"))
    with pytest.raises(ConfigError) as caught:
        load_settings(home.env)
    assert len(caught.value.problems) == 3  # the typo, the type, and base_url then missing


# --- the pseudonym key ---------------------------------------------------------------------------

def test_a_short_key(home: Home) -> None:
    home.env["SAMVERKAN_PSEUDONYM_KEY"] = "too-short"
    check_fails_with(home, "pseudonym key", "too short: 9 characters, at least 32 are required")


def test_a_key_file_readable_by_others(home: Home) -> None:
    key_file = home.path / "pseudonym.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o644)
    del home.env["SAMVERKAN_PSEUDONYM_KEY"]
    home.env["SAMVERKAN_PSEUDONYM_KEY_FILE"] = str(key_file)
    result = check_fails_with(home, "pseudonym key", f"key file {key_file} can be read by others (mode 0644)")
    assert KEY not in result.stdout + result.stderr
    key_file.chmod(0o600)
    assert home.cli("check").returncode == 0


# --- the reference files --------------------------------------------------------------------------

def _reference(tmp_path: Path) -> Path:
    directory = tmp_path / "reference"
    write_reference(MALMO, directory)
    return directory


def _problems(directory: Path) -> list[str]:
    with pytest.raises(ReferenceError) as caught:
        read_reference(directory)
    return caught.value.problems


def _append(path: Path, line: str) -> int:
    """Append a line; its line number."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")
    return len(text.rstrip("\n").splitlines()) + 1


def test_the_malmo_reference_files_are_valid(tmp_path: Path) -> None:
    data = read_reference(_reference(tmp_path))
    assert {r["sspf_omrade_code"] for r in data.rows["ref_sspf_omraden"]} == {
        "SOR-HY", "SOR-FO", "OST-RO", "OST-OX"}
    assert data.files["ref_brottskoder"].parent.name == "defaults"  # the product's default


def test_a_missing_file(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    (directory / "ref_sspf_omraden.csv").unlink()
    assert any(p.startswith(f"{directory / 'ref_sspf_omraden.csv'}: missing") for p in _problems(directory))


def test_a_missing_column(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_sspf_omraden.csv"
    path.write_text("sspf_omrade_code,sspf_omrade_name\nX,Y\n", encoding="utf-8")
    assert f"{path}:1: column 'stadsdelsomrade_code' is missing" in "\n".join(_problems(directory))


def test_an_unknown_column_suggests_the_nearest(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_stadsdelsomraden.csv"
    path.write_text("stadsdelsomrade_code,stadsdelsomrade_namn\nSOR,Söder\n", encoding="utf-8")
    assert (f"{path}:1: unknown column 'stadsdelsomrade_namn' (did you mean 'stadsdelsomrade_name'?)"
            in "\n".join(_problems(directory)))


def test_an_unknown_code(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_skolenheter.csv"
    line = _append(path, "61827099,Nyskolan,kommunal,SOR-XX")
    assert _problems(directory) == [
        f"{path}:{line}: sspf_omrade_code 'SOR-XX' is not in ref_sspf_omraden.csv"]


def test_a_school_unit_in_two_areas(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_skolenheter.csv"
    first = next(r for r in read_reference(directory).rows["ref_skolenheter"])
    other = "OST-RO" if first["sspf_omrade_code"] != "OST-RO" else "SOR-HY"
    line = _append(path, f"{first['school_unit_code']},,,{other}")
    (problem,) = _problems(directory)
    assert problem.startswith(f"{path}:{line}: school unit {first['school_unit_code']} is in two SSPF areas: "
                              f"{first['sspf_omrade_code']} (line 2")


def test_a_stadsdel_mapped_twice(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_stadsdelar.csv"
    first = read_reference(directory).rows["ref_stadsdelar"][0]
    line = _append(path, f" {first['stadsdel_name']} ,{first['stadsdelsomrade_code']},")
    assert _problems(directory) == [f"{path}:{line}: stadsdel '{first['stadsdel_name']}' is mapped twice "
                                    "(also on line 2)"]


def test_a_handling_district_name_must_name_one_stadsdelsomrade(tmp_path: Path) -> None:
    """The case system's stadsdel (the handling stadsdelsområde) is matched to a name, else a
    code, of ref_stadsdelsomraden: a name used twice, or one that is another's code, is ambiguous."""
    directory = _reference(tmp_path)
    path = directory / "ref_stadsdelsomraden.csv"
    line = _append(path, "NYA,Söder")
    other = _append(path, "XTRA,OST")
    assert _problems(directory) == [
        f"{path}:{line}: stadsdelsomrade_name 'Söder' is also the name of SOR (line 2)",
        f"{path}:{other}: stadsdelsomrade_name 'OST' is the code of another stadsdelsområde"]


def test_a_stadsdel_whose_sspf_area_lies_elsewhere(tmp_path: Path) -> None:
    directory = _reference(tmp_path)
    path = directory / "ref_stadsdelar.csv"
    line = _append(path, "Bunkeflostrand,OST,SOR-HY")
    assert _problems(directory) == [f"{path}:{line}: stadsdel 'Bunkeflostrand' is in OST, but its SSPF area "
                                    "SOR-HY lies in SOR (ref_sspf_omraden.csv)"]


@pytest.mark.parametrize(("file", "line", "expected"), [
    ("ref_skolenheter.csv", "6182701,Kortskolan,kommunal,SOR-HY",
     "school_unit_code must be 8 digits (Skolverket's skolenhetskod), got '6182701'"),
    ("ref_indicator_targets.csv", "hog_franvaro,,,0,10,lägre,0.03", "6 fields, the header has 6"),
    ("ref_indicator_targets.csv", "orosanmalningar,,,0.1,lägre,0.03",
     "indicator_id 'orosanmalningar' is not a share (andel) indicator of the catalogue"),
    ("ref_indicator_targets.csv", "hog_franvaro,sspf_omrade,XX,0.1,lägre,0.03",
     "area_code 'XX' is not a sspf_omrade of the reference files"),
    ("ref_indicator_targets.csv", "hog_franvaro,,,0.1,lagre,0.03", "direction must be lägre or högre"),
    ("ref_sspf_omraden.csv", "SOR-LI,,SOR", "sspf_omrade_name is empty"),
])
def test_bad_values_name_file_line_and_problem(tmp_path: Path, file: str, line: str, expected: str) -> None:
    directory = _reference(tmp_path)
    number = _append(directory / file, line)
    problems = _problems(directory)
    if "fields, the header" in expected:
        expected = f"{len(line.split(','))} fields, the header has 6"
    assert any(p.startswith(f"{directory / file}:{number}: ") and expected in p for p in problems), problems


def test_semicolons_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    """Swedish Excel saves CSV with ';' and a byte-order mark."""
    directory = _reference(tmp_path)
    path = directory / "ref_stadsdelsomraden.csv"
    rows = path.read_text(encoding="utf-8").splitlines()
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(r.replace(",", ";") for r in rows).encode("utf-8"))
    assert {r["stadsdelsomrade_code"] for r in read_reference(directory).rows["ref_stadsdelsomraden"]} == {
        "SOR", "OST"}


def test_an_invalid_reference_file_fails_the_check(home: Home) -> None:
    path = home.path / "reference" / "ref_skolenheter.csv"
    line = _append(path, "61827099,Nyskolan,kommunal,SOR-XX")
    check_fails_with(home, "reference",
                     f"{path}:{line}: sspf_omrade_code 'SOR-XX' is not in ref_sspf_omraden.csv")


def test_a_changed_reference_file_changes_the_build_fingerprint(home: Home) -> None:
    from samverkan import steps

    settings = load_settings(home.env)
    before = steps.build_fingerprint(settings, dt.date(2026, 6, 12))
    path = home.path / "reference" / "ref_sspf_omraden.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("Hyllie", "Hyllie-Holma"), encoding="utf-8")
    assert steps.build_fingerprint(settings, dt.date(2026, 6, 12)) != before


def test_templates_are_written_once(tmp_path: Path) -> None:
    written = write_templates(tmp_path / "reference")
    assert sorted(p.name for p in written) == ["ref_indicator_targets.csv", "ref_skolenheter.csv",
                                               "ref_sspf_omraden.csv", "ref_stadsdelar.csv",
                                               "ref_stadsdelsomraden.csv"]
    assert write_templates(tmp_path / "reference") == []


# --- init ------------------------------------------------------------------------------------

def test_init_writes_a_commented_configuration_that_does_not_run_yet(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SAMVERKAN_CONFIG",)}
    h = Home(tmp_path / "new", {**env, "SAMVERKAN_HOME": str(tmp_path / "new"),
                                "SAMVERKAN_PSEUDONYM_KEY": KEY})
    result = h.cli("init")
    assert result.returncode == 0, result.stderr
    assert h.config.exists() and (h.path / "reference" / "ref_skolenheter.csv").exists()
    text = h.config.read_text(encoding="utf-8")
    for section in ("[municipality]", "[general]", "[ss12000]", "[case_system]", "[police]",
                    "[indicators]", "[disclosure]"):
        assert section in text
    assert "# high_absence_threshold = 0.15" in text  # optional: commented out at its default
    for required in ('code = ""', 'name = ""', 'organisation_number = ""', 'base_url = ""', 'url = ""',
                     'inbox = ""'):
        assert required in text  # required: empty, a run refuses to start until filled in
    # nothing is filled in: the check names what is missing
    check_fails_with(h, "configuration", "[municipality] code: is empty")
    again = h.cli("init")
    assert again.returncode == 0 and f"Kept the existing {h.config}" in again.stdout


def test_the_sources_are_not_checked_with_a_broken_configuration(home: Home) -> None:
    home.config.unlink()
    result = check_fails_with(home, "configuration", "no configuration file")
    assert "not checked: the configuration has errors" in check_line(result, "ss12000")


# --- run refuses to start ------------------------------------------------------------------------

def test_run_refuses_to_start_on_a_broken_configuration(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, timeout_seconds='timeout_seconds = "thirty"'))
    started = time.monotonic()
    result = home.cli("run")
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    assert "timeout_seconds: expected a number" in output
    assert "samverkan: cannot start" in output and "Checks passed" not in output  # no Prefect run
    print(f"run refused in {seconds:.1f} s")


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlite_views(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("select name from sqlite_master where type = 'view'")}


# --- the sources ---------------------------------------------------------------------------------

def test_a_sqlite_path_that_does_not_exist(home: Home, sources: Sources) -> None:
    typo = sources.sqlite.with_name("rapprot.sqlite")
    home.write(config_text(sources, url=f'url = "sqlite:///{typo}"'))
    check_fails_with(home, "case_system", f"{typo} does not exist")
    assert not typo.exists()  # never a new empty database file


def test_a_refused_connection(home: Home, sources: Sources) -> None:
    port = unused_port()
    home.write(config_text(sources, base_url=f'base_url = "http://127.0.0.1:{port}/v2.0"'))
    check_fails_with(home, "ss12000", f"127.0.0.1:{port}")
    result = home.cli("check")
    assert "connection refused" in check_line(result, "ss12000")


def test_an_unknown_host(home: Home, sources: Sources) -> None:
    home.write(config_text(sources, base_url='base_url = "https://skolplattform.nonexistent.invalid/v2.0"'))
    result = check_fails_with(home, "ss12000", "skolplattform.nonexistent.invalid")
    assert "unknown host" in check_line(result, "ss12000")


def test_authentication_refused(home: Home, sources: Sources) -> None:
    home.env[TOKEN_ENV] = "not-the-token"
    result = check_fails_with(home, "ss12000", "HTTP 401")
    assert "not-the-token" not in result.stdout + result.stderr


def test_a_missing_view(home: Home, sources: Sources, tmp_path: Path) -> None:
    copy = tmp_path / "rapport.sqlite"
    copy.write_bytes(sources.sqlite.read_bytes())
    assert "insats" in sqlite_views(copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("drop view insats")
    home.write(config_text(sources, url=f'url = "sqlite:///{copy}"'))
    check_fails_with(home, "case_system", "insats")


def test_a_missing_inbox(home: Home, sources: Sources, tmp_path: Path) -> None:
    missing = tmp_path / "polis" / "inbox"
    home.write(config_text(sources, inbox=f'inbox = "{missing}"'))
    check_fails_with(home, "police", f"{missing} does not exist")


def test_run_refuses_to_start_when_a_source_is_unreachable(home: Home, sources: Sources) -> None:
    port = unused_port()
    home.write(config_text(sources, base_url=f'base_url = "http://127.0.0.1:{port}/v2.0"'))
    result = home.cli("run")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    assert f"127.0.0.1:{port}" in output and "connection refused" in output
    assert "Samverkan – summary" not in output  # refused before Prefect and the extracts started
