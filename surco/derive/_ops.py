"""Per-primitive rules of the translation (`_translate.Translator`): `step` turns one
equation into values (constants folded, linear ones as `Aff`, nonlinear ones as auxiliary
variables with a pending relation), `emit_relation` writes a relation once its sign is known.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from . import _affine as af
from ._jaxpr import Eqn
from ._prims import (DOMAIN, IDENTITY, MOVES, NO_VALUE, UNARY, pow_interval, prod_interval,
                     unary_interval)

_NP = {"add": np.add, "add_any": np.add, "sub": np.subtract, "mul": np.multiply,
       "div": np.divide, "neg": np.negative, "max": np.maximum, "min": np.minimum,
       "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
       "abs": np.abs, "tanh": np.tanh, "pow": np.power, "square": np.square,
       "logistic": lambda v: 1 / (1 + np.exp(-v)), "rsqrt": lambda v: 1 / np.sqrt(v),
       "stop_gradient": lambda v: v}


def _floating(v) -> bool:
    return isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)


def fold(t, e: Eqn, ins: list) -> list:
    """An equation on constants only: numpy in float64 where the rule is known, else the
    primitive itself (JAX, in the traced dtype)."""
    name, p = e.name, e.params
    if all(_floating(v) for v in ins):
        with np.errstate(all="ignore"):
            if name in _NP:
                return [_NP[name](*ins)]
            if name == "integer_pow":
                return [ins[0] ** p["y"]]
            if name in ("reduce_sum", "reduce_max", "reduce_min"):
                f = {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min}[name]
                return [f(ins[0], axis=tuple(p["axes"]))]
            if name == "dot_general":
                return [af.dot_general_np(ins[0], ins[1], p["dimension_numbers"])]
            if (name in MOVES or name in ("concatenate", "stack")) and name != "pad":
                data = MOVES.get(name, tuple(range(len(ins))))
                return [_move(t, e, ins, data).b.reshape(t.g.shapes[e.outs[0]])]
    args = [jnp.asarray(v, jnp.float32) if _floating(v) else jnp.asarray(v) for v in ins]
    out = e.primitive.bind(*args, **p)
    outs = out if e.primitive.multiple_results else [out]
    return [np.asarray(o).astype(np.float64) if np.issubdtype(np.asarray(o).dtype, np.floating)
            else np.asarray(o) for o in outs]


def _move(t, e: Eqn, ins: list, data: tuple, fill: float = 0.0) -> af.Aff:
    ops = [v if (k in data or not _floating(v)) else jnp.asarray(v, jnp.float32)
           for k, v in enumerate(ins)]
    try:
        return af.moved(e.primitive, e.params, ops, list(data), t.g.shapes[e.outs[0]], t.n, fill)
    except ValueError as exc:
        raise t.fail(e, f" ({exc})") from None


def step(t, e: Eqn) -> list:
    """The values of e's outputs (see the module docstring)."""
    name, p = e.name, e.params
    ins = [t.get(i) for i in e.ins]
    shape = t.g.shapes[next(o for o in e.outs if o is not None)]
    if name in NO_VALUE:     # is_finite: every value of the model is finite
        return [np.ones(shape, bool) if ins[0] is None or isinstance(ins[0], af.Aff)
                else np.isfinite(ins[0])]
    if not any(isinstance(v, af.Aff) for v in ins):
        return fold(t, e, ins)
    aff = [isinstance(v, af.Aff) for v in ins]
    if name in IDENTITY:
        return [ins[0]]
    if name == "convert_element_type":
        if not jnp.issubdtype(p["new_dtype"], jnp.floating):
            raise t.fail(e, f" (conversion to {p['new_dtype']})")
        return [ins[0]]
    if name in MOVES or name in ("concatenate", "stack", "select_n"):
        data = MOVES.get(name) or (tuple(range(1, len(ins))) if name == "select_n"
                                    else tuple(range(len(ins))))
        if any(a for k, a in enumerate(aff) if k not in data):
            raise t.fail(e, " (only its data operands may depend on x; indices, predicates "
                            "and padding values must be constants)")
        fill = 0.0
        if name == "pad":
            fill, ins = float(ins[1]), [ins[0], jnp.int32(0)]
        return [_move(t, e, ins, data, fill)]
    a = ins[0]
    b = ins[1] if len(ins) > 1 else None
    out = e.outs[0]
    if name in ("add", "add_any", "sub"):
        return [af.combine(a, b, 1.0, -1.0 if name == "sub" else 1.0, shape, t.n)]
    if name == "neg":
        return [af.combine(a, 0.0, -1.0, 0.0, shape, t.n)]
    if name == "mul" and not all(aff):
        return [af.scale(a, b, shape) if aff[0] else af.scale(b, a, shape)]
    if name == "div" and not aff[1]:
        with np.errstate(divide="ignore"):
            return [af.scale(a, 1.0 / np.asarray(b, np.float64), shape)]
    if name == "reduce_sum":
        return [af.reduce_sum(a, tuple(p["axes"]))]
    if name == "dot_general" and not all(aff):
        return [af.dot_const(a, b, p["dimension_numbers"], t.n)]
    if name in UNARY:
        power = 2 if name == "square" else p.get("y")
        kind = "integer_pow" if name == "square" else name
        u = t.operand(e.ins[0], shape, nonneg=name in DOMAIN)
        lo, hi = (np.broadcast_to(v, shape) for v in t.interval(e.ins[0]))
        lo, hi = unary_interval(kind, lo, hi, power)
        with np.errstate(all="ignore"):
            r = t.at_ref(e.ins[0])
            ref = r ** power if kind == "integer_pow" else _NP[kind](r)
        return [t.relation(out, kind, shape, lo, hi, (u, power), ref)]
    if name in ("reduce_max", "reduce_min"):
        return [_reduce(t, e, name[7:], a)]
    if name == "dot_general":
        return [_dot(t, e, shape)]
    if name not in ("mul", "div", "pow", "max", "min"):
        raise t.fail(e)
    (alo, ahi), (blo, bhi) = (tuple(np.broadcast_to(v, shape) for v in t.interval(i))
                              for i in e.ins[:2])
    ra, rb = t.at_ref(e.ins[0]), t.at_ref(e.ins[1])
    if name == "mul":
        ia, ib = (np.broadcast_to(np.arange(int(math.prod(t.g.shapes[i]))).reshape(
            t.g.shapes[i]), shape).reshape(-1) for i in e.ins[:2])
        return [_products(t, e, shape, ia, ib, 1, *prod_interval(alo, ahi, blo, bhi), ra * rb)]
    if name == "div":
        u, v = t.operand(e.ins[0], shape), t.operand(e.ins[1], shape)
        if np.any((blo <= 0) & (bhi >= 0)):
            lo, hi = np.full(shape, -np.inf), np.full(shape, np.inf)
        else:
            with np.errstate(divide="ignore"):
                lo, hi = prod_interval(alo, ahi, 1.0 / bhi, 1.0 / blo)
        with np.errstate(all="ignore"):
            return [t.relation(out, "div", shape, lo, hi, (u, v), ra / rb)]
    if name == "pow":
        if aff[1] and aff[0]:
            raise t.fail(e, " (a power whose base and exponent both depend on x)")
        if aff[0]:
            pw = np.broadcast_to(np.asarray(b, np.float64), shape).reshape(-1)
            u = t.operand(e.ins[0], shape, nonneg=bool(np.any(pw != np.round(pw))))
            lo, hi = pow_interval(alo, ahi, pw.reshape(shape))
            with np.errstate(all="ignore"):
                ref = np.power(ra, pw.reshape(shape))
            return [t.relation(out, "integer_pow", shape, lo, hi, (u, pw), ref)]
        c = np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1)
        if np.any(c <= 0):
            raise t.fail(e, " (a power c**u needs c > 0)")
        with np.errstate(all="ignore"):
            lc = np.log(c).reshape(shape)
            lo, hi = prod_interval(lc, lc, blo, bhi)
            ref = np.exp(lc * rb)
        return [t.relation(out, "cpow", shape, np.exp(lo), np.exp(hi),
                           (af.broadcast(b, shape), lc.reshape(-1)), ref)]
    return [_minmax(t, e, name, shape, a, b, (alo, ahi), (blo, bhi), (ra, rb))]


def _as_aff(t, v, shape) -> af.Aff:
    v = af.broadcast(v, shape)
    return v if isinstance(v, af.Aff) else af.const_aff(v, t.n)


def _minmax(t, e, kind, shape, a, b, ia, ib, refs):
    (alo, ahi), (blo, bhi) = ia, ib
    first, second = (ia, ib) if kind == "max" else ((-ahi, -alo), (-bhi, -blo))
    if np.all(second[1] <= first[0]):      # a dominates everywhere
        return af.broadcast(a, shape)
    if np.all(first[1] <= second[0]):
        return af.broadcast(b, shape)
    for v in (a, b):
        if not isinstance(v, af.Aff) and np.any(~np.isfinite(np.asarray(v, np.float64))):
            raise t.fail(e, " (an infinite constant that does not drop out)")
    f = np.maximum if kind == "max" else np.minimum
    lo, hi = f(alo, blo), f(ahi, bhi)
    pay = ("pair", [_as_aff(t, a, shape), _as_aff(t, b, shape)],
           [v.reshape(-1) for v in (alo, ahi, blo, bhi)])
    return t.relation(e.outs[0], kind, shape, lo, hi, pay, f(*refs))


def _reduce(t, e, kind, a):
    axes = tuple(e.params["axes"])
    keep = [d for d in range(len(a.shape)) if d not in axes]
    out_shape = tuple(a.shape[d] for d in keep)
    g = int(math.prod(a.shape[d] for d in axes))
    idx = np.transpose(np.arange(a.size).reshape(a.shape), keep + list(axes))
    idx = idx.reshape(int(math.prod(out_shape)), g)
    lo, hi = (v.reshape(-1)[idx] for v in t.interval(e.ins[0]))
    f = np.max if kind == "max" else np.min
    rows = a.rows(idx)
    if g == 1:
        return af.Aff(out_shape, rows.A, rows.b)
    ref = f(t.at_ref(e.ins[0]).reshape(-1)[idx], 1).reshape(out_shape)
    return t.relation(e.outs[0], kind, out_shape, f(lo, 1).reshape(out_shape),
                      f(hi, 1).reshape(out_shape), ("group", rows, (lo, hi)), ref)


#: A product (or a sum of products) is written expanded in x (a quadratic SCIP recognises,
#: e.g. products of binaries) when that takes at most this many terms; otherwise each
#: operand entry becomes one variable first.
EXPAND_TERMS = 20_000


def _products(t, e, shape, ia, ib, K, lo, hi, ref):
    """y_o = Σ_k a[ia[o K + k]] · b[ib[o K + k]] (elementwise mul: K = 1; dot_general)."""
    a, b = t.get(e.ins[0]), t.get(e.ins[1])
    UA, VA = a.rows(ia), b.rows(ib)
    nnz = [np.diff(M.A.indptr) + (M.b != 0) for M in (UA, VA)]
    if int(np.sum(nnz[0] * nnz[1])) <= EXPAND_TERMS:
        payload = ("expand", K, UA, VA)
    else:
        (ma, sa), (mb, sb) = t.mat(e.ins[0]), t.mat(e.ins[1])
        payload = ("vars", K, (ma.reshape(-1)[ia], sa.reshape(-1)[ia]),
                   (mb.reshape(-1)[ib], sb.reshape(-1)[ib]))
    return t.relation(e.outs[0], "prod", shape, lo, hi, payload, ref)


def _dot(t, e, shape):
    (lc, rc), (lb, rb) = e.params["dimension_numbers"]
    ls, rs = t.g.shapes[e.ins[0]], t.g.shapes[e.ins[1]]
    lfree = [d for d in range(len(ls)) if d not in lc and d not in lb]
    rfree = [d for d in range(len(rs)) if d not in rc and d not in rb]
    B = int(math.prod(ls[d] for d in lb))
    K = int(math.prod(ls[d] for d in lc))
    F = int(math.prod(ls[d] for d in lfree))
    G = int(math.prod(rs[d] for d in rfree))

    def arranged(i, order, mid):
        idx = np.arange(int(math.prod(t.g.shapes[i]))).reshape(t.g.shapes[i])
        return [np.transpose(np.broadcast_to(v, idx.shape), order).reshape(B, *mid)
                for v in (idx, *t.interval(i))]

    L = arranged(e.ins[0], list(lb) + lfree + list(lc), (F, K))
    R = arranged(e.ins[1], list(rb) + list(rc) + rfree, (K, G))
    pair = [[np.broadcast_to(v, (B, F, G, K)) for v in
             (x[:, :, None, :], np.swapaxes(y, 1, 2)[:, None, :, :])] for x, y in zip(L, R)]
    (llo, rlo), (lhi, rhi) = pair[1], pair[2]
    plo, phi = prod_interval(llo, lhi, rlo, rhi)
    lo, hi = plo.sum(-1).reshape(shape), phi.sum(-1).reshape(shape)
    ref = af.dot_general_np(t.at_ref(e.ins[0]), t.at_ref(e.ins[1]), e.params["dimension_numbers"])
    return _products(t, e, shape, pair[0][0].reshape(-1), pair[0][1].reshape(-1), K, lo, hi, ref)


# -- emission ----------------------------------------------------------------------------------

def _unary_expr(ps, kind, u, p):
    if kind == "exp":
        return ps.exp(u)
    if kind == "log":
        return ps.log(u)
    if kind == "log1p":
        return ps.log(1 + u)
    if kind == "expm1":
        return ps.exp(u) - 1
    if kind == "sqrt":
        return ps.sqrt(u)
    if kind == "rsqrt":
        return u ** -0.5
    if kind == "abs":
        return abs(u)
    if kind == "logistic":
        return (1 + ps.exp(-1.0 * u)) ** -1
    if kind == "tanh":
        return 2 * (1 + ps.exp(-2.0 * u)) ** -1 - 1
    p = float(p)
    return u ** (int(p) if p == round(p) else p)


def _value(t, op, k: int):
    """Entry k of an operand (indices, scales) or (constants, None) as an expression."""
    vals, sc = op
    return float(vals[k]) if sc is None else t.var(vals[k], sc[k])


def emit_relation(t, s: int, kind: str, y: tuple, payload) -> None:
    """Write one pending relation with sign s for the scaled variables y = (indices,
    scales) (see `_translate`)."""
    ps, size = t.ps, len(y[0])
    if kind in UNARY:
        u, p = payload
        pw = np.broadcast_to(np.asarray(0.0 if p is None else p, np.float64), (size,))
        for k in range(size):
            t.rel_y(s, y, k, _unary_expr(ps, kind, _value(t, u, k), pw[k]))
    elif kind == "prod":
        mode, K = payload[:2]
        for o in range(size):
            ks = range(o * K, (o + 1) * K)
            if mode == "expand":
                UA, VA = payload[2:]
                ex = ps.quicksum(t.expr(UA, k) * t.expr(VA, k) for k in ks)
            else:
                (U, SU), (V, SV) = payload[2:]
                ex = ps.quicksum(float(SU[k] * SV[k]) * (t.vars[U[k]] ** 2 if U[k] == V[k]
                                                         else t.vars[U[k]] * t.vars[V[k]])
                                 for k in ks)
            t.rel_y(s, y, o, ex)
    elif kind == "div":
        u, v = payload
        for k in range(size):
            t.rel_y(s, y, k, _value(t, u, k) * (1.0 / float(v[1][k]))
                    * t.vars[int(v[0][k])] ** -1)
    elif kind == "cpow":
        aff, lc = payload
        for k in range(size):
            t.rel_y(s, y, k, ps.exp(float(lc[k]) * t.expr(aff, k)))
    elif payload[0] == "pair":
        (A, B), (alo, ahi, blo, bhi) = payload[1], payload[2]
        ra, rb = (v.cols(t.n) @ t.ref + v.b for v in (A, B))
        for k in range(size):
            _extreme(t, s, kind, t.var(y[0][k], y[1][k]),
                     [(t.expr(A, k), alo[k], ahi[k], ra[k]), (t.expr(B, k), blo[k], bhi[k], rb[k])])
    else:
        rows, (lo, hi) = payload[1], payload[2]
        g = lo.shape[1]
        rr = rows.cols(t.n) @ t.ref + rows.b
        for o in range(size):
            _extreme(t, s, kind, t.var(y[0][o], y[1][o]),
                     [(t.expr(rows, o * g + j), lo[o, j], hi[o, j], rr[o * g + j])
                      for j in range(g)])


def _extreme(t, s: int, kind: str, y, items: list) -> None:
    """``y = max (or min) of items`` [(expr, lo, hi, ref)], with sign s of y: the epigraph
    of a max with s > 0 (hypograph of a min with s < 0); otherwise the exact chain
    ``m' = (m + a ± z) / 2``, ``z ? |m - a|`` (z's sign that of y for max, opposite for min)."""
    sg = 1.0 if kind == "max" else -1.0
    best = max(sg * (lo if sg > 0 else hi) for _, lo, hi, _ in items)
    items = [it for it in items if sg * (it[2] if sg > 0 else it[1]) >= best]  # not dominated
    if (s > 0 and kind == "max") or (s < 0 and kind == "min"):
        for ex, _, _, _ in items:
            t.rel(s, y, ex)
        return
    pick = max if sg > 0 else min
    cur, clo, chi, cref = items[0]
    for k, (ex, lo, hi, ref) in enumerate(items[1:]):
        last = k == len(items) - 2
        nlo, nhi, nref = pick(clo, lo), pick(chi, hi), pick(cref, ref)
        nxt = y if last else t.var(*(a[0] for a in t.new_vars([nlo], [nhi], kind, [nref])))
        z = t.new_vars([0.0], [max(abs(chi - lo), abs(hi - clo))], "abs", [abs(cref - ref)])
        t.m.addCons(nxt == 0.5 * (cur + ex) + 0.5 * sg * t.var(z[0][0], z[1][0]))
        t.rel_y(int(s * sg), z, 0, abs(cur - ex))
        cur, clo, chi, cref = nxt, nlo, nhi, nref
    if len(items) == 1:
        t.m.addCons(y == cur)
