"""The primitives the translation knows (`SUPPORTED`, by role) and the interval arithmetic
that bounds their values, shared by the translator (`_translate`) and its per-primitive
rules (`_ops`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["UP", "MOVES", "IDENTITY", "UNARY", "DOMAIN", "NO_VALUE", "SUPPORTED", "sign_of",
           "prod_interval", "unary_interval", "pow_interval"]

#: primitives whose output is non-decreasing in their data operands (the predicate of
#: select_n is handled apart)
UP = frozenset({"add", "add_any", "reduce_sum", "broadcast_in_dim", "reshape", "squeeze",
                 "transpose", "slice", "rev", "copy", "copy_p", "convert_element_type",
                 "reduce_precision", "concatenate", "stack", "gather", "dynamic_slice",
                 "dynamic_update_slice", "pad", "select_n", "reduce_max", "reduce_min", "max",
                 "min", "exp", "log", "log1p", "expm1", "sqrt", "logistic", "tanh",
                 "stop_gradient", "optimization_barrier"})
#: primitives that only move entries: name -> positions of the operands that are data
MOVES = {"broadcast_in_dim": (0,), "reshape": (0,), "squeeze": (0,), "transpose": (0,),
          "slice": (0,), "rev": (0,), "copy": (0,), "copy_p": (0,), "expand_dims": (0,),
          "gather": (0,), "dynamic_slice": (0,), "pad": (0,), "dynamic_update_slice": (0, 1)}
IDENTITY = frozenset({"stop_gradient", "reduce_precision", "optimization_barrier"})
UNARY = frozenset({"exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "abs", "logistic",
                    "tanh", "square", "integer_pow"})
DOMAIN = frozenset({"log", "sqrt", "rsqrt"})        # need u >= 0 (log1p: u >= -1)
NO_VALUE = frozenset({"is_finite"})
SUPPORTED = sorted(UP | set(MOVES) | UNARY | {"sub", "neg", "mul", "div", "dot_general",
                                                  "pow", "is_finite"})


def sign_of(lo, hi) -> int:
    """+1 if every entry is >= 0, -1 if every one is <= 0, else 0."""
    return 1 if np.all(lo >= 0) else (-1 if np.all(hi <= 0) else 0)


def prod_interval(a_lo, a_hi, b_lo, b_hi):
    """Bounds (lo, hi) of a·b for a in [a_lo, a_hi], b in [b_lo, b_hi] (0·inf counts 0)."""
    with np.errstate(invalid="ignore"):
        c = np.stack(np.broadcast_arrays(a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi))
    c = np.nan_to_num(c, nan=0.0, posinf=np.inf, neginf=-np.inf)   # 0 * inf bounds 0
    return c.min(0), c.max(0)


def unary_interval(kind: str, lo, hi, p=None):
    """Bounds (lo, hi) of the unary primitive ``kind`` (`UNARY`; ``p`` the power of
    "integer_pow"/"pow") over u in [lo, hi]."""
    with np.errstate(all="ignore"):
        if kind == "abs":
            return (np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0)),
                    np.maximum(np.abs(lo), np.abs(hi)))
        if kind in ("square", "integer_pow", "pow"):
            return pow_interval(lo, hi, 2 if kind == "square" else p)
        lo0 = np.maximum(lo, 0.0) if kind in DOMAIN else lo
        f = {"exp": np.exp, "log": np.log, "log1p": lambda v: np.log1p(np.maximum(v, -1.0)),
             "expm1": np.expm1, "sqrt": np.sqrt, "logistic": lambda v: 1 / (1 + np.exp(-v)),
             "tanh": np.tanh, "rsqrt": lambda v: 1 / np.sqrt(v)}[kind]
        a, b = f(lo0), f(hi)
        return np.minimum(a, b), np.maximum(a, b)


def pow_interval(lo, hi, p):
    """Bounds (lo, hi) of u**p over u in [lo, hi] (a fractional p: u >= 0; a pole inside:
    unbounded)."""
    p = np.broadcast_to(np.asarray(p, np.float64), np.shape(lo))
    integral = p == np.round(p)
    lo = np.where(integral, lo, np.maximum(lo, 0.0))              # fractional: u >= 0
    with np.errstate(all="ignore"):
        a, b = np.power(lo, p), np.power(hi, p)
    low, high = np.minimum(a, b), np.maximum(a, b)
    cross = (lo < 0) & (hi > 0)
    even = integral & (np.mod(p, 2) == 0) & (p > 0)
    low = np.where(cross & even, 0.0, low)
    bad = (lo <= 0) & (hi >= 0) & (p < 0)                         # a pole inside
    return np.where(bad, -np.inf, low), np.where(bad, np.inf, high)
