"""Why a source could not be read: the one place that classifies failures.

Every source's network, database and file errors are classified here: whether retrying can
help (``transient``), and a short reason for messages, the gate report, the run summary and the
Prefect artifacts. A reason names the host or path and the cause (an HTTP status, a driver's
error class and its message with literals removed), never a data value or a secret.

Not transient (fail at once; neither the HTTP client nor Prefect's task retries try again):

- a refused connection (nothing listens on that host and port);
- an unknown host (the DNS lookup failed);
- a TLS failure: the server's certificate is not accepted, or the handshake fails;
- authentication and authorisation: HTTP 401/403 that persist after the one token refresh,
  database logins refused (PostgreSQL 28P01/28000, MariaDB/MySQL 1045/1698/1044, SQL Server
  18456), an unknown database (PostgreSQL 3D000, MariaDB 1049);
- a missing file or directory (a SQLite database, the police inbox), a missing view or column,
  a configuration error, data that breaks the contract.

Transient (the client retries a request with backoff; Prefect retries a whole extract, which
resumes safely): time-outs, HTTP 429 and 5xx, dropped connections (reset, closed mid-answer,
server gone away), a SQLite database another process holds locked, and other operational
database errors.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

REFUSED = "refused"
UNKNOWN_HOST = "unknown_host"
CERTIFICATE = "certificate"
TLS = "tls"
AUTH = "auth"
UNKNOWN_DATABASE = "unknown_database"
LOCKED = "locked"
TIMEOUT = "timeout"
DROPPED = "dropped"
OTHER = "other"

MAX_CAUSE_CHARS = 400


class SourceError(Exception):
    """A source could not be read. The message is written by the platform: it names the host
    or path and the cause, never a data value or a secret. ``transient`` says whether retrying
    the extract can help (default: no)."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


@dataclass(frozen=True)
class Failure:
    """A classified failure: its kind, whether retrying can help, and a short reason."""

    kind: str
    transient: bool
    reason: str


# --- scrubbing: no data values in a message --------------------------------------------------

# A personnummer or samordningsnummer: 10 or 12 digits, with an optional separator before the
# last four; any other run of 10 or more digits is removed as well.
_IDENTIFIER_RE = re.compile(r"(?<!\d)(?:\d{8}|\d{6})[-+ ]?\d{4}(?!\d)|\d{10,}")
# A quoted literal in a driver message ('…' or "…"); an apostrophe inside a word (can't) does
# not open one.
_QUOTED_RE = re.compile(r"(?<!\w)'(?:[^'\n]|'')*'(?!\w)|(?<!\w)\"(?:[^\"\n]|\"\")*\"(?!\w)")


def scrub(text: str) -> str:
    """``text`` without anything that looks like a personnummer/samordningsnummer, on one line."""
    return " ".join(_IDENTIFIER_RE.sub("[number]", text).split())


def scrub_driver_message(text: str, secrets: Iterable[str | None] = ()) -> str:
    """A driver's (or any third party's) message for an error text: secrets, quoted literals
    (values, names of rows) and identifier-like digit runs removed, on one line, shortened."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _QUOTED_RE.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], text)
    text = scrub(text)
    return text if len(text) <= 240 else text[:239] + "…"


def failure_cause(error: BaseException | str | None, fallback: str = "extract failed") -> str:
    """The cause of a failed extract for the gate report, the summary and the artifacts.

    A :class:`SourceError` (or a configuration error) is the platform's own message, which names
    the host or path and the cause; anything else is named by its class with its message
    scrubbed as a driver's message."""
    from samverkan.config import ConfigError

    if error is None:
        return fallback
    if isinstance(error, str):
        text = scrub_driver_message(error) or fallback
    elif isinstance(error, SourceError | ConfigError):
        text = scrub(str(error)) or type(error).__name__
    elif isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        text = f"{type(error).__name__}: {error.strerror}{where}"
    else:
        # a driver's error (SQLAlchemy wraps it in .orig, with the SQL on further lines): its
        # class and the first line of its message
        error = getattr(error, "orig", None) or error
        lines = [line for line in str(error).splitlines() if line.strip()]
        message = scrub_driver_message(lines[0]) if lines else ""
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= MAX_CAUSE_CHARS else text[:MAX_CAUSE_CHARS - 1] + "…"


# --- network (HTTP) failures -----------------------------------------------------------------

def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None),
                      *getattr(item, "args", ())])


def network_failure(exc: BaseException) -> Failure:
    """Classify a failed request (``requests``/``urllib3``/socket/ssl errors)."""
    import requests
    import urllib3.exceptions

    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = scrub(str(getattr(e, "verify_message", "") or "")) or "verification failed"
            return Failure(CERTIFICATE, False, f"TLS certificate not accepted ({detail}): check the "
                           "server's certificate chain and host name, or the CA bundle")
    if any("CERTIFICATE_VERIFY_FAILED" in str(e) for e in chain):
        return Failure(CERTIFICATE, False, "TLS certificate not accepted (certificate verify failed)")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Failure(REFUSED, False, "connection refused (nothing listens on that host and port: "
                       "check the URL and that the server is running)")
    if any(isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError) for e in chain):
        return Failure(UNKNOWN_HOST, False, "unknown host (the DNS lookup failed: check the host name)")
    if any(isinstance(e, requests.Timeout | TimeoutError | urllib3.exceptions.TimeoutError)
           for e in chain):
        return Failure(TIMEOUT, True, "timed out")
    for e in chain:
        if isinstance(e, ssl.SSLError) and not isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            reason = getattr(e, "reason", None) or type(e).__name__
            return Failure(TLS, False, f"TLS handshake failed ({reason}): check that the URL's "
                           "scheme (https/http) and port are right")
    innermost = chain[-1] if chain else exc
    for e in reversed(chain):
        if isinstance(e, OSError | ConnectionError) or "Disconnected" in type(e).__name__:
            innermost = e
            break
    return Failure(DROPPED, True, f"connection dropped ({type(innermost).__name__})")


def os_failure(exc: OSError) -> Failure:
    """Classify a plain OSError (a socket error outside an HTTP client, a file error)."""
    if isinstance(exc, ConnectionRefusedError):
        return Failure(REFUSED, False, "connection refused")
    if isinstance(exc, socket.gaierror):
        return Failure(UNKNOWN_HOST, False, "unknown host (the DNS lookup failed)")
    if isinstance(exc, TimeoutError):
        return Failure(TIMEOUT, True, "timed out")
    if isinstance(exc, ConnectionError) or exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Failure(DROPPED, True, f"connection dropped ({type(exc).__name__})")
    return Failure(OTHER, False, exc.strerror or type(exc).__name__)


# --- database (DB-API via SQLAlchemy) failures -----------------------------------------------

# MariaDB/MySQL error numbers (first argument of the driver's exception)
_MYSQL_AUTH = {1044, 1045, 1142, 1143, 1227, 1698}
_MYSQL_UNKNOWN_DB = {1049}
_MYSQL_UNKNOWN_HOST = {2005}
_MYSQL_DROPPED = {2006, 2013, 2055}

_AUTH_TEXT = ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
              "login failed", "access denied")
_ROLE_RE = re.compile(r"\brole \S+ does not exist")
_DATABASE_RE = re.compile(r"\bdatabase \S+ does not exist")
_UNKNOWN_HOST_TEXT = ("failed to resolve host", "could not translate host name",
                      "name or service not known", "nodename nor servname", "unknown mysql server host",
                      "temporary failure in name resolution", "no address associated with hostname")
_DROPPED_TEXT = ("server closed the connection unexpectedly", "terminating connection",
                 "connection reset", "lost connection", "server has gone away", "ssl syscall error",
                 "broken pipe", "connection is closed", "connection not open", "communication link failure")


def database_failure(exc: BaseException) -> Failure:
    """Classify a database error (SQLAlchemy's wrapper or the driver's own exception)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if "certificate" in text and ("verify" in text or "ssl" in text):
        return Failure(CERTIFICATE, False, "TLS certificate not accepted")
    if "connection refused" in text:
        return Failure(REFUSED, False, "connection refused (nothing listens on that host and port: "
                       "check the URL and that the server is running)")
    if code in _MYSQL_UNKNOWN_HOST or any(t in text for t in _UNKNOWN_HOST_TEXT):
        return Failure(UNKNOWN_HOST, False, "unknown host (the DNS lookup failed: check the host name)")
    if (code in _MYSQL_AUTH or sqlstate.startswith("28") or any(t in text for t in _AUTH_TEXT)
            or _ROLE_RE.search(text)):
        return Failure(AUTH, False, "authentication failed: the server refused the user (role) or "
                       "password, or its access (check the user and password of [case_system] url)")
    if code in _MYSQL_UNKNOWN_DB or sqlstate == "3D000" or _DATABASE_RE.search(text):
        return Failure(UNKNOWN_DATABASE, False, "the database does not exist (check [case_system] url)")
    if "database is locked" in text or "database table is locked" in text:  # SQLite
        return Failure(LOCKED, True, "the database is locked: another process holds a write "
                       "transaction on it (the read waited for it and gave up)")
    if "timeout expired" in text or "timed out" in text or "timeout" in type(orig).__name__.lower():
        return Failure(TIMEOUT, True, "timed out")
    if code in _MYSQL_DROPPED or any(t in text for t in _DROPPED_TEXT):
        return Failure(DROPPED, True, "the connection was dropped")
    if isinstance(exc, DBAPIError):
        transient = isinstance(exc, OperationalError) or bool(exc.connection_invalidated)
        return Failure(OTHER, transient, "database error")
    return Failure(OTHER, False, "database error")


def is_transient(exc: BaseException) -> bool:
    """Whether retrying a whole extract can help (see the module docstring for the rules)."""
    import requests
    from sqlalchemy.exc import DBAPIError

    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, DBAPIError):
        return database_failure(exc).transient
    if isinstance(exc, requests.RequestException):
        return network_failure(exc).transient
    if isinstance(exc, OSError):
        return os_failure(exc).transient
    return False
