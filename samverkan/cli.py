"""The ``samverkan`` command."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samverkan.config import ConfigError, Paths, paths
from samverkan.progress import show_progress_on_console
from samverkan.runtime import apply_environment_defaults, configure_logging


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
        for source, r in manifest.get("load_report", {}).items():
            reasons = ", ".join(f"{k} {v}" for k, v in r.get("quarantined_by_reason", {}).items())
            print(f"  {source:12s} received {r['received']:>9,d}  loaded {r['loaded']:>9,d}  "
                  f"quarantined {r['quarantined']:>6,d}{f' ({reasons})' if reasons else ''}")
        for source, reasons in manifest.get("excluded_from_indicators", {}).items():
            detail = ", ".join(
                f"{reason}: people {n['people']}" if reason == "protected_identity"
                else f"{reason}: records {n['records']}" for reason, n in reasons.items())
            print(f"  {source:12s} kept out of the indicators: {detail}")
        print(f"  Published version {manifest['version']}")
        print(f"  Report: {(p.current_publication / 'report.html').absolute()}")
    else:
        gate_report = getattr(publication, "gate_report", None)
        failed = _failed_extracts(gate_report)
        if failed:
            print("  Sources that could not be extracted:")
            for f in failed:
                print(f"    {f.get('source', '?'):12s} {f.get('cause', '')}")
        print("  Nothing was published; the previous publication (if any) is unchanged.")
        print(f"  Why: see the gate report {gate_report}" if gate_report
              else f"  Why: see the gate reports under {p.validation}")


def _failed_extracts(gate_report: str | None) -> list[dict[str, Any]]:
    """The failed extracts (source and cause) the gate report lists, if any."""
    if not gate_report:
        return []
    try:
        doc = json.loads((Path(gate_report).parent / "gate.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    failed = doc.get("failed_extracts") if isinstance(doc, dict) else None
    return [f for f in failed if isinstance(f, dict)] if isinstance(failed, list) else []


def _print_checks(publication: object | None) -> None:
    for check in getattr(publication, "checks", []):
        mark = "ok  " if check.success else "FAIL"
        print(f"  [{mark}] {check.name}: {check.detail}")


def _run_flow(flow: Any, what: str, **parameters: Any) -> tuple[bool, Any]:
    """Run a Prefect flow; (completed, its result), the result None when the flow raised."""
    state = flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        print(f"The {what} failed: {type(result).__name__}: {result}", file=sys.stderr)
        result = None
    return state.is_completed(), result


def run_pipeline(p: Paths, reference_date: str | None) -> int:
    from flows.pipeline import pipeline

    completed, publication = _run_flow(pipeline, "pipeline", reference_date=reference_date)
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


def run_lagesbild(p: Paths, reference_date: str | None) -> int:
    from flows.lagesbild import lagesbild

    completed, publication = _run_flow(lagesbild, "lägesbild", reference_date=reference_date)
    _lagesbild_summary(p, publication)
    return 0 if completed else 1


def cmd_lagesbild(args: argparse.Namespace) -> int:
    return run_lagesbild(paths().ensure(), args.reference_date)


def cmd_backfill(args: argparse.Namespace) -> int:
    from samverkan.backfill import BackfillError, days_in_range

    try:
        days = days_in_range(args.date_from, args.date_to)
    except BackfillError as exc:
        print(f"samverkan backfill: {exc}", file=sys.stderr)
        return 2
    from flows.backfill import backfill  # Prefect's import takes seconds: after the checks

    p = paths().ensure()
    print(f"Backfilling {len(days)} days ({days[0]} – {days[-1]}): each day's changes from every "
          "source as its own batch, then one build and one publication …", flush=True)
    completed, outcome = _run_flow(backfill, "backfill", date_from=days[0].isoformat(),
                                   date_to=days[-1].isoformat())
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


def cmd_demo(args: argparse.Namespace) -> int:
    from samverkan.demo import run_demo

    return run_demo(paths().ensure(), args.seed, args.pupils, args.lessons_per_day,
                    fault_rate=args.fault_rate)


def cmd_run(args: argparse.Namespace) -> int:
    return run_pipeline(paths().ensure(), args.reference_date)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samverkan", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="simulate a municipality and run the whole pipeline on it")
    demo.add_argument("--seed", type=int, default=20260612)
    demo.add_argument("--pupils", type=int, default=5000)
    demo.add_argument("--lessons-per-day", type=_in_range(int, 1, 6), default=4, metavar="N",
                      help="attendance-recorded lessons per pupil and school day, 1..6 (default 4): "
                           "the volume of the attendance feed")
    demo.add_argument("--fault-rate", type=_in_range(float, 0, 1), default=0.0, metavar="RATE",
                      help="share (0..1) of SS 12000 requests the simulator fails with 429, 500, "
                           "503 or a stalled answer (default 0)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run the pipeline against the configured sources")
    run.add_argument("--reference-date", help="data date (YYYY-MM-DD); default from config/today")
    run.set_defaults(func=cmd_run)

    fill = sub.add_parser(
        "backfill", help="load a date range day by day from every source, then publish once")
    fill.add_argument("--from", dest="date_from", type=dt.date.fromisoformat, required=True,
                      metavar="YYYY-MM-DD", help="first data date of the range")
    fill.add_argument("--to", dest="date_to", type=dt.date.fromisoformat, required=True,
                      metavar="YYYY-MM-DD", help="last data date; the publication's reference date")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_environment_defaults()
    args = build_parser().parse_args(argv)
    if args.command != "pseudonym":
        configure_logging(paths().logs, args.verbose)
        show_progress_on_console()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"samverkan: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())



