"""The design methods run end to end (a few steps) through surco.zero and report honestly."""
import numpy as np
import pytest

import surco
from surco.problems import photonics as ph


@pytest.fixture(scope="module")
def inst():
    return ph.make_instance(0, device="waveguide_bend", split="test")


def _check_result(r, inst, generator_based):
    assert r.x.shape == inst.design_shape and r.x.dtype == np.uint8
    rep = ph.evaluate_design(r.x, inst)
    assert r.report.loss == pytest.approx(rep.loss, rel=1e-9)
    assert r.report.feasible == rep.feasible == ph.is_feasible(r.x, "cross3")
    assert r.success == (rep.spec_met and rep.feasible)
    if generator_based:
        assert r.report.feasible and r.report.n_violations == 0
        # the kept design is the best iterate: its objective is the history's minimum
        assert np.log1p(r.report.loss) == pytest.approx(min(r.history), rel=1e-4, abs=1e-4)
    assert r.seconds > 0 and r.simulations >= len(r.history)


@pytest.mark.parametrize("estimator", ["blackbox", "neg_identity"])
def test_surco_zero_designs_are_feasible(inst, estimator):
    r = ph.surco_zero(inst, estimator=estimator, steps=2, lr=0.05,
                      **({"lam": 5.0} if estimator == "blackbox" else {}))
    assert len(r.history) == 3 and r.simulations == 3
    assert r.method == {"blackbox": "surco-zero-blackbox",
                        "neg_identity": "surco-zero-neg-identity"}[estimator]
    _check_result(r, inst, True)


def test_surco_zero_refuses_surcos_lp_straight_through(inst):
    with pytest.raises(ValueError, match="use estimator='neg_identity'"):
        ph.surco_zero(inst, estimator="straight_through", steps=1)


def test_methods_evaluate_one_design_per_step_through_a_meter(inst):
    from surco.budget import Budget
    for fn in (ph.pass_through, ph.density_threshold):
        meter = Budget(evaluations=3).start(lambda x: ph.evaluate_design(x, inst).loss)
        kw = {"stop_at_success": False} if fn is ph.pass_through else {}
        r = fn(inst, steps=50, meter=meter, **kw)
        assert meter.evaluations == 3 and len(r.history) in (3, 4)
        assert r.simulations == len(r.history)
        if fn is ph.pass_through:   # the kept design is the meter's best
            assert meter.best_value == pytest.approx(r.report.loss, rel=1e-9)


def test_pass_through_configuration_is_the_keyword_form(inst):
    """``pass_through(y, PassThroughConfig)`` and its keywords are one run; keywords replace
    fields; bad settings are named."""
    cfg = ph.PassThroughConfig(steps=1, temperature=0.5, key=3, stop_at_success=False)
    a = ph.pass_through(inst, cfg.replace(steps=0), steps=1)
    b = ph.pass_through(inst, steps=1, temperature=0.5, key=3, stop_at_success=False)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.history == b.history and len(a.history) == 2
    for bad, msg in [({"temperature": 0}, "pass_through: temperature must be a finite number > 0"),
                     ({"steps": -1}, "pass_through: steps must be an integer >= 0, got -1"),
                     ({"patience": 0}, "pass_through: patience"),
                     ({"key": "a"}, "pass_through: key must be an integer seed >= 0 or a PRNG"),
                     ({"stop_at_success": 1}, "stop_at_success must be True or False")]:
        with pytest.raises(ValueError, match=msg):
            ph.pass_through(inst, **bad)
    with pytest.raises(TypeError, match="'temprature'.*'temperature'"):
        ph.pass_through(inst, temprature=1.0)


def test_pass_through_and_density_threshold(inst):
    r = ph.pass_through(inst, steps=2)
    assert r.method == "pass-through" and 1 <= len(r.history) <= 3
    _check_result(r, inst, True)
    d = ph.density_threshold(inst, steps=2)
    assert d.method == "density-threshold" and len(d.history) == 2
    _check_result(d, inst, False)
    with pytest.raises(ValueError, match="unknown method"):
        ph.run_method("annealing", inst)


def test_problem_is_a_surco_problem(inst):
    prob = ph.make_problem("waveguide_bend")
    assert isinstance(prob.space, ph.BrushGenerator) and prob.space.shape == (40, 40)
    x = ph.brush_generate(np.random.default_rng(0).normal(size=(40, 40)))
    f = float(prob.f(x.astype(np.float32), inst))
    assert f == pytest.approx(np.log1p(prob.evaluate(x, inst)), rel=1e-4)
    assert prob.features_of(inst).shape == (3,)
    res = surco.zero(prob, inst, estimator="neg_identity", steps=1, lr=0.05, key=0)
    assert ph.is_feasible(res.x.round(), "cross3")
