"""Plain result records of SurCo runs: easy to inspect, save, load and plot.

``r.save(p)`` writes one ``.npz`` file atomically (``.npz`` appended unless ``p`` ends in
it) and ``type(r).load(p)`` reads it back, for the same ``p``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from surco.atomic import atomic_open
from surco.outcome import StopReason, stop_reason


def _to_jsonable(v: Any) -> Any:
    if isinstance(v, StopReason):
        return v.value
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, dict):
        return {k: _to_jsonable(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_jsonable(u) for u in v]
    return v


def _short(v: Any) -> str:
    """A field's value for a repr: arrays and long containers by shape / size only."""
    if isinstance(v, np.ndarray) or hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"array(shape={tuple(v.shape)}, dtype={v.dtype})"
    if isinstance(v, dict):
        inner = ", ".join(f"{k!r}: [{len(u)}]" if isinstance(u, (list, tuple)) else f"{k!r}: ..."
                          for k, u in list(v.items())[:6])
        return "{" + inner + (", ..." if len(v) > 6 else "") + "}"
    if isinstance(v, (list, tuple)):
        return f"[{len(v)} values]" if len(v) > 4 else repr(list(v))
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, StopReason):
        return repr(v.value)
    return repr(v)


def npz_path(path: str | Path) -> Path:
    """``path`` with ``.npz`` appended unless it already ends in ``.npz``: the file that
    ``save(path)`` writes and ``load(path)`` reads (a suffix is never substituted, so
    ``"run.a"`` and ``"run.b"`` stay two files).

    >>> npz_path("run.a").name, npz_path("run.npz").name, npz_path("run.NPZ").name
    ('run.a.npz', 'run.npz', 'run.NPZ.npz')
    """
    path = Path(path)
    return path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")


class _Saveable:
    """`save` / `load` as one ``.npz`` file, written atomically: arrays stored as arrays,
    the rest as JSON; a short `repr` (arrays and histories by their size)."""

    _arrays: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={_short(getattr(self, f.name))}"
                          for f in dataclasses.fields(self)
                          if not (f.name == "error" and self.error is None))  # only a failure's
        return f"{type(self).__name__}({parts})"

    def save(self, path: str | Path, *, overwrite: bool = True) -> Path:
        """Write the record to one ``.npz`` file, atomically: a reader, or a `load` after
        the process is killed at any moment, finds the previous file or the new one, never
        a part of one (see `surco.atomic`).

        Args:
          path: the file; ``.npz`` is appended unless it already ends in ``.npz``
            (``"run.a"`` -> ``run.a.npz``), the rule `load` applies, so ``load(p)`` reads
            what ``save(p)`` wrote. Missing folders are created.
          overwrite: an existing file is replaced, atomically (the default); with False it
            is kept and `FileExistsError` raised.

        Returns:
          The path written.

        Raises:
          FileExistsError: ``overwrite=False`` and the file exists (the message names it).
        """
        path = npz_path(path)
        arrays, meta = {}, {"__class__": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in self._arrays and v is not None:
                arrays[f.name] = np.asarray(v)
            else:
                meta[f.name] = _to_jsonable(v)
        record = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_open(path, overwrite=overwrite) as fh:
            np.savez(fh, __meta__=record, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path):
        """Read a file written by ``save``: ``path`` as given to ``save`` (``.npz`` is
        appended unless it ends in ``.npz``). Fields added since the file was written take
        their defaults.

        Raises:
          FileNotFoundError: no such file.
          ValueError: the file is not a result file of this class (not an ``.npz``,
            truncated, another class's, or missing a required field); the message names the
            path and what was expected.
        """
        path = npz_path(path)
        want = f"a {cls.__name__} file (.npz written by {cls.__name__}.save)"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file; expected {want}")
        try:
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise ValueError("a single .npy array, not an .npz archive")
                if "__meta__" not in z.files:
                    raise ValueError(f"an .npz archive without the __meta__ record "
                                     f"(holds {sorted(z.files)[:5]})")
                meta = json.loads(bytes(z["__meta__"]).decode())
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
        except (OSError, ValueError, EOFError, KeyError, UnicodeDecodeError,
                __import__("zipfile").BadZipFile) as exc:
            raise ValueError(f"{path}: not {want}: {exc}") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: not {want}: its __meta__ record is not a JSON object")
        held = meta.pop("__class__", None)
        if held != cls.__name__:
            raise ValueError(f"{path}: holds a {held}, not a {cls.__name__}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in arrays:
                kwargs[f.name] = arrays[f.name]
            elif f.name in meta:
                kwargs[f.name] = meta[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{path}: not {want}: field {f.name!r} is missing")
        return cls(**kwargs)


@dataclasses.dataclass(repr=False)
class ZeroResult(_Saveable):
    """Outcome of `surco.zero` on one instance (Ferber et al. 2023, Alg. 1).

    Attributes:
      x: best feasible solution found (by ``f``, or by ``evaluate`` when the problem has one).
      f: objective f(x) of that solution.
      true_cost: ``evaluate(x)`` when the problem defines it, else None.
      c: the surrogate cost whose solution is x (after ``cost_transform``).
      theta: SurCo's free parameters at that step (c = cost_transform(theta)).
      history: per-step lists: ``f`` (objective of the step's solution), ``best_f`` (best so
        far), ``solver_calls``, ``seconds`` (wall time, for the whole batch when instances
        were solved together) and ``solver_seconds`` (this instance's), all cumulative.
      best_step: step at which x was found (0 = initial cost).
      seconds: wall time of the run (compilation included; when instances were solved
        together, the batch's wall time divided by their number); solver_seconds: the time
        spent in the solver on this instance.
      solver_calls: solver calls made for this instance.
      problem: the problem's name; estimator: the estimator's name.
      stopped: why the run ended, a `surco.outcome.StopReason`: STEPS (all steps run),
        PATIENCE, TARGET, TIME_LIMIT, BUDGET (`surco.budget.BudgetExhausted` from
        ``evaluate`` or the objective), INTERRUPTED (Ctrl-C: the `KeyboardInterrupt`'s
        ``.partial``) or ERROR (the ``.partial`` of an error raised mid-run, or the result
        of ``throw=False``). A str enum: ``stopped == "budget"`` holds; files saved with
        plain strings load as the same members, and files saved before this field existed
        load as STEPS.
      error: with ``throw=False``, the exception that ended the run (its text after a
        save and load); None otherwise. A run that failed before its first step has no x,
        c or theta (None) and f NaN.
    """

    x: np.ndarray
    f: float
    true_cost: float | None
    c: np.ndarray
    theta: np.ndarray
    history: dict[str, list]
    best_step: int
    seconds: float
    solver_seconds: float
    solver_calls: int
    problem: str
    estimator: str
    stopped: StopReason = StopReason.STEPS
    error: BaseException | str | None = None

    _arrays = ("x", "c", "theta")

    def __post_init__(self) -> None:
        self.stopped = stop_reason(self.stopped)   # a plain string from an older file

    @property
    def interrupted(self) -> bool:
        """True for the partial result of a run stopped by Ctrl-C."""
        return self.stopped == StopReason.INTERRUPTED

    @property
    def failed(self) -> bool:
        """True for the result of a run that an error ended (``throw=False``, ``.partial``)."""
        return self.stopped == StopReason.ERROR

    def plot(self, ax=None, label: str | None = None):
        """Objective per step and best so far (needs matplotlib: the ``plot`` extra)."""
        ax = _axes(ax)
        steps = np.arange(len(self.history["f"]))
        ax.plot(steps, self.history["f"], alpha=0.4, label=f"{label or self.estimator}: f(x_t)")
        ax.plot(steps, self.history["best_f"], label=f"{label or self.estimator}: best")
        ax.set_xlabel("step")
        ax.set_ylabel(f"f ({self.problem})")
        ax.legend()
        return ax


@dataclasses.dataclass(repr=False)
class PriorResult(_Saveable):
    """SurCo-prior's answer for one instance: one forward pass + one solve (Eq. 7)."""

    x: np.ndarray
    f: float
    true_cost: float | None
    c: np.ndarray
    seconds: float
    problem: str

    _arrays = ("x", "c")


@dataclasses.dataclass(repr=False)
class TrainHistory(_Saveable):
    """SurCo-prior training curves: mean train / validation objective per epoch.

    Attributes:
      train_f, val_f, seconds: per completed epoch.
      best_epoch: the epoch whose parameters the model holds (-1: the untrained residual).
      stopped_early: True when ``patience`` ended the training.
      error: with ``throw=False``, the exception that ended the training (its text after a
        save and load); None otherwise.
    """

    train_f: list
    val_f: list
    seconds: list
    best_epoch: int
    stopped_early: bool
    error: BaseException | str | None = None

    def plot(self, ax=None):
        ax = _axes(ax)
        ax.plot(self.train_f, label="train f")
        if self.val_f:
            ax.plot(self.val_f, label="validation f")
        ax.axvline(self.best_epoch, ls=":", c="gray")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean objective")
        ax.legend()
        return ax


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # optional extra
        raise ImportError("plotting needs matplotlib: pip install 'surco[plot]'") from exc
    return plt.subplots(figsize=(6, 3.5))[1]
