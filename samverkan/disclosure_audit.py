"""Independent audit of secondary suppression on the published indicator table.

privacy.md: no suppressed cell may be recoverable from the published cells of the same
indicator, period and breakdown. This module checks that on the final file, from the
published rows and the area seeds alone. It shares no code with the suppressor
(:mod:`samverkan.suppression`): the relations are declared again here, from the rules, and the
audit builds and solves its own linear programmes.

For each indicator and period with suppressed cells:

* variables: the additive quantities of every suppressed cell — an ``antal`` cell's count
  (≥ 1: the row exists), an ``andel`` cell's numerator (≥ 0) and denominator (≥ 1, ≥ the
  numerator);
* constraints: the relations of :data:`AUDIT_RELATIONS` (area hierarchy and breakdowns; a
  missing row is zero), with the published values as constants;
* for every suppressed cell the range of its count / denominator, its numerator and its
  denominator − numerator consistent with all of that is computed (minimise and maximise by
  linear programming, HiGHS); a range holding one whole number only means the cell is
  disclosed. A numerator or denominator − numerator pinned at 0 is not reported when
  ``zero_is_safe`` (the primary rule itself publishes 0 % and 100 %, and a published zero
  parent pins all its parts at zero whatever is hidden).

To stay fast on large tables, only systems with suppressed cells are built, each is split
into connected components (small ones batched into one programme), equalities left with a
single unknown are solved by substitution (the bulk of a badly suppressed file), and most
ranges are shown open without a programme of their own: a random objective and its opposite
give two feasible points, then programmes that push the quantities still seen at one value up
and down by one unit (as many at once as they can) show nearly all the rest open; only what
remains gets its own minimise / maximise pair.

A component whose published cells contradict the relations is retried with the equalities of
:data:`RELAXABLE` as ≥ (a pupil whose school unit is unknown counts in the city only); if it
still has no solution, its suppressed cells are reported as ``secondary_inconsistent``.

The marker itself (``primär`` / ``sekundär``) is not used as knowledge: a reader who knows
that a ``primär`` count is below ``min_cell`` can narrow some ranges further (see the README's
limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import block_diag, coo_matrix, csr_matrix, hstack, vstack
from scipy.sparse.csgraph import connected_components

from samverkan.config.reference import csv_rows
from samverkan.linear_programmes import component_rows, minimise

KEYS = ("indicator_id", "period_type", "period_start", "area_level", "area_code", "breakdown",
        "breakdown_value")

SECONDARY_RULES: dict[str, str] = {
    "secondary_disclosed": "a suppressed cell can be recovered from the published cells of its indicator "
                           "and period (its range holds one value only)",
    "secondary_inconsistent": "the published cells contradict the indicator's relations: the cell cannot "
                              "be audited",
    "secondary_unknown_indicator": "a suppressed cell of an indicator without declared relations: it "
                                   "cannot be audited",
}

# ---------------------------------------------------------------------------------------------
# Relations, read from INDICATOR_RULES.md ("Areas", "Breakdowns", "The indicators").
#
# "=" parent = Σ parts; ">=" parent ≥ Σ parts (some units of the parent are in no part);
# "cover" parent ≥ each part and parent ≤ Σ parts (a unit can be in several parts, every unit
# of the parent is in one); "each" parent ≥ each part only.
#
# Relation names: "stad/top" the city against the stadsdelsområden, the SSPF areas that have no
# stadsdelsområde in ref_sspf_omraden and (with skolenhet rows) the school units without an SSPF
# area in ref_skolenheter; "sdo/sspf" a stadsdelsområde against its SSPF areas, with
# "sdo/sspf:partial" for a district stadsdelsområde one of whose stadsdelar has no SSPF area
# (ref_stadsdelar); "sspf/skolenhet"; "stad/skolenhet" the city against every school unit;
# "bd:<breakdown>" the totalt row of an area against the breakdown's categories in that area.
# ---------------------------------------------------------------------------------------------

# Pupils enrolled in the period: one school unit (→ SSPF → stadsdelsområde by the seeds, or the
# city only when missing from them), one huvudman, one årskurs 1-9 each. Minutes and records are
# summed per pupil, so they add up the same way.
_SCHOOL_UNIT_INDICATOR = {
    "stad/top": "=", "sdo/sspf": "=", "sspf/skolenhet": "=", "stad/skolenhet": "=",
    "bd:huvudman": "=", "bd:arskurs": "=",
}
# One person per row, in at most one area: the school area of the enrolment (stadsdelsområde
# derived from the SSPF area: =); the city also holds units without an area.
_SCHOOL_AREA = {"stad/top": ">=", "sdo/sspf": "="}
# Reports and investigations: in at most one stadsdelsområde, the one handling the matter, and
# in no SSPF area (there are no SSPF cells); the city also holds those without one.
_HANDLING = {"stad/top": ">="}
# Distinct young persons in police data: a person counts in every area and brottskategori they
# have an event in. The city also counts persons without a district; every event has a
# brottskategori (unmapped: okänd).
_POLICE = {"stad/top": "each", "sdo/sspf": "cover", "sdo/sspf:partial": "each"}

AUDIT_RELATIONS: dict[str, dict[str, str]] = {
    "hog_franvaro": _SCHOOL_UNIT_INDICATOR,
    "mycket_hog_franvaro": _SCHOOL_UNIT_INDICATOR,
    "ogiltig_franvaro_andel": _SCHOOL_UNIT_INDICATOR,
    "rapporteringsgrad": _SCHOOL_UNIT_INDICATOR,
    "orosanmalningar": {**_HANDLING, "bd:anmalare": "="},
    "forhandsbedomning_14_dagar": {**_HANDLING, "bd:anmalare": "="},
    "anmalan_till_utredning": {**_HANDLING, "bd:anmalare": "="},
    "utredning_4_manader": _HANDLING,
    "placerade_aterforening": _SCHOOL_AREA,
    "unga_misstankta": {**_POLICE, "bd:brottskategori": "cover"},
    "unga_brottsoffer": {**_POLICE, "bd:brottskategori": "cover"},
    "unga_misstankta_upprepat": _POLICE,
    "hog_franvaro_med_orosanmalan": _SCHOOL_AREA,
    "hog_franvaro_med_misstanke": _SCHOOL_AREA,
    "misstankta_med_hog_franvaro": _SCHOOL_AREA,
    # the antal_verksamheter = 3 row: those of totalt known to all three agencies
    "kanda_av_flera": {**_SCHOOL_AREA, "bd:antal_verksamheter": "each"},
    "sst_effekt": _SCHOOL_AREA,
    "sig_effekt": _SCHOOL_AREA,
}
# placed by the police offence district (ref_stadsdelar, where a stadsdelsområde may have a
# stadsdel outside every SSPF area)
DISTRICT_INDICATORS = frozenset({"unga_misstankta", "unga_brottsoffer", "unga_misstankta_upprepat"})
# Equalities that fail when a pupil's school unit is unknown to /organisations (no school unit,
# no huvudman, the city only): relaxed to ">=" in a system whose published cells contradict them.
RELAXABLE = frozenset({"stad/top", "stad/skolenhet", "bd:huvudman"})

INTEGER_TOLERANCE = 1e-6
RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SecondaryProblem:
    """A suppressed cell the audit finds disclosed; no value of the cell is in it."""

    rule: str
    indicator_id: str
    period_type: str
    period_start: str
    area_level: str
    area_code: str
    breakdown: str
    breakdown_value: str
    quantity: str = ""

    @property
    def description(self) -> str:
        what = f" ({self.quantity})" if self.quantity else ""
        return (f"{self.indicator_id} {self.period_type} {self.period_start}, {self.area_level} "
                f"{self.area_code}, {self.breakdown}={self.breakdown_value}{what}: "
                f"{SECONDARY_RULES.get(self.rule, self.rule)} [{self.rule}]")

    def __str__(self) -> str:
        return self.description


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Areas:
    sdo_of_sspf: dict[str, str]
    sspf_of_school: dict[str, str]
    partial_sdo: frozenset[str]


def _areas(reference_dir: Path) -> _Areas:
    sdo_of_sspf = {r["sspf_omrade_code"]: r["stadsdelsomrade_code"]
                   for r in csv_rows(reference_dir / "ref_sspf_omraden.csv") if r["stadsdelsomrade_code"]}
    sspf_of_school = {r["school_unit_code"]: r["sspf_omrade_code"]
                      for r in csv_rows(reference_dir / "ref_skolenheter.csv") if r["sspf_omrade_code"]}
    partial = frozenset(r["stadsdelsomrade_code"] for r in csv_rows(reference_dir / "ref_stadsdelar.csv")
                        if r["stadsdelsomrade_code"] and not r["sspf_omrade_code"])
    return _Areas(sdo_of_sspf, sspf_of_school, partial)


# ---------------------------------------------------------------------------------------------
# Reading the published table
# ---------------------------------------------------------------------------------------------

def _text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "")


def _key_text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.strftime("%Y-%m-%d").astype("string").fillna("")
    text = s.map(lambda v: v.isoformat()[:10] if hasattr(v, "isoformat") else v).astype("string")
    return text.str.strip().fillna("")


def _cells(published: pd.DataFrame) -> pd.DataFrame:
    df = published.reset_index(drop=True)
    cells = pd.DataFrame({k: _key_text(df[k]) for k in KEYS})
    cells["andel"] = (_text(df["unit"]) == "andel").fillna(False).astype(bool)
    for c in ("numerator", "denominator"):
        cells[c] = pd.to_numeric(_text(df[c]), errors="coerce").astype("float64")
    # the additive quantities: size (count or denominator) and, for andel, the numerator; a
    # number that is not published is unknown (whatever the marker says: a suppressed row that
    # still shows a number is the primary check's finding, and the reader sees the number)
    cells["size"] = np.where(cells["andel"], cells["denominator"], cells["numerator"])
    cells["num"] = np.where(cells["andel"], cells["numerator"], np.nan)
    cells["size_hidden"] = cells["size"].isna()
    cells["num_hidden"] = cells["andel"] & cells["num"].isna()
    cells["hidden"] = cells["size_hidden"] | cells["num_hidden"]
    cells["system"] = cells.groupby(["indicator_id", "period_type", "period_start"], sort=False).ngroup()
    return cells


# ---------------------------------------------------------------------------------------------
# Parent-child pairs of every relation
# ---------------------------------------------------------------------------------------------

def _pairs(cells: pd.DataFrame, areas: _Areas, relations: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per (relation, child): parent row, child row, relation name and kind."""
    level, code, ind = cells["area_level"], cells["area_code"], cells["indicator_id"]
    sdo_of = code.map(areas.sdo_of_sspf)
    sspf_of = code.map(areas.sspf_of_school)
    is_top = ((level == "stadsdelsomrade") | ((level == "sspf_omrade") & sdo_of.isna())
              | ((level == "skolenhet") & sspf_of.isna()))
    sdo_relation = np.where(ind.isin(DISTRICT_INDICATORS) & sdo_of.isin(areas.partial_sdo),
                            "sdo/sspf:partial", "sdo/sspf")
    wanted = [
        # (relation name per child, parent level, parent code per child, child mask)
        (pd.Series("stad/top", index=cells.index), "stad", pd.Series("", index=cells.index), is_top),
        (pd.Series(sdo_relation, index=cells.index), "stadsdelsomrade", sdo_of,
         (level == "sspf_omrade") & sdo_of.notna()),
        (pd.Series("sspf/skolenhet", index=cells.index), "sspf_omrade", sspf_of,
         (level == "skolenhet") & sspf_of.notna()),
        (pd.Series("stad/skolenhet", index=cells.index), "stad", pd.Series("", index=cells.index),
         level == "skolenhet"),
    ]
    child_rows = []
    for relation, parent_level, parent_code, mask in wanted:
        part = cells.loc[mask, ["system", "breakdown", "breakdown_value", "indicator_id"]].copy()
        part["child"] = part.index
        part["relation"] = relation[mask]
        part["p_level"] = parent_level
        part["p_code"] = parent_code[mask].fillna("")
        part["p_breakdown"] = part["breakdown"]
        part["p_value"] = part["breakdown_value"]
        child_rows.append(part)
    bd = cells.loc[cells["breakdown"] != "totalt",
                   ["system", "breakdown", "indicator_id", "area_level"]].copy()
    bd["child"] = bd.index
    bd["relation"] = "bd:" + bd["breakdown"]
    bd["p_level"] = bd["area_level"]
    bd["p_code"] = code[bd.index].where(level[bd.index] != "stad", "")
    bd["p_breakdown"] = "totalt"
    bd["p_value"] = "totalt"
    child_rows.append(bd)
    pairs = pd.concat(child_rows, ignore_index=True)[
        ["system", "indicator_id", "child", "relation", "p_level", "p_code", "p_breakdown", "p_value"]]
    kinds = {(i, r): k for i, spec in relations.items() for r, k in spec.items()}
    pairs["kind"] = [kinds.get(x) for x in zip(pairs["indicator_id"], pairs["relation"], strict=True)]
    pairs = pairs[pairs["kind"].notna()]
    parents = pd.DataFrame({
        "system": cells["system"], "p_level": level, "p_code": code.where(level != "stad", ""),
        "p_breakdown": cells["breakdown"], "p_value": cells["breakdown_value"], "parent": cells.index})
    pairs = pairs.merge(parents, on=["system", "p_level", "p_code", "p_breakdown", "p_value"], how="inner")
    pairs["relation_id"] = pairs.groupby(["parent", "relation"], sort=False).ngroup()
    return pairs[["relation_id", "relation", "kind", "parent", "child"]]


# ---------------------------------------------------------------------------------------------
# The linear programme
# ---------------------------------------------------------------------------------------------

@dataclass
class _Programme:
    n_vars: int
    a_eq: csr_matrix
    b_eq: np.ndarray
    a_ub: csr_matrix
    b_ub: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    eq_relaxable: np.ndarray     # per equality row: may be relaxed to parent ≥ Σ parts


def _terms(cells: pd.DataFrame, var_size: np.ndarray, var_num: np.ndarray, cell: np.ndarray,
           quantity: str) -> tuple[list[tuple[np.ndarray, np.ndarray, float]], np.ndarray]:
    """Variable terms (row position, variable, sign) and constant part of ``quantity`` of each
    cell: a hidden number is its variable, a published one a constant."""
    pos = np.arange(len(cell))
    terms: list[tuple[np.ndarray, np.ndarray, float]] = []
    const = np.zeros(len(cell))
    parts = {"size": ((var_size, "size", 1.0),), "num": ((var_num, "num", 1.0),),
             "comp": ((var_size, "size", 1.0), (var_num, "num", -1.0))}[quantity]
    for var, column, sign in parts:
        v = var[cell]
        unknown = v >= 0
        terms.append((pos[unknown], v[unknown], sign))
        const += sign * np.where(unknown, 0.0, np.nan_to_num(cells[column].to_numpy()[cell]))
    return terms, const


def _programme(cells: pd.DataFrame, pairs: pd.DataFrame, var_size: np.ndarray, var_num: np.ndarray,
               n_vars: int) -> _Programme:
    """Σ_i coef_i · quantity(cell_i) (= | ≤) 0 for every relation and quantity, with the
    published quantities moved to the right-hand side."""
    hidden = cells["hidden"].to_numpy()
    andel = cells["andel"].to_numpy()
    # long form: (row key, cell, coefficient) per relation and "sum" or "pair" row
    members = []
    for kind, sum_sign in (("=", 1.0), (">=", 1.0), ("cover", -1.0)):
        sel = pairs[pairs["kind"] == kind]
        if sel.empty:
            continue
        rel = sel.drop_duplicates("relation_id")
        members.append(pd.DataFrame({"row": "s" + sel["relation_id"].astype(str), "cell": sel["child"],
                                     "coef": sum_sign, "sense": "eq" if kind == "=" else "ub",
                                     "relation": sel["relation"]}))
        members.append(pd.DataFrame({"row": "s" + rel["relation_id"].astype(str), "cell": rel["parent"],
                                     "coef": -sum_sign, "sense": "eq" if kind == "=" else "ub",
                                     "relation": rel["relation"]}))
    each = pairs[pairs["kind"].isin(["cover", "each"])]
    if not each.empty:
        key = "p" + each["relation_id"].astype(str) + ":" + each["child"].astype(str)
        members.append(pd.DataFrame({"row": key, "cell": each["child"], "coef": 1.0, "sense": "ub",
                                     "relation": each["relation"]}))
        members.append(pd.DataFrame({"row": key, "cell": each["parent"], "coef": -1.0, "sense": "ub",
                                     "relation": each["relation"]}))
    eq_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ub_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    eq_rhs: list[np.ndarray] = []
    ub_rhs: list[np.ndarray] = []
    eq_relax: list[np.ndarray] = []
    n_eq = n_ub = 0
    if members:
        long = pd.concat(members, ignore_index=True)
        # only rows with a hidden member constrain anything
        long["hidden"] = hidden[long["cell"].to_numpy()]
        long = long[long.groupby("row")["hidden"].transform("any").to_numpy(dtype=bool)]
        row_andel = andel[long["cell"].to_numpy()]
        for quantity in ("size", "num", "comp"):
            part = long if quantity == "size" else long[row_andel]
            if quantity == "comp":
                part = part[part["sense"] == "ub"]       # for "=" implied by size and num
            for sense in ("eq", "ub"):
                sel = part[part["sense"] == sense]
                if sel.empty:
                    continue
                row_codes, row_index = np.unique(sel["row"].to_numpy(), return_inverse=True)
                offset = n_eq if sense == "eq" else n_ub
                cell = sel["cell"].to_numpy()
                coef = sel["coef"].to_numpy()
                terms, const = _terms(cells, var_size, var_num, cell, quantity)
                rhs = -np.bincount(row_index, weights=coef * const, minlength=len(row_codes))
                target = eq_parts if sense == "eq" else ub_parts
                for pos, var, sign in terms:
                    target.append((offset + row_index[pos], var, coef[pos] * sign))
                if sense == "eq":
                    eq_rhs.append(rhs)
                    relax = sel.groupby(row_index)["relation"].first().isin(RELAXABLE).to_numpy()
                    eq_relax.append(relax)
                    n_eq += len(row_codes)
                else:
                    ub_rhs.append(rhs)
                    n_ub += len(row_codes)
    # numerator ≤ denominator (denominator − numerator ≥ 0) of every hidden andel cell
    both = np.flatnonzero(hidden & andel)
    k = len(both)
    terms, const = _terms(cells, var_size, var_num, both, "comp")
    for pos, var, sign in terms:
        ub_parts.append((n_ub + pos, var, -sign * np.ones(len(pos))))
    ub_rhs.append(const)
    n_ub += k

    def matrix(parts, n_rows):
        if not parts:
            return csr_matrix((n_rows, n_vars))
        r = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        v = np.concatenate([p[2] for p in parts])
        m = coo_matrix((v, (r, c)), shape=(n_rows, n_vars)).tocsr()
        m.sum_duplicates()
        return m

    a_eq = matrix(eq_parts, n_eq)
    a_ub = matrix(ub_parts, n_ub)
    lower = np.zeros(n_vars)
    lower[var_size[var_size >= 0]] = 1.0
    published = np.nan_to_num(np.abs(cells[["size", "num"]].to_numpy())).max(initial=0.0)
    upper = np.full(n_vars, 4.0 * published + 10.0 * n_vars + 1000.0)
    b_eq = np.concatenate(eq_rhs) if eq_rhs else np.zeros(0)
    relaxable = np.concatenate(eq_relax) if eq_relax else np.zeros(0, dtype=bool)
    return _Programme(n_vars, a_eq, b_eq, a_ub, np.concatenate(ub_rhs), lower, upper, relaxable)


@dataclass
class _Component:
    cols: np.ndarray
    eq_rows: np.ndarray
    ub_rows: np.ndarray
    relaxed: bool = False
    feasible: bool = True


class _Auditor:
    """Ranges of the checked expressions (size, numerator, denominator − numerator) of the
    hidden cells, component by component."""

    def __init__(self, prog: _Programme, expr: pd.DataFrame, seed: int, batch_vars: int = 4000) -> None:
        self.p = prog
        self.expr = expr                  # columns: v1, c1, v2, c2 (variable -1: none), const, bound
        self.rng = np.random.default_rng(seed)
        self.batch_vars = batch_vars
        graph_rows = vstack([prog.a_eq, prog.a_ub]).tocoo()
        n = prog.n_vars + graph_rows.shape[0]
        graph = coo_matrix((np.ones(graph_rows.nnz), (graph_rows.col, prog.n_vars + graph_rows.row)),
                           shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        var_comp = labels[:prog.n_vars]
        eq_comp = labels[prog.n_vars:prog.n_vars + prog.a_eq.shape[0]]
        ub_comp = labels[prog.n_vars + prog.a_eq.shape[0]:]
        labels = np.unique(var_comp)
        cols, eqs, ubs = (_group(var_comp, labels), _group(eq_comp, labels), _group(ub_comp, labels))
        self.components: dict[int, _Component] = {
            int(c): _Component(cols[i], eqs[i], ubs[i]) for i, c in enumerate(labels)}
        self.var_comp = var_comp
        v1, v2 = expr["v1"].to_numpy(), expr["v2"].to_numpy()
        self.e_comp = var_comp[np.where(v1 >= 0, v1, v2)]
        self.lo = np.full(len(expr), np.inf)
        self.hi = np.full(len(expr), -np.inf)

    def _matrices(self, comp: _Component) -> tuple[csr_matrix, np.ndarray, csr_matrix, np.ndarray]:
        p = self.p
        a_eq, b_eq = p.a_eq[comp.eq_rows][:, comp.cols], p.b_eq[comp.eq_rows]
        a_ub, b_ub = p.a_ub[comp.ub_rows][:, comp.cols], p.b_ub[comp.ub_rows]
        if comp.relaxed:
            relax = p.eq_relaxable[comp.eq_rows]
            a_ub = vstack([a_ub, a_eq[relax]]).tocsr()      # Σ parts − parent ≤ published rest
            b_ub = np.concatenate([b_ub, b_eq[relax]])
            a_eq, b_eq = a_eq[~relax], b_eq[~relax]
        return a_eq, b_eq, a_ub, b_ub

    def solve(self, comps: list[int], objective: np.ndarray,
              push: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
        """One programme over ``comps``; ``push`` = (expression indices, signed weights): maximise
        Σ |w| t_e with t_e ≤ 1 and t_e ≤ ±(e − a point already seen)."""
        cols = np.concatenate([self.components[c].cols for c in comps])
        if any(self.components[c].relaxed for c in comps):
            # a relaxed component's relaxable equalities go among its inequalities (_matrices)
            parts = [self._matrices(self.components[c]) for c in comps]
            a_eq = _block_diag([m[0] for m in parts])
            a_ub = _block_diag([m[2] for m in parts])
            b_eq = np.concatenate([m[1] for m in parts])
            b_ub = np.concatenate([m[3] for m in parts])
        else:  # the same programme, without a slice per component
            eq = np.concatenate([self.components[c].eq_rows for c in comps])
            ub = np.concatenate([self.components[c].ub_rows for c in comps])
            a_eq, b_eq = component_rows(self.p.a_eq, eq, cols), self.p.b_eq[eq]
            a_ub, b_ub = component_rows(self.p.a_ub, ub, cols), self.p.b_ub[ub]
        obj = objective[cols]
        lower, upper = self.p.lower[cols], self.p.upper[cols]
        if push is not None:
            idx, weight = push
            k, n = len(idx), len(cols)
            where = np.full(self.p.n_vars, -1)
            where[cols] = np.arange(n)
            sign = np.sign(weight)
            seen = np.where(sign > 0, self.hi[idx], self.lo[idx])
            # t_e − s·(c1·x1 + c2·x2) ≤ s·(const − seen), s = +1 up, −1 down
            rows, colx, vals = [np.arange(k)], [n + np.arange(k)], [np.ones(k)]
            for v, c in (("v1", "c1"), ("v2", "c2")):
                var = self.expr[v].to_numpy()[idx]
                has = var >= 0
                rows.append(np.flatnonzero(has))
                colx.append(where[var[has]])
                vals.append(-sign[has] * self.expr[c].to_numpy()[idx][has])
            a_ub = vstack([hstack([a_ub, csr_matrix((a_ub.shape[0], k))]),
                           csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(colx))),
                                      shape=(k, n + k))]).tocsr()
            a_eq = hstack([a_eq, csr_matrix((a_eq.shape[0], k))]).tocsr()
            b_ub = np.concatenate([b_ub, sign * (self.expr["const"].to_numpy()[idx] - seen)])
            obj = np.concatenate([obj, -np.abs(weight)])
            lower = np.concatenate([lower, np.full(k, -np.inf)])
            upper = np.concatenate([upper, np.ones(k)])
        x = minimise(obj, a_eq, b_eq, a_ub, b_ub, lower, upper)
        if x is None:
            return None
        full = np.zeros(self.p.n_vars)
        full[cols] = x[:len(cols)]
        in_comps = np.isin(self.e_comp, comps)
        values = self._evaluate(full, in_comps)
        self.lo[in_comps] = np.minimum(self.lo[in_comps], values)
        self.hi[in_comps] = np.maximum(self.hi[in_comps], values)
        return full

    def _evaluate(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _expression_values(self.expr[mask], x)

    def batches(self, comps: list[int]) -> list[list[int]]:
        out: list[list[int]] = [[]]
        size = 0
        for c in comps:
            if size >= self.batch_vars:
                out.append([])
                size = 0
            out[-1].append(c)
            size += len(self.components[c].cols)
        return [b for b in out if b]

    def feasibility(self) -> None:
        """Two random objectives over every component; a component with no solution is tried
        again with the relaxable equalities as inequalities, and else marked infeasible."""
        direction = self.rng.standard_normal(self.p.n_vars)
        for batch in self.batches(sorted(self.components)):
            if self.solve(batch, direction) is not None:
                self.solve(batch, -direction)
                continue
            for c in batch:
                if self.solve([c], direction) is None:
                    self.components[c].relaxed = True
                    if self.solve([c], direction) is None:
                        self.components[c].feasible = False
                        continue
                self.solve([c], -direction)

    def one_value(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        lo, hi = self.lo[idx], self.hi[idx]
        with np.errstate(invalid="ignore"):          # never solved (infeasible): ±inf
            scale = np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
            tol = np.minimum(0.25, INTEGER_TOLERANCE * scale)
            # one whole number in the range, or (large sums of minutes) a range that is only the
            # solver's rounding wide
            return (np.floor(hi + tol) - np.ceil(lo - tol) < 1) | (hi - lo <= RELATIVE_TOLERANCE * scale)


def _substitute(audit: _Auditor) -> np.ndarray:
    """Values of the variables fixed by equalities alone (NaN: not fixed that way): an
    equality with a single unknown left fixes it; repeat until nothing changes."""
    p = audit.p
    usable = np.ones(p.a_eq.shape[0], dtype=bool)
    for comp in audit.components.values():
        if not comp.feasible:
            usable[comp.eq_rows] = False
        elif comp.relaxed:
            usable[comp.eq_rows[p.eq_relaxable[comp.eq_rows]]] = False
    a = p.a_eq[np.flatnonzero(usable)].tocsr()
    b = p.b_eq[usable]
    known = np.full(p.n_vars, np.nan)
    while a.shape[0]:
        is_known = ~np.isnan(known)
        rest = b - a[:, is_known] @ known[is_known]
        unknown = a[:, ~is_known].tocsr()
        single = np.flatnonzero(np.diff(unknown.indptr) == 1)
        if not len(single):
            break
        cols = np.flatnonzero(~is_known)[unknown.indices[unknown.indptr[single]]]
        known[cols] = rest[single] / unknown.data[unknown.indptr[single]]
    return known


def _expression_values(expr: pd.DataFrame, x: np.ndarray) -> np.ndarray:
    """const + c1·x[v1] + c2·x[v2] (a variable -1 is no term; NaN in x propagates)."""
    value = expr["const"].to_numpy().astype("float64").copy()
    for v, c in (("v1", "c1"), ("v2", "c2")):
        var = expr[v].to_numpy()
        has = var >= 0
        value[has] += expr[c].to_numpy()[has] * x[var[has]]
    return value


def _group(labels: np.ndarray, wanted: np.ndarray) -> list[np.ndarray]:
    """For each label in ``wanted`` (sorted), the positions holding it."""
    order = np.argsort(labels, kind="stable")
    bounds_lo = np.searchsorted(labels[order], wanted, side="left")
    bounds_hi = np.searchsorted(labels[order], wanted, side="right")
    return [order[a:b] for a, b in zip(bounds_lo, bounds_hi, strict=True)]


def _block_diag(mats: list[csr_matrix]) -> csr_matrix:
    return block_diag(mats, format="csr") if len(mats) > 1 else mats[0].tocsr()


def _audit_cells(cells: pd.DataFrame, areas: _Areas, zero_is_safe: bool, seed: int,
                 max_pushes: int = 12,
                 relations: dict[str, dict[str, str]] = AUDIT_RELATIONS) -> list[tuple[int, str, str]]:
    """(cell, quantity, rule) of every finding."""
    findings: list[tuple[int, str, str]] = []
    systems = cells.loc[cells["hidden"], "system"].unique()
    cells = cells[cells["system"].isin(systems)]
    if cells.empty:
        return findings
    unknown = ~cells["indicator_id"].isin(relations)
    for i in cells.index[unknown & cells["hidden"]]:
        findings.append((int(i), "", "secondary_unknown_indicator"))
    cells = cells[~unknown]
    if not cells["hidden"].any():
        return findings
    original_index = cells.index.to_numpy()
    cells = cells.reset_index(drop=True)
    pairs = _pairs(cells, areas, relations)
    size_cells = np.flatnonzero(cells["size_hidden"].to_numpy())
    num_cells = np.flatnonzero(cells["num_hidden"].to_numpy())
    var_size = np.full(len(cells), -1)
    var_num = np.full(len(cells), -1)
    var_size[size_cells] = np.arange(len(size_cells))
    var_num[num_cells] = len(size_cells) + np.arange(len(num_cells))
    n_vars = len(size_cells) + len(num_cells)
    prog = _programme(cells, pairs, var_size, var_num, n_vars)
    ratio_cells = np.flatnonzero((cells["andel"] & cells["hidden"]).to_numpy())
    comp_terms, comp_const = _terms(cells, var_size, var_num, ratio_cells, "comp")
    v1 = np.full(len(ratio_cells), -1)
    v2 = np.full(len(ratio_cells), -1)
    v1[comp_terms[0][0]] = comp_terms[0][1]
    v2[comp_terms[1][0]] = comp_terms[1][1]
    expr = pd.concat([
        pd.DataFrame({"cell": size_cells, "quantity": "size", "v1": var_size[size_cells], "c1": 1.0,
                      "v2": -1, "c2": 0.0, "const": 0.0, "bound": 1.0}),
        pd.DataFrame({"cell": num_cells, "quantity": "num", "v1": var_num[num_cells], "c1": 1.0,
                      "v2": -1, "c2": 0.0, "const": 0.0, "bound": 0.0}),
        pd.DataFrame({"cell": ratio_cells, "quantity": "comp", "v1": v1, "c1": 1.0, "v2": v2, "c2": -1.0,
                      "const": comp_const, "bound": 0.0}),
    ], ignore_index=True)
    audit = _Auditor(prog, expr, seed)
    audit.feasibility()
    infeasible = np.array([not audit.components[int(c)].feasible for c in audit.e_comp], dtype=bool)
    for cell_ in sorted(set(expr["cell"].to_numpy()[infeasible].tolist())):
        findings.append((int(original_index[cell_]), "", "secondary_inconsistent"))
    is_size = (expr["quantity"] == "size").to_numpy()
    bound = expr["bound"].to_numpy()
    # the obvious ones without a programme: equalities with one unknown left, repeatedly
    known = _substitute(audit)
    pinned_value = _expression_values(expr, known)
    pinned = ~np.isnan(pinned_value) & ~infeasible
    for i in np.flatnonzero(pinned):
        if zero_is_safe and not is_size[i] and abs(pinned_value[i]) < 0.5:
            continue
        findings.append((int(original_index[expr["cell"].iat[i]]), expr["quantity"].iat[i],
                         "secondary_disclosed"))

    def open_candidates() -> np.ndarray:
        cand = audit.one_value() & ~infeasible & ~pinned
        if zero_is_safe:
            cand &= is_size | (audit.lo > 0.5)
        return np.flatnonzero(cand)

    def push(idx: np.ndarray, up: bool) -> None:
        comps = sorted({int(c) for c in audit.e_comp[idx]})
        for batch in audit.batches(comps):
            mine = idx[np.isin(audit.e_comp[idx], batch)]
            weight = audit.rng.uniform(0.5, 1.5, len(mine)) * (1.0 if up else -1.0)
            audit.solve(batch, np.zeros(prog.n_vars), (mine, weight))

    for _ in range(max_pushes):
        cand = open_candidates()
        if not len(cand):
            break
        before = len(cand)
        push(cand, up=True)
        cand = open_candidates()
        down = cand[audit.lo[cand] > bound[cand] + 0.5]
        if len(down):
            push(down, up=False)
        if len(open_candidates()) == before:
            break
    for i in open_candidates():
        if not audit.one_value(np.array([i]))[0]:
            continue
        comp = int(audit.e_comp[i])
        objective = np.zeros(prog.n_vars)
        for v, c in (("v1", "c1"), ("v2", "c2")):
            if expr[v].iat[i] >= 0:
                objective[expr[v].iat[i]] += expr[c].iat[i]
        audit.solve([comp], objective)
        audit.solve([comp], -objective)
        if audit.one_value(np.array([i]))[0]:
            if zero_is_safe and not is_size[i] and abs(audit.hi[i]) < 0.5:
                continue
            findings.append((int(original_index[expr["cell"].iat[i]]), expr["quantity"].iat[i],
                             "secondary_disclosed"))
    return findings


QUANTITY_NAMES = {"size": "count/denominator", "num": "numerator", "comp": "denominator - numerator"}


def _findings(published: pd.DataFrame, reference_dir: Path | str, zero_is_safe: bool,
              seed: int) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    needed = (*KEYS, "unit", "numerator", "denominator", "suppressed")
    missing = [c for c in needed if c not in published.columns]
    if missing:
        raise ValueError(f"audit_secondary: missing column(s) {missing}")
    cells = _cells(published)
    areas = _areas(Path(reference_dir))
    return cells, _audit_cells(cells, areas, zero_is_safe, seed)


def audit_secondary(published: pd.DataFrame, min_cell: int = 5, *, reference_dir: Path | str,
                    zero_is_safe: bool = True, seed: int = 0) -> list[SecondaryProblem]:
    """Every suppressed cell of the published table that the published cells disclose.

    ``published`` is the table as published (one row per cell). ``min_cell`` is accepted for the
    disclosure check's interface; the audit's bounds come from the existence of rows only.
    ``reference_dir`` holds the municipality's ref_sspf_omraden.csv, ref_skolenheter.csv and
    ref_stadsdelar.csv. One problem per cell and quantity, naming the cell and
    never a number."""
    del min_cell
    cells, findings = _findings(published, reference_dir, zero_is_safe, seed)
    problems = []
    for i, quantity, rule in findings:
        row = cells.loc[i]
        problems.append(SecondaryProblem(rule, *(str(row[k]) for k in KEYS),
                                         quantity=QUANTITY_NAMES.get(quantity, "")))
    return problems


def secondary_rules(frame: Any, min_cell: int = 5, *, reference_dir: Path | str) -> dict[str, pd.Series]:
    """The audit as masks (row → breaks the rule), for :func:`samverkan.disclosure.check_disclosure`:
    ``frame`` is the disclosure check's normalised frame (its ``df``) or a published table."""
    del min_cell
    df = frame.df if hasattr(frame, "df") else frame
    cells, findings = _findings(df, reference_dir, True, 0)
    masks = {rule: pd.Series(False, index=df.index) for rule in SECONDARY_RULES}
    positions = {rule: sorted({i for i, _, r in findings if r == rule}) for rule in SECONDARY_RULES}
    for rule, rows in positions.items():
        if rows:
            masks[rule].iloc[rows] = True
    return masks


# ---------------------------------------------------------------------------------------------
# The weekly lägesbild, audited against itself and against the indicator table published with
# it (or the one it is built on)
#
# INDICATOR_RULES.md, "Weekly lägesbild": nya_orosanmalningar and nya_unga_misstankta count
# the populations of the weekly orosanmalningar and unga_misstankta cells (same area, the
# categories are the breakdown's values), so a reader who holds the indicator table knows each
# of their counts in W and each week behind the trailing average from there;
# passerat_hog_franvaro counts some of the pupils of the hog_franvaro numerator (same area and
# week); rod_status names the weekly totalt cells published röd in W and not in W − 1.
# ---------------------------------------------------------------------------------------------

LAGESBILD_AUDIT_RULES: dict[str, str] = {
    "lagesbild_shows_suppressed_cell": "a published count or trailing average stands for a weekly "
                                       "indicator cell (or bounds one) that the indicator table suppresses",
    "lagesbild_contradicts_indicators": "a published count or trailing average differs from the weekly "
                                        "indicator cells it stands for",
    "lagesbild_average_over_unpublished_week": "a published trailing average covers a week the indicator "
                                               "table does not publish (the total reveals that week's count)",
    "lagesbild_status_not_shown_red": "a rod_status row names a weekly cell that is not published röd in "
                                      "the week, or was published röd the week before",
    "lagesbild_status_missing": "a weekly cell published röd in the week and not the week before has no "
                                "rod_status row (its absence tells the previous week's hidden status)",
    "lagesbild_secondary_disclosed": "a suppressed count or trailing total can be recovered from the "
                                     "lägesbild's published cells (its range holds one value only)",
    "lagesbild_secondary_inconsistent": "the lägesbild's published cells contradict its relations: the "
                                        "cell cannot be audited",
}
# (measure → indicator, breakdown): the weekly cells the measure's counts are
_LAGESBILD_SAME_CELLS = {"nya_orosanmalningar": ("orosanmalningar", "anmalare"),
                         "nya_unga_misstankta": ("unga_misstankta", "brottskategori")}
# measure → indicator whose weekly numerator holds the measure's pupils
_LAGESBILD_WITHIN = {"passerat_hog_franvaro": "hog_franvaro"}
# The lägesbild's areas: the city and the SSPF areas, each SSPF area directly under the city.
_LAGESBILD_AREAS = _Areas({}, {}, frozenset())
LAGESBILD_AUDIT_RELATIONS: dict[str, dict[str, str]] = {
    "nya_orosanmalningar": {"stad/top": ">=", "bd:anmalare": "="},
    "nya_unga_misstankta": {"stad/top": "each", "bd:brottskategori": "cover"},
    "passerat_hog_franvaro": {"stad/top": "="},
}


def _lagesbild_numbers(df: pd.DataFrame, trailing_weeks: int) -> tuple[pd.Series, pd.Series]:
    """The published count and the published trailing total (average × weeks, rounded) of each
    row; NaN where not published."""
    value = pd.to_numeric(_text(df["value"]), errors="coerce").astype("float64")
    average = pd.to_numeric(_text(df["trailing_average"]), errors="coerce").astype("float64")
    return value, (average * trailing_weeks).round()


def _weekly_indicator_cells(indicators: pd.DataFrame
                            ) -> tuple[dict[tuple, tuple[bool, float, str]], set[str]]:
    """(indicator, week, level, code, breakdown, value) → (suppressed, numerator, status) of every
    weekly cell, and the weeks the table publishes."""
    weekly = indicators[_text(indicators["period_type"]) == "vecka"]
    start = _key_text(weekly["period_start"])
    numerator = pd.to_numeric(_text(weekly["numerator"]), errors="coerce").astype("float64")
    marker = _text(weekly["suppressed"]).notna() | numerator.isna()
    status = _text(weekly["status"]).fillna("")
    keys = zip(_key_text(weekly["indicator_id"]), start, _key_text(weekly["area_level"]),
               _key_text(weekly["area_code"]), _key_text(weekly["breakdown"]),
               _key_text(weekly["breakdown_value"]), strict=True)
    cells = {k: (bool(h), float(n), str(st))
             for k, h, n, st in zip(keys, marker, numerator, status, strict=True)}
    return cells, set(start)


def _lagesbild_link_rules(df: pd.DataFrame, indicators: pd.DataFrame,
                          trailing_weeks: int) -> dict[str, pd.Series]:
    import datetime as dt

    cells, weeks_published = _weekly_indicator_cells(indicators)
    value, total = _lagesbild_numbers(df, trailing_weeks)
    measure, category = _key_text(df["measure"]), _key_text(df["category"])
    level, code, week = _key_text(df["area_level"]), _key_text(df["area_code"]), _key_text(df["week_start"])
    masks = {rule: pd.Series(False, index=df.index) for rule in LAGESBILD_AUDIT_RULES}
    status_rows: set[tuple[str, str, str]] = set()
    for i in df.index:
        m = measure[i]
        if m == "rod_status":
            status_rows.add((category[i], level[i], code[i]))
            continue
        if not week[i]:
            continue
        w = dt.date.fromisoformat(week[i])
        trailing = [(w - dt.timedelta(weeks=k)).isoformat() for k in range(1, trailing_weeks + 1)]
        if m in _LAGESBILD_SAME_CELLS:
            indicator, breakdown = _LAGESBILD_SAME_CELLS[m]
            bd = ("totalt", "totalt") if category[i] == "totalt" else (breakdown, category[i])
            def cell(start: str) -> tuple[bool, float, str]:
                return cells.get((indicator, start, level[i], code[i], *bd), (False, 0.0, ""))  # noqa: B023
            if not np.isnan(value[i]) and week[i] in weeks_published:
                hidden, n, _ = cell(week[i])
                if hidden:
                    masks["lagesbild_shows_suppressed_cell"][i] = True
                elif n != value[i]:
                    masks["lagesbild_contradicts_indicators"][i] = True
            if not np.isnan(total[i]):
                if not set(trailing) <= weeks_published and total[i] > 0:  # 0: every week is 0
                    masks["lagesbild_average_over_unpublished_week"][i] = True
                elif not set(trailing) <= weeks_published:
                    pass
                elif any(cell(t)[0] for t in trailing):
                    masks["lagesbild_shows_suppressed_cell"][i] = True
                elif sum(cell(t)[1] for t in trailing) != total[i]:
                    masks["lagesbild_contradicts_indicators"][i] = True
        elif m in _LAGESBILD_WITHIN:
            key = (_LAGESBILD_WITHIN[m], level[i], code[i], "totalt", "totalt")
            hidden = {t: cells.get((key[0], t, *key[1:]), (False, 0.0, ""))[0] for t in [week[i], *trailing]}
            if (not np.isnan(value[i]) and value[i] > 0 and hidden[week[i]]) or (
                    not np.isnan(total[i]) and total[i] > 0 and any(hidden[t] for t in trailing)):
                masks["lagesbild_shows_suppressed_cell"][i] = True
    # rod_status against the published statuses of W and W − 1
    lb_weeks = sorted(set(week[week != ""]))
    if len(lb_weeks) == 1:
        w = lb_weeks[0]
        previous = (dt.date.fromisoformat(w) - dt.timedelta(weeks=1)).isoformat()
        areas = set(zip(level, code, strict=True))
        red = {(k[0], k[2], k[3]) for k, (hidden, _, st) in cells.items()
               if k[1] == w and k[4] == "totalt" and not hidden and st == "röd"}
        red_before = {(k[0], k[2], k[3]) for k, (hidden, _, st) in cells.items()
                      if k[1] == previous and k[4] == "totalt" and not hidden and st == "röd"}
        turned = {k for k in red - red_before if k[1] in ("stad", "sspf_omrade") and k[1:] in areas}
        for i in df.index[measure == "rod_status"]:
            if (category[i], level[i], code[i]) not in turned:
                masks["lagesbild_status_not_shown_red"][i] = True
        if turned - status_rows:
            # the missing row is reported on the area's first row
            for _, lvl, cd in sorted(turned - status_rows):
                first = df.index[(level == lvl) & (code == cd)][0]
                masks["lagesbild_status_missing"][first] = True
    return masks


def _lagesbild_cells(df: pd.DataFrame, trailing_weeks: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The count rows as indicator-shaped cells, two systems per measure: the week's counts
    (period ``vecka``) and the trailing totals (``glidande``); and each cell's row."""
    value, total = _lagesbild_numbers(df, trailing_weeks)
    counts = df.index[_key_text(df["measure"]).isin(LAGESBILD_AUDIT_RELATIONS)].to_numpy()
    measure = _key_text(df["measure"])[counts]
    category = _key_text(df["category"])[counts]
    breakdown = {m: next((r[3:] for r in spec if r.startswith("bd:")), "") for m, spec in
                 LAGESBILD_AUDIT_RELATIONS.items()}
    bd = np.where(category == "totalt", "totalt", measure.map(breakdown))
    parts = []
    for period_type, numbers in (("vecka", value), ("glidande", total)):
        parts.append(pd.DataFrame({
            "indicator_id": measure.to_numpy(), "period_type": period_type,
            "period_start": _key_text(df["week_start"])[counts].to_numpy(),
            "area_level": _key_text(df["area_level"])[counts].to_numpy(),
            "area_code": _key_text(df["area_code"])[counts].to_numpy(),
            "breakdown": bd, "breakdown_value": category.to_numpy(), "unit": "antal",
            "numerator": numbers[counts].to_numpy(), "denominator": np.nan,
            "suppressed": None,
        }))
    cells = pd.concat(parts, ignore_index=True)
    rows = np.concatenate([counts, counts])
    # a published 0 is a missing row to the relations (an existing row is at least 1)
    keep = (cells["numerator"] != 0).to_numpy()
    return cells[keep].reset_index(drop=True), rows[keep]


def lagesbild_audit_rules(df: pd.DataFrame, indicators: pd.DataFrame, trailing_weeks: int,
                          zero_is_safe: bool = True, seed: int = 0) -> dict[str, pd.Series]:
    """Masks (lägesbild row → breaks the rule) of :data:`LAGESBILD_AUDIT_RULES`: the published
    lägesbild ``df`` audited against itself (linear programmes over its relations) and against
    the published indicator table ``indicators``."""
    df = df.reset_index(drop=True)
    masks = _lagesbild_link_rules(df, indicators, trailing_weeks)
    cells, rows = _lagesbild_cells(df, trailing_weeks)
    if len(cells):
        findings = _audit_cells(_cells(cells), _LAGESBILD_AREAS, zero_is_safe, seed,
                                relations=LAGESBILD_AUDIT_RELATIONS)
        for cell, _, rule in findings:
            name = "lagesbild_secondary_inconsistent" if rule == "secondary_inconsistent" \
                else "lagesbild_secondary_disclosed"
            masks[name].iloc[int(rows[cell])] = True
    return masks


__all__ = ["AUDIT_RELATIONS", "LAGESBILD_AUDIT_RULES", "SECONDARY_RULES", "SecondaryProblem",
           "audit_secondary", "lagesbild_audit_rules", "secondary_rules"]
