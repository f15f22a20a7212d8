"""Secondary suppression of the published indicator table (privacy.md, "Disclosure control").

Primary suppression hides the small cells. A reader who sees the other cells of the same
indicator, period and breakdown knows how the cells relate (a city is the sum of its areas, a
total the sum of its categories) and could recover a hidden cell by subtraction. This module
hides additional cells (``sekundär``) until no hidden cell is determined by what is published.

Method:

1. Relations. Per indicator, period and additive quantity (an ``antal`` cell's count; an
   ``andel`` cell's numerator, denominator and, for inequalities, denominator − numerator)
   the cells of the area hierarchy (stad ⊇ stadsdelsområde ⊇ SSPF-område ⊇ skolenhet, codes
   from the dbt seeds) and of the breakdowns (``totalt`` ⊇ its categories) satisfy one of four
   kinds of relation, declared per indicator in :data:`RELATIONS`: ``eq`` (parent = Σ
   children), ``ge`` (parent ≥ Σ children: some units of the parent are in no child),
   ``cover`` (a unit may be in several children, each unit of the parent is in at least one:
   max child ≤ parent ≤ Σ children) and ``subset`` (parent ≥ each child). A cell that does not
   exist is zero; an existing count or denominator is at least 1, a numerator at least 0 and at
   most its denominator.
2. Heuristic (vectorised over every relation at once, repeated to a fixpoint): an ``eq``
   relation with exactly one hidden member gets a second one; a relation whose published
   members pin its hidden members (the hidden children's share of a published parent equals
   their lower bounds; a ``cover`` parent with one child) gets one more hidden member. The
   one hidden is the smallest eligible published member (children before the parent, then by
   size — the denominator of an ``andel``, the count of an ``antal`` — then a stable key).
3. Check: the linear programme of everything published (hidden quantities as variables, the
   relations with the published values as constraints) gives the range of every hidden
   quantity; a range that holds one whole number only is a disclosure, and the smallest
   published member of the smallest relation of that cell is hidden too; then back to 2.
   Screening keeps this cheap: the true values are one feasible point; a random objective
   and its opposite (components batched into programmes of a few thousand variables) show
   most ranges open; programmes that push the quantities still seen at one value up or down
   by one unit, as many at once as they can, show nearly all the rest; only what remains
   gets its own programme. After the first check only the (indicator, period) systems with
   newly hidden cells are checked again.

With ``zero_is_safe`` (the default) a numerator or a denominator − numerator that is pinned
at 0 is not a disclosure: the primary rule itself publishes 0 % and 100 % shares, and a
published parent with numerator 0 pins every part of it at 0 whatever else is hidden.

The gate does not trust this module: :mod:`samverkan.disclosure_audit` re-derives the
relations on its own and audits the published file with its own linear programmes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix, vstack
from scipy.sparse.csgraph import connected_components

from samverkan.config.reference import csv_rows
from samverkan.linear_programmes import component_rows, minimise

log = logging.getLogger(__name__)

KEY_COLUMNS = ("indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
               "breakdown_value")
INPUT_COLUMNS = (*KEY_COLUMNS, "unit", "true_numerator", "true_denominator", "primary")
PRIMARY, SECONDARY = "primär", "sekundär"

# Relation kinds (see the module docstring) and their strength: a relation that does not hold
# on the true values is weakened to the strongest weaker kind that does (WEAKER).
EQ, GE, COVER, SUBSET = "eq", "ge", "cover", "subset"
KIND_CODES = {EQ: 0, GE: 1, COVER: 2, SUBSET: 3}
WEAKER = {EQ: (GE, COVER, SUBSET), GE: (SUBSET,), COVER: (SUBSET,), SUBSET: ()}


@dataclass(frozen=True)
class IndicatorRelations:
    """How the cells of one indicator relate, for every additive quantity.

    ``areas`` says how a unit gets its areas: ``school`` (the enrolment's school unit →
    ref_skolenheter → ref_sspf_omraden), ``district`` (the police Stadsdel → ref_stadsdelar)
    or ``handling`` (the case system's handling stadsdelsområde; no SSPF area, ``sdo_sspf``
    None).
    ``stad_sdo`` is the kind of the city against its top areas: the stadsdelsområden, the SSPF
    areas without a stadsdelsområde in the seed and the school units without an SSPF area.
    ``sdo_sspf`` is the kind of a stadsdelsområde against its SSPF areas; for ``district``
    it applies to a stadsdelsområde whose every stadsdel has an SSPF area, and
    ``sdo_sspf_partial`` to one with a stadsdel without (whose units are in no SSPF row).
    ``breakdowns`` maps a breakdown to the kind of ``totalt`` against its categories, in
    every area.
    """

    areas: str
    stad_sdo: str
    sdo_sspf: str | None
    sdo_sspf_partial: str | None = None
    sspf_skolenhet: str | None = None
    stad_skolenhet: str | None = None
    breakdowns: Mapping[str, str] = field(default_factory=dict)


# School indicators: every counted pupil has an enrolment in the period, hence exactly one
# school unit, one huvudman and one årskurs 1-9. The city is every pupil: = Σ skolenhet (all
# school units, also those missing from ref_skolenheter, which count in the city only). A
# stadsdelsområde is derived from its SSPF area (ref_sspf_omraden), so = Σ its SSPF areas, and
# an SSPF area = Σ its school units (ref_skolenheter). Hence the city = Σ stadsdelsområden + Σ
# school units missing from the seed (the heuristic needs this sum spelt out: a hidden unknown
# school unit is pinned by it). totalt = Σ huvudman = Σ årskurs in every area. Sums of minutes
# and of records (ogiltig_franvaro_andel, rapporteringsgrad) are additive per pupil the same.
# (An enrolment at a school unit unknown to /organisations has no school unit and no huvudman:
# the city's equalities then hold as ≥; the check weakens them on the true values.)
SCHOOL_UNIT = IndicatorRelations(
    areas="school", stad_sdo=EQ, sdo_sspf=EQ, sspf_skolenhet=EQ, stad_skolenhet=EQ,
    breakdowns={"huvudman": EQ, "arskurs": EQ},
)
# Cross-agency and person indicators on the school area (no skolenhet rows): a person counts
# once per period with at most one area (the enrolment in the period; none, or a school unit
# missing from the seed: the city only), so the city ≥ Σ stadsdelsområden and a
# stadsdelsområde = Σ its SSPF areas (as above).
SCHOOL_AREA = IndicatorRelations(areas="school", stad_sdo=GE, sdo_sspf=EQ)
# Reports and investigations: each counts once, in at most one stadsdelsområde, the one
# handling it (blank or unknown: the city only), and in no SSPF area (the case system cannot
# place a matter there, so such cells do not exist): city ≥ Σ stadsdelsområden.
HANDLING_EVENT = IndicatorRelations(areas="handling", stad_sdo=GE, sdo_sspf=None)
# Distinct young persons in police data: a person is counted once in each area and each
# brottskategori they have an event in, so a parent is at least each part; the city also
# holds persons whose events have no district (so no upper bound from its areas); a
# stadsdelsområde whose stadsdelar all have SSPF areas is covered by them (≤ Σ), as is
# totalt by its brottskategorier (every event has one, unmapped: okänd).
POLICE_PERSONS = IndicatorRelations(areas="district", stad_sdo=SUBSET, sdo_sspf=COVER,
                                    sdo_sspf_partial=SUBSET)

# For an andel a relation holds for the numerator and the denominator, and (the numerator's
# units being a subset of the denominator's) the non-eq kinds also for denominator − numerator.
RELATIONS: dict[str, IndicatorRelations] = {
    "hog_franvaro": SCHOOL_UNIT,
    "mycket_hog_franvaro": SCHOOL_UNIT,
    "ogiltig_franvaro_andel": SCHOOL_UNIT,
    "rapporteringsgrad": SCHOOL_UNIT,
    # every report has exactly one anmälare category (blank: Okänd)
    "orosanmalningar": replace(HANDLING_EVENT, breakdowns={"anmalare": EQ}),
    "forhandsbedomning_14_dagar": replace(HANDLING_EVENT, breakdowns={"anmalare": EQ}),
    "anmalan_till_utredning": replace(HANDLING_EVENT, breakdowns={"anmalare": EQ}),
    "utredning_4_manader": HANDLING_EVENT,
    "placerade_aterforening": SCHOOL_AREA,
    "unga_misstankta": replace(POLICE_PERSONS, breakdowns={"brottskategori": COVER}),
    "unga_misstankta_upprepat": POLICE_PERSONS,
    "unga_brottsoffer": replace(POLICE_PERSONS, breakdowns={"brottskategori": COVER}),
    "hog_franvaro_med_orosanmalan": SCHOOL_AREA,
    "hog_franvaro_med_misstanke": SCHOOL_AREA,
    "misstankta_med_hog_franvaro": SCHOOL_AREA,
    # the antal_verksamheter / 3 row is the part of totalt known to all three agencies
    "kanda_av_flera": replace(SCHOOL_AREA, breakdowns={"antal_verksamheter": SUBSET}),
    "sst_effekt": SCHOOL_AREA,
    "sig_effekt": SCHOOL_AREA,
}

# The quantities of a cell: "size" (an antal's count, an andel's denominator), "num" (an
# andel's numerator) and "comp" (denominator − numerator). Lower bounds of an existing cell.
QUANTITIES = ("size", "num", "comp")
LOWER = {"size": 1.0, "num": 0.0, "comp": 0.0}
INTEGER_EPS = 1e-6


@dataclass(frozen=True)
class AreaHierarchy:
    """Area codes from the dbt seeds: SSPF area → stadsdelsområde, school unit → SSPF area,
    and the stadsdelsområden with a stadsdel (ref_stadsdelar) outside every SSPF area."""

    sspf_to_sdo: Mapping[str, str]
    school_to_sspf: Mapping[str, str]
    district_partial_sdo: frozenset[str]


def load_hierarchy(reference_dir: Path | str) -> AreaHierarchy:
    """The area hierarchy of the municipality's reference files."""
    reference = Path(reference_dir)
    sspf = {r["sspf_omrade_code"]: r["stadsdelsomrade_code"]
            for r in csv_rows(reference / "ref_sspf_omraden.csv") if r["stadsdelsomrade_code"]}
    schools = {r["school_unit_code"]: r["sspf_omrade_code"]
               for r in csv_rows(reference / "ref_skolenheter.csv") if r["sspf_omrade_code"]}
    partial: set[str] = set()
    for r in csv_rows(reference / "ref_stadsdelar.csv"):
        sdo, code = r["stadsdelsomrade_code"], r["sspf_omrade_code"]
        if not sdo:
            continue
        if not code:
            partial.add(sdo)
        elif sspf.get(code) != sdo:
            raise ValueError(f"ref_stadsdelar puts SSPF area {code} in {sdo}, ref_sspf_omraden does not")
    return AreaHierarchy(sspf, schools, frozenset(partial))


# --------------------------------------------------------------------------------------------
# The cells and their relations as arrays
# --------------------------------------------------------------------------------------------

@dataclass
class _Model:
    grp: np.ndarray                   # per cell: its (indicator, period) system
    andel: np.ndarray                 # per cell
    values: dict[str, np.ndarray]     # quantity → true value per cell (NaN: not applicable)
    rank: np.ndarray                  # per cell: position in (size, key) order
    rel_parent: np.ndarray            # per relation
    rel_kind: np.ndarray              # declared kind code (heuristic)
    rel_true_kind: np.ndarray         # kind that holds on the true values (-1: none; LP check)
    mem_rel: np.ndarray               # per member, sorted by relation
    mem_cell: np.ndarray
    mem_child: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.andel)

    @property
    def n_rel(self) -> int:
        return len(self.rel_parent)


def _links(keys: pd.DataFrame, hierarchy: AreaHierarchy,
           relations: Mapping[str, IndicatorRelations]) -> pd.DataFrame:
    """Child cell → parent cell, with the relation tag and the declared kind."""
    spec = {ind: relations[ind] for ind in keys["indicator_id"].unique()}
    parts: list[pd.DataFrame] = []
    level, code, ind = keys["area_level"], keys["area_code"], keys["indicator_id"]

    def add(child_mask: pd.Series, parent_level: str, parent_code: pd.Series, tag: str,
            kind: pd.Series, same_breakdown: bool = True) -> None:
        child = keys[child_mask & kind.notna()]
        if child.empty:
            return
        parts.append(pd.DataFrame({
            "child": child["cid"].to_numpy(),
            "grp": child["grp"].to_numpy(),
            "p_level": parent_level,
            "p_code": parent_code[child.index].to_numpy(),
            "p_breakdown": child["breakdown"].to_numpy() if same_breakdown else "totalt",
            "p_value": child["breakdown_value"].to_numpy() if same_breakdown else "totalt",
            "tag": tag if same_breakdown else ("bd:" + child["breakdown"]).to_numpy(),
            "kind": kind[child.index].to_numpy(),
        }))

    def kind_of(attr: str) -> pd.Series:
        return ind.map({i: getattr(s, attr) for i, s in spec.items()})

    stad_code = pd.Series("", index=keys.index)
    sdo_of = code.map(hierarchy.sspf_to_sdo)
    sspf_of = code.map(hierarchy.school_to_sspf)
    top = ((level == "stadsdelsomrade") | ((level == "sspf_omrade") & sdo_of.isna())
           | ((level == "skolenhet") & sspf_of.isna()))
    add(top, "stad", stad_code, "stad>top", kind_of("stad_sdo"))
    complete = ~sdo_of.isin(hierarchy.district_partial_sdo)
    district = ind.map({i: s.areas == "district" for i, s in spec.items()}).astype(bool)
    sdo_kind = kind_of("sdo_sspf").where(~district | complete, kind_of("sdo_sspf_partial"))
    add((level == "sspf_omrade") & sdo_of.notna(), "stadsdelsomrade", sdo_of, "sdo>sspf", sdo_kind)
    add((level == "skolenhet") & sspf_of.notna(), "sspf_omrade", sspf_of, "sspf>school",
        kind_of("sspf_skolenhet"))
    add(level == "skolenhet", "stad", stad_code, "stad>school", kind_of("stad_skolenhet"))
    own_code = code.where(level != "stad", "")
    for breakdown in sorted({b for s in spec.values() for b in s.breakdowns}):
        kind = ind.map({i: s.breakdowns.get(breakdown) for i, s in spec.items()})
        add(keys["breakdown"] == breakdown, "", own_code, "", kind, same_breakdown=False)
    if not parts:
        return pd.DataFrame(columns=["child", "parent", "tag", "kind"])
    links = pd.concat(parts, ignore_index=True)
    # breakdown links keep the child's area level
    bd = links["tag"].str.startswith("bd:")
    links.loc[bd, "p_level"] = keys["area_level"].to_numpy()[links.loc[bd, "child"].to_numpy()]
    parents = keys.assign(p_code=keys["area_code"].where(keys["area_level"] != "stad", ""))
    links = links.merge(
        parents[["cid", "grp", "area_level", "p_code", "breakdown", "breakdown_value"]].rename(columns={
            "cid": "parent", "area_level": "p_level", "breakdown": "p_breakdown",
            "breakdown_value": "p_value"}),
        on=["grp", "p_level", "p_code", "p_breakdown", "p_value"], how="inner")
    return links[["child", "parent", "tag", "kind"]]


def _build_model(df: pd.DataFrame, hierarchy: AreaHierarchy,
                 relations: Mapping[str, IndicatorRelations]) -> _Model:
    unknown = sorted(set(df["indicator_id"].unique()) - set(relations))
    if unknown:
        raise ValueError(f"no relations declared for indicator(s) {unknown}: declare them in RELATIONS")
    keys = pd.DataFrame({c: df[c].astype("string").fillna("") if c != "period_start" else df[c]
                         for c in KEY_COLUMNS})
    keys["cid"] = np.arange(len(df))
    keys["grp"] = keys.groupby(["indicator_id", "period_type", "period_start"], sort=False,
                               dropna=False).ngroup()
    andel = (df["unit"].astype("string") == "andel").fillna(False).to_numpy(dtype=bool)
    num = pd.to_numeric(df["true_numerator"], errors="coerce").astype("float64").to_numpy()
    den = pd.to_numeric(df["true_denominator"], errors="coerce").astype("float64").to_numpy()
    size = np.where(andel, den, num)
    if np.isnan(size).any() or (andel & np.isnan(num)).any():
        raise ValueError("every cell needs its true count (antal) or numerator and denominator (andel)")
    values = {"size": size, "num": np.where(andel, num, np.nan), "comp": np.where(andel, den - num, np.nan)}
    order = np.lexsort([keys[c].astype(str).to_numpy() for c in reversed(KEY_COLUMNS)] + [size])
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = np.arange(len(df))

    links = _links(keys, hierarchy, relations)
    rel_ids = links.groupby(["parent", "tag"], sort=True).ngroup().to_numpy()
    n_rel = int(rel_ids.max()) + 1 if len(rel_ids) else 0
    rel_parent = np.zeros(n_rel, dtype=np.int64)
    rel_parent[rel_ids] = links["parent"].to_numpy()
    rel_kind = np.full(n_rel, -1, dtype=np.int8)
    rel_kind[rel_ids] = links["kind"].map(KIND_CODES).to_numpy()
    mem_rel = np.concatenate([np.arange(n_rel), rel_ids])
    mem_cell = np.concatenate([rel_parent, links["child"].to_numpy()])
    mem_child = np.concatenate([np.zeros(n_rel, bool), np.ones(len(links), bool)])
    order = np.argsort(mem_rel, kind="stable")
    model = _Model(keys["grp"].to_numpy(), andel, values, rank, rel_parent, rel_kind, rel_kind.copy(),
                   mem_rel[order], mem_cell[order], mem_child[order])
    model.rel_true_kind = _true_kinds(model)
    return model


def _bincount(model: _Model, weights: np.ndarray) -> np.ndarray:
    return np.bincount(model.mem_rel, weights=weights.astype("float64"), minlength=model.n_rel)


def _kind_holds(model: _Model, kind: str) -> np.ndarray:
    """Per relation: does ``kind`` hold on the true values (every applicable quantity)?"""
    ok = np.ones(model.n_rel, dtype=bool)
    andel_rel = model.andel[model.rel_parent]
    child = model.mem_child
    for q in QUANTITIES:
        v = np.nan_to_num(model.values[q][model.mem_cell])
        parent = model.values[q][model.rel_parent]
        total = _bincount(model, np.where(child, v, 0.0))
        biggest = np.zeros(model.n_rel)
        np.maximum.at(biggest, model.mem_rel[child], v[child])
        if kind == EQ:
            holds = np.isclose(parent, total, rtol=0, atol=0.5)
        elif kind == GE:
            holds = parent >= total - 0.5
        elif kind == COVER:
            holds = (parent <= total + 0.5) & (parent >= biggest - 0.5)
        else:
            holds = parent >= biggest - 0.5
        ok &= np.where(andel_rel if q != "size" else True, holds, True)
    return ok


def _true_kinds(model: _Model) -> np.ndarray:
    """The declared kinds, weakened where the true values break them (e.g. a pupil whose school
    unit is unknown counts in the city but in no school unit and no huvudman)."""
    names = {v: k for k, v in KIND_CODES.items()}
    true_kind = model.rel_kind.copy()
    holds = {kind: _kind_holds(model, kind) for kind in KIND_CODES}
    for code in np.unique(model.rel_kind):
        declared = names[int(code)]
        todo = (model.rel_kind == code) & ~holds[declared]
        for weaker in WEAKER[declared]:
            fix = todo & holds[weaker]
            true_kind[fix] = KIND_CODES[weaker]
            todo &= ~fix
        true_kind[todo] = -1
    weakened = int((true_kind != model.rel_kind).sum())
    if weakened:
        log.warning("secondary suppression: %d relation(s) do not hold as declared on the true values "
                    "and are checked in a weaker form", weakened)
    return true_kind


# --------------------------------------------------------------------------------------------
# Heuristic
# --------------------------------------------------------------------------------------------

def _heuristic_round(model: _Model, hidden: np.ndarray, zero_is_safe: bool) -> np.ndarray:
    """Cells to hide so that no relation, on its own, pins a hidden member."""
    kind = model.rel_kind
    hid_m = hidden[model.mem_cell]
    child = model.mem_child
    n_hid = _bincount(model, hid_m)
    n_hid_child = _bincount(model, hid_m & child)
    par_hid = hidden[model.rel_parent]
    andel_rel = model.andel[model.rel_parent]
    # (relation, quantity) triggers; the quantity decides which published members help
    chosen: list[np.ndarray] = []
    for q in QUANTITIES:
        if q != "size" and not andel_rel.any():
            continue
        v = np.nan_to_num(model.values[q][model.mem_cell])
        parent = np.nan_to_num(model.values[q][model.rel_parent])
        s_pub = _bincount(model, np.where(child & ~hid_m, v, 0.0))
        n_pub_pos = _bincount(model, child & ~hid_m & (v > 0))
        applies = np.ones(model.n_rel, bool) if q == "size" else andel_rel
        slack_counts = q == "size" or not zero_is_safe     # pinned at the lower bound: a disclosure?
        lower = LOWER[q]
        trig = np.zeros(model.n_rel, dtype=bool)
        if q == "size":
            trig |= (kind == KIND_CODES[EQ]) & (n_hid == 1)
        if slack_counts:
            pinned = ~par_hid & (n_hid_child >= 1) & np.isclose(parent - s_pub, n_hid_child * lower, atol=0.5)
            trig |= ((kind == KIND_CODES[EQ]) | (kind == KIND_CODES[GE])) & pinned
        cover = kind == KIND_CODES[COVER]
        # one hidden child and no published child with a positive value: it equals the parent
        trig |= cover & ~par_hid & (n_hid_child == 1) & (s_pub == 0) & ((parent > 0) | slack_counts)
        # hidden parent over published children of which at most one is positive: it equals it
        trig |= cover & par_hid & (n_hid_child == 0) & (n_pub_pos <= 1) & ((n_pub_pos == 1) | slack_counts)
        trig &= applies
        if not trig.any():
            continue
        m = trig[model.mem_rel] & ~hid_m & (~child | (v > 0))
        if not m.any():
            continue
        rel, is_parent, rank = model.mem_rel[m], ~child[m], model.rank[model.mem_cell[m]]
        order = np.lexsort([rank, is_parent, rel])
        first = np.unique(rel[order], return_index=True)[1]
        chosen.append(np.column_stack([rel[order][first], model.mem_cell[m][order][first]]))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return _resolve(model, np.concatenate(chosen))


def _resolve(model: _Model, choices: np.ndarray) -> np.ndarray:
    """Apply the (relation, cell) choices smallest relation first, skipping a relation that a
    cell chosen earlier in the pass already changed (the next round looks at it again): one
    choice often settles several relations, e.g. the SSPF area's and the city's."""
    size = np.bincount(model.mem_rel, minlength=model.n_rel)
    start = np.searchsorted(model.mem_rel, np.arange(model.n_rel + 1))
    choices = choices[np.lexsort([choices[:, 0], size[choices[:, 0]]])]
    new: set[int] = set()
    done: set[int] = set()
    for rel, cell in choices.tolist():
        if rel in done:
            continue
        done.add(rel)
        members = model.mem_cell[start[rel]:start[rel + 1]]
        if new.intersection(members.tolist()):
            continue
        new.add(cell)
    return np.array(sorted(new), dtype=np.int64)


def _heuristic(model: _Model, hidden: np.ndarray, zero_is_safe: bool) -> int:
    added = 0
    while True:
        new = _heuristic_round(model, hidden, zero_is_safe)
        new = new[~hidden[new]]
        if not len(new):
            return added
        hidden[new] = True
        added += len(new)


# --------------------------------------------------------------------------------------------
# Check: linear programmes over the published values
# --------------------------------------------------------------------------------------------

@dataclass
class _System:
    """The linear system of the hidden quantities (A_eq x = b_eq, A_ub x ≤ b_ub, bounds)."""

    var_size: np.ndarray        # per cell: variable of the size (-1: published)
    var_num: np.ndarray         # per cell: variable of the numerator (-1: none)
    a_eq: csr_matrix
    b_eq: np.ndarray
    a_ub: csr_matrix
    b_ub: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    component: np.ndarray       # per variable
    eq_component: np.ndarray    # per equality row
    ub_component: np.ndarray    # per inequality row


class _Rows:
    """Accumulates constraint rows as triplets."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.coefs: list[np.ndarray] = []
        self.rhs: list[np.ndarray] = []
        self.n = 0

    def add(self, n_rows: int, row: np.ndarray, col: np.ndarray, coef: np.ndarray, rhs: np.ndarray) -> None:
        self.rows.append(row + self.n)
        self.cols.append(col)
        self.coefs.append(coef)
        self.rhs.append(rhs)
        self.n += n_rows

    def matrix(self, n_vars: int) -> tuple[csr_matrix, np.ndarray]:
        if not self.n:
            return csr_matrix((0, n_vars)), np.zeros(0)
        m = coo_matrix((np.concatenate(self.coefs), (np.concatenate(self.rows), np.concatenate(self.cols))),
                       shape=(self.n, n_vars)).tocsr()
        m.sum_duplicates()
        return m, np.concatenate(self.rhs)


def _terms(model: _Model, sys_vars: tuple[np.ndarray, np.ndarray], q: str, cells: np.ndarray,
           sign: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(member index, variable, coefficient) of the hidden quantity q of ``cells``."""
    var_size, var_num = sys_vars
    idx = np.arange(len(cells))
    out = []
    if q in ("size", "comp"):
        v = var_size[cells]
        ok = v >= 0
        out.append((idx[ok], v[ok], sign[ok]))
    if q in ("num", "comp"):
        v = var_num[cells]
        ok = v >= 0
        out.append((idx[ok], v[ok], (sign if q == "num" else -sign)[ok]))
    return out


def _relation_rows(model: _Model, hidden: np.ndarray, active: np.ndarray, sys_vars, eq: _Rows,
                   ub: _Rows) -> None:
    kind = model.rel_true_kind
    hid_m = hidden[model.mem_cell]
    has_hidden = (_bincount(model, hid_m) > 0) & active[model.rel_parent]
    andel_rel = model.andel[model.rel_parent]
    child = model.mem_child
    for q in QUANTITIES:
        applies = has_hidden & (kind >= 0) & (andel_rel if q != "size" else True)
        if q == "comp":
            applies &= kind != KIND_CODES[EQ]          # implied by the size and num equalities
        # Σ children − parent (= 0 for eq, ≤ 0 for ge, ≥ 0 for cover)
        for kinds, target, sign_rel in (((EQ,), eq, 1.0), ((GE,), ub, 1.0), ((COVER,), ub, -1.0)):
            rel_ok = applies & np.isin(kind, [KIND_CODES[k] for k in kinds])
            if not rel_ok.any():
                continue
            rels = np.flatnonzero(rel_ok)
            row_of = np.full(model.n_rel, -1)
            row_of[rels] = np.arange(len(rels))
            m = rel_ok[model.mem_rel]
            cells, rows = model.mem_cell[m], row_of[model.mem_rel[m]]
            sign = np.where(child[m], 1.0, -1.0) * sign_rel
            pub = ~hidden[cells]
            rhs = -np.bincount(rows[pub], weights=sign[pub] * model.values[q][cells[pub]],
                               minlength=len(rels))
            for idx, col, coef in _terms(model, sys_vars, q, cells, sign):
                target.add(0, rows[idx], col, coef, np.zeros(0))
            target.add(len(rels), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), rhs)
        # child − parent ≤ 0 for every child of a cover or subset relation
        rel_ok = applies & np.isin(kind, [KIND_CODES[COVER], KIND_CODES[SUBSET]])
        m = rel_ok[model.mem_rel] & child
        if m.any():
            ch = model.mem_cell[m]
            par = model.rel_parent[model.mem_rel[m]]
            keep = hidden[ch] | hidden[par]
            ch, par = ch[keep], par[keep]
            n = len(ch)
            rows = np.arange(n)
            rhs = np.zeros(n)
            rhs -= np.where(hidden[ch], 0.0, model.values[q][ch])
            rhs += np.where(hidden[par], 0.0, model.values[q][par])
            for cells, sign in ((ch, np.ones(n)), (par, -np.ones(n))):
                for idx, col, coef in _terms(model, sys_vars, q, cells, sign):
                    ub.add(0, rows[idx], col, coef, np.zeros(0))
            ub.add(n, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), rhs)


def _build_system(model: _Model, hidden: np.ndarray, active: np.ndarray) -> _System:
    """The programme of the hidden cells of the ``active`` cells' systems."""
    cells = np.flatnonzero(hidden & active)
    var_size = np.full(model.n_cells, -1, dtype=np.int64)
    var_size[cells] = np.arange(len(cells))
    num_cells = cells[model.andel[cells]]
    var_num = np.full(model.n_cells, -1, dtype=np.int64)
    var_num[num_cells] = len(cells) + np.arange(len(num_cells))
    n_vars = len(cells) + len(num_cells)
    eq, ub = _Rows(), _Rows()
    _relation_rows(model, hidden, active, (var_size, var_num), eq, ub)
    # numerator ≤ denominator
    n = len(num_cells)
    ub.add(n, np.repeat(np.arange(n), 2), np.column_stack([var_num[num_cells], var_size[num_cells]]).ravel(),
           np.tile([1.0, -1.0], n), np.zeros(n))
    a_eq, b_eq = eq.matrix(n_vars)
    a_ub, b_ub = ub.matrix(n_vars)
    lower = np.concatenate([np.full(len(cells), LOWER["size"]), np.full(n, LOWER["num"])])
    published = np.abs(np.nan_to_num(np.concatenate([model.values["size"], model.values["num"]])))
    upper = np.full(n_vars, 4.0 * published.max(initial=0.0) + 10.0 * n_vars + 1000.0)
    # components: variables linked through a shared row
    n_rows = a_eq.shape[0] + a_ub.shape[0]
    inc = coo_matrix(_vstack(a_eq, a_ub))
    graph = coo_matrix((np.ones(inc.nnz), (inc.col, n_vars + inc.row)), shape=(n_vars + n_rows,) * 2)
    _, labels = connected_components(graph, directed=False)
    component = labels[:n_vars]
    eq_comp = _row_component(a_eq, component)
    ub_comp = _row_component(a_ub, component)
    return _System(var_size, var_num, a_eq, b_eq, a_ub, b_ub, lower, upper, component, eq_comp, ub_comp)


def _row_component(a: csr_matrix, component: np.ndarray) -> np.ndarray:
    if a.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    first = a.indices[a.indptr[:-1]] if a.nnz else np.zeros(a.shape[0], dtype=np.int64)
    empty = np.diff(a.indptr) == 0
    return np.where(empty, -1, component[first])


def _one_integer(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether [lo, hi] holds at most one whole number (the true one): the value is known. For
    large sums (minutes) a range only as wide as the solver's rounding counts as one value."""
    scale = np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
    eps = np.minimum(0.25, INTEGER_EPS * scale)
    return (np.floor(hi + eps) - np.ceil(lo - eps) < 1) | (hi - lo <= 1e-9 * scale)


def _expressions(model: _Model, system: _System) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked expressions: (cell, quantity code, +variable, −variable) for each hidden
    cell's size, numerator and denominator − numerator."""
    cells = np.flatnonzero(system.var_size >= 0)
    andel = cells[model.andel[cells]]
    e_cell = np.concatenate([cells, andel, andel])
    e_q = np.concatenate([np.zeros(len(cells), int), np.ones(len(andel), int), np.full(len(andel), 2)])
    e_plus = np.concatenate([system.var_size[cells], system.var_num[andel], system.var_size[andel]])
    e_minus = np.concatenate([np.full(len(cells), -1), np.full(len(andel), -1), system.var_num[andel]])
    return e_cell, e_q, e_plus, e_minus


def _evaluate(x: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    return x[plus] - np.where(minus >= 0, x[np.maximum(minus, 0)], 0.0)


class _Solver:
    """Solves the system component by component, several small components per programme."""

    def __init__(self, system: _System, batch_vars: int = 4000) -> None:
        self.s = system
        self.batch_vars = batch_vars
        n_comp = int(system.component.max()) + 1
        self.cols = _split(system.component, n_comp)
        self.eq_rows = _split(system.eq_component, n_comp)
        self.ub_rows = _split(system.ub_component, n_comp)

    def batches(self, comps: np.ndarray) -> list[np.ndarray]:
        out, current, size = [], [], 0
        for c in comps:
            current.append(c)
            size += len(self.cols[c])
            if size >= self.batch_vars:
                out.append(np.array(current))
                current, size = [], 0
        if current:
            out.append(np.array(current))
        return out

    def solve(self, comps: np.ndarray, objective: np.ndarray,
              push: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The variables of ``comps`` and an optimum of ``objective`` (over all variables).

        ``push`` = (plus, minus, base, weight) of expressions e to move away from ``base``
        (weight > 0: up, < 0: down): the programme maximises Σ |weight| · t_e with
        t_e ≤ 1 and t_e ≤ ±(e − base), so it moves as many of them as it can by one unit
        rather than one of them far."""
        s = self.s
        cols = np.concatenate([self.cols[c] for c in comps])
        eq = np.concatenate([self.eq_rows[c] for c in comps])
        ub = np.concatenate([self.ub_rows[c] for c in comps])
        a_ub, b_ub = component_rows(s.a_ub, ub, cols), s.b_ub[ub]
        obj, lower, upper = objective[cols], s.lower[cols], s.upper[cols]
        a_eq = component_rows(s.a_eq, eq, cols)
        if push is not None:
            plus, minus, base, weight = push
            k, n = len(plus), len(cols)
            pos = np.full(len(s.lower), -1)
            pos[cols] = np.arange(n)
            sign = np.sign(weight)
            has_minus = minus >= 0
            rows = np.concatenate([np.arange(k), np.arange(k), np.flatnonzero(has_minus)])
            cidx = np.concatenate([n + np.arange(k), pos[plus], pos[minus[has_minus]]])
            vals = np.concatenate([np.ones(k), -sign, sign[has_minus]])
            extra = csr_matrix((vals, (rows, cidx)), shape=(k, n + k))
            a_ub = _vstack(_hpad(a_ub, k), extra)
            b_ub = np.concatenate([b_ub, -sign * base])
            a_eq = _hpad(a_eq, k)
            obj = np.concatenate([obj, -np.abs(weight)])
            lower = np.concatenate([lower, np.full(k, -np.inf)])     # t_e ≥ 0 would forbid moving back
            upper = np.concatenate([upper, np.ones(k)])
        x = minimise(obj, a_eq, s.b_eq[eq], a_ub, b_ub, lower, upper)
        if x is None:
            raise RuntimeError("secondary suppression: a linear programme over the published cells "
                               "failed (do the relations hold on the true values?)")
        return cols, x[:len(cols)]


def _hpad(a: csr_matrix, k: int) -> csr_matrix:
    return csr_matrix((a.data, a.indices, a.indptr), shape=(a.shape[0], a.shape[1] + k))


def _vstack(a: csr_matrix, b: csr_matrix) -> csr_matrix:
    return vstack([a, b]).tocsr()


def _split(labels: np.ndarray, n: int) -> list[np.ndarray]:
    """Indices grouped by label (labels < 0 dropped)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    bounds = np.searchsorted(sorted_labels, np.arange(n + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n)]


def _determined(model: _Model, hidden: np.ndarray, active: np.ndarray, zero_is_safe: bool, seed: int,
                max_pushes: int = 12) -> tuple[list[tuple[int, str]], np.ndarray]:
    """(cell, quantity) of every hidden quantity whose range is one whole number, and the
    component of every cell (-1: published).

    The observed range of each quantity starts at its true value (feasible) and grows with every
    solution found: a random objective and its opposite, then programmes that push the
    quantities still seen at one value up (and, unless at their lower bound, down) by one unit,
    as many at once as they can; what stays is solved for on its own (up, and down unless at
    the lower bound), on its component."""
    system = _build_system(model, hidden, active)
    n_vars = len(system.lower)
    cell_component = np.full(model.n_cells, -1)
    if not n_vars:
        return [], cell_component
    cells = np.flatnonzero(system.var_size >= 0)
    cell_component[cells] = system.component[system.var_size[cells]]
    truth = np.zeros(n_vars)
    truth[system.var_size[cells]] = model.values["size"][cells]
    num_cells = cells[model.andel[cells]]
    truth[system.var_num[num_cells]] = model.values["num"][num_cells]
    e_cell, e_q, e_plus, e_minus = _expressions(model, system)
    e_comp = system.component[e_plus]
    base = _evaluate(truth, e_plus, e_minus)
    lo, hi = base.copy(), base.copy()
    at_lower = base <= np.array([LOWER[q] for q in QUANTITIES])[e_q] + 0.5
    solver = _Solver(system)
    by_comp = _split(e_comp, len(solver.cols))
    rng = np.random.default_rng(seed)
    zeros = np.zeros(n_vars)

    def candidates() -> np.ndarray:
        cand = _one_integer(lo, hi)
        if zero_is_safe:      # a numerator or complement seen at 0 can only be pinned at 0
            cand &= (e_q == 0) | (lo > 0.5)
        return np.flatnonzero(cand)

    def run(comps: np.ndarray, objective: np.ndarray, push: np.ndarray | None = None,
            up: bool = True) -> None:
        for batch in solver.batches(comps):
            extra = None
            if push is not None:
                mine = push[np.isin(e_comp[push], batch)]
                weight = rng.uniform(0.5, 1.5, len(mine)) * (1 if up else -1)
                extra = (e_plus[mine], e_minus[mine], base[mine], weight)
            cols, x_part = solver.solve(batch, objective, extra)
            x = np.zeros(n_vars)
            x[cols] = x_part
            where = np.concatenate([by_comp[c] for c in batch])
            val = _evaluate(x, e_plus[where], e_minus[where])
            lo[where], hi[where] = np.minimum(lo[where], val), np.maximum(hi[where], val)

    direction = rng.standard_normal(n_vars)
    every = np.unique(e_comp)
    run(every, direction)
    run(every, -direction)
    for _ in range(max_pushes):
        cand = candidates()
        log.debug("secondary suppression check: %d quantity(ies) not yet seen to move", len(cand))
        if not len(cand):
            break
        before = len(cand)
        run(np.unique(e_comp[cand]), zeros, cand, up=True)
        cand = candidates()
        down = cand[~at_lower[cand]]
        if len(down):
            run(np.unique(e_comp[down]), zeros, down, up=False)
        if len(candidates()) == before:
            break
    found: list[tuple[int, str]] = []
    for i in candidates():
        if not _one_integer(lo[i:i + 1], hi[i:i + 1])[0]:
            continue                                       # shown open by an earlier solve
        one = np.array([i])
        run(np.array([e_comp[i]]), zeros, one, up=True)
        if not at_lower[i] and _one_integer(lo[i:i + 1], hi[i:i + 1])[0]:
            run(np.array([e_comp[i]]), zeros, one, up=False)
        if _one_integer(lo[i:i + 1], hi[i:i + 1])[0]:
            q = QUANTITIES[e_q[i]]
            if zero_is_safe and q != "size" and abs(hi[i]) < 0.5:
                continue
            found.append((int(e_cell[i]), q))
    return found, cell_component


def _protect(model: _Model, hidden: np.ndarray, found: list[tuple[int, str]],
             cell_component: np.ndarray) -> np.ndarray:
    """For each determined (cell, quantity): hide one more published member, with a positive
    value of that quantity, of the smallest relation the cell is in that has one (its smallest
    such member); failing that, of a relation of the cell's component."""
    rel_size = np.bincount(model.mem_rel, minlength=model.n_rel)
    # the memberships (positions in mem_rel / mem_cell) of each cell and of each relation
    of_cell = _split(model.mem_cell, model.n_cells)
    of_rel = _split(model.mem_rel, model.n_rel)
    positive = {q: np.nan_to_num(model.values[q]) > 0 for q in {q for _, q in found}}
    new: set[int] = set()
    for cell, q in found:
        rels = np.unique(model.mem_rel[of_cell[cell]])
        for scope in ("cell", "component"):
            if scope == "component":
                comp_cells = np.flatnonzero(cell_component == cell_component[cell])
                rels = np.unique(model.mem_rel[np.concatenate([of_cell[c] for c in comp_cells])])
            if not len(rels):
                continue
            # the relations' memberships in their original order (ties keep it)
            members = np.sort(np.concatenate([of_rel[r] for r in rels]))
            cand_cell, cand_rel = model.mem_cell[members], model.mem_rel[members]
            keep = ~hidden[cand_cell] & (positive[q][cand_cell] | (q == "size"))
            cand_cell, cand_rel = cand_cell[keep], cand_rel[keep]
            if len(cand_cell):
                order = np.lexsort([model.rank[cand_cell], rel_size[cand_rel]])
                new.add(int(cand_cell[order[0]]))
                break
    return np.array(sorted(new), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def _primary_rule(model: _Model, min_cell: int) -> np.ndarray:
    size, num, comp = model.values["size"], model.values["num"], model.values["comp"]
    small = (lambda x: (x >= 1) & (x <= min_cell - 1))  # noqa: E731
    return (size < min_cell) | (model.andel & (small(num) | small(comp)))


def apply_secondary_suppression(cells: pd.DataFrame, min_cell: int = 5, *,
                                reference_dir: Path | str | None = None,
                                hierarchy: AreaHierarchy | None = None,
                                zero_is_safe: bool = True, verify: bool = True,
                                seed: int = 0,
                                relations: Mapping[str, IndicatorRelations] | None = None) -> pd.DataFrame:
    """Mark additional cells ``sekundär`` so that no hidden cell can be recovered.

    ``cells`` is the published-shaped table after primary suppression, with the true numbers
    of every cell in ``true_numerator`` / ``true_denominator`` and the bool ``primary``. The
    result is the same frame (same rows, order and columns) with ``suppressed`` set to
    ``primär`` / ``sekundär`` on the hidden rows and their ``numerator``, ``denominator``,
    ``value`` and ``status`` nulled. The true_* columns are kept: drop them before publishing.
    The area codes come from ``hierarchy`` or the municipality's reference files in
    ``reference_dir`` (one of the two is required). A cell that breaks the primary rule on its
    true numbers but is not flagged ``primary`` is suppressed as ``primär`` too (and logged, as
    a count).
    ``verify=False`` stops after the heuristic (for diagnostics only: it can leave a cell
    determined through several relations together). ``relations`` replaces :data:`RELATIONS`
    (the weekly lägesbild declares its own).
    """
    missing = [c for c in INPUT_COLUMNS if c not in cells.columns]
    if missing:
        raise ValueError(f"apply_secondary_suppression: missing column(s) {missing}")
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    out = cells.reset_index(drop=True).copy()
    if out.empty:
        return out
    if hierarchy is None:
        if reference_dir is None:
            raise ValueError("apply_secondary_suppression: give reference_dir or hierarchy")
        hierarchy = load_hierarchy(reference_dir)
    model = _build_model(out, hierarchy, RELATIONS if relations is None else relations)
    primary = out["primary"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    unflagged = _primary_rule(model, min_cell) & ~primary
    if unflagged.any():
        log.warning("secondary suppression: %d cell(s) break the primary rule but are not flagged "
                    "primary; they are suppressed as primär", int(unflagged.sum()))
        primary = primary | unflagged
    hidden = primary.copy()
    rounds = 0
    checked = np.zeros(len(out), dtype=bool)        # hidden as of the last check
    while True:
        rounds += 1
        _heuristic(model, hidden, zero_is_safe)
        # only systems with a cell hidden since the last check can have changed
        active = np.isin(model.grp, np.unique(model.grp[hidden & ~checked]))
        checked = hidden.copy()
        if not verify:
            break
        found, components = _determined(model, hidden, active, zero_is_safe, seed + rounds)
        log.debug("secondary suppression round %d: %d hidden, %d determined quantity(ies)", rounds,
                  int(hidden.sum()), len(found))
        if not found:
            break
        new = _protect(model, hidden, found, components)
        new = new[~hidden[new]]
        if not len(new):
            raise RuntimeError(f"secondary suppression: {len(found)} hidden quantity(ies) stay determined "
                               "and no published cell is left to hide")
        hidden[new] = True
    secondary = hidden & ~primary
    log.info("secondary suppression: %d primary, %d secondary of %d cells (%d check round(s))",
             int(primary.sum()), int(secondary.sum()), len(out), rounds)
    marker = out["suppressed"].astype("object") if "suppressed" in out.columns else pd.Series(
        None, index=out.index, dtype="object")
    marker = marker.where(~pd.Series(primary, index=out.index), PRIMARY)
    marker = marker.where(~pd.Series(secondary, index=out.index), SECONDARY)
    out["suppressed"] = marker
    mask = pd.Series(hidden, index=out.index)
    for column in ("numerator", "denominator", "value", "status"):
        if column in out.columns:
            out[column] = out[column].mask(mask)
    return out


__all__ = ["RELATIONS", "AreaHierarchy", "IndicatorRelations", "apply_secondary_suppression",
           "load_hierarchy"]
