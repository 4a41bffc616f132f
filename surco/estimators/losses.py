"""Supervised decision losses for priors trained with known optimal solutions.

* Fenchel–Young loss of the perturbed optimizer (Berthet et al., NeurIPS 2020, §4).
* SPO+ (Elmachtoub & Grigas, "Smart 'Predict, then Optimize'", Management Science 2022).

Both take a predicted cost ``c`` (shape ``(..., *solver.shape)``) and return one loss per
leading entry, with the papers' gradients attached by `jax.custom_vjp`; every batch of solves
(perturbations, leading entries, vmap) is one ``solve_batch``.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from surco.estimators.base import call_solver, check_cost, event_axes
from surco.estimators.perturbed import check_perturbation, sample_noise
from surco.solvers import Solver

__all__ = ["fenchel_young_loss", "spo_plus_loss"]


def _check_like(what: str, solver: Solver, c, other):
    other = jnp.asarray(other, dtype=c.dtype)
    if other.shape != c.shape:
        raise ValueError(f"{what} has shape {tuple(other.shape)}, expected the cost's shape "
                         f"{tuple(c.shape)}")
    return other


def _sum_event(solver, a):
    return jnp.sum(a, axis=event_axes(solver, a))


# -- Fenchel–Young ------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _fy(solver, executor, sigma, n, noise, c, x_true, key):
    return _fy_fwd(solver, executor, sigma, n, noise, c, x_true, key)[0]


def _fy_fwd(solver, executor, sigma, n, noise, c, x_true, key):
    z, _ = sample_noise(key, noise, (n,) + c.shape, c.dtype)
    cz = c[None] - sigma * z
    xs, _ = call_solver(solver, executor, cz)
    min_vals = jnp.sum(cz * xs, axis=tuple(a + 1 for a in event_axes(solver, c)))
    loss = _sum_event(solver, c * x_true) - jnp.mean(min_vals, axis=0)
    return loss, (jnp.mean(xs, axis=0), x_true)


def _fy_bwd(solver, executor, sigma, n, noise, res, gl):
    x_bar, x_true = res
    gl = jnp.reshape(gl, gl.shape + (1,) * len(solver.shape))
    return gl * (x_true - x_bar), None, None


_fy.defvjp(_fy_fwd, _fy_bwd)


def fenchel_young_loss(solver: Solver, c: jax.Array, x_true: jax.Array, key: jax.Array, *,
                       sigma: float = 1.0, n: int = 8, noise: str = "gaussian",
                       executor=None) -> jax.Array:
    """Perturbed Fenchel–Young loss (Berthet et al., NeurIPS 2020, Eq. 6) for a minimiser.

    With θ = -c, ``L(c; x_true) = F_σ(-c) + c·x_true`` where ``F_σ(θ) = E[max_{y∈Ω} (θ+σZ)·y]``
    (the constant Ω*(x_true) is dropped, so the value is the loss up to a constant in c),
    estimated with n samples: ``c·x_true - (1/n) Σ_i min_x (c - σZ_i)·x``. Its gradient is
    ``x_true - x̄_σ(c)`` with the same samples (Berthet et al., Prop. 4.1), which is zero when
    the perturbed solution equals the target.

    Args:
      solver: the solver of Ω.
      c: predicted cost, ``(..., *solver.shape)``, floating.
      x_true: target solution, same shape.
      key: PRNG key.
      sigma, n, noise: as in `Perturbed`.
      executor: optional executor for ``solve_batch``.

    Returns:
      the loss per leading entry, shape ``c.shape[:-k]`` (a scalar for one instance).

    Raises:
      ValueError: bad shapes, NaN cost, ``sigma <= 0``, ``n < 1``, unknown noise, no key.
    """
    check_perturbation("fenchel_young_loss", sigma, n, noise)
    c = check_cost("fenchel_young_loss", solver, c)
    x_true = _check_like("fenchel_young_loss: x_true", solver, c, x_true)
    if key is None:
        raise ValueError("fenchel_young_loss: pass key=jax.random.key(seed)")
    return _fy(solver, executor, float(sigma), int(n), noise, c, x_true, key)


# -- SPO+ ----------------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _spo(solver, executor, c_hat, c_true, x_true):
    return _spo_fwd(solver, executor, c_hat, c_true, x_true)[0]


def _spo_fwd(solver, executor, c_hat, c_true, x_true):
    q = 2.0 * c_hat - c_true
    x_q, _ = call_solver(solver, executor, q)
    z_true = _sum_event(solver, c_true * x_true)
    loss = -_sum_event(solver, q * x_q) + 2.0 * _sum_event(solver, c_hat * x_true) - z_true
    return loss, (x_q, x_true)


def _spo_bwd(solver, executor, res, gl):
    x_q, x_true = res
    gl = jnp.reshape(gl, gl.shape + (1,) * len(solver.shape))
    return gl * 2.0 * (x_true - x_q), None, None


_spo.defvjp(_spo_fwd, _spo_bwd)


def spo_plus_loss(solver: Solver, c_hat: jax.Array, c_true: jax.Array, x_true: jax.Array, *,
                  executor=None) -> jax.Array:
    """SPO+ loss (Elmachtoub & Grigas, Management Science 2022, Eq. 8) for a minimiser.

    ``ℓ(ĉ; c) = -min_x (2ĉ - c)·x + 2ĉ·x*(c) - c·x*(c)``, a convex upper bound on the regret
    ``c·x*(ĉ) - c·x*(c)``, with subgradient ``2(x*(c) - x*(2ĉ - c))`` with respect to ĉ (no
    gradient flows to c or x*(c)). One solve (at 2ĉ - c) per instance.

    Args:
      solver: the solver of Ω.
      c_hat: predicted cost, ``(..., *solver.shape)``, floating.
      c_true: the true cost, same shape.
      x_true: an optimal solution for c_true, same shape.
      executor: optional executor for ``solve_batch``.

    Returns:
      the loss per leading entry, shape ``c_hat.shape[:-k]``; >= 0 up to solver tolerance
      when x_true is optimal for c_true.

    Raises:
      ValueError: bad shapes or NaN costs.
    """
    c_hat = check_cost("spo_plus_loss (c_hat)", solver, c_hat)
    c_true = _check_like("spo_plus_loss: c_true", solver, c_hat,
                         check_cost("spo_plus_loss (c_true)", solver, c_true))
    x_true = _check_like("spo_plus_loss: x_true", solver, c_hat, x_true)
    return _spo(solver, executor, c_hat, c_true, x_true)
