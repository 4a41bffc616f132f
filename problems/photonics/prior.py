"""SurCo-prior for photonic inverse design (Ferber et al., ICML 2023, §3.2; photonics §5.2).

A model maps an instance's features (its geometry parameters in µm, `DeviceInstance.features`)
to the generator's cost image θ (H×W, solid where θ < 0); a design is then one forward pass
and one call of the brush generator (`generator.BrushGenerator`), plus one simulation to
score it. SurCo-zero needs one simulation and its adjoint per step, for up to `family.STEPS`
steps.

    >>> from surco.problems import photonics as ph
    >>> train = ph.generate(2, device="waveguide_bend", split="train")
    >>> targets = [np.full((40, 40), -1.0), np.full((40, 40), 1.0)]   # all solid, all void
    >>> prior = ph.train_prior(train, targets)
    >>> [int(ph.brush_generate(-np.asarray(prior.theta(y))).mean()) for y in train]
    [1, 0]

What is reused from `surco.prior`, and what is not:

* the model is the generic `surco.prior.PriorModel` (one feature vector ``(F,)`` per instance
  mapped to the whole x), built by `surco.prior.init` (feature normalisation, parameter
  template), so ``predict`` (including robust prediction), ``save`` / `surco.prior.load`
  (the network's class and fields are recorded), `surco.prior.hybrid_start` and the
  harness's ``surco-prior`` / ``surco-prior-robust`` / ``surco-hybrid``
  (`surco.surco_methods` with ``prior=``) work unchanged;
* the distillation targets are SurCo-zero's θ on the train instances, run by
  `surco.prior.zero_targets` with the family's settings (`family.ZERO_SETTINGS`), on any
  executor;
* the network is `KernelCostNet` (kernel regression over the distilled costs), not the
  default `surco.prior.CostNet`, and it is not fitted by `surco.prior.train`: see
  `KernelCostNet` for why a least-squares fit of a smooth network gives useless designs here.
  `surco.prior.train` would also score every epoch by the objective of the solver's answers
  on the training (or validation) instances, one FDFD simulation per instance per epoch; its
  end-to-end term through the simulation is replaced by SurCo-hybrid (SurCo-zero started
  from the prior's θ, per test instance).
"""
from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import Executor
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from surco.estimators import check_positive
from surco.family import Method
from surco.prior import PriorModel
from surco.results import TrainHistory, ZeroResult

from .devices import DEVICES, SEED_BASE, DeviceInstance

__all__ = ["KernelCostNet", "distill_targets", "train_prior", "prior_methods",
           "PRIOR_TEMPERATURE"]

#: `KernelCostNet`'s default softmax temperature on squared normalised feature distances: one
#: offset step (40 nm) adds about 0.1 there, one width step about 1.5, so an instance one
#: offset step farther than the nearest weighs e^-10 as much; exact ties are averaged.
PRIOR_TEMPERATURE = 0.01


class KernelCostNet(nn.Module):
    """Kernel regression over distilled costs (Nadaraya 1964; Watson 1964), written as one
    attention layer whose keys are the train instances' normalised features and whose values
    are their cost images:

        θ(z) = Σ_k softmax_k(−‖z − key_k‖² / temperature) · value_k

    With a small temperature (the default) this is the cost of the nearest train instance in
    normalised feature space, blended only with near-ties; `train_prior` sets the keys and
    values (it memorises the targets exactly), so the training set is reproduced.

    Why not a smooth network: a coordinate MLP (Fourier features, Tancik et al. 2020) fitted
    by least squares to SurCo-zero's costs on 10 train bends (60 steps each) predicted, on 4
    test bends, designs of window loss 1.4·10⁴–1.8·10⁴, that of a random design, where the
    nearest train bend's cost gave 5.4·10²–1.2·10⁴: the simulated response depends on the
    fine structure of the design, which a least-squares fit averages away.

    Attributes:
      n: number of train instances (keys and values).
      out: entries of the cost image (H·W); None: set by `surco.prior.init`.
      temperature: softmax temperature on squared normalised distances (> 0).

    Input ``(F,)``, output ``(out,)``.

    Raises:
      ValueError: features that are not one vector ``(F,)``; ``n``, ``out`` or
        ``temperature`` not positive.
    """

    n: int = 1
    out: int | None = None
    temperature: float = PRIOR_TEMPERATURE

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        if z.ndim != 1:
            raise ValueError(f"KernelCostNet: features must be one vector (F,), got shape "
                             f"{tuple(z.shape)}")
        if self.out is None or int(self.out) < 1 or int(self.n) < 1 \
                or not float(self.temperature) > 0:
            raise ValueError(f"KernelCostNet: n and out must be integers >= 1 and temperature "
                             f"> 0, got n={self.n!r}, out={self.out!r}, "
                             f"temperature={self.temperature!r}")
        keys = self.param("keys", nn.initializers.zeros, (int(self.n), z.shape[0]))
        values = self.param("values", nn.initializers.zeros, (int(self.n), int(self.out)))
        d2 = jnp.sum((keys - z) ** 2, axis=-1)
        w = jax.nn.softmax(-d2 / float(self.temperature))
        return w @ values


def _check_instances(instances: Any, arg: str, where: str) -> list[DeviceInstance]:
    """A non-empty list of train-split `DeviceInstance` of one device."""
    if type(instances) not in (list, tuple):
        raise TypeError(f"{where}: {arg} must be a list or tuple of DeviceInstance, got "
                        f"{type(instances).__name__}")
    instances = list(instances)
    if not instances:
        raise ValueError(f"{where}: {arg} is empty; expected at least one train-split "
                         "DeviceInstance")
    for i, y in enumerate(instances):
        if not isinstance(y, DeviceInstance):
            raise TypeError(f"{where}: {arg}[{i}] must be a DeviceInstance, got "
                            f"{type(y).__name__}")
        if y.seed >= SEED_BASE["test"]:
            raise ValueError(f"{where}: {arg}[{i}] (seed {y.seed}) is a test-split instance; "
                             "the prior trains on train-split instances only "
                             "(generate(..., split='train'))")
    devices = sorted({y.device for y in instances})
    if len(devices) > 1:
        raise ValueError(f"{where}: {arg} mixes devices {devices}; a prior serves one device "
                         "(train one per device)")
    return instances


def distill_targets(instances: Sequence[DeviceInstance], *, steps: int | None = None,
                    executor: Executor | None = None) -> list[ZeroResult]:
    """SurCo-zero (Ferber et al., ICML 2023, Alg. 1) on each train instance with the family's
    settings (`family.ZERO_SETTINGS`: neg_identity, Adam 0.05, stop at the first design that
    meets the spec, θ₀ from the instance's seed), through `surco.prior.zero_targets`.

    Args:
      instances: train-split instances of one device (a list or tuple).
      steps: steps per run (default the family's, `family.STEPS`); an integer >= 1.
      executor: None (one run after the other) or any ``concurrent.futures.Executor`` (a
        thread pool, or a Dask client's executor; a plain process pool cannot pickle the
        family's optax optimizer).

    Returns:
      One `ZeroResult` per instance, in order; its ``theta`` (the cost of the best design
      found) is the distillation target.

    Raises:
      TypeError: instances not a list or tuple of `DeviceInstance`.
      ValueError: no instances, a test-split instance, several devices, or ``steps`` not an
        integer >= 1.
    """
    from surco.prior import zero_targets

    from .family import FAMILY, ZERO_SETTINGS
    instances = _check_instances(instances, "instances", "distill_targets")
    kw = dict(ZERO_SETTINGS)
    if steps is not None:
        check_positive("distill_targets", "steps", steps, integer=True, minimum=1, strict=False)
        kw["steps"] = int(steps)
    return zero_targets(FAMILY.problem(instances[0]), instances, executor=executor, **kw)


def train_prior(instances: Sequence[DeviceInstance], targets: Sequence[Any] | None = None, *,
                temperature: float = PRIOR_TEMPERATURE, steps: int | None = None,
                executor: Executor | None = None) -> PriorModel:
    """Train a SurCo-prior for one photonic device by distillation from SurCo-zero.

    The prior is a `KernelCostNet` over the train instances: its keys are their features,
    normalised as `surco.prior.init` normalises them (per column, over the train instances),
    its values their targets θ*, so it reproduces the targets on the train instances (up to
    the softmax weight of other instances, negligible at the default temperature unless two
    train instances are near-duplicates) and predicts a test instance's cost from the
    nearest ones (knowledge distillation of SurCo-zero, Hinton et al. 2015, into a
    non-parametric model).

    Args:
      instances: train-split instances of one device (a list or tuple; a test-split
        instance is refused).
      targets: one target per instance, in order: a cost image θ* of the design shape, or a
        `ZeroResult` (its ``theta``). None: computed here by `distill_targets` (``steps``,
        ``executor``).
      temperature: the softmax temperature of `KernelCostNet` (a finite number > 0).
      steps, executor: passed to `distill_targets` when ``targets`` is None.

    Returns:
      A `surco.prior.PriorModel` (estimator ``"distill"``) whose ``history.train_f`` holds
      the distillation loss on the train instances (mean squared error to the targets) and
      ``history.seconds`` the seconds of the fit (the zero runs not included).

    Raises:
      TypeError: instances not a list or tuple of `DeviceInstance`.
      ValueError: no instances, a test-split instance, several devices, targets of another
        count or shape or with NaN/inf, or a bad ``temperature`` / ``steps``; each message
        names the argument.
    """
    from surco.prior import init

    from .family import FAMILY
    where = "train_prior"
    instances = _check_instances(instances, "instances", where)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{where}: temperature must be a finite number > 0, got "
                         f"{temperature!r}")
    shape = tuple(instances[0].design_shape)
    if targets is None:
        targets = distill_targets(instances, steps=steps, executor=executor)
    T = _check_targets(targets, len(instances), shape)
    t0 = time.perf_counter()
    problem = FAMILY.problem(instances[0])
    module = KernelCostNet(n=len(instances), temperature=float(temperature))
    prior = init(problem, instances, model=module)
    Z = (np.stack([y.features() for y in instances]) - prior.feat_mean) / prior.feat_std
    params = {"params": {"keys": jnp.asarray(Z, jnp.float32),
                         "values": jnp.asarray(T.reshape(len(instances), -1), jnp.float32)}}
    prior = dataclasses.replace(prior, params=params, estimator="distill")
    mse = float(np.mean([np.mean((np.asarray(prior.theta(y)) - t) ** 2)
                         for y, t in zip(instances, T)]))
    prior.history = TrainHistory(train_f=[mse], val_f=[], seconds=[time.perf_counter() - t0],
                                 best_epoch=0, stopped_early=False)
    return prior


def prior_methods(priors: Mapping[str, PriorModel]) -> dict[str, Method]:
    """SurCo-prior, -prior-robust and -hybrid as harness methods for instances of several
    devices: each call dispatches to `surco.surco_methods` of ``photonics.FAMILY`` with the
    prior of the instance's device. (For one device, ``surco.compare(FAMILY, instances,
    ["surco-prior"], prior=priors[device])`` is the same.)

    Args:
      priors: device name -> its `PriorModel` (from `train_prior` or `surco.prior.load`).

    Returns:
      ``{"surco-prior", "surco-prior-robust", "surco-hybrid"}`` -> ``method(instance, meter)``;
      a method called on an instance of a device without a prior raises ValueError (the
      harness records that run as failed).

    Raises:
      ValueError: an unknown device name, or a value that is not a `PriorModel`.
    """
    import surco

    from .family import FAMILY
    if not isinstance(priors, Mapping) or not priors:
        raise ValueError(f"prior_methods: priors must be a non-empty mapping device -> "
                         f"PriorModel, got {priors!r}")
    for d, p in priors.items():
        if d not in DEVICES:
            raise ValueError(f"prior_methods: unknown device {d!r}; choose from {DEVICES}")
        if not isinstance(p, PriorModel):
            raise ValueError(f"prior_methods: priors[{d!r}] must be a PriorModel, got "
                             f"{type(p).__name__}")
    per_device = {d: surco.surco_methods(FAMILY, prior=p) for d, p in priors.items()}

    def dispatch(name: str) -> Method:
        def method(instance: DeviceInstance, meter) -> np.ndarray:
            if instance.device not in per_device:
                raise ValueError(f"{name}: no prior for device {instance.device!r}; priors "
                                 f"for {sorted(per_device)}")
            return per_device[instance.device][name](instance, meter)
        method.__name__ = name.replace("-", "_")
        return method

    return {n: dispatch(n) for n in ("surco-prior", "surco-prior-robust", "surco-hybrid")}


def _check_targets(targets: Any, n: int, shape: tuple[int, int]) -> np.ndarray:
    """Targets as an (n, H, W) float32 array, checked."""
    if type(targets) not in (list, tuple) or len(targets) != n:
        got = len(targets) if type(targets) in (list, tuple) else type(targets).__name__
        raise ValueError(f"train_prior: targets must be a list with one cost image per "
                         f"instance ({n}), got {got}")
    out = []
    for i, t in enumerate(targets):
        t = np.asarray(getattr(t, "theta", t), np.float32)
        if t.shape != shape:
            raise ValueError(f"train_prior: targets[{i}] has shape {t.shape}, expected the "
                             f"design shape {shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"train_prior: targets[{i}] holds NaN or inf")
        out.append(t)
    return np.stack(out)


