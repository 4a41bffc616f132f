"""LANCER (surco.lancer; Zharmagambetov et al., NeurIPS 2023) on the enumerable nonlinear
assignment problem: every x in Ω, exact evaluation counts under evaluation and (charged)
time budgets, improvement over the start towards the brute-force optimum, the landscape
model's fit and its gradient against finite differences, Ctrl-C keeping the best so far,
argument errors, the harness name and LANCER over a predictor."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget, BudgetExhausted
from surco.family import spec_violations
from surco.lancer import landscape as L
from surco.lancer import lancer_method, lancer_zero
from surco.outcome import StopReason
from surco.problems import assignment as A

N, M = 6, 3
FAM = A.FAMILY
KW = dict(estimator="neg_identity", projection="standardize", lr=0.1, backend="highs", key=0,
          descent=4, candidates=4, per_round=2, fit_steps=20)


@pytest.fixture(scope="module")
def toy():
    """Instances whose start (the mean-cost cost, the family's SurCo init) is not optimal,
    with their brute-force optimum."""
    prob = A.make_problem(N, M)
    out = []
    for y in A.generate(12, seed=5, n=N, m=M):
        x0 = _start_x(prob, y)
        _, f_opt = A.brute_force(y)
        if A.evaluate(x0, y) > f_opt + 1e-6:
            out.append((y, f_opt, A.evaluate(x0, y)))
    assert len(out) >= 2, "the fixture needs instances whose start is not optimal"
    return prob, out[:2]


def _start_x(prob, y):
    from surco._engine import build_solver
    c = A.mean_cost_heuristic(y)
    return build_solver(prob, y, "highs", None).solve(c).x


def _recording(prob, y, **budget):
    seen = []

    def evaluate(x):
        seen.append(np.array(x, copy=True))
        return float(prob.evaluate(x, y))
    return Budget(**budget).start(evaluate), seen


def test_feasible_exact_count_and_better_than_the_start(toy):
    prob, items = toy
    for y, f_opt, f_start in items:
        meter, seen = _recording(prob, y, evaluations=25)
        res = lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), **KW)
        spec = prob.space_for(y)
        assert all(spec_violations(x, spec) == [] for x in seen)
        assert spec_violations(res.x, spec) == []
        # each evaluation is a distinct x, and exactly the budget was spent
        assert meter.evaluations == len(seen) == 25 == res.evaluations
        assert len({x.tobytes() for x in seen}) == 25
        assert res.stopped == "budget"
        assert np.array_equal(seen[0], _start_x(prob, y))       # the start is evaluated first
        assert res.value == pytest.approx(min(prob.evaluate(x, y) for x in seen))
        assert res.value == pytest.approx(float(prob.evaluate(res.x, y)))
        assert f_opt - 1e-9 <= res.value < f_start - 1e-6       # improved on the start
        assert res.history["best"][0] <= f_start + 1e-9
        assert res.history["best"] == sorted(res.history["best"], reverse=True)


def test_rounds_limit_and_free_repeats(toy):
    prob, items = toy
    y = items[0][0]
    meter, seen = _recording(prob, y, evaluations=1000)
    res = lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), rounds=3, **KW)
    assert res.rounds == 3 and res.stopped == StopReason.ITERATIONS
    # at most per_round new solutions a round, after the start's
    assert 1 <= meter.evaluations <= 1 + 3 * KW["per_round"]
    assert res.history["evaluations"][-1] == meter.evaluations


def test_charged_time_budget_stops_at_the_deadline(toy):
    """seconds=1 with 0.25 s charged per evaluation on a clock that stands still: exactly 4
    evaluations fit, whatever the machine's speed."""
    prob, items = toy
    y = items[0][0]
    meter = Budget(seconds=1.0, eval_cost=0.25).start(lambda x: float(prob.evaluate(x, y)),
                                                      clock=lambda: 0.0)
    res = lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), **KW)
    assert res.stopped == "budget" and meter.evaluations == 4 == res.evaluations
    assert spec_violations(res.x, prob.space_for(y)) == []


def _late_meter(prob, y):
    """A meter whose 1 s deadline has passed by its first call (its clock jumps)."""
    ticks = iter([0.0] + [10.0] * 10_000)
    return Budget(seconds=1.0).start(lambda x: float(prob.evaluate(x, y)),
                                     clock=lambda: next(ticks))


def test_budget_spent_before_the_first_evaluation(toy):
    prob, items = toy
    y = items[0][0]
    with pytest.raises(BudgetExhausted, match="before the first solution"):
        lancer_zero(prob, y, _late_meter(prob, y), init=A.mean_cost_heuristic(y), **KW)
    # the harness method answers with the solver's x at the start's cost all the same
    x = lancer_method(FAM, backend="highs")(y, _late_meter(prob, y))
    np.testing.assert_array_equal(x, _start_x(prob, y))


def _fixed_data(residual, count=32, seed=2):
    """Points (random plans, noisy costs) of one instance whose true cost is f plus
    ``residual(x, c, rng) · s``."""
    prob = A.make_problem(N, M)
    y = A.generate(1, seed=seed, n=N, m=M)[0]
    rng = np.random.default_rng(0)
    c0 = A.mean_cost_heuristic(y)
    scales = L.Scales.of(prob, y, c0, 1.0)
    data = L.Data()
    for i in range(count):
        x = A.random_plan(y, i)
        c = c0 + rng.normal(size=c0.shape)
        f = float(A.evaluate(x, y))
        data.add(c, x, f, f + scales.s * residual(x, c, rng), scales)
    return data, scales


def test_landscape_fit_error_decreases_on_fixed_data():
    """A residual v − f = s · (0.3 · (x's first-column count) − 0.1 · c·x / n), learnable
    from (c, x): the fit's error must fall well below the untrained model's (M = f), and
    the cross-validated shrinkage must keep most of the correction."""
    data, scales = _fixed_data(lambda x, c, rng: 0.3 * x[:, 0].sum() - 0.1 * np.sum(c * x) / N)
    net = L.LandscapeNet(hidden=(16,))
    p0 = L.init_params(net, (N, M), scales.z.shape[1], jax.random.key(0))
    _, losses, alpha = L.fit(net, p0, data, steps=300, lr=1e-2, folds=4)
    targets = (np.array(data.v) - np.array(data.f)) / scales.s
    assert losses[0] == pytest.approx(np.mean(targets ** 2), rel=1e-4)   # untrained: M = f
    assert losses[-1] < 0.1 * losses[0]
    assert len(losses) == 301
    assert 0.5 < alpha <= 1.0


def test_shrinkage_drops_a_correction_that_does_not_generalise():
    """Residuals that are pure noise: the fit memorises them (its training error falls) but
    held-out points are not predicted, so almost none of the correction is kept."""
    data, scales = _fixed_data(lambda x, c, rng: rng.normal(), count=48)
    net = L.LandscapeNet(hidden=(16,))
    p0 = L.init_params(net, (N, M), scales.z.shape[1], jax.random.key(0))
    _, losses, alpha = L.fit(net, p0, data, steps=300, lr=1e-2, folds=4)
    assert losses[-1] < 0.5 * losses[0]
    assert 0.0 <= alpha < 0.3
    assert L.fit(net, p0, data, steps=10, folds=0)[2] == 1.0
    with pytest.raises(ValueError, match="folds must be 0 or an integer >= 2"):
        L.fit(net, p0, data, folds=1)


def test_landscape_gradient_matches_finite_differences():
    prob = A.make_problem(N, M)
    y = A.generate(1, seed=4, n=N, m=M)[0]
    c = np.asarray(A.mean_cost_heuristic(y), np.float64)
    x = A.random_plan(y, 1)
    scales = L.Scales.of(prob, y, c, 2.0)
    net = L.LandscapeNet(hidden=(8,))
    p = L.init_params(net, (N, M), scales.z.shape[1], jax.random.key(1))
    # a non-zero head (the untrained one is zero, whose gradient is trivially zero)
    p = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape), p)
    z, sv = jnp.asarray(scales.z), jnp.asarray(scales.vector())
    # fx = 0: M is then s · r_w alone, which keeps float32 rounding small next to its changes
    m = jax.jit(lambda cc: L.predict(net, p, cc, jnp.asarray(x, jnp.float32), 0.0, z, sv))
    g = np.asarray(jax.grad(m)(jnp.asarray(c, jnp.float32)), np.float64)
    assert np.abs(g).max() > 1e-3
    # central differences in float32: step 1e-2 (truncation O(h^2), rounding O(1e-7 / h))
    h = 1e-2
    fd = np.zeros_like(c)
    for idx in np.ndindex(c.shape):
        e = np.zeros_like(c)
        e[idx] = h
        fd[idx] = (float(m(jnp.asarray(c + e, jnp.float32)))
                   - float(m(jnp.asarray(c - e, jnp.float32)))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=2e-2, atol=2e-3 * np.abs(g).max())


def test_ctrl_c_keeps_the_best_so_far(toy):
    prob, items = toy
    y = items[0][0]
    seen = []

    def evaluate(x):
        if len(seen) == 7:
            raise KeyboardInterrupt
        seen.append(np.array(x, copy=True))
        return float(prob.evaluate(x, y))
    meter = Budget(evaluations=100).start(evaluate)
    with pytest.raises(KeyboardInterrupt) as info:
        lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), **KW)
    part = info.value.partial
    assert part is not None and part.stopped == "interrupted"
    assert part.value == pytest.approx(min(prob.evaluate(x, y) for x in seen))
    assert spec_violations(part.x, prob.space_for(y)) == []


def test_ctrl_c_before_the_first_evaluation_has_no_partial(toy):
    prob, items = toy
    y = items[0][0]

    def evaluate(x):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as info:
        lancer_zero(prob, y, Budget(evaluations=5).start(evaluate),
                    init=A.mean_cost_heuristic(y), **KW)
    assert info.value.partial is None


@pytest.mark.parametrize("kw,match", [
    (dict(rounds=0), "rounds \\(or None\\) must be an integer >= 1"),
    (dict(per_round=0), "per_round must be an integer >= 1"),
    (dict(descent=0, candidates=0), "descent \\+ candidates must be >= 1"),
    (dict(sigma=-1.0), "sigma must be a finite number > 0"),
    (dict(fit_lr=float("nan")), "fit_lr must be a finite number > 0"),
    (dict(hidden=()), "hidden must be a non-empty tuple"),
    (dict(patience=1.5), "patience must be an integer >= 1"),
    (dict(folds=1), "folds must be 0 or an integer >= 2"),
    (dict(correction=1.5), "correction must be a number in \\[0, 1\\]"),
    (dict(window=1), "window \\(or None\\) must be an integer >= 2"),
    (dict(free_f="yes"), "free_f must be True .* or False"),
    (dict(candidates=0), "candidates=0 with free_f=False and no landscape parameters"),
    (dict(correction=0.0), "correction=0 with free_f=False and descent > 0"),
])
def test_bad_arguments_raise_naming_them(toy, kw, match):
    prob, items = toy
    y = items[0][0]
    with pytest.raises(ValueError, match=match):
        lancer_zero(prob, y, Budget(evaluations=5).start(lambda x: 0.0), **kw)


def test_bad_problem_meter_budget_and_setting():
    prob = A.make_problem(N, M)
    y = A.generate(1, n=N, m=M)[0]
    meter = Budget(evaluations=5).start(lambda x: 0.0)
    with pytest.raises(TypeError, match="problem must be a surco.Problem"):
        lancer_zero("assignment", y, meter)
    with pytest.raises(TypeError, match="meter must be a surco.budget.Meter"):
        lancer_zero(prob, y, lambda x: 0.0)
    with pytest.raises(ValueError, match="budget is unlimited"):
        lancer_zero(prob, y, Budget().start(lambda x: 0.0))
    with pytest.raises(TypeError, match="unknown keyword 'per_rond'.*'per_round'"):
        lancer_method(FAM, per_rond=2)
    with pytest.raises(TypeError, match="expected a surco.Family or a surco.Problem"):
        lancer_method("assignment")
    with pytest.raises(ValueError, match="target_rounds \\(or None\\) must be an integer >= 1"):
        lancer_method(FAM, target_rounds=0)


def test_harness_knows_lancer_by_name():
    ys = FAM.generate(2, seed=7, n=N, m=M)
    cmp = surco.compare(FAM, ys, ["lancer", "mean-cost"], budget=Budget(evaluations=6),
                        progress=False)
    for i, y in enumerate(ys):
        r = cmp.run("lancer", i)
        assert r.ok and r.evaluations == 6
        assert r.value <= cmp.run("mean-cost", i).value + 1e-9   # from the mean-cost start
        assert r.value >= A.brute_force(y)[1] - 1e-9


def test_prior_training_and_test_time_methods():
    prob = A.make_problem(N, M)
    train = A.generate(4, seed=11, n=N, m=M)
    model = surco.lancer.train(FAM, train, epochs=2, descent=2, candidates=1, hidden=(16,),
                               fit_steps=20, backend="highs", target_rounds=2,
                               **{k: KW[k] for k in ("estimator", "projection")})
    assert model.target_rounds == 2
    h = model.history
    # 3 collection passes over 4 instances, the predictor's cost and 1 perturbation each
    assert model.train_evaluations == 3 * 4 * 2 == h["evaluations"][-1]
    # the untrained predictor is the mean-cost start: pass 0's mean is the start's
    starts = [A.evaluate(_start_x(prob, y), y) for y in train]
    assert h["train_value"][0] == pytest.approx(np.mean(starts))
    # the kept parameters are the best pass's
    best = int(np.argmin(h["train_value"]))
    got = np.mean([A.evaluate(np.asarray(model.prior.predict(y).x), y) for y in train])
    assert got == pytest.approx(h["train_value"][best])
    test = A.generate(2, seed=13, n=N, m=M)
    cmp = surco.compare(FAM, test, model.methods(), budget=Budget(evaluations=5),
                        progress=False)
    for i, y in enumerate(test):
        assert cmp.run("lancer-prior", i).ok and cmp.run("lancer-prior", i).evaluations == 0
        r = cmp.run("lancer-prior-refine", i)
        assert r.ok and r.evaluations == 5          # only the test instance's evaluations
        assert r.value <= cmp.run("lancer-prior", i).value + 1e-9


def test_untrained_descent_is_surco_zero(toy):
    """With f declared a free proxy (``free_f=True``), before any fit M = f∘g_Ω, so one
    round's descent visits SurCo-zero's iterates: with per_round >= descent and no
    perturbations, the solutions evaluated are exactly the distinct x of SurCo-zero's
    first steps (same estimator, optimiser and start)."""
    import dataclasses
    prob, items = toy
    y = items[1][0]
    est = dict(estimator="neg_identity", projection="standardize", lr=0.1, backend="highs")
    zero_seen = []

    def record(x, _y):
        zero_seen.append(np.array(x, copy=True))
        return float(A.evaluate(x, y))
    surco.zero(dataclasses.replace(prob, evaluate=record), y, init=A.mean_cost_heuristic(y),
               steps=5, select="evaluate", **est)
    meter, seen = _recording(prob, y, evaluations=100)
    lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), rounds=1, descent=6,
                candidates=0, per_round=6, free_f=True, **est)
    assert len(zero_seen) >= 2   # the steps move x
    def key(x):
        return np.asarray(x, np.float64).tobytes()
    assert {key(x) for x in seen} == {key(x) for x in zero_seen}


def test_target_rounds_spreads_the_evaluation_budget():
    from surco.lancer.zero import UNLIMITED_ROUNDS, budget_kwargs

    def meter(**b):
        return Budget(**b).start(lambda x: 0.0)
    assert budget_kwargs({}, 10, meter(evaluations=301))["per_round"] == 30
    assert budget_kwargs({"per_round": 40}, 10, meter(evaluations=301))["per_round"] == 40
    assert budget_kwargs({}, 30, meter(evaluations=30))["per_round"] == 2    # the default
    assert "per_round" not in budget_kwargs({}, None, meter(evaluations=300))
    assert budget_kwargs({}, 10, meter())["rounds"] == UNLIMITED_ROUNDS
    assert "rounds" not in budget_kwargs({}, 10, meter(seconds=5.0))
