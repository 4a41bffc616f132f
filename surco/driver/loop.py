"""SurCo-zero's loops (Ferber et al., ICML 2023, Alg. 1), one per backend, over one
`Start` (what `surco.zero` resolved from its problem, instances and `ZeroConfig`).

* `host_loop`: one jitted step per iteration, the solver on the host (`HostProgram`).
  Stops: ``steps``, patience, target, the time limit (a solve running at the deadline is
  stopped there), a `BudgetExhausted` from ``evaluate`` or the objective; Ctrl-C raises
  `KeyboardInterrupt` and a failure its typed error, both carrying ``.partial``.
* `jax_loop`: backend "jax": chunks of steps inside XLA (`chunk_program`), the selection
  replayed on the host between chunks; the time limit is checked between chunks.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import (RunControl, build_solver, controlled, initial_theta,
                           is_budget_exhausted, is_interrupt, stack_instances)
from surco.checks import check_instances
from surco.config import ZeroConfig
from surco.guidance import check_solver_share
from surco.driver.program import chunk_program, host_program, init_opt_state, solves_per_step
from surco.driver.selection import (NoProgressWarning, Selection, attach, check_step,
                                    no_progress_message)
from surco.outcome import StopReason
from surco.problem import Instance, Problem
from surco.results import ZeroResult
from surco.solvers import Status
from surco.solvers.jax_oracles import JaxOracle

#: steps after the first (which compiles) over which `surco.guidance.check_solver_share`
#: measures the solver's share of SurCo's step time, once per run
SHARE_STEPS = 5

__all__ = ["Start", "host_loop", "jax_loop"]


@dataclasses.dataclass
class Start:
    """A run about to start: the problem, its instances (``many``: given as a list), the
    configuration, the estimator and optimiser built from it, the start θ0 per instance
    (``init``: "random", "zeros" or an array), the PRNG key and the start time."""

    problem: Problem
    instances: list[Instance]
    many: bool
    cfg: ZeroConfig
    est: Any
    opt: Any
    opt_key: Any
    init: Any
    key: jax.Array
    t_start: float
    label: str

    def unwrap(self, out: list[ZeroResult] | None):
        return out if self.many or out is None else out[0]

    def warn_stuck(self, sel: Selection, t: int, stacklevel: int) -> bool:
        """Warn (once: returns True) when x has not moved in ``no_progress_steps`` steps of
        a cold start (a warm start that stays put may already be good)."""
        n, cfg = self.cfg.no_progress_steps, self.cfg
        if n is None or not isinstance(cfg.init, str) or t != n or sel.moved.all():
            return False
        warnings.warn(NoProgressWarning(no_progress_message(
            self.label, self.est, int((~sel.moved).sum()), len(self.instances), n,
            cfg.optimizer is None, cfg.lr)), stacklevel=stacklevel)
        return True


def host_loop(s: Start):
    """SurCo-zero with host solvers (see the module docstring)."""
    problem, instances, cfg, est = s.problem, s.instances, s.cfg, s.est
    control = RunControl(cfg.time_limit, s.t_start)
    members = [build_solver(problem, y, cfg.backend, cfg.solver_options) for y in instances]
    B, shape = len(instances), tuple(members[0].shape)
    check_instances(problem, instances, cfg.dtype, "surco.zero", values=False)
    ys = stack_instances(problem, instances)
    key, k0 = jax.random.split(s.key)
    theta = initial_theta(s.init, k0, (B, *shape), cfg.dtype, cfg.init_scale)
    opt_state = init_opt_state(s.opt, (est, s.opt_key), theta)
    program = host_program(problem, est, s.opt, s.opt_key, members, cfg.executor, control,
                           theta, opt_state, ys)
    solver, step, f_hard = program.solver, program.step, program.f_hard
    sel = Selection(problem, instances, cfg.select, cfg.patience, cfg.target)
    relaxed, warned = not est.forward_is_solution, False

    def results(stopped, final: bool = True):
        return s.unwrap(sel.results(est.name, time.perf_counter() - s.t_start, stopped,
                                    final=final, solver_calls=solver.calls,
                                    solver_seconds=solver.seconds))

    def fail(exc: BaseException) -> BaseException:
        return attach(exc, results(StopReason.ERROR, final=False))

    def check(t: int, **flags) -> None:
        if control.error is not None:
            raise fail(control.error) from None
        check_step(problem, est, flags, t, B, fail, failure=control.failure,
                   solver_name=lambda b: (solver.members[b] if b < len(solver.members)
                                          else solver).name)

    try:  # the program is this run's until its results are read
        stopped = StopReason.STEPS
        bar = _progress(cfg.steps + 1, cfg.progress, s.label)
        try:
            with controlled(control):
                for t in range(cfg.steps + 1):
                    if control.stop_requested():
                        stopped = control.reason
                        break
                    key, k = jax.random.split(key)
                    control.failure = None
                    # the update computed at the last iterate is not used: that iterate is
                    # only evaluated
                    try:
                        (new_theta, new_state, fv, x, c, status, c_ok, gx_ok, g_ok,
                         gx) = jax.block_until_ready(step(theta, opt_state,
                                                          k if est.needs_key else None, ys))
                        t_done = time.perf_counter()  # the step's stamp: when its work ended
                    except Exception as exc:
                        if control.reason is not None or is_interrupt(exc):
                            stopped = control.reason or StopReason.INTERRUPTED
                            break
                        if is_budget_exhausted(exc):
                            stopped = StopReason.BUDGET
                            break
                        raise fail(control.error or exc) from None
                    if control.stop_requested(t_done):  # solves of this step were skipped
                        stopped = control.reason
                        break
                    check(t, status=np.asarray(status), c_ok=np.asarray(c_ok),
                          f=np.asarray(fv, np.float64), gx_ok=np.asarray(gx_ok),
                          g_ok=np.asarray(g_ok), gx=np.asarray(gx))
                    if relaxed:  # the feasible point is g(c) itself
                        sol = solver.solve(np.asarray(c, np.float64), check=False)
                        if control.stop_requested():
                            stopped = control.reason
                            break
                        check(t, status=np.asarray(sol.stats.get("member_status",
                                                                 [int(sol.status)] * B)))
                        x = jnp.asarray(sol.x, cfg.dtype)
                        try:
                            fv = f_hard(x, ys)
                        except Exception as exc:
                            if is_budget_exhausted(exc):
                                stopped = StopReason.BUDGET
                                break
                            raise fail(exc)
                        t_done = time.perf_counter()
                        if control.stop_requested(t_done):  # ended past the deadline
                            stopped = control.reason
                            break
                        check(t, f=np.asarray(fv, np.float64))
                    try:
                        reason = sel.step(np.asarray(fv, np.float64), np.asarray(x),
                                          np.asarray(c), np.asarray(theta),
                                          t_done - s.t_start, solver.calls,
                                          solver.seconds)
                    except Exception as exc:
                        if is_budget_exhausted(exc):
                            stopped = StopReason.BUDGET
                            break
                        raise fail(exc)
                    control.arm()  # from now on the deadline may cut a step short
                    theta, opt_state = new_theta, new_state
                    share = solver_share(solver, cfg.executor is None)
                    if t == 0:
                        share0 = (share, time.perf_counter())
                    elif t == SHARE_STEPS:  # warns when the solves dominate the steps
                        check_solver_share(share - share0[0], time.perf_counter() - share0[1])
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(best_f=f"{sel.best_f.mean():.5g}")
                    warned = warned or s.warn_stuck(sel, t, stacklevel=5)
                    if reason is not None:
                        stopped = reason
                        break
                    if control.stop_requested():
                        stopped = control.reason
                        break
        except KeyboardInterrupt:  # Ctrl-C landed in this loop's own code
            stopped = StopReason.INTERRUPTED
        finally:
            if bar is not None:
                bar.close()
        if stopped == StopReason.INTERRUPTED:
            raise _interrupted(s.label, sel, results(stopped, final=False)) from None
        return results(StopReason(stopped))
    finally:
        program.release()


def solver_share(solver, sequential: bool) -> float:
    """Seconds the run's solves took so far on the wall clock: the members' total when
    they are solved one after the other, the slowest member's when an executor solves them
    side by side."""
    sec = np.asarray(solver.seconds, np.float64)
    return float(sec.sum() if sequential else sec.max())


def _interrupted(label: str, sel: Selection, partial) -> KeyboardInterrupt:
    done = min(len(v) for v in sel.hist["f"])
    return attach(KeyboardInterrupt(
        f"{label} interrupted after {done} completed step(s); the best so far is in the "
        f"exception's .partial" + ("" if partial is not None else " (None: no step had "
                                   "completed)")), partial)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)


def find_oracle(problem: Problem, instances: list[Instance],
                oracle: JaxOracle | None) -> JaxOracle:
    """Ω's `JaxOracle`: ``oracle`` checked against the problem's x shape, or derived from
    the problem's space (`as_jax_oracle`). Raises ValueError / TypeError naming it."""
    from surco.solvers.jax_oracles import as_jax_oracle
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
                         "same set) or use a host backend")
    if any(o != found[0] for o in found[1:]):
        raise ValueError("zero: the instances have different Ω; a compiled run needs one "
                         "oracle for all of them")
    return found[0]


def jax_loop(s: Start, oracle: JaxOracle):
    """SurCo-zero with Ω solved inside XLA (backend "jax"; see the module docstring)."""
    problem, instances, cfg, est = s.problem, s.instances, s.cfg, s.est
    B, shape = len(instances), tuple(oracle.shape)
    ys = stack_instances(problem, instances)
    key, k0 = jax.random.split(s.key)
    theta = initial_theta(s.init, k0, (B, *shape), cfg.dtype, cfg.init_scale)
    opt_state = init_opt_state(s.opt, (est, s.opt_key), theta)
    length = 1 << (min(cfg.chunk, cfg.steps + 1) - 1).bit_length()
    run = chunk_program(problem, oracle, est, s.opt, s.opt_key, length, theta, opt_state, ys,
                        instances)
    calls = solves_per_step(est)
    sel = Selection(problem, instances, cfg.select, cfg.patience, cfg.target)
    # the program stops early on patience / target when the selection is by f; by
    # evaluate, only the host knows the scores, and the program runs its whole chunk
    by_f = cfg.select == "f"
    stop_patience = cfg.patience if by_f and cfg.patience is not None else np.iinfo(np.int32).max
    stop_target = cfg.target if by_f and cfg.target is not None else -np.inf
    warned, stopped, t = False, StopReason.STEPS, 0

    def results(stopped, final: bool = True):
        return s.unwrap(sel.results(est.name, time.perf_counter() - s.t_start, stopped,
                                    final=final, solver_calls=calls * sel.t,
                                    solver_seconds=None))

    def fail(exc: BaseException) -> BaseException:
        return attach(exc, results(StopReason.ERROR, final=False))

    try:
        while t <= cfg.steps:
            n = min(length, cfg.steps + 1 - t)
            t0 = time.perf_counter()
            theta, opt_state, key, rec, done = run(
                theta, opt_state, key, ys, np.int32(n), sel.best_sel.copy(),
                sel.stall.astype(np.int32), np.int32(stop_patience), np.float64(stop_target))
            rec, n = jax.device_get((rec, done))
            n, t1 = int(n), time.perf_counter()
            fvs, xs, cs, thetas, status, c_ok, gx_ok, g_ok = rec
            for i in range(n):
                if (np.any(status[i] > Status.FEASIBLE) or not np.all(c_ok[i])
                        or not np.all(np.isfinite(fvs[i])) or not np.all(gx_ok[i])
                        or not np.all(g_ok[i])):
                    check_step(problem, est, dict(status=status[i], c_ok=c_ok[i], f=fvs[i],
                                                  gx_ok=gx_ok[i], g_ok=g_ok[i]), t, B, fail,
                               solver_name=lambda b: oracle.name)
                try:
                    reason = sel.step(np.asarray(fvs[i], np.float64), xs[i], cs[i], thetas[i],
                                      (t0 - s.t_start) + (t1 - t0) * (i + 1) / n,
                                      calls * (t + 1))
                except Exception as exc:
                    if is_budget_exhausted(exc):
                        stopped = StopReason.BUDGET
                        break
                    raise fail(exc)
                warned = warned or s.warn_stuck(sel, t, stacklevel=5)
                t += 1
                if reason is not None:
                    stopped = reason
                    break
            if stopped != StopReason.STEPS:
                break
            if cfg.time_limit is not None and t <= cfg.steps \
                    and time.perf_counter() - s.t_start >= cfg.time_limit:
                stopped = StopReason.TIME_LIMIT
                break
    except KeyboardInterrupt:
        raise _interrupted(s.label, sel, results(StopReason.INTERRUPTED, final=False)) from None
    return results(stopped)
