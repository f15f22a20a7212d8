"""Debian's headless Chromium for the report's browser tests, with the network blocked.

Every request the browser makes goes to a loopback HTTP proxy that records it and answers
nothing useful; host names do not resolve. Besides rendering (``--dump-dom``, ``--screenshot``)
the browser prints to PDF (read back with poppler's ``pdftotext`` and ``pdftoppm``) and runs
axe-core (the npm package of tests/browser/, installed by ``npm ci`` in the bootstrap's test
command and .ci/run, never at test time) on a copy of the page with the checker inlined.
"""

from __future__ import annotations

import html as html_lib
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SAMVERKAN_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "report"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# The WCAG 2.1 A and AA rules of axe-core.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Chromium's own background services (component updates, account and time checks): the browser
# calls them whatever page it shows. Nothing a page could use as a resource host (no fonts.*).
BROWSER_SERVICES = {"update.googleapis.com", "accounts.google.com", "clients1.google.com",
                    "clients2.google.com", "safebrowsing.googleapis.com",
                    "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
                    "redirector.gvt1.com", "edgedl.me.gvt1.com"}

Chromium = Callable[..., str]


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
def chromium(tmp_path, recorder) -> Chromium:
    """``chromium(page, *args, budget=3000)``: one headless Chromium run on a local file, its
    stdout (the DOM with ``--dump-dom``)."""
    binary = shutil.which("chromium")
    require(binary is not None, "Debian's chromium is not installed (apt-get install -y chromium)")
    port = recorder.server_address[1]

    def run(page: Path | str, *args: str, budget: int = 3000) -> str:
        recorder.seen.clear()
        target = page.as_uri() if isinstance(page, Path) else page
        proc = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}",
             f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
             "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
             f"--virtual-time-budget={budget}", *args, target],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    return run


def page_requests(recorder) -> list[tuple[str, str]]:
    return [(method, host) for method, host in recorder.seen if host not in BROWSER_SERVICES]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------------------------
# axe-core


AXE_RUNNER = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const report = data => {
  const pre = document.createElement('pre');
  pre.id = 'axe-results';
  pre.textContent = JSON.stringify(data);
  document.body.appendChild(pre);
};
axe.run(document, {runOnly: {type: 'tag', values: %s}, resultTypes: ['violations']})
  .then(r => report({
    version: axe.version, rules: r.passes.length + r.violations.length + r.incomplete.length,
    violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
      nodes: v.nodes.slice(0, 5).map(n => ({target: n.target.join(' '), why: n.failureSummary,
                                           html: n.html.slice(0, 300)}))}))}))
  .catch(e => report({error: String(e)}));
"""


def axe_check(chromium: Chromium, page: Path, tmp_path: Path) -> dict:
    """axe-core's WCAG 2.1 A/AA rules on ``page`` (every ``<details>`` opened), in Chromium:
    the checker and a runner are inlined into a copy of the page, which writes the results
    into the DOM; returns them (``violations``, ``rules``, ``version``)."""
    require(AXE.is_file(), f"axe-core is not installed ({AXE}): run `npm ci` in tests/browser "
                           "(python3 -m samverkan.bootstrap test does)")
    source = page.read_text(encoding="utf-8")
    script = (AXE.read_text(encoding="utf-8").replace("</script", "<\\/script")
              + AXE_RUNNER % json.dumps(WCAG_TAGS))
    checked = tmp_path / f"{page.stem}-axe.html"
    checked.write_text(source.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    dom = chromium(checked, "--dump-dom", "--window-size=1280,900", budget=300_000)
    found = re.search(r'<pre id="axe-results">(.*?)</pre>', dom, re.S)
    assert found, "axe-core wrote no results into the page"
    result = json.loads(html_lib.unescape(found.group(1)))
    assert "error" not in result, result
    return result


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}, {v['count']} elements): {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}: {node['why']}".replace("\n", " "))
            lines.append(f"      {node['html']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Printing


def require_poppler() -> None:
    require(shutil.which("pdftotext") is not None and shutil.which("pdftoppm") is not None,
            "poppler-utils (pdftotext, pdftoppm) is not installed (apt-get install -y poppler-utils)")


def print_to_pdf(chromium: Chromium, page: Path, pdf: Path) -> Path:
    """The page as Chromium prints it (the page's own @page size and margins, no header or
    footer added by the browser)."""
    pdf.unlink(missing_ok=True)
    chromium(page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", budget=10_000)
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-", pdf
    return pdf


def pdf_info(pdf: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def pdf_pages_text(pdf: Path) -> list[str]:
    """Each printed page's text (``pdftotext -layout``)."""
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    pages = out.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def pdf_page_png(pdf: Path, page: int, target: Path, dpi: int = 80) -> Path:
    """One printed page (1-based) as a PNG."""
    target.unlink(missing_ok=True)
    stem = target.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",
                    str(pdf), str(stem)], check=True)
    assert target.is_file(), target
    return target
