"""The assignment family: vectorised cost, baselines, local optimality, SCIP = brute force."""
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.problems import assignment as A
from surco.search import RowChoice, local_search


def _meter(y, budget=Budget()):
    return budget.start(lambda x: A.evaluate(x, y), evaluate_batch=lambda X: A.evaluate_batch(X, y))


def _all_plans(n, m):
    """Every feasible plan (one machine per task, capacities), as one-hot arrays."""
    import itertools
    cap = A.capacity(n, m)
    out = [np.eye(m)[list(a)] for a in itertools.product(range(m), repeat=n)
           if np.bincount(a, minlength=m).max() <= cap]
    return np.stack(out)


def test_evaluate_batch_matches_objective_and_closed_form():
    y = A.FAMILY.generate(1, seed=3, n=5, m=3)[0]
    X = _all_plans(5, 3)
    vals = A.evaluate_batch(X, y)
    a, w, rho = (np.asarray(v, np.float64) for v in y)
    by_hand = np.array([np.sum(a * x) + rho * np.sum(np.sum(w * x, 0) ** 2) for x in X])
    np.testing.assert_allclose(vals, by_hand, rtol=1e-12)
    assert A.evaluate(X[7], y) == pytest.approx(by_hand[7], rel=1e-12)
    assert float(A.objective(X[7].astype(np.float32), y)) == pytest.approx(by_hand[7], rel=1e-5)
    assert vals.min() == pytest.approx(A.brute_force(y)[1], rel=1e-12)


def test_evaluate_rejects_bad_shapes():
    y = A.FAMILY.generate(1, n=4, m=2)[0]
    with pytest.raises(ValueError, match=r"evaluate_batch: X must have shape \(B, 4, 2\)"):
        A.evaluate_batch(np.zeros((4, 2)), y)
    with pytest.raises(ValueError, match=r"evaluate: x must have shape \(4, 2\)"):
        A.evaluate(np.zeros((3, 2)), y)


def test_generate_is_seeded_with_small_defaults():
    a, b = A.FAMILY.generate(2, seed=7), A.FAMILY.generate(2, seed=7)
    assert len(a) == 2 and np.asarray(a[0].a).shape == (8, 3)
    np.testing.assert_array_equal(np.asarray(a[1].w), np.asarray(b[1].w))
    c = A.FAMILY.generate(1, seed=8)
    assert not np.array_equal(np.asarray(a[0].a), np.asarray(c[0].a))


def test_random_plan_is_feasible():
    y = A.FAMILY.generate(1, n=10, m=3)[0]
    spec = A.space(10, 3)
    for s in range(10):
        assert spec.contains(A.random_plan(y, s))


@pytest.mark.parametrize("strategy", ["first", "steepest"])
def test_local_search_ends_where_no_move_or_swap_improves(strategy):
    """Exhaustive check: from the search's answer, every plan one task move or one swap of two
    tasks away (enumerated here by hand, not by RowChoice) that is feasible is no better."""
    n, m = 7, 3
    cap = A.capacity(n, m)
    for seed in range(3):
        y = A.FAMILY.generate(1, seed=seed, n=n, m=m)[0]
        res = local_search(A.random_plan(y, seed), _meter(y), RowChoice.from_spec(A.space(n, m)),
                           strategy=strategy, rng=seed)
        assert res.local_optimum and res.stopped == "local optimum"
        a = np.argmax(res.x, 1)
        f0 = A.evaluate(res.x, y)
        neighbours = []
        for i in range(n):
            for j in range(m):
                if j != a[i]:
                    b = a.copy()
                    b[i] = j
                    neighbours.append(b)
            for k in range(i + 1, n):
                if a[i] != a[k]:
                    b = a.copy()
                    b[i], b[k] = a[k], a[i]
                    neighbours.append(b)
        feas = [b for b in neighbours if np.bincount(b, minlength=m).max() <= cap]
        assert len(feas) > n
        vals = A.evaluate_batch(np.eye(m)[np.array(feas)], y)
        assert vals.min() >= f0 - 1e-12


def test_local_search_methods_reach_the_optimum_on_small_instances():
    # multi-start local search with a budget of 400 evaluations on 3^6 = 729 plans
    for seed in range(3):
        y = A.FAMILY.generate(1, seed=seed, n=6, m=3)[0]
        opt = A.brute_force(y)[1]
        for method in (A.local_search_first, A.local_search_steepest):
            meter = _meter(y, Budget(evaluations=400))
            x = method(y, meter)
            assert meter.evaluations <= 400
            assert A.space(6, 3).contains(x)
            assert A.evaluate(x, y) == pytest.approx(opt, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scip_equals_brute_force(seed):
    y = A.FAMILY.generate(1, seed=seed, n=9, m=3)[0]
    x_bf, f_bf = A.brute_force(y)
    x, info = A.scip_assignment(y, time_limit=60)
    assert info["optimal"] and info["status"] == "optimal"
    assert A.space(9, 3).contains(x)
    assert A.evaluate(x, y) == pytest.approx(f_bf, rel=1e-9)
    assert info["objective"] == pytest.approx(f_bf, rel=1e-6)


def test_scip_rejects_a_bad_time_limit():
    y = A.FAMILY.generate(1)[0]
    with pytest.raises(ValueError, match="time_limit must be positive seconds"):
        A.scip_assignment(y, time_limit=0)


def test_annealing_honours_its_budget_and_an_unlimited_meter():
    y = A.FAMILY.generate(1, seed=4, n=10, m=3)[0]
    meter = _meter(y, Budget(evaluations=50))
    x = A.annealing(y, meter)
    assert meter.evaluations <= 50 and A.space(10, 3).contains(x)
    assert A.evaluate(x, y) <= A.evaluate(A.mean_cost_plan(y), y) + 1e-12
    free = _meter(y)
    A.annealing(y, free)
    assert 50 < free.evaluations <= A.ANNEAL_EVALUATIONS_PER_ENTRY * 10 * 3


def test_compare_runs_every_method_and_exact_is_best():
    ys = A.FAMILY.generate(2, seed=11, n=7)
    cmp = surco.compare(A.FAMILY, ys, budget=Budget(evaluations=60), progress=False)
    assert not [r for r in cmp.runs if not r.ok]
    best = cmp.values("exact")
    for m in cmp.methods:
        assert np.all(cmp.values(m) >= best - 1e-9), m
    np.testing.assert_allclose(cmp.values("scip"), best, rtol=1e-9)
    assert cmp.run("surco-zero", 0).evaluations <= 60


def test_zero_settings_are_documented():
    assert A.FAMILY.zero_settings["init"] is A.mean_cost_heuristic
    assert "TRAIN_SEED" in A.FAMILY.zero_settings_note and A.TRAIN_SEED == 500
