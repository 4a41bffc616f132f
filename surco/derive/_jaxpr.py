"""A JAX objective as a flat list of primitive equations over numbered values.

`trace` runs ``jax.make_jaxpr`` on ``x -> f(x, instance)``: the instance's arrays become
constants and x is the one input. Calls that only wrap another jaxpr (``jit``/``pjit``,
``custom_jvp_call``, ``custom_vjp_call``, ``closed_call``, ``remat``) are inlined, so the
translation sees primitives only. Each value gets an integer id; constants (the instance's
arrays and literals) are kept as float64 / bool numpy arrays.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from surco.problem import ProblemError

__all__ = ["Eqn", "Graph", "trace", "UnsupportedError", "where"]

#: Call-like primitives whose inner jaxpr is inlined, and the parameter that holds it.
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
          "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr",
          "remat": "jaxpr", "checkpoint": "jaxpr"}


class UnsupportedError(ProblemError):
    """The objective uses an operation that `surco.scip_minimize` cannot write for SCIP on
    values that depend on x (the message names the primitive and the source line)."""


@dataclasses.dataclass
class Eqn:
    """One primitive application: ``outs = prim(*ins, **params)`` over value ids."""

    primitive: Any            # the jax Primitive (bound again to fold constants)
    ins: list[int]
    outs: list[int | None]    # None: an output nobody reads (a DropVar)
    params: dict
    source: str               # "file:line (function)" of the user's code, or ""

    @property
    def name(self) -> str:
        return self.primitive.name


@dataclasses.dataclass
class Graph:
    """The flattened objective: equations in order, each value's shape, constants, the id
    of x and of the scalar output."""

    eqns: list[Eqn]
    shapes: dict[int, tuple[int, ...]]
    consts: dict[int, np.ndarray]
    x: int
    out: int


def where(eqn: Eqn) -> str:
    """' at file:line (function)' for messages, or '' when JAX recorded no source."""
    return f" at {eqn.source}" if eqn.source else ""


def _source(eqn) -> str:
    try:
        from jax._src import source_info_util
        return str(source_info_util.summarize(eqn.source_info))
    except Exception:   # a private API: messages lose the line, nothing else
        return ""


def _const(a: Any) -> np.ndarray:
    arr = np.asarray(a)
    return arr.astype(np.float64) if np.issubdtype(arr.dtype, np.floating) else arr


class _Builder:
    def __init__(self):
        self.eqns: list[Eqn] = []
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.consts: dict[int, np.ndarray] = {}

    def new(self, shape) -> int:
        i = len(self.shapes)
        self.shapes[i] = tuple(int(s) for s in shape)
        return i

    def const(self, value: Any) -> int:
        arr = _const(value)
        i = self.new(arr.shape)
        self.consts[i] = arr
        return i

    def inline(self, jaxpr, consts, ins: list[int]) -> list[int | None]:
        """Append the equations of ``jaxpr`` (a core Jaxpr) read on value ids ``ins``;
        returns the ids of its outputs."""
        from jax.extend.core import DropVar, Literal
        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts):
            env[v] = self.const(c)
        if len(jaxpr.invars) != len(ins):
            raise ProblemError(f"scip_minimize: an inlined call takes {len(jaxpr.invars)} "
                               f"inputs but was given {len(ins)}")
        env.update(zip(jaxpr.invars, ins))

        def read(a) -> int:
            return self.const(a.val) if isinstance(a, Literal) else env[a]

        for eqn in jaxpr.eqns:
            args = [read(a) for a in eqn.invars]
            key = _CALLS.get(eqn.primitive.name)
            inner = eqn.params.get(key) if key else None
            if inner is not None:
                closed = hasattr(inner, "consts")
                outs = self.inline(inner.jaxpr if closed else inner,
                                   inner.consts if closed else [], args)
                for o, r in zip(eqn.outvars, outs):
                    if not isinstance(o, DropVar):
                        env[o] = r
                continue
            outs = []
            for o in eqn.outvars:
                outs.append(None if isinstance(o, DropVar) else self.new(o.aval.shape))
                if outs[-1] is not None:
                    env[o] = outs[-1]
            self.eqns.append(Eqn(eqn.primitive, args, outs, dict(eqn.params), _source(eqn)))
        return [read(a) for a in jaxpr.outvars]


def trace(f: Callable[[Any, Any], Any], instance: Any, shape: tuple[int, ...],
          name: str = "f") -> Graph:
    """Trace ``f(x, instance)`` for x of ``shape`` (float32) into a flat `Graph`.

    Raises:
      ProblemError: f cannot be traced on such an x, or does not return one scalar.
    """
    x0 = jax.ShapeDtypeStruct(tuple(shape), np.float32)
    try:
        closed = jax.make_jaxpr(lambda x: f(x, instance))(x0)
    except Exception as exc:
        raise ProblemError(f"scip_minimize: tracing {name}(x, instance) on x of shape "
                           f"{tuple(shape)} failed: {type(exc).__name__}: {exc}") from exc
    if len(closed.jaxpr.outvars) != 1 or tuple(closed.out_avals[0].shape) != ():
        raise ProblemError(f"scip_minimize: {name}(x, instance) must return one scalar, got "
                           f"{[tuple(a.shape) for a in closed.out_avals]}")
    b = _Builder()
    x = b.new(shape)
    out = b.inline(closed.jaxpr, closed.consts, [x])[0]
    return Graph(b.eqns, b.shapes, b.consts, x, out)


def needed(graph: Graph, no_value: frozenset[str]) -> set[int]:
    """Ids of the values the output depends on (dead code is never translated). The inputs
    of primitives in ``no_value`` (whose result is known from shapes alone, e.g.
    ``is_finite`` of a model value) are not needed through them."""
    need = {graph.out}
    for e in reversed(graph.eqns):
        if any(o is not None and o in need for o in e.outs) and e.name not in no_value:
            need.update(e.ins)
    return need
