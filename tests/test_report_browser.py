"""The report in a real browser (Debian's headless Chromium) with the network blocked.

Every request the browser makes goes to a loopback HTTP proxy that records it and answers
nothing useful; host names do not resolve. A control page with external resources proves the
recorder sees page fetches; the report must cause none. The rendered DOM must hold every
indicator section, the SVG charts and the status marks, laid out with a size and the status
colours; screenshots are kept under test-artifacts/ (or $SAMVERKAN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import report_data as rd
from conftest import require
from htmldom import parse

from samverkan.report import render_lagesbild, render_report

ARTIFACTS = Path(os.environ.get("SAMVERKAN_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts")) / "report"
# Chromium's own background services (component updates, account and time checks): the browser
# calls them whatever page it shows. Nothing a page could use as a resource host (no fonts.*).
BROWSER_SERVICES = {"update.googleapis.com", "accounts.google.com", "clients1.google.com",
                    "clients2.google.com", "safebrowsing.googleapis.com",
                    "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
                    "redirector.gvt1.com", "edgedl.me.gvt1.com"}
STATUS_COLOURS = {"grön": "rgb(26, 127, 55)", "gul": "rgb(201, 151, 0)", "röd": "rgb(198, 40, 40)"}

MEASURE = """<script>
(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const box = e => {
    const r = e.getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)];
  };
  const out = {sections: [], charts: [], marks: [], lagesbild: []};
  for (const s of document.querySelectorAll('section.indicator'))
    out.sections.push({id: s.dataset.indicator, box: box(s)});
  for (const svg of document.querySelectorAll('svg.trend')) {
    const line = svg.querySelector('polyline');
    out.charts.push({id: svg.closest('section.indicator').dataset.indicator, period: svg.dataset.period,
                     box: box(svg), line: line ? box(line) : null,
                     stroke: line ? getComputedStyle(line).stroke : null,
                     points: Array.from(svg.querySelectorAll('circle.point'))
                       .filter(c => box(c)[0] > 0).length});
  }
  for (const dot of document.querySelectorAll('.status .dot'))
    out.marks.push({cls: dot.parentElement.className, box: box(dot),
                    bg: getComputedStyle(dot).backgroundColor});
  for (const p of document.querySelectorAll('section.lagesbild'))
    out.lagesbild.push({area: p.dataset.area, box: box(p)});
  const pre = document.createElement('pre');
  pre.id = 'render-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    def _record(self) -> None:
        host = self.headers.get("Host") or self.path.split("://", 1)[-1].split("/", 1)[0]
        self.server.seen.append((self.command, host.split(":")[0]))  # type: ignore[attr-defined]
        self.send_response(502 if self.command == "CONNECT" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = do_OPTIONS = _record

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium(tmp_path, recorder):
    binary = shutil.which("chromium")
    require(binary is not None, "Debian's chromium is not installed (apt-get install -y chromium)")
    port = recorder.server_address[1]

    def run(page: Path, *args: str) -> str:
        recorder.seen.clear()
        proc = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}",
             f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
             "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
             "--virtual-time-budget=3000", *args, page.as_uri()],
            capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    return run


def page_requests(recorder) -> list[tuple[str, str]]:
    return [(method, host) for method, host in recorder.seen if host not in BROWSER_SERVICES]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_renders_offline_in_chromium(tmp_path, chromium, recorder):
    indicators, lagesbild = rd.write_tables(tmp_path / "published")
    html = render_report(indicators, lagesbild_parquet=lagesbild, version=rd.VERSION,
                         reference_date=rd.REFERENCE_DATE, catalogue=rd.CATALOGUE, manifest={},
                         min_cell=rd.MIN_CELL, targets=rd.TARGETS)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")

    # The recorder sees what a page fetches: a control page with external resources.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><head><style>body{background:url(http://bg.example.org/a.png)}'
                       '</style></head><body><img src="http://img.example.com/x.png"></body></html>')
    chromium(control, "--dump-dom")
    assert {("GET", "img.example.com"), ("GET", "bg.example.org")} <= set(page_requests(recorder))

    # The report: no request at all besides the browser's own services.
    dom = parse(chromium(report, "--dump-dom"))
    assert page_requests(recorder) == []
    ids = [s.attrs["data-indicator"] for s in dom.select("section.indicator")]
    assert ids == [s.id for s in rd.SPECS]
    for spec in rd.SPECS:
        section = dom.one(f"section#ind-{spec.id}")
        assert section.one("svg.trend[data-period=manad]").select("circle.point")
        assert section.select("table.months td")
    assert len(dom.select("section.lagesbild")) == 3
    assert dom.select("details.overview-area[data-area=0180] .status-röd")

    # Laid out: sections and charts have a size, the line is drawn, the marks carry their colours.
    instrumented = tmp_path / "report-measured.html"
    instrumented.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    measured = parse(chromium(instrumented, "--dump-dom"))
    assert page_requests(recorder) == []
    check = json.loads(measured.one("pre#render-check").text)
    assert [s["id"] for s in check["sections"]] == ids
    assert all(s["box"][0] > 600 and s["box"][1] > 300 for s in check["sections"]), check["sections"]
    monthly = {c["id"]: c for c in check["charts"] if c["period"] == "manad"}
    assert set(monthly) == set(ids)
    for chart in check["charts"]:
        assert chart["box"][0] >= 600 and chart["box"][1] >= 150, chart
        assert chart["points"] > 0, chart
        if chart["line"] is not None:
            assert chart["line"][0] > 100 and chart["stroke"] == "rgb(0, 90, 156)", chart
    assert monthly["hog_franvaro"]["line"] is not None and monthly["sst_effekt"]["line"] is None
    colours = {}
    for mark in check["marks"]:
        status = next(c.removeprefix("status-") for c in mark["cls"].split() if c.startswith("status-"))
        assert mark["box"][0] >= 8 and mark["box"][1] >= 8, mark
        assert mark["bg"] == STATUS_COLOURS[status], mark
        colours[status] = colours.get(status, 0) + 1
    expected = {st for st in STATUS_COLOURS if dom.select(f".status-{st}")}
    assert set(colours) == expected and "röd" in expected
    assert [p["area"] for p in check["lagesbild"]] == ["0180", "SKH-BS", "SKH-SV"]
    assert all(p["box"][1] > 200 for p in check["lagesbild"])

    # Screenshots, kept as test artifacts.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium(report, f"--screenshot={shot}", "--window-size=1280,5000")
    assert page_requests(recorder) == []
    assert png_size(shot) == (1280, 5000) and shot.stat().st_size > 100_000
    print(f"report screenshot: {shot}")


def test_lagesbild_renders_offline_in_chromium(tmp_path, chromium, recorder):
    _, lagesbild = rd.write_tables(tmp_path / "published")
    page = tmp_path / "lagesbild.html"
    page.write_text(render_lagesbild(lagesbild, version=rd.VERSION, reference_date=rd.REFERENCE_DATE,
                                     catalogue=rd.CATALOGUE), encoding="utf-8")
    dom = parse(chromium(page, "--dump-dom"))
    assert page_requests(recorder) == []
    assert [p.attrs["data-area"] for p in dom.select("section.lagesbild")] == ["0180", "SKH-BS", "SKH-SV"]
    assert len(dom.select("section.lagesbild .status-röd")) == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lagesbild.png"
    shot.unlink(missing_ok=True)
    chromium(page, f"--screenshot={shot}", "--window-size=1280,2400")
    assert page_requests(recorder) == []
    assert png_size(shot) == (1280, 2400)
    print(f"lägesbild screenshot: {shot}")
