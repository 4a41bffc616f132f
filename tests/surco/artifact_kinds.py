"""The saved artifacts of surco, two known versions of each, for the tests of atomic saving
(test_artifacts_atomic.py), and the saving server those tests kill.

Each kind saves a version (0 or 1) to a target through the public API, loads a target
back through the public API, and tells which version a loaded artifact is (None for a
mix or anything else). The versions are big enough (50-700 kB) that one save takes a few
milliseconds.

The server (``python artifact_kinds.py``) imports surco once, without starting JAX's
runtime, and answers commands on stdin, one per line:

* ``fork KIND TARGET SCRATCH``: forks a child that saves both versions once to SCRATCH
  (warm-up), prints ``ready PID SECONDS_PER_SAVE``, then saves versions 0, 1, 0, 1, ... to
  TARGET until it is killed;
* ``reap PID``: waits for that child and prints ``reaped PID STATUS`` (``os.waitpid``'s).

A fork per kill keeps a kill cheap: the child starts saving at once, with everything
imported. In the server, a report's machine and commit (which start JAX's runtime and git
in every child, for a second or more) are constants: the JSON is written the same way.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import surco  # noqa: E402
from surco.prior.checkpoint import TrainingCheckpoint  # noqa: E402
from surco.report import Report  # noqa: E402
from surco.report import read as read_report  # noqa: E402
from surco.results import PriorResult, TrainHistory, ZeroResult  # noqa: E402


def _fill(version: int, shape: tuple[int, ...], salt: int, dtype=np.float64) -> np.ndarray:
    """A deterministic array that differs between versions in every entry."""
    n = int(np.prod(shape))
    values = (np.arange(n) * (salt + 1) % 9973) + 0.5 + 100_000 * version
    return values.astype(dtype).reshape(shape)


def _floats(version: int, n: int, salt: int) -> list[float]:
    return [float(v) for v in _fill(version, (n,), salt)]


# -- single-file records ---------------------------------------------------------------------
def zero_result(version: int) -> ZeroResult:
    h = {k: _floats(version, 2_000, i) for i, k in enumerate(("f", "best_f", "seconds"))}
    return ZeroResult(x=_fill(version, (100, 100), 1), f=float(version), true_cost=None,
                      c=_fill(version, (100, 100), 2), theta=_fill(version, (100, 100), 3),
                      history=h, best_step=version, seconds=1.0, solver_seconds=0.5,
                      solver_calls=7 + version, problem="toy", estimator="blackbox")


def prior_result(version: int) -> PriorResult:
    return PriorResult(x=_fill(version, (200, 200), 4), f=float(version), true_cost=2.0,
                       c=_fill(version, (200, 200), 5), seconds=0.1, problem="toy")


def train_history(version: int) -> TrainHistory:
    return TrainHistory(train_f=_floats(version, 5_000, 6), val_f=_floats(version, 5_000, 7),
                        seconds=_floats(version, 10, 8), best_epoch=version,
                        stopped_early=bool(version))


def same_record(a: Any, b: Any) -> bool:
    """Field by field equality of two result records (arrays by value and dtype)."""
    if type(a) is not type(b):
        return False
    for f in dataclasses.fields(a):
        u, v = getattr(a, f.name), getattr(b, f.name)
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (np.asarray(u).dtype == np.asarray(v).dtype and np.array_equal(u, v)):
                return False
        elif u != v:
            return False
    return True


# -- a prior model (a directory) -------------------------------------------------------------
N_ROWS, N_FEAT, N_OUT, HIDDEN = 4, 64, 2, (256,)


def toy_problem() -> surco.Problem:
    """A small assignment-like problem; saving a model only records its name."""
    import scipy.sparse as sp
    from surco.solvers import LinearSpec
    omega = LinearSpec(shape=(N_ROWS, N_OUT), A_eq=sp.kron(sp.eye(N_ROWS), np.ones((1, N_OUT))),
                       b_eq=np.ones(N_ROWS), lb=0, ub=1, integer=True)
    return surco.Problem("atomic-toy", omega, lambda x, y: (x * y).sum(), features=lambda y: y)


def _params(version: int) -> dict:
    """CostNet parameters as NumPy arrays (no JAX computation, so the server can fork)."""
    sizes = (2 * N_FEAT, *HIDDEN, N_OUT)  # CostNet sees each row and the rows' mean
    return {"params": {f"Dense_{i}": {"kernel": _fill(version, (a, b), 10 + i, np.float32),
                                      "bias": _fill(version, (b,), 20 + i, np.float32)}
                       for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}}


def prior_model(version: int, problem: surco.Problem | None = None) -> surco.PriorModel:
    hist = TrainHistory(train_f=[float(version)] * 3, val_f=[], seconds=[0.1] * 3,
                        best_epoch=version, stopped_early=False)
    return surco.PriorModel(problem=problem or toy_problem(),
                            module=surco.prior.CostNet(out=N_OUT, hidden=HIDDEN),
                            params=_params(version), feat_mean=np.full(N_FEAT, version),
                            feat_std=np.ones(N_FEAT), out_shape=(N_OUT,), per_row=True,
                            feature_shape=(N_ROWS, N_FEAT), estimator="blackbox",
                            history=hist)


def same_tree(a: Any, b: Any) -> bool:
    import jax
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.shape(u) == np.shape(v) and np.array_equal(np.asarray(u),
                                                                           np.asarray(v))
                            for u, v in zip(la, lb))


def same_model(a: surco.PriorModel, b: surco.PriorModel) -> bool:
    return (same_tree(a.params, b.params) and a.history == b.history
            and np.array_equal(a.feat_mean, b.feat_mean) and a.estimator == b.estimator)


# -- a training checkpoint -------------------------------------------------------------------
CHECKPOINT_META = {"problem": "atomic-toy", "n_train": 3}


def checkpoint_state(version: int) -> dict:
    p = _params(version)
    return {"params": p, "best_params": p,
            "opt_state": {"mu": p, "count": np.asarray(version, np.int32)},
            "key": np.array([version, 7], np.uint32), "epoch": version + 1,
            "best_val": float(version), "stall": version, "best_epoch": version,
            "train_f": [float(version)] * (version + 2), "val_f": [], "seconds": [0.5]}


def same_state(a: dict, b: dict) -> bool:
    return all(same_tree(a[k], b[k]) if k in ("params", "best_params", "opt_state", "key")
               else a[k] == b[k] for k in b)


# -- a bench report (surco.report.Report, which surco.Comparison.write_json fills) ----------
def comparison(version: int, n: int = 200) -> surco.Comparison:
    from surco.budget import Budget
    runs = [surco.Run(method=m, instance=i, x=None, value=float(i + 1000 * version + j),
                      seconds=0.25, evaluations=i, status="ok", error=None, curve=[],
                      budget=Budget())
            for j, m in enumerate(("a", "b")) for i in range(n)]
    return surco.Comparison("atomic-toy", runs, ["a", "b"], n)


def write_report(version: int, path: Path) -> Path:
    """A report of 3000 rows written by `surco.report.Report.finish`."""
    rep = Report("atomic", True, path=path)
    for i in range(3_000):
        rep.row(method="ab"[i % 2], instance=i, value=float(i + 1000 * version))
    rep.target("t", float(version), "<=", 1.0)
    rep.extra["runs"] = [{"instance": i, "version": version} for i in range(100)]
    return rep.finish(quiet=True)


def report_content(report: dict) -> dict:
    """What tells two reports apart (not the machine, the time or the load average)."""
    return {k: report[k] for k in ("bench", "quick", "rows", "targets", "runs")}


# -- the kinds -------------------------------------------------------------------------------
@dataclasses.dataclass
class Kind:
    """How to save version v of an artifact to a target, and load a target back."""

    name: str
    target: str                                   # file or directory name in a folder
    save: Callable[[int, Path], Any]              # (version, target) -> None
    load: Callable[[Path], Any]                   # target -> loaded artifact
    same: Callable[[Any, int], bool]              # loaded artifact is exactly version v?
    files: Callable[[Path], set[str]]             # target -> its expected files after a save


def _record_kind(name: str, build: Callable[[int], Any]) -> Kind:
    cls = type(build(0))
    versions: dict[int, Any] = {}

    def same(got, v):
        if v not in versions:
            versions[v] = build(v)
        return same_record(got, versions[v])

    return Kind(name, f"{name}.npz", lambda v, p: build(v).save(p), cls.load, same,
                lambda p: {p.name})


def _model_kind() -> Kind:
    problem, models = toy_problem(), {}

    def same(got, v):
        if v not in models:
            models[v] = prior_model(v, problem)
        return same_model(got, models[v])

    def files(p):
        import json
        return {"meta.json", json.loads((p / "meta.json").read_text())["params_file"]}

    return Kind("prior_model", "model", lambda v, p: prior_model(v, problem).save(p),
                lambda p: surco.prior.load(p, problem), same, files)


def _checkpoint_kind() -> Kind:
    def files(p):
        import json
        return {"checkpoint.json",
                json.loads((p / "checkpoint.json").read_text())["checkpoint_file"]}

    return Kind("training_checkpoint", "ck",
                lambda v, p: TrainingCheckpoint(p, CHECKPOINT_META).save(checkpoint_state(v)),
                lambda p: TrainingCheckpoint(p, CHECKPOINT_META).restore(checkpoint_state(0)),
                lambda got, v: same_state(got, checkpoint_state(v)), files)


def _report_kind() -> Kind:
    expected: dict[int, dict] = {}

    def same(got, v):
        if v not in expected:
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                expected[v] = report_content(read_report(write_report(v, Path(d) / "r.json")))
        return report_content(got) == expected[v]

    return Kind("bench_json", "bench.json", write_report, read_report, same,
                lambda p: {p.name})


KINDS: dict[str, Callable[[], Kind]] = {
    "zero_result": lambda: _record_kind("zero_result", zero_result),
    "prior_result": lambda: _record_kind("prior_result", prior_result),
    "train_history": lambda: _record_kind("train_history", train_history),
    "prior_model": _model_kind,
    "training_checkpoint": _checkpoint_kind,
    "bench_json": _report_kind,
}


# -- the server ------------------------------------------------------------------------------
def _child(kind: Kind, target: Path, scratch: Path) -> None:
    """Runs in the forked child: warm up, say ready, save until killed."""
    try:
        t0 = time.perf_counter()
        kind.save(0, scratch)
        kind.save(1, scratch)
        per_save = (time.perf_counter() - t0) / 2
        sys.stdout.write(f"ready {os.getpid()} {per_save:.6f}\n")
        sys.stdout.flush()
        v = 0
        while True:
            kind.save(v, target)
            v = 1 - v
    except BaseException as exc:  # report, then leave without running the server's code
        sys.stdout.write(f"error {os.getpid()} {type(exc).__name__}: {exc}\n")
        sys.stdout.flush()
    finally:
        os._exit(3)


def serve() -> None:
    import surco.report
    surco.report.machine = lambda: {"cpu": "test", "cores": 1, "gpu": None,
                                    "jax_backend": None, "load_avg_1min": None}
    surco.report.commit = lambda: None
    kinds: dict[str, Kind] = {}
    sys.stdout.write("ok\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "fork":
            name, target, scratch = args
            kind = kinds.get(name) or kinds.setdefault(name, KINDS[name]())
            if os.fork() == 0:
                _child(kind, Path(target), Path(scratch))
        elif cmd == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            sys.stdout.write(f"reaped {args[0]} {status}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    serve()
