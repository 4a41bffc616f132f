"""The one interface every cost model of a sharding plan implements.

Three models cost a plan x ``(T, D)`` (``x[t, d] = 1`` when table t lives on device d):

* `cost.AnalyticCostModel` — the embedded roofline model (JAX, differentiable, no GPU);
* `measured.MeasuredCostModel` — the profiler: each device's fused embedding-bag step
  timed on the accelerator (ground truth; not differentiable);
* `measured.LearnedCostModel` — a DreamShard-style network trained on those measurements
  (JAX, differentiable).

Each splits an iteration the same way (`stage_costs`): each device's own compute
(forward + backward fused lookups) and the all-to-all of pooled embeddings, in which every
device waits for the slowest send or receive (`comm.alltoall_ms`). The plan then costs::

    plan_cost = max_d compute_d + max_{side, d} comm[side, d]      (ms)

and SurCo optimises its smooth version, both maxima replaced by ``τ·logsumexp(·/τ)`` with
``τ = temperature · load_scale(task)``, a constant of the task. A model implements
`stage_costs` (and `load_scale` when it is differentiable); the rest is shared, so one
problem constructor (`problem.sharding_problem`) takes any of them::

    sharding_problem(model)                       # analytic or learned objective
    sharding_problem(learned, truth=measured)     # optimise the learned, judge by the profiler

>>> from surco.problems.sharding import DEFAULT_COST_MODEL, ShardingCostModel
>>> isinstance(DEFAULT_COST_MODEL, ShardingCostModel), DEFAULT_COST_MODEL.differentiable
(True, True)
"""
from __future__ import annotations

import abc
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ShardingCostModel"]


class ShardingCostModel(abc.ABC):
    """A cost model of sharding plans (see the module docstring).

    Class attributes:
      name: short name (``"analytic"``, ``"measured"``, ``"learned"``), used in problem
        names.
      differentiable: True when `stage_costs` is a pure JAX function of x (relaxed plans
        allowed), so that it can be SurCo's objective; False for a model that only costs
        binary plans (the profiler).
      smooth_temperature: default temperature of `smooth_plan_cost` (a fraction of
        `load_scale`). Dataclass models may override it with a field.

    Subclasses implement `stage_costs` and, when differentiable, `load_scale`.
    """

    name: ClassVar[str] = "cost-model"
    differentiable: ClassVar[bool] = True
    smooth_temperature: float = 0.01

    @abc.abstractmethod
    def stage_costs(self, x: jax.Array, task: Any) -> tuple[jax.Array, jax.Array]:
        """The two stages of an iteration under plan ``x (T, D)`` of ``task``
        (a `tasks.ShardingTask`), in ms.

        Returns:
          ``(compute, comm)``: ``compute (D,)`` each device's forward + backward fused
          lookups; ``comm (2, D)`` each device's all-to-all send and receive time
          (`comm.alltoall_ms`).

        Raises:
          ValueError: x of the wrong shape (or, for a model that needs it, not binary).
        """

    def load_scale(self, task: Any) -> jax.Array:
        """The unit of the smooth maximum's temperature for ``task``, in ms: the mean
        device load of a balanced plan (a constant of the task, so the smooth objective's
        gradient in x is exact).

        Raises:
          NotImplementedError: the model has no smooth objective (not differentiable).
        """
        raise NotImplementedError(f"{type(self).__name__} has no smooth objective: it is "
                                  "not differentiable")

    def device_costs(self, x: jax.Array, task: Any) -> jax.Array:
        """Per-device iteration time in ms, ``(D,)``: the device's own compute plus the
        all-to-all, which every device waits for (the slowest send or receive)."""
        compute, comm = self.stage_costs(x, task)
        return compute + jnp.max(comm)

    def plan_cost(self, x: jax.Array, task: Any) -> jax.Array:
        """The plan's cost in ms: ``max_d compute_d + max comm`` (= the maximum over
        devices of `device_costs`)."""
        compute, comm = self.stage_costs(x, task)
        return jnp.max(compute) + jnp.max(comm)

    def smooth_plan_cost(self, x: jax.Array, task: Any,
                         temperature: float | None = None) -> jax.Array:
        """`plan_cost` with both maxima replaced by ``τ·logsumexp(·/τ)``,
        ``τ = temperature · load_scale(task)`` (``temperature`` defaults to
        ``smooth_temperature``). Upper-bounds `plan_cost` by at most
        ``τ (log D + log 2D)``; smooth everywhere. The objective SurCo optimises.

        Raises:
          ValueError: a temperature that is not positive; NotImplementedError: a model
            that is not differentiable.
        """
        temp = self.smooth_temperature if temperature is None else float(temperature)
        if not temp > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        compute, comm = self.stage_costs(x, task)
        tau = temp * jnp.asarray(self.load_scale(task), compute.dtype)
        return tau * (jax.nn.logsumexp(compute / tau) + jax.nn.logsumexp(comm / tau))

    def evaluate(self, x: np.ndarray, task: Any) -> float:
        """The true cost in ms of a plan in Ω (max over devices, no smoothing), as a float.
        Differentiable models run a jitted `plan_cost` (compiled once per model).

        Raises:
          ValueError: x does not have the task's shape ``(T, D)``.
        """
        x = np.asarray(x)
        if x.shape != (task.n_tables, task.n_devices):
            raise ValueError(f"plan has shape {x.shape}, expected ({task.n_tables}, "
                             f"{task.n_devices})")
        if not self.differentiable:
            return float(self.plan_cost(x, task))
        return float(_jitted_plan_cost(self)(x.astype(np.float32), task))


@functools.lru_cache(maxsize=None)
def _jitted_plan_cost(model: ShardingCostModel):
    return jax.jit(model.plan_cost)
