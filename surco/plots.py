"""Figures of a comparison (`surco.Comparison.plot`), of its which-method map
(`surco.whichmethod.MethodMap.plot`) and of its profiles (`surco.profiles.Profile.plot`).

Each function returns the matplotlib figure and, given a path, writes it atomically (the
Agg backend: no display needed) and closes it. SurCo-family methods (`is_surco`) are drawn
in orange or thick.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from surco.naming import is_surco

__all__ = ["plot_comparison", "plot_map", "plot_profile"]


def _pyplot(path):
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(plt, fig, path) -> None:
    if path is not None:
        from surco.atomic import save_figure
        save_figure(fig, Path(path), dpi=110)  # atomically: the old figure or the new one
        plt.close(fig)


def plot_comparison(cmp: Any, path: str | Path | None = None, reference: str | None = None,
                    title: str = ""):
    """Mean cost against the reference, and the anytime curves (mean best-so-far against
    evaluations and against seconds) of the methods that evaluate through their meter.

    The first panel shows each method's relative gap to the reference, ``(mean − ref) /
    |ref|`` in percent (`surco.Comparison.summary`'s ``rel_gap``; lower is better, for
    costs of either sign), as bars from 0 (the reference), so that a 4 % difference is a
    4 % bar whatever the costs' magnitude; where the gap is undefined (the reference's mean
    is 0), the mean costs as dots, the axis spanning their range (not from 0). For a
    comparison with ``sense="max"`` the panels show the user's f (higher is better).
    """
    plt = _pyplot(path)
    rows = cmp.summary(reference)
    up = getattr(cmp, "sense", "min") == "max"
    better = "higher is better" if up else "lower is better"
    what = "f" if up else "cost"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = [r["method"] for r in rows]
    colors = ["tab:orange" if is_surco(n) else "tab:blue" for n in names]
    ax = axes[0]
    gaps = [r["rel_gap"] for r in rows]
    ref = rows[0]["reference"] if rows else reference
    if rows and all(g is not None for g in gaps):
        pct = [100.0 * g for g in gaps]
        ax.bar(range(len(names)), pct, color=colors)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_ylabel(f"mean {what} vs {ref}'s, % ({better})")
        for k, v in enumerate(pct):
            if np.isfinite(v):
                ax.annotate(f"{v:+.2f}%", (k, v), ha="center", fontsize=6,
                            va="bottom" if v >= 0 else "top")
    else:
        vals = [r["value"] for r in rows]
        ax.scatter(range(len(names)), vals, c=colors, zorder=3)
        finite = [v for v in vals if np.isfinite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-12)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(f"mean {what} ({better})")
        ax.grid(axis="y", lw=0.3)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    for ax, axis in zip(axes[1:], ("evaluations", "seconds")):
        for m in names:
            if not any(r.curve for r in cmp.runs if r.method == m):
                continue
            g, v = cmp.anytime(m, axis)
            ax.plot(g, -v if up else v, lw=2.2 if is_surco(m) else 1.0, label=m)
        ax.set_xlabel(axis + (" (charged)" if axis == "seconds" and
                              any(r.budget.eval_cost > 0 for r in cmp.runs) else ""))
        ax.set_ylabel(f"mean best {what} so far")
        if ax.get_lines():
            ax.legend(fontsize=6)
    fig.suptitle(title or f"{cmp.family}: {cmp.n_instances} instances")
    fig.tight_layout()
    _finish(plt, fig, path)
    return fig


def plot_map(mm: Any, path: str | Path | None = None, title: str = ""):
    """Heat map of a `surco.whichmethod.MethodMap`: rows the cost per evaluation, columns
    the total budget, each cell coloured by its winner and labelled with its name (grey
    "?": not decided); the crossover sentence below."""
    plt = _pyplot(path)
    from matplotlib.colors import ListedColormap
    def surco(w: str) -> bool:
        return all(is_surco(m) for m in w.split(" = "))

    names = sorted({w for row in mm.winner for w in row if w is not None},
                   key=lambda w: (not surco(w), w))
    code = {w: k for k, w in enumerate(names)}
    grid = np.array([[code[w] if w is not None else -1 for w in row] for row in mm.winner],
                    np.float64).reshape(len(mm.costs), len(mm.budgets))
    warm = plt.get_cmap("Oranges")
    cool = plt.get_cmap("Blues")
    n_s = sum(map(surco, names))
    cols = [(0.85, 0.85, 0.85, 1.0)] + [
        warm(0.35 + 0.5 * k / max(n_s, 1)) if k < n_s
        else cool(0.3 + 0.5 * (k - n_s) / max(len(names) - n_s, 1))
        for k in range(len(names))]
    fig, ax = plt.subplots(figsize=(1.2 * len(mm.budgets) + 2, 0.6 * len(mm.costs) + 1.8))
    ax.imshow(grid + 1, cmap=ListedColormap(cols), vmin=-0.5, vmax=len(names) + 0.5,
              aspect="auto", origin="lower")
    for i in range(len(mm.costs)):
        for j in range(len(mm.budgets)):
            w = mm.winner[i][j]
            ax.text(j, i, "?" if w is None else w.replace(" = ", "=\n"), ha="center",
                    va="center", fontsize=6)
    ax.set_xticks(range(len(mm.budgets)), [f"{b:g}" for b in mm.budgets])
    ax.set_yticks(range(len(mm.costs)), [f"{c:g}" for c in mm.costs])
    ax.set_xlabel("total time budget T (s)")
    ax.set_ylabel("cost of one evaluation (s)")
    ax.set_title(title or "which method wins (mean best value by T)", fontsize=9)
    fig.text(0.01, 0.01, mm.crossover["sentence"], fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _finish(plt, fig, path)
    return fig


def plot_profile(p: Any, path: str | Path | None = None, title: str = ""):
    """Step plot of a `surco.profiles.Profile` (fraction of instances against κ or τ)."""
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, f in p.fractions.items():
        ax.step(p.x, f, where="post", lw=2.2 if is_surco(m) else 1.0, label=m)
    if p.kind == "performance":
        ax.set_xscale("log")
        ax.set_xlabel(f"ratio τ to the best method's {p.axis}")
    else:
        ax.set_xlabel(f"budget κ ({p.axis})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction of instances solved")
    test = f"tolerance {p.tol:g}" if p.level is None else "solved: f <= level"
    ax.set_title(title or f"{p.kind} profile, {test}", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    _finish(plt, fig, path)
    return fig
