"""Paired results of a comparison (`surco.compare`): `Comparison` (tables, plots, the
which-method map, profiles, JSON and store round trips) and the sign test it reports.

Results are paired per instance against a reference method: wins, ties and losses with a
two-sided sign test (Dixon & Mood, JASA 1946: ties dropped, p from Binomial(wins + losses,
1/2)). From the anytime traces: `Comparison.map` (`surco.whichmethod`), and the data and
performance profiles (`surco.profiles`: Moré & Wild 2009, Dolan & Moré 2002).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from surco.budget import Budget
from surco.runs import Run
from surco.store import RunStore, instance_hash
from surco.whichmethod import DEFAULT_BUDGETS, DEFAULT_COSTS, is_surco, trace

__all__ = ["Comparison", "sign_test"]

def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value of ``wins`` against ``losses`` (ties already dropped);
    1.0 when there is no untied pair (Dixon & Mood 1946)."""
    n = int(wins) + int(losses)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest
    return float(binomtest(int(wins), n, 0.5).pvalue)


def _ties(a: np.ndarray, b: np.ndarray, rtol: float) -> np.ndarray:
    return np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + 1e-12


@dataclasses.dataclass
class Comparison:
    """Runs of methods × instances, with paired summaries, a table, a plot and a JSON.

    Attributes:
      family: the family's name; runs: every `Run`; methods: names in order;
      n_instances: how many instances; interrupted: True when Ctrl-C stopped the comparison
        (the runs finished before it are kept); reference: the default reference method;
      sense: "min", or "max" for a family whose costs are −f (a `surco.Problem` with
        ``sense="max"``): the runs and `values` hold the minimised costs, and `summary`,
        `table` and `plot` show the user's f (higher is better).
    """

    family: str
    runs: list[Run]
    methods: list[str]
    n_instances: int
    reference: str | None = None
    interrupted: bool = False
    sense: str = "min"

    def __repr__(self) -> str:
        return (f"Comparison({self.family!r}, methods={self.methods}, "
                f"instances={self.n_instances}, runs={len(self.runs)}"
                f"{', interrupted' if self.interrupted else ''})")

    @classmethod
    def from_store(cls, store: "str | Path | RunStore", *, family: str,
                   setting: str | None = None, budget: Budget | None = None,
                   methods: Sequence[str] | None = None,
                   reference: str | None = None,
                   instances: Sequence[Any] | None = None) -> "Comparison":
        """The comparison held by a `surco.store.RunStore` (``compare(..., store=)``): the
        runs of ``family`` with this ``setting`` (and ``budget``, when several budgets were
        stored under one setting), for tables, plots and maps without running anything.
        With ``instances`` (the instances themselves), only the runs of these instances,
        matched by content hash (`surco.store.instance_hash`, rounded or exact): a store
        resumed on a machine whose generator gave other last bits, or after the generator
        changed, holds runs of both versions of an instance.

        Raises:
          ValueError: no such runs, or two runs of one method on one instance (naming them:
            give ``setting`` or ``budget`` to tell them apart, or ``instances`` when they
            are runs of two versions of the instance)."""
        store = store if isinstance(store, RunStore) else RunStore(store)
        records = list(store.records(family=family, setting=setting))
        if instances is not None:
            want = {(i, instance_hash(y, exact=e)) for i, y in enumerate(instances)
                    for e in (False, True)}
            records = [rec for rec in records if RunStore.instance_of(rec) in want]
        pairs = [(RunStore.to_run(rec), RunStore.instance_of(rec)[1]) for rec in records]
        if budget is not None:
            pairs = [(r, h) for r, h in pairs if r.budget == budget]
        if methods is not None:
            pairs = [(r, h) for r, h in pairs if r.method in methods]
        if not pairs:
            raise ValueError(f"from_store: {store.path} holds no runs of family {family!r} "
                             f"with setting {setting!r}"
                             + (f" and budget {budget.describe()}" if budget else "")
                             + (f" on these {len(instances)} instances"
                                if instances is not None else ""))
        seen: dict[tuple, tuple[Run, str]] = {}
        for r, h in pairs:
            if (r.method, r.instance) in seen:
                first, h0 = seen[r.method, r.instance]
                if first.budget == r.budget and h0 != h:
                    raise ValueError(
                        f"from_store: {store.path} holds two runs of {r.method!r} on instance "
                        f"{r.instance} with the same budget, of two versions of the instance "
                        f"(content hashes {h0} and {h}: generated by another version of the "
                        f"generator, or on a machine whose arithmetic differs in the last "
                        f"bits): pass instances= to take the runs of yours")
                raise ValueError(f"from_store: {store.path} holds two runs of {r.method!r} on "
                                 f"instance {r.instance} ({first.budget.describe()} and "
                                 f"{r.budget.describe()}): give setting= or budget=")
            seen[r.method, r.instance] = (r, h)
        runs = [r for r, _ in pairs]
        names = list(methods) if methods is not None else list(dict.fromkeys(r.method for r in runs))
        runs.sort(key=lambda r: (names.index(r.method), r.instance))
        return cls(family, runs, names, max(r.instance for r in runs) + 1, reference)

    # -- access ------------------------------------------------------------------------------
    def run(self, method: str, instance: int) -> Run:
        """The run of ``method`` on instance ``instance``.

        Raises:
          KeyError: no such run (naming the methods and instances there are)."""
        for r in self.runs:
            if r.method == method and r.instance == instance:
                return r
        raise KeyError(f"no run of {method!r} on instance {instance}; methods "
                       f"{self.methods}, instances 0..{self.n_instances - 1}")

    def values(self, method: str) -> np.ndarray:
        """True cost per instance (nan where the method failed or did not run)."""
        out = np.full(self.n_instances, np.nan)
        for r in self.runs:
            if r.method == method:
                out[r.instance] = r.value
        return out

    def merge(self, other: "Comparison") -> "Comparison":
        """Both comparisons' runs (same family and instances; ``other``'s methods after
        this one's; a method in both keeps this one's runs)."""
        if other.family != self.family or other.n_instances != self.n_instances:
            raise ValueError(f"merge: comparisons of {self.family!r} on {self.n_instances} "
                             f"instances and {other.family!r} on {other.n_instances} differ")
        if other.sense != self.sense:
            raise ValueError(f"merge: comparisons of senses {self.sense!r} and "
                             f"{other.sense!r} differ")
        extra = [m for m in other.methods if m not in self.methods]
        return Comparison(self.family, self.runs + [r for r in other.runs if r.method in extra],
                          self.methods + extra, self.n_instances, self.reference,
                          self.interrupted or other.interrupted, self.sense)

    def matched_budget(self, method: str, *, seconds: bool = True,
                       evaluations: bool = False) -> Callable[[str, int], Budget]:
        """Per-instance budgets equal to what ``method`` spent on each instance (its seconds
        as charged and/or its evaluations), each with the ``eval_cost`` that ``method`` ran
        under, for a second `compare` at equal budget."""
        if method not in self.methods:
            raise KeyError(f"matched_budget: {method!r} did not run; methods {self.methods}")

        def budget(_name: str, i: int) -> Budget:
            r = self.run(method, i)
            return Budget(seconds=max(r.seconds, 1e-3) if seconds else None,
                          evaluations=max(r.evaluations, 1) if evaluations else None,
                          eval_cost=r.budget.eval_cost)
        return budget

    def default_reference(self) -> str:
        """The family's reference if it ran, else the non-SurCo method with the lowest mean
        value over the instances where every such method succeeded."""
        if self.reference in self.methods:
            return self.reference
        cands = [m for m in self.methods if not is_surco(m)] or list(self.methods)
        means = {m: np.nanmean(self.values(m)) if np.isfinite(self.values(m)).any() else np.inf
                 for m in cands}
        return min(cands, key=lambda m: means[m])

    # -- summaries -----------------------------------------------------------------------
    def summary(self, reference: str | None = None, rtol: float = 1e-6) -> list[dict]:
        """One row per method, paired with ``reference`` on the instances both solved.

        Row keys: method, n (instances run), failed, value (mean true cost over its
        successful runs), rel_gap ((mean − reference's mean) / |reference's mean| over the
        paired instances, for costs of either sign: −0.04 is 4 % better; None when the
        reference's mean is 0 or nothing is paired), rel_reference (mean / reference's mean,
        a ratio only for positive costs: None when the reference's mean is not positive),
        gap (mean paired difference, method − reference), wins / ties / losses (lower is
        better; ties within ``rtol``), p_sign (two-sided sign test), seconds (charged),
        wall_seconds and evaluations (means), commits (the sorted distinct commits its
        runs ran at, `Run.commit`; empty when none was recorded). For ``sense="max"`` value, gap, rel_gap and
        rel_reference are of the user's f (−cost; higher is better: rel_gap 0.04 is 4 %
        better) and wins count the higher f."""
        ref = reference or self.default_reference()
        if ref not in self.methods:
            raise KeyError(f"summary: reference {ref!r} did not run; methods {self.methods}")
        rv = self.values(ref)
        sign = -1.0 if self.sense == "max" else 1.0     # the user's f from the costs
        rows = []
        for m in self.methods:
            runs = [r for r in self.runs if r.method == m]
            v = self.values(m)
            both = np.isfinite(v) & np.isfinite(rv)
            tie = _ties(v[both], rv[both], rtol)
            wins = int(np.sum((v[both] < rv[both]) & ~tie))
            losses = int(np.sum((v[both] > rv[both]) & ~tie))
            a, b = sign * v[both], sign * rv[both]
            ok = [r for r in runs if r.ok]
            rows.append({
                "method": m, "n": len(runs), "failed": len(runs) - len(ok),
                "value": sign * float(np.mean([r.value for r in ok])) if ok else math.nan,
                "rel_gap": (float((a.mean() - b.mean()) / abs(b.mean()))
                            if both.any() and b.mean() != 0 else None),
                "rel_reference": (float(a.mean() / b.mean()) if both.any() and b.mean() > 0
                                  else None),
                "gap": float(np.mean(a - b)) if both.any() else math.nan,
                "wins": wins, "ties": int(tie.sum()), "losses": losses,
                "p_sign": sign_test(wins, losses),
                "seconds": float(np.mean([r.seconds for r in runs])) if runs else math.nan,
                "wall_seconds": (float(np.mean([trace(r).end_real_seconds for r in runs]))
                                 if runs else math.nan),
                "evaluations": float(np.mean([r.evaluations for r in runs])) if runs else math.nan,
                "reference": ref,
                "commits": sorted({r.commit for r in runs if r.commit}),
            })
        return rows

    def table(self, reference: str | None = None) -> str:
        """`summary` as a plain-text table: mean cost, its relative gap to the reference's
        ("vs ref", ``rel_gap`` in %: negative is better, for costs of either sign),
        wins/ties/losses against the reference, p, seconds per instance (charged),
        evaluations, failures. For ``sense="max"``: mean f and its gap (positive is
        better), a line saying so."""
        rows = self.summary(reference)
        ref = rows[0]["reference"] if rows else reference
        what = "mean f" if self.sense == "max" else "mean cost"
        head = (f"{'method':<22}{what:>12}{'vs ref':>9}{'W/T/L vs ' + str(ref):>28}"
                f"{'p':>8}{'s/inst':>9}{'evals':>8}{'failed':>7}")
        lines = [head, "-" * len(head)]
        for r in rows:
            rel = "" if r["rel_gap"] is None else f"{100 * r['rel_gap']:+.2f}%"
            wtl = f"{r['wins']}/{r['ties']}/{r['losses']}"
            lines.append(f"{r['method']:<22}{r['value']:>12.5g}{rel:>9}{wtl:>28}"
                         f"{r['p_sign']:>8.3g}{r['seconds']:>9.3g}{r['evaluations']:>8.0f}"
                         f"{r['failed']:>7}")
        if self.sense == "max":
            lines.append("(f is maximised: higher mean f and a positive gap are better)")
        if self.interrupted:
            lines.append("(interrupted: runs finished before Ctrl-C only)")
        failed = [r for r in self.runs if r.status == "failed"]
        for r in failed[:5]:
            lines.append(f"failed: {r.method} on instance {r.instance}: {r.error}")
        if len(failed) > 5:
            lines.append(f"... {len(failed) - 5} more failed runs")
        return "\n".join(lines)

    def anytime(self, method: str, axis: str = "evaluations",
                grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean best-so-far value of ``method`` over instances, on a grid of evaluations or
        seconds (``axis``): nan at grid points before every run has its first value, so the
        mean is always over the same runs (`surco.whichmethod.anytime`)."""
        from surco.whichmethod import anytime
        return anytime(self, method, axis, grid)

    def plot(self, path: str | Path | None = None, reference: str | None = None,
             title: str = ""):
        """The mean cost of each method against the reference's (relative gap in %, bars
        from 0; SurCo in orange), and the anytime curves (mean best-so-far against
        evaluations and against seconds) of the methods that evaluate through their meter
        (`surco.plots.plot_comparison`). Writes ``path`` when given; returns the figure
        (needs matplotlib)."""
        from surco.plots import plot_comparison
        return plot_comparison(self, path, reference, title)

    # -- which method when, profiles ------------------------------------------------------
    def map(self, costs: Sequence[float] = DEFAULT_COSTS,
            budgets: Sequence[float] = DEFAULT_BUDGETS, *, partial: bool = False):
        """Which method wins at each (seconds per evaluation, total time budget) cell, from
        the runs' anytime traces: `surco.whichmethod.method_map` (a `MethodMap` with
        winners, means, margins, reasons for undecided cells and the crossover sentence;
        ``.plot(path)`` draws the heat map)."""
        from surco.whichmethod import method_map
        return method_map(self, costs, budgets, partial=partial)

    def data_profile(self, tol: float = 1e-3, kappa: Sequence[float] | None = None,
                     axis: str = "evaluations", eval_cost: float | None = None,
                     level: Sequence[float] | None = None):
        """Moré–Wild data profile of the runs (`surco.profiles.data_profile`; ``.plot``);
        ``level``: per instance, an absolute level that counts as solved."""
        from surco.profiles import data_profile
        return data_profile(self, tol, kappa, axis, eval_cost, level=level)

    def performance_profile(self, tol: float = 1e-3, taus: Sequence[float] | None = None,
                            axis: str = "evaluations", eval_cost: float | None = None,
                            level: Sequence[float] | None = None):
        """Dolan–Moré performance profile of the runs (`surco.profiles.performance_profile`;
        ``.plot``); ``level`` as in `data_profile`."""
        from surco.profiles import performance_profile
        return performance_profile(self, tol, taus, axis, eval_cost, level=level)

    def to_rows(self, reference: str | None = None, **extra: Any) -> list[dict]:
        """`summary` rows with ``extra`` keys (e.g. a setting) added to each, for BENCH JSON."""
        return [{**extra, **r} for r in self.summary(reference)]

    def write_json(self, path: str | Path, *, bench: str, quick: bool,
                   targets: Sequence[dict] = (), reference: str | None = None,
                   with_x: bool = False, **extra: Any) -> Path:
        """The JSON of docs/bench-format.md: bench, quick, machine, commit, started,
        seconds (what the runs took: the sum of their wall seconds), rows (`summary`),
        targets (each ``{"name", "value", "op", "target"}``), plus ``extra`` keys, the
        per-run records (`surco.report.run_record`: value, seconds, evaluations, budget,
        anytime curve; x with ``with_x``), "comparison" (family, methods, n_instances,
        reference, interrupted: what `load` needs) and "map": the which-method map on the
        default grid (`map`, `surco.whichmethod.MethodMap.to_json`: costs, budgets,
        winners, margins, means, reasons of undecided cells, the crossover sentence)."""
        from surco.report import Report, run_record
        rep = Report(bench, quick, path=path)
        for r in self.to_rows(reference):
            rep.row(**r)
        for t in targets:
            rep.target(t["name"], t["value"], t["op"], t["target"])
        rep.extra.update(extra)
        rep.extra["comparison"] = {"family": self.family, "methods": list(self.methods),
                                   "n_instances": self.n_instances,
                                   "reference": self.reference,
                                   "interrupted": self.interrupted, "sense": self.sense}
        rep.extra["runs"] = [run_record(r, with_x=with_x) for r in self.runs]
        rep.extra["map"] = self.map().to_json()
        rep.seconds = float(sum(trace(r).end_real_seconds for r in self.runs))
        return rep.finish(quiet=True)

    def save(self, path: str | Path) -> Path:
        """Write the whole comparison, solutions included, atomically (`write_json` with
        ``with_x=True``, bench "comparison-FAMILY"); `load` reads it back."""
        return self.write_json(path, bench=f"comparison-{self.family}", quick=False,
                               with_x=True)

    @classmethod
    def load(cls, path: str | Path) -> "Comparison":
        """The comparison that `save` (or `write_json`, without the solutions: x is None)
        wrote to ``path``: its runs with their values, seconds, evaluations, budgets and
        anytime curves, so tables, plots, maps and `merge` work as on the original.

        Raises:
          FileNotFoundError: no such file. ValueError: not a whole report, or one without
            the comparison's runs (naming the path)."""
        from surco.report import read
        data = read(path)
        meta, recs = data.get("comparison"), data.get("runs")
        if not isinstance(meta, dict) or not isinstance(recs, list) or not all(
                isinstance(r, dict) and "budget" in r for r in recs):
            raise ValueError(f"{path}: not a saved comparison (no 'comparison' record or runs "
                             "without their budgets); write it with Comparison.save or "
                             "Comparison.write_json")
        runs = [RunStore.to_run({"run": rec}) for rec in recs]
        return cls(meta["family"], runs, list(meta["methods"]), int(meta["n_instances"]),
                   meta.get("reference"), bool(meta.get("interrupted", False)),
                   meta.get("sense", "min"))


# ------------------------------------------------------------------------------------------
# SurCo as methods of the harness
# ------------------------------------------------------------------------------------------
