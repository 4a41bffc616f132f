"""Typed, validated configurations of SurCo's runs: `ZeroConfig` (SurCo-zero and -hybrid,
Ferber et al., ICML 2023, Alg. 1 and 4) and `TrainConfig` (SurCo-prior, Eq. 7).

The configuration is the object (as in equinox / optimistix): a frozen dataclass, checked
once when it is built, so a bad value fails where it is written, with a message naming the
field. Families ship configurations (``Family.zero_settings`` is a `ZeroConfig`), and
``surco.zero(problem, y, config)`` and the keyword form ``surco.zero(problem, y, steps=50)``
are the same call: keywords build (or, given with a configuration, replace fields of) one.

A configuration also reads as a mapping of its *keyword form*: the fields given by name to
`ZeroConfig.of` or that differ from their defaults, with the estimator's hyperparameters as
keywords of their own, so that
``ZeroConfig.of(**cfg) == cfg`` and ``{**cfg, "steps": 10}`` are the keywords of another
run::

    >>> from surco.config import ZeroConfig
    >>> cfg = ZeroConfig.of(estimator="blackbox", lam=10.0, steps=50)
    >>> cfg.estimator_options, dict(cfg)
    ({'lam': 10.0}, {'estimator': 'blackbox', 'steps': 50, 'lam': 10.0})
    >>> cfg.replace(steps=5).steps
    5
    >>> ZeroConfig(steps=-1)
    Traceback (most recent call last):
      ...
    ValueError: zero: steps must be an integer >= 0, got -1
"""
from __future__ import annotations

import collections.abc
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from surco.checks import check_int, check_number, check_optimizer
from surco.estimators.base import Estimator
from surco.estimators.registry import ESTIMATORS, get_estimator
from surco.solvers import check_kwargs

__all__ = ["Config", "ZeroConfig", "TrainConfig", "NO_PROGRESS_STEPS", "settings_of",
           "split_settings", "check_zero_settings"]

#: default of ``ZeroConfig.no_progress_steps``: on the toy assignment problem the settings
#: that make progress first change x within 14 steps (bench/estimator_defaults.py), and
#: within 36 for perturbed with Adam in an 8-instance trial; a run whose x has not changed
#: in its first 40 steps is stuck.
NO_PROGRESS_STEPS = 40


def _bool(who: str, name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"{who}: {name} must be True or False, got {v!r}")


def _estimator_class(estimator: Any) -> type[Estimator]:
    """The class of an estimator given by object or name (ValueError / TypeError as
    `get_estimator` for anything else)."""
    if isinstance(estimator, Estimator):
        return type(estimator)
    if isinstance(estimator, str) and estimator in ESTIMATORS:
        return ESTIMATORS[estimator]
    get_estimator(estimator)  # raises, naming the known estimators
    raise AssertionError  # pragma: no cover


def _fields_of(cls: type[Estimator]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if isinstance(value, (np.ndarray, Estimator)) or callable(value) and not isinstance(value, type):
        return False
    try:
        return bool(value == default)
    except Exception:  # noqa: BLE001  (an object without a usable ==)
        return False


class Config(collections.abc.Mapping):
    """Base of the frozen, validated configurations (a ``__post_init__`` checks each field;
    a ``_given`` field, ``init=False``; ``_who`` names the function in messages): the
    mapping view of the keyword form, `of` and `replace`, for `settings_of`. With ``estimator``
    and ``estimator_options`` fields, the estimator's hyperparameters are keywords too."""

    _who = ""

    @classmethod
    def _has_estimator(cls) -> bool:
        return "estimator_options" in cls.__dataclass_fields__

    def _options(self) -> Mapping[str, Any]:
        return self.estimator_options if self._has_estimator() else {}

    def _view(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("estimator_options", "_given"):  # options: keywords of their own
                continue
            v = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            if f.name in self._given or not _is_default(v, default):
                out[f.name] = v
        out.update(self._options())
        return out

    def __getitem__(self, name: str) -> Any:
        if name in self._options():
            return self._options()[name]
        if name in self.__dataclass_fields__ and not name.startswith("_"):
            return getattr(self, name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    @classmethod
    def keywords(cls, estimator: Any = "blackbox") -> tuple[str, ...]:
        """Every keyword the keyword form takes: the fields (and ``estimator``'s
        hyperparameters, for a configuration with an estimator)."""
        own = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        return own + (_fields_of(_estimator_class(estimator)) if cls._has_estimator() else ())

    @classmethod
    def of(cls, _who: str | None = None, **settings: Any):
        """The configuration of the keyword form: the fields, plus (with an estimator) its
        hyperparameters (e.g. ``lam=10`` for blackbox) gathered in ``estimator_options``.

        Raises:
          TypeError: a keyword that is neither a field nor a hyperparameter of the estimator
            (with the closest valid name); ValueError: a bad value (naming the field)."""
        who = _who or cls._who
        if not cls._has_estimator():
            check_kwargs(who, settings, cls.keywords())
            config = cls(**settings)
            object.__setattr__(config, "_given", frozenset(settings))
            return config
        estimator = settings.get("estimator", "blackbox")
        valid = cls.keywords(estimator)
        check_kwargs(who, settings, valid)
        hyper = set(_fields_of(_estimator_class(estimator)))
        own = {k: v for k, v in settings.items() if k not in hyper}
        options = {**own.pop("estimator_options", {}),
                   **{k: v for k, v in settings.items() if k in hyper}}
        config = cls(**own, estimator_options=options)
        object.__setattr__(config, "_given", frozenset(own))
        return config

    def replace(self, **settings: Any):
        """A copy with ``settings`` (fields or estimator hyperparameters) replaced,
        validated again."""
        return type(self).of(**{**self._view(), **settings})

    def _check_estimator(self) -> None:
        if not isinstance(self.estimator_options, Mapping):
            raise ValueError(f"{self._who}: estimator_options must be a mapping of the "
                             f"estimator's hyperparameters, got {self.estimator_options!r}")
        fields = _fields_of(_estimator_class(self.estimator))
        check_kwargs(f"{self._who}: estimator {getattr(self.estimator, 'name', self.estimator)!r}",
                     self.estimator_options, fields)
        get_estimator(self.estimator, **self.estimator_options)  # the estimator's own checks
        object.__setattr__(self, "estimator_options", dict(self.estimator_options))

    def make_estimator(self) -> Estimator:
        """The estimator object, with its hyperparameters."""
        return get_estimator(self.estimator, **self.estimator_options)


@dataclasses.dataclass(frozen=True, repr=False)
class ZeroConfig(Config):
    """How SurCo-zero runs (Ferber et al., ICML 2023, Alg. 1): checked once, here.

    Attributes:
      estimator: an `surco.estimators.Estimator` or its name ("blackbox", "perturbed",
        "identity", "neg_identity", "straight_through", "quadratic").
      estimator_options: its hyperparameters (e.g. ``{"lam": 10}`` for blackbox); in the
        keyword form they are keywords of their own (``lam=10``).
      steps: maximum number of gradient steps (an integer >= 0).
      lr: learning rate (> 0) of the default optimiser, the estimator's `default_optimizer`.
      optimizer: any optax transformation (overrides ``lr``), or None.
      init: the start θ0 (c = problem.cost_transform(θ)): "random" (``init_scale`` ×
        standard normal), "zeros" (1e-3 noise to break ties), an array shaped like x (or
        one per instance), or a *start rule*: a function ``instance -> θ0``, called per
        instance (a heuristic's cost, e.g. a family's).
      init_scale: scale (> 0) of the random start.
      patience: stop after this many steps without improvement of the best f on every
        instance (an integer >= 1), or None.
      target: stop once the best f of every instance is ``<= target`` (finite), or None.
      time_limit: wall seconds (> 0) from the call, set-up and compilation included, or None.
      key: PRNG key or int seed (start and random estimators); None is seed 0.
      select: "f" keeps the best x by f; "evaluate" by ``problem.evaluate``.
      no_progress_steps: warn (`NoProgressWarning`) when x has not moved in this many steps
        of a cold start (an integer >= 1), or None.
      dtype: float dtype of the surrogate cost (float32 or float64).
      progress: show a progress bar.
      backend: how a `LinearSpec` Ω is solved (`make_solver`'s backend; None:
        `surco.solvers.DEFAULT_BACKEND`), or "jax": the whole run compiled into XLA through
        Ω's JAX-native oracle (also the default when Ω is a `JaxOracle`).
      solver_options: keyword options of `make_solver` (host backends only); ``time_limit``
        per solve: `surco.guidance.DEFAULT_SOLVE_SECONDS` unless given (None: unlimited).
      executor: a `concurrent.futures.Executor` for each step's solves (host backends only).
      oracle: the `surco.solvers.jax_oracles.JaxOracle` for Ω (implies backend "jax"; None
        derives it from the problem's Ω).
      chunk: steps per call of the compiled program (backend "jax", an integer >= 1).
      throw: True raises failures (the default); False returns them as a result with
        ``stopped == StopReason.ERROR`` and the exception in ``error`` (optimistix-style).

    Raises:
      ValueError (TypeError for an optimiser or executor of the wrong type, or an unknown
      estimator hyperparameter): naming the field and the expected form.
    """

    estimator: Any = "blackbox"
    estimator_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 100
    lr: float = 0.1
    optimizer: Any = None
    init: Any = "random"
    init_scale: float = 1.0
    patience: int | None = None
    target: float | None = None
    time_limit: float | None = None
    key: Any = None
    select: str = "f"
    no_progress_steps: int | None = NO_PROGRESS_STEPS
    dtype: Any = jnp.float32
    progress: bool = False
    backend: str | None = None
    solver_options: Mapping[str, Any] | None = None
    executor: Any = None
    oracle: Any = None
    chunk: int = 64
    throw: bool = True
    #: the fields given by name to `of` (kept in the mapping view even at their defaults)
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "surco.zero"

    def __post_init__(self) -> None:
        who, put = "zero", lambda k, v: object.__setattr__(self, k, v)
        self._check_estimator()
        put("steps", check_int("steps", self.steps, 0, who=who))
        put("lr", check_number("lr", self.lr, who=who))
        put("init_scale", check_number("init_scale", self.init_scale, who=who))
        put("patience", check_int("patience", self.patience, 1, none_ok=True, who=who))
        put("no_progress_steps", check_int("no_progress_steps", self.no_progress_steps, 1,
                                           none_ok=True, who=who))
        put("time_limit", check_number("time_limit", self.time_limit, none_ok=True, who=who))
        put("chunk", check_int("chunk", self.chunk, 1, who=who))
        t = self.target
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating))
                              or not math.isfinite(float(t))):
            raise ValueError(f"zero: target must be finite or None, got {t!r}")
        check_optimizer("zero", self.optimizer)
        if isinstance(self.init, str) and self.init not in ("random", "zeros"):
            raise ValueError(f"zero: init must be 'random', 'zeros', an array of surrogate "
                             f"parameters or a function instance -> θ0, got {self.init!r}")
        if self.select not in ("f", "evaluate"):
            raise ValueError(f"zero: select must be 'f' or 'evaluate', got {self.select!r}")
        try:
            dt = jnp.dtype(self.dtype)
        except TypeError as exc:
            raise ValueError(f"zero: dtype must be a floating dtype (jnp.float32 or "
                             f"jnp.float64), got {self.dtype!r}") from exc
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(f"zero: dtype must be a floating dtype (jnp.float32 or "
                             f"jnp.float64), got {dt}")
        put("dtype", dt)
        _bool(who, "progress", self.progress)
        _bool(who, "throw", self.throw)
        if self.backend is not None and not isinstance(self.backend, str):
            raise ValueError(f"zero: backend must be a backend name (str) or None, got "
                             f"{self.backend!r}")
        if self.solver_options is not None and not isinstance(self.solver_options, Mapping):
            raise ValueError(f"zero: solver_options must be a mapping of make_solver options "
                             f"or None, got {self.solver_options!r}")
        if self.executor is not None and not hasattr(self.executor, "submit"):
            raise TypeError(f"zero: executor must be a concurrent.futures.Executor or None, "
                            f"got {type(self.executor).__name__}")
        if self.oracle is not None and self.backend not in (None, "jax"):
            raise ValueError(f"zero: oracle is for backend 'jax' (Ω solved inside XLA), not "
                             f"backend {self.backend!r}")
        if self.backend == "jax" and (self.solver_options or self.executor is not None):
            raise ValueError("zero: backend 'jax' (Ω solved inside XLA) takes no "
                             "solver_options or executor")

    def train_config(self, **settings: Any) -> "TrainConfig":
        """The `TrainConfig` that trains SurCo-prior with this run's estimator (and its
        hyperparameters), key and solver (backend, options, executor), ``settings``
        (`TrainConfig` fields) replacing them."""
        shared = {k: v for k, v in self._view().items()
                  if k in ("estimator", "key", "solver_options", "executor")
                  or k == "backend" and v != "jax"}
        return TrainConfig.of(**shared, **self.estimator_options, **settings)

    def __repr__(self) -> str:
        return f"ZeroConfig({', '.join(f'{k}={v!r}' for k, v in self._view().items())})"


@dataclasses.dataclass(frozen=True, repr=False)
class TrainConfig(Config):
    """How SurCo-prior is trained (Ferber et al., ICML 2023, §3.2, Eq. 7): checked once, here.

    Attributes:
      estimator, estimator_options: the gradient estimator and its hyperparameters, as in
        `ZeroConfig`.
      model: a Flax module from normalised features to surrogate parameters, or None for
        `surco.prior.CostNet` with ``hidden`` widths.
      hidden: hidden widths of the default network (integers >= 1).
      epochs, batch_size: integers >= 1.
      lr: learning rate (> 0) of the default ``optax.adam(lr)``; optimizer: any optax
        transformation instead (None: that default).
      patience: epochs without validation improvement before stopping (>= 1), or None.
      key: PRNG key or int seed (initialisation, shuffling, random estimators).
      checkpoint_dir: a folder for a checkpoint after every epoch (and resuming), or None.
      progress: progress bar over epochs.
      backend, solver_options, executor: how Ω is solved (as `ZeroConfig`).
      base: a residual base ``instance -> θ_base`` (module-level function), or None.
      distill_weight: weight (> 0) of the distillation term.
      end_to_end: keep the end-to-end term (False: distillation only).
      throw: True raises failures (the default); False returns the best model so far, the
        exception in its ``history.error`` (with no epoch completed there is no model: the
        exception is raised).

    Raises:
      ValueError / TypeError naming the field and the expected form.
    """

    estimator: Any = "blackbox"
    estimator_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model: Any = None
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: Any = None
    patience: int | None = 10
    key: Any = None
    checkpoint_dir: str | Path | None = None
    progress: bool = False
    backend: str | None = None
    solver_options: Mapping[str, Any] | None = None
    executor: Any = None
    base: Callable[[Any], Any] | None = None
    distill_weight: float = 1.0
    end_to_end: bool = True
    throw: bool = True
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "surco.prior.train"

    def __post_init__(self) -> None:
        who, put = "prior.train", lambda k, v: object.__setattr__(self, k, v)
        self._check_estimator()
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{who}: {name} must be an integer >= 1, got {v!r}")
            put(name, int(v))
        p = self.patience
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1):
            raise ValueError(f"{who}: patience must be an integer >= 1, got {p!r}")
        if self.optimizer is None and (isinstance(self.lr, bool)
                                       or not isinstance(self.lr, (int, float, np.number))
                                       or not math.isfinite(self.lr) or self.lr <= 0):
            raise ValueError(f"{who}: lr must be a finite number > 0, got {self.lr!r}")
        if self.model is not None and not isinstance(self.model, nn.Module):
            raise TypeError(f"{who}: model must be a flax.linen.Module, got "
                            f"{type(self.model).__name__}")
        if self.model is None:
            put("hidden", _widths(who, self.hidden))
        w = self.distill_weight
        if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) \
                or not math.isfinite(w) or w <= 0:
            raise ValueError(f"{who}: distill_weight must be a finite number > 0, got {w!r}")
        _bool(who, "end_to_end", self.end_to_end)
        _bool(who, "progress", self.progress)
        _bool(who, "throw", self.throw)
        if self.base is not None and not callable(self.base):
            raise TypeError(f"{who}: base must be a function instance -> θ (x's shape), got "
                            f"{type(self.base).__name__}")
        check_optimizer(who, self.optimizer)

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self._view().items())})"


def _widths(who: str, hidden: Any) -> tuple[int, ...]:
    try:
        widths = tuple(hidden)
        ok = all(not isinstance(w, bool) and int(w) == w and int(w) >= 1 for w in widths)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{who}: hidden must be a tuple of integers >= 1 (layer widths), "
                         f"got {hidden!r}")
    return tuple(int(w) for w in widths)


def settings_of(config: Any, settings: Mapping[str, Any], cls: type, who: str):
    """The configuration of a call: ``config`` (a `cls`, a mapping of its keyword form, or
    None) with ``settings`` (keywords) replacing its fields; checked once."""
    if config is None:
        return cls.of(who, **settings)
    if isinstance(config, cls):
        return config.replace(**settings) if settings else config
    if isinstance(config, Mapping):
        return cls.of(who, **{**config, **settings})
    raise TypeError(f"{who}: config must be a {cls.__name__} (or None with keywords), got "
                    f"{type(config).__name__}")


def split_settings(who: str, settings: Mapping[str, Any], own: Iterable[str], *,
                   drop: Iterable[str] = (), extra: Iterable[str] = ()) -> tuple[dict, dict]:
    """``(mine, zero)``: a keyword form split into the keywords named in ``own`` (the fields
    of a method's own configuration: LNS's, LANCER's) and the rest, meant for `surco.zero`:
    `ZeroConfig` fields (less ``drop``, plus ``extra``) and hyperparameters of the
    estimator they name (default "blackbox").

    Raises:
      TypeError: a keyword that is neither, with the closest valid name (nothing is checked
        when the estimator is unknown: building the configuration reports it)."""
    own = tuple(own)
    try:
        valid = ZeroConfig.keywords(settings.get("estimator", "blackbox"))
    except (TypeError, ValueError):
        valid = None
    if valid is not None:
        drop = set(drop)
        check_kwargs(who, settings, [k for k in (*own, *valid, *extra) if k not in drop])
    return ({k: v for k, v in settings.items() if k in own},
            {k: v for k, v in settings.items() if k not in own})


def check_zero_settings(func_name: str, settings: Mapping[str, Any], *,
                        drop: Iterable[str] = (), extra: Iterable[str] = ()) -> None:
    """Keywords meant for `surco.zero` (a family's ``zero_settings`` with overrides,
    ``**zero_kwargs``), checked as `split_settings` does (TypeError naming an unknown one)."""
    split_settings(func_name, settings, (), drop=drop, extra=extra)
