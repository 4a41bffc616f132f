"""Design methods compared in the photonics benchmark.

All start from the same latent image θ₀ = ``init_scale`` · N(0, 1) (seeded) and every method
reports the binary design it ends with, evaluated by a fresh simulation and the independent
brush checker (`problem.evaluate_design`).

* `surco_zero` — SurCo-zero (Ferber et al., ICML 2023, Alg. 1): optimise the generator's
  cost c (c₀ = −θ₀, so the first design is G(θ₀)) with the blackbox estimator (Vlastelica et
  al. 2020) or the straight-through estimator (for a minimising oracle, ``dx/dc ≈ −I``:
  the "neg_identity" estimator of Sahoo et al. 2023). Every iterate is a generator output,
  hence brush-feasible; the best by loss is kept.
* `pass_through` — the method of Schubert et al. (ACS Photonics 2022): the latent θ is the
  generator's reward, x = G(θ), and the backward pass goes straight through the generator to
  a smooth surrogate density ρ = σ(θ/τ): ``x_st = ρ + stop_gradient(x − ρ)``, so
  ``dL/dθ = σ'(θ/τ)/τ · dL/dx``. The best feasible iterate by loss is kept.
* `density_threshold` — unconstrained density optimisation: ρ = σ(β_t θ) with β_t ramped
  from 1 to ``beta_max`` (a standard binarisation schedule), grey densities allowed, then the
  final ρ is thresholded at 0.5. Nothing enforces the brush: the report says whether the
  thresholded design violates it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .brush import Brush, as_brush
from .devices import DeviceInstance
from .generator import generate
from .problem import DesignReport, evaluate_design, make_problem, objective

METHODS: tuple[str, ...] = ("surco-zero-blackbox", "surco-zero-st", "pass-through",
                            "density-threshold")


@dataclasses.dataclass
class DesignResult:
    """Outcome of one design run.

    Attributes:
      method: method name.
      x: (H, W) uint8 final binary design (1 = solid).
      report: `DesignReport` of x (loss, transmissions, spec_met, feasible, success).
      history: per-step objective log(1 + L) of the design the method was differentiating
        (binary for the generator-based methods, grey density for density-threshold).
      seconds: wall time of the run, including the final evaluation.
      simulations: number of forward(+adjoint) simulations.
    """

    method: str
    x: np.ndarray
    report: DesignReport
    history: list[float]
    seconds: float
    simulations: int

    @property
    def success(self) -> bool:
        return self.report.success


def initial_latent(instance: DeviceInstance, key: int | jax.Array = 0,
                   init_scale: float = 0.1) -> jax.Array:
    """θ₀ = init_scale · N(0, 1) of the instance's design shape (float32)."""
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    return init_scale * jax.random.normal(key, instance.design_shape, jnp.float32)


def _loss_fn(instance: DeviceInstance):
    """The objective every method optimises: log(1 + L) (see `problem.objective`)."""
    return lambda rho: objective(rho, instance)


def surco_zero(instance: DeviceInstance, *, estimator: str = "blackbox", steps: int = 60,
               lr: float = 0.05, init_scale: float = 0.1, key: int = 0,
               brush: Brush | str | None = None, patience: int | None = None,
               stop_at_success: bool = True, progress: bool = False,
               **estimator_kw: Any) -> DesignResult:
    """SurCo-zero on one instance with Ω = the brush generator.

    Args:
      instance: the device instance.
      estimator: "blackbox" or "straight_through" (= surco's "neg_identity"), or any other
        estimator name `surco.zero` accepts.
      steps, lr, patience, progress: passed to `surco.zero`.
      init_scale, key: the initial latent θ₀ (c₀ = −θ₀).
      brush: the fabrication brush (default 3×3 cross).
      stop_at_success: stop at the first design whose loss is 0 (the spec is met; every
        iterate is brush-feasible), as `surco.zero`'s ``target=0``.
      **estimator_kw: estimator hyperparameters (``lam=`` for blackbox; ``projection="norm"``
        for straight-through or blackbox, which leaves the generator's output unchanged
        since the generator is invariant to the scale of c).
    """
    import surco
    b = as_brush(brush)
    t0 = time.perf_counter()
    problem = make_problem(instance.device, b)
    theta0 = initial_latent(instance, key, init_scale)
    est = "neg_identity" if estimator == "straight_through" else estimator
    res = surco.zero(problem, instance, estimator=est, steps=steps, lr=lr, init=-theta0,
                     key=key, patience=patience, target=0.0 if stop_at_success else None,
                     progress=progress, **estimator_kw)
    x = np.asarray(res.x).round().astype(np.uint8)
    report = evaluate_design(x, instance, b)
    name = {"blackbox": "surco-zero-blackbox", "straight_through": "surco-zero-st"}.get(
        estimator, f"surco-zero-{estimator}")
    # one simulation per step, one for zero's true_cost (problem.evaluate), one for the report
    return DesignResult(name, x, report, list(res.history["f"]), time.perf_counter() - t0,
                        len(res.history["f"]) + 2)


def _generate_callback(brush: Brush):
    def host(reward):
        return generate(np.asarray(reward, np.float64), brush).astype(np.asarray(reward).dtype)

    def g(reward):
        return jax.pure_callback(host, jax.ShapeDtypeStruct(reward.shape, reward.dtype),
                                 reward, vmap_method="sequential")
    return g


def pass_through(instance: DeviceInstance, *, steps: int = 60, lr: float = 0.05,
                 init_scale: float = 0.1, key: int = 0, brush: Brush | str | None = None,
                 temperature: float = 0.1, patience: int | None = None,
                 stop_at_success: bool = True) -> DesignResult:
    """Straight-through optimisation through the brush generator (Schubert et al. 2022).

    Args:
      instance: the device instance.
      steps: maximum gradient steps (Adam with learning rate ``lr``).
      init_scale, key: the initial latent θ₀.
      brush: the fabrication brush.
      temperature: τ of the surrogate density σ(θ/τ).
      patience: stop after this many steps without improvement (None: run all steps).
      stop_at_success: stop at the first design whose loss is 0 (the spec is met).
    """
    if temperature <= 0:
        raise ValueError(f"pass_through: temperature must be > 0, got {temperature}")
    b = as_brush(brush)
    t0 = time.perf_counter()
    gen = _generate_callback(b)
    loss = _loss_fn(instance)

    def st_loss(theta):
        rho = jax.nn.sigmoid(theta / temperature)
        x = gen(jax.lax.stop_gradient(theta))
        return loss(rho + jax.lax.stop_gradient(x - rho)), x

    opt = optax.adam(lr)

    @jax.jit
    def step(theta, state):
        (val, x), g = jax.value_and_grad(st_loss, has_aux=True)(theta)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state, val, x

    theta = initial_latent(instance, key, init_scale)
    state = opt.init(theta)
    best, best_x, hist, stall = np.inf, None, [], 0
    for _ in range(int(steps) + 1):
        new_theta, new_state, val, x = step(theta, state)
        val = float(val)
        hist.append(val)
        if val < best:
            best, best_x, stall = val, np.asarray(x).round().astype(np.uint8), 0
        else:
            stall += 1
        if patience is not None and stall >= patience:
            break
        if stop_at_success and best <= 0.0:
            break
        theta, state = new_theta, new_state
    report = evaluate_design(best_x, instance, b)
    return DesignResult("pass-through", best_x, report, hist, time.perf_counter() - t0,
                        len(hist) + 1)


def density_threshold(instance: DeviceInstance, *, steps: int = 60, lr: float = 0.05,
                      init_scale: float = 0.1, key: int = 0, brush: Brush | str | None = None,
                      beta_max: float = 8.0) -> DesignResult:
    """Unconstrained density optimisation, then thresholding at 0.5.

    Args:
      instance: the device instance.
      steps: gradient steps (Adam, learning rate ``lr``); β ramps linearly from 1 to
        ``beta_max`` over them.
      init_scale, key: the initial latent θ₀.
      brush: the brush used only to *check* the thresholded design.
      beta_max: final projection sharpness.
    """
    if beta_max < 1:
        raise ValueError(f"density_threshold: beta_max must be >= 1, got {beta_max}")
    b = as_brush(brush)
    t0 = time.perf_counter()
    loss = _loss_fn(instance)
    opt = optax.adam(lr)

    @jax.jit
    def step(theta, state, beta):
        val, g = jax.value_and_grad(lambda th: loss(jax.nn.sigmoid(beta * th)))(theta)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state, val

    theta = initial_latent(instance, key, init_scale)
    state = opt.init(theta)
    hist = []
    n = max(int(steps), 1)
    for t in range(int(steps)):
        beta = jnp.float32(1.0 + (beta_max - 1.0) * t / max(n - 1, 1))
        theta, state, val = step(theta, state, beta)
        hist.append(float(val))
    x = (np.asarray(theta) > 0).astype(np.uint8)       # σ(βθ) > 0.5  ⇔  θ > 0
    report = evaluate_design(x, instance, b)
    return DesignResult("density-threshold", x, report, hist, time.perf_counter() - t0,
                        len(hist) + 1)


def run_method(method: str, instance: DeviceInstance, **kw: Any) -> DesignResult:
    """Run one of `METHODS` by name (keyword arguments go to the method)."""
    if method == "surco-zero-blackbox":
        return surco_zero(instance, estimator="blackbox", **kw)
    if method == "surco-zero-st":
        return surco_zero(instance, estimator="straight_through", **kw)
    if method == "pass-through":
        return pass_through(instance, **kw)
    if method == "density-threshold":
        return density_threshold(instance, **kw)
    raise ValueError(f"run_method: unknown method {method!r}; choose from {METHODS}")
