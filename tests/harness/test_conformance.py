"""Every problem family meets the one contract (`surco.Family`): the same checks, one list.

For each family: its generator gives instances; f agrees with ``evaluate`` on feasible x
(equal up to ``f_rtol``, or ordered the same way when ``f_monotone``); every baseline returns
a feasible x within a small budget and makes no more evaluations than allowed; two
SurCo-zero steps stay in Ω; one epoch of SurCo-prior runs and predicts a feasible x.
"""
import importlib

import numpy as np
import pytest

import surco
import surco.problems
from surco.budget import Budget

#: The families of the project, by module name under surco.problems: every package there
#: that exports FAMILY (`surco.problems.discover_families`), so a new one needs no edit here.
FAMILIES = list(surco.problems.FAMILIES)
#: Small sizes for the conformance checks (keywords of FAMILY.generate; default: none).
SMALL: dict[str, dict] = {}
#: the time-bound baselines (photonics' simulations, sharding's SCIP) stop at 2 s
BUDGET = Budget(seconds=2.0, evaluations=30)


def _family(name):
    mod = importlib.import_module(f"surco.problems.{name}")
    fam = mod.FAMILY
    assert isinstance(fam, surco.Family) and fam.name
    return fam


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    fam = _family(request.param)
    insts = fam.generate(3, seed=0, **SMALL.get(request.param, {}))
    assert isinstance(insts, list) and len(insts) == 3
    return fam, insts


@pytest.fixture(scope="module")
def baseline_runs(family):
    """Every baseline of the family on its first instance, run once and checked by the two
    tests below (budget and feasibility; f against ``evaluate`` on the x they return)."""
    fam, insts = family
    return surco.compare(fam, insts[:1], list(fam.baselines), budget=BUDGET, progress=False)


def test_baselines_feasible_within_budget(family, baseline_runs):
    fam, insts = family
    cmp = baseline_runs
    for r in cmp.runs:
        assert r.ok, f"{fam.name}/{r.method}: {r.status}: {r.error}"
        assert fam.violations(r.x, insts[0]) == []
        assert r.evaluations <= BUDGET.evaluations
        assert r.seconds <= BUDGET.seconds * 1.5 + 2.0, f"{fam.name}/{r.method} overran"
        assert np.isfinite(r.value)


def test_objective_agrees_with_evaluate(family, baseline_runs):
    fam, insts = family
    y = insts[0]
    problem = fam.problem(y)
    cmp = baseline_runs
    xs = [r.x for r in cmp.runs if r.ok]
    fv = np.array([float(problem.f(np.asarray(x, np.float32), y)) for x in xs])
    ev = np.array([fam.evaluate(x, y) for x in xs])
    if fam.f_monotone:
        for i in range(len(xs)):
            for j in range(len(xs)):
                if ev[i] < ev[j] - 1e-9 * (1 + abs(ev[j])):
                    assert fv[i] < fv[j] + 1e-6 * (1 + abs(fv[j])), (fam.name, fv, ev)
    else:
        np.testing.assert_allclose(fv, ev, rtol=fam.f_rtol, atol=fam.f_rtol)


def test_two_zero_steps_stay_in_omega(family):
    fam, insts = family
    y = insts[0]
    res = surco.zero(fam.problem(y), y, fam.zero_settings, steps=2)   # its start rule: init
    assert fam.violations(res.x, y) == []
    assert len(res.history["f"]) == 3


def test_one_prior_epoch_runs(family):
    fam, insts = family
    problem = fam.problem(insts[0])
    # the family's estimator, key and solver (`ZeroConfig.train_config`)
    config = surco.ZeroConfig.of(**fam.zero_settings).train_config(epochs=1, batch_size=2)
    prior = surco.prior.train(problem, insts[:2], config)
    out = prior.predict(insts[2])
    assert fam.violations(out.x, insts[2]) == []
