"""Devices, the FDFD simulator and its JAX wrapper: values against the ceviche-challenges
package, gradients against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems import photonics as ph
from surco.problems.photonics import devices as D


@pytest.fixture(scope="module")
def bend():
    inst = ph.make_instance(0, device="waveguide_bend", split="test")
    return inst, ph.simulator(inst)


def test_instances_are_seeded_split_and_in_range():
    for dev in ph.DEVICES:
        tr = ph.generate(ph.N_PER_SPLIT, device=dev, split="train")
        te = ph.generate(ph.N_PER_SPLIT, device=dev, split="test")
        assert len(tr) == len(te) == ph.N_PER_SPLIT == 25
        assert not {y.seed for y in tr} & {y.seed for y in te}
        assert ph.generate(ph.N_PER_SPLIT, device=dev) == te      # deterministic
        for y in tr + te:
            for k, v in y.params:
                assert v in ph.PARAM_RANGES[dev][k]
        assert len({y.params for y in tr}) > 1                    # actually randomised
        assert ph.grid_nm(dev) == 40                             # 560/720 nm do not resolve at 50
    assert ph.make_instance(0, device="wdm").design_shape == (80, 80)
    assert ph.make_instance(0, device="beam_splitter").design_shape == (80, 50)
    with pytest.raises(ValueError, match="outside"):
        ph.DeviceInstance("waveguide_bend", (("wg_width", 100), ("offset_in", 0), ("offset_out", 0)))
    with pytest.raises(ValueError, match="photonics.make_instance: device must be one of"):
        ph.make_instance(0, device="ring_resonator")
    with pytest.raises(ValueError, match="photonics.make_instance: split must be"):
        ph.make_instance(0, device="wdm", split="val")
    with pytest.raises(ValueError, match="photonics.make_instance: seed must be < 100000"):
        ph.make_instance(ph.SPLIT_SEEDS, split="train")     # would be test seed 0


def test_nominal_geometry_is_the_packages():
    """With zero offsets our shifted bend / mode converter are the package's own models."""
    from ceviche_challenges import mode_converter, waveguide_bend
    for dev, cls in (("waveguide_bend", waveguide_bend.model.WaveguideBendModel),
                     ("mode_converter", mode_converter.model.ModeConverterModel)):
        ours = ph.build_model(ph.nominal_instance(dev))
        ref = cls(ours.params, ours.spec)
        np.testing.assert_array_equal(ours.density_bg, ref.density_bg)
        assert ours.design_region_coords == ref.design_region_coords
        for a, b in zip(ours.ports, ref.ports):
            assert (a.x, a.y, a.width, a.dir, a.offset, a.order) == (b.x, b.y, b.width, b.dir, b.offset, b.order)


def test_offsets_move_the_waveguides():
    base = ph.build_model(ph.nominal_instance("waveguide_bend"))
    moved = ph.build_model(ph.DeviceInstance(
        "waveguide_bend", (("wg_width", 400), ("offset_in", 120), ("offset_out", -80))))
    assert moved.ports[0].y - base.ports[0].y == 3 and moved.ports[1].x - base.ports[1].x == -2
    assert moved.density_bg.sum() == base.density_bg.sum()


def test_simulator_matches_the_package(bend):
    inst, sim = bend
    model = ph.build_model(inst)
    rho = np.random.default_rng(0).random(sim.design_shape)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):                                   # oversubscribed BLAS is slow
        s_ref, _ = model.simulate(rho, max_parallelizm=1)        # ceviche's autograd path
    res = sim.simulate(rho)
    np.testing.assert_allclose(res.T, np.abs(s_ref[:, 0, :]) ** 2, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.abs(res.s), np.abs(s_ref[:, 0, :]), rtol=1e-8, atol=1e-12)
    assert np.all(res.T.sum(1) < 1.0 + 1e-6)                       # passive device


def test_jax_gradient_matches_finite_differences(bend):
    inst, sim = bend
    T = ph.transmission(inst)
    rng = np.random.default_rng(1)
    rho = rng.uniform(0.2, 0.8, sim.design_shape)
    lb, ub = ph.spec_window(inst.device)
    weights = rng.normal(size=(2, sim.n_ports))

    def scalar(r):
        return jnp.sum(jnp.asarray(weights, jnp.float32) * T(r))

    g = np.asarray(jax.jit(jax.grad(scalar))(jnp.asarray(rho, jnp.float32)), np.float64)
    h = 1e-4
    for _ in range(3):
        v = rng.normal(size=rho.shape)
        fp = (weights * sim.simulate(rho + h * v).T).sum()
        fm = (weights * sim.simulate(rho - h * v).T).sum()
        fd = (fp - fm) / (2 * h)
        assert np.sum(g * v) == pytest.approx(fd, rel=2e-3, abs=1e-6)
    # The window loss through JAX, too (finite differences of a float64 NumPy loss).
    width = np.min(ub - lb)

    def loss64(T):
        d = np.maximum(np.where(lb > 0, lb - T, -1.0), np.where(ub < 1, T - ub, -1.0)) / width
        return np.sum(np.maximum(d, 0) ** 2)

    assert loss64(sim.simulate(rho).T) == pytest.approx(
        float(ph.window_loss(T(jnp.asarray(rho, jnp.float32)), lb, ub)), rel=1e-4)
    gl = np.asarray(jax.grad(lambda r: ph.window_loss(T(r), lb, ub))(
        jnp.asarray(rho, jnp.float32)), np.float64)
    v = rng.normal(size=rho.shape)
    fd = (loss64(sim.simulate(rho + h * v).T) - loss64(sim.simulate(rho - h * v).T)) / (2 * h)
    assert np.sum(gl * v) == pytest.approx(fd, rel=2e-3)


def test_jit_vmap_and_bad_designs(bend):
    inst, sim = bend
    T = ph.transmission(inst)
    x = jnp.asarray(ph.brush_generate(np.random.default_rng(2).normal(size=sim.design_shape)), jnp.float32)
    both = jax.jit(jax.vmap(T))(jnp.stack([x, 1 - x]))
    np.testing.assert_allclose(both[0], sim.simulate(np.asarray(x)).T, rtol=1e-5)
    np.testing.assert_allclose(both[1], sim.simulate(1 - np.asarray(x)).T, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        T(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        sim.simulate(np.full(sim.design_shape, np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sim.simulate(np.full(sim.design_shape, 2.0))
    with pytest.raises(Exception, match="NaN"):                  # raised inside the callback
        jax.block_until_ready(T(jnp.full(sim.design_shape, jnp.nan)))


def test_evaluate_design_reports(bend):
    inst, sim = bend
    x = ph.brush_generate(np.random.default_rng(3).normal(size=sim.design_shape))
    rep = ph.evaluate_design(x, inst)
    assert rep.feasible and rep.n_violations == 0
    lb, ub = ph.spec_window(inst.device)
    assert rep.loss == pytest.approx(float(ph.window_loss(sim.simulate(x).T, lb, ub)), rel=1e-9)
    assert rep.spec_met == (rep.loss == 0.0) and rep.success == rep.spec_met
    bad = np.zeros(sim.design_shape, np.uint8)
    bad[20, 20] = 1                                             # one isolated pixel
    rep = ph.evaluate_design(bad, inst)
    assert not rep.feasible and rep.n_violations == 1 and not rep.success
    with pytest.raises(ValueError, match="shape"):
        ph.evaluate_design(np.zeros((5, 5)), inst)


def test_all_devices_simulate():
    """Every device type builds and simulates; an empty design transmits little."""
    for dev in ph.DEVICES:
        y = ph.nominal_instance(dev)
        sim = ph.simulator(y)
        res = sim.simulate(np.zeros(sim.design_shape))
        lb, _ = ph.spec_window(dev)
        assert res.T.shape == lb.shape
        assert np.all(res.T >= 0) and np.all(res.T.sum(1) <= 1 + 1e-6)
        assert not ph.success(res.T, *ph.spec_window(dev))
    if "wdm" in D.DEVICES:
        assert ph.simulator(ph.nominal_instance("wdm")).n_ports == 3


def test_simulate_reuses_its_recent_results(bend):
    inst, sim = bend
    rng = np.random.default_rng(5)
    xs = [ph.brush_generate(rng.normal(size=sim.design_shape)).astype(np.float64)
          for _ in range(sim.RECENT + 1)]
    a = sim.simulate(xs[0])
    assert a.jac is None and not a.T.flags.writeable           # shared: read-only
    assert sim.simulate(xs[0].copy()) is a                       # same design: no new solve
    b = sim.simulate(xs[0], jacobian=True)                       # needs the Jacobian: solved
    assert b is not a and b.jac is not None
    np.testing.assert_array_equal(b.T, a.T)
    assert sim.simulate(xs[0]) is b                              # a Jacobian result serves both
    for x in xs[1:]:                                             # pushes xs[0] out
        sim.simulate(x)
    c = sim.simulate(xs[0])
    assert c is not b
    np.testing.assert_allclose(c.T, b.T, rtol=1e-12)
    assert sim.simulate(xs[0], fields=True).ez is not None       # fields: never cached
