"""A neural cost model of sharding plans learned from profiler measurements (DreamShard).

After DreamShard (Zha et al., "DreamShard: Generalizable Embedding Table Placement for
Recommender Systems", NeurIPS 2022, §4.1) and SurCo's use of it (Ferber et al., ICML 2023,
§5.1): a shared MLP maps each table's inputs (`table_inputs`: DreamShard's features plus
three raw workload columns) to a representation and to one additive cost per head; a
device's representation and additive costs are sums over the tables placed on it (``x^T h``
for a plan x, so the model is differentiable in x); three heads — forward time, backward
time, all-to-all send time — each multiply the device's additive cost by a correction
learned from its summed representation (see `CostNet`). The plan's cost combines them as
the measured cost does (`profiler.profile_plan`):

    compute_d = fwd_d + bwd_d
    comm_d    = max(send_d, sum_{e != d} send_e / (D - 1)) + 2 latency    (receive side)
    cost      = max_d compute_d + max_d comm_d

The training loss is the squared error of log-milliseconds (relative errors), with a
penalty on the corrections; optax (AdamW, cosine decay) on a `dataset.ProfiledDataset`.
`train_cost_model` reports the held-out mean absolute percentage error and Kendall's tau
of predicted vs measured device costs, next to the error of predicting the training mean.

The model plugs into SurCo as the objective of a `surco.Problem` (`neural_problem`): x of
shape (T, D), the task's inputs from `task_inputs`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats
from tqdm.auto import tqdm

from surco.problem import Problem

from .dataset import ProfiledDataset
from .tables import FEATURE_NAMES, TablePool

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


class CostNet(nn.Module):
    """DreamShard's cost network: per-table MLP, sum per device, one head per cost.

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
class NeuralCostModel:
    """A trained `CostNet` with its normalisation and the setting it was measured in.

    Attributes:
      params: the network's parameters.
      net: the `CostNet` (its sizes).
      in_mean, in_std: ``(F,)`` standardisation of `table_inputs`.
      scale: per head, milliseconds of one unit of the network's additive cost.
      meta: the dataset's meta (device kind, batch size, dtype, num_devices, link ...).
    """

    params: Any
    net: CostNet
    in_mean: np.ndarray
    in_std: np.ndarray
    scale: dict
    meta: dict

    @property
    def num_devices(self) -> int:
        return int(self.meta["num_devices"])

    def _heads_ms(self, inputs: jax.Array, x: jax.Array) -> dict[str, jax.Array]:
        f = (jnp.asarray(inputs, jnp.float32) - self.in_mean) / self.in_std
        z = self.net.apply(self.params, f, x)
        return {k: self.scale[k] * add * jnp.exp(corr) for k, (add, corr) in z.items()}

    def device_costs(self, x: jax.Array, inputs: jax.Array) -> dict[str, jax.Array]:
        """Predicted per-device costs in ms of a plan ``x (T, D)`` (0/1 or relaxed) for
        tables with inputs ``inputs (T, F)`` (`table_inputs`, `task_inputs`): ``fwd``,
        ``bwd``, ``send``, ``compute`` (fwd + bwd) and ``comm`` (all-to-all time of each
        device: the larger of its send and its receive side, plus latency). Pure JAX: jit,
        grad in x.

        Raises:
          ValueError: ``inputs`` has the wrong number of columns, or x has another number
            of devices than the model's communication head was trained for.
        """
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
        recv = (jnp.sum(c["send"]) - c["send"]) / (D - 1)
        lat = 2.0 * float(self.meta.get("link_latency_us", 0.0)) * 1e-3
        c["compute"] = c["fwd"] + c["bwd"]
        c["comm"] = jnp.maximum(c["send"], recv) + lat
        return c

    def plan_cost(self, x: jax.Array, inputs: jax.Array) -> jax.Array:
        """Predicted plan cost in ms: ``max_d compute_d + max_d comm_d`` (as measured plans
        are costed, `profiler.profile_plan`)."""
        c = self.device_costs(x, inputs)
        return jnp.max(c["compute"]) + jnp.max(c["comm"])

    def smooth_plan_cost(self, x: jax.Array, inputs: jax.Array,
                         temperature: float = 0.01) -> jax.Array:
        """`plan_cost` with both maxima replaced by ``τ logsumexp(·/τ)``; it upper-bounds
        `plan_cost` by at most ``2 τ log D``. The objective SurCo optimises.

        ``τ`` = ``temperature`` × the predicted compute of all the tables on one device,
        divided by D (the mean device load of a balanced plan): a constant of the task, so
        the gradient in x is the exact gradient of this function.
        """
        c = self.device_costs(x, inputs)
        D = c["compute"].shape[0]
        whole = self._heads_ms(inputs, jnp.ones((jnp.shape(inputs)[0], 1), jnp.float32))
        tau = temperature * (whole["fwd"][0] + whole["bwd"][0]) / D
        return tau * (jax.nn.logsumexp(c["compute"] / tau) + jax.nn.logsumexp(c["comm"] / tau))

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
        """One ``.npz``: the parameters (flax msgpack) and the normalisation / meta (JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        net = {"hidden": self.net.hidden, "table_layers": self.net.table_layers,
               "head_layers": self.net.head_layers}
        info = {"format": MODEL_FORMAT, "net": net, "in_mean": self.in_mean.tolist(),
                "in_std": self.in_std.tolist(), "scale": self.scale, "meta": self.meta}
        np.savez_compressed(
            path, params=np.frombuffer(flax.serialization.to_bytes(self.params), np.uint8),
            info=np.frombuffer(json.dumps(info).encode(), np.uint8))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NeuralCostModel":
        """Read a model written by `save`.

        Raises:
          ValueError: the file is not a saved neural cost model.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                info = json.loads(bytes(z["info"]).decode())
                raw = bytes(z["params"])
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"{path}: not a saved neural cost model ({e})") from e
        if info.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a {MODEL_FORMAT} file")
        net = CostNet(**info["net"])
        template = net.init(jax.random.key(0), jnp.zeros((1, len(info["in_mean"]))),
                            jnp.ones((1, 1)))
        params = flax.serialization.from_bytes(template, raw)
        return cls(params=params, net=net, in_mean=np.asarray(info["in_mean"], np.float32),
                   in_std=np.asarray(info["in_std"], np.float32), scale=info["scale"],
                   meta=info["meta"])


_SUBSET_FNS: dict = {}


def _subset_fn(net: CostNet) -> Callable:
    """jit: (params, inputs (S,K,F), mask (S,K)) -> per head ((S,) additive, (S,) corr)."""
    key = (net.hidden, net.table_layers, net.head_layers)
    if key not in _SUBSET_FNS:
        def fn(params, inputs, mask):
            z = jax.vmap(lambda f, m: net.apply(params, f, m[:, None]))(inputs, mask)
            return {k: (a[:, 0], c[:, 0]) for k, (a, c) in z.items()}
        _SUBSET_FNS[key] = jax.jit(fn)
    return _SUBSET_FNS[key]


# ---------------------------------------------------------------------------------------
# Training and held-out evaluation
# ---------------------------------------------------------------------------------------
def mape(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute percentage error ``mean(|pred - true| / true)`` (a fraction)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or true.size == 0:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must be equal, non-empty")
    if np.any(true <= 0):
        raise ValueError("MAPE needs positive true values")
    return float(np.mean(np.abs(pred - true) / true))


def kendall_tau(pred: np.ndarray, true: np.ndarray) -> float:
    """Kendall's tau-b between predicted and true values (scipy)."""
    return float(scipy.stats.kendalltau(np.asarray(pred), np.asarray(true)).statistic)


@dataclasses.dataclass(frozen=True)
class TrainReport:
    """How well a trained model predicts held-out measured subsets.

    Attributes:
      mape: held-out MAPE of the measured device compute (fwd + bwd), a fraction.
      tau: Kendall's tau between predicted and measured held-out device compute.
      mape_total: held-out MAPE of compute + modelled send time (the device cost).
      tau_total: Kendall's tau of the same.
      mape_heads: held-out MAPE per head (fwd, bwd, send).
      mean_baseline_mape: held-out MAPE of predicting the training mean compute for all.
      median_baseline_mape: the same with the training median (the MAPE-optimal constant).
      n_train, n_val, n_test: subsets used; seconds: training time; epochs: run.
      test_index: the held-out subsets (indices into the dataset).
      test_pred_ms, test_true_ms: held-out predicted and measured compute.
    """

    mape: float
    tau: float
    mape_total: float
    tau_total: float
    mape_heads: dict
    mean_baseline_mape: float
    median_baseline_mape: float
    n_train: int
    n_val: int
    n_test: int
    seconds: float
    epochs: int
    test_index: np.ndarray
    test_pred_ms: np.ndarray
    test_true_ms: np.ndarray

    def summary(self) -> dict[str, Any]:
        """JSON-able headline numbers."""
        return {"mape": self.mape, "kendall_tau": self.tau, "mape_total": self.mape_total,
                "kendall_tau_total": self.tau_total, "mape_heads": self.mape_heads,
                "mean_baseline_mape": self.mean_baseline_mape,
                "median_baseline_mape": self.median_baseline_mape, "n_train": self.n_train,
                "n_val": self.n_val, "n_test": self.n_test, "seconds": self.seconds,
                "epochs": self.epochs}


def split_indices(n: int, test_fraction: float, val_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random disjoint (train, val, test) index arrays of ``range(n)``."""
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1
            and test_fraction + val_fraction < 1):
        raise ValueError(f"need 0 < test_fraction, 0 <= val_fraction, sum < 1; got "
                         f"{test_fraction}, {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    n_val = int(round(val_fraction * n))
    if n - n_test - n_val < 2:
        raise ValueError(f"{n} subsets are too few for this split")
    return (np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]),
            np.sort(perm[:n_test]))


def dataset_inputs(data: ProfiledDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(S, K, F)`` `table_inputs` of each subset's tables (zeros at padding) and the
    ``(S, K)`` mask."""
    pool_in = np.asarray(table_inputs(data.features, data.dim, data.pooling, data.rows))
    m = data.mask
    return pool_in[np.where(m, data.subsets, 0)] * m[..., None], m


def train_cost_model(data: ProfiledDataset, *, hidden: int = 64, table_layers: int = 2,
                     head_layers: int = 2, epochs: int = 200, batch_size: int = 32,
                     lr: float = 2e-3, weight_decay: float = 1e-2,
                     correction_penalty: float = 1.0,
                     test_fraction: float = 0.2, val_fraction: float = 0.1,
                     train_index: np.ndarray | None = None,
                     test_index: np.ndarray | None = None, seed: int = 0,
                     progress: bool = False) -> tuple[NeuralCostModel, TrainReport]:
    """Fit a `CostNet` to measured subsets and evaluate it on held-out ones.

    The subsets are split at random into train / validation / test (or ``train_index`` /
    ``test_index`` are used, validation then taken from the train part). The loss is the
    mean over the three heads of the squared error of log-milliseconds (a relative error),
    plus ``correction_penalty`` times the mean squared log correction of the heads (so the
    additive part explains what it can and corrections model only true interactions);
    AdamW with a cosine-decayed learning rate, minibatches of ``batch_size`` subsets. The
    parameters of the epoch with the lowest validation MAPE of compute are kept (checked
    every 10 epochs; the last epoch when ``val_fraction`` is 0).

    Returns:
      ``(model, report)``; `TrainReport` holds the held-out MAPE and Kendall's tau.

    Raises:
      ValueError: a dataset too small for the split, or bad hyperparameters.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, "
                         f"{batch_size}, {lr}")
    t0 = time.perf_counter()
    n = len(data)
    if train_index is None or test_index is None:
        tr, va, te = split_indices(n, test_fraction, val_fraction, seed)
    else:
        te = np.asarray(test_index)
        rest = np.random.default_rng(seed).permutation(np.asarray(train_index))
        n_val = int(round(val_fraction * rest.size))
        va, tr = np.sort(rest[:n_val]), np.sort(rest[n_val:])
        if np.intersect1d(te, rest).size:
            raise ValueError("train_index and test_index overlap")
    inputs, mask = dataset_inputs(data)
    targets = {"fwd": data.fwd_ms, "bwd": data.bwd_ms, "send": data.send_ms}
    for k, v in targets.items():
        if np.any(v <= 0):
            raise ValueError(f"dataset has non-positive {k} times")
    used = inputs[tr][mask[tr]]                    # the tables of the training subsets
    imean = used.mean(0).astype(np.float32)
    istd = (used.std(0) + 1e-6).astype(np.float32)
    # one unit of additive cost = the training median of a head per table
    per_table = {k: float(np.median(v[tr] / mask[tr].sum(1))) for k, v in targets.items()}
    net = CostNet(hidden=hidden, table_layers=table_layers, head_layers=head_layers)
    X = jnp.asarray((inputs - imean) / istd * mask[..., None], jnp.float32)
    M = jnp.asarray(mask, jnp.float32)
    Y = {k: jnp.asarray(np.log(v / per_table[k]), jnp.float32) for k, v in targets.items()}
    params = net.init(jax.random.key(seed), X[0], M[0][:, None])
    bs = min(int(batch_size), int(tr.size))
    steps_per_epoch = max(1, int(np.ceil(tr.size / bs)))
    sched = optax.cosine_decay_schedule(lr, epochs * steps_per_epoch, alpha=0.02)
    opt = optax.adamw(sched, weight_decay=weight_decay)
    state = opt.init(params)

    def loss_fn(p, idx):
        z = jax.vmap(lambda f, m: net.apply(p, f, m[:, None]))(X[idx], M[idx])
        err = [jnp.log(z[k][0][:, 0] + 1e-12) + z[k][1][:, 0] - Y[k][idx] for k in HEADS]
        fit = sum(jnp.mean(e * e) for e in err) / len(HEADS)
        # prefer additive explanations: a correction must earn its keep
        corr = sum(jnp.mean(z[k][1][:, 0] ** 2) for k in HEADS) / len(HEADS)
        return fit + correction_penalty * corr

    @jax.jit
    def epoch_fn(p, s, order):
        def body(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p, idx)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss
        (p, s), losses = jax.lax.scan(body, (p, s), order)
        return p, s, losses.mean()

    model = NeuralCostModel(params, net, imean, istd, per_table, dict(data.meta))
    compute = data.compute_ms

    def val_mape(p):
        pr = dataclasses.replace(model, params=p).predict_subsets(inputs[va], mask[va])
        return mape(pr["fwd"] + pr["bwd"], compute[va])

    rng = np.random.default_rng(seed + 1)
    best, best_params = np.inf, params
    bar = tqdm(range(epochs), desc="training cost model", disable=not progress)
    for ep in bar:
        # static shapes: wrap around to fill the last minibatch
        order = np.resize(rng.permutation(tr), steps_per_epoch * bs)
        params, state, loss = epoch_fn(params, state,
                                       jnp.asarray(order.reshape(steps_per_epoch, bs)))
        if va.size and (ep % 10 == 9 or ep == epochs - 1):
            v = val_mape(params)
            if v < best:
                best, best_params = v, params
            bar.set_postfix(loss=float(loss), val_mape=v)
    if not va.size:
        best_params = params
    model = dataclasses.replace(model, params=best_params)

    pr = model.predict_subsets(inputs[te], mask[te])
    pc = pr["fwd"] + pr["bwd"]
    tc = compute[te]
    total_p, total_t = pc + pr["send"], tc + data.send_ms[te]
    mean_c, med_c = float(compute[tr].mean()), float(np.median(compute[tr]))
    report = TrainReport(
        mape=mape(pc, tc), tau=kendall_tau(pc, tc), mape_total=mape(total_p, total_t),
        tau_total=kendall_tau(total_p, total_t),
        mape_heads={k: mape(pr[k], targets[k][te]) for k in HEADS},
        mean_baseline_mape=mape(np.full_like(tc, mean_c), tc),
        median_baseline_mape=mape(np.full_like(tc, med_c), tc),
        n_train=int(tr.size), n_val=int(va.size), n_test=int(te.size),
        seconds=time.perf_counter() - t0, epochs=int(epochs), test_index=te,
        test_pred_ms=pc, test_true_ms=tc)
    return model, report


# ---------------------------------------------------------------------------------------
# SurCo on the learned model
# ---------------------------------------------------------------------------------------
def task_inputs(task) -> jax.Array:
    """`table_inputs` of a `tasks.ShardingTask`'s tables: its DreamShard features (the first
    ``len(FEATURE_NAMES)`` columns of ``task.features``) and its dim, pooling and rows."""
    return table_inputs(jnp.asarray(task.features)[:, :N_FEATURES], task.dim, task.pooling,
                        task.rows)


def task_pool(task) -> TablePool:
    """The tables of a `tasks.ShardingTask` as a `TablePool` (for the profiler)."""
    return TablePool(rows=np.rint(np.asarray(task.rows)).astype(np.int64),
                     dim=np.rint(np.asarray(task.dim)).astype(np.int64),
                     pooling=np.asarray(task.pooling, np.float64),
                     skew=np.asarray(task.skew, np.float64))


def neural_problem(model: NeuralCostModel, *, smooth: bool = True,
                   temperature: float = 0.01,
                   evaluate: Callable[[np.ndarray, Any], float] | None = None) -> Problem:
    """Sharding as a `surco.Problem` whose objective is the learned cost model.

    Args:
      model: a trained `NeuralCostModel`.
      smooth: optimise `NeuralCostModel.smooth_plan_cost` (else the true maximum).
      temperature: of the smooth maximum.
      evaluate: the problem's true cost ``(x, task) -> ms``; default the model's
        `plan_cost` (cheap; SurCo selects its best plan by it). Pass `profiled_evaluate`
        to evaluate on the profiler instead.

    Returns:
      ``Problem("sharding-neural", space=tasks.spec_for, objective, features=task.features,
      evaluate)`` with x of shape (T, D).
    """
    from .tasks import spec_for

    def objective(x, task):
        f = task_inputs(task)
        if smooth:
            return model.smooth_plan_cost(x, f, temperature)
        return model.plan_cost(x, f)

    plan = jax.jit(lambda x, task: model.plan_cost(x, task_inputs(task)))

    def model_eval(x, task):
        return float(plan(jnp.asarray(x, jnp.float32), task))

    return Problem(name="sharding-neural", space=spec_for, objective=objective,
                   features=lambda task: task.features,
                   evaluate=evaluate if evaluate is not None else model_eval)


def profiled_evaluate(config=None, *, cache=None, device=None
                      ) -> Callable[[np.ndarray, Any], float]:
    """``(x, task) -> profiled plan cost in ms`` (`profiler.profile_plan` on the task's
    tables), for `neural_problem(evaluate=...)` or any comparison on measured reality."""
    from . import profiler as prof
    cfg = config if config is not None else prof.ProfilerConfig()

    def evaluate(x, task):
        return prof.profile_plan(task_pool(task), np.asarray(x), cfg, cache=cache,
                                 device=device).cost_ms
    return evaluate
