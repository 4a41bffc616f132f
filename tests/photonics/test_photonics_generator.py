"""The brush generator (Schubert et al. 2022) as a SurCo oracle: always feasible (checked by
the independent checker), deterministic, strict about its input."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surco.problems.photonics import BrushGenerator, brush_generate, check_design, make_brush
from surco.solvers import Status

BRUSH_SPECS = [("cross", s) for s in (3, 4, 5, 7)] + [("square", s) for s in (1, 2, 3, 4)] \
    + [("notched_square", s) for s in (3, 5, 6)] + [("circle", s) for s in (2, 3, 5, 6)]


@st.composite
def reward_images(draw):
    H = draw(st.integers(1, 24))
    W = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    mode = draw(st.sampled_from(["normal", "positive", "negative", "zeros", "constant",
                                 "smooth", "integers"]))
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(H, W))
    if mode == "positive":
        r = np.abs(r) + 1e-3
    elif mode == "negative":
        r = -np.abs(r) - 1e-3
    elif mode == "zeros":
        r = np.zeros((H, W))
    elif mode == "constant":
        r = np.full((H, W), draw(st.sampled_from([-2.0, 0.5])))
    elif mode == "smooth":
        from scipy.ndimage import gaussian_filter
        r = gaussian_filter(r, sigma=draw(st.floats(0.5, 4.0)))
    elif mode == "integers":
        r = rng.integers(-2, 3, size=(H, W)).astype(float)   # many ties
    return r


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(r=reward_images(), spec=st.sampled_from(BRUSH_SPECS))
def test_generator_output_always_passes_checker(r, spec):
    brush = make_brush(*spec)
    x = brush_generate(r, brush)
    assert x.shape == r.shape and x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}
    rep = check_design(x, brush)
    assert rep.feasible, f"{rep.n_violations} violating pixels for {brush.name} on {r.shape}"
    np.testing.assert_array_equal(brush_generate(r.copy(), brush), x)        # deterministic


def test_uniform_rewards_give_uniform_designs():
    for spec in BRUSH_SPECS:
        b = make_brush(*spec)
        assert brush_generate(np.ones((9, 11)), b).all()
        assert not brush_generate(-np.ones((9, 11)), b).any()


def test_design_follows_a_feasible_reward():
    """With a reward that is large deep inside the features of a feasible design, the
    generator returns that design."""
    from scipy.ndimage import distance_transform_edt

    from surco.problems.photonics import opening
    rects = np.zeros((30, 30), bool)
    rects[5:14, 3:25] = True
    rects[18:27, 8:16] = True
    x_true = opening(rects, "cross3").astype(np.uint8)     # a cross cannot make sharp corners
    assert check_design(x_true, "cross3").feasible and x_true.sum() == rects.sum() - 8
    sd = distance_transform_edt(x_true) - distance_transform_edt(1 - x_true)
    x = brush_generate(sd, "cross3")
    np.testing.assert_array_equal(x, x_true)


def test_reward_scale_does_not_matter():
    r = np.random.default_rng(3).normal(size=(17, 13))
    np.testing.assert_array_equal(brush_generate(r), brush_generate(7.5 * r))


def test_generator_refuses_bad_rewards():
    r = np.zeros((5, 5))
    r[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        brush_generate(r)
    with pytest.raises(ValueError, match="NaN"):
        brush_generate(np.full((3, 3), np.inf))
    with pytest.raises(ValueError, match="2-D"):
        brush_generate(np.zeros(9))
    with pytest.raises(ValueError, match="2-D"):
        brush_generate(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        brush_generate(np.zeros((0, 4)))


def test_brush_generator_oracle_contract():
    g = BrushGenerator((12, 10), "cross3")
    rng = np.random.default_rng(0)
    c = rng.normal(size=(12, 10))
    sol = g.solve(c)
    assert sol.status == Status.FEASIBLE and sol.stats["heuristic"]
    np.testing.assert_array_equal(sol.x, brush_generate(-c, "cross3"))
    assert sol.objective == pytest.approx(float((c * sol.x).sum()))
    assert (sol.x[c < -1.5] == 1).mean() > 0.8          # strongly negative cost → solid
    assert check_design(sol.x, "cross3").feasible
    np.testing.assert_array_equal(g.solve(c.reshape(-1)).x, sol.x)       # flat cost accepted
    batch = g.solve_batch(np.stack([c, -c, 2 * c]))
    np.testing.assert_array_equal(batch[0].x, sol.x)
    np.testing.assert_array_equal(batch[2].x, sol.x)
    np.testing.assert_array_equal(batch[1].x, brush_generate(c, "cross3"))
    fresh = g.factory()()
    np.testing.assert_array_equal(fresh.solve(c).x, sol.x)
    with pytest.raises(ValueError, match="shape"):
        g.solve(np.zeros((10, 12)))
    bad = c.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        g.solve(bad)
    with pytest.raises(ValueError, match="shape"):
        BrushGenerator((5,))


def test_generator_is_deterministic_on_a_device_sized_grid():
    """The 80 x 80 grid of the benches: the same latent gives the same design (its speed,
    which depends on the machine, is measured by bench.photonics, not asserted here)."""
    r = np.random.default_rng(1).normal(size=(80, 80))
    a, b = brush_generate(r), brush_generate(r.copy())
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
