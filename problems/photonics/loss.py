"""The transmission-window loss of Schubert et al. (ACS Photonics 2022) and the spec test.

A spec gives, per wavelength and port, a window ``[lower, upper]`` for the transmission
``T = |S_j1|²``. Following Schubert et al., each entry's signed distance to its window is the
distance to the nearest *binding* bound (a lower bound of 0 and an upper bound of 1 never
bind), positive outside and negative inside, and is divided by the narrowest window width so
that a −20 dB ceiling weighs as much as a −0.5 dB floor. Schubert et al. pass it through a
softplus; we use a ReLU instead, so that

    L(T) = Σ_{λ, j} max(0, d_{λj} / w_min)²

is zero *iff* every transmission lies inside its window (the spec is met), which is what
`success` tests.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_NOT_BINDING = -1.0  # signed distance used for a bound that never binds


def _check_window(lower, upper):
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"window: lower {lo.shape} and upper {hi.shape} shapes differ")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("window: bounds must be finite")
    if np.any(lo < 0) or np.any(hi > 1) or np.any(lo >= hi):
        raise ValueError("window: need 0 <= lower < upper <= 1 everywhere")
    return lo, hi


def window_distance(T, lower, upper):
    """Signed distance of each transmission to its window, in units of the narrowest
    window width (negative inside). JAX-traceable in T.

    Raises:
      ValueError: inconsistent windows, or T not shaped like the windows.
    """
    lo, hi = _check_window(lower, upper)
    T = jnp.asarray(T)
    if T.shape != lo.shape:
        raise ValueError(f"window_distance: T has shape {T.shape}, window has {lo.shape}")
    width = float(np.min(hi - lo))
    d_lo = jnp.where(lo > 0, lo - T, _NOT_BINDING)
    d_hi = jnp.where(hi < 1, T - hi, _NOT_BINDING)
    return jnp.maximum(d_lo, d_hi) / width


def window_loss(T, lower, upper):
    """``Σ max(0, d)²`` over wavelengths and ports (see module docstring); 0 iff the spec is
    met. JAX-traceable and differentiable in T."""
    d = window_distance(T, lower, upper)
    return jnp.sum(jnp.maximum(d, 0.0) ** 2)


def success(T, lower, upper) -> bool:
    """True iff every transmission lies in its window (NumPy, concrete values only)."""
    lo, hi = _check_window(lower, upper)
    T = np.asarray(T, dtype=np.float64)
    if T.shape != lo.shape:
        raise ValueError(f"success: T has shape {T.shape}, window has {lo.shape}")
    ok_lo = np.where(lo > 0, T >= lo, True)
    ok_hi = np.where(hi < 1, T <= hi, True)
    return bool(np.all(ok_lo & ok_hi))
