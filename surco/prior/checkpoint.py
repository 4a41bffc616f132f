"""Files of SurCo-prior: a saved model (`save_model`; read by `surco.prior.loading.load`) and
the checkpoint of a running training (`TrainingCheckpoint`).

A saved model is a directory with

* ``meta.json``: the format (``surco-prior/2``), the problem's name, the network's class (its
  import path) and fields (`module_spec`), the feature normalisation, the output shape, the
  estimator, backend and solver options, the training history, and the name
  (``params_file``) and SHA-256 (``params_sha256``) of the parameters' file;
* ``params.<16 hex>.msgpack``: the network's parameters (``flax.serialization``), named by
  its content's SHA-256.

A model and a training checkpoint are each saved as a unit (`surco.atomic.save_unit`): the
data file first, then the JSON file naming it, last and atomically, so a save killed at any
moment leaves the previous model (or checkpoint) or the new one, never a mix. Directories
written before the parameters' file was named by its hash (``meta.json`` and
``params.msgpack``, as the shipped models) and models of the first format (``surco-prior/1``:
no class, normalisation stored with the training shape) still load. A file that is missing,
truncated or of another kind raises an error naming the file and what it should hold.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from surco.atomic import reread_if_replaced, save_unit, unit_file
from surco.prior.specs import Unrecordable, encode, module_spec

FORMAT = "surco-prior/2"
CHECKPOINT_FORMAT = "surco-prior/2-checkpoint"
FORMAT_V1 = "surco-prior/1"
FORMAT_V1_CHECKPOINT = "surco-prior/1-checkpoint"
MODEL_FILES = "a SurCo-prior model directory (meta.json and its parameters, from PriorModel.save)"


# -- files ----------------------------------------------------------------------------------
def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``.

    Raises:
      FileNotFoundError: no such file (the message names it and ``what`` it should hold).
      ValueError: not a JSON object (truncated or another kind of file).
    """
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file missing; expected {what}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not {what}: unreadable JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not {what}: a JSON {type(obj).__name__}, expected an object")
    return obj


def read_msgpack(path: Path, what: str) -> tuple[dict, bytes]:
    """The state dict in a flax msgpack file, and the file's bytes.

    Raises:
      FileNotFoundError: no such file; ValueError: truncated or another kind of file.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file missing; expected {what}") from None
    try:
        raw = flax.serialization.msgpack_restore(data)
    except Exception as exc:  # msgpack raises its own (ValueError / ExtraData / ...) kinds
        raise ValueError(f"{path}: truncated or not {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not {what}: holds a {type(raw).__name__}, expected a mapping")
    return raw, data


def read_data(directory: Path, meta: dict, manifest: Path, name: str,
              what: str) -> tuple[dict, Path]:
    """The state dict in the flax msgpack data file that ``meta`` (the JSON ``manifest`` of
    a unit saved by `surco.atomic.save_unit`) names for ``name``, checked against the
    SHA-256 recorded there; and the file's path.

    Raises:
      FileNotFoundError: the file is missing. ValueError: truncated, of another kind, not
        the file saved with ``manifest`` (SHA-256 differs), or a bad name in the manifest.
    """
    path, digest = unit_file(directory, meta, name, manifest)
    raw, data = read_msgpack(path, what)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"{path}: not the file saved with {manifest} (its SHA-256 differs "
                         "from the one recorded there: another file copied here?)")
    return raw, path


def restore_tree(template: Any, raw: Any, path: Path, what: str) -> Any:
    """``raw`` (a state dict read from ``path``) restored into the structure of ``template``,
    checking that every array has the template's shape.

    Raises:
      ValueError: another structure or another shape (the message names ``path``, ``what``
        and the first mismatching entry).
    """
    try:
        tree = flax.serialization.from_state_dict(template, raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: {what} do not have the expected structure ({exc})") from None
    want, _ = jax.tree_util.tree_flatten_with_path(template)
    got = jax.tree_util.tree_leaves(tree)
    if len(got) != len(want):
        raise ValueError(f"{path}: {what} have {len(got)} arrays, expected {len(want)}")
    for (kp, w), g in zip(want, got):
        if np.shape(w) != np.shape(g):
            raise ValueError(f"{path}: {what}: {jax.tree_util.keystr(kp)} has shape "
                             f"{np.shape(g)}, expected {np.shape(w)}")
    return jax.tree.map(lambda w, g: jnp.asarray(g, dtype=jnp.result_type(w)), template, tree)


# -- a saved model --------------------------------------------------------------------------
def save_model(model: Any, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``model`` to the directory ``path`` as a unit (see the module docstring);
    returns it. Other files in the directory are left alone.

    Args:
      overwrite: a model already saved in ``path`` is replaced, atomically (the default);
        with False it is kept and `FileExistsError` raised.

    Raises:
      ValueError: a network field or a solver option that cannot be recorded, or ``path``
        is a file (nothing is written).
      FileExistsError: ``overwrite=False`` and ``path`` holds a saved model.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"PriorModel.save: {path} is a file; a model is saved to a directory")
    spec = module_spec(model.module)
    try:
        options = encode(model.solver_options, strict=True)
    except Unrecordable as exc:
        raise ValueError(f"PriorModel.save: solver_options holds {exc}, which cannot be "
                         "recorded; use JSON values") from None
    try:
        base = encode(model.base, strict=True)
    except Unrecordable as exc:
        raise ValueError(f"PriorModel.save: base = {exc} cannot be recorded; use a "
                         "module-level function instance -> θ") from None
    params = flax.serialization.to_bytes(model.params)
    meta = {"base": base, "format": FORMAT, "problem": model.problem.name, "module": spec,
            "out_shape": list(model.out_shape), "per_row": bool(model.per_row),
            "feature_shape": list(model.feature_shape), "estimator": model.estimator,
            "backend": model.backend, "solver_options": options,
            "feat_mean": model.feat_mean.tolist(), "feat_std": model.feat_std.tolist(),
            "history": (dataclasses.asdict(model.history) if model.history is not None
                        else None)}
    try:
        save_unit(path, "meta.json", meta, {"params.msgpack": params}, overwrite=overwrite)
    except FileExistsError:
        if overwrite:
            raise
        raise FileExistsError(f"{path}: holds a saved model (meta.json) and overwrite=False; "
                              "pass overwrite=True to replace it") from None
    return path


# -- the checkpoint of a running training ---------------------------------------------------
_STATE_KEYS = ("params", "opt_state", "best_params", "key", "epoch", "best_val", "stall",
               "train_f", "val_f", "seconds", "best_epoch")
_JSON_KEYS = ("train_f", "val_f", "seconds")


class TrainingCheckpoint:
    """The state of `surco.prior.train` after its last completed epoch, in a directory,
    saved as a unit (`surco.atomic.save_unit`): ``checkpoint.<16 hex>.msgpack``
    (parameters, optimizer state, best parameters, PRNG key, epoch, early-stopping counters,
    curves), then ``checkpoint.json`` (what training it belongs to, and the name and SHA-256
    of that file), last. A training killed at any moment leaves the previous epoch's
    checkpoint or the new one. Checkpoints written before the state file was named by its
    hash (``checkpoint.msgpack``) still restore.

    Args:
      directory: where the files are.
      meta: what identifies the training (problem, shapes, number of instances, estimator,
        network); a checkpoint whose recorded entries differ is refused.
    """

    def __init__(self, directory: str | Path, meta: dict):
        self.dir = Path(directory)
        self.meta = {"format": CHECKPOINT_FORMAT, **meta}
        self.json_file = self.dir / "checkpoint.json"

    def exists(self) -> bool:
        """Whether a checkpoint was written here."""
        return self.json_file.exists() or (self.dir / "checkpoint.msgpack").exists()

    def save(self, state: dict) -> None:
        """Write ``state`` (the keys of `restore`'s result) as a unit, replacing the
        checkpoint there."""
        payload = {k: state[k] for k in _STATE_KEYS}
        payload["key"] = np.asarray(payload["key"])
        for k in _JSON_KEYS:
            payload[k] = json.dumps(payload[k])
        save_unit(self.dir, self.json_file.name, self.meta,
                  {"checkpoint.msgpack": flax.serialization.to_bytes(payload)})

    def restore(self, template: dict) -> dict:
        """The saved state, in the structure of ``template`` (a fresh training's state).

        Raises:
          FileNotFoundError: one of the two files is missing.
          ValueError: a checkpoint of another training (the message lists what differs), or
            a truncated or foreign file, or parameters / optimizer state of another shape.
        """
        return reread_if_replaced(lambda: self._restore(template), self.json_file)

    def _restore(self, template: dict) -> dict:
        what = "the checkpoint of a SurCo-prior training (surco.prior.train checkpoint_dir)"
        saved = read_json(self.json_file, what)
        if saved.get("format") not in (CHECKPOINT_FORMAT, FORMAT_V1_CHECKPOINT):
            raise ValueError(f"{self.json_file}: format {saved.get('format')!r}, expected "
                             f"{CHECKPOINT_FORMAT!r}: not {what}")
        diff = {k: (saved[k], v) for k, v in self.meta.items()
                if k != "format" and k in saved and saved[k] != v}
        if diff:
            raise ValueError(f"{self.dir}: checkpoint belongs to another training (saved vs now: "
                             f"{diff}); use another checkpoint_dir")
        raw, state_file = read_data(self.dir, saved, self.json_file, "checkpoint.msgpack",
                                    f"{what} (a flax msgpack)")
        missing = [k for k in _STATE_KEYS if k not in raw]
        if missing:
            raise ValueError(f"{state_file}: not {what}: entries {missing} missing")
        state = {
            "params": restore_tree(template["params"], raw["params"], state_file,
                                   "the network parameters"),
            "best_params": restore_tree(template["params"], raw["best_params"],
                                        state_file, "the best network parameters"),
            "opt_state": restore_tree(template["opt_state"], raw["opt_state"], state_file,
                                      "the optimizer state (is optimizer= the one it was "
                                      "saved with?)"),
            "key": np.asarray(raw["key"]),
        }
        try:
            state.update(epoch=int(raw["epoch"]), stall=int(raw["stall"]),
                         best_epoch=int(raw["best_epoch"]), best_val=float(raw["best_val"]),
                         **{k: json.loads(raw[k]) for k in _JSON_KEYS})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{state_file}: not {what}: bad counters ({exc})") from None
        if len(state["train_f"]) != state["epoch"] + 1:
            raise ValueError(f"{state_file}: not {what}: {len(state['train_f'])} epochs of "
                             f"history for epoch {state['epoch']}")
        if np.shape(state["key"]) != np.shape(template["key"]):
            raise ValueError(f"{state_file}: PRNG key of shape {np.shape(state['key'])}, "
                             f"expected {np.shape(template['key'])} (another key type?)")
        return state
