"""SurCo-zero's compiled programs, cached across calls.

Two backends run the same step, `surrogate_step` (Ferber et al., ICML 2023, Alg. 1):

* host solvers: one jitted step per call of ``step(theta, opt_state, key, ys)``, the solver
  reached through ``jax.pure_callback`` (`HostProgram`, cached by `host_program`);
* ``backend="jax"``: Ω is a JAX-native oracle (`surco.solvers.jax_oracles`), so up to
  ``chunk`` steps run as one XLA loop (`chunk_program`), the host replaying only the
  selection between calls.

Both caches key a program by what it traces (problem's objective and cost transform,
estimator, optimiser definition, number of instances, shapes and dtypes): a second call on
the same shapes compiles nothing (`program_cache_info`, `cache_info`, `compile_seconds`).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import threading
import types
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import Metered, SolverSlot, batched_objective
from surco.checks import check_instances, tree_signature
from surco.estimators.base import Estimator
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity
from surco.estimators.perturbed import Perturbed
from surco.problem import Problem
from surco.solvers.jax_oracles import JaxOracle

__all__ = ["surrogate_step", "HostProgram", "host_program", "program_cache_info",
           "clear_program_cache", "chunk_program", "cache_info", "clear_cache",
           "compile_seconds", "CompileTime", "optimizer_key", "init_opt_state", "SUPPORTED"]


def surrogate_step(problem: Problem, est, solver, fvec, opt, theta, opt_state, key, ys,
                   x_axes: tuple[int, ...]):
    """One SurCo-zero step (Ferber et al., ICML 2023, Alg. 1), pure JAX, shared by both
    backends (host solvers and JAX oracles).

    Written out rather than as one ``value_and_grad`` so that each quantity can be checked
    per instance (``jnp.isfinite`` over ``x_axes``) and a non-finite one never reaches the
    solver as a cost or the optimiser as an update (it is zeroed; the flags say where).

    Returns:
      ``(new_theta, new_opt_state, f, x, c, status, c_ok, gx_ok, g_ok, gx)``.
    """
    def finite(a):  # per instance: all entries finite
        return jnp.all(jnp.isfinite(a), axis=x_axes)

    c, vjp_cost = jax.vjp(problem.to_cost, theta)
    c_ok = finite(c)
    c_in = jnp.where(jnp.isfinite(c), c, 0.0)
    x, vjp_est, status = jax.vjp(lambda cc: est(solver, cc, key, return_status=True),
                                 c_in, has_aux=True)
    fv, vjp_f = jax.vjp(lambda xx: fvec(xx, ys), x)
    gx = vjp_f(jnp.ones_like(fv))[0]
    gx_ok = finite(gx)
    gc = vjp_est(jnp.where(jnp.isfinite(gx), gx, 0.0))[0]
    g = vjp_cost(gc)[0]
    g_ok = finite(g)
    updates, new_state = opt.update(jnp.where(jnp.isfinite(g), g, 0.0), opt_state, theta)
    return (optax.apply_updates(theta, updates), new_state, fv, x, c, status, c_ok, gx_ok,
            g_ok, gx)


# -- the optimiser's identity and state ----------------------------------------------------
class _NoFingerprint(Exception):
    pass


def _fingerprint(obj: Any, depth: int = 0) -> Any:
    """A hashable value that is equal for equal optimiser definitions (see `optimizer_key`)."""
    if depth > 32:
        raise _NoFingerprint
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.generic):
        return ("np", obj.dtype.str, obj.item())
    if isinstance(obj, (type, np.dtype)):
        return ("type", repr(obj))
    if isinstance(obj, (np.ndarray, jax.Array)):
        a = np.asarray(obj)
        if a.size > 4096:
            raise _NoFingerprint
        return ("array", a.shape, a.dtype.str, a.tobytes())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):          # a NamedTuple
        return (type(obj).__qualname__, tuple(_fingerprint(o, depth + 1) for o in obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_fingerprint(o, depth + 1) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted(((repr(k), _fingerprint(v, depth + 1))
                                      for k, v in obj.items()), key=lambda kv: kv[0])))
    if isinstance(obj, functools.partial):
        return ("partial", _fingerprint(obj.func, depth + 1), _fingerprint(obj.args, depth + 1),
                _fingerprint(obj.keywords, depth + 1))
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(_fingerprint(cell.cell_contents, depth + 1))
            except ValueError:                                        # an empty cell
                cells.append(("empty",))
        return ("function", obj.__module__, obj.__qualname__, obj.__code__, tuple(cells),
                _fingerprint(obj.__defaults__, depth + 1),
                _fingerprint(obj.__kwdefaults__, depth + 1))
    raise _NoFingerprint


def optimizer_key(optimizer: Any) -> Any:
    """The compile-cache key of a user's optimiser: equal for two optimisers built by the
    same code with equal hyperparameters (``optax.adam(0.1)`` twice), so that a loop that
    builds its optimiser per instance still reuses the compiled SurCo step; the object
    itself (identity) when its definition cannot be read (e.g. it closes over an object of
    an unknown type)."""
    try:
        key = ("definition", _fingerprint(optimizer))
        hash(key)
        return key
    except (_NoFingerprint, TypeError):
        return optimizer


_OPT_INIT: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()


def init_opt_state(opt: optax.GradientTransformation, cache_key: Any, theta: jax.Array):
    """``opt.init(theta)`` through a jitted init cached by ``cache_key`` (the optimiser's
    identity: its object, or ("default", estimator, lr)): one dispatch instead of an eager op
    per state leaf, which on small instances costs more than the steps themselves."""
    key = (cache_key, tuple(theta.shape), str(theta.dtype))
    fn = _OPT_INIT.get(key)
    if fn is None:
        fn = _OPT_INIT[key] = jax.jit(opt.init)
        while len(_OPT_INIT) > 64:
            _OPT_INIT.popitem(last=False)
    else:
        _OPT_INIT.move_to_end(key)
    return fn(theta)


# -- host solvers: one jitted step ---------------------------------------------------------
class HostProgram:
    """One compiled SurCo-zero step for given (problem, estimator, optimiser, shapes,
    dtypes): ``step(theta, opt_state, key, ys)`` and ``f_hard(x, ys)``, closing over a
    `Metered` `SolverSlot` that each run loads with its own solvers. A run holds the
    program (``lock``) from its first step until its results are read (`release`)."""

    def __init__(self, problem, est, opt, members, executor):
        self.solver = Metered(SolverSlot(members, executor=executor))
        self.lock = threading.Lock()
        solver = self.solver
        fvec = batched_objective(problem)
        x_axes = tuple(range(1, 1 + len(members[0].shape)))

        @jax.jit
        def step(theta, opt_state, k, ys):
            return surrogate_step(problem, est, solver, fvec, opt, theta, opt_state, k, ys,
                                  x_axes)

        self.step = step
        self.f_hard = jax.jit(fvec)

    def load(self, members, executor, control) -> "HostProgram":
        slot = self.solver.inner
        slot.load(members)
        slot.executor = executor
        self.solver.reset(control)
        return self

    def release(self) -> None:
        self.solver.reset(None)
        self.solver.inner.members = self.solver.members = []  # drop the run's models
        self.lock.release()


_PROGRAMS_SIZE = 32
_PROGRAMS: "collections.OrderedDict[tuple, HostProgram]" = collections.OrderedDict()
_PROGRAMS_LOCK = threading.Lock()
_PROGRAM_STATS = {"hits": 0, "misses": 0}


def program_cache_info() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` of the host backend's cache of compiled steps: a
    hit is a call that reused a step compiled by an earlier call (same problem, estimator,
    optimiser, number of instances, shapes and dtypes), and compiled nothing new."""
    with _PROGRAMS_LOCK:
        return dict(_PROGRAM_STATS, entries=len(_PROGRAMS))


def clear_program_cache() -> None:
    """Forget the host backend's compiled steps and reset the counters."""
    with _PROGRAMS_LOCK:
        _PROGRAMS.clear()
        _PROGRAM_STATS.update(hits=0, misses=0)


def host_program(problem, est, opt, opt_key, members, executor, control, theta, opt_state,
                 ys) -> HostProgram:
    """The cached program for this run's shapes, locked for the run (a fresh, uncached one
    when another run holds it, e.g. in another thread).

    The problem enters the key by what the step traces, its objective and cost transform,
    not by identity: a copy with another ``evaluate`` (the harness counts evaluations
    through one per run, `dataclasses.replace`) reuses the step instead of compiling it
    again inside its time budget."""
    sig = ((problem.objective, problem.cost_transform), est, opt_key, len(members),
           tuple(members[0].shape), tuple(theta.shape),
           str(theta.dtype), tree_signature(ys), tree_signature(opt_state),
           tuple(_rows(m) for m in members))
    try:
        hash(sig)
    except TypeError:  # an unhashable estimator or optimiser: compile for this run only
        sig = None
    with _PROGRAMS_LOCK:
        program = _PROGRAMS.get(sig) if sig is not None else None
        if program is not None and program.lock.acquire(blocking=False):
            _PROGRAMS.move_to_end(sig)
            _PROGRAM_STATS["hits"] += 1
            return program.load(members, executor, control)
        _PROGRAM_STATS["misses"] += 1
    program = HostProgram(problem, est, opt, members, executor)
    program.lock.acquire()
    if sig is not None:
        with _PROGRAMS_LOCK:
            if sig not in _PROGRAMS:
                _PROGRAMS[sig] = program
                while len(_PROGRAMS) > _PROGRAMS_SIZE:
                    _PROGRAMS.popitem(last=False)
    return program.load(members, executor, control)


def _rows(solver) -> tuple:
    """Constraint row counts of a solver's `LinearSpec` (traced into estimators that read
    the constraints, e.g. ``quadratic``), or its type for a solver without one."""
    spec = getattr(solver, "spec", None)
    if spec is None or not hasattr(spec, "A_ub"):
        return (type(solver).__name__,)
    return tuple(None if a is None else a.shape for a in (spec.A_ub, spec.A_eq))


# -- backend "jax": chunks of steps inside XLA ---------------------------------------------
#: the estimators that run on a JAX oracle (their backward passes only re-solve)
SUPPORTED: tuple[type[Estimator], ...] = (Blackbox, Perturbed, Identity, NegIdentity)


def solves_per_step(est: Estimator) -> int:
    """Oracle solves per instance and step of SurCo-zero (forward, backward, feasible x)."""
    if type(est) is Perturbed:
        return est.n + 1
    return 2 if type(est) is Blackbox else 1


_CACHE_SIZE = 32
_CACHE: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cache_info() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` of the compiled-chunk cache of backend "jax"
    (since `clear_cache`)."""
    return {"hits": _STATS["hits"], "misses": _STATS["misses"], "entries": len(_CACHE)}


def clear_cache() -> None:
    """Forget every compiled chunk of backend "jax" and reset the counters."""
    _CACHE.clear()
    _STATS.update(hits=0, misses=0)


@dataclasses.dataclass
class CompileTime:
    """What `compile_seconds` measured: ``seconds`` spent tracing, lowering and compiling
    (JAX's ``/jax/core/compile/*`` events), over ``events`` events."""

    seconds: float = 0.0
    events: int = 0


@contextlib.contextmanager
def compile_seconds() -> Iterator[CompileTime]:
    """Measure JAX compilation inside the ``with`` block (every jit, eager op and lowering).

        >>> with compile_seconds() as ct:
        ...     _ = jax.jit(lambda a: a + 1)(1.0)
        >>> ct.events > 0
        True
    """
    rec = CompileTime()

    def listener(event: str, duration: float, **kw) -> None:
        if event.startswith("/jax/core/compile/"):
            rec.seconds += duration
            rec.events += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield rec
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _build_chunk(problem: Problem, oracle: JaxOracle, est: Estimator,
                 opt: optax.GradientTransformation, length: int):
    """The jitted chunk: ``(theta, opt_state, key, ys, n, best, stall, patience, target) ->
    (theta, opt_state, key, rec, done)`` running up to ``n <= length`` steps of SurCo-zero,
    recording each step's (f, x, c, theta, status, c_ok, gx_ok, g_ok) in buffers of
    ``length`` rows, and stopping after ``done`` steps once every instance has gone
    ``patience`` steps without a lower f or reached ``target`` (``best``, ``stall``: the
    host's running best f and stall counts on entry)."""
    fvec = batched_objective(problem)
    relaxed = not est.forward_is_solution

    def one_step(theta, opt_state, key, ys):
        x_axes = tuple(range(1, theta.ndim))
        key, k = jax.random.split(key)
        kk = k if est.needs_key else None
        (new_theta, new_state, fv, x, c, status, c_ok, gx_ok, g_ok,
         _) = surrogate_step(problem, est, oracle, fvec, opt, theta, opt_state, kk, ys, x_axes)
        c_in = jnp.where(jnp.isfinite(c), c, 0.0)
        if relaxed:  # the feasible point is g(c) itself
            x, st_h = oracle.solve_with_status(c_in)
            fv = fvec(x, ys)
            status = jnp.maximum(status, st_h)
        rec = (fv, x, c, theta, status, c_ok, gx_ok, g_ok)
        return new_theta, new_state, key, rec

    def chunk(theta, opt_state, key, ys, n, best, stall, patience, target):
        _, _, _, rec0 = jax.eval_shape(one_step, theta, opt_state, key, ys)
        bufs = jax.tree.map(lambda a: jnp.zeros((length,) + a.shape, a.dtype), rec0)

        def cond(carry):
            i, _, _, _, _, best, stall = carry
            done = jnp.all(stall >= patience) | jnp.all(best <= target)
            return (i < n) & ~done

        def body(carry):
            # the host's patience / target bookkeeping on f (`Selection.step` with
            # select="f"), so that the program stops where the host would, not at the end
            # of the chunk
            i, theta, opt_state, key, bufs, best, stall = carry
            theta, opt_state, key, rec = one_step(theta, opt_state, key, ys)
            bufs = jax.tree.map(lambda b, r: b.at[i].set(r), bufs, rec)
            fv = rec[0].astype(best.dtype)
            better = fv < best
            best = jnp.where(better, fv, best)
            stall = jnp.where(better, 0, stall + 1)
            return i + 1, theta, opt_state, key, bufs, best, stall

        i, theta, opt_state, key, bufs, _, _ = jax.lax.while_loop(
            cond, body, (jnp.int32(0), theta, opt_state, key, bufs, best, stall))
        return theta, opt_state, key, bufs, i

    return jax.jit(chunk)


def chunk_program(problem, oracle, est, opt, opt_key, length, theta, opt_state, ys,
                  instances):
    """The cached chunk for these shapes; on a miss, check that the instances fit Ω (on a
    hit they have the shapes of instances checked before) and build it."""
    sig = (problem, oracle, est, opt_key, length, tuple(theta.shape), str(theta.dtype),
           tree_signature(ys), tree_signature(opt_state))
    fn = _CACHE.get(sig)
    if fn is not None:
        _STATS["hits"] += 1
        _CACHE.move_to_end(sig)
        return fn
    check_instances(problem, instances, theta.dtype, "surco.zero", values=False)
    _STATS["misses"] += 1
    fn = _CACHE[sig] = _build_chunk(problem, oracle, est, opt, length)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fn
