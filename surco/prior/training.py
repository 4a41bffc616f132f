"""`train`: SurCo-prior's training loop (Ferber et al., ICML 2023, §3.2, Eq. 7)

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero: each minibatch is one batched
solve and one gradient step; no optimal solutions are needed.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import operator
import time
import warnings
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (Metered, RunControl, SolverSlot, batched_objective, build_solver,
                           check_estimator_kwargs, check_finite, check_instances, controlled,
                           is_interrupt, resolve_key, stack_instances, stack_solvers)
from surco.prior.checkpoint import TrainingCheckpoint
from surco.prior.model import PriorModel, base_theta, batch_key, group_indices
from surco.prior.networks import CostNet, SetCostNet
from surco.prior.specs import module_spec
from surco.problem import Instance, Problem, ProblemError
from surco.results import TrainHistory
from surco.solvers import Solution, Status


def train(problem: Problem, train_instances: Sequence[Instance], *,
          val_instances: Sequence[Instance] | None = None, model: nn.Module | None = None,
          hidden: tuple[int, ...] = (64, 64), estimator: Any = "blackbox", epochs: int = 50,
          batch_size: int = 16, lr: float = 1e-3,
          optimizer: optax.GradientTransformation | None = None,
          patience: int | None = 10, key: jax.Array | int | None = None,
          checkpoint_dir: str | Path | None = None, progress: bool = False,
          backend: str | None = None, solver_options: dict[str, Any] | None = None,
          executor: Executor | None = None, base: Callable[[Instance], Any] | None = None,
          distill: Sequence[Any] | None = None, distill_weight: float = 1.0,
          end_to_end: bool = True, **estimator_kw: Any) -> PriorModel:
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
      model: a Flax module from normalised features to surrogate parameters (``out`` left at
        None is set to the width needed); default `CostNet(hidden=hidden)`. For a set
        network over rows, pass `SetCostNet`.
      hidden: hidden widths of the default network (ignored with ``model``).
      estimator, **estimator_kw: the gradient estimator, as in `surco.zero`.
      epochs, batch_size, lr, optimizer: the optimisation of the network's parameters
        (default ``optax.adam(lr)``; an estimator's ``default_optimizer`` is for a surrogate
        cost optimised directly, as in `surco.zero`, not for network weights).
      patience: epochs without validation improvement before stopping (None: never).
      key: PRNG key or int seed (initialisation, shuffling, random estimators).
      checkpoint_dir: if given, a checkpoint is written there after every epoch, and a
        training started with a directory that holds one resumes from it (warning when
        ``epochs`` is below the epochs it already completed).
      progress: progress bar over epochs.
      backend, solver_options, executor: how Ω is solved (see `surco.zero`).
      base: optional residual base ``instance -> θ_base`` (x's shape), a cost the problem
        supplies (a heuristic's): the prior is ``θ_base + network``; the default network's
        output layer then starts at zero, so the untrained prior reproduces the heuristic's
        solution (a custom ``model`` should start at zero itself). Saved with the model by
        its import path, so it must be a module-level function.
      distill: one target per training instance, in the order of ``train_instances``:
        an array of surrogate parameters θ* shaped like x, or a `ZeroResult` (its
        ``theta``). None: no distillation term.
      distill_weight: weight of the distillation term (a number > 0).
      end_to_end: keep the end-to-end term (False: distillation only; needs ``distill``).

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
      completed).
    """
    from surco.estimators import get_estimator

    if not isinstance(problem, Problem):
        raise TypeError(f"prior.train: problem must be a surco.Problem, got "
                        f"{type(problem).__name__}")
    check_estimator_kwargs("surco.prior.train", train, estimator_kw, estimator)
    train_instances = _instance_list(train_instances, "train_instances")
    val_instances = _instance_list([] if val_instances is None else val_instances,
                                   "val_instances")
    if not train_instances:
        raise ValueError("prior.train: no training instances")
    for arg, ys in (("train_instances", train_instances), ("val_instances", val_instances)):
        check_instances(problem, ys, jnp.float32, "surco.prior.train", arg=arg)
    epochs = _positive_int("epochs", epochs)
    batch_size = min(_positive_int("batch_size", batch_size), len(train_instances))
    if patience is not None:
        patience = _positive_int("patience", patience)
    if optimizer is None and (isinstance(lr, bool) or not isinstance(lr, (int, float, np.number))
                              or not math.isfinite(lr) or lr <= 0):
        raise ValueError(f"prior.train: lr must be a finite number > 0, got {lr!r}")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"prior.train: model must be a flax.linen.Module, got "
                        f"{type(model).__name__}")
    if model is None:
        hidden = _widths(hidden)
    est = get_estimator(estimator, **estimator_kw)
    key = resolve_key(key)

    if not isinstance(end_to_end, bool):
        raise ValueError(f"prior.train: end_to_end must be True or False, got {end_to_end!r}")
    if isinstance(distill_weight, bool) or not isinstance(distill_weight, (int, float, np.number)) \
            or not math.isfinite(distill_weight) or distill_weight <= 0:
        raise ValueError(f"prior.train: distill_weight must be a finite number > 0, got "
                         f"{distill_weight!r}")
    if not end_to_end and distill is None:
        raise ValueError("prior.train: end_to_end=False leaves no loss; pass distill= "
                         "(targets per training instance)")
    key, kinit = jax.random.split(key)
    prior, tr = _initial(problem, train_instances, model, hidden, base, kinit, est.name,
                         backend, solver_options)
    va = _Data(problem, val_instances, "val_instances", backend, solver_options,
               like=tr, base=base) if val_instances else None
    targets = (_targets(distill, tr) if distill is not None
               else [np.zeros(s, np.float32) for s in tr.x_shapes])
    module, params, fshape0 = prior.module, prior.params, prior.feature_shape
    opt = optimizer if optimizer is not None else optax.adam(lr)
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

    def mean_hard_f(p, data: _Data) -> float:
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
                for idx in _minibatches(order, tr.keys, batch_size):
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
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"prior.init: model must be a flax.linen.Module, got "
                        f"{type(model).__name__}")
    hidden = _widths(hidden) if model is None else hidden
    _, kinit = jax.random.split(resolve_key(key))
    prior, _ = _initial(problem, instances, model, hidden, base, kinit, "untrained", backend,
                        solver_options)
    return prior


def _initial(problem: Problem, instances: list, model: nn.Module | None, hidden: tuple,
             base, kinit: jax.Array, estimator: str, backend: str,
             solver_options: dict | None) -> tuple[PriorModel, "_Data"]:
    """The untrained `PriorModel` and the training data (`init` and `train` share it)."""
    if base is not None and not callable(base):
        raise TypeError(f"prior.train: base must be a function instance -> θ (x's shape), got "
                        f"{type(base).__name__}")
    tr = _Data(problem, instances, "train_instances", backend, solver_options, base=base)
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


def _targets(distill: Sequence[Any], tr: "_Data") -> list[np.ndarray]:
    """Distillation targets θ* per training instance (arrays, or `ZeroResult` ``theta``)."""
    if not isinstance(distill, (list, tuple)) or len(distill) != len(tr.instances):
        n = len(distill) if isinstance(distill, (list, tuple)) else type(distill).__name__
        raise ValueError(f"prior.train: distill must be a list with one target per training "
                         f"instance ({len(tr.instances)}), got {n}")
    out = []
    for i, (t, xs) in enumerate(zip(distill, tr.x_shapes)):
        t = np.asarray(getattr(t, "theta", t), np.float32)
        if t.shape != tuple(xs):
            raise ValueError(f"prior.train: distill[{i}] has shape {t.shape}, expected x's "
                             f"shape {tuple(xs)}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"prior.train: distill[{i}] holds NaN or inf")
        out.append(t)
    return out


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


class _Data:
    """Instances with their features (float32), x shapes, solvers, and index groups of
    equal `batch_key` (the instances that can share a minibatch)."""

    def __init__(self, problem: Problem, instances: list, arg: str, backend: str,
                 solver_options: dict | None, like: "_Data | None" = None, base=None):
        self.instances, self.arg = instances, arg
        self._problem, self._backend, self._options = problem, backend, solver_options
        self.feats = [np.asarray(problem.features_of(y), np.float32) for y in instances]
        self.x_shapes = [tuple(problem.x_shape(y)) for y in instances]
        f0, x0 = self.feats[0].shape, self.x_shapes[0]
        if len(f0) not in (1, 2):
            raise ProblemError(f"Problem {problem.name!r}: features must be (F,) or (rows, F), "
                               f"got {f0}")
        self.per_row = len(f0) == 2
        self.n_features = f0[-1]
        self.out_shape = x0[1:] if self.per_row else x0
        for i, (f, xs) in enumerate(zip(self.feats, self.x_shapes)):
            if self.per_row:
                if f.ndim != 2 or f.shape[1] != self.n_features:
                    raise ProblemError(f"Problem {problem.name!r}: {arg}[{i}] has features of "
                                       f"shape {f.shape}, {arg}[0] of {f0}; per-row features "
                                       f"must all be (rows, {self.n_features})")
                if f.shape[0] != xs[0]:
                    raise ProblemError(f"Problem {problem.name!r}: per-row features have "
                                       f"{f.shape[0]} rows but x has {xs[0]} ({arg}[{i}])")
                if xs[1:] != self.out_shape:
                    raise ProblemError(f"Problem {problem.name!r}: {arg}[{i}] has x of shape "
                                       f"{xs}, {arg}[0] of {x0}; rows must have one shape")
            elif f.shape != f0 or xs != x0:
                raise ProblemError(
                    f"Problem {problem.name!r}: {arg}[{i}] has features {f.shape} and x {xs}, "
                    f"{arg}[0] has {f0} and {x0}; one feature vector per instance maps to the "
                    "whole x, so all must agree (use per-row features (rows, F) for instances "
                    "of different sizes)")
        if like is not None and (self.per_row, self.n_features, self.out_shape) != (
                like.per_row, like.n_features, like.out_shape):
            raise ProblemError(f"Problem {problem.name!r}: {arg} have features {f0} and x {x0}, "
                               f"unlike the training instances ({like.feats[0].shape}, "
                               f"{like.x_shapes[0]})")
        self.keys = [batch_key(y, xs) for y, xs in zip(instances, self.x_shapes)]
        self.groups = group_indices(self.keys)
        self.bases = [base_theta(base, y, xs, problem.name) if base is not None
                      else np.zeros(xs, np.float32) for y, xs in zip(instances, self.x_shapes)]

    @functools.cached_property
    def solvers(self) -> list:
        """One solver per instance (built on first use: `init` needs none)."""
        return [build_solver(self._problem, y, self._backend, self._options)
                for y in self.instances]


def _minibatches(order: np.ndarray, keys: Sequence[Any], size: int) -> list[list[int]]:
    """Minibatches of at most ``size`` instances of equal `batch_key`, taken in ``order``;
    when all keys are equal, consecutive slices of ``order``."""
    by: dict[Any, list[int]] = {}
    for i in order:
        by.setdefault(keys[int(i)], []).append(int(i))
    rank = {int(i): r for r, i in enumerate(order)}
    batches = [b[j:j + size] for b in by.values() for j in range(0, len(b), size)]
    return sorted(batches, key=lambda b: rank[b[0]])


def _instance_list(instances: Any, arg: str) -> list:
    if isinstance(instances, (list, tuple)) and type(instances) in (list, tuple):
        return list(instances)
    raise TypeError(f"prior.train: {arg} must be a list or tuple of instances, got "
                    f"{type(instances).__name__}")


def _positive_int(arg: str, value: Any) -> int:
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= 1
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"prior.train: {arg} must be an integer >= 1, got {value!r}")
    return operator.index(value)


def _widths(hidden: Any) -> tuple[int, ...]:
    try:
        widths = tuple(hidden)
        ok = all(not isinstance(w, bool) and operator.index(w) >= 1 for w in widths)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"prior.train: hidden must be a tuple of integers >= 1 (layer widths), "
                         f"got {hidden!r}")
    return tuple(operator.index(w) for w in widths)
