"""Small random problems with their feasible sets enumerable: the shapes and objectives the
derive tests run (assignment rows, cardinality rows, capacity / knapsack rows, integer
boxes), each objective written in JAX as a user would."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

import surco
from surco.solvers import LinearSpec


def assignment_spec(n: int, m: int, w=None, cap=None) -> LinearSpec:
    """x (n, m) binary, Σ_j x_ij = 1 (assignment rows), optional Σ_i w_ij x_ij <= cap_j."""
    A_ub = b_ub = None
    if w is not None:
        rows = np.zeros((m, n * m))
        for j in range(m):
            rows[j, np.arange(n) * m + j] = w[:, j]
        A_ub, b_ub = rows, cap
    return LinearSpec((n, m), A_ub=A_ub, b_ub=b_ub, A_eq=sp.kron(sp.eye(n), np.ones((1, m))),
                      b_eq=np.ones(n), lb=0, ub=1, integer=True, name=f"assign{n}x{m}")


def cardinality_spec(n: int, k: int) -> LinearSpec:
    """z (n,) binary, Σ z = k."""
    return LinearSpec((n,), A_eq=np.ones((1, n)), b_eq=[k], lb=0, ub=1, integer=True,
                      name=f"card{n}-{k}")


def knapsack_spec(w: np.ndarray, cap: float) -> LinearSpec:
    """z (n,) binary, Σ w z <= cap."""
    return LinearSpec((len(w),), A_ub=w[None], b_ub=[cap], lb=0, ub=1, integer=True,
                      name=f"knap{len(w)}")


def integer_spec(n: int, top: int, total: int) -> LinearSpec:
    """z (n,) integer in [0, top], Σ z <= total."""
    return LinearSpec((n,), A_ub=np.ones((1, n)), b_ub=[total], lb=0, ub=top, integer=True,
                      name=f"int{n}")


def enumerate_spec(spec: LinearSpec) -> np.ndarray:
    """Every point of a small pure-integer Ω, (P, *shape)."""
    lo, hi = np.ceil(spec.lb).astype(int), np.floor(spec.ub).astype(int)
    pts = np.array(list(itertools.product(*[range(a, b + 1) for a, b in zip(lo, hi)])), float)
    ok = np.array([spec.contains(p) for p in pts])
    return pts[ok].reshape((-1,) + spec.shape)


# -- objectives: f(x, y) in JAX, y a dict of arrays --------------------------------------------

def f_loads(x, y):                     # quadratic loads
    load = jnp.sum(x * y["w"], axis=0)
    return jnp.sum(x * y["a"]) + y["rho"] * jnp.sum(load ** 2)


def f_makespan(x, y):                  # max with a positive sign: epigraph
    return jnp.max(jnp.sum(x * y["w"], axis=0)) + 0.1 * jnp.sum(x * y["a"])


def f_neg_max(x, y):                   # max with a negative sign: exact formulation
    load = x.T @ y["v"]
    return jnp.sum(x * y["a"]) - 0.7 * jnp.max(load) + 0.3 * jnp.sum(jnp.square(load))


def f_exp_abs(x, y):                   # exp, abs, min with both signs
    load = jnp.einsum("ij,ij->j", x, y["w"])
    return (jnp.sum(jnp.exp(load / y["s"])) + jnp.abs(load[0] - load[-1] - y["t"])
            - 0.5 * jnp.min(load) + jnp.minimum(load[0], 1.0))


def f_diversity(z, y):                 # products of x with x: dot of two x-dependent values
    return -(z @ y["D"] @ z) + jnp.sum(z * y["c"])


def f_log_sqrt(z, y):                  # log, sqrt, a where with a constant mask
    gain = jnp.log(1.0 + y["v"] @ z)
    return -gain + jnp.sqrt(1.0 + y["u"] @ z) + jnp.sum(jnp.where(y["mask"], z, 0.0) * y["c"])


def f_max_prod(z, y):                  # reduce max over products, squares, division
    return (jnp.max(z * y["v"]) + (y["u"] @ z - y["t"]) ** 2
            - (y["v"] @ z) / (1.0 + y["u"] @ z))


def f_pairs(z, y):                     # x_i x_j by broadcasting, logistic, abs
    P = z[:, None] * z[None, :]
    return (-jnp.sum(P * y["D"]) + jnp.abs(y["u"] @ z - y["t"])
            + 2.0 * jax.nn.sigmoid(y["v"] @ z - y["t"]))


def f_integer(z, y):                   # integer (not binary) x: squares, max, exp
    return (jnp.sum((z - y["t"]) ** 2) + jnp.max(z * y["v"]) + 0.1 * jnp.exp(0.3 * jnp.sum(z))
            - jnp.min(z * y["u"]))


def make_case(shape: str, obj, seed: int):
    """(problem, instance) for a shape ("assign", "card", "knap", "int") and objective."""
    r = np.random.default_rng(seed)
    if shape == "assign":
        n, m = int(r.integers(3, 5)), int(r.integers(2, 4))
        w = r.uniform(0.2, 1.0, (n, m))
        cap = None if r.random() < 0.5 else np.full(m, w.sum() / m + 0.6)
        spec = assignment_spec(n, m, w if cap is not None else None, cap)
        y = {"a": r.uniform(0, 1, (n, m)), "w": w, "rho": r.uniform(0.2, 2.0),
             "v": r.uniform(0.1, 1.0, n), "s": r.uniform(1.0, 3.0), "t": r.uniform(-0.5, 0.5)}
    else:
        n = int(r.integers(5, 8)) if shape != "int" else int(r.integers(3, 5))
        D = r.uniform(0, 1, (n, n))
        y = {"D": (D + D.T) / 2, "c": r.uniform(-0.5, 0.5, n), "v": r.uniform(0.1, 2.0, n),
             "u": r.uniform(0.1, 1.0, n), "t": r.uniform(0.5, 2.0), "mask": r.random(n) < 0.5}
        if shape == "card":
            spec = cardinality_spec(n, int(r.integers(2, n - 1)))
        elif shape == "knap":
            w = r.uniform(0.2, 1.0, n)
            spec = knapsack_spec(w, float(r.uniform(0.3, 0.6) * w.sum()))
        else:
            y["t"] = r.uniform(0, 3, n)
            spec = integer_spec(n, 3, int(r.integers(3, 2 * n)))
    y = {k: jnp.asarray(v) if k == "mask" else jnp.asarray(v, jnp.float32)
         for k, v in y.items()}
    return surco.Problem(f"{shape}-{obj.__name__}", spec, obj), y


#: (shape, objective) pairs the brute-force test runs.
CASES = ([("assign", f) for f in (f_loads, f_makespan, f_neg_max, f_exp_abs)]
         + [(s, f) for s in ("card", "knap")
            for f in (f_diversity, f_log_sqrt, f_max_prod, f_pairs)]
         + [("int", f_integer)])
