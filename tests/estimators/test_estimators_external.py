"""An estimator written outside the package, through the public hooks only, works with
`surco.zero`, `surco.prior.train`, `solve_layer`, jit and vmap."""
from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.estimators import (Estimator, call_solver, check_positive, event_axes,
                              get_estimator, solve_layer)
from surco.problems import assignment as A
from surco.solvers import AssignmentOracle


@dataclasses.dataclass(frozen=True)
class ScaledNegIdentity(Estimator):
    """dL/dc = -scale · dL/dx: the sign-corrected straight-through rule (Sahoo et al. 2023)."""

    scale: float = 1.0
    name: ClassVar[str] = "scaled_neg_identity"
    no_progress_advice: ClassVar[str] = "a larger scale"

    def __post_init__(self):
        check_positive(self.name, "scale", self.scale)

    def forward(self, solver, executor, c, key):
        x, status = call_solver(solver, executor, c)
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        return -self.scale * g


@dataclasses.dataclass(frozen=True)
class TwoPointMean(Estimator):
    """A relaxed estimator: the mean of g(c) and g(c + δ·noise), not a point of Ω; the
    backward is the negative identity. Exercises ``forward_is_solution = False``."""

    delta: float = 0.5
    name: ClassVar[str] = "two_point_mean"
    needs_key: ClassVar[bool] = True
    forward_is_solution: ClassVar[bool] = False

    def forward(self, solver, executor, c, key):
        z = jax.random.normal(key, c.shape, c.dtype)
        both = jnp.stack([c, c + self.delta * z])
        xs, status = call_solver(solver, executor, both)
        # the per-solve dot product uses event_axes (shifted by the stacking axis)
        res = jnp.sum(xs * both, axis=tuple(a + 1 for a in event_axes(solver, c)))
        return xs.mean(0), jnp.max(status, axis=0), res

    def backward(self, solver, executor, c, key, x, res, g):
        return -g


ORACLE = AssignmentOracle(3, 3)
W = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)


def test_external_estimator_values_under_jit_vmap_grad():
    est = ScaledNegIdentity(scale=2.0)
    C = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2, size=(4, 3, 3)), jnp.float32)
    X = jax.jit(jax.vmap(lambda c: est(ORACLE, c)))(C)
    for i in range(4):
        np.testing.assert_array_equal(X[i], ORACLE.solve(np.asarray(C[i])).x)
    G = jax.jit(jax.vmap(jax.grad(lambda c: jnp.sum(est(ORACLE, c) * W))))(C)
    np.testing.assert_allclose(G, np.broadcast_to(-2.0 * np.asarray(W), G.shape), rtol=1e-6)
    # by object through get_estimator / solve_layer, hyperparameters replaced
    assert get_estimator(est, scale=3.0).scale == 3.0
    np.testing.assert_array_equal(solve_layer(ORACLE, C[0], est), X[0])
    with pytest.raises(ValueError, match="scaled_neg_identity: scale must be a finite number > 0"):
        ScaledNegIdentity(scale=0.0)


def test_external_estimator_in_zero_matches_the_builtin_it_mirrors():
    """ScaledNegIdentity(scale=2) with SGD(lr/2) takes exactly the steps of the built-in
    neg_identity with SGD(lr), and the run improves on its first x."""
    import optax
    prob = A.make_problem(6, 3)
    ys = A.generate(3, seed=1, n=6, m=3)
    kw = dict(steps=30, key=0, backend="highs")
    ours = surco.zero(prob, ys, estimator=ScaledNegIdentity(scale=2.0),
                      optimizer=optax.sgd(0.05), **kw)
    ref = surco.zero(prob, ys, estimator="neg_identity", optimizer=optax.sgd(0.1), **kw)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.history["f"], b.history["f"], rtol=1e-6)
        np.testing.assert_array_equal(a.x, b.x)
        assert a.estimator == "scaled_neg_identity"
    assert any(r.f < r.history["f"][0] - 1e-6 for r in ours)


def test_relaxed_external_estimator_reports_a_feasible_best_x():
    """forward_is_solution = False: the best x is g(c), a point of Ω, not the mean."""
    prob = A.make_problem(5, 2)
    y = A.generate(1, seed=4, n=5, m=2)[0]
    r = surco.zero(prob, y, estimator=TwoPointMean(), steps=10, key=0, backend="highs")
    assert prob.space.contains(r.x)
    assert r.f == pytest.approx(float(A.objective(jnp.asarray(r.x, jnp.float32), y)), abs=1e-5)
    x_c = surco.solvers.make_solver(prob.space, backend="highs").solve(r.c).x
    np.testing.assert_array_equal(r.x, x_c)


def test_external_estimator_trains_a_prior():
    n, m = 5, 2
    prob = A.make_problem(n, m)
    train = A.generate(8, seed=2, n=n, m=m)
    model = surco.prior.train(prob, train, estimator=ScaledNegIdentity(), epochs=2,
                              batch_size=4, key=0, backend="highs", patience=None)
    assert model.estimator == "scaled_neg_identity"
    pred = model.predict(train[0])
    assert prob.space.contains(pred.x)
    assert pred.f == pytest.approx(float(A.objective(jnp.asarray(pred.x, jnp.float32), train[0])),
                                   abs=1e-5)


def test_the_documented_example_runs():
    """The estimator in `surco.estimators.base`'s docstring, executed as written."""
    doc = surco.estimators.base.__doc__
    block = re.search(r"outside the package.*?::\n\n(.*?)\n\n(?=\S)", doc, re.S).group(1)
    code = "\n".join(line[4:] for line in block.splitlines())
    prob = A.make_problem(4, 2)
    y = A.generate(1, seed=0, n=4, m=2)[0]
    scope = {"surco": surco, "problem": prob, "instance": y}
    exec(compile(code, "<estimators docstring>", "exec"), scope)
    res = scope["res"]
    assert res.estimator == "scaled_neg_identity" and prob.space.contains(res.x)
