"""routing.FAMILY: BFACF path moves, the baselines as harness methods, the Ω check."""
import collections

import numpy as np
import pytest
from scipy.special import ndtr

import surco
from surco.budget import Budget
from surco.search import local_search
from surco.problems import routing as R


def _index(X):
    return {x.tobytes(): i for i, x in enumerate(X)}


def test_path_detour_moves_are_reversible_and_connect_all_4x4_paths():
    X = R.simple_paths(4).astype(np.float64)
    idx = _index(X)
    nb = R.PathDetour(4)
    adj = []
    for x in X:
        N = nb.neighbours(x)
        for z in N:
            R.path_nodes(z, 4)                       # every neighbour is a simple s–t path
            d = int(z.sum() - x.sum())
            changed = int(np.abs(z - x).sum())
            assert (d, changed) in ((0, 4), (2, 4), (-2, 4)), (d, changed)
        adj.append({idx[z.tobytes()] for z in N})
    for i, nbrs in enumerate(adj):                   # flip <-> flip, detour <-> shortcut
        assert all(i in adj[j] for j in nbrs)
    seen, todo = {0}, collections.deque([0])
    while todo:
        for j in adj[todo.popleft()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    assert len(seen) == len(X) == 184


def test_path_detour_counts_on_the_2x2_grid_and_rejects_non_paths():
    nb = R.PathDetour(2)
    X = R.simple_paths(2).astype(np.float64)         # the two 2-edge paths: each flips to the other
    for x, other in ((X[0], X[1]), (X[1], X[0])):
        N = nb.neighbours(x)
        assert N.shape == (1, 8) and np.array_equal(N[0], other)
    with pytest.raises(ValueError, match="revisits|stops|two outgoing|extra"):
        nb.start(np.ones(8))
    with pytest.raises(ValueError, match="8 entries"):
        nb.start(np.zeros(5))


def test_local_search_ends_where_no_move_improves():
    y = R.make_instance(3, n=5, regime="risk", q=-1.0)
    meter = Budget().start(lambda x: R.late_probability(x, y))
    nb = R.PathDetour(5)
    res = local_search(R.let_path(y).x, meter, nb, strategy="steepest")
    assert res.local_optimum
    vals = R.late_probability(nb.neighbours(res.x), y)
    assert np.all(vals >= res.value - 1e-15)
    assert res.value <= R.late_probability(R.let_path(y).x, y)


def test_late_probability_is_one_minus_on_time_and_keeps_precision():
    y = R.make_instance(0, n=5, regime="risk", q=2.0)
    X = R.simple_paths(5)[:50].astype(np.float64)
    late = R.late_probability(X, y)
    np.testing.assert_allclose(late, 1 - R.on_time_probability(X, y), atol=1e-15)
    x = R.let_path(y).x
    assert R.late_probability(x, y) == pytest.approx(ndtr(-2.0), rel=1e-12)
    y8 = R.make_instance(0, n=5, regime="risk", q=9.0)          # P(late) ~ 1e-19: 1 − P would be 0
    assert R.late_probability(R.let_path(y8).x, y8) == pytest.approx(ndtr(-9.0), rel=1e-9)


def test_family_generate_and_violations():
    a = R.FAMILY.generate(2, seed=5, q=-1.0)
    b = R.make_instance(6, n=5, regime="risk", q=-1.0)
    assert len(a) == 2 and np.array_equal(a[1]["mu"], b["mu"])
    with pytest.raises(ValueError, match="routing.generate: count must be an integer >= 1"):
        R.FAMILY.generate(0)
    y = a[0]
    x = R.let_path(y).x
    assert R.FAMILY.violations(x, y) == []
    # a path plus a disjoint 2-cycle satisfies the flow polytope but is not a simple path
    _, edges, _, _ = R.grid_graph(5)
    e = {(int(u), int(v)): i for i, (u, v) in enumerate(edges)}
    nodes = set(R.path_nodes(x, 5))
    u = next(v for v in range(25) if v not in nodes and v + 1 not in nodes and (v + 1) % 5)
    bad = x.copy()
    bad[[e[(u, u + 1)], e[(u + 1, u)]]] = 1.0
    spec = R.oracle(5).spec
    assert spec.violation(bad) <= 1e-9
    msg = R.FAMILY.violations(bad, y)
    assert len(msg) == 1 and msg[0].startswith("x is not a simple s–t path of the 5×5 grid")


def test_baselines_match_the_functions_and_the_exact_optimum():
    ys = R.FAMILY.generate(3, seed=0, q=-1.0)
    names = ["let", "mean-risk", "local-search", "local-search-first", "annealing"]
    cmp = surco.compare(R.FAMILY, ys, names + ["exact"], budget=Budget(evaluations=200),
                        progress=False)
    for i, y in enumerate(ys):
        opt = 1 - R.brute_force(y).prob
        assert cmp.run("exact", i).value == pytest.approx(opt, rel=1e-12)
        assert cmp.run("let", i).value == pytest.approx(1 - R.let_path(y).prob, rel=1e-12)
        assert cmp.run("mean-risk", i).value == pytest.approx(1 - R.mean_risk(y).prob, rel=1e-12)
        for m in names:
            r = cmp.run(m, i)
            assert r.ok and r.evaluations <= 200 and r.value >= opt - 1e-12
        for m in ("local-search", "local-search-first", "annealing"):
            assert cmp.run(m, i).value <= cmp.run("mean-risk", i).value + 1e-15


def test_annealing_without_a_budget_uses_its_default_and_scip_its_time_limit():
    from surco.methods import ANNEAL_DEFAULT_EVALUATIONS
    y = R.FAMILY.generate(1, seed=2, q=-1.0)[0]
    meter = Budget().start(lambda x: R.late_probability(x, y))
    x = R.BASELINES["annealing"](y, meter)
    assert R.FAMILY.violations(x, y) == []
    n_start = len(np.unique(np.stack([R.oracle(5).solve(y["mu"] + g * y["var"]).x
                                      for g in R.default_gammas(y)]), axis=0))
    # the nested budget, counted outside (it may stop early: all it reaches is cached)
    assert n_start < meter.evaluations <= ANNEAL_DEFAULT_EVALUATIONS + n_start
    meter = Budget(seconds=2.0).start(lambda x: R.late_probability(x, y))
    x = R.BASELINES["scip"](y, meter)
    assert meter.elapsed() < 2.0 + 1.5 and meter.evaluations == 1
    assert R.late_probability(x, y) >= 1 - R.brute_force(y).prob - 1e-12
