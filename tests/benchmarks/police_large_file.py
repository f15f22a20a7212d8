"""Benchmark (not a test): pull + land + validate + load one ~200 MB police file.

Writes a valid ``polis_YYYYMMDD.csv`` of about 1.25 million rows into a temporary inbox, runs the
real extract (``run_extract`` with the Great Expectations batch validator, as ``samverkan run``
does; ``--no-validate`` skips it) and prints the wall time and the peak RSS of this process.
Target: peak RSS at most 1 GiB.

    PREFECT_HOME=/tmp/prefect-bench python tests/benchmarks/police_large_file.py [--rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

HEADER = ("Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;"
          "Personnummer;Roll;Ålder;Status;Senast ändrad")


def write_file(path: Path, rows: int) -> int:
    day = dt.date.today() - dt.timedelta(days=1)
    with path.open("wb") as fh:
        fh.write(b"\xef\xbb\xbf" + HEADER.encode("utf-8") + b"\r\n")
        buf = []
        for i in range(rows):
            d = day - dt.timedelta(days=i % 900)
            buf.append(
                f"5000-K{i:07d}-25;{d.isoformat()};{d.isoformat()};{301 + i % 50:04d};"
                f"Misshandel utomhus, ej grov;Stockholm;Enskede-Årsta-Vantör;"
                f"2013{1 + i % 12:02d}{1 + i % 28:02d}-{i % 10000:04d};"
                f"{'Misstänkt' if i % 3 else 'Målsägande'};{10 + i % 8};"
                f"{'Aktiv' if i % 17 else 'Makulerad'};{d.isoformat()} 10:{i % 60:02d}\r\n")
            if len(buf) == 10_000:
                fh.write("".join(buf).encode("utf-8"))
                buf = []
        fh.write("".join(buf).encode("utf-8"))
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_250_000)
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args()

    from _extract_measure import accounting, measure_extract  # beside this script

    from samverkan.config import Paths, PoliceConfig
    from samverkan.sources.police import PoliceExtractor

    with tempfile.TemporaryDirectory(prefix="police-bench-") as tmp:
        root = Path(tmp)
        inbox = root / "inbox"
        inbox.mkdir()
        size = write_file(inbox / f"polis_{dt.date.today():%Y%m%d}.csv", args.rows)
        p = Paths(root / "home").ensure()
        extractor = PoliceExtractor(PoliceConfig(inbox=inbox))
        m = measure_extract(p, extractor, validate=not args.no_validate)
        print(f"file: {size / 1e6:.0f} MB, {args.rows:,} rows; validated: {not args.no_validate}")
        print(accounting(m))
        print(f"wall time: {m.seconds:.1f} s")
        print(f"peak RSS: {m.peak_kib / 1024:.0f} MiB (before the extract: {m.before_kib / 1024:.0f} MiB); "
              f"target <= 1024 MiB: {'met' if m.peak_kib <= 1024 * 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
