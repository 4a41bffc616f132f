"""Combinatorial portfolio selection as a SurCo `Problem`: Ω over (x, z) as a MILP.

Ω (the plan is ``X`` of shape (n, 2), column 0 the weights x, column 1 the selection z):

    Σ_i x_i = 1,   l·z_i <= x_i <= u·z_i,   k_min <= Σ_i z_i <= k_max,   z ∈ {0, 1}^n.

What a linear surrogate can reach. ``argmin_{X∈Ω} c·X`` is an extreme point of conv(Ω): for
the selected set every weight but at most one sits at l or u (the LP over x for fixed z is
a bounded-simplex LP, solved greedily). So SurCo's plans are "bang-bang" portfolios, e.g.
five assets at u = 0.2, while the optimum of a risk-averse objective usually spreads weights
strictly inside [l, u]. What makes the surrogate work here is to let it do the
combinatorial part only: SurCo chooses the support (which assets, how many), and `polish`
then re-optimises the weights on that support for the true f (a small continuous problem:
monotone FISTA with the exact prox of the turnover term over {Σx = 1, l <= x <= u};
`polish_weights` does it for many supports at once, which is how the family's local search
scores a whole neighbourhood of supports in one call).
The polished plan is still in Ω. ``make_problem(..., reoptimise=True)`` builds this into Ω's
solver (`SupportSolver`: every MILP answer comes back with its support's optimal weights,
exact when the support's problem is a convex QP, `support_is_qp`) and gives f a gradient in
z, the sensitivity of the support's optimal value (`support_objective`), so that SurCo's
cost learns which assets to hold; that is the family's SurCo problem. A good starting cost
is the Frank–Wolfe linearisation c_x = ∇f(x̄) at the equal weight portfolio x̄, c_z = 0
(`linearised_cost`).

The model (configuration, Ω, f) is in `surco.problems.portfolio.model` and the weight
polishing in `surco.problems.portfolio.weights`; both are re-exported here.
"""
from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np

from surco import Problem
from surco.solvers import LinearSpec, Solver, Status, make_solver

from .instances import Instance, check_instance
from .model import (PortfolioConfig, objective_batch, objective_np, omega, smooth_objective,
                    support_objective, third_moment, variance, weights_objective)
from .weights import polish, polish_weights, prox_simplex_box, support_is_qp, warm_starts

__all__ = ["PortfolioConfig", "omega", "variance", "third_moment", "smooth_objective",
           "weights_objective", "support_objective", "objective_np", "objective_batch",
           "features", "make_problem", "linearised_cost", "polish", "polish_weights",
           "prox_simplex_box", "support_is_qp", "warm_starts", "SupportSolver"]


def features(instance: Instance, config: PortfolioConfig = PortfolioConfig()) -> jax.Array:
    """Per-asset features for SurCo-prior, (n, 6 + K): r_i, Σ_ii, v_i, κ_i, x₀_i, the
    gradient of the smooth part of f (under ``config``) at the equal-weight portfolio, and
    the loadings L_i."""
    r = jnp.asarray(instance["r"])
    L = jnp.asarray(instance["L"])
    ev = jnp.asarray(instance["e_var"])
    n = r.shape[0]
    xbar = jnp.full((n,), 1.0 / n, r.dtype)
    g = jax.grad(smooth_objective)(xbar, instance, config)
    return jnp.concatenate([jnp.stack([r, jnp.sum(L * L, 1) + ev, ev, jnp.asarray(instance["e_k3"]),
                                       jnp.asarray(instance["x0"]), g], 1), L], axis=1)


def make_problem(n: int, config: PortfolioConfig = PortfolioConfig(), *,
                 reoptimise: bool = False, backend: str = "highs") -> Problem:
    """The portfolio problem with n assets for SurCo: Ω = `omega` (a MILP over (x, z)),
    f = LANCER's objective of the weights (column 0), `features` per asset, and ``evaluate``
    = f in float64.

    Args:
      n: number of assets.
      config: objective and constraints.
      reoptimise: False: Ω is the `LinearSpec` (SurCo's plans are the MILP's extreme points,
        see the module docstring). True: Ω is solved by a `SupportSolver` per instance, which
        answers the MILP's support with its optimal weights; SurCo's surrogate then chooses
        the support only and f(x) is the true value of that choice.
      backend: the MILP backend of the `SupportSolver` (with ``reoptimise``).

    Raises:
      ValueError: n too small for the config.
    """
    spec = omega(n, config)
    space = spec
    if reoptimise:
        def space(y):
            return SupportSolver(y, config, backend=backend)

    def f(X, y):
        if reoptimise:
            return support_objective(X, y, config)
        return weights_objective(X[..., 0], y, config)

    def evaluate(X, y):
        return objective_np(np.asarray(X).reshape(-1, 2)[:, 0], y, config)

    return Problem(name=f"portfolio-{n}" + ("-support" if reoptimise else ""), space=space,
                   objective=f,
                   features=lambda y: features(y, config), evaluate=evaluate)


def linearised_cost(instance: Instance, config: PortfolioConfig = PortfolioConfig()) -> np.ndarray:
    """A starting surrogate (n, 2): c_x = ∇f at the equal-weight portfolio (Frank–Wolfe's
    linearisation), c_z = 0."""
    n = check_instance(instance)
    xbar = jnp.full((n,), 1.0 / n)
    g = np.asarray(jax.grad(weights_objective)(xbar, instance, config), np.float64)
    return np.stack([g, np.zeros(n)], axis=1)


# -- Ω answered with the support's optimal weights --------------------------------------------

def _support_solver(instance: Instance, config: PortfolioConfig, backend: str,
                    options: dict) -> "SupportSolver":
    return SupportSolver(instance, config, backend=backend, **options)


class SupportSolver(Solver):
    """``g_Ω(c)``'s support with the optimal weights on it: the MILP ``argmin_{X∈Ω} c·X``
    chooses the selection z, and the weights are replaced by `polish_weights` on that
    support (the exact optimum when `support_is_qp`, a FISTA local optimum otherwise).

    With it, SurCo's surrogate does the combinatorial part only, and f of every plan it
    returns is the value of the support it chose, not of a bang-bang extreme point (every
    weight but one at l or u). The answer is still in Ω. Weights are cached per support
    (``cache`` supports), as consecutive SurCo steps often return the same one. The MILP
    solver is built on the first solve.

    Args:
      instance, config: the problem (the weights depend on the instance).
      backend, **options: `make_solver`'s backend and options for the MILP.
      cache: how many supports' weights to keep.
      steps: FISTA iterations per support (`polish_weights`; unused when `support_is_qp`).

    Raises:
      ValueError: an instance or config without a feasible portfolio.
    """

    def __init__(self, instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
                 backend: str = "highs", cache: int = 4096, steps: int = 150, **options):
        n = check_instance(instance)
        self._spec = omega(n, config)
        super().__init__(self._spec.shape, f"portfolio-support-{n}")
        self.instance, self.config, self.backend, self.options = instance, config, backend, options
        self._milp = None
        self._weights: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
        self._cache, self.steps = int(cache), int(steps)
        self._last: np.ndarray | None = None

    @property
    def spec(self) -> LinearSpec:
        """Ω's `LinearSpec`."""
        return self._spec

    def factory(self):
        return functools.partial(_support_solver, self.instance, self.config, self.backend,
                                 dict(self.options, steps=self.steps))

    def weights(self, z: np.ndarray) -> np.ndarray:
        """The optimal weights (n,) of the support z (n,) (cached; FISTA is warm-started
        from the previous answer's weights, `warm_starts`)."""
        z = (np.asarray(z, np.float64) > 0.5).astype(np.float64)
        key = z.tobytes()
        w = self._weights.get(key)
        if w is None:
            start = None if self._last is None else warm_starts(z[None], self._last)
            w = polish_weights(z[None], self.instance, self.config, start=start,
                               steps=self.steps, tol=1e-10)[0]
            self._last = w
            self._weights[key] = w
            while len(self._weights) > self._cache:
                self._weights.popitem(last=False)
        else:
            self._weights.move_to_end(key)
        return w

    def solve_flat(self, c):
        if self._milp is None:
            self._milp = make_solver(self._spec, backend=self.backend, **self.options)
        x, obj, status, stats = self._milp.solve_flat(c)
        if status in (Status.OPTIMAL, Status.FEASIBLE):
            z = np.round(np.asarray(x, np.float64).reshape(self.shape)[:, 1])
            x = np.stack([self.weights(z), z], axis=1).reshape(-1)
            stats = dict(stats, milp_objective=float(obj))
            obj = float(c @ x)
        return x, obj, status, stats
