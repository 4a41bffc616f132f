"""The one cost-model interface (`ShardingCostModel`), the one all-to-all model (`comm`),
and the one problem constructor that takes any cost model."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems import sharding as S
from surco.problems.sharding.comm import alltoall_ms, exchange_ms, pooled_bytes
from surco.problems.sharding.tables import generate_pool
from surco.problems.sharding.tasks import make_task


@pytest.fixture(scope="module")
def task():
    return make_task(generate_pool(0, 60), np.arange(9) * 5, 3)


def test_alltoall_closed_form_partial_plan_and_one_device():
    send = np.array([3.0, 1.0, 2.0])
    sides = alltoall_ms(send)
    np.testing.assert_allclose(sides, [[3, 1, 2], [1.5, 2.5, 2.0]])   # recv = (6 - s) / 2
    np.testing.assert_allclose(alltoall_ms(send, latency_us=250.0), sides + 0.5)
    # a partial plan still receives the slices of tables placed nowhere yet: total given
    np.testing.assert_allclose(alltoall_ms(send, total_ms=10.0)[1], [3.5, 4.5, 4.0])
    assert np.all(alltoall_ms(np.array([7.0]), latency_us=3.0) == 0.0)   # no exchange
    # numpy in, numpy out (float64 kept); JAX in, JAX out
    assert isinstance(sides, np.ndarray) and sides.dtype == np.float64
    assert isinstance(alltoall_ms(jnp.asarray(send)), jax.Array)
    with pytest.raises(ValueError, match=r"send_ms must have shape \(D,\)"):
        alltoall_ms(np.ones((2, 2)))
    with pytest.raises(ValueError, match="latency_us must be >= 0"):
        alltoall_ms(send, latency_us=-1.0)
    # bytes: B (D-1)/D * dim * a, over a link both ways (forward + backward)
    assert pooled_bytes(128.0, 1000, 4, 4) == pytest.approx(1000 * 0.75 * 128 * 4)
    assert exchange_ms(1e9, 50e9) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="num_devices must be >= 1"):
        pooled_bytes(8.0, 10, 0, 4)


def test_analytic_comm_is_the_one_model_for_relaxed_plans(task):
    """The analytic model's all-to-all equals ``send = P x``, ``recv = P (1 - x) / (D-1)``
    written out, for a relaxed plan whose rows do not sum to one (a partial plan)."""
    m = S.DEFAULT_COST_MODEL
    x = np.random.default_rng(1).random((task.n_tables, task.n_devices)) * 0.5
    _, comm = m.stage_costs(x, task)
    P = np.asarray(task.comm_bytes)
    ref = 1e3 * 2 * np.stack([P @ x, P @ (1 - x) / (task.n_devices - 1)]) / m.comm_bw
    np.testing.assert_allclose(np.asarray(comm), ref, rtol=1e-5)


@dataclasses.dataclass(frozen=True)
class _Linear(S.ShardingCostModel):
    """A cost model written outside the package: compute ∝ dims placed, comm from `comm`."""
    name = "linear"
    per_dim_ms: float = 0.01

    def stage_costs(self, x, task):
        x = jnp.asarray(x, jnp.float32)
        dim = jnp.asarray(task.dim, jnp.float32)
        return self.per_dim_ms * (dim @ x), alltoall_ms(0.001 * (dim @ x))

    def load_scale(self, task):
        return self.per_dim_ms * jnp.sum(jnp.asarray(task.dim)) / task.n_devices


def test_one_constructor_for_any_model(task):
    model = _Linear()
    x = np.eye(3)[np.arange(task.n_tables) % 3]
    dim = np.asarray(task.dim)
    loads = 0.01 * (dim @ x)
    send = 0.001 * (dim @ x)
    recv = (send.sum() - send) / 2
    assert model.evaluate(x, task) == pytest.approx(loads.max() + max(send.max(), recv.max()),
                                                    rel=1e-5)
    np.testing.assert_allclose(np.asarray(model.device_costs(x, task)),
                               loads + max(send.max(), recv.max()), rtol=1e-5)
    prob = S.sharding_problem(model, temperature=0.05)
    assert prob.name == "sharding-linear"
    tau = 0.05 * 0.01 * dim.sum() / 3
    lse = lambda v: v.max() + np.log(np.exp((v - v.max()) / tau).sum()) * tau
    assert float(prob.f(jnp.asarray(x, jnp.float32), task)) == pytest.approx(
        lse(loads) + lse(np.concatenate([send, recv])), rel=1e-5)
    assert prob.evaluate(x, task) == pytest.approx(model.evaluate(x, task))
    assert prob.features_of(task).shape == (task.n_tables, 22 + 3)
    # judged by another model: the objective stays, the true cost changes
    judged = S.sharding_problem(model, truth=S.DEFAULT_COST_MODEL)
    assert judged.evaluate(x, task) == pytest.approx(S.evaluate_plan(x, task))
    assert S.sharding_problem().name == "sharding"
    hard = S.sharding_problem(smooth=False)
    assert float(hard.f(jnp.asarray(x, jnp.float32), task)) == pytest.approx(
        S.evaluate_plan(x, task), rel=1e-6)


def test_interface_errors(task):
    with pytest.raises(ValueError, match="model must be differentiable.*truth="):
        S.sharding_problem(S.MeasuredCostModel())
    with pytest.raises(TypeError, match="truth must be a ShardingCostModel"):
        S.sharding_problem(truth=lambda x, t: 0.0)
    with pytest.raises(TypeError, match="abstract"):
        type("NoStages", (S.ShardingCostModel,), {})()
    with pytest.raises(ValueError, match=r"plan has shape \(2, 3\), expected \(9, 3\)"):
        S.DEFAULT_COST_MODEL.evaluate(np.zeros((2, 3)), task)
    with pytest.raises(ValueError, match="temperature must be positive"):
        S.DEFAULT_COST_MODEL.smooth_plan_cost(np.ones((9, 3)) / 3, task, temperature=0.0)
    with pytest.raises(NotImplementedError, match="not differentiable"):
        S.MeasuredCostModel().load_scale(task)
