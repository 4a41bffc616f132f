"""`train`: SurCo-prior's training loop (Ferber et al., ICML 2023, §3.2, Eq. 7)

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero: each minibatch is one batched
solve and one gradient step; no optimal solutions are needed.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import time
import warnings
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (Metered, RunControl, SolverSlot, batched_objective, build_solver,
                           check_finite, controlled, is_interrupt, resolve_key, stack_instances,
                           stack_solvers)
from surco.prior.checkpoint import TrainingCheckpoint
from surco.prior.model import PriorModel, batch_key, group_indices
from surco.prior.networks import CostNet
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
          backend: str = "scip", solver_options: dict[str, Any] | None = None,
          executor: Executor | None = None, **estimator_kw: Any) -> PriorModel:
    """Train SurCo-prior (Ferber et al. 2023, Eq. 7) over a set of instances.

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
      epochs, batch_size, lr, optimizer: the optimisation (default: the estimator's
        ``default_optimizer(lr)``, ``optax.adam(lr)`` for the built-in ones).
      patience: epochs without validation improvement before stopping (None: never).
      key: PRNG key or int seed (initialisation, shuffling, random estimators).
      checkpoint_dir: if given, a checkpoint is written there after every epoch, and a
        training started with a directory that holds one resumes from it (warning when
        ``epochs`` is below the epochs it already completed).
      progress: progress bar over epochs.
      backend, solver_options, executor: how Ω is solved (see `surco.zero`).

    Returns:
      A `PriorModel` holding the best parameters and the `TrainHistory`.

    Raises:
      ValueError: bad arguments (each message names the argument), or a checkpoint of
        another training in ``checkpoint_dir``.
      ProblemError: features of the wrong shape, a non-finite objective.
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

    train_instances = _instance_list(train_instances, "train_instances")
    val_instances = _instance_list([] if val_instances is None else val_instances,
                                   "val_instances")
    if not train_instances:
        raise ValueError("prior.train: no training instances")
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

    tr = _Data(problem, train_instances, "train_instances", backend, solver_options)
    va = _Data(problem, val_instances, "val_instances", backend, solver_options,
               like=tr) if val_instances else None
    rows = np.concatenate([f.reshape(-1, tr.n_features) for f in tr.feats])
    feat_mean = rows.mean(axis=0).astype(np.float32)
    feat_std = (rows.std(axis=0) + 1e-6).astype(np.float32)

    out = int(np.prod(tr.out_shape))
    module = model if model is not None else CostNet(out=out, hidden=hidden)
    if getattr(module, "out", 0) is None:
        module = module.clone(out=out)
    fshape0 = tr.feats[0].shape
    key, kinit = jax.random.split(key)
    params = module.init(kinit, jnp.zeros(fshape0, jnp.float32))
    got = jax.eval_shape(module.apply, params, jnp.zeros(fshape0, jnp.float32))
    if math.prod(got.shape) != math.prod(tr.x_shapes[0]):
        raise ValueError(f"prior.train: model {type(module).__name__} returns shape "
                         f"{tuple(got.shape)} for features {fshape0}; expected "
                         f"{math.prod(tr.x_shapes[0])} entries (x has shape {tr.x_shapes[0]})")
    opt = optimizer if optimizer is not None else est.default_optimizer(lr)
    opt_state = opt.init(params)
    prior = PriorModel(problem=problem, module=module, params=params, feat_mean=feat_mean,
                       feat_std=feat_std, out_shape=tr.out_shape, per_row=tr.per_row,
                       feature_shape=fshape0, estimator=est.name, backend=backend,
                       solver_options=solver_options)

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

            def loss(p, feats, ys, k):
                # The sum, not the mean: estimators such as blackbox interpolation read the
                # scale of dL/dx (their λ is relative to it), so it must not shrink with B.
                c = problem.to_cost(theta_b(p, feats))
                x, status = est(slot, c, k, return_status=True)
                return fvec(x, ys).sum(), status

            @jax.jit
            def step(p, s, feats, ys, k):
                (val, status), g = jax.value_and_grad(loss, has_aux=True)(p, feats, ys, k)
                upd, s = opt.update(g, s, p)
                return optax.apply_updates(p, upd), s, val, status
            steps[sig] = step
        slots[sig].load([tr.solvers[j] for j in idx])
        return steps[sig]

    cost_b = jax.jit(lambda p, feats: problem.to_cost(theta_b(p, feats)))
    f_b = jax.jit(fvec)

    def mean_hard_f(p, data: _Data) -> float:
        """Mean objective of the solver's answers at the network's costs (no estimator)."""
        vals = []
        for group in data.groups:
            for i in range(0, len(group), batch_size):
                idx = group[i:i + batch_size]
                C = np.asarray(cost_b(p, np.stack([data.feats[j] for j in idx])), np.float64)
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
    relaxed = not est.forward_is_solution
    saved = done  # completed epochs in the checkpoint on disk
    epoch = done
    try:
        with controlled(control):
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
                 solver_options: dict | None, like: "_Data | None" = None):
        self.instances, self.arg = instances, arg
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
        self.solvers = [build_solver(problem, y, backend, solver_options) for y in instances]


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
