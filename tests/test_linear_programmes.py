"""samverkan.linear_programmes: ``minimise``, the one call into HiGHS that secondary suppression
and the disclosure audit make, checked on programmes with known answers and against scipy's
``linprog`` (what both used before) on random feasible programmes; ``component_rows``, the
rows and columns of some connected components, against scipy's slicing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import block_diag, csr_matrix
from scipy.sparse import random as sparse_random

from samverkan.linear_programmes import component_rows, minimise

NONE = csr_matrix((0, 2))


def test_equalities_and_inequalities_together():
    # min −x − 2y  s.t.  x + y ≤ 4,  x − y = 1,  0 ≤ x, y ≤ 10  →  x = 2.5, y = 1.5
    x = minimise(np.array([-1.0, -2.0]), csr_matrix([[1.0, -1.0]]), np.array([1.0]),
                 csr_matrix([[1.0, 1.0]]), np.array([4.0]), np.zeros(2), np.full(2, 10.0))
    assert x == pytest.approx([2.5, 1.5])


def test_bounds_alone_and_free_variables():
    x = minimise(np.array([1.0, -1.0]), NONE, np.zeros(0), NONE, np.zeros(0),
                 np.array([1.0, -np.inf]), np.array([5.0, 3.0]))
    assert x == pytest.approx([1.0, 3.0])


def test_no_optimum_is_none():
    infeasible = minimise(np.zeros(2), csr_matrix([[1.0, 1.0]]), np.array([5.0]), NONE, np.zeros(0),
                          np.zeros(2), np.full(2, 2.0))
    unbounded = minimise(np.array([-1.0, 0.0]), NONE, np.zeros(0), NONE, np.zeros(0),
                         np.zeros(2), np.array([np.inf, 1.0]))
    assert infeasible is None and unbounded is None


@pytest.mark.parametrize("seed", range(20))
def test_the_same_optimum_as_scipy_linprog(seed):
    """Random sparse programmes that a known point satisfies: the same optimal value as
    scipy's linprog with HiGHS, and a solution that satisfies every constraint."""
    rng = np.random.default_rng(seed)
    n, n_eq, n_ub = 40, 12, 25
    point = rng.integers(0, 20, n).astype(float)
    a_eq = csr_matrix(sparse_random(n_eq, n, density=0.2, random_state=seed,
                                    data_rvs=lambda k: rng.integers(-3, 4, k)))
    a_ub = csr_matrix(sparse_random(n_ub, n, density=0.2, random_state=seed + 100,
                                    data_rvs=lambda k: rng.integers(-3, 4, k)))
    b_eq = a_eq @ point
    b_ub = a_ub @ point + rng.integers(0, 5, n_ub)
    lower, upper = np.zeros(n), np.full(n, 60.0)
    objective = rng.standard_normal(n)
    x = minimise(objective, a_eq, b_eq, a_ub, b_ub, lower, upper)
    expected = linprog(objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq,
                       bounds=np.column_stack([lower, upper]), method="highs",
                       options={"presolve": False})
    assert expected.status == 0 and x is not None
    assert objective @ x == pytest.approx(expected.fun, rel=1e-9, abs=1e-7)
    assert a_eq @ x == pytest.approx(b_eq, abs=1e-7)
    assert np.all(a_ub @ x <= b_ub + 1e-7) and np.all(x >= lower - 1e-9) and np.all(x <= upper + 1e-9)


def test_solving_prints_nothing():
    """The solver writes nothing on the console of a run (highspy 1.16 printed a banner on
    stdout when the first solver was made: pinned below it)."""
    program = ("import numpy as np; from scipy.sparse import csr_matrix; "
               "from samverkan.linear_programmes import component_rows, minimise; "
               "print(minimise(np.array([1.0]), csr_matrix((0, 1)), np.zeros(0), "
               "csr_matrix([[-1.0]]), np.array([-2.0]), np.zeros(1), np.full(1, 5.0)))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[2.]\n" and result.stderr == ""


def test_component_rows_is_the_slice_of_those_components():
    # five components (blocks of random size), their rows and columns shuffled in the matrix
    rng = np.random.default_rng(7)
    blocks = [sparse_random(int(rng.integers(1, 6)), int(rng.integers(1, 6)), density=0.7,
                            random_state=int(rng.integers(1_000_000)), format="csr") for _ in range(5)]
    whole = block_diag(blocks, format="csr")
    row_order, col_order = rng.permutation(whole.shape[0]), rng.permutation(whole.shape[1])
    a = whole[row_order][:, col_order].tocsr()
    row_of = np.argsort(row_order)  # where each row of `whole` went
    col_of = np.argsort(col_order)
    row_starts = np.cumsum([0] + [b.shape[0] for b in blocks])
    col_starts = np.cumsum([0] + [b.shape[1] for b in blocks])
    for chosen in ([3], [0, 2], [4, 1, 3], list(range(5))):
        # each component's rows and columns in ascending order, the components in the order asked
        rows = np.concatenate([np.sort(row_of[row_starts[c]:row_starts[c + 1]]) for c in chosen])
        cols = np.concatenate([np.sort(col_of[col_starts[c]:col_starts[c + 1]]) for c in chosen])
        got, expected = component_rows(a, rows, cols), a[rows][:, cols]
        assert got.shape == expected.shape
        assert (got != expected).nnz == 0
        assert np.array_equal(got.indptr, expected.indptr)
        assert np.array_equal(got.indices, expected.indices)   # the same order of the entries


def test_component_rows_refuses_columns_that_leave_out_a_nonzero():
    a = csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]))
    with pytest.raises(ValueError, match="outside the given columns"):
        component_rows(a, np.array([0]), np.array([0]))
