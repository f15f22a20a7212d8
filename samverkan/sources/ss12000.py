"""SS 12000 v2.1 (school platform REST API): the client, the extractor and its loader.

The extractor pulls ``/organisations``, ``/persons``, ``/calendarEvents``, ``/attendances``
(incrementally by ``meta.modified.after``) and ``/deletedEntities`` (by ``after``), lands every
record exactly as received (as canonical JSON text, names included: landing may hold them) and
loads the landed batch into ``raw_ss12000.*`` with set-based DuckDB SQL. A pull streams: each
page is appended to its entity's landing file in the pull's spool directory as it arrives, and
the watermark and content checksum are computed by DuckDB over that file, so a pull's memory
does not grow with its size (tests/benchmarks/ss12000_large_pull.py measures it). Names, addresses and
other contact data never reach the warehouse, not even its quarantine.

Canonical JSON and the content checksum are defined here and shared with the simulator, so a
test can compare what the server served with what was landed and loaded.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import email.utils
import gc
import hashlib
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

try:  # a fast JSON parser; installed with Prefect, optional here
    import orjson
except ImportError:  # pragma: no cover - the json module does the same, slower
    orjson = None  # type: ignore[assignment]

from samverkan import database
from samverkan.config import ConfigError, SS12000Config
from samverkan.config.check import CheckResult
from samverkan.extract import Pull, SourceState, pause_point
from samverkan.landing import BatchManifest, SpooledTable, TableSpool, sorted_texts, spool_connection
from samverkan.progress import progress
from samverkan.sources.failures import SourceError, failure_cause, network_failure, scrub
from samverkan.warehouse import QUARANTINE_SCHEMA, EntityCounts, quarantine

log = logging.getLogger(__name__)
STOCKHOLM = ZoneInfo("Europe/Stockholm")
PROGRESS_EVERY_SECONDS = 15.0  # a long pull says how far it got, at most this often

SOURCE = "ss12000"

# entity (landing / warehouse name) -> endpoint
RECORD_ENDPOINTS: dict[str, str] = {
    "organisations": "organisations",
    "persons": "persons",
    "calendar_events": "calendarEvents",
    "attendances": "attendances",
}
DELETED_ENTITY = "deleted_entities"
DELETED_ENDPOINT = "deletedEntities"
ENTITIES: tuple[str, ...] = (*RECORD_ENDPOINTS, DELETED_ENTITY)

# The spec's deletions payload spells this key with three t's; the endpoint is /activities.
DELETED_KEY_QUIRKS: dict[str, str] = {"activitites": "activities"}

RECORD_SCHEMA = pa.schema([
    ("id", pa.string()),            # the record's id when it is a string, else null
    ("modified", pa.string()),      # meta.modified as received, when it is a string
    ("record", pa.large_string()),  # canonical JSON text of the record exactly as received
])
DELETED_SCHEMA = pa.schema([
    ("entity_type", pa.string()),   # key of the deletions payload as received (e.g. 'attendances')
    ("id", pa.string()),            # the deleted id when it is a string, else null
    ("record", pa.large_string()),  # canonical JSON of deletion_record(entity_type, id)
])

# RFC 3339 date-time with a mandatory offset (DuckDB's cast alone would accept local times).
RFC3339_RE = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
DATE_RE = r"\d{4}-\d{2}-\d{2}"

# Keys whose values identify or contact a person: dropped from anything stored past landing.
PERSONAL_KEYS = frozenset({
    "givenName", "middleName", "familyName", "addresses", "emails", "phoneNumbers", "photo",
    "eduPersonPrincipalNames", "responsibles", "displayName", "_embedded",
})


# --- canonical JSON and checksums (shared with the simulator) --------------------------------

def _not_json(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# The C encoder of the json module, built once (json.dumps builds one per call).
_C_ENCODER = (c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", True, False, False)
              if c_make_encoder is not None else None)


def canonical_json_stdlib(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)``."""
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(value, 0))
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON value: keys sorted, no whitespace, non-ASCII characters as
    they are, the escapes of the json module (``canonical_json_stdlib``).

    orjson (installed with Prefect) writes the same text several times faster and is used when
    present; the two differ only in how they print some small floats (``1e-05`` / ``0.00001``,
    ``1e-07`` / ``1e-7``), which valid SS 12000 records do not contain (their numbers are
    integers). Integers beyond 64 bits fall back to the json module.
    """
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return canonical_json_stdlib(value)


def parse_json(body: bytes | str) -> Any:
    """Strict JSON (no NaN/Infinity); uses orjson when it is installed, else the json module."""
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # e.g. integers beyond 64 bits, which the json module accepts
    return json.loads(body, parse_constant=_reject_constant)


def deletion_record(entity_type: str, entity_id: Any) -> dict[str, Any]:
    """One deletion as a record (the payload groups ids by entity type)."""
    return {"entity": entity_type, "id": entity_id}


def records_checksum(texts: Iterable[str] | pa.Array | pa.ChunkedArray) -> str:
    """sha256 over the canonical JSON texts sorted (by UTF-8 bytes), each followed by '\\n'.

    Canonical JSON never contains a raw newline, so the encoding is unambiguous; the order of
    records does not matter.
    """
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        arr = texts
    else:
        arr = pa.array(list(texts), type=pa.large_string())
    if arr.null_count:
        raise ValueError("records_checksum: null text")
    arr = arr.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    ordered = arr.take(pc.sort_indices(arr))
    step = 1 << 20
    return _sorted_texts_digest(ordered.slice(start, step) for start in range(0, len(ordered), step))


def spooled_records_checksum(conn: duckdb.DuckDBPyConnection, path: Path, column: str = "record") -> str:
    """:func:`records_checksum` of the texts in column ``column`` of a spooled Parquet file,
    sorted by :func:`samverkan.landing.sorted_texts` (an external merge sort whose runs go to
    ``conn``'s spool directory), so memory does not grow with the pull."""
    return _sorted_texts_digest(sorted_texts(conn, path, column))


def _sorted_texts_digest(parts: Iterable[pa.Array]) -> str:
    """sha256 over texts that arrive sorted, in parts, each followed by '\\n'."""
    digest = hashlib.sha256()
    newline, empty = pa.scalar("\n", pa.large_string()), pa.scalar("", pa.large_string())
    for part in parts:
        if part.null_count:
            raise ValueError("records_checksum: null text")
        if not len(part):
            continue
        piece = pc.binary_join_element_wise(part.cast(pa.large_string()), newline, empty)
        _, offsets_buf, data_buf = piece.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=len(piece) + 1,
                                offset=piece.offset * 8)
        digest.update(memoryview(data_buf)[int(offsets[0]):int(offsets[-1])])
    return digest.hexdigest()


# --- errors and auth -------------------------------------------------------------------------

class SS12000Error(SourceError):
    """A failed SS 12000 request; the message names the server, the endpoint and the cause."""


class SS12000AuthError(SS12000Error):
    """The server rejected the credentials (401) or access (403)."""


class SS12000ResponseError(SS12000Error):
    """The server answered with an error (4xx) or with a body that is not the contract."""


class SS12000UnavailableError(SS12000Error):
    """Rate limits, server errors, time-outs or dropped connections outlasted the retries."""

    transient = True


class SS12000ConnectionError(SS12000Error):
    """The server cannot be reached in a way retrying does not fix: the connection is refused,
    the host is unknown, or TLS fails (the certificate is not accepted)."""


class SS12000DeadlineError(SS12000Error):
    """The pull did not finish within ``[ss12000] deadline_minutes``: the server kept it going
    (an answer trickling in, retries that would outlast it, a pull longer than configured).
    Not transient: retrying the whole pull against the same server would take as long again."""


class SS12000RedirectError(SS12000ResponseError):
    """The server (or the token endpoint) redirected to another host or scheme: answers from
    there are not accepted as SS 12000 data (nor a token from there)."""


# A dropped connection mid-answer surfaces as a ChunkedEncodingError, which is no ConnectionError.
_REQUEST_FAILURES = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)

# --- limits of a pull (hostile or broken servers) ---------------------------------------------
# One pull has an overall deadline ([ss12000] deadline_minutes): every request (connect, TLS,
# status line, headers, body), every retry's wait and the paging loop share it. Each read waits
# at most min(timeout_seconds, what is left of the deadline), and a watchdog (Deadline.bound)
# shuts the connection down when the deadline passes, so an answer trickling in a byte at a
# time, headers included, ends by it.
# A page is refused when it holds more records than the ``limit`` asked for, or when its body
# grows past page_size x RECORD_BYTES_BOUND (+ BODY_SLACK_BYTES): the body is streamed and the
# count checked as it arrives, so a huge page is refused before it is held whole.
# Paging ends with an error after MAX_EMPTY_PAGES pages in a row without a record but with a new
# pageToken, after a repeated pageToken, or past max_pages (max_records / page_size + 1).
RECORD_BYTES_BOUND = 64 * 1024     # the most one record's JSON may hold (a person: ~2 KiB);
                                   # a larger record is quarantined (oversized_record)
BODY_SLACK_BYTES = 1 << 20         # the page's envelope and a small page's headroom
TOKEN_BODY_MAX_BYTES = 1 << 20     # an OAuth2 token answer
MAX_EMPTY_PAGES = 50
MAX_REDIRECTS = 5                  # same-origin redirects followed per request (GET only)
_READ_CHUNK = 1 << 16


class Deadline:
    """A wall-clock deadline (monotonic) shared by every request of one pull.

    Socket time-outs bound each read, not a request: a server that sends its status line,
    headers or body a byte at a time never lets one run out. So every request runs inside
    :meth:`bound`, which starts a watchdog timer for what is left of the deadline; when it
    fires, it shuts down every connection opened under this deadline, the blocked read returns
    and the request ends with the deadline's error. Sessions must come from
    :func:`deadline_session` for their connections to be watched."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, *,
                 setting: str = "[ss12000] deadline_minutes") -> None:
        self.seconds = float(seconds)
        self.setting = setting
        self._clock = clock
        self.started = clock()
        self.at = self.started + self.seconds
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def remaining(self) -> float:
        return self.at - self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def passed(self) -> bool:
        """Whether the deadline has passed (or its watchdog cut the connections)."""
        return self.fired or self.remaining() <= 0

    def limit(self, timeout: float) -> float:
        """``timeout`` shortened to what is left (at least 10 ms: a socket time-out of 0 would
        make it non-blocking)."""
        return max(0.01, min(timeout, self.remaining()))

    def error(self, where: str, cause: str) -> SS12000DeadlineError:
        return SS12000DeadlineError(
            f"{where}: {cause}; the pull did not finish within its deadline of "
            f"{_duration(self.seconds)} ({self.setting}), stopped after "
            f"{_duration(self.elapsed())}")

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Run one request (connect, TLS, status line, headers, body) within the deadline."""
        timer = threading.Timer(max(0.0, self.remaining()), self._expire)
        timer.daemon = True
        token = _ACTIVE_DEADLINE.set(self)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            _ACTIVE_DEADLINE.reset(token)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        with self._lock:
            if not self.fired:
                self._sockets.add(sock)
                return
        _shutdown(sock)

    def unwatch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _expire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """End both directions of a connection, so that a read blocked on it returns. The plain
    socket method, also for a TLS socket (whose own ``shutdown`` would drop its TLS state under
    the reading thread)."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The cause of a deadline error before the answer's headers were read (connecting, or a server
# sending its status line and headers slowly).
_NO_HEADERS = "the status line and headers of the answer had not all arrived"

# The deadline of the request running in this thread (set by Deadline.bound): the connections
# it opens register with it.
_ACTIVE_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "samverkan_ss12000_deadline", default=None)


class _WatchedConnection:
    """Mixin for urllib3 connections: the socket of a connection opened under a
    :class:`Deadline` is shut down when it passes. (Connecting needs no watchdog: the TCP connect
    and the whole TLS handshake each wait at most the connect time-out, which the client
    shortens to what is left of the deadline.)"""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        deadline = _ACTIVE_DEADLINE.get()
        if deadline is not None and isinstance(self.sock, socket.socket):
            deadline.watch(self.sock)


class _WatchedHTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections a :class:`Deadline` can cut (also through an HTTP proxy)."""

    _POOLS: dict[str, type[urllib3.HTTPConnectionPool]] = {"http": _WatchedHTTPPool,
                                                          "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:  # not a SOCKS proxy, which has its own pools
            manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager


def deadline_session() -> requests.Session:
    """A session whose requests :meth:`Deadline.bound` can end when the deadline passes."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.4g} minutes"
    return f"{seconds:.3g} s"


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{port}"


def _origin_name(url: str) -> str:
    return f"{urllib.parse.urlsplit(url).scheme.lower()}://{server_name(url)}"


def _redirect_target(response: requests.Response, url: str) -> str | None:
    location = response.headers.get("Location")
    return urllib.parse.urljoin(url, location.strip()) if location and location.strip() else None


def _refuse_redirect(where: str, url: str, target: str, status: int) -> SS12000RedirectError:
    return SS12000RedirectError(
        f"{where}: HTTP {status} redirects from {_origin_name(url)} to another server, "
        f"{_origin_name(target)}: answers from another host or scheme are not accepted (if the "
        "service has moved, change the configured URL to the new address)")


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket an urllib3 response is read from (its time-out can then follow the deadline)."""
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _read_body(response: requests.Response, where: str, *, max_bytes: int, what: str,
               deadline: Deadline | None, timeout: float) -> bytes:
    """The body of a streamed response, at most ``max_bytes`` (decoded), read in chunks that each
    wait at most ``timeout`` and never past ``deadline``. Failures of the connection are raised
    as the ``requests`` exceptions the retry loop knows; the response is always closed."""
    try:
        length = response.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > max_bytes:
            raise SS12000ResponseError(
                f"{where}: the answer announces {int(length):,} bytes, more than {what} may take "
                f"({max_bytes:,} bytes); refused without reading it")
        raw = response.raw
        sock = _socket_of(raw)
        chunks: list[bytes] = []
        total = 0
        while True:
            if deadline is not None:
                if deadline.passed():
                    raise deadline.error(where, f"the answer was still arriving ({total:,} bytes "
                                                "so far)")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.settimeout(deadline.limit(timeout))
            try:
                chunk = raw.read1(_READ_CHUNK, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
                if deadline is not None and deadline.passed():
                    raise deadline.error(where, f"the answer was still arriving ({total:,} bytes "
                                                "so far)") from None
                raise requests.exceptions.ReadTimeout(str(exc)) from None
            except urllib3.exceptions.DecodeError:
                raise SS12000ResponseError(f"{where}: the answer's content encoding cannot be "
                                           "decoded") from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError, OSError) as exc:
                if deadline is not None and deadline.passed():
                    raise deadline.error(where, f"the answer was still arriving ({total:,} bytes "
                                                "so far)") from None
                raise requests.exceptions.ChunkedEncodingError(exc) from None
            if not chunk:
                if deadline is not None and deadline.fired:  # cut by the watchdog, not the end
                    raise deadline.error(where, f"the answer was still arriving ({total:,} bytes "
                                                "so far)")
                break
            total += len(chunk)
            if total > max_bytes:
                raise SS12000ResponseError(
                    f"{where}: the answer is larger than {what} may take ({max_bytes:,} bytes); "
                    "refused after reading that much")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        response.close()


def server_name(url: str) -> str:
    """Host and port of a URL, for messages (never user info, path or query)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _request_failed(where: str, exc: BaseException, attempt: int, max_attempts: int) -> SS12000Error | None:
    """The error to raise for a failed request, or None when it is worth another attempt:
    refused connections, unknown hosts and TLS failures fail at once (not transient);
    time-outs and dropped connections are retried until the attempts run out."""
    failure = network_failure(exc)
    if not failure.transient:
        return SS12000ConnectionError(f"{where}: {failure.reason}")
    if attempt >= max_attempts:
        return SS12000UnavailableError(
            f"{where}: {failure.reason} ({attempt} attempt{'s' if attempt > 1 else ''})")
    return None


class StaticBearerToken(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` with a token from configuration.

    Token sources share this shape: ``__call__`` signs a request, ``refresh()`` obtains a new
    token after a 401 and says whether it did. A static token cannot be refreshed; an OAuth2
    client-credentials source (`OAuth2ClientCredentials`) fetches a new one there.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def refresh(self) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticBearerToken(***)"


class OAuth2ClientCredentials(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` with a token from an OAuth2 client-credentials grant.

    The token is fetched on first use by ``POST token_url`` (``grant_type=client_credentials``,
    client id and secret by HTTP Basic, RFC 6749 §2.3.1), renewed shortly before its
    ``expires_in`` runs out, and fetched anew by ``refresh()`` after a 401. The token endpoint
    is retried on 429, 5xx and timeouts like the data endpoints. Neither the secret nor a token
    ever appears in a message.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff: Callable[[int], float] = lambda attempt: min(30.0, 2.0 ** (attempt - 1)),
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        deadline: Deadline | None = None,
    ) -> None:
        self.token_url = token_url
        self.deadline = deadline
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._sleep = sleep
        self._session = session or deadline_session()
        self._clock = clock
        self._token: str | None = None
        self._expires_at: float | None = None
        self._old_tokens: list[str] = []
        self.tokens_fetched = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token is None or (self._expires_at is not None and self._clock() >= self._expires_at):
            self._fetch()
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def refresh(self) -> bool:
        self._fetch()
        return True

    def secrets(self) -> tuple[str, ...]:
        return tuple(t for t in (self._client_secret, self._token, *self._old_tokens) if t)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, client_id=***, client_secret=***)"

    def _where(self) -> str:
        return (f"token endpoint {server_name(self.token_url)}: "
                f"POST {urllib.parse.urlsplit(self.token_url).path or '/'} (token_url)")

    def _wait(self, where: str, delay: float, cause: str) -> None:
        if self.deadline is not None and (self.deadline.passed() or delay >= self.deadline.remaining()):
            raise self.deadline.error(where, f"{cause}; waiting {delay:.3g} s to retry would pass it")
        self._sleep(delay)

    def _fetch(self) -> None:
        """POST the client-credentials grant. Redirects are never followed (a POST is not
        re-sent elsewhere): to another host or scheme the error names both, on the same server
        it asks for the configured token_url to be the final address."""
        where = self._where()
        attempt = 0
        while True:
            attempt += 1
            if self.deadline is not None and self.deadline.passed():
                raise self.deadline.error(where, "no token yet")
            timeout = self.deadline.limit(self._timeout) if self.deadline else self._timeout
            try:
                with self.deadline.bound() if self.deadline else contextlib.nullcontext():
                    response = self._session.post(
                        self.token_url, data={"grant_type": "client_credentials"},
                        auth=requests.auth.HTTPBasicAuth(self._client_id, self._client_secret),
                        headers={"Accept": "application/json"}, timeout=(timeout, timeout),
                        allow_redirects=False, stream=True)
                    body = _read_body(response, where, max_bytes=TOKEN_BODY_MAX_BYTES,
                                      what="a token answer", deadline=self.deadline, timeout=timeout)
            except _REQUEST_FAILURES as exc:
                if self.deadline is not None and self.deadline.passed():
                    raise self.deadline.error(where, _NO_HEADERS) from None
                error = _request_failed(where, exc, attempt, self._max_attempts)
                if error is not None:
                    raise error from None
                self._wait(where, self._backoff(attempt), network_failure(exc).reason)
                continue
            status = response.status_code
            if 300 <= status < 400:
                target = _redirect_target(response, self.token_url)
                if target is not None and _origin(target) != _origin(self.token_url):
                    raise _refuse_redirect(where, self.token_url, target, status)
                raise SS12000RedirectError(
                    f"{where}: HTTP {status} {response.reason}: the token endpoint redirects "
                    "(within the same server); redirects are not followed for the token request: "
                    "set [ss12000] token_url to the final address")
            if status == 429 or status >= 500:
                if attempt >= self._max_attempts:
                    raise SS12000UnavailableError(f"{where}: HTTP {status} {response.reason} "
                                                  f"({attempt} attempts)")
                self._wait(where, self._backoff(attempt), f"HTTP {status}")
                continue
            if status in (400, 401, 403):
                raise SS12000AuthError(
                    f"{where}: HTTP {status} {response.reason}: the token endpoint refused the client "
                    f"credentials (check the [ss12000] client_id and client_secret)"
                    f"{self._oauth_error(body)}")
            if status != 200:
                raise SS12000AuthError(f"{where}: HTTP {status} {response.reason}"
                                       f"{self._oauth_error(body)}")
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            token = doc.get("access_token") if isinstance(doc, dict) else None
            if not isinstance(token, str) or not token:
                raise SS12000AuthError(f"{where}: the answer has no access_token")
            token_type = doc.get("token_type", "bearer")
            if not isinstance(token_type, str) or token_type.lower() != "bearer":
                raise SS12000AuthError(f"{where}: token_type is not 'bearer'")
            expires_in = doc.get("expires_in")
            if self._token:
                self._old_tokens = [self._token, *self._old_tokens][:4]
            self._token = token
            self._expires_at = None
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
                # renew a little early: a request must not set out with a token about to expire
                self._expires_at = self._clock() + float(expires_in) - min(30.0, float(expires_in) / 10)
            self.tokens_fetched += 1
            log.info("ss12000: obtained an access token from the token endpoint")
            return

    def _oauth_error(self, body: bytes) -> str:
        try:
            doc = json.loads(body)
        except ValueError:
            return ""
        if not isinstance(doc, dict):
            return ""
        parts = [str(doc[k]) for k in ("error", "error_description", "code", "message")
                 if isinstance(doc.get(k), str)]
        return f" ({_redact(': '.join(parts), self.secrets())})" if parts else ""

    def close(self) -> None:
        self._session.close()


Auth = StaticBearerToken | OAuth2ClientCredentials


def auth_from_config(config: SS12000Config, **options: Any) -> Auth:
    """The token source of the configuration: a static ``token``, or the OAuth2 client-credentials
    grant at ``token_url`` (with ``client_id`` and ``client_secret``); ``options`` go to
    :class:`OAuth2ClientCredentials`."""
    if config.token:
        return StaticBearerToken(config.token)
    if config.token_url:
        missing = [name for name in ("client_id", "client_secret") if not getattr(config, name)]
        if missing:
            raise ConfigError(f"[ss12000] token_url needs {' and '.join(missing)} "
                              "(client_secret by client_secret_env)")
        options.setdefault("timeout", float(config.timeout_seconds))
        return OAuth2ClientCredentials(config.token_url, str(config.client_id),
                                       str(config.client_secret), **options)
    raise ConfigError("[ss12000] no credentials configured: set token_env to the name of the "
                      "variable that holds the bearer token, or token_url, client_id and "
                      "client_secret_env for OAuth2 client credentials")


def _redact(text: str, secrets: Iterable[str]) -> str:
    """Server-provided text for an error message: no secrets, no identifier-like digit runs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"\d[\d\- +]{8,}\d", "[digits]", text)
    text = " ".join(text.split())
    return text[:200]


# --- client ----------------------------------------------------------------------------------

@dataclass
class Page:
    number: int
    body: dict[str, Any]
    server_date: dt.datetime | None


def page_records(body: dict[str, Any]) -> int:
    """How many records a page holds: the items of ``data`` (a list), or the ids of a deletions
    payload (an object of lists); 0 for anything else (the extractor refuses it)."""
    data = body.get("data")
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        return sum(len(v) if isinstance(v, list) else int(v is not None) for v in data.values())
    return 0


class _PageRequest:
    """The request for one page: ``call(*args, **kwargs)``, in a daemon thread of its own when
    ``thread`` (the caller goes on meanwhile), else at once; :meth:`result` waits for it and
    returns its value or raises its exception. The thread runs in a copy of the caller's
    context (its log lines belong to the caller's Prefect run), and as a daemon a request left
    behind by a caller that stopped never holds up the process's exit."""

    def __init__(self, call: Callable[..., Any], *args: Any, thread: bool, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        if thread:
            threading.Thread(target=contextvars.copy_context().run,
                             args=(self._run, call, args, kwargs),
                             name="ss12000-next-page", daemon=True).start()
        else:
            self._run(call, args, kwargs)

    def _run(self, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._value = call(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader in result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class SS12000Client:
    """GET + paging against an SS 12000 server, with retries for 429, 5xx and timeouts, within
    the limits of a pull (see RECORD_BYTES_BOUND above): one overall deadline, a page cap, a
    body cap, and no answers from another host or scheme (redirects there are refused; a
    redirect within the same scheme, host and port is followed, at most MAX_REDIRECTS times)."""

    def __init__(
        self,
        config: SS12000Config,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        max_retry_after_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        max_pages: int | None = None,
        max_empty_pages: int = MAX_EMPTY_PAGES,
        deadline_seconds: float | None = None,
        deadline_setting: str = "[ss12000] deadline_minutes",
        max_body_bytes: int | None = None,
    ) -> None:
        if not config.base_url:
            raise ConfigError("[ss12000] base_url is empty")
        self.base_url = config.base_url.rstrip("/")
        self.server = server_name(self.base_url)
        self.page_size = int(config.page_size)
        if self.page_size < 1:
            raise ConfigError("[ss12000] page_size must be at least 1")
        self.timeout = float(config.timeout_seconds)
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.max_records = max(1, int(config.max_records))
        self.max_pages = max_pages or -(-self.max_records // self.page_size) + 1
        self.max_empty_pages = max(1, max_empty_pages)
        self.max_body_bytes = max_body_bytes or self.page_size * RECORD_BYTES_BOUND + BODY_SLACK_BYTES
        self.deadline = Deadline(deadline_seconds if deadline_seconds is not None
                                 else float(config.deadline_minutes) * 60, setting=deadline_setting)
        self._sleep = sleep
        self._session = deadline_session()
        self._auth = auth_from_config(config, max_attempts=self.max_attempts, backoff=self._backoff,
                                      sleep=sleep, session=self._session, deadline=self.deadline)
        self._session.headers["Accept"] = "application/json"
        self.requests_made = 0
        self.retries = 0

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SS12000Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pages(self, endpoint: str, params: dict[str, str] | None = None, *,
              prefetch: bool = False) -> Iterator[Page]:
        """All pages of ``/endpoint``: the first request carries the filters and ``limit``,
        follow-ups only ``pageToken`` and ``limit`` (the spec forbids combining them).

        With ``prefetch`` the next page is asked for as soon as this one's ``pageToken`` is
        known, in a thread of its own, while the caller works on this page: the server
        prepares and sends it meanwhile. Still one request at a time, in the same order, and
        every failure surfaces where it did without (after the pages before it); a caller that
        stops early leaves at most that one request, which asks for nothing more."""
        query: dict[str, Any] = {**(params or {}), "limit": self.page_size}
        number = 1
        empty_in_a_row = 0
        seen_tokens: set[str] = set()
        stop = threading.Event()
        request = _PageRequest(self._get_json, endpoint, query, number, stop=stop, thread=False)
        try:
            while True:
                where = self._where(endpoint, number)
                body, server_date = request.result()
                records = page_records(body)
                if records > self.page_size:
                    raise SS12000ResponseError(
                        f"{where}: the page holds {records:,} records, more than the limit of "
                        f"{self.page_size:,} asked for ([ss12000] page_size)")
                token = body.get("pageToken")
                more = token is not None and token != ""
                empty_in_a_row = empty_in_a_row + 1 if records == 0 and more else 0
                if empty_in_a_row >= self.max_empty_pages:
                    raise SS12000ResponseError(
                        f"{where}: {empty_in_a_row} pages in a row without a record, each with a "
                        "new pageToken: the server pages without progress (paging would never end)")
                problem = self._next_page_problem(endpoint, token, number + 1,
                                                  seen_tokens) if more else None
                follow_up = {"pageToken": token, "limit": self.page_size}
                if more and problem is None:
                    seen_tokens.add(token)
                    if prefetch:
                        request = _PageRequest(self._get_json, endpoint, follow_up, number + 1,
                                               stop=stop, thread=True)
                yield Page(number, body, server_date)
                if not more:
                    return
                if problem is not None:
                    raise problem
                number += 1
                if not prefetch:
                    request = _PageRequest(self._get_json, endpoint, follow_up, number,
                                           stop=stop, thread=False)
        finally:
            stop.set()

    def _where(self, endpoint: str, number: int) -> str:
        """A page as errors and logs name it."""
        return f"server {self.server}: GET /{endpoint} page {number}"

    def _next_page_problem(self, endpoint: str, token: Any, number: int,
                           seen_tokens: set[str]) -> SS12000ResponseError | None:
        """Why page ``number`` must not be asked for (``token``: the pageToken of the page
        before it), or None."""
        if not isinstance(token, str):
            return SS12000ResponseError(f"{self._where(endpoint, number - 1)}: pageToken is not a "
                                        "string")
        if token in seen_tokens:
            return SS12000ResponseError(f"{self._where(endpoint, number - 1)}: the server "
                                        "repeated a pageToken (paging would never end)")
        if number > self.max_pages:
            return SS12000ResponseError(
                f"{self._where(endpoint, number)}: more than {self.max_pages:,} pages, more than "
                f"{self.max_records:,} records ([ss12000] max_records) at {self.page_size:,} a "
                "page could need; the server keeps returning a pageToken")
        return None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_seconds, self.backoff_seconds * (2 ** (attempt - 1)))

    def _retry_after(self, response: requests.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After")
        if value:
            value = value.strip()
            seconds: float | None = None
            if value.isdigit():
                seconds = float(value)
            else:
                try:
                    when = email.utils.parsedate_to_datetime(value)
                    seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
                except (TypeError, ValueError):
                    seconds = None
            if seconds is not None:
                return min(max(seconds, 0.0), self.max_retry_after_seconds)
        return self._backoff(attempt)

    def _wait(self, where: str, delay: float, cause: str) -> None:
        if self.deadline.passed() or delay >= self.deadline.remaining():
            raise self.deadline.error(where, f"{cause}; waiting {delay:.3g} s to retry would pass it")
        self.retries += 1
        self._sleep(delay)

    def _error_detail(self, body: bytes) -> str:
        try:
            doc = json.loads(body)
        except ValueError:
            return ""
        if not isinstance(doc, dict):
            return ""
        parts = [str(doc[k]) for k in ("code", "message") if isinstance(doc.get(k), str | int)]
        return f" ({_redact(': '.join(parts), self._auth.secrets())})" if parts else ""

    def _get_json(self, endpoint: str, query: dict[str, Any], number: int,
                  stop: threading.Event | None = None) -> tuple[dict[str, Any], dt.datetime | None]:
        """One page, parsed, with retries; ``stop`` set: no further attempt (the caller has
        stopped reading pages)."""
        url = f"{self.base_url}/{endpoint}"
        params: dict[str, Any] | None = query
        where = self._where(endpoint, number)
        refreshed = False
        attempt = 0
        redirects = 0
        while True:
            attempt += 1
            if stop is not None and stop.is_set():
                raise SS12000Error(f"{where}: not asked for (the pages are no longer read)")
            if self.deadline.passed():
                raise self.deadline.error(where, "not yet read")
            self.requests_made += 1
            timeout = self.deadline.limit(self.timeout)
            try:
                with self.deadline.bound():
                    response = self._session.get(url, params=params, auth=self._auth, stream=True,
                                                 allow_redirects=False, timeout=(timeout, timeout))
                    body = _read_body(response, where, max_bytes=self.max_body_bytes,
                                      what=f"a page of {self.page_size:,} records",
                                      deadline=self.deadline, timeout=timeout)
            except _REQUEST_FAILURES as exc:
                if self.deadline.passed():
                    raise self.deadline.error(where, _NO_HEADERS) from None
                error = _request_failed(where, exc, attempt, self.max_attempts)
                if error is not None:
                    raise error from None
                delay = self._backoff(attempt)
                cause = network_failure(exc).reason
                log.warning("%s: %s; retrying in %.1f s", where, cause, delay)
                self._wait(where, delay, cause)
                continue
            status = response.status_code
            if status == 200:
                return self._parse(body, where, response.headers.get("Content-Type")), \
                    _server_date(response)
            if 300 <= status < 400:
                target = _redirect_target(response, response.url or url)
                if target is None:
                    raise SS12000ResponseError(f"{where}: HTTP {status} {response.reason} without "
                                               "a Location")
                if _origin(target) != _origin(self.base_url):
                    raise _refuse_redirect(where, self.base_url, target, status)
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise SS12000ResponseError(f"{where}: more than {MAX_REDIRECTS} redirects")
                url, params = target, None  # the Location carries its own query
                attempt -= 1  # a redirect is no failed attempt
                continue
            if status == 401:
                if not refreshed and self._auth.refresh():
                    refreshed = True
                    continue
                hint = ("even with a freshly issued token (check the [ss12000] client "
                        "credentials and the token endpoint)" if refreshed else
                        "(check the [ss12000] token)")
                raise SS12000AuthError(
                    f"{where}: HTTP 401 Unauthorized: the server rejected the bearer token "
                    f"{hint}{self._error_detail(body)}")
            if status == 403:
                raise SS12000AuthError(f"{where}: HTTP 403 Forbidden: the token is not allowed to "
                                       f"read this endpoint{self._error_detail(body)}")
            if status == 429 or status >= 500:
                if attempt >= self.max_attempts:
                    raise SS12000UnavailableError(
                        f"{where}: HTTP {status} {response.reason} ({attempt} attempts)"
                        f"{self._error_detail(body)}")
                delay = self._retry_after(response, attempt)
                log.warning("%s: HTTP %d; retrying in %.1f s", where, status, delay)
                self._wait(where, delay, f"HTTP {status}")
                continue
            raise SS12000ResponseError(
                f"{where}: HTTP {status} {response.reason}{self._error_detail(body)}")

    @staticmethod
    def _parse(body: bytes, where: str, content_type: str | None = None) -> dict[str, Any]:
        try:
            doc = parse_json(body)
        except (ValueError, RecursionError):
            kind = (content_type or "").split(";")[0].strip().lower()
            if "html" in kind or body.lstrip()[:1] == b"<":
                shown = f" (Content-Type {scrub(kind)[:60]})" if kind else ""
                raise SS12000ResponseError(
                    f"{where}: the response is not valid JSON but an HTML page{shown}: this is "
                    "not an SS 12000 API; check that [ss12000] base_url is the API's root") from None
            raise SS12000ResponseError(f"{where}: the response is not valid JSON") from None
        if not isinstance(doc, dict) or "data" not in doc:
            raise SS12000ResponseError(f"{where}: the response is not an object with 'data'")
        return doc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _server_date(response: requests.Response) -> dt.datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# --- probe (``samverkan check``) -------------------------------------------------------------

PROBE_TIMEOUT_SECONDS = 5.0
PROBE_DEADLINE_SECONDS = 15.0  # the whole probe: a token, a page (a server trickling its answer)


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", value) if isinstance(value, str) else ""


def probe(config: SS12000Config, organisation_number: str,
          config_file: Path | None = None) -> CheckResult:
    """Whether a run can read the SS 12000 server: it answers, the credentials (static token or
    OAuth2 client credentials) are accepted, and the first page of ``GET /organisations`` holds
    the municipality's organisation (``organisationNumber`` equal to ``organisation_number``,
    digits compared). One attempt per request, time-outs of at most 5 s; never raises for a
    failure the user can act on; the detail names the server and the cause (and
    ``config_file`` where the fix is a key in it), never a token, secret or data value."""
    try:
        server = server_name(config.base_url or "")
        limited = dataclasses.replace(
            config, timeout_seconds=min(float(config.timeout_seconds or PROBE_TIMEOUT_SECONDS),
                                        PROBE_TIMEOUT_SECONDS))
        credentials = "the bearer token" if config.token else "the OAuth2 client credentials"
        with SS12000Client(limited, max_attempts=1, sleep=lambda _: None,
                           deadline_seconds=min(float(config.deadline_minutes) * 60,
                                                PROBE_DEADLINE_SECONDS),
                           deadline_setting="the limit of a check") as client, \
                contextlib.closing(client.pages("organisations")) as pages:
            first = next(pages)
        data = first.body.get("data")
        if not isinstance(data, list):
            return CheckResult(SOURCE, False, f"server {server}: GET /organisations page 1: 'data' is "
                                              "not a list")
        wanted = _digits(organisation_number)
        if not wanted:
            return CheckResult(SOURCE, False, "the municipality's organisation number (configured) "
                                              "has no digits")
        found = any(isinstance(o, dict) and _digits(o.get("organisationNumber")) == wanted
                    for o in data)
        if not found:
            return CheckResult(SOURCE, False, (
                f"server {server}: answers and accepts {credentials}, but the municipality's "
                f"organisation number is not among the organisations of GET /organisations "
                f"(first page, {len(data)} organisations): check [ss12000] base_url and "
                f"[municipality] organisation_number{f' in {config_file}' if config_file else ''}"))
        return CheckResult(SOURCE, True, (
            f"server {server}: answers, accepts {credentials}, and lists the municipality's "
            f"organisation ({len(data)} organisations on the first page)"))
    except (SS12000Error, ConfigError) as exc:
        return CheckResult(SOURCE, False, failure_cause(exc))
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return CheckResult(SOURCE, False, f"server {server_name(config.base_url or '')}: "
                                          f"{failure_cause(exc)}")


# --- extractor -------------------------------------------------------------------------------

def _record_batch(data: list[Any]) -> pa.RecordBatch:
    """One page as landing rows (id, modified, canonical text) with as little per-record Python
    as possible: comprehensions for the well-formed case, a careful loop otherwise."""
    texts: list[str] | list[bytes]
    if orjson is not None:
        try:
            texts = [orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) for rec in data]
        except TypeError:
            texts = [canonical_json(rec) for rec in data]
    else:
        texts = [canonical_json(rec) for rec in data]
    try:
        ids = pa.array([rec["id"] for rec in data], pa.string())
        mods = pa.array([rec["meta"]["modified"] for rec in data], pa.string())
    except (KeyError, TypeError, IndexError, pa.ArrowInvalid, pa.ArrowTypeError):
        id_list: list[str | None] = []
        mod_list: list[str | None] = []
        for rec in data:
            rid = rec.get("id") if isinstance(rec, dict) else None
            meta = rec.get("meta") if isinstance(rec, dict) else None
            mod = meta.get("modified") if isinstance(meta, dict) else None
            id_list.append(rid if isinstance(rid, str) else None)
            mod_list.append(mod if isinstance(mod, str) else None)
        ids, mods = pa.array(id_list, pa.string()), pa.array(mod_list, pa.string())
    if texts and isinstance(texts[0], bytes):
        records = pa.array(texts, pa.large_binary()).cast(pa.large_string())  # UTF-8 validated
    else:
        records = pa.array(texts, pa.large_string())
    return pa.RecordBatch.from_arrays([ids, mods, records], schema=RECORD_SCHEMA)


def _deleted_batch(data: dict[str, Any]) -> pa.RecordBatch:
    types: list[str] = []
    ids: list[str | None] = []
    texts: list[str] = []
    for key, values in data.items():
        if values is None:
            continue
        for value in values if isinstance(values, list) else [values]:
            types.append(key)
            ids.append(value if isinstance(value, str) else None)
            texts.append(canonical_json(deletion_record(key, value)))
    return pa.RecordBatch.from_arrays(
        [pa.array(types, pa.string()), pa.array(ids, pa.string()), pa.array(texts, pa.large_string())],
        schema=DELETED_SCHEMA,
    )


def _still_implausible(modified: str | None, until: dt.datetime) -> bool:
    """Whether a record's ``meta.modified`` still lies after ``until`` (or cannot be read): its
    verdict would be the same, so an identical copy already in quarantine need not be judged
    again. A record whose date has become plausible is judged again (and loads)."""
    try:
        at = dt.datetime.fromisoformat(modified) if modified else None
    except ValueError:
        return True
    return at is None or at.tzinfo is None or at > until


def _without_quarantined(table: pa.Table | pa.RecordBatch, entity: str,
                         known: dict[str, frozenset[str]],
                         until: dt.datetime) -> tuple[pa.Table | pa.RecordBatch, int]:
    """``table`` (a page, or any rows) without the records a server serves again on every pull
    because they are modified after ``until`` (the watermark never passes them), when an identical copy is
    already in quarantine (``known``: id -> md5 of the kept record, see
    ``SS12000Extractor.pull_context``); and how many went."""
    if not known or table.num_rows == 0:
        return table, 0
    candidates = pc.fill_null(pc.is_in(table["id"], value_set=pa.array(list(known), pa.string())), False)
    if not pc.any(candidates).as_py():
        return table, 0
    keep = np.ones(table.num_rows, dtype=bool)
    ids, mods, records = table["id"], table["modified"], table["record"]
    for i in (int(i) for i in np.flatnonzero(candidates.to_numpy(zero_copy_only=False))):
        if not _still_implausible(mods[i].as_py(), until):
            continue
        text = records[i].as_py()
        kept = {scrub_raw_row(entity, text, reason) for reason in (None, "oversized_record")}
        digests = {hashlib.md5(k.encode("utf-8")).hexdigest() for k in kept if k is not None}  # noqa: S324
        if digests & known[ids[i].as_py()]:
            keep[i] = False
    return table.filter(pa.array(keep)), int((~keep).sum())


def latest_instant(values: pa.Array | pa.ChunkedArray, start: str | None = None,
                   until: str | None = None) -> str | None:
    """The text (as received) of the latest valid RFC 3339 instant among ``values`` and ``start``,
    not counting instants after ``until`` (a record modified in the future is quarantined; it
    must not move the watermark past the changes still to come)."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    table = pa.table({"m": pa.chunked_array([c.cast(pa.string()) for c in chunks], pa.string())})
    conn = database.connect()
    try:
        conn.register("_wm", table)
        return _latest_instant(conn, "select m from _wm", start, until)
    finally:
        conn.close()


def spooled_latest_instant(conn: duckdb.DuckDBPyConnection, path: Path, start: str | None = None,
                           until: str | None = None) -> str | None:
    """:func:`latest_instant` of the ``modified`` column of a spooled Parquet file, scanned by
    DuckDB on ``conn`` (:func:`samverkan.landing.spool_connection`)."""
    quoted = str(path).replace("'", "''")
    return _latest_instant(conn, f"select modified as m from read_parquet('{quoted}')", start, until)


def _latest_instant(conn: duckdb.DuckDBPyConnection, relation: str, start: str | None,
                    until: str | None) -> str | None:
    row = conn.execute(
        f"""
        select arg_max(m, ts) from (
            select m, try_cast(m as timestamptz) as ts
            from (select m from ({relation}) union all select cast(? as varchar) as m)
            where m is not null and regexp_full_match(m, '{RFC3339_RE}')
        ) where ts is not null and (? is null or ts <= cast(? as timestamptz))
        """, [start, until, until]
    ).fetchone()
    return row[0] if row else None


def end_of_local_day(day: dt.date) -> str:
    """The last instant of a Stockholm calendar day, as an inclusive RFC 3339 bound (UTC)."""
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=STOCKHOLM)
    return _rfc3339(next_midnight - dt.timedelta(microseconds=1))


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class SS12000Extractor:
    """The SS 12000 source for :func:`samverkan.extract.run_extract`."""

    source = SOURCE

    def __init__(
        self,
        config: SS12000Config,
        *,
        calendar_window: tuple[str, str] | None = ("1900-01-01T00:00:00Z", "2199-12-31T23:59:59Z"),
        client_options: dict[str, Any] | None = None,
        spool_options: dict[str, Any] | None = None,
    ) -> None:
        # The spec makes startTime.onOrAfter/onOrBefore required on /calendarEvents; a wide window
        # keeps strict servers happy while the modification watermark does the selecting.
        self.config = config
        self.calendar_window = calendar_window
        self.client_options = dict(client_options or {})
        # TableSpool's row_group_rows / row_group_bytes (how much of a pull is held before it is
        # written); the defaults suit every size.
        self.spool_options = dict(spool_options or {})
        auth_from_config(config)  # fail early on a configuration without credentials

    # pull -------------------------------------------------------------------------------------
    def pull_context(self, conn: duckdb.DuckDBPyConnection,
                     watermarks: dict[str, str]) -> dict[str, dict[str, frozenset[str]]]:
        """The records of this source in quarantine, as entity -> id -> md5 of the record kept
        there. A server serves a record again on every pull while its ``meta.modified`` lies
        after the watermark (a record dated in the future never moves the watermark); while it
        is still in the future, an identical copy already quarantined is skipped, not
        quarantined again (``_without_quarantined``)."""
        rows = conn.execute(
            """
            select entity, id, list(distinct kept) from (
                select entity, md5(raw_row) as kept,
                       case when json_valid(raw_row) then json_extract_string(raw_row, '$.id') end as id
                from load_meta.quarantine where source = ? and raw_row is not null
            ) where id is not null group by entity, id
            """, [SOURCE]).fetchall()
        known: dict[str, dict[str, frozenset[str]]] = {}
        for entity, rid, kept in rows:
            known.setdefault(entity, {})[rid] = frozenset(kept)
        return known

    def pull(self, state: SourceState) -> Pull:
        """Every change since the watermarks (up to the end of ``state.until``), each page
        written as it arrives into the entity's landing file in ``state.spool`` (see
        :meth:`_pull`)."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of short-lived dicts: collection passes would find nothing
        try:
            pull = self._pull(state)
        finally:
            if gc_was_enabled:
                gc.enable()
        log.info("ss12000 pull: %s", ", ".join(
            f"{e} {t.rows if isinstance(t, SpooledTable) else t.num_rows}"
            for e, t in pull.tables.items()))
        return pull

    def _pull(self, state: SourceState) -> Pull:
        """Page through every endpoint; a page is turned into landing rows, rid of the records
        already in quarantine (``_without_quarantined``) and appended to the entity's landing
        file in the spool directory (:class:`~samverkan.landing.TableSpool`) before the next
        page is asked for, so the pull holds at most a page and a row group, whatever its size.
        The watermark and the content checksum are then computed by DuckDB over the spooled
        file (an external sort within the spool's memory limit). Without a spool directory (a
        pull outside ``run_extract``) the same is done in memory."""
        tables: dict[str, pa.Table | pa.RecordBatchReader | SpooledTable] = {}
        watermarks: dict[str, tuple[str | None, str | None]] = {}
        checksums: dict[str, str] = {}
        pages: dict[str, int] = {}
        skipped: dict[str, int] = {}
        # Records modified after this are quarantined (the suites' "in the future"): they never
        # move the watermark, and an identical copy already in quarantine is not landed again.
        plausible_until = dt.datetime.now(dt.UTC) + PLAUSIBLE_FUTURE_MARGIN
        until = _rfc3339(plausible_until)
        with SS12000Client(self.config, **self.client_options) as client:
            for entity, endpoint in RECORD_ENDPOINTS.items():
                after = state.watermarks.get(entity)
                params: dict[str, str] = {}
                if after:
                    params["meta.modified.after"] = after
                if state.until is not None:
                    params["meta.modified.before"] = end_of_local_day(state.until)
                if endpoint == "calendarEvents" and self.calendar_window:
                    params["startTime.onOrAfter"], params["startTime.onOrBefore"] = self.calendar_window
                known = (state.context or {}).get(entity, {})
                skipped[entity] = 0
                last_progress = time.monotonic()
                with self._spool(state, entity, RECORD_SCHEMA) as spool:
                    for page in client.pages(endpoint, params, prefetch=True):
                        data = page.body["data"]
                        if not isinstance(data, list):
                            raise SS12000ResponseError(f"GET /{endpoint} page {page.number}: 'data' "
                                                       "is not a list")
                        batch, n_skipped = _without_quarantined(_record_batch(data), entity, known,
                                                                plausible_until)
                        spool.append(batch)
                        skipped[entity] += n_skipped
                        pages[entity] = page.number
                        if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                            last_progress = time.monotonic()
                            progress("ss12000 %s: %d pages, %s records so far", endpoint,
                                     page.number, f"{spool.rows:,}")
                        pause_point("ss12000_after_first_page")
                    table = tables[entity] = spool.finish()
                watermarks[entity] = (after, self._latest(table, after, until, state.spool)
                                      if spool.rows else after)
                checksums[entity] = self._checksum(table, state.spool)

            after = state.watermarks.get(DELETED_ENTITY)
            started = dt.datetime.now(dt.UTC)
            first_date: dt.datetime | None = None
            with self._spool(state, DELETED_ENTITY, DELETED_SCHEMA) as spool:
                for page in client.pages(DELETED_ENDPOINT, {"after": after} if after else {},
                                         prefetch=True):
                    if page.number == 1:
                        first_date = page.server_date
                    data = page.body["data"]
                    if data is None:
                        data = {}
                    if not isinstance(data, dict):
                        raise SS12000ResponseError(f"GET /{DELETED_ENDPOINT} page {page.number}: "
                                                   "'data' is not an object")
                    spool.append(_deleted_batch(data))
                    pages[DELETED_ENTITY] = page.number
                deleted = tables[DELETED_ENTITY] = spool.finish()
            # Deletions carry no timestamp: the next pull starts where this one did, by the
            # earlier of our clock and the server's (a repeated deletion is harmless, a missed
            # one is not).
            snapshot = min(started, first_date) if first_date else started
            watermarks[DELETED_ENTITY] = (after, _rfc3339(snapshot))
            checksums[DELETED_ENTITY] = self._checksum(deleted, state.spool)
            extra = {"base_url": client.base_url, "pages": pages, "requests": client.requests_made,
                     "retries": client.retries,
                     "skipped_already_quarantined": {e: n for e, n in skipped.items() if n}}
        if any(skipped.values()):
            log.info("ss12000: records served again and already in quarantine (same content) were "
                     "skipped: %s", ", ".join(f"{e} {n}" for e, n in skipped.items() if n))
        return Pull(tables=tables, watermarks=watermarks, content_checksums=checksums,
                    extra=extra)

    def _spool(self, state: SourceState, entity: str, schema: pa.Schema) -> TableSpool:
        return TableSpool(state.spool, entity, schema, **self.spool_options)

    @staticmethod
    def _latest(table: pa.Table | SpooledTable, after: str | None, until: str,
                spool: Path | None) -> str | None:
        if isinstance(table, pa.Table):
            return latest_instant(table["modified"], after, until)
        assert spool is not None
        with spool_connection(spool) as conn:
            return spooled_latest_instant(conn, table.path, after, until)

    @staticmethod
    def _checksum(table: pa.Table | SpooledTable, spool: Path | None) -> str:
        if isinstance(table, pa.Table):
            return records_checksum(table["record"])
        assert spool is not None
        with spool_connection(spool) as conn:
            return spooled_records_checksum(conn, table.path)

    # load -------------------------------------------------------------------------------------
    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        unknown = sorted(set(manifest.entities) - set(ENTITIES))
        if unknown:
            raise ValueError(f"batch {manifest.batch_id}: unknown ss12000 entities {unknown}")
        counts: dict[str, EntityCounts] = {}
        for entity in ENTITIES:
            if entity in manifest.entities:
                counts[entity] = _LOADERS[entity](conn, manifest, entity, str(manifest.entity_path(entity)))
        return counts


# --- which faults are row-level, which batch-level (the one place that says so) -------------
# A row-level fault quarantines the record (reason code, detail = the field) and the rest of the
# batch loads; the loader's checks below implement them (``_BASE_CHECKS``, ``_ENROLMENT_CHECKS``,
# the ``_load_*`` functions and ``_plausibility_checks``). A batch-level fault stops the whole
# batch: the client (an unreadable or hostile answer: SS12000Error), the extractor (``data`` of
# the wrong shape) or the Great Expectations suites ``expectations/ss12000.*.json`` (which still
# hold every check as a backstop; a row-level fault never reaches them).
EARLIEST_PLAUSIBLE_DATE = "1990-01-01"   # no SS 12000 event, change or report is older
EARLIEST_PLAUSIBLE_BIRTH_DATE = "1900-01-01"
PLAUSIBLE_FUTURE_MARGIN = dt.timedelta(days=1)  # the same margin as the suites' "in the future"
ORGANISATION_TYPES = ("Huvudman", "Verksamhetsområde", "Förvaltning", "Rektorsområde", "Skola",
                      "Skolenhet", "Varumärke", "Bolag", "Övrigt", "Stadsdel")
SEX_CODES = ("Man", "Kvinna", "Okänt")
SCHOOL_TYPES = ("FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "TR", "SP", "SAM", "GY", "GYS", "VUX",
                "VUXSFI", "VUXGR", "VUXGY", "VUXSARGR", "VUXSARTR", "VUXSARGY", "SFI", "SARVUX",
                "SARVUXGR", "SARVUXGY", "KU", "YH", "FHS", "STF", "KKU", "HS", "ABU", "AU")

ROW_FAULTS: dict[str, str] = {
    "oversized_record": f"the record's JSON is over {RECORD_BYTES_BOUND // 1024} KiB "
                        "(RECORD_BYTES_BOUND); only its id and meta are kept in quarantine",
    "invalid_json": "the record is not JSON",
    "not_an_object": "the record is not a JSON object",
    "missing_id": "no id, or an empty one",
    "missing_field": "a required field is absent or null",
    "wrong_type": "a field has the wrong JSON type",
    "bad_timestamp": "a timestamp is not RFC 3339 with an offset",
    "bad_date": "a date is not YYYY-MM-DD",
    "not_allowed": "a code outside its SS 12000 v2.1 set: organisationType, sex, "
                   "enrolments[].schoolType (schoolYear outside 0-10)",
    "implausible_date": f"meta.modified, reportedTimestamp, startTime or an enrolment's startDate "
                        f"before {EARLIEST_PLAUSIBLE_DATE}, birthDate before "
                        f"{EARLIEST_PLAUSIBLE_BIRTH_DATE}; meta.modified, reportedTimestamp or "
                        "birthDate after the extraction (plus a day)",
}
BATCH_FAULTS: dict[str, str] = {
    "unreadable_page": "an answer that is not JSON, not an object with 'data', or 'data' of the "
                       "wrong shape (SS12000ResponseError)",
    "hostile_server": "paging without end, an answer past the deadline, a page over the limit or "
                      "the body cap, a redirect to another host (SS12000Error)",
    "missing_column": "a loaded table lacks a column a suite reads (the suites)",
    "empty_feed": "a table with no rows is not checked; a source that serves nothing loads nothing",
    "repeated_id": "an id twice in one batch: paging is broken (expect_column_values_to_be_unique)",
    "unknown_security_marking": "securityMarking outside Ingen, Sekretessmarkering, Skyddad "
                                "folkbokföring: quarantining the person would keep an older, "
                                "unprotected version in use, so the batch stops",
    "implausible_minutes": "a minutes field outside 0-600 or absence over 600: the source or the "
                           "mapping changed (every record would be affected)",
    "lesson_order": "endTime before startTime or a lesson over 600 minutes; an enrolment ending "
                    "before it starts; a Skolenhet without schoolUnitCode",
}


def _sql_list(values: Iterable[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _plausible_until(manifest: BatchManifest) -> str:
    try:
        at = dt.datetime.fromisoformat(manifest.extracted_at)
    except (TypeError, ValueError):
        at = dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return _rfc3339(at + PLAUSIBLE_FUTURE_MARGIN)


def _ts_outside(name: str, until: str | None) -> str:
    ts = f"try_cast({_v(name)} as timestamptz)"
    late = f" or {ts} > timestamptz '{until}'" if until else ""
    return f"({ts} < timestamptz '{EARLIEST_PLAUSIBLE_DATE}T00:00:00Z'{late})"


def _plausibility_checks(entity: str, until: str) -> list[_Check]:
    """The row-level value checks of ``entity`` (after its type checks): codes outside their
    set and implausible dates (ROW_FAULTS)."""
    modified = [_Check(_ts_outside("modified", until), "implausible_date", "meta.modified")]
    if entity == "organisations":
        return [*modified, _Check(f"{_v('type')} not in {_sql_list(ORGANISATION_TYPES)}",
                                  "not_allowed", "organisationType")]
    if entity == "persons":
        birth = f"try_cast({_v('birth_date')} as date)"
        return [*modified,
                _Check(f"{_present('sex')} and {_v('sex')} not in {_sql_list(SEX_CODES)}",
                       "not_allowed", "sex"),
                _Check(f"{_present('birth_date')} and ({birth} < date '{EARLIEST_PLAUSIBLE_BIRTH_DATE}' "
                       f"or {birth} > cast(timestamptz '{until}' as date))", "implausible_date",
                       "birthDate")]
    if entity == "calendar_events":
        return [*modified, _Check(_ts_outside("start", None), "implausible_date", "startTime")]
    if entity == "attendances":
        return [*modified, _Check(f"{_present('reported_at')} and {_ts_outside('reported_at', until)}",
                                  "implausible_date", "reportedTimestamp")]
    if entity == "enrolments":
        return [_Check(f"{_v('school_type')} not in {_sql_list(SCHOOL_TYPES)}", "not_allowed",
                       "enrolments[].schoolType"),
                _Check(f"{_present('school_year')} and try_cast({_v('school_year')} as integer) "
                       "not between 0 and 10", "not_allowed", "enrolments[].schoolYear"),
                _Check(f"try_cast({_v('start')} as date) < date '{EARLIEST_PLAUSIBLE_DATE}'",
                       "implausible_date", "enrolments[].startDate")]
    return []


# --- load SQL --------------------------------------------------------------------------------
# A landed record is parsed once (from_json into a struct of its top-level values as JSON);
# each field's JSON type and text are read off the value's minified text, then an ordered
# list of checks gives each row its first failure as (reason, detail). Rows without a failure
# are inserted, the others quarantined (names and contact data removed).

@dataclass(frozen=True)
class _Check:
    bad: str      # SQL condition that is true when the row fails
    reason: str
    detail: str


def _t(name: str) -> str:
    return f"t_{name}"


def _v(name: str) -> str:
    return f"v_{name}"


def _present(name: str) -> str:
    return f"({_t(name)} is not null and {_t(name)} <> 'NULL')"


def _ts_ok(name: str) -> str:
    return (f"(regexp_full_match({_v(name)}, '{RFC3339_RE}') "
            f"and try_cast({_v(name)} as timestamptz) is not null)")


def _date_ok(name: str) -> str:
    return f"(regexp_full_match({_v(name)}, '{DATE_RE}') and try_cast({_v(name)} as date) is not null)"


def _int_ok(name: str) -> str:
    return f"({_t(name)} in ('BIGINT', 'UBIGINT') and try_cast({_v(name)} as integer) is not null)"


def _required(name: str, path: str, json_type: str) -> list[_Check]:
    return [_Check(f"not {_present(name)}", "missing_field", path),
            _Check(f"{_t(name)} <> '{json_type}'", "wrong_type", path)]


def _optional(name: str, path: str, json_type: str) -> list[_Check]:
    return [_Check(f"{_present(name)} and {_t(name)} <> '{json_type}'", "wrong_type", path)]


def _required_ts(name: str, path: str) -> list[_Check]:
    return [*_required(name, path, "VARCHAR"), _Check(f"not {_ts_ok(name)}", "bad_timestamp", path)]


def _optional_ts(name: str, path: str) -> list[_Check]:
    return [*_optional(name, path, "VARCHAR"),
            _Check(f"{_present(name)} and not {_ts_ok(name)}", "bad_timestamp", path)]


def _optional_date(name: str, path: str) -> list[_Check]:
    return [*_optional(name, path, "VARCHAR"),
            _Check(f"{_present(name)} and not {_date_ok(name)}", "bad_date", path)]


def _optional_int(name: str, path: str) -> list[_Check]:
    return [_Check(f"{_present(name)} and not {_int_ok(name)}", "wrong_type", path)]


def _required_ref(name: str, path: str) -> list[_Check]:
    """An object reference {id: ...} that must be there."""
    return [*_required(name, path, "OBJECT"), *_required(f"{name}_id", f"{path}.id", "VARCHAR"),
            _Check(f"{_v(name + '_id')} = ''", "missing_field", f"{path}.id")]


def _optional_ref(name: str, path: str) -> list[_Check]:
    return [*_optional(name, path, "OBJECT"),
            _Check(f"{_present(name)} and not {_present(name + '_id')}", "missing_field", f"{path}.id"),
            *_optional(f"{name}_id", f"{path}.id", "VARCHAR")]


_BASE_FIELDS = [("id", "$.id"), ("meta", "$.meta"), ("modified", "$.meta.modified")]
_BASE_CHECKS = [
    _Check(f"record_bytes > {RECORD_BYTES_BOUND}", "oversized_record",
           f"record (over {RECORD_BYTES_BOUND} bytes)"),
    _Check("not valid", "invalid_json", "record"),
    _Check("top is distinct from 'OBJECT'", "not_an_object", "record"),
    _Check(f"not {_present('id')}", "missing_id", "id"),
    _Check(f"{_t('id')} <> 'VARCHAR'", "wrong_type", "id"),
    _Check(f"{_v('id')} = ''", "missing_id", "id"),
    *_required("meta", "meta", "OBJECT"),
    *_required_ts("modified", "meta.modified"),
]


def _field_expr(path: str) -> tuple[str, str]:
    """(top-level key, SQL expression of the JSON value at ``path``) over the parsed struct ``s``."""
    parts = path.removeprefix("$.").split(".", 1)
    top = parts[0]
    expr = f's."{top}"'
    if len(parts) == 2:
        expr = f"json_extract({expr}, '$.{parts[1]}')"
    return top, expr


def _json_type_sql(column: str) -> str:
    """json_type() of a JSON value read off its (minified) text: no second parse."""
    r = f"cast({column} as varchar)"
    first = f"left({r}, 1)"
    return (f"(case when {column} is null then null when {first} = '\"' then 'VARCHAR' "
            f"when {first} = '{{' then 'OBJECT' when {first} = '[' then 'ARRAY' "
            f"when {first} in ('t', 'f') then 'BOOLEAN' when {first} = 'n' then 'NULL' "
            f"when contains({r}, '.') or contains({r}, 'e') or contains({r}, 'E') then 'DOUBLE' "
            f"else 'BIGINT' end)")


def _json_text_sql(column: str) -> str:
    """json_extract_string(value, '$'): a string's content, other values' JSON text."""
    r = f"cast({column} as varchar)"
    return (f"(case when left({r}, 1) <> '\"' then {r} "
            f"when contains({r}, '\\') then json_extract_string({column}, '$') "
            f"else substr({r}, 2, length({r}) - 2) end)")


def _stage_sql(table: str, source_sql: str, fields: list[tuple[str, str]], checks: list[_Check],
               keep_json: tuple[str, ...] = ()) -> list[str]:
    """Statements that build ``table``: the source's columns except ``record``, then per field
    ``v_<name>`` (value as text; for ``keep_json`` fields also ``j_<name>`` and ``t_<name>``, the
    JSON value and its type), ``reason`` and ``detail`` (null when the row passes). The record
    is parsed once, by ``from_json`` into a struct of top-level JSON values; nested paths are
    read from those small values."""
    exprs = [(name, *_field_expr(path)) for name, path in fields]
    tops = list(dict.fromkeys(top for _, top, _ in exprs))
    struct = "{" + ", ".join(f'"{top}": "JSON"' for top in tops) + "}"
    all_null = " and ".join(f's."{top}" is null' for top in tops)
    json_cols = ", ".join(f"{expr} as j_{name}" for name, _, expr in exprs)
    typed = ", ".join(f"{_json_type_sql(f'j_{name}')} as {_t(name)}, "
                      f"{_json_text_sql(f'j_{name}')} as {_v(name)}" for name, _, _ in exprs)
    dropped = ", ".join(f"j_{name}" for name, _, _ in exprs if name not in keep_json)
    # only the values (and the types of kept JSON values) are stored: the table stays narrow
    not_kept = ", ".join(["valid", "top", *(_t(name) for name, _, _ in exprs if name not in keep_json)])
    reason = " ".join(f"when {c.bad} then '{c.reason}'" for c in checks)
    detail = " ".join(f"when {c.bad} then '{c.detail}'" for c in checks)
    return [f"""
        create or replace temp table {table} as
        select * exclude ({not_kept}), case {reason} end as reason, case {detail} end as detail
        from (
            select * exclude ({dropped}), {typed}
            from (
                select * exclude (s, record), s is not null as valid,
                       case when s is null then null
                            when {all_null} then json_type(record)
                            else 'OBJECT' end as top,
                       {json_cols}
                from (select *, try(from_json(record, '{struct}')) as s from ({source_sql}))
            )
        )
        """]


def _run(conn: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def _source(path: str, columns: str = "record") -> str:
    """The landed records of ``path`` with their position (``row_number``) and the size of the
    record's JSON in bytes (``record_bytes``, for the per-record limit)."""
    quoted = path.replace("'", "''")
    return (f"select file_row_number + 1 as row_number, strlen(record) as record_bytes, {columns} "
            f"from read_parquet('{quoted}', file_row_number = true)")


def _scrub(value: Any, top: bool, keep_display_name: bool) -> Any:
    if isinstance(value, dict):
        return {
            k: _scrub(v, False, keep_display_name)
            for k, v in value.items()
            if k not in PERSONAL_KEYS or (k == "displayName" and top and keep_display_name)
        }
    if isinstance(value, list):
        return [_scrub(v, False, keep_display_name) for v in value]
    return value


def scrub_raw_row(entity: str, text: str | None, reason: str | None = None) -> str | None:
    """A rejected record as kept in quarantine: without names, contact data or addresses; of an
    oversized record only its ``id`` and ``meta`` (the rest is kept in landing)."""
    if text is None:
        return None
    if reason == "oversized_record":
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        return canonical_json({k: value[k] for k in ("id", "meta") if k in value})
    try:
        value = json.loads(text)
    except ValueError:
        return None if entity == "persons" else text
    if entity == "persons" and not isinstance(value, dict):
        return None
    return canonical_json(_scrub(value, True, keep_display_name=entity == "organisations"))


# Rejected records are scrubbed (in Python) and quarantined this many at a time, so a batch
# whose every record is rejected is not held whole.
QUARANTINE_CHUNK_ROWS = 10_000


def _finish(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str, stage: str,
            insert_sql: str, raw_sql: str) -> EntityCounts:
    """Insert the passing rows, quarantine the others (with their scrubbed record from
    ``raw_sql``: row_number, record) and count."""
    received = conn.execute(f"select count(*) from {stage}").fetchone()[0]
    loaded = conn.execute(insert_sql, [manifest.batch_id]).fetchone()[0]
    quarantined = 0
    failing = conn.execute(f"select count(*) from {stage} where reason is not null").fetchone()[0]
    if failing:
        rejected_table = f"{stage}_rejected"
        conn.execute(f"""
            create or replace temp table {rejected_table} as
            select q.row_number, q.reason, q.detail, r.record as raw_row
            from {stage} q left join ({raw_sql}) r using (row_number)
            where q.reason is not null""")
        last = 0
        while True:
            rejected = conn.execute(
                f"select * from {rejected_table} where row_number > ? order by row_number limit ?",
                [last, QUARANTINE_CHUNK_ROWS]).to_arrow_table()
            if rejected.num_rows == 0:
                break
            last = rejected.column("row_number")[-1].as_py()
            raw = [scrub_raw_row(entity, t, r)
                   for t, r in zip(rejected.column("raw_row").to_pylist(),
                                   rejected.column("reason").to_pylist(), strict=True)]
            rejected = rejected.set_column(3, "raw_row", pa.array(raw, pa.string()))
            quarantined += quarantine(conn, manifest, entity, rejected.select(QUARANTINE_SCHEMA.names))
        conn.execute(f"drop table {rejected_table}")
        log.warning("batch %s, %s: %d records quarantined", manifest.batch_id, entity, quarantined)
    conn.execute(f"drop table if exists {stage}")
    return EntityCounts(received=received, loaded=loaded, quarantined=quarantined)


def _insert(table: str, columns: str, select: str, stage: str) -> str:
    return f"insert into {table} ({columns}) select {select} from {stage} where reason is null"


def _load_organisations(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
                        path: str) -> EntityCounts:
    fields = [*_BASE_FIELDS, ("display_name", "$.displayName"), ("type", "$.organisationType"),
              ("number", "$.organisationNumber"), ("unit_code", "$.schoolUnitCode"),
              ("municipality", "$.municipalityCode"), ("school_types", "$.schoolTypes"),
              ("parent", "$.parentOrganisation"), ("parent_id", "$.parentOrganisation.id")]
    checks = [*_BASE_CHECKS,
              *_optional("display_name", "displayName", "VARCHAR"),
              *_required("type", "organisationType", "VARCHAR"),
              *_optional("number", "organisationNumber", "VARCHAR"),
              *_optional("unit_code", "schoolUnitCode", "VARCHAR"),
              *_optional("municipality", "municipalityCode", "VARCHAR"),
              *_optional("school_types", "schoolTypes", "ARRAY"),
              _Check(f"{_present('school_types')} and not coalesce(list_bool_and(list_transform("
                     "json_type(j_school_types, '$[*]'), x -> x = 'VARCHAR')), true)",
                     "wrong_type", "schoolTypes[]"),
              *_optional_ref("parent", "parentOrganisation"),
              *_plausibility_checks(entity, _plausible_until(manifest))]
    stage = "_ss_organisations"
    _run(conn, _stage_sql(stage, _source(path), fields, checks, keep_json=("school_types",)))
    insert = _insert(
        "raw_ss12000.organisations",
        "batch_id, id, display_name, organisation_type, organisation_number, school_unit_code, "
        "municipality_code, school_types, parent_organisation_id, modified_at",
        f"""$1, v_id, v_display_name, v_type, v_number, v_unit_code, v_municipality,
            case when {_present('school_types')} then json_extract_string(j_school_types, '$[*]') end,
            v_parent_id, try_cast(v_modified as timestamptz)""",
        stage,
    )
    return _finish(conn, manifest, entity, stage, insert, _source(path))


_ENROLMENT_FIELDS = [("at", "$.enroledAt"), ("at_id", "$.enroledAt.id"), ("school_type", "$.schoolType"),
                     ("school_year", "$.schoolYear"), ("start", "$.startDate"), ("end", "$.endDate")]
_ENROLMENT_CHECKS = [
    _Check("top is distinct from 'OBJECT'", "wrong_type", "enrolments[]"),
    *_required_ref("at", "enrolments[].enroledAt"),
    *_required("school_type", "enrolments[].schoolType", "VARCHAR"),
    *_optional_int("school_year", "enrolments[].schoolYear"),
    *_required("start", "enrolments[].startDate", "VARCHAR"),
    _Check(f"not {_date_ok('start')}", "bad_date", "enrolments[].startDate"),
    *_optional_date("end", "enrolments[].endDate"),
]


def _load_persons(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
                  path: str) -> EntityCounts:
    fields = [*_BASE_FIELDS, ("civic", "$.civicNo"), ("civic_no", "$.civicNo.value"),
              ("birth_date", "$.birthDate"), ("sex", "$.sex"), ("marking", "$.securityMarking"),
              ("enrolments", "$.enrolments")]
    checks = [*_BASE_CHECKS,
              *_optional("civic", "civicNo", "OBJECT"),
              *_optional("civic_no", "civicNo.value", "VARCHAR"),
              *_optional_date("birth_date", "birthDate"),
              *_optional("sex", "sex", "VARCHAR"),
              *_optional("marking", "securityMarking", "VARCHAR"),
              *_optional("enrolments", "enrolments", "ARRAY"),
              *_plausibility_checks(entity, _plausible_until(manifest))]
    person_stage = "_ss_persons_pre"
    _run(conn, _stage_sql(person_stage, _source(path), fields, checks, keep_json=("enrolments",)))
    # Enrolments: one row per array element of persons that passed their own checks.
    enrol_stage = "_ss_enrolments"
    _run(conn, _stage_sql(
        enrol_stage,
        f"""select row_number, person_modified, person_id, unnest(elements) as record from (
                select p.row_number, p.v_modified as person_modified, p.v_id as person_id,
                       from_json(p.j_enrolments, '["JSON"]') as elements
                from {person_stage} p
                where p.reason is null and {_present('enrolments')})""",
        _ENROLMENT_FIELDS, [*_ENROLMENT_CHECKS, *_plausibility_checks("enrolments", "")],
    ))
    stage = "_ss_persons"
    conn.execute(f"""
        create or replace temp table {stage} as
        select p.* exclude (reason, detail, j_enrolments),
               coalesce(p.reason, e.reason) as reason, coalesce(p.detail, e.detail) as detail
        from {person_stage} p
        left join (
            select row_number, min_by(reason, reason) as reason, min_by(detail, reason) as detail
            from {enrol_stage} where reason is not null group by row_number
        ) e using (row_number)
    """)
    conn.execute(f"drop table {person_stage}")
    conn.execute(f"""
        insert into raw_ss12000.enrolments
            (batch_id, person_id, school_unit_id, school_type, school_year, start_date, end_date,
             person_modified_at)
        select $1, e.person_id, e.v_at_id, e.v_school_type, try_cast(e.v_school_year as integer),
               try_cast(e.v_start as date), try_cast(e.v_end as date),
               try_cast(e.person_modified as timestamptz)
        from {enrol_stage} e join {stage} p using (row_number)
        where p.reason is null
    """, [manifest.batch_id])
    conn.execute(f"drop table {enrol_stage}")
    insert = _insert(
        "raw_ss12000.persons",
        "batch_id, id, civic_no, birth_date, sex, security_marking, modified_at",
        "$1, v_id, v_civic_no, try_cast(v_birth_date as date), v_sex, v_marking, "
        "try_cast(v_modified as timestamptz)",
        stage,
    )
    return _finish(conn, manifest, entity, stage, insert, _source(path))


def _load_calendar_events(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
                          path: str) -> EntityCounts:
    fields = [*_BASE_FIELDS, ("activity", "$.activity"), ("activity_id", "$.activity.id"),
              ("start", "$.startTime"), ("end", "$.endTime")]
    checks = [*_BASE_CHECKS, *_optional_ref("activity", "activity"),
              *_required_ts("start", "startTime"), *_required_ts("end", "endTime"),
              *_plausibility_checks(entity, _plausible_until(manifest))]
    stage = "_ss_calendar_events"
    _run(conn, _stage_sql(stage, _source(path), fields, checks))
    insert = _insert(
        "raw_ss12000.calendar_events",
        "batch_id, id, activity_id, start_time, end_time, modified_at",
        "$1, v_id, v_activity_id, try_cast(v_start as timestamptz), try_cast(v_end as timestamptz), "
        "try_cast(v_modified as timestamptz)",
        stage,
    )
    return _finish(conn, manifest, entity, stage, insert, _source(path))


_MINUTES = (("attendance", "attendanceMinutes"), ("valid", "validAbsenceMinutes"),
            ("invalid", "invalidAbsenceMinutes"), ("other", "otherAttendanceMinutes"))


def _load_attendances(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
                      path: str) -> EntityCounts:
    fields = [*_BASE_FIELDS, ("event", "$.calendarEvent"), ("event_id", "$.calendarEvent.id"),
              ("student", "$.student"), ("student_id", "$.student.id"), ("reported", "$.isReported"),
              *((name, f"$.{key}") for name, key in _MINUTES),
              ("reported_at", "$.reportedTimestamp")]
    checks = [*_BASE_CHECKS,
              *_required_ref("event", "calendarEvent"),
              *_required_ref("student", "student"),
              *_required("reported", "isReported", "BOOLEAN"),
              *(c for name, key in _MINUTES for c in _optional_int(name, key)),
              *_optional_ts("reported_at", "reportedTimestamp"),
              *_plausibility_checks(entity, _plausible_until(manifest))]
    stage = "_ss_attendances"
    _run(conn, _stage_sql(stage, _source(path), fields, checks))
    # Negative minutes are loaded as they are: the data-quality suite reports them.
    insert = _insert(
        "raw_ss12000.attendances",
        "batch_id, id, calendar_event_id, student_id, is_reported, attendance_minutes, "
        "valid_absence_minutes, invalid_absence_minutes, other_attendance_minutes, "
        "reported_timestamp, modified_at",
        "$1, v_id, v_event_id, v_student_id, v_reported = 'true', "
        + ", ".join(f"try_cast({_v(name)} as integer)" for name, _ in _MINUTES)
        + ", try_cast(v_reported_at as timestamptz), try_cast(v_modified as timestamptz)",
        stage,
    )
    return _finish(conn, manifest, entity, stage, insert, _source(path))


def _load_deleted_entities(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
                           path: str) -> EntityCounts:
    fields = [("entity", "$.entity"), ("id", "$.id")]
    checks = [
        _Check("not valid", "invalid_json", "record"),
        _Check("top is distinct from 'OBJECT'", "not_an_object", "record"),
        *_required("entity", "entity", "VARCHAR"),
        _Check(f"not {_present('id')}", "missing_id", "id"),
        _Check(f"{_t('id')} <> 'VARCHAR'", "wrong_type", "id"),
        _Check(f"{_v('id')} = ''", "missing_id", "id"),
    ]
    stage = "_ss_deleted_entities"
    _run(conn, _stage_sql(stage, _source(path), fields, checks))
    quirks = " ".join(f"when '{k}' then '{v}'" for k, v in DELETED_KEY_QUIRKS.items())
    insert = _insert(
        "raw_ss12000.deleted_entities",
        "batch_id, entity_type, id",
        f"$1, case v_entity {quirks} else v_entity end, v_id",
        stage,
    )
    return _finish(conn, manifest, entity, stage, insert, _source(path))


_LOADERS: dict[str, Callable[[duckdb.DuckDBPyConnection, BatchManifest, str, str], EntityCounts]] = {
    "organisations": _load_organisations,
    "persons": _load_persons,
    "calendar_events": _load_calendar_events,
    "attendances": _load_attendances,
    "deleted_entities": _load_deleted_entities,
}
