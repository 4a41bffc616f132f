"""Blackbox differentiation by linear interpolation (Vlastelica et al., ICLR 2020).

M. Vlastelica, A. Paulus, V. Musil, G. Martius, M. Rolínek. "Differentiation of Blackbox
Combinatorial Solvers". ICLR 2020.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from surco.estimators.base import Estimator, _check_positive, _solve


@dataclasses.dataclass(frozen=True)
class Blackbox(Estimator):
    """Gradient of the piecewise-linear interpolation f_λ of L(g(c)) (Vlastelica et al. 2020).

    Forward: ``x = g(c)``. Backward, with ``g_x = dL/dx``: re-solve at the perturbed cost
    ``c' = c + λ·g_x`` and return ``dL/dc = -(x - x')/λ = (x' - x)/λ`` (their Eq. 6 for a
    minimising solver). Under vmap the re-solves of the whole batch are one ``solve_batch``.

    Args:
      lam: interpolation strength λ > 0 (the paper's λ; 10-20 in its experiments when
        ``dL/dx`` is O(1)).

    Raises:
      ValueError: ``lam <= 0`` or not finite.
    """

    lam: float = 10.0
    name: ClassVar[str] = "blackbox"
    needs_key: ClassVar[bool] = False

    def __post_init__(self):
        _check_positive("blackbox", "lam (λ)", self.lam)

    def _forward(self, solver, executor, c, key):
        x, status = _solve(solver, executor, c)
        return x, status, None

    def _backward(self, solver, executor, c, key, x, res, g):
        x_lam, _ = _solve(solver, executor, c + self.lam * g)
        return (x_lam - x) / self.lam
