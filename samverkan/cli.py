"""The ``samverkan`` command."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samverkan.config import ConfigError, Paths, config_file, load_settings, paths
from samverkan.locks import WarehouseBusy
from samverkan.progress import show_progress_on_console
from samverkan.runtime import LOG_FILE_NAME, apply_environment_defaults, attach_log_file, configure_logging


def _summary(p: Paths, publication: object | None) -> None:
    print()
    print("Samverkan – summary")
    current = p.current_publication / "manifest.json"
    _print_checks(publication)
    if publication is not None and getattr(publication, "unchanged", False):
        print(f"  Nothing new since version {publication.version} (the same extract batches, "
              "reference date and models): it stands; nothing was built or published.")
        print(f"  Report: {(p.current_publication / 'report.html').absolute()}")
        return
    if publication is not None and getattr(publication, "published", False):
        manifest = json.loads(current.read_text(encoding="utf-8"))
        _print_load_report(manifest.get("load_report", {}))
        for gap in manifest.get("reference_coverage", []):
            print(f"  {gap['source']:12s} {_COVERAGE_TEXT[gap['kind']].format(**gap)}")
        for source, reasons in manifest.get("excluded_from_indicators", {}).items():
            detail = ", ".join(
                f"{reason}: people {n['people']}" if reason == "protected_identity"
                else f"{reason}: records {n['records']}" for reason, n in reasons.items())
            print(f"  {source:12s} kept out of the indicators: {detail}")
        print(f"  Published version {manifest['version']}")
        print(f"  Report: {(p.current_publication / 'report.html').absolute()}")
    else:
        gate_report = getattr(publication, "gate_report", None)
        gate = _gate_json(gate_report)
        loads = gate.get("load_report")
        loads = {s: r for s, r in loads.items() if r.get("received") or r.get("batches")} \
            if isinstance(loads, dict) else {}
        if loads:  # what the sources that could be read delivered, though nothing was published
            print("  Loaded by this run (into the warehouse; not published):")
            _print_load_report(loads)
        failed = _failed_extracts(gate)
        if failed:
            print("  What could not be loaded (a source that failed, a file refused):")
            for f in failed:
                print(f"    {f.get('source', '?'):12s} {f.get('cause', '')}")
        print("  Nothing was published; the previous publication (if any) is unchanged.")
        print(f"  Why: see the gate report {gate_report}" if gate_report
              else f"  Why: see the gate reports under {p.validation}")


def _print_load_report(report: dict[str, Any]) -> None:
    """Per source: rows received, loaded and quarantined (by reason)."""
    for source, r in report.items():
        reasons = ", ".join(f"{k} {v}" for k, v in r.get("quarantined_by_reason", {}).items())
        print(f"  {source:12s} received {r['received']:>9,d}  loaded {r['loaded']:>9,d}  "
              f"quarantined {r['quarantined']:>6,d}{f' ({reasons})' if reasons else ''}")


def _gate_json(gate_report: str | None) -> dict[str, Any]:
    """The gate report's gate.json beside ``gate_report`` (its HTML), or {}."""
    if not gate_report:
        return {}
    try:
        doc = json.loads((Path(gate_report).parent / "gate.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _failed_extracts(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """The failed extracts (source and cause) the gate report lists, if any."""
    failed = gate.get("failed_extracts")
    return [f for f in failed if isinstance(f, dict)] if isinstance(failed, list) else []


_COVERAGE_TEXT = {
    "school_unit_not_in_reference": "school unit {value} ({name}) is not in ref_skolenheter.csv: "
                                    "{records:,d} pupils count in the city and the unit only",
    "stadsdel_not_in_reference": "stadsdel '{value}' is not in ref_stadsdelar.csv: "
                                 "{records:,d} records count in the city only",
    "handling_district_not_in_reference": "handling district '{value}' is no stadsdelsområde name or "
                                          "code in ref_stadsdelsomraden.csv: {records:,d} matters "
                                          "count in the city only",
    "handling_district_blank": "handling district blank: {records:,d} matters count in the city only",
}


def _print_checks(publication: object | None) -> None:
    for check in getattr(publication, "checks", []):
        mark = "ok  " if check.success else "FAIL"
        print(f"  [{mark}] {check.name}: {check.detail}")


def _run_flow(flow: Any, what: str, **parameters: Any) -> tuple[bool, Any]:
    """Run a Prefect flow; (completed, its result), the result None when the flow raised.
    Prefect's failed-run lines and their tracebacks go to the log file, not the console: the
    command's summary says what failed and why."""
    attach_log_file(logging.getLogger("prefect"), paths().logs)
    state = flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        print(f"The {what} failed: {_one_line(result)} (details in {paths().logs / LOG_FILE_NAME})",
              file=sys.stderr)
        result = None
    return state.is_completed(), result


def _one_line(exc: BaseException) -> str:
    """An exception as one line for the console: its class and the first line of its message
    (the sources' errors name the host or path and the cause, never a data value)."""
    from samverkan.sources.failures import scrub

    text = scrub(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def preflight(sources: bool = True) -> bool:
    """The checks of `samverkan check`, before Prefect starts: print the failures (or one line
    when all pass) and say whether a run can start."""
    from samverkan.config.check import run_checks

    report = run_checks(sources=sources)
    if report.ok:
        print(f"Checks passed ({', '.join(r.name for r in report.results)}) in "
              f"{report.seconds:.1f} s", flush=True)
        return True
    print("samverkan: cannot start: these checks failed (`samverkan check` shows every check)",
          file=sys.stderr)
    for line in report.lines():
        if line.lstrip().startswith("ok"):
            continue
        print(line, file=sys.stderr)
    return False


def run_pipeline(p: Paths, reference_date: str | None, check: bool = True,
                 confirm_anomalies: bool = False, full_refresh: bool = False) -> int:
    """The nightly pipeline with its summary; first the checks of `samverkan check` unless
    ``check`` is false (a source can still fail after they passed: the summary says why)."""
    if check and not preflight():
        return 1
    from flows.pipeline import pipeline

    completed, publication = _run_flow(pipeline, "pipeline", reference_date=reference_date,
                                       confirm_anomalies=confirm_anomalies,
                                       full_refresh=full_refresh)
    _summary(p, publication)
    return 0 if completed else 1


def _lagesbild_summary(p: Paths, publication: object | None) -> None:
    from samverkan.publish import lagesbild_publication

    print()
    print("Samverkan – lägesbild")
    _print_checks(publication)
    current = lagesbild_publication(p).current
    if publication is not None and getattr(publication, "published", False):
        manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
        week = manifest.get("week", {})
        print(f"  Week {week.get('iso_week')} ({week.get('week_start')} – {week.get('week_end')}), "
              f"indicator publication {manifest.get('indicator_version')}")
        print(f"  Published version {manifest['version']}")
        print(f"  Lägesbild: {(current / 'lagesbild.html').absolute()}")
    else:
        print("  Nothing was published; the previous lägesbild (if any) is unchanged.")
        print(f"  Why: see the gate reports under {p.validation}")


def run_lagesbild(p: Paths, reference_date: str | None, check: bool = True) -> int:
    if check and not preflight(sources=False):  # the lägesbild reads the warehouse only
        return 1
    from flows.lagesbild import lagesbild

    completed, publication = _run_flow(lagesbild, "lägesbild", reference_date=reference_date)
    _lagesbild_summary(p, publication)
    return 0 if completed else 1


def exclusive(command: str, run: Callable[[Paths], int],
              check: Callable[[], bool] | None = None) -> int:
    """``run(paths)`` holding the data directory's run lock; exit 1 at once, naming the run
    that holds it, when another run is in progress. ``check`` (the checks of `samverkan
    check`) runs first, right after the lock is taken: when it fails, nothing else is done
    (nothing imported that the run itself needs, nothing written but the check's own probe
    files). Scratch files (a killed validation's leftovers) are removed when the run starts and
    when it ends."""
    from samverkan.locks import ChecksFailed, RunInProgress, exclusive_run

    p = paths()
    try:
        p.ensure()
    except OSError as exc:  # the data directory cannot be created or written
        if check is not None and not check():  # its failure names the data directory
            return 1
        print(f"samverkan: cannot start: the data directory {p.home} cannot be written "
              f"({exc.strerror or type(exc).__name__})", file=sys.stderr)
        return 1
    try:
        with exclusive_run(p, command, check):
            return run(p)
    except ChecksFailed:
        return 1
    except RunInProgress as exc:
        print(f"samverkan: cannot start: {exc}", file=sys.stderr)
        return 1


def cmd_lagesbild(args: argparse.Namespace) -> int:
    return exclusive("samverkan lagesbild",
                     lambda p: run_lagesbild(p, args.reference_date, check=False),
                     check=lambda: preflight(sources=False))


def cmd_backfill(args: argparse.Namespace) -> int:
    from samverkan.backfill import BackfillError, days_in_range

    try:
        days = days_in_range(args.date_from, args.date_to)
    except BackfillError as exc:
        print(f"samverkan backfill: {exc}", file=sys.stderr)
        return 2
    return exclusive("samverkan backfill", lambda p: _backfill(p, days, args.confirm_anomalies),
                     check=preflight)


def _backfill(p: Paths, days: list[dt.date], confirm_anomalies: bool = False) -> int:
    from flows.backfill import backfill  # Prefect's import takes seconds: after the checks

    print(f"Backfilling {len(days)} days ({days[0]} – {days[-1]}): each day's changes from every "
          "source as its own batch, then one build and one publication …", flush=True)
    completed, outcome = _run_flow(backfill, "backfill", date_from=days[0].isoformat(),
                                   date_to=days[-1].isoformat(), confirm_anomalies=confirm_anomalies)
    if outcome is None:
        _summary(p, None)
        return 1
    print(f"  Rows loaded over the range: {outcome.loaded:,d}")
    if outcome.publication is None:
        print(f"  Nothing new since the last publication for {days[-1]}: version "
              f"{outcome.unchanged_version} stands; nothing was published.")
        return 0
    _summary(p, outcome.publication)
    return 0 if completed else 1


def cmd_check(args: argparse.Namespace) -> int:
    from samverkan.config.check import run_checks

    report = run_checks()
    print(f"Samverkan – check ({report.seconds:.1f} s)")
    for line in report.lines():
        print(line)
    print("All checks passed: a run can start." if report.ok
          else "Some checks failed: fix them, then run `samverkan check` again.")
    return 0 if report.ok else 1


def cmd_init(args: argparse.Namespace) -> int:
    from samverkan.config.init import fetch_organisations, init_home, prefill_school_units

    p = paths()
    if not args.from_ss12000:
        result = init_home(p, config_file(p))
        print(f"{'Wrote' if result.config_written else 'Kept the existing'} {result.config}")
        for path in result.templates:
            print(f"Wrote {path}")
        print("Next: fill in the configuration and the reference files, then `samverkan init "
              "--from-ss12000` (school units) and `samverkan check`.")
        return 0
    settings = load_settings()
    try:
        records = fetch_organisations(settings)
    except Exception as exc:  # noqa: BLE001 - shown as one line; the check names the cause
        from samverkan.config.check import run_checks

        print(f"samverkan init: could not read /organisations ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        for line in run_checks().lines():
            if "ss12000" in line:
                print(line, file=sys.stderr)
        return 1
    path, units, unassigned = prefill_school_units(settings, records)
    print(f"Wrote {units} school units to {path}"
          + (f"; fill in sspf_omrade_code for the {unassigned} without an SSPF area" if unassigned else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from samverkan.demo import run_demo

    return exclusive("samverkan demo", lambda p: run_demo(
        p, args.seed, args.pupils, args.lessons_per_day, fault_rate=args.fault_rate,
        municipality=args.municipality, memory_limit=args.memory_limit))


def cmd_run(args: argparse.Namespace) -> int:
    return exclusive("samverkan run", lambda p: run_pipeline(
        p, args.reference_date, check=False, confirm_anomalies=args.confirm_anomalies,
        full_refresh=args.full_refresh),
        check=preflight)


def cmd_pseudonym(args: argparse.Namespace) -> int:
    from samverkan.pseudonymisation import PseudonymKeyError, load_key, pseudonymise

    try:
        key = load_key()
    except PseudonymKeyError as exc:
        print(f"samverkan pseudonym: {exc}", file=sys.stderr)
        return 2
    ref = dt.date.fromisoformat(args.reference_date) if args.reference_date else dt.date.today()
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    for number, pseudonym in enumerate(pseudonymise(lines, key, ref), start=1):
        if pseudonym is None:
            print(f"samverkan pseudonym: line {number}: not a valid personnummer or "
                  "samordningsnummer", file=sys.stderr)
        print(pseudonym or "")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from samverkan.bench.run import BenchOptions, default_work_dir, run_bench
    from samverkan.database import parse_size

    ceiling = parse_size(args.pandas_ceiling)
    if ceiling is None:
        print(f"samverkan bench: --pandas-ceiling: not a size: {args.pandas_ceiling!r}", file=sys.stderr)
        return 2
    opts = BenchOptions(pupils=args.pupils, lessons_per_day=args.lessons_per_day, seed=args.seed,
                        municipality=args.municipality, work=args.work or default_work_dir(),
                        memory_limit=args.memory_limit, repeat=args.repeat, json_file=args.json,
                        skip_pandas=args.skip_pandas, pandas_ceiling_bytes=ceiling,
                        night_only=args.night_only)
    return run_bench(opts)


def _size(text: str) -> str:
    """An argparse type: a DuckDB size ("2GiB") of at least the configurable minimum."""
    from samverkan.database import MIN_MEMORY_BYTES, format_size, parse_size

    size = parse_size(text)
    if size is None:
        raise argparse.ArgumentTypeError(f"not a size such as 2GiB or 512MB: {text!r}")
    if size < MIN_MEMORY_BYTES:
        raise argparse.ArgumentTypeError(f"must be at least {format_size(MIN_MEMORY_BYTES)}")
    return text.strip()


def _in_range(parse: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: ``parse`` (int or float) the text, then require low ≤ value ≤ high."""
    kind = "whole number" if parse is int else "number"

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return convert


DESCRIPTION = """\
Samverkan pulls school attendance (SS 12000), the social-services case system and the
police file drop, pseudonymises and links them, builds the indicators on children at risk
with dbt, and publishes them only when the quality and disclosure gates pass. The console
shows one line per step and a summary; the whole log is in logs/samverkan.log and dbt's in
logs/dbt/dbt.log, under the data directory (SAMVERKAN_HOME, default ./data).
"""

EPILOG = """\
usual sequence:
  samverkan demo                  try it on a simulated municipality
  samverkan init                  a new installation: samverkan.toml and reference templates
  samverkan init --from-ss12000   list the school units from SS 12000
  samverkan check                 can a run work? (configuration, key, reference, sources)
  samverkan run                   each night: extract, build, gate and publish
  samverkan backfill --from D --to D
                                  load a range of past days, then publish once
  samverkan lagesbild             each week, after the nightly run: the lägesbild
  samverkan pseudonym             look up pseudonyms (erasure and correction requests)
  samverkan bench --pupils N      measure the build against hand-written SQL and pandas
"""


def _version() -> str:
    try:
        return importlib.metadata.version("samverkan")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samverkan", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the whole log on the console (Prefect's flow and task runs, "
                             "every samverkan line, debug detail) instead of the progress lines; "
                             "the log file gets debug detail too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands", help="one of:")

    demo = sub.add_parser("demo", help="simulate a municipality and run the whole pipeline on it")
    demo.add_argument("--municipality", choices=("stockholm", "malmo"), default="stockholm",
                      help="which simulated municipality (its areas, school units and identity; "
                           "default stockholm)")
    demo.add_argument("--seed", type=int, default=20260612,
                      help="seed of the simulated municipality (default 20260612): the same seed, "
                           "size and volume give the same municipality")
    demo.add_argument("--pupils", type=int, default=5000, metavar="N",
                      help="about how many pupils the municipality has (default 5000)")
    demo.add_argument("--lessons-per-day", type=_in_range(int, 1, 6), default=4, metavar="N",
                      help="attendance-recorded lessons per pupil and school day, 1..6 (default 4): "
                           "the volume of the attendance feed")
    demo.add_argument("--fault-rate", type=_in_range(float, 0, 1), default=0.0, metavar="RATE",
                      help="share (0..1) of SS 12000 requests the simulator fails with 429, 500, "
                           "503 or a stalled answer (default 0)")
    demo.add_argument("--memory-limit", type=_size, metavar="SIZE",
                      help="the most memory DuckDB may use, e.g. 2GiB ([warehouse] memory_limit in "
                           "the demo's samverkan.toml; default half the machine's memory, at most 4 GiB)")
    demo.set_defaults(func=cmd_demo)

    init = sub.add_parser(
        "init", help="write a commented samverkan.toml and the reference templates into SAMVERKAN_HOME")
    init.add_argument("--from-ss12000", action="store_true",
                      help="fill the school-unit file (ref_skolenheter.csv) from the configured "
                           "SS 12000 API's /organisations")
    init.set_defaults(func=cmd_init)

    check = sub.add_parser(
        "check", help="check the configuration, key, reference files and sources (exit 1 on a problem)")
    check.set_defaults(func=cmd_check)

    run = sub.add_parser("run", help="run the pipeline against the configured sources")
    run.add_argument("--reference-date", help="data date (YYYY-MM-DD); default from config/today")
    run.add_argument("--confirm-anomalies", action="store_true",
                     help="publish although a source delivers far less than before (a view that "
                          "emptied, a school day without attendance): the operator has checked it")
    run.add_argument("--full-refresh", action="store_true",
                     help="rebuild the incremental attendance models from scratch (dbt "
                          "--full-refresh) instead of only the days the new batches touched; "
                          "builds even when nothing new was loaded. Not needed after an "
                          "upgrade of the models or a removal of loaded rows: a run detects "
                          "those and rebuilds by itself")
    run.set_defaults(func=cmd_run)

    fill = sub.add_parser(
        "backfill", help="load a date range day by day from every source, then publish once")
    fill.add_argument("--from", dest="date_from", type=dt.date.fromisoformat, required=True,
                      metavar="YYYY-MM-DD", help="first data date of the range")
    fill.add_argument("--to", dest="date_to", type=dt.date.fromisoformat, required=True,
                      metavar="YYYY-MM-DD", help="last data date; the publication's reference date")
    fill.add_argument("--confirm-anomalies", action="store_true",
                      help="publish although a source delivers far less than at the last "
                           "publication: the operator has checked it")
    fill.set_defaults(func=cmd_backfill)

    weekly = sub.add_parser(
        "lagesbild", help="build, check and publish the weekly lägesbild (after the nightly run)")
    weekly.add_argument("--reference-date",
                        help="data date (YYYY-MM-DD); default the current publication's")
    weekly.set_defaults(func=cmd_lagesbild)

    pseudo = sub.add_parser(
        "pseudonym", help="print the pseudonym of each identifier read on stdin (one per line)")
    pseudo.add_argument("--reference-date",
                        help="date that resolves the century of 10-digit numbers (default today)")
    pseudo.set_defaults(func=cmd_pseudonym)

    bench = sub.add_parser(
        "bench", help="a benchmark: the full build, a one-day incremental night and hand-written "
                      "SQL and pandas baselines, side by side (wall time, peak memory)",
        description="Builds a simulated municipality of the given size once (cached under --work) "
                    "and loads it with the real pipeline up to the day before its reference date; "
                    "then, on fresh copies, measures the one-day incremental night (samverkan run), "
                    "the full build (dbt build, models and tests) and, for hog_franvaro, "
                    "orosanmalningar and hog_franvaro_med_orosanmalan, the dbt models against "
                    "hand-written DuckDB SQL and a pandas pipeline over the same raw tables (whose "
                    "cells must equal the models'). Each measurement runs in a child process; peak "
                    "memory is sampled over its whole process tree. Prints a table and writes JSON.")
    bench.add_argument("--pupils", type=_in_range(int, 100, 1_000_000), default=5000, metavar="N",
                       help="about how many pupils the simulated municipality has (default 5000)")
    bench.add_argument("--lessons-per-day", type=_in_range(int, 1, 6), default=4, metavar="N",
                       help="attendance-recorded lessons per pupil and school day (default 4)")
    bench.add_argument("--seed", type=int, default=20260612, help="the simulation's seed (default 20260612)")
    bench.add_argument("--municipality", choices=("stockholm", "malmo"), default="stockholm",
                       help="which simulated municipality (default stockholm)")
    bench.add_argument("--work", type=Path, metavar="DIR",
                       help="cached worlds and the measured copies (default "
                            "$XDG_CACHE_HOME/samverkan/bench, i.e. ~/.cache/samverkan/bench)")
    bench.add_argument("--memory-limit", type=_size, metavar="SIZE",
                       help="DuckDB's memory limit in every measured data directory ([warehouse] "
                            "memory_limit; default half the machine's memory, at most 4 GiB)")
    bench.add_argument("--repeat", type=_in_range(int, 1, 20), default=1, metavar="R",
                       help="measure everything R times (fresh copies; the table shows medians)")
    bench.add_argument("--json", type=Path, metavar="FILE",
                       help="write the figures here (default <work>/bench.json)")
    bench.add_argument("--skip-pandas", action="store_true", help="do not run the pandas baseline")
    bench.add_argument("--night-only", action="store_true",
                       help="measure only the incremental night (no full build, no baselines)")
    bench.add_argument("--pandas-ceiling", default="12GiB", metavar="SIZE",
                       help="stop the pandas baseline when its memory passes this (default 12GiB); "
                            "the table then says it exceeded it")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(0o077)  # files and folders this process creates: owner only (README, "Zones")
    # A handler that fails to emit a record (Prefect's API log handler while the interpreter
    # shuts down, say) must not print logging's own traceback on the console.
    logging.raiseExceptions = args.verbose
    apply_environment_defaults(verbose=args.verbose)
    if args.command not in ("pseudonym", "bench"):  # the bench's children have their own homes
        with contextlib.suppress(OSError):  # an unusable data directory: `check` says so
            configure_logging(paths().ensure().logs, args.verbose)
        if not args.verbose:  # verbose: Prefect's console handler prints them with the log
            show_progress_on_console()
    try:
        return args.func(args)
    except ConfigError as exc:
        print("samverkan: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except WarehouseBusy as exc:
        print(f"samverkan: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("samverkan: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback on the console, ever: it goes to the log
        return _unexpected(args, exc)


def _unexpected(args: argparse.Namespace, exc: Exception) -> int:
    """A failure nothing else caught: one line on the console (the file or path and the cause
    for an operating-system error such as a full disk or a read-only directory), the traceback
    in the log file."""
    logger = logging.getLogger("samverkan")
    log_file = paths().logs / LOG_FILE_NAME
    has_file = any(isinstance(h, logging.FileHandler) for h in logger.handlers)
    if has_file or args.verbose:  # without a log file the traceback would reach the console
        logger.exception("samverkan %s failed", args.command)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"samverkan {args.command}: cannot use{where}: {exc.strerror}", file=sys.stderr)
    else:
        print(f"samverkan {args.command} failed: {_one_line(exc)}", file=sys.stderr)
    print(f"  details in {log_file}" if has_file else
          f"  no log file ({log_file.parent} cannot be written); `samverkan -v {args.command}` "
          "prints the details", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())



