"""LPs by PDHG in JAX (MPAX): many cost vectors in one jitted, vmapped XLA program, on CPU or
GPU, without a host callback. An optional extra: ``pip install 'surco[mpax]'``.

MPAX (Lu, Yang et al., "MPAX: Mathematical Programming in JAX", arXiv:2412.09734, 2024)
implements the restarted average PDHG of PDLP (raPDHG; Applegate et al., "Practical
large-scale linear programming using primal-dual hybrid gradient", NeurIPS 2021) and the
reflected restarted Halpern PDHG (r2HPDHG; Lu & Yang, "Restarted Halpern PDHG for linear
programming", 2024), written with ``lax.while_loop`` so that they jit and vmap.

Two objects, one algorithm:

* `MpaxLP` — a `surco.solvers.jax_oracles.JaxOracle`: ``solve_with_status(c)`` is a pure
  JAX function of c of shape ``(..., *shape)``. The estimators take it as they take the
  exact JAX oracles (`surco.estimators.call_solver` solves it inside XLA, no
  ``pure_callback``), and `surco.zero(..., backend="jax")` compiles a whole SurCo-zero run over it.
* `MpaxSolver` — the `Solver` that ``make_solver(spec, backend="mpax", relax=True)`` builds:
  ``solve``/``solve_batch`` with `Solution` results, ``fixed(...)``; ``solve_batch`` (without
  an executor) solves the whole batch in one vmapped call. ``solver.oracle`` is its
  `MpaxLP`, the object to hand to an estimator to stay inside XLA (the `Solver` itself goes
  through the host callback, as every `Solver` does).

PDHG is a first-order method: it stops at a point that satisfies MPAX's relative KKT
tolerances (``eps_abs``, ``eps_rel``; duality gap, primal and dual residuals), not at a
vertex. Its x is close to an optimum, and slightly off Ω (by about the tolerance). Use
`polish` to get the exact vertex behind a PDHG point (an exact HiGHS solve on the face of the
bounds PDHG found active) and `exactness` to measure, against HiGHS, how far the raw points
are in objective and feasibility (bench/mpax.py reports both).

Measured (bench/mpax.py --quick, 2-core CPU, load average ~11, float32): on CPU this
backend is slower than HiGHS solving the same LPs one by one: 0.52 x HiGHS's LPs/s at
B = 256 on the 5 × 5 shortest-path LP (0.34 x at B = 32, 0.08 x at B = 1), 0.14-0.15 x on
the 50 × 4 sharding LP relaxation (B = 32, 256); each new (LP, batch size) compiles for
13-21 s. PDHG's objective was within 1.5e-5 (relative) of HiGHS's optimum and its points
within 1.4e-3 of Ω; every polished vertex was optimal (gap 0). Its use is a batch of LPs
inside one XLA program (no host round trip per step, `surco.zero(..., backend="jax")`) and accelerators;
no GPU was available to measure that.

Status: ``OPTIMAL`` when MPAX's termination criteria hold; ``INFEASIBLE`` / ``UNBOUNDED``
from its infeasibility certificates (a dual ray / a primal ray); ``ERROR`` for the
iteration limit, a numerical error or a cost holding NaN/inf (x all-NaN, as for every
failed solve). A point at the iteration limit is not returned as FEASIBLE: PDHG iterates are
not feasible points.

Precision: PDHG runs in the dtype of c inside JAX (float32 unless ``jax_enable_x64``); the
`Solver` hands JAX float64 costs, which JAX turns into float32 without x64. The default
tolerances (1e-4, MPAX's) suit float32; with x64 on, tighter ones (1e-8) converge too.

`polish` and `exactness` (from a PDHG point to an exact vertex, and how far PDHG is from the
exact optimum) are in `surco.solvers.mpax_backend`, which re-exports this module's names.
"""
from __future__ import annotations

import functools
import hashlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ._kwargs import check_kwargs
from .base import Solver
from .batching import batch_error
from .jax_oracles import JaxOracle
from .result import Solution, Status
from .spec import LinearSpec

Array = jax.Array

__all__ = ["MpaxLP", "MpaxSolver", "mpax_module", "METHODS"]

#: PDHG variants of MPAX, by the name the ``method`` option takes
METHODS = {"r2hpdhg": "r2HPDHG", "rapdhg": "raPDHG"}

#: constraint matrices with at most this many entries (rows × n) are handed to MPAX dense,
#: larger ones as a sparse BCOO matrix (``sparse=None``)
DENSE_MAX_ENTRIES = 1 << 20

_INSTALL = "pip install 'surco[mpax]' (or: pip install 'mpax>=0.2.4')"


def mpax_module():
    """``import mpax``, with a message that says how to install it.

    Raises:
      ImportError: mpax is not installed (the message names the extra to install).
    """
    try:
        import mpax
    except ImportError as exc:
        raise ImportError(f"the mpax backend needs MPAX (PDHG in JAX): {_INSTALL}") from exc
    return mpax


def _check_lp(spec: LinearSpec, relax: bool, owner: str) -> LinearSpec:
    """The LP that is solved: ``spec`` itself, or its relaxation when ``relax``; a spec with
    integer variables and ``relax=False`` is refused."""
    if not isinstance(spec, LinearSpec):
        raise TypeError(f"{owner}: spec must be a LinearSpec, got {type(spec).__name__}")
    if spec.is_mip:
        if not relax:
            idx = np.flatnonzero(spec.integer)
            shown = ", ".join(map(str, idx[:8])) + (", ..." if idx.size > 8 else "")
            raise ValueError(
                f"{owner}: MPAX solves LPs only, and this spec has {idx.size} integer "
                f"variables (flat indices {shown}); pass relax=True to solve its LP relaxation")
        return spec.relaxed()
    return spec


class MpaxLP(JaxOracle):
    """``argmin_{x in Ω} c·x`` over an LP by PDHG (MPAX), as a pure JAX function.

    A `surco.solvers.jax_oracles.JaxOracle`: ``solve_with_status(c)`` takes c of shape
    ``(..., *spec.shape)`` and solves every leading entry (one ``jit(vmap(...))`` program),
    under an outer ``jit``, ``vmap`` or ``grad`` (the estimators' custom VJP), on CPU or GPU.

    Args:
      spec: Ω. Integer variables are refused unless ``relax`` (then the LP relaxation).
      relax: solve the LP relaxation of a spec with integer variables.
      method: ``"r2hpdhg"`` (default; reflected restarted Halpern PDHG) or ``"rapdhg"``
        (restarted average PDHG, PDLP's algorithm).
      eps_abs, eps_rel: MPAX's absolute and relative tolerances on the duality gap and the
        primal and dual residuals (both > 0; default 1e-4).
      iteration_limit: PDHG iterations per solve (>= 1); beyond it the status is ERROR.
        Under vmap the batch runs until its slowest member stops.
      sparse: hand MPAX the constraint matrix as a sparse BCOO (True) or dense (False);
        None picks dense up to `DENSE_MAX_ENTRIES` entries.
      name: used in messages (default: the spec's).

    Raises:
      ImportError: mpax is not installed (with the command that installs it).
      TypeError: spec is not a `LinearSpec`.
      ValueError: integer variables without ``relax`` (naming their flat indices), a spec
        without constraint rows (only bounds), an unknown method, a tolerance <= 0 or an
        iteration limit < 1.
    """

    def __init__(self, spec: LinearSpec, *, relax: bool = False, method: str = "r2hpdhg",
                 eps_abs: float = 1e-4, eps_rel: float = 1e-4, iteration_limit: int = 100_000,
                 sparse: bool | None = None, name: str | None = None):
        owner = name or getattr(spec, "name", "mpax")
        lp = _check_lp(spec, relax, owner)
        mpax_module()
        if method not in METHODS:
            raise ValueError(f"{owner}: method must be one of {sorted(METHODS)}, got {method!r}")
        for what, v in (("eps_abs", eps_abs), ("eps_rel", eps_rel)):
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ValueError(f"{owner}: {what} must be a positive float, got {v!r}")
        if not isinstance(iteration_limit, (int, np.integer)) or int(iteration_limit) < 1:
            raise ValueError(f"{owner}: iteration_limit must be an int >= 1, got "
                             f"{iteration_limit!r}")
        if sparse not in (None, True, False):
            raise ValueError(f"{owner}: sparse must be True, False or None, got {sparse!r}")
        self.name, self.shape = owner, lp.shape
        self._spec = lp
        self.method, self.eps_abs, self.eps_rel = method, float(eps_abs), float(eps_rel)
        self.iteration_limit = int(iteration_limit)
        if lp.A_eq.nnz + lp.A_ub.nnz == 0:
            raise ValueError(f"{owner}: MPAX needs at least one constraint row with a nonzero "
                             "entry (PDHG's step size is 1 / max|A|); this spec is only bounds "
                             "(a box): use backend 'highs'")
        rows = lp.A_eq.shape[0] + lp.A_ub.shape[0]
        self.sparse = bool(rows * lp.n > DENSE_MAX_ENTRIES) if sparse is None else sparse
        # MPAX's form: A x = b, G x >= h, l <= x <= u (A_ub x <= b_ub becomes -A_ub x >= -b_ub)
        self._A, self._b = lp.A_eq.tocsr(), lp.b_eq.copy()
        self._G, self._h = (-lp.A_ub).tocsr(), -lp.b_ub
        digest = hashlib.sha1()
        for a in (self._A, self._G):
            for part in (a.indptr, a.indices, a.data):
                digest.update(np.ascontiguousarray(part).tobytes())
        for part in (self._b, self._h, lp.lb, lp.ub, np.asarray(lp.shape)):
            digest.update(np.ascontiguousarray(part).tobytes())
        self._digest = digest.hexdigest()

    @property
    def spec(self) -> LinearSpec:
        """The LP that is solved (the relaxation when built with ``relax=True``)."""
        return self._spec

    def _key(self):
        return (self._digest, self.method, self.eps_abs, self.eps_rel, self.iteration_limit,
                self.sparse)

    # -- the algorithm ---------------------------------------------------------------------
    def _matrix(self, M: sp.csr_matrix, dtype):
        if self.sparse:
            return M.astype(dtype)
        return M.toarray().astype(dtype)

    def pdhg(self, c: Array, lb: Array, ub: Array) -> tuple[Array, Array, Array]:
        """One PDHG solve of ``min c·x`` over Ω with variable bounds ``lb <= x <= ub``.

        Args:
          c: one cost, shape ``(n,)``, floating point (a tracer is fine); its dtype is the
            precision of the solve.
          lb, ub: variable bounds, shape ``(n,)`` (±inf allowed).

        Returns:
          ``(x, status, iterations)``: the primal point (not NaN-masked), the int32 `Status`
          and the int32 number of PDHG iterations.
        """
        mpax = mpax_module()
        from mpax.utils import TerminationStatus as T
        dt = c.dtype
        lp = mpax.create_lp(c, self._matrix(self._A, dt), jnp.asarray(self._b, dt),
                            self._matrix(self._G, dt), jnp.asarray(self._h, dt),
                            jnp.asarray(lb, dt), jnp.asarray(ub, dt),
                            use_sparse_matrix=self.sparse)
        algo = getattr(mpax, METHODS[self.method])(
            verbose=False, eps_abs=self.eps_abs, eps_rel=self.eps_rel,
            iteration_limit=self.iteration_limit)
        out = algo.optimize(lp)
        ts = out.termination_status
        status = jnp.where(ts == T.OPTIMAL, Status.OPTIMAL,
                           jnp.where(ts == T.PRIMAL_INFEASIBLE, Status.INFEASIBLE,
                                     jnp.where(ts == T.DUAL_INFEASIBLE, Status.UNBOUNDED,
                                               Status.ERROR))).astype(jnp.int32)
        return out.primal_solution, status, jnp.asarray(out.iteration_count, jnp.int32)

    def _solve_one(self, c):
        x, status, _ = self.pdhg(c.reshape(-1), self._spec.lb, self._spec.ub)
        return x.reshape(self.shape), status


@functools.lru_cache(maxsize=64)
def _batched(oracle: MpaxLP) -> Callable:
    """``jit(vmap(pdhg))`` over costs ``(B, n)`` with shared bounds, with non-finite costs
    answered by ERROR and a NaN x; shared by equal oracles (they hash by content)."""

    def one(c, lb, ub):
        finite = jnp.all(jnp.isfinite(c))
        x, status, iters = oracle.pdhg(jnp.where(finite, c, jnp.zeros_like(c)), lb, ub)
        status = jnp.where(finite, status, jnp.int32(Status.ERROR))
        x = jnp.where(status == Status.OPTIMAL, x, jnp.full_like(x, jnp.nan))
        return x, status, iters

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


class MpaxSolver(Solver):
    """``argmin c·x`` over an LP by PDHG in JAX (MPAX); built by ``make_solver(spec,
    backend="mpax", relax=...)``.

    ``solve_batch(C)`` (no executor) solves all of C in one vmapped XLA call, which is where
    this backend pays: a PDHG solve is slower than a simplex solve one at a time, and a batch
    costs about as much as its slowest member. Each new batch size compiles once (seconds).
    ``oracle`` is the `MpaxLP` to hand to an estimator (solved inside XLA, no host
    callback). Results are approximate optima (see the module docstring, `polish`).

    Args:
      spec, relax, time_limit, threads, seed, verbose, warm_start: as `make_solver`.
        ``time_limit`` must be None (PDHG inside XLA has no clock: bound it with
        ``iteration_limit``); ``threads`` must be 1 (XLA sets its own threads); ``seed`` and
        ``verbose`` are unused (PDHG is deterministic; MPAX's log stays off inside jit);
        ``warm_start`` must be False (each solve starts from zero).
      **options: `MpaxLP`'s ``method``, ``eps_abs``, ``eps_rel``, ``iteration_limit``,
        ``sparse``.

    Raises:
      ImportError: mpax is not installed.
      ValueError: integer variables without ``relax`` (naming them), a time limit, threads
        != 1, ``warm_start=True``, or a bad option value.
      TypeError: an option name this backend does not know.
    """

    OPTIONS = ("method", "eps_abs", "eps_rel", "iteration_limit", "sparse")

    def __init__(self, spec: LinearSpec, relax: bool = False, time_limit: float | None = None,
                 threads: int = 1, seed: int = 0, verbose: bool = False,
                 warm_start: bool = False, **options: Any):
        name = getattr(spec, "name", "mpax")
        check_kwargs(f"{name}: backend 'mpax'", options, self.OPTIONS)
        if time_limit is not None:
            raise ValueError(f"{name}: backend 'mpax' has no time limit (PDHG runs inside XLA "
                             "without a clock); bound the work with iteration_limit=")
        if threads != 1:
            raise ValueError(f"{name}: backend 'mpax': threads must be 1 (XLA chooses its own "
                             "threads)")
        if warm_start:
            raise ValueError(f"{name}: backend 'mpax' does not warm-start (every PDHG solve "
                             "starts from zero); pass warm_start=False or None")
        self.oracle = MpaxLP(spec, relax=relax, **options)
        super().__init__(spec.shape, name)
        self.spec, self.relax, self.options = spec, bool(relax), dict(options)
        self.verbose, self.seed = verbose, seed
        self._lb = np.asarray(self.oracle.spec.lb, np.float64)
        self._ub = np.asarray(self.oracle.spec.ub, np.float64)

    def factory(self):
        return functools.partial(MpaxSolver, self.spec, self.relax, None, 1, self.seed,
                                 self.verbose, False, **self.options)

    def set_bounds_flat(self, lb: np.ndarray, ub: np.ndarray) -> None:
        """New variable bounds (see `Solver.fixed`): the next solves use them; they are
        arguments of the compiled program, so nothing recompiles."""
        self._lb, self._ub = np.asarray(lb, np.float64).copy(), np.asarray(ub, np.float64).copy()

    def _run(self, flat: np.ndarray):
        # A single cost runs as a batch of two copies: XLA compiles a batch of one
        # differently (the size-1 axis is dropped), and the rounding differences moved
        # PDHG's stopping iteration (one of 16 grid-LP costs stopped at 609 iterations
        # alone, 509 in any batch of 2, 3, 8 or 16), so solve(c) would differ from its
        # entry in solve_batch. Batches of 2 or more gave bitwise-equal entries.
        fn = _batched(self.oracle)
        one = len(flat) == 1
        t0 = time.perf_counter()
        X, status, iters = jax.block_until_ready(
            fn(np.repeat(flat, 2, axis=0) if one else flat, self._lb, self._ub))
        seconds = time.perf_counter() - t0
        X, status, iters = (np.asarray(a)[:len(flat)] for a in (X, status, iters))
        return X.astype(np.float64), status, iters, seconds

    def solve_flat(self, c):
        X, status, iters, seconds = self._run(c[None])
        stats = {"solve_time": seconds, "iterations": int(iters[0])}
        st = Status(int(status[0]))
        if st != Status.OPTIMAL:
            stats["detail"] = _detail(st, int(iters[0]), self.oracle.iteration_limit)
            return None, float("nan"), st, stats
        return X[0], float(c @ X[0]), st, stats

    def solve_batch(self, C, executor=None, *, check: bool = True) -> list[Solution]:
        """Solve every cost in C (``(B, *shape)`` or ``(B, n)``).

        Without an executor, in one vmapped XLA call (each `Solution`'s ``solve_time`` and
        ``wall_time`` are the batch's seconds divided by B; ``batch_seconds`` is the whole
        call). With an executor, as `Solver.solve_batch` (each worker compiles its own copy).

        Raises:
          ValueError: C of the wrong shape or holding NaN/inf.
          InfeasibleError, UnboundedError, SolverError: when ``check`` and a solve failed:
            the first failing item's error, as `Solver.solve_batch` raises it (``item i of
            B: ...``, with ``item`` and ``partial``: here every item's `Solution`, as the
            whole batch is solved in one call).
        """
        if executor is not None:
            return super().solve_batch(C, executor, check=check)
        C = np.asarray(C, dtype=np.float64)
        if C.ndim < 1 or C.shape[1:] not in (self.shape, (self.n,)):
            raise ValueError(f"{self.name}: batch of costs has shape {C.shape}, expected "
                             f"(B, {', '.join(map(str, self.shape))})")
        if len(C) == 0:
            return []
        flat = np.stack([self.check_cost(c) for c in C])
        X, status, iters, seconds = self._run(flat)
        out = []
        for c, x, st, it in zip(flat, X, status, iters):
            st = Status(int(st))
            stats = {"solve_time": seconds / len(flat), "wall_time": seconds / len(flat),
                     "batch_seconds": seconds, "iterations": int(it)}
            if st == Status.OPTIMAL:
                sol = Solution(x=x.reshape(self.shape), objective=float(c @ x), status=st,
                               stats=stats)
            else:
                stats["detail"] = _detail(st, int(it), self.oracle.iteration_limit)
                sol = Solution(x=np.full(self.shape, np.nan), objective=float("nan"),
                               status=st, stats=stats)
            out.append(sol)
        failed = [i for i, sol in enumerate(out) if not sol.ok]
        if check and failed:
            raise batch_error(self.name, failed[0], len(out), list(out), out[failed[0]])
        return out


def _detail(status: Status, iterations: int, limit: int) -> str:
    if status == Status.INFEASIBLE:
        return f"PDHG found a certificate of primal infeasibility after {iterations} iterations"
    if status == Status.UNBOUNDED:
        return (f"PDHG found a certificate of dual infeasibility (the LP is unbounded, or "
                f"infeasible) after {iterations} iterations")
    if iterations >= limit:
        return f"PDHG stopped at its iteration limit ({limit}) without meeting its tolerances"
    return f"PDHG stopped after {iterations} iterations without meeting its tolerances"
