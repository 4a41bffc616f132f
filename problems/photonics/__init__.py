"""Inverse photonic design under brush fabrication constraints (SurCo §5.2).

Ferber et al., "SurCo: Learning Linear Surrogates for Combinatorial Nonlinear Optimization
Problems", ICML 2023, §5.2, on the ceviche challenges with the brush constraint and generator
of Schubert et al., "Inverse design of photonic devices with strict foundry fabrication
constraints", ACS Photonics 9 (2022).

    >>> import numpy as np
    >>> from surco.problems import photonics as ph
    >>> x = ph.brush_generate(np.random.default_rng(0).normal(size=(20, 20)), "cross3")
    >>> ph.is_feasible(x, "cross3")
    True

The brush, generator, checker and loss need only NumPy/SciPy/JAX; devices, simulation and
the design methods need the ``photonics`` extra (``ceviche-challenges``) and import it lazily.

``photonics.FAMILY`` is the family for `surco.compare` (see `family`): one evaluation is one
FDFD simulation of a binary design; baselines pass-through and density optimisation made
printable by the generator (plain density + threshold runs beside them in the bench).
SurCo-prior (`prior`): ``train_prior(train_instances)`` distils SurCo-zero's costs into a
network; ``surco.compare(FAMILY, tests, ["surco-prior"], prior=...)`` runs it.
"""
from .brush import BRUSH_KINDS, Brush, as_brush, make_brush
from .checker import FeasibilityReport, check_design, is_feasible, opening
from .devices import (DEVICES, N_PER_SPLIT, PARAM_RANGES, SPLIT_SEEDS, WAVELENGTHS_NM,
                      DeviceInstance, build_model, describe, generate, grid_nm, make_instance,
                      nominal_instance, simulator, spec_window)
from .generator import BrushGenerator, brush_generate
from .loss import success, window_distance, window_loss
from .methods import (METHODS, DesignResult, PassThroughConfig, density_threshold,
                      initial_latent, pass_through, run_method, surco_zero)
from .family import (BASELINES, FAMILY, HYPER, INIT_SCALE, STEPS, ZERO_SETTINGS,
                     ZERO_SETTINGS_NOTE, density_threshold_method, violations)
from .problem import (DesignReport, design_shape, evaluate_design, make_problem, objective,
                      transmission)
from .prior import (PRIOR_TEMPERATURE, KernelCostNet, distill_targets, prior_methods,
                    train_prior)

__all__ = [
    "Brush", "BRUSH_KINDS", "make_brush", "as_brush",
    "brush_generate", "BrushGenerator",
    "check_design", "is_feasible", "opening", "FeasibilityReport",
    "DEVICES", "WAVELENGTHS_NM", "PARAM_RANGES", "N_PER_SPLIT", "SPLIT_SEEDS", "DeviceInstance",
    "generate", "make_instance", "nominal_instance", "build_model", "simulator",
    "spec_window", "grid_nm", "describe",
    "window_loss", "window_distance", "success",
    "make_problem", "objective", "transmission", "evaluate_design", "DesignReport",
    "design_shape",
    "METHODS", "DesignResult", "surco_zero", "PassThroughConfig", "pass_through", "density_threshold",
    "run_method", "initial_latent",
    "FAMILY", "BASELINES", "HYPER", "STEPS", "INIT_SCALE", "ZERO_SETTINGS", "ZERO_SETTINGS_NOTE",
    "violations", "density_threshold_method",
    "train_prior", "distill_targets", "prior_methods", "KernelCostNet", "PRIOR_TEMPERATURE",
]
