"""Sharding's family: the SCIP MINLP of the cost model and the exact enumeration agree with
brute force; the search baselines end at local optima and respect budgets."""
import itertools

import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.problems.sharding.cost import evaluate_plan
from surco.problems.sharding.family import FAMILY, evaluate_batch, exact, generate
from surco.problems.sharding.minlp import scip_minlp
from surco.problems.sharding.tasks import plan_violations, spec_for
from surco.search import RowChoice


def _brute(task):
    T, D = task.n_tables, task.n_devices
    best, best_x = np.inf, None
    for a in itertools.product(range(D), repeat=T):
        x = np.zeros((T, D))
        x[np.arange(T), a] = 1
        if plan_violations(x, task):
            continue
        v = evaluate_plan(x, task)
        if v < best:
            best, best_x = v, x
    return best_x, best


@pytest.fixture(scope="module")
def small():
    return generate(2, seed=3, n_tables=7, n_devices=2)


def test_scip_minlp_is_exact_on_small_tasks(small):
    for task in small:
        _, opt = _brute(task)
        x, obj, status = scip_minlp(task, time_limit=60)
        assert status == "optimal" and plan_violations(x, task) == []
        assert evaluate_plan(x, task) == pytest.approx(opt, rel=1e-5)
        assert obj == pytest.approx(opt, rel=1e-5)   # the MINLP is the cost model exactly


def test_scip_minlp_start_is_kept_under_a_tiny_time_limit():
    task = generate(1, seed=1, n_tables=30, n_devices=4)[0]
    start = FAMILY.baselines["cost-greedy"](task, None)
    x, _, _ = scip_minlp(task, time_limit=0.05, start=start)
    assert plan_violations(x, task) == []
    assert evaluate_plan(x, task) <= evaluate_plan(start, task) + 1e-6


def test_exact_enumeration_equals_brute_force(small):
    for task in small:
        meter = Budget().start(lambda x: evaluate_plan(x, task),
                               evaluate_batch=lambda X: evaluate_batch(X, task))
        x = exact(task, meter)
        assert evaluate_plan(x, task) == pytest.approx(_brute(task)[1], rel=1e-6)


def test_evaluate_batch_matches_evaluate():
    task = generate(1, seed=2, n_tables=12, n_devices=3)[0]
    nb = RowChoice.from_spec(spec_for(task))
    X = nb.neighbours(FAMILY.baselines["dim-greedy"](task, None))[:20]
    np.testing.assert_allclose(evaluate_batch(X, task),
                               [evaluate_plan(x, task) for x in X], rtol=1e-6)


def test_local_search_ends_at_a_local_optimum():
    task = generate(1, seed=4, n_tables=12, n_devices=3)[0]
    cmp = surco.compare(FAMILY, [task], ["local-search", "local-search-first"], progress=False)
    nb = RowChoice.from_spec(spec_for(task))
    for r in cmp.runs:
        assert r.ok
        neigh = nb.neighbours(r.x)
        assert min(evaluate_plan(x, task) for x in neigh) >= r.value - 1e-9


def test_annealing_and_scip_respect_their_budgets():
    task = generate(1, seed=5, n_tables=20, n_devices=4)[0]
    cmp = surco.compare(FAMILY, [task], ["annealing"], budget=Budget(evaluations=50),
                        progress=False)
    assert cmp.runs[0].ok and cmp.runs[0].evaluations == 50
    cmp = surco.compare(FAMILY, [task], ["scip-minlp"], budget=Budget(seconds=1.0),
                        progress=False)
    assert cmp.runs[0].ok and cmp.runs[0].seconds < 10
