"""TorchRec's own cost estimate of a table-wise plan, as a `ShardingCostModel` in JAX.

TorchRec's planner (torchrec 1.8.0, ``EmbeddingShardingPlanner``) rates a plan with its
``NoopPerfModel``: the maximum over ranks of the sum of the ``Perf.total`` of the shards
on each rank. For table-wise sharding a table is one shard, and its estimate
(``EmbeddingPerfEstimator`` → ``TableWiseEvaluator`` with the default hardware config;
read from the torchrec 1.8.0 sources, written here from the formulas, not copied) does not
depend on the rank it lands on, for a topology whose devices are alike. With world size W
(= D), per-rank batch B, pooling factor p_t, embedding dim d_t, fp32 tables
(``a = 4`` bytes per element) and int64 indices (``BIGINT_DTYPE = 8``)::

    input  I_t = ceil(B p_t W · 8)                  indices of every rank's samples
    lookup L_t = B p_t W · max(d_t, 32) · a          rows gathered (min. 32-wide kernel)
    output O_t = B W · d_t · a                        pooled outputs written
    fwd_compute_t = (I_t + L_t + O_t) · penalty(d_t) / HBM_BW
    bwd_compute_t = BWD_COMPUTE_MULTIPLIER · fwd_compute_t              (2)
    fwd_comms_t = bwd_comms_t = O_t / COMM_BW      (the all-to-all of the pooled outputs)
    total_t = fwd_compute_t + bwd_compute_t + fwd_comms_t + bwd_comms_t   (prefetch: 0)

with TorchRec's block-usage penalty (1 for d >= 128, ``HALF_BLOCK_PENALTY = 1.15`` for
64 <= d < 128, ``QUARTER_BLOCK_PENALTY = 1.75`` below) and bandwidths in bytes per ms,
so totals are in ms. A plan x (T, D) then costs ``max_d Σ_t x[t, d] total_t``: each
table's all-to-all is charged to the rank that holds it, so TorchRec's rating is not
"max compute + max communication" like our models'. `TorchRecCostModel.stage_costs`
returns the whole per-rank sum as the compute stage and zero communication, which makes
`plan_cost` exactly TorchRec's rating; the test
``tests/sharding/test_torchrec_cost.py`` (marker ``torchrec``) checks ``total_t`` against
TorchRec's own ``EmbeddingPerfEstimator`` and the plan cost against its ``NoopPerfModel``.

It is pure JAX and differentiable (linear in x), so every method, SurCo included, can
optimise or be judged by it (``sharding_problem(TorchRecCostModel())``), without torch.
The hardware defaults are those of the analytic model (`cost.AnalyticCostModel`: HBM
2.0 TB/s, all-to-all 51.2 GB/s, 16384 samples per device), so that TorchRec and we cost
the same machine; pass other values to match another.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .cost import DEFAULT_COST_MODEL
from .cost_model import ShardingCostModel

__all__ = ["TorchRecCostModel", "DEFAULT_TORCHREC_MODEL", "table_perf"]


@dataclasses.dataclass(frozen=True)
class TorchRecCostModel(ShardingCostModel):
    """TorchRec's table-wise perf estimate (see the module docstring) as a cost model.

    Fields: ``batch_per_device`` (TorchRec's ``batch_size``, per rank), ``hbm_bw`` and
    ``comm_bw`` (bytes/s; TorchRec's ``hbm_mem_bw`` and intra/inter-host bandwidths are
    these / 1e3, in bytes/ms), ``bwd_multiplier`` (``BWD_COMPUTE_MULTIPLIER``), the block
    penalties, ``min_lookup_dim`` (32), ``index_bytes`` (8), ``element_bytes`` (4),
    ``smooth_temperature`` (as for every `ShardingCostModel`).

    Raises:
      ValueError: a field that is not a positive finite number (names it).
    """

    name: ClassVar[str] = "torchrec"
    differentiable: ClassVar[bool] = True

    batch_per_device: int = DEFAULT_COST_MODEL.batch_per_device
    hbm_bw: float = DEFAULT_COST_MODEL.hbm_bw
    comm_bw: float = DEFAULT_COST_MODEL.comm_bw
    bwd_multiplier: float = 2.0
    half_block_penalty: float = 1.15
    quarter_block_penalty: float = 1.75
    min_lookup_dim: int = 32
    index_bytes: int = 8
    element_bytes: int = 4
    smooth_temperature: float = 0.01

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"TorchRecCostModel.{f.name} must be a positive finite "
                                 f"number, got {v}")

    def stage_costs(self, x: jax.Array, task) -> tuple[jax.Array, jax.Array]:
        """``(per-rank Σ_t x[t, d] total_t (D,), zeros (2, D))`` in ms for a plan x (T, D),
        binary or relaxed; pure JAX (see the module docstring for why communication is
        inside the first term)."""
        x = jnp.asarray(x)
        dt = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        x = x.astype(dt)
        # the world size is the task's D (x may have other columns, e.g. one per table)
        per_table = table_perf(task, int(np.shape(task.capacity)[-1]), self, xp=jnp).astype(dt)
        return per_table @ x, jnp.zeros((2, x.shape[1]), dt)

    def load_scale(self, task) -> jax.Array:
        """The mean rank load of a perfectly balanced plan, ``Σ_t total_t / D`` (ms)."""
        D = int(np.shape(task.capacity)[-1])
        return jnp.sum(table_perf(task, D, self, xp=jnp)) / D


def table_perf(task, n_devices: int, model: TorchRecCostModel, *, xp=np,
               parts: bool = False):
    """TorchRec's table-wise ``Perf.total`` of each table of ``task`` on ``n_devices``
    ranks, (T,) ms (the formula of the module docstring); ``xp`` is numpy or jax.numpy.
    With ``parts=True``, a dict of ``fwd_compute``, ``bwd_compute``, ``fwd_comms``,
    ``bwd_comms`` and ``total`` instead."""
    W = float(n_devices)
    B = float(model.batch_per_device)
    dim = xp.asarray(task.dim, xp.float64 if xp is np else jnp.float32)
    pooling = xp.asarray(task.pooling, dim.dtype)
    a = float(model.element_bytes)
    hbm, comm = model.hbm_bw / 1e3, model.comm_bw / 1e3          # bytes per ms
    inputs = xp.ceil(B * pooling * W * model.index_bytes)
    lookup = B * pooling * W * xp.maximum(dim, float(model.min_lookup_dim)) * a
    output = B * W * dim * a
    penalty = xp.where(dim >= 128, 1.0, xp.where(dim >= 64, model.half_block_penalty,
                                                 model.quarter_block_penalty))
    fwd = (inputs + lookup + output) * penalty / hbm
    bwd = model.bwd_multiplier * fwd
    comms = output / comm
    total = fwd + bwd + 2.0 * comms
    if parts:
        return {"fwd_compute": fwd, "bwd_compute": bwd, "fwd_comms": comms,
                "bwd_comms": comms, "total": total}
    return total


DEFAULT_TORCHREC_MODEL = TorchRecCostModel()
