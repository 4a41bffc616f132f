"""SurCo-guided large-neighbourhood search (surco.lns) on the enumerable nonlinear assignment
problem: feasibility of every x, equality with SurCo-zero when every row is free, exact
evaluation counts, and the harness methods built on it."""
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.family import spec_violations
from surco.lns import (LNSConfig, gradient_rank, lns, lns_method, multichain_method,
                       polish_method)
from surco.lns_core import LNS_FIELDS, LNS_ZERO
from surco.outcome import StopReason
from surco.problems import assignment as A

N, M = 6, 3


@pytest.fixture(scope="module")
def toy():
    return A.make_problem(N, M), A.generate(4, seed=3, n=N, m=M)


def recording_meter(prob, y, evaluations):
    seen = []

    def evaluate(x):
        seen.append(np.array(x, copy=True))
        return float(prob.evaluate(x, y))
    return Budget(evaluations=evaluations).start(evaluate), seen


@pytest.mark.parametrize("choose,accept", [("random", "better"), ("gradient", "anneal")])
def test_lns_never_evaluates_or_returns_an_infeasible_x(toy, choose, accept):
    prob, ys = toy
    for y in ys:
        spec = prob.space_for(y)
        meter, seen = recording_meter(prob, y, 40)
        res = lns(prob, y, meter, estimator="neg_identity", lr=0.5, iterations=60, free=2,
                  choose=choose, accept=accept, temperature=0.05, key=1, backend="highs")
        assert seen and all(spec_violations(x, spec) == [] for x in seen)
        assert spec_violations(res.x, spec) == []
        assert res.value == pytest.approx(float(prob.evaluate(res.x, y)))
        assert res.value == pytest.approx(min(float(prob.evaluate(x, y)) for x in seen))
        # the neighbourhood solve moves only the freed rows
        assert max(res.history["moved"][1:]) <= 2
        assert res.accepted == sum(res.history["accepted"][1:])
        assert res.history["free"][0] == N and set(res.history["free"][1:]) == {2}


def test_grow_doubles_the_neighbourhood_when_stuck(toy):
    prob, ys = toy
    y = ys[3]
    meter, seen = recording_meter(prob, y, 1000)
    res = lns(prob, y, meter, estimator="neg_identity", lr=0.2, iterations=40, free=1, grow=2,
              key=0, backend="highs")
    free, moved, acc = res.history["free"], res.history["moved"], res.history["accepted"]
    assert set(free[1:]) <= {1, 2, 4, N} and max(free[1:]) > 1
    assert all(m <= f for m, f in zip(moved[1:], free[1:]))
    for t in range(2, len(free)):       # back to one row right after an accepted move
        if acc[t - 1] and t - 1 > 0:
            assert free[t] == 1


def test_all_rows_free_is_surco_zero(toy):
    prob, ys = toy
    y = ys[0]
    kw = dict(estimator="blackbox", lam=10.0, lr=0.1, key=5, backend="highs")
    one = lns(prob, y, Budget().start(lambda x: float(prob.evaluate(x, y))), iterations=1,
              free=1.0, **kw)
    z0 = surco.zero(prob, y, steps=0, select="evaluate", **kw)
    np.testing.assert_array_equal(one.x, z0.x)              # one LNS step = one SurCo-zero solve
    many = lns(prob, y, Budget().start(lambda x: float(prob.evaluate(x, y))), iterations=30,
               free=N, accept="anneal", **kw)
    z = surco.zero(prob, y, steps=29, select="evaluate", no_progress_steps=None, **kw)
    np.testing.assert_allclose(many.history["f"], z.history["f"], rtol=1e-6)
    np.testing.assert_array_equal(many.x, z.x)
    assert many.value == pytest.approx(z.true_cost)


def test_evaluation_counter_is_exact(toy):
    prob, ys = toy
    y = ys[1]
    meter, seen = recording_meter(prob, y, 12)
    res = lns(prob, y, meter, estimator="neg_identity", lr=1.0, iterations=500, free=3, key=0,
              backend="highs")
    distinct = {x.tobytes() for x in seen}
    assert len(seen) == len(distinct) == meter.evaluations <= 12
    assert res.stopped in (StopReason.BUDGET, StopReason.ITERATIONS)
    assert isinstance(res.stopped, StopReason)
    if res.stopped == "budget":
        assert meter.evaluations == 12
    assert res.history["evaluations"][-1] == meter.evaluations == res.evaluations
    # a meter that evaluated before: the result counts this run's evaluations only
    fresh, _ = recording_meter(prob, y, 30)
    fresh(np.asarray(res.x))   # one evaluation before the run, then the run's own
    run = lns(prob, y, fresh, estimator="neg_identity", lr=1.0, iterations=40, free=3, key=0,
              backend="highs")
    assert run.evaluations == fresh.evaluations - 1 >= 1
    assert f"evaluations={run.evaluations}" in repr(run)


def test_screen_evaluates_only_candidates_that_f_says_improve(toy):
    prob, ys = toy
    y = ys[2]
    meter, seen = recording_meter(prob, y, 1000)
    res = lns(prob, y, meter, estimator="neg_identity", lr=1.0, iterations=80, free=3,
              screen=0.0, key=0, backend="highs")
    skipped = [v for v in res.history["value"] if v == np.inf]
    assert skipped                                 # some candidates were never evaluated
    assert len(seen) == meter.evaluations == len({x.tobytes() for x in seen})
    assert len(seen) <= 80 - len(skipped)


def test_harness_methods_respect_the_budget(toy):
    fam = A.FAMILY
    ys = fam.generate(3, seed=2, n=N)
    methods = {"lns": lns_method(fam, free=2, backend="highs"),
               "polish": polish_method(fam, share=0.5),
               "multichain": multichain_method(fam, chains=3),
               "lns-then-anneal": polish_method(fam, share=0.5, strategy="annealing",
                                                first=lns_method(fam, free=2, screen=0.0,
                                                                 backend="highs"))}
    cmp = surco.compare(fam, ys, methods, budget=Budget(evaluations=25), progress=False)
    for r in cmp.runs:
        assert r.ok, r.error
        assert r.evaluations <= 25
        assert fam.violations(r.x, ys[r.instance]) == []
        assert r.value == pytest.approx(fam.evaluate(r.x, ys[r.instance]))


def test_polish_starts_from_the_initial_solve_when_the_first_stage_evaluated_nothing():
    from surco.budget import BudgetExhausted
    fam = A.FAMILY
    y = fam.generate(1, seed=4, n=N)[0]

    def starved(instance, meter):
        raise BudgetExhausted("no time for a first evaluation")

    method = polish_method(fam, share=0.5, first=starved)
    meter = Budget(evaluations=30).start(lambda x: fam.evaluate(x, y))
    x = method(y, meter)
    assert fam.violations(x, y) == []
    assert 2 <= meter.evaluations <= 30
    assert fam.evaluate(x, y) == pytest.approx(meter.best_value)


def test_a_configuration_is_the_keyword_form(toy):
    """``lns(..., LNSConfig, ZeroConfig)`` and the keywords are one call (same x, history and
    c): the keywords split between LNS's own fields and SurCo-zero's (with the estimator's
    hyperparameters), and replace the configurations' fields; a start rule is called on the
    instance; without a ZeroConfig, SurCo's part is `LNS_ZERO` (the SCIP backend)."""
    prob, ys = toy
    y = ys[1]
    own = dict(iterations=8, free=2, choose="gradient", seed=4)
    zkw = dict(estimator="blackbox", lam=5.0, key=3, backend="highs")
    cfg, zcfg = LNSConfig.of(**own), surco.ZeroConfig.of(**zkw)
    assert dict(cfg) == own and zcfg.estimator_options == {"lam": 5.0}
    meter = lambda: Budget().start(lambda x: float(prob.evaluate(x, y)))   # noqa: E731
    runs = [lns(prob, y, meter(), *a, **k)
            for a, k in [((), {**own, **zkw}), ((cfg, zcfg), {}), ((cfg,), zkw),
                         ((cfg.replace(iterations=3), zcfg.replace(lam=1.0)),
                          {"iterations": 8, "lam": 5.0})]]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.x, runs[0].x)
        np.testing.assert_array_equal(r.c, runs[0].c)
        assert r.history == runs[0].history
    assert LNS_ZERO.backend == "scip" and surco.ZeroConfig().backend is None
    by_default = lns(prob, y, meter(), cfg, estimator="blackbox", lam=5.0, key=3)
    by_scip = lns(prob, y, meter(), cfg, zcfg.replace(backend="scip"))
    np.testing.assert_array_equal(by_default.x, by_scip.x)
    assert by_default.history == by_scip.history
    theta0 = np.asarray(y.a)            # the linear part of f as the start
    by_rule = lns(prob, y, meter(), cfg, zcfg, init=lambda inst: theta0, iterations=1)
    by_array = lns(prob, y, meter(), cfg, zcfg, init=theta0, iterations=1)
    np.testing.assert_array_equal(by_rule.theta, by_array.theta)
    with pytest.raises(TypeError, match="config must be a LNSConfig"):
        lns(prob, y, Budget().start(lambda x: 0.0), 5)
    with pytest.raises(TypeError, match="ZeroConfig goes in the next argument, zero"):
        lns(prob, y, Budget().start(lambda x: 0.0), surco.ZeroConfig(steps=5))
    with pytest.raises(TypeError, match="zero must be a surco.ZeroConfig"):
        lns(prob, y, Budget().start(lambda x: 0.0), cfg, {"lam": 5.0})
    with pytest.raises(TypeError, match="surco.lns.lns: .*'steps'"):   # no meaning for LNS
        lns(prob, y, Budget().start(lambda x: 0.0), steps=5)


def test_lns_method_takes_the_family_settings_under_its_own(toy):
    """`lns_method` on a family: SurCo's part is the family's ``zero_settings`` (the
    assignment family's CP-SAT backend, start rule, estimator) with the keywords replacing
    them, the same run as `lns` with that ZeroConfig; a ZeroConfig replaces the family's."""
    fam = A.FAMILY
    y = fam.generate(1, seed=3, n=N, m=M)[0]
    zf = surco.ZeroConfig.of(**{k: v for k, v in fam.zero_settings.items()
                                if k not in ("steps", "patience")})
    assert zf.backend == "cpsat"
    runs = []
    for call in (lambda m: lns_method(fam, free=2, iterations=12, lr=0.2)(y, m),
                 lambda m: lns(fam.problem(y), y, m, LNSConfig(iterations=12, free=2),
                               zf.replace(lr=0.2)).x,
                 lambda m: lns_method(fam, LNSConfig(iterations=12, free=2),
                                      zf.replace(lr=0.2))(y, m)):
        m = Budget(evaluations=30).start(lambda x: fam.evaluate(x, y))
        runs.append((call(m), m.curve, m.evaluations))
    for x, curve, ev in runs[1:]:
        np.testing.assert_array_equal(x, runs[0][0])
        assert [c[::2] for c in curve] == [c[::2] for c in runs[0][1]] and ev == runs[0][2]
    with pytest.raises(ValueError, match="backend 'jax'"):
        lns_method(fam, backend="jax")


@pytest.mark.parametrize("field,value,message", [
    ("temperature", 0, "lns: temperature must be a positive number, got 0"),
    ("seed", -2, "lns: seed must be an integer >= 0, got -2"),
    ("grow", 1.5, "lns: grow must be an integer >= 1 or None, got 1.5"),
])
def test_configuration_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        LNSConfig.of(**{field: value})


@pytest.mark.parametrize("field,value,message", [
    ("lr", -1.0, "zero: lr must be a finite number > 0, got -1.0"),
    ("init", "ones", "zero: init must be 'random', 'zeros', an array"),
    ("dtype", "int32", "zero: dtype must be a floating dtype"),
    ("solver_options", 3, "zero: solver_options must be a mapping"),
])
def test_surco_settings_are_checked_by_zero_config(toy, field, value, message):
    """SurCo's part of an LNS run is a `surco.ZeroConfig`: its checks, once, in either form."""
    prob, ys = toy
    with pytest.raises(ValueError, match=message):
        lns(prob, ys[0], Budget().start(lambda x: 0.0), **{field: value})
    with pytest.raises(ValueError, match=message):
        lns_method(A.FAMILY, **{field: value})


def test_configuration_types():
    with pytest.raises(TypeError, match="surco.lns.lns: .*'itertions'.*'iterations'"):
        LNSConfig.of(itertions=3)
    with pytest.raises(TypeError, match="surco.lns.lns: .*'lr'"):   # SurCo's, not LNS's
        LNSConfig.of(lr=0.1)
    assert set(LNS_FIELDS).isdisjoint(surco.ZeroConfig.keywords())


def test_bad_arguments(toy):
    prob, ys = toy
    m = Budget().start(lambda x: 0.0)
    with pytest.raises(ValueError, match=r"lns: free must be a fraction in \(0, 1\] or a row count >= 1, got 0"):
        lns(prob, ys[0], m, free=0)
    with pytest.raises(ValueError, match="lns: choose must be 'random' or 'gradient', got 'x'"):
        lns(prob, ys[0], m, choose="x")
    with pytest.raises(ValueError, match="lns: accept must be 'better' or 'anneal', got 'x'"):
        lns(prob, ys[0], m, accept="x")
    with pytest.raises(ValueError, match="lns: iterations must be an integer >= 1, got 0"):
        lns(prob, ys[0], m, iterations=0)
    with pytest.raises(ValueError, match="lns: screen must be a number >= 0 or None, got -1"):
        lns(prob, ys[0], m, screen=-1)
    with pytest.raises(TypeError, match="lns: meter must be a surco.budget.Meter"):
        lns(prob, ys[0], lambda x: 0.0)
    with pytest.raises(ValueError, match=r"polish_method: share must lie in \(0, 1\), got 1"):
        polish_method(A.FAMILY, share=1)
    with pytest.raises(ValueError, match="lns: grow must be an integer >= 1 or None, got 0"):
        lns(prob, ys[0], m, grow=0)
    with pytest.raises(ValueError, match="polish_method: strategy must be 'first', 'steepest' "
                                         "or 'annealing', got 'x'"):
        polish_method(A.FAMILY, strategy="x")
    with pytest.raises(ValueError, match="multichain_method: chains must be an integer >= 1, got 0"):
        multichain_method(A.FAMILY, chains=0)


def test_gradient_rank_is_the_first_order_change_of_f(toy):
    import jax
    import jax.numpy as jnp
    from surco.search import RowChoice
    prob, ys = toy
    y = ys[0]
    nb = RowChoice.from_spec(prob.space_for(y))
    x = np.zeros((N, M))
    x[np.arange(N), np.arange(N) % M] = 1.0
    X = nb.neighbours(x)
    scores = gradient_rank(prob, y)(x, X)
    g = np.asarray(jax.grad(lambda v: prob.f(v, y))(jnp.asarray(x, jnp.float32)), np.float64)
    want = np.array([np.sum(g * (xi - x)) for xi in X])
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
    # first order: for small moves it predicts the sign of most true changes
    true = np.array([float(prob.f(jnp.asarray(xi, jnp.float32), y) - prob.f(
        jnp.asarray(x, jnp.float32), y)) for xi in X])
    assert np.mean(np.sign(true) == np.sign(scores)) > 0.6


def test_polish_with_gradient_rank_runs_within_budget_and_checks_arguments(toy):
    prob, ys = toy
    method = polish_method(A.FAMILY, share=0.5, strategy="first", chunk=1, rank="gradient")
    meter = Budget(evaluations=40).start(lambda x: float(prob.evaluate(x, ys[1])))
    x = method(ys[1], meter)
    assert meter.evaluations <= 40 and spec_violations(x, prob.space_for(ys[1])) == []
    assert meter.best_value == pytest.approx(float(prob.evaluate(x, ys[1])))
    with pytest.raises(ValueError, match="polish_method: rank must be None or 'gradient', got 'x'"):
        polish_method(A.FAMILY, rank="x")
    with pytest.raises(ValueError, match="rank='gradient' orders a first-improvement scan; it "
                                         "needs strategy='first', got 'annealing'"):
        polish_method(A.FAMILY, strategy="annealing", rank="gradient")
