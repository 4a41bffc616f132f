"""Loading a saved SurCo-prior (`load`): the directory `PriorModel.save` writes
(`surco.prior.checkpoint`), back into a `PriorModel` for a problem; models of the first format
(``surco-prior/1``) are upgraded on the way."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from surco.atomic import reread_if_replaced
from surco.prior.checkpoint import (FORMAT, FORMAT_V1, MODEL_FILES, read_data, read_json,
                                    restore_tree)
from surco.prior.model import PriorModel
from surco.prior.specs import decode, module_from_spec, module_spec
from surco.problem import Problem
from surco.results import TrainHistory

__all__ = ["load"]


def load(path: str | Path, problem: Problem, *, model: nn.Module | None = None,
         base: Any = None) -> PriorModel:
    """Load a `PriorModel` saved by `PriorModel.save` for ``problem``.

    Args:
      path: the directory written by `PriorModel.save`.
      problem: the problem it was trained on (checked by name).
      model: the network; by default the one recorded in the file (its class is imported
        from its module, with its recorded fields). Models of format ``surco-prior/1``
        recorded no class and load as `CostNet` unless ``model=`` is given.
      base: the residual base; by default the one recorded (imported by its path).

    Returns:
      The model, with its training history (None for format ``surco-prior/1``).

    Raises:
      FileNotFoundError: no model at ``path``.
      ValueError: another format or problem, a truncated or foreign file, parameters that
        do not fit the network, or a network class that cannot be imported (each message
        names the file).
    """
    path = Path(path)
    return reread_if_replaced(lambda: _load(path, problem, model, base), path / "meta.json")

_CALLER = 5  # warnings in _load point at load's caller (_load, lambda, reread_if_replaced, load)

def _load(path: Path, problem: Problem, model: nn.Module | None, base: Any) -> PriorModel:
    meta_file = path / "meta.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path}: no SurCo-prior model here (meta.json missing); "
                                f"expected {MODEL_FILES}")
    meta = read_json(meta_file, f"the meta.json of {MODEL_FILES}")
    fmt = meta.get("format")
    if fmt not in (FORMAT, FORMAT_V1):
        raise ValueError(f"{meta_file}: format {fmt!r}, expected {FORMAT!r} (or {FORMAT_V1!r}): "
                         f"not the meta.json of {MODEL_FILES}")
    if meta.get("problem") != problem.name:
        raise ValueError(f"{path}: trained for problem {meta.get('problem')!r}, not "
                         f"{problem.name!r}")
    try:
        meta = _upgrade_v1(meta, meta_file, warn=model is None) if fmt == FORMAT_V1 else meta
        spec, feature_shape = meta["module"], tuple(meta["feature_shape"])
        fields = dict(out_shape=tuple(meta["out_shape"]), per_row=bool(meta["per_row"]),
                      feat_mean=np.asarray(meta["feat_mean"], np.float32),
                      feat_std=np.asarray(meta["feat_std"], np.float32),
                      estimator=meta["estimator"], backend=meta["backend"])
        history = meta.get("history")
        history = TrainHistory(**history) if history is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(meta_file)):
            raise
        raise ValueError(f"{meta_file}: incomplete SurCo-prior metadata ({type(exc).__name__}: "
                         f"{exc})") from None
    if model is None:
        module = module_from_spec(spec, meta_file)
    else:
        module = model
        given = module_spec(model, strict=False)
        if given != spec and fmt != FORMAT_V1:
            warnings.warn(f"surco.prior.load: model= is {given['class']} {given['fields']}, "
                          f"{path} was saved with {spec['class']} {spec['fields']}; using "
                          "model=", stacklevel=_CALLER)
    raw, params_file = read_data(path, meta, meta_file, "params.msgpack",
                                 "the network parameters (a flax msgpack)")
    template = module.init(jax.random.key(0), jnp.zeros(feature_shape, jnp.float32))
    params = restore_tree(template, raw, params_file,
                          f"the parameters of {type(module).__name__}")
    if base is None and meta.get("base") is not None:
        try:
            base = decode(meta["base"], meta_file)
        except ValueError as exc:
            raise ValueError(f"{exc} (the prior's base; or pass base=)") from None
    return PriorModel(problem=problem, module=module, params=params,
                      feature_shape=feature_shape, base=base,
                      solver_options=_decode_options(meta.get("solver_options"), meta_file),
                      history=history, **fields)

def _decode_options(v: Any, where: Path) -> dict | None:
    out = decode(v, where)
    return dict(out) if out is not None else None

def _upgrade_v1(meta: dict, where: Path, *, warn: bool) -> dict:
    """Format 1: the network was always saved as `CostNet(out, hidden)`, the normalisation
    with the training feature shape (identical rows for per-row features)."""
    mean = np.asarray(meta["feat_mean"], np.float32)
    std = np.asarray(meta["feat_std"], np.float32)
    per_row = bool(meta["per_row"])
    x_shape = tuple(meta["x_shape"])
    if per_row:
        if mean.ndim != 2 or not (np.all(mean == mean[:1]) and np.all(std == std[:1])):
            raise ValueError(f"{where}: per-row normalisation of shape {mean.shape} differs "
                             "between rows; expected identical rows (format surco-prior/1)")
        mean, std = mean[0], std[0]
    if warn:
        warnings.warn(f"{where}: format {FORMAT_V1} does not record the network class; loading it as "
                      f"CostNet(out={meta['out']}, hidden={tuple(meta['hidden'])}). If it was "
                      "trained with another network (e.g. sharding's PlanResidualNet), pass "
                      "model=", stacklevel=_CALLER + 1)
    return dict(meta, module={"class": "surco.prior.networks:CostNet",
                              "fields": {"out": meta["out"], "hidden": list(meta["hidden"])}},
                feature_shape=list(np.shape(meta["feat_mean"])),
                out_shape=list(x_shape[1:] if per_row else x_shape),
                feat_mean=mean, feat_std=std, solver_options=None, history=None)
