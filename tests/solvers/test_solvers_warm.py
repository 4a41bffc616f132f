"""Warm starts (``make_solver(..., warm_start=True)``) change how a solve
starts, never its answer: on 100 random SurCo-like cost sequences every warm-started solve
has the optimum value of a cold one, for every MILP backend and for the HiGHS LP."""
import numpy as np
import pytest
import scipy.sparse as sp

from surco.solvers import LinearSpec, ShortestPathOracle, make_solver


def _capacitated_assignment(T=8, D=3, seed=0) -> LinearSpec:
    rng = np.random.default_rng(seed)
    size = rng.uniform(1.0, 10.0, T)
    return LinearSpec(shape=(T, D), A_eq=sp.kron(sp.eye(T), np.ones((1, D))), b_eq=np.ones(T),
                      A_ub=sp.kron(size[None, :], sp.eye(D)),
                      b_ub=np.full(D, 1.3 * size.sum() / D), lb=0, ub=1, integer=True)


def _sequences(n_var, count=100, length=4, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        c = rng.normal(size=n_var)
        seq = [c]
        for _ in range(length - 1):
            seq.append(seq[-1] + rng.choice([0.02, 0.5]) * rng.normal(size=n_var))
        yield seq


@pytest.mark.parametrize("backend", ["highs", "scip", "cpsat", "pyscipopt"])
def test_warm_mip_solves_have_the_cold_optimum_on_100_sequences(backend):
    spec = _capacitated_assignment()
    warm = make_solver(spec, backend=backend, warm_start=True)
    cold = make_solver(spec, backend=backend, warm_start=False)
    for seq in _sequences(spec.n):
        for c in seq:
            a, b = warm.solve(c), cold.solve(c)
            assert a.objective == pytest.approx(b.objective, rel=1e-6, abs=1e-6)
            assert spec.contains(a.x)
            assert float(c @ a.x.ravel()) == pytest.approx(b.objective, rel=1e-6, abs=1e-6)


def test_warm_highs_lp_keeps_its_basis_and_the_optimum():
    k = 8
    edges = [(r * k + c, r * k + c + 1) for r in range(k) for c in range(k - 1)]
    edges += [(r * k + c, (r + 1) * k + c) for r in range(k - 1) for c in range(k)]
    spec = ShortestPathOracle(k * k, np.array(edges), 0, k * k - 1).spec
    warm = make_solver(spec, backend="highs")
    cold = make_solver(spec, backend="highs", warm_start=False)
    it_w = it_c = 0
    for seq in _sequences(spec.n, count=30, seed=1):
        for c in seq:
            c = np.abs(c)
            a, b = warm.solve(c), cold.solve(c)
            assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-9)
            it_w += warm._run.h.getInfo().simplex_iteration_count
            it_c += cold._run.h.getInfo().simplex_iteration_count
    assert it_w < it_c        # the kept basis saves simplex iterations


def test_warm_start_must_be_a_bool():
    with pytest.raises(ValueError, match="make_solver: warm_start must be True, False or None, got 1"):
        make_solver(_capacitated_assignment(), warm_start=1)
