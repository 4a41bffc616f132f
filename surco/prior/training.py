"""`train`: SurCo-prior's training loop (Ferber et al., ICML 2023, §3.2, Eq. 7)

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero: each minibatch is one batched
solve and one gradient step; no optimal solutions are needed.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (Metered, RunControl, SolverSlot, batched_objective, check_finite,
                           controlled, is_interrupt, resolve_key, stack_instances, stack_solvers)
from surco.checks import check_instances
from surco.config import TrainConfig, settings_of
from surco.prior.checkpoint import TrainingCheckpoint
from surco.prior.data import InstanceData, distill_targets, minibatches
from surco.prior.model import PriorModel
from surco.prior.networks import CostNet, SetCostNet
from surco.prior.specs import module_spec
from surco.problem import Instance, Problem, ProblemError
from surco.results import TrainHistory
from surco.solvers import Solution, Status


def train(problem: Problem, train_instances: Sequence[Instance],
          config: TrainConfig | None = None, /, *,
          val_instances: Sequence[Instance] | None = None, distill: Sequence[Any] | None = None,
          **settings: Any) -> PriorModel:
    """Train SurCo-prior (Ferber et al. 2023, Eq. 7) over a set of instances.

    The loss of a minibatch is the end-to-end term ``Σ_y f(g_Ω(ĉ(y)), y)`` (through the
    estimator; ``end_to_end=False`` drops it), plus, with ``distill``, a supervised
    *distillation* term ``distill_weight · Σ_y mean((θ̂(y) − θ*(y))²)`` towards target
    surrogate parameters θ*, e.g. SurCo-zero's on the training instances
    (`surco.prior.zero_targets`), as in learning to optimise from solved instances
    (knowledge distillation, Hinton et al. 2015); alone it needs no solve per step.

    Each minibatch is one batched solve (a stack of the instances' solvers, built once per
    instance) and one gradient step on the summed objective; the step is compiled once per
    minibatch size and instance shape. A minibatch holds instances that stack (equal x shape,
    pytree structure and leaf shapes: `surco.prior.model.batch_key`); instances that do not
    are trained in separate minibatches.

    Args:
      problem: a `Problem` with ``features``: one vector ``(F,)`` per instance (the network
        maps it to the whole x), or one row per row of x, ``(R, F)`` (the network maps each
        row; instances may then have different numbers of rows R, and the features are
        normalised per column over all rows, so the model serves any R).
      train_instances, val_instances: lists or tuples of instances. Early stopping and the
        returned parameters use the validation mean objective of the solver's solutions (the
        training objective when there is no validation set).
      config: a `surco.TrainConfig` (network, estimator, epochs, batch size, optimiser,
        patience, key, checkpoint folder, solver, residual base, distillation weight,
        ``throw``), or None.
      distill: one target per training instance, in the order of ``train_instances``:
        an array of surrogate parameters θ* shaped like x, or a `ZeroResult` (its
        ``theta``). None: no distillation term.
      **settings: `TrainConfig` fields as keywords (and the estimator's hyperparameters),
        replacing ``config``'s. A training started with a ``checkpoint_dir`` that holds a
        checkpoint resumes from it (warning when ``epochs`` is below the epochs it already
        completed). A ``base`` (residual prior ``θ_base + network``) starts the default
        network's output layer at zero, so the untrained prior reproduces the heuristic's
        solution; it is saved by its import path, so it must be a module-level function.

    Returns:
      A `PriorModel` holding the best parameters (by validation f; when distilling, a later
      epoch of equal f replaces an earlier one; with a ``base``, the untrained parameters,
      i.e. the heuristic, compete too: ``history.best_epoch`` is then -1 if no epoch beat
      it) and the `TrainHistory`. The training
      curve ``train_f`` is the mean objective of the solver's answers (not the loss) when
      distilling or with an estimator whose forward pass is not a solution.

    Raises:
      ValueError: bad arguments (each message names the argument), instance data holding
        NaN or inf (naming ``train_instances[i]`` or ``val_instances[i]``, the leaf's path,
        the first bad index and its value), or a checkpoint of another training in
        ``checkpoint_dir``.
      TypeError: a keyword that is neither a parameter of `train` nor a hyperparameter of
        the estimator (with the closest valid name).
      ProblemError: an instance that does not fit Ω or an objective that cannot be traced
        (e.g. written with NumPy), features of the wrong shape, a non-finite objective.
      InfeasibleError, UnboundedError, SolverTimeout, SolverError: a solve failed during
        training (typed, raised once).
      KeyboardInterrupt: Ctrl-C (wherever it landed: a solve, JAX, this loop); the pending
        solves of the step are skipped.
      Any exception a solver or the objective raised, as it is.
      In all these cases the checkpoint in ``checkpoint_dir`` is the last completed epoch
      (resume by calling `train` again), and the exception carries ``partial``: the
      `PriorModel` of the best epoch so far, with its history (None when no epoch had
      completed). With ``throw=False`` that partial model is returned instead (the
      exception in ``history.error``), unless no epoch had completed.

    >>> import surco
    >>> from surco.problems import assignment as A
    >>> problem, ys = A.make_problem(4, 2), A.generate(6, seed=0, n=4, m=2)
    >>> prior = surco.prior.train(problem, ys[:4], val_instances=ys[4:], epochs=2,
    ...                           batch_size=2, hidden=(8,), lam=10.0, key=0)
    >>> len(prior.history.train_f), prior.predict(ys[5]).x.shape
    (2, (4, 2))
    >>> cfg = surco.TrainConfig(epochs=2, batch_size=2, hidden=(8,), key=0,
    ...                         estimator_options={"lam": 10.0})   # the same, configured
    >>> again = surco.prior.train(problem, ys[:4], cfg, val_instances=ys[4:])
    >>> again.history.val_f == prior.history.val_f
    True
    """
    cfg = settings_of(config, settings, TrainConfig, "surco.prior.train")
    try:
        return _train(problem, train_instances, val_instances, distill, cfg)
    except Exception as exc:
        partial = getattr(exc, "partial", None)
        if cfg.throw or partial is None:
            raise
        partial.history.error = exc
        return partial


def _train(problem: Problem, train_instances: Sequence[Instance],
           val_instances: Sequence[Instance] | None, distill: Sequence[Any] | None,
           cfg: TrainConfig) -> PriorModel:
    """`train`'s body, over its checked configuration."""
    model, hidden, epochs, batch_size = cfg.model, cfg.hidden, cfg.epochs, cfg.batch_size
    patience, key, checkpoint_dir, progress = cfg.patience, cfg.key, cfg.checkpoint_dir, cfg.progress
    backend, solver_options, executor = cfg.backend, cfg.solver_options, cfg.executor
    base, distill_weight, end_to_end = cfg.base, cfg.distill_weight, cfg.end_to_end
    if not isinstance(problem, Problem):
        raise TypeError(f"prior.train: problem must be a surco.Problem, got "
                        f"{type(problem).__name__}")
    train_instances = _instance_list(train_instances, "train_instances")
    val_instances = _instance_list([] if val_instances is None else val_instances,
                                   "val_instances")
    if not train_instances:
        raise ValueError("prior.train: no training instances")
    for arg, ys in (("train_instances", train_instances), ("val_instances", val_instances)):
        check_instances(problem, ys, jnp.float32, "surco.prior.train", arg=arg)
    batch_size = min(batch_size, len(train_instances))
    est = cfg.make_estimator()
    key = resolve_key(key)
    if not end_to_end and distill is None:
        raise ValueError("prior.train: end_to_end=False leaves no loss; pass distill= "
                         "(targets per training instance)")
    key, kinit = jax.random.split(key)
    prior, tr = _initial(problem, train_instances, model, hidden, base, kinit, est.name,
                         backend, solver_options)
    va = InstanceData(problem, val_instances, "val_instances", backend, solver_options,
               like=tr, base=base) if val_instances else None
    targets = (distill_targets(distill, tr) if distill is not None
               else [np.zeros(s, np.float32) for s in tr.x_shapes])
    module, params, fshape0 = prior.module, prior.params, prior.feature_shape
    opt = cfg.optimizer if cfg.optimizer is not None else optax.adam(cfg.lr)
    opt_state = opt.init(params)

    fvec = batched_objective(problem)
    theta_b = jax.vmap(prior._theta_from_feats, in_axes=(None, 0))
    control = RunControl()
    slots: dict[tuple, SolverSlot] = {}
    steps: dict[tuple, Any] = {}

    def step_for(idx: Sequence[int]):
        """The compiled step for a minibatch, its slot loaded with the minibatch's solvers."""
        sig = (len(idx), tr.x_shapes[idx[0]])
        if sig not in slots:
            slots[sig] = SolverSlot([tr.solvers[j] for j in idx], executor=executor)
            slot = Metered(slots[sig], control)

            def loss(p, feats, bs, ts, ys, k):
                # The sum, not the mean: estimators such as blackbox interpolation read the
                # scale of dL/dx (their λ is relative to it), so it must not shrink with B.
                th = theta_b(p, feats) + bs
                total = jnp.zeros((), th.dtype)
                status = jnp.zeros(th.shape[0], jnp.int32)
                if end_to_end:
                    x, status = est(slot, problem.to_cost(th), k, return_status=True)
                    total = fvec(x, ys).sum()
                if distill is not None:
                    axes = tuple(range(1, th.ndim))
                    total = total + distill_weight * jnp.sum(jnp.mean((th - ts) ** 2, axis=axes))
                return total, status

            @jax.jit
            def step(p, s, feats, bs, ts, ys, k):
                (val, status), g = jax.value_and_grad(loss, has_aux=True)(p, feats, bs, ts,
                                                                         ys, k)
                upd, s = opt.update(g, s, p)
                return optax.apply_updates(p, upd), s, val, status
            steps[sig] = step
        slots[sig].load([tr.solvers[j] for j in idx])
        return steps[sig]

    cost_b = jax.jit(lambda p, feats, bs: problem.to_cost(theta_b(p, feats) + bs))
    f_b = jax.jit(fvec)

    def mean_hard_f(p, data: InstanceData) -> float:
        """Mean objective of the solver's answers at the network's costs (no estimator)."""
        vals = []
        for group in data.groups:
            for i in range(0, len(group), batch_size):
                idx = group[i:i + batch_size]
                C = np.asarray(cost_b(p, np.stack([data.feats[j] for j in idx]),
                                      np.stack([data.bases[j] for j in idx])), np.float64)
                sol = stack_solvers([data.solvers[j] for j in idx], executor, control).solve(
                    C, check=False)
                _check_solves(control, sol.stats.get("member_status", [int(sol.status)]),
                              problem.name, f"{data.arg}, epoch {len(state['train_f'])}")
                X = sol.x
                fv = np.asarray(f_b(jnp.asarray(X, jnp.float32),
                                    stack_instances(problem, [data.instances[j] for j in idx])))
                check_finite(problem, fv, "in validation")
                vals.append(fv)
        return float(np.concatenate(vals).mean())

    # -- resume ----------------------------------------------------------------------------
    state = {"params": params, "opt_state": opt_state, "best_params": params,
             "key": np.asarray(jax.random.key_data(key)), "epoch": -1, "best_val": math.inf,
             "stall": 0, "train_f": [], "val_f": [], "seconds": [], "best_epoch": 0}
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = TrainingCheckpoint(checkpoint_dir, {
            "problem": problem.name, "x_shape": list(tr.x_shapes[0]), "features": list(fshape0),
            "n_train": len(train_instances), "estimator": est.name,
            "module": module_spec(module, strict=False),
            "base": getattr(base, "__qualname__", None if base is None else repr(base)),
            "distill": distill is not None, "end_to_end": end_to_end,
            "x_shapes": sorted(list(s) for s in set(tr.x_shapes))})
        if ckpt.exists():
            state = ckpt.restore(state)
    done = state["epoch"] + 1
    if done > epochs:
        warnings.warn(f"prior.train: the checkpoint in {checkpoint_dir} has {done} completed "
                      f"epochs, more than epochs={epochs}; nothing to train: returning its best "
                      f"model (pass epochs > {done} to train on)", stacklevel=2)
    stopped = done > 0 and patience is not None and state["stall"] >= patience
    params, opt_state = state["params"], state["opt_state"]
    key = jax.random.wrap_key_data(jnp.asarray(state["key"]))

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=min(done, epochs), desc=f"SurCo-prior[{problem.name}]",
                   leave=False)
    t0 = time.perf_counter() - (state["seconds"][-1] if state["seconds"] else 0.0)
    relaxed = not est.forward_is_solution or distill is not None
    saved = done  # completed epochs in the checkpoint on disk
    epoch = done
    try:
        with controlled(control):
            if base is not None and done == 0 and not stopped:
                # a residual prior starts at its heuristic: that is the model to beat, so
                # the untrained parameters are the first candidate (best_epoch -1)
                state.update(best_val=mean_hard_f(params, va if va is not None else tr),
                             best_params=params, best_epoch=-1)
            for epoch in range(done, epochs if not stopped else done):
                key, kperm = jax.random.split(key)
                order = np.asarray(jax.random.permutation(kperm, len(train_instances)))
                losses = []
                for idx in minibatches(order, tr.keys, batch_size):
                    key, k = jax.random.split(key)
                    step = step_for(idx)
                    try:
                        params, opt_state, val, status = jax.block_until_ready(step(
                            params, opt_state, jnp.asarray(np.stack([tr.feats[j] for j in idx])),
                            jnp.asarray(np.stack([tr.bases[j] for j in idx])),
                            jnp.asarray(np.stack([targets[j] for j in idx])),
                            stack_instances(problem, [tr.instances[j] for j in idx]),
                            k if est.needs_key else None))
                    except Exception as exc:  # raised inside a solver callback
                        if control.reason is not None or is_interrupt(exc):
                            raise KeyboardInterrupt from None
                        # a failed solve (NaN x) makes later solves of the step fail on a
                        # NaN cost: raise the first failure, typed
                        _check_solves(control, None, problem.name, f"training, epoch {epoch}")
                        raise
                    _check_solves(control, status, problem.name, f"training, epoch {epoch}")
                    val = float(val)
                    if not math.isfinite(val):
                        raise ProblemError(f"Problem {problem.name!r}: non-finite training "
                                           f"objective ({val}) at epoch {epoch}")
                    losses.append(val)
                train_f = (mean_hard_f(params, tr) if relaxed
                           else float(np.sum(losses) / len(order)))
                val_f = mean_hard_f(params, va) if va is not None else train_f
                state["train_f"].append(train_f)
                state["val_f"].append(val_f if va is not None else None)
                state["seconds"].append(time.perf_counter() - t0)
                if val_f < state["best_val"]:
                    state.update(best_val=val_f, best_params=params, best_epoch=epoch, stall=0)
                else:
                    state["stall"] += 1
                    if distill is not None and val_f == state["best_val"]:
                        # a tie in f: the later epoch is closer to the targets
                        state.update(best_params=params, best_epoch=epoch)
                state.update(params=params, opt_state=opt_state, epoch=epoch,
                             key=np.asarray(jax.random.key_data(key)))
                if ckpt is not None:
                    ckpt.save(state)
                    saved = epoch + 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(train=f"{train_f:.5g}", val=f"{val_f:.5g}")
                if patience is not None and state["stall"] >= patience:
                    stopped = True
                    break
    except BaseException as exc:
        partial = _finish(prior, state, stopped=False) if state["train_f"] else None
        if not (is_interrupt(exc) or control.reason == "interrupted"):
            try:
                exc.partial = partial
            except (AttributeError, TypeError):  # an exception type without attributes
                pass
            raise
        where = (f"; the checkpoint in {ckpt.dir} holds {saved} completed epoch(s)"
                 if ckpt is not None else "")
        interrupt = KeyboardInterrupt(
            f"surco.prior.train interrupted in epoch {epoch} after "
            f"{len(state['train_f'])} completed epoch(s){where}; the best model so far is in "
            f"the exception's .partial" + ("" if partial is not None else " (None: no epoch "
                                           "had completed)"))
        interrupt.partial = partial
        raise interrupt from None
    finally:
        if bar is not None:
            bar.close()
    return _finish(prior, state, stopped=stopped)


def init(problem: Problem, instances: Sequence[Instance], *, model: nn.Module | None = None,
         hidden: tuple[int, ...] = (64, 64), base: Callable[[Instance], Any] | None = None,
         key: jax.Array | int | None = None, backend: str | None = None,
         solver_options: dict[str, Any] | None = None) -> PriorModel:
    """An untrained SurCo-prior: the feature normalisation of ``instances`` and the
    network's initial parameters, exactly as `train` starts (same ``key``, same network).
    With a ``base`` and the default network, its output layer is zero, so the prior's θ is
    the base's and its prediction is the heuristic's solution.

    Args: as `train` (``instances`` are the training instances).

    Returns:
      A `PriorModel` without history (``estimator`` "untrained").

    Raises:
      ValueError, TypeError: bad arguments, instance data holding NaN or inf;
      ProblemError: unusable features.
    """
    instances = _instance_list(instances, "instances")
    if not instances:
        raise ValueError("prior.init: no instances")
    check_instances(problem, instances, jnp.float32, "surco.prior.init", arg="instances",
                    trace=False)
    hidden = TrainConfig(model=model, hidden=hidden, base=base).hidden  # checked, as train's
    _, kinit = jax.random.split(resolve_key(key))
    prior, _ = _initial(problem, instances, model, hidden, base, kinit, "untrained", backend,
                        solver_options)
    return prior


def _initial(problem: Problem, instances: list, model: nn.Module | None, hidden: tuple,
             base, kinit: jax.Array, estimator: str, backend: str,
             solver_options: dict | None) -> tuple[PriorModel, "InstanceData"]:
    """The untrained `PriorModel` and the training data (`init` and `train` share it)."""
    if base is not None and not callable(base):
        raise TypeError(f"prior.train: base must be a function instance -> θ (x's shape), got "
                        f"{type(base).__name__}")
    tr = InstanceData(problem, instances, "train_instances", backend, solver_options, base=base)
    rows = np.concatenate([f.reshape(-1, tr.n_features) for f in tr.feats])
    feat_mean = rows.mean(axis=0).astype(np.float32)
    std = rows.std(axis=0)
    # a column constant over the training rows is only centred: dividing by ~0 would turn
    # another value at prediction into a huge input
    feat_std = np.where(std > 1e-6, std + 1e-6, 1.0).astype(np.float32)
    out = int(np.prod(tr.out_shape))
    module = model if model is not None else CostNet(out=out, hidden=hidden)
    if getattr(module, "out", 0) is None:
        module = module.clone(out=out)
    fshape0 = tr.feats[0].shape
    params = module.init(kinit, jnp.zeros(fshape0, jnp.float32))
    got = jax.eval_shape(module.apply, params, jnp.zeros(fshape0, jnp.float32))
    if math.prod(got.shape) != math.prod(tr.x_shapes[0]):
        raise ValueError(f"prior.train: model {type(module).__name__} returns shape "
                         f"{tuple(got.shape)} for features {fshape0}; expected "
                         f"{math.prod(tr.x_shapes[0])} entries (x has shape {tr.x_shapes[0]})")
    if base is not None and type(module) in (CostNet, SetCostNet):
        params = zero_output_layer(params)
    prior = PriorModel(problem=problem, module=module, params=params, feat_mean=feat_mean,
                       feat_std=feat_std, out_shape=tr.out_shape, per_row=tr.per_row,
                       feature_shape=fshape0, estimator=estimator, backend=backend,
                       solver_options=solver_options, base=base)
    return prior, tr


def zero_output_layer(params: Any) -> Any:
    """``params`` of `CostNet` / `SetCostNet` with the output layer (the last ``Dense_i``)
    set to zero: the network then returns zeros, and a residual prior its base."""
    inner = dict(params["params"])
    last = max((k for k in inner if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    inner[last] = jax.tree.map(jnp.zeros_like, inner[last])
    return {**params, "params": inner}


def _check_solves(control: RunControl, status: Any, name: str, where: str) -> None:
    """Raise what stopped the solves of a step: a Ctrl-C (`KeyboardInterrupt`), the exception
    a solver raised (as it is), or a failed solve (the solver layer's typed error: status
    codes per solve in ``status``, or None when unknown, and the stats of the first failure,
    also from the backward pass's solves, in ``control.failure``)."""
    if control.stop_requested():
        raise KeyboardInterrupt
    if control.error is not None:
        raise control.error
    status = np.atleast_1d(np.asarray([] if status is None else status))
    bad = np.flatnonzero(status > Status.FEASIBLE)
    if bad.size or control.failure is not None:
        stats = {k: v for k, v in (control.failure or {}).items() if k in ("timeout", "time_limit")}
        stats["detail"] = (f"{where}: {bad.size} of {status.size} solves failed" if bad.size
                           else f"{where}: a solve failed")
        code = Status(int(status[bad[0]])) if bad.size else Status.ERROR
        Solution(x=np.zeros(0), objective=math.nan, status=code,
                 stats=stats).raise_for_status(name)


def _finish(prior: PriorModel, state: dict, *, stopped: bool) -> PriorModel:
    """``prior`` with the best parameters and the history in ``state`` (a copy)."""
    history = TrainHistory(train_f=list(state["train_f"]),
                           val_f=[v for v in state["val_f"] if v is not None],
                           seconds=list(state["seconds"]), best_epoch=int(state["best_epoch"]),
                           stopped_early=bool(stopped))
    return dataclasses.replace(prior, params=state["best_params"], history=history)


def _instance_list(instances: Any, arg: str) -> list:
    if isinstance(instances, (list, tuple)) and type(instances) in (list, tuple):
        return list(instances)
    raise TypeError(f"prior.train: {arg} must be a list or tuple of instances, got "
                    f"{type(instances).__name__}")
