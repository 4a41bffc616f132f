"""photonics.FAMILY: instances from the seeded splits, the brush check, metered baselines."""
import numpy as np
import pytest

import surco
from surco.problems import photonics as ph


def test_generate_draws_from_the_split():
    test = ph.FAMILY.generate(3, seed=2)
    assert test == [ph.make_instance(s, device="waveguide_bend", split="test") for s in (2, 3, 4)]
    assert [y.seed for y in test] == [100_002, 100_003, 100_004]
    train = ph.FAMILY.generate(2, device="mode_converter", split="train")
    assert [y.seed for y in train] == [0, 1] and {y.device for y in train} == {"mode_converter"}
    assert not {y.seed for y in test} & {y.seed for y in ph.FAMILY.generate(50, split="train")}
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        ph.FAMILY.generate(1, split="val")
    with pytest.raises(ValueError, match="photonics.generate: count must be an integer >= 1"):
        ph.FAMILY.generate(0)
    with pytest.raises(ValueError, match="device must be one of"):
        ph.FAMILY.generate(1, device="ring")


def test_violations_is_the_brush_checker():
    y = ph.FAMILY.generate(1)[0]
    x = ph.brush_generate(np.random.default_rng(0).normal(size=y.design_shape))
    assert ph.FAMILY.violations(x, y) == []
    bad = x.copy()
    bad[20, 20] = 1 - bad[20, 20]                      # one flipped pixel breaks the brush
    rep = ph.check_design(bad)
    msg = ph.FAMILY.violations(bad, y)
    assert msg == [f"{rep.n_violations} pixels violate the brush (cross3): "
                   f"{int(rep.solid_violations.sum())} solid, {int(rep.void_violations.sum())} void"]
    assert ph.FAMILY.violations(np.full(y.design_shape, 0.5), y)[0].startswith("x must be binary")
    assert ph.FAMILY.violations(np.zeros((3, 3)), y) == [
        "x has shape (3, 3), the waveguide_bend design is (40, 40)"]


def test_density_generator_designs_are_printable():
    y = ph.FAMILY.generate(1)[0]
    r = ph.density_threshold(y, steps=2, project=True, **ph.HYPER["density"])
    assert r.method == "density-generator" and len(r.history) == 2
    assert ph.is_feasible(r.x, "cross3") and r.report.feasible and ph.FAMILY.violations(r.x, y) == []


@pytest.mark.slow   # ~25 s; fast siblings: the test above and test_photonics_methods' meter test
def test_baselines_in_the_harness_count_one_simulation_per_step():
    y = ph.FAMILY.generate(1)[0]
    methods = {**ph.FAMILY.baselines, "density-threshold": ph.density_threshold_method}
    cmp = surco.compare(ph.FAMILY, [y], methods, budget=surco.Budget(evaluations=4),
                        progress=False)
    pt = cmp.run("pass-through", 0)
    assert pt.ok and pt.evaluations <= 4
    direct = ph.pass_through(y, steps=3, key=y.seed, init_scale=ph.INIT_SCALE,
                             stop_at_success=True, **ph.HYPER["pass-through"])
    np.testing.assert_array_equal(pt.x, direct.x)      # the same run, stopped by the meter
    assert pt.value == pytest.approx(direct.report.loss, rel=1e-9)
    g = cmp.run("density-generator", 0)
    assert g.ok and g.evaluations == 4 and ph.is_feasible(g.x, "cross3")
    direct = ph.density_threshold(y, steps=4, key=y.seed, init_scale=ph.INIT_SCALE,
                                  project=True, **ph.HYPER["density"])
    assert direct.method == "density-generator"
    np.testing.assert_array_equal(g.x, direct.x)       # β ramps over the 4 evaluations
    d = cmp.run("density-threshold", 0)
    assert d.evaluations == 4
    assert d.ok == ph.is_feasible(d.x, "cross3")
    if not d.ok:
        assert "violate the brush" in d.error
