"""SurCo-prior (Ferber et al., ICML 2023, §3.2, Eq. 7): a network ĉ(features(y); θ) that
predicts the surrogate cost of an instance, trained over a set of instances by

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero (no optimal solutions needed).
Prediction is one forward pass and one solve.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (RELAXED_FORWARD, SolverSlot, batched_objective, build_solver,
                           check_finite, resolve_key, stack_instances)
from surco.problem import Instance, Problem, ProblemError
from surco.results import PriorResult, TrainHistory

_FORMAT = "surco-prior/1"


class CostNet(nn.Module):
    """Default prior network: an MLP from features to surrogate parameters.

    With per-row features ``(R, F)`` the same MLP maps each row to ``out`` values (one row of
    x each, DreamShard-style per-table network); each row also sees the mean of all rows'
    features as context, since in a nonlinear problem a row's best cost depends on the others.
    With one feature vector ``(F,)`` it maps it to the whole x.
    """

    out: int
    hidden: tuple[int, ...] = (64, 64)

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        h = feats
        if feats.ndim == 2:
            ctx = jnp.broadcast_to(feats.mean(axis=0, keepdims=True), feats.shape)
            h = jnp.concatenate([feats, ctx], axis=-1)
        for w in self.hidden:
            h = nn.gelu(nn.Dense(w)(h))
        return nn.Dense(self.out)(h)


@dataclasses.dataclass
class PriorModel:
    """A trained SurCo-prior: ``theta(y)`` (surrogate parameters), ``cost(y)`` and
    ``predict(y)`` (one forward pass + one solve)."""

    problem: Problem
    module: nn.Module
    params: Any
    feat_mean: np.ndarray
    feat_std: np.ndarray
    x_shape: tuple[int, ...]
    per_row: bool
    estimator: str
    backend: str = "scip"
    solver_options: dict | None = None
    history: TrainHistory | None = None

    def __post_init__(self):
        self._apply = jax.jit(self._theta_from_feats)

    def _theta_from_feats(self, params, feats):
        z = (feats - self.feat_mean) / self.feat_std
        return self.module.apply(params, z).reshape(self.x_shape)

    def _features(self, instance: Instance) -> jax.Array:
        feats = self.problem.features_of(instance)
        expected = self.feat_mean.shape
        if feats.shape != expected:
            raise ProblemError(f"Problem {self.problem.name!r}: features have shape {feats.shape}, "
                               f"the prior was trained on {expected}")
        return feats

    def theta(self, instance: Instance) -> jax.Array:
        """Surrogate parameters ĉ(y; θ) (before the problem's ``cost_transform``)."""
        return self._apply(self.params, self._features(instance))

    def cost(self, instance: Instance) -> jax.Array:
        """The surrogate cost handed to the solver."""
        return self.problem.to_cost(self.theta(instance))

    def predict(self, instance: Instance | Sequence[Instance], *,
                executor: Executor | None = None) -> PriorResult | list[PriorResult]:
        """One forward pass and one solve per instance (a list is one stacked solve)."""
        many = isinstance(instance, list)
        instances = list(instance) if many else [instance]
        t0 = time.perf_counter()
        C = np.stack([np.asarray(self.cost(y), np.float64) for y in instances])
        solvers = [build_solver(self.problem, y, self.backend, self.solver_options)
                   for y in instances]
        from surco.solvers import SolverStack
        X = SolverStack(solvers, executor=executor).solve(C).x
        fv = np.asarray(batched_objective(self.problem)(jnp.asarray(X, jnp.float32),
                                                         stack_instances(self.problem, instances)))
        check_finite(self.problem, fv, "at the prior's prediction")
        secs = (time.perf_counter() - t0) / len(instances)
        out = []
        for y, x, c, f in zip(instances, X, C, fv):
            true = float(self.problem.evaluate(x, y)) if self.problem.evaluate else None
            out.append(PriorResult(x=x, f=float(f), true_cost=true, c=c, seconds=secs,
                                   problem=self.problem.name))
        return out if many else out[0]

    # -- persistence ----------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        if not isinstance(self.module, CostNet):
            raise ValueError("PriorModel.save: only the default CostNet is saved with its "
                             "architecture; for a custom module save `params` with "
                             "flax.serialization and pass model= to surco.prior.load")
        return {"format": _FORMAT, "problem": self.problem.name, "out": self.module.out,
                "hidden": list(self.module.hidden), "x_shape": list(self.x_shape),
                "per_row": self.per_row, "estimator": self.estimator, "backend": self.backend,
                "feat_mean": self.feat_mean.tolist(), "feat_std": self.feat_std.tolist()}

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (a directory): ``meta.json`` and ``params.msgpack``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        _atomic_write(path / "meta.json", json.dumps(self._meta()).encode())
        _atomic_write(path / "params.msgpack", flax.serialization.to_bytes(self.params))
        return path


def load(path: str | Path, problem: Problem, *, model: nn.Module | None = None) -> PriorModel:
    """Load a `PriorModel` saved by `PriorModel.save` for ``problem``.

    Raises:
      FileNotFoundError, ValueError: missing files, another format or another problem.
    """
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no SurCo-prior model here (meta.json missing)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}/meta.json is not a SurCo-prior file: {exc}") from exc
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {_FORMAT!r}")
    if meta["problem"] != problem.name:
        raise ValueError(f"{path}: trained for problem {meta['problem']!r}, not {problem.name!r}")
    module = model or CostNet(out=meta["out"], hidden=tuple(meta["hidden"]))
    mean = np.asarray(meta["feat_mean"], np.float32)
    template = module.init(jax.random.key(0), jnp.zeros(mean.shape, jnp.float32))
    params = flax.serialization.from_bytes(template, (path / "params.msgpack").read_bytes())
    return PriorModel(problem=problem, module=module, params=params, feat_mean=mean,
                      feat_std=np.asarray(meta["feat_std"], np.float32),
                      x_shape=tuple(meta["x_shape"]), per_row=meta["per_row"],
                      estimator=meta["estimator"], backend=meta["backend"])


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    instance) and one gradient step on the mean objective; the step is compiled once.

    Args:
      problem: a `Problem` with ``features``.
      train_instances, val_instances: instances (pytrees of equal shapes). Early stopping and
        the returned parameters use the validation mean objective of the solver's solutions
        (the training objective when there is no validation set).
      model: a Flax module mapping (normalised) features to surrogate parameters; default
        `CostNet(hidden)`, per row when features are ``(x.shape[0], F)``.
      estimator, **estimator_kw: the gradient estimator, as in `surco.zero`.
      epochs, batch_size, lr, optimizer: the optimisation (default ``optax.adam(lr)``).
      patience: epochs without validation improvement before stopping (None: never).
      key: PRNG key or int seed (initialisation, shuffling, random estimators).
      checkpoint_dir: if given, a checkpoint is written there after every epoch, and a
        training started with a directory that holds one resumes from it.
      progress: progress bar over epochs.
      backend, solver_options, executor: how Ω is solved (see `surco.zero`).

    Returns:
      A `PriorModel` holding the best parameters and the `TrainHistory`.
    """
    from surco.estimators import get_estimator

    train_instances = list(train_instances)
    val_instances = list(val_instances or [])
    if not train_instances:
        raise ValueError("prior.train: no training instances")
    if int(batch_size) < 1 or int(epochs) < 1:
        raise ValueError(f"prior.train: batch_size and epochs must be >= 1, got {batch_size}, {epochs}")
    batch_size = min(int(batch_size), len(train_instances))
    est = get_estimator(estimator, **estimator_kw)
    key = resolve_key(key)

    feats_tr = np.stack([np.asarray(problem.features_of(y), np.float32) for y in train_instances])
    feats_va = (np.stack([np.asarray(problem.features_of(y), np.float32) for y in val_instances])
                if val_instances else None)
    x_shape = problem.x_shape(train_instances[0])
    fshape = feats_tr.shape[1:]
    per_row = len(fshape) == 2
    if per_row and fshape[0] != x_shape[0]:
        raise ProblemError(f"Problem {problem.name!r}: per-row features have {fshape[0]} rows but "
                           f"x has {x_shape[0]}")
    if len(fshape) not in (1, 2):
        raise ProblemError(f"Problem {problem.name!r}: features must be (F,) or (rows, F), got {fshape}")
    out = int(np.prod(x_shape[1:])) if per_row else int(np.prod(x_shape))
    module = model or CostNet(out=out, hidden=tuple(hidden))
    axes = (0, 1) if per_row else (0,)
    feat_mean = feats_tr.mean(axis=axes)
    feat_std = feats_tr.std(axis=axes) + 1e-6
    feat_mean = np.broadcast_to(feat_mean, fshape).astype(np.float32)
    feat_std = np.broadcast_to(feat_std, fshape).astype(np.float32)

    key, kinit = jax.random.split(key)
    params = module.init(kinit, jnp.zeros(fshape, jnp.float32))
    opt = optimizer if optimizer is not None else optax.adam(lr)
    opt_state = opt.init(params)
    prior = PriorModel(problem=problem, module=module, params=params, feat_mean=feat_mean,
                       feat_std=feat_std, x_shape=x_shape, per_row=per_row, estimator=est.name,
                       backend=backend, solver_options=solver_options)

    solvers_tr = [build_solver(problem, y, backend, solver_options) for y in train_instances]
    solvers_va = [build_solver(problem, y, backend, solver_options) for y in val_instances]
    fvec = batched_objective(problem)
    theta_b = jax.vmap(prior._theta_from_feats, in_axes=(None, 0))
    slots: dict[int, SolverSlot] = {}
    steps: dict[int, Any] = {}

    def slot_for(n: int) -> SolverSlot:
        if n not in slots:
            slots[n] = SolverSlot(solvers_tr[:n], executor=executor)
        return slots[n]

    def step_for(n: int):
        if n not in steps:
            slot = slot_for(n)

            def loss(p, feats, ys, k):
                # The sum, not the mean: estimators such as blackbox interpolation read the
                # scale of dL/dx (their λ is relative to it), so it must not shrink with B.
                c = problem.to_cost(theta_b(p, feats))
                x = est(slot, c, k)
                return fvec(x, ys).sum()

            @jax.jit
            def step(p, s, feats, ys, k):
                val, g = jax.value_and_grad(loss)(p, feats, ys, k)
                upd, s = opt.update(g, s, p)
                return optax.apply_updates(p, upd), s, val
            steps[n] = step
        return steps[n]

    cost_b = jax.jit(lambda p, feats: problem.to_cost(theta_b(p, feats)))
    f_b = jax.jit(fvec)

    def mean_hard_f(p, feats, insts, solvers) -> float:
        vals = []
        for i in range(0, len(insts), batch_size):
            sl = slice(i, i + batch_size)
            C = np.asarray(cost_b(p, feats[sl]), np.float64)
            X = SolverSlot(solvers[sl], executor=executor).solve(C).x
            fv = np.asarray(f_b(jnp.asarray(X, jnp.float32), stack_instances(problem, insts[sl])))
            check_finite(problem, fv, "in validation")
            vals.append(fv)
        return float(np.concatenate(vals).mean())

    # -- resume ----------------------------------------------------------------------------
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = {"params": params, "opt_state": opt_state, "best_params": params,
             "key": jax.random.key_data(key), "epoch": -1, "best_val": math.inf, "stall": 0,
             "train_f": [], "val_f": [], "seconds": [], "best_epoch": 0}
    ckpt_meta = {"format": _FORMAT + "-checkpoint", "problem": problem.name,
                 "x_shape": list(x_shape), "features": list(fshape), "n_train": len(train_instances),
                 "estimator": est.name}
    if ckpt is not None and (ckpt / "checkpoint.msgpack").exists():
        state = _restore_checkpoint(ckpt, state, ckpt_meta)
    params, opt_state = state["params"], state["opt_state"]
    key = jax.random.wrap_key_data(jnp.asarray(state["key"]))

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=int(epochs), initial=int(state["epoch"]) + 1,
                   desc=f"SurCo-prior[{problem.name}]", leave=False)
    t0 = time.perf_counter() - (state["seconds"][-1] if state["seconds"] else 0.0)
    stopped = False
    relaxed = est.name in RELAXED_FORWARD
    ys_all = train_instances
    for epoch in range(int(state["epoch"]) + 1, int(epochs)):
        key, kperm = jax.random.split(key)
        order = np.asarray(jax.random.permutation(kperm, len(ys_all)))
        losses = []
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            slot = slot_for(len(idx)).load([solvers_tr[j] for j in idx])
            key, k = jax.random.split(key)
            params, opt_state, val = step_for(len(idx))(
                params, opt_state, jnp.asarray(feats_tr[idx]),
                stack_instances(problem, [ys_all[j] for j in idx]), k if est.needs_key else None)
            val = float(val)
            if not math.isfinite(val):
                raise ProblemError(f"Problem {problem.name!r}: non-finite training objective "
                                   f"({val}) at epoch {epoch}")
            losses.append(val)
        train_f = (mean_hard_f(params, feats_tr, train_instances, solvers_tr) if relaxed
                   else float(np.sum(losses) / len(order)))
        val_f = (mean_hard_f(params, feats_va, val_instances, solvers_va) if val_instances
                 else train_f)
        state["train_f"].append(train_f)
        state["val_f"].append(val_f if val_instances else None)
        state["seconds"].append(time.perf_counter() - t0)
        if val_f < state["best_val"]:
            state.update(best_val=val_f, best_params=params, best_epoch=epoch, stall=0)
        else:
            state["stall"] += 1
        state.update(params=params, opt_state=opt_state, epoch=epoch,
                     key=jax.random.key_data(key))
        if ckpt is not None:
            _save_checkpoint(ckpt, state, ckpt_meta)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train=f"{train_f:.5g}", val=f"{val_f:.5g}")
        if patience is not None and state["stall"] >= int(patience):
            stopped = True
            break
    if bar is not None:
        bar.close()
    prior.params = state["best_params"]
    prior.history = TrainHistory(train_f=state["train_f"],
                                 val_f=[v for v in state["val_f"] if v is not None],
                                 seconds=state["seconds"], best_epoch=int(state["best_epoch"]),
                                 stopped_early=stopped)
    return prior


def _save_checkpoint(ckpt: Path, state: dict, meta: dict) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    payload = dict(state)
    payload["key"] = np.asarray(payload["key"])
    for k in ("train_f", "val_f", "seconds"):
        payload[k] = json.dumps(payload[k])
    _atomic_write(ckpt / "checkpoint.json", json.dumps(meta).encode())
    _atomic_write(ckpt / "checkpoint.msgpack", flax.serialization.to_bytes(payload))


def _restore_checkpoint(ckpt: Path, template: dict, meta: dict) -> dict:
    try:
        saved_meta = json.loads((ckpt / "checkpoint.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{ckpt}: checkpoint metadata unreadable: {exc}") from exc
    if saved_meta != meta:
        diff = {k: (saved_meta.get(k), v) for k, v in meta.items() if saved_meta.get(k) != v}
        raise ValueError(f"{ckpt}: checkpoint belongs to another training (saved vs now: {diff}); "
                         "use another checkpoint_dir")
    tmpl = dict(template)
    tmpl["key"] = np.asarray(tmpl["key"])
    for k in ("train_f", "val_f", "seconds"):
        tmpl[k] = ""
    state = flax.serialization.from_bytes(tmpl, (ckpt / "checkpoint.msgpack").read_bytes())
    for k in ("train_f", "val_f", "seconds"):
        state[k] = json.loads(state[k])
    state["epoch"] = int(state["epoch"])
    state["stall"] = int(state["stall"])
    state["best_epoch"] = int(state["best_epoch"])
    state["best_val"] = float(state["best_val"])
    return state
