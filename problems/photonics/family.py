"""Photonic inverse design as a `surco.Family`: instances, the brush check, baselines as
harness methods.

``FAMILY`` is what `surco.compare` and the conformance test run:

* instances: `devices.generate` ``(count, seed=0, device="waveguide_bend", split="test")``
  draws from the seeds of ``split`` (train seeds for any tuning, test seeds for benches; the
  two never overlap);
* true cost: the window loss L of a fresh FDFD simulation of a binary design
  (`problem.evaluate_design`; 0 iff the spec is met); f = log(1 + L), the same order;
* one *evaluation* = one FDFD simulation (both wavelengths) of one distinct binary design;
  every optimisation step of every method evaluates exactly one design through its meter,
  so at equal evaluations the methods take equally many steps (see `methods`);
* Ω check (`violations`): the independent morphological brush checker
  (`checker.check_design`), not the generator;
* baselines: ``"pass-through"`` (Schubert et al., ACS Photonics 2022: straight-through
  gradients through the brush generator) and ``"density-generator"`` (unconstrained density
  optimisation whose latent is made printable by the brush generator, each step's design
  and the final one). Plain density + threshold (`density_threshold`) is not a baseline of
  the family because its designs usually break the brush, and every baseline must return a
  design in Ω; the bench runs it next to them and reports it as failed runs;
* no exact method (the design space has 2^1600 points and a simulator as objective);
* SurCo-zero: ``ZERO_SETTINGS`` (neg_identity, i.e. the straight-through gradient through
  the generator, Adam lr 0.05, stop at the first design that meets the spec), chosen on
  train instances (``ZERO_SETTINGS_NOTE``).

Steps per run: `surco.methods.iterations_for` (the evaluation budget; `STEPS` without a
budget; until the seconds are spent, or for pass-through until the spec is met).
"""
from __future__ import annotations

import functools

import numpy as np
import optax

import surco
from surco.budget import Meter
from surco.methods import iterations_for

from .baselines import design_loss, instance_seed, violations
from .devices import DeviceInstance, generate
from .methods import density_threshold, initial_latent, pass_through
from .problem import make_problem

__all__ = ["FAMILY", "violations", "BASELINES",
           "density_threshold_method", "HYPER", "STEPS",
           "INIT_SCALE", "ZERO_SETTINGS", "ZERO_SETTINGS_NOTE"]

#: steps per design when a method's meter has no budget (the bench's step budget).
STEPS = 150
#: scale of the initial latent θ₀ = INIT_SCALE · N(0, 1), seeded by the instance's seed.
INIT_SCALE = 0.1
#: the baselines' hyperparameters, chosen on train instances (pass-through: lr in {0.05, 0.1}
#: x τ in {0.03, 0.1, 0.3, 1} on train bend instances, then lr in {0.05, 0.1} at τ = 1 on 6
#: bend + 6 mode-converter train instances at 150 steps; density (both variants): lr 0.1).
HYPER = {"pass-through": dict(lr=0.05, temperature=1.0),
         "density": dict(lr=0.1, beta_max=8.0)}


def _pass_through(instance: DeviceInstance, meter: Meter) -> np.ndarray:
    """Pass-through (Schubert et al. 2022), one evaluation per step, from θ₀ of the
    instance's seed."""
    return pass_through(instance, steps=iterations_for(meter, STEPS),
                        key=instance_seed(instance), init_scale=INIT_SCALE, meter=meter,
                        **HYPER["pass-through"]).x


def _density(instance: DeviceInstance, meter: Meter, project: bool = True) -> np.ndarray:
    """Density optimisation, one evaluation per step (the design of that step's θ: by the
    brush generator, or thresholded without ``project``); β ramps over the evaluation
    budget, else over the seconds, else over `STEPS`."""
    return density_threshold(instance, steps=iterations_for(meter, STEPS),
                             key=instance_seed(instance), init_scale=INIT_SCALE,
                             meter=meter, project=project, **HYPER["density"]).x


def density_threshold_method(instance: DeviceInstance, meter: Meter) -> np.ndarray:
    """Plain density + threshold as a harness method (not a family baseline: its design is
    usually outside Ω, and the harness records that run as failed)."""
    return _density(instance, meter, project=False)


BASELINES = {"pass-through": _pass_through, "density-generator": _density}


def _init(instance: DeviceInstance) -> np.ndarray:
    """c₀ = −θ₀ (the first design is G(θ₀), as for pass-through): same seed, same scale."""
    return -np.asarray(initial_latent(instance, instance_seed(instance), INIT_SCALE))


#: Adam is named explicitly: the settings were chosen with it (neg_identity's own default
#: optimiser is plain SGD).
ZERO_SETTINGS = surco.ZeroConfig.of(estimator="neg_identity", optimizer=optax.adam(0.05),
                                    steps=STEPS, target=0.0, key=0, init=_init)
ZERO_SETTINGS_NOTE = (
    "Chosen on train instances only (bench/photonics.py HYPER): neg_identity (straight-through "
    "through the generator) lr in {0.02, 0.05, 0.1} x cost projection {none, norm} on train "
    "bend instances, then lr in {0.05, 0.1} on 6 bend + 6 mode-converter train instances at "
    "150 steps (lr 0.05: 5/6 and 3/6 successes); blackbox lam in {2..1000} x lr in {0.05, "
    "0.1} reached no success on train instances.")


@functools.lru_cache(maxsize=None)
def _problem_of(device: str) -> surco.Problem:
    return make_problem(device)


def _problem(instance: DeviceInstance) -> surco.Problem:
    """`make_problem` of the instance's device (3×3 cross brush)."""
    return _problem_of(instance.device)


FAMILY = surco.Family(
    name="photonics",
    problem=_problem,
    evaluate=design_loss,
    baselines=BASELINES,
    generate=generate,
    exact=None,
    violations_fn=violations,
    f_monotone=True,
    zero_settings=ZERO_SETTINGS,
    zero_settings_note=ZERO_SETTINGS_NOTE,
    reference="pass-through",
)
