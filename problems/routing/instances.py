"""Grid graphs and seeded instances of the stochastic on-time-arrival shortest path.

Every edge e of an n×n grid (directed, both ways between 4-neighbours) has an independent
Normal travel time with mean μ_e and variance σ²_e; a path x ∈ {0,1}^E arrives on time with
probability ``P(μ·x + sqrt(σ²·x)·N(0,1) <= T) = Φ((T − μ·x) / sqrt(σ²·x))``
(Nikolova, Brand & Karger, "Optimal route planning under uncertainty", ICAPS 2006; the
benchmark of SurCo, Ferber et al. ICML 2023 §5.3, and LANCER, Zharmagambetov et al. NeurIPS
2023).

Two regimes:

* ``"standard"`` (SurCo / LANCER): μ_e ~ U(0.1, 1), σ²_e ~ U(0.1, 0.3)·(1 − μ_e), deadline
  T = k × the mean time of the least-expected-time (LET) path, k ∈ {0.9, 1.0, 1.1}. On 5×5
  grids the LET path is almost always the exact optimum here (at k = 1 it always is, since
  P = 1/2 for it and no path with a larger mean can reach 1/2), so the regime is weak.
* ``"risk"`` (risk-sensitive, this project): every edge is, with probability ``p_fast``,
  *fast and unreliable* (μ ~ U(0.2, 0.6), σ² ~ U(0.5, 1.0)) or else *slow and reliable*
  (μ ~ U(0.4, 0.8), σ² ~ U(0.01, 0.05)); deadline T = μ_LET + q·σ_LET with q ∈ {−1, 1, 2}.
  Tight deadlines (q < 0) reward gambling on variance, loose ones (q > 0) reward reliable
  edges, so the LET path is often beaten (the share is measured in ``bench/routing.py``).

An instance is a dict of numpy arrays (a pytree): ``mu`` (E,), ``var`` (E,) and ``deadline``
(a 0-d array); the grid size is implied by E = 4·n·(n − 1).
"""
from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np

from surco.solvers import ShortestPathOracle

Instance = dict  # {"mu": (E,), "var": (E,), "deadline": ()}

#: defaults of the two regimes (ranges of the uniform draws).
STANDARD = {"mu_range": (0.1, 1.0), "var_range": (0.1, 0.3)}
RISK = {"p_fast": 0.5, "fast_mu": (0.2, 0.6), "fast_var": (0.5, 1.0),
        "slow_mu": (0.4, 0.8), "slow_var": (0.01, 0.05)}


def _check_n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or int(n) < 2:
        raise ValueError(f"grid size n must be an int >= 2, got {n!r}")
    return int(n)


@functools.lru_cache(maxsize=None)
def _grid(n: int) -> tuple[np.ndarray, int, int]:
    edges = []
    for r in range(n):
        for c in range(n):
            v = r * n + c
            if c + 1 < n:
                edges += [(v, v + 1), (v + 1, v)]
            if r + 1 < n:
                edges += [(v, v + n), (v + n, v)]
    e = np.asarray(edges, dtype=np.int64)
    e.setflags(write=False)
    return e, 0, n * n - 1


def grid_graph(n: int) -> tuple[int, np.ndarray, int, int]:
    """The directed n×n grid: ``(num_nodes, edges (E, 2), source, sink)``.

    Node ``r·n + c`` sits at row r, column c; every pair of 4-neighbours is joined by one edge
    each way, so E = 4·n·(n − 1). The source is the top-left corner (node 0), the sink the
    bottom-right one (node n² − 1).

    Raises:
      ValueError: if n is not an int >= 2.
    """
    n = _check_n(n)
    edges, s, t = _grid(n)
    return n * n, edges, s, t


def grid_size(num_edges: int) -> int:
    """The n of a grid with ``num_edges`` = 4·n·(n − 1) edges.

    Raises:
      ValueError: if no grid has that many edges.
    """
    n = int(round((1 + math.sqrt(1 + num_edges)) / 2))
    if n < 2 or 4 * n * (n - 1) != num_edges:
        raise ValueError(f"{num_edges} edges is not 4·n·(n−1) for any grid size n >= 2")
    return n


@functools.lru_cache(maxsize=None)
def oracle(n: int) -> ShortestPathOracle:
    """The Dijkstra oracle over s–t paths of the n×n grid (shared, built once per n)."""
    num_nodes, edges, s, t = grid_graph(n)
    return ShortestPathOracle(num_nodes, edges, s, t, name=f"grid{n}x{n}-path")


def _uniform(rng, lo_hi, size, what):
    lo, hi = (float(v) for v in lo_hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{what} must be a finite range (lo, hi) with lo <= hi, got {lo_hi!r}")
    return rng.uniform(lo, hi, size)


def let_stats(n: int, mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The least-expected-time path: ``(x, mean, std)`` (Dijkstra on μ)."""
    x = oracle(n).solve(mu).x
    return x, float(mu @ x), float(math.sqrt(var @ x))


def generate(n: int, seed: int, *, regime: Literal["standard", "risk"] = "standard",
             k: float = 1.0, q: float = 1.0, mu_range=STANDARD["mu_range"],
             var_range=STANDARD["var_range"], p_fast: float = RISK["p_fast"],
             fast_mu=RISK["fast_mu"], fast_var=RISK["fast_var"], slow_mu=RISK["slow_mu"],
             slow_var=RISK["slow_var"]) -> Instance:
    """One seeded instance on the n×n grid.

    Args:
      n: grid size (>= 2).
      seed: numpy seed; the same (n, seed, regime, parameters) always gives the same instance.
      regime: ``"standard"`` (deadline ``k`` × LET mean) or ``"risk"`` (deadline LET mean +
        ``q`` × LET standard deviation); see the module docstring for the distributions.
      k: deadline factor of the standard regime (the benchmark uses 0.9, 1.0, 1.1).
      q: deadline offset of the risk regime in LET standard deviations (bench: −1, 1, 2).
      mu_range, var_range: standard regime, μ ~ U(mu_range), σ² ~ U(var_range)·(1 − μ).
      p_fast, fast_mu, fast_var, slow_mu, slow_var: risk regime, probability of a fast edge
        and the uniform ranges of μ and σ² for fast and slow edges.

    Returns:
      ``{"mu": (E,), "var": (E,), "deadline": ()}`` as float64 numpy arrays.

    Raises:
      ValueError: bad n, regime, ranges (lo > hi), k <= 0, p_fast outside [0, 1], or draws
        that give a nonpositive mean or variance, or a nonpositive deadline.
    """
    n = _check_n(n)
    E = 4 * n * (n - 1)
    rng = np.random.default_rng(seed)
    if regime == "standard":
        if not k > 0:
            raise ValueError(f"k (deadline factor) must be > 0, got {k}")
        mu = _uniform(rng, mu_range, E, "mu_range")
        var = _uniform(rng, var_range, E, "var_range") * (1.0 - mu)
    elif regime == "risk":
        if not 0.0 <= p_fast <= 1.0:
            raise ValueError(f"p_fast must lie in [0, 1], got {p_fast}")
        fast = rng.random(E) < p_fast
        mu = np.where(fast, _uniform(rng, fast_mu, E, "fast_mu"), _uniform(rng, slow_mu, E, "slow_mu"))
        var = np.where(fast, _uniform(rng, fast_var, E, "fast_var"),
                       _uniform(rng, slow_var, E, "slow_var"))
    else:
        raise ValueError(f"regime must be 'standard' or 'risk', got {regime!r}")
    if np.any(mu <= 0) or np.any(var <= 0):
        raise ValueError("edge means and variances must be > 0; check the ranges "
                         f"(min mean {mu.min():.3g}, min variance {var.min():.3g})")
    _, m, s = let_stats(n, mu, var)
    T = k * m if regime == "standard" else m + q * s
    if not T > 0:
        raise ValueError(f"deadline {T:.4g} is not positive (LET mean {m:.4g}, std {s:.4g}, q={q})")
    return {"mu": mu, "var": var, "deadline": np.asarray(T, dtype=np.float64)}


def check_instance(instance: Instance) -> int:
    """Validate an instance; return its grid size n.

    Raises:
      ValueError: missing keys, wrong shapes, E not a grid's edge count, nonpositive or
        non-finite means/variances, or a non-finite deadline.
    """
    try:
        mu, var, T = (np.asarray(instance[k], dtype=np.float64) for k in ("mu", "var", "deadline"))
    except (KeyError, TypeError) as exc:
        raise ValueError("a routing instance is a dict with 'mu', 'var' and 'deadline'") from exc
    if mu.ndim != 1 or var.shape != mu.shape:
        raise ValueError(f"instance['mu'] and ['var'] must be 1-D of equal length, got "
                         f"{mu.shape} and {var.shape}")
    if T.shape != ():
        raise ValueError(f"instance['deadline'] must be a scalar, got shape {T.shape}")
    n = grid_size(mu.shape[0])
    if not (np.all(np.isfinite(mu)) and np.all(mu > 0)):
        raise ValueError("instance['mu'] must be finite and > 0")
    if not (np.all(np.isfinite(var)) and np.all(var > 0)):
        raise ValueError("instance['var'] must be finite and > 0")
    if not np.isfinite(T):
        raise ValueError("instance['deadline'] must be finite")
    return n
