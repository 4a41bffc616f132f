"""SCIP on the true objective, written automatically from the problem's JAX objective.

`scip_minimize(problem, instance)` traces ``x -> f(x, instance)`` with ``jax.make_jaxpr``
(the instance's arrays become constants, x the one input) and writes the jaxpr as a
mixed-integer nonlinear program for SCIP (Achterberg, "SCIP: solving constraint integer
programs", Math. Prog. Comp. 2009; nonlinear constraints by spatial branch and bound,
Vigerske & Gleixner, "SCIP: global optimization of mixed-integer nonlinear programs in a
branch-and-cut framework", OMS 2018), on Ω = the problem's `LinearSpec` (bounds,
integrality, rows as linear constraints):

* linear operations (sums, differences, negation, products and quotients with constants,
  matrix products with constant matrices, sums over axes) and operations that move entries
  (reshape, transpose, broadcast, squeeze, slice, gather / dynamic slice with constant
  indices, concatenate, stack, pad, select with a constant predicate, dtype conversion
  between floats, stop_gradient) stay affine in the variables and cost sparse matrix
  products, not Python loops; ``jit``/``pjit`` and custom-derivative calls are inlined;
* every nonlinear operation (products and quotients of two x-dependent values, integer and
  real powers, exp, log, log1p, expm1, sqrt, rsqrt, abs, logistic, tanh, matrix products of
  two x-dependent arrays, elementwise and reduced max / min) gets one auxiliary variable
  per entry, bounded by interval arithmetic, and one constraint: the standard form of
  Smith & Pantelides ("A symbolic reformulation/spatial branch-and-bound algorithm for the
  global optimisation of nonconvex MINLPs", Comput. Chem. Eng. 1999), with every argument
  of a nonlinear function made one variable;
* the objective is then linear: ``min c·v + d``.

Soundness of the relaxed constraints. A backward pass gives each value a sign: +1 when the
objective is non-decreasing in it (through every path to the output, judged from each
primitive's monotonicity and the intervals of its other operands), -1 when non-increasing,
0 otherwise. An auxiliary y = g(u) is written ``y >= g(u)`` with sign +1, ``y <= g(u)``
with sign -1 and ``y == g(u)`` with sign 0. At any feasible point, replacing the auxiliary
values by their exact values in topological order keeps every constraint satisfied (each
consumer of y is monotone in y in the direction of its sign) and does not increase the
objective, so the model's optimum is min f over Ω and its optimal x is an optimal x of f.
A maximum with sign +1 (a minimum with sign -1) is its epigraph ``y >= a_i`` (hypograph);
any other maximum is the exact ``max(a, b) = (a + b + |a - b|) / 2`` with SCIP's absolute
value (for reductions, a chain of such pairs), never a big-M, so no bound can be wrong.
log, sqrt, rsqrt and fractional powers get their argument constrained to be >= 0 (f is not
real elsewhere); ``is_finite`` of a model value is True (every value is finite).

Anything else on an x-dependent value (comparisons, rounding, sorting, argmax, control
flow) raises `UnsupportedError` naming the primitive and the source line in f.

Numerics. SCIP's feasibility tolerance is absolute below 1, so each auxiliary variable is
scaled by its value at a reference point (the start when one is given, else the middle of
x's bounds), clipped to [1e-6, 1] (`_translate.Translator.new_vars` says why). A product,
or a sum of products, of two x-dependent values is written expanded in the variables when
that takes at most `_ops.EXPAND_TERMS` terms (so that SCIP sees, e.g., products of
binaries). Ω is taken as written: continuous entries stay continuous (a ``relax=True``
problem's LP is not its integer set). After the solve, SCIP's objective is compared with
f(x) evaluated by JAX; a disagreement (numerical trouble) warns (`ScipNumericsWarning`) and
the result is not marked optimal. Measured: exact on 208 small random problems against
enumeration (tests/derive); sharding's smooth plan cost (a logsumexp over devices), on
the loaded 2-core machine: 6 tables on 3 devices proved optimal in 1.6 s from the
heuristic plan as start (about 15 s without a start); 20 tables on 4 devices: no better
plan than the start within 30 s, the dual bound far below.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
import weakref
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from surco.budget import BudgetExhausted, Meter
from surco import methods
from surco.problem import Instance, Problem
from surco.solvers import InfeasibleError, LinearSpec, SolverError, SolverTimeout, blocking_call

from ._jaxpr import UnsupportedError, needed, trace
from ._translate import NO_VALUE, SUPPORTED, Translator

__all__ = ["ScipResult", "scip_minimize", "scip_method", "UnsupportedError", "SUPPORTED",
           "spec_of", "build_model", "SCIP_DEFAULT_SECONDS", "ScipNumericsWarning"]

#: SCIP's time limit in `scip_method` when the meter has no deadline (seconds).
SCIP_DEFAULT_SECONDS = methods.SOLVER_DEFAULT_SECONDS


class ScipNumericsWarning(UserWarning):
    """SCIP's objective at its x disagrees with f(x): the model hit numerical trouble."""


@dataclasses.dataclass(frozen=True)
class ScipResult:
    """Outcome of `scip_minimize`.

    Attributes:
      x: the best x found (shaped like Ω's x; integer entries rounded), in Ω.
      objective: SCIP's value of the model at x (f(x) up to SCIP's tolerances).
      f: f(x) evaluated by the problem's own (JAX) objective.
      bound: SCIP's proven lower bound on min f over Ω.
      status: SCIP's status ("optimal", "gaplimit", "timelimit", ...).
      optimal: True when SCIP proved x optimal (within ``gap``) and its objective agrees
        with f(x) (relative 1e-4; otherwise a `ScipNumericsWarning` says so).
      seconds: wall seconds, translation included.
      variables, constraints: the model's size.
    """

    x: np.ndarray
    objective: float
    f: float
    bound: float
    status: str
    optimal: bool
    seconds: float
    variables: int
    constraints: int


def spec_of(problem: Problem, instance: Instance) -> LinearSpec:
    """Ω(instance) as a `LinearSpec` (an oracle's ``spec`` where it has one).

    Raises:
      TypeError: Ω has no `LinearSpec`."""
    space = problem.space_for(instance)
    spec = space if isinstance(space, LinearSpec) else getattr(space, "spec", None)
    if callable(spec):
        spec = spec()
    if not isinstance(spec, LinearSpec):
        raise TypeError(f"problem {problem.name!r}: Ω is a {type(space).__name__} without a "
                        "LinearSpec; SCIP and the derived neighbourhoods need one")
    return spec


_JIT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _jitted(objective: Callable) -> Callable:
    """``jax.jit(objective)``, compiled once per objective and shapes (not per instance)."""
    try:
        fn = _JIT.get(objective)
        if fn is None:
            fn = _JIT[objective] = jax.jit(objective)
        return fn
    except TypeError:   # not weak-referenceable (a functools.partial of a builtin, ...)
        return jax.jit(objective)


def build_model(problem: Problem, instance: Instance, spec: LinearSpec, verbose: bool = False,
                start: np.ndarray | None = None) -> tuple[Any, list]:
    """The PySCIPOpt model of ``min f(x; instance) s.t. x ∈ Ω`` (the module docstring's
    formulation), unsolved, and its variables x (flat order).

    Args:
      problem, instance: the objective f, traced on ``instance``.
      spec: Ω (`spec_of`).
      verbose: SCIP's own output.
      start: a flat point of Ω handed to SCIP as a complete solution, or None.

    Returns:
      ``(model, xs)``: a ``pyscipopt.Model`` and its variables for x.

    Raises:
      UnsupportedError: f uses an operation on x-dependent values that has no translation
        (named, with its source line).
      ProblemError, TypeError: f cannot be traced on ``instance``.
    """
    import pyscipopt
    graph = trace(problem.objective, instance, spec.shape, problem.name)
    m = pyscipopt.Model(f"{problem.name}-scip")
    m.hideOutput(not verbose)
    m.setParam("misc/catchctrlc", False)
    xs = []
    for i in range(spec.n):
        lo, hi = spec.lb[i], spec.ub[i]
        vt = ("B" if lo >= 0 and hi <= 1 else "I") if spec.integer[i] else "C"
        xs.append(m.addVar(f"x{i}", vtype=vt, lb=None if lo == -np.inf else float(lo),
                           ub=None if hi == np.inf else float(hi)))
    t = Translator(m, graph, xs, spec.lb, spec.ub, problem.name, start)
    for A, b, eq in ((spec.A_ub, spec.b_ub, False), (spec.A_eq, spec.b_eq, True)):
        A = A.tocsr()
        for r in range(A.shape[0]):
            lo, hi = A.indptr[r], A.indptr[r + 1]
            row = pyscipopt.Expr({t.terms[j]: float(a)
                                  for j, a in zip(A.indices[lo:hi], A.data[lo:hi])})
            m.addCons(row == float(b[r]) if eq else row <= float(b[r]))
    t.forward(needed(graph, NO_VALUE))
    t.emit(t.signs())
    out = t.get(graph.out)
    if isinstance(out, np.ndarray):
        m.addObjoffset(float(out))
    else:
        m.setObjective(t.expr(out, 0), "minimize")
    if start is not None:
        # every variable at its value at the start: a complete solution, which SCIP checks
        sol = m.createSol()
        for v, r in zip(t.vars, t.ref.tolist()):
            if r != 0.0:
                m.setSolVal(sol, v, r)
        m.addSol(sol, free=True)
    return m, xs


def _solve(problem: Problem, instance: Instance, time_limit: Callable[[], float | None], *,
           gap: float, verbose: bool, seed: int, start: np.ndarray | None = None) -> ScipResult:
    t0 = time.perf_counter()
    if not isinstance(problem, Problem):
        raise TypeError(f"scip_minimize: problem must be a surco.Problem, got "
                        f"{type(problem).__name__}")
    if not (isinstance(gap, (int, float)) and gap >= 0):
        raise ValueError(f"scip_minimize: gap must be a number >= 0, got {gap!r}")
    spec = spec_of(problem, instance)
    if start is not None:
        start = np.asarray(start, np.float64)
        if start.shape != spec.shape or not spec.contains(start):
            raise ValueError(f"scip_minimize: start must be a point of Ω of shape {spec.shape}"
                             + (f" (it violates Ω by {spec.violation(start):.3g})"
                                if start.shape == spec.shape else f", got shape {start.shape}"))
        start = start.reshape(-1)
    m, xs = build_model(problem, instance, spec, verbose, start)
    m.setParam("limits/gap", float(gap))
    m.setParam("randomization/randomseedshift", int(seed))
    m.setParam("parallel/maxnthreads", 1)
    limit = time_limit()
    if limit is not None:
        m.setParam("limits/time", float(limit))
    solving = [False]

    def call():
        solving[0] = True
        try:
            m.optimizeNogil() if hasattr(m, "optimizeNogil") else m.optimize()
        finally:
            solving[0] = False

    def stop():
        if solving[0]:
            try:
                m.interruptSolve()
            except Exception:   # SCIP left its solving stage meanwhile
                pass

    try:
        blocking_call(call, stop, m)
    except KeyboardInterrupt:
        raise
    except Exception as exc:   # PySCIPOpt raises bare Exceptions on SCIP errors
        raise SolverError(f"scip_minimize: problem {problem.name!r}: SCIP failed: {exc}") from exc
    status = str(m.getStatus())
    if m.getNSols() == 0:
        what = f"scip_minimize: problem {problem.name!r}: SCIP ended with status {status!r} " \
               "and no feasible x"
        if status == "infeasible":
            raise InfeasibleError(what + " (Ω, with the domains of log/sqrt, is empty)")
        if status == "timelimit":
            raise SolverTimeout(what + f" within {limit:g} s")
        raise SolverError(what)
    sol = m.getBestSol()
    x = np.array([m.getSolVal(sol, v) for v in xs], np.float64)
    x = (np.where(spec.integer, np.round(x), x) + 0.0).reshape(spec.shape)
    obj = float(m.getSolObjVal(sol))
    fx = float(_jitted(problem.objective)(jnp.asarray(x, jnp.float32), instance))
    agree = abs(obj - fx) <= 1e-4 * max(1.0, abs(fx))
    if not agree:
        warnings.warn(f"scip_minimize: problem {problem.name!r}: SCIP's objective "
                      f"{obj:.8g} at its x differs from f(x) = {fx:.8g} (numerical trouble in "
                      "the model; x is still in Ω, its optimality is not proven)",
                      ScipNumericsWarning, stacklevel=3)
    return ScipResult(x, obj, fx, float(m.getDualbound()), status,
                      agree and status in ("optimal", "gaplimit"), time.perf_counter() - t0,
                      int(m.getNVars()), int(m.getNConss()))


def scip_minimize(problem: Problem, instance: Instance, *, time_limit: float | None = None,
                  gap: float = 1e-6, start: np.ndarray | None = None, verbose: bool = False,
                  seed: int = 0) -> ScipResult:
    """Minimise the problem's own objective f(x, instance) over Ω with SCIP, the model
    written from f's jaxpr (see the module docstring for the formulation and its
    soundness).

    Args:
      problem: a `surco.Problem` whose Ω is a `LinearSpec` (or an oracle with a ``spec``).
      instance: the instance; its arrays are constants of the model.
      time_limit: seconds for SCIP's solve (translation not included); None: until SCIP
        proves optimality within ``gap``.
      gap: relative gap at which SCIP stops (``limits/gap``).
      start: a point of Ω handed to SCIP as its first incumbent, with every auxiliary
        variable at its value there (SCIP's answer is then never worse); it also sets the
        scale of the auxiliary variables.
      verbose: show SCIP's log.
      seed: SCIP's random seed shift.

    Returns:
      A `ScipResult` (``optimal`` says whether SCIP proved it).

    Raises:
      UnsupportedError: f uses an operation on x-dependent values that has no translation
        (the message names the primitive and its line in f).
      ProblemError: f cannot be traced on x of Ω's shape, or is not a scalar.
      TypeError: Ω has no `LinearSpec`; problem is not a `surco.Problem`.
      ValueError: a time limit that is not positive, a negative gap, a start outside Ω.
      InfeasibleError: Ω (within f's domain) is empty. SolverTimeout: no feasible x within
        the time limit. SolverError: SCIP failed otherwise.
    """
    if time_limit is not None and not (isinstance(time_limit, (int, float))
                                       and math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"scip_minimize: time_limit must be positive seconds or None, "
                         f"got {time_limit!r}")
    return _solve(problem, instance, lambda: time_limit, gap=gap, verbose=verbose, seed=seed,
                  start=start)


def _problem_fn(source: Any) -> Callable[[Instance], Problem]:
    if isinstance(source, Problem):
        return lambda y: source
    fn = getattr(source, "problem", source)    # a surco.Family, or instance -> Problem
    if not callable(fn):
        raise TypeError(f"scip_method: expected a Problem, a Family or a function instance -> "
                        f"Problem, got {type(source).__name__}")
    return fn


def scip_method(source: Any, *, default_seconds: float = SCIP_DEFAULT_SECONDS,
                gap: float = 1e-6, exact: bool = False,
                start: Callable[[Instance], np.ndarray] | None = None
                ) -> Callable[[Instance, Meter], np.ndarray]:
    """`scip_minimize` as a harness `surco.family.Method` ``(instance, meter) -> x``.

    Time policy: the project's one rule, `surco.methods.solver_time_limit`, read once the
    model is built (``default_seconds`` when the meter has no deadline), so that SCIP stops
    before the deadline and its answer can still be scored.
    SCIP evaluates f algebraically inside its own search: only the x it returns is
    evaluated through the meter, once (past the budget, x is returned unscored and the
    harness scores it).

    Args:
      source: a `surco.Problem`, a `surco.Family` or a function ``instance -> Problem``.
      default_seconds: the time limit when the meter has no deadline (seconds).
      gap: SCIP's relative gap.
      exact: raise `SolverError` unless SCIP proved optimality (the family's exact method).
      start: ``instance -> x`` in Ω, SCIP's first incumbent (see `scip_minimize`); its
        time counts against the meter, it is not evaluated.

    Raises:
      TypeError: a source that is none of those. ValueError: default_seconds not positive.
    """
    problem_fn = _problem_fn(source)
    if not (isinstance(default_seconds, (int, float)) and default_seconds > 0):
        raise ValueError(f"scip_method: default_seconds must be positive seconds, got "
                         f"{default_seconds!r}")

    def method(instance: Instance, meter: Meter) -> np.ndarray:
        res = _solve(problem_fn(instance), instance,
                     lambda: methods.solver_time_limit(meter, default_seconds),
                     gap=gap, verbose=False, seed=0,
                     start=None if start is None else start(instance))
        if exact and not res.optimal:
            raise SolverError(f"scip exact: SCIP did not prove optimality (status "
                              f"{res.status!r}, objective {res.objective:.6g}, bound "
                              f"{res.bound:.6g})")
        try:
            meter(res.x)
        except BudgetExhausted:
            pass
        return res.x

    method.__doc__ = ("SCIP on the true objective written from its jaxpr "
                      "(surco.derive.scip_minimize), with the meter's remaining time.")
    return method
