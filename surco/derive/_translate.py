"""The translation of a traced objective (`_jaxpr.Graph`) into a PySCIPOpt model.

Three passes over the flattened equations (see `surco.derive.scip` for the formulation):

1. forward: each value becomes a constant (folded) or an `Aff` over the model's variables;
   every nonlinear operation gets one auxiliary variable y per entry, bounded by interval
   arithmetic, and a pending *relation* ``y ? g(u)``;
2. backward: the sign of each value, +1 when the objective is non-decreasing in it, -1 when
   non-increasing, 0 when unknown (from the monotonicity of every primitive between the
   value and the output, using the intervals of the other operands);
3. emission: each relation becomes ``y >= g(u)`` (sign +1), ``y <= g(u)`` (sign -1) or
   ``y == g(u)`` (sign 0); a maximum with sign +1 (a minimum with sign -1) becomes its
   epigraph (hypograph), any other one the exact ``max(a, b) = (a + b + |a - b|) / 2``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _affine as af
from ._jaxpr import Eqn, Graph, UnsupportedError, where
from ._ops import emit_relation, step
from ._prims import NO_VALUE, SUPPORTED, UP, sign_of

__all__ = ["Translator", "NO_VALUE", "SUPPORTED"]


class Translator:
    """Builds the model of one objective on one instance (see the module docstring)."""

    def __init__(self, model, graph: Graph, xvars: list, lb: np.ndarray, ub: np.ndarray,
                 name: str, ref: np.ndarray | None = None):
        import pyscipopt
        self.ps, self.m, self.g, self.name = pyscipopt, model, graph, name
        self.vars = list(xvars)
        self.terms = [pyscipopt.scip.Term(v) for v in xvars]
        self.lo, self.hi = np.asarray(lb, np.float64), np.asarray(ub, np.float64)
        # the reference point: ``ref`` (a start x), else x at the middle of its bounds (a
        # finite bound, or 0, where one is infinite); each auxiliary variable holds its
        # value there, which scales it and, at a feasible start, is a complete solution
        mid = np.where(np.isfinite(self.lo) & np.isfinite(self.hi), 0.5 * (self.lo + self.hi),
                       np.where(np.isfinite(self.lo), self.lo,
                                np.where(np.isfinite(self.hi), self.hi, 0.0)))
        self.ref = mid if ref is None else np.asarray(ref, np.float64).reshape(-1)
        n = len(xvars)
        self.values: dict[int, Any] = {graph.x: af.Aff(graph.shapes[graph.x],
                                                        _eye(n), np.zeros(n))}
        self.rels: list[tuple] = []
        self._mat: dict[int, np.ndarray] = {}
        self._iv: dict[int, tuple] = {}

    # -- variables and values -----------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.vars)

    def new_vars(self, lo, hi, tag: str, ref=None) -> tuple[np.ndarray, np.ndarray]:
        """New continuous variables for values within [lo, hi] (``ref``: their values at the
        reference point), scaled as value = s · var with s = |ref| clipped to [1e-6, 1]
        (1 without a usable ref). SCIP's feasibility tolerance is absolute (1e-6) below 1
        and relative above: a value far below 1 (sharding's costs are in 1e-5 s) would
        drown in it, while scaling large values down would make their small differences
        vanish (measured: exp terms of a logsumexp scaled by their range were set to 0 and
        the model's optimum went wrong). Returns (indices, s)."""
        lo = np.asarray(lo, np.float64).reshape(-1)
        hi = np.asarray(hi, np.float64).reshape(-1)
        r = np.abs(np.broadcast_to(np.nan if ref is None else ref, lo.shape).astype(np.float64))
        ok = np.isfinite(r) & (r > 0)
        s = np.where(ok, np.clip(np.where(ok, r, 1.0), 1e-6, 1.0), 1.0)
        refv = np.where(ok, np.broadcast_to(np.nan if ref is None else ref, lo.shape), 0.0) / s
        self.ref = np.concatenate([self.ref, refv])
        lo, hi = lo / s, hi / s
        lo, hi = lo - 1e-9 * (1.0 + np.abs(lo)), hi + 1e-9 * (1.0 + np.abs(hi))  # rounding
        start = self.n
        for i in range(lo.size):
            v = self.m.addVar(f"{tag}{start + i}", lb=None if not np.isfinite(lo[i]) else lo[i],
                              ub=None if not np.isfinite(hi[i]) else hi[i])
            self.vars.append(v)
            self.terms.append(self.ps.scip.Term(v))
        self.lo = np.concatenate([self.lo, lo])
        self.hi = np.concatenate([self.hi, hi])
        return np.arange(start, self.n), s

    def get(self, i: int) -> Any:
        if i in self.g.consts:
            return self.g.consts[i]
        return self.values.get(i)

    def interval(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.get(i)
        if not isinstance(v, af.Aff):
            c = np.asarray(v, np.float64)
            return c, c
        if i not in self._iv:
            self._iv[i] = v.interval(self.lo, self.hi)
        return self._iv[i]

    def at_ref(self, i: int) -> np.ndarray:
        """Value i at the reference point (real units)."""
        v = self.get(i)
        if not isinstance(v, af.Aff):
            return np.asarray(v, np.float64)
        return (v.cols(self.n) @ self.ref + v.b).reshape(v.shape)

    def expr(self, aff: af.Aff, i: int):
        """Entry i of an `Aff` as a PySCIPOpt linear expression."""
        A = aff.A
        lo, hi = A.indptr[i], A.indptr[i + 1]
        d = {self.terms[j]: float(a) for j, a in zip(A.indices[lo:hi], A.data[lo:hi]) if a != 0}
        if aff.b[i] != 0:
            d[self.ps.scip.Term()] = float(aff.b[i])
        return self.ps.Expr(d)

    def var(self, j: int, s: float = 1.0):
        """``s · var_j``, the value an (index, scale) pair stands for."""
        return self.vars[int(j)] if s == 1.0 else float(s) * self.vars[int(j)]

    def mat_aff(self, aff: af.Aff, bounds: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(indices, scales) with entry k of ``aff`` = scales[k] · var[indices[k]] (flat): a
        row that is one variable times a coefficient is that variable; any other row gets a
        scaled aux variable w with ``row == s · w``."""
        A = aff.A
        nnz = np.diff(A.indptr)
        single = (nnz == 1) & (aff.b == 0)
        first = A.indptr[:-1][single]
        idx, sc = np.empty(aff.size, np.int64), np.ones(aff.size)
        idx[single], sc[single] = A.indices[first], A.data[first]
        todo = np.flatnonzero(~single)
        if todo.size:
            lo, hi = bounds if bounds is not None else aff.interval(self.lo, self.hi)
            ref = (aff.cols(self.n) @ self.ref + aff.b)[todo]
            new, s = self.new_vars(lo.reshape(-1)[todo], hi.reshape(-1)[todo], "lin", ref)
            for k, j, sj in zip(todo, new, s):
                self.m.addCons(self.expr(aff, int(k)) == self.var(j, sj))
            idx[todo], sc[todo] = new, s
        return idx, sc

    def mat(self, i: int, nonneg: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """`mat_aff` of value i, shaped like it (cached); ``nonneg`` adds ``value >= 0`` (the
        domain of log, sqrt and fractional powers)."""
        if i not in self._mat:
            aff = self.get(i)
            idx, sc = self.mat_aff(aff, self.interval(i))
            self._mat[i] = idx.reshape(aff.shape), sc.reshape(aff.shape)
        idx, sc = self._mat[i]
        if nonneg:
            for j, sj in set(zip(idx.reshape(-1).tolist(), sc.reshape(-1).tolist())):
                if (self.lo[j] if sj > 0 else -self.hi[j]) < 0:
                    self.m.addCons(self.var(j, sj) >= 0)
                    if sj > 0:
                        self.lo[j] = 0.0
                    else:
                        self.hi[j] = 0.0
            self._iv.clear()
        return idx, sc

    def operand(self, i: int, shape, nonneg: bool = False) -> tuple[np.ndarray, Any]:
        """Value i broadcast to shape, flat: (indices, scales) of variables, or (constants,
        None)."""
        v = self.get(i)
        if isinstance(v, af.Aff):
            idx, sc = self.mat(i, nonneg)
            return (np.broadcast_to(idx, shape).reshape(-1),
                    np.broadcast_to(sc, shape).reshape(-1))
        return np.broadcast_to(np.asarray(v, np.float64), shape).reshape(-1), None

    def relation(self, out: int, kind: str, shape, lo, hi, payload, ref) -> af.Aff:
        """New scaled variables y for the entries of value ``out`` (in [lo, hi], ``ref`` at
        the reference point) and the pending relation ``y ? kind(payload)``; returns y as
        an `Aff`."""
        size = int(math.prod(shape))
        lo = np.broadcast_to(lo, shape).reshape(-1)
        hi = np.broadcast_to(hi, shape).reshape(-1)
        with np.errstate(all="ignore"):
            ref = np.broadcast_to(np.asarray(ref, np.float64), shape).reshape(-1)
        y, s = self.new_vars(lo, hi, kind, ref)
        self.rels.append((out, kind, (y, s), payload))
        import scipy.sparse as sp
        A = sp.csr_matrix((s, (np.arange(size), y)), shape=(size, self.n))
        return af.Aff(shape, A, np.zeros(size))

    def fail(self, e: Eqn, why: str = "") -> UnsupportedError:
        return UnsupportedError(
            f"scip_minimize: problem {self.name!r}: primitive {e.name!r}{where(e)} is not "
            f"supported on values that depend on x{why}. Supported: {', '.join(SUPPORTED)}; "
            "anything on the instance's data alone")

    # -- pass 1 ----------------------------------------------------------------------------
    def forward(self, need: set[int]) -> None:
        for e in self.g.eqns:
            if not any(o is not None and o in need for o in e.outs):
                continue
            outs = step(self, e)
            for o, v in zip(e.outs, outs):
                if o is not None:
                    self.values[o] = v

    # -- pass 2 ----------------------------------------------------------------------------
    def signs(self) -> dict[int, int]:
        s: dict[int, int] = {self.g.out: 1}
        for e in reversed(self.g.eqns):
            got = [s[o] for o in e.outs if o is not None and o in s]
            if not got:
                continue
            so = got[0] if all(v == got[0] for v in got) else 0
            for k, i in enumerate(e.ins):
                if not isinstance(self.get(i), af.Aff):
                    continue
                d = self.mono(e, k)
                if d is None:
                    continue
                v = so * d
                s[i] = v if i not in s or s[i] == v else 0
        return s

    def mono(self, e: Eqn, k: int) -> int | None:
        """How the output of e moves with operand k: +1, -1, 0 (either way), None (not at
        all, e.g. a select predicate)."""
        name, ins = e.name, e.ins
        if name == "select_n" and k == 0 or name in NO_VALUE:
            return None
        if name in ("sub",):
            return 1 if k == 0 else -1
        if name in ("neg", "rsqrt"):
            return -1
        if name in ("mul", "dot_general"):
            return sign_of(*self.interval(ins[1 - k]))
        if name == "div":
            d = sign_of(*self.interval(ins[1]))
            if k == 0 or d == 0:
                return d
            dlo, dhi = self.interval(ins[1])
            if np.any((dlo <= 0) & (dhi >= 0)):
                return 0
            return -sign_of(*self.interval(ins[0]))
        if name in ("integer_pow", "square"):
            p = 2 if name == "square" else int(e.params["y"])
            lo, hi = self.interval(ins[0])
            odd = (p - 1) % 2 == 0
            if p > 0:
                return 1 if odd else sign_of(lo, hi)
            if np.any((lo <= 0) & (hi >= 0)):
                return 0
            return -(1 if odd else sign_of(lo, hi))
        if name == "pow":
            if k == 0:       # p u^(p-1): of p's sign where u >= 0 (always, for a fractional p)
                p = np.asarray(self.get(ins[1]), np.float64)
                lo, _ = self.interval(ins[0])
                frac = bool(np.any(p != np.round(p)))
                return sign_of(p, p) if frac or np.all(lo >= 0) else 0
            c = np.asarray(self.get(ins[0]), np.float64)
            return 0 if np.any(c <= 0) else sign_of(np.log(c), np.log(c))
        if name == "abs":
            return sign_of(*self.interval(ins[0]))
        if name in UP:
            return 1
        return 0

    # -- pass 3 ----------------------------------------------------------------------------
    def emit(self, signs: dict[int, int]) -> None:
        for out, kind, y, payload in self.rels:
            emit_relation(self, signs.get(out, 0), kind, y, payload)

    def rel(self, sign: int, lhs, rhs) -> None:
        """``lhs >= rhs`` (+1), ``<=`` (-1) or ``==`` (0)."""
        self.m.addCons(lhs >= rhs if sign > 0 else (lhs <= rhs if sign < 0 else lhs == rhs))

    def rel_y(self, sign: int, y: tuple, k: int, rhs) -> None:
        """Relation of entry k of the scaled variables y = (indices, s): ``s·v ? rhs``,
        written ``v ? rhs / s`` (v of magnitude about 1)."""
        j, s = y[0][k], y[1][k]
        self.rel(sign, self.vars[int(j)], rhs if s == 1.0 else (1.0 / float(s)) * rhs)


def _eye(n: int):
    import scipy.sparse as sp
    return sp.identity(n, format="csr")
