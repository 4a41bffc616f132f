"""Perturbed optimizers (Berthet et al., NeurIPS 2020).

Q. Berthet, M. Blondel, O. Teboul, M. Cuturi, J.-P. Vert, F. Bach. "Learning with
Differentiable Perturbed Optimizers". NeurIPS 2020.

Berthet et al. write the maximisation ``y*(θ) = argmax_{y} θ·y`` and its perturbation
``ȳ_σ(θ) = E[y*(θ + σZ)]`` with ``Z ~ μ ∝ exp(-ν(z))``, whose Jacobian is
``J ȳ_σ(θ) = E[y*(θ + σZ) ∇ν(Z)ᵀ] / σ`` (their Prop. 3.1). A minimising solver is
``g(c) = y*(-c)``, so we use ``θ = -c``:

    x̄_σ(c) = E[g(c - σZ)],        d x̄_σ / dc = -E[g(c - σZ) ∇ν(Z)ᵀ] / σ.

With Gumbel noise over the simplex this gives exactly ``x̄_σ(c) = softmax(-c/σ)``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from surco.estimators.base import Estimator, call_solver, check_positive, event_axes

NOISES = ("gaussian", "gumbel")


def sample_noise(key, noise: str, shape, dtype):
    """Draw Z and ∇ν(Z) for the noise law μ ∝ exp(-ν).

    Gaussian: ν(z) = ‖z‖²/2, ∇ν(z) = z. Gumbel (standard, max-stable): ν(z) = z + e^{-z},
    ∇ν(z) = 1 - e^{-z}.
    """
    if noise == "gaussian":
        z = jax.random.normal(key, shape, dtype)
        return z, z
    z = jax.random.gumbel(key, shape, dtype)
    return z, 1.0 - jnp.exp(-z)


def check_perturbation(owner: str, sigma, n, noise) -> None:
    """Validate the perturbation settings shared by `Perturbed` and
    `surco.estimators.fenchel_young_loss`: ``sigma`` > 0, ``n`` an int >= 1, ``noise`` one
    of `NOISES`.

    Raises:
      ValueError: naming ``owner`` and the bad setting.
    """
    check_positive(owner, "sigma (σ)", sigma)
    check_positive(owner, "n (number of samples)", n, integer=True, minimum=1, strict=False)
    if noise not in NOISES:
        raise ValueError(f"{owner}: noise must be one of {NOISES}, got {noise!r}")


@dataclasses.dataclass(frozen=True)
class Perturbed(Estimator):
    """Perturbed optimizer (Berthet et al., NeurIPS 2020), forward and Jacobian by Monte Carlo.

    Forward: ``x̄ = (1/n) Σ_i g(c - σ Z_i)``, the n perturbed problems solved in one
    ``solve_batch``. The output is the mean solution (a point of conv(Ω), not of Ω).
    Backward (Berthet et al., Prop. 3.1, with θ = -c):
    ``dL/dc = -(1/(nσ)) Σ_i (g_x · x_i) ∇ν(Z_i)`` with the same samples.

    Under vmap with an unbatched key every batch entry sees the same noise samples (common
    random numbers); vmap the key too for independent noise. Leading batch dimensions of c
    get independent noise.

    Args:
      sigma: noise scale σ > 0.
      n: number of samples, >= 1.
      noise: ``"gaussian"`` or ``"gumbel"``.

    Raises:
      ValueError: ``sigma <= 0``, ``n < 1`` or an unknown noise.
    """

    sigma: float = 1.0
    n: int = 8
    noise: str = "gaussian"
    name: ClassVar[str] = "perturbed"
    needs_key: ClassVar[bool] = True
    forward_is_solution: ClassVar[bool] = False   # the mean of the samples, in conv(Ω)
    no_progress_advice: ClassVar[str] = (
        "a larger sigma (σ, on the scale of the cost's differences), more samples n, or a "
        "larger lr")

    def __post_init__(self):
        check_perturbation("perturbed", self.sigma, self.n, self.noise)

    def default_optimizer(self, lr: float) -> optax.GradientTransformation:
        """``optax.sgd(lr)``: the Monte Carlo gradient is noisy in every entry, and Adam's
        per-entry normalisation gives the noise of entries with a near-zero mean gradient
        the same step as the signal (on the toy assignment, bench/estimator_defaults.py:
        mean gap 30 % with Adam against 20 % with SGD at lr 0.1)."""
        return optax.sgd(lr)

    def _samples(self, solver, executor, c, key):
        z, dnu = sample_noise(key, self.noise, (self.n,) + c.shape, c.dtype)
        xs, status = call_solver(solver, executor, c[None] - self.sigma * z)
        return xs, status, dnu

    def forward(self, solver, executor, c, key):
        xs, status, dnu = self._samples(solver, executor, c, key)
        return jnp.mean(xs, axis=0), jnp.max(status, axis=0), (xs, dnu)

    def backward(self, solver, executor, c, key, x, res, g):
        xs, dnu = res
        axes = tuple(a + 1 for a in event_axes(solver, c))
        w = jnp.sum(xs * g[None], axis=axes, keepdims=True)       # (n, ..., 1...)
        return -jnp.mean(w * dnu, axis=0) / self.sigma
