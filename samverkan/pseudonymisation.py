"""Key custody and pseudonyms.

The pseudonym of a person is the lowercase hex HMAC-SHA256, under the municipality's key, of
the normalised 12-digit personnummer or samordningsnummer. Normalisation and the HMAC run as
DuckDB macros (``sql/identity_macros.sql``), the same ones the dbt models call, so there is one
implementation of both. The key is handed to DuckDB as a bound parameter and never appears in
SQL text, logs or error messages.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from samverkan import database
from samverkan.config import SQL_DIR

KEY_ENV = "SAMVERKAN_PSEUDONYM_KEY"
KEY_FILE_ENV = "SAMVERKAN_PSEUDONYM_KEY_FILE"
MIN_KEY_CHARS = 32
KEY_VARIABLE = "samverkan_pseudonym_key"


class PseudonymKeyError(Exception):
    """The pseudonym key is missing or unusable. The message never contains the key."""


def default_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the demo keeps its generated key: ``$SAMVERKAN_HOME/keys/pseudonym.key``."""
    env = os.environ if environ is None else environ
    return Path(env.get("SAMVERKAN_HOME", "data")).resolve() / "keys" / "pseudonym.key"


def key_configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(KEY_ENV) or env.get(KEY_FILE_ENV)) or default_key_file(env).exists()


def load_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The key as UTF-8 bytes: ``SAMVERKAN_PSEUDONYM_KEY``, else the first line of the file
    named by ``SAMVERKAN_PSEUDONYM_KEY_FILE``, else the demo's key file under the data
    directory if it exists. At least 32 characters."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        text, origin = env[KEY_ENV], f"${KEY_ENV}"
    elif env.get(KEY_FILE_ENV) or default_key_file(env).exists():
        path = Path(env[KEY_FILE_ENV]) if env.get(KEY_FILE_ENV) else default_key_file(env)
        origin = f"key file {path}"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise PseudonymKeyError(f"{origin} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PseudonymKeyError(f"{origin} cannot be read ({type(exc).__name__})") from None
        text = lines[0] if lines else ""
    else:
        raise PseudonymKeyError(
            f"no pseudonym key: set {KEY_ENV}, or {KEY_FILE_ENV} naming a file whose first line "
            "is the key"
        )
    if len(text) < MIN_KEY_CHARS:
        raise PseudonymKeyError(
            f"the pseudonym key from {origin} is too short: {len(text)} characters, "
            f"at least {MIN_KEY_CHARS} are required"
        )
    return text.encode("utf-8")


def create_key_file(path: Path) -> Path:
    """Write a new random key (64 hex characters) to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


TEMP_MACRO = "create or replace temp macro "


@functools.cache
def identity_macros_sql(temporary: bool = True) -> str:
    """The identity macros' SQL: temporary macros (the connection's own), or, with
    ``temporary=False``, macros of the connection's database, which every connection and
    cursor of it sees."""
    sql = (SQL_DIR / "identity_macros.sql").read_text(encoding="utf-8")
    return sql if temporary else sql.replace(TEMP_MACRO, "create or replace macro ")


def install_identity_functions(conn: duckdb.DuckDBPyConnection, key: bytes | None,
                               temporary: bool = True) -> None:
    """Create the identity macros on ``conn`` (see :func:`identity_macros_sql`) and, with a key,
    set it as a connection variable."""
    conn.execute(identity_macros_sql(temporary))
    if key is not None:
        set_key(conn, key)


def set_key(conn: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """The key as a variable of ``conn`` (a bound parameter: never SQL text). Variables are per
    connection: every cursor needs its own."""
    conn.execute(f"set variable {KEY_VARIABLE} = ?", [key])


def pseudonymise(identifiers: Iterable[str], key: bytes,
                 reference_date: dt.date | None = None) -> list[str | None]:
    """Pseudonyms for raw identifiers in any accepted format; None where one is invalid."""
    ref = reference_date or dt.date.today()
    values = list(identifiers)
    conn = database.connect()
    try:
        install_identity_functions(conn, key)
        conn.execute("create temp table input (n bigint, raw varchar)")
        conn.executemany("insert into input values (?, ?)", list(enumerate(values)))
        rows = conn.execute(
            "select samverkan_pseudonym(samverkan_normalise_pnr(raw, ?::date)) from input order by n",
            [ref.isoformat()],
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]
