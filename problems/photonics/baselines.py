"""The photonics family's pieces besides its settings: the Ω check by the independent brush
checker (`violations`), the true cost of a binary design (`design_loss`) and the seed of a
method's initial latent (`instance_seed`). The harness methods (`family.BASELINES`) are
built on `methods` with `surco.methods.iterations_for`: one evaluation per step.
"""
from __future__ import annotations

import numpy as np

from .checker import check_design
from .devices import DeviceInstance
from .problem import evaluate_design

__all__ = ["violations", "design_loss", "instance_seed"]


def violations(x: np.ndarray, instance: DeviceInstance) -> list[str]:
    """Why x is not a brush-feasible binary design of the instance (empty: it is one), by
    the morphological checker (3×3 cross brush)."""
    x = np.asarray(x)
    if x.shape != instance.design_shape:
        return [f"x has shape {x.shape}, the {instance.device} design is "
                f"{instance.design_shape}"]
    try:
        rep = check_design(x)
    except ValueError as exc:
        return [str(exc)]
    if rep.feasible:
        return []
    return [f"{rep.n_violations} pixels violate the brush (cross3): "
            f"{int(rep.solid_violations.sum())} solid, {int(rep.void_violations.sum())} void"]


def design_loss(x: np.ndarray, instance: DeviceInstance) -> float:
    """Window loss of a fresh simulation of binary design x (0 iff the spec is met)."""
    return evaluate_design(np.asarray(x).round().astype(np.uint8), instance).loss


def instance_seed(instance: DeviceInstance) -> int:
    """The seed of θ₀: the instance's (0 for an unseeded, nominal instance)."""
    return max(int(instance.seed), 0)
