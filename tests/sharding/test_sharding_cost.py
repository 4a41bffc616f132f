"""The analytic cost model: values, coupling, and gradients against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems.sharding import cost as C
from surco.problems.sharding.tables import TablePool, generate_pool
from surco.problems.sharding.tasks import make_task


M = C.DEFAULT_COST_MODEL


@pytest.fixture(scope="module")
def task():
    pool = generate_pool(0, 90)
    return make_task(pool, np.arange(12) * 7, 3)


def _relaxed(T, D, seed):
    x = np.random.default_rng(seed).random((T, D)) + 0.05
    return x / x.sum(1, keepdims=True)


def test_hand_computed_single_table():
    """One table alone on one of two devices: every term by hand."""
    m = C.DEFAULT_COST_MODEL
    pool = TablePool(rows=[1000], dim=[64], pooling=[2.0], skew=[0.0])
    pool2 = TablePool(rows=[1000, 10], dim=[64, 4], pooling=[2.0, 1.0], skew=[0.0, 0.0])
    t = make_task(pool2, [0, 1], 2)
    B = m.batch_per_device * 2
    L = B * 2.0
    u1, u2 = C.expected_unique_rows(1000, 0.0, L)
    S = L * 8 + B * 8 + B * 256
    G = L * 256 * 1.15
    r = (L - u1) / L
    W = u2 * 256
    h = r * m.l2_bytes / (m.l2_bytes + W)
    fwd = m.kernel_overhead + m.table_overhead + S / m.hbm_bw + G * ((1 - h) / m.hbm_bw + h / m.l2_bw)
    compute, comm = M.stage_costs(np.array([[1.0, 0.0], [0.0, 1.0]]), t)
    assert float(compute[0]) == pytest.approx(1e3 * 3 * fwd, rel=1e-5)
    P0, P1 = B * 256 * 0.5, B * 16 * 0.5
    # device 0 sends table 0's pooled outputs and receives its batch slice of table 1's
    np.testing.assert_allclose(np.asarray(comm), 1e3 * 2 * np.array([[P0, P1], [P1, P0]]) / m.comm_bw,
                               rtol=1e-5)
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    dev = np.asarray(M.device_costs(x, t))
    np.testing.assert_allclose(dev, np.asarray(compute) + np.asarray(comm).max(), rtol=1e-6)
    assert float(M.plan_cost(x, t)) == pytest.approx(dev.max(), rel=1e-6)
    del pool


def test_dim_penalty():
    m = C.DEFAULT_COST_MODEL
    np.testing.assert_allclose(m.dim_penalty(np.array([4, 8, 32, 64, 128])),
                               [1.75 * 2, 1.75, 1.75, 1.15, 1.0])


def test_cache_coupling_is_not_additive(task):
    """Two tables together on a device cost more compute than apart (shared L2)."""
    T = task.n_tables
    hot = np.argsort(-np.asarray(task.reuse) * np.asarray(task.footprint))[:2]
    one = np.zeros((T, 1))
    one[hot] = 1.0
    both = np.asarray(M.stage_costs(one, task)[0])[0]
    alone = [np.asarray(M.stage_costs(np.eye(T)[:, [i]], task)[0])[0] for i in hot]
    overhead = 1e3 * 3 * C.DEFAULT_COST_MODEL.kernel_overhead
    assert both > sum(alone) - overhead + 1e-4


def test_smooth_max_bounds(task):
    x = np.eye(task.n_devices)[np.arange(task.n_tables) % task.n_devices]
    hard = float(M.plan_cost(x, task))
    soft = float(M.smooth_plan_cost(x, task))
    tau = C.DEFAULT_COST_MODEL.smooth_temperature * float(task.mean_load_ms)
    D = task.n_devices
    assert hard <= soft <= hard + tau * (np.log(D) + np.log(2 * D)) + 1e-5


@pytest.mark.parametrize("fn", ["smooth", "device"])
def test_gradient_matches_finite_differences(task, fn):
    """∂f/∂x of the relaxed plan against central differences, in float64, every entry."""
    with jax.enable_x64(True):
        T, D = task.n_tables, task.n_devices
        x0 = jnp.asarray(_relaxed(T, D, 0), jnp.float64)
        if fn == "smooth":
            f = lambda x: M.smooth_plan_cost(x, task, temperature=0.05)
        else:  # a weighted sum of device costs exercises every device's own gradient
            w = jnp.linspace(0.5, 1.5, D, dtype=jnp.float64)
            f = lambda x: jnp.dot(w, M.device_costs(x, task))
        g = np.asarray(jax.jit(jax.grad(f))(x0))
        h = 1e-6
        E = h * jnp.eye(T * D, dtype=jnp.float64).reshape(T * D, T, D)
        fv = jax.jit(jax.vmap(f))
        fd = np.asarray((fv(x0 + E) - fv(x0 - E)) / (2 * h)).reshape(T, D)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)
        assert np.abs(g).max() > 1e-3  # not a trivially zero gradient


def test_jit_and_vmap(task):
    xs = jnp.asarray(np.stack([_relaxed(task.n_tables, task.n_devices, s) for s in range(3)]),
                     jnp.float32)
    f = jax.jit(jax.vmap(lambda x: M.plan_cost(x, task)))
    out = np.asarray(f(xs))
    ref = [float(M.plan_cost(x, task)) for x in xs]
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_cost_model_validation():
    with pytest.raises(ValueError, match="hbm_bw"):
        C.AnalyticCostModel(hbm_bw=0.0)
    with pytest.raises(ValueError, match="n_devices"):
        C.table_terms(generate_pool(0, 3), 0)


def test_standalone_cost_is_compute_plus_send(task):
    """A table alone on a device costs its compute plus sending its pooled outputs to the
    task's other devices (the receive side is another device's)."""
    alone = C.standalone_costs(task)
    m = C.DEFAULT_COST_MODEL
    for t in (0, 5, 11):
        x = np.eye(task.n_tables)[:, [t]]
        compute = float(M.stage_costs(x, task)[0][0])
        send = 1e3 * 2 * float(task.comm_bytes[t]) / m.comm_bw
        assert alone[t] == pytest.approx(compute + send, rel=1e-5)
    assert float(task.mean_load_ms) == pytest.approx(alone.sum() / task.n_devices, rel=1e-6)
