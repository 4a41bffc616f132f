"""Nonlinear assignment: Ω, the objective f, instances and the exact optimum by enumeration.

n tasks go to m machines, each task to exactly one machine and each machine taking at most
``cap`` tasks. Task i on machine j costs ``a[i, j]`` and adds load ``w[i, j]``; the objective
adds a quadratic penalty on each machine's load, so it is not linear in x:

    f(x; y) = Σ_ij a_ij x_ij + ρ Σ_j (Σ_i w_ij x_ij)²

(quadratic load balancing / a generalised quadratic assignment). It is small enough to
enumerate for n <= 12 with m = 3, which gives the exact optimum to measure SurCo against.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from surco.checks import check_int, is_number
from surco.problem import Problem
from surco.solvers import LinearSpec


class Instance(NamedTuple):
    """One instance: linear costs ``a`` (n, m), loads ``w`` (n, m), penalty ``rho`` ()."""

    a: jax.Array
    w: jax.Array
    rho: jax.Array


def capacity(n: int, m: int) -> int:
    """Tasks a machine may take: one more than an even share."""
    return math.ceil(n / m) + 1


def space(n: int, m: int) -> LinearSpec:
    """Ω: x ∈ {0,1}^{n×m}, Σ_j x_ij = 1 for every task, Σ_i x_ij <= cap for every machine."""
    A_eq = sp.kron(sp.eye(n), np.ones((1, m)))
    A_ub = sp.kron(np.ones((1, n)), sp.eye(m))
    return LinearSpec(shape=(n, m), A_eq=A_eq, b_eq=np.ones(n), A_ub=A_ub,
                      b_ub=np.full(m, capacity(n, m)), lb=0, ub=1, integer=True,
                      name=f"assignment-{n}x{m}")


def objective(x: jax.Array, y: Instance) -> jax.Array:
    """f(x; y) = Σ a·x + ρ Σ_j load_j², load_j = Σ_i w_ij x_ij."""
    load = jnp.sum(x * y.w, axis=0)
    return jnp.sum(x * y.a) + y.rho * jnp.sum(load ** 2)


def _arrays(y: Instance) -> tuple[np.ndarray, np.ndarray, float]:
    return (np.asarray(y.a, np.float64), np.asarray(y.w, np.float64), float(y.rho))


def evaluate_batch(X: np.ndarray, y: Instance) -> np.ndarray:
    """f of many plans at once in float64 numpy: X (B, n, m) -> (B,).

    Raises:
      ValueError: X not shaped (B, n, m) for this instance.
    """
    a, w, rho = _arrays(y)
    X = np.asarray(X, np.float64)
    if X.ndim != 3 or X.shape[1:] != a.shape:
        raise ValueError(f"evaluate_batch: X must have shape (B, {a.shape[0]}, {a.shape[1]}), "
                         f"got {X.shape}")
    load = np.einsum("bij,ij->bj", X, w)
    return np.einsum("bij,ij->b", X, a) + rho * np.sum(load * load, axis=1)


def evaluate(x: np.ndarray, y: Instance) -> float:
    """The true cost f(x; y) of one plan x (n, m) in float64 (lower is better).

    Raises:
      ValueError: x not shaped (n, m) for this instance.
    """
    x = np.asarray(x, np.float64)
    if x.shape != tuple(np.shape(y.a)):
        raise ValueError(f"evaluate: x must have shape {tuple(np.shape(y.a))}, got {x.shape}")
    return float(evaluate_batch(x[None], y)[0])


def features(y: Instance) -> jax.Array:
    """Per-task features (n, 3m): the task's costs and loads on every machine, and its load
    times the machine's mean total load (w_ij · Σ_k w_kj / m), the interaction term that the
    quadratic objective charges a task for."""
    expected = y.w * (jnp.sum(y.w, axis=0, keepdims=True) / y.w.shape[1])
    return jnp.concatenate([y.a, y.w, y.rho * expected], axis=1)


def make_problem(n: int, m: int) -> Problem:
    """The `Problem` for n tasks on m machines (one fixed Ω for all instances); its
    ``evaluate`` is f in float64 (`evaluate`)."""
    return Problem(name=f"nonlinear-assignment-{n}x{m}", space=space(n, m),
                   objective=objective, features=features, evaluate=evaluate)


def generate(count: int, seed: int = 0, *, n: int = 8, m: int = 3,
             rho: float = 1.0) -> list[Instance]:
    """``FAMILY.generate``: ``count`` instances of ``n`` tasks on ``m`` machines, drawn in
    turn from one numpy stream seeded by ``seed``: a ~ U(0, 1), w ~ U(0.5, 1.5)
    (heterogeneous machines), penalty ρ = ``rho`` / n. Deterministic, and ``generate(j,
    seed)`` is the first j of ``generate(count, seed)``.

    The loads are large enough that the quadratic term trades off against the linear costs,
    so neither the linear optimum nor a balanced split alone is optimal.

    Raises:
      ValueError: naming the argument: count, n or m < 1, seed < 0, or rho not a finite
        number >= 0.
    """
    who = "assignment.generate"
    count = check_int("count", count, 1, who=who)
    seed = check_int("seed", seed, 0, who=who)
    n, m = check_int("n", n, 1, who=who), check_int("m", m, 1, who=who)
    if not (is_number(rho) and math.isfinite(rho) and rho >= 0):
        raise ValueError(f"{who}: rho must be a finite number >= 0, got {rho!r}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        out.append(Instance(a=jnp.asarray(rng.uniform(0, 1, (n, m)), jnp.float32),
                            w=jnp.asarray(rng.uniform(0.5, 1.5, (n, m)), jnp.float32),
                            rho=jnp.asarray(rho / n, jnp.float32)))
    return out


def brute_force(y: Instance, chunk: int = 200_000) -> tuple[np.ndarray, float]:
    """Exact optimum by enumerating every feasible assignment (m^n candidates).

    Returns (x*, f*). Raises ValueError when m^n exceeds 2e7.
    """
    a, w, rho = _arrays(y)
    n, m = a.shape
    if m ** n > 2e7:
        raise ValueError(f"brute_force: {m}^{n} assignments is too many to enumerate")
    cap = capacity(n, m)
    best_f, best = np.inf, None
    rows = np.arange(n)
    it = itertools.product(range(m), repeat=n)
    while True:
        block = np.array(list(itertools.islice(it, chunk)), dtype=np.int64)
        if block.size == 0:
            break
        counts = np.stack([(block == j).sum(1) for j in range(m)], 1)
        block = block[(counts <= cap).all(1)]
        if not len(block):
            continue
        lin = a[rows, block].sum(1)
        loads = np.stack([np.where(block == j, w[rows, j], 0.0).sum(1) for j in range(m)], 1)
        f = lin + rho * (loads ** 2).sum(1)
        i = int(np.argmin(f))
        if f[i] < best_f:
            best_f, best = float(f[i]), block[i]
    x = np.zeros((n, m))
    x[rows, best] = 1.0
    return x, best_f


def mean_cost_heuristic(y: Instance) -> np.ndarray:
    """The linear cost ∇f(x̄) at the mean point x̄ = 1/m of the assignment set: solving with
    it is the classical 'linearise at the centre' heuristic."""
    n, m = y.a.shape
    return np.asarray(jax.grad(objective)(jnp.full((n, m), 1.0 / m), y), np.float64)


def random_plan(y: Instance, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A uniformly random machine for each task in a random order, among the machines with
    room left: a feasible plan (n, m) (cap·m >= n always leaves room)."""
    n, m = np.shape(y.a)
    rng = np.random.default_rng(rng)
    cap = capacity(n, m)
    used = np.zeros(m, int)
    x = np.zeros((n, m))
    for i in rng.permutation(n):
        j = int(rng.choice(np.flatnonzero(used < cap)))
        x[i, j] = 1.0
        used[j] += 1
    return x
