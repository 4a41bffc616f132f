"""LANCER-zero: a landscape surrogate per instance, alternated with descent on the surrogate
cost (Zharmagambetov et al., "Landscape Surrogate: Learning Decision Losses for
Mathematical Optimization Under Partial Information", NeurIPS 2023, Alg. 1, with the cost c
optimised directly for one instance, as SurCo-zero does, Ferber et al., ICML 2023).

Each round, with M_w the landscape model of `surco.lancer.landscape` (M = a base plus a
learned correction of the true cost, of which a share chosen by cross-validation is used):

1. *descend*: ``descent`` optax steps on θ (c = cost_transform(θ)) down M_w(c), each one
   solve (M's dependence on x = g_Ω(c) through the SurCo estimator, its dependence on c
   directly; ``correction`` weighs the learned part in this direction);
2. *explore*: ``candidates`` perturbations of the incumbent θ (the one whose x has the best
   true cost), ``θ + sigma · rms(θ) · N(0, I)``, solved in one ``solve_batch``;
3. *evaluate*: of the new distinct solutions, the ``per_round`` with the lowest predicted
   true cost M_w are evaluated through the meter (one evaluation each; solutions already
   evaluated are free and join the data with their cost);
4. *fit*: M_w is refitted on the (c, x, base, true cost) collected (`landscape.fit`).

Solves are free; only the meter's evaluations count. The run starts by evaluating
g_Ω(c_0), so its answer is never worse than the start; every answer is a solver's, hence
in Ω. When a round finds no new solution, ``sigma`` doubles (up to 16 times its setting)
until one does; ``patience`` such rounds in a row end the run.

What LANCER may know without paying (``free_f``, `LancerConfig`). Where the problem's
differentiable f is the true cost, or ranks solutions as it does (assignment, routing,
portfolio, photonics; sharding judged by the analytic cost, of which f is a smoothed
maximum), f(x) of a proposed solution is an evaluation in all but name. An earlier version
computed it on every descent step and perturbation and ranked them by M = f + correction:
at equal *counted* evaluations it had seen many more, and its lead over SurCo-zero came
from there. So by default (``free_f=False``) LANCER follows the paper's M, which sees the
cost c and the instance only (§3): the base of M is the start's true cost, a constant, and
on every solution not yet evaluated M is the learned network alone; the descent goes down
it, the candidates are ranked by it, and f is not computed at all (the answer's value is
the meter's record of it). The other way to be honest, charging one
evaluation per solution whose f is computed, would make every descent step an evaluation
(SurCo-zero with a model beside it) and leave nothing of what LANCER is for: spending
evaluations only on the solutions a model ranks best among many free proposals. The
untrained network is flat, so the perturbations (``candidates`` >= 1) propose the first
new solutions (unless initial ``landscape`` parameters are given).
``free_f=True`` declares f a free proxy distinct from the metered cost (a cost model of a
profiler's measurements, as in ``bench.measured``): then M = f + learned correction, f is
computed on every proposed solution, and the correction learns the proxy's error.

Measured on sharding (settings chosen on train tasks, `SETTINGS_NOTES`; f not free there),
on the 10 quick test tasks (``python -m bench.lancer --quick``,
bench/results/lancer-quick.json, 2-core CPU): LANCER's mean cost is 1.002 / 1.016 / 1.023
× the best search baseline's at 30 / 100 / 300 evaluations, SurCo-zero's 0.974 / 0.987 /
0.996, at 10-18 s per task for LANCER. The earlier LANCER, with f free, measured 0.969 /
0.981 / 0.993: its lead over SurCo-zero came from the uncounted values of f. On train
tasks, descending the learned network made LANCER worse than ranking perturbations by it
alone, so the sharding setting does not descend (``descent=0``).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (RunControl, build_solver, controlled, initial_theta, resolve_key,
                           stack_instances)
from surco.checks import check_int
from surco.budget import BudgetExhausted, Meter
from surco.outcome import MeteredResult, StopReason
from surco.estimators import raise_for_status
from surco.family import Family, Method
from surco.config import ZeroConfig, settings_of, split_settings
from surco.lancer import landscape as L
from surco.lancer._program import program, raise_stop
from surco.lancer.config import LANCER_FIELDS, LancerConfig, check_moves
from surco.prior.model import perturbed
from surco.problem import Instance, Problem, ProblemError

__all__ = ["LancerResult", "lancer_zero", "lancer_method", "SETTINGS", "SETTINGS_NOTES"]

#: LANCER's own settings per family name, chosen on train instances only (`SETTINGS_NOTES`);
#: the estimator, optimiser, start and solver come from the family's ``zero_settings``.
SETTINGS: dict[str, dict[str, Any]] = {
    "sharding": dict(descent=0, candidates=16, per_round=2, target_rounds=30, folds=0),
    "photonics": dict(descent=4, candidates=8, per_round=2, folds=4),
}
SETTINGS_NOTES: dict[str, str] = {
    "sharding": (
        "chosen on 5 train-pool DLRM-50 / 4-device tasks (S.generate(5, seed=11, "
        "split='train'), never a test task) by the mean cost relative to each task's start "
        "plan, with the family's SurCo-zero estimator, optimiser and start, f not free "
        "(free_f=False): this setting (16 perturbations a round ranked by the learned "
        "network, no descent, no cross-validated shrinkage) 0.9813 / 0.9766 at 30 / 100 "
        "evaluations (300 not tuned); at 30: with the shrinkage (folds=4) 0.9856, 32 "
        "perturbations 0.9815, descending the network too (descent 10) 0.9907, (descent 10, "
        "sigma 0.05, folds 4) 0.9932, (descent 40, 8 perturbations, folds 4) 0.9911, sigma "
        "0.3 (folds 4) 0.9912, target_rounds=10 (folds 4) 0.9889. The earlier LANCER, which "
        "computed f on every proposed plan without counting it (descent 40 on f∘g_Ω, "
        "correction for ranking only): 0.9387 / 0.9345 / 0.9320 at 30 / 100 / 300. Same "
        "tasks, for reference: SurCo-zero 0.955 / 0.950 / 0.939, annealing 0.984 / 0.955 / "
        "0.937, first-improvement local search 0.977 / 0.966 / 0.947"),
    "photonics": (
        "lancer_zero's defaults, chosen on 3 train-split waveguide bends (generate(3, seed=0, "
        "device='waveguide_bend', split='train'), never a test instance; python -m "
        "bench.families_evals --tune-lancer waveguide_bend) by the mean window loss at 100 "
        "simulations, f not free: these 8133 (at 30: 12613); sharding's setting (16 "
        "perturbations a round, no descent, no shrinkage) 9812 (12363), with sigma 0.3 10603 "
        "(9837), with sigma 0.03 12541 (14555). No setting met the spec on any of the 3; "
        "SurCo-zero on the same instances: 2.19 at 100 (2 of 3 meet the spec), 64.2 at 30. "
        "LANCER sees only the loss of each design it evaluates, not the adjoint gradient "
        "that SurCo-zero's estimator follows, and in a 40 x 40 design space its "
        "perturbations ranked by the learned model find little"),
}

#: `surco.zero` settings with no meaning here (dropped from a family's zero_settings).
_ZERO_ONLY = ("steps", "select", "patience", "target", "time_limit", "progress",
              "no_progress_steps", "executor", "dtype", "oracle", "chunk", "throw")


@dataclasses.dataclass(repr=False)
class LancerResult(MeteredResult):
    """Outcome of `lancer_zero`.

    Attributes:
      x: the best solution evaluated (a solver's answer: in Ω); value: its true cost;
      f: with ``free_f``, the problem's objective f at x; without it, f (the true cost, or
      ranking like it) is never computed, and this is x's true cost as the meter recorded
      it (``value``); c, theta: the surrogate cost that gave x and its
      parameters; params: the landscape model's parameters after the last fit;
      history: per round, ``evaluations`` (the meter's count after it), ``best``, ``fit_loss``
      (mean squared normalised residual after the fit), ``alpha`` (the share of the learned
      correction M uses, chosen by cross-validation), ``pool`` (distinct solutions
      proposed), ``new`` (of them not evaluated before), ``sigma``;
      rounds: rounds completed; evaluations: evaluations this run made (`MeteredResult`);
      stopped: a `surco.outcome.StopReason`: ITERATIONS (all ``rounds`` ran), BUDGET (the
        meter's evaluations or deadline), STALLED, or INTERRUPTED (on the ``.partial`` of a
        Ctrl-C); seconds: wall time.
    """

    f: float = float("nan")
    params: Any = None
    rounds: int = 0


def lancer_zero(problem: Problem, instance: Instance, meter: Meter,
                config: LancerConfig | None = None, zero: ZeroConfig | None = None, /,
                **settings: Any) -> LancerResult:
    """LANCER-zero on one instance (see the module docstring): until the meter's budget
    (evaluations or deadline) is spent, or ``rounds`` rounds.

    Args:
      problem: the `Problem` (Ω, the differentiable objective f used as M's base).
      instance: one instance.
      meter: the `surco.budget.Meter` through which every true cost is evaluated.
      config: LANCER's own settings (`LancerConfig`: rounds, descent, candidates,
        per_round, sigma, patience, landscape network and its fits, correction, initial
        landscape parameters), or None.
      zero: SurCo-zero's `surco.ZeroConfig` for what the descent shares with it: the
        estimator (which differentiates M's x-input) and its hyperparameters, the optimiser
        (which descends θ), ``init`` (θ_0: "random", "zeros", an array or a start rule
        ``instance -> θ0``), init_scale, key, backend and solver_options; its stopping
        fields do not apply (the meter's budget and ``rounds`` end the run).
      **settings: fields of either configuration as keywords, replacing theirs
        (``patience`` is LANCER's).

    Returns:
      A `LancerResult` with the best solution evaluated.

    Raises:
      TypeError: problem or meter of the wrong type.
      ValueError: bad arguments (naming which).
      BudgetExhausted: the budget was spent before the first solution could be evaluated.
      ProblemError: a non-finite objective or gradient.
      InfeasibleError, SolverError, ...: the solver failed (typed).
      KeyboardInterrupt: Ctrl-C; it carries ``.partial`` (the `LancerResult` so far, or
        None before the first evaluation).
    """
    who = "lancer_zero"
    own, rest = split_settings(who, settings, LANCER_FIELDS)
    cfg = dataclasses.replace(config or LancerConfig(), **own)
    zcfg = settings_of(zero, rest, ZeroConfig, who)
    if not isinstance(problem, Problem):
        raise TypeError(f"{who}: problem must be a surco.Problem, got {type(problem).__name__}")
    if not (callable(meter) and hasattr(meter, "batch") and hasattr(meter, "remaining_seconds")):
        raise TypeError(f"{who}: meter must be a surco.budget.Meter (Budget(...).start(f)), "
                        f"got {type(meter).__name__}")
    if cfg.rounds is None and meter.budget.unlimited:
        raise ValueError(f"{who}: rounds=None runs until the meter's budget is spent, but the "
                         "budget is unlimited; give rounds or a Budget with a limit")
    rounds, descent, candidates, per_round = cfg.rounds, cfg.descent, cfg.candidates, cfg.per_round
    sigma, patience, hidden, correction = cfg.sigma, cfg.patience, cfg.hidden, cfg.correction
    fit_steps, fit_lr, folds, window = cfg.fit_steps, cfg.fit_lr, cfg.folds, cfg.window
    landscape, key, init_scale, free = cfg.landscape, zcfg.key, zcfg.init_scale, cfg.free_f
    check_moves(cfg, who)
    init = zcfg.init(instance) if callable(zcfg.init) else zcfg.init
    est = zcfg.make_estimator()
    opt = zcfg.optimizer if zcfg.optimizer is not None else est.default_optimizer(zcfg.lr)
    t_start = time.perf_counter()
    key = resolve_key(key)
    left = meter.remaining_seconds()
    control = RunControl(left if math.isfinite(left) else None, t_start)
    member = build_solver(problem, instance, zcfg.backend, zcfg.solver_options)
    shape = tuple(member.shape)
    problem.check_instance(instance, who=who)
    ys = stack_instances(problem, [instance])
    key, k0, kp = jax.random.split(key, 3)
    theta = np.asarray(initial_theta(init, k0, (1, *shape), jnp.float32, init_scale))
    net = L.LandscapeNet(hidden=tuple(int(w) for w in hidden))
    data = L.Data()
    hist: dict[str, list] = {k: [] for k in ("evaluations", "best", "fit_loss", "alpha", "pool",
                                             "new", "sigma")}
    e0 = meter.evaluations
    best: dict[str, Any] = {}
    params, alpha, stopped, done = None, 1.0, StopReason.ITERATIONS, 0

    def result(stop: str) -> LancerResult | None:
        if not best:
            return None
        # without a free f, f is never computed (on an expensive f, a simulation, that would
        # be an evaluation the meter does not count): x's value is the meter's record
        f = best["f"] if free else best["v"]
        return LancerResult(x=best["x"], value=best["v"], c=best["c"], theta=best["theta"],
                            history=hist, stopped=stop, seconds=time.perf_counter() - t_start,
                            evaluations=meter.evaluations - e0, f=f, params=params,
                            rounds=done)

    def offer(c, th, x, fx, v, scales):
        data.add(c, x, fx, v, scales)
        if not best or v < best["v"]:
            best.update(x=np.array(x, np.float64), v=float(v), f=float(fx),
                        c=np.array(c, np.float64), theta=np.array(th, np.float64))

    prog = None
    try:
        with controlled(control):
            c0 = np.asarray(problem.to_cost(jnp.asarray(theta)), np.float64)[0]
            x0 = member.solve(c0).x
            f0 = _objective(problem, instance, x0, who) if free else math.nan
            try:
                v0 = meter(x0)
            except BudgetExhausted:
                raise BudgetExhausted(f"{who}: the budget ({meter.budget.describe()}) was spent "
                                      "before the first solution could be evaluated") from None
            # M's base: f(x) with a free f, else the start's true cost (a constant)
            scales = L.Scales.of(problem, instance, c0, f0 if free else v0)
            p_start = (landscape if landscape is not None else
                       L.init_params(net, shape, scales.z.shape[1], kp))
            params = p_start
            offer(c0, theta[0], x0, scales.f0, v0, scales)
            Z, SV = scales.z[None], scales.vector()[None]
            prog = program(problem, est, net, [member], ys, Z, control, free)
            opt_state = opt.init(jnp.asarray(theta))
            sig, stall = sigma, 0
            while rounds is None or done < rounds:
                if meter.exhausted:
                    stopped = StopReason.BUDGET
                    break
                pool_c, pool_x, pool_th = [], [], []
                for _ in range(descent):                                  # 1. descend
                    key, k = jax.random.split(key)
                    try:
                        m, fx, x, c, status, g = jax.block_until_ready(prog.vjp(
                            jnp.asarray(theta), params, alpha * correction if free else correction,
                            k if est.needs_key else None, ys, Z, SV))
                    except Exception as exc:
                        raise_stop(control, exc)
                        raise control.error if control.error is not None else exc
                    if control.stop_requested():
                        raise_stop(control, None)
                    raise_for_status(np.asarray(status), member)
                    g = np.asarray(g)
                    if not (np.all(np.isfinite(g)) and np.isfinite(np.asarray(m)).all()):
                        raise ProblemError(f"{who}: problem {problem.name!r}: M or its gradient "
                                           f"is not finite in round {done}")
                    c_np = np.asarray(c, np.float64)[0]
                    x_np = (np.asarray(x, np.float64)[0] if est.forward_is_solution
                            else member.solve(c_np).x)
                    pool_c.append(c_np), pool_x.append(x_np), pool_th.append(theta[0].copy())
                    upd, opt_state = opt.update(jnp.asarray(g), opt_state, jnp.asarray(theta))
                    theta = np.asarray(optax.apply_updates(jnp.asarray(theta), upd))
                if candidates:                                            # 2. explore
                    key, k = jax.random.split(key)
                    TH = perturbed(best["theta"], candidates, sig, k)
                    C = np.asarray(prog.to_cost(jnp.asarray(TH, jnp.float32)), np.float64)
                    if meter.remaining_seconds() <= 0:
                        raise BudgetExhausted("deadline")
                    sols = member.solve_batch(C)
                    pool_c += list(C)
                    pool_x += [s.x for s in sols]
                    pool_th += list(TH)
                X = np.stack(pool_x)
                F = (np.asarray(prog.f_many(jnp.asarray(X, jnp.float32), instance), np.float64)
                     if free else np.full(len(X), scales.f0))
                if not np.all(np.isfinite(F)):
                    raise ProblemError(f"{who}: problem {problem.name!r}: the objective is not "
                                       f"finite at a proposed solution in round {done}")
                pred = np.asarray(prog.predict(params, jnp.asarray(np.stack(pool_c), jnp.float32),
                                               jnp.asarray(X, jnp.float32),
                                               jnp.asarray(F, jnp.float32), scales.z,
                                               scales.vector(), alpha), np.float64)
                new, seen = [], set()                                     # 3. evaluate
                for i in np.argsort(pred, kind="stable"):
                    k_x = X[i].tobytes()
                    if k_x in seen:
                        continue
                    seen.add(k_x)
                    v = meter.cached(X[i])
                    if v is not None:   # already evaluated: a free data point
                        offer(pool_c[i], pool_th[i], X[i], F[i], v, scales)
                    else:
                        new.append(int(i))
                pick = new[:per_round]
                if pick:
                    try:
                        vals = meter.batch(X[pick])
                    except BudgetExhausted:
                        for i in pick:
                            v = meter.cached(X[i])
                            if v is not None:
                                offer(pool_c[i], pool_th[i], X[i], F[i], v, scales)
                        raise
                    for i, v in zip(pick, vals):
                        offer(pool_c[i], pool_th[i], X[i], F[i], v, scales)
                params, losses, alpha = L.fit(net, p_start, data, steps=fit_steps,  # 4. fit
                                              lr=fit_lr, folds=folds, window=window)
                done += 1
                stall = 0 if pick else stall + 1
                sig = sigma if pick else min(2 * sig, 16 * sigma)
                for k_h, v_h in (("evaluations", meter.evaluations), ("best", best["v"]),
                                 ("fit_loss", float(losses[-1])), ("alpha", alpha),
                                 ("pool", len(seen)),
                                 ("new", len(new)), ("sigma", sig)):
                    hist[k_h].append(v_h)
                control.arm()
                if stall >= patience:
                    stopped = StopReason.STALLED
                    break
    except BudgetExhausted:
        if not best:
            raise
        stopped = StopReason.BUDGET
    except KeyboardInterrupt:
        exc = KeyboardInterrupt(f"{who} interrupted after {done} round(s); the best so far is "
                                "in the exception's .partial")
        exc.partial = result(StopReason.INTERRUPTED)
        raise exc from None
    finally:
        if prog is not None:
            prog.release()
    return result(stopped)


def _objective(problem: Problem, instance: Instance, x: np.ndarray, who: str) -> float:
    """f(x) of the start's solution, checked finite."""
    f0 = float(np.asarray(problem.f(jnp.asarray(x, jnp.float32), instance)))
    if not math.isfinite(f0):
        raise ProblemError(f"{who}: problem {problem.name!r}: the objective is {f0} at the "
                           "start's solution")
    return f0


def method_settings(family_or_problem: Family | Problem, overrides: Mapping[str, Any]
              ) -> tuple[Any, dict, int | None]:
    """``(problem_of, settings, target_rounds)``: a family's zero_settings (SurCo-zero's own
    stopping settings dropped), then `SETTINGS` for its name, then ``overrides``."""
    if isinstance(family_or_problem, Family):
        fam = family_or_problem
        kw = {k: v for k, v in dict(fam.zero_settings).items() if k not in _ZERO_ONLY}
        problem_of, kw = fam.problem, {**kw, **SETTINGS.get(fam.name, {}), **dict(overrides)}
    elif isinstance(family_or_problem, Problem):
        prob = family_or_problem
        problem_of, kw = (lambda _y: prob), dict(overrides)
    else:
        raise TypeError(f"lancer_method: expected a surco.Family or a surco.Problem, got "
                        f"{type(family_or_problem).__name__}")
    target = check_int("target_rounds", kw.pop("target_rounds", None), 1, none_ok=True,
                       who="lancer_method")
    return problem_of, kw, target


#: Rounds of a harness run whose budget is unlimited.
UNLIMITED_ROUNDS = 50


def budget_kwargs(settings: Mapping[str, Any], target_rounds: int | None,
                  meter: Meter) -> dict:
    """`lancer_zero` settings for one run on ``meter``: `UNLIMITED_ROUNDS` rounds when its
    budget is unlimited, and ``per_round`` raised to ``ceil((E − 1) / target_rounds)`` under
    an evaluation budget of E left (the evaluations spread over about that many rounds)."""
    kw = dict(settings)
    if meter.budget.unlimited:
        kw.setdefault("rounds", UNLIMITED_ROUNDS)
    if target_rounds is not None and meter.budget.evaluations is not None:
        spread = math.ceil((meter.remaining_evaluations() - 1) / target_rounds)
        kw["per_round"] = max(kw.get("per_round", 2), spread)
    return kw


def lancer_method(family_or_problem: Family | Problem, **settings: Any) -> Method:
    """LANCER-zero as a harness `Method` ``(instance, meter) -> x``.

    Args:
      family_or_problem: a `Family` (its ``problem``; its ``zero_settings`` give the
        estimator, optimiser, start ``init`` (a function ``instance -> θ0`` or "random"),
        solver backend and key, SurCo-zero's own stopping settings dropped; then LANCER's
        `SETTINGS` for the family's name) or a `Problem`.
      settings: keyword arguments of `lancer_zero` replacing those.

    The method runs until the meter's budget is spent (`UNLIMITED_ROUNDS` rounds when it is
    unlimited) and returns the best solution evaluated; the start's solution when the
    budget ended before it could be evaluated. The setting ``target_rounds`` (an integer,
    or None) spreads an evaluation budget E over about that many rounds: ``per_round`` is
    raised to ``ceil((E − 1) / target_rounds)`` when that is larger.

    Raises:
      TypeError: family_or_problem is neither, or an unknown setting (named, with the
        closest valid one).
    """
    problem_of, kw0, target = method_settings(family_or_problem, settings)
    # checked once, here: TypeError naming a misspelt setting, ValueError a bad value
    own, rest = split_settings("surco.lancer.lancer_method", kw0, LANCER_FIELDS)
    check_moves(LancerConfig(**own), "surco.lancer.lancer_method")
    zcfg = ZeroConfig.of("surco.lancer.lancer_method", **rest)

    def method(instance: Instance, meter: Meter) -> np.ndarray:
        init = zcfg.init(instance) if callable(zcfg.init) else zcfg.init
        try:
            return lancer_zero(problem_of(instance), instance, meter, None, zcfg, init=init,
                               **budget_kwargs(own, target, meter)).x
        except BudgetExhausted:
            if meter.best_x is not None:
                return meter.best_x
            problem = problem_of(instance)
            start = "zeros" if "init" not in rest else init
            th = np.zeros(problem.x_shape(instance)) if isinstance(start, str) else start
            c = np.asarray(problem.to_cost(jnp.asarray(th, jnp.float32)), np.float64)
            return build_solver(problem, instance, zcfg.backend,
                                zcfg.solver_options).solve(c).x
    method.__doc__ = "LANCER-zero (surco.lancer.lancer_zero) on the meter's budget."
    return method
