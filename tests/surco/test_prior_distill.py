"""SurCo-prior beyond Eq. 7: distillation from SurCo-zero (runs on any executor, Dask
included), residual priors over a heuristic's cost, robust prediction, hybrid's start."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import surco
from surco.problems import assignment as A

N, M, F = 6, 3, 4
W_TRUE = np.array([[1.0, -2.0, 0.5], [0.0, 1.5, -1.0], [2.0, 0.0, 1.0], [-0.5, 1.0, 0.0]])


class Lin(NamedTuple):
    """A toy instance: per-row features; the objective is linear with cost feat @ W_TRUE."""
    feat: jax.Array


def _linear_problem() -> surco.Problem:
    def f(x, y):
        return jnp.sum(x * (y.feat @ jnp.asarray(W_TRUE, jnp.float32)))
    return surco.Problem("linear-toy", A.space(N, M), f, features=lambda y: y.feat)


def _lin_instances(count: int, seed: int) -> list[Lin]:
    rng = np.random.default_rng(seed)
    return [Lin(jnp.asarray(rng.normal(size=(N, F)), jnp.float32)) for _ in range(count)]


def test_distillation_recovers_a_known_linear_cost():
    """Distillation alone (no end-to-end term) on targets c*(y) = feat @ W: a linear network
    learns c* (up to 2 % of its scale) on unseen instances, and its answers are optimal."""
    prob = _linear_problem()
    train = _lin_instances(10, seed=0)
    targets = [np.asarray(y.feat) @ W_TRUE for y in train]
    pm = surco.prior.train(prob, train, model=surco.prior.CostNet(hidden=()), distill=targets,
                           end_to_end=False, epochs=30, batch_size=1, lr=0.05,
                           patience=None, key=0, backend="highs")
    solver = surco.solvers.make_solver(prob.space, backend="highs")
    for y in _lin_instances(5, seed=1):
        c_true = np.asarray(y.feat) @ W_TRUE
        c = np.asarray(pm.cost(y))
        assert np.abs(c - c_true).max() <= 0.02 * np.abs(c_true).max()
        r = pm.predict(y)
        assert r.f == pytest.approx(solver.solve(c_true).objective, abs=1e-4)


def test_distillation_term_is_added_to_the_end_to_end_loss():
    """On a linear f the end-to-end term alone only fixes the cost's direction (its scale
    grows: 248 away from c* after 30 epochs); the distillation term added to it holds the
    network near the targets (7.6 away)."""
    prob = _linear_problem()
    train = _lin_instances(10, seed=2)
    targets = [np.asarray(y.feat) @ W_TRUE for y in train]
    kw = dict(model=surco.prior.CostNet(hidden=()), epochs=30, batch_size=1, lr=0.05,
              optimizer=optax.sgd(0.05), patience=None, key=0, backend="highs",
              estimator="neg_identity")
    e2e = surco.prior.train(prob, train, **kw)
    both = surco.prior.train(prob, train, distill=targets, distill_weight=10.0, **kw)
    y = _lin_instances(1, seed=3)[0]
    c_true = np.asarray(y.feat) @ W_TRUE
    err = [np.abs(np.asarray(p.cost(y)) - c_true).max() for p in (e2e, both)]
    assert err[1] < 0.1 * err[0]


def test_zero_targets_on_a_dask_cluster_equal_the_serial_runs():
    from dask.distributed import Client, LocalCluster
    prob = A.make_problem(N, M)
    ys = A.generate(4, seed=5, n=N, m=M)
    kw = dict(estimator="neg_identity", projection="standardize", lr=0.1, steps=8, key=0,
              backend="highs", init=A.mean_cost_heuristic)
    serial = surco.prior.zero_targets(prob, ys, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dist = surco.prior.zero_targets(prob, ys, executor=client.get_executor(), **kw)
    assert len(dist) == len(serial) == 4
    for a, b in zip(serial, dist):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.theta, b.theta)
        assert a.history["best_f"] == b.history["best_f"] and a.f == b.f
    # init as a function: step 0 of each run is the heuristic's answer
    s = surco.solvers.make_solver(prob.space, "highs")
    for y, r in zip(ys, serial):
        x0 = s.solve(A.mean_cost_heuristic(y)).x
        assert r.history["f"][0] == pytest.approx(A.evaluate(x0, y), rel=1e-5)


def test_distill_from_zero_targets_trains():
    """The whole path: SurCo-zero on the train instances, then a prior distilled from its
    θ (and the end-to-end term); the targets are checked for shape."""
    prob = A.make_problem(N, M)
    train = A.generate(8, seed=6, n=N, m=M)
    targets = surco.prior.zero_targets(prob, train, estimator="neg_identity",
                                       projection="standardize", lr=0.1, steps=5, key=0,
                                       backend="highs", init=A.mean_cost_heuristic)
    pm = surco.prior.train(prob, train, distill=targets, epochs=2, batch_size=8,
                           estimator="neg_identity", projection="standardize", key=0,
                           backend="highs", hidden=(8,))
    assert len(pm.history.train_f) == 2
    with pytest.raises(ValueError, match=r"distill must be a list with one target per "
                                         r"training instance \(8\), got 7"):
        surco.prior.train(prob, train, distill=targets[:7], epochs=1, backend="highs")
    with pytest.raises(ValueError, match=r"distill\[0\] has shape \(3,\), expected x's "
                                         r"shape \(6, 3\)"):
        surco.prior.train(prob, train, distill=[np.zeros(3)] * 8, epochs=1, backend="highs")
    with pytest.raises(ValueError, match="end_to_end=False leaves no loss"):
        surco.prior.train(prob, train, end_to_end=False, epochs=1, backend="highs")


# -- residual priors -------------------------------------------------------------------------
@pytest.mark.parametrize("net", [None, surco.prior.SetCostNet(hidden=(16,))])
def test_untrained_residual_prior_reproduces_the_heuristic(net):
    prob = A.make_problem(8, 3)
    train = A.generate(10, seed=7, n=8, m=3)
    pm = surco.prior.init(prob, train, model=net, base=A.mean_cost_heuristic, key=3,
                          backend="highs")
    s = surco.solvers.make_solver(prob.space, "highs")
    for y in A.generate(5, seed=8, n=8, m=3):
        np.testing.assert_allclose(np.asarray(pm.theta(y)), A.mean_cost_heuristic(y),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(pm.predict(y).x, s.solve(A.mean_cost_heuristic(y)).x)


def test_residual_prior_trains_saves_and_loads_its_base(tmp_path):
    prob = A.make_problem(N, M)
    train = A.generate(8, seed=9, n=N, m=M)
    pm = surco.prior.train(prob, train, base=A.mean_cost_heuristic, epochs=2, batch_size=8,
                           estimator="neg_identity", projection="standardize", key=0,
                           backend="highs", hidden=(8,))
    assert pm.base is A.mean_cost_heuristic
    pm.save(tmp_path / "m")
    back = surco.prior.load(tmp_path / "m", prob)
    assert back.base is A.mean_cost_heuristic
    y = A.generate(1, seed=10, n=N, m=M)[0]
    np.testing.assert_allclose(np.asarray(back.theta(y)), np.asarray(pm.theta(y)), rtol=1e-6)
    with pytest.raises(ValueError, match="base = .*cannot be recorded"):
        surco.prior.init(prob, train, base=lambda y: A.mean_cost_heuristic(y)).save(
            tmp_path / "lam")
    with pytest.raises(surco.ProblemError,
                       match=r"base returned shape \(3,\), expected x's shape \(6, 3\)"):
        surco.prior.init(prob, train, base=lambda y: np.zeros(3))


# -- robust prediction and hybrid's start ----------------------------------------------------
@pytest.fixture(scope="module")
def residual():
    prob = A.make_problem(8, 3)
    train = A.generate(16, seed=11, n=8, m=3)
    return prob, surco.prior.train(prob, train, base=A.mean_cost_heuristic, epochs=3,
                                   batch_size=8, estimator="neg_identity",
                                   projection="standardize", lr=1e-2, key=0, backend="highs",
                                   hidden=(16,))


def test_robust_prediction_keeps_the_best_candidate(residual):
    prob, pm = residual
    s = surco.solvers.make_solver(prob.space, "highs")
    for i, y in enumerate(A.generate(6, seed=12, n=8, m=3)):
        th = pm.candidate_thetas(y, 5, sigma=0.3, key=i)
        assert th.shape == (5, 8, 3)
        np.testing.assert_allclose(th[0], np.asarray(pm.theta(y)), rtol=1e-6)
        np.testing.assert_allclose(th[1], A.mean_cost_heuristic(y), rtol=1e-6)
        f = [A.evaluate(s.solve(t).x, y) for t in th]
        r = pm.predict(y, candidates=5, sigma=0.3, key=i)
        assert r.f == pytest.approx(min(f), rel=1e-5)
        assert r.f <= pm.predict(y).f + 1e-6
    with pytest.raises(ValueError, match="candidates must be an integer >= 1, got 0"):
        pm.predict(y, candidates=0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got -1"):
        pm.predict(y, candidates=2, sigma=-1)


def test_hybrid_start_is_the_better_of_prior_and_heuristic(residual):
    prob, pm = residual
    s = surco.solvers.make_solver(prob.space, "highs")
    seen = set()
    for y in A.generate(10, seed=13, n=8, m=3):
        th, which = surco.prior.hybrid_start(pm, y)
        f_p = A.evaluate(s.solve(np.asarray(pm.theta(y))).x, y)
        f_h = A.evaluate(s.solve(A.mean_cost_heuristic(y)).x, y)
        assert A.evaluate(s.solve(th).x, y) == pytest.approx(min(f_p, f_h), rel=1e-5)
        assert which == ("prior" if f_p <= f_h + 1e-6 * abs(f_h) else "heuristic")
        seen.add(which)
        res = surco.zero(prob, y, init=th, estimator="neg_identity", projection="standardize",
                         steps=3, backend="highs")
        assert res.history["f"][0] == pytest.approx(min(f_p, f_h), rel=1e-5)
    # without a base the start is the prior's; a heuristic may be given instead
    plain = surco.prior.init(prob, A.generate(4, seed=14, n=8, m=3), backend="highs")
    y = A.generate(1, seed=15, n=8, m=3)[0]
    assert surco.prior.hybrid_start(plain, y)[1] == "prior"
    th, which = surco.prior.hybrid_start(plain, y, heuristic=A.mean_cost_heuristic)
    assert which in ("prior", "heuristic")


def test_steps_to_reach():
    assert surco.prior.steps_to_reach([5.0, 4.0, 3.0, 3.0], 3.5) == 2
    assert surco.prior.steps_to_reach([5.0, 4.0, 3.0], 3.0) == 2
    assert surco.prior.steps_to_reach([5.0], 5.0 - 1e-12) == 0  # within rtol
    assert surco.prior.steps_to_reach([5.0, 4.0], 3.0) is None
    with pytest.raises(ValueError, match="target must be finite, got nan"):
        surco.prior.steps_to_reach([1.0], float("nan"))


def test_sharding_residual_prior_untrained_is_cost_greedy_at_any_size():
    """Sharding's residual prior (`settings.train_prior(residual=True)`'s network and base),
    initialised on T = 20 tasks, returns the cost-greedy plan at T = 10 and 60."""
    from surco.problems import sharding as S
    from surco.problems.sharding.baselines import cost_greedy
    from surco.problems.sharding.settings import heuristic_theta, prior_problem
    pm = surco.prior.init(prior_problem(), S.generate(3, seed=0, n_tables=20, split="train"),
                          model=surco.prior.SetCostNet(hidden=(16,)), base=heuristic_theta,
                          backend="highs")
    for T in (10, 60):
        task = S.generate(1, seed=1, n_tables=T, split="test")[0]
        np.testing.assert_array_equal(pm.predict(task).x, cost_greedy(task))
