"""Import an OR-Tools MathOpt model as a `LinearSpec` (`LinearSpec.from_mathopt`).

Users often already hold Ω as a ``mathopt.Model`` (variables with bounds and integrality,
linear constraints). Every variable becomes one flat position, every linear constraint
``lb <= a·x <= ub`` one or two rows (an equality when lb == ub), and the layout keeps the
variables: ``spec.blocks.position(v)`` is v's flat position. Variables named
``base[i,j,...]`` (MathOpt's usual ``f"x[{i},{j}]"`` names) that fill a full index grid from
0 become one block ``base`` of that shape, so that a `surco.Problem` on the spec receives
``{"base": array, ...}``; every other variable is a scalar block named by the variable.

    >>> from ortools.math_opt.python import mathopt
    >>> from surco.solvers import LinearSpec
    >>> model = mathopt.Model()
    >>> x = [model.add_binary_variable(name=f"x[{i}]") for i in range(3)]
    >>> t = model.add_variable(lb=0, ub=10, name="t")
    >>> _ = model.add_linear_constraint(x[0] + x[1] + x[2] == 2, name="two")
    >>> _ = model.add_linear_constraint(t - x[0] >= 0.5, name="link")
    >>> spec = LinearSpec.from_mathopt(model)
    >>> spec.blocks, spec.blocks.position(t), spec.A_eq.toarray(), spec.A_ub.toarray()
    (Blocks({'x': (3,), 't': ()}), 3, array([[1., 1., 1., 0.]]), array([[ 1.,  0.,  0., -1.]]))
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import scipy.sparse as sp

from .blocks import Blocks

__all__ = ["spec_kwargs_from_mathopt", "mathopt_cost"]

_INDEXED = re.compile(r"^([A-Za-z_][\w.]*)\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]$")


def _model_class():
    try:
        from ortools.math_opt.python import mathopt
    except ImportError as exc:   # pragma: no cover - ortools is a core dependency
        raise ImportError("LinearSpec.from_mathopt needs OR-Tools (pip install ortools)") from exc
    return mathopt.Model


def _layout(variables: list) -> tuple[Blocks, list]:
    """The blocks of the variables and the variables in layout order."""
    groups: dict[str, dict[tuple[int, ...], Any]] = {}
    order: list[tuple[str, Any]] = []          # (block name, grid dict or variable)
    names = [v.name for v in variables]
    count: dict[str, int] = {}
    for nm in names:
        count[nm] = count.get(nm, 0) + 1
    for v in variables:
        m = _INDEXED.match(v.name)
        if m:
            base, idx = m.group(1), tuple(int(t) for t in m.group(2).split(","))
            grid = groups.get(base)
            if grid is None:
                grid = groups[base] = {}
                order.append((base, grid))
            if idx in grid or (grid and len(next(iter(grid))) != len(idx)):
                grid["__bad__"] = True                 # duplicates or mixed ranks
            grid[idx] = v
        else:
            order.append((v.name, v))
    blocks: dict[str, Any] = {}
    layout: list = []
    used = set()

    def scalar(v):
        own = v.name if v.name and count[v.name] == 1 and not _INDEXED.match(v.name) else None
        name = next(nm for nm in (own, f"x{v.id}", f"_var{v.id}") if nm and nm not in used)
        used.add(name)
        blocks[name] = ()
        layout.append(v)

    for name, item in order:
        if not isinstance(item, dict):
            scalar(item)
            continue
        idxs = [k for k in item if k != "__bad__"]
        shape = tuple(max(k[d] for k in idxs) + 1 for d in range(len(idxs[0])))
        full = ("__bad__" not in item and math.prod(shape) == len(idxs) and name not in count
                and name not in used)
        if not full:
            for k in idxs:
                scalar(item[k])
            continue
        used.add(name)
        blocks[name] = shape
        layout.extend(item[k] for k in np.ndindex(*shape))
    return Blocks(blocks, variables=layout), layout


def spec_kwargs_from_mathopt(model: Any, name: str | None = None) -> dict[str, Any]:
    """The `LinearSpec` keyword arguments of a MathOpt model (see the module docstring).

    Raises:
      TypeError: not a ``mathopt.Model``.
      ValueError: a quadratic or indicator constraint, an auxiliary objective (each named),
        a NaN bound, or no variables."""
    Model = _model_class()
    if not isinstance(model, Model):
        raise TypeError(f"LinearSpec.from_mathopt: expected a mathopt.Model, got "
                        f"{type(model).__name__}")
    where = f"LinearSpec.from_mathopt: model {model.name!r}"
    for kind, items in (("quadratic constraint", model.get_quadratic_constraints()),
                        ("indicator constraint", model.get_indicator_constraints())):
        items = list(items)
        if items:
            raise ValueError(f"{where}: {kind} {items[0].name!r} (id {items[0].id}) cannot be "
                             f"imported into a LinearSpec ({len(items)} {kind}s); Ω must be "
                             "linear: write it with linear rows, and its nonlinear part in f")
    aux = list(model.auxiliary_objectives())
    if aux:
        raise ValueError(f"{where}: auxiliary objective {aux[0].name!r} cannot be imported; "
                         "LinearSpec holds Ω only")
    variables = list(model.variables())
    if not variables:
        raise ValueError(f"{where} has no variables")
    blocks, layout = _layout(variables)
    pos = {v: i for i, v in enumerate(layout)}
    n = len(layout)
    lb = np.array([v.lower_bound for v in layout], np.float64)
    ub = np.array([v.upper_bound for v in layout], np.float64)
    bad = np.flatnonzero(np.isnan(lb) | np.isnan(ub))
    if bad.size:
        raise ValueError(f"{where}: variable {layout[bad[0]].name!r} has a NaN bound")
    integer = np.array([v.integer for v in layout], bool)
    ub_rows, ub_rhs, eq_rows, eq_rhs = [], [], [], []
    for c in model.linear_constraints():
        lo, hi = c.lower_bound, c.upper_bound
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{where}: linear constraint {c.name!r} has a NaN bound")
        if lo == math.inf or hi == -math.inf:
            raise ValueError(f"{where}: linear constraint {c.name!r} has bounds [{lo}, {hi}], "
                             "which no x satisfies")
        terms = {}
        for t in c.terms():
            terms[pos[t.variable]] = terms.get(pos[t.variable], 0.0) + t.coefficient
        row = (np.fromiter(terms, np.int64, len(terms)), np.fromiter(terms.values(), np.float64,
                                                                     len(terms)))
        if lo == hi:
            eq_rows.append(row)
            eq_rhs.append(hi)
            continue
        if hi < math.inf:
            ub_rows.append(row)
            ub_rhs.append(hi)
        if lo > -math.inf:
            ub_rows.append((row[0], -row[1]))
            ub_rhs.append(-lo)

    def matrix(rows):
        if not rows:
            return None
        r = np.concatenate([np.full(c.size, i) for i, (c, _) in enumerate(rows)])
        return sp.csr_matrix((np.concatenate([v for _, v in rows]),
                              (r, np.concatenate([c for c, _ in rows]))), shape=(len(rows), n))

    return dict(shape=(n,), A_ub=matrix(ub_rows), b_ub=np.array(ub_rhs) if ub_rows else None,
                A_eq=matrix(eq_rows), b_eq=np.array(eq_rhs) if eq_rows else None, lb=lb, ub=ub,
                integer=integer, name=name or model.name or "mathopt", blocks=blocks)


def mathopt_cost(model: Any, spec) -> tuple[np.ndarray, float]:
    """The model's linear objective as a flat cost over ``spec`` (a spec imported from this
    model): ``(c, offset)`` such that minimising ``c·x + offset`` is the model's objective
    (negated for a maximisation).

    Raises:
      ValueError: the objective has quadratic terms, or a variable the spec does not hold."""
    obj = model.objective
    if list(obj.quadratic_terms()):
        raise ValueError(f"mathopt_cost: model {model.name!r} has a quadratic objective; only "
                         "its linear part could be a cost (write the rest in f)")
    c = np.zeros(spec.n)
    for t in obj.linear_terms():
        c[spec.blocks.position(t.variable)] += t.coefficient
    s = -1.0 if obj.is_maximize else 1.0
    return s * c, s * float(obj.offset)
