"""Every estimator x {MILP backend, oracle}: jit, vmap (one solve_batch), grad, dtype, keys."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _est_helpers import CountingSolver, assignment_solvers
from surco.estimators import ESTIMATORS, Estimator, get_estimator, solve_layer
from surco.solvers import AssignmentOracle, SolverStack, make_solver

# Small-but-real hyperparameters, so the suite stays fast.
HYPER = {"perturbed": dict(sigma=0.5, n=3), "blackbox": dict(lam=3.0)}
NAMES = sorted(ESTIMATORS)
SOLVERS = assignment_solvers()
W = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)


def _est(name) -> Estimator:
    return get_estimator(name, **HYPER.get(name, {}))


def _costs(dtype=jnp.float32, batch=None):
    rng = np.random.default_rng(1)
    shape = (3, 3) if batch is None else (batch, 3, 3)
    return jnp.asarray(rng.uniform(0.5, 2.0, size=shape), dtype)


def _loss(est, solver, key):
    def f(c):
        return jnp.sum((est(solver, c, key) - 0.3) ** 2 * W.astype(c.dtype))
    return f


@pytest.mark.parametrize("sid,solver", SOLVERS, ids=[s for s, _ in SOLVERS])
@pytest.mark.parametrize("name", NAMES)
def test_jit_grad_match_eager(name, sid, solver):
    est, key, c = _est(name), jax.random.key(3), _costs()
    x = est(solver, c, key)
    np.testing.assert_allclose(jax.jit(lambda c: est(solver, c, key))(c), x, atol=1e-6)
    # every output is in conv(Ω): rows and columns of an assignment sum to one
    np.testing.assert_allclose(np.asarray(x).sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(x).sum(1), 1.0, atol=1e-5)
    g = jax.grad(_loss(est, solver, key))(c)
    gj = jax.jit(jax.grad(_loss(est, solver, key)))(c)
    assert g.shape == c.shape and g.dtype == c.dtype
    np.testing.assert_allclose(gj, g, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("sid,solver", SOLVERS, ids=[s for s, _ in SOLVERS])
@pytest.mark.parametrize("name", NAMES)
def test_vmap_is_one_solve_batch_and_matches_loop(name, sid, solver):
    est, key, C = _est(name), jax.random.key(4), _costs(batch=4)
    loss = _loss(est, solver, key)
    if name == "quadratic":  # solves the QP over the solver's relaxation, not the solver
        from surco.estimators.quadratic import _qp_view
        counter = CountingSolver(_qp_view(solver, est.gamma))
    else:
        counter = CountingSolver(solver)
    try:
        X = jax.jit(jax.vmap(lambda c: est(solver, c, key)))(C)
        n_fwd = len(counter.calls)
        G = jax.jit(jax.vmap(jax.grad(loss)))(C)
        calls = list(counter.calls)
    finally:
        counter.restore()
    per_call = HYPER.get(name, {}).get("n", 1) if est.needs_key else 1
    assert n_fwd == 1 and calls[0] == 4 * per_call, calls
    # the vmapped forward+backward: one batched forward, plus one batched re-solve for
    # estimators that solve again in the backward pass (blackbox)
    assert len(calls) - n_fwd <= 2 and all(k == 4 * per_call for k in calls), calls
    if name == "blackbox":
        assert len(calls) == 3  # forward, forward of grad, backward re-solve
    for i in range(4):
        np.testing.assert_allclose(X[i], est(solver, C[i], key), atol=1e-6)
        np.testing.assert_allclose(G[i], jax.grad(loss)(C[i]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_preserved_float64(name):
    solver = SOLVERS[1][1]
    est, key = _est(name), jax.random.key(5)
    with jax.enable_x64(True):
        c = _costs(jnp.float64)
        x = jax.jit(lambda c: est(solver, c, key))(c)
        g = jax.jit(jax.grad(_loss(est, solver, key)))(c)
        assert x.dtype == jnp.float64 and g.dtype == jnp.float64
        x32 = est(solver, c.astype(jnp.float32), key)
        assert x32.dtype == jnp.float32
        if not est.needs_key:  # noise is drawn in c's dtype, so only deterministic ones match
            np.testing.assert_allclose(x32, x, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_result(name):
    solver = SOLVERS[0][1]
    est, c = _est(name), _costs()
    loss = _loss(est, solver, jax.random.key(7))
    np.testing.assert_array_equal(est(solver, c, jax.random.key(7)),
                                  est(solver, c, jax.random.key(7)))
    np.testing.assert_array_equal(jax.grad(loss)(c), jax.grad(loss)(c))
    if est.needs_key:  # a different key gives different noise (3x3 costs of similar size)
        xs = {np.asarray(est(solver, c, jax.random.key(k))).tobytes() for k in range(4)}
        assert len(xs) > 1


@pytest.mark.parametrize("name", NAMES)
def test_leading_batch_dims_and_solver_stack(name):
    """c with leading dims = independent solves; a SolverStack is just another solver."""
    est, key = _est(name), jax.random.key(8)
    members = [AssignmentOracle(3, 3), make_solver(AssignmentOracle(3, 3).spec, "highs")]
    stack = SolverStack(members)
    C = _costs(batch=2)
    xs = est(stack, C, key)
    assert xs.shape == (2, 3, 3)
    g = jax.jit(jax.grad(lambda C: jnp.sum(est(stack, C, key) * W)))(C)
    assert g.shape == C.shape and np.all(np.isfinite(np.asarray(g)))
    if not est.needs_key:  # deterministic: stacking changes nothing
        for i in range(2):
            np.testing.assert_allclose(xs[i], est(members[i], C[i]), atol=1e-6)
            gi = jax.grad(lambda c: jnp.sum(est(members[i], c) * W))(C[i])
            np.testing.assert_allclose(g[i], gi, rtol=1e-5, atol=1e-6)


def test_solve_layer_plain_has_zero_gradient_and_by_name():
    solver, c = SOLVERS[1][1], _costs()
    x = solve_layer(solver, c)
    np.testing.assert_array_equal(x, get_estimator("blackbox")(solver, c))
    assert not np.any(jax.grad(lambda c: jnp.sum(solve_layer(solver, c) * W))(c))
    xb = solve_layer(solver, c, "perturbed", jax.random.key(0), sigma=0.1, n=3)
    np.testing.assert_array_equal(xb, get_estimator("perturbed", sigma=0.1, n=3)(
        solver, c, jax.random.key(0)))


def test_get_estimator_by_object_and_name():
    est = get_estimator("blackbox", lam=2.0)
    assert get_estimator(est) is est
    assert get_estimator(est, lam=5.0).lam == 5.0 and est.lam == 2.0
    assert type(get_estimator("neg_identity", projection="norm")).name == "neg_identity"
    for name in NAMES:
        assert get_estimator(name).name == name


def test_layer_does_not_keep_solvers_alive():
    """Eager calls cache one host callback per solver, weakly: many per-instance solvers
    (SurCo-prior) must not pile up."""
    import gc
    import weakref

    from surco.estimators.base import _HOST_FNS
    solver = AssignmentOracle(2, 2)
    ref = weakref.ref(solver)
    get_estimator("blackbox")(solver, jnp.ones((2, 2)))
    assert solver in _HOST_FNS
    del solver
    gc.collect()
    assert ref() is None


def _knapsack_like(seed):
    """A 5-binary set with the row counts of `knapsack_spec` but other coefficients."""
    from surco.solvers import LinearSpec
    rng = np.random.default_rng(seed)
    return LinearSpec(shape=(5,), A_ub=rng.uniform(1, 4, size=(3, 5)), b_ub=[7.0, 7.0, 3.0],
                      A_eq=np.ones((1, 5)), b_eq=[2.0], lb=0, ub=1, integer=True, name=f"k{seed}")


@pytest.mark.parametrize("name", NAMES)
def test_swapping_stack_members_is_seen_by_a_jitted_function(name):
    """SurCo-prior compiles one step over a stack and swaps its members per minibatch: the
    next call must use the new members (their Ω and, for the relaxations, their constraints)."""
    est, key = _est(name), jax.random.key(9)
    a, b, c = (make_solver(_knapsack_like(s), "highs") for s in (1, 2, 3))
    stack = SolverStack([a, a])
    w = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5)), jnp.float32)
    f = jax.jit(jax.value_and_grad(lambda C: jnp.sum(est(stack, C, key) * w)))
    C = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5)), jnp.float32)
    v1, _ = f(C)
    stack.members = [b, c]
    v, g = f(C)
    fresh = SolverStack([b, c])
    v2, g2 = jax.value_and_grad(lambda C: jnp.sum(est(fresh, C, key) * w))(C)
    np.testing.assert_allclose(v, v2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, g2, rtol=1e-4, atol=1e-5)


def test_quadratic_swap_to_more_constraint_rows_is_a_clear_error():
    from _est_helpers import knapsack_spec, simplex_spec
    est = get_estimator("quadratic")
    stack = SolverStack([make_solver(simplex_spec(5), "highs")] * 2)
    f = jax.jit(jax.grad(lambda C: jnp.sum(est(stack, C) ** 2)))
    f(jnp.ones((2, 5)))
    stack.members = [make_solver(knapsack_spec(), "highs")] * 2
    with pytest.raises(Exception, match="more constraint rows.*jit it again"):
        f(jnp.ones((2, 5))).block_until_ready()
