"""SS 12000 pulls stream: each page reaches the landing file in the pull's spool directory before
the next page is asked for, so a pull's memory does not grow with its size.

A real loopback server pages /attendances; when it is asked for a page after the first it looks
at the spool directory of the running pull and notes how large the attendances file is. Memory
itself is measured by tests/benchmarks/ss12000_large_pull.py, not here.
"""

from __future__ import annotations

import datetime as dt
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
from conftest import http_server

from samverkan.config import Paths, SS12000Config
from samverkan.extract import SourceState, run_extract
from samverkan.landing import SPOOL_PREFIX, list_batches
from samverkan.sources.ss12000 import SS12000Extractor, records_checksum

TOKEN = "streaming-token-5d1e"  # noqa: S105 - a test credential
PAGES = 5
PAGE_SIZE = 20


def _record(i: int) -> dict:
    at = (dt.datetime(2026, 9, 1, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=i)).isoformat()
    return {"id": f"att-{i:04d}", "calendarEvent": {"id": f"ev-{i % 7}"},
            "student": {"id": f"pupil-{i % 13}"}, "isReported": True, "attendanceMinutes": 40,
            "validAbsenceMinutes": 0, "invalidAbsenceMinutes": 0, "otherAttendanceMinutes": 0,
            "meta": {"created": at, "modified": at}}


def _spooled_size(landing: Path) -> int:
    """Bytes of the attendances file in the running pull's spool directory (-1: none yet)."""
    found = list((landing / "ss12000").glob(f"{SPOOL_PREFIX}*/attendances.parquet"))
    return found[0].stat().st_size if len(found) == 1 else -1


def test_each_page_is_written_to_the_spool_before_the_next_is_asked_for(tmp_path: Path) -> None:
    home = Paths(tmp_path / "home").ensure()
    records = [_record(i) for i in range(PAGES * PAGE_SIZE)]
    seen: list[int] = []  # spool file size when page 2, 3, … of /attendances was asked for

    def handle(h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        endpoint = url.path.rsplit("/", 1)[-1]
        token = parse_qs(url.query).get("pageToken", [None])[0]
        if endpoint == "deletedEntities":
            body: dict = {"data": {}}
        elif endpoint != "attendances":
            body = {"data": []}
        else:
            page = int(token) if token else 0
            if page:
                seen.append(_spooled_size(home.landing))
            more = page + 1 < PAGES
            body = {"data": records[page * PAGE_SIZE:(page + 1) * PAGE_SIZE],
                    "pageToken": str(page + 1) if more else None}
        payload = json.dumps(body).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    with http_server(handle) as server:
        config = SS12000Config(base_url=f"http://127.0.0.1:{server.server_address[1]}/v2.1",
                               token=TOKEN, page_size=PAGE_SIZE)
        # Every page is its own row group (by default pages are gathered up to 65 536 rows).
        extractor = SS12000Extractor(config, spool_options={"row_group_rows": 1})
        result = run_extract(home, extractor)
        streamed = list(seen)
        in_memory = extractor.pull(SourceState({}))  # no spool directory: the same, in memory

    assert len(streamed) == PAGES - 1
    assert streamed[0] > 0 and all(b > a for a, b in zip(streamed, streamed[1:], strict=False)), streamed
    (batch,) = result.batches
    assert (batch.received, batch.loaded, batch.quarantined) == (PAGES * PAGE_SIZE,) * 2 + (0,)
    (manifest,) = list_batches(home.landing, "ss12000")
    stats = manifest.entities["attendances"]
    texts = in_memory.tables["attendances"]["record"]
    assert isinstance(in_memory.tables["attendances"], pa.Table)
    assert stats.content_checksum == in_memory.content_checksums["attendances"] == records_checksum(texts)
    assert stats.watermark_to == in_memory.watermarks["attendances"][1] == records[-1]["meta"]["modified"]
    assert manifest.entities["deleted_entities"].content_checksum == \
        in_memory.content_checksums["deleted_entities"]
    assert not list((home.landing / "ss12000").glob(f"{SPOOL_PREFIX}*"))  # the spool is gone
