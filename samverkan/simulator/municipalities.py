"""Municipality profiles: everything municipality-specific the simulator needs.

A :class:`Municipality` says who the municipality is (code, name, organisation number, the
municipal huvudman's display name), where its reference data lies (the ``ref_*.csv`` files a
municipality keeps in ``<SAMVERKAN_HOME>/reference/``, here in
``samverkan/simulator/municipalities/<key>/``) and what its sources look like beyond that
reference: the school units its SS 12000 platform serves (one of them may be missing from its
``ref_skolenheter.csv``), the independent huvudmän, the handling district its case system writes
per stadsdelsområde, where people outside the SSPF areas live, a district name its police write that
the reference does not know, and how the areas shift the risk behind absence, reports and
suspicions.

The profiles carry no ``ref_brottskoder.csv``: the product's default
(``samverkan/config/defaults/ref_brottskoder.csv``) applies, resolved by
:func:`samverkan.config.reference.reference_file`.

``STOCKHOLM`` is the default and generates exactly what the simulator generated before profiles
existed; ``MALMO`` is a second, smaller municipality. ``profile(name)`` looks one up and
``write_reference(m, directory)`` copies its reference files into a municipality's reference
folder.
"""

from __future__ import annotations

import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "municipalities"
REFERENCE_TABLES = ("ref_stadsdelsomraden", "ref_sspf_omraden", "ref_stadsdelar",
                    "ref_skolenheter", "ref_indicator_targets")


@dataclass(frozen=True)
class SchoolUnit:
    """A school unit the municipality's SS 12000 platform serves.

    huvudman: index into :attr:`Municipality.independent_huvudman`, or None for a municipal
    unit (its parent organisation is the municipality)."""

    code: str
    name: str
    huvudman: int | None = None


@dataclass(frozen=True)
class Municipality:
    """A municipality profile (see the module docstring).

    key: short lower-case name (``profile(key)`` finds it).
    code, name, organisation_number: kommunkod, name (the police file's ``Kommun`` and the
        ``stad`` area's name) and organisation number (the municipal huvudman's; a unit whose
        huvudman has it is ``kommunal``).
    huvudman_name: display name of the municipal huvudman in SS 12000 ("Stockholms stad").
    reference_dir: directory of the profile's ``ref_*.csv`` (no ``ref_brottskoder.csv``).
    school_units: the units SS 12000 serves, in code order. May include a unit missing from
        ``ref_skolenheter.csv`` (its pupils count in the city and ``skolenhet`` rows only).
    independent_huvudman: display names of the independent huvudmän (index = SchoolUnit.huvudman).
    independent_unreported: share of lessons never reported, per independent huvudman
        (municipal units draw 0.5-2.5 %).
    case_districts: (stadsdelsområde code, handling district the case system writes) for every
        stadsdelsområde where the simulated children live, in the order the simulator draws
        them; the name is the stadsdelsområde's own (``ref_stadsdelsomraden``): the case system
        holds the district that handles the matter, never a neighbourhood.
    other_areas: stadsdelsområde codes where people outside every SSPF area live.
    unknown_police_district: a district name the police write that ``ref_stadsdelar`` lacks.
    area_effects: (home area code, shift of the latent risk score); every other home area
        gets ``default_area_effect``.
    """

    key: str
    code: str
    name: str
    organisation_number: str
    huvudman_name: str
    reference_dir: Path
    school_units: tuple[SchoolUnit, ...]
    independent_huvudman: tuple[str, ...]
    independent_unreported: tuple[float, ...]
    case_districts: tuple[tuple[str, str], ...]
    other_areas: tuple[str, ...]
    unknown_police_district: str
    area_effects: tuple[tuple[str, float], ...]
    default_area_effect: float = -0.2

    def __post_init__(self) -> None:
        codes = [u.code for u in self.school_units]
        if codes != sorted(codes) or len(set(codes)) != len(codes):
            raise ValueError(f"{self.key}: school units must be unique and in code order")
        if len(self.independent_unreported) != len(self.independent_huvudman):
            raise ValueError(f"{self.key}: one unreported share per independent huvudman")
        for u in self.school_units:
            if u.huvudman is not None and not 0 <= u.huvudman < len(self.independent_huvudman):
                raise ValueError(f"{self.key}: unit {u.code} names an unknown huvudman")
        areas = [a for a, _ in self.case_districts]
        if not set(self.other_areas) <= set(areas):
            raise ValueError(f"{self.key}: every other area needs a case-system district name")

    @property
    def case_district_by_area(self) -> dict[str, str]:
        return dict(self.case_districts)

    @property
    def area_effect(self) -> dict[str, float]:
        return dict(self.area_effects)

    def reference_files(self) -> list[Path]:
        """The profile's reference CSVs (``ref_brottskoder`` is the product's default)."""
        return [self.reference_dir / f"{table}.csv" for table in REFERENCE_TABLES]


STOCKHOLM = Municipality(
    key="stockholm",
    code="0180",
    name="Stockholm",
    organisation_number="212000-0142",
    huvudman_name="Stockholms stad",
    reference_dir=PROFILES_DIR / "stockholm",
    school_units=(
        SchoolUnit("29384011", "Bredängsskolan"),
        SchoolUnit("29384012", "Sätraskolan"),
        SchoolUnit("29384013", "Läroverket Bredäng", 0),
        SchoolUnit("29384014", "Skogsängsskolan"),
        SchoolUnit("29384021", "Skärholmsskolan"),
        SchoolUnit("29384022", "Vårbergsskolan"),
        SchoolUnit("29384023", "Läroverket Skärholmen", 0),
        SchoolUnit("29384024", "Vårängsskolan"),
        SchoolUnit("29384031", "Rågsvedsskolan"),
        SchoolUnit("29384032", "Kunskapsbron Rågsved", 1),
        SchoolUnit("29384033", "Hagsätraskolan"),
        SchoolUnit("29384034", "Kunskapsbron Hagsätra", 1),
        SchoolUnit("29384041", "Östbergaskolan"),
        SchoolUnit("29384042", "Östbergahöjdens skola"),
        SchoolUnit("29384043", "Montessoriskolan Ängen", 2),
    ),
    independent_huvudman=(
        "Läroverket Söder AB",
        "Kunskapsbron Friskolor AB",
        "Föräldrakooperativet Ängen ek. för.",
    ),
    independent_unreported=(0.04, 0.16, 0.09),
    case_districts=(
        ("SKH", "Skärholmen"),
        ("EAV", "Enskede-Årsta-Vantör"),
        ("SOD", "Södermalm"),
        ("KUN", "Kungsholmen"),
        ("FAR", "Farsta"),
    ),
    other_areas=("SOD", "KUN", "FAR"),
    unknown_police_district="Hägersten",  # a real district the reference does not list
    area_effects=(("SKH-SV", 0.15), ("EAV-RA", 0.10), ("SKH-BS", 0.05), ("EAV-OB", 0.0)),
)

MALMO = Municipality(
    key="malmo",
    code="1280",
    name="Malmö",
    organisation_number="212000-1124",
    huvudman_name="Malmö stad",
    reference_dir=PROFILES_DIR / "malmo",
    school_units=(
        SchoolUnit("61827011", "Hyllieskolan"),
        SchoolUnit("61827012", "Holmaskolan"),
        SchoolUnit("61827013", "Kunskapsporten Hyllie", 0),
        SchoolUnit("61827021", "Lindängsskolan"),
        SchoolUnit("61827022", "Nydalaskolan"),
        SchoolUnit("61827031", "Rosengårdsskolan"),
        SchoolUnit("61827032", "Sundsskolan Rosengård", 1),
        SchoolUnit("61827041", "Oxievångsskolan"),
        SchoolUnit("61827042", "Montessoriskolan Käglinge", 2),
        # opened this school year; not yet in the municipality's ref_skolenheter.csv
        SchoolUnit("61827051", "Sundsskolan Kulladal", 1),
    ),
    independent_huvudman=(
        "Kunskapsporten Skåne AB",
        "Sundsskolorna AB",
        "Montessoriföreningen Käglinge ek. för.",
    ),
    independent_unreported=(0.05, 0.12, 0.07),
    # the case system writes the stadsområde's name; the police write neighbourhoods
    case_districts=(("SOR", "Söder"), ("OST", "Öster")),
    other_areas=("SOR", "OST"),  # the parts of the stadsområden outside the SSPF areas
    unknown_police_district="Limhamn",
    area_effects=(("OST-RO", 0.15), ("SOR-FO", 0.10), ("SOR-HY", 0.05), ("OST-OX", 0.0)),
)

PROFILES: dict[str, Municipality] = {m.key: m for m in (STOCKHOLM, MALMO)}


def profile(name: str) -> Municipality:
    """The profile called ``name`` ("stockholm", "malmo"; case and å/ä/ö do not matter)."""
    key = unicodedata.normalize("NFKD", name.strip().lower()).encode("ascii", "ignore").decode()
    try:
        return PROFILES[key]
    except KeyError:
        raise ValueError(f"unknown municipality profile {name!r}; known: "
                         f"{', '.join(PROFILES)}") from None


def write_reference(m: Municipality, directory: Path | str) -> list[Path]:
    """Copy the profile's reference CSVs into ``directory`` (a municipality's
    ``<SAMVERKAN_HOME>/reference/``; created when missing, files of the same name replaced).
    ``ref_brottskoder.csv`` is not written: the product's default applies. Returns the paths
    written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source, directory / source.name))
            for source in m.reference_files()]
