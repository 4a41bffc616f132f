"""SurCo-prior for photonics (`photonics.prior`): distillation fit on train instances,
save/load, prediction through the harness (brush check, value), hybrid, argument checks."""
import numpy as np
import pytest

pytest.importorskip("ceviche_challenges")

import surco  # noqa: E402
from surco.problems import photonics as ph  # noqa: E402

def _target(y: ph.DeviceInstance) -> np.ndarray:
    """A smooth cost image that depends on the instance: void (θ > 0) away from a band
    around the input offset whose half-width is the waveguide width, tilted along i."""
    H, W = y.design_shape
    u = (np.arange(H) + 0.5) / H * 2 - 1
    v = (np.arange(W) + 0.5) / W * 2 - 1
    U, V = np.meshgrid(u, v, indexing="ij")
    p = dict(y.params)
    off = p.get("offset_in", p.get("offset_left"))
    width = p.get("wg_width", p.get("left_width"))
    return np.tanh(4 * (np.abs(V - off / 800.0) - width / 1600.0)) + 0.3 * U


@pytest.fixture(scope="module")
def bend():
    train = ph.generate(3, device="waveguide_bend", split="train")
    targets = [_target(y) for y in train]
    return train, targets, ph.train_prior(train, targets)


def _kernel_regression(prior, train, targets, y) -> np.ndarray:
    """Nadaraya-Watson by hand: softmax(-|z - z_k|^2 / temperature) weights on the train
    targets, features normalised by the prior's mean and std."""
    def z(v):
        return (v.features().astype(np.float64) - prior.feat_mean) / prior.feat_std
    d2 = np.array([np.sum((z(y) - z(t)) ** 2) for t in train])
    w = np.exp(-(d2 - d2.min()) / ph.PRIOR_TEMPERATURE)
    w /= w.sum()
    return np.tensordot(w, np.stack(targets), axes=1)


@pytest.mark.parametrize("device", ["waveguide_bend", "mode_converter"])
def test_prior_reproduces_distilled_targets(device, bend):
    if device == "waveguide_bend":
        train, targets, prior = bend
    else:
        train = ph.generate(3, device=device, split="train")
        targets = [_target(y) for y in train]
        prior = ph.train_prior(train, targets)
    assert isinstance(prior, surco.prior.PriorModel) and prior.estimator == "distill"
    assert prior.feat_mean.shape == (len(train[0].params),)
    # normalisation per feature column over the train instances
    F = np.stack([y.features() for y in train])
    np.testing.assert_allclose(prior.feat_mean, F.mean(axis=0), rtol=1e-6)
    for y, t in zip(train, targets):
        th = np.asarray(prior.theta(y))
        assert th.shape == y.design_shape
        assert np.max(np.abs(th - t)) < 1e-3 * np.max(np.abs(t)), y.params
        np.testing.assert_array_equal(ph.brush_generate(-th), ph.brush_generate(-t))
    assert prior.history.train_f[0] < 1e-6


def test_prior_on_a_test_instance_is_the_kernel_regression_of_the_targets(bend):
    train, targets, prior = bend
    for y in ph.generate(3, device="waveguide_bend", split="test"):
        want = _kernel_regression(prior, train, targets, y)
        np.testing.assert_allclose(np.asarray(prior.theta(y)), want, atol=1e-5)


def test_save_load_round_trip_gives_identical_predictions(bend, tmp_path):
    train, _, prior = bend
    prior.save(tmp_path / "p")
    back = surco.prior.load(tmp_path / "p", ph.make_problem("waveguide_bend"))
    assert type(back.module) is ph.KernelCostNet
    assert (back.module.n, back.module.out, back.module.temperature) == (3, 1600, 0.01)
    test = ph.generate(2, device="waveguide_bend", split="test")
    for y in train + test:
        a, b = np.asarray(prior.theta(y)), np.asarray(back.theta(y))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ph.brush_generate(-a), ph.brush_generate(-b))
    assert back.history.train_f == prior.history.train_f


def test_predicted_design_passes_checker_and_scores_through_compare(bend):
    _, _, prior = bend
    y = ph.generate(1, device="waveguide_bend", split="test")[0]
    cmp = surco.compare(ph.FAMILY, [y], ["surco-prior"], prior=prior, progress=False)
    run = cmp.run("surco-prior", 0)
    assert run.status == "ok" and run.evaluations == 0
    x = np.asarray(run.x)
    # the design is the generator's on the prior's cost, brush-feasible by the checker
    np.testing.assert_array_equal(x, ph.brush_generate(-np.asarray(prior.theta(y))))
    assert ph.check_design(x).feasible and ph.violations(x, y) == []
    rep = ph.evaluate_design(x.astype(np.uint8), y)
    assert run.value == pytest.approx(rep.loss, rel=1e-6)
    # f = log(1 + L) of the same design
    pred = prior.predict(y)
    assert pred.f == pytest.approx(np.log1p(rep.loss), rel=1e-5)


@pytest.mark.parametrize("call, err, msg", [
    (lambda tr, t: ph.train_prior(ph.generate(1, device="waveguide_bend"), t[:1]),
     ValueError, "train_prior: instances[0] (seed 100000) is a test-split instance"),
    (lambda tr, t: ph.train_prior(tr + ph.generate(1, device="mode_converter",
                                                   split="train"), t + t[:1]),
     ValueError, "train_prior: instances mixes devices ['mode_converter', 'waveguide_bend']"),
    (lambda tr, t: ph.train_prior([], []), ValueError, "train_prior: instances is empty"),
    (lambda tr, t: ph.train_prior(tr[0], t), TypeError,
     "train_prior: instances must be a list or tuple of DeviceInstance, got DeviceInstance"),
    (lambda tr, t: ph.train_prior(tr, t[:2]), ValueError,
     "train_prior: targets must be a list with one cost image per instance (3), got 2"),
    (lambda tr, t: ph.train_prior(tr, [t[0], t[1], np.zeros((40, 41))]), ValueError,
     "train_prior: targets[2] has shape (40, 41), expected the design shape (40, 40)"),
    (lambda tr, t: ph.train_prior(tr, [t[0], t[1], np.full((40, 40), np.nan)]), ValueError,
     "train_prior: targets[2] holds NaN or inf"),
    (lambda tr, t: ph.train_prior(tr, t, temperature=0.0), ValueError,
     "train_prior: temperature must be a finite number > 0, got 0.0"),
    (lambda tr, t: ph.distill_targets(tr, steps=0), ValueError,
     "distill_targets: steps must be an integer >= 1, got 0"),
    (lambda tr, t: ph.prior_methods({"bend": None}), ValueError,
     "prior_methods: unknown device 'bend'"),
    (lambda tr, t: ph.prior_methods({"wdm": object()}), ValueError,
     "prior_methods: priors['wdm'] must be a PriorModel, got object"),
])
def test_bad_input_names_the_argument(bend, call, err, msg):
    train, targets, _ = bend
    with pytest.raises(err) as exc:
        call(train, targets)
    assert str(exc.value).startswith(msg)


def test_prior_methods_dispatch_by_device(bend):
    _, _, prior = bend
    methods = ph.prior_methods({"waveguide_bend": prior})
    assert sorted(methods) == ["surco-hybrid", "surco-prior", "surco-prior-robust"]
    y = ph.generate(1, device="waveguide_bend", split="test")[0]
    x = methods["surco-prior"](y, None)
    np.testing.assert_array_equal(x, ph.brush_generate(-np.asarray(prior.theta(y))))
    mc = ph.generate(1, device="mode_converter", split="test")[0]
    with pytest.raises(ValueError, match=r"surco-prior: no prior for device 'mode_converter'; "
                                         r"priors for \['waveguide_bend'\]"):
        methods["surco-prior"](mc, None)


def test_distill_targets_are_zero_runs_with_the_family_settings():
    y = ph.generate(1, device="waveguide_bend", split="train")[0]
    got = ph.distill_targets([y], steps=2)[0]
    want = surco.zero(ph.FAMILY.problem(y), y,
                      **{**ph.ZERO_SETTINGS, "steps": 2, "init": ph.ZERO_SETTINGS["init"](y)})
    np.testing.assert_array_equal(np.asarray(got.theta), np.asarray(want.theta))
    np.testing.assert_array_equal(np.asarray(got.x), np.asarray(want.x))


@pytest.mark.slow
def test_prior_from_zero_runs_and_hybrid_end_to_end():
    """The whole path on real targets: zero on 2 train instances, distil, predict a test
    design; hybrid (zero from the better of the prior's θ and θ₀) is never worse than the
    prior, since its first design is the prior's or a better one."""
    train = ph.generate(2, device="waveguide_bend", split="train")
    zero = ph.distill_targets(train, steps=4)
    prior = ph.train_prior(train, zero)
    for y, z in zip(train, zero):
        np.testing.assert_allclose(np.asarray(prior.theta(y)), z.theta, atol=1e-4)
    y = ph.generate(1, device="waveguide_bend", split="test")[0]
    cmp = surco.compare(ph.FAMILY, [y], ["surco-prior", "surco-hybrid"], prior=prior,
                        budget=surco.Budget(evaluations=3), progress=False)
    p, h = cmp.run("surco-prior", 0), cmp.run("surco-hybrid", 0)
    assert p.ok and h.ok and 1 <= h.evaluations <= 3
    assert h.value <= p.value
