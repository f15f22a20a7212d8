"""SS 12000 against hostile servers: endless paging, trickling answers, oversized pages,
redirects to another host. Each server is a real ``http.server`` on a loopback address.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import resource
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Handler, http_server

from samverkan.config import SS12000Config
from samverkan.extract import SourceState
from samverkan.sources.failures import failure_cause, is_transient
from samverkan.sources.ss12000 import (
    SS12000Client,
    SS12000DeadlineError,
    SS12000Extractor,
    SS12000RedirectError,
    SS12000ResponseError,
)

TOKEN = "hostile-token-7d1e"  # noqa: S105 - a test credential
PERSONNUMMER = "201301012397"

def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/v2.1"


def send_json(handler: BaseHTTPRequestHandler, doc: Any, status: int = 200) -> None:
    body = json.dumps(doc).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def config(server: ThreadingHTTPServer, **kwargs: Any) -> SS12000Config:
    values = {"base_url": base_url(server), "token": TOKEN, "page_size": 5, "timeout_seconds": 2.0,
              "deadline_minutes": 5 / 60, **kwargs}
    return SS12000Config(**values)


def pull_fails(cfg: SS12000Config, **client_options: Any) -> tuple[BaseException, float]:
    extractor = SS12000Extractor(cfg, client_options={"backoff_seconds": 0.01, **client_options})
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: PT011 - the class is asserted by each test
        extractor.pull(SourceState({}))
    elapsed = time.monotonic() - started
    message = str(info.value)
    print(f"\n{type(info.value).__name__} after {elapsed:.2f} s: {message}")
    assert PERSONNUMMER not in message and TOKEN not in message
    assert "Traceback" not in failure_cause(info.value)
    return info.value, elapsed


def record(n: int) -> dict[str, Any]:
    return {"id": f"org-{n}", "meta": {"created": "2024-01-01T00:00:00Z",
                                        "modified": "2024-01-01T00:00:00Z"},
            "displayName": f"Skola {n}", "organisationType": "Skolenhet"}


# --- paging without end ---------------------------------------------------------------------

def test_endless_empty_pages_with_fresh_tokens_end_with_a_clear_error():
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.server.requests += 1  # type: ignore[attr-defined]
        send_json(h, {"data": [], "pageToken": uuid.uuid4().hex})

    with http_server(handle) as server:
        error, elapsed = pull_fails(config(server))
        requests_made = server.requests  # type: ignore[attr-defined]
    assert isinstance(error, SS12000ResponseError) and not is_transient(error)
    assert "50 pages in a row without a record" in str(error)
    assert "GET /organisations page 50" in str(error)
    assert requests_made == 50
    assert elapsed < 5 + 2  # within the deadline (and its last read)


def test_endless_pages_with_records_end_by_the_deadline():
    counter = itertools.count()

    def handle(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.05)
        send_json(h, {"data": [record(next(counter))], "pageToken": uuid.uuid4().hex})

    with http_server(handle) as server:
        error, elapsed = pull_fails(config(server, deadline_minutes=3 / 60))
    assert isinstance(error, SS12000DeadlineError) and not is_transient(error)
    assert "deadline of 3 s ([ss12000] deadline_minutes)" in str(error)
    assert "GET /organisations page" in str(error)
    assert elapsed < 3 + 2


def test_more_pages_than_the_data_could_need_end_with_a_clear_error():
    counter = itertools.count()

    def handle(h: BaseHTTPRequestHandler) -> None:
        send_json(h, {"data": [record(next(counter))], "pageToken": uuid.uuid4().hex})

    with http_server(handle) as server:
        client = SS12000Client(config(server, max_records=20, deadline_minutes=60))
        assert client.max_pages == 5  # 20 records / 5 a page + the last one
        with client, pytest.raises(SS12000ResponseError,
                                   match=r"page 6: more than 5 pages, more than 20 records") as info:
            for _ in client.pages("organisations"):
                pass
    print(f"\n{info.value}")


# --- trickling and oversized answers --------------------------------------------------------

def test_a_trickling_answer_ends_by_the_deadline():
    def handle(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"data": [record(1)]}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:  # one byte a second: each read is well within timeout_seconds
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(1.0)

    with http_server(handle) as server:
        error, elapsed = pull_fails(config(server, timeout_seconds=2.0))
    assert isinstance(error, SS12000DeadlineError) and not is_transient(error)
    message = str(error)
    assert "GET /organisations page 1: the answer was still arriving" in message
    assert "deadline of 5 s" in message
    assert elapsed < 5 + 1.5


def _trickle(send: Any, data: Iterator[bytes] | bytes, seconds: float = 60.0) -> None:
    """Send ``data`` a byte every 0.2 s (each read well within timeout_seconds), for at most
    ``seconds`` or until the client hangs up."""
    ends = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        for byte in data:
            if time.monotonic() > ends:
                return
            send(bytes([byte]) if isinstance(byte, int) else byte)
            time.sleep(0.2)


def _endless_headers() -> Iterator[bytes]:
    yield from (bytes([b]) for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ")
    while True:
        yield b"a"


def test_trickling_headers_end_by_the_deadline():
    """The status line and headers one byte at a time: no socket read times out, only the
    deadline can end the request."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.server.requests += 1  # type: ignore[attr-defined]
        _trickle(lambda b: (h.wfile.write(b), h.wfile.flush()), _endless_headers())

    with http_server(handle) as server:
        error, elapsed = pull_fails(config(server, timeout_seconds=1.0, deadline_minutes=2 / 60))
        requests_made = server.requests  # type: ignore[attr-defined]
    assert isinstance(error, SS12000DeadlineError) and not is_transient(error)
    message = str(error)
    assert ("GET /organisations page 1: the status line and headers of the answer had not all "
            "arrived; the pull did not finish within its deadline of 2 s") in message
    assert requests_made == 1  # ended, not retried
    assert elapsed < 2 + 1.5


@contextlib.contextmanager
def _trickling_tls_server() -> Iterator[int]:
    """A TCP server on loopback that answers a TLS ClientHello with the header of a 16 KiB
    handshake record and then its body a byte at a time: the client's handshake never fails a
    read, and never completes."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the ClientHello
            _trickle(conn.sendall, itertools.chain([b"\x16\x03\x03\x40\x00"],
                                                   itertools.repeat(b"\x00")))

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_a_trickling_tls_handshake_ends_by_the_deadline():
    """Connecting is bounded by the connect time-out, shortened to what is left of the deadline
    (CPython bounds a whole TLS handshake by the socket's time-out)."""
    with _trickling_tls_server() as port:
        cfg = SS12000Config(base_url=f"https://127.0.0.1:{port}/v2.1", token=TOKEN, page_size=5,
                            timeout_seconds=30.0, deadline_minutes=2 / 60)
        error, elapsed = pull_fails(cfg)
    assert isinstance(error, SS12000DeadlineError) and not is_transient(error)
    assert "GET /organisations page 1: the status line and headers of the answer had not all " \
           "arrived" in str(error)
    assert elapsed < 2 + 1.5


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_an_oversized_page_is_refused_before_it_is_held():
    sent = {"bytes": 0}
    chunk = (",".join(json.dumps(record(n)) for n in range(1000)) + ",").encode()  # ~150 KB

    def handle(h: BaseHTTPRequestHandler) -> None:
        # no Content-Length: the body ends when the connection closes, 400 MB later
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b'{"data": [')
        while sent["bytes"] < 400_000_000:
            h.wfile.write(chunk)
            sent["bytes"] += len(chunk)
        h.wfile.write(json.dumps(record(0)).encode() + b"]}")

    before = _peak_rss_bytes()
    with http_server(handle) as server:
        error, elapsed = pull_fails(config(server, page_size=5, deadline_minutes=1))
    grew = _peak_rss_bytes() - before
    print(f"peak RSS grew by {grew / 2**20:.1f} MiB; the server wrote {sent['bytes'] / 2**20:.1f} MiB")
    assert isinstance(error, SS12000ResponseError) and not is_transient(error)
    assert "the answer is larger than a page of 5 records may take (1,376,256 bytes)" in str(error)
    assert grew < 100 * 2**20
    assert sent["bytes"] < 400_000_000  # the client hung up long before the end


def test_an_announced_oversized_page_is_refused_unread():
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(6_800_000_000))
        h.end_headers()
        h.wfile.write(b'{"data": [')

    with http_server(handle) as server:
        error, _ = pull_fails(config(server))
    assert isinstance(error, SS12000ResponseError)
    assert "announces 6,800,000,000 bytes" in str(error) and "refused without reading it" in str(error)


def test_a_page_with_more_records_than_the_limit_is_refused():
    def handle(h: BaseHTTPRequestHandler) -> None:
        send_json(h, {"data": [record(n) for n in range(12)]})

    with http_server(handle) as server:
        error, _ = pull_fails(config(server, page_size=5))
    assert isinstance(error, SS12000ResponseError)
    assert "page 1: the page holds 12 records, more than the limit of 5 asked for" in str(error)


# --- redirects ------------------------------------------------------------------------------

def _other_loopback(handle: Handler) -> contextlib.AbstractContextManager[ThreadingHTTPServer]:
    try:
        return http_server(handle, host="127.0.0.2")
    except OSError:  # pragma: no cover - a loopback of only 127.0.0.1
        pytest.skip("127.0.0.2 is not available")


def test_a_redirect_to_another_host_is_refused_naming_both():
    def elsewhere(h: BaseHTTPRequestHandler) -> None:
        h.server.requests += 1  # type: ignore[attr-defined]
        send_json(h, {"data": [record(1)]})

    with _other_loopback(elsewhere) as other:
        def handle(h: BaseHTTPRequestHandler) -> None:
            h.send_response(301)
            h.send_header("Location", base_url(other) + h.path.removeprefix("/v2.1"))
            h.send_header("Content-Length", "0")
            h.end_headers()

        with http_server(handle) as server:
            error, _ = pull_fails(config(server))
            here = f"http://127.0.0.1:{server.server_address[1]}"
        there = f"http://127.0.0.2:{other.server_address[1]}"
        assert other.requests == 0  # type: ignore[attr-defined]
    assert isinstance(error, SS12000RedirectError) and not is_transient(error)
    assert f"HTTP 301 redirects from {here} to another server, {there}" in str(error)


def test_a_redirect_within_the_same_server_is_followed():
    def handle(h: BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/v2.1/"):
            h.send_response(308)
            h.send_header("Location", "/moved/" + h.path.removeprefix("/v2.1/"))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        assert h.headers["Authorization"] == f"Bearer {TOKEN}"
        endpoint = h.path.removeprefix("/moved/").split("?")[0]
        send_json(h, {"data": {} if endpoint == "deletedEntities" else [record(1)]})

    with http_server(handle) as server:
        pull = SS12000Extractor(config(server)).pull(SourceState({}))
    assert pull.tables["organisations"].num_rows == 1


def test_the_token_request_is_not_redirected_to_another_host():
    def elsewhere(h: BaseHTTPRequestHandler) -> None:
        h.server.requests += 1  # type: ignore[attr-defined]
        send_json(h, {"access_token": "stolen", "token_type": "bearer"})

    with _other_loopback(elsewhere) as other:
        def handle(h: BaseHTTPRequestHandler) -> None:
            h.send_response(307)
            h.send_header("Location", f"http://127.0.0.2:{other.server_address[1]}/token")
            h.send_header("Content-Length", "0")
            h.end_headers()

        with http_server(handle) as server:
            port = server.server_address[1]
            cfg = SS12000Config(base_url=base_url(server), token_url=f"http://127.0.0.1:{port}/token",
                                client_id="samverkan", client_secret="s3cret-value",  # noqa: S106
                                timeout_seconds=2.0, deadline_minutes=5 / 60)
            error, _ = pull_fails(cfg)
        assert other.requests == 0  # type: ignore[attr-defined]
    assert isinstance(error, SS12000RedirectError)
    assert "token endpoint" in str(error) and "s3cret-value" not in str(error)
    assert f"from http://127.0.0.1:{port} to another server, http://127.0.0.2:" in str(error)
