"""Prefect artifacts every run leaves: rows per source, the gate's outcome, the version.

Counts, check names, paths, versions and the causes of failed extracts (host or path and the
error, scrubbed) only: never a personnummer, pseudonym or key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from samverkan.extract import ExtractResult
from samverkan.publish import PublicationResult


def load_report_artifact(load_report: dict[str, dict[str, Any]], key: str = "load-report") -> None:
    """A table of rows per source: received, loaded, quarantined (and why)."""
    rows = [{
        "source": source,
        "received": r.get("received", 0),
        "loaded": r.get("loaded", 0),
        "quarantined": r.get("quarantined", 0),
        "quarantined_by_reason": ", ".join(f"{k}: {v}" for k, v in
                                           sorted(r.get("quarantined_by_reason", {}).items())),
        "batches": len(r.get("batches", [])) + len(r.get("failed_batches", [])),
        "failed_batches": ", ".join(r.get("failed_batches", [])),
        "failure_cause": "; ".join(r.get("failure_causes", {}).values()),
    } for source, r in sorted(load_report.items())]
    create_table_artifact(table=rows, key=key,
                          description="Rows per source in this run: received = loaded + quarantined")


def _link(path: str | None) -> str:
    if not path:
        return ""
    return f"[{Path(path).name}]({Path(path).absolute().as_uri()})"


def gate_artifact(publication: PublicationResult, what: str = "indicators",
                  key: str = "publication-gate") -> None:
    """The gate's outcome, check by check, with links to the readable validation reports, and
    the version published (or why nothing was)."""
    lines = [f"# Publication gate ({what}): "
             + ("passed" if publication.published else "FAILED"), ""]
    if publication.published:
        lines.append(f"Published version **{publication.version}** at `{publication.path}`.")
    else:
        lines.append(f"Version {publication.version} was not published; the previous "
                     "publication is unchanged.")
    if publication.gate_report:
        lines.append(f"Readable gate report: {_link(publication.gate_report)} "
                     f"(`{publication.gate_report}`)")
    lines += ["", "| check | outcome | detail | report |", "|---|---|---|---|"]
    for check in publication.checks:
        detail = str(check.detail).replace("|", "/").replace("\n", " ")[:1500]
        lines.append(f"| {check.name} | {'ok' if check.success else 'FAILED'} | {detail} | "
                     f"{_link(check.report_path)} |")
    create_markdown_artifact(markdown="\n".join(lines), key=key,
                             description=f"Publication gate and version ({what})")


def publication_artifacts(extract_results: list[ExtractResult], publication: PublicationResult) -> None:
    """What a run that went through the gate leaves: its load report and the gate's outcome."""
    from samverkan.steps import load_report

    load_report_artifact(load_report(extract_results))
    gate_artifact(publication)
