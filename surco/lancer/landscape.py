"""LANCER's landscape model M_w(c) ≈ true cost of g_Ω(c) (Zharmagambetov, Amos, Ferber, Huang,
Dilkina, Tian, "Landscape Surrogate: Learning Decision Losses for Mathematical Optimization
Under Partial Information", NeurIPS 2023, §3), and its fit by least squares.

The model takes the surrogate cost c, the solver's answer x = g_Ω(c) and a base value b,
and predicts the true cost as

    M_w(c) = b + s · r_w(c / s_c, x, z, [(b − b_0) / s, c·x / (s_c · n)]),   x = g_Ω(c)

where ``r_w`` is a Deep Sets network over the rows of x (Zaheer et al., NeurIPS 2017: a
shared row encoder of ``[c_r, x_r, z_r]``, mean-pooled, then a head that also sees the two
scalars), ``z`` the instance's per-row features (standardised within the instance; none
when the problem has no per-row features), and ``b_0, s, s_c`` the instance's scales
(`Scales`). The base b is one of two things, as `surco.lancer.LancerConfig.free_f` says:

* f is a free proxy of the metered cost (``free_f=True``: a cost model judged by a
  profiler): b = f(x), the problem's own differentiable objective, and b_0 = f at the
  start. The head's last layer starts at zero, so the untrained model *is* f∘g_Ω and
  LANCER starts as SurCo (Ferber et al., ICML 2023);
* otherwise (the default: f is, or ranks like, the true cost, so f(x) of an unevaluated x
  would be an uncounted evaluation): b = b_0, the start's true cost, a constant, and the
  first scalar is 0. M is then the paper's, a learned function of c and the instance
  (with x = g_Ω(c) and c·x, which c determines), flat before its first fit.

The paper's M sees c (and y) only; here it also sees x, whose dependence on c is
differentiated by SurCo's gradient estimator (the descent of `surco.lancer.zero`), while
``c·x`` (the value of the linear program, whose gradient in c is x) and c itself enter
smoothly. `Data` stores each point's base in its ``f`` (f(x), or b_0).

    net = LandscapeNet(hidden=(32,))
    params = init_params(net, x_shape, n_features, key)
    params, losses, alpha = fit(net, params, data, folds=4)   # least squares on (v − b) / s
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LandscapeNet", "Scales", "Data", "init_params", "predict", "fit", "shrink",
           "rows_of"]


class LandscapeNet(nn.Module):
    """r_w of the landscape model (see the module docstring).

    Attributes:
      hidden: widths of the row encoder's layers (GELU); the head has one hidden layer of
        the last width.
    """

    hidden: tuple[int, ...] = (32,)

    @nn.compact
    def __call__(self, c_rows: jax.Array, x_rows: jax.Array, z_rows: jax.Array,
                 scalars: jax.Array) -> jax.Array:
        h = jnp.concatenate([c_rows, x_rows, z_rows], axis=-1)
        for w in self.hidden:
            h = nn.gelu(nn.Dense(w)(h))
        head = jnp.concatenate([h.mean(axis=0), scalars])
        head = nn.gelu(nn.Dense(self.hidden[-1])(head))
        return nn.Dense(1, kernel_init=nn.initializers.zeros)(head)[0]


def rows_of(a: jax.Array, n: int) -> jax.Array:
    """``a`` shaped like x, as rows ``(n, -1)`` (a 1-D x is n rows of one entry)."""
    return a.reshape(n, -1)


@dataclasses.dataclass(frozen=True)
class Scales:
    """One instance's normalisation: ``f0`` (M's base b_0 at the start: f there when f is
    a free proxy, else the start's true cost), ``s`` (residual scale, 5 % of |f0|), ``sc``
    (cost scale, the start cost's standard deviation) and ``z`` (per-row features
    standardised within the instance, ``(n, F)``; ``(n, 0)`` without)."""

    f0: float
    s: float
    sc: float
    z: np.ndarray

    @classmethod
    def of(cls, problem, instance, c0: np.ndarray, f0: float) -> "Scales":
        """The scales of ``instance`` for the start cost ``c0`` (x's shape) whose solution
        has base value ``f0`` (its f, or its true cost: see the class docstring)."""
        c0 = np.asarray(c0, np.float64)
        n = c0.shape[0]
        z = np.zeros((n, 0), np.float32)
        if problem.features is not None:
            feats = np.asarray(problem.features_of(instance), np.float64)
            if feats.ndim == 2 and feats.shape[0] == n:
                std = feats.std(axis=0)
                z = ((feats - feats.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
                     ).astype(np.float32)
        sc = float(c0.std())
        return cls(float(f0), 0.05 * max(abs(float(f0)), 1e-9),
                   sc if sc > 1e-12 else max(float(np.abs(c0).max()), 1.0), z)

    def vector(self) -> np.ndarray:
        """``[f0, s, sc]`` as float32, the array form the jitted functions take."""
        return np.array([self.f0, self.s, self.sc], np.float32)


def _residual(net: LandscapeNet, params, c, x, fx, z, sv):
    """r_w at one point (c, x shaped like x; fx scalar; z (n, F); sv = [f0, s, sc])."""
    n = z.shape[0]
    f0, s, sc = sv[0], sv[1], sv[2]
    scal = jnp.stack([(fx - f0) / s, jnp.sum(c * x) / (sc * x.size)])
    return net.apply(params, rows_of(c, n) / sc, rows_of(x, n), z, scal)


def predict(net: LandscapeNet, params, c, x, fx, z, sv, alpha=1.0) -> jax.Array:
    """M_w at one point: ``fx + alpha · s · r_w(...)``, the predicted true cost of
    x = g_Ω(c) (differentiable in c, x and fx); ``fx`` is the base b (f(x), or the
    instance's constant b_0 = ``sv[0]``); ``alpha`` is `fit`'s shrinkage."""
    return fx + alpha * sv[1] * _residual(net, params, c, x, fx, z, sv)


def init_params(net: LandscapeNet, x_shape: tuple[int, ...], n_features: int,
                key: jax.Array) -> Any:
    """Initial parameters of ``net`` for x of ``x_shape`` and ``n_features`` per-row
    features (the untrained model predicts f exactly)."""
    n = x_shape[0]
    m = int(np.prod(x_shape)) // n
    return net.init(key, jnp.zeros((n, m)), jnp.zeros((n, m)), jnp.zeros((n, n_features)),
                    jnp.zeros(2))


def shrink(params, alpha: float) -> Any:
    """``params`` with the output layer scaled by ``alpha``: its r_w is ``alpha · r_w``
    (the output layer is linear), e.g. to hand a model with `fit`'s shrinkage applied to
    `surco.lancer.lancer_zero` as its ``landscape``."""
    inner = dict(params["params"])
    last = max((k for k in inner if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    inner[last] = jax.tree.map(lambda a: a * alpha, inner[last])
    return {**params, "params": inner}


@dataclasses.dataclass
class Data:
    """The points collected so far: costs ``c``, solutions ``x``, their base ``f`` (f(x),
    or the instance's constant b_0: see the module docstring), true cost ``v`` and their
    instance's ``z`` and scales ``sv`` (`Scales.vector`).

    ``arrays()`` pads them to the next power of two (a mask marks real points), so that
    the jitted fit compiles once per size class rather than once per point added."""

    c: list = dataclasses.field(default_factory=list)
    x: list = dataclasses.field(default_factory=list)
    f: list = dataclasses.field(default_factory=list)
    v: list = dataclasses.field(default_factory=list)
    z: list = dataclasses.field(default_factory=list)
    sv: list = dataclasses.field(default_factory=list)

    def add(self, c, x, f: float, v: float, scales: Scales) -> None:
        """One point: cost c, its solution x, its base f (f(x) or b_0), the true cost v,
        the instance's scales."""
        self.c.append(np.asarray(c, np.float32))
        self.x.append(np.asarray(x, np.float32))
        self.f.append(float(f))
        self.v.append(float(v))
        self.z.append(scales.z)
        self.sv.append(scales.vector())

    def __len__(self) -> int:
        return len(self.v)

    def arrays(self, last: int | None = None) -> tuple:
        """``(C, X, F, V, Z, SV, mask)`` of the ``last`` points added (None: all), padded
        to a power of two (at least 32)."""
        n = len(self) if last is None else min(len(self), int(last))
        if n == 0:
            raise ValueError("landscape Data: no points to fit")
        size = max(32, 1 << (n - 1).bit_length())
        pad = size - n

        def stack(items, dtype=np.float32):
            a = np.stack(items[len(items) - n:]).astype(dtype)
            return np.concatenate([a, np.repeat(a[:1], pad, axis=0)]) if pad else a
        mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        return (stack(self.c), stack(self.x), stack([np.float32(f) for f in self.f]),
                stack([np.float32(v) for v in self.v]), stack(self.z), stack(self.sv), mask)


@functools.lru_cache(maxsize=32)
def _fit_program(net: LandscapeNet, steps: int, lr: float, weight_decay: float):
    """jit: ``steps`` AdamW steps on the weighted squared error of the normalised residuals
    (weights: 1 on the points fitted, 0 elsewhere), and the residuals predicted for every
    point by the fitted parameters."""
    opt = optax.adamw(lr, weight_decay=weight_decay)
    pred = jax.vmap(lambda p, c, x, f, z, sv: _residual(net, p, c, x, f, z, sv),
                    in_axes=(None, 0, 0, 0, 0, 0))

    def loss(p, C, X, F, V, Z, SV, w):
        err = pred(p, C, X, F, Z, SV) - (V - F) / SV[:, 1]
        return jnp.sum(w * err ** 2) / jnp.maximum(jnp.sum(w), 1.0)

    @jax.jit
    def run(params, C, X, F, V, Z, SV, w):
        def body(carry, _):
            p, s = carry
            val, g = jax.value_and_grad(loss)(p, C, X, F, V, Z, SV, w)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), val
        (p, _), losses = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
        return p, jnp.append(losses, loss(p, C, X, F, V, Z, SV, w)), pred(p, C, X, F, Z, SV)
    return run


def fit(net: LandscapeNet, params, data: Data, *, steps: int = 200, lr: float = 3e-3,
        weight_decay: float = 1e-4, folds: int = 0, window: int | None = None
        ) -> tuple[Any, np.ndarray, float]:
    """Fit r_w by least squares on the normalised residuals ``t = (v − b) / s`` of ``data``
    (AdamW, Loshchilov & Hutter, ICLR 2019; ``steps`` full-batch steps from ``params``, one
    compiled scan), and choose how much of it to trust. With ``window``, only the last
    ``window`` points added are fitted (a local model around the recent iterates, whose fit
    costs the same however long the run).

    With ``folds`` k >= 2, r_w is also fitted k times from ``params`` with every k-th point
    held out, and the shrinkage ``alpha`` in [0, 1] minimising the held-out error of
    ``alpha · r̂`` about the mean residual t̄ is returned (``Σ (r̂ − t̄)(t − t̄) /
    Σ (r̂ − t̄)²``, clipped; k-fold cross-validation, Stone, JRSS-B 1974). Centred, because a
    constant offset between the true cost and f ranks no solution and steers no step, while
    the correction's variation from point to point does both. 0 when the fitted residual
    does not rank unseen points better than M = b does; 1 with ``folds=0``.

    Returns:
      ``(params, losses, alpha)``: the parameters fitted on every point, the mean squared
      error before each step and after the last (``steps + 1`` values), and the shrinkage.

    Raises:
      ValueError: no points in ``data``, or folds that is neither 0 nor >= 2.
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds == 1 \
            or folds < 0:
        raise ValueError(f"landscape.fit: folds must be 0 or an integer >= 2, got {folds!r}")
    run = _fit_program(net, int(steps), float(lr), float(weight_decay))
    C, X, F, V, Z, SV, mask = data.arrays(window)
    alpha = 1.0
    if folds and len(data) >= folds:
        fold = np.arange(len(mask)) % folds
        held, target = np.zeros(len(mask)), (np.asarray(V) - np.asarray(F)) / SV[:, 1]
        for k in range(folds):
            _, _, r = run(params, C, X, F, V, Z, SV, mask * (fold != k))
            held = np.where(fold == k, np.asarray(r, np.float64), held)
        held, target = held[mask > 0], target[mask > 0]
        held, target = held - target.mean(), target - target.mean()
        den = float(np.sum(held ** 2))
        alpha = float(np.clip(np.sum(held * target) / den, 0.0, 1.0)) if den > 0 else 0.0
    elif folds:
        alpha = 0.0   # too few points to tell
    params, losses, _ = run(params, C, X, F, V, Z, SV, mask)
    return params, np.asarray(losses, np.float64), alpha
