"""SurCo-zero / -prior / -hybrid on sharding through the generic API: brute-force optimum on a
tiny task, plans in Ω (checked without the solver), the greedy start, the shipped prior."""
import itertools

import numpy as np
import pytest

import surco
from surco.problems.sharding import baselines as bl
from surco.problems.sharding.family import FAMILY
from surco.problems.sharding.settings import (SHIPPED_PRIOR, default_problem, load_prior,
                                              train_prior)
from surco.problems.sharding.cost import evaluate_plan
from surco.problems.sharding.problem import greedy_init, plan_features
from surco.problems.sharding.tables import generate_pool, split_pool
from surco.problems.sharding.tasks import (assignment_to_plan, generate_tasks, make_task,
                                           plan_violations, spec_for)
from surco.solvers import make_solver


def _brute_force(task):
    best, arg = np.inf, None
    for a in itertools.product(range(task.n_devices), repeat=task.n_tables):
        x = assignment_to_plan(a, task.n_devices)
        if plan_violations(x, task):
            continue
        c = evaluate_plan(x, task)
        if c < best:
            best, arg = c, x
    return best, arg


@pytest.fixture(scope="module")
def tiny_task():
    """6 tables on 2 devices where the cost-model greedy is 10 % above the optimum: the
    optimum swaps two tables of the greedy plan."""
    pool = generate_pool(3, 40)
    ids = np.random.default_rng(15).choice(40, 6, replace=False)
    return make_task(pool, ids, 2)


@pytest.mark.parametrize("lam", [3.0, 10.0])
def test_zero_reaches_brute_force_optimum(tiny_task, lam):
    """SurCo-zero from the greedy plan finds the brute-force optimum, 10 % below the greedy.
    The optimum swaps two tables, a double move that the blackbox estimator (Vlastelica et
    al.) makes through its perturbed re-solve; the negative identity used on DLRM-50 moves
    one table at a time and stays at the greedy plan here."""
    best, _ = _brute_force(tiny_task)
    greedy = evaluate_plan(bl.cost_greedy(tiny_task), tiny_task)
    assert greedy > best * 1.05
    res = surco.zero(default_problem(), tiny_task, init=greedy_init(tiny_task),
                     estimator="blackbox", lam=lam, lr=0.01, steps=100, select="evaluate")
    assert plan_violations(res.x, tiny_task) == []
    assert res.true_cost == pytest.approx(best, rel=1e-6)
    assert res.true_cost == pytest.approx(evaluate_plan(res.x, tiny_task), rel=1e-6)
    assert res.best_step > 0  # found by the surrogate's updates, not by the start


def test_greedy_init_reproduces_plan():
    pool = generate_pool(0, 120)
    task = generate_tasks(pool, 20, 4, 1, seed=3)[0]
    for plan in (bl.cost_greedy(task), bl.dim_greedy(task)):
        x = make_solver(spec_for(task), backend="highs").solve(greedy_init(task, plan)).x
        np.testing.assert_array_equal(x, plan)


@pytest.fixture(scope="module")
def small_tasks():
    train_pool, test_pool = split_pool(generate_pool(0, 160), 0.5, seed=0)
    return (generate_tasks(train_pool, 12, 3, 6, seed=0),
            generate_tasks(test_pool, 12, 3, 2, seed=1))


def test_all_methods_plans_in_omega(small_tasks):
    train, test = small_tasks
    prior = train_prior(train[:4], val_tasks=train[4:], epochs=2)
    methods = {m: FAMILY.baselines[m] for m in bl.HEURISTICS}
    # SurCo's variants (LANCER, also in surco_methods, has its own tests: test_lancer.py)
    methods.update({k: v for k, v in surco.surco_methods(FAMILY, prior, steps=15).items()
                    if k != "lancer"})
    cmp = surco.compare(FAMILY, test, methods, progress=False)
    runs = cmp.runs
    assert {r.method for r in runs} == set(bl.HEURISTICS) | {"surco-zero", "surco-prior",
                                                             "surco-prior-robust",
                                                             "surco-hybrid"}
    assert all(r.ok for r in runs), [r for r in runs if not r.ok]
    for r in runs:  # the harness checks too; check again here, independently of it
        task = test[r.instance]
        assert plan_violations(r.x, task) == []
        assert r.value == pytest.approx(evaluate_plan(r.x, task), rel=1e-6)
    rows = {r["method"]: r for r in cmp.summary()}
    # SurCo-zero starts from the cheapest deterministic heuristic's plan and keeps the best
    # plan it sees, so on every task it is at most the best of them
    for i in range(len(test)):
        cost = {r.method: r.value for r in runs if r.instance == i}
        assert cost["surco-zero"] <= min(v for m, v in cost.items()
                                         if m in bl.HEURISTICS and m != "random") + 1e-6
    # the untrained residual prior returns TorchRec's plan; two epochs stay close to it
    assert rows["surco-prior"]["value"] <= 1.5 * rows["torchrec-greedy"]["value"]


def test_plan_features_shape_and_prior_start(small_tasks):
    _, test = small_tasks
    task = test[0]
    F = plan_features(task)
    assert F.shape == (task.n_tables, 22 + task.n_devices)
    plan = bl.torchrec_greedy(task)
    np.testing.assert_array_equal(F[:, -task.n_devices:] > 0, plan > 0)


@pytest.mark.skipif(not (SHIPPED_PRIOR / "meta.json").exists(), reason="no shipped prior")
def test_shipped_prior_loads_and_predicts_in_omega():
    prior = load_prior()
    _, test_pool = split_pool(generate_pool(0, 200), 0.5, seed=0)
    task = generate_tasks(test_pool, 50, 4, 1, seed=1)[0]
    res = prior.predict(task)
    assert plan_violations(res.x, task) == []
    assert res.true_cost == pytest.approx(evaluate_plan(res.x, task), rel=1e-6)
    assert isinstance(res, surco.PriorResult)
