"""Write the simulated police deliveries as the daily CSV files of the file drop.

One file per delivery day, ``polis_YYYYMMDD.csv``, written the way Swedish desktop tools
export them: ``;``-separated, a Swedish header, CRLF line endings, and per file either UTF-8
with a byte-order mark or Windows-1252 (``Population.police_rows.file_encoding``). Dates are
``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM``; Brottskod keeps its leading zero.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd

from samverkan.simulator.population import Population

HEADER = ["Diarienummer", "Brottsdatum", "Anmälningsdatum", "Brottskod", "Brottsbenämning",
          "Kommun", "Stadsdel", "Personnummer", "Roll", "Ålder", "Status", "Senast ändrad"]
ENCODINGS = ("utf-8-sig", "cp1252")


def police_file_name(day: dt.date) -> str:
    return f"polis_{day:%Y%m%d}.csv"


def _text(value: object, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column == "Senast ändrad":
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    if column in ("Brottsdatum", "Anmälningsdatum"):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    return str(value)


def write_police_files(pop: Population, inbox: Path) -> list[Path]:
    """Write one CSV per delivery day into ``inbox`` (created if missing); the paths, by date.

    Files of the same name are overwritten; other files in the inbox are left alone.
    """
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    rows = pop.police_rows
    missing = [c for c in [*HEADER, "file_date", "file_encoding"] if c not in rows.columns]
    if missing:
        raise ValueError(f"police_rows lacks columns {missing}")
    columns = {c: [_text(v, c) for v in rows[c].tolist()] for c in HEADER}
    written: list[Path] = []
    for file_date, positions in rows.groupby("file_date", sort=True).indices.items():
        encodings = set(rows["file_encoding"].iloc[positions])
        if len(encodings) != 1 or not encodings <= set(ENCODINGS):
            raise ValueError(f"file {police_file_name(file_date)}: one encoding of {ENCODINGS} "
                             "expected")
        encoding = encodings.pop()
        path = inbox / police_file_name(file_date)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
            writer.writerow(HEADER)
            for i in sorted(positions):
                writer.writerow([columns[c][i] for c in HEADER])
        tmp.replace(path)
        written.append(path)
    return written
