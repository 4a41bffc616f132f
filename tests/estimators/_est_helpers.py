"""Shared fixtures for the estimator tests (plain module: imported by name)."""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from surco.solvers import AssignmentOracle, LinearSpec, Solver, Status, make_solver


class ArgminOracle(Solver):
    """argmin over the vertices of the simplex, x = e_{argmin c}: a closed-form test oracle."""

    def __init__(self, d: int):
        super().__init__((d,), f"simplex{d}")

    def factory(self):
        return functools.partial(ArgminOracle, self.shape[0])

    def solve_flat(self, c):
        x = np.zeros_like(c)
        x[int(np.argmin(c))] = 1.0
        return x, float(c.min()), Status.OPTIMAL, {}


def simplex_spec(d: int) -> LinearSpec:
    return LinearSpec(shape=(d,), A_eq=np.ones((1, d)), b_eq=[1.0], lb=0.0, ub=1.0,
                      integer=True, name=f"simplex{d}")


def knapsack_spec() -> LinearSpec:
    """5 binaries, two knapsack rows and a cardinality row: small enough to enumerate."""
    A = np.array([[3.0, 4.0, 2.0, 5.0, 1.0], [1.0, 2.0, 4.0, 1.0, 3.0], [1, 1, 1, 1, 1]])
    b = np.array([8.0, 6.0, 3.0])
    return LinearSpec(shape=(5,), A_ub=A, b_ub=b, A_eq=np.array([[1.0, 1, 1, 1, 1]]),
                      b_eq=[2.0], lb=0, ub=1, integer=True, name="knap5")


def enumerate_points(spec: LinearSpec) -> np.ndarray:
    """All binary points of a small spec (brute force)."""
    n = spec.n
    pts = np.array([[(i >> j) & 1 for j in range(n)] for i in range(2 ** n)], float)
    return np.array([p for p in pts if spec.contains(p)])


def assignment_solvers():
    """(id, solver) pairs over the 3x3 assignment set: a MILP backend and an oracle."""
    oracle = AssignmentOracle(3, 3)
    return [("highs", make_solver(oracle.spec, backend="highs")), ("oracle", oracle)]


class CountingSolver:
    """Counts solve_batch calls (and their sizes) of a solver by wrapping the bound method."""

    def __init__(self, solver: Solver):
        self.solver, self.calls = solver, []
        inner = solver.solve_batch

        def counted(C, executor=None, *, check=True):
            self.calls.append(len(np.asarray(C)))
            return inner(C, executor=executor, check=check)

        solver.solve_batch = counted

    def restore(self):
        del self.solver.solve_batch
