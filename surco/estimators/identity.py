"""Identity and negative-identity backward passes, with projections (Sahoo et al., ICLR 2023).

S. S. Sahoo, A. Paulus, M. Vlastelica, V. Musil, V. Kuleshov, G. Martius. "Backpropagation
through Combinatorial Algorithms: Identity with Projection Works". ICLR 2023.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from surco.estimators.base import Estimator, call_solver, event_axes

PROJECTIONS = (None, "mean", "norm", "standardize")


def project_cost(c, axes, projection: str | None, eps: float = 1e-12):
    """Sahoo et al.'s cost projections, applied over the event ``axes`` of c.

    ``"mean"``: c - mean(c) (removes the direction 1, to which solutions with a constant
    ``sum(x)`` are invariant); ``"norm"``: c / ‖c‖ (removes the scale, to which every linear
    argmin is invariant); ``"standardize"``: both, in that order.
    """
    if projection in ("mean", "standardize"):
        c = c - jnp.mean(c, axis=axes, keepdims=True)
    if projection in ("norm", "standardize"):
        norm = jnp.sqrt(jnp.sum(c * c, axis=axes, keepdims=True))
        c = c / jnp.maximum(norm, eps)
    return c


@dataclasses.dataclass(frozen=True)
class Identity(Estimator):
    """Straight-through identity backward pass (Sahoo et al., ICLR 2023).

    Forward: ``x = g(P(c))`` where P is the optional projection (`project_cost`). Backward:
    the solver's Jacobian is replaced by ``sign·I``, then the projection's own Jacobian is
    applied: ``dL/dc = J_P(c)ᵀ (sign · dL/dx)``. For a *minimising* solver x moves against c,
    so ``neg_identity`` (sign = -1) is the variant that descends; ``identity`` (sign = +1) is
    the literal identity, kept for maximisation-style conventions and comparison.

    Projections change the forward solution unless the solver is invariant to them: "norm"
    never changes an argmin; "mean" does unless ``sum(x)`` is the same for all of Ω (and it
    makes costs negative, which oracles such as Dijkstra reject).

    Args:
      projection: None, ``"mean"``, ``"norm"`` or ``"standardize"``.

    Raises:
      ValueError: unknown projection.
    """

    projection: str | None = None
    name: ClassVar[str] = "identity"
    needs_key: ClassVar[bool] = False
    sign: ClassVar[float] = 1.0
    no_progress_advice: ClassVar[str] = (
        "estimator='neg_identity' (the sign that descends for a minimising solver); "
        "projection='norm' or 'standardize'; or optimizer=optax.sgd(lr) (Adam's per-entry "
        "step can shift every cost equally, which moves no argmin)")

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise ValueError(f"{self.name}: projection must be one of {PROJECTIONS}, got "
                             f"{self.projection!r}")

    def forward(self, solver, executor, c, key):
        cp = project_cost(c, event_axes(solver, c), self.projection)
        x, status = call_solver(solver, executor, cp)
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        if self.projection is None:
            return self.sign * g
        _, vjp = jax.vjp(lambda cc: project_cost(cc, event_axes(solver, cc), self.projection), c)
        return vjp(self.sign * g)[0]


@dataclasses.dataclass(frozen=True)
class NegIdentity(Identity):
    """Negative identity backward pass, ``dL/dc = -J_P(c)ᵀ dL/dx`` (Sahoo et al., ICLR 2023).

    See `Identity`; this is the sign that matches a minimising solver.
    """

    name: ClassVar[str] = "neg_identity"
    sign: ClassVar[float] = -1.0
    no_progress_advice: ClassVar[str] = (
        "projection='norm' or 'standardize' (with an Adam optimizer), or "
        "optimizer=optax.sgd(lr) with a larger lr (Adam's per-entry step can shift every "
        "cost equally, which moves no argmin)")

    def default_optimizer(self, lr: float) -> optax.GradientTransformation:
        """``optax.sgd(lr)`` without a projection, else ``optax.adam(lr)``.

        Without a projection the gradient ``-df/dx`` often has the same sign in every entry
        (every x_ij raises a load-based cost); Adam's per-entry normalisation then shifts all
        costs by the same step, which changes no argmin, and x never moves (measured in
        bench/estimator_defaults.py). SGD keeps the entries' relative sizes."""
        return optax.sgd(lr) if self.projection is None else optax.adam(lr)
