"""``samverkan init``: a commented ``samverkan.toml`` and the reference templates in an empty
data directory; ``samverkan init --from-ss12000`` pre-fills the school-unit file from the
configured SS 12000 API's ``/organisations``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samverkan.config.reference import csv_rows, write_templates
from samverkan.config.settings import (
    CONFIG_FILE_NAME,
    SECTION_HELP,
    Option,
    Paths,
    Settings,
    schema,
)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _option_lines(key: str, option: Option) -> list[str]:
    lines = [f"# {option.help}"] if option.help else []
    if option.required:
        lines.append(f"{key} = \"\"  # required, e.g. {_toml_value(option.example)}")
    elif option.default is not None:
        lines.append(f"# {key} = {_toml_value(option.default)}")
    else:
        example = f" e.g. {_toml_value(option.example)}" if option.example is not None else ""
        lines.append(f"# {key} = {_toml_value(option.example) if option.example is not None else '…'}"
                     if example else f"# {key} =")
    return lines


def config_template() -> str:
    """The whole ``samverkan.toml``: every section and key with its help; required keys empty
    (a run refuses to start until they are filled in), optional ones commented out at their
    default."""
    out = ["# Samverkan configuration. Fill in the empty values, then run `samverkan check`.",
           "# Secrets never go in this file: name the environment variables that hold them.", ""]
    for section, options in schema().items():
        out.append(f"# {SECTION_HELP.get(section, '')}")
        out.append(f"[{section}]")
        for key, option in options.items():
            out.extend(_option_lines(key, option))
        out.append("")
    return "\n".join(out)


@dataclass
class InitResult:
    config: Path
    config_written: bool
    templates: list[Path]


def init_home(p: Paths, config: Path | None = None) -> InitResult:
    """Create the data directory's zones and write ``samverkan.toml`` (unless it exists) and
    the missing reference templates."""
    p.ensure()  # the data directory and its zones, with their modes
    target = config or p.home / CONFIG_FILE_NAME
    written = False
    if not target.exists():
        target.write_text(config_template(), encoding="utf-8")
        written = True
    return InitResult(target, written, write_templates(p.reference))


# --- --from-ss12000 ---------------------------------------------------------------------------

def _digits(text: Any) -> str:
    return re.sub(r"[^0-9]", "", str(text or ""))


def school_units_from_organisations(records: list[dict[str, Any]], organisation_number: str,
                                    ) -> list[dict[str, str]]:
    """Code, name and huvudman kind of every school unit in SS 12000 ``/organisations``, the
    kind derived as the pipeline derives it: ``kommunal`` when the unit's parent organisation
    (its huvudman) has the municipality's organisation number, ``fristående`` otherwise."""
    by_id = {r.get("id"): r for r in records}
    own = _digits(organisation_number)
    units: dict[str, dict[str, str]] = {}
    for record in records:
        code = record.get("schoolUnitCode")
        if record.get("organisationType") != "Skolenhet" or not code:
            continue
        parent = by_id.get((record.get("parentOrganisation") or {}).get("id")) or {}
        kind = "kommunal" if _digits(parent.get("organisationNumber")) == own else "fristående"
        units[str(code)] = {"school_unit_code": str(code),
                            "school_unit_name": str(record.get("displayName") or ""),
                            "huvudman": kind, "sspf_omrade_code": ""}
    return [units[c] for c in sorted(units)]


def fetch_organisations(settings: Settings) -> list[dict[str, Any]]:
    from samverkan.sources.ss12000 import SS12000Client

    if settings.ss12000 is None:
        from samverkan.config.settings import ConfigError

        raise ConfigError(f"no [ss12000] section in {settings.config_file}: fill it in first")
    records: list[dict[str, Any]] = []
    with SS12000Client(settings.ss12000, max_attempts=2) as client:
        for page in client.pages("organisations"):
            records.extend(r for r in page.body.get("data") or [] if isinstance(r, dict))
    return records


def prefill_school_units(settings: Settings, records: list[dict[str, Any]]) -> tuple[Path, int, int]:
    """Write ``ref_skolenheter.csv`` from ``records``; SSPF areas already filled in are kept
    (units no longer served are kept too). Returns (file, units written, units without an
    SSPF area)."""
    path = settings.paths.reference / "ref_skolenheter.csv"
    existing = {r["school_unit_code"]: r for r in csv_rows(path)} if path.exists() else {}
    units = {u["school_unit_code"]: u for u in school_units_from_organisations(
        records, settings.municipality.organisation_number)}
    for code, row in existing.items():
        if code in units:
            units[code]["sspf_omrade_code"] = row.get("sspf_omrade_code", "")
        else:
            units[code] = {"school_unit_code": code, "school_unit_name": row.get("school_unit_name", ""),
                           "huvudman": row.get("huvudman", ""),
                           "sspf_omrade_code": row.get("sspf_omrade_code", "")}
    out = io.StringIO()
    writer = csv.DictWriter(out, ["school_unit_code", "school_unit_name", "huvudman", "sspf_omrade_code"],
                            lineterminator="\n")
    writer.writeheader()
    for code in sorted(units):
        writer.writerow(units[code])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path, len(units), sum(1 for u in units.values() if not u["sspf_omrade_code"])
