"""The on-time-arrival routing problem as a SurCo `Problem`.

The on-time probability of a path x is P = Φ(z) with z = (T − μ·x) / sqrt(σ²·x). Φ is
strictly increasing, so −z, −log P and −P have the same minimisers; they differ in how
their gradients scale, which is what SurCo's estimators see:

* ``surrogate="z"`` (default): f = −z. Its gradient, ∂z/∂x_e = −(μ_e + z·σ²_e/(2s))/s with
  s = sqrt(σ²·x), is O(1/s) for every deadline; note that it is proportional to the
  mean–risk cost μ + γσ² with γ = z/(2s) (Nikolova et al. 2006), so a step of SurCo moves
  c toward the mean–risk cost whose γ fits the current path.
* ``"logprob"``: f = −log Φ(z). For loose deadlines (z ≫ 0) −log Φ(z) ≈ φ(z)/z and the
  gradient vanishes exponentially (≈ 1e-12 at z = 7, common in the risk regime with q = 2).
* ``"prob"``: f = −P, flat in both tails.

The reported metric (``evaluate``) is always −P, in float64.

Ω comes two ways that give the same paths: the Dijkstra oracle (``omega="oracle"``) and the
s–t flow polytope as a `LinearSpec` (``omega="spec"``; totally unimodular, so an LP vertex is
a path). Both need c > 0, so SurCo's parameters go through ``softplus``
(``cost_transform``); with a strictly positive cost no zero-cost cycle can join the path.
Estimators that re-solve at a perturbed cost (blackbox: c + λ·∂f/∂x; perturbed: c + σZ) may
hand the solver negative entries, which Dijkstra rejects; use ``omega="spec"`` with them (the
flow LP accepts any cost, bounded by 0 <= x <= 1; cycles that appear in a perturbed solve
only shape the gradient, the forward path always comes from c > 0).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr
from scipy.special import ndtr as np_ndtr

import surco
from surco import Problem

from .instances import Instance, grid_graph, grid_size, oracle


def z_score(x: jax.Array, instance: Instance) -> jax.Array:
    """``(T − μ·x) / sqrt(σ²·x)`` for a path (or any flow with σ²·x > 0); JAX, differentiable."""
    mu = jnp.asarray(instance["mu"])
    var = jnp.asarray(instance["var"])
    x = jnp.asarray(x, dtype=mu.dtype)
    return (jnp.asarray(instance["deadline"], dtype=mu.dtype) - mu @ x) / jnp.sqrt(var @ x)


def neg_log_prob(x: jax.Array, instance: Instance) -> jax.Array:
    """``−log P(on time) = −log Φ(z)`` (minimised)."""
    return -log_ndtr(z_score(x, instance))


def neg_z(x: jax.Array, instance: Instance) -> jax.Array:
    """``−z = (μ·x − T) / sqrt(σ²·x)`` (minimised): same minimisers as −P (Φ is increasing)."""
    return -z_score(x, instance)


def neg_prob(x: jax.Array, instance: Instance) -> jax.Array:
    """``−P(on time) = −Φ(z)`` (minimised)."""
    return -ndtr(z_score(x, instance))


def _z_np(x, instance: Instance) -> tuple[np.ndarray, np.ndarray]:
    """``(X, z)`` in float64 with ``z = (T − μ·x) / sqrt(σ²·x)`` for one path or a batch.

    Raises:
      ValueError: x not shaped (E,) or (B, E), or some row with σ²·x <= 0 (an empty path).
    """
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    X = np.asarray(x, np.float64)
    if X.shape[-1:] != mu.shape or X.ndim not in (1, 2):
        raise ValueError(f"x must have shape ({mu.shape[0]},) or (B, {mu.shape[0]}), got {X.shape}")
    v = X @ var
    if np.any(v <= 0):
        raise ValueError("x has σ²·x <= 0: not a path")
    return X, (float(instance["deadline"]) - X @ mu) / np.sqrt(v)


def on_time_probability(x, instance: Instance) -> np.ndarray | float:
    """``P(arrival <= T) = Φ((T − μ·x) / sqrt(σ²·x))`` in float64 for one path ``(E,)`` or a
    batch ``(B, E)`` (returns a float, or an array of B).

    Raises:
      ValueError: x not shaped (E,) or (B, E), or some row with σ²·x <= 0 (an empty path).
    """
    X, z = _z_np(x, instance)
    p = np_ndtr(z)
    return float(p) if X.ndim == 1 else p


def late_probability(x, instance: Instance) -> np.ndarray | float:
    """``P(arrival > T) = 1 − P(on time) = Φ((μ·x − T) / sqrt(σ²·x))`` in float64, for one
    path ``(E,)`` or a batch ``(B, E)``; computed as Φ(−z), so it keeps its relative precision
    when it is tiny (loose deadlines). The cost `FAMILY` reports: positive, lower is better,
    so means of it can be compared as ratios.

    Raises:
      ValueError: as `on_time_probability`.
    """
    X, z = _z_np(x, instance)
    p = np_ndtr(-z)
    return float(p) if X.ndim == 1 else p


def path_nodes(x, n: int) -> list[int]:
    """The node sequence of a simple source→sink path given as an edge indicator x.

    Raises:
      ValueError: if x is not 0/1, or its edges do not form exactly one simple path from the
        top-left to the bottom-right corner (extra edges, cycles, branches, a gap).
    """
    num_nodes, edges, s, t = grid_graph(n)
    x = np.asarray(x, np.float64).reshape(-1)
    if x.shape != (len(edges),):
        raise ValueError(f"x must have {len(edges)} entries for a {n}×{n} grid, got {x.shape[0]}")
    if not np.all((np.abs(x) < 1e-6) | (np.abs(x - 1) < 1e-6)):
        raise ValueError("x is not 0/1")
    used = edges[x > 0.5]
    succ: dict[int, int] = {}
    for u, v in used:
        if int(u) in succ:
            raise ValueError(f"node {int(u)} has two outgoing path edges")
        succ[int(u)] = int(v)
    nodes, seen = [s], {s}
    while nodes[-1] != t:
        nxt = succ.get(nodes[-1])
        if nxt is None:
            raise ValueError(f"the path stops at node {nodes[-1]} before the sink {t}")
        if nxt in seen:
            raise ValueError(f"the path revisits node {nxt}")
        nodes.append(nxt)
        seen.add(nxt)
    if len(nodes) - 1 != len(used):
        raise ValueError(f"x has {len(used)} edges but its s–t path uses {len(nodes) - 1} "
                         "(extra edges or cycles)")
    return nodes


def features(instance: Instance) -> jax.Array:
    """Per-edge features for SurCo-prior, shape (E, 6): μ, σ, σ², the deadline per step of a
    shortest (2(n−1)-edge) path ``τ = T / (2(n − 1))``, ``(τ − μ)/σ`` and a constant 1."""
    mu = jnp.asarray(instance["mu"])
    var = jnp.asarray(instance["var"])
    n = grid_size(mu.shape[0])
    tau = jnp.asarray(instance["deadline"], mu.dtype) / (2 * (n - 1))
    sd = jnp.sqrt(var)
    return jnp.stack([mu, sd, var, jnp.broadcast_to(tau, mu.shape), (tau - mu) / sd,
                      jnp.ones_like(mu)], axis=1)


def evaluate(x: np.ndarray, instance: Instance) -> float:
    """True cost of a plan: ``−P(on time)`` (float64; lower is better)."""
    return -on_time_probability(np.asarray(x).reshape(-1), instance)


def make_problem(n: int, *, omega: Literal["oracle", "spec"] = "oracle",
                 surrogate: Literal["z", "logprob", "prob"] = "z") -> Problem:
    """The on-time routing problem on the n×n grid for SurCo.

    Args:
      n: grid size.
      omega: ``"oracle"`` (Dijkstra, `surco.solvers.ShortestPathOracle`) or ``"spec"`` (its
        s–t flow polytope as a `LinearSpec`, for the MILP/LP backends).
      surrogate: ``"z"`` (−z, the default, used by the bench and ``FAMILY``),
        ``"logprob"`` (−log P) or ``"prob"`` (−P); see the module docstring.

    Returns:
      a `surco.Problem` with ``cost_transform=jax.nn.softplus``, per-edge ``features`` and
      ``evaluate`` = −P.

    Raises:
      ValueError: unknown omega or surrogate, or a bad n.
    """
    space = oracle(n)
    if omega == "spec":
        space = space.spec
    elif omega != "oracle":
        raise ValueError(f"omega must be 'oracle' or 'spec', got {omega!r}")
    objectives = {"z": neg_z, "logprob": neg_log_prob, "prob": neg_prob}
    if surrogate not in objectives:
        raise ValueError(f"surrogate must be one of {sorted(objectives)}, got {surrogate!r}")
    # the s–t flow polytope is totally unimodular: its LP optima are paths (relax=True)
    return Problem(name=f"routing-{n}x{n}", space=space, objective=objectives[surrogate],
                   features=features, evaluate=evaluate, cost_transform=jax.nn.softplus,
                   relax=omega == "spec")


def softplus_inverse(c) -> np.ndarray:
    """θ with ``softplus(θ) = c`` (c > 0), e.g. to start SurCo-zero from the LET costs μ.

    Raises:
      ValueError: if some c <= 0.
    """
    c = np.asarray(c, np.float64)
    if np.any(c <= 0):
        raise ValueError("softplus_inverse needs c > 0")
    return c + np.log(-np.expm1(-c))



#: starting costs of `zero_multistart`: name -> instance -> cost (E,) > 0
STARTS = {
    "let": lambda y: np.asarray(y["mu"], np.float64),             # least expected time
    "mean-risk": lambda y: np.asarray(y["mu"], np.float64) + np.asarray(y["var"], np.float64),
    "min-variance": lambda y: np.asarray(y["var"], np.float64),   # most reliable
}


def zero_multistart(problem: Problem, instances: list[Instance], *,
                    starts: tuple[str, ...] = ("let", "mean-risk", "min-variance"),
                    **zero_kwargs) -> list[surco.ZeroResult]:
    """SurCo-zero (Ferber et al. 2023, Alg. 1) from several starting costs, best kept.

    With a large interpolation λ the blackbox estimator's re-solve at c + λ·∂f/∂x returns the
    mean–risk path for γ = z/(2s) of the current path (∂f/∂x is that mean–risk cost, see the
    module docstring), and SurCo-zero stops where that path is the current one (zero
    gradient): a fixed point of Nikolova et al.'s γ iteration. Which fixed point it reaches
    depends on the start. From the LET costs alone it misses the optimum on a few loose-
    deadline instances (the optimum lies between LET and the most reliable path); the
    default starts — LET (γ = 0), μ + σ² (γ = 1) and σ² (γ = ∞) — cover the risk spectrum.
    All starts of all instances run as one batch (one batched solve per step).

    Args:
      problem: from `make_problem` (its ``cost_transform`` is softplus).
      instances: a list of instances.
      starts: names from `STARTS`.
      **zero_kwargs: passed to `surco.zero` (not ``init``).

    Returns:
      one `ZeroResult` per instance: the start with the lowest ``true_cost`` (−P), whose
      ``seconds`` is the batch's wall time per instance (all starts included).

    Raises:
      ValueError: unknown start, an empty list, or ``init`` in zero_kwargs.
    """
    if "init" in zero_kwargs:
        raise ValueError("zero_multistart: the starts set init; do not pass it")
    if not instances:
        raise ValueError("zero_multistart: no instances")
    bad = [s for s in starts if s not in STARTS]
    if bad or not starts:
        raise ValueError(f"zero_multistart: unknown starts {bad}; choose from {sorted(STARTS)}")
    batch = [y for y in instances for _ in starts]
    theta = np.stack([softplus_inverse(STARTS[s](y)) for y in instances for s in starts])
    res = surco.zero(problem, batch, init=theta, **zero_kwargs)
    k = len(starts)
    out = []
    for i in range(len(instances)):
        group = res[i * k:(i + 1) * k]
        best = min(group, key=lambda r: r.true_cost)
        out.append(dataclasses.replace(best, seconds=sum(r.seconds for r in group)))
    return out
