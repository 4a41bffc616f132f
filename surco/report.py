"""Benchmark reports in the format of docs/bench-format.md: one JSON object per run with the
machine, the commit, the rows measured and the targets with the values measured against them.

A benchmark (or `surco.Comparison.write_json`) builds one `Report`, adds rows and targets,
and calls `finish`, which writes the JSON atomically (a reader finds the previous report or
the new one, never a part, even when the run is killed while writing) and prints a table
last; `read` reads such a file back, checked. The benches in bench/ write
``bench/results/NAME.json`` (``NAME-quick.json`` with ``--quick``).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from surco.atomic import write_bytes

__all__ = ["Report", "machine", "read", "run_record"]

_KEYS = ("bench", "quick", "machine", "commit", "started", "seconds", "rows", "targets")


def machine() -> dict[str, Any]:
    """CPU model, core count, GPU name (or None), the JAX backend in use and the 1-minute
    load average when the report is written (timings are only comparable at equal load)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "gpu": None,
                            "jax_backend": None, "python": platform.python_version(),
                            "load_avg_1min": None}
    try:
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import jax
        info["jax_backend"] = jax.default_backend()
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        info["gpu"] = gpus[0].device_kind if gpus else None
    except Exception:  # jax missing or broken: report without it
        pass
    return info


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _json_default(v: Any) -> Any:
    try:
        import numpy as np
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (np.integer, np.floating, np.bool_)):
            return v.item()
    except ImportError:  # numpy is a dependency; keep the writer usable without it
        pass
    return float(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Report:
    """Collects rows and targets of one benchmark run.

    Args:
      bench: the benchmark's name; quick: whether this is the ``--quick`` version.
      path: where `finish` writes the JSON (default ``results_dir / NAME[-quick].json``).
      results_dir: the folder of the default path (default: the checkout's bench/results).
    """

    def __init__(self, bench: str, quick: bool, path: str | Path | None = None,
                 results_dir: str | Path | None = None):
        self.bench, self.quick = bench, bool(quick)
        self._path = Path(path) if path is not None else None
        self._dir = Path(results_dir) if results_dir is not None else None
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self._t0 = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        #: the report's "seconds": None for the time from construction to `finish`; a
        #: comparison sets the seconds its runs took (`surco.Comparison.write_json`), not
        #: the time it took to write them.
        self.seconds: float | None = None

    def row(self, **values: Any) -> dict[str, Any]:
        self.rows.append(values)
        return values

    def target(self, name: str, value: float, op: str, target: float) -> None:
        """A target the issue states, with the value measured in this run (met or not)."""
        if op not in ("<=", ">="):
            raise ValueError(f"target {name!r}: op must be '<=' or '>=', got {op!r}")
        self.targets.append({"name": name, "value": float(value), "op": op,
                             "target": float(target)})

    @property
    def path(self) -> Path:
        if self._path is not None:
            return self._path
        base = self._dir if self._dir is not None else Path.cwd() / "bench" / "results"
        return base / f"{self.bench}{'-quick' if self.quick else ''}.json"

    def finish(self, table_columns: Sequence[str] | None = None, quiet: bool = False) -> Path:
        """Write the JSON to `path`, replacing an existing file atomically, and (unless
        ``quiet``) print the table (rows, then targets) last. Returns the path written."""
        out = {"bench": self.bench, "quick": self.quick, "machine": machine(),
               "commit": commit(),
               "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "seconds": (round(time.perf_counter() - self._t0, 2) if self.seconds is None
                           else float(self.seconds)),
               "rows": self.rows, "targets": self.targets}
        out.update(self.extra)
        write_bytes(self.path, (json.dumps(out, indent=1, default=_json_default) + "\n").encode())
        if quiet:
            return self.path
        cols = list(table_columns or dict.fromkeys(k for r in self.rows for k in r))
        table = [cols] + [[_fmt(r.get(c, "")) for c in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        print(f"\n{self.bench}{' (quick)' if self.quick else ''} — {out['machine']['cpu']}, "
              f"{out['machine']['cores']} cores, jax {out['machine']['jax_backend']}, "
              f"{out['seconds']} s  -> {self.path}")
        for i, row in enumerate(table):
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
            if i == 0:
                print("  ".join("-" * w for w in widths))
        if self.targets:
            print("\ntargets:")
            for t in self.targets:
                met = (t["value"] <= t["target"]) if t["op"] == "<=" else (t["value"] >= t["target"])
                print(f"  {'MET ' if met else 'MISS'} {t['name']}: {t['value']:.4g} {t['op']} {t['target']:.4g}")
        return self.path


def run_record(run: Any, *, with_x: bool = False) -> dict[str, Any]:
    """One `surco.runs.Run` as an entry of a report's "runs" list: method, instance, value,
    seconds (charged), wall_seconds, evaluations, eval_cost, status, cut_off, error, the
    budget (seconds, evaluations, eval_cost), the anytime curve, host and load average, the
    commit it ran at, and with ``with_x`` the solution x (a nested list). `surco.store.RunStore.to_run` reads it
    back (``to_run({"run": record})``; x is None when it was not written)."""
    b = run.budget
    x = None
    if with_x and run.x is not None:
        x = np.asarray(run.x).tolist()
    return {"method": run.method, "instance": int(run.instance), "value": float(run.value),
            "seconds": float(run.seconds), "wall_seconds": run.wall_seconds,
            "evaluations": int(run.evaluations), "eval_cost": float(b.eval_cost),
            "status": run.status, "cut_off": run.cut_off, "error": run.error,
            "budget": {"seconds": b.seconds, "evaluations": b.evaluations,
                       "eval_cost": float(b.eval_cost)},
            "curve": [[int(e), float(t), float(v)] for e, t, v in run.curve],
            "host": getattr(run, "host", None), "load_avg": getattr(run, "load_avg", None),
            "commit": getattr(run, "commit", None),
            "x": x}


def read(path: str | Path) -> dict[str, Any]:
    """The report in ``path`` (written by `Report.finish` or `surco.Comparison.write_json`),
    checked to be a whole one: a JSON object with the keys of the BENCH format (bench, quick,
    machine, commit, started, seconds, rows, targets).

    Raises:
      FileNotFoundError: no such file.
      ValueError: not such a report (truncated, not JSON, another kind of JSON); the message
        names the path and what is wrong.
    """
    path = Path(path)
    want = "a benchmark report (JSON from surco.report.Report.finish)"
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file; expected {want}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not {want}: not UTF-8 text ({exc})") from None
    try:
        out = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not {want}: unreadable JSON ({exc})") from None
    if not isinstance(out, dict):
        raise ValueError(f"{path}: not {want}: a JSON {type(out).__name__}, expected an object")
    missing = [k for k in _KEYS if k not in out]
    if missing:
        raise ValueError(f"{path}: not {want}: keys {missing} missing")
    if not isinstance(out["rows"], list) or not isinstance(out["targets"], list):
        raise ValueError(f"{path}: not {want}: rows and targets must be JSON lists")
    return out
