"""SurCo-zero compiled: when Ω has a JAX-native oracle, the steps run inside XLA.

`surco.zero` calls the solver on the host once per step (through ``jax.pure_callback``). When
Ω is one of `surco.solvers.jax_oracles` (shortest paths over a fixed graph, one choice per
row, top-k) nothing needs the host: the estimator's forward and backward solves are JAX code,
and `zero` here runs the steps as one XLA loop (``lax.fori_loop``, optax inside) per chunk
of up to ``chunk`` steps; a run of at most ``chunk`` steps is one call of one XLA program.
Between chunks the host only replays the selection (best x by f or by ``evaluate``,
patience, target), which is what keeps the results identical to `surco.zero`'s.

Compiled chunks are cached by (problem, oracle, estimator, optimiser, number of instances,
shapes, dtype, chunk length): a second call on the same shapes compiles nothing
(`cache_info`, `compile_seconds`).

    >>> import surco
    >>> from surco.problems import routing
    >>> from surco import compiled
    >>> y = routing.generate(5, seed=0, regime="risk", q=2.0)
    >>> res = compiled.zero(routing.make_problem(5), y, estimator="blackbox", lam=100.0,
    ...                     steps=10, key=0)
    >>> res.x.shape
    (80,)
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import time
import warnings
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (NO_PROGRESS_STEPS, NoProgressWarning, batched_objective,
                           surrogate_step, check_estimator_kwargs, check_finite, check_instances,
                           check_int, check_zero_args,
                           initial_theta, no_progress_message, resolve_key, stack_instances,
                           tree_signature, init_opt_state, optimizer_key)
from surco.estimators import get_estimator
from surco.estimators.base import Estimator
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity
from surco.estimators.perturbed import Perturbed
from surco.problem import Instance, Problem, ProblemError
from surco.results import ZeroResult
from surco.solvers import Solution, Status
from surco.solvers.jax_oracles import JaxOracle, as_jax_oracle

Array = jax.Array

__all__ = ["zero", "cache_info", "clear_cache", "compile_seconds", "SUPPORTED"]

#: the estimators that run on a JAX oracle (their backward passes only re-solve)
SUPPORTED: tuple[type[Estimator], ...] = (Blackbox, Perturbed, Identity, NegIdentity)


def _check_supported(est: Estimator, who: str) -> None:
    if type(est) not in SUPPORTED:
        raise ValueError(f"{who}: estimator {est.name!r} does not run on a JAX oracle; use one "
                         f"of {[cls.name for cls in SUPPORTED]} (or surco.zero with a host "
                         "solver)")


def _solves_per_step(est: Estimator) -> int:
    """Oracle solves per instance and step of SurCo-zero (forward, backward, feasible x)."""
    if type(est) is Perturbed:
        return est.n + 1
    return 2 if type(est) is Blackbox else 1


# --------------------------------------------------------------------------------------
# The compile cache.
# --------------------------------------------------------------------------------------
_CACHE_SIZE = 32
_CACHE: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cache_info() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` of the compiled-chunk cache (since `clear_cache`)."""
    return {"hits": _STATS["hits"], "misses": _STATS["misses"], "entries": len(_CACHE)}


def clear_cache() -> None:
    """Forget every compiled chunk and reset the counters."""
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
            # the host's patience / target bookkeeping on f (`_Replay.step` with select="f"),
            # so that the program stops where the host would, not at the end of the chunk
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


def _chunk_fn(problem, oracle, est, opt, opt_key, length, theta, opt_state, ys, instances):
    """The cached chunk for these shapes; on a miss, check that the instances fit Ω (on a
    hit they have the shapes of instances checked before) and build it."""
    sig = (problem, oracle, est, opt_key, length, tuple(theta.shape), str(theta.dtype),
           tree_signature(ys), tree_signature(opt_state))
    fn = _CACHE.get(sig)
    if fn is not None:
        _STATS["hits"] += 1
        _CACHE.move_to_end(sig)
        return fn
    check_instances(problem, instances, theta.dtype, "surco.compiled.zero", values=False)
    _STATS["misses"] += 1
    fn = _CACHE[sig] = _build_chunk(problem, oracle, est, opt, length)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fn


# --------------------------------------------------------------------------------------
# SurCo-zero, compiled.
# --------------------------------------------------------------------------------------
def _find_oracle(problem: Problem, instances: Sequence[Instance],
                 oracle: JaxOracle | None) -> JaxOracle:
    if oracle is not None:
        if not isinstance(oracle, JaxOracle):
            raise TypeError(f"zero: oracle must be a surco.solvers.jax_oracles.JaxOracle "
                            f"(ShortestPath, OneHot, TopK), got {type(oracle).__name__}")
        shape = problem.x_shape(instances[0])
        if tuple(oracle.shape) != shape:
            raise ValueError(f"zero: oracle {oracle.name!r} has x shape {oracle.shape}, but "
                             f"problem {problem.name!r} has x shape {shape}")
        return oracle
    found = [as_jax_oracle(problem.space_for(y)) for y in instances]
    if found[0] is None:
        raise ValueError(f"zero: Ω of problem {problem.name!r} "
                         f"({type(problem.space_for(instances[0])).__name__}) has no JAX-native "
                         "oracle; pass oracle= (a surco.solvers.jax_oracles.JaxOracle for the "
                         "same set) or use surco.zero")
    if any(o != found[0] for o in found[1:]):
        raise ValueError("zero: the instances have different Ω; a compiled run needs one "
                         "oracle for all of them")
    return found[0]


class _Replay:
    """surco.zero's per-step bookkeeping (best x by score, patience, target, history),
    replayed on the host over the steps that a compiled chunk recorded."""

    def __init__(self, problem, instances, select, patience, target, calls_per_step):
        B = len(instances)
        self.problem, self.instances, self.select = problem, instances, select
        self.patience, self.target, self.calls = patience, target, calls_per_step
        self.best_f = np.full(B, np.inf)
        self.best_sel = np.full(B, np.inf)
        self.best: list = [None] * B
        self.stall = np.zeros(B, int)
        self.hist = {k: [[] for _ in range(B)]
                     for k in ("f", "best_f", "solver_calls", "seconds", "solver_seconds")}
        self.evaluated: list[dict[bytes, float]] = [{} for _ in range(B)]
        self.x_first: list = [None] * B
        self.moved = np.zeros(B, bool)
        self.t = 0

    def step(self, fv, x, c, theta, seconds) -> str | None:
        """Record one step; return the stop reason ("patience", "target") or None."""
        B, t = len(self.instances), self.t
        scores = fv.copy()
        if self.select == "evaluate":
            for b in range(B):
                h = x[b].tobytes()
                if h not in self.evaluated[b]:
                    self.evaluated[b][h] = float(self.problem.evaluate(x[b], self.instances[b]))
                scores[b] = self.evaluated[b][h]
        for b in range(B):
            if scores[b] < self.best_sel[b]:
                self.best_sel[b], self.best_f[b] = scores[b], fv[b]
                self.best[b] = (x[b].copy(), c[b].copy(), theta[b].copy(), t)
                self.stall[b] = 0
            else:
                self.stall[b] += 1
            if self.x_first[b] is None:
                self.x_first[b] = x[b].copy()
            elif not self.moved[b] and not np.array_equal(x[b], self.x_first[b]):
                self.moved[b] = True
            self.hist["f"][b].append(float(fv[b]))
            self.hist["best_f"][b].append(float(self.best_f[b]))
            self.hist["solver_calls"][b].append(self.calls * (t + 1))
            self.hist["seconds"][b].append(seconds)
            self.hist["solver_seconds"][b].append(math.nan)
        self.t += 1
        if self.patience is not None and np.all(self.stall >= self.patience):
            return "patience"
        if self.target is not None and np.all(self.best_f <= self.target):
            return "target"
        return None

    def results(self, est, seconds: float, stopped: str, final: bool = True):
        if any(b is None for b in self.best):
            return None
        B, out = len(self.instances), []
        for b in range(B):
            x_b, c_b, th_b, t_b = self.best[b]
            true = self.evaluated[b].get(x_b.tobytes())
            if true is None and final and self.problem.evaluate is not None:
                true = float(self.problem.evaluate(x_b, self.instances[b]))
            out.append(ZeroResult(
                x=x_b, f=float(self.best_f[b]), true_cost=true, c=c_b, theta=th_b,
                history={k: list(v[b]) for k, v in self.hist.items()}, best_step=int(t_b),
                seconds=seconds / B, solver_seconds=math.nan,
                solver_calls=self.calls * self.t, problem=self.problem.name,
                estimator=est.name, stopped=stopped))
        return out


def _raise_step_failure(problem, oracle, est, rec, i: int, t: int, partial) -> None:
    """Raise the first failure recorded at row i (step t), as surco.zero does."""
    fv, _, _, _, status, c_ok, gx_ok, g_ok = (np.asarray(a[i]) for a in rec)
    B = len(fv)

    def where(b):
        return f"Problem {problem.name!r}, step {t}" + (f", instance {b}" if B > 1 else "")

    def attach(exc):
        exc.partial = partial
        return exc

    bad = np.flatnonzero(status > Status.FEASIBLE)
    if bad.size:
        b = int(bad[0])
        try:
            Solution(x=np.zeros(0), objective=math.nan, status=Status(int(status[b])),
                     stats={"detail": where(b)}).raise_for_status(oracle.name)
        except Exception as exc:
            raise attach(exc) from None
    if not np.all(c_ok):
        b = int(np.flatnonzero(~c_ok)[0])
        raise attach(ProblemError(
            f"{where(b)}: the surrogate cost c = cost_transform(θ) is not finite; check the "
            "problem's cost_transform (and lr: θ may have diverged)"))
    try:
        check_finite(problem, np.asarray(fv, np.float64), f"at step {t}")
    except ProblemError as exc:
        raise attach(exc) from None
    if not np.all(gx_ok):
        b = int(np.flatnonzero(~gx_ok)[0])
        raise attach(ProblemError(
            f"{where(b)}: the gradient of the objective with respect to x is not finite at "
            "the solver's answer x, although f(x) is; the estimator needs a finite df/dx"))
    b = int(np.flatnonzero(~g_ok)[0])
    raise attach(ProblemError(
        f"{where(b)}: the gradient from estimator {est.name!r} (dL/dθ) is not finite although "
        "df/dx is; check the estimator's hyperparameters and the problem's cost_transform"))


def zero(problem: Problem, instance: Instance | Sequence[Instance], *,
         oracle: JaxOracle | None = None, estimator: Any = "blackbox", steps: int = 100,
         lr: float = 0.1, optimizer: optax.GradientTransformation | None = None,
         init: str | np.ndarray | jax.Array = "random", init_scale: float = 1.0,
         patience: int | None = None, target: float | None = None,
         time_limit: float | None = None, key: jax.Array | int | None = None,
         select: str = "f", no_progress_steps: int | None = NO_PROGRESS_STEPS,
         chunk: int = 64, dtype=jnp.float32, **estimator_kw: Any
         ) -> ZeroResult | list[ZeroResult]:
    """SurCo-zero (Ferber et al., ICML 2023, Alg. 1) with Ω solved inside XLA.

    Same method, arguments and results as `surco.zero` — the same trajectory of costs,
    the same best x, f and history of f for the same key — when Ω has a JAX-native oracle.
    The steps run as an XLA loop (up to ``chunk`` steps per call of one compiled program,
    no host callback), and compiled programs are cached across calls (`cache_info`).

    One difference: with several instances, `surco.zero`'s cost projections and perturbed
    weights currently reduce over the whole `SolverStack` (its x shape includes the
    instance axis); here every instance is its own problem, exactly as when solved alone.

    Args:
      problem, instance, estimator, steps, lr, optimizer, init, init_scale, patience,
        target, key, select, no_progress_steps, dtype, **estimator_kw: as `surco.zero`.
        ``estimator`` must be blackbox, perturbed, identity or neg_identity (`SUPPORTED`).
      oracle: the `surco.solvers.jax_oracles.JaxOracle` for Ω; None derives it from the
        problem's space (`as_jax_oracle`: a `ShortestPathOracle` gives `ShortestPath`).
      time_limit: checked between chunks (a chunk runs to its end): stop after this many
        seconds and return the best so far; None: no limit.
      chunk: steps per call of the compiled program (an integer >= 1); the host replays the
        selection between calls, so a smaller chunk stops sooner after patience or target
        is met, a larger one makes fewer calls. The program is compiled for
        ``min(chunk, steps + 1)`` rounded up to a power of two.

    Returns:
      A `ZeroResult` (a list for a list of instances). Differences from `surco.zero`:
      ``solver_seconds`` (and its history) is NaN — the solves are fused into the program;
      ``solver_calls`` counts oracle solves per instance (forward, backward re-solves and
      the feasible x of a relaxed forward: 2 per step for blackbox, n + 1 for perturbed,
      1 for identity); ``history["seconds"]`` spreads each chunk's wall time evenly over its
      steps (compilation falls in the first chunk).

    Raises:
      ValueError: bad arguments, an unsupported estimator, Ω without a JAX oracle (pass
        ``oracle=``), an oracle whose shape is not the problem's; instance data holding
        NaN or inf (as `surco.zero`).
      TypeError: an unknown keyword (neither a parameter nor a hyperparameter of the
        estimator; as `surco.zero`).
      ProblemError: as `surco.zero` (instances that do not fit Ω, non-finite f or gradients).
      InfeasibleError, SolverError: the oracle failed on a surrogate cost (e.g. no path).
      Exceptions raised after the first chunk carry ``.partial`` (the best so far); a
      Ctrl-C between chunks raises `KeyboardInterrupt` with ``.partial``.
    """
    check_estimator_kwargs("surco.compiled.zero", zero, estimator_kw, estimator)
    args = check_zero_args(problem, instance, steps=steps, lr=lr, init_scale=init_scale,
                           patience=patience, no_progress_steps=no_progress_steps, target=target,
                           time_limit=time_limit, optimizer=optimizer, select=select, dtype=dtype)
    instances, many, dtype = args["instances"], args["many"], args["dtype"]
    steps, lr, init_scale = args["steps"], args["lr"], args["init_scale"]
    patience, no_progress_steps = args["patience"], args["no_progress_steps"]
    time_limit = args["time_limit"]
    chunk = check_int("chunk", chunk, 1)
    check_instances(problem, instances, dtype, "surco.compiled.zero", trace=False)
    est = get_estimator(estimator, **estimator_kw)
    _check_supported(est, "zero")
    t_start = time.perf_counter()
    oracle = _find_oracle(problem, instances, oracle)
    B, shape = len(instances), tuple(oracle.shape)
    ys = stack_instances(problem, instances)
    if optimizer is None:
        opt, opt_key = est.default_optimizer(lr), ("default", lr)
    else:
        opt, opt_key = optimizer, optimizer_key(optimizer)
    key = resolve_key(key)
    key, k0 = jax.random.split(key)
    theta = initial_theta(init, k0, (B, *shape), dtype, init_scale)
    opt_state = init_opt_state(opt, (est, opt_key), theta)
    length = 1 << (min(chunk, steps + 1) - 1).bit_length()
    run = _chunk_fn(problem, oracle, est, opt, opt_key, length, theta, opt_state, ys, instances)

    replay = _Replay(problem, instances, select, patience, target, _solves_per_step(est))
    # the program stops early on patience / target when the selection is by f (select="f");
    # by evaluate, only the host knows the scores, and the program runs its whole chunk
    in_program = select == "f"
    stop_patience = patience if in_program and patience is not None else np.iinfo(np.int32).max
    stop_target = target if in_program and target is not None else -np.inf
    label = f"SurCo-zero[{problem.name}, compiled]"
    warned, stopped, t = False, "steps", 0
    try:
        while t <= steps:
            n = min(length, steps + 1 - t)
            t0 = time.perf_counter()
            theta, opt_state, key, rec, done = run(
                theta, opt_state, key, ys, np.int32(n), replay.best_sel.copy(),
                replay.stall.astype(np.int32), np.int32(stop_patience), np.float64(stop_target))
            rec, n = jax.device_get((rec, done))
            n = int(n)
            t1 = time.perf_counter()
            fvs, xs, cs, thetas, status, c_ok, gx_ok, g_ok = rec
            for i in range(n):
                if (np.any(status[i] > Status.FEASIBLE) or not np.all(c_ok[i])
                        or not np.all(np.isfinite(fvs[i])) or not np.all(gx_ok[i])
                        or not np.all(g_ok[i])):
                    partial = replay.results(est, time.perf_counter() - t_start, "error",
                                             final=False)
                    partial = partial if many or partial is None else partial[0]
                    _raise_step_failure(problem, oracle, est, rec, i, t, partial)
                secs = (t0 - t_start) + (t1 - t0) * (i + 1) / n
                reason = replay.step(np.asarray(fvs[i], np.float64), xs[i], cs[i], thetas[i],
                                     secs)
                if (no_progress_steps is not None and not warned and t == no_progress_steps
                        and not replay.moved.all()):
                    warned = True
                    warnings.warn(NoProgressWarning(no_progress_message(
                        label, est, int((~replay.moved).sum()), B, no_progress_steps,
                        optimizer is None, lr)), stacklevel=2)
                t += 1
                if reason is not None:
                    stopped = reason
                    break
            if stopped != "steps":
                break
            if time_limit is not None and time.perf_counter() - t_start >= time_limit \
                    and t <= steps:
                stopped = "time_limit"
                break
    except KeyboardInterrupt:
        partial = replay.results(est, time.perf_counter() - t_start, "interrupted", final=False)
        exc = KeyboardInterrupt(f"{label} interrupted after {replay.t} completed step(s); the "
                                "best so far is in the exception's .partial")
        exc.partial = partial if many or partial is None else partial[0]
        raise exc from None
    out = replay.results(est, time.perf_counter() - t_start, stopped)
    return out if many else out[0]
