"""LANCER over a cost predictor (Zharmagambetov et al., NeurIPS 2023, Alg. 1, the paper's
setting): a network c = h_θ(features(y)) trained on a set of instances by alternating

1. *collect*: for every train instance, solve at the predictor's cost (and ``candidates``
   perturbations of it) and evaluate the true cost of each solution;
2. *fit* the landscape model M_w (`surco.lancer.landscape`) on all points collected;
3. *descend*: ``descent`` Adam steps on θ down ``mean_y M_w(h_θ(y), y)`` (M's dependence on
   x = g_Ω(c) through SurCo's estimator, as in `surco.lancer.zero`).

Every solution collected is evaluated (``train_evaluations``); the descent's are not. So,
as in `surco.lancer.zero`, f is looked at only where the setting ``free_f`` allows: by
default (f is, or ranks like, the true cost) never on a descent step's solution (M's base
is each instance's first true cost and the descent follows the learned network alone);
with ``free_f=True`` (f a free proxy of the true cost) M = f + correction everywhere.

The predictor is a SurCo-prior network (`surco.prior.init`): with the family's start cost
(``zero_settings["init"]``, a function instance -> θ0) as a residual base and an output
layer at zero, the untrained predictor returns the family's start, and training keeps the
parameters whose solutions had the lowest mean true cost on the train instances (the
untrained ones included). At test time `LancerModel` is either used directly (one forward
pass and one solve) or refines per instance by `lancer_zero` from its cost with its
landscape model; only the test instance's evaluations count there.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import RunControl, build_solver, controlled, resolve_key, stack_instances
from surco.checks import check_int, check_number
from surco.budget import Meter
from surco.estimators import raise_for_status
from surco.family import Family, Method
from surco.lancer import landscape as L
from surco.lancer._program import program, raise_stop
from surco.config import split_settings
from surco.lancer.config import LANCER_FIELDS, LancerConfig, estimator_kwargs
from surco.lancer.zero import budget_kwargs, lancer_zero, method_settings
from surco.prior.model import PriorModel, perturbed
from surco.prior.training import init as prior_init
from surco.problem import Instance, Problem, ProblemError

__all__ = ["LancerModel", "train"]


@dataclasses.dataclass(repr=False)
class LancerModel:
    """A trained LANCER predictor and its landscape model.

    Attributes:
      prior: the cost predictor (a `surco.prior.PriorModel`, its ``params`` the best found).
      params, hidden: the landscape network's parameters and widths.
      settings: `lancer_zero` settings used when refining (estimator, optimiser, ...).
      history: per collection pass, ``train_value`` (mean true cost of the predictor's
        solutions on the train instances), ``fit_loss``, ``alpha`` (the shrinkage applied
        to the landscape's correction, `landscape.fit`) and ``evaluations`` (so far).
      train_evaluations: true-cost evaluations spent in training (not counted at test time).
      problem_of: ``instance -> Problem``; target_rounds: as in `lancer_method`.
    """

    prior: PriorModel
    params: Any
    hidden: tuple[int, ...]
    settings: dict
    history: dict
    train_evaluations: int
    problem_of: Any
    target_rounds: int | None = None

    def __repr__(self) -> str:
        best = min(self.history["train_value"]) if self.history["train_value"] else math.nan
        return (f"LancerModel(problem={self.prior.problem.name!r}, passes="
                f"{len(self.history['train_value'])}, best_train_value={best:.6g}, "
                f"train_evaluations={self.train_evaluations})")

    def theta(self, instance: Instance) -> np.ndarray:
        """The predicted surrogate parameters θ = h(features(y)) (+ base)."""
        return np.asarray(self.prior.theta(instance), np.float64)

    def method(self, refine: bool = True, **overrides: Any) -> Method:
        """A harness `Method`: ``refine=False`` returns the predictor's solution (one solve,
        no evaluation); ``refine=True`` runs `lancer_zero` from the predicted cost with the
        trained landscape model on the meter's budget (``overrides``: its settings)."""
        kw0 = {k: v for k, v in {**self.settings, **overrides}.items()
               if k not in ("init", "landscape")}
        kw0["hidden"] = self.hidden
        split_settings("LancerModel.method", kw0, LANCER_FIELDS, drop=("init", "landscape"))

        def direct(instance: Instance, meter: Meter) -> np.ndarray:
            return np.asarray(self.prior.predict(instance).x)

        def refined(instance: Instance, meter: Meter) -> np.ndarray:
            kw = budget_kwargs(kw0, self.target_rounds, meter)
            return lancer_zero(self.problem_of(instance), instance, meter,
                               init=self.theta(instance), landscape=self.params, **kw).x
        return refined if refine else direct

    def methods(self) -> dict[str, Method]:
        """``{"lancer-prior": direct, "lancer-prior-refine": refined}`` for `surco.compare`."""
        return {"lancer-prior": self.method(False), "lancer-prior-refine": self.method(True)}


#: `train`'s own LANCER settings (exploration and landscape fits) unless a configuration
#: is given: 5 descent steps and 2 perturbations per instance and pass.
TRAIN_CONFIG = LancerConfig(descent=5, candidates=2)
#: the keywords of `train` that set its `LancerConfig` (``landscape_hidden``: its ``hidden``)
_TRAINING = ("descent", "candidates", "sigma", "landscape_hidden", "fit_steps", "fit_lr",
             "folds")


def train(family_or_problem: Family | Problem, train_instances: Sequence[Instance],
          config: LancerConfig | None = None, /, *, epochs: int = 10,
          hidden: tuple[int, ...] = (64, 64), net_lr: float = 1e-3,
          key: jax.Array | int | None = 0, progress: bool = False,
          **settings: Any) -> LancerModel:
    """Train LANCER's predictor on ``train_instances`` (see the module docstring).

    Args:
      family_or_problem: a `Family` (its problem, its true cost ``evaluate``, and its
        ``zero_settings``: estimator, start ``init`` as the residual base, backend) or a
        `Problem` (true cost: its ``evaluate``, else f).
      train_instances: a list of instances of equal shapes (solved as one stack).
      config: the training's `LancerConfig` (default `TRAIN_CONFIG`): ``descent`` (Adam
        steps on θ per epoch, each one batched solve over the instances), ``candidates``
        (perturbed costs per instance per collection pass, >= 0) and ``sigma`` (their
        relative size), ``hidden``, ``fit_steps``, ``fit_lr``, ``folds`` (the landscape
        network and its fits, each from the initial parameters on every point so far;
        ``folds`` as in `landscape.fit`: the shrinkage it chooses scales the model's
        correction). Keywords ``descent``, ``candidates``, ``sigma``, ``fit_steps``,
        ``fit_lr``, ``folds`` and ``landscape_hidden`` (its ``hidden``) replace its fields.
      epochs: collect–fit–descend rounds (a last collection pass scores the final θ).
      hidden, net_lr: the predictor network's widths and Adam learning rate.
      key: PRNG key or seed. progress: print one line per epoch.
      settings: `lancer_zero` settings (estimator and its hyperparameters, init, backend,
        solver_options, ``free_f``, ...), kept for refinement at test time; ``free_f`` and
        ``correction`` also apply to the training's descent.

    Returns:
      A `LancerModel` holding the predictor parameters with the lowest mean true cost.

    Raises:
      TypeError: family_or_problem of the wrong type, an unknown setting (named).
      ValueError: bad arguments, no instances, instances of different shapes.
      KeyboardInterrupt: Ctrl-C; ``.partial`` holds the `LancerModel` so far (None before
        the first collection pass).
    """
    from surco.estimators import get_estimator
    who = "surco.lancer.train"
    training = {k: settings.pop(k) for k in _TRAINING if k in settings}
    if "landscape_hidden" in training:
        training["hidden"] = training.pop("landscape_hidden")
    cfg = dataclasses.replace(config or TRAIN_CONFIG, **training)
    descent, candidates, sigma = cfg.descent, cfg.candidates, cfg.sigma
    landscape_hidden, fit_steps, fit_lr, folds = cfg.hidden, cfg.fit_steps, cfg.fit_lr, cfg.folds
    problem_of, kw, target = method_settings(family_or_problem, settings)
    # f a free proxy of the cost?
    free = LancerConfig(**split_settings(who, kw, LANCER_FIELDS)[0]).free_f
    if not isinstance(train_instances, (list, tuple)) or not train_instances:
        raise ValueError(f"{who}: train_instances must be a non-empty list of instances")
    ys_list = list(train_instances)
    epochs = check_int("epochs", epochs, 0, who=who)
    net_lr = check_number("net_lr", net_lr, who=who)
    correction = float(kw.get("correction", 1.0))   # as lancer_zero's, for the descent
    problem = problem_of(ys_list[0])
    shapes = {tuple(problem.x_shape(y)) for y in ys_list}
    if len(shapes) != 1:
        raise ValueError(f"{who}: train instances must share one x shape, got {sorted(shapes)}")
    truth = (family_or_problem.evaluate if isinstance(family_or_problem, Family)
             else problem.evaluate or (lambda x, y: float(problem.f(jnp.asarray(x), y))))
    init = kw.get("init")
    base = init if callable(init) else None
    key = resolve_key(key)
    key, kp, kl = jax.random.split(key, 3)
    backend, opts = kw.get("backend"), kw.get("solver_options")
    shape = shapes.pop()
    prior = prior_init(
        problem, ys_list, hidden=tuple(hidden), base=base, key=kp, backend=backend,
        solver_options=opts)
    feats = jnp.stack([(problem.features_of(y) - prior.feat_mean) / prior.feat_std
                       for y in ys_list])
    bases = (jnp.asarray(np.stack([prior.base_theta(y) for y in ys_list]), jnp.float32)
             if base else None)
    out = (len(ys_list), *shape)

    @jax.jit
    def thetas(p):
        th = jax.vmap(lambda z: prior.module.apply(p, z))(feats).reshape(out)
        return th if bases is None else th + bases
    est = get_estimator(kw.get("estimator", "blackbox"), **estimator_kwargs(kw))
    members = [build_solver(problem, y, backend, opts) for y in ys_list]
    ys = stack_instances(problem, ys_list)
    net = L.LandscapeNet(hidden=tuple(int(w) for w in landscape_hidden))
    f_many = jax.jit(jax.vmap(problem.f, in_axes=(0, None)))
    data, hist = L.Data(), {"train_value": [], "fit_loss": [], "alpha": [], "evaluations": []}
    opt = optax.adam(net_lr)
    params, opt_state = prior.params, opt.init(prior.params)
    best_p, best_v, n_eval = params, math.inf, 0
    scales: list = []
    lparams, p_start, prog = None, None, None
    control = RunControl()

    def model() -> LancerModel | None:
        if lparams is None:
            return None
        return LancerModel(dataclasses.replace(prior, params=best_p), lparams,
                           tuple(net.hidden), dict(kw), hist, n_eval, problem_of, target)

    t0 = time.perf_counter()
    try:
        with controlled(control):
            for epoch in range(epochs + 1):
                TH = np.asarray(thetas(params), np.float64)             # 1. collect
                vals = []
                for i, (y, mem) in enumerate(zip(ys_list, members)):
                    key, k = jax.random.split(key)
                    th_i = np.concatenate([TH[i][None], perturbed(TH[i], candidates, sigma, k)])
                    C = np.asarray(jax.vmap(problem.to_cost)(jnp.asarray(th_i, jnp.float32)),
                                   np.float64)
                    X = np.stack([s.x for s in mem.solve_batch(C)])
                    V = [float(truth(x, y)) for x in X]   # every collected x is evaluated
                    n_eval += len(V)
                    vals.append(V[0])
                    if free:
                        F = np.asarray(f_many(jnp.asarray(X, jnp.float32), y), np.float64)
                        if not np.all(np.isfinite(F)):
                            raise ProblemError(f"{who}: the objective is not finite on train "
                                               f"instance {i}")
                    if not scales or len(scales) <= i:   # M's base: f, or the first true cost
                        scales.append(L.Scales.of(problem, y, C[0], F[0] if free else V[0]))
                    for c, x, fx, v in zip(C, X, F if free else [scales[i].f0] * len(X), V):
                        data.add(c, x, fx, v, scales[i])
                if lparams is None:
                    lparams = L.init_params(net, shape, scales[0].z.shape[1], kl)
                mean_v = float(np.mean(vals))
                if mean_v < best_v:
                    best_p, best_v = params, mean_v
                p_start = lparams if p_start is None else p_start
                lparams, losses, alpha = L.fit(net, p_start, data, steps=fit_steps,  # 2. fit
                                               lr=fit_lr, folds=folds)
                lparams = L.shrink(lparams, alpha)
                for k_h, v_h in (("train_value", mean_v), ("fit_loss", float(losses[-1])),
                                 ("alpha", alpha),
                                 ("evaluations", n_eval)):
                    hist[k_h].append(v_h)
                if progress:
                    print(f"{who}: pass {epoch}: mean true cost {mean_v:.6g}, fit loss "
                          f"{losses[-1]:.4g}, {time.perf_counter() - t0:.1f} s", flush=True)
                if epoch == epochs:
                    break
                Z = jnp.stack([s.z for s in scales])
                SV = jnp.stack([s.vector() for s in scales])
                prog = prog or program(problem, est, net, members, ys, np.asarray(Z), control,
                                       free)
                for _ in range(descent):                                  # 3. descend
                    key, k = jax.random.split(key)
                    th, vjp_th = jax.vjp(thetas, params)
                    try:
                        m, fx, x, c, status, g = jax.block_until_ready(prog.vjp(
                            th, lparams, correction, k if est.needs_key else None, ys, Z, SV))
                    except Exception as exc:
                        raise_stop(control, exc)
                        raise control.error if control.error is not None else exc
                    raise_for_status(np.asarray(status), members[0])
                    if not np.all(np.isfinite(np.asarray(g))):
                        raise ProblemError(f"{who}: the gradient of M is not finite (epoch "
                                           f"{epoch})")
                    gp = vjp_th(g / len(ys_list))[0]
                    upd, opt_state = opt.update(gp, opt_state, params)
                    params = optax.apply_updates(params, upd)
    except KeyboardInterrupt:
        exc = KeyboardInterrupt(f"{who} interrupted after {len(hist['train_value'])} "
                                "collection pass(es); the model so far is in .partial")
        exc.partial = model()
        raise exc from None
    finally:
        if prog is not None:
            prog.release()
    return model()
