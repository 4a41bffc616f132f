"""Loader for the OR-Library portfolio files (port1–port5) of Chang, Meade, Beasley and
Sharaiha, "Heuristics for cardinality constrained portfolio optimisation", Computers &
Operations Research 27 (2000) 1271–1302, and their cardinality-constrained mean–variance
(CCMV) problem.

File format: the number of assets N; N lines "mean_return std_dev"; then N(N+1)/2 lines
"i j correlation" for 1 <= i <= j <= N. Covariance = corr(i, j)·std_i·std_j.

The CCMV problem ``min ρ·xᵀΣx − (1 − ρ)·r·x`` s.t. Σx = 1, exactly K assets held, each in
[l, u] (K = 10, l = 0.01, u = 1 in the paper), traced over the risk weight ρ ∈ (0, 1), is
this package's objective scaled by 1/(1 − ρ): α = ρ/(1 − ρ), β = λ = 0 (`ccmv_config`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .instances import Instance
from .problem import PortfolioConfig


@dataclasses.dataclass(frozen=True)
class OrlibData:
    """One OR-Library portfolio file.

    Attributes:
      mean: (N,) mean returns; std: (N,) standard deviations; corr: (N, N) correlations.
    """

    mean: np.ndarray
    std: np.ndarray
    corr: np.ndarray
    name: str = ""

    @property
    def n(self) -> int:
        return int(self.mean.shape[0])

    @property
    def cov(self) -> np.ndarray:
        """Σ_ij = corr_ij · std_i · std_j."""
        return self.corr * np.outer(self.std, self.std)


#: The OR-Library files shipped with the package (port1, the Hang Seng; see data/README.md).
_DATA = Path(__file__).resolve().parent / "data"


def find_orlib(name: str = "port1") -> Path:
    """The path of an OR-Library portfolio file (``"port1"`` … ``"port5"``; ``.txt`` added).

    Looks in the folder named by the environment variable ``SURCO_ORLIB_DIR``, then in the
    package's own ``data`` folder (which ships ``port1.txt``).

    Raises:
      FileNotFoundError: the file is in neither place (naming both).
    """
    fname = name if name.endswith(".txt") else f"{name}.txt"
    places = [Path(os.environ["SURCO_ORLIB_DIR"])] if os.environ.get("SURCO_ORLIB_DIR") else []
    places.append(_DATA)
    for p in places:
        if (p / fname).is_file():
            return p / fname
    raise FileNotFoundError(f"OR-Library file {fname} not found in "
                            f"{' or '.join(str(p) for p in places)} (set SURCO_ORLIB_DIR to "
                            "the folder that holds it)")


def load_orlib(path: str | Path) -> OrlibData:
    """Read an OR-Library portfolio file (e.g. ``port1.txt``, the Hang Seng, N = 31).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: the file does not follow the format (naming the line): wrong counts,
        non-numeric fields, indices out of range or repeated, a missing pair, a diagonal
        correlation other than 1, |corr| > 1 or a nonpositive standard deviation.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OR-Library portfolio file not found: {path}")
    lines = [ln.split() for ln in path.read_text().splitlines()]
    lines = [(i + 1, ln) for i, ln in enumerate(lines) if ln]
    if not lines:
        raise ValueError(f"{path}: empty file")

    def num(lineno, tok, kind=float):
        try:
            return kind(tok)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected a number, got {tok!r}") from None

    lineno, first = lines[0]
    if len(first) != 1:
        raise ValueError(f"{path}:{lineno}: the first line must hold only N")
    N = num(lineno, first[0], int)
    if N < 1:
        raise ValueError(f"{path}:{lineno}: N must be >= 1, got {N}")
    expected = 1 + N + N * (N + 1) // 2
    if len(lines) != expected:
        raise ValueError(f"{path}: expected {expected} non-empty lines for N = {N} "
                         f"(N, then {N} asset lines, then {N * (N + 1) // 2} correlations), "
                         f"got {len(lines)}")
    mean, std = np.empty(N), np.empty(N)
    for a, (lineno, ln) in enumerate(lines[1:1 + N]):
        if len(ln) != 2:
            raise ValueError(f"{path}:{lineno}: expected 'mean std', got {' '.join(ln)!r}")
        mean[a], std[a] = num(lineno, ln[0]), num(lineno, ln[1])
        if not std[a] > 0:
            raise ValueError(f"{path}:{lineno}: standard deviation must be > 0, got {std[a]}")
    corr = np.full((N, N), np.nan)
    for lineno, ln in lines[1 + N:]:
        if len(ln) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'i j correlation', got {' '.join(ln)!r}")
        i, j, c = num(lineno, ln[0], int), num(lineno, ln[1], int), num(lineno, ln[2])
        if not (1 <= i <= j <= N):
            raise ValueError(f"{path}:{lineno}: need 1 <= i <= j <= {N}, got i={i}, j={j}")
        if not np.isnan(corr[i - 1, j - 1]):
            raise ValueError(f"{path}:{lineno}: pair ({i}, {j}) appears twice")
        if abs(c) > 1 + 1e-12 or (i == j and abs(c - 1) > 1e-9):
            raise ValueError(f"{path}:{lineno}: invalid correlation {c} for ({i}, {j})")
        corr[i - 1, j - 1] = corr[j - 1, i - 1] = c
    # every line holds a distinct pair and the count is N(N+1)/2, so no pair is missing
    for a in (mean, std, corr):
        a.setflags(write=False)
    return OrlibData(mean=mean, std=std, corr=corr, name=path.stem)


def to_instance(data: OrlibData, *, psd_tol: float = 1e-10) -> Instance:
    """A portfolio instance from OR-Library data: Σ = L Lᵀ with L from the eigen-
    decomposition of the covariance, no idiosyncratic terms, zero skewness (m₃ = 0), and
    x₀ = the equal-weight portfolio (irrelevant when λ = 0, as in CCMV).

    Raises:
      ValueError: the covariance has an eigenvalue below −psd_tol·(largest eigenvalue)
        (not positive semidefinite).
    """
    cov = data.cov
    w, V = np.linalg.eigh(0.5 * (cov + cov.T))
    if w.min() < -psd_tol * w.max():
        raise ValueError(f"{data.name}: covariance is not positive semidefinite (eigenvalue "
                         f"{w.min():.3g})")
    L = V * np.sqrt(np.maximum(w, 0.0))[None]
    n = data.n
    return {"r": np.array(data.mean), "L": L, "f_skew": np.zeros(n), "e_var": np.zeros(n),
            "e_k3": np.zeros(n), "x0": np.full(n, 1.0 / n)}


def ccmv_config(risk_weight: float, K: int = 10, l: float = 0.01, u: float = 1.0) -> PortfolioConfig:
    """The `PortfolioConfig` of Chang et al.'s CCMV problem at risk weight ρ: α = ρ/(1 − ρ),
    β = λ = 0, exactly K assets, weights in [l, u]. Its objective equals
    ``(ρ·xᵀΣx − (1 − ρ)·r·x) / (1 − ρ)``.

    Raises:
      ValueError: ρ outside (0, 1), or an infeasible K, l, u.
    """
    if not 0 < risk_weight < 1:
        raise ValueError(f"ccmv_config: risk_weight ρ must lie in (0, 1), got {risk_weight}")
    return PortfolioConfig(alpha=risk_weight / (1 - risk_weight), beta=0.0, lam=0.0,
                           k_min=int(K), k_max=int(K), l=l, u=u)
