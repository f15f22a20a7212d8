"""The municipality's reference data: CSV files in ``<SAMVERKAN_HOME>/reference/``.

Each file is the municipality's own (``samverkan init`` writes templates, the demo writes
Stockholm's); only the offence-code table ships with the product as a default a
municipality may override by writing its own ``ref_brottskoder.csv``. The files are read and
checked (columns, values, unknown codes, duplicates) before anything runs; every problem
names the file, the line and what is wrong. A run loads them into the analytics warehouse
(schema ``reference``), where the dbt project reads them as the source ``reference``, and
the publication's build fingerprint covers their content, so a changed file changes the next
publication.

Files are UTF-8 (a byte-order mark, as Excel writes it, is accepted), with ``,`` or ``;``
between the fields and a header line naming the columns.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from samverkan.config.settings import DBT_PROJECT_DIR, ConfigError

REFERENCE_DIR_NAME = "reference"
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"    # shipped defaults (offence codes)
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"  # what `samverkan init` starts from
SCHEMA_NAME = "reference"  # in the analytics warehouse
AREA_LEVELS = ("stad", "stadsdelsomrade", "sspf_omrade", "skolenhet")
OFFENCE_CATEGORIES = ("våld", "rån", "narkotika", "stöld", "skadegörelse", "vapen", "hot")
HUVUDMAN_KINDS = ("kommunal", "fristående")


@dataclass(frozen=True)
class Column:
    name: str
    help: str
    required: bool = True        # a value must be given on every line
    optional_column: bool = False  # the column itself may be left out of the file
    pattern: str | None = None
    pattern_help: str = ""
    sql_type: str = "varchar"


@dataclass(frozen=True)
class Table:
    name: str
    help: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    has_default: bool = False  # the product ships a default file

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"


_AREA_CODE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,19}"
_AREA_CODE_HELP = "a short code of letters, digits, - or _ (at most 20)"
_SHARE = r"(0(\.\d+)?|1(\.0+)?|\.\d+)"

TABLES: tuple[Table, ...] = (
    Table("ref_stadsdelsomraden", "the stadsdelsområden (district administrations) of the municipality; "
          "the case system's handling district (stadsdel) is matched to a name here, else a code", (
        Column("stadsdelsomrade_code", "short code", pattern=_AREA_CODE, pattern_help=_AREA_CODE_HELP),
        Column("stadsdelsomrade_name", "name as the report shows it and as the case system writes the "
               "handling district (compared without surrounding spaces)"),
    ), key=("stadsdelsomrade_code",)),
    Table("ref_sspf_omraden", "the SSPF areas and the stadsdelsområde each lies in", (
        Column("sspf_omrade_code", "short code", pattern=_AREA_CODE, pattern_help=_AREA_CODE_HELP),
        Column("sspf_omrade_name", "name as the report shows it"),
        Column("stadsdelsomrade_code", "its stadsdelsområde (a code of ref_stadsdelsomraden.csv)"),
    ), key=("sspf_omrade_code",)),
    Table("ref_stadsdelar", "district names as the police file (Stadsdel, the offence location) writes "
          "them, mapped to an area", (
        Column("stadsdel_name", "the name exactly as the source writes it (compared without "
               "surrounding spaces)"),
        Column("stadsdelsomrade_code", "its stadsdelsområde (a code of ref_stadsdelsomraden.csv)"),
        Column("sspf_omrade_code", "its SSPF area (a code of ref_sspf_omraden.csv); empty where the "
               "name covers more than one SSPF area or none", required=False),
    ), key=("stadsdel_name",)),
    Table("ref_skolenheter", "school units (skolenhetskod) and the SSPF area each belongs to", (
        Column("school_unit_code", "Skolverket's skolenhetskod, 8 digits", pattern=r"\d{8}",
               pattern_help="8 digits (Skolverket's skolenhetskod)"),
        Column("school_unit_name", "the unit's name (for people; the report uses SS 12000's)",
               required=False, optional_column=True),
        Column("huvudman", "kommunal or fristående (for people; the pipeline derives it from "
               "SS 12000)", required=False, optional_column=True,
               pattern="|".join(HUVUDMAN_KINDS), pattern_help=" or ".join(HUVUDMAN_KINDS)),
        Column("sspf_omrade_code", "the unit's SSPF area (a code of ref_sspf_omraden.csv)"),
    ), key=("school_unit_code",)),
    Table("ref_indicator_targets", "targets of the follow-up: per share indicator, optionally per "
          "area level or area; the most specific row wins", (
        Column("indicator_id", "a share (andel) indicator of the catalogue"),
        Column("area_level", "stad, stadsdelsomrade, sspf_omrade or skolenhet; empty for every level",
               required=False, pattern="|".join(AREA_LEVELS), pattern_help=", ".join(AREA_LEVELS)),
        Column("area_code", "an area code of that level; empty for every area", required=False),
        Column("target", "the target share, 0–1 (e.g. 0.10)", pattern=_SHARE,
               pattern_help="a share from 0 to 1 with a decimal point, e.g. 0.10",
               sql_type="decimal(9, 6)"),
        Column("direction", "lägre (lower is better) or högre", pattern="lägre|högre",
               pattern_help="lägre or högre"),
        Column("tolerance", "how far past the target is still 'gul', 0–1", pattern=_SHARE,
               pattern_help="a share from 0 to 1 with a decimal point, e.g. 0.03",
               sql_type="decimal(9, 6)"),
    ), key=("indicator_id", "area_level", "area_code")),
    Table("ref_brottskoder", "police offence codes → the category the indicators use", (
        Column("brottskod", "4-digit offence code", pattern=r"\d{4}", pattern_help="4 digits"),
        Column("brottsbenamning", "offence name", required=False),
        Column("brottskategori", "category: " + ", ".join(OFFENCE_CATEGORIES),
               pattern="|".join(OFFENCE_CATEGORIES), pattern_help=", ".join(OFFENCE_CATEGORIES)),
    ), key=("brottskod",), has_default=True),
)
TABLES_BY_NAME = {t.name: t for t in TABLES}


class ReferenceError(ConfigError):
    """The reference files have problems; each names the file, the line and what is wrong."""


def reference_file(reference_dir: Path, table: str) -> Path:
    """The CSV of ``table`` (e.g. ``ref_brottskoder``): the municipality's file, or the
    product's default where the product ships one and the municipality has none."""
    own = Path(reference_dir) / f"{table}.csv"
    if own.exists() or not TABLES_BY_NAME[table].has_default:
        return own
    return DEFAULTS_DIR / f"{table}.csv"


@functools.cache
def share_indicators() -> tuple[str, ...]:
    """The catalogue's share (``andel``) indicators, the ones that can have a target: from the
    indicator models' YAML (``unit: andel``)."""
    import yaml

    ids = []
    for path in sorted((DBT_PROJECT_DIR / "models" / "marts" / "indicators").glob("ind_*.yml")):
        for model in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            meta = model.get("config", {}).get("meta", {})
            if meta.get("unit") == "andel":
                ids.append(meta["indicator_id"])
    return tuple(ids)


@dataclass
class ReferenceData:
    """The checked rows of every table (values trimmed, optional columns filled with ''), the
    file each came from, and the line number of each row."""

    directory: Path
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for table in TABLES:
            digest.update(table.name.encode())
            for row in self.rows.get(table.name, []):
                digest.update(repr(sorted(row.items())).encode())
        return digest.hexdigest()


def _dialect(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a reference CSV as trimmed texts by column (UTF-8, a byte-order mark
    accepted, ``,`` or ``;`` between fields), for readers of files :func:`read_reference`
    has checked."""
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text), delimiter=_dialect(text.split("\n", 1)[0]))
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


# Characters no CSV text holds (tab, line feed and carriage return are text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _read_rows(table: Table, path: Path, problems: list[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(f"{path}: missing ({table.help}); `samverkan init` writes a template")
        return []
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
        return []
    body = data.removeprefix(codecs.BOM_UTF8)  # Excel's byte-order mark
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        problems.append(f"{path}:{line}: not UTF-8 text (byte 0x{body[exc.start]:02x}); save it "
                        "as CSV UTF-8")
        return []
    control = _CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        char = control.group()
        what = "a NUL byte" if char == "\0" else f"the control character U+{ord(char):04X}"
        problems.append(f"{path}:{line}: holds {what}: not a text file (save it as CSV UTF-8)")
        return []
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        problems.append(f"{path}:1: no header line; expected the columns "
                        + ", ".join(c.name for c in table.columns))
        return []
    reader = csv.reader(io.StringIO(text), delimiter=_dialect(lines[0]))
    header = [h.strip() for h in next(reader)]
    names = [c.name for c in table.columns]
    wrong = False
    for h in header:
        if h not in names:
            close = difflib.get_close_matches(h, names, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{path}:1: unknown column '{h}'{hint}; expected " + ", ".join(names))
            wrong = True
    for column in table.columns:
        if column.name not in header and not column.optional_column:
            problems.append(f"{path}:1: column '{column.name}' is missing ({column.help})")
            wrong = True
    if len(set(header)) != len(header):
        problems.append(f"{path}:1: a column is named twice")
        wrong = True
    if wrong:
        return []
    rows = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(f"{path}:{line}: {len(fields)} fields, the header has {len(header)}")
            continue
        values = {h: v.strip() for h, v in zip(header, fields, strict=True)}
        rows.append((line, {c.name: values.get(c.name, "") for c in table.columns}))
    return rows


def _check_values(table: Table, path: Path, rows: list[tuple[int, dict[str, str]]],
                  problems: list[str]) -> None:
    for line, row in rows:
        for column in table.columns:
            value = row[column.name]
            if not value:
                if column.required:
                    problems.append(f"{path}:{line}: {column.name} is empty ({column.help})")
                continue
            if column.pattern and not re.fullmatch(column.pattern, value):
                problems.append(f"{path}:{line}: {column.name} must be {column.pattern_help}, "
                                f"got '{value[:40]}'")


def _check_duplicates(table: Table, path: Path, rows: list[tuple[int, dict[str, str]]],
                      problems: list[str]) -> None:
    first: dict[tuple[str, ...], tuple[int, dict[str, str]]] = {}
    for line, row in rows:
        key = tuple(row[k] for k in table.key)
        if key in first:
            seen_line, seen = first[key]
            what = " / ".join(v or "(empty)" for v in key)
            if table.name == "ref_skolenheter" and seen["sspf_omrade_code"] != row["sspf_omrade_code"]:
                problems.append(f"{path}:{line}: school unit {what} is in two SSPF areas: "
                                f"{seen['sspf_omrade_code']} (line {seen_line}) and "
                                f"{row['sspf_omrade_code']}")
            elif table.name == "ref_stadsdelar":
                problems.append(f"{path}:{line}: stadsdel '{what}' is mapped twice "
                                f"(also on line {seen_line})")
            else:
                problems.append(f"{path}:{line}: {', '.join(table.key)} {what} is listed twice "
                                f"(also on line {seen_line})")
        else:
            first[key] = (line, row)


def _check_codes(data: dict[str, list[tuple[int, dict[str, str]]]], files: dict[str, Path],
                 problems: list[str]) -> None:
    """Codes that must exist in another file, and the SSPF area of a stadsdel in its
    stadsdelsområde."""
    sdo = {r["stadsdelsomrade_code"] for _, r in data.get("ref_stadsdelsomraden", [])}
    sspf = {r["sspf_omrade_code"]: r["stadsdelsomrade_code"] for _, r in data.get("ref_sspf_omraden", [])}
    units = {r["school_unit_code"] for _, r in data.get("ref_skolenheter", [])}

    def unknown(table: str, line: int, column: str, value: str, other: str) -> None:
        problems.append(f"{files[table]}:{line}: {column} '{value}' is not in {other}.csv")

    # the case system's handling district is matched to a name, else a code: each must name
    # one stadsdelsområde only
    names: dict[str, tuple[int, str]] = {}
    for line, r in data.get("ref_stadsdelsomraden", []):
        name, code = r["stadsdelsomrade_name"].strip(), r["stadsdelsomrade_code"]
        if name in names and names[name][1] != code:
            problems.append(f"{files['ref_stadsdelsomraden']}:{line}: stadsdelsomrade_name '{name}' is "
                            f"also the name of {names[name][1]} (line {names[name][0]})")
        names.setdefault(name, (line, code))
    for line, r in data.get("ref_stadsdelsomraden", []):
        name, code = r["stadsdelsomrade_name"].strip(), r["stadsdelsomrade_code"]
        if name in sdo and name != code:
            problems.append(f"{files['ref_stadsdelsomraden']}:{line}: stadsdelsomrade_name '{name}' is "
                            "the code of another stadsdelsområde")
    for line, r in data.get("ref_sspf_omraden", []):
        if r["stadsdelsomrade_code"] and sdo and r["stadsdelsomrade_code"] not in sdo:
            unknown("ref_sspf_omraden", line, "stadsdelsomrade_code", r["stadsdelsomrade_code"],
                    "ref_stadsdelsomraden")
    for line, r in data.get("ref_stadsdelar", []):
        if r["stadsdelsomrade_code"] and sdo and r["stadsdelsomrade_code"] not in sdo:
            unknown("ref_stadsdelar", line, "stadsdelsomrade_code", r["stadsdelsomrade_code"],
                    "ref_stadsdelsomraden")
        code = r["sspf_omrade_code"]
        if code and sspf and code not in sspf:
            unknown("ref_stadsdelar", line, "sspf_omrade_code", code, "ref_sspf_omraden")
        elif code in sspf and r["stadsdelsomrade_code"] and sspf[code] != r["stadsdelsomrade_code"]:
            problems.append(f"{files['ref_stadsdelar']}:{line}: stadsdel '{r['stadsdel_name']}' is in "
                            f"{r['stadsdelsomrade_code']}, but its SSPF area {code} lies in {sspf[code]} "
                            "(ref_sspf_omraden.csv)")
    for line, r in data.get("ref_skolenheter", []):
        if r["sspf_omrade_code"] and sspf and r["sspf_omrade_code"] not in sspf:
            unknown("ref_skolenheter", line, "sspf_omrade_code", r["sspf_omrade_code"], "ref_sspf_omraden")
    known = {"stadsdelsomrade": sdo, "sspf_omrade": set(sspf), "skolenhet": units}
    indicators = share_indicators()
    for line, r in data.get("ref_indicator_targets", []):
        if r["indicator_id"] and r["indicator_id"] not in indicators:
            problems.append(f"{files['ref_indicator_targets']}:{line}: indicator_id '{r['indicator_id']}' "
                            "is not a share (andel) indicator of the catalogue; one of "
                            + ", ".join(indicators))
        if r["area_code"] and not r["area_level"]:
            problems.append(f"{files['ref_indicator_targets']}:{line}: area_code "
                            f"'{r['area_code']}' needs its area_level")
        elif (r["area_code"] and known.get(r["area_level"])
              and r["area_code"] not in known[r["area_level"]]):  # not when that file failed
            problems.append(f"{files['ref_indicator_targets']}:{line}: area_code '{r['area_code']}' is "
                            f"not a {r['area_level']} of the reference files")


def read_reference(directory: Path) -> ReferenceData:
    """Read and check every reference file of ``directory``; raise :class:`ReferenceError`
    with every problem found."""
    directory = Path(directory)
    problems: list[str] = []
    if not directory.is_dir():
        raise ReferenceError(f"{directory}: the reference folder does not exist; `samverkan init` "
                             "writes templates of its files")
    data: dict[str, list[tuple[int, dict[str, str]]]] = {}
    files: dict[str, Path] = {}
    for table in TABLES:
        path = reference_file(directory, table.name)
        files[table.name] = path
        rows = _read_rows(table, path, problems)
        _check_values(table, path, rows, problems)
        _check_duplicates(table, path, rows, problems)
        data[table.name] = rows
    _check_codes(data, files, problems)
    for table in ("ref_stadsdelsomraden", "ref_sspf_omraden", "ref_skolenheter"):
        reported = any(p.startswith(str(files[table])) for p in problems)
        if files[table].exists() and not data[table] and not reported:
            problems.append(f"{files[table]}: no rows ({TABLES_BY_NAME[table].help})")
    if problems:
        raise ReferenceError(problems)
    return ReferenceData(directory, {t: [r for _, r in rows] for t, rows in data.items()}, files)


def load_reference(conn: duckdb.DuckDBPyConnection, data: ReferenceData, catalog: str | None = None) -> None:
    """(Re)create the ``reference`` tables from checked rows on ``conn`` (in ``catalog``, an
    attached database, or the connection's own)."""
    prefix = f"{catalog}." if catalog else ""
    conn.execute(f"create schema if not exists {prefix}{SCHEMA_NAME}")
    for table in TABLES:
        columns = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns)
        name = f"{prefix}{SCHEMA_NAME}.{table.name}"
        conn.execute(f"create or replace table {name} ({columns})")
        rows = [tuple(row[c.name] or None for c in table.columns) for row in data.rows[table.name]]
        if rows:
            marks = ", ".join("?" for _ in table.columns)
            conn.executemany(f"insert into {name} values ({marks})", rows)


def write_templates(directory: Path, tables: Iterable[str] | None = None) -> list[Path]:
    """Templates for ``samverkan init``: a header line, and for the targets the product's
    suggested targets per indicator; existing files are left as they are."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in TABLES:
        if table.has_default or (tables is not None and table.name not in tables):
            continue
        path = directory / table.file_name
        if path.exists():
            continue
        template = TEMPLATES_DIR / table.file_name
        text = (template.read_text(encoding="utf-8") if template.exists()
                else ",".join(c.name for c in table.columns) + "\n")
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
