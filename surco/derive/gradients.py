"""f's value and gradient as NumPy functions of x, for the derived moves and starts: jitted
once per objective (weakly keyed by it, so a discarded problem frees its compiled code)."""
from __future__ import annotations

import weakref
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from surco.problem import Instance, Problem, ProblemError

__all__ = ["value_and_gradient", "gradient_cost"]

_GRAD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def value_and_gradient(problem: Problem, instance: Instance
                       ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``x -> (f(x), ∇f(x))`` (a float and a flat float64 array) of the problem's objective on
    one instance, x shaped as f expects; jitted once per objective (and shapes), shared with
    `gradient_cost`. Values are returned as computed, finite or not."""
    fn = _GRAD.get(problem.objective)
    if fn is None:
        fn = _GRAD[problem.objective] = jax.jit(jax.value_and_grad(problem.objective))

    def value_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = fn(jnp.asarray(x, jnp.float32), instance)
        return float(v), np.asarray(g, np.float64).reshape(-1)
    return value_grad


def gradient_cost(problem: Problem, instance: Instance) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> ∇f(x)`` (flat float64) of the problem's objective on one instance
    (`value_and_gradient`'s gradient).

    Raises (when called):
      ProblemError: the gradient is not finite at x."""
    vg = value_and_gradient(problem, instance)

    def grad(x: np.ndarray) -> np.ndarray:
        g = vg(x)[1]
        if not np.all(np.isfinite(g)):
            raise ProblemError(f"problem {problem.name!r}: ∇f is not finite at the current x")
        return g
    return grad
