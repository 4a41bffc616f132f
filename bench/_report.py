"""Shared reporting for benchmarks, in the format of the project's BENCH.md.

Every benchmark builds one `Report`, adds rows and targets, and calls `finish`, which prints
a table last and writes ``bench/results/NAME.json`` (``NAME-quick.json`` with ``--quick``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: callable = None) -> argparse.Namespace:
    """Common command line: ``--quick`` plus whatever ``extra(parser)`` adds."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="faithful small version")
    if extra is not None:
        extra(p)
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    """CPU model, core count, GPU name (or None) and the JAX backend in use."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "gpu": None,
                            "jax_backend": None, "python": platform.python_version()}
    try:
        import jax
        info["jax_backend"] = jax.default_backend()
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        info["gpu"] = gpus[0].device_kind if gpus else None
    except Exception:  # jax missing or broken: report without it
        pass
    return info


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Report:
    """Collects rows and targets of one benchmark run."""

    def __init__(self, bench: str, quick: bool):
        self.bench, self.quick = bench, bool(quick)
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self._t0 = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

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
        return RESULTS / f"{self.bench}{'-quick' if self.quick else ''}.json"

    def finish(self, table_columns: Sequence[str] | None = None) -> Path:
        """Write the JSON and print the table (rows, then targets) last."""
        out = {"bench": self.bench, "quick": self.quick, "machine": machine(),
               "commit": _commit(),
               "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "seconds": round(time.perf_counter() - self._t0, 2),
               "rows": self.rows, "targets": self.targets}
        out.update(self.extra)
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(out, indent=1, default=float) + "\n")
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
