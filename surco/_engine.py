"""Machinery shared by SurCo-zero and SurCo-prior: solvers per instance, batched objectives,
and a meter for solver time. Private: the public API is `surco.zero`, `surco.prior`,
`surco.hybrid`."""
from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from surco.problem import Instance, Problem, ProblemError
from surco.solvers import LinearSpec, Solver, SolverStack, make_solver

# Estimators whose forward pass is not the solver's own answer g(c) (a mean over
# perturbations, a regularised relaxation): the feasible x is then one extra solve of g(c).
RELAXED_FORWARD = frozenset({"perturbed", "quadratic"})


class Metered(Solver):
    """Wraps a solver and counts its calls and wall time (per stack member when stacked)."""

    def __init__(self, inner: Solver):
        super().__init__(inner.shape, inner.name)
        self.inner = inner
        self.members = getattr(inner, "members", [inner])
        self.calls = 0
        self.seconds = np.zeros(len(self.members))

    def __getattr__(self, name: str) -> Any:  # spec, relax, ... of the wrapped solver
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def factory(self):
        return self.inner.factory()

    def _check_cost_values(self, c):
        self.inner._check_cost_values(c)

    def _solve_flat(self, c):
        t0 = time.perf_counter()
        out = self.inner._solve_flat(c)
        dt = time.perf_counter() - t0
        self.calls += 1
        per = out[3].get("member_wall_time")
        if per is not None and len(per) == len(self.members):
            self.seconds += np.asarray(per)
        else:
            self.seconds += dt / len(self.members)
        return out


def build_solver(problem: Problem, instance: Instance, backend: str,
                 solver_options: dict[str, Any] | None) -> Solver:
    """The solver for Ω(instance): a `LinearSpec` goes through `make_solver`; an oracle is
    used as it is."""
    space = problem.space_for(instance)
    if isinstance(space, LinearSpec):
        return make_solver(space, backend=backend, **(solver_options or {}))
    return space


def stack_solvers(solvers: Sequence[Solver], executor: Executor | None) -> Metered:
    return Metered(SolverStack(solvers, executor=executor))


def stack_instances(problem: Problem, instances: Sequence[Instance]) -> Any:
    """Stack instances leaf by leaf along a new leading axis (all must have equal shapes)."""
    try:
        return jax.tree.map(lambda *a: jnp.stack([jnp.asarray(v) for v in a]), *instances)
    except (ValueError, TypeError) as exc:
        raise ProblemError(f"Problem {problem.name!r}: instances solved together must be pytrees "
                           f"of arrays with equal structure and shapes ({exc})") from exc


def batched_objective(problem: Problem):
    """``(X (B, *shape), Y stacked) -> (B,)`` objective values."""
    return jax.vmap(problem.f)


def check_finite(problem: Problem, values: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ProblemError(f"Problem {problem.name!r}: objective returned a non-finite value "
                           f"({values[bad][0]}) {where}, instance index {int(np.flatnonzero(bad)[0])}")


def resolve_key(key: jax.Array | int | None) -> jax.Array:
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    return key


class SolverSlot(SolverStack):
    """A `SolverStack` whose members can be swapped between calls.

    Jitted training steps close over one slot and are compiled once; before each minibatch
    the slot is loaded with that minibatch's solvers. Calls are synchronous (results are
    read back before the next `load`), so the swap never races a running solve.
    """

    def load(self, solvers: Sequence[Solver]) -> "SolverSlot":
        solvers = list(solvers)
        if len(solvers) != len(self.members) or any(s.shape != self.members[0].shape for s in solvers):
            raise ValueError(f"SolverSlot: expected {len(self.members)} solvers of x shape "
                             f"{self.members[0].shape}")
        self.members = solvers
        return self
