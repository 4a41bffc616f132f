"""Quadratically regularised LP relaxation with implicit differentiation (Wilder et al. 2019),
and the straight-through estimator that uses it only in the backward pass.

B. Wilder, B. Dilkina, M. Tambe. "Melding the Data-Decisions Pipeline: Decision-Focused
Learning for Combinatorial Optimization". AAAI 2019.

The smoothed solver is ``x*(c) = argmin_{x in P} c·x + γ‖x‖²`` over the LP relaxation
``P = {A_eq x = b_eq, A_ub x <= b_ub, lb <= x <= ub}``. Its KKT conditions are

    2γ x + c + A_eqᵀ ν + Gᵀ μ = 0,   μ >= 0,   μ ⊙ (G x - h) = 0,   A_eq x = b_eq,

with ``G x <= h`` the inequality rows and bounds. Differentiating them at a solution with
strict complementarity (the inactive rows drop out, the active ones stay equalities) gives
the linear system ``[[2γI, Mᵀ], [M, 0]] [dx; dλ] = [-dc; 0]`` with M the equality and
active rows, whose solution is ``dx = -(1/2γ) (I - M⁺M) dc``: the Jacobian is symmetric and
the VJP is ``dL/dc = -(1/2γ) (g - M⁺(M g))``. We solve it in JAX with a pseudo-inverse, so
redundant active rows (e.g. flow conservation) are handled; the active set comes from the
primal slack of the QP solution.
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from surco.estimators.base import Estimator, call_solver, check_positive
from surco.solvers import LinearSpec, Solver, SolverStack

_ACTIVE_TOL = 1e-6
# member solver -> {γ: (QuadraticSolver, A_eq, A_ub, b_ub, lb, ub) of its relaxation}
_MEMBER_QP: "weakref.WeakKeyDictionary[Solver, dict]" = weakref.WeakKeyDictionary()
# solver -> {γ: _RelaxedQP view}
_VIEWS: "weakref.WeakKeyDictionary[Solver, dict]" = weakref.WeakKeyDictionary()
# solver -> {(γ, dtype, m_eq, m_ub): host fn returning the constraint data}
_DATA_FNS: "weakref.WeakKeyDictionary[Solver, dict]" = weakref.WeakKeyDictionary()


def relaxation_spec(solver: Solver) -> LinearSpec:
    """The `LinearSpec` of a solver's feasible set (its ``spec`` attribute or property).

    Raises:
      ValueError: the solver exposes no `LinearSpec`.
    """
    spec = getattr(solver, "spec", None)
    if not isinstance(spec, LinearSpec):
        raise ValueError(f"solver {solver.name!r} ({type(solver).__name__}) exposes no LinearSpec "
                         "(a `.spec` attribute or property); the quadratic relaxation "
                         "needs the feasible set as linear constraints")
    return spec


def _members(solver: Solver) -> tuple[list[Solver], bool]:
    """The solvers whose relaxations make up ``solver``'s, and whether they are stacked.

    Read at every call, not cached: a stack whose members are swapped between calls (a
    training slot) must get the current members' relaxations. Anything with ``members`` and
    x shape ``(len(members), *member.shape)`` counts as a stack (`SolverStack` and wrappers).
    """
    members = getattr(solver, "members", None)
    if (members is not None and len(members) and len(solver.shape) == len(members[0].shape) + 1
            and solver.shape[0] == len(members)):
        return list(members), True
    return [solver], False


def _member_qp(member: Solver, gamma: float):
    """(QuadraticSolver, A_eq, A_ub, b_ub, lb, ub) of one member's relaxation, built once."""
    per = _MEMBER_QP.setdefault(member, {})
    if gamma not in per:
        from surco.solvers.qp import QuadraticSolver
        spec = relaxation_spec(member)
        per[gamma] = (QuadraticSolver(spec, gamma), spec.A_eq.toarray(), spec.A_ub.toarray(),
                      spec.b_ub, spec.lb, spec.ub)
    return per[gamma]


class _RelaxedQP(Solver):
    """``argmin c·x + γ‖x‖²`` over the relaxation of another solver's Ω, resolved per call.

    Delegates to the `QuadraticSolver` of each current member (a `SolverStack` of them when
    the solver is stacked), so that swapping a stack's members is seen by the next call.
    """

    def __init__(self, solver: Solver, gamma: float):
        super().__init__(solver.shape, f"{solver.name}[qp γ={gamma:g}]")
        self._ref, self.gamma = weakref.ref(solver), gamma
        self._stack: tuple | None = None

    def target(self) -> Solver:
        solver = self._ref()
        if solver is None:
            raise RuntimeError("the solver of this relaxation has been garbage-collected")
        members, stacked = _members(solver)
        qps = [_member_qp(m, self.gamma)[0] for m in members]
        if not stacked:
            return qps[0]
        if self._stack is None or len(self._stack[0]) != len(qps) or any(
                a is not b for a, b in zip(self._stack[0], qps)):
            self._stack = (qps, SolverStack(qps))
        return self._stack[1]

    def factory(self):
        return self.target().factory()

    def solve_flat(self, c):
        return self.target().solve_flat(c)

    def solve_batch(self, C, executor=None, *, check=True):
        return self.target().solve_batch(C, executor=executor, check=check)


def _qp_view(solver: Solver, gamma: float) -> _RelaxedQP:
    per = _VIEWS.setdefault(solver, {})
    if gamma not in per:
        per[gamma] = _RelaxedQP(solver, gamma)
    return per[gamma]


def _prepare_qp(solver: Solver, gamma: float) -> None:
    """Build (and cache) the current members' QPs; raises early for a spec-less solver."""
    for m in _members(solver)[0]:
        _member_qp(m, gamma)


def _qp_constraints(solver: Solver, gamma: float, dtype):
    """The relaxation's constraint data as JAX arrays, fetched from the host at run time.

    Returns A_eq (k, m_eq, n), A_ub (k, m_ub, n), b_ub (k, m_ub), lb, ub (k, n) for the k
    members (k = 1 for a plain solver). Rows are zero-padded to the most rows among the
    members seen when tracing (a zero row adds nothing to a row space), with slack +inf.
    A zero-operand pure callback, so a jitted step sees the members of each call.
    """
    members, _ = _members(solver)
    k, n = len(members), members[0].n
    data = [_member_qp(m, gamma) for m in members]
    m_eq = max(d[1].shape[0] for d in data)
    m_ub = max(d[2].shape[0] for d in data)
    dt = np.dtype(dtype)
    key = (gamma, dt.str, m_eq, m_ub)
    per = _DATA_FNS.setdefault(solver, {})
    if key not in per:
        ref = weakref.ref(solver)

        def host():
            mems = _members(ref())[0]
            rows = [_member_qp(m, gamma) for m in mems]
            if len(rows) != k or any(r[1].shape[0] > m_eq or r[2].shape[0] > m_ub for r in rows):
                raise ValueError(f"{solver.name}: the stack's members changed shape since this "
                                 "function was traced (more constraint rows); jit it again")
            A_eq = np.zeros((k, m_eq, n), dt)
            A_ub = np.zeros((k, m_ub, n), dt)
            b_ub = np.full((k, m_ub), np.inf, dt)
            for i, (_, ae, au, bu, _, _) in enumerate(rows):
                A_eq[i, :ae.shape[0]] = ae
                A_ub[i, :au.shape[0]] = au
                b_ub[i, :len(bu)] = bu
            lb = np.stack([r[4] for r in rows]).astype(dt)
            ub = np.stack([r[5] for r in rows]).astype(dt)
            return A_eq, A_ub, b_ub, lb, ub

        per[key] = host
    shapes = tuple(jax.ShapeDtypeStruct(s, dt) for s in
                   ((k, m_eq, n), (k, m_ub, n), (k, m_ub), (k, n), (k, n)))
    return jax.pure_callback(per[key], shapes)


def _near(a, b):
    """a == b up to the active-set tolerance (False where b is infinite)."""
    return jnp.abs(a - b) <= _ACTIVE_TOL * (1.0 + jnp.abs(jnp.where(jnp.isfinite(b), b, 0.0)))


def _qp_vjp(solver: Solver, gamma: float, c, x, g):
    """``dL/dc = -(1/2γ)(g - M⁺(M g))`` at the QP solution x (shapes ``(..., *solver.shape)``).

    Active bounds are unit rows of M; they are handled by restricting to the free variables F:
    the projector onto null(M) is ``D_F - A_F⁺ A_F`` with ``A_F = [A_eq; active A_ub] D_F`` and
    D_F the 0/1 diagonal of F, so the pseudo-inverse is of a matrix with one row per
    equality / inequality constraint only.
    """
    A_eq, A_ub, b_ub, lb, ub = _qp_constraints(solver, gamma, c.dtype)
    k, n_mem = A_eq.shape[0], A_eq.shape[2]
    lead = c.shape[:c.ndim - len(solver.shape)]
    xs = x.reshape(lead + (k, n_mem))
    gs = g.reshape(lead + (k, n_mem))
    free = ~(_near(xs, lb) | _near(xs, ub))
    active = _near(jnp.einsum("kmn,...kn->...km", A_ub, xs), b_ub)
    M = jnp.concatenate([jnp.broadcast_to(A_eq, lead + A_eq.shape),
                         jnp.where(active[..., None], A_ub, 0.0)], axis=-2)
    M = jnp.where(free[..., None, :], M, 0.0)
    gf = jnp.where(free, gs, 0.0)
    if M.shape[-2] == 0:  # bounds only: P = D_F
        proj = jnp.zeros_like(gs)
    else:
        Mg = jnp.einsum("...mn,...n->...m", M, gf)
        proj = jnp.einsum("...nm,...m->...n", jnp.linalg.pinv(M), Mg)
    out = -(gf - proj) / (2.0 * gamma)
    # a failed QP (NaN x) gives a NaN gradient, not a silently wrong one
    out = jnp.where(jnp.isnan(xs), jnp.nan, out)
    return out.reshape(c.shape)


@dataclasses.dataclass(frozen=True)
class Quadratic(Estimator):
    """Quadratically regularised LP relaxation (Wilder et al., AAAI 2019).

    Forward: ``x = argmin_{x in relax(Ω)} c·x + γ‖x‖²`` (HiGHS QP through
    `surco.solvers.qp.QuadraticSolver`); x is fractional in general, not a point of Ω.
    Backward: implicit differentiation of the QP's KKT conditions (module docstring).

    The solver must expose its feasible set as a `LinearSpec` (MILP backends and the
    built-in oracles do). The solver itself is not called: the QP over its spec is.

    Args:
      gamma: γ > 0. Larger γ gives smoother, more interior solutions.

    Raises:
      ValueError: ``gamma <= 0``; at call time, a solver without a LinearSpec.
    """

    gamma: float = 0.5
    name: ClassVar[str] = "quadratic"
    needs_key: ClassVar[bool] = False
    forward_is_solution: ClassVar[bool] = False   # a point of the relaxation, not of Ω
    no_progress_advice: ClassVar[str] = (
        "a smaller gamma (γ) or a larger cost scale (init_scale), so that the relaxed "
        "solution leaves the interior; or optimizer=optax.sgd(lr)")

    def __post_init__(self):
        check_positive(self.name, "gamma (γ)", self.gamma)

    def prepare(self, solver):
        _prepare_qp(solver, self.gamma)  # fail early, outside tracing, for a spec-less solver

    def forward(self, solver, executor, c, key):
        x, status = call_solver(_qp_view(solver, self.gamma), executor, c)
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        return _qp_vjp(solver, self.gamma, c, x, g)


@dataclasses.dataclass(frozen=True)
class StraightThrough(Quadratic):
    """Straight-through over the LP relaxation: integer forward, relaxed backward.

    Forward: ``x = g(c)`` from the solver itself (a point of Ω). Backward: the sensitivity
    of the quadratically regularised LP relaxation at the same c, ``dx_γ/dc`` of
    `Quadratic` (Wilder et al., AAAI 2019), as the surrogate Jacobian, in the manner of the
    straight-through estimator (Bengio, Léonard, Courville 2013: use the derivative of a
    smooth stand-in in place of the true, zero one). The relaxed QP is solved in the backward
    pass only (one batched solve under vmap).

    Args:
      gamma: γ > 0 of the relaxation used in the backward pass.
    """

    name: ClassVar[str] = "straight_through"
    forward_is_solution: ClassVar[bool] = True    # the solver's own answer
    no_progress_advice: ClassVar[str] = "a smaller gamma (γ), or a larger lr"

    def forward(self, solver, executor, c, key):
        x, status = call_solver(solver, executor, c)
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        x_rel, _ = call_solver(_qp_view(solver, self.gamma), executor, c)
        return _qp_vjp(solver, self.gamma, c, x_rel, g)
