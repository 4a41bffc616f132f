"""Blackbox differentiation by linear interpolation (Vlastelica et al., ICLR 2020).

M. Vlastelica, A. Paulus, V. Musil, G. Martius, M. Rolínek. "Differentiation of Blackbox
Combinatorial Solvers". ICLR 2020. Optional cost projections as in Sahoo et al. (ICLR 2023),
see `surco.estimators.identity.project_cost`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax

from surco.estimators.base import Estimator, call_solver, check_positive, event_axes
from surco.estimators.identity import PROJECTIONS, project_cost


@dataclasses.dataclass(frozen=True)
class Blackbox(Estimator):
    """Gradient of the piecewise-linear interpolation f_λ of L(g(c)) (Vlastelica et al. 2020).

    Forward: ``x = g(P(c))`` with P the optional projection (`project_cost`; identity by
    default). Backward, with ``g_x = dL/dx``: re-solve at the perturbed cost
    ``P(c) + λ·g_x`` and return ``dL/dP(c) = -(x - x')/λ = (x' - x)/λ`` (their Eq. 6 for a
    minimising solver), then apply P's Jacobian. Under vmap the re-solves of the whole batch
    are one ``solve_batch``.

    λ acts on the scale of the cost: without a projection, a cost that grows during
    training makes a fixed λ·g_x too small to change the solution, and the gradient is 0.
    ``projection="norm"`` keeps ‖P(c)‖ = 1, so λ stays relative to the cost (the solution of
    any linear argmin is unchanged by it).

    Args:
      lam: interpolation strength λ > 0 (the paper's λ; 10-20 in its experiments when
        ``dL/dx`` is O(1)).
      projection: None, ``"mean"``, ``"norm"`` or ``"standardize"`` (see `project_cost`).

    Raises:
      ValueError: ``lam <= 0`` or not finite; unknown projection.
    """

    lam: float = 10.0
    projection: str | None = None
    name: ClassVar[str] = "blackbox"
    needs_key: ClassVar[bool] = False
    no_progress_advice: ClassVar[str] = (
        "a larger lam (λ); projection='norm' (λ then stays relative to the cost's scale, "
        "with lam around 1); or a larger lr")

    def __post_init__(self):
        check_positive("blackbox", "lam (λ)", self.lam)
        if self.projection not in PROJECTIONS:
            raise ValueError(f"{self.name}: projection must be one of {PROJECTIONS}, got "
                             f"{self.projection!r}")

    def _project(self, solver, c):
        return project_cost(c, event_axes(solver, c), self.projection)

    def forward(self, solver, executor, c, key):
        x, status = call_solver(solver, executor, self._project(solver, c))
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        cp, vjp = jax.vjp(lambda cc: self._project(solver, cc), c)   # P = id if None
        x_lam, _ = call_solver(solver, executor, cp + self.lam * g)
        return vjp((x_lam - x) / self.lam)[0]
