"""SurCo-zero past its plateau (`surco.plateau`): exact evaluation counts, restarts that keep
the best x, a trust region that bounds θ's step, pools ranked by the surrogate, feasible
answers; on the small assignment family, whose optimum is enumerable."""
from __future__ import annotations

import math

import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.plateau import (PlateauResult, _pool_candidates, budgeted_method, plateau_method,
                           plateau_zero)
from surco.problems import assignment as A
from surco.search import RowChoice

FAM = A.FAMILY


@pytest.fixture(scope="module")
def inst():
    return FAM.generate(1, seed=3, n=6, m=3)[0]


def _settings(**kw):
    """The family's SurCo settings as `plateau_zero` keywords (its stopping ones dropped)."""
    out = {k: v for k, v in FAM.zero_settings.items() if k not in ("steps", "patience")}
    out["init"] = out["init"](kw.pop("instance"))
    out.update(kw)
    return out


def _counting_meter(inst, evaluations):
    calls = []

    def evaluate(x):
        calls.append(np.array(x, copy=True))
        return FAM.evaluate(x, inst)
    return Budget(evaluations=evaluations).start(evaluate), calls


def _distinct(xs):
    return len({np.asarray(x, np.float64).tobytes() for x in xs})


@pytest.mark.parametrize("kw", [{}, {"restart": 3}, {"radius": 0.5}, {"pool": 2},
                                {"restart": 2, "radius": 0.3, "pool": 3}])
def test_evaluations_counted_exactly_and_answer_feasible(inst, kw):
    meter, calls = _counting_meter(inst, 25)
    res = plateau_zero(FAM.problem(inst), inst, meter, **_settings(instance=inst, **kw))
    assert isinstance(res, PlateauResult)
    # every true-cost evaluation went through the meter, each of a distinct x, within budget
    assert len(calls) == _distinct(calls) == meter.evaluations == res.evaluations <= 25
    assert res.evaluations == sum(res.history["new"]) + sum(res.history["pool"])
    assert FAM.violations(res.x, inst) == []
    assert res.value == pytest.approx(FAM.evaluate(res.x, inst), rel=1e-12)
    # the answer is the best x evaluated
    assert res.value == meter.best_value == min(FAM.evaluate(x, inst) for x in calls)


def test_budget_spent_when_the_run_keeps_finding_new_x(inst):
    meter, calls = _counting_meter(inst, 12)
    res = plateau_zero(FAM.problem(inst), inst, meter,
                       **_settings(instance=inst, restart=1, noise=1.0, pool=2))
    assert res.stopped == "budget"
    assert meter.evaluations == res.evaluations == len(calls) == 12


def test_restarts_keep_the_best_x(inst):
    meter, calls = _counting_meter(inst, 60)
    res = plateau_zero(FAM.problem(inst), inst, meter,
                       **_settings(instance=inst, restart=2, noise=0.5, steps=80))
    h = res.history
    assert res.restarts == sum(h["restart"]) >= 3
    # the best so far never gets worse across restarts, and the answer is the best of all
    best = np.fmin.accumulate(h["value"])
    assert res.value == best[-1] == min(FAM.evaluate(x, inst) for x in calls)
    # a restart follows exactly 2 steps without improvement (a last step cut short by the
    # budget has no value and no restart)
    stall = 0
    for t, v in enumerate(h["value"]):
        if math.isnan(v):
            assert t == len(h["value"]) - 1 and res.stopped == "budget"
            break
        stall = 0 if (t == 0 or v < best[t - 1]) else stall + 1
        assert h["restart"][t] == (stall >= 2)
        if h["restart"][t]:
            stall = 0


def test_restarts_reach_the_enumerated_optimum(inst):
    _, opt = A.brute_force(inst)
    meter, _ = _counting_meter(inst, 150)
    res = plateau_zero(FAM.problem(inst), inst, meter,
                       **_settings(instance=inst, restart=3, noise=1.0, pool=4))
    assert res.value >= opt - 1e-9
    assert res.value == pytest.approx(opt, rel=1e-9)


def test_trust_region_bounds_the_step(inst):
    problem = FAM.problem(inst)
    meter, _ = _counting_meter(inst, 40)
    res = plateau_zero(problem, inst, meter, **_settings(instance=inst, radius=0.2, steps=60))
    h = res.history
    done = len(h["value"]) - (res.stopped == "budget")   # steps that ran to their update
    d, r = np.asarray(h["distance"][:done]), np.asarray(h["radius"][:done])
    assert done >= 20 and np.all(np.isfinite(r)) and np.all(d <= r * (1 + 1e-9))
    # the radius follows the rule: x2 on a better x or on the best x again, x0.5 on a new x
    # that is not better, within [r0/64, 16 r0]
    th0 = _settings(instance=inst)["init"]
    r0 = 0.2 * np.linalg.norm(th0)
    prev, best = r0, math.inf
    for t in range(len(d)):
        v, new = h["value"][t], h["new"][t]
        if v < best:
            want = prev if t == 0 else min(prev * 2, 16 * r0)
            best = v
        elif new:
            want = max(prev * 0.5, r0 / 64)
        elif v == best:       # the best x again (values are distinct on this instance)
            want = min(prev * 2, 16 * r0)
        else:
            want = prev
        assert r[t] == pytest.approx(want, rel=1e-6)    # θ_0 is float32
        prev = r[t]


def test_a_tiny_trust_region_keeps_x(inst):
    problem = FAM.problem(inst)
    free = plateau_zero(problem, inst, Budget(evaluations=30).start(
        lambda x: FAM.evaluate(x, inst)), **_settings(instance=inst, steps=40))
    assert free.evaluations > 1       # without the region SurCo moves
    meter = Budget(evaluations=30).start(lambda x: FAM.evaluate(x, inst))
    held = plateau_zero(problem, inst, meter, **_settings(instance=inst, steps=40, radius=1e-7))
    assert held.evaluations == 1      # θ cannot leave θ_0's answer
    # the radius grew while x stayed put, up to its cap of 16 r0
    r0 = 1e-7 * np.linalg.norm(_settings(instance=inst)["init"])
    assert held.history["radius"][-1] == pytest.approx(16 * r0, rel=1e-6)
    assert max(held.history["distance"]) <= 16 * r0 * (1 + 1e-9)


def test_pool_ranks_neighbours_by_the_surrogate(inst):
    spec = FAM.problem(inst).space_for(inst)
    nb = RowChoice.from_spec(spec)
    x = np.asarray(FAM.baselines["mean-cost"](inst, None), np.float64)
    rng = np.random.default_rng(0)
    c = rng.normal(size=x.shape)
    X = _pool_candidates(nb, x, c, 4)
    allX = nb.neighbours(x)
    dc_all = np.sort(((allX - x) * c).sum((1, 2)))
    assert X.shape == (4, *x.shape)
    np.testing.assert_allclose(((X - x) * c).sum((1, 2)), dc_all[:4], rtol=1e-12)
    assert all(nb.contains(xx) for xx in X)


def test_harness_methods(inst):
    tasks = FAM.generate(2, seed=5, n=6, m=3)
    methods = {"surco-restarts": plateau_method(FAM, restart=3, pool=2),
               "surco-budgeted": budgeted_method({5: plateau_method(FAM),
                                                  50: plateau_method(FAM, radius=0.5)})}
    cmp = surco.compare(FAM, tasks, methods, budget=Budget(evaluations=20), progress=False)
    for r in cmp.runs:
        assert r.ok and r.evaluations <= 20 and FAM.violations(r.x, tasks[r.instance]) == []
        assert r.value == pytest.approx(FAM.evaluate(r.x, tasks[r.instance]))


def test_budgeted_method_picks_by_log_distance():
    ms = {k: (lambda k: lambda i, m: k)(k) for k in (30, 100, 300)}
    pick = budgeted_method(ms).pick
    assert [pick(e)(None, None) for e in (1, 30, 50, 60, 100, 173, 174, 300, 10 ** 6)] == \
        [30, 30, 30, 100, 100, 100, 300, 300, 300]
    assert pick(None)(None, None) == 300
    with pytest.raises(ValueError, match="non-empty"):
        budgeted_method({})
    with pytest.raises(ValueError, match="positive integers"):
        budgeted_method({0: ms[30]})
    with pytest.raises(TypeError, match="not callable"):
        budgeted_method({30: 3})


@pytest.mark.parametrize("kw, match", [({"radius": 0.0}, "radius"), ({"noise": -1.0}, "noise"),
                                       ({"restart": 0}, "restart"), ({"pool": -1}, "pool"),
                                       ({"grow": 0.5}, "grow"), ({"shrink": 1.5}, "shrink"),
                                       ({"steps": 0}, "steps")])
def test_bad_arguments_are_named(inst, kw, match):
    meter = Budget(evaluations=5).start(lambda x: FAM.evaluate(x, inst))
    with pytest.raises(ValueError, match=match):
        plateau_zero(FAM.problem(inst), inst, meter, **_settings(instance=inst, **kw))


def test_unknown_setting_is_named():
    with pytest.raises(TypeError, match="restarts"):
        plateau_method(FAM, restarts=3)


def test_without_additions_it_is_surco_zero(inst):
    """No restart, trust region or pool: the same x's, evaluated in the same order, as
    `surco.zero` selecting by the true cost (its steps + 1 iterates)."""
    import dataclasses
    problem = FAM.problem(inst)
    kw = _settings(instance=inst)
    m1, calls1 = _counting_meter(inst, 1000)
    res = plateau_zero(problem, inst, m1, steps=25, **kw)
    m2, calls2 = _counting_meter(inst, 1000)
    counted = dataclasses.replace(problem, evaluate=lambda x, y: m2(x))
    z = surco.zero(counted, inst, steps=24, select="evaluate", no_progress_steps=None, **kw)
    assert len(calls1) == len(calls2) >= 3
    for a, b in zip(calls1, calls2):
        np.testing.assert_array_equal(a, b)
    assert res.value == z.true_cost
    np.testing.assert_array_equal(res.x, z.x)


def test_sharding_plateau_settings_per_budget():
    """The sharding family's "surco-plateau" runs, per budget, what PLATEAU_CHOICE says."""
    from surco.problems import sharding as S
    from surco.problems.sharding.settings import PLATEAU_CHOICE, plateau_from, plateau_methods
    assert sorted(PLATEAU_CHOICE) == [30, 100, 300]
    pick = plateau_methods(S.FAMILY)["surco-plateau"].pick
    assert "restarts" in pick(30).__doc__ and "SurCo-zero on 0.7" in pick(300).__doc__
    assert "annealing" in pick(100).__doc__ and "first" in pick(300).__doc__
    with pytest.raises(ValueError, match="kind"):
        plateau_from(S.FAMILY, {"kind": "lns"})
    # (tests/harness/test_conformance.py runs it on sharding tasks with the other baselines)
    assert S.FAMILY.baselines["surco-plateau"] is not None
