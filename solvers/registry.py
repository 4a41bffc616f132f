"""`make_solver`: one entry point from a `LinearSpec` to a solver, by backend name."""
from __future__ import annotations

import functools
import numbers
import os
from concurrent.futures import Executor
from typing import Any, Callable, Sequence

import numpy as np

from ._kwargs import check_kwargs
from .base import Solver
from .batching import solve_chunk
from .blocking import BatchCancelled, gather, new_batch
from .result import ModelTooLargeError, SolverError
from .spec import LinearSpec


def _highs(spec, **kw):
    from .highs_backend import HighsSolver
    return HighsSolver(spec, **kw)


def _mathopt(backend):
    def build(spec, **kw):
        from .mathopt_backend import MathOptSolver
        return MathOptSolver(spec, backend, **kw)
    return build


def _pyscipopt(spec, **kw):
    from .pyscipopt_backend import PySCIPOptSolver
    return PySCIPOptSolver(spec, **kw)


def _mpax(spec, **kw):
    from .mpax_lp import MpaxSolver
    return MpaxSolver(spec, **kw)


#: backend name -> builder(spec, relax=, time_limit=, threads=, seed=, verbose=, **options)
BACKENDS: dict[str, Callable[..., Solver]] = {
    "scip": _mathopt("scip"),
    "highs": _highs,
    "cpsat": _mathopt("cpsat"),
    "glop": _mathopt("glop"),
    "pdlp": _mathopt("pdlp"),
    "pyscipopt": _pyscipopt,
    "mpax": _mpax,       # LPs by PDHG in JAX (optional extra: pip install 'surco[mpax]')
}


def _mathopt_options() -> list[str]:
    from .mathopt_backend import solve_parameter_names
    return solve_parameter_names()


def _mpax_options() -> list[str]:
    from .mpax_lp import MpaxSolver
    return list(MpaxSolver.OPTIONS)


#: backend name -> the option names (``**options`` of `make_solver`) it takes; pyscipopt
#: takes SCIP parameter names, which all hold a "/" (checked by SCIP itself)
BACKEND_OPTIONS: dict[str, Callable[[], list[str]]] = {
    "scip": _mathopt_options, "highs": _mathopt_options, "cpsat": _mathopt_options,
    "glop": _mathopt_options, "pdlp": _mathopt_options, "pyscipopt": lambda: [],
    "mpax": _mpax_options,
}

#: the keywords of `make_solver` itself (besides a backend's options)
MAKE_SOLVER_KEYWORDS = ("backend", "relax", "time_limit", "threads", "seed", "verbose",
                        "warm_start", "max_size")

#: the largest model `make_solver` builds for solves without a time limit, counted as
#: variables + nonzeros of the constraint rows (`model_size`). Above it a solve can run for
#: minutes without a word (a 1000 x 1000 binary assignment, 3e6: still in HiGHS after
#: 60 s). Every model of the families, benches and tests is far below: the largest,
#: sharding with 800 tables on 128 devices, is 409,600 (102,400 binaries).
MAX_MODEL_SIZE = 1_000_000
#: environment variable that replaces `MAX_MODEL_SIZE` (a number; "inf": no limit)
MAX_MODEL_SIZE_ENV = "SURCO_MAX_MODEL_SIZE"


def model_size(spec: LinearSpec) -> tuple[int, int, int, int]:
    """Size of Ω's model: ``(size, variables, nonzeros, bytes)``, where size = variables +
    nonzeros of ``A_ub`` and ``A_eq``, and bytes estimates the arrays of one copy of the
    model (12 bytes per nonzero: value and index; 25 per variable: bounds, cost, type;
    24 per row: bounds and start); solvers hold a few copies (presolved, transposed)."""
    nnz = int(spec.A_ub.nnz + spec.A_eq.nnz)
    rows = int(spec.A_ub.shape[0] + spec.A_eq.shape[0])
    return spec.n + nnz, spec.n, nnz, 12 * nnz + 25 * spec.n + 24 * rows


def _size_limit(max_size: float | None) -> float:
    if max_size is None:
        raw = os.environ.get(MAX_MODEL_SIZE_ENV)
        if raw is None or not raw.strip():
            return MAX_MODEL_SIZE
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"make_solver: environment variable {MAX_MODEL_SIZE_ENV}={raw!r} "
                             "must be a number of variables + nonzeros, or 'inf'") from None
        what = f"environment variable {MAX_MODEL_SIZE_ENV}={raw!r}"
    else:
        value, what = max_size, f"max_size={max_size!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"make_solver: {what} must be a positive number (math.inf: no limit)")
    return value


def check_model_size(spec: LinearSpec, max_size: float | None = None) -> None:
    """The size guard of solves without a time limit (`make_solver`'s ``max_size``).

    Raises:
      ModelTooLargeError: `model_size` is above ``max_size`` (None: the environment variable
        ``SURCO_MAX_MODEL_SIZE`` if set, else `MAX_MODEL_SIZE`).
      ValueError: a bad ``max_size`` or environment value."""
    limit = _size_limit(max_size)
    size, n, nnz, nbytes = model_size(spec)
    if size <= limit:
        return
    raise ModelTooLargeError(
        f"make_solver: {spec.name} has {n:,} variables and {nnz:,} nonzeros (size {size:,}, "
        f"about {nbytes / 2**20:,.0f} MiB per copy of the model), above the limit of "
        f"{limit:,.0f} for solves without a time limit, which can run for minutes without a "
        f"word at this size; pass time_limit= (each solve then returns within it), or raise "
        f"the limit with max_size= (math.inf: none) or the environment variable "
        f"{MAX_MODEL_SIZE_ENV}")


#: the backend used when none is named (`make_solver`, `surco.zero`, `surco.prior.train`):
#: the fastest measured on the benches' MILPs (bench/solvers.py, "default backend" table)
DEFAULT_BACKEND = "highs"

#: backends that warm-start by default (``warm_start=None``): where it saved time on the
#: benches' MILPs (bench/solvers.py --part backends: highs 1.2-1.4 x per solve, cpsat
#: 1.6-2.4 x on the larger MILPs; the LP basis is kept by highs and glop). SCIP (MathOpt)
#: and PySCIPOpt were 0.7-1.1 x with a start solution, so they start cold unless asked.
#: What a MIP start saves is mostly the proof: with the previous answer as incumbent, HiGHS
#: stops as soon as its bound is within ``mip_rel_gap`` (1e-4) of it. SurCo-zero on
#: sharding T = 50 (4 tasks x 300 steps, side by side): 1.47 x per task at HiGHS's default
#: gap, with a mean true cost 0.15 % higher (the run keeps near-optimal x longer); at
#: ``relative_gap_tolerance=0`` both runs return the same plans and warm saves nothing
#: (1.00 x).
WARM_BY_DEFAULT = frozenset({"highs", "cpsat", "glop", "pdlp"})


def make_solver(spec: LinearSpec, backend: str | None = None, *, relax: bool = False,
                time_limit: float | None = None, threads: int = 1, seed: int = 0,
                verbose: bool = False, warm_start: bool | None = None,
                max_size: float | None = None, **options: Any) -> Solver:
    """Build a solver for ``argmin_{x in Ω} c·x`` over a `LinearSpec`.

    Args:
      spec: Ω.
      backend: None (`DEFAULT_BACKEND`), ``"scip"``, ``"cpsat"``, ``"glop"``, ``"pdlp"`` (OR-Tools MathOpt),
        ``"highs"`` (HiGHS through highspy), ``"pyscipopt"`` (SCIP through PySCIPOpt) or
        ``"mpax"`` (PDHG in JAX, batches in one vmapped call; `surco.solvers.mpax_backend`).
        GLOP, PDLP and MPAX solve LPs only; CP-SAT needs every variable integer.
      relax: solve the LP relaxation (drop integrality).
      time_limit: seconds per solve; at the limit the incumbent comes back with status
        FEASIBLE, and no incumbent raises `SolverTimeout` (``stats["limit"] == "time"``
        either way). Each solve returns within ``time_limit + 0.5`` s
        (`surco.solvers.base.TIME_LIMIT_SLACK`; see `Solver.solve`), also where the
        solver's own clock does not cover a phase (HiGHS's presolve).
      threads, seed: passed to the solver.
      verbose: let the solver print its log (default False: every backend is silent,
        including output that the libraries print below their own settings; see
        `surco.solvers.output`).
      warm_start: start each solve from the previous one: a MIP gets the previous answer as
        a start solution / hint (highs: ``setSolution``; scip, cpsat: MathOpt solution
        hints; pyscipopt: ``addSol``), an LP keeps its basis (highs, glop). Answers are
        optimal either way; what it saves per backend is in bench/solvers.py
        (``--part backends``). False: every solve starts cold (highs also drops its basis).
        None (default): on for the backends in `WARM_BY_DEFAULT`, where it helped.
      max_size: the size guard for solves without a time limit: a model with more than
        this many variables + nonzeros (`model_size`) is refused with
        `ModelTooLargeError`. None (default): the environment variable
        ``SURCO_MAX_MODEL_SIZE`` if set, else `MAX_MODEL_SIZE` (1,000,000); ``math.inf``:
        no guard. Not applied with a ``time_limit``, which bounds every solve.
      **options: backend specific: MathOpt ``SolveParameters`` fields (scip, cpsat, glop,
        pdlp, and for highs the subset listed in `surco.solvers.highs_backend`), SCIP
        parameter names for pyscipopt (e.g. ``{"limits/gap": 1e-4}``), or MPAX's
        (`surco.solvers.mpax_backend.MpaxSolver`).

    Every solver built here stops within about a second of Ctrl-C, raising
    `KeyboardInterrupt` (see `surco.solvers.blocking`).

    Raises:
      ValueError: unknown backend, or a backend that cannot handle the spec (CP-SAT: a
        variable without finite bounds, naming it; see `surco.solvers.mathopt_backend`).
      TypeError: spec is not a `LinearSpec`, or a keyword that neither make_solver nor the
        backend knows (with the valid names and the closest one:
        ``make_solver(backend='highs'): unknown keyword 'tim_limit' (did you mean
        'time_limit'?); valid: ...``).
      ModelTooLargeError: no ``time_limit`` and a model above ``max_size``.
    """
    if not isinstance(spec, LinearSpec):
        raise TypeError(f"make_solver: spec must be a LinearSpec, got {type(spec).__name__}")
    if backend is None:
        backend = DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"make_solver: unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
    named = BACKEND_OPTIONS[backend]() if backend in BACKEND_OPTIONS else None
    if named is not None:   # a backend registered without option names checks its own
        check_kwargs(f"make_solver(backend={backend!r})",
                     {k: v for k, v in options.items()
                      if not (backend == "pyscipopt" and "/" in k)},
                     MAKE_SOLVER_KEYWORDS + tuple(named))
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"make_solver: time_limit must be positive seconds, got {time_limit}")
    if int(threads) < 1:
        raise ValueError(f"make_solver: threads must be >= 1, got {threads}")
    if not isinstance(verbose, bool):
        raise ValueError(f"make_solver: verbose must be True or False, got {verbose!r}")
    if time_limit is None:
        check_model_size(spec, max_size)
    elif max_size is not None:
        _size_limit(max_size)    # a bad value is refused whether or not it applies
    if warm_start is None:
        warm_start = backend in WARM_BY_DEFAULT
    if not isinstance(warm_start, bool):
        raise ValueError(f"make_solver: warm_start must be True, False or None, got "
                         f"{warm_start!r}")
    return BACKENDS[backend](spec, relax=relax, time_limit=time_limit, threads=int(threads),
                             seed=int(seed), verbose=verbose, warm_start=warm_start, **options)


def _stack_factory(factories):
    return SolverStack([f() for f in factories])


class SolverStack(Solver):
    """Several solvers side by side, one per instance: x and c have shape ``(B, *shape)``.

    SurCo solves many instances with different Ω in one step; a stack makes that one
    ``solve`` call. With an ``executor`` the members are solved in parallel, each by its
    worker's cached model (see `Solver.solve_batch`). Every member must have the same x shape.
    Its name, used in error messages, is the first member's (plus "and k more instances").
    """

    def __init__(self, solvers: Sequence[Solver], executor: Executor | None = None):
        solvers = list(solvers)
        if not solvers:
            raise ValueError("SolverStack: needs at least one solver")
        shapes = {tuple(s.shape) for s in solvers}
        if len(shapes) != 1:
            raise ValueError(f"SolverStack: members have different x shapes {sorted(shapes)}")
        first = solvers[0].name
        name = first if len(solvers) == 1 else f"{first} and {len(solvers) - 1} more instances"
        super().__init__((len(solvers),) + solvers[0].shape, name)
        self.members = solvers
        self.executor = executor

    def factory(self):
        return functools.partial(_stack_factory, [s.factory() for s in self.members])

    def check_cost_values(self, c):
        for s, ci in zip(self.members, c.reshape(len(self.members), -1)):
            s.check_cost_values(ci)

    def solve_flat(self, c):
        rows = c.reshape(len(self.members), -1)
        if self.executor is None or len(self.members) == 1:
            sols = []
            for i, (s, ci) in enumerate(zip(self.members, rows)):
                try:
                    sols.append(s.solve(ci, check=False))
                except SolverError as exc:   # say which member
                    exc.args = (f"member {i}: {exc.args[0] if exc.args else ''}",) + exc.args[1:]
                    raise
        else:
            batch = new_batch()
            futs = [self.executor.submit(_member_solve, s.factory(), s._token, ci, batch, i)
                    for i, (s, ci) in enumerate(zip(self.members, rows))]
            sols = gather(futs, batch)
        worst = max(s.status for s in sols)
        stats = {"solve_time": sum(s.stats["solve_time"] for s in sols),
                 "member_status": [int(s.status) for s in sols],
                 "member_wall_time": [s.stats["wall_time"] for s in sols]}
        bad = [(i, s) for i, s in enumerate(sols) if not s.ok]
        if bad:
            i, s = bad[0]
            stats.update({k: v for k, v in s.stats.items() if k in ("timeout", "time_limit")})
            stats["detail"] = f"member {i} ({self.members[i].name}): {s.status.name.lower()}"
        x = np.stack([s.x for s in sols]).reshape(-1)
        return x, float(sum(s.objective for s in sols)), worst, stats


def _member_solve(factory, token, c, batch, member: int):
    out = solve_chunk(token, factory, c[None], False, batch)
    if not out:
        raise BatchCancelled(f"batch {batch} was cancelled")
    if isinstance(out[0], BaseException):   # the member's solve raised: say which member
        exc = out[0]
        exc.args = (f"member {member}: {exc.args[0] if exc.args else ''}",) + exc.args[1:]
        raise exc
    return out[0]
