"""LANCER's compiled pieces and argument checks, shared by `surco.lancer.zero` and
`surco.lancer.prior` (private)."""
from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import Metered, RunControl, SolverSlot, batched_objective, is_interrupt
from surco.checks import tree_signature
from surco.budget import BudgetExhausted
from surco.lancer import landscape as L
from surco.problem import Problem


class _Program:
    """The jitted functions of one (problem, estimator, landscape net, B, shapes, free_f):
    the value and θ-gradient of M_w through the estimator for B stacked instances
    (``vjp``), M_w of K candidates of one instance (``predict``) and f of K solutions
    (``f_many``), closing over a `SolverSlot` that each run loads with its own solvers.

    With ``free`` (f a free proxy of the metered cost) M's base term is f(x) of the
    solution x = g_Ω(c) the descent step lands on; without it, the base is each instance's
    constant ``SV[:, 0]`` (the start's true cost): f is then never traced into ``vjp``, so
    the descent learns nothing from f at a solution that has not been evaluated."""

    def __init__(self, problem: Problem, est, net: L.LandscapeNet, members, free: bool):
        self.solver = solver = Metered(SolverSlot(members))
        self.lock = threading.Lock()
        fvec = batched_objective(problem) if free else None
        one = lambda p, c, x, fx, z, sv, a: L.predict(net, p, c, x, fx, z, sv, a)  # noqa: E731
        mvec = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, None))

        @jax.jit
        def vjp(theta, params, alpha, key, ys, Z, SV):
            c, vjp_cost = jax.vjp(problem.to_cost, theta)
            x, vjp_est, status = jax.vjp(lambda cc: est(solver, cc, key, return_status=True),
                                         c, has_aux=True)

            def m_of(cc, xx):
                fx = fvec(xx, ys) if free else SV[:, 0].astype(xx.dtype)
                return mvec(params, cc, xx, fx, Z, SV, alpha), fx
            m, vjp_m, fx = jax.vjp(m_of, c, x, has_aux=True)
            gc, gx = vjp_m(jnp.ones_like(m))
            g = vjp_cost(gc + vjp_est(jnp.where(jnp.isfinite(gx), gx, 0.0))[0])[0]
            return m, fx, x, c, status, g

        self.vjp = vjp
        self.predict = jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, None, None, None)))
        self.f_many = jax.jit(jax.vmap(problem.f, in_axes=(0, None)))
        self.to_cost = jax.jit(jax.vmap(problem.to_cost))

    def load(self, members, control: RunControl | None) -> "_Program":
        self.solver.inner.load(members)
        self.solver.reset(control)
        return self

    def release(self) -> None:
        self.solver.reset(None)
        self.solver.inner.members = self.solver.members = []
        self.lock.release()


_PROGRAMS: dict = {}
_PROGRAMS_LOCK = threading.Lock()


def program(problem: Problem, est, net: L.LandscapeNet, members, ys, Z: np.ndarray,
            control: RunControl | None, free: bool) -> _Program:
    """The cached `_Program` for these shapes (``Z``: the stacked per-row features,
    ``(B, n, F)``) and ``free`` (whether f is a free proxy, `LancerConfig.free_f`), loaded
    with ``members`` and locked for the caller (who must `release` it); a fresh one when
    another run holds it."""
    sig = (problem, est, net, len(members), tuple(members[0].shape), tree_signature(ys),
           Z.shape, bool(free))
    try:
        hash(sig)
    except TypeError:   # an unhashable estimator: compiled for this run only
        sig = None
    with _PROGRAMS_LOCK:
        prog = _PROGRAMS.get(sig) if sig is not None else None
        if prog is not None and prog.lock.acquire(blocking=False):
            return prog.load(members, control)
    prog = _Program(problem, est, net, members, bool(free))
    prog.lock.acquire()
    if sig is not None:
        with _PROGRAMS_LOCK:
            if len(_PROGRAMS) >= 16:
                _PROGRAMS.clear()
            _PROGRAMS.setdefault(sig, prog)
    return prog.load(members, control)


def raise_stop(control: RunControl, exc: BaseException | None) -> None:
    """Turn a stop seen in a step (Ctrl-C, the deadline) into KeyboardInterrupt or
    BudgetExhausted; return for an ordinary error ``exc``."""
    if control.reason == "interrupted" or (exc is not None and is_interrupt(exc)):
        raise KeyboardInterrupt
    if control.reason is not None:
        raise BudgetExhausted("the deadline passed during a solve")
