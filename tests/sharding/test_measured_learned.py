"""The DreamShard-style learned cost model: training on measured data, gradients, SurCo use."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.problems.sharding import ShardingCostModel, sharding_problem
from surco.problems.sharding import measured as N
from surco.problems.sharding.measured import bundled_dataset
from surco.problems.sharding.tables import FEATURE_NAMES, generate_pool
from surco.problems.sharding.tasks import make_task, plan_violations


@pytest.fixture(scope="module")
def data():
    ds = bundled_dataset("cpu")
    return ds.take(np.arange(min(len(ds), 300)))   # bounded test time


@pytest.fixture(scope="module")
def trained(data):
    return N.train_cost_model(data, hidden=48, epochs=120, seed=0)


def _random_model(D=4, seed=0):
    net = N.LearnedCostNet(hidden=16)
    F = len(N.INPUT_NAMES)
    params = net.init(jax.random.key(seed), jnp.zeros((3, F)), jnp.ones((3, D)))
    meta = {"num_devices": D, "link_latency_us": 5.0}
    return N.LearnedCostModel(params, net, np.zeros(F, np.float32), np.ones(F, np.float32),
                             {k: 1.0 for k in N.HEADS}, meta)


def test_bundled_dataset_is_cpu_measured(data):
    assert data.meta["platform"] == "cpu"
    assert len(data) >= 100
    assert np.all(data.fwd_ms > 0) and np.all(data.bwd_ms > 0)
    assert "modelled" in data.meta["comm"]


def test_trained_model_beats_predicting_the_mean(trained, data):
    model, rep = trained
    assert rep.n_test >= 20 and rep.n_train + rep.n_val + rep.n_test == len(data)
    assert rep.mape < 0.5 * rep.mean_baseline_mape, rep.summary()
    assert rep.mape < rep.median_baseline_mape, rep.summary()
    assert rep.tau > 0.5, rep.summary()
    # the report's numbers are the model's predictions on the held-out subsets
    f, m = N.dataset_inputs(data)
    pr = model.predict_subsets(f[rep.test_index], m[rep.test_index])
    np.testing.assert_allclose(pr["fwd"] + pr["bwd"], rep.test_pred_ms, rtol=1e-5)
    np.testing.assert_allclose(rep.test_true_ms, data.compute_ms[rep.test_index])
    assert rep.mape == pytest.approx(N.mape(rep.test_pred_ms, rep.test_true_ms))


def test_training_configuration_is_the_keyword_form(data):
    """``train_cost_model(data, CostModelTrainConfig)`` and its keywords train the same
    model; keywords replace fields; the split can be given; bad settings are named."""
    small = data.take(np.arange(60))
    tr, te = np.arange(0, 60, 2), np.arange(1, 60, 2)
    cfg = N.CostModelTrainConfig(hidden=8, table_layers=1, head_layers=1, epochs=3, seed=2)
    _, a = N.train_cost_model(small, cfg.replace(epochs=1), train_index=tr, test_index=te,
                              epochs=3)
    _, b = N.train_cost_model(small, train_index=tr, test_index=te, **cfg)
    np.testing.assert_array_equal(a.test_index, te)
    np.testing.assert_array_equal(b.test_pred_ms, a.test_pred_ms)
    assert b.mape == a.mape and a.epochs == b.epochs == 3 and a.n_train + a.n_val == 30
    for bad, msg in [({"epochs": 0}, "train_cost_model: epochs must be an integer >= 1, got 0"),
                     ({"lr": 0.0}, "train_cost_model: lr must be a finite number > 0, got 0.0"),
                     ({"weight_decay": -1}, "weight_decay must be a finite number >= 0"),
                     ({"test_fraction": 0.5, "val_fraction": 0.5},
                      "need test_fraction \\+ val_fraction < 1")]:
        with pytest.raises(ValueError, match=msg):
            N.train_cost_model(small, **bad)
    with pytest.raises(TypeError, match="'epoch'.*'epochs'"):
        N.train_cost_model(small, epoch=3)


def test_plan_cost_structure_and_save_load(trained, data, tmp_path):
    model, _ = trained
    assert isinstance(model, ShardingCostModel) and model.differentiable
    f, _ = N.dataset_inputs(data)
    feats = N.table_inputs(data.features[:9], data.dim[:9], data.pooling[:9], data.rows[:9])
    # the same 9 tables as a task: its inputs are the dataset's
    task = make_task(data.pool().subset(np.arange(9)), np.arange(9), 4, capacity=1e12,
                     check=False)
    np.testing.assert_allclose(np.asarray(N.task_inputs(task)), np.asarray(feats), rtol=1e-6)
    assign = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0])
    x = np.eye(4, dtype=np.float32)[assign]
    c = {k: np.asarray(v) for k, v in model.head_costs(x, feats).items()}
    # each device's heads equal the single-device prediction of its table set
    for d in range(4):
        ids = np.flatnonzero(assign == d)
        pr = model.predict_subsets(feats[ids][None], np.ones((1, ids.size), bool))
        for k in N.HEADS:
            np.testing.assert_allclose(c[k][d], pr[k][0], rtol=1e-4)
    recv = (c["send"].sum() - c["send"]) / 3
    np.testing.assert_allclose(c["comm"], np.maximum(c["send"], recv), rtol=1e-5)
    # the interface's stages: compute, and (send, receive) of the one all-to-all model
    compute, sides = (np.asarray(v) for v in model.stage_costs(x, task))
    np.testing.assert_allclose(compute, c["compute"], rtol=1e-6)
    np.testing.assert_allclose(sides, np.stack([c["send"], recv]), rtol=1e-5)
    assert float(model.plan_cost(x, task)) == pytest.approx(
        c["compute"].max() + c["comm"].max(), rel=1e-5)
    assert model.evaluate(x, task) == pytest.approx(float(model.plan_cost(x, task)), rel=1e-6)
    smooth = float(model.smooth_plan_cost(x, task))
    assert float(model.plan_cost(x, task)) <= smooth + 1e-4
    path = model.save(tmp_path / "model.npz")
    back = N.LearnedCostModel.load(path)
    assert float(back.plan_cost(x, task)) == pytest.approx(float(model.plan_cost(x, task)),
                                                           rel=1e-6)
    with pytest.raises(ValueError, match="trained for 4 devices"):
        model.head_costs(np.ones((9, 3)) / 3, feats)
    with pytest.raises(ValueError, match="inputs must have shape"):
        model.head_costs(x, feats[:, :5])
    # an empty device costs nothing (no tables, no work)
    x0 = np.eye(4, dtype=np.float32)[np.zeros(9, int)]
    c0 = model.head_costs(x0, feats)
    assert np.all(np.asarray(c0["fwd"])[1:] == 0) and np.all(np.asarray(c0["send"])[1:] == 0)


@pytest.fixture(scope="module")
def pool40():
    return generate_pool(5, n_tables=40)


def test_gradient_in_x_matches_finite_differences(pool40):
    model = _random_model()
    rng = np.random.default_rng(0)
    task = make_task(pool40, np.arange(6), 4)
    x = rng.dirichlet(np.ones(4), size=6)         # a relaxed plan
    f = jax.jit(lambda x: model.smooth_plan_cost(x, task, temperature=0.5))
    g = np.asarray(jax.grad(f)(jnp.asarray(x, jnp.float32)))
    eps = 1e-2
    for t, d in [(0, 0), (2, 1), (5, 3), (4, 2)]:
        e = np.zeros_like(x)
        e[t, d] = eps
        fd = (float(f(jnp.asarray(x + e, jnp.float32))) -
              float(f(jnp.asarray(x - e, jnp.float32)))) / (2 * eps)
        assert g[t, d] == pytest.approx(fd, rel=2e-2, abs=1e-4), (t, d)
    assert np.abs(g).sum() > 0


def test_surco_zero_runs_on_the_learned_model(trained, pool40):
    model, _ = trained
    pool = pool40
    task = make_task(pool, np.arange(12), 4)
    prob = sharding_problem(model)
    assert prob.name == "sharding-learned"
    res = surco.zero(prob, task, steps=4, lr=0.5, key=0, backend="highs")
    assert plan_violations(res.x, task) == []
    assert res.true_cost == pytest.approx(
        float(model.plan_cost(jnp.asarray(res.x, jnp.float32), task)), rel=1e-5)
    # the task's inputs are those the model was trained with, for the same tables
    from surco.problems.sharding.tables import scale_features, table_features
    ref = N.table_inputs(scale_features(table_features(pool))[:12], pool.dim[:12],
                         pool.pooling[:12], pool.rows[:12])
    np.testing.assert_allclose(np.asarray(N.task_inputs(task)), np.asarray(ref), rtol=1e-6)
    pool_t = N.task_pool(task)
    np.testing.assert_array_equal(pool_t.rows, pool.rows[:12])
    np.testing.assert_array_equal(pool_t.dim, pool.dim[:12])


@pytest.mark.slow
def test_profile_then_train_from_scratch(tmp_path):
    """The whole path on this machine: measure small subsets, train, beat the mean."""
    from surco.problems.sharding.measured import build_dataset
    pool = generate_pool(1, n_tables=200)
    small = pool.subset(np.flatnonzero(pool.size_bytes() < 50e6))
    ds = build_dataset(small, 80, max_tables=8, cache=tmp_path / "c.sqlite", progress=False,
                       profiler=N.ProfilerConfig(batch_size=512, warmup=1, runs=3))
    _, rep = N.train_cost_model(ds, hidden=32, epochs=150, seed=0)
    assert rep.mape < rep.mean_baseline_mape and rep.mape < rep.median_baseline_mape
    assert rep.tau > 0.3
