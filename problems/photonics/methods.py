"""Design methods compared in the photonics benchmark.

All start from the same latent image θ₀ = ``init_scale`` · N(0, 1) (seeded) and every method
reports the binary design it ends with, evaluated by a fresh simulation and the independent
brush checker (`problem.evaluate_design`).

One *evaluation* (what `surco.budget.Meter` counts when a method is given one) is one FDFD
simulation of one distinct binary design: every step of every method below evaluates exactly
one (SurCo: the generator's design G(c_t); pass-through: G(θ_t); density: the thresholded
θ_t), and the gradient of that step (one forward simulation and its adjoint, of the same
design, or of the grey density for density-threshold) belongs to it. The `Simulator` keeps
its last results, so evaluating the design a gradient step has just simulated costs no
second simulation.

* `surco_zero` — SurCo-zero (Ferber et al., ICML 2023, Alg. 1): optimise the generator's
  cost c (c₀ = −θ₀, so the first design is G(θ₀)) with any `surco.zero` estimator, by its
  surco name: "neg_identity" (for a minimising oracle ``dx/dc ≈ −I``, Sahoo et al. 2023;
  the straight-through gradient through the generator) or "blackbox" (Vlastelica et al.
  2020). Every iterate is a generator output, hence brush-feasible; the best by loss is
  kept.
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
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import surco
from surco.checks import check_int, check_number
from surco.config import Config, settings_of

from .brush import Brush, as_brush
from .devices import DeviceInstance
from .generator import brush_generate
from .problem import DesignReport, evaluate_design, make_problem, objective

METHODS: tuple[str, ...] = ("surco-zero-blackbox", "surco-zero-neg-identity", "pass-through",
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
      simulations: designs simulated (forward and adjoint) by the optimisation, one per
        step; the final report re-reads the simulator's cache or simulates once more.
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


#: `surco_zero`'s configuration (besides its start and optimiser): the straight-through
#: gradient through the generator (``dx/dc ≈ −I``), 60 steps, seed 0, and a stop at the first
#: design whose loss is 0 (the spec is met; every iterate is brush-feasible).
SURCO_ZERO = surco.ZeroConfig.of(estimator="neg_identity", steps=60, key=0, target=0.0)


def _negated_latent(instance: DeviceInstance, key: int | jax.Array,
                    init_scale: float) -> jax.Array:
    return -initial_latent(instance, key, init_scale)


def start_rule(key: int | jax.Array = 0, init_scale: float = 0.1):
    """SurCo-zero's start rule ``instance -> c₀ = −θ₀`` (`initial_latent`: the first design
    is G(θ₀), as for pass-through)."""
    return functools.partial(_negated_latent, key=key, init_scale=init_scale)


def surco_zero(instance: DeviceInstance, config: surco.ZeroConfig | None = None, /, *,
               brush: Brush | str | None = None, lr: float = 0.05, init_scale: float = 0.1,
               stop_at_success: bool = True, **settings: Any) -> DesignResult:
    """SurCo-zero (Ferber et al., ICML 2023, Alg. 1) on one instance with Ω = the brush
    generator: `surco.zero` with ``config`` (default `SURCO_ZERO`) and a start rule.

    Args:
      instance: the device instance.
      config, **settings: the `surco.ZeroConfig` and its fields as keywords (e.g.
        ``estimator="blackbox", lam=5``, ``steps``, ``key``, ``patience``, ``progress``).
        The estimator is "neg_identity" (straight-through gradient through the generator) or
        "blackbox"; surco's "straight_through" is the LP-relaxation estimator, which needs a
        `LinearSpec` Ω and so does not apply.
      brush: the fabrication brush (default 3×3 cross).
      lr: learning rate of Adam, unless the configuration names an optimiser.
      init_scale: the start's scale (`start_rule` with the configuration's key), unless the
        configuration gives ``init``.
      stop_at_success: keep the configuration's target 0 (stop at the first design that
        meets the spec); False runs all steps.

    Returns:
      A `DesignResult` named ``"surco-zero-<estimator>"`` (underscores as hyphens).

    Raises:
      ValueError: estimator "straight_through" (see above), or a bad setting (as
        `surco.zero`).
    """
    cfg = settings_of(SURCO_ZERO if config is None else config, settings, surco.ZeroConfig,
                      "photonics.surco_zero")
    estimator = getattr(cfg.estimator, "name", cfg.estimator)
    if estimator == "straight_through":
        raise ValueError("surco_zero: surco's 'straight_through' estimator differentiates the "
                         "LP relaxation of a LinearSpec Ω; the brush generator is an oracle. "
                         "For the straight-through gradient through the generator use "
                         "estimator='neg_identity'")
    b = as_brush(brush)
    t0 = time.perf_counter()
    random_start = isinstance(cfg.init, str) and cfg.init == "random"
    cfg = cfg.replace(optimizer=cfg.optimizer or optax.adam(lr),
                      init=start_rule(cfg.key, init_scale) if random_start else cfg.init,
                      target=cfg.target if stop_at_success else None)
    res = surco.zero(make_problem(instance.device, b), instance, cfg)
    x = np.asarray(res.x).round().astype(np.uint8)
    report = evaluate_design(x, instance, b)
    # one simulation (and its adjoint) per step; zero's true_cost and the report re-read the
    # simulator's cache for the designs it has just simulated
    return DesignResult(f"surco-zero-{estimator.replace('_', '-')}", x, report,
                        list(res.history["f"]), time.perf_counter() - t0,
                        len(res.history["f"]))


def _generate_callback(brush: Brush):
    def host(reward):
        return brush_generate(np.asarray(reward, np.float64), brush).astype(np.asarray(reward).dtype)

    def g(reward):
        return jax.pure_callback(host, jax.ShapeDtypeStruct(reward.shape, reward.dtype),
                                 reward, vmap_method="sequential")
    return g


def _metered(meter, x: np.ndarray) -> bool:
    """Evaluate design x through ``meter`` (if any); False once its budget is spent."""
    if meter is None:
        return True
    from surco.budget import BudgetExhausted
    try:
        meter(x)
    except BudgetExhausted:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class PassThroughConfig(Config):
    """How `pass_through` runs: checked once, here; ``pass_through(y, config)`` and
    ``pass_through(y, steps=20)`` are the same call (as `surco.zero` and
    `surco.ZeroConfig`).

    Attributes:
      steps: maximum gradient steps (an integer >= 0; Adam with learning rate ``lr`` > 0).
      init_scale, key: the initial latent θ₀ (`initial_latent`; init_scale > 0, key an
        integer seed >= 0 or a PRNG key).
      temperature: τ (> 0) of the surrogate density σ(θ/τ).
      patience: stop after this many steps without improvement (an integer >= 1; None: run
        all steps).
      stop_at_success: stop at the first design whose loss is 0 (the spec is met).

    Raises:
      ValueError: naming the field and the bad value.
    """

    steps: int = 60
    lr: float = 0.05
    init_scale: float = 0.1
    key: int | jax.Array = 0
    temperature: float = 0.1
    patience: int | None = None
    stop_at_success: bool = True
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "pass_through"

    def __post_init__(self) -> None:
        who, put = self._who, lambda k, v: object.__setattr__(self, k, v)
        put("steps", check_int("steps", self.steps, 0, who=who))
        put("patience", check_int("patience", self.patience, 1, none_ok=True, who=who))
        for name in ("lr", "init_scale", "temperature"):
            put(name, check_number(name, getattr(self, name), who=who))
        if isinstance(self.key, (int, np.integer)):
            put("key", check_int("key", self.key, 0, who=who))
        elif not isinstance(self.key, jax.Array):
            raise ValueError(f"{who}: key must be an integer seed >= 0 or a PRNG key, got "
                             f"{self.key!r}")
        if not isinstance(self.stop_at_success, bool):
            raise ValueError(f"{who}: stop_at_success must be True or False, got "
                             f"{self.stop_at_success!r}")


def pass_through(instance: DeviceInstance, config: PassThroughConfig | None = None, /, *,
                 brush: Brush | str | None = None, meter=None,
                 **settings: Any) -> DesignResult:
    """Straight-through optimisation through the brush generator (Schubert et al. 2022).

    Each step: x = G(θ) (the generator on reward θ), one simulation of x with its adjoint,
    the gradient taken straight through G to ρ = σ(θ/τ), one Adam step on θ.

    Args:
      instance: the device instance.
      config: a `PassThroughConfig` (steps, lr, θ₀, temperature, stopping), or None.
      brush: the fabrication brush.
      meter: a `surco.budget.Meter`: each step's design is evaluated through it (one
        evaluation per distinct design) and the run stops when its budget is spent.
      **settings: fields of `PassThroughConfig` as keywords (``steps=20``,
        ``temperature=1.0``), replacing ``config``'s.

    Returns:
      A `DesignResult` with the best design by loss (every design is brush-feasible).

    Raises:
      TypeError: an unknown keyword (with the closest valid name).
      ValueError: a bad setting (naming it).
    """
    cfg = settings_of(config, settings, PassThroughConfig, "pass_through")
    steps, lr, temperature, patience = cfg.steps, cfg.lr, cfg.temperature, cfg.patience
    stop_at_success = cfg.stop_at_success
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

    theta = initial_latent(instance, cfg.key, cfg.init_scale)
    state = opt.init(theta)
    best, best_x, hist, stall = np.inf, None, [], 0
    for _ in range(int(steps) + 1):
        if meter is not None and meter.exhausted and best_x is not None:
            break
        new_theta, new_state, val, x = step(theta, state)
        val = float(val)
        x = np.asarray(x).round().astype(np.uint8)
        hist.append(val)
        if val < best:
            best, best_x, stall = val, x, 0
        else:
            stall += 1
        if not _metered(meter, x):
            break
        if patience is not None and stall >= patience:
            break
        if stop_at_success and best <= 0.0:
            break
        theta, state = new_theta, new_state
    report = evaluate_design(best_x, instance, b)
    return DesignResult("pass-through", best_x, report, hist, time.perf_counter() - t0,
                        len(hist))


def density_threshold(instance: DeviceInstance, *, steps: int = 60, lr: float = 0.05,
                      init_scale: float = 0.1, key: int = 0, brush: Brush | str | None = None,
                      beta_max: float = 8.0, project: bool = False,
                      meter=None) -> DesignResult:
    """Unconstrained density optimisation, then thresholding at 0.5 (or, with ``project``,
    the brush generator applied to the optimised latent: a printable design).

    Args:
      instance: the device instance.
      steps: gradient steps (Adam, learning rate ``lr``); β ramps linearly from 1 to
        ``beta_max`` over them (or over the meter's seconds, whichever is reached first).
      init_scale, key: the initial latent θ₀.
      brush: the brush used only to *check* the thresholded design.
      beta_max: final projection sharpness.
      project: the design of θ is ``brush_generate(θ)`` (solid where θ > 0 as far as the
        brush allows, largest |θ| first) instead of ``θ > 0``; the method is then named
        "density-generator" and its designs are always brush-feasible.
      meter: a `surco.budget.Meter`: each step evaluates the design of its θ through it
        (one evaluation per step, the design the method would return if stopped there) and
        the run stops when its budget is spent.

    Returns:
      A `DesignResult` with the design of the final θ (thresholded: brush-feasible or not,
      the report says; projected: feasible).

    Raises:
      ValueError: beta_max < 1.
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

    def design(th) -> np.ndarray:
        th = np.asarray(th, np.float64)
        if project:
            return brush_generate(th, b)
        return (th > 0).astype(np.uint8)               # σ(βθ) > 0.5  ⇔  θ > 0

    theta = initial_latent(instance, key, init_scale)
    state = opt.init(theta)
    hist = []
    n = max(int(steps), 1)
    seconds = None if meter is None else meter.budget.seconds
    for t in range(int(steps)):
        if meter is not None and meter.exhausted and hist:
            break             # a design seen before costs no evaluation: check the clock too
        frac = t / max(n - 1, 1)
        if seconds is not None:
            frac = max(frac, min(meter.elapsed() / seconds, 1.0))
        beta = jnp.float32(1.0 + (beta_max - 1.0) * frac)
        new_theta, new_state, val = step(theta, state, beta)
        if not _metered(meter, design(theta)) and hist:
            break
        theta, state = new_theta, new_state
        hist.append(float(val))
    x = design(theta)
    report = evaluate_design(x, instance, b)
    return DesignResult("density-generator" if project else "density-threshold", x, report,
                        hist, time.perf_counter() - t0, len(hist))


def run_method(method: str, instance: DeviceInstance, **kw: Any) -> DesignResult:
    """Run one of `METHODS` by name (keyword arguments go to the method)."""
    if method == "surco-zero-blackbox":
        return surco_zero(instance, estimator="blackbox", **kw)
    if method == "surco-zero-neg-identity":
        return surco_zero(instance, estimator="neg_identity", **kw)
    if method == "pass-through":
        return pass_through(instance, **kw)
    if method == "density-threshold":
        return density_threshold(instance, **kw)
    raise ValueError(f"run_method: unknown method {method!r}; choose from {METHODS}")
