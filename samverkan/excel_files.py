"""The publication's files for Excel, ``indicators.xlsx`` and ``indikatorer.csv``
(:mod:`samverkan.workbook`), written in a child process while the gate checks the candidate.

Both are read from the candidate's Parquet files alone, and writing them is the largest part of
a publication's own work (about 5 s of CPU at Stockholm's size, pure Python). The gate's checks
(Great Expectations, the disclosure audit, the lägesbild) are pure Python too, so a thread would
wait for the same core; a process uses the machine's second one. When the gate fails, the child
is stopped and its files go with the discarded candidate.

:class:`ExcelFilesWriter` starts ``python -m samverkan.excel_files`` with the request as JSON on
its standard input; the child writes both files into the candidate's directory and exits 0, or
prints one line saying what failed and exits 1 (no traceback: the cells are published ones, and
the line names the file and the error). :func:`write_excel_files` writes them in this process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

INDICATORS_XLSX = "indicators.xlsx"
INDIKATORER_CSV = "indikatorer.csv"
# How long the gate waits for the child at most (it takes seconds at Stockholm's size).
WAIT_SECONDS = 1800.0
# The environment the child gets (and PYTHONPATH, so that it imports this samverkan).
CHILD_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")


def write_excel_files(staging: Path, catalogue: Mapping[str, Any], *, reference_date: dt.date | None,
                      version: str, min_cell: int, targets: Path | None,
                      parameters: Mapping[str, Any] | None) -> list[Path]:
    """``indicators.xlsx`` and ``indikatorer.csv`` in ``staging``, from its
    ``indicators.parquet`` and ``lagesbild.parquet``."""
    from samverkan.workbook import write_indicator_workbook, write_swedish_csv

    staging = Path(staging)
    indicators = staging / "indicators.parquet"
    workbook = write_indicator_workbook(indicators, dict(catalogue), staging / INDICATORS_XLSX,
                                        reference_date=reference_date, version=version,
                                        lagesbild_parquet=staging / "lagesbild.parquet",
                                        min_cell=min_cell, targets=targets,
                                        parameters=dict(parameters) if parameters is not None else None)
    # beside the machine-readable indicators.csv: the same cells for Swedish Excel
    swedish = write_swedish_csv(indicators, staging / INDIKATORER_CSV, reference_date=reference_date)
    return [workbook, swedish]


class ExcelFilesWriter:
    """:func:`write_excel_files` in a child process, started at once. :meth:`result` waits for
    it; leaving the ``with`` block stops it if it is still running."""

    def __init__(self, staging: Path, catalogue: Mapping[str, Any], *, reference_date: dt.date | None,
                 version: str, min_cell: int, targets: Path | None,
                 parameters: Mapping[str, Any] | None) -> None:
        request = {"staging": str(staging), "catalogue": catalogue,
                   "reference_date": reference_date.isoformat() if reference_date else None,
                   "version": version, "min_cell": min_cell,
                   "targets": str(targets) if targets is not None else None,
                   "parameters": parameters}
        package_root = str(Path(__file__).resolve().parent.parent)
        # only what Python needs: not the pseudonym key, tokens or passwords of this process
        env = {name: os.environ[name] for name in CHILD_ENVIRONMENT if name in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        # its one line goes to a file, not a pipe: nothing to drain while the gate runs
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _finish
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, a module of ours
            [sys.executable, "-m", "samverkan.excel_files"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=env)
        self._problem: str | None = None
        self._done = False
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps(request, default=str).encode("utf-8"))
            self._process.stdin.close()
        except OSError as exc:  # the child died at once: its own line says why
            self._problem = f"the writer could not be started ({exc.strerror or exc})"

    def result(self, timeout: float = WAIT_SECONDS) -> str | None:
        """None when both files were written, else one line saying what failed."""
        if self._done:
            return self._problem
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            self._problem = (f"{INDICATORS_XLSX} and {INDIKATORER_CSV} were not written "
                             f"within {timeout:.0f} s")
            return self._problem
        if code != 0:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", errors="replace")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            self._problem = lines[-1] if lines else f"the writer stopped (exit code {code})"
        self._finish()
        return self._problem

    def stop(self) -> None:
        """Stop the child if it is still running (the gate failed: its files are not wanted)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._stderr.close()

    def __enter__(self) -> ExcelFilesWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:
            self.stop()


def main() -> int:
    """The child: the request as JSON on standard input, both files written, exit 0; or one
    line on standard error and exit 1."""
    try:
        request = json.loads(sys.stdin.read())
        reference_date = request.get("reference_date")
        targets = request.get("targets")
        write_excel_files(Path(request["staging"]), request.get("catalogue") or {},
                          reference_date=dt.date.fromisoformat(reference_date) if reference_date else None,
                          version=request.get("version") or "", min_cell=int(request["min_cell"]),
                          targets=Path(targets) if targets else None, parameters=request.get("parameters"))
    except Exception as exc:  # noqa: BLE001 - one line for the gate, no traceback
        detail = next(iter(str(exc).splitlines()), "")
        print(f"{INDICATORS_XLSX} / {INDIKATORER_CSV}: {type(exc).__name__}"
              + (f": {detail}" if detail else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
