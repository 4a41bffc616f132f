"""Combinatorial portfolio selection: generator, Ω, objective, baselines, polish, SurCo."""
import itertools
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.problems import portfolio as P
from surco.solvers import make_solver

CFG = P.PortfolioConfig()


# -- generator --------------------------------------------------------------------------------

def test_make_instance_is_seeded_and_valid():
    a, b = P.make_instance(1, n=30), P.make_instance(1, n=30)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert P.check_instance(a) == 30
    assert a["x0"].sum() == pytest.approx(1.0) and np.all(a["x0"] >= 0)
    assert np.all(np.linalg.eigvalsh(P.covariance(a)) > 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be an integer >= 1"),
    (dict(n_factors=0), "n_factors must be an integer >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(factor_vol=(3.0, 1.0)), "factor_vol must be a finite range"),
    (dict(skew_range=(0.0, float("nan"))), "skew_range must be a finite range"),
    (dict(idio_vol=(0.0, 1.0)), "idio_vol must be > 0"),
    (dict(alpha_sd=-1.0), "alpha_sd must be"),
])
def test_make_instance_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"portfolio.make_instance: {match}"):
        P.make_instance(**{"seed": 0, **kwargs})


def test_factor_model_moments_match_simulation():
    y = P.make_instance(3, n=4, n_factors=2, skew_range=(-0.8, 0.8))
    R = P.simulate_returns(y, 400_000, seed=0)
    np.testing.assert_allclose(R.mean(0), y["r"], atol=0.05)
    C = np.cov(R.T)
    np.testing.assert_allclose(C, P.covariance(y), rtol=0.03, atol=0.1)
    D = R - R.mean(0)
    M = np.einsum("ti,tj,tk->ijk", D, D, D) / len(D)
    M_true = P.coskewness(y)
    assert np.abs(M - M_true).max() < 0.1 * np.abs(M_true).max()


def test_variance_and_third_moment_match_dense_tensors():
    y = P.make_instance(0, n=7)
    x = np.random.default_rng(0).dirichlet(np.ones(7))
    Sig, M = P.covariance(y), P.coskewness(y)
    assert float(P.variance(jnp.asarray(x), y)) == pytest.approx(x @ Sig @ x, rel=1e-5)
    m3 = np.einsum("ijk,i,j,k->", M, x, x, x)
    assert float(P.third_moment(jnp.asarray(x), y)) == pytest.approx(m3, rel=1e-4)
    f = -y["r"] @ x + CFG.alpha * x @ Sig @ x - CFG.beta * m3 + CFG.lam * np.abs(x - y["x0"]).sum()
    assert P.objective_np(x, y, CFG) == pytest.approx(f, rel=1e-12)
    assert float(P.weights_objective(jnp.asarray(x), y, CFG)) == pytest.approx(f, rel=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=-1.0), "alpha"), (dict(l=0.3, u=0.2), "l <= u"),
    (dict(k_min=5, k_max=4), "k_min"), (dict(k_max=4, u=0.2), "k_max·u"),
    (dict(k_min=20, l=0.1, k_max=25), "k_min·l"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.PortfolioConfig(**kwargs)


def test_check_instance_errors():
    y = P.make_instance(0, n=5)
    with pytest.raises(ValueError, match="keys"):
        P.check_instance({"r": y["r"]})
    with pytest.raises(ValueError, match="x0"):
        P.check_instance({**y, "x0": np.ones(4)})
    with pytest.raises(ValueError, match="e_var"):
        P.check_instance({**y, "e_var": -y["e_var"]})


# -- Ω -------------------------------------------------------------------------------------------

def test_omega_vertices_by_enumeration():
    """A linear cost over Ω: MILP answer = best over all supports of the greedy bounded LP."""
    n, cfg = 7, P.PortfolioConfig(k_min=2, k_max=4, l=0.05, u=0.4)
    spec = P.omega(n, cfg)
    solver = make_solver(spec, backend="highs")
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = rng.normal(size=(n, 2))
        best = np.inf
        for k in range(2, 5):
            for S in itertools.combinations(range(n), k):
                S = list(S)
                # LP over x on S: l everywhere, then fill the cheapest assets up to u
                x = np.full(k, cfg.l)
                rest = 1 - x.sum()
                for j in np.argsort(c[S, 0]):
                    add = min(cfg.u - cfg.l, rest)
                    x[j] += add
                    rest -= add
                if rest > 1e-12:
                    continue
                best = min(best, c[S, 0] @ x + c[S, 1].sum())
        sol = solver.solve(c)
        assert spec.contains(sol.x)
        assert float(np.sum(c * sol.x)) == pytest.approx(best, abs=1e-7)


def test_omega_rejects_too_few_assets():
    with pytest.raises(ValueError, match="no feasible portfolio size"):
        P.omega(4, CFG)   # 4 assets at u = 0.2 cannot sum to 1


# -- baselines -----------------------------------------------------------------------------------

def test_miqp_matches_brute_force_on_8_assets():
    y = P.make_instance(11, n=8)
    spec = P.omega(8, CFG)
    bf = P.brute_force_mv(y, CFG)
    miqp = P.scip_portfolio(y, CFG, mode="mv", time_limit=60)
    assert miqp.status == "optimal"
    assert bf.info["supports"] == sum(len(list(itertools.combinations(range(8), k)))
                                      for k in range(5, 9))
    assert spec.contains(bf.X) and spec.contains(miqp.X)
    assert miqp.info["model_objective"] == pytest.approx(bf.info["mv_objective"], abs=1e-5)
    np.testing.assert_array_equal(miqp.X[:, 1], bf.X[:, 1])
    np.testing.assert_allclose(miqp.X[:, 0], bf.X[:, 0], atol=1e-3)


def test_full_scip_is_no_worse_than_mv_and_random_on_small_instance():
    y = P.make_instance(2, n=12)
    spec = P.omega(12, CFG)
    full = P.scip_portfolio(y, CFG, mode="full", time_limit=30)
    mv = P.scip_portfolio(y, CFG, mode="mv", time_limit=30)
    rnd = P.random_feasible(y, CFG, num=20, seed=0)
    for res in (full, mv, rnd):
        assert spec.contains(res.X), res
        assert res.objective == pytest.approx(P.objective_np(res.X[:, 0], y, CFG))
    assert full.status == "optimal"
    assert full.objective <= mv.objective + 1e-6
    assert full.objective <= rnd.objective + 1e-6
    assert full.info["model_objective"] == pytest.approx(full.objective, abs=1e-5)


def test_random_feasible_plans_satisfy_omega():
    y = P.make_instance(0, n=40)
    spec = P.omega(40, CFG)
    for seed in range(5):
        res = P.random_feasible(y, CFG, num=3, seed=seed)
        assert spec.contains(res.X)
    with pytest.raises(ValueError, match="num"):
        P.random_feasible(y, CFG, num=0)


# -- polish -------------------------------------------------------------------------------------

def test_polish_stays_in_omega_and_improves():
    y = P.make_instance(4, n=30)
    spec = P.omega(30, CFG)
    rnd = P.random_feasible(y, CFG, num=5, seed=1)
    pol = P.polish(rnd.X, y, CFG)
    assert spec.contains(pol)
    np.testing.assert_array_equal(pol[:, 1], rnd.X[:, 1])
    assert P.objective_np(pol[:, 0], y, CFG) < rnd.objective - 1e-4


def test_polish_reaches_the_qp_optimum_on_a_fixed_support():
    # β = 0: the problem on a fixed support is a convex QP; brute force with the support
    # fixed (n = k) is the same QP solved by SLSQP
    cfg = P.PortfolioConfig(beta=0.0, k_min=6, k_max=6)
    y = P.make_instance(5, n=6)
    X = np.stack([np.full(6, 1 / 6), np.ones(6)], 1)
    pol = P.polish(X, y, cfg, steps=800)
    ref = P.brute_force_mv(y, cfg)
    assert P.objective_np(pol[:, 0], y, cfg) == pytest.approx(ref.objective, abs=1e-6)


def test_polish_rejects_bad_shape():
    y = P.make_instance(0, n=10)
    with pytest.raises(ValueError, match="shape"):
        P.polish(np.zeros((10, 3)), y, CFG)


# -- SurCo ----------------------------------------------------------------------------------------

def test_surco_zero_plans_satisfy_omega_and_beat_the_linearisation():
    n = 20
    prob = P.make_problem(n, CFG)
    ys = [P.make_instance(s, n=n) for s in range(2)]
    spec = P.omega(n, CFG)
    theta0 = np.stack([P.linearised_cost(y, CFG) for y in ys])
    res = surco.zero(prob, ys, estimator="blackbox", lam=10.0, lr=0.1, steps=10, init=theta0,
                     key=0, backend="highs")
    solver = make_solver(spec, backend="highs")
    for r, y, th in zip(res, ys, theta0):
        assert spec.contains(r.x)
        assert r.true_cost == pytest.approx(P.objective_np(r.x[:, 0], y, CFG), abs=1e-9)
        start = P.objective_np(solver.solve(th).x[:, 0], y, CFG)
        assert r.true_cost <= start + 1e-6
        pol = P.polish(r.x, y, CFG)
        assert spec.contains(pol)
        assert P.objective_np(pol[:, 0], y, CFG) <= r.true_cost + 1e-12


def test_features_shape():
    y = P.make_instance(0, n=20, n_factors=3)
    F = np.asarray(P.features(y))
    assert F.shape == (20, 9) and np.all(np.isfinite(F))


# -- OR-Library ------------------------------------------------------------------------------

def _port1() -> Path:
    return P.find_orlib("port1")   # FileNotFoundError names where it looked


def test_find_orlib_honours_the_environment_and_names_the_places(tmp_path, monkeypatch):
    (tmp_path / "port9.txt").write_text("1\n0.1 0.2\n1 1 1.0\n")
    monkeypatch.setenv("SURCO_ORLIB_DIR", str(tmp_path))
    assert P.find_orlib("port9") == tmp_path / "port9.txt"
    assert P.load_orlib(P.find_orlib("port9.txt")).n == 1
    with pytest.raises(FileNotFoundError, match=r"port7.txt not found in .* or .*portfolio.data"):
        P.find_orlib("port7")


def test_load_port1():
    d = P.load_orlib(_port1())
    assert d.n == 31 and d.name == "port1"
    assert d.mean[0] == pytest.approx(0.001309) and d.std[0] == pytest.approx(0.043208)
    assert d.mean[3] == pytest.approx(0.004515) and d.std[3] == pytest.approx(0.044896)
    assert d.corr[0, 1] == pytest.approx(0.562289) and d.corr[1, 0] == pytest.approx(0.562289)
    assert d.corr[29, 30] == pytest.approx(0.602996)
    np.testing.assert_allclose(np.diag(d.corr), 1.0)
    np.testing.assert_allclose(np.diag(d.cov), d.std ** 2)
    y = P.to_instance(d)
    np.testing.assert_allclose(P.covariance(y), d.cov, atol=1e-12)


def test_ccmv_on_port1_k2_matches_enumeration():
    """Cardinality 2 on the Hang Seng: SCIP's MIQP against all 465 pairs."""
    d = P.load_orlib(_port1())
    y = P.to_instance(d)
    cfg = P.ccmv_config(0.5, K=2)
    miqp = P.scip_portfolio(y, cfg, mode="mv", time_limit=60)
    # each pair is a 1-D convex quadratic in the first weight, minimised in closed form
    mu, S = d.mean, d.cov
    best = np.inf
    for i, j in itertools.combinations(range(31), 2):
        a = S[i, i] + S[j, j] - 2 * S[i, j]
        b = 2 * (S[i, j] - S[j, j])
        # f(t) = -(t μi + (1-t) μj) + α (a t² + b t + S_jj), t ∈ [l, 1 - l]
        t = np.clip(((mu[i] - mu[j]) / cfg.alpha - b) / (2 * a), cfg.l, 1 - cfg.l)
        best = min(best, -(t * mu[i] + (1 - t) * mu[j]) + cfg.alpha * (a * t * t + b * t + S[j, j]))
    assert miqp.status == "optimal"
    assert miqp.objective == pytest.approx(best, abs=1e-8)
    assert P.omega(31, cfg).contains(miqp.X)


def test_load_orlib_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        P.load_orlib(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("2\n0.1 0.2\n0.1 0.3\n1 1 1.0\n1 2 0.5\n")
    with pytest.raises(ValueError, match="expected 6 non-empty lines"):
        P.load_orlib(bad)
    bad.write_text("2\n0.1 0.2\n0.1 0.3\n1 1 1.0\n1 2 0.5\n1 2 0.5\n")
    with pytest.raises(ValueError, match="twice"):
        P.load_orlib(bad)
    bad.write_text("2\n0.1 0.2\n0.1 -0.3\n1 1 1.0\n1 2 0.5\n2 2 1.0\n")
    with pytest.raises(ValueError, match="standard deviation"):
        P.load_orlib(bad)
    bad.write_text("2\n0.1 0.2\n0.1 0.3\n1 1 1.0\n1 2 1.5\n2 2 1.0\n")
    with pytest.raises(ValueError, match="invalid correlation"):
        P.load_orlib(bad)
    bad.write_text("2\n0.1 0.2\n0.1 x\n1 1 1.0\n1 2 0.5\n2 2 1.0\n")
    with pytest.raises(ValueError, match="expected a number"):
        P.load_orlib(bad)
    with pytest.raises(ValueError, match="risk_weight"):
        P.ccmv_config(1.0)
