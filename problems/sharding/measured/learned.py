"""A cost model of sharding plans learned from profiler measurements (DreamShard), as a
`cost_model.ShardingCostModel`: `LearnedCostModel`.

After DreamShard (Zha et al., "DreamShard: Generalizable Embedding Table Placement for
Recommender Systems", NeurIPS 2022, §4.1) and SurCo's use of it (Ferber et al., ICML 2023,
§5.1): a shared MLP maps each table's inputs (`table_inputs`: DreamShard's features plus
three raw workload columns) to a representation and to one additive cost per head; a
device's representation and additive costs are sums over the tables placed on it (``x^T h``
for a plan x, so the model is differentiable in x); three heads — forward time, backward
time, all-to-all send time — each multiply the device's additive cost by a correction
learned from its summed representation (see `LearnedCostNet`). The plan's cost combines
them as the measured cost does (`measure.profile_plan`), with the one communication model
(`comm.alltoall_ms` on the predicted send times)::

    compute_d = fwd_d + bwd_d
    comm_d    = max(send_d, sum_{e != d} send_e / (D - 1)) + 2 latency    (receive side)
    cost      = max_d compute_d + max_d comm_d

Training (`training.train_cost_model`) fits it to a `dataset.ProfiledDataset`. The model
plugs into SurCo through the one problem constructor:
``sharding_problem(model)`` (x of shape (T, D); inputs from `task_inputs`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ..comm import alltoall_ms
from ..cost_model import ShardingCostModel
from ..tables import FEATURE_NAMES

__all__ = ["HEADS", "INPUT_NAMES", "LearnedCostModel", "LearnedCostNet", "table_inputs",
           "task_inputs"]

N_FEATURES = len(FEATURE_NAMES)
HEADS = ("fwd", "bwd", "send")
MODEL_FORMAT = "surco-neural-cost-model"
INPUT_NAMES = FEATURE_NAMES + ("lookup_kfloats", "log_lookup", "size_gb")


def table_inputs(features: jax.Array, dim: jax.Array, pooling: jax.Array,
                 rows: jax.Array) -> jax.Array:
    """The network's per-table inputs: the scaled DreamShard features
    (``scale_features(table_features)``, columns `FEATURE_NAMES`) and three raw workload
    columns a sum over tables makes meaningful: ``dim * pooling / 1e3`` (floats gathered
    per sample, thousands), ``log10(dim * pooling) / 4`` and ``rows * dim * 4 / 1e9``
    (weights, GB). Pure JAX; ``(T, len(INPUT_NAMES))``."""
    features = jnp.asarray(features, jnp.float32)
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise ValueError(f"features must have shape (T, {N_FEATURES}), got {features.shape}")
    dim = jnp.asarray(dim, jnp.float32)
    pooling = jnp.asarray(pooling, jnp.float32)
    rows = jnp.asarray(rows, jnp.float32)
    work = dim * pooling
    extra = jnp.stack([work / 1e3, jnp.log10(jnp.maximum(work, 1e-3)) / 4.0,
                       rows * dim * 4.0 / 1e9], axis=-1)
    return jnp.concatenate([features, extra], axis=-1)


class LearnedCostNet(nn.Module):
    """DreamShard's cost network: per-table MLP, sum per device, one head per cost (not to
    be confused with `surco.prior.CostNet`, SurCo-prior's network of surrogate costs).

    For each table t the table network gives a representation ``h_t`` and, per head k, an
    additive cost ``a_t^k > 0``; for a device d (plan x) the head k predicts, in log-ms
    (up to the head's scale)::

        log cost_d^k = log(sum_t x_td a_t^k) + c^k(sum_t x_td h_t)

    i.e. the additive cost of the device's tables times ``exp(c^k)``, a correction learned
    from the summed representation (interactions between co-located tables: shared caches,
    memory bandwidth). DreamShard's heads see only the sum; the additive factor keeps the
    model exact for costs that do add up (the modelled communication does) and lets it
    extrapolate to device loads larger than those measured.

    Attributes:
      hidden: width of every layer.
      table_layers: hidden layers of the table network.
      head_layers: hidden layers of each correction head.
    """

    hidden: int = 64
    table_layers: int = 2
    head_layers: int = 2

    @nn.compact
    def __call__(self, inputs: jax.Array, x: jax.Array) -> dict[str, jax.Array]:
        """``inputs (T, F)`` standardised table inputs, ``x (T, D)`` placement (0/1 or
        relaxed) -> per head ``(additive (D,), correction (D,))``: the device's summed
        additive cost (unscaled) and the log correction."""
        h = inputs
        for i in range(self.table_layers):
            h = nn.relu(nn.Dense(self.hidden, name=f"table_{i}")(h))
        add = jax.nn.softplus(nn.Dense(len(HEADS), name="table_cost")(h))   # (T, heads)
        rep = nn.Dense(self.hidden, name="table_out")(h)
        dev = x.T @ rep                                     # (D, hidden): sum per device
        dev_add = x.T @ add                                 # (D, heads)
        out = {}
        for j, head in enumerate(HEADS):
            z = dev
            for i in range(self.head_layers):
                z = nn.relu(nn.Dense(self.hidden, name=f"{head}_{i}")(z))
            out[head] = (dev_add[:, j], nn.Dense(1, name=f"{head}_out")(z)[:, 0])
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class LearnedCostModel(ShardingCostModel):
    """A trained `LearnedCostNet` with its normalisation and the setting it was measured
    in: a differentiable `cost_model.ShardingCostModel` (``stage_costs``, ``plan_cost``,
    ``smooth_plan_cost``, ``evaluate`` take a `tasks.ShardingTask`).

    Attributes:
      params: the network's parameters.
      net: the `LearnedCostNet` (its sizes).
      in_mean, in_std: ``(F,)`` standardisation of `table_inputs`.
      scale: per head, milliseconds of one unit of the network's additive cost.
      meta: the dataset's meta (device kind, batch size, dtype, num_devices, link ...).
      smooth_temperature: default temperature of `smooth_plan_cost`.
    """

    name: ClassVar[str] = "learned"
    differentiable: ClassVar[bool] = True

    params: Any
    net: LearnedCostNet
    in_mean: np.ndarray
    in_std: np.ndarray
    scale: dict
    meta: dict
    smooth_temperature: float = 0.01

    @property
    def num_devices(self) -> int:
        return int(self.meta["num_devices"])

    def _heads_ms(self, inputs: jax.Array, x: jax.Array) -> dict[str, jax.Array]:
        f = (jnp.asarray(inputs, jnp.float32) - self.in_mean) / self.in_std
        z = self.net.apply(self.params, f, x)
        return {k: self.scale[k] * add * jnp.exp(corr) for k, (add, corr) in z.items()}

    def _heads_and_alltoall(self, x: jax.Array, inputs: jax.Array
                            ) -> tuple[dict[str, jax.Array], jax.Array]:
        x = jnp.asarray(x)
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.in_mean.shape[0]:
            raise ValueError(f"inputs must have shape (T, {self.in_mean.shape[0]}), got "
                             f"{inputs.shape}")
        if x.ndim != 2 or x.shape[0] != inputs.shape[0]:
            raise ValueError(f"x must have shape ({inputs.shape[0]}, D), got {x.shape}")
        D = x.shape[1]
        if D != self.num_devices:
            raise ValueError(f"the model's communication head was trained for "
                             f"{self.num_devices} devices, the plan has {D}")
        c = self._heads_ms(inputs, x.astype(jnp.float32))
        sides = alltoall_ms(c["send"], latency_us=float(self.meta.get("link_latency_us", 0.0)))
        c["compute"] = c["fwd"] + c["bwd"]
        c["comm"] = jnp.max(sides, axis=0)
        return c, sides

    def head_costs(self, x: jax.Array, inputs: jax.Array) -> dict[str, jax.Array]:
        """Predicted per-device costs in ms of a plan ``x (T, D)`` (0/1 or relaxed) for
        tables with inputs ``inputs (T, F)`` (`table_inputs`, `task_inputs`): ``fwd``,
        ``bwd``, ``send``, ``compute`` (fwd + bwd) and ``comm`` (all-to-all time of each
        device: the larger of its send and its receive side, plus latency). Pure JAX: jit,
        grad in x.

        Raises:
          ValueError: ``inputs`` has the wrong number of columns, or x has another number
            of devices than the model's communication head was trained for.
        """
        return self._heads_and_alltoall(x, inputs)[0]

    def stage_costs(self, x: jax.Array, task) -> tuple[jax.Array, jax.Array]:
        """Predicted ``compute (D,)`` and ``comm (2, D)`` (send and receive side of the
        all-to-all, `comm.alltoall_ms` on the send head) in ms of a plan ``x (T, D)`` of
        ``task`` (a `tasks.ShardingTask`). Pure JAX.

        Raises:
          ValueError: as `head_costs`.
        """
        c, sides = self._heads_and_alltoall(x, task_inputs(task))
        return c["compute"], sides

    def load_scale(self, task) -> jax.Array:
        """The predicted compute of all of ``task``'s tables on one device, over D: the mean
        device load of a balanced plan (a constant of the task)."""
        inputs = task_inputs(task)
        whole = self._heads_ms(inputs, jnp.ones((jnp.shape(inputs)[0], 1), jnp.float32))
        return (whole["fwd"][0] + whole["bwd"][0]) / self.num_devices

    def predict_subsets(self, inputs: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Per-head predictions in ms for ``S`` single-device table sets: ``inputs (S, K, F)``
        with ``mask (S, K)`` marking real tables."""
        f = (np.asarray(inputs, np.float32) - self.in_mean) / self.in_std
        out = _subset_fn(self.net)(self.params, jnp.asarray(f),
                                   jnp.asarray(mask, jnp.float32))
        return {k: self.scale[k] * np.asarray(add) * np.exp(np.asarray(corr))
                for k, (add, corr) in out.items()}

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """One ``.npz``: the parameters (flax msgpack) and the normalisation / meta (JSON),
        written atomically; ``.npz`` is appended to a path that does not end in it, and an
        existing file is replaced."""
        from surco.atomic import atomic_open
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        net = {"hidden": self.net.hidden, "table_layers": self.net.table_layers,
               "head_layers": self.net.head_layers}
        info = {"format": MODEL_FORMAT, "net": net, "in_mean": self.in_mean.tolist(),
                "in_std": self.in_std.tolist(), "scale": self.scale, "meta": self.meta,
                "smooth_temperature": self.smooth_temperature}
        with atomic_open(path) as fh:
            np.savez_compressed(
                fh, params=np.frombuffer(flax.serialization.to_bytes(self.params), np.uint8),
                info=np.frombuffer(json.dumps(info).encode(), np.uint8))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LearnedCostModel":
        """Read a model written by `save`.

        Raises:
          ValueError: the file is not a saved learned cost model.
        """
        path = Path(path)
        if path.suffix != ".npz":     # the name `save` wrote
            path = path.with_name(path.name + ".npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(bytes(z["info"]).decode())
                raw = bytes(z["params"])
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"{path}: not a saved learned cost model ({e})") from e
        if info.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a {MODEL_FORMAT} file")
        net = LearnedCostNet(**info["net"])
        template = net.init(jax.random.key(0), jnp.zeros((1, len(info["in_mean"]))),
                            jnp.ones((1, 1)))
        params = flax.serialization.from_bytes(template, raw)
        return cls(params=params, net=net, in_mean=np.asarray(info["in_mean"], np.float32),
                   in_std=np.asarray(info["in_std"], np.float32), scale=info["scale"],
                   meta=info["meta"], smooth_temperature=float(info.get(
                       "smooth_temperature", cls.smooth_temperature)))


_SUBSET_FNS: dict = {}


def _subset_fn(net: LearnedCostNet) -> Callable:
    """jit: (params, inputs (S,K,F), mask (S,K)) -> per head ((S,) additive, (S,) corr)."""
    key = (net.hidden, net.table_layers, net.head_layers)
    if key not in _SUBSET_FNS:
        def fn(params, inputs, mask):
            z = jax.vmap(lambda f, m: net.apply(params, f, m[:, None]))(inputs, mask)
            return {k: (a[:, 0], c[:, 0]) for k, (a, c) in z.items()}
        _SUBSET_FNS[key] = jax.jit(fn)
    return _SUBSET_FNS[key]


def task_inputs(task) -> jax.Array:
    """`table_inputs` of a `tasks.ShardingTask`'s tables: its DreamShard features (the first
    ``len(FEATURE_NAMES)`` columns of ``task.features``) and its dim, pooling and rows."""
    return table_inputs(jnp.asarray(task.features)[:, :N_FEATURES], task.dim, task.pooling,
                        task.rows)


