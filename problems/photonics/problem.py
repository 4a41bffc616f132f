"""The photonic design problem for SurCo (Ferber et al., ICML 2023, §5.2).

    min_x  log(1 + L(T(x; y)))   s.t.  x ∈ Ω_b = {binary designs feasible for brush b}

where T(x; y) are the device's simulated transmissions (`simulate`), L is the window loss
(`loss.window_loss`, 0 iff the spec is met), and Ω_b is represented by its oracle, the brush
generator (`generator.BrushGenerator`): SurCo learns the generator's cost image c (solid where
c < 0). The objective is log(1 + L), a monotone transform of L with the same zero set: L
spans four orders of magnitude during a design, and the log keeps ∂f/∂x on one scale, which
the blackbox estimator's interpolation step λ·∂f/∂x needs. Reports give L itself.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from surco.problem import Problem

from .brush import Brush, as_brush
from .checker import check_design
from .devices import DESIGN_NM, DeviceInstance, grid_nm, simulator, spec_window
from .generator import BrushGenerator
from .loss import success, window_loss


@functools.lru_cache(maxsize=64)
def transmission(instance: DeviceInstance):
    """The JAX function ``rho (H, W) -> T (2 wavelengths, ports)`` of an instance (cached;
    see `simulate.transmission_fn`)."""
    from .simulate import transmission_fn
    return transmission_fn(simulator(instance))


def objective(x: jax.Array, instance: DeviceInstance) -> jax.Array:
    """``log(1 + L(T(x)))`` for a design density x (binary or in [0, 1]); 0 iff the spec
    is met."""
    lb, ub = spec_window(instance.device)
    return jnp.log1p(window_loss(transmission(instance)(x), lb, ub))


def design_shape(device: str) -> tuple[int, int]:
    """Design shape (H, W) in pixels of a device type."""
    g = grid_nm(device)
    return tuple(s // g for s in DESIGN_NM[device])  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class DesignReport:
    """Evaluation of one binary design on one instance.

    Attributes:
      loss: window loss (0 iff ``spec_met``).
      T: (wavelengths, ports) transmissions.
      spec_met: every transmission inside its window.
      feasible: the design satisfies the brush constraint (independent checker).
      n_violations: pixels violating the brush constraint.
      success: ``spec_met and feasible``.
    """

    loss: float
    T: np.ndarray
    spec_met: bool
    feasible: bool
    n_violations: int

    @property
    def success(self) -> bool:
        return bool(self.spec_met and self.feasible)


def evaluate_design(x, instance: DeviceInstance, brush: Brush | str | None = None) -> DesignReport:
    """Simulate a binary design and check it against the spec and the brush constraint.

    Raises:
      ValueError: x not binary or not of the instance's design shape.
    """
    x = np.asarray(x)
    if x.shape != instance.design_shape:
        raise ValueError(f"evaluate_design: design has shape {x.shape}, expected "
                         f"{instance.design_shape} for {instance.device}")
    rep = check_design(x, brush)  # also validates binarity
    res = simulator(instance).simulate(x.astype(np.float64))
    lb, ub = spec_window(instance.device)
    return DesignReport(loss=float(window_loss(res.T, lb, ub)), T=res.T,
                        spec_met=success(res.T, lb, ub), feasible=rep.feasible,
                        n_violations=rep.n_violations)


def make_problem(device: str, brush: Brush | str | None = None) -> Problem:
    """The SurCo `Problem` of one device type: Ω = `BrushGenerator` (cost c, x = brush_generate(-c)),
    f = log(1 + window loss) of the simulated transmissions (`objective`), features =
    instance parameters, evaluate = window loss L of a fresh simulation.

    Args:
      device: one of `devices.DEVICES`.
      brush: the fabrication brush (default 3×3 cross).
    """
    b = as_brush(brush)
    space = BrushGenerator(design_shape(device), b, name=f"brush_generator[{b.name}]")

    def features(y: DeviceInstance):
        return jnp.asarray(y.features())

    def evaluate(x, y: DeviceInstance) -> float:
        return evaluate_design(np.asarray(x), y, b).loss

    return Problem(name=f"photonics-{device}", space=space, objective=objective,
                   features=features, evaluate=evaluate)
