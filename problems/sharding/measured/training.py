"""Training the learned cost model on measured subsets, and its held-out evaluation
(DreamShard, Zha et al., NeurIPS 2022, §4.1).

The training loss is the squared error of log-milliseconds (relative errors), with a
penalty on the corrections; optax (AdamW, cosine decay) on a `dataset.ProfiledDataset`.
`train_cost_model` reports the held-out mean absolute percentage error and Kendall's tau
of predicted vs measured device costs, next to the error of predicting the training mean.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats
from tqdm.auto import tqdm

from surco.checks import check_int, check_number
from surco.config import Config, settings_of
from surco.estimators.base import check_positive

from .dataset import ProfiledDataset
from .learned import HEADS, LearnedCostModel, LearnedCostNet, table_inputs

__all__ = ["CostModelTrainConfig", "TrainReport", "dataset_inputs", "kendall_tau", "mape", "split_by_table",
           "split_indices", "train_cost_model"]


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


def split_by_table(data: ProfiledDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` subset indices of a dataset built with held-out tables
    (`dataset.build_dataset(held_out_tables=...)`): test subsets hold only held-out
    tables, training subsets none; a model evaluated on the test subsets has never seen
    their tables.

    Raises:
      ValueError: the dataset has no held-out tables, or a part is empty.
    """
    held = data.meta.get("held_out_tables")
    if not held:
        raise ValueError("split_by_table: the dataset was built without held_out_tables")
    is_held = np.isin(np.where(data.mask, data.subsets, held[0]), held)
    test = np.flatnonzero(is_held.all(axis=1))
    train = np.flatnonzero(~(is_held & data.mask).any(axis=1))
    if test.size == 0 or train.size < 2:
        raise ValueError(f"split_by_table: {train.size} training and {test.size} test "
                         "subsets; measure more subsets")
    return train, test


def dataset_inputs(data: ProfiledDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(S, K, F)`` `table_inputs` of each subset's tables (zeros at padding) and the
    ``(S, K)`` mask."""
    pool_in = np.asarray(table_inputs(data.features, data.dim, data.pooling, data.rows))
    m = data.mask
    return pool_in[np.where(m, data.subsets, 0)] * m[..., None], m


@dataclasses.dataclass(frozen=True)
class CostModelTrainConfig(Config):
    """How `train_cost_model` builds and trains the network: checked once, here;
    ``train_cost_model(data, config)`` and ``train_cost_model(data, epochs=50)`` are the
    same call (as `surco.zero` and `surco.ZeroConfig`).

    Attributes:
      hidden: width of every layer of the `LearnedCostNet` (an integer >= 1).
      table_layers, head_layers: its hidden layers (integers >= 0).
      epochs, batch_size: integers >= 1 (minibatches of ``batch_size`` subsets).
      lr: peak learning rate (> 0) of AdamW, cosine-decayed to 2 % of it.
      weight_decay: AdamW's weight decay (>= 0).
      correction_penalty: weight (>= 0) of the mean squared log correction of the heads.
      test_fraction, val_fraction: the random split, ``0 < test_fraction``,
        ``0 <= val_fraction``, their sum < 1 (with ``train_index``/``test_index`` given,
        only ``val_fraction`` of the train part is used).
      seed: seed of the split, the initialisation and the minibatches (an integer >= 0).
      progress: a tqdm bar over epochs.

    Raises:
      ValueError: naming the field and the bad value.
    """

    hidden: int = 64
    table_layers: int = 2
    head_layers: int = 2
    epochs: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    correction_penalty: float = 1.0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    progress: bool = False
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "train_cost_model"

    def __post_init__(self) -> None:
        who, put = self._who, lambda k, v: object.__setattr__(self, k, v)
        for name, low in (("hidden", 1), ("table_layers", 0), ("head_layers", 0),
                          ("epochs", 1), ("batch_size", 1), ("seed", 0)):
            put(name, check_int(name, getattr(self, name), low, who=who))
        put("lr", check_number("lr", self.lr, who=who))
        for name in ("weight_decay", "correction_penalty", "val_fraction"):
            check_positive(who, name, getattr(self, name), strict=False)
            put(name, float(getattr(self, name)))
        put("test_fraction", check_number("test_fraction", self.test_fraction, who=who))
        if not (self.test_fraction < 1 and self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise ValueError(f"{who}: need test_fraction + val_fraction < 1, got "
                             f"test_fraction={self.test_fraction}, "
                             f"val_fraction={self.val_fraction}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"{who}: progress must be True or False, got {self.progress!r}")


def train_cost_model(data: ProfiledDataset, config: CostModelTrainConfig | None = None, /, *,
                     train_index: np.ndarray | None = None,
                     test_index: np.ndarray | None = None,
                     **settings: Any) -> tuple[LearnedCostModel, TrainReport]:
    """Fit a `LearnedCostNet` to measured subsets and evaluate it on held-out ones.

    The subsets are split at random into train / validation / test (or ``train_index`` /
    ``test_index`` are used, validation then taken from the train part). The loss is the
    mean over the three heads of the squared error of log-milliseconds (a relative error),
    plus ``correction_penalty`` times the mean squared log correction of the heads (so the
    additive part explains what it can and corrections model only true interactions);
    AdamW with a cosine-decayed learning rate, minibatches of ``batch_size`` subsets. The
    parameters of the epoch with the lowest validation MAPE of compute are kept (checked
    every 10 epochs; the last epoch when ``val_fraction`` is 0).

    Args:
      data: the measured subsets.
      config: a `CostModelTrainConfig` (network sizes, epochs, optimiser, split, seed), or
        None.
      train_index, test_index: subsets to train on and to hold out (indices into ``data``;
        both, or neither for the random split).
      **settings: fields of `CostModelTrainConfig` as keywords (``epochs=50``), replacing
        ``config``'s.

    Returns:
      ``(model, report)``; `TrainReport` holds the held-out MAPE and Kendall's tau.

    Raises:
      TypeError: an unknown keyword (with the closest valid name).
      ValueError: a dataset too small for the split, or a bad setting (naming it).
    """
    cfg = settings_of(config, settings, CostModelTrainConfig, "train_cost_model")
    hidden, table_layers, head_layers = cfg.hidden, cfg.table_layers, cfg.head_layers
    epochs, batch_size, lr, seed = cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed
    test_fraction, val_fraction = cfg.test_fraction, cfg.val_fraction
    correction_penalty, progress = cfg.correction_penalty, cfg.progress
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
    net = LearnedCostNet(hidden=hidden, table_layers=table_layers, head_layers=head_layers)
    X = jnp.asarray((inputs - imean) / istd * mask[..., None], jnp.float32)
    M = jnp.asarray(mask, jnp.float32)
    Y = {k: jnp.asarray(np.log(v / per_table[k]), jnp.float32) for k, v in targets.items()}
    params = net.init(jax.random.key(seed), X[0], M[0][:, None])
    bs = min(int(batch_size), int(tr.size))
    steps_per_epoch = max(1, int(np.ceil(tr.size / bs)))
    sched = optax.cosine_decay_schedule(lr, epochs * steps_per_epoch, alpha=0.02)
    opt = optax.adamw(sched, weight_decay=cfg.weight_decay)
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

    model = LearnedCostModel(params, net, imean, istd, per_table, dict(data.meta))
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
