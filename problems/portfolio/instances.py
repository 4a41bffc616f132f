"""Seeded instances of combinatorial portfolio selection with a third-order objective.

The objective is LANCER's (Zharmagambetov et al., "Landscape Surrogate: Learning Decision
Losses for Mathematical Optimization Under Partial Information", NeurIPS 2023, §5.2):

    f(x) = −r·x + α·xᵀΣx − β·m₃(x) + λ·‖x − x₀‖₁,

with m₃(x) = Σ_ijk M_ijk x_i x_j x_k the portfolio's third central moment (co-skewness
tensor M). Returns come from a linear factor model with skewed factors and skewed
idiosyncratic noise,

    R = r + L·f + e,   f_k independent, mean 0, variance 1, skewness γ_k;
                        e_i independent, mean 0, variance v_i, third cumulant κ_i,

so Σ = L Lᵀ + diag(v) and M_ijk = Σ_k γ_k L_ik L_jk L_lk + δ_ijl κ_i, and both terms are
evaluated without forming n³ numbers: xᵀΣx = ‖Lᵀx‖² + Σ v_i x_i², m₃(x) = Σ_k γ_k (Lᵀx)_k³
+ Σ_i κ_i x_i³.

Units: returns are in percent per period (r ≈ 0–2, volatilities ≈ 2–6, skewness within
±0.15), chosen so that with LANCER's α = 0.1, β = 0.5 the return, risk and third-moment
terms of good portfolios are of comparable size (about 1–2 each at n = 60–100). With
fractional units the return term swamps the others (the optimum is then the highest-return
assets at their upper bounds); with skewness ±1 the cubic term does, and the optimum is
again every weight at u. With these defaults the optimum spreads weights inside [l, u].

An instance is a dict of float64 numpy arrays: ``r`` (n,), ``L`` (n, K) factor loadings,
``f_skew`` (K,) factor skewness γ, ``e_var`` (n,) idiosyncratic variances v, ``e_k3`` (n,)
idiosyncratic third cumulants κ, ``x0`` (n,) the current portfolio (for the turnover term).
"""
from __future__ import annotations

import math

import numpy as np

from surco.checks import check_int, check_range, is_number

Instance = dict

_KEYS = ("r", "L", "f_skew", "e_var", "e_k3", "x0")


def make_instance(seed: int, *, n: int = 20, n_factors: int = 4, factor_vol=(1.5, 3.0),
                  idio_vol=(2.0, 5.0), skew_range=(-0.15, 0.15), premium=(0.05, 0.25),
                  alpha_sd: float = 0.3) -> Instance:
    """A seeded factor-model instance with n assets (`generate` draws many).

    Args:
      seed: numpy seed (an int >= 0).
      n: number of assets (>= 1).
      n_factors: K >= 1; factor 0 is a market factor (loadings ~ N(1, 0.3²)), the others are
        style factors (loadings ~ N(0, 0.5²)).
      factor_vol: range of the factor volatilities σ_k (percent); L = B·diag(σ).
      idio_vol: range of the idiosyncratic volatilities (percent).
      skew_range: range of the skewness of each factor and of each asset's noise.
      premium: range of the factor risk premia per unit volatility; r = L·π + a with
        π_k = σ_k·U(premium) and a ~ N(0, alpha_sd²).
      alpha_sd: spread of the assets' own expected returns (a finite number >= 0).

    Returns:
      the instance dict (see the module docstring); x0 is a random dense portfolio
      (uniform weights normalised to sum 1, as in LANCER).

    Raises:
      ValueError: naming the argument: seed < 0, n or n_factors < 1, a range that is not
        finite with lo <= hi, nonpositive volatilities, or a bad alpha_sd.
    """
    who = "portfolio.make_instance"
    seed = check_int("seed", seed, 0, who=who)
    n, K = check_int("n", n, 1, who=who), check_int("n_factors", n_factors, 1, who=who)
    ranges = {}
    for name, value in (("factor_vol", factor_vol), ("idio_vol", idio_vol),
                        ("skew_range", skew_range), ("premium", premium)):
        ranges[name] = check_range(name, value, who)
    for name in ("factor_vol", "idio_vol"):
        if ranges[name][0] <= 0:
            raise ValueError(f"{who}: {name} must be > 0, got {ranges[name]}")
    if not (is_number(alpha_sd) and math.isfinite(alpha_sd) and alpha_sd >= 0):
        raise ValueError(f"{who}: alpha_sd must be a finite number >= 0, got {alpha_sd!r}")
    rng = np.random.default_rng(seed)
    sig_f = rng.uniform(*ranges["factor_vol"], K)
    B = np.concatenate([rng.normal(1.0, 0.3, (n, 1)), rng.normal(0.0, 0.5, (n, K - 1))], axis=1)
    L = B * sig_f[None]
    f_skew = rng.uniform(*ranges["skew_range"], K)
    sig_e = rng.uniform(*ranges["idio_vol"], n)
    e_skew = rng.uniform(*ranges["skew_range"], n)
    pi = sig_f * rng.uniform(*ranges["premium"], K)
    r = L @ pi + rng.normal(0.0, alpha_sd, n)
    x0 = rng.uniform(0.0, 1.0, n)
    return {"r": r, "L": L, "f_skew": f_skew, "e_var": sig_e ** 2, "e_k3": e_skew * sig_e ** 3,
            "x0": x0 / x0.sum()}


def generate(count: int, seed: int = 0, *, n: int = 20, n_factors: int = 4,
             factor_vol=(1.5, 3.0), idio_vol=(2.0, 5.0), skew_range=(-0.15, 0.15),
             premium=(0.05, 0.25), alpha_sd: float = 0.3) -> list[Instance]:
    """``FAMILY.generate``: ``count`` instances (`make_instance` with the same keywords),
    whose seeds are drawn in turn from a numpy stream seeded by ``seed``. Deterministic, and
    ``generate(j, seed)`` is the first j of ``generate(count, seed)``.

    Raises:
      ValueError: naming the argument: count < 1, seed < 0, or a bad keyword (see
        `make_instance`).
    """
    count = check_int("count", count, 1, who="portfolio.generate")
    seed = check_int("seed", seed, 0, who="portfolio.generate")
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, count)
    return [make_instance(int(s), n=n, n_factors=n_factors, factor_vol=factor_vol,
                          idio_vol=idio_vol, skew_range=skew_range, premium=premium,
                          alpha_sd=alpha_sd) for s in seeds]


def check_instance(instance: Instance) -> int:
    """Validate a portfolio instance; return n.

    Raises:
      ValueError: a missing key, inconsistent shapes, non-finite values, or negative
        idiosyncratic variances.
    """
    try:
        a = {k: np.asarray(instance[k], np.float64) for k in _KEYS}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"a portfolio instance is a dict with keys {_KEYS}") from exc
    n = a["r"].shape[0] if a["r"].ndim == 1 else -1
    if n < 1:
        raise ValueError(f"instance['r'] must be 1-D and non-empty, got shape {a['r'].shape}")
    if a["L"].ndim != 2 or a["L"].shape[0] != n:
        raise ValueError(f"instance['L'] must be (n, K) = ({n}, K), got {a['L'].shape}")
    K = a["L"].shape[1]
    for k, shape in (("f_skew", (K,)), ("e_var", (n,)), ("e_k3", (n,)), ("x0", (n,))):
        if a[k].shape != shape:
            raise ValueError(f"instance[{k!r}] must have shape {shape}, got {a[k].shape}")
    for k, v in a.items():
        if not np.all(np.isfinite(v)):
            raise ValueError(f"instance[{k!r}] contains NaN or inf")
    if np.any(a["e_var"] < 0):
        raise ValueError("instance['e_var'] (idiosyncratic variances) must be >= 0")
    return n


def covariance(instance: Instance) -> np.ndarray:
    """Σ = L Lᵀ + diag(e_var), (n, n) float64."""
    L = np.asarray(instance["L"], np.float64)
    return L @ L.T + np.diag(np.asarray(instance["e_var"], np.float64))


def coskewness(instance: Instance) -> np.ndarray:
    """The co-skewness (third central co-moment) tensor M, (n, n, n) float64: M_ijl =
    Σ_k γ_k L_ik L_jk L_lk + δ_ijl κ_i. Meant for small n (tests, checks); the objective never
    forms it."""
    L = np.asarray(instance["L"], np.float64)
    M = np.einsum("k,ik,jk,lk->ijl", np.asarray(instance["f_skew"], np.float64), L, L, L)
    i = np.arange(L.shape[0])
    M[i, i, i] += np.asarray(instance["e_k3"], np.float64)
    return M


def _standard_skewed(rng, skew: np.ndarray, size: int) -> np.ndarray:
    """Samples (size, len(skew)) with mean 0, variance 1 and the given skewness: a
    standardised Gamma(4/γ²) (skewness 2/sqrt(shape) = |γ|), mirrored for γ < 0, and a
    standard normal for γ = 0."""
    out = np.empty((size, len(skew)))
    for j, g in enumerate(skew):
        if abs(g) < 1e-8:
            out[:, j] = rng.standard_normal(size)
            continue
        k = 4.0 / g ** 2
        out[:, j] = np.sign(g) * (rng.gamma(k, 1.0, size) - k) / np.sqrt(k)
    return out


def simulate_returns(instance: Instance, num: int, seed: int) -> np.ndarray:
    """``num`` return draws (num, n) from the instance's factor model, whose mean, covariance
    and third co-moment are r, `covariance` and `coskewness` (used to check the generator).

    Raises:
      ValueError: num < 1.
    """
    if int(num) < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    check_instance(instance)
    rng = np.random.default_rng(seed)
    L = np.asarray(instance["L"], np.float64)
    f = _standard_skewed(rng, np.asarray(instance["f_skew"], np.float64), int(num))
    sd = np.sqrt(np.asarray(instance["e_var"], np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        e_skew = np.where(sd > 0, np.asarray(instance["e_k3"], np.float64) / sd ** 3, 0.0)
    e = _standard_skewed(rng, e_skew, int(num)) * sd[None]
    return np.asarray(instance["r"], np.float64)[None] + f @ L.T + e
