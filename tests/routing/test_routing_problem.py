"""On-time routing: instances, objective, Ω two ways, baselines checked against each other."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from surco.problems import routing as R
from surco.solvers import make_solver


# -- graph and instances -----------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_grid_graph_shape(n):
    V, edges, s, t = R.grid_graph(n)
    assert V == n * n and (s, t) == (0, n * n - 1)
    assert edges.shape == (4 * n * (n - 1), 2)
    assert R.grid_size(len(edges)) == n
    # every edge joins 4-neighbours and its reverse is present
    r, c = np.divmod(edges, n)
    assert np.all(np.abs(r[:, 0] - r[:, 1]) + np.abs(c[:, 0] - c[:, 1]) == 1)
    assert {tuple(e) for e in edges} == {(b, a) for a, b in edges}


def test_grid_size_rejects_non_grid_counts():
    with pytest.raises(ValueError, match="not 4·n·"):
        R.grid_size(81)


def test_make_instance_is_seeded_and_follows_the_ranges():
    a, b = R.make_instance(3, n=5, regime="standard"), R.make_instance(3, n=5, regime="standard")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["mu"], R.make_instance(4, n=5, regime="standard")["mu"])
    mu, var = a["mu"], a["var"]
    assert np.all((mu >= 0.1) & (mu <= 1.0))
    ratio = var / (1 - mu)
    assert np.all((ratio >= 0.1) & (ratio <= 0.3))


@pytest.mark.parametrize("k", [0.9, 1.0, 1.1])
def test_standard_deadline_is_k_times_let_mean(k):
    y = R.make_instance(0, n=5, regime="standard", k=k)
    let = R.let_path(y)
    assert float(y["deadline"]) == pytest.approx(k * float(y["mu"] @ let.x))
    if k == 1.0:  # T equals the LET mean, so P(LET) = Φ(0)
        assert let.prob == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("q", [-1.0, 1.0, 2.0])
def test_risk_regime_deadline_and_edge_types(q):
    y = R.make_instance(1, n=5, regime="risk", q=q)
    assert R.let_path(y).prob == pytest.approx(ndtr(q), abs=1e-12)  # T = mean + q·std
    mu, var = y["mu"], y["var"]
    fast = var >= 0.5
    assert np.all((mu[fast] >= 0.2) & (mu[fast] <= 0.6))
    assert np.all((mu[~fast] >= 0.4) & (mu[~fast] <= 0.8) & (var[~fast] <= 0.05))
    assert 0 < fast.sum() < len(mu)


@pytest.mark.parametrize("kwargs, match", [
    (dict(regime="weird"), "regime must be a Regime"),
    (dict(k=0.0), "k \\(deadline factor\\)"),
    (dict(q=float("nan")), "q must be a finite"),
    (dict(n=1), "n must be an integer >= 2"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(regime=dataclasses.replace(R.STANDARD, mu_range=(1.0, 2.0))), "> 0"),  # σ² <= 0
])
def test_make_instance_rejects_bad_arguments(kwargs, match):
    kwargs = {"seed": 0, "n": 4, "regime": "standard", **kwargs}
    with pytest.raises(ValueError, match=f"routing.make_instance: .*{match}"):
        R.make_instance(**kwargs)


@pytest.mark.parametrize("fields, match", [
    (dict(name="weird"), "name"),
    (dict(p_fast=1.5), "p_fast"),
    (dict(mu_range=(1.0, 0.5)), "mu_range"),
    (dict(slow_var=(0.01, float("inf"))), "slow_var"),
    (dict(fast_mu=0.3), "fast_mu"),
])
def test_regime_rejects_bad_fields(fields, match):
    with pytest.raises(ValueError, match=f"Regime: {match}"):
        dataclasses.replace(R.RISK, **fields)


def test_regime_presets_and_variants():
    assert R.REGIMES == {"standard": R.STANDARD, "risk": R.RISK}
    assert R.Regime("risk") == R.RISK and R.RISK.p_fast == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        R.RISK.p_fast = 0.1
    # a string names its preset: the same instance as the Regime itself
    a = R.make_instance(2, n=4, regime="risk", q=0.5)
    b = R.make_instance(2, n=4, regime=R.RISK, q=0.5)
    assert all(np.array_equal(a[key], b[key]) for key in a)
    # every edge slow (p_fast = 0): variances in slow_var, means in slow_mu
    slow = R.make_instance(2, n=4, regime=dataclasses.replace(R.RISK, p_fast=0.0))
    assert np.all((slow["var"] >= 0.01) & (slow["var"] <= 0.05))
    assert np.all((slow["mu"] >= 0.4) & (slow["mu"] <= 0.8))


def test_check_instance_errors():
    y = R.make_instance(0, n=3, regime="standard")
    with pytest.raises(ValueError, match="dict"):
        R.check_instance({"mu": y["mu"]})
    with pytest.raises(ValueError, match="var"):
        R.check_instance({**y, "var": -y["var"]})
    with pytest.raises(ValueError, match="scalar"):
        R.check_instance({**y, "deadline": np.ones(2)})


# -- objective ---------------------------------------------------------------------------

def test_probability_matches_monte_carlo():
    y = R.make_instance(2, n=4, regime="risk", q=0.5)
    x = R.mean_risk(y).x
    rng = np.random.default_rng(0)
    times = rng.normal(y["mu"], np.sqrt(y["var"]), size=(200_000, len(x))) @ x
    p_mc = np.mean(times <= float(y["deadline"]))
    p = R.on_time_probability(x, y)
    assert abs(p_mc - p) < 4 * math.sqrt(p * (1 - p) / 200_000)


def test_objectives_and_gradient_closed_form():
    y = R.make_instance(5, n=4, regime="standard")
    x = R.let_path(y).x
    z = R.z_score(x, y)
    p = R.on_time_probability(x, y)
    assert float(-R.neg_z(x, y)) == pytest.approx(float(z), rel=1e-6)
    assert float(-R.neg_prob(x, y)) == pytest.approx(p, rel=1e-5)
    assert float(R.neg_log_prob(x, y)) == pytest.approx(-math.log(p), rel=1e-5)
    # d z / d x_e = −(μ_e + z σ²_e / (2 s)) / s, with s = sqrt(σ²·x)
    s = math.sqrt(float(y["var"] @ x))
    want = -(y["mu"] + float(z) * y["var"] / (2 * s)) / s
    got = jax.grad(lambda xx: R.z_score(xx, y))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    assert R.evaluate(x, y) == pytest.approx(-p)


def test_on_time_probability_batch_and_errors():
    y = R.make_instance(0, n=3, regime="standard")
    X = R.simple_paths(3).astype(float)
    P = R.on_time_probability(X, y)
    assert P.shape == (12,)
    assert P[0] == pytest.approx(R.on_time_probability(X[0], y))
    with pytest.raises(ValueError, match="not a path"):
        R.on_time_probability(np.zeros(len(y["mu"])), y)
    with pytest.raises(ValueError, match="shape"):
        R.on_time_probability(np.ones(3), y)


def test_path_nodes_accepts_paths_and_rejects_the_rest():
    n = 3
    X = R.simple_paths(n)
    for x in X:
        nodes = R.path_nodes(x, n)
        assert nodes[0] == 0 and nodes[-1] == n * n - 1 and len(set(nodes)) == len(nodes)
    _, edges, _, _ = R.grid_graph(n)
    x = X[0].astype(float).copy()
    cyc = np.zeros(len(edges))
    i = next(e for e, (a, b) in enumerate(edges) if x[e] == 0 and
             x[np.flatnonzero((edges[:, 0] == b) & (edges[:, 1] == a))[0]] == 0)
    j = np.flatnonzero((edges[:, 0] == edges[i, 1]) & (edges[:, 1] == edges[i, 0]))[0]
    cyc[[i, j]] = 1  # a 2-cycle beside the path: still a flow, not a simple path
    with pytest.raises(ValueError):
        R.path_nodes(x + cyc, n)
    with pytest.raises(ValueError, match="0/1"):
        R.path_nodes(x * 0.5, n)


def test_features_shape():
    y = R.make_instance(0, n=5, regime="standard")
    F = np.asarray(R.features(y))
    assert F.shape == (80, 6) and np.all(np.isfinite(F))


# -- Ω two ways ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["highs", "glop"])
@pytest.mark.parametrize("n", [3, 5, 8])
def test_flow_spec_and_oracle_give_the_same_paths(n, backend):
    orc = R.oracle(n)
    spec = R.make_problem(n, omega="spec").space
    assert spec.shape == orc.shape
    lp = make_solver(spec, backend=backend)
    rng = np.random.default_rng(n)
    for _ in range(10):
        c = rng.uniform(0.05, 2.0, orc.shape)
        x_o, x_s = orc.solve(c).x, lp.solve(c).x
        np.testing.assert_allclose(x_s, x_o, atol=1e-7)
        assert spec.contains(x_o)
        R.path_nodes(x_s, n)  # a simple path


def test_make_problem_variants():
    y = R.make_instance(0, n=5, regime="standard")
    x = R.let_path(y).x
    p_or, p_sp = R.make_problem(5), R.make_problem(5, omega="spec")
    assert float(p_or.f(jnp.asarray(x), y)) == pytest.approx(float(p_sp.f(jnp.asarray(x), y)))
    theta = R.softplus_inverse(y["mu"])
    np.testing.assert_allclose(np.asarray(p_or.to_cost(jnp.asarray(theta))), y["mu"], rtol=1e-5)
    with pytest.raises(ValueError, match="omega"):
        R.make_problem(5, omega="milp")
    with pytest.raises(ValueError, match="surrogate"):
        R.make_problem(5, surrogate="logit")


# -- baselines --------------------------------------------------------------------------------

def test_simple_path_counts():
    # OEIS A007764: corner-to-corner self-avoiding paths on an n×n grid of nodes
    assert [len(R.simple_paths(n)) for n in (2, 3, 4, 5)] == [2, 12, 184, 8512]
    X = R.simple_paths(5)
    assert len(np.unique(X, axis=0)) == len(X)
    spec = R.oracle(5).spec
    for x in X[:: 97]:
        assert spec.contains(x.astype(float))
        R.path_nodes(x, 5)
    with pytest.raises(ValueError, match="n <= 5"):
        R.simple_paths(6)


@pytest.mark.parametrize("regime, p", [("standard", 0.9), ("standard", 1.1), ("risk", -1.0),
                                       ("risk", 1.0), ("risk", 2.0)])
def test_brute_force_matches_scip(regime, p):
    kw = {"k": p} if regime == "standard" else {"q": p}
    for seed in (0, 1):
        y = R.make_instance(seed, n=5, regime=regime, **kw)
        bf = R.brute_force(y)
        sc = R.scip_exact(y, time_limit=60)
        assert sc.status == "optimal", sc.info
        assert sc.prob == pytest.approx(bf.prob, abs=1e-9)
        assert bf.prob >= R.let_path(y).prob - 1e-12
        assert bf.prob >= R.mean_risk(y).prob - 1e-12
        R.path_nodes(sc.x, 5)


def test_brute_force_tiny_grid_by_hand():
    # 2×2 grid: exactly two paths, right-down and down-right
    y = R.make_instance(7, n=2, regime="standard", k=1.05)
    X = R.simple_paths(2).astype(float)
    P = [R.on_time_probability(x, y) for x in X]
    assert R.brute_force(y).prob == pytest.approx(max(P))


def test_mean_risk_gamma_grid():
    y = R.make_instance(0, n=5, regime="risk", q=-1.0)
    g = R.default_gammas(y)
    assert g[0] == 0.0 and np.all(y["mu"][None] + g[:, None] * y["var"][None] > 0)
    res = R.mean_risk(y)
    assert res.info["solves"] == len(g)
    with pytest.raises(ValueError, match="<= 0"):
        R.mean_risk(y, gammas=[-100.0])
    with pytest.raises(ValueError, match="empty"):
        R.mean_risk(y, gammas=[])


def test_scip_time_limit_validation():
    with pytest.raises(ValueError, match="time_limit"):
        R.scip_exact(R.make_instance(0, n=3, regime="standard"), time_limit=0)
