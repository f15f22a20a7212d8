"""Benchmark (not a test): peak memory of an SS 12000 extract (pull → land → validate → load)
at several sizes, or of a first load day by day (``--daily``).

A small SS 12000 server runs in a separate process on loopback (its memory does not count):
it generates attendance records on the fly, ``--days`` days of them ending yesterday, spread
evenly over the days by ``meta.modified``, and answers ``meta.modified.after`` /
``.before`` filters and ``pageToken`` paging as the contract says (the other endpoints are
empty). For each size the real extract (``run_extract`` with the Great Expectations batch
validator, as ``samverkan run`` does; ``--no-validate`` skips it) runs in a child process whose
resident memory, with that of any process it starts, is sampled every 50 ms; the peak printed is
the larger of the sampled peak and the child's own ``ru_maxrss``.

``--daily`` runs a first load of the whole feed the way ``samverkan backfill`` does it: one
bounded extract per day (``until`` = that day, i.e. ``meta.modified.before`` the end of it),
all in the same child process.

``--demo-backfill FROM:TO`` measures the command itself at demo size: the server process
simulates the demo's municipality (``--pupils``, the demo's seed) and serves its school
platform (case system and police inbox on disk, as ``samverkan demo`` has them), and the child
is ``samverkan backfill --from FROM --to TO`` on a fresh data directory (its first load), every
source, the build and the publication included.

The targets: a peak that does not grow with the size of the pull, and at most 2 GiB.

    PREFECT_HOME=/tmp/prefect-bench python tests/benchmarks/ss12000_large_pull.py \\
        [--sizes 500000,1000000,2000000] [--page-size 5000] [--memory-limit 1GiB]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "bench-token"  # noqa: S105 - the benchmark server's own credential
TARGET_MIB = 2048
DAY_US = 86_400_000_000
PUPILS = 100_000  # Stockholm's pupils: the students the records belong to
EVENTS = 40_000   # lessons of a day


# --- the server (its own process) -------------------------------------------------------------

class Feed:
    """``n`` attendance records over ``days`` days ending at the start of today (UTC), record
    ``i`` modified at ``t0 + i * step`` (strictly increasing: a filter is arithmetic)."""

    def __init__(self, n: int, days: int) -> None:
        today = dt.datetime.combine(dt.date.today(), dt.time(), tzinfo=dt.UTC)
        self.n = n
        self.t0 = int((today - dt.timedelta(days=days)).timestamp() * 1_000_000)
        self.step = max(1, days * DAY_US // max(1, n))

    def at_or_before(self, instant_us: int) -> int:
        """How many records are modified at or before ``instant_us``."""
        if instant_us < self.t0:
            return 0
        return min(self.n, (instant_us - self.t0) // self.step + 1)

    def page(self, lo: int, hi: int) -> bytes:
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        parts = []
        for i in range(lo, hi):
            at = (epoch + dt.timedelta(microseconds=self.t0 + i * self.step)).isoformat().replace(
                "+00:00", "Z")
            absent = 40 if i % 11 == 0 else 0
            parts.append(
                f'{{"id":"00000000-0000-4000-8000-{i:012d}",'
                f'"calendarEvent":{{"id":"00000000-0000-4000-9000-{i % EVENTS:012d}"}},'
                f'"student":{{"id":"00000000-0000-4000-a000-{i % PUPILS:012d}"}},'
                f'"isReported":true,"attendanceMinutes":{40 - absent},'
                f'"validAbsenceMinutes":{absent},"invalidAbsenceMinutes":0,'
                f'"otherAttendanceMinutes":0,"reportedTimestamp":"{at}",'
                f'"meta":{{"created":"{at}","modified":"{at}"}}}}')
        return ",".join(parts).encode()


def _instant(text: str) -> int:
    at = dt.datetime.fromisoformat(text)
    return int(at.timestamp() * 1_000_000)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    feeds: dict[tuple[int, int], Feed] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, b'{"code":"unauthorized","message":"bearer token required"}')
            return
        # /<records>/<days>/<endpoint>
        try:
            n_text, days_text, endpoint = url.path.strip("/").split("/")
            n, days = int(n_text), int(days_text)
        except ValueError:
            self._send(404, b'{"code":"not_found","message":"no such path"}')
            return
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        if endpoint == "deletedEntities":
            self._send(200, b'{"data":{},"pageToken":null}')
            return
        if endpoint != "attendances":
            self._send(200, b'{"data":[],"pageToken":null}')
            return
        feed = self.feeds.setdefault((n, days), Feed(n, days))
        limit = int(params.get("limit", "1000"))
        if "pageToken" in params:
            lo, hi = (int(x) for x in params["pageToken"].split(":"))
        else:
            after, before = params.get("meta.modified.after"), params.get("meta.modified.before")
            lo = feed.at_or_before(_instant(after)) if after else 0
            hi = feed.at_or_before(_instant(before)) if before else feed.n
        end = min(hi, lo + limit)
        token = f'"{end}:{hi}"' if end < hi else "null"
        self._send(200, b'{"data":[' + feed.page(lo, end) + b'],"pageToken":' + token.encode() + b"}")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run_server(port_file: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    port_file.write_text(str(server.server_address[1]), encoding="ascii")
    server.serve_forever()


def run_demo_server(home: Path, pupils: int, ready_file: Path, memory_limit: str | None) -> None:
    """The demo's simulated municipality in ``home`` (configuration, reference files, key, case
    system, police inbox) and its school platform served until this process is ended."""
    os.environ["SAMVERKAN_HOME"] = str(home)
    from samverkan.config import Paths
    from samverkan.demo import TOKEN_ENV, ensure_key, simulate, write_demo_config
    from samverkan.simulator.municipalities import profile
    from samverkan.simulator.population import DEFAULT_SEED
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    p = Paths(home).ensure()
    ensure_key(p)
    municipality = profile("stockholm")
    pop, sources = simulate(p, DEFAULT_SEED, pupils, 4, municipality)
    with serve(SS12000Data.from_population(pop), os.environ[TOKEN_ENV]) as server:
        write_demo_config(p, server.base_url, sources, municipality, memory_limit=memory_limit)
        ready_file.write_text(sources.reference_date.isoformat(), encoding="ascii")
        threading.Event().wait()


# --- the extract (a child process) -----------------------------------------------------------

def run_child(base_url: str, home: Path, page_size: int, validate: bool, daily: int,
              out: Path) -> None:
    """One extract of everything the server has (or, with ``daily``, one per day), as the
    pipeline runs it; writes what it measured to ``out`` (JSON)."""
    os.environ["SAMVERKAN_HOME"] = str(home)
    from samverkan.config import Paths, SS12000Config
    from samverkan.extract import run_extract
    from samverkan.sources.ss12000 import SS12000Extractor

    p = Paths(home).ensure()
    config = SS12000Config(base_url=base_url, token=TOKEN, page_size=page_size)
    extractor = SS12000Extractor(config)
    validator = None
    if validate:
        from samverkan.quality import batch_validator

        validator = batch_validator(extractor, p)
    started = time.perf_counter()
    totals = {"received": 0, "loaded": 0, "quarantined": 0, "batches": 0, "valid": True}
    # The feed ends at midnight UTC, in the evening of today's date in Stockholm: the last day is today.
    untils = ([dt.date.today() - dt.timedelta(days=daily - k) for k in range(daily + 1)] if daily
              else [None])
    for until in untils:
        result = run_extract(p, extractor, validator, until=until)
        for batch in result.batches:
            totals["batches"] += 1
            totals["valid"] = totals["valid"] and batch.valid
            for key in ("received", "loaded", "quarantined"):
                totals[key] += getattr(batch, key)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({**totals, "seconds": seconds,
                               "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}),
                   encoding="utf-8")


# --- the driver --------------------------------------------------------------------------------

def _tree_rss_kib(pid: int, parts: dict[str, int] | None = None) -> int:
    """Resident memory of ``pid`` and its descendants (KiB), from /proc; ``parts`` gets each
    process's (by its name and pid)."""
    from samverkan.bench.measure import process_rss, process_tree

    total = 0
    for current in process_tree(pid):
        kib = process_rss(current) // 1024
        total += kib
        if parts is not None and kib:
            try:
                name = Path(f"/proc/{current}/comm").read_text(encoding="ascii").strip()
            except OSError:
                name = "?"
            parts[f"{name}[{current}]"] = kib
    return total


def measure(args: list[str]) -> tuple[int, int]:
    """Run the child ``args``; (its exit code, sampled peak RSS of its process tree in KiB)."""
    child = subprocess.Popen(args)  # noqa: S603 - this script, with its own arguments
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss_kib(child.pid))
        time.sleep(0.05)
    return child.returncode, peak


def demo_backfill(date_from: str, date_to: str, pupils: int, memory_limit: str | None) -> None:
    """Simulate the demo's municipality (server process), then measure `samverkan backfill`."""
    import secrets

    with tempfile.TemporaryDirectory(prefix="ss12000-backfill-bench-") as tmp:
        home = Path(tmp) / "home"
        ready = Path(tmp) / "ready"
        env = {**os.environ, "SAMVERKAN_HOME": str(home),
               "SAMVERKAN_SS12000_TOKEN": secrets.token_urlsafe(24)}
        env.pop("SAMVERKAN_CONFIG", None)
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, __file__, "--serve-demo", str(home), str(ready),  # noqa: S603
                                   "--pupils", str(pupils),
                                   *(["--memory-limit", memory_limit] if memory_limit else [])],
                                  env=env)
        try:
            while not ready.exists() or not ready.read_text(encoding="ascii"):
                if server.poll() is not None:
                    raise SystemExit("the simulated municipality could not be served")
                time.sleep(0.2)
            print(f"simulated {pupils:,} pupils in {time.perf_counter() - started:.0f} s; "
                  f"samverkan backfill --from {date_from} --to {date_to} …", flush=True)
            cli = [str(Path(sys.executable).with_name("samverkan")), "backfill", "--from", date_from,
                   "--to", date_to]
            started = time.perf_counter()
            child = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
            # The extracts end where the build starts (its first progress line): peaks of each.
            building = threading.Event()
            extracted_at: list[float] = []

            def echo() -> None:
                assert child.stdout is not None
                for line in child.stdout:
                    print(line, end="", flush=True)
                    if "dbt build" in line and not building.is_set():
                        extracted_at.append(time.perf_counter() - started)
                        building.set()

            reader = threading.Thread(target=echo, daemon=True)
            reader.start()
            peaks = {"extracts": 0, "build and publication": 0}
            at_peak: dict[str, dict[str, int]] = {}
            while child.poll() is None:
                phase = "build and publication" if building.is_set() else "extracts"
                parts: dict[str, int] = {}
                rss = _tree_rss_kib(child.pid, parts)
                if rss > peaks[phase]:
                    peaks[phase], at_peak[phase] = rss, parts
                time.sleep(0.05)
            reader.join()
            seconds = time.perf_counter() - started
            restricted = home / "warehouse" / "restricted.duckdb"
            summary = ""
            if restricted.exists():
                import duckdb

                with duckdb.connect(str(restricted), read_only=True) as conn:
                    batches, received, loaded, quarantined = conn.execute(
                        "select count(*), sum(rows_received), sum(rows_loaded), sum(rows_quarantined) "
                        "from load_meta.batches where source = 'ss12000'").fetchone()
                summary = (f"; ss12000: {batches} batches, {received:,} records received, "
                           f"{loaded:,} loaded, {quarantined:,} quarantined")
            extract_seconds = f"{extracted_at[0]:.0f} s" if extracted_at else "?"
            print(f"exit code {child.returncode}; {seconds:.0f} s in all, the extracts "
                  f"{extract_seconds}; peak (process tree) of the extracts "
                  f"{peaks['extracts'] / 1024:.0f} MiB, of the build and publication "
                  f"{peaks['build and publication'] / 1024:.0f} MiB{summary}", flush=True)
            for phase, parts in at_peak.items():
                print(f"at the peak of the {phase}: " + ", ".join(
                    f"{name} {kib / 1024:.0f} MiB" for name, kib in sorted(parts.items())), flush=True)
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000,1000000,2000000",
                        help="attendance records served, comma-separated (one extract each)")
    parser.add_argument("--days", type=int, default=100, help="days the records are spread over")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--memory-limit", default=None,
                        help="[warehouse] memory_limit of the data directory (default: DuckDB's "
                             "default of the pipeline, half the machine's memory, at most 4 GiB)")
    parser.add_argument("--daily", action="store_true",
                        help="a first load day by day (one bounded extract per day), as backfill")
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--demo-backfill", metavar="FROM:TO",
                        help="`samverkan backfill --from FROM --to TO` on the demo's simulated "
                             "municipality (a first load), measured")
    parser.add_argument("--pupils", type=int, default=5000, help="with --demo-backfill")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-demo", nargs=2, metavar=("HOME", "READY"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("BASE_URL", "HOME"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        run_server(args.serve)
        return
    if args.serve_demo:
        run_demo_server(Path(args.serve_demo[0]), args.pupils, Path(args.serve_demo[1]),
                        args.memory_limit)
        return
    if args.demo_backfill:
        demo_backfill(*args.demo_backfill.split(":"), pupils=args.pupils,
                      memory_limit=args.memory_limit)
        return
    if args.child:
        run_child(args.child[0], Path(args.child[1]), args.page_size, not args.no_validate,
                  args.days if args.daily else 0, args.out)
        return

    with tempfile.TemporaryDirectory(prefix="ss12000-bench-") as tmp:
        root = Path(tmp)
        port_file = root / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])  # noqa: S603
        try:
            while not port_file.exists() or not port_file.read_text(encoding="ascii"):
                time.sleep(0.05)
            port = int(port_file.read_text(encoding="ascii"))
            print(f"{'records':>10} {'seconds':>8} {'peak MiB':>9}  accounting", flush=True)
            for n in (int(s) for s in args.sizes.split(",")):
                home = root / f"home-{n}"
                home.mkdir()
                if args.memory_limit:
                    (home / "samverkan.toml").write_text(
                        f'[warehouse]\nmemory_limit = "{args.memory_limit}"\n', encoding="utf-8")
                out = root / f"result-{n}.json"
                child = [sys.executable, __file__, "--child",
                         f"http://127.0.0.1:{port}/{n}/{args.days}", str(home), "--out", str(out),
                         "--page-size", str(args.page_size), "--days", str(args.days)]
                if args.daily:
                    child.append("--daily")
                if args.no_validate:
                    child.append("--no-validate")
                code, sampled = measure(child)
                if code != 0:
                    print(f"{n:>10,} extract failed (exit code {code})", flush=True)
                    continue
                got = json.loads(out.read_text(encoding="utf-8"))
                peak_mib = max(sampled, got["maxrss_kib"]) / 1024
                print(f"{got['received']:>10,} {got['seconds']:>8.1f} {peak_mib:>9.0f}  "
                      f"{got['batches']} batch(es), valid {got['valid']}, loaded {got['loaded']:,}, "
                      f"quarantined {got['quarantined']:,}; target <= {TARGET_MIB} MiB: "
                      f"{'met' if peak_mib <= TARGET_MIB else 'NOT met'}", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    threading.excepthook = lambda hook_args: None  # a client hanging up mid-answer is no news
    main()
