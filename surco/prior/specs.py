"""A Flax module's class and fields as JSON (`module_spec`) and back (`module_from_spec`):
what `surco.prior.load` needs to rebuild the network a model was saved with."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import flax.linen as nn
import numpy as np


class Unrecordable(ValueError):
    """A value that `encode` cannot write as JSON (its message is the value's repr)."""


def module_spec(module: nn.Module, *, strict: bool = True) -> dict:
    """What rebuilds ``module``: ``{"class": "package.module:QualName", "fields": {...}}``.

    Fields may be JSON values (numbers, strings, booleans, None), lists and tuples (read back
    as tuples), dicts with string keys, dtypes, Flax modules, and functions or classes
    importable by their ``__module__`` and ``__qualname__`` (``nn.gelu``, ``jnp.float32``).

    Args:
      module: a Flax module (its dataclass fields, ``parent`` and ``name`` excepted).
      strict: raise on what cannot be recorded; otherwise record its type's name (enough to
        tell two trainings apart, not to rebuild the module).

    Raises:
      ValueError: (``strict``) a class defined inside a function, or a field that cannot be
        recorded (a lambda, a closure, an arbitrary object); the message names the field.
    """
    cls = type(module)
    if strict and "<locals>" in cls.__qualname__:
        raise ValueError(f"{cls.__qualname__}: a network class defined inside a function "
                         "cannot be imported back; define it at module level")
    fields = {}
    for f in dataclasses.fields(module):
        if not f.init or f.name in ("parent", "name"):
            continue
        try:
            fields[f.name] = encode(getattr(module, f.name), strict)
        except Unrecordable as exc:
            raise ValueError(f"{cls.__name__}.{f.name} = {exc}: cannot be recorded (use JSON "
                             "values, tuples, dtypes or module-level functions)") from None
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}


def _import(path: str) -> Any:
    modname, _, qual = path.partition(":")
    obj = importlib.import_module(modname)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def encode(v: Any, strict: bool) -> Any:
    """``v`` as JSON (see `module_spec` for what can be recorded); lists and tuples become
    lists, everything else that is not a JSON value a one-key tagged object.

    Raises:
      Unrecordable: (``strict``) a value that cannot be recorded.
    """
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [encode(u, strict) for u in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {"__dict__": {k: encode(u, strict) for k, u in v.items()}}
    if isinstance(v, np.dtype):
        return {"__dtype__": v.name}
    if isinstance(v, nn.Module):
        return {"__module__": module_spec(v, strict=strict)}
    if callable(v):
        mod, qual = getattr(v, "__module__", None), getattr(v, "__qualname__", None)
        if mod and qual and "<" not in qual:
            try:
                if _import(f"{mod}:{qual}") is v:
                    return {"__callable__": f"{mod}:{qual}"}
            except (ImportError, AttributeError):
                pass
    if strict:
        raise Unrecordable(repr(v))
    return {"__unrecorded__": type(v).__qualname__}


def decode(v: Any, where: Path) -> Any:
    """The value `encode` wrote (lists read back as tuples), read from the file ``where``.

    Raises:
      ValueError: a function or class that cannot be imported, or a value recorded with
        ``strict=False`` (the message names ``where`` and suggests ``model=``).
    """
    if isinstance(v, list):
        return tuple(decode(u, where) for u in v)
    if not isinstance(v, dict):
        return v
    if "__dict__" in v:
        return {k: decode(u, where) for k, u in v["__dict__"].items()}
    if "__dtype__" in v:
        return np.dtype(v["__dtype__"])
    if "__module__" in v:
        return module_from_spec(v["__module__"], where)
    if "__callable__" in v:
        try:
            return _import(v["__callable__"])
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{where}: the network uses {v['__callable__']!r}, which cannot "
                             f"be imported ({exc}); pass model= to surco.prior.load") from None
    raise ValueError(f"{where}: a network field was not recorded ({v}); pass model= to "
                     "surco.prior.load")


def module_from_spec(spec: dict, where: Path) -> nn.Module:
    """The module that `module_spec` described (read from the file ``where``).

    Raises:
      ValueError: the class cannot be imported, is not a Flax module, or refuses the
        recorded fields; the message names ``where`` and suggests ``model=``.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ValueError(f"{where}: no network class recorded; pass model= to surco.prior.load")
    try:
        cls = _import(spec["class"])
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"{where}: the network class {spec['class']!r} cannot be imported "
                         f"({exc}); import it first or pass model= to surco.prior.load") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{where}: {spec['class']!r} is not a flax.linen.Module")
    fields = {k: decode(v, where) for k, v in spec.get("fields", {}).items()}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"{where}: {spec['class']!r} does not take the recorded fields "
                         f"{sorted(fields)} ({exc}); pass model= to surco.prior.load") from None
