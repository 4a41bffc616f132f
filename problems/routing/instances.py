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

The regimes are `Regime` values (`STANDARD`, `RISK`, or a variant with other ranges).
`make_instance` draws one instance from a seed; `generate` (``FAMILY.generate``) draws
``count`` of them from consecutive seeds.

An instance is a dict of numpy arrays (a pytree): ``mu`` (E,), ``var`` (E,) and ``deadline``
(a 0-d array); the grid size is implied by E = 4·n·(n − 1).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import numpy as np

from surco.checks import check_int, check_range, is_number
from surco.solvers import ShortestPathOracle

Instance = dict  # {"mu": (E,), "var": (E,), "deadline": ()}

_RANGES = ("mu_range", "var_range", "fast_mu", "fast_var", "slow_mu", "slow_var")


@dataclasses.dataclass(frozen=True)
class Regime:
    """The distribution of the edge times (see the module docstring), validated on
    construction; `STANDARD` and `RISK` are the presets, and e.g.
    ``dataclasses.replace(RISK, p_fast=0.3)`` a variant.

    Attributes:
      name: ``"standard"`` (deadline ``k`` × LET mean) or ``"risk"`` (deadline LET mean +
        ``q`` × LET standard deviation).
      mu_range, var_range: standard regime, μ ~ U(mu_range), σ² ~ U(var_range)·(1 − μ).
      p_fast: risk regime, the probability that an edge is fast.
      fast_mu, fast_var, slow_mu, slow_var: risk regime, the uniform ranges of μ and σ² of
        fast and slow edges.

    Raises:
      ValueError: naming the field: an unknown name, a range that is not a finite (lo, hi)
        with lo <= hi, or p_fast outside [0, 1].
    """
    name: Literal["standard", "risk"]
    mu_range: tuple[float, float] = (0.1, 1.0)
    var_range: tuple[float, float] = (0.1, 0.3)
    p_fast: float = 0.5
    fast_mu: tuple[float, float] = (0.2, 0.6)
    fast_var: tuple[float, float] = (0.5, 1.0)
    slow_mu: tuple[float, float] = (0.4, 0.8)
    slow_var: tuple[float, float] = (0.01, 0.05)

    def __post_init__(self):
        if self.name not in ("standard", "risk"):
            raise ValueError(f"Regime: name must be 'standard' or 'risk', got {self.name!r}")
        for field in _RANGES:
            object.__setattr__(self, field, check_range(field, getattr(self, field), "Regime"))
        if not (is_number(self.p_fast) and 0.0 <= self.p_fast <= 1.0):
            raise ValueError(f"Regime: p_fast must lie in [0, 1], got {self.p_fast!r}")


#: the two regimes of the module docstring, with their default ranges.
STANDARD = Regime("standard")
RISK = Regime("risk")
#: a regime's name -> its preset (what a string ``regime`` argument names).
REGIMES = {"standard": STANDARD, "risk": RISK}


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


def let_stats(n: int, mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The least-expected-time path: ``(x, mean, std)`` (Dijkstra on μ)."""
    x = oracle(n).solve(mu).x
    return x, float(mu @ x), float(math.sqrt(var @ x))


def _as_regime(regime: Regime | str, who: str) -> Regime:
    if isinstance(regime, Regime):
        return regime
    if isinstance(regime, str) and regime in REGIMES:
        return REGIMES[regime]
    raise ValueError(f"{who}: regime must be a Regime or one of {sorted(REGIMES)}, "
                     f"got {regime!r}")


def make_instance(seed: int, *, n: int = 5, regime: Regime | str = "risk", q: float = 1.0,
                  k: float = 1.0) -> Instance:
    """One seeded instance on the n×n grid (`generate` maps it over seeds).

    Args:
      seed: numpy seed (an int >= 0); the same (seed, n, regime, q, k) always gives the same
        instance.
      n: grid size (>= 2).
      regime: the edge-time distribution, a `Regime` or the name of a preset (``"risk"``:
        `RISK`, ``"standard"``: `STANDARD`); the deadline is LET mean + ``q`` × LET standard
        deviation in a ``"risk"`` regime, ``k`` × LET mean in a ``"standard"`` one.
      q: deadline offset of the risk regime in LET standard deviations (bench: −1, 1, 2).
      k: deadline factor of the standard regime (> 0; bench: 0.9, 1.0, 1.1).

    Returns:
      ``{"mu": (E,), "var": (E,), "deadline": ()}`` as float64 numpy arrays.

    Raises:
      ValueError: naming the argument: seed < 0, n < 2, an unknown regime, k <= 0, a
        non-finite q, or draws that give a nonpositive mean or variance, or a nonpositive
        deadline.
    """
    who = "routing.make_instance"
    seed = check_int("seed", seed, 0, who=who)
    n = check_int("n", n, 2, who=who)
    reg = _as_regime(regime, who)
    if not (is_number(q) and math.isfinite(q)):
        raise ValueError(f"{who}: q must be a finite number, got {q!r}")
    if not (is_number(k) and k > 0 and math.isfinite(k)):
        raise ValueError(f"{who}: k (deadline factor) must be a finite number > 0, got {k!r}")
    E = 4 * n * (n - 1)
    rng = np.random.default_rng(seed)
    if reg.name == "standard":
        mu = rng.uniform(*reg.mu_range, E)
        var = rng.uniform(*reg.var_range, E) * (1.0 - mu)
    else:
        fast = rng.random(E) < reg.p_fast
        mu = np.where(fast, rng.uniform(*reg.fast_mu, E), rng.uniform(*reg.slow_mu, E))
        var = np.where(fast, rng.uniform(*reg.fast_var, E), rng.uniform(*reg.slow_var, E))
    if np.any(mu <= 0) or np.any(var <= 0):
        raise ValueError(f"{who}: edge means and variances must be > 0; check the regime's "
                         f"ranges (min mean {mu.min():.3g}, min variance {var.min():.3g})")
    _, m, s = let_stats(n, mu, var)
    T = k * m if reg.name == "standard" else m + q * s
    if not T > 0:
        raise ValueError(f"{who}: deadline {T:.4g} is not positive (LET mean {m:.4g}, "
                         f"std {s:.4g}, q={q})")
    return {"mu": mu, "var": var, "deadline": np.asarray(T, dtype=np.float64)}


def generate(count: int, seed: int = 0, *, n: int = 5, regime: Regime | str = "risk",
             q: float = 1.0, k: float = 1.0) -> list[Instance]:
    """``FAMILY.generate``: ``count`` instances with seeds ``seed, seed + 1, …``
    (`make_instance` with the same ``n``, ``regime``, ``q``, ``k``); deterministic, and
    ``generate(j, seed)`` is the first j of ``generate(count, seed)``. Benches test on seeds
    below the family's ``TRAIN_SEED``.

    Raises:
      ValueError: naming the argument: count < 1, seed < 0, or a bad size or regime
        argument (see `make_instance`).
    """
    count = check_int("count", count, 1, who="routing.generate")
    seed = check_int("seed", seed, 0, who="routing.generate")
    return [make_instance(seed + i, n=n, regime=regime, q=q, k=k) for i in range(count)]


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
