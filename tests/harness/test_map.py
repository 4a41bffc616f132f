"""The which-method map (surco.whichmethod), data and performance profiles (surco.profiles)
and the map in every bench JSON, on hand-made traces with known answers."""
import json
import math

import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.family import Family
from surco.profiles import data_profile
from surco.whichmethod import method_map, trace, value_at


def _run(method, instance, curve, evaluations, seconds, value, status="ok", budget=Budget(),
         **kw):
    return surco.Run(method, instance, np.zeros(1), value, seconds, evaluations, status,
                     None if status != "failed" else "boom", curve, budget, **kw)


def _cmp(runs, n=1):
    methods = list(dict.fromkeys(r.method for r in runs))
    return surco.Comparison("toy", runs, methods, n)


# -- value_at ---------------------------------------------------------------------------------
def test_value_at_reprices_a_trace():
    r = _run("a", 0, [(1, 0.5, 9.0), (10, 2.0, 4.0)], 12, 3.0, 4.0)
    tr = trace(r)
    assert value_at(tr, 0.0, 0.4) == math.inf            # before its first evaluation
    assert value_at(tr, 0.0, 0.5) == 9.0
    assert value_at(tr, 0.0, 2.9) == 4.0
    assert value_at(tr, 1.0, 11.9) == 9.0                 # 2 + 10 = 12 s for the second point
    assert value_at(tr, 1.0, 12.0) == 4.0
    assert value_at(tr, 1.0, 1e6) == 4.0                  # finished by itself: its value stays


def test_a_cut_off_run_does_not_cover_later_budgets():
    r = _run("a", 0, [(1, 0.5, 9.0)], 5, 1.0, 9.0, status="budget")
    assert trace(r).cut_off
    assert value_at(trace(r), 0.0, 0.9) == 9.0
    assert value_at(trace(r), 0.0, 1.0) == 9.0            # covered up to its end
    assert value_at(trace(r), 0.0, 1.1) is None
    assert value_at(trace(r), 2.0, 10.5) == 9.0           # its end: 1 + 2 × 5 = 11 s
    assert value_at(trace(r), 2.0, 11.5) is None
    kept = _run("a", 0, [(1, 0.5, 9.0)], 5, 1.0, 9.0, cut_off=True)   # recorded by compare
    assert value_at(trace(kept), 0.0, 2.0) is None


def test_a_run_recorded_with_eval_cost_is_repriced_from_its_real_seconds():
    b = Budget(eval_cost=0.5)
    # real seconds 0.25 and 1.0 at 1 and 4 evaluations; end: 2.0 real s, 6 evaluations
    r = _run("a", 0, [(1, 0.25 + 0.5, 3.0), (4, 1.0 + 2.0, 2.0)], 6, 2.0 + 3.0, 2.0, budget=b)
    tr = trace(r)
    np.testing.assert_allclose(tr.real_seconds, [0.25, 1.0])
    assert tr.end_real_seconds == 2.0
    assert value_at(tr, 0.0, 0.3) == 3.0 and value_at(tr, 0.0, 1.0) == 2.0
    assert value_at(tr, 10.0, 40.0) == 3.0 and value_at(tr, 10.0, 41.0) == 2.0
    w = _run("a", 0, [], 0, 5.0, 2.0, budget=b, wall_seconds=4.0)
    assert trace(w).end_real_seconds == 4.0


def test_a_failed_run_has_no_value():
    r = _run("a", 0, [(1, 0.1, 1.0)], 1, 0.2, math.nan, status="failed")
    assert value_at(trace(r), 0.0, 0.15) == math.inf and value_at(trace(r), 0.0, 5) == math.inf


# -- the map --------------------------------------------------------------------------------
def _two_methods():
    """Two instances. annealing: 1000 evaluations in 1 s, reaching 1.0 (finished);
    surco-zero: 10 evaluations in 20 s, reaching 2.0 (finished)."""
    runs = []
    for i in range(2):
        runs.append(_run("annealing", i, [(1, 0.001, 9.0 + i), (1000, 1.0, 1.0)], 1000, 1.0, 1.0))
        runs.append(_run("surco-zero", i, [(1, 2.0, 5.0), (10, 20.0, 2.0 + i)], 10, 20.0, 2.0 + i))
    return _cmp(runs, 2)


def test_map_winners_means_margins_and_crossover():
    m = method_map(_two_methods(), costs=(0.0, 0.01, 1.0), budgets=(3.0, 30.0, 2000.0))
    assert m.methods == ["annealing", "surco-zero"]
    # c = 0: annealing done at 1 s (1.0); surco at 3 s: 5.0; at 30 s: 2.5
    # c = 0.01: annealing done at 11 s; c = 1: annealing's 1000th evaluation at 1001 s
    assert m.winner == [["annealing"] * 3,
                        ["surco-zero", "annealing", "annealing"],
                        ["surco-zero", "surco-zero", "annealing"]]
    np.testing.assert_allclose(m.means["surco-zero"][0], [5.0, 2.5, 2.5])
    np.testing.assert_allclose(m.means["annealing"][1], [9.5, 1.0, 1.0])
    np.testing.assert_allclose(m.means["annealing"][2], [9.5, 9.5, 1.0])
    assert m.margin[0, 0] == pytest.approx(4.0) and m.runner_up[0][0] == "surco-zero"
    assert m.margin[2, 1] == pytest.approx(7.0) and m.runner_up[2][1] == "annealing"
    assert m.crossover["cost"] is None          # annealing wins the longest budget everywhere
    assert m.crossover["sentence"].startswith("SurCo does not pay off")
    cell = m.cell(1.0, 30.0)
    assert cell["winner"] == "surco-zero" and cell["means"]["annealing"] == pytest.approx(9.5)
    with pytest.raises(KeyError, match="off the grid"):
        m.cell(0.5, 30.0)
    # without the longest budget, SurCo wins every budget >= 3 s from 1 s per evaluation on
    m2 = method_map(_two_methods(), costs=(0.0, 0.01, 1.0), budgets=(3.0, 30.0))
    assert m2.crossover["cost"] == 1.0 and m2.crossover["below"] == 0.01
    assert m2.crossover["from_budget"] == {"0": None, "0.01": None, "1": 3.0}
    assert m2.crossover["sentence"] == ("SurCo pays off when one evaluation costs more than "
                                        "0.01 s (at 1 s per evaluation, from a budget of 3 s on)")
    assert "surco-zero" in str(m2) and m2.crossover["sentence"] in str(m2)


def test_map_leaves_cells_a_cut_off_method_does_not_cover_undecided():
    runs = [_run("annealing", 0, [(1, 0.1, 3.0), (50, 10.0, 1.0)], 50, 10.0, 1.0,
                 status="budget"),
            _run("lancer", 0, [(1, 5.0, 2.0)], 1, 5.0, 2.0)]
    m = method_map(_cmp(runs), costs=(0.0,), budgets=(5.0, 10.0, 100.0))
    assert m.winner == [["lancer", "annealing", None]]
    assert m.reason[0][2].startswith("not decided: runs of annealing end before T=100 s")
    assert math.isnan(m.means["annealing"][0, 2]) and m.means["lancer"][0, 2] == 2.0
    assert math.isnan(m.margin[0, 2])
    # lancer counts as SurCo-family; an undecided cell neither confirms nor breaks the streak
    assert m.crossover["cost"] is None
    p = method_map(_cmp(runs), costs=(0.0,), budgets=(5.0, 10.0, 100.0), partial=True)
    assert p.winner[0][2] == "lancer" and "annealing" in p.reason[0][2]
    assert p.reason[0][2].startswith("decided among the methods covering it")


def test_an_undecided_cheaper_cost_is_not_called_a_surco_loss():
    """The annealing run is cut off at 50 evaluations (10 s): at 0 s per evaluation no
    budget past its end is decided, so the crossover sentence must not say SurCo pays off
    only above 0 s (it has not lost there; nothing is known)."""
    runs = [_run("annealing", 0, [(1, 0.1, 3.0), (50, 10.0, 2.5)], 50, 10.0, 2.5,
                 status="budget"),
            _run("surco-zero", 0, [(1, 20.0, 1.0)], 1, 20.0, 1.0)]
    m = method_map(_cmp(runs), costs=(0.0, 100.0), budgets=(200.0,))
    assert m.winner == [[None], ["surco-zero"]]
    assert m.crossover["cost"] == 100.0 and m.crossover["below"] is None
    assert m.crossover["sentence"] == (
        "SurCo pays off from 100 s per evaluation on (at 100 s per evaluation, from a budget "
        "of 200 s on); at 0 s per evaluation no budget is decided by these runs")


def test_map_no_value_yet_ties_and_excluded_methods():
    runs = [_run("a", 0, [(1, 4.0, 1.0)], 1, 4.0, 1.0),
            _run("surco-b", 0, [(1, 4.0, 1.0)], 1, 4.0, 1.0),
            _run("a", 1, [(1, 4.0, 1.0)], 1, 4.0, 1.0),
            _run("surco-b", 1, [(1, 4.0, 1.0)], 1, 4.0, 1.0),
            _run("c", 0, [(1, 0.1, 0.0)], 1, 0.1, 0.0)]           # no run on instance 1
    m = method_map(_cmp(runs, 2), costs=(0.0,), budgets=(1.0, 10.0))
    assert m.excluded == {"c": "ran on 1 of 2 instances"} and m.methods == ["a", "surco-b"]
    assert m.winner[0][0] is None and "no method has a value" in m.reason[0][0]
    assert m.means["a"][0, 0] == math.inf
    assert m.winner[0][1] == "a = surco-b" and m.margin[0, 1] == 0.0
    assert m.crossover["cost"] is None                         # a tie is not a win


def test_map_rejects_bad_grids():
    with pytest.raises(ValueError, match="costs must be increasing"):
        method_map(_two_methods(), costs=(1.0, 0.1))
    with pytest.raises(ValueError, match="budgets must be increasing"):
        method_map(_two_methods(), budgets=(1.0, math.inf))
    with pytest.raises(ValueError, match="budgets must be > 0"):
        method_map(_two_methods(), budgets=(0.0, 1.0))


def _plans(**methods):
    return Family(name="plans", problem=lambda y: None, evaluate=lambda x, y: float(y[int(x[0])]),
                  baselines=methods, violations_fn=lambda x, y: [])


def test_map_of_a_real_comparison_finds_the_crossover():
    """annealing evaluates all 14 plans, best last; surco-fake evaluates 2 (the second best
    last). Wall times are milliseconds, the grid's costs seconds."""
    def annealing(y, meter):
        for k in range(len(y)):
            meter(np.array([k]))
        return meter.best_x

    def surco_fake(y, meter):
        meter(np.array([0])), meter(np.array([len(y) - 2]))
        return meter.best_x

    ys = [[20.0 - k for k in range(13)] + [0.0], [30.0 - k for k in range(13)] + [1.0]]
    cmp = surco.compare(_plans(annealing=annealing, **{"surco-fake": surco_fake}), ys,
                        ["annealing", "surco-fake"], progress=False)
    m = cmp.map(costs=(0.0, 1.0, 10.0), budgets=(5.0, 100.0))
    assert m.winner == [["annealing", "annealing"], ["surco-fake", "annealing"],
                        [None, "surco-fake"]]
    assert "no method has a value" in m.reason[2][0]
    assert m.crossover["sentence"] == ("SurCo pays off when one evaluation costs more than "
                                       "1 s (at 10 s per evaluation, from a budget of 100 s on)")
    # c = 10, T = 100: annealing has made 9 evaluations (values 12 and 22), SurCo the second best
    np.testing.assert_allclose(m.means["annealing"][2, 1], 17.0)
    np.testing.assert_allclose(m.means["surco-fake"][2, 1], 13.0)


def test_bench_json_stores_the_map(tmp_path):
    def const(y, meter):
        meter(np.array([0]))
        return np.array([0])

    cmp = surco.compare(_plans(const=const, other=const), [[1.0, 2.0]], ["const", "other"],
                        progress=False)
    p = cmp.write_json(tmp_path / "b.json", bench="toy", quick=True)

    def strict(c):
        raise ValueError(f"non-standard JSON constant {c}")
    out = json.loads(p.read_text(), parse_constant=strict)
    mp = out["map"]
    assert mp["costs"] == [0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
    assert mp["budgets"] == [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3600.0]
    assert len(mp["winners"]) == 7 and all(len(row) == 8 for row in mp["winners"])
    assert mp["winners"][0][-1] == "const = other" and mp["means"]["const"][0][-1] == 1.0
    assert mp["crossover"] == "no SurCo-family method (surco*, lancer*) in the comparison"
    assert out["runs"][0]["wall_seconds"] > 0 and out["runs"][0]["cut_off"] is False


def test_map_plot(tmp_path):
    m = method_map(_two_methods(), costs=(0.0, 0.01, 1.0), budgets=(3.0, 30.0, 2000.0))
    m.plot(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000


# -- profiles -------------------------------------------------------------------------------
def _profile_cmp():
    """Three instances; f_L = 0 on each. x0: the worst first value (10, 10, 20).
    Method a solves (f <= 0.1 f0) at 10, 3, never; b at 4, 6, 2 evaluations; c fails
    on instance 0, evaluates nothing and returns 0 on instance 1 and 2 (solved at 0)."""
    runs = [
        _run("a", 0, [(1, .1, 10.0), (10, 1.0, 0.0)], 10, 1.0, 0.0),
        _run("a", 1, [(1, .1, 5.0), (3, .3, 1.0)], 3, 0.3, 1.0),
        _run("a", 2, [(1, .1, 20.0), (5, .5, 5.0)], 5, 0.5, 5.0),
        _run("b", 0, [(1, .1, 8.0), (4, .4, 1.0)], 4, 0.4, 1.0),
        _run("b", 1, [(1, .1, 10.0), (6, .6, 0.5)], 8, 0.8, 0.0),
        _run("b", 2, [(1, .1, 3.0), (2, .2, 0.0)], 2, 0.2, 0.0),
        _run("c", 0, [(1, .1, 0.0)], 1, 0.1, math.nan, status="failed"),
        _run("c", 1, [], 0, 0.05, 0.0),
        _run("c", 2, [], 0, 0.05, 0.0),
    ]
    return _cmp(runs, 3)


def test_data_profile_values():
    cmp = _profile_cmp()
    p = cmp.data_profile(tol=0.1, kappa=[0, 2, 3, 4, 6, 10])
    np.testing.assert_array_equal(p.f_low, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p.f0, [10.0, 10.0, 20.0])
    np.testing.assert_array_equal(p.t["a"], [10, 3, np.inf])
    np.testing.assert_array_equal(p.t["b"], [4, 6, 2])
    np.testing.assert_array_equal(p.t["c"], [np.inf, 0, 0])
    np.testing.assert_allclose(p.fractions["a"], np.array([0, 0, 1, 1, 1, 2]) / 3)
    np.testing.assert_allclose(p.fractions["b"], np.array([0, 1, 1, 2, 3, 3]) / 3)
    np.testing.assert_allclose(p.fractions["c"], np.array([2, 2, 2, 2, 2, 2]) / 3)
    # a tighter tolerance: f <= 0.01 f0 (0.1, 0.1, 0.2): b solves instance 1 only at its end
    q = cmp.data_profile(tol=0.01, kappa=[8])
    np.testing.assert_array_equal(q.t["b"], [np.inf, 8, 2])
    # a common start set by hand: f0 = (1, 1, 1) → solved at f <= 0.1
    r = data_profile(cmp, tol=0.1, kappa=[8], f0=[1.0, 1.0, 1.0])
    np.testing.assert_array_equal(r.t["a"], [10, np.inf, np.inf])


def test_data_profile_with_an_absolute_level():
    """level replaces the τ test: solved at the first point with f <= level (here 0 on
    instances 0 and 1, as for a design that meets its spec, and 3 on instance 2)."""
    cmp = _profile_cmp()
    p = cmp.data_profile(kappa=[0, 2, 8, 10], level=[0.0, 0.0, 3.0])
    np.testing.assert_array_equal(p.level, [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(p.t["a"], [10, np.inf, np.inf])   # a ends at 1.0, 5.0
    np.testing.assert_array_equal(p.t["b"], [np.inf, 8, 1])         # b: 0.0 only at its end
    np.testing.assert_array_equal(p.t["c"], [np.inf, 0, 0])         # c failed on 0
    np.testing.assert_allclose(p.fractions["b"], np.array([0, 1, 2, 2]) / 3)
    np.testing.assert_allclose(p.fractions["a"], np.array([0, 0, 0, 1]) / 3)
    assert cmp.data_profile(tol=0.1).level is None
    perf = cmp.performance_profile(taus=[1.0], level=[0.0, 0.0, 3.0])
    np.testing.assert_allclose(perf.fractions["c"], [2 / 3])        # 0/0 on 1 and 2
    with pytest.raises(ValueError, match="level must hold 3 numbers"):
        cmp.data_profile(level=[0.0, 1.0])
    with pytest.raises(ValueError, match="level must hold 3 numbers"):
        data_profile(cmp, level=[0.0, math.nan, 1.0])


def test_performance_profile_values():
    p = _profile_cmp().performance_profile(tol=0.1, taus=[1.0, 2.0, 2.5, 1e9])
    # best t per instance: 4 (b), 0 (c), 0 (c); ratios a: 2.5, 3/0 = inf, inf
    np.testing.assert_allclose(p.fractions["a"], [0, 0, 1 / 3, 1 / 3])
    # b: 1, 6/0 = inf, 2/0 = inf; c: inf (failed), 0/0 = 1, 1
    np.testing.assert_allclose(p.fractions["b"], [1 / 3] * 4)
    np.testing.assert_allclose(p.fractions["c"], [2 / 3] * 4)


def test_profiles_in_seconds_repriced():
    cmp = _profile_cmp()
    p = cmp.data_profile(tol=0.1, axis="seconds", eval_cost=1.0, kappa=[5.0])
    # a on instance 1: 0.3 s + 3 evaluations × 1 s; b on instance 2: 0.2 + 2
    np.testing.assert_allclose(p.t["a"][:2], [11.0, 3.3])
    np.testing.assert_allclose(p.t["b"], [4.4, 6.6, 2.2])
    np.testing.assert_allclose(p.t["c"], [np.inf, 0.05, 0.05])
    np.testing.assert_allclose(p.fractions["b"], [2 / 3])
    perf = cmp.performance_profile(tol=0.1, axis="seconds", taus=[2.0])
    assert perf.t["a"][1] == pytest.approx(0.3)


def test_profiles_reject_bad_arguments_and_plot(tmp_path):
    cmp = _profile_cmp()
    with pytest.raises(ValueError, match="tol must lie in"):
        cmp.data_profile(tol=1.5)
    with pytest.raises(ValueError, match="axis must be"):
        cmp.performance_profile(axis="steps")
    with pytest.raises(ValueError, match="eval_cost must be"):
        cmp.data_profile(eval_cost=-1.0)
    with pytest.raises(ValueError, match="f0 must hold 3 finite values"):
        data_profile(cmp, f0=[1.0])
    p = cmp.performance_profile(tol=0.1)
    assert p.x[0] == 1.0 and p.x[-1] == pytest.approx(2.5)
    p.plot(tmp_path / "perf.png")
    cmp.data_profile(tol=0.1).plot(tmp_path / "data.png")
    assert (tmp_path / "perf.png").stat().st_size > 1000
    assert (tmp_path / "data.png").stat().st_size > 1000
