"""Embedding-table sharding as a `surco.Problem` (Ferber et al., ICML 2023, §5.1).

x (T, D) binary places table t on device d; Ω is `spec_for(task)`; the objective is a
differentiable cost model's smooth maximum over devices (training) and ``evaluate`` the true
maximum (ms) under the same or another model (`cost_model.ShardingCostModel`: analytic,
measured, learned). SurCo-zero / -prior / -hybrid run on it through the generic API;
nothing here is a copy of the method.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from surco.problem import Problem
from surco.prior import CostNet

from .baselines import cost_greedy, torchrec_greedy
from .cost import DEFAULT_COST_MODEL, AnalyticCostModel, standalone_costs
from .cost_model import ShardingCostModel
from .tasks import ShardingTask, spec_for


def plan_features(task: ShardingTask,
                  model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """Per-table features for SurCo-prior, ``(T, 22 + D)``: the task's DreamShard features
    (`ShardingTask.features`) and a TorchRec-planner plan, column d holding
    ``(a_t / mean a)^2`` when TorchRec's greedy partitioner puts table t on device d (0
    elsewhere), a_t the standalone cost. A per-table network cannot see device loads, so it
    gets a cheap heuristic plan (< 1 ms) to refine; see `PlanResidualNet`.

    Raises:
      BaselineError: TorchRec's greedy partitioner finds no room for a table.
    """
    a = standalone_costs(task, model).astype(np.float64)
    w = (a / a.mean()) ** 2
    return np.concatenate([np.asarray(task.features, np.float64),
                           w[:, None] * torchrec_greedy(task, model=model)], axis=1)


class PlanResidualNet(CostNet):
    """SurCo-prior network for sharding: `CostNet`'s per-table MLP plus a fixed skip from
    the heuristic-plan columns of `plan_features` (the last D), ``θ = -skip · z_plan +
    MLP(z)``, with the MLP's last layer starting at zero. Since a plan column is largest on
    the plan's device, the untrained prior returns the heuristic plan, with margins that
    grow with the square of a table's cost as in `greedy_init`; training learns corrections.
    A saved prior records this class and its fields, so ``surco.prior.load(path, problem)``
    returns it as a `PlanResidualNet` without ``model=``.
    """

    skip: float = 1.0

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        ctx = jnp.broadcast_to(feats.mean(axis=0, keepdims=True), feats.shape)
        h = jnp.concatenate([feats, ctx], axis=-1)
        for w in self.hidden:
            h = nn.gelu(nn.Dense(w)(h))
        mlp = nn.Dense(self.out, kernel_init=nn.initializers.zeros)(h)
        return mlp - self.skip * feats[:, -self.out:]


def sharding_problem(model: ShardingCostModel = DEFAULT_COST_MODEL, *, smooth: bool = True,
                     temperature: float | None = None,
                     truth: ShardingCostModel | None = None) -> Problem:
    """The sharding `Problem` under any cost model (`cost_model.ShardingCostModel`).

    Args:
      model: the objective SurCo differentiates: a differentiable cost model (default the
        embedded analytic model; or a trained `measured.LearnedCostModel`).
      smooth: optimise the model's smooth maximum (``τ·logsumexp``, gradients reach every
        device) rather than the true maximum; evaluation is always a true maximum.
      temperature: τ as a fraction of the model's `load_scale` (default: the model's
        ``smooth_temperature``).
      truth: the model whose `evaluate` is the problem's true cost, by which SurCo selects
        its best plan and comparisons judge plans (default ``model``); e.g. a
        `measured.MeasuredCostModel` to judge by the profiler.

    Returns:
      ``Problem(name, space=spec_for, objective=f, features=plan_features,
      evaluate=truth.evaluate)``; x has shape (T, D), features (T, 22 + D) (the heuristic
      plan under ``model`` when it is analytic, else under the default analytic model).
      The name is ``"sharding"`` under the analytic model, ``"sharding-<model.name>"``
      otherwise.

    Raises:
      TypeError: ``model`` or ``truth`` is not a `ShardingCostModel`.
      ValueError: ``model`` is not differentiable (pass the measured model as ``truth``).
    """
    for arg, m in (("model", model), ("truth", truth)):
        if m is not None and not isinstance(m, ShardingCostModel):
            raise TypeError(f"{arg} must be a ShardingCostModel (analytic, measured or "
                            f"learned), got {type(m).__name__}")
    if not model.differentiable:
        raise ValueError(f"model must be differentiable to be SurCo's objective; "
                         f"{type(model).__name__} is not: pass it as truth= and a "
                         "differentiable model (analytic or learned) as model=")
    judge = model if truth is None else truth
    feature_model = model if isinstance(model, AnalyticCostModel) else DEFAULT_COST_MODEL
    if smooth:
        def objective(x, task):
            return model.smooth_plan_cost(x, task, temperature)
    else:
        objective = model.plan_cost
    return Problem(
        name="sharding" if isinstance(model, AnalyticCostModel) else f"sharding-{model.name}",
        space=spec_for,
        objective=objective,
        features=lambda task: plan_features(task, feature_model),
        evaluate=judge.evaluate,
    )


#: SurCo's settings on sharding, chosen on DLRM-50 tasks among the estimators of
#: `surco.estimators` (the study is in the module docstring of `settings`): the "negative
#: identity" backward pass (Sahoo et al., ICLR 2023) with plain SGD, which accumulates the
#: objective's gradient into the surrogate cost, the smooth maximum at 10 % of the mean
#: device load, and `greedy_init` margins ``0.1 · a_t^2``, 300 steps. The learning rate and
#: the margin scale were selected on train-pool tasks by ``python -m bench.sharding_tune``
#: (8 DLRM-50 tasks: lr 0.05 and scale 0.1 at 0.945 of the start plan's cost; the grid
#: lr ∈ {0.02, 0.05, 0.1} × scale ∈ {0.1, 0.3, 1} spans 0.945-0.965).
ZERO_DEFAULTS: dict = dict(estimator="neg_identity", steps=300, lr=0.05, temperature=0.1,
                           init_scale=0.1, init_power=2.0)


def greedy_init(task: ShardingTask, plan: np.ndarray | None = None, *,
                scale: float = ZERO_DEFAULTS["init_scale"],
                power: float = ZERO_DEFAULTS["init_power"],
                model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """SurCo's initial surrogate cost from a heuristic plan (default: `cost_greedy`).

    ``θ0[t, d] = -scale · a_t^power · plan[t, d]`` with ``a_t`` the table's standalone cost
    (ms): the solver's answer at θ0 is the plan itself, and a table leaves its device once
    the accumulated gradient difference exceeds a margin that grows faster than its cost, so
    the first moves are of small tables (fine adjustments) rather than of the largest ones.
    """
    x = cost_greedy(task, model=model) if plan is None else np.asarray(plan, np.float64)
    if x.shape != (task.n_tables, task.n_devices):
        raise ValueError(f"plan has shape {x.shape}, expected ({task.n_tables}, {task.n_devices})")
    a = standalone_costs(task, model).astype(np.float64)
    return -float(scale) * (a[:, None] ** float(power)) * x
