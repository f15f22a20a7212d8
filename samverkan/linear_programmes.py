"""Linear programmes for disclosure control: one call into HiGHS.

Secondary suppression (:mod:`samverkan.suppression`) and the independent disclosure audit
(:mod:`samverkan.disclosure_audit`) each solve many small linear programmes (about 1 500 for
one publication at Stockholm's size). Through ``scipy.optimize.linprog`` most of each call was
scipy's own work around the solver (checking and converting the inputs, stacking the
constraint matrices, checking every option): 5 of the 7 s the programmes took, the solving
itself 0.9 s. Here the programme goes to HiGHS (``highspy``, the same solver, presolve off as
before) as one row-wise matrix, concatenated from the arrays of the two it is given.
"""

from __future__ import annotations

import highspy
import numpy as np
from scipy.sparse import csr_matrix


def component_rows(a: csr_matrix, rows: np.ndarray, cols: np.ndarray) -> csr_matrix:
    """``a[rows][:, cols]`` for the rows and columns of whole connected components (every
    nonzero of those rows lies in ``cols``): the rows gathered in one step and their column
    indices renumbered, in the same order as the slice. Slicing the columns (or one slice per
    component and a block diagonal of them) was most of the time the programmes took to set
    up."""
    sub = a[rows]
    where = np.full(a.shape[1], -1, dtype=np.int64)
    where[cols] = np.arange(len(cols))
    indices = where[sub.indices]
    if len(indices) and indices.min() < 0:
        raise ValueError("component_rows: a row has a nonzero outside the given columns")
    return csr_matrix((sub.data, indices, sub.indptr), shape=(len(rows), len(cols)))


def minimise(objective: np.ndarray, a_eq: csr_matrix, b_eq: np.ndarray, a_ub: csr_matrix,
             b_ub: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """An optimal x of min objective · x subject to a_eq x = b_eq, a_ub x ≤ b_ub and
    lower ≤ x ≤ upper (±inf for no bound), or None when there is none (infeasible,
    unbounded, or the solver stopped short of an optimum)."""
    a_eq, a_ub = csr_matrix(a_eq), csr_matrix(a_ub)
    n_cols = len(objective)
    n_ub, n_eq = a_ub.shape[0], a_eq.shape[0]
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_ub + n_eq
    lp.col_cost_ = np.asarray(objective, dtype=np.float64)
    lp.col_lower_ = np.asarray(lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(upper, dtype=np.float64)
    b_eq = np.asarray(b_eq, dtype=np.float64)
    lp.row_lower_ = np.concatenate([np.full(n_ub, -highspy.kHighsInf), b_eq])
    lp.row_upper_ = np.concatenate([np.asarray(b_ub, dtype=np.float64), b_eq])
    matrix = lp.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kRowwise
    matrix.num_col_, matrix.num_row_ = n_cols, n_ub + n_eq
    # the inequality rows, then the equality rows: one row-wise matrix
    matrix.start_ = np.concatenate([a_ub.indptr[:-1], a_eq.indptr + a_ub.nnz]).astype(np.int32)
    matrix.index_ = np.concatenate([a_ub.indices, a_eq.indices]).astype(np.int32)
    matrix.value_ = np.concatenate([a_ub.data, a_eq.data]).astype(np.float64)
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("presolve", "off")
    solver.passModel(lp)
    solver.run()
    if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.array(solver.getSolution().col_value)
