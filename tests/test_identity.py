"""Identifier normalisation, HMAC-SHA256 and the pseudonym key (one implementation, in SQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import stat
import subprocess
import sys

import duckdb
import pytest

from samverkan.pseudonymisation import (
    PseudonymKeyError,
    create_key_file,
    install_identity_functions,
    load_key,
    pseudonymise,
)

REF = dt.date(2026, 6, 12)
KEY = b"test-key-for-samverkan-0123456789abcdef"

# RFC 4231 test cases 1-4, 6 and 7 (case 5 is a truncated output).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


@pytest.fixture
def conn():
    c = duckdb.connect()
    install_identity_functions(c, KEY)
    yield c
    c.close()


@pytest.mark.parametrize(("key", "message", "expected"), RFC4231)
def test_sql_hmac_reproduces_rfc4231(conn, key, message, expected):
    got = conn.execute("select samverkan_hmac_sha256(?::blob, ?::blob)", [key, message]).fetchone()[0]
    assert got == expected
    assert hmac.new(key, message, hashlib.sha256).hexdigest() == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("189001019802", "189001019802"),
        ("201301012397", "201301012397"),
        ("20130101-2397", "201301012397"),
        ("130101-2397", "201301012397"),
        ("1301012397", "201301012397"),
        ("  2013 0101 - 2397 ", "201301012397"),
        ("900101-9802", "199001019802"),  # '-': under 100 years old on the reference date
        ("900101+9802", "189001019802"),  # '+': a hundred years or older
        ("130101+2397", "191301012397"),  # '+' : a hundred years or older
    ],
)
def test_normalisation_formats(conn, raw, expected):
    got = conn.execute("select samverkan_normalise_pnr(?, ?::date)", [raw, REF]).fetchone()[0]
    assert got == expected


def _luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        p = int(ch) * (2 - i % 2)
        total += p // 10 + p % 10
    return str((10 - total % 10) % 10)


def test_century_from_separator_and_reference_date(conn):
    # Born 1 July 2000: on 12 June 2026 '000701-' is 25 years old, so 2000 not 1900.
    nine = "000701123"
    number = nine + _luhn_digit(nine)
    got = conn.execute("select samverkan_normalise_pnr(?, ?::date)",
                       [f"{number[:6]}-{number[6:]}", REF]).fetchone()[0]
    assert got == "20" + number
    # A birthday later this year than the reference date with yy = 26 is 1926, not 2026.
    nine = "261224123"
    number = nine + _luhn_digit(nine)
    got = conn.execute("select samverkan_normalise_pnr(?, ?::date)",
                       [f"{number[:6]}-{number[6:]}", REF]).fetchone()[0]
    assert got == "19" + number


def test_samordningsnummer_is_valid_and_keeps_day_plus_60(conn):
    nine = "130161123"  # born 1 January 2013, day 01 + 60
    number = "20" + nine + _luhn_digit(nine)
    got, birth = conn.execute(
        "select samverkan_normalise_pnr(?, ?::date), samverkan_pnr_birth_date(?)",
        [number, REF, number]).fetchone()
    assert got == number
    assert birth == dt.date(2013, 1, 1)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "missing"),
        (None, "missing"),
        ("12345", "bad_format"),
        ("2013-01-01", "bad_format"),
        ("201301012398", "bad_checksum"),
        ("20130230-2397", "bad_date"),
        ("20300101-0000", "bad_date"),  # after the reference date
    ],
)
def test_problem_codes(conn, raw, problem):
    got = conn.execute("select samverkan_pnr_problem(?, ?::date), samverkan_normalise_pnr(?, ?::date)",
                       [raw, REF, raw, REF]).fetchone()
    assert got == (problem, None)


def test_sql_pseudonym_equals_python_hmac():
    numbers = ["189001019802", "201301012397"]
    got = pseudonymise(numbers, KEY, REF)
    assert got == [hmac.new(KEY, n.encode("ascii"), hashlib.sha256).hexdigest() for n in numbers]


def test_key_from_environment_and_file(tmp_path):
    assert load_key({"SAMVERKAN_PSEUDONYM_KEY": "x" * 32, "SAMVERKAN_HOME": str(tmp_path)}) == b"x" * 32
    key_file = create_key_file(tmp_path / "keys" / "k")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    text = key_file.read_text().splitlines()[0]
    key = load_key({"SAMVERKAN_PSEUDONYM_KEY_FILE": str(key_file), "SAMVERKAN_HOME": str(tmp_path)})
    assert key == text.encode()
    (tmp_path / "two").write_text("å" * 32 + "\nsecond line ignored\n", encoding="utf-8")
    key = load_key({"SAMVERKAN_PSEUDONYM_KEY_FILE": str(tmp_path / "two"), "SAMVERKAN_HOME": str(tmp_path)})
    assert key == ("å" * 32).encode("utf-8")


def test_short_or_missing_key_is_refused_without_echoing_it(tmp_path):
    short = "tooshort-secret-value"
    with pytest.raises(PseudonymKeyError) as err:
        load_key({"SAMVERKAN_PSEUDONYM_KEY": short, "SAMVERKAN_HOME": str(tmp_path)})
    assert "at least 32" in str(err.value) and short not in str(err.value)
    with pytest.raises(PseudonymKeyError, match="no pseudonym key"):
        load_key({"SAMVERKAN_HOME": str(tmp_path)})
    with pytest.raises(PseudonymKeyError, match="does not exist"):
        load_key({"SAMVERKAN_PSEUDONYM_KEY_FILE": str(tmp_path / "nope"), "SAMVERKAN_HOME": str(tmp_path)})


def _cli(args, stdin, env):
    return subprocess.run([sys.executable, "-m", "samverkan.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_pseudonym_aligns_lines_and_never_echoes_invalid_values(tmp_path):
    env = {**os.environ, "SAMVERKAN_HOME": str(tmp_path), "SAMVERKAN_PSEUDONYM_KEY": KEY.decode()}
    env.pop("SAMVERKAN_PSEUDONYM_KEY_FILE", None)
    stdin = "201301012397\n201301012398\n19130101+2397\n130101-2397\n\n189001019802\n"
    result = _cli(["pseudonym", "--reference-date", "2026-06-12"], stdin, env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")[:-1]
    expected = {n: hmac.new(KEY, n.encode(), hashlib.sha256).hexdigest()
                for n in ("201301012397", "191301012397", "189001019802")}
    assert lines == [expected["201301012397"], "", expected["191301012397"],
                     expected["201301012397"], "", expected["189001019802"]]
    assert "line 2:" in result.stderr and "line 5:" in result.stderr
    assert "201301012398" not in result.stderr
    assert KEY.decode() not in result.stdout + result.stderr


def test_cli_pseudonym_refuses_short_key(tmp_path):
    env = {**os.environ, "SAMVERKAN_HOME": str(tmp_path), "SAMVERKAN_PSEUDONYM_KEY": "short"}
    result = _cli(["pseudonym"], "201301012397\n", env)
    assert result.returncode == 2
    assert "at least 32 are required" in result.stderr
